/**
 * A worker of a push-pull queue: a blocking receiver of the core holding
 * at most `concurrency` running tasks plus `prefetch` buffered ones per
 * pusher, announced in the directory under kind `pushpull` with the queue
 * name, and a loop that runs the handler. A task is done when the handler
 * returns or resolves; acknowledgements go back to each pusher in one
 * message per event-loop turn.
 */
import { NO_HEADERS } from '../../headers.js';
import type { Headers } from '../../headers.js';
import { taskTrace, traced } from '../../tracing.js';
import type { TaskTraceContext } from '../../tracing.js';
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import type { ErrorCode } from '../../../errors.js';
import { DecodeError, OptionError, SwitchboardError } from '../../../errors.js';
import type { ChannelHub } from '../../hub.js';
import type { QueueSeries } from '../../../switchboard/metrics.js';
import type { Receiver } from '../../receiver.js';
import { validateSync } from '../../schema.js';
import type { StandardSchemaV1 } from '../../schema.js';
import type { Sender } from '../../sender.js';
import { DEFAULT_WORKER_OPTIONS, parseTask, PUSHPULL_KIND, TaskError } from './task.js';
import type {
  AckMessage,
  Failure,
  TaskContext,
  TaskHandler,
  WorkerOptions,
  WorkerStats,
} from './task.js';

/** Pushers a worker gives a full credit window at once; more wait for its buffer to drain. */
const WORKER_PUSHERS = 64;
/** Bytes of tasks one pusher may have in a worker's window (a larger task still goes, alone). */
const TASK_WINDOW_BYTES = 128 * 1024;

/** A task as a worker runs it: its context (the signal made on demand), and where to acknowledge it. */
class Job implements TaskContext {
  /** When its handler started (`performance.now()`), for stats().metrics. */
  startedAt = 0;
  /**
   * The session with its pusher's node ended while it ran: nobody is left to
   * acknowledge, and a later session of that node (a client in the same
   * slot, a restarted member) has ack receivers of its own.
   */
  orphaned = false;
  private controller: AbortController | undefined;
  private abortedWith: SwitchboardError | undefined;

  constructor(
    readonly queue: string,
    readonly from: number,
    /** The pusher's acknowledgement receiver (on node `from`). */
    readonly ack: number,
    readonly id: number,
    readonly attempt: number,
    readonly headers: Headers,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith);
    }
    return this.controller.signal;
  }

  abort(reason: SwitchboardError): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = reason;
    this.controller?.abort(reason);
  }
}

/** Acknowledgements due to one pusher, sent once per event-loop turn. */
interface AckBatch {
  readonly from: number;
  readonly ack: number;
  readonly done: number[];
  readonly failed: Failure[];
}

/**
 * Takes tasks of one queue and runs them, `concurrency` at a time. Created
 * with `switchboard.worker(name, handler, options)`.
 */
export class Worker<T> {
  /**
   * Failures here: a {@link TaskError} for each handler failure (with the
   * task and the thrown error as `cause`), a SwitchboardError for a task
   * that could not be decoded or validated.
   */
  readonly errors$: Observable<TaskError<T> | SwitchboardError>;
  private readonly errorSubject = new Subject<TaskError<T> | SwitchboardError>();
  private readonly receiver: Receiver<unknown>;
  private readonly concurrency: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly acks = new Map<string, AckBatch>();
  private lastBatch: AckBatch | undefined;
  private readonly ackSenders = new Map<string, Sender<AckMessage>>();
  private readonly sending = new Set<Promise<void>>();
  private readonly jobs = new Set<Job>();
  private flushScheduled = false;
  private completed = 0;
  private failed = 0;
  private slotFree: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private closePromise: Promise<void> | undefined;
  private readonly flushNow = (): void => this.flushAcks();
  private readonly series: QueueSeries;
  private readonly unwatchPeers: () => void;

  /** @internal Created by `PushPull.worker`. */
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
    this.series = hub.metrics.queue(queue);
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
    hub.directory.announce(PUSHPULL_KIND, queue, this.receiver.id, {
      c: this.concurrency,
      p: prefetch,
    });
    this.unwatchPeers = hub.watchPeers({ sessionEnded: (node) => this.pusherGone(node) });
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
      running: this.jobs.size,
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

  /**
   * Aborts the running tasks' `ctx.signal` with `reason` (this switchboard
   * closes past its linger time, or is destroyed).
   */
  abort(reason: SwitchboardError): void {
    for (const job of this.jobs) job.abort(reason);
    void this.close();
  }

