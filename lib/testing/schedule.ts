/**
 * Seeded fault schedules (docs/testing.md, "Fault schedules"): a plan of
 * faults drawn from a seed by a small PRNG, so a run that failed can be
 * run again step for step, and a runner that carries it out against a
 * cluster, logs what it did, and always ends healed.
 *
 * The plan is a pure function of the seed, the cluster's size and the
 * options; the run is as repeatable as real processes allow: the same
 * faults on the same nodes and links, held as long, in the same order.
 * Faults come one at a time (each is undone before the next), so a
 * failing step is one fault, not a tangle.
 */
import { randomBytes } from 'node:crypto';
import type { Direction } from './proxy.js';
import { ClusterWaitError } from './waits.js';

/** The faults a schedule may draw. */
export const FAULT_KINDS = [
  'kill',
  'restart',
  'pause',
  'cut',
  'blackhole',
  'delay',
  'throttle',
] as const;

/** One of {@link FAULT_KINDS}. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Options of a fault schedule: the seed and these give the plan. */
export interface ScheduleOptions {
  /** A uint32. Default: drawn at random, and reported, so the run can be replayed. */
  readonly seed?: number;
  /** How many faults. Default 10, unless `durationMs` is given. */
  readonly steps?: number;
  /** Instead of `steps`: faults until their hold times add up to at least this many ms. */
  readonly durationMs?: number;
  /** What may be drawn. Default: every kind of {@link FAULT_KINDS}. */
  readonly faults?: readonly FaultKind[];
  /** Which nodes `kill`, `restart` and `pause` may hit, and links may join. Default: all. */
  readonly nodes?: readonly number[];
  /** How long each fault stays on, ms, drawn in `[min, max]`. Default `[200, 800]`. */
  readonly holdMs?: readonly [number, number];
  /** A `delay` fault's delay, ms, in `[min, max]`. Default `[20, 100]` (keep it under `deadPeerMs / 4`). */
  readonly delayMs?: readonly [number, number];
  /** A `throttle` fault's limit, bytes per second, in `[min, max]`. Default `[16384, 262144]`. */
  readonly bytesPerSecond?: readonly [number, number];
  /** After each fault is undone, wait until every node sees every other up. Default true. */
  readonly recover?: boolean;
  /** Run after each step (once recovered): a throw stops the schedule, which heals and fails naming the seed. */
  readonly check?: (step: ScheduleStep) => void | Promise<void>;
  /** Timeout of each wait for recovery, ms. Default: the cluster's `timeoutMs`. */
  readonly timeoutMs?: number;
}

/** One planned fault. */
export interface ScheduleStep {
  /** 0-based position in the plan. */
  readonly index: number;
  readonly fault: FaultKind;
  /** The node of `kill`, `restart` and `pause`. */
  readonly node?: number;
  /** The link of `cut`, `blackhole`, `delay` and `throttle`. */
  readonly link?: readonly [number, number];
  /** The direction of `blackhole`, `delay` and `throttle`. */
  readonly direction?: Direction;
  /** The delay of `delay`, ms. */
  readonly delayMs?: number;
  /** The limit of `throttle`, bytes per second. */
  readonly bytesPerSecond?: number;
  /** How long the fault stays on before it is undone, ms. */
  readonly holdMs: number;
  /** The step in words: `kill 2 for 340 ms`. */
  readonly text: string;
}

/** A plan: the seed, what it was drawn from, and the steps. */
export interface SchedulePlan {
  readonly seed: number;
  /** The options with the seed filled in: pass them again to replay (`check` left out). */
  readonly replay: Omit<ScheduleOptions, 'check'> & { readonly seed: number };
  readonly steps: readonly ScheduleStep[];
}

/** Something a run did, ms after it began. */
export interface ScheduleLogEntry {
  readonly at: number;
  /** The step it belongs to, or -1 for the final healing. */
  readonly step: number;
  readonly action: string;
}

/** What a finished run did. */
export interface ScheduleReport extends SchedulePlan {
  readonly log: readonly ScheduleLogEntry[];
}

