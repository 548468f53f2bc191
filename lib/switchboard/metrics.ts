/**
 * Latency histograms and message counters of one switchboard, as
 * `stats().metrics` reports them and `sb.metrics()` renders them
 * (docs/metrics.md). The patterns record into it from a few call sites:
 * each keeps the series it records into most (a method's successes, a
 * queue's counters) in a field, so recording is a bucket index, two adds
 * and an increment, with no lookup and no allocation. Only failures look
 * their series up by error type.
 *
 * Plain channels add nothing per message here: their counters are read
 * from the endpoints themselves when a snapshot is taken (see
 * {@link Metrics.track}), because a clock read per message would cost more
 * than the rest of a local send (docs/metrics.md, "Why channels have no
 * latency histogram").
 */

/**
 * Upper bounds of the latency buckets, in seconds: OpenTelemetry's advice
 * for HTTP and RPC durations (5 ms to 10 s), extended down to 50 µs, where
 * calls between processes of one machine land. One more bucket, +Inf,
 * holds what is slower than the last.
 */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
  0.75, 1, 2.5, 5, 7.5, 10,
]);

const BOUNDS_MS = LATENCY_BUCKETS.map((s) => s * 1000);
const LAST = BOUNDS_MS.length;

/** One latency histogram: a count per bucket, their total and the sum of the values. */
export class Histogram {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts = new Float64Array(LAST + 1);
  count = 0;
  /** Sum of the observations, ms. */
  sumMs = 0;

  /** Records one duration, in ms. */
  observe(ms: number): void {
    let i = 0;
    while (i < LAST && ms > BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += ms;
  }

  snapshot(): HistogramSnapshot {
    return {
      buckets: LATENCY_BUCKETS,
      counts: Array.from(this.counts),
      count: this.count,
      sum: this.sumMs / 1000,
    };
  }
}

/** A histogram as `stats()` reports it. */
export interface HistogramSnapshot {
  /** Upper bounds, seconds ({@link LATENCY_BUCKETS}). */
  readonly buckets: readonly number[];
  /** Observations per bucket, not cumulative: `counts[i]` fell in `(buckets[i-1], buckets[i]]`; the last entry is above the last bound. */
  readonly counts: readonly number[];
  readonly count: number;
  /** Sum of the observations, seconds. */
  readonly sum: number;
}

/** RPC durations of one method and one outcome. */
export interface RpcLatency {
  /** The method name up to its last dot (a contract's name for its methods); '' when it has none. */
  readonly service: string;
  /** The method name after its last dot. */
  readonly method: string;
  /** Undefined for successes; else the error code (ERR_SB_*) or the thrown error's name. */
  readonly errorType: string | undefined;
  readonly duration: HistogramSnapshot;
}

/** Per-method serving counters, named and scaled as NATS services report them. */
export interface EndpointStats {
  /** The full method name. */
  readonly name: string;
  readonly service: string;
  readonly method: string;
  readonly num_requests: number;
  readonly num_errors: number;
  /** Total handler time, ns. */
  readonly processing_time: number;
  /** `processing_time / num_requests`, ns (0 before the first request). */
  readonly average_processing_time: number;
}

/** What a messaging count or duration is about. */
export type MessagingOperation = 'send' | 'publish' | 'push' | 'receive' | 'process';

/** Messages counted for one destination and operation. */
export interface MessageCount {
  readonly operation: MessagingOperation;
  /** Channel name, topic, subscription pattern or queue; `(anonymous)` for anonymous channels. */
  readonly destination: string;
  readonly count: number;
}

/** Durations of one messaging operation on one destination and one outcome. */
export interface MessagingLatency {
  readonly operation: MessagingOperation;
  readonly destination: string;
  readonly errorType: string | undefined;
  readonly duration: HistogramSnapshot;
}

/** `stats().metrics`. */
export interface MetricsStats {
  /** Calls made by this node, from the call until it settled, per method and outcome. */
  readonly rpcClient: readonly RpcLatency[];
  /** Handlers run by this node, from taking the request until the handler (or its stream) ended. */
  readonly rpcServer: readonly RpcLatency[];
  /** Per served method, NATS style (derived from `rpcServer`). */
  readonly endpoints: readonly EndpointStats[];
  /** Messages sent: `send` (channels), `publish` (topics), `push` (queues). */
  readonly sent: readonly MessageCount[];
  /** Messages consumed: `receive` (channels, subscriptions), `process` (tasks a worker ran). */
  readonly consumed: readonly MessageCount[];
  /** `process`: a worker's handler, per queue and outcome. */
  readonly process: readonly MessagingLatency[];
  /** `push`: from `push()` until the task was done or failed for good, per queue and outcome. */
  readonly operation: readonly MessagingLatency[];
}

/** The histograms of one RPC method, seen from one side. */
export class MethodSeries {
  readonly ok = new Histogram();
  readonly failed = new Map<string, Histogram>();
  readonly service: string;
  readonly method: string;

