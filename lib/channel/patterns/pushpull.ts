/**
 * Push-pull (work queues), built on channels.
 *
 * - A worker is a receiver with flow control (`block`), holding at most
 *   `concurrency` running tasks plus `prefetch` buffered ones, announced in
 *   the directory under kind {@link PUSHPULL_KIND} with the queue name.
 * - A pusher keeps one stream per worker of its queue and hands each task to
 *   the least-loaded worker (fewest of this pusher's unacknowledged tasks per
 *   slot) among those with credit; `push()` resolves once a worker's window
 *   took the task. A task is done when its worker acknowledges it: the
 *   handler resolved (acknowledgements are batched per event-loop turn).
 * - The pusher keeps every task until it is acknowledged. Tasks held by a
 *   worker whose node's session ends are handed to another worker; tasks a
 *   worker had not started when it closed go back at once. Delivery is
 *   therefore **at least once**: after a node loss a task may run twice (it
 *   may have run there before the loss was seen). Handlers should be
 *   idempotent or deduplicate by `ctx.id` and `ctx.from`. A pusher's own death
 *   loses the tasks it had not seen acknowledged.
 * - A handler that throws or rejects fails that attempt. The task is handed
 *   out again up to {@link PusherOptions.retries} times (default 0: a failing
 *   task is likely to fail anywhere), then reported on the pusher's `errors$`
 *   as a {@link TaskError} carrying the task and the remote error. The
 *   worker also reports the error on its own `errors$`.
 */
import { Subject } from 'rxjs';
import type { Observable, Subscription as RxSubscription } from 'rxjs';
import {
  DecodeError,
  ErrorCode,
  NotDeliveredError,
  OptionError,
  RemoteError,
  SwitchboardError,
} from '../../errors.js';
import { decodeValue, encodeValue } from '../../protocol/codec.js';
import type { SwitchboardEvent } from '../../switchboard/cluster.js';
import type { ChannelHub, DirectoryEntry } from '../hub.js';
import type { Receiver } from '../receiver.js';
import { Ring } from '../ring.js';
import { validateSync } from '../schema.js';
import type { StandardSchemaV1 } from '../schema.js';
import { Sender } from '../sender.js';

/** Directory kind of workers; the entry's name is the queue, its meta `{ c, p }` (concurrency, prefetch). */
export const PUSHPULL_KIND = 'pushpull';

/** Pushers a worker gives a full credit window at once; more wait for its buffer to drain. */
const WORKER_PUSHERS = 64;
/** Bytes of tasks one pusher may have in a worker's window (a larger task still goes, alone). */
const TASK_WINDOW_BYTES = 128 * 1024;
/** Acknowledgement batches (one per worker per event-loop turn) a worker may have in flight. */
const ACK_WINDOW = 16;
const ACK_WINDOW_BYTES = 64 * 1024;
/** Workers whose acknowledgements a pusher takes at once without one waiting on another's credit. */
const ACK_SENDERS = 1024;

/** What a handler learns about the task it runs. */
export interface TaskContext {
  /** The queue name. */
  readonly queue: string;
  /** The task's id, unique per pusher (with `from`). */
  readonly id: number;
  /** The node of the pusher. */
  readonly from: number;
  /** 1 the first time the task is handed out; more after a retry or a redelivery (it may have run before). */
  readonly attempt: number;
}

/** Runs one task; the task is done when it returns or its promise resolves. */
export type TaskHandler<T> = (task: T, ctx: TaskContext) => unknown;

