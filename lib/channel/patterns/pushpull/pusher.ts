/**
 * A pusher of a push-pull queue: one stream (a core `Sender`) per worker of
 * its queue, each task handed to the least-loaded worker with credit (the
 * core's picker, healthy nodes first), and every task kept until its worker
 * acknowledges it.
 *
 * Delivery is **at least once**: tasks held by a worker whose node's
 * session ends are handed to another worker; tasks a worker had not
 * started when it closed come back at once. After a node loss a task may
 * therefore run twice (it may have run there before the loss was seen):
 * handlers should be idempotent or deduplicate by `ctx.id` and `ctx.from`.
 * A pusher's own end (its switchboard closing) reports the tasks it had not
 * seen acknowledged on `errors$`, with the tasks.
 *
 * One file: task ownership (assignment, acknowledgement, retry,
 * redelivery) is one state machine over one table of tasks.
 */
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import { ErrorCode, NotDeliveredError, OptionError, SwitchboardError } from '../../../errors.js';
import type { DirectoryEntry } from '../../directory.js';
import { Headed } from '../../envelope.js';
import type { HeadHeaders } from '../../envelope.js';
import { checkHeaders } from '../../headers.js';
import { mutableHeaders, pushTrace, traced, tracedHeaders } from '../../tracing.js';
import type { PushTraceContext } from '../../tracing.js';
import type { ChannelHub } from '../../hub.js';
import type { QueueSeries } from '../../../switchboard/metrics.js';
import type { Receiver } from '../../receiver.js';
import { Ring } from '../../ring.js';
import { validateSync } from '../../schema.js';
import type { StandardSchemaV1 } from '../../schema.js';
import type { Sender } from '../../sender.js';
import { abortError, checkTimeout, Wait } from '../../waits.js';
import { DEFAULT_PUSHER_OPTIONS, PUSHPULL_KIND, TaskError } from './task.js';
import type { AckMessage, PushOptions, PusherOptions, PusherStats } from './task.js';
import { positiveInt } from './worker.js';

/** Acknowledgement batches (one per worker per event-loop turn) a worker may have in flight. */
const ACK_WINDOW = 16;
const ACK_WINDOW_BYTES = 64 * 1024;
/** Workers whose acknowledgements a pusher takes at once without one waiting on another's credit. */
const ACK_SENDERS = 1024;

/** A task, from `push()` until it is acknowledged or failed for good; it waits for a worker as a Wait. */
class Task extends Wait {
  /** When it was pushed (`performance.now()`), for its duration in stats().metrics. */
  readonly startedAt = performance.now();
  attempt = 0;
  failures = 0;
  slot: WorkerSlot | undefined;
  resolve: (() => void) | undefined;
  reject: ((e: unknown) => void) | undefined;

  constructor(
    private readonly pusher: Pusher<unknown>,
    readonly id: number,
    readonly value: unknown,
    readonly timeoutMs: number,
    /** The headers it travels with, checked. */
    readonly headers: HeadHeaders | undefined,
  ) {
    super();
  }

  expired(): void {
    this.pusher.abandon(this, this.pusher.waitError(this.timeoutMs));
  }

  aborted(reason: unknown): void {
    this.pusher.abandon(this, abortError('push', reason));
  }
}

/** The stream from one pusher to one worker, and the tasks it holds there. */
class WorkerSlot {
  readonly assigned = new Set<Task>();
  readonly sender: Sender<unknown>;
  /** The worker withdrew (closing) or failed: no new tasks. */
  retired = false;

  constructor(
    hub: ChannelHub,
    readonly key: string,
    readonly node: number,
    readonly receiverId: number,
    /** Tasks it holds at most (running plus prefetched): the load denominator. */
    readonly capacity: number,
    owner: Pusher<unknown>,
  ) {
    this.sender = hub.sender<unknown>(
      { node, id: receiverId },
      { timeoutMs: Number.POSITIVE_INFINITY },
      {
        pumped: () => owner.dispatch(),
        failed: (error) => owner.slotFailed(this, error),
        undelivered: (messages) => {
          owner.returned(this, messages);
          return true;
        },
      },
    );
  }

  /** The worker takes tasks from this pusher (its room aside). */
  serves(): boolean {
    return !this.retired && !this.sender.closed;
  }