/** A schedule that failed: the message names its seed, the steps run, and how to replay. */
export class ScheduleError extends ClusterWaitError {
  constructor(
    message: string,
    /** The run so far (its plan, and what it did until it failed). */
    readonly report: ScheduleReport,
    /** The step that failed, or -1 if the final healing did. */
    readonly step: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  override get name(): string {
    return 'ScheduleError';
  }
}

/**
 * xorshift32 (Marsaglia, 13/17/5) over a seed scrambled by a multiplicative
 * hash, so seeds that differ in one bit start far apart. Statistical
 * quality hardly matters here; what matters is that it is small, has no
 * dependency and gives every platform the same numbers.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    let s = Math.imul(seed ^ (seed >>> 16), 0x45d9f3b);
    s = Math.imul(s ^ (s >>> 16), 0x45d9f3b);
    s = (s ^ (s >>> 16)) >>> 0;
    this.state = s === 0 ? 0x6d2b79f5 : s;
    for (let i = 0; i < 8; i++) this.next();
  }

  /** A uint32. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** An integer in `[min, max]`. */
  int(min: number, max: number): number {
    return min + Math.floor((this.next() / 2 ** 32) * (max - min + 1));
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
}

const DEFAULTS = {
  steps: 10,
  holdMs: [200, 800],
  delayMs: [20, 100],
  bytesPerSecond: [16 * 1024, 256 * 1024],
} as const;
/** A schedule planned by `durationMs` has at most this many steps. */
const MAX_STEPS = 10_000;
const DIRECTIONS: readonly Direction[] = ['both', 'a->b', 'b->a'];
const PROCESS_FAULTS: ReadonlySet<FaultKind> = new Set(['kill', 'restart', 'pause']);

function range(name: string, r: readonly [number, number], min: number): [number, number] {
  const [lo, hi] = r;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < min || hi < lo)
    throw new RangeError(`${name} must be [min, max] integers with ${min} <= min <= max`);
  return [lo, hi];
}

/** A fresh seed for a run that was given none. */
export function randomSeed(): number {
  return randomBytes(4).readUInt32BE(0);
}

/**
 * The plan of a schedule over a cluster of `size` nodes: the same seed,
 * size and options always give the same steps.
 */
export function planSchedule(size: number, options: ScheduleOptions = {}): SchedulePlan {
  const seed = options.seed ?? randomSeed();
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32)
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  if (options.steps !== undefined && options.durationMs !== undefined)
    throw new TypeError('give steps or durationMs, not both');
  const steps = options.steps ?? (options.durationMs === undefined ? DEFAULTS.steps : undefined);
  if (steps !== undefined && (!Number.isInteger(steps) || steps < 0 || steps > MAX_STEPS))
    throw new RangeError(`steps must be an integer in [0, ${MAX_STEPS}], got ${steps}`);
  const durationMs = options.durationMs;
  if (durationMs !== undefined && (!Number.isFinite(durationMs) || durationMs < 0))
    throw new RangeError(`durationMs must be >= 0, got ${durationMs}`);
  const nodes = [...(options.nodes ?? Array.from({ length: size }, (_, i) => i))];
  for (const n of nodes) {
    if (!Number.isInteger(n) || n < 0 || n >= size)
      throw new RangeError(`no node ${n} in a cluster of ${size}`);
  }
  const kinds = [...(options.faults ?? FAULT_KINDS)];
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k))
      throw new RangeError(`unknown fault "${k}"; the kinds are ${FAULT_KINDS.join(', ')}`);
  }
  const linkFaults = kinds.some((k) => !PROCESS_FAULTS.has(k));
  if (kinds.length === 0) throw new RangeError('faults must name at least one kind');
  if (nodes.length === 0) throw new RangeError('nodes must name at least one node');
  if (linkFaults && nodes.length < 2)
    throw new RangeError('link faults need at least two nodes in nodes');
  const hold = range('holdMs', options.holdMs ?? DEFAULTS.holdMs, 0);
  const delay = range('delayMs', options.delayMs ?? DEFAULTS.delayMs, 0);
  const rate = range('bytesPerSecond', options.bytesPerSecond ?? DEFAULTS.bytesPerSecond, 1);

  const prng = new Prng(seed);
  const out: ScheduleStep[] = [];
  let planned = 0;
  while (
    steps !== undefined
      ? out.length < steps
      : planned < durationMs! && out.length < MAX_STEPS && hold[1] > 0
  ) {
    const fault = prng.pick(kinds);
    const holdMs = prng.int(hold[0], hold[1]);
    const index = out.length;
    planned += holdMs;
    if (PROCESS_FAULTS.has(fault)) {
      const node = prng.pick(nodes);
      const text =
        fault === 'restart'
          ? `restart ${node}, then ${holdMs} ms`
          : `${fault} ${node} for ${holdMs} ms`;
      out.push({ index, fault, node, holdMs, text });
      continue;
    }
    const a = prng.pick(nodes);
    const b = prng.pick(nodes.filter((n) => n !== a));
    const link: [number, number] = [a, b];
    if (fault === 'cut') {
      out.push({ index, fault, link, holdMs, text: `cut ${a}-${b} for ${holdMs} ms` });
      continue;
    }
    const direction = prng.pick(DIRECTIONS);
    const way =
      direction === 'both' ? `${a}<->${b}` : direction === 'a->b' ? `${a}->${b}` : `${b}->${a}`;
    if (fault === 'blackhole') {
      out.push({
        index,
        fault,
        link,
        direction,
        holdMs,
        text: `blackhole ${way} for ${holdMs} ms`,
      });
    } else if (fault === 'delay') {
      const delayMs = prng.int(delay[0], delay[1]);
      const text = `delay ${way} by ${delayMs} ms for ${holdMs} ms`;
      out.push({ index, fault, link, direction, delayMs, holdMs, text });
    } else {
      const bytesPerSecond = prng.int(rate[0], rate[1]);
      const text = `throttle ${way} to ${bytesPerSecond} B/s for ${holdMs} ms`;
      out.push({ index, fault, link, direction, bytesPerSecond, holdMs, text });
    }
  }
  const { check: _check, ...rest } = options;
  return { seed, replay: { ...rest, seed }, steps: out };
}

