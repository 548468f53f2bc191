/**
 * The one consumer-side queue of the channel core: a FIFO that hands its
 * items out through `next()` (with a deadline or a signal), an async
 * iterator and an rxjs Observable, and ends or fails once. Receivers are
 * built on it, and through them every pattern's consumer (subscriptions,
 * RPC streams, workers).
 *
 * Each item carries its source (the stream it came from) and its size, in
 * parallel rings, so queueing allocates nothing per item. The owner does
 * the accounting as items leave ({@link QueueOwner.taken}) and may hold
 * items back ({@link QueueOwner.ready}): a receiver holds the messages of a
 * session it has not heard from for too long until the peer confirms it
 * (docs/guide.md, "Nothing is lost silently"). Held items do not block the others:
 * the first ready item goes first, so FIFO holds per source.
 */
import { Observable } from 'rxjs';
import { ErrorCode, OptionError, SwitchboardError } from '../errors.js';
import { Ring } from './ring.js';
import { Wait, WaitList, abortError, checkTimeout, timeoutError } from './waits.js';
import type { Timeouts, WaitOptions } from './waits.js';

/** Options of one receive: a deadline and/or a signal. */
export type ReceiveOptions = WaitOptions;

/** What a queue asks of the endpoint that owns it. */
export interface QueueOwner<S> {
  /** An item from `source` of `size` bytes left the queue for a consumer. */
  taken(source: S, size: number): void;
  /** False while items from `source` must not be handed out yet. Checked as items leave. */
  ready(source: S): boolean;
  /** An async iteration stopped early (`break`, `return()`). */
  returned(): void;
}

const DONE: IteratorResult<never, undefined> = Object.freeze({
  value: undefined,
  done: true,
});

/** A consumer waiting in `next()`. */
class Next<T> extends Wait {
  constructor(
    private readonly queue: Queue<T, never>,
    readonly resolve: (r: IteratorResult<T, undefined>) => void,
    readonly reject: (e: unknown) => void,
    readonly timeoutMs: number,
  ) {
    super();
  }

  expired(): void {
    this.queue.giveUp(this, timeoutError(`receive on ${this.queue.name}`, this.timeoutMs));
  }

  aborted(reason: unknown): void {
    this.queue.giveUp(this, abortError(`receive on ${this.queue.name}`, reason));
  }
}

/** What takes a queue's items as they come: an rxjs Subscriber, or a pattern's own. */
export interface Consumer<T> {
  /** True once it takes no more (an unsubscribed Subscriber); a pattern's own never is. */
  readonly closed?: boolean;
  next(value: T): void;
  error(err: unknown): void;
  complete(): void;
}

/**
 * A FIFO with one kind of consumer at a time: `next()` callers (queued in
 * order) or one Observable subscriber.
 */
export class Queue<T, S> implements AsyncIterable<T> {
  private readonly values = new Ring<unknown>(64);
  private readonly sources = new Ring<S>(64);
  private readonly sizes = new Ring<number>(64);
  private readonly waiters = new WaitList<Next<T>>();
  private observer: Consumer<T> | undefined;
  private state: 'open' | 'ended' | 'failed' = 'open';
  private failure: SwitchboardError | undefined;
  private bytes = 0;

  constructor(
    /** For errors: the endpoint's name. */
    readonly name: string,
    private readonly owner: QueueOwner<S>,
    private readonly timeouts: Timeouts | undefined,
  ) {}

  /** Items buffered now. */
  get length(): number {
    return this.values.length;
  }

  /** Bytes of the items buffered now (as given to `push`). */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** True once ended or failed (buffered items may remain). */
  get finished(): boolean {
    return this.state !== 'open';
  }

  /** True while a consumer waits for an item. */
  get hungry(): boolean {
    return this.waiters.size > 0 || this.observer !== undefined;
  }

  // ---- producer side -------------------------------------------------------

  /**
   * Adds an item. `ready` says whether it may be handed out now: a waiting
   * consumer then gets it at once (and `taken` runs); otherwise it waits in
   * the buffer. Ignored once the queue ended or failed. True when an
   * observer took it synchronously: code outside the queue ran (for as long
   * as it liked) before this returned.
   */
  push(value: unknown, source: S, size: number, ready: boolean): boolean {
    if (this.state !== 'open') return false;
    if (ready && this.values.length === 0) {
      const w = this.waiters.size > 0 ? this.waiters.shift() : undefined;
      if (w !== undefined) {
        this.timeouts?.disarm(w);
        this.owner.taken(source, size);
        w.resolve({ value: value as T, done: false });
        return false;
      }
      const o = this.observer;
      if (o !== undefined) {
        this.owner.taken(source, size);
        o.next(value as T);
        return true;
      }
    }
    this.values.push(value);
    this.sources.push(source);
    this.sizes.push(size);
    this.bytes += size;
    return false;
  }

