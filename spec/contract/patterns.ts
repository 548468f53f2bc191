/**
 * The per-pattern adapters of the delivery-contract suite: for each pattern,
 * how a consumer takes what a producer sends (a receiver's loop, a handler,
 * a subscription, a worker) and how a producer issues one operation (send,
 * call, publish, push, post). They run inside an {@link AdapterHost} (the
 * agent), the same code in the jest process and in a child, and report only
 * through it: the checks never look inside the library.
 *
 * Names derive from the stream id, so many streams of one pattern share a
 * cluster: `c-<stream>` for channels, `m-<stream>` for methods, `q-<stream>`
 * for queues, topic `t.<stream>`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  CallContext,
  Publisher,
  Pusher,
  Receiver,
  Sender,
  ServeHandle,
  Subscription,
  Switchboard,
  TaskContext,
} from '../../lib/index.js';
import { clock, errorInfo, isMsg } from './protocol.js';
import type {
  ConsumerSpec,
  ErrorInfo,
  Msg,
  OpKind,
  PatternId,
  ProduceSpec,
  ProducerSpec,
} from './protocol.js';

/** What an adapter reports to, and asks of, the agent that runs it. */
export interface AdapterHost {
  readonly sb: Switchboard;
  /** The application took `value` (its `q` is the sequence number); returns it. */
  take(stream: string, value: unknown, attempt: number): number;
  /** A handler or task ended. */
  handlerEnd(
    stream: string,
    seq: number,
    attempt: number,
    startedAt: number,
    ok: boolean,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
  ): void;
  /** A consumer's iteration ended. */
  ended(stream: string, done: boolean, error?: unknown): void;
  receiveError(stream: string, error: ErrorInfo): void;
  report(stream: string, error: unknown): void;
  gap(stream: string, from: number, publisher: string, missed: number): void;
  /** Runs `op` as a tracked operation; `settled` runs once it settles. */
  track(
    stream: string,
    kind: OpKind,
    seq: number,
    op: () => Promise<{ replies?: number; done?: boolean } | void>,
    settled?: () => void,
  ): void;
  /** Blocks the event loop for `ms`. */
  stall(stream: string, ms: number): void;
}

/** A consumer once set up. */
export interface ConsumerHandle {
  stats(): Record<string, unknown> | undefined;
  /** Closes the endpoint (the receiver, subscription, worker or served method). */
  close(): void;
}

/** A producer once set up. */
export interface ProducerHandle {
  /** Resolves once the producer can issue (an anonymous channel's sender arrived...). */
  readonly ready: Promise<void>;
  /** Issues operation `index` of `run` with `value`; `settled` runs once it settles. */
  issue(seq: number, value: unknown, index: number, run: ProduceSpec, settled: () => void): void;
  stats(): Record<string, unknown> | undefined;
  /** Closes the producer's own endpoint, if it has one (a sender, publisher, pusher). */
  close(): void;
}

export const channelName = (stream: string): string => `c-${stream}`;
export const methodName = (stream: string): string => `m-${stream}`;
export const queueName = (stream: string): string => `q-${stream}`;
export const topicName = (stream: string): string => `t.${stream}`;
export const handoffName = (stream: string): string => `h-${stream}`;