  /** True when a task sent now goes straight into the worker's window. */
  canTake(): boolean {
    const o = this.sender.outlets[0];
    return (
      this.serves() &&
      o !== undefined &&
      o.state === 'open' &&
      o.credit > 0 &&
      o.creditBytes > 0 &&
      this.sender.waiting === 0 &&
      o.ready()
    );
  }
}

/** What a push that went out at once returns: resolved, shared (no promise per task). */
const RESOLVED: Promise<void> = Promise.resolve();
const serves = (s: WorkerSlot): boolean => s.serves();
const canTake = (s: WorkerSlot): boolean => s.canTake();
const loadOf = (s: WorkerSlot): number => s.assigned.size / s.capacity;

/**
 * Hands tasks of one queue to its workers across the cluster. Created with
 * `switchboard.pusher(name, options)`; `switchboard.push(name, task)` uses
 * one per queue.
 */
export class Pusher<T> {
  /**
   * Tasks that failed for good ({@link TaskError}, with the task), and tasks
   * lost when this pusher ended before they were acknowledged
   * ({@link NotDeliveredError}, with the tasks as `messages`).
   */
  readonly errors$: Observable<TaskError<T> | NotDeliveredError<T>>;
  private readonly errorSubject = new Subject<TaskError<T> | NotDeliveredError<T>>();
  private readonly tasks = new Map<number, Task>();
  private readonly fresh = new Ring<Task>(16);
  private readonly retry = new Ring<Task>(16);
  private readonly slots = new Map<string, WorkerSlot>();
  private slotList: WorkerSlot[] = [];
  /** Why the last worker went: the cause of a push that then waits in vain for one. */
  private lostBy: unknown;
  private lastWorkerNode = -1;
  /** Slots whose worker closed while running tasks of ours: their acks are still due. */
  private readonly draining = new Set<WorkerSlot>();
  private readonly ackReceiver: Receiver<unknown>;
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly retries: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly unwatch: () => void;
  private readonly unwatchPeers: () => void;
  private nextId = 1;
  private dispatching = false;
  private again = false;
  private closing = false;
  private done = false;
  private settleWaiters: Array<() => void> = [];
  private counts = { pushed: 0, completed: 0, failed: 0, redelivered: 0, retried: 0 };
  private readonly series: QueueSeries;

  /** @internal Created by `PushPull.pusher`. */
  constructor(
    private readonly hub: ChannelHub,
    /** The queue this pusher feeds. */
    readonly queue: string,
    options: PusherOptions<T> = {},
    private readonly onClosed: (p: Pusher<T>) => void = () => undefined,
  ) {
    if (typeof queue !== 'string' || queue.length === 0)
      throw new OptionError('name', 'must be a non-empty string');
    const d = DEFAULT_PUSHER_OPTIONS;
    this.timeoutMs = checkTimeout(options.timeoutMs) ?? d.timeoutMs;
    this.maxPending = positiveInt(options.maxPending ?? d.maxPending, 'maxPending');
    this.retries = positiveInt(options.retries ?? d.retries, 'retries', 0);
    this.schema = options.schema;
    this.series = hub.metrics.queue(queue);
    this.errors$ = this.errorSubject.asObservable();
    // Consumed synchronously, so nothing waits in it; small windows, so that
    // many workers' ack streams each get credit.
    this.ackReceiver = hub.receiver<unknown>(undefined, {
      capacity: ACK_WINDOW * ACK_SENDERS,
      window: ACK_WINDOW,
      capacityBytes: ACK_WINDOW_BYTES * ACK_SENDERS,
      windowBytes: ACK_WINDOW_BYTES,
    });
    this.ackReceiver.observable().subscribe({ next: (m) => this.onAck(m), error: () => undefined });
    this.unwatchPeers = hub.watchPeers({
      sessionEnded: (node, error) => {
        if (node === this.lastWorkerNode) this.lostBy = error;
        this.nodeLost(node);
      },
      healthChanged: () => this.dispatch(),
    });
    this.unwatch = hub.directory.watch(PUSHPULL_KIND, queue, () => this.refresh());
    this.refresh();
  }