/** Options of a worker. */
export interface WorkerOptions<T> {
  /** Tasks run at once. Default 1. */
  readonly concurrency?: number;
  /**
   * Tasks buffered per pusher beyond those running, so the next starts
   * without a round trip (the credit window each pusher gets). Default
   * `concurrency`.
   */
  readonly prefetch?: number;
  /** Validator (Standard Schema); a refused task fails (no handler call) and is reported on `errors$`. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** Options of a pusher. Times in ms. */
export interface PusherOptions<T> {
  /** How long `push()` may wait for a worker's window before failing with ERR_SB_TIMEOUT. Default 30000. */
  readonly timeoutMs?: number;
  /** Pushes waiting for a window at most; more fail at once with ERR_SB_OVERFLOW. Default 1024. */
  readonly maxPending?: number;
  /** Times a task whose handler failed is handed out again before it is reported failed. Default 0. */
  readonly retries?: number;
  /** Validator (Standard Schema) applied in `push()`. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** Options of one `push`. */
export interface PushOptions {
  /** Overrides the pusher's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Aborts the wait for a window (ERR_SB_ABORTED); a task already handed out is not recalled. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_WORKER_OPTIONS = Object.freeze({ concurrency: 1 });
export const DEFAULT_PUSHER_OPTIONS = Object.freeze({
  timeoutMs: 30_000,
  maxPending: 1024,
  retries: 0,
});

/** Counters of a worker. */
export interface WorkerStats {
  readonly queue: string;
  readonly running: number;
  readonly queued: number;
  readonly completed: number;
  readonly failed: number;
}

/** Counters of a pusher. */
export interface PusherStats {
  readonly queue: string;
  /** Tasks accepted by `push()`. */
  readonly pushed: number;
  /** Tasks waiting for a worker (new, retried or redelivered). */
  readonly waiting: number;
  /** Tasks held by workers, not yet acknowledged. */
  readonly inFlight: number;
  readonly completed: number;
  /** Tasks that failed for good (reported on `errors$`). */
  readonly failed: number;
  /** Tasks handed out again after their worker's node went away or it closed. */
  readonly redelivered: number;
  /** Attempts retried after a handler failure. */
  readonly retried: number;
  /** Workers with an open stream. */
  readonly workers: number;
}

/** A task whose handler failed on its last allowed attempt. */
export class TaskError<T = unknown> extends RemoteError {
  constructor(
    node: number,
    remoteName: string,
    message: string,
    remoteCode: string | undefined,
    /** The task as pushed. */
    readonly task: T,
    /** Handler attempts made. */
    readonly attempts: number,
  ) {
    super(node, remoteName, message, remoteCode);
  }
}

// ---- wire form -----------------------------------------------------------------

/**
 * A task on the wire: kind (1 CBOR, 2 raw bytes), pusher node u16, ack
 * receiver id u32, task id u48, attempt u16, then the body. Locally the
 * same fields travel as an object.
 */
const TASK_CBOR = 1;
const TASK_RAW = 2;
const TASK_HEADER = 15;

interface TaskMessage {
  readonly from: number;
  readonly ack: number;
  readonly id: number;
  readonly attempt: number;
  readonly task: unknown;
}

function isTaskMessage(v: unknown): v is TaskMessage {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Record<string, unknown>;
  return ['from', 'ack', 'id', 'attempt'].every((k) => Number.isSafeInteger(m[k]));
}

/** Acknowledgements due to one pusher, sent once per event-loop turn. */
interface AckBatch {
  readonly from: number;
  readonly ack: number;
  readonly done: number[];
  readonly failed: Failure[];
}

/** Acknowledgements: `[done ids, failures as [id, name, message, code | null]]`. */
type Failure = [number, string, string, string | null];
type AckMessage = [number[], Failure[]];

function encodeTask(m: TaskMessage, body: Uint8Array, raw: boolean): Buffer {
  const out = Buffer.allocUnsafe(TASK_HEADER + body.length);
  // Byte by byte: Buffer's checked writers cost more than the rest of the header.
  const { from, ack, id } = m;
  const attempt = Math.min(m.attempt, 0xffff);
  const high = Math.floor(id / 0x1_0000_0000);
  out[0] = raw ? TASK_RAW : TASK_CBOR;
  out[1] = from >>> 8;
  out[2] = from;
  out[3] = ack >>> 24;
  out[4] = ack >>> 16;
  out[5] = ack >>> 8;
  out[6] = ack;
  out[7] = high >>> 8;
  out[8] = high;
  out[9] = id >>> 24;
  out[10] = id >>> 16;
  out[11] = id >>> 8;
  out[12] = id;
  out[13] = attempt >>> 8;
  out[14] = attempt;
  out.set(body, TASK_HEADER);
  return out;
}

/** A task as a worker runs it: its context, and where to acknowledge it. */
interface Job extends TaskContext {
  /** The pusher's acknowledgement receiver (on node `from`). */
  readonly ack: number;
}

/** The header of a task on the wire, or undefined when malformed. */
function taskHeader(b: Uint8Array, queue: string): Job | undefined {
  if (b.length < TASK_HEADER || (b[0] !== TASK_CBOR && b[0] !== TASK_RAW)) return undefined;
  return {
    queue,
    from: (b[1]! << 8) | b[2]!,
    ack: ((b[3]! << 24) | (b[4]! << 16) | (b[5]! << 8) | b[6]!) >>> 0,
    id:
      ((b[7]! << 8) | b[8]!) * 0x1_0000_0000 +
      (((b[9]! << 24) | (b[10]! << 16) | (b[11]! << 8) | b[12]!) >>> 0),
    attempt: (b[13]! << 8) | b[14]!,
  };
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.length);
}

function taskId(message: unknown): number | undefined {
  if (message instanceof Uint8Array) return taskHeader(message, '')?.id;
  const id = (message as Partial<TaskMessage> | undefined)?.id;
  return typeof id === 'number' ? id : undefined;
}

function positiveInt(value: number, name: string, min = 1): number {
  if (!Number.isInteger(value) || value < min)
    throw new OptionError(name, `must be an integer >= ${min}`);
  return value;
}

// ---- workers -------------------------------------------------------------------

/**
 * Takes tasks of one queue and runs them, `concurrency` at a time. Created
 * with `switchboard.worker(name, handler, options)`.
 */
export class Worker<T> {
  /** Handler failures (the thrown error) and tasks that could not be decoded or validated. */
  readonly errors$: Observable<Error>;
  private readonly errorSubject = new Subject<Error>();
  private readonly receiver: Receiver<unknown>;
  private readonly concurrency: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly acks = new Map<string, AckBatch>();
  private lastBatch: AckBatch | undefined;
  private readonly ackSenders = new Map<string, Sender<AckMessage>>();
  private readonly sending = new Set<Promise<void>>();
  private flushScheduled = false;
  private running = 0;
  private completed = 0;
  private failed = 0;
  private slotFree: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private closePromise: Promise<void> | undefined;
  private readonly flushNow = (): void => this.flushAcks();