/** The verbs a schedule uses: those of a process cluster. */
export interface ScheduleTarget {
  readonly size: number;
  readonly timeoutMs: number;
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  pause(i: number): void;
  resume(i: number): void;
  cut(a: number, b: number): void;
  blackhole(a: number, b: number, options: { readonly direction?: Direction }): void;
  delay(a: number, b: number, ms: number, options: { readonly direction?: Direction }): void;
  throttle(
    a: number,
    b: number,
    options: { readonly bytesPerSecond: number; readonly direction?: Direction },
  ): void;
  heal(a?: number, b?: number): void;
  waitUntilAllUp(options: { readonly timeoutMs?: number }): Promise<void>;
}

/** How to run the plan again, for messages: `cluster.schedule({"seed":7,"steps":5})`. */
export function replayCall(plan: SchedulePlan): string {
  return `cluster.schedule(${JSON.stringify(plan.replay)})`;
}

/** Steps a failure message shows around the one that ran, and log lines. */
const PLAN_LINES = 10;
const LOG_LINES = 20;

/** The steps around `at` (all of them if few), `undefined` where some are left out. */
function window(steps: readonly ScheduleStep[], at: number): Array<ScheduleStep | undefined> {
  if (steps.length <= 2 * PLAN_LINES) return [...steps];
  const from = Math.max(0, Math.min(at - PLAN_LINES / 2, steps.length - PLAN_LINES));
  const shown: Array<ScheduleStep | undefined> = steps.slice(from, from + PLAN_LINES);
  if (from > 0) shown.unshift(undefined);
  if (from + PLAN_LINES < steps.length) shown.push(undefined);
  return shown;
}

/** The plan and the log, as failure messages show them. */
export function describeRun(report: ScheduleReport, upTo: number): string {
  const lines = [
    `fault schedule: seed ${report.seed}, ${report.steps.length} steps; replay with ${replayCall(report)}`,
    '  plan:',
    ...window(report.steps, upTo).map((s) =>
      s === undefined
        ? '      ...'
        : `    ${s.index === upTo ? '>' : ' '} ${s.index}: ${s.text}${upTo >= 0 && s.index > upTo ? ' (not run)' : ''}`,
    ),
    `  log (last ${LOG_LINES} of ${report.log.length}):`,
    ...(report.log.length === 0
      ? ['    (nothing yet)']
      : report.log.slice(-LOG_LINES).map((e) => `    +${Math.round(e.at)} ms  ${e.action}`)),
  ];
  return lines.join('\n');
}