/** Sets up the consumer of `spec.pattern` on `host`. */
export function openConsumer(host: AdapterHost, spec: ConsumerSpec): ConsumerHandle {
  const sb = host.sb;
  const opts = {
    ...(spec.window === undefined ? {} : { window: spec.window }),
    ...(spec.capacity === undefined ? {} : { capacity: spec.capacity }),
  };
  switch (spec.pattern) {
    case 'mpsc-named':
    case 'post': {
      const r = sb.receiver<Msg>(channelName(spec.stream), opts);
      void readLoop(host, spec, r);
      return { stats: () => ({ ...r.stats() }), close: () => r.close() };
    }
    case 'mpsc-anon': {
      const [tx, r] = sb.channel<Msg>(opts);
      // The sender travels inside a message to the producer's node.
      const handoff = sb.sender<{ tx: Sender<Msg> }>(handoffName(spec.stream), {
        node: spec.producerNode,
      });
      // Not awaited: the producer's handoff receiver may not exist yet (the send waits for it).
      handoff.send({ tx }).then(
        () => handoff.close(),
        (err: unknown) => host.report(spec.stream, err),
      );
      void readLoop(host, spec, r);
      return { stats: () => ({ ...r.stats() }), close: () => r.close() };
    }
    case 'mpmc-one':
    case 'mpmc-all': {
      const r = sb.mpmcReceiver<Msg>(channelName(spec.stream), opts);
      void readLoop(host, spec, r);
      return { stats: () => ({ ...r.stats() }), close: () => r.close() };
    }
    case 'pubsub': {
      const sub = sb.subscribe<Msg>(topicName(spec.stream), {
        ...(spec.capacity === undefined ? {} : { bufferSize: spec.capacity }),
      });
      sub.gaps$.subscribe((g) => host.gap(spec.stream, g.node, g.publisher, g.missed));
      sub.errors$.subscribe((e) => host.report(spec.stream, e));
      void readLoop(host, spec, subscriptionReader(sub));
      return { stats: () => ({ ...sub.stats() }), close: () => sub.close() };
    }
    case 'push-pull': {
      const w = sb.worker<Msg>(
        queueName(spec.stream),
        async (task: Msg, ctx: TaskContext) => {
          const startedAt = clock();
          const seq = host.take(spec.stream, task, ctx.attempt);
          if (spec.stallAt === seq) host.stall(spec.stream, spec.stallMs ?? 0);
          let ok = false;
          try {
            if ((spec.work ?? 0) > 0) await sleep(spec.work);
            ok = true;
          } finally {
            host.handlerEnd(spec.stream, seq, ctx.attempt, startedAt, ok, undefined, undefined);
          }
        },
        {
          ...(spec.concurrency === undefined ? {} : { concurrency: spec.concurrency }),
          ...(spec.prefetch === undefined ? {} : { prefetch: spec.prefetch }),
        },
      );
      return { stats: () => ({ ...w.stats() }), close: () => void w.close() };
    }
    case 'rpc-unary':
    case 'rpc-server-stream':
    case 'rpc-client-stream':
    case 'rpc-bidi': {
      const handle = serveMethod(host, spec);
      return { stats: () => ({ ...sb.stats().rpc }), close: () => handle.close() };
    }
  }
}

/**
 * A pending receive on a fresh endpoint of the pattern's kind that nothing
 * is sent to: how a check gets "receives pending" on a node.
 */
export function openIdle(host: AdapterHost, pattern: PatternId, stream: string): void {
  const sb = host.sb;
  let next: () => Promise<IteratorResult<unknown>>;
  switch (pattern) {
    case 'mpsc-named':
    case 'post': {
      const r = sb.receiver<Msg>(`i-${stream}`);
      next = () => r.next();
      break;
    }
    case 'mpsc-anon': {
      // The sender is kept (and never used): the receiver waits for it.
      const [tx, r] = sb.channel<Msg>();
      idleSenders.push(tx);
      next = () => r.next();
      break;
    }
    case 'mpmc-one':
    case 'mpmc-all': {
      const r = sb.mpmcReceiver<Msg>(`i-${stream}`);
      next = () => r.next();
      break;
    }
    case 'pubsub': {
      const sub = sb.subscribe<Msg>(`t.i-${stream}`);
      next = () => sub.next();
      break;
    }
    default:
      throw new Error(`${pattern} has no receive of its own`);
  }
  host.track(stream, 'receive', -1, async () => ({ done: (await next()).done === true }));
}

const idleSenders: Array<Sender<Msg>> = [];