  /** No more items: consumers get `done` once the buffer is empty. Idempotent. */
  end(): void {
    if (this.state !== 'open') return;
    this.state = 'ended';
    this.settle();
  }

  /**
   * No more items: consumers get `error` once the buffer is empty (at once
   * with `drop`, which empties it). Idempotent; the first reason stays.
   */
  fail(error: SwitchboardError, drop = false): void {
    if (this.state === 'open') {
      this.state = 'failed';
      this.failure = error;
    }
    if (drop) this.clear();
    this.settle();
  }

  /** Held items may be ready now: hand out what can go. */
  release(): void {
    if (this.values.length > 0) this.drainToConsumers();
  }

  /**
   * Removes every buffered item whose source `matches`, oldest first, and
   * returns their values and sources (what was never handed out).
   */
  remove(matches: (source: S) => boolean): Array<{ value: unknown; source: S; size: number }> {
    const out: Array<{ value: unknown; source: S; size: number }> = [];
    for (let i = 0; i < this.values.length;) {
      if (!matches(this.sources.at(i)!)) {
        i++;
        continue;
      }
      const size = this.sizes.removeAt(i)!;
      this.bytes -= size;
      out.push({ value: this.values.removeAt(i), source: this.sources.removeAt(i)!, size });
    }
    if (out.length > 0) this.settle();
    return out;
  }

  /** Removes and returns the oldest buffered item (drop-oldest policies). */
  shift(): { value: unknown; source: S; size: number } | undefined {
    if (this.values.length === 0) return undefined;
    const size = this.sizes.shift()!;
    this.bytes -= size;
    return { value: this.values.shift(), source: this.sources.shift()!, size };
  }

  /** Drops every buffered item, returning them oldest first. */
  clear(): Array<{ value: unknown; source: S; size: number }> {
    const out: Array<{ value: unknown; source: S; size: number }> = [];
    for (let e = this.shift(); e !== undefined; e = this.shift()) out.push(e);
    return out;
  }

  // ---- consumer side -------------------------------------------------------

  /**
   * The next item; `done` once the queue ended and its buffer is empty.
   * Rejects with the queue's failure, ERR_SB_TIMEOUT after `timeoutMs`, or
   * ERR_SB_ABORTED when `signal` aborts; a receive that gave up takes
   * nothing (the item that arrives later goes to the next receive).
   */
  next(options?: ReceiveOptions): Promise<IteratorResult<T, undefined>> {
    if (this.values.length > 0 && this.waiters.size === 0) {
      const i = this.firstReady();
      if (i >= 0) return Promise.resolve({ value: this.takeAt(i) as T, done: false });
    }
    if (this.state !== 'open' && this.values.length === 0) {
      return this.failure === undefined ? Promise.resolve(DONE) : Promise.reject(this.failure);
    }
    if (this.observer !== undefined) return Promise.reject(this.busy());
    const timeoutMs = checkTimeout(options?.timeoutMs);
    const signal = options?.signal;
    if (signal?.aborted === true)
      return Promise.reject(abortError(`receive on ${this.name}`, signal.reason));
    return new Promise((resolve, reject) => {
      const w = new Next<T>(
        this as unknown as Queue<T, never>,
        resolve,
        reject,
        timeoutMs ?? Number.POSITIVE_INFINITY,
      );
      if (timeoutMs !== undefined || signal !== undefined) {
        if (this.timeouts === undefined) throw new SwitchboardError(ErrorCode.INTERNAL, 'no clock');
        this.timeouts.arm(w, timeoutMs, signal);
      }
      this.waiters.push(w);
    });
  }

