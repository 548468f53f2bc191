/**
 * An agent: one switchboard and the consumers and producers a check puts on
 * it, driven by {@link AgentCommand}s and recording {@link Obs}ervations.
 * The same class runs in the jest process (the `same` and `tcp`
 * placements, and this side of `child`) and in a child process
 * (agent-node.ts), so a check reads the same evidence wherever an end is.
 *
 * Every operation is tracked from issue to settlement, and counted: a check
 * asserts that each settled exactly once. Takes are also appended to a
 * journal file synchronously when the agent has one, so that what a node
 * took is known even when it is killed with its IPC reports still in the
 * pipe.
 */
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Switchboard } from '../../lib/index.js';
import type { SwitchboardEvent } from '../../lib/index.js';
import { openConsumer, openIdle, openProducer } from './patterns.js';
import type { AdapterHost, ConsumerHandle, ProducerHandle } from './patterns.js';
import { badValue, clock, errorInfo, isMsg } from './protocol.js';
import type {
  AgentCommand,
  AgentStats,
  ErrorInfo,
  Msg,
  NodeOptions,
  Obs,
  OpKind,
  PatternId,
  ProduceSpec,
  StreamStats,
} from './protocol.js';

/** `Obs` without the fields the agent fills in. */
type DraftOf<O> = O extends unknown ? Omit<O, 'at' | 'node' | 'inc'> : never;
type Draft = DraftOf<Obs>;

export class Agent implements AdapterHost {
  private switchboard: Switchboard | undefined;
  private readonly consumers = new Map<string, { pattern: PatternId; h: ConsumerHandle }>();
  private readonly producers = new Map<
    string,
    { pattern: PatternId; consumerNode: number; h: ProducerHandle }
  >();
  private readonly down = new Set<number>();
  private journal: string | undefined;
  private nextOp = 1;
  private pending = 0;
  private idleWaiters: Array<() => void> = [];

  /** @param out where observations go (a recorder, or the IPC channel). */
  constructor(private readonly out: (o: Obs) => void) {}

  get sb(): Switchboard {
    if (this.switchboard === undefined) throw new Error('agent: no switchboard started');
    return this.switchboard;
  }

  /** True once started. */
  get started(): boolean {
    return this.switchboard !== undefined;
  }

  /** Operations issued and not settled. */
  get unsettled(): number {
    return this.pending;
  }

  async handle(c: AgentCommand): Promise<unknown> {
    switch (c.cmd) {
      case 'start':
        return this.start(c.options, c.journal);
      case 'rendezvous':
        await this.sb.rendezvous({ timeoutMs: c.timeoutMs });
        return null;
      case 'consumer': {
        const h = openConsumer(this, c.spec);
        this.consumers.set(c.spec.stream, { pattern: c.spec.pattern, h });
        return null;
      }
      case 'producer': {
        const h = openProducer(this, c.spec);
        this.producers.set(c.spec.stream, {
          pattern: c.spec.pattern,
          consumerNode: c.spec.consumerNode,
          h,
        });
        return null;
      }
      case 'produce':
        await this.produce(c.spec);
        return null;
      case 'idle':
        openIdle(this, c.pattern, c.stream);
        return null;
      case 'close-consumer': {
        const consumer = this.consumers.get(c.stream);
        if (consumer === undefined) throw new Error(`agent: no consumer ${c.stream}`);
        consumer.h.close();
        return null;
      }
      case 'close-producer': {
        const producer = this.producers.get(c.stream);
        if (producer === undefined) throw new Error(`agent: no producer ${c.stream}`);
        producer.h.close();
        return null;
      }
      case 'close':
        return this.close(c.how);
      case 'stats':
        return this.stats();
      case 'peers':
        return this.sb
          .peers()
          .map((p) => ({ node: p.node, state: p.state, incarnation: p.incarnation }));
    }
  }

  /** Starts the switchboard; resolves with its incarnation. */
  async start(options: NodeOptions, journal?: string): Promise<string> {
    const { nodes, id, secret, ...rest } = options;
    return this.attach(await Switchboard.start({ nodes, id, secret, ...rest }), journal);
  }

