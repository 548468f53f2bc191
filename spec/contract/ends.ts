/**
 * The parent's side of the delivery-contract suite: a {@link Recorder} that
 * keeps every observation of a scenario, and the {@link End}s a check
 * drives: an agent in this process ({@link LocalEnd}) or in a child process
 * ({@link ChildEnd}), both taking the same commands and reporting into the
 * same recorder. Children are spawned ahead ({@link AgentChildren.take}
 * hands out a booted spare and starts the next), and every one is killed in
 * `cleanup()` whatever happened.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Switchboard } from '../../lib/index.js';
import { Agent } from './agent.js';
import type {
  AgentCommand,
  AgentStats,
  ChildCommand,
  ChildMessage,
  NodeOptions,
  Obs,
  ObsOf,
} from './protocol.js';
import { ChildPool, ChildProcessHandle, within } from '../support/children.js';
import type { Received } from '../support/children.js';

const PROGRAM = 'spec/contract/child-agent.ts';

/** Every observation of a scenario, with waits on them that always end. */
export class Recorder {
  readonly all: Obs[] = [];
  private readonly listeners = new Set<() => void>();
  /** Extra context for a failed wait (the children's output). */
  private readonly context: Array<() => string> = [];

  push(o: Obs): void {
    this.all.push(o);
    for (const l of [...this.listeners]) l();
  }

  /** Adds what a failed wait should print. */
  describeWith(f: () => string): void {
    this.context.push(f);
  }

  of<K extends Obs['t']>(t: K, pred: (o: ObsOf<K>) => boolean = () => true): Array<ObsOf<K>> {
    return this.all.filter((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>));
  }

  /**
   * Resolves once `cond()` holds, checked now, at each new observation and
   * every 5 ms;
   * rejects after `ms` with `what`, the recent observations and the
   * children's output.
   */
  until(cond: () => boolean, what: string, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok: boolean;
        try {
          ok = cond();
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (!ok) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${this.describe()}`));
      }, ms);
      // Also polled: a condition may read state that no observation announces (peers()).
      const poll = setInterval(check, 5);
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves with the first observation of kind `t` matching `pred` (seen already, or to come). */
  async first<K extends Obs['t']>(
    t: K,
    pred: (o: ObsOf<K>) => boolean,
    what: string,
    ms: number,
  ): Promise<ObsOf<K>> {
    let found: ObsOf<K> | undefined;
    await this.until(
      () =>
        (found = this.all.find((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>))) !==
        undefined,
      what,
      ms,
    );
    return found!;
  }

  describe(): string {
    const counts = new Map<string, number>();
    for (const o of this.all) counts.set(o.t, (counts.get(o.t) ?? 0) + 1);
    const tail = this.all
      .filter((o) => o.t !== 'take' && o.t !== 'issue' && o.t !== 'settle')
      .slice(-12)
      .map((o) => `  ${JSON.stringify(o).slice(0, 300)}`);
    return [
      `observations: ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')}`,
      ...tail,
      ...this.context.map((f) => f()),
    ].join('\n');
  }
}

/** One end of a placement: an agent with a switchboard. */
export interface End {
  readonly node: number;
  readonly label: string;
  readonly where: 'local' | 'child';
  do<T = unknown>(c: AgentCommand, timeoutMs?: number): Promise<T>;
  stats(): Promise<AgentStats>;
}

/** An agent in this process. */
export class LocalEnd implements End {
  readonly where = 'local' as const;
  readonly agent: Agent;

  constructor(
    readonly node: number,
    readonly label: string,
    recorder: Recorder,
  ) {
    this.agent = new Agent((o) => recorder.push(o));
  }

  /** The switchboard (this process only: checks read `peers()` and events from it). */
  get sb(): Switchboard {
    return this.agent.sb;
  }

  async do<T = unknown>(c: AgentCommand, timeoutMs = 10_000): Promise<T> {
    return (await within(this.agent.handle(c), timeoutMs, `${this.label}: ${c.cmd}`)) as T;
  }

  stats(): Promise<AgentStats> {
    return Promise.resolve(this.agent.stats());
  }

  /** Destroys the switchboard if a check left it open. */
  async dispose(): Promise<void> {
    if (this.agent.started) await this.agent.sb.destroy();
  }
}

/** A child process running child-agent.ts. */
export class AgentChild extends ChildProcessHandle<ChildMessage, ChildCommand> {
  /** Where its observations go (set when a scenario takes it). */
  recorder: Recorder | undefined;
  readonly journal: string;

  constructor(
    label: string,
    private readonly dir: string,
  ) {
    super(label, PROGRAM, { label });
    this.journal = join(dir, `${label}.jsonl`);
  }

  /** Waits until the program booted. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await this.waitFor((r) => (r.message.type === 'ready' ? true : undefined), 'ready', timeoutMs);
  }

  /** The takes it journaled (they survive a SIGKILL that its IPC reports may not). */
  journaled(): Array<ObsOf<'take'>> {
    let text: string;
    try {
      text = readFileSync(this.journal, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as ObsOf<'take'>);
  }

  protected override received(entry: Received<ChildMessage>): void {
    const m = entry.message;
    if (m.type === 'obs') for (const o of m.obs) this.recorder?.push(o);
  }

  get dirPath(): string {
    return this.dir;
  }
}

/** A child's end of a placement. */
export class ChildEnd implements End {
  readonly where = 'child' as const;
  readonly label: string;

  constructor(
    readonly node: number,
    readonly child: AgentChild,
  ) {
    this.label = `node ${node} (child ${child.label}, pid ${child.pid})`;
  }

  do<T = unknown>(c: AgentCommand, timeoutMs = 10_000): Promise<T> {
    return this.child.request<T>(c, timeoutMs);
  }

  stats(): Promise<AgentStats> {
    return this.do<AgentStats>({ cmd: 'stats' });
  }

  /** Starts its switchboard as `options.id`, journaling takes; resolves with its incarnation. */
  start(options: NodeOptions): Promise<string> {
    return this.do<string>({ cmd: 'start', options, journal: this.child.journal });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/**
 * The children of one spec file. `take()` hands out a child that already
 * booted (one is always being spawned ahead) so that a check rarely waits
 * for a process to start.
 */
export class AgentChildren extends ChildPool<AgentChild> {
  private spare: AgentChild | undefined;
  private n = 0;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-contract-'));

  /** A booted child, its observations going to `recorder`; another is spawned ahead. */
  async take(recorder: Recorder): Promise<AgentChild> {
    const child = this.spare ?? this.spawn();
    this.spare = this.spawn();
    await child.ready();
    child.recorder = recorder;
    recorder.describeWith(
      () =>
        `--- output of child ${child.label} (pid ${child.pid}, ${child.alive ? 'alive' : `exited ${JSON.stringify(child.exit)}`}):\n${child.outputTail}`,
    );
    return child;
  }

  private spawn(): AgentChild {
    mkdirSync(this.dir, { recursive: true });
    return this.adopt(new AgentChild(`c${++this.n}`, this.dir));
  }

  /** Kills every child, the spare included, and removes the journals. */
  override async cleanup(): Promise<void> {
    this.spare = undefined;
    await super.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