/** A run's note for the waits' failure messages while it goes on (and after). */
export type ScheduleNote = (note: string) => void;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Carries out `plan` on `target`, one step at a time: apply the fault,
 * hold it, undo it, then (with `recover`) wait until every node sees every
 * other up, then `check`. Whatever happens, the run ends by healing every
 * link, resuming what it paused and restarting what it killed, and waits
 * until all are up. `note` is told, as the run goes, what a failure
 * message should say of it.
 */
export async function runSchedule(
  target: ScheduleTarget,
  plan: SchedulePlan,
  options: Pick<ScheduleOptions, 'recover' | 'check' | 'timeoutMs'>,
  note: ScheduleNote,
): Promise<ScheduleReport> {
  const began = performance.now();
  const log: ScheduleLogEntry[] = [];
  const report: ScheduleReport = { ...plan, log };
  const timeoutMs = options.timeoutMs ?? target.timeoutMs;
  const recover = options.recover ?? true;
  const killed = new Set<number>();
  const paused = new Set<number>();
  let current = -1;
  const did = (action: string): void => {
    log.push({ at: performance.now() - began, step: current, action });
    const where =
      current < 0 ? 'healing at the end' : `step ${current} of ${plan.steps.length} running`;
    note(`${describeRun(report, current)}\n  now: ${where}`);
  };
  const fail = (err: unknown, step: number): ScheduleError => {
    const what =
      step < 0 ? 'the final healing failed' : `step ${step} (${plan.steps[step]!.text}) failed`;
    const why = err instanceof Error ? err.message : String(err);
    return new ScheduleError(
      `fault schedule with seed ${plan.seed}: ${what}: ${why}\n${describeRun(report, step)}`,
      report,
      step,
      { cause: err },
    );
  };

  let failure: ScheduleError | undefined;
  try {
    for (const step of plan.steps) {
      current = step.index;
      try {
        await apply(step);
        await sleep(step.holdMs);
        await undo(step);
        if (recover) await target.waitUntilAllUp({ timeoutMs });
        if (options.check !== undefined) await options.check(step);
        did(`step ${step.index} done`);
      } catch (err) {
        failure = fail(err, step.index);
        break;
      }
    }
  } finally {
    current = -1;
    try {
      target.heal();
      for (const i of paused) target.resume(i);
      for (const i of killed) await target.restart(i);
      did(`healed every link${paused.size + killed.size > 0 ? ', nodes back' : ''}`);
      paused.clear();
      killed.clear();
      await target.waitUntilAllUp({ timeoutMs });
      did('all up');
    } catch (err) {
      // The first failure is the one to replay; a healing that then fails too is its cause's company.
      failure ??= fail(err, -1);
    }
  }
  note(
    `${describeRun(report, failure?.step ?? plan.steps.length)}\n  now: ` +
      (failure === undefined
        ? 'ended, healed'
        : failure.step < 0
          ? 'the final healing failed'
          : `failed at step ${failure.step}, healed`),
  );
  if (failure !== undefined) throw failure;
  return report;

  async function apply(s: ScheduleStep): Promise<void> {
    const [a, b] = s.link ?? [0, 0];
    const direction = s.direction ?? 'both';
    switch (s.fault) {
      case 'kill':
        killed.add(s.node!);
        await target.kill(s.node!);
        break;
      case 'restart':
        // Counted as killed until it is back, so a restart that fails
        // half-way is restarted again by the final healing.
        killed.add(s.node!);
        await target.restart(s.node!);
        killed.delete(s.node!);
        break;
      case 'pause':
        paused.add(s.node!);
        target.pause(s.node!);
        break;
      case 'cut':
        target.cut(a, b);
        break;
      case 'blackhole':
        target.blackhole(a, b, { direction });
        break;
      case 'delay':
        target.delay(a, b, s.delayMs!, { direction });
        break;
      case 'throttle':
        target.throttle(a, b, { bytesPerSecond: s.bytesPerSecond!, direction });
        break;
    }
    did(s.text);
  }

  async function undo(s: ScheduleStep): Promise<void> {
    switch (s.fault) {
      case 'kill':
        await target.restart(s.node!);
        killed.delete(s.node!);
        did(`restart ${s.node!}`);
        break;
      case 'restart':
        break;
      case 'pause':
        target.resume(s.node!);
        paused.delete(s.node!);
        did(`resume ${s.node!}`);
        break;
      default:
        target.heal(s.link![0], s.link![1]);
        did(`heal ${s.link![0]}-${s.link![1]}`);
    }
  }
}