  /** @internal Created by {@link PushPull.worker}. */
  constructor(
    private readonly hub: ChannelHub,
    /** The queue this worker serves. */
    readonly queue: string,
    private readonly handler: TaskHandler<T>,
    options: WorkerOptions<T> = {},
  ) {
    if (typeof queue !== 'string' || queue.length === 0)
      throw new OptionError('name', 'must be a non-empty string');
    if (typeof handler !== 'function') throw new OptionError('handler', 'must be a function');
    this.concurrency = positiveInt(
      options.concurrency ?? DEFAULT_WORKER_OPTIONS.concurrency,
      'concurrency',
    );
    const prefetch = positiveInt(options.prefetch ?? this.concurrency, 'prefetch');
    this.schema = options.schema;
    this.errors$ = this.errorSubject.asObservable();
    this.receiver = hub.receiver<unknown>(undefined, {
      // Credit a pusher holds but does not use is lost to the others: room
      // for WORKER_PUSHERS full windows keeps an idle pusher from starving a busy one.
      capacity: prefetch * WORKER_PUSHERS,
      window: prefetch,
      capacityBytes: TASK_WINDOW_BYTES * WORKER_PUSHERS,
      windowBytes: TASK_WINDOW_BYTES,
      overflow: 'block',
    });
    hub.announce(PUSHPULL_KIND, queue, this.receiver.id, { c: this.concurrency, p: prefetch });
    void this.run();
  }

  /** True once closing or closed. */
  get closed(): boolean {
    return this.closePromise !== undefined || this.receiver.closed;
  }

  /** A snapshot of the counters. */
  stats(): WorkerStats {
    return {
      queue: this.queue,
      running: this.running,
      queued: this.receiver.queued,
      completed: this.completed,
      failed: this.failed,
    };
  }

  /**
   * Stops taking tasks: pushers stop choosing this worker and take back
   * those it had not started; running tasks finish and are acknowledged.
   * Resolves once they are. Idempotent.
   */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    // Closing the receiver withdraws the directory entry and hands buffered
    // tasks back to their pushers (as not delivered), before any ack below.
    this.receiver.close();
    this.slotFree?.();
    if (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.flushAcks();
    await Promise.all([...this.sending]);
    this.errorSubject.complete();
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.running >= this.concurrency) {
        await new Promise<void>((resolve) => (this.slotFree = resolve));
        this.slotFree = undefined;
        continue;
      }
      let r: IteratorResult<unknown>;
      try {
        r = await this.receiver.next();
      } catch {
        break;
      }
      if (r.done === true) break;
      this.start(r.value);
    }
  }