  /**
   * Takes a switchboard started elsewhere (by switchboard/testing, for a
   * node of a kit cluster) as its own, right after its start; returns its
   * incarnation.
   */
  attach(sb: Switchboard, journal?: string): string {
    this.journal = journal;
    this.switchboard = sb;
    sb.events$.subscribe((e) => this.event(e));
    return sb.incarnation;
  }

  /**
   * Starts a run of operations and resolves once the producer is ready and
   * the run has begun; the run goes on in the background and ends with a
   * `produced` observation.
   */
  async produce(spec: ProduceSpec): Promise<void> {
    const p = this.producers.get(spec.stream);
    if (p === undefined) throw new Error(`agent: no producer ${spec.stream}`);
    await p.h.ready;
    void this.run(spec, p);
  }

  private async run(
    spec: ProduceSpec,
    p: { consumerNode: number; h: ProducerHandle },
  ): Promise<void> {
    let outstanding = 0;
    let wake: (() => void) | undefined;
    let issued = 0;
    for (let k = 0; k < spec.count; k++) {
      if (spec.stopOnPeerDown === true && this.down.has(p.consumerNode)) break;
      while (outstanding >= spec.concurrency) await new Promise<void>((r) => (wake = r));
      if (spec.stopOnPeerDown === true && this.down.has(p.consumerNode)) break;
      const gap = spec.gaps?.[k];
      if (gap !== undefined && gap > 0) await sleep(gap);
      const seq = spec.from + k;
      outstanding++;
      issued++;
      p.h.issue(seq, this.value(spec, seq), k, spec, () => {
        outstanding--;
        const w = wake;
        wake = undefined;
        w?.();
      });
      // Right after the stall the application carries on issuing.
      if (spec.stallAt === seq) this.stall(spec.stream, spec.stallMs ?? 0);
    }
    this.emit({ t: 'produced', stream: spec.stream, issued });
  }

  private value(spec: ProduceSpec, seq: number): unknown {
    const v = spec.value ?? { kind: 'msg' };
    if (v.kind === 'bad') return badValue(v.bad);
    const m: Msg =
      v.pad === undefined
        ? { s: spec.stream, q: seq }
        : { s: spec.stream, q: seq, pad: 'x'.repeat(v.pad) };
    return m;
  }

  /** Closes or destroys the switchboard, then waits (briefly) for the operations to settle. */
  async close(how: 'close' | 'destroy'): Promise<AgentStats> {
    const startedAt = clock();
    this.emit({ t: 'closing', how });
    if (how === 'close') await this.sb.close();
    else await this.sb.destroy(new Error('contract: destroyed'));
    this.emit({ t: 'closed', how, startedAt });
    await this.settledOr(1_500);
    const stats = this.stats();
    this.emit({ t: 'final', stats, unsettled: this.pending });
    return stats;
  }