  constructor(readonly name: string) {
    const dot = name.lastIndexOf('.');
    this.service = dot < 0 ? '' : name.slice(0, dot);
    this.method = dot < 0 ? name : name.slice(dot + 1);
  }

  /** Records a settled call: `error` undefined for a success. */
  record(ms: number, error: unknown): void {
    if (error === undefined) {
      this.ok.observe(ms);
      return;
    }
    const type = errorType(error);
    let h = this.failed.get(type);
    if (h === undefined) this.failed.set(type, (h = new Histogram()));
    h.observe(ms);
  }
}

/** The counters and histograms of one queue (push-pull). */
export class QueueSeries {
  pushed = 0;
  processed = 0;
  readonly push = new Histogram();
  readonly pushFailed = new Map<string, Histogram>();
  readonly process = new Histogram();
  readonly processFailed = new Map<string, Histogram>();

  constructor(readonly queue: string) {}

  /** A task this node pushed is done (`error` undefined) or failed for good. */
  taskSettled(ms: number, error: unknown): void {
    observeInto(this.push, this.pushFailed, ms, error);
  }

  /** A worker of this node ran a task's handler. */
  taskProcessed(ms: number, error: unknown): void {
    this.processed++;
    observeInto(this.process, this.processFailed, ms, error);
  }
}

/** Topics counted one by one at most; publications on more are counted under `(other)`. */
export const MAX_TOPICS = 1000;
export const OTHER_TOPICS = '(other)';
export const ANONYMOUS = '(anonymous)';

/** An endpoint whose message count is read when a snapshot is taken. */
interface Tracked {
  readonly operation: MessagingOperation;
  readonly destination: string;
  /** Its count now. */
  readonly count: () => number;
  /** True once its count can no longer change. */
  readonly over: () => boolean;
}

/** Endpoints tracked at most before the ones that are over are folded into totals (bounds memory). */
const SWEEP_AT = 1024;

/** The metrics of one switchboard. */
export class Metrics {
  private readonly clients = new Map<string, MethodSeries>();
  private readonly servers = new Map<string, MethodSeries>();
  private readonly queues = new Map<string, QueueSeries>();
  private readonly topics = new Map<string, number>();
  private readonly posts = new Map<string, number>();
  private tracked: Tracked[] = [];
  /** Counts of tracked endpoints that are over, by operation and destination. */
  private readonly retired = new Map<string, number>();
  private sweepAt = SWEEP_AT;

  /** The client-side series of `method` (kept by the caller's route). */
  client(method: string): MethodSeries {
    return seriesOf(this.clients, method);
  }

  /** The server-side series of `method` (kept by the served method). */
  server(method: string): MethodSeries {
    return seriesOf(this.servers, method);
  }

  /** The series of `queue` (kept by its pushers and workers). */
  queue(queue: string): QueueSeries {
    let q = this.queues.get(queue);
    if (q === undefined) this.queues.set(queue, (q = new QueueSeries(queue)));
    return q;
  }

  /** One publication on `topic`. */
  published(topic: string): void {
    const n = this.topics.get(topic);
    if (n !== undefined) this.topics.set(topic, n + 1);
    else if (this.topics.size < MAX_TOPICS) this.topics.set(topic, 1);
    else this.topics.set(OTHER_TOPICS, (this.topics.get(OTHER_TOPICS) ?? 0) + 1);
  }

  /** One message `post()`ed to the channel `name` (sent by the switchboard's own senders). */
  posted(name: string): void {
    this.posts.set(name, (this.posts.get(name) ?? 0) + 1);
  }

  /**
   * Counts the messages of an endpoint the application made (a sender, a
   * receiver, a subscription) by reading `count()` at each snapshot; once
   * `over()`, its last count is kept in a total and the endpoint let go.
   */
  track(
    operation: MessagingOperation,
    destination: string,
    count: () => number,
    over: () => boolean,
  ): void {
    this.tracked.push({ operation, destination, count, over });
    if (this.tracked.length >= this.sweepAt) {
      this.sweep();
      this.sweepAt = Math.max(SWEEP_AT, this.tracked.length * 2);
    }
  }