  /**
   * Hands `task` to the least-loaded worker with room. Resolves once a
   * worker's window took it (at once when one has room); the task is then
   * kept until acknowledged and handed out again if its worker's node goes
   * away. Rejects with ERR_SB_TIMEOUT (no worker had room in time),
   * ERR_SB_ABORTED, ERR_SB_OVERFLOW (`maxPending` pushes already waiting),
   * ERR_SB_VALIDATION, ERR_SB_ENCODE, ERR_SB_MESSAGE_TOO_LARGE, or
   * ERR_SB_CLOSED.
   */
  push(task: T, options?: PushOptions): Promise<void> {
    if (pushTrace.hasSubscribers) {
      const h = options?.headers;
      const ctx: PushTraceContext = {
        queue: this.queue,
        headers: mutableHeaders(h),
      };
      const hs = tracedHeaders(h, ctx);
      return traced(pushTrace, ctx, () => this.pushNow(task, options, hs));
    }
    return this.pushNow(task, options, options?.headers);
  }

  private pushNow(task: T, options: PushOptions | undefined, h: unknown): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    let value: unknown = task;
    let timeoutMs: number;
    let headers: HeadHeaders | undefined;
    try {
      if (this.schema !== undefined)
        value = validateSync(this.schema, task, `pusher ${this.queue}`);
      if (h !== undefined) headers = checkHeaders(h);
      timeoutMs = checkTimeout(options?.timeoutMs) ?? this.timeoutMs;
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
    const signal = options?.signal;
    if (signal?.aborted === true) return Promise.reject(abortError('push', signal.reason));
    const t = new Task(this as Pusher<unknown>, this.nextId++, value, timeoutMs, headers);
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
        this.series.pushed++;
        return RESOLVED;
      }
    }
    return new Promise<void>((resolve, reject) => {
      t.resolve = resolve;
      t.reject = reject;
      this.hub.timeouts.arm(t, timeoutMs, signal);
      this.tasks.set(t.id, t);
      this.fresh.push(t);
      this.counts.pushed++;
      this.series.pushed++;
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
      if (s.sender.outlets[0]?.state === 'open') workers++;
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
            // Only the value's encoding (or its size) can throw here: that task can never be sent.
            const pushing = t.reject !== undefined;
            this.tasks.delete(t.id);
            this.settle(t, err as Error);
            if (!pushing) this.report(t, this.hub.self, err as Error);
            else this.series.taskSettled(performance.now() - t.startedAt, err);
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
      const id = m instanceof Headed ? m.head[2] : undefined;
      const t = typeof id === 'number' ? this.tasks.get(id) : undefined;
      if (t !== undefined && t.slot === slot) this.requeue(t);
    }
    this.dispatch();
  }

  /** @internal A worker's stream ended: its worker closed, or its node's session ended. */
  slotFailed(slot: WorkerSlot, error: SwitchboardError): void {
    slot.retired = true;
    this.removeSlot(slot);
    // Why the last worker went, should a push then wait in vain: it closed
    // (its node's loss, if that follows, replaces it), or its node was lost.
    this.lostBy = error.cause ?? error;
    this.lastWorkerNode = slot.node;
    if (error instanceof NotDeliveredError || this.done) {
      // The node is gone: whatever it held may never be acknowledged.
      for (const t of [...slot.assigned]) this.requeue(t);
    } else if (slot.assigned.size > 0) {
      // The worker closed but finishes what it started: wait for those acks.
      this.draining.add(slot);
    }
    this.dispatch();
  }

  /** @internal A waiting push gave up (timeout, abort): forget the task. */
  abandon(t: Task, err: SwitchboardError): void {
    if (t.slot !== undefined || !this.tasks.has(t.id)) return;
    this.fresh.remove(t);
    this.tasks.delete(t.id);
    this.series.taskSettled(performance.now() - t.startedAt, err);
    this.settle(t, err);
    this.checkSettled();
  }

  /** @internal Why a push waited in vain. */
  waitError(timeoutMs: number): SwitchboardError {
    const workers = this.slotList.length;
    return new SwitchboardError(
      ErrorCode.TIMEOUT,
      workers === 0
        ? `pusher ${this.queue}: no worker of queue "${this.queue}" within ${timeoutMs} ms`
        : `pusher ${this.queue}: none of ${workers} worker(s) took the task within ${timeoutMs} ms`,
      // The last workers' node went away meanwhile: that is why.
      workers === 0 && this.lostBy !== undefined ? { cause: this.lostBy } : undefined,
    );
  }

  /**
   * The switchboard closes gracefully: waits, at most until `deadline`
   * (`performance.now()` scale), for the tasks in flight to be acknowledged.
   */
  async drain(deadline: number): Promise<void> {
    const left = deadline - performance.now();
    if (left <= 0 || this.tasks.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.settled(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, left))),
    ]);
    clearTimeout(timer);
  }

  /** The switchboard closed, or {@link close} finished: end everything. */
  shutdown(): void {
    if (this.done) return;
    this.done = true;
    this.closing = true;
    this.unwatch();
    this.unwatchPeers();
    const err = this.closedError();
    const lost: Task[] = [];
    for (const t of this.tasks.values()) {
      if (t.resolve !== undefined) this.settle(t, err);
      else lost.push(t);
    }
    if (lost.length > 0) {
      this.errorSubject.next(
        new NotDeliveredError<T>(
          this.hub.self,
          `pusher ${this.queue} closed with ${lost.length} task(s) not acknowledged`,
          { messages: lost.map((t) => t.value as T) },
        ),
      );
    }
    this.tasks.clear();
    this.fresh.drain();
    this.retry.drain();
    for (const s of this.slots.values()) s.sender.close();
    this.slots.clear();
    this.slotList = [];
    this.draining.clear();
    this.ackReceiver.close();
    this.errorSubject.complete();
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
    this.onClosed(this);
  }

  // ---- internals ---------------------------------------------------------------

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

  /**
   * The least-loaded worker that can take a task now, ties in turn; while a
   * worker on a healthy node serves, only those (a busy one is waited for).
   */
  private pick(): WorkerSlot | undefined {
    return this.hub.picker.pick(this.slotList, 'least-loaded', serves, loadOf, canTake);
  }

  /**
   * Sends `t` to `slot` (which has room: `canTake`).
   * @throws ERR_SB_ENCODE or ERR_SB_MESSAGE_TOO_LARGE: that task can never be sent
   */
  private assign(t: Task, slot: WorkerSlot): void {
    const m = new Headed(
      [this.hub.selfFor(slot.node), this.ackReceiver.id, t.id, t.attempt + 1],
      t.value,
      undefined,
      t.headers,
    );
    if (!slot.sender.trySend(m))
      throw new SwitchboardError(ErrorCode.INTERNAL, `worker ${slot.key} had no room after all`);
    t.attempt++;
    t.slot = slot;
    slot.assigned.add(t);
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
      this.series.taskSettled(performance.now() - t.startedAt, undefined);
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
      this.series.taskSettled(performance.now() - t.startedAt, { remoteName: String(f[1]) });
      this.errorSubject.next(
        new TaskError<T>(
          node,
          String(f[1]),
          String(f[2]),
          typeof f[3] === 'string' ? f[3] : undefined,
          t.value as T,
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
    const entries = this.hub.directory.lookup(PUSHPULL_KIND, this.queue);
    const seen = new Set<string>();
    for (const e of entries) {
      const key = `${e.node}:${e.id}`;
      seen.add(key);
      if (this.slots.has(key)) continue;
      const slot = new WorkerSlot(
        this.hub,
        key,
        e.node,
        e.id,
        capacityOf(e),
        this as Pusher<unknown>,
      );
      this.slots.set(key, slot);
      this.lostBy = undefined;
      slot.sender.open();
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
    this.hub.timeouts.disarm(t);
    const resolve = t.resolve;
    const reject = t.reject;
    t.resolve = t.reject = undefined;
    if (err === undefined) resolve?.();
    else reject?.(err);
  }

  private report(t: Task, node: number, err: Error): void {
    this.counts.failed++;
    this.series.taskSettled(performance.now() - t.startedAt, err);
    const code = (err as { code?: unknown }).code;
    this.errorSubject.next(
      new TaskError<T>(
        node,
        err.name,
        err.message,
        typeof code === 'string' ? code : undefined,
        t.value as T,
        t.attempt,
        { cause: err },
      ),
    );
  }

  private checkSettled(): void {
    if (this.tasks.size > 0 || this.settleWaiters.length === 0) return;
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

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
