import { Observable, Subject } from 'rxjs';
import type { Subscriber } from 'rxjs';
import { ErrorCode, SwitchboardError } from '../errors.js';
import { Ring } from './ring.js';
import { validateSync } from './schema.js';
import type { StandardSchemaV1 } from './schema.js';

/** What a receiver does when its buffer is full. */
export type OverflowPolicy = 'block' | 'drop-oldest' | 'drop-newest' | 'fail';

/** Options of a receiver. Sizes are counts of messages or bytes. */
export interface ReceiverOptions<T> {
  /**
   * Messages buffered at most across all senders, plus at most one per
   * sender (a sender out of credit always gets enough for one message, so
   * senders sitting on their credit cannot starve it). Default 65536.
   */
  readonly capacity?: number;
  /**
   * Bytes of remote messages buffered at most, plus at most one message per
   * sender (a message larger than the credit left still goes). Local
   * messages are not encoded and not counted. Default 16 MiB.
   */
  readonly capacityBytes?: number;
  /**
   * Credit window per sender, in messages. Default 16384: a sender may run
   * this far ahead, which keeps a pipe of small messages full across the
   * round trip that returns credit (1024 measured at half the throughput).
   */
  readonly window?: number;
  /** Credit window per sender, in bytes. Default 8 MiB (keeps 64 KiB messages streaming at full speed). */
  readonly windowBytes?: number;
  /**
   * `block` (default): senders wait for credit, nothing is ever dropped.
   * `drop-oldest` / `drop-newest`: senders never wait; a full buffer drops
   * (counted, reported on `errors$` and the switchboard's `events$`).
   * `fail`: a full buffer fails the receiver with ERR_SB_OVERFLOW.
   */
  readonly overflow?: OverflowPolicy;
  /** Validator (Standard Schema); a message it refuses is an error on `errors$`, never a crash. */
  readonly schema?: StandardSchemaV1<unknown, T>;
  /**
   * The receiver ends (iteration completes) once this many senders have
   * connected and all of them have closed. Default: 1 for anonymous
   * channels, never for named receivers.
   */
  readonly expectSenders?: number;
}

export const DEFAULT_RECEIVER_OPTIONS = Object.freeze({
  capacity: 65_536,
  capacityBytes: 16 * 1024 * 1024,
  window: 16_384,
  windowBytes: 8 * 1024 * 1024,
  overflow: 'block',
});

/** Credit beyond which a lossy (non-blocking) stream never waits. */
export const UNLIMITED_CREDIT = 0x3fff_ffff;

/**
 * The receiving end of one (sender, receiver) stream, seen from the
 * receiver. Local streams call the sender directly; remote ones send frames.
 */
export interface Inlet {
  /** Messages the sender may still send (granted, not yet used). */
  credit: number;
  creditBytes: number;
  /** Messages taken by the application, cumulative. */
  delivered: number;
  /** Tells the sender: more credit, and how many were delivered so far. */
  grant(messages: number, bytes: number, delivered: number): void;
  /**
   * `delivered` grew and no grant may carry it for a while: a remote inlet
   * tells the sender soon, so that if this node dies, few messages actually
   * delivered are reported as not delivered.
   */
  deliveredChanged?(): void;
  /**
   * Tells the sender the receiver is gone. `dropped`: messages from this
   * inlet that were buffered and never taken (a local sender has no other
   * way to learn they were not delivered).
   */
  end(error: SwitchboardError, dropped?: unknown[]): void;
}

/** Counters of one receiver. */
export interface ReceiverStats {
  readonly name: string;
  readonly queued: number;
  readonly queuedBytes: number;
  readonly received: number;
  readonly delivered: number;
  readonly dropped: number;
  readonly invalid: number;
  readonly senders: number;
}

/** Hooks from a receiver back to the hub that owns it. */
export interface ReceiverHost {
  /** Called once when the receiver closes or ends. */
  receiverClosed(receiver: Receiver<unknown>): void;
  /** Reports drops on the switchboard's `events$`. */
  reportDrop(channel: string, count: number, reason: string): void;
}

const EMPTY_RESULT: IteratorResult<never> = Object.freeze({
  value: undefined,
  done: true,
}) as IteratorResult<never>;

/**
 * The receiving end of a channel: an `AsyncIterable<T>` and, through
 * `observable()`, an rxjs `Observable<T>` (one consumer at a time). Memory
 * is bounded: at most `capacity` messages and `capacityBytes` bytes are
 * buffered, because senders only send within the credit granted here.
 */
