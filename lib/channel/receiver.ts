/**
 * The receiving end of a channel, on the core's one {@link Queue}: credit
 * per sender (flow control), the overflow policy, validation, and how it
 * ends: `done` when its senders closed cleanly or its owner closed it, a
 * {@link PeerLostError} naming the node when a sender's node was lost
 * (docs/guide.md, "Guarantees").
 *
 * One file: the credit accounting, the overflow policy and the ways a
 * receiver ends all update the same counters as each message arrives and
 * leaves.
 */
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import { ErrorCode, OptionError, PeerLostError, SwitchboardError } from '../errors.js';
import { Headed } from './envelope.js';
import { NO_HEADERS } from './headers.js';
import type { Headers } from './headers.js';
import { Queue } from './queue.js';
import type { Consumer, QueueOwner, ReceiveOptions } from './queue.js';
import { validateSync } from './schema.js';
import type { StandardSchemaV1 } from './schema.js';
import { receiveStart, receiveTrace } from './tracing.js';
import type { Timeouts } from './waits.js';

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
   * (counted, reported on the switchboard's `events$`).
   * `fail`: a full buffer fails the receiver with ERR_SB_OVERFLOW.
   */
  readonly overflow?: OverflowPolicy;
  /** Validator (Standard Schema); a message it refuses is an error on `errors$` (and its sender's), never a crash. */
  readonly schema?: StandardSchemaV1<unknown, T>;
  /**
   * The receiver ends (iteration completes) once this many senders have
   * connected and all of them have closed. Default: 1 for anonymous
   * channels, never for named receivers.
   */
  readonly expectSenders?: number;
  /**
   * Deliver each message as `{ value, headers }` (a `Delivery<T>`: the
   * headers it was sent with, an empty frozen object when none) instead of
   * the value alone. Default false: the value alone, headers or not.
   */
  readonly withHeaders?: boolean;
}

export const DEFAULT_RECEIVER_OPTIONS = Object.freeze({
  capacity: 65_536,
  capacityBytes: 16 * 1024 * 1024,
  window: 16_384,
  windowBytes: 8 * 1024 * 1024,
  overflow: 'block',
});

/** The option names a receiver takes. */
export const RECEIVER_OPTION_NAMES: readonly string[] = [
  'capacity',
  'capacityBytes',
  'window',
  'windowBytes',
  'overflow',
  'schema',
  'expectSenders',
  'withHeaders',
];

/** Credit beyond which a lossy (non-blocking) stream never waits. */
export const UNLIMITED_CREDIT = 0x3fff_ffff;

/**
 * The receiving end of one (sender, receiver) stream, seen from the
 * receiver. Local streams call the sender directly; remote ones send frames.
 */
export interface Inlet {
  /** The sending node. */
  readonly node: number;
  /** Messages the sender may still send (granted, not yet used). */
  credit: number;
  creditBytes: number;
  /** Messages taken by the application (or dropped by a lossy policy), cumulative. */
  delivered: number;
  /** Tells the sender: more credit, and how many were delivered so far. */
  grant(messages: number, bytes: number, delivered: number): void;
  /**
   * `delivered` grew: a remote inlet tells the sender soon, so that if
   * this node dies, few messages actually delivered are reported as not
   * delivered.
   */
  deliveredChanged(): void;
  /**
   * Tells the sender the receiver is gone. `dropped`: messages from this
   * inlet that were buffered and never taken (a local sender has no other
   * way to learn they were not delivered).
   */
  end(error: SwitchboardError, dropped?: unknown[]): void;
  /** Tells the sender that the message it sent last was refused here (`value` when it is at hand). */
  refused(error: SwitchboardError, value?: unknown): void;
  /** False while its messages must not be handed out (a stale session awaiting confirmation). */
  ready(): boolean;
  /** The receiver it feeds now (set and cleared by the receiver: a field read, not a set lookup, per message). */
  attachedTo: Receiver<unknown> | undefined;
}

/** Counters of one receiver. */
export interface ReceiverStats {
  readonly name: string;
  readonly queued: number;
  readonly queuedBytes: number;
  readonly received: number;
  readonly delivered: number;
  /** Dropped by the overflow policy, or buffered from a sender's session that ended first. */
  readonly dropped: number;
  readonly invalid: number;
  readonly senders: number;
}

/** Hooks from a receiver back to the hub that owns it. */
export interface ReceiverHost {
  /** The switchboard's clock for receive deadlines. */
  readonly timeouts: Timeouts;
  /** Called once when the receiver closes or ends. */
  receiverClosed(receiver: Receiver<unknown>): void;
  /** Reports drops on the switchboard's `events$`. */
  reportDrop(channel: string, count: number, reason: string): void;
}