  /**
   * Between 1 and `max` items, as soon as at least one may go (waiting as
   * {@link next} does, with the same deadline and signal), taking what else
   * is buffered and ready at that moment; `[]` once the queue ended and its
   * buffer is empty. Rejects as {@link next} does.
   */
  take(max: number, options?: ReceiveOptions): Promise<T[]> {
    if (!Number.isSafeInteger(max) || max < 1)
      return Promise.reject(new OptionError('max', `expected a positive integer, got ${max}`));
    if (this.values.length > 0 && this.waiters.size === 0) {
      const out = this.takeReady(max);
      if (out.length > 0) return Promise.resolve(out);
    }
    return this.next(options).then((r) => {
      if (r.done === true) return [];
      const out = [r.value];
      // Whatever arrived meanwhile, unless a later receive is waiting for it.
      if (max > 1 && this.waiters.size === 0) for (const v of this.takeReady(max - 1)) out.push(v);
      return out;
    });
  }

  /** Up to `max` buffered items that may go now, oldest first. */
  private takeReady(max: number): T[] {
    const out: T[] = [];
    while (out.length < max && this.values.length > 0) {
      const i = this.firstReady();
      if (i < 0) break;
      out.push(this.takeAt(i) as T);
    }
    return out;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: () => {
        this.owner.returned();
        return Promise.resolve(DONE);
      },
    };
  }

  /**
   * The items as an Observable: buffered ones first, then each as it comes;
   * completes when the queue ends, errors when it fails. One subscriber at a
   * time, and not while `next()` callers wait.
   */
  observable(): Observable<T> {
    return new Observable<T>((subscriber) => {
      if (this.observer !== undefined || this.waiters.size > 0) {
        subscriber.error(this.busy());
        return undefined;
      }
      this.observer = subscriber;
      this.drainToConsumers();
      this.settle();
      return () => {
        if (this.observer === subscriber) this.observer = undefined;
      };
    });
  }

  /**
   * @internal As {@link observable}, without rxjs in between: for a pattern
   * that takes every item at once (RPC replies). `consumer.next` must not
   * throw.
   */
  consume(consumer: Consumer<T>): void {
    if (this.observer !== undefined || this.waiters.size > 0) throw this.busy();
    this.observer = consumer;
    this.drainToConsumers();
    this.settle();
  }

  // ---- internals -----------------------------------------------------------

  /** @internal A waiting receive gave up (deadline or signal). */
  giveUp(w: Next<T>, error: SwitchboardError): void {
    if (this.waiters.remove(w)) w.reject(error);
  }

  private drainToConsumers(): void {
    for (;;) {
      if (this.values.length === 0) break;
      const w = this.waiters.peek();
      const o = this.observer;
      if (w === undefined && (o === undefined || o.closed === true)) break;
      const i = this.firstReady();
      if (i < 0) break;
      const value = this.takeAt(i) as T;
      if (w !== undefined) {
        this.waiters.shift();
        this.timeouts?.disarm(w);
        w.resolve({ value, done: false });
      } else {
        o!.next(value);
      }
    }
    this.settle();
  }

  /** Index of the first buffered item that may go now, or -1. Almost always 0. */
  private firstReady(): number {
    const n = this.values.length;
    for (let i = 0; i < n; i++) if (this.owner.ready(this.sources.at(i)!)) return i;
    return -1;
  }

  private takeAt(i: number): unknown {
    let value: unknown;
    let source: S;
    let size: number;
    if (i === 0) {
      value = this.values.shift();
      source = this.sources.shift()!;
      size = this.sizes.shift()!;
    } else {
      value = this.values.removeAt(i);
      source = this.sources.removeAt(i)!;
      size = this.sizes.removeAt(i)!;
    }
    this.bytes -= size;
    this.owner.taken(source, size);
    if (this.values.length === 0) this.settle();
    return value;
  }

  /** Once finished and empty: every waiting consumer gets the end (or the failure). */
  private settle(): void {
    if (this.state === 'open' || this.values.length > 0) return;
    for (let w = this.waiters.shift(); w !== undefined; w = this.waiters.shift()) {
      this.timeouts?.disarm(w);
      if (this.failure !== undefined) w.reject(this.failure);
      else w.resolve(DONE);
    }
    const o = this.observer;
    if (o !== undefined) {
      this.observer = undefined;
      if (this.failure !== undefined) o.error(this.failure);
      else o.complete();
    }
  }

  private busy(): SwitchboardError {
    return new SwitchboardError(
      ErrorCode.INTERNAL,
      `${this.name} already has a consumer of another kind (an Observable and next() at once)`,
    );
  }
}