export class Receiver<T> implements AsyncIterable<T> {
  /** Errors of this endpoint that do not end it: undecodable or invalid messages, drops. */
  readonly errors$: Observable<SwitchboardError>;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly values = new Ring<unknown>(64);
  private readonly sources = new Ring<Inlet>(64);
  private readonly sizes = new Ring<number>(64);
  private readonly inlets = new Set<Inlet>();
  private readonly starved = new Set<Inlet>();
  private readonly capacity: number;
  private readonly capacityBytes: number;
  private readonly window: number;
  private readonly windowBytes: number;
  readonly overflow: OverflowPolicy;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly expectSenders: number;
  private queuedBytes = 0;
  private outstanding = 0;
  private outstandingBytes = 0;
  private everOpened = 0;
  private received = 0;
  private deliveredCount = 0;
  private dropped = 0;
  private invalid = 0;
  private state: 'open' | 'ended' | 'closed' = 'open';
  private failure: SwitchboardError | undefined;
  private waiter:
    { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private observer: Subscriber<T> | undefined;

  constructor(
    /** Channel name for stats and errors (`"jobs"`, or `#<id>` when anonymous). */
    readonly name: string,
    /** This receiver's id on its node. */
    readonly id: number,
    /** The node that owns it. */
    readonly node: number,
    private readonly host: ReceiverHost,
    options: ReceiverOptions<T> = {},
    defaultExpectSenders = Number.POSITIVE_INFINITY,
  ) {
    const d = DEFAULT_RECEIVER_OPTIONS;
    this.capacity = positive(options.capacity ?? d.capacity, 'capacity');
    this.capacityBytes = positive(options.capacityBytes ?? d.capacityBytes, 'capacityBytes');
    this.window = Math.min(positive(options.window ?? d.window, 'window'), this.capacity);
    this.windowBytes = Math.min(
      positive(options.windowBytes ?? d.windowBytes, 'windowBytes'),
      this.capacityBytes,
    );
    this.overflow = options.overflow ?? d.overflow;
    this.schema = options.schema;
    this.expectSenders = options.expectSenders ?? defaultExpectSenders;
    this.errors$ = this.errorSubject.asObservable();
  }

  /** True once closed by its owner, ended by its senders, or failed. */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Messages buffered now. */
  get queued(): number {
    return this.values.length;
  }

  /** A snapshot of this receiver's counters. */
  stats(): ReceiverStats {
    return {
      name: this.name,
      queued: this.values.length,
      queuedBytes: this.queuedBytes,
      received: this.received,
      delivered: this.deliveredCount,
      dropped: this.dropped,
      invalid: this.invalid,
      senders: this.inlets.size,
    };
  }

  // ---- consuming ---------------------------------------------------------

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve(EMPTY_RESULT);
      },
    };
  }

  /** The next message; `done` once the receiver ended and its buffer is empty. */
  next(): Promise<IteratorResult<T>> {
    if (this.values.length > 0) return Promise.resolve({ value: this.take(), done: false });
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.state !== 'open') return Promise.resolve(EMPTY_RESULT);
    if (this.waiter !== undefined || this.observer !== undefined) {
      return Promise.reject(
        new SwitchboardError(ErrorCode.INTERNAL, `receiver ${this.name} already has a consumer`),
      );
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The messages as an Observable; completes when the receiver ends. One subscriber at a time. */
  observable(): Observable<T> {
    return new Observable<T>((subscriber) => {
      if (this.observer !== undefined || this.waiter !== undefined) {
        subscriber.error(
          new SwitchboardError(ErrorCode.INTERNAL, `receiver ${this.name} already has a consumer`),
        );
        return undefined;
      }
      this.observer = subscriber;
      while (this.values.length > 0 && this.observer === subscriber && !subscriber.closed) {
        subscriber.next(this.take());
      }
      this.settleIfDone();
      return () => {
        if (this.observer === subscriber) this.observer = undefined;
      };
    });
  }

  /** Closes the receiver: buffered messages are dropped, senders get ERR_SB_NO_RECEIVER. Idempotent. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const error = new SwitchboardError(ErrorCode.NO_RECEIVER, `receiver ${this.name} closed`);
    // Buffered messages are dropped: hand each back to its inlet, so its sender hears of it.
    const dropped = new Map<Inlet, unknown[]>();
    const values = this.values.drain();
    const sources = this.sources.drain();
    for (let i = 0; i < values.length; i++) {
      const src = sources[i]!;
      const list = dropped.get(src);
      if (list === undefined) dropped.set(src, [values[i]]);
      else list.push(values[i]);
    }
    for (const inlet of this.inlets) inlet.end(error, dropped.get(inlet));
    this.inlets.clear();
    this.starved.clear();
    this.sizes.drain();
    this.queuedBytes = 0;
    this.settleIfDone();
    this.host.receiverClosed(this as Receiver<unknown>);
    this.errorSubject.complete();
  }

  // ---- fed by the hub ----------------------------------------------------

  /** A sender connected: grant its first credit. */
  attach(inlet: Inlet): void {
    if (this.state !== 'open') {
      inlet.end(new SwitchboardError(ErrorCode.NO_RECEIVER, `receiver ${this.name} is closed`));
      return;
    }
    this.inlets.add(inlet);
    this.everOpened++;
    if (this.overflow !== 'block') {
      inlet.credit = UNLIMITED_CREDIT;
      inlet.creditBytes = UNLIMITED_CREDIT;
      inlet.grant(UNLIMITED_CREDIT, UNLIMITED_CREDIT, 0);
      return;
    }
    this.refill(inlet, true);
  }

  /** A sender closed (or its node went away). */
  detach(inlet: Inlet): void {
    if (!this.inlets.delete(inlet)) return;
    this.starved.delete(inlet);
    this.outstanding -= Math.max(0, Math.min(inlet.credit, UNLIMITED_CREDIT - 1));
    this.outstandingBytes -= Math.max(0, Math.min(inlet.creditBytes, UNLIMITED_CREDIT - 1));
    if (this.overflow !== 'block') this.outstanding = this.outstandingBytes = 0;
    inlet.credit = inlet.creditBytes = 0;
    if (this.state === 'open' && this.inlets.size === 0 && this.everOpened >= this.expectSenders) {
      this.state = 'ended';
      this.settleIfDone();
      this.host.receiverClosed(this as Receiver<unknown>);
    }
  }

  /**
   * False when `inlet` sent beyond the credit granted to it: only a peer that
   * ignores the protocol does that, and buffering it would unbound memory.
   */
  withinCredit(inlet: Inlet): boolean {
    return this.overflow !== 'block' || (inlet.credit > 0 && inlet.creditBytes > 0);
  }

  /** A message arrived on `inlet` (already decoded; `bytes` is its encoded size, 0 when local). */
  push(value: unknown, inlet: Inlet, bytes: number): void {
    if (this.state === 'closed' || !this.inlets.has(inlet)) return;
    this.received++;
    if (this.overflow === 'block') {
      inlet.credit--;
      this.outstanding--;
      const before = Math.max(0, inlet.creditBytes);
      inlet.creditBytes -= bytes;
      this.outstandingBytes -= before - Math.max(0, inlet.creditBytes);
    }
    if (this.schema !== undefined) {
      try {
        value = validateSync(this.schema, value, `receiver ${this.name}`);
      } catch (err) {
        this.invalid++;
        this.consumed(inlet, bytes, false);
        this.error(err as SwitchboardError);
        return;
      }
    }
    if (this.values.length === 0) {
      if (this.waiter !== undefined) {
        const w = this.waiter;
        this.waiter = undefined;
        this.consumed(inlet, bytes, true);
        w.resolve({ value: value as T, done: false });
        return;
      }
      if (this.observer !== undefined) {
        this.consumed(inlet, bytes, true);
        this.observer.next(value as T);
        return;
      }
    }
    if (this.overflow !== 'block' && this.values.length >= this.capacity) {
      if (!this.overflowed(inlet)) return;
    }
    this.values.push(value);
    this.sources.push(inlet);
    this.sizes.push(bytes);
    this.queuedBytes += bytes;
  }

  /** A message on this endpoint could not be decoded: an error for this channel only. */
  rejectMessage(inlet: Inlet, bytes: number, error: SwitchboardError): void {
    if (this.state === 'closed' || !this.inlets.has(inlet)) return;
    this.received++;
    this.invalid++;
    if (this.overflow === 'block') {
      inlet.credit--;
      this.outstanding--;
      const before = Math.max(0, inlet.creditBytes);
      inlet.creditBytes -= bytes;
      this.outstandingBytes -= before - Math.max(0, inlet.creditBytes);
    }
    this.consumed(inlet, bytes, false);
    this.error(error);
  }

  /** Fails the receiver: iteration rejects with `error`. */
  fail(error: SwitchboardError): void {
    if (this.state === 'closed') return;
    this.failure = error;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(error);
    }
    this.observer?.error(error);
    this.observer = undefined;
    this.close();
  }

  // ---- internals ---------------------------------------------------------

  private overflowed(inlet: Inlet): boolean {
    this.dropped++;
    switch (this.overflow) {
      case 'drop-newest':
        this.countDrop('buffer full, newest dropped');
        inlet.delivered++;
        return false;
      case 'drop-oldest': {
        this.values.shift();
        const src = this.sources.shift()!;
        this.queuedBytes -= this.sizes.shift()!;
        src.delivered++;
        this.countDrop('buffer full, oldest dropped');
        return true;
      }
      default:
        this.fail(
          new SwitchboardError(
            ErrorCode.OVERFLOW,
            `receiver ${this.name} overflowed its ${this.capacity}-message buffer`,
          ),
        );
        return false;
    }
  }

  private countDrop(reason: string): void {
    this.host.reportDrop(this.name, 1, reason);
  }

  private take(): T {
    const value = this.values.shift() as T;
    const inlet = this.sources.shift()!;
    const bytes = this.sizes.shift()!;
    this.queuedBytes -= bytes;
    this.consumed(inlet, bytes, true);
    if (this.values.length === 0) this.settleIfDone();
    return value;
  }

  /** Accounting after a message left the buffer (or never entered it). */
  private consumed(inlet: Inlet, _bytes: number, delivered: boolean): void {
    if (delivered) this.deliveredCount++;
    inlet.delivered++;
    if (this.overflow !== 'block') return;
    if (this.inlets.has(inlet)) this.refill(inlet, false);
    if (this.starved.size > 0) for (const s of this.starved) if (s !== inlet) this.refill(s, false);
    inlet.deliveredChanged?.();
  }

  /** Grants credit when worthwhile and capacity allows; returns true when granted. */
  private refill(inlet: Inlet, first: boolean): boolean {
    const want = this.window - Math.max(0, inlet.credit);
    const wantBytes = this.windowBytes - Math.max(0, inlet.creditBytes);
    // Batch credit: top up once half the window is used (or the sender is stuck).
    if (
      !first &&
      want < this.window / 2 &&
      inlet.credit > 0 &&
      wantBytes < this.windowBytes / 2 &&
      inlet.creditBytes > 0
    ) {
      return false;
    }
    const free = this.capacity - this.values.length - this.outstanding;
    const freeBytes = this.capacityBytes - this.queuedBytes - this.outstandingBytes;
    let g = Math.max(0, Math.min(want, free));
    let gb = Math.max(0, Math.min(wantBytes, freeBytes));
    // Liveness: credit once granted is never taken back, so senders that sit
    // on theirs (idle, or done) could hold the whole capacity and leave this
    // one waiting forever while the buffer is empty. A sender out of credit
    // therefore always gets enough for one message (one byte of byte credit
    // lets one message of any size go). It gets that again only once the
    // message was taken, so the buffer exceeds its bounds by at most one
    // message per sender.
    if (g === 0 && inlet.credit <= 0) g = 1;
    // A message larger than the byte credit left may still be sent (so any
    // size gets through), which leaves the inlet in debt. Forgive the debt:
    // those bytes are counted in `queuedBytes` while the message waits, and
    // a sender kept in debt would never be granted anything again.
    const debt = Math.max(0, -inlet.creditBytes);
    if (gb === 0 && inlet.creditBytes + debt <= 0) gb = 1;
    if (g > 0 || gb > 0 || debt > 0) {
      inlet.credit += g;
      inlet.creditBytes += debt + gb;
      this.outstanding += g;
      this.outstandingBytes += gb;
    }
    // A sender out of either kind of credit waits for capacity to free up.
    if (inlet.credit <= 0 || inlet.creditBytes <= 0) this.starved.add(inlet);
    else this.starved.delete(inlet);
    if (g > 0 || gb > 0 || debt > 0 || first) inlet.grant(g, debt + gb, inlet.delivered);
    return g > 0 || gb > 0;
  }

  private error(err: SwitchboardError): void {
    this.errorSubject.next(err);
  }

  private settleIfDone(): void {
    if (this.values.length > 0 || this.state === 'open') return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      if (this.failure !== undefined) w.reject(this.failure);
      else w.resolve(EMPTY_RESULT);
    }
    if (this.observer !== undefined && this.failure === undefined) {
      const o = this.observer;
      this.observer = undefined;
      o.complete();
    }
  }
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new SwitchboardError(
      ErrorCode.INVALID_OPTION,
      `invalid option ${name}: must be a positive integer`,
    );
  }
  return value;
}