  /** Resolves once no tracked operation is pending, or after `ms`. */
  private settledOr(ms: number): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.idleWaiters.push(done);
    });
  }

  stats(): AgentStats {
    const sb = this.sb;
    const streams: StreamStats[] = [];
    for (const [stream, c] of this.consumers)
      streams.push({
        stream,
        pattern: c.pattern,
        role: 'consumer',
        stats: safe(() => c.h.stats()),
      });
    for (const [stream, p] of this.producers)
      streams.push({
        stream,
        pattern: p.pattern,
        role: 'producer',
        stats: safe(() => p.h.stats()),
      });
    return {
      node: sb.id,
      incarnation: sb.incarnation,
      drops: safe(() => sb.stats().drops) ?? {},
      streams,
      peers: sb.peers().map((p) => ({ node: p.node, state: p.state, incarnation: p.incarnation })),
    };
  }

  // ---- AdapterHost ---------------------------------------------------------

  take(stream: string, value: unknown, attempt: number): number {
    const ok = isMsg(value) && value.s === stream;
    const seq = ok ? value.q : -1;
    const obs = this.stamp({
      t: 'take',
      stream,
      seq,
      attempt,
      ...(ok ? {} : { foreign: describe(value) }),
    });
    if (this.journal !== undefined) appendFileSync(this.journal, `${JSON.stringify(obs)}\n`);
    this.out(obs);
    return seq;
  }

  handlerEnd(
    stream: string,
    seq: number,
    attempt: number,
    startedAt: number,
    ok: boolean,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
  ): void {
    const aborted = signal?.aborted === true;
    const reason: unknown = aborted ? signal.reason : undefined;
    const code = (reason as { code?: unknown } | undefined)?.code;
    this.emit({
      t: 'handler',
      stream,
      seq,
      attempt,
      startedAt,
      ok,
      aborted,
      reason: aborted
        ? typeof code === 'string'
          ? code
          : `(not a code: ${String(reason)})`
        : undefined,
      deadline,
    });
  }

  ended(stream: string, done: boolean, error?: unknown): void {
    this.emit(
      error === undefined
        ? { t: 'end', stream, done }
        : { t: 'end', stream, done, error: errorInfo(error) },
    );
  }

  receiveError(stream: string, error: ErrorInfo): void {
    this.emit({ t: 'receive-error', stream, error });
  }

  report(stream: string, error: unknown): void {
    this.emit({ t: 'report', stream, error: errorInfo(error) });
  }

  gap(stream: string, from: number, publisher: string, missed: number): void {
    this.emit({ t: 'gap', stream, from, publisher, missed });
  }

  track(
    stream: string,
    kind: OpKind,
    seq: number,
    op: () => Promise<{ replies?: number; done?: boolean } | void>,
    settled?: () => void,
  ): void {
    const id = this.nextOp++;
    const issuedAt = clock();
    this.emit({ t: 'issue', stream, op: id, kind, seq });
    this.pending++;
    let count = 0;
    const finish = (draft: {
      ok: boolean;
      error?: ErrorInfo;
      done?: boolean;
      threw?: boolean;
      replies?: number;
    }): void => {
      count++;
      if (count === 1) this.pending--;
      this.emit({ t: 'settle', stream, op: id, kind, seq, issuedAt, count, ...draft });
      if (count === 1) {
        settled?.();
        if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
      }
    };
    let promise: Promise<{ replies?: number; done?: boolean } | void>;
    try {
      promise = op();
    } catch (err) {
      finish({ ok: false, threw: true, error: errorInfo(err) });
      return;
    }
    promise.then(
      (r) =>
        finish({
          ok: true,
          ...(r?.done === undefined ? {} : { done: r.done }),
          ...(r?.replies === undefined ? {} : { replies: r.replies }),
        }),
      (err: unknown) => finish({ ok: false, error: errorInfo(err) }),
    );
  }

  stall(stream: string, ms: number): void {
    const from = clock();
    while (clock() - from < ms) {
      // Busy: the event loop runs nothing meanwhile.
    }
    this.emit({ t: 'stalled', stream, from });
  }

  // ---- internals -------------------------------------------------------------

  private event(e: SwitchboardEvent): void {
    switch (e.type) {
      case 'peer-down':
        this.down.add(e.node);
        this.emit({ t: 'event', type: e.type, peer: e.node, error: errorInfo(e.error) });
        return;
      case 'peer-up':
      case 'peer-restarted':
        this.down.delete(e.node);
        this.emit({ t: 'event', type: e.type, peer: e.node, incarnation: e.incarnation });
        return;
      case 'peer-suspect':
        this.emit({ t: 'event', type: e.type, peer: e.node, reason: e.reason });
        return;
      case 'peer-reconnected':
        this.emit({ t: 'event', type: e.type, peer: e.node });
        return;
      case 'link-error':
      case 'auth-failure':
        this.emit({
          t: 'event',
          type: e.type,
          ...(e.node === undefined ? {} : { peer: e.node }),
          error: errorInfo(e.error),
        });
        return;
      case 'drop':
        this.emit({
          t: 'event',
          type: e.type,
          channel: e.channel,
          count: e.count,
          reason: e.reason,
        });
        return;
      case 'error':
        this.emit({ t: 'event', type: e.type, error: errorInfo(e.error) });
        return;
    }
  }

  emit(draft: Draft): void {
    this.out(this.stamp(draft));
  }

  private stamp(draft: Draft): Obs {
    const sb = this.switchboard;
    return { ...draft, at: clock(), node: sb?.id ?? -1, inc: sb?.incarnation ?? '' };
  }
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

function describe(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 120) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