/** A value a receiver's `arrive` hook returns for a message consumed without delivery. */
export const SKIP: unique symbol = Symbol('skip');

/** Internal hooks for patterns built on a receiver. */
export interface ReceiverHooks {
  /**
   * Maps each arriving message before it is buffered (after validation);
   * returns {@link SKIP} to consume it without delivery. A thrown
   * SwitchboardError refuses the message like a failed validation.
   */
  arrive?(value: unknown, from: Inlet): unknown;
}

/**
 * The receiving end of a channel: an `AsyncIterable<T>` and, through
 * `observable()`, an rxjs `Observable<T>` (one consumer at a time). Memory
 * is bounded: at most `capacity` messages and `capacityBytes` bytes are
 * buffered, because senders only send within the credit granted here.
 */
export class Receiver<T> implements AsyncIterable<T>, QueueOwner<Inlet> {
  /** Errors of this endpoint that do not end it: undecodable or invalid messages, drops, lost senders. */
  readonly errors$: Observable<SwitchboardError>;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly queue: Queue<T, Inlet>;
  private readonly inlets = new Set<Inlet>();
  private readonly starved = new Set<Inlet>();
  /** Handles of this receiver sent to other nodes and not yet used there, per node. */
  private readonly shipped = new Map<number, number>();
  private readonly capacity: number;
  private readonly capacityBytes: number;
  private readonly window: number;
  private readonly windowBytes: number;
  readonly overflow: OverflowPolicy;
  private readonly blocking: boolean;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private readonly expectSenders: number;
  private readonly arrive: ((value: unknown, from: Inlet) => unknown) | undefined;
  private readonly withHeaders: boolean;
  /**
   * @internal Made by the application (not by a pattern): a message sent
   * with headers arrives as its value (or a delivery with `withHeaders`),
   * and arrivals are traced on `switchboard:channel:receive`.
   */
  user = false;
  private outstanding = 0;
  private outstandingBytes = 0;
  private everOpened = 0;
  private received = 0;
  private deliveredCount = 0;
  private dropped = 0;
  private invalid = 0;
  private state: 'open' | 'ended' | 'closed' = 'open';

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
    hooks: ReceiverHooks = {},
  ) {
    const d = DEFAULT_RECEIVER_OPTIONS;
    this.capacity = positive(options.capacity ?? d.capacity, 'capacity');
    this.capacityBytes = positive(options.capacityBytes ?? d.capacityBytes, 'capacityBytes');
    this.window = Math.min(positive(options.window ?? d.window, 'window'), this.capacity);
    this.windowBytes = Math.min(
      positive(options.windowBytes ?? d.windowBytes, 'windowBytes'),
      this.capacityBytes,
    );
    const overflow = options.overflow ?? d.overflow;
    if (
      overflow !== 'block' &&
      overflow !== 'drop-oldest' &&
      overflow !== 'drop-newest' &&
      overflow !== 'fail'
    )
      throw new OptionError('overflow', 'must be "block", "drop-oldest", "drop-newest" or "fail"');
    this.overflow = overflow;
    this.blocking = overflow === 'block';
    this.schema = options.schema;
    const expect = options.expectSenders ?? defaultExpectSenders;
    if (expect !== Number.POSITIVE_INFINITY) positive(expect, 'expectSenders');
    this.expectSenders = expect;
    this.arrive = hooks.arrive?.bind(hooks);
    this.withHeaders = options.withHeaders === true;
    this.errors$ = this.errorSubject.asObservable();
    this.queue = new Queue<T, Inlet>(`receiver ${name}`, this, host.timeouts);
  }

  /** True once closed by its owner, ended by its senders, or failed. */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Messages buffered now. */
  get queued(): number {
    return this.queue.length;
  }

  /** A snapshot of this receiver's counters. */
  stats(): ReceiverStats {
    return {
      name: this.name,
      queued: this.queue.length,
      queuedBytes: this.queue.queuedBytes,
      received: this.received,
      delivered: this.deliveredCount,
      dropped: this.dropped,
      invalid: this.invalid,
      senders: this.inlets.size,
    };
  }

  // ---- consuming ---------------------------------------------------------

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.queue[Symbol.asyncIterator]();
  }

  /**
   * The next message; `done` once the receiver ended and its buffer is
   * empty. With `timeoutMs` or `signal`, rejects with ERR_SB_TIMEOUT or
   * ERR_SB_ABORTED when nothing came in time; nothing is lost: a message
   * arriving later goes to the next receive. Rejects with a
   * {@link PeerLostError} when an anonymous receiver's sender was on a node
   * that was lost, and with ERR_SB_CLOSED when the switchboard was destroyed.
   */
  next(options?: ReceiveOptions): Promise<IteratorResult<T, undefined>> {
    return this.queue.next(options);
  }

  /**
   * Between 1 and `max` messages at once: waits (with `timeoutMs` or
   * `signal`, as {@link next}) until at least one is there, then takes what
   * else is buffered, up to `max`. `[]` once the receiver ended and its
   * buffer is empty. For consumers that work in batches: one promise per
   * batch instead of one per message. Rejects as {@link next} does, and
   * with an OptionError for a `max` that is not a positive integer.
   */
  take(max: number, options?: ReceiveOptions): Promise<T[]> {
    return this.queue.take(max, options);
  }

  /**
   * The messages in batches of 1 to `max` ({@link take} in a loop), ending
   * when the receiver ends. Leaving the loop early (`break`) closes the
   * receiver, as leaving a `for await` over the receiver does.
   */
  batches(max: number): AsyncIterable<T[]> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<T[], undefined>> => {
          const batch = await this.queue.take(max);
          return batch.length === 0
            ? { value: undefined, done: true }
            : { value: batch, done: false };
        },
        return: (): Promise<IteratorResult<T[], undefined>> => {
          this.returned();
          return Promise.resolve({ value: undefined, done: true });
        },
      }),
    };
  }

  /** The messages as an Observable; completes when the receiver ends. One subscriber at a time. */
  observable(): Observable<T> {
    return this.queue.observable();
  }

  /** @internal Every message as it comes, without rxjs (see Queue.consume). */
  consume(consumer: Consumer<T>): void {
    this.queue.consume(consumer);
  }

  /**
   * Closes the receiver: buffered messages are dropped (their senders learn
   * they were not delivered), senders get ERR_SB_NO_RECEIVER, iteration
   * ends (`done`). Idempotent.
   */
  close(): void {
    if (this.state === 'closed') return;
    this.shutdown(new SwitchboardError(ErrorCode.NO_RECEIVER, `receiver ${this.name} closed`));
    this.queue.end();
  }

  // ---- QueueOwner --------------------------------------------------------

  /** @internal */
  taken(inlet: Inlet, bytes: number): void {
    this.deliveredCount++;
    this.consumed(inlet, bytes);
  }

  /** @internal */
  ready(inlet: Inlet): boolean {
    return inlet.ready();
  }

  /** @internal */
  returned(): void {
    this.close();
  }

  // ---- fed by the hub ----------------------------------------------------

  /** A sender connected: grant its first credit. */
  attach(inlet: Inlet): void {
    if (this.state !== 'open') {
      inlet.end(new SwitchboardError(ErrorCode.NO_RECEIVER, `receiver ${this.name} is closed`));
      return;
    }
    this.inlets.add(inlet);
    inlet.attachedTo = this as Receiver<unknown>;
    this.everOpened++;
    const shipped = this.shipped.get(inlet.node);
    if (shipped !== undefined) {
      if (shipped <= 1) this.shipped.delete(inlet.node);
      else this.shipped.set(inlet.node, shipped - 1);
    }
    if (!this.blocking) {
      inlet.credit = UNLIMITED_CREDIT;
      inlet.creditBytes = UNLIMITED_CREDIT;
      inlet.grant(UNLIMITED_CREDIT, UNLIMITED_CREDIT, 0);
      return;
    }
    this.refill(inlet, true);
  }

  /** A sender closed cleanly: its buffered messages stay deliverable. */
  detach(inlet: Inlet): void {
    if (!this.forget(inlet)) return;
    this.maybeEnd();
  }

  /**
   * The session of `inlet`'s node ended: what it had buffered here is
   * dropped (its sender reports it as not delivered, so it must never be
   * handed out now), and an anonymous receiver fails with a PeerLostError.
   * With `quiet` (this switchboard is closing) it only lets go.
   */
  lost(inlet: Inlet, error: PeerLostError, quiet = false): void {
    if (!this.inlets.has(inlet)) return;
    const purged = this.queue.remove((s) => s === inlet);
    if (purged.length > 0) {
      this.dropped += purged.length;
      this.host.reportDrop(
        this.name,
        purged.length,
        `not delivered: the session with node ${inlet.node} ended first (${error.message})`,
      );
    }
    this.forget(inlet);
    if (quiet || this.state !== 'open') return;
    this.senderLost(inlet.node, error);
  }

  /** A handle of this receiver went to `node` inside a message: a sender may open from there. */
  shippedTo(node: number): void {
    this.shipped.set(node, (this.shipped.get(node) ?? 0) + 1);
  }

  /** `node`'s session ended: handles shipped there and never used will never be. */
  nodeLost(node: number, error: PeerLostError): void {
    if (!this.shipped.delete(node) || this.state !== 'open') return;
    this.senderLost(node, error);
  }

  /**
   * False when `inlet` sent beyond the credit granted to it: only a peer that
   * ignores the protocol does that, and buffering it would unbound memory.
   */
  withinCredit(inlet: Inlet): boolean {
    return !this.blocking || (inlet.credit > 0 && inlet.creditBytes > 0);
  }

  /**
   * A message arrived on `inlet` (already decoded; `bytes` is its encoded
   * size, 0 when local). `ready` says whether it may be handed out at once.
   * True when a subscriber took it synchronously (Queue.push): the time the
   * bytes were read no longer stands for now.
   */
  push(value: unknown, inlet: Inlet, bytes: number, ready: boolean): boolean {
    if (this.state === 'closed' || inlet.attachedTo !== (this as Receiver<unknown>)) return false;
    this.spend(inlet, bytes);
    // An application's receiver takes the common path unless a message has
    // headers, it delivers them, or arrivals are traced: a call made on
    // every message would stop this one from being inlined into the streams.
    if (this.user && (this.withHeaders || value instanceof Headed || receiveStart.hasSubscribers))
      return this.pushUser(value, inlet, bytes, ready);
    if (this.schema !== undefined || this.arrive !== undefined) {
      value = this.admit(value, inlet, bytes);
      if (value === SKIP) return false;
    }
    if (!this.blocking && this.queue.length >= this.capacity && !this.overflowed(inlet))
      return false;
    return this.queue.push(value, inlet, bytes, ready);
  }

  /**
   * {@link push} for an application's receiver: a message sent with
   * headers arrives as its value (or a delivery), arrivals are traced.
   * Kept out of `push`, which stays as small as the patterns need it.
   */
  private pushUser(value: unknown, inlet: Inlet, bytes: number, ready: boolean): boolean {
    let headers: Headers = NO_HEADERS;
    if (value instanceof Headed) {
      headers = value.headers ?? NO_HEADERS;
      value = value.body;
    }
    if (this.schema !== undefined) {
      value = this.admit(value, inlet, bytes);
      if (value === SKIP) return false;
    }
    if (this.withHeaders) value = { value, headers };
    if (!this.blocking && this.queue.length >= this.capacity && !this.overflowed(inlet))
      return false;
    if (!receiveStart.hasSubscribers) return this.queue.push(value, inlet, bytes, ready);
    const v = value;
    return receiveTrace.traceSync(() => this.queue.push(v, inlet, bytes, ready), {
      channel: this.name,
      node: inlet.node,
      headers,
    });
  }

  /**
   * Validation and the pattern's `arrive` hook (kept out of {@link push},
   * which stays small enough to be inlined): the value to buffer, or SKIP
   * when the message was consumed here (refused, or the hook's own).
   */
  private admit(value: unknown, inlet: Inlet, bytes: number): unknown {
    try {
      if (this.schema !== undefined)
        value = validateSync(this.schema, value, `receiver ${this.name}`);
      if (this.arrive !== undefined) {
        value = this.arrive(value, inlet);
        if (value === SKIP) {
          this.consumed(inlet, bytes);
          return SKIP;
        }
      }
      return value;
    } catch (err) {
      const e =
        err instanceof SwitchboardError
          ? err
          : new SwitchboardError(ErrorCode.INTERNAL, String(err), { cause: err });
      this.invalid++;
      inlet.refused(e, value);
      this.consumed(inlet, bytes);
      this.errorSubject.next(e);
      return SKIP;
    }
  }

  /** A message on this endpoint was refused before decoding (undecodable, oversize). */
  reject(inlet: Inlet, bytes: number, error: SwitchboardError): void {
    if (this.state === 'closed' || !this.inlets.has(inlet)) return;
    this.spend(inlet, bytes);
    this.invalid++;
    inlet.refused(error);
    this.consumed(inlet, bytes);
    this.errorSubject.next(error);
  }

  /** Held messages may be ready now (a session was confirmed). */
  release(): void {
    this.queue.release();
  }

  /**
   * Fails the receiver: iteration rejects with `error`; buffered messages
   * are dropped and handed back (their senders learn they were not
   * delivered); senders get ERR_SB_NO_RECEIVER.
   */
  fail(error: SwitchboardError): void {
    if (this.state === 'closed') return;
    this.shutdown(
      new SwitchboardError(
        ErrorCode.NO_RECEIVER,
        `receiver ${this.name} failed: ${error.message}`,
        {
          cause: error,
        },
      ),
    );
    this.queue.fail(error);
  }

  // ---- internals ---------------------------------------------------------

  private senderLost(node: number, error: PeerLostError): void {
    if (this.expectSenders === Number.POSITIVE_INFINITY) {
      // A named receiver outlives its senders; it says who was lost.
      this.errorSubject.next(error);
      return;
    }
    this.fail(
      new PeerLostError(node, `receiver ${this.name}: a sender on node ${node} was lost`, {
        cause: error,
      }),
    );
  }

  /** Counts an arriving message against its sender's credit. */
  private spend(inlet: Inlet, bytes: number): void {
    this.received++;
    if (!this.blocking) return;
    inlet.credit--;
    this.outstanding--;
    const before = Math.max(0, inlet.creditBytes);
    inlet.creditBytes -= bytes;
    this.outstandingBytes -= before - Math.max(0, inlet.creditBytes);
  }

  private forget(inlet: Inlet): boolean {
    if (!this.inlets.delete(inlet)) return false;
    if (inlet.attachedTo === (this as Receiver<unknown>)) inlet.attachedTo = undefined;
    this.starved.delete(inlet);
    if (this.blocking) {
      this.outstanding -= Math.max(0, inlet.credit);
      this.outstandingBytes -= Math.max(0, inlet.creditBytes);
    }
    inlet.credit = inlet.creditBytes = 0;
    return true;
  }

  private maybeEnd(): void {
    if (this.state === 'open' && this.inlets.size === 0 && this.everOpened >= this.expectSenders) {
      this.state = 'ended';
      this.queue.end();
      this.host.receiverClosed(this as Receiver<unknown>);
      this.errorSubject.complete();
    }
  }

  /** Closes for good with `error` for the senders; buffered messages go back to their inlets. */
  private shutdown(error: SwitchboardError): void {
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    const dropped = new Map<Inlet, unknown[]>();
    for (const e of this.queue.clear()) {
      const list = dropped.get(e.source);
      if (list === undefined) dropped.set(e.source, [e.value]);
      else list.push(e.value);
    }
    for (const inlet of this.inlets) inlet.end(error, dropped.get(inlet));
    // A sender that closed (detached) still counts what it left here.
    for (const [inlet, values] of dropped) if (!this.inlets.has(inlet)) inlet.end(error, values);
    for (const inlet of this.inlets)
      if (inlet.attachedTo === (this as Receiver<unknown>)) inlet.attachedTo = undefined;
    this.inlets.clear();
    this.starved.clear();
    this.shipped.clear();
    if (wasOpen) this.host.receiverClosed(this as Receiver<unknown>);
    this.errorSubject.complete();
  }

  private overflowed(inlet: Inlet): boolean {
    this.dropped++;
    switch (this.overflow) {
      case 'drop-newest':
        this.host.reportDrop(this.name, 1, 'buffer full, newest dropped');
        this.consumed(inlet, 0);
        return false;
      case 'drop-oldest': {
        const oldest = this.queue.shift()!;
        this.host.reportDrop(this.name, 1, 'buffer full, oldest dropped');
        this.consumed(oldest.source, 0);
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

  /** Accounting after a message left the buffer (or never entered it). */
  private consumed(inlet: Inlet, _bytes: number): void {
    inlet.delivered++;
    if (this.blocking) {
      // The batching test of refill, here so that the common case makes no call.
      if (
        inlet.attachedTo === (this as Receiver<unknown>) &&
        !(inlet.credit > this.window / 2 && inlet.creditBytes > this.windowBytes / 2)
      )
        this.refill(inlet, false);
      if (this.starved.size > 0)
        for (const s of this.starved) if (s !== inlet) this.refill(s, false);
    }
    // After the refill: a grant carries the count, and then no report is due.
    inlet.deliveredChanged();
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
    const free = this.capacity - this.queue.length - this.outstanding;
    const freeBytes = this.capacityBytes - this.queue.queuedBytes - this.outstandingBytes;
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
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new OptionError(name, `must be a positive integer, got ${String(value)}`);
  return value;
}