  private async shutdown(): Promise<void> {
    // Closing the receiver withdraws the directory entry and hands buffered
    // tasks back to their pushers (as not delivered), before any ack below.
    this.receiver.close();
    this.slotFree?.();
    if (this.jobs.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.flushAcks();
    await Promise.all([...this.sending]);
    this.unwatchPeers();
    this.errorSubject.complete();
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.jobs.size >= this.concurrency) {
        await new Promise<void>((resolve) => (this.slotFree = resolve));
        this.slotFree = undefined;
        if (this.receiver.closed) break;
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
    const m = parseTask(v);
    if (m === undefined) {
      this.errorSubject.next(new DecodeError(`worker ${this.queue}: malformed task`));
      return;
    }
    const [from, ack, id, attempt] = m.head;
    const job = new Job(this.queue, from, ack, id, attempt, m.headers ?? NO_HEADERS);
    let task = m.body as T;
    if (this.schema !== undefined) {
      try {
        task = validateSync(this.schema, task, `worker ${this.queue}`);
      } catch (err) {
        this.fail(job, task, err, false);
        return;
      }
    }
    this.jobs.add(job);
    job.startedAt = performance.now();
    let result: unknown;
    try {
      result = taskTrace.hasSubscribers ? this.traced(task, job) : this.handler(task, job);
    } catch (err) {
      this.finished(job, task, err, true);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        () => this.finished(job, task, undefined, false),
        (err: unknown) => this.finished(job, task, err, true),
      );
    } else {
      this.finished(job, task, undefined, false);
    }
  }

  /** The handler run on `switchboard:pushpull:task`. */
  private traced(task: T, job: Job): unknown {
    const ctx: TaskTraceContext = {
      queue: this.queue,
      id: job.id,
      from: job.from,
      attempt: job.attempt,
      headers: job.headers,
    };
    return traced(taskTrace, ctx, () => this.handler(task, job));
  }

  private finished(job: Job, task: T, err: unknown, failed: boolean): void {
    this.jobs.delete(job);
    this.series.taskProcessed(
      performance.now() - job.startedAt,
      failed ? (err ?? 'undefined') : undefined,
    );
    if (failed) this.fail(job, task, err, true);
    else {
      this.completed++;
      if (!job.orphaned) this.batch(job).done.push(job.id);
    }
    this.slotFree?.();
    if (this.jobs.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private fail(job: Job, task: T, err: unknown, byHandler: boolean): void {
    this.failed++;
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (e as { code?: unknown }).code;
    if (!job.orphaned)
      this.batch(job).failed.push([
        job.id,
        e.name,
        e.message,
        typeof code === 'string' ? code : null,
      ]);
    this.errorSubject.next(
      byHandler || !(e instanceof SwitchboardError)
        ? new TaskError<T>(
            this.hub.self,
            e.name,
            e.message,
            typeof code === 'string' ? code : undefined,
            task,
            job.attempt,
            { cause: e },
          )
        : e,
    );
  }

  /**
   * The session with `node` ended: acknowledgements still due to its pushers
   * are dropped, and so are those of its tasks still running (they finish).
   * Sent later, they would reach whichever receivers of that number's next
   * session carry the same ids and settle its tasks unrun.
   */
  private pusherGone(node: number): void {
    for (const job of this.jobs) if (job.from === node) job.orphaned = true;
    for (const [key, b] of this.acks) if (b.from === node) this.acks.delete(key);
    if (this.lastBatch?.from === node) this.lastBatch = undefined;
    for (const [key, s] of this.ackSenders) {
      if (!key.startsWith(`${node}:`)) continue;
      s.close();
      this.ackSenders.delete(key);
    }
  }

  private batch(job: Job): AckBatch {
    // Tasks come in runs from one pusher: skip the key and the lookup for those.
    const last = this.lastBatch;
    if (last !== undefined && last.from === job.from && last.ack === job.ack) return last;
    const key = `${job.from}:${job.ack}`;
    let b = this.acks.get(key);
    if (b === undefined)
      this.acks.set(key, (b = { from: job.from, ack: job.ack, done: [], failed: [] }));
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

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return (
    typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
  );
}

export function positiveInt(value: number, name: string, min = 1): number {
  if (!Number.isInteger(value) || value < min)
    throw new OptionError(name, `must be an integer >= ${min}, got ${String(value)}`);
  return value;
}

/** An error that is a SwitchboardError of `code`. */
export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof SwitchboardError && err.code === code;
}