  private start(v: unknown): void {
    let job: Job;
    let task: unknown;
    if (v instanceof Uint8Array) {
      const h = taskHeader(v, this.queue);
      if (h === undefined) {
        this.errorSubject.next(new DecodeError(`worker ${this.queue}: malformed task header`));
        return;
      }
      job = h;
      try {
        const body = asBuffer(v).subarray(TASK_HEADER);
        task = v[0] === TASK_RAW ? body : decodeValue(body, this.hub);
      } catch (err) {
        this.fail(job, err);
        return;
      }
    } else {
      // An in-process task arrives as the object itself; anything else a
      // peer might send is refused here, never allowed to throw.
      if (!isTaskMessage(v)) {
        this.errorSubject.next(new DecodeError(`worker ${this.queue}: malformed task`));
        return;
      }
      job = { queue: this.queue, from: v.from, ack: v.ack, id: v.id, attempt: v.attempt };
      task = v.task;
    }
    if (this.schema !== undefined) {
      try {
        task = validateSync(this.schema, task, `worker ${this.queue}`);
      } catch (err) {
        this.fail(job, err);
        return;
      }
    }
    this.running++;
    let result: unknown;
    try {
      // The job is the context: one object per task (its extra `ack` is typed away).
      result = this.handler(task as T, job);
    } catch (err) {
      this.finished(job, err, true);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        () => this.finished(job, undefined, false),
        (err: unknown) => this.finished(job, err, true),
      );
    } else {
      this.finished(job, undefined, false);
    }
  }

  private finished(m: Job, err: unknown, failed: boolean): void {
    this.running--;
    if (failed) this.fail(m, err);
    else {
      this.completed++;
      this.batch(m).done.push(m.id);
    }
    this.slotFree?.();
    if (this.running === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private fail(m: Job, err: unknown): void {
    this.failed++;
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (e as { code?: unknown }).code;
    this.batch(m).failed.push([m.id, e.name, e.message, typeof code === 'string' ? code : null]);
    this.errorSubject.next(e);
  }

  private batch(m: Job): AckBatch {
    // Tasks come in runs from one pusher: skip the key and the lookup for those.
    const last = this.lastBatch;
    if (last !== undefined && last.from === m.from && last.ack === m.ack) return last;
    const key = `${m.from}:${m.ack}`;
    let b = this.acks.get(key);
    if (b === undefined)
      this.acks.set(key, (b = { from: m.from, ack: m.ack, done: [], failed: [] }));
    this.lastBatch = b;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
    return b;
  }

  private flushAcks(): void {
    this.flushScheduled = false;
    this.lastBatch = undefined;
    for (const [key, b] of this.acks) {
      let s = this.ackSenders.get(key);
      if (s === undefined) {
        try {
          s = this.hub.sender<AckMessage>(
            { node: b.from, id: b.ack },
            { timeoutMs: Number.POSITIVE_INFINITY, maxPending: 1 << 16 },
          );
        } catch {
          continue; // the switchboard closed (or a bad node id): nobody to tell
        }
        this.ackSenders.set(key, s);
      }
      // A pusher that went away loses its acknowledgements: nobody is left to want them.
      const p = s.send([b.done, b.failed]).catch(() => undefined);
      this.sending.add(p);
      void p.finally(() => this.sending.delete(p));
    }
    this.acks.clear();
    for (const [key, s] of this.ackSenders) if (s.closed) this.ackSenders.delete(key);
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

// ---- pushers -------------------------------------------------------------------

interface Task {
  readonly id: number;
  readonly value: unknown;
  /** The value's CBOR (or raw bytes), made at the first remote hand-out. */
  body: Uint8Array | undefined;
  raw: boolean;
  attempt: number;
  failures: number;
  slot: WorkerSlot | undefined;
  resolve: (() => void) | undefined;
  reject: ((e: unknown) => void) | undefined;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** The stream from one pusher to one worker, and the tasks it holds there. */
class WorkerSlot extends Sender<unknown> {
  readonly assigned = new Set<Task>();
  /** The worker withdrew (closing) or failed: no new tasks. */
  retired = false;

  constructor(
    hub: ChannelHub,
    readonly key: string,
    readonly node: number,
    readonly receiverId: number,
    /** Tasks it holds at most (running plus prefetched): the load denominator. */
    readonly capacity: number,
    private readonly owner: Pusher<unknown>,
  ) {
    super(hub, { kind: 'mpsc', node, id: receiverId }, 'single', {
      timeoutMs: Number.POSITIVE_INFINITY,
    });
  }

  /** True when a task sent now goes straight into the worker's window. */
  canTake(): boolean {
    const o = this.outlets[0];
    return (
      !this.retired &&
      !this.closed &&
      o !== undefined &&
      o.state === 'open' &&
      o.credit > 0 &&
      o.creditBytes > 0 &&
      this.waiting === 0 &&
      o.ready()
    );
  }

  override pump(): void {
    super.pump();
    this.owner.dispatch();
  }

  /** Tasks sent but never taken by the worker (it closed, or its node went away). */
  override undelivered(messages: unknown[]): void {
    this.owner.returned(this, messages);
  }

  override fail(error: SwitchboardError): void {
    super.fail(error);
    this.owner.slotFailed(this, error);
  }
}

/**
 * Hands tasks of one queue to its workers across the cluster. Created with
 * `switchboard.pusher(name, options)`; `switchboard.push(name, task)` uses
 * one per queue.
 */
export class Pusher<T> {
  /** Tasks that failed for good ({@link TaskError}) or were lost with this switchboard. */
  readonly errors$: Observable<SwitchboardError>;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly tasks = new Map<number, Task>();
  private readonly fresh = new Ring<Task>(16);
  private readonly retry = new Ring<Task>(16);
  private readonly slots = new Map<string, WorkerSlot>();
  private slotList: WorkerSlot[] = [];
  /** Slots whose worker closed while running tasks of ours: their acks are still due. */
  private readonly draining = new Set<WorkerSlot>();
  private readonly ackReceiver: Receiver<unknown>;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly retries: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly unwatch: () => void;
  private readonly eventsSub: RxSubscription;
  private nextId = 1;
  private rr = 0;
  private dispatching = false;
  private again = false;
  private closing = false;
  private done = false;
  private settleWaiters: Array<() => void> = [];
  private counts = { pushed: 0, completed: 0, failed: 0, redelivered: 0, retried: 0 };

  /** @internal Created by {@link PushPull.pusher}. */
  constructor(
    private readonly hub: ChannelHub,
    events$: Observable<SwitchboardEvent>,
    /** The queue this pusher feeds. */
    readonly queue: string,
    options: PusherOptions<T> = {},
  ) {
    if (typeof queue !== 'string' || queue.length === 0)
      throw new OptionError('name', 'must be a non-empty string');
    const d = DEFAULT_PUSHER_OPTIONS;
    this.timeoutMs = options.timeoutMs ?? d.timeoutMs;
    if (!(this.timeoutMs > 0)) throw new OptionError('timeoutMs', 'must be a positive number');
    this.maxPending = positiveInt(options.maxPending ?? d.maxPending, 'maxPending');
    this.retries = positiveInt(options.retries ?? d.retries, 'retries', 0);
    this.schema = options.schema;
    this.errors$ = this.errorSubject.asObservable();
    // Consumed synchronously, so nothing waits in it; small windows, so that
    // many workers' ack streams each get credit.
    this.ackReceiver = hub.receiver<unknown>(undefined, {
      capacity: ACK_WINDOW * ACK_SENDERS,
      window: ACK_WINDOW,
      capacityBytes: ACK_WINDOW_BYTES * ACK_SENDERS,
      windowBytes: ACK_WINDOW_BYTES,
    });
    this.ackReceiver.observable().subscribe({
      next: (m) => this.onAck(m),
      error: () => this.shutdown(),
      complete: () => this.shutdown(),
    });
    this.eventsSub = events$.subscribe((e) => {
      if (e.type === 'peer-down' || e.type === 'peer-restarted') this.nodeLost(e.node);
    });
    this.unwatch = hub.watch(PUSHPULL_KIND, queue, () => this.refresh());
    this.refresh();
  }

  /**
   * Hands `task` to the least-loaded worker with room. Resolves once a
   * worker's window took it (at once when one has room); the task is then
   * kept until acknowledged and handed out again if its worker's node goes
   * away. Rejects with ERR_SB_TIMEOUT (no worker had room in time),
   * ERR_SB_ABORTED, ERR_SB_OVERFLOW (`maxPending` pushes already waiting),
   * ERR_SB_VALIDATION, ERR_SB_ENCODE, or ERR_SB_CLOSED.
   */
  push(task: T, options?: PushOptions): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    let value: unknown = task;
    try {
      if (this.schema !== undefined)
        value = validateSync(this.schema, task, `pusher ${this.queue}`);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (this.fresh.length >= this.maxPending) {
      return Promise.reject(
        new SwitchboardError(
          ErrorCode.OVERFLOW,
          `pusher ${this.queue}: ${this.maxPending} pushes already waiting for a worker`,
        ),
      );
    }
    const t: Task = {
      id: this.nextId++,
      value,
      body: undefined,
      raw: false,
      attempt: 0,
      failures: 0,
      slot: undefined,
      resolve: undefined,
      reject: undefined,
      timer: undefined,
      signal: options?.signal,
      onAbort: undefined,
    };
    if (t.signal?.aborted === true)
      return Promise.reject(
        new SwitchboardError(ErrorCode.ABORTED, 'push aborted', { cause: t.signal.reason }),
      );
    if (this.fresh.length === 0 && this.retry.length === 0) {
      const slot = this.pick();
      if (slot !== undefined) {
        try {
          this.assign(t, slot);
        } catch (err) {
          return Promise.reject(toError(err));
        }
        this.tasks.set(t.id, t);
        this.counts.pushed++;
        return Promise.resolve();
      }
    }
    return new Promise<void>((resolve, reject) => {
      t.resolve = resolve;
      t.reject = reject;
      const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
      if (Number.isFinite(timeoutMs)) {
        t.timer = setTimeout(
          () =>
            this.abandon(
              t,
              new SwitchboardError(
                ErrorCode.TIMEOUT,
                `pusher ${this.queue}: no worker took the task within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      }
      if (t.signal !== undefined) {
        t.onAbort = () =>
          this.abandon(
            t,
            new SwitchboardError(ErrorCode.ABORTED, 'push aborted', { cause: t.signal?.reason }),
          );
        t.signal.addEventListener('abort', t.onAbort, { once: true });
      }
      this.tasks.set(t.id, t);
      this.fresh.push(t);
      this.counts.pushed++;
    });
  }

  /** Resolves once every task pushed so far is acknowledged or failed for good. */
  settled(): Promise<void> {
    if (this.tasks.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /** A snapshot of the counters. */
  stats(): PusherStats {
    let inFlight = 0;
    let workers = 0;
    for (const s of this.slots.values()) {
      inFlight += s.assigned.size;
      if (s.outlets[0]?.state === 'open') workers++;
    }
    for (const s of this.draining) inFlight += s.assigned.size;
    return {
      queue: this.queue,
      ...this.counts,
      waiting: this.fresh.length + this.retry.length,
      inFlight,
      workers,
    };
  }

  /** Stops accepting pushes, waits until every task is settled, then closes. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    await this.settled();
    this.shutdown();
  }

  // ---- driven by the slots and the hub -----------------------------------------

  /** @internal Hands waiting tasks to workers with room. */
  dispatch(): void {
    if (this.dispatching) {
      this.again = true;
      return;
    }
    this.dispatching = true;
    try {
      do {
        this.again = false;
        while (this.retry.length + this.fresh.length > 0) {
          const slot = this.pick();
          if (slot === undefined) break;
          const t = this.retry.length > 0 ? this.retry.shift()! : this.fresh.shift()!;
          try {
            this.assign(t, slot);
          } catch (err) {
            // Only the value's encoding can throw here: that task can never be sent.
            const pushing = t.reject !== undefined;
            this.tasks.delete(t.id);
            this.settle(t, err as Error);
            if (!pushing) this.report(t, this.hub.self, err as Error);
          }
        }
      } while (this.again);
    } finally {
      this.dispatching = false;
    }
    this.checkSettled();
  }

  /** @internal Tasks a worker never took: hand them out again. */
  returned(slot: WorkerSlot, messages: unknown[]): void {
    for (const m of messages) {
      const t = this.tasks.get(taskId(m) ?? -1);
      if (t !== undefined && t.slot === slot) this.requeue(t);
    }
    this.dispatch();
  }

  /** @internal A worker's stream ended: its worker closed, or its node's session ended. */
  slotFailed(slot: WorkerSlot, error: SwitchboardError): void {
    slot.retired = true;
    this.removeSlot(slot);
    if (error instanceof NotDeliveredError || this.done) {
      // The node is gone: whatever it held may never be acknowledged.
      for (const t of [...slot.assigned]) this.requeue(t);
    } else if (slot.assigned.size > 0) {
      // The worker closed but finishes what it started: wait for those acks.
      this.draining.add(slot);
    }
    this.dispatch();
  }

  private nodeLost(node: number): void {
    for (const slot of [...this.draining]) {
      if (slot.node !== node) continue;
      this.draining.delete(slot);
      for (const t of [...slot.assigned]) this.requeue(t);
    }
    this.dispatch();
  }

  private requeue(t: Task): void {
    t.slot?.assigned.delete(t);
    t.slot = undefined;
    this.counts.redelivered++;
    this.retry.push(t);
  }

  /** The least-loaded worker that can take a task now; ties in turn. */
  private pick(): WorkerSlot | undefined {
    const list = this.slotList;
    const n = list.length;
    let best: WorkerSlot | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let k = 0; k < n; k++) {
      const s = list[(this.rr + k) % n]!;
      if (!s.canTake()) continue;
      const load = s.assigned.size / s.capacity;
      if (load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    this.rr = n === 0 ? 0 : (this.rr + 1) % n;
    return best;
  }

  private assign(t: Task, slot: WorkerSlot): void {
    const m: TaskMessage = {
      from: this.hub.self,
      ack: this.ackReceiver.id,
      id: t.id,
      attempt: t.attempt + 1,
      task: t.value,
    };
    let message: unknown = m;
    if (slot.node !== this.hub.self) {
      if (t.body === undefined) {
        t.raw = t.value instanceof Uint8Array;
        t.body = t.raw ? (t.value as Uint8Array) : encodeValue(t.value);
      }
      message = encodeTask(m, t.body, t.raw);
    }
    t.attempt++;
    t.slot = slot;
    slot.assigned.add(t);
    slot.post(message);
    this.settle(t);
  }

  private onAck(raw: unknown): void {
    if (!Array.isArray(raw) || !Array.isArray(raw[0]) || !Array.isArray(raw[1])) return;
    const [done, failed] = raw as AckMessage;
    for (const id of done) {
      const t = this.tasks.get(id);
      if (t === undefined || t.slot === undefined) continue;
      this.release(t);
      this.counts.completed++;
    }
    for (const f of failed) {
      if (!Array.isArray(f)) continue;
      const t = this.tasks.get(f[0]);
      if (t === undefined || t.slot === undefined) continue;
      const node = t.slot.node;
      t.failures++;
      if (t.failures <= this.retries) {
        t.slot.assigned.delete(t);
        t.slot = undefined;
        this.counts.retried++;
        this.retry.push(t);
        continue;
      }
      this.release(t);
      this.counts.failed++;
      this.errorSubject.next(
        new TaskError(
          node,
          String(f[1]),
          String(f[2]),
          typeof f[3] === 'string' ? f[3] : undefined,
          t.value,
          t.attempt,
        ),
      );
    }
    this.dispatch();
  }

  private release(t: Task): void {
    const slot = t.slot!;
    slot.assigned.delete(t);
    t.slot = undefined;
    this.tasks.delete(t.id);
    if (slot.assigned.size === 0) this.draining.delete(slot);
  }

  /** Makes the slots match the directory: one per worker of the queue. */
  private refresh(): void {
    if (this.done) return;
    const entries = this.hub.lookup(PUSHPULL_KIND, this.queue);
    const seen = new Set<string>();
    for (const e of entries) {
      const key = `${e.node}:${e.id}`;
      seen.add(key);
      if (this.slots.has(key)) continue;
      const slot = new WorkerSlot(this.hub, key, e.node, e.id, capacityOf(e), this);
      this.slots.set(key, slot);
      slot.open();
    }
    for (const [key, slot] of this.slots) {
      if (seen.has(key)) continue;
      // Withdrawn (the worker is closing): no new tasks; its stream ends when the receiver closes.
      slot.retired = true;
    }
    this.slotList = [...this.slots.values()];
    this.dispatch();
  }

  private removeSlot(slot: WorkerSlot): void {
    if (this.slots.get(slot.key) === slot) {
      this.slots.delete(slot.key);
      this.slotList = [...this.slots.values()];
    }
  }

  /** Resolves or rejects the push promise of `t`, once. */
  private settle(t: Task, err?: Error): void {
    clearTimeout(t.timer);
    t.timer = undefined;
    if (t.onAbort !== undefined) t.signal?.removeEventListener('abort', t.onAbort);
    t.onAbort = undefined;
    const resolve = t.resolve;
    const reject = t.reject;
    t.resolve = t.reject = undefined;
    if (err === undefined) resolve?.();
    else reject?.(err);
  }

  /** A waiting push gave up (timeout, abort): forget the task. */
  private abandon(t: Task, err: SwitchboardError): void {
    if (t.slot !== undefined || !this.tasks.has(t.id)) return;
    this.fresh.remove(t);
    this.tasks.delete(t.id);
    this.settle(t, err);
    this.checkSettled();
  }

  private report(t: Task, node: number, err: Error): void {
    this.counts.failed++;
    const code = (err as { code?: unknown }).code;
    this.errorSubject.next(
      new TaskError(
        node,
        err.name,
        err.message,
        typeof code === 'string' ? code : undefined,
        t.value,
        t.attempt,
      ),
    );
  }

  private checkSettled(): void {
    if (this.tasks.size > 0 || this.settleWaiters.length === 0) return;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  /** The switchboard closed, or {@link close} finished: end everything. */
  private shutdown(): void {
    if (this.done) return;
    this.done = true;
    this.closing = true;
    this.unwatch();
    this.eventsSub.unsubscribe();
    const err = this.closedError();
    const lost: Task[] = [];
    for (const t of this.tasks.values()) {
      if (t.resolve !== undefined) this.settle(t, err);
      else lost.push(t);
    }
    if (lost.length > 0) {
      const e = new NotDeliveredError(
        this.hub.self,
        `pusher ${this.queue} closed with ${lost.length} task(s) not acknowledged`,
      );
      (e as NotDeliveredError & { tasks: unknown[] }).tasks = lost.map((t) => t.value);
      this.errorSubject.next(e);
    }
    this.tasks.clear();
    this.fresh.drain();
    this.retry.drain();
    for (const s of this.slots.values()) s.close();
    this.slots.clear();
    this.slotList = [];
    this.draining.clear();
    this.ackReceiver.close();
    this.errorSubject.complete();
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  private closedError(): SwitchboardError {
    return new SwitchboardError(ErrorCode.CLOSED, `pusher ${this.queue} is closed`);
  }
}

function capacityOf(e: DirectoryEntry): number {
  const m = e.meta as { c?: unknown; p?: unknown } | null;
  const c = typeof m?.c === 'number' && m.c > 0 ? m.c : 1;
  const p = typeof m?.p === 'number' && m.p > 0 ? m.p : 0;
  return c + p;
}

// ---- the pattern ---------------------------------------------------------------

/**
 * Push-pull for one switchboard: its workers and pushers. Reached through
 * the switchboard (`worker`, `pusher`, `push`).
 */
export class PushPull {
  private readonly pushers = new Map<string, Pusher<unknown>>();

  constructor(
    private readonly hub: ChannelHub,
    private readonly events$: Observable<SwitchboardEvent>,
  ) {}

  /** A worker of queue `name` running `handler`. */
  worker<T>(name: string, handler: TaskHandler<T>, options?: WorkerOptions<T>): Worker<T> {
    return new Worker<T>(this.hub, name, handler, options);
  }

  /** A pusher to queue `name`. */
  pusher<T>(name: string, options?: PusherOptions<T>): Pusher<T> {
    return new Pusher<T>(this.hub, this.events$, name, options);
  }

  /** Pushes with this switchboard's shared pusher of queue `name` (default options). */
  push<T>(name: string, task: T, options?: PushOptions): Promise<void> {
    let p = this.pushers.get(name);
    if (p === undefined) {
      p = this.pusher<unknown>(name);
      this.pushers.set(name, p);
    }
    return p.push(task, options);
  }

  /** The shared pusher of queue `name`, if {@link push} created one. */
  shared(name: string): Pusher<unknown> | undefined {
    return this.pushers.get(name);
  }
}