  snapshot(): MetricsStats {
    this.sweep();
    const sent = new Map<string, MessageCount>();
    const consumed = new Map<string, MessageCount>();
    const add = (op: MessagingOperation, dest: string, n: number): void => {
      const into = op === 'send' || op === 'publish' || op === 'push' ? sent : consumed;
      const key = `${op}\0${dest}`;
      const c = into.get(key);
      into.set(key, { operation: op, destination: dest, count: (c?.count ?? 0) + n });
    };
    for (const [key, n] of this.retired) {
      const i = key.indexOf('\0');
      add(key.slice(0, i) as MessagingOperation, key.slice(i + 1), n);
    }
    for (const t of this.tracked) add(t.operation, t.destination, t.count());
    for (const [topic, n] of this.topics) add('publish', topic, n);
    for (const [name, n] of this.posts) add('send', name, n);
    const process: MessagingLatency[] = [];
    const operation: MessagingLatency[] = [];
    for (const q of this.queues.values()) {
      if (q.pushed > 0) add('push', q.queue, q.pushed);
      if (q.processed > 0) add('process', q.queue, q.processed);
      latencies(q.process, q.processFailed, 'process', q.queue, process);
      latencies(q.push, q.pushFailed, 'push', q.queue, operation);
    }
    const rpcServer = rpcLatencies(this.servers);
    return {
      rpcClient: rpcLatencies(this.clients),
      rpcServer,
      endpoints: [...this.servers.values()].map(endpointOf),
      sent: [...sent.values()],
      consumed: [...consumed.values()],
      process,
      operation,
    };
  }

  /** Folds the endpoints that are over into the totals. */
  private sweep(): void {
    const live: Tracked[] = [];
    for (const t of this.tracked) {
      if (!t.over()) {
        live.push(t);
        continue;
      }
      const key = `${t.operation}\0${t.destination}`;
      this.retired.set(key, (this.retired.get(key) ?? 0) + t.count());
    }
    this.tracked = live;
  }
}

/**
 * The `error.type` of a failure: a switchboard error's code (a remote
 * handler's failure: the name of the error it threw, as the server reports
 * it), else the error's name.
 */
export function errorType(error: unknown): string {
  if (typeof error !== 'object' || error === null) return typeof error;
  const e = error as { code?: unknown; name?: unknown; remoteName?: unknown };
  if (typeof e.remoteName === 'string') return e.remoteName;
  if (typeof e.code === 'string' && e.code.startsWith('ERR_SB_')) return e.code;
  return typeof e.name === 'string' && e.name !== '' ? e.name : 'Error';
}

function observeInto(
  ok: Histogram,
  failed: Map<string, Histogram>,
  ms: number,
  error: unknown,
): void {
  if (error === undefined) {
    ok.observe(ms);
    return;
  }
  const type = errorType(error);
  let h = failed.get(type);
  if (h === undefined) failed.set(type, (h = new Histogram()));
  h.observe(ms);
}

function seriesOf(map: Map<string, MethodSeries>, method: string): MethodSeries {
  let s = map.get(method);
  if (s === undefined) map.set(method, (s = new MethodSeries(method)));
  return s;
}

function rpcLatencies(map: Map<string, MethodSeries>): RpcLatency[] {
  const out: RpcLatency[] = [];
  for (const s of map.values()) {
    const base = { service: s.service, method: s.method };
    if (s.ok.count > 0) out.push({ ...base, errorType: undefined, duration: s.ok.snapshot() });
    for (const [type, h] of s.failed)
      out.push({ ...base, errorType: type, duration: h.snapshot() });
  }
  return out;
}

function latencies(
  ok: Histogram,
  failed: Map<string, Histogram>,
  operation: MessagingOperation,
  destination: string,
  out: MessagingLatency[],
): void {
  if (ok.count > 0)
    out.push({ operation, destination, errorType: undefined, duration: ok.snapshot() });
  for (const [type, h] of failed)
    out.push({ operation, destination, errorType: type, duration: h.snapshot() });
}

function endpointOf(s: MethodSeries): EndpointStats {
  let requests = s.ok.count;
  let errors = 0;
  let ms = s.ok.sumMs;
  for (const h of s.failed.values()) {
    requests += h.count;
    errors += h.count;
    ms += h.sumMs;
  }
  const ns = Math.round(ms * 1e6);
  return {
    name: s.name,
    service: s.service,
    method: s.method,
    num_requests: requests,
    num_errors: errors,
    processing_time: ns,
    average_processing_time: requests === 0 ? 0 : Math.round(ns / requests),
  };
}