/** What a read loop needs of a receiver or a subscription. */
interface Readable {
  next(options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<IteratorResult<unknown>>;
}

function subscriptionReader(sub: Subscription<Msg>): Readable {
  return {
    next: async (options) => {
      const r = await sub.next(options);
      return r.done === true ? r : { done: false, value: r.value.value };
    },
  };
}

/**
 * The application of a receiving consumer: takes messages one by one (or
 * `hold` of them, then stops reading), alternating deadlines and signals on
 * its receives when `receive` is `timed`.
 */
async function readLoop(
  host: AdapterHost,
  spec: ConsumerSpec,
  r: Readable | Receiver<Msg>,
): Promise<void> {
  let taken = 0;
  const timed = spec.receive === 'timeoutMs' || spec.receive === 'signal';
  const ms = spec.receiveMs ?? 10;
  try {
    for (;;) {
      if (spec.hold !== undefined && taken >= spec.hold) return;
      let res: IteratorResult<unknown>;
      if (!timed) {
        res = await r.next();
      } else {
        try {
          res = await timedNext(r, spec.receive === 'timeoutMs', ms);
        } catch (err) {
          const info = errorInfo(err);
          if (info.code === 'ERR_SB_TIMEOUT' || info.code === 'ERR_SB_ABORTED') {
            host.receiveError(spec.stream, info);
            continue;
          }
          throw err;
        }
      }
      if (res.done === true) {
        host.ended(spec.stream, true);
        return;
      }
      const seq = host.take(spec.stream, res.value, 1);
      taken++;
      // Right after the stall the application carries on, before any timer runs.
      if (spec.stallAt === seq) host.stall(spec.stream, spec.stallMs ?? 0);
    }
  } catch (err) {
    host.ended(spec.stream, false, err);
  }
}

async function timedNext(
  r: Readable,
  byDeadline: boolean,
  ms: number,
): Promise<IteratorResult<unknown>> {
  if (byDeadline) return r.next({ timeoutMs: ms });
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('the consumer gave up')), ms);
  try {
    return await r.next({ signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** How long a deadline behaviour works when the spec gives no `work`. */
const BEHAVIOUR_MS = 250;

/**
 * Does a handler's work as its behaviour says: `ignore` and `late` wait
 * without looking at the signal (`ignore` then answers nothing, `late` a
 * reply), `honour` passes `ctx.signal` to the timer, `throw` throws its own
 * error once the signal aborts. Resolves true when the handler should reply.
 */
async function behave(spec: ConsumerSpec, ctx: CallContext): Promise<boolean> {
  const behaviour = spec.behaviour ?? 'normal';
  const work = spec.work ?? (behaviour === 'normal' ? 0 : BEHAVIOUR_MS);
  switch (behaviour) {
    case 'normal':
    case 'late':
      if (work > 0) await sleep(work);
      return true;
    case 'ignore':
      if (work > 0) await sleep(work);
      return false;
    case 'honour':
      await sleep(work, undefined, { signal: ctx.signal });
      return true;
    case 'throw': {
      const signal = ctx.signal;
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(new Error('the handler gave up'));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([sleep(work), aborted]);
      } finally {
        signal.removeEventListener('abort', onAbort!);
        aborted.catch(() => undefined);
      }
      return true;
    }
  }
}

function reply(spec: ConsumerSpec, seq: number, i: number): Msg {
  return spec.replyPad === undefined
    ? { s: spec.stream, q: seq, i }
    : { s: spec.stream, q: seq, i, pad: 'r'.repeat(spec.replyPad) };
}

/**
 * Serves the stream's method. The request (or the first item of a request
 * stream) is what the application takes; the handler's end is reported with
 * `ctx.signal`, read only then for `ignore`/`normal` (so a signal created
 * after the deadline passed is checked too).
 */
function serveMethod(host: AdapterHost, spec: ConsumerSpec): ServeHandle {
  const sb = host.sb;
  const method = methodName(spec.stream);
  const options = spec.maxConcurrent === undefined ? {} : { maxConcurrent: spec.maxConcurrent };
  const replies = spec.replies ?? 2;
  const early = spec.behaviour === 'honour' || spec.behaviour === 'throw';
  const start = (value: unknown): { seq: number; startedAt: number } => {
    const startedAt = clock();
    const seq = host.take(spec.stream, value, 1);
    if (spec.stallAt === seq) host.stall(spec.stream, spec.stallMs ?? 0);
    return { seq, startedAt };
  };
  const end = (seq: number, startedAt: number, ok: boolean, ctx: CallContext): void =>
    host.handlerEnd(spec.stream, seq, 1, startedAt, ok, ctx.signal, ctx.deadline);
  const firstItem = async (requests: AsyncIterable<unknown>): Promise<unknown> => {
    let first: unknown;
    let n = 0;
    for await (const item of requests) if (n++ === 0) first = item;
    return first;
  };
  switch (spec.pattern) {
    case 'rpc-unary':
      return sb.serve(
        method,
        async (request: unknown, ctx: CallContext) => {
          const { seq, startedAt } = start(request);
          if (early) void ctx.signal;
          let ok = false;
          try {
            const answer = await behave(spec, ctx);
            ok = true;
            return answer ? reply(spec, seq, 0) : null;
          } finally {
            end(seq, startedAt, ok, ctx);
          }
        },
        options,
      );
    case 'rpc-server-stream':
      return sb.serveStream(
        method,
        (request: unknown, ctx: CallContext) => {
          const { seq, startedAt } = start(request);
          if (early) void ctx.signal;
          return (async function* () {
            let ok = false;
            try {
              if (await behave(spec, ctx))
                for (let i = 0; i < replies; i++) yield reply(spec, seq, i);
              ok = true;
            } finally {
              end(seq, startedAt, ok, ctx);
            }
          })();
        },
        options,
      );
    case 'rpc-client-stream':
      return sb.serveClientStream(
        method,
        async (requests: AsyncIterable<unknown>, ctx: CallContext) => {
          if (early) void ctx.signal;
          const { seq, startedAt } = start(await firstItem(requests));
          let ok = false;
          try {
            const answer = await behave(spec, ctx);
            ok = true;
            return answer ? reply(spec, seq, 0) : null;
          } finally {
            end(seq, startedAt, ok, ctx);
          }
        },
        options,
      );
    case 'rpc-bidi':
      return sb.serveBidi(
        method,
        (requests: AsyncIterable<unknown>, ctx: CallContext) => {
          if (early) void ctx.signal;
          return (async function* () {
            const { seq, startedAt } = start(await firstItem(requests));
            let ok = false;
            try {
              if (await behave(spec, ctx))
                for (let i = 0; i < replies; i++) yield reply(spec, seq, i);
              ok = true;
            } finally {
              end(seq, startedAt, ok, ctx);
            }
          })();
        },
        options,
      );
    default:
      throw new Error(`not an RPC pattern: ${spec.pattern}`);
  }
}

/** Sets up the producer of `spec.pattern` on `host`. */
export function openProducer(host: AdapterHost, spec: ProducerSpec): ProducerHandle {
  const sb = host.sb;
  const stream = spec.stream;
  const senderOptions = {
    ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    ...(spec.maxPending === undefined ? {} : { maxPending: spec.maxPending }),
  };
  const watch = (tx: { errors$: Sender<Msg>['errors$'] }): void => {
    tx.errors$.subscribe((e) => host.report(stream, e));
  };
  switch (spec.pattern) {
    case 'mpsc-named':
    case 'mpmc-one':
    case 'mpmc-all': {
      const tx =
        spec.pattern === 'mpsc-named'
          ? sb.sender<unknown>(channelName(stream), { node: spec.consumerNode, ...senderOptions })
          : sb.mpmcSender<unknown>(channelName(stream), {
              mode: spec.pattern === 'mpmc-one' ? 'one' : 'all',
              ...senderOptions,
            });
      watch(tx);
      return {
        ready: Promise.resolve(),
        issue: (seq, value, _index, _run, settled) =>
          host.track(stream, 'send', seq, () => tx.send(value), settled),
        stats: () => senderStats(tx),
        close: () => tx.close(),
      };
    }
    case 'mpsc-anon':
      return anonProducer(host, spec);
    case 'rpc-unary':
    case 'rpc-server-stream':
    case 'rpc-client-stream':
    case 'rpc-bidi':
      return rpcProducer(host, spec);
    case 'pubsub': {
      const publisher: Publisher = sb.publisher();
      const topic = topicName(stream);
      return {
        // A publication goes to the subscriptions the publisher knows of.
        ready: waitUntil(
          () => publisher.subscribers(topic) > 0,
          10_000,
          `a subscriber of ${topic}`,
        ),
        issue: (seq, value, _index, _run, settled) =>
          host.track(
            stream,
            'publish',
            seq,
            () => {
              publisher.publish(topic, value);
              return Promise.resolve();
            },
            settled,
          ),
        stats: () => ({ ...publisher.stats() }),
        close: () => publisher.close(),
      };
    }
    case 'push-pull': {
      const pusher: Pusher<unknown> = sb.pusher<unknown>(queueName(stream), senderOptions);
      pusher.errors$.subscribe((e) => host.report(stream, e));
      return {
        ready: Promise.resolve(),
        issue: (seq, value, _index, _run, settled) =>
          host.track(stream, 'push', seq, () => pusher.push(value), settled),
        stats: () => ({ ...pusher.stats() }),
        close: () => void pusher.close(),
      };
    }
    case 'post':
      return {
        ready: Promise.resolve(),
        issue: (seq, value, _index, _run, settled) =>
          host.track(
            stream,
            'post',
            seq,
            () => {
              sb.post(channelName(stream), value, { node: spec.consumerNode });
              return Promise.resolve();
            },
            settled,
          ),
        stats: () => ({ drops: sb.stats().drops[channelName(stream)] ?? 0 }),
        close: () => undefined,
      };
  }
}

function senderStats(tx: Sender<unknown>): Record<string, unknown> {
  return {
    sent: tx.sent,
    dropped: tx.dropped,
    inflight: tx.inflight,
    waiting: tx.waiting,
    closed: tx.closed,
  };
}

/**
 * The producer of an anonymous channel: its senders arrive inside messages
 * on a named handoff receiver (a new one each time the consumer's node
 * starts again); each operation uses the latest.
 */
function anonProducer(host: AdapterHost, spec: ProducerSpec): ProducerHandle {
  const sb = host.sb;
  const handoff = sb.receiver<{ tx: Sender<Msg> }>(handoffName(spec.stream));
  let current: Sender<Msg> | undefined;
  let arrived!: () => void;
  const ready = new Promise<void>((resolve) => (arrived = resolve));
  void (async () => {
    for (;;) {
      const r = await handoff.next().catch(() => ({ done: true as const, value: undefined }));
      if (r.done === true) return;
      current = r.value.tx;
      current.errors$.subscribe((e) => host.report(spec.stream, e));
      arrived();
    }
  })();
  return {
    ready,
    issue: (seq, value, _index, _run, settled) => {
      const tx = current!;
      host.track(spec.stream, 'send', seq, () => tx.send(value as Msg), settled);
    },
    stats: () => (current === undefined ? undefined : senderStats(current)),
    close: () => current?.close(),
  };
}

function rpcProducer(host: AdapterHost, spec: ProducerSpec): ProducerHandle {
  const sb = host.sb;
  const method = methodName(spec.stream);
  const pattern: PatternId = spec.pattern;
  return {
    ready: Promise.resolve(),
    issue: (seq, value, index, run, settled) => {
      const timeoutMs = run.deadlines?.[index] ?? spec.timeoutMs;
      const abortMs = run.aborts?.[index];
      const ac = abortMs === undefined ? undefined : new AbortController();
      const options = {
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(spec.waitForServerMs === undefined ? {} : { waitForServerMs: spec.waitForServerMs }),
        ...(ac === undefined ? {} : { signal: ac.signal }),
      };
      const items = (): unknown[] => {
        const n = run.items ?? 2;
        if (!isMsg(value)) return [value];
        return Array.from({ length: n }, (_, i) => ({ ...value, i }));
      };
      // Armed as the call starts, after the harness noted when it was issued
      // (armed before, a pause in between made an abort look early), and
      // re-armed if it fires early by this clock: Node's timers count from
      // the event loop's cached time, which a long turn leaves behind.
      let timer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        if (ac === undefined || abortMs === undefined) return;
        const from = clock();
        const fire = (): void => {
          const left = abortMs - (clock() - from);
          if (left > 0) timer = setTimeout(fire, Math.ceil(left));
          else ac.abort(new Error('the caller gave up'));
        };
        timer = setTimeout(fire, abortMs);
      };
      const done = (): void => {
        clearTimeout(timer);
        settled();
      };
      switch (pattern) {
        case 'rpc-unary':
          host.track(
            spec.stream,
            'call',
            seq,
            () => {
              arm();
              return sb.call(method, value, options).then(() => ({}));
            },
            done,
          );
          return;
        case 'rpc-client-stream':
          host.track(
            spec.stream,
            'call',
            seq,
            () => {
              arm();
              return sb.callClientStream(method, items(), options).then(() => ({}));
            },
            done,
          );
          return;
        case 'rpc-server-stream':
        case 'rpc-bidi':
          host.track(
            spec.stream,
            'stream',
            seq,
            async () => {
              arm();
              const s =
                pattern === 'rpc-bidi'
                  ? sb.callBidi(method, items(), options)
                  : sb.callStream(method, value, options);
              let replies = 0;
              for await (const _ of s) replies++;
              return { replies };
            },
            done,
          );
          return;
        default:
          throw new Error(`not an RPC pattern: ${pattern}`);
      }
    },
    stats: () => ({ ...sb.stats().rpc }),
    close: () => undefined,
  };
}

/** Resolves once `cond()` holds, checking every 5 ms; rejects after `ms`. */
export function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      if (cond()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`${what}: not within ${ms} ms`));
      setTimeout(check, 5);
    };
    check();
  });
}
