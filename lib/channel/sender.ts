/**
 * The sending end of a channel: one outlet (MPSC) or one per receiver
 * (MPMC), sends that wait for credit in the core's one wait list (bounded,
 * with deadlines and signals), and the report of every message whose fate
 * became unknown (docs/guide.md, "Guarantees").
 *
 * One file: the three delivery modes, the waiting sends and the reports
 * share the sender's outlets and its state.
 */
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import {
  BatchSendError,
  ErrorCode,
  MessageTooLargeError,
  NotDeliveredError,
  OptionError,
  RefusedError,
  SwitchboardError,
} from '../errors.js';
import { PortableHandle } from '../protocol/codec.js';
import type { HandleRef } from '../protocol/codec.js';
import { Envelope, Headed, withHeaders } from './envelope.js';
import { checkHeaders } from './headers.js';
import type { Headers } from './headers.js';
import type { Picker } from './picker.js';
import { validateSync } from './schema.js';
import type { StandardSchemaV1 } from './schema.js';
import { mutableHeaders, sendStart, sendTrace, traced, tracedHeaders } from './tracing.js';
import type { SendTraceContext } from './tracing.js';
import { Wait, WaitList, abortError, checkTimeout } from './waits.js';
import type { Timeouts, WaitOptions } from './waits.js';

/**
 * The sending end of one (sender, receiver) stream, seen from the sender.
 * A sender has one outlet (MPSC) or one per receiver (MPMC).
 */
export interface Outlet {
  /** The receiver's node and id. */
  readonly node: number;
  readonly receiverId: number;
  /** Messages and bytes this outlet may still send. */
  readonly credit: number;
  readonly creditBytes: number;
  /**
   * `opening` until the receiver's first credit; `closing` once the sender
   * closed while its receiver has not finished with everything sent;
   * `closed` (with `error` when it failed) after.
   */
  readonly state: 'opening' | 'open' | 'closing' | 'closed';
  readonly error: SwitchboardError | undefined;
  /** Messages sent and not yet known to be delivered. */
  readonly inflight: number;
  /** True when the transport can take a message now (link buffer). */
  ready(): boolean;
  /** The largest message the receiving node takes, bytes (Infinity when unknown or local). */
  limit(): number;
  /**
   * Sends one message; the caller checked credit and readiness.
   * @throws ERR_SB_ENCODE or MessageTooLargeError; nothing is sent then
   */
  transmit(value: unknown): void;
  close(): void;
}

/** How a sender spreads messages over its outlets. */
export type DeliveryMode = 'single' | 'one' | 'all';

/** Options of a sender. Times in ms. */
export interface SenderOptions<T> {
  /**
   * How long `send()` may wait before failing: with ERR_SB_NO_RECEIVER when
   * no receiver was there to send to, ERR_SB_TIMEOUT when one was but gave
   * no credit. Default 30000.
   */
  readonly timeoutMs?: number;
  /** Sends waiting at most; more fail at once with ERR_SB_OVERFLOW. Default 1024. */
  readonly maxPending?: number;
  /** Validator (Standard Schema) applied before sending. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

export const DEFAULT_SENDER_OPTIONS = Object.freeze({ timeoutMs: 30_000, maxPending: 1024 });

/** The option names a sender takes. */
export const SENDER_OPTION_NAMES: readonly string[] = ['timeoutMs', 'maxPending', 'schema'];

/** Options of one `send`: a deadline (overrides the sender's `timeoutMs`), a signal, headers. */
export interface SendOptions extends WaitOptions {
  /** Headers the message carries (docs/api.md, "Headers"); a receiver made with `withHeaders` sees them. */
  readonly headers?: Headers;
}

/** Options of one `post` or `trySend`. */
export interface PostOptions {
  /** Headers the message carries (docs/api.md, "Headers"). */
  readonly headers?: Headers;
}

/** What a sender needs from the hub. */
export interface SenderHost {
  /** The switchboard's clock for send deadlines. */
  readonly timeouts: Timeouts;
  /** The switchboard's picker (MPMC `one`). */
  readonly picker: Picker;
  /** Creates the outlets of `sender` (lazily, at its first send). */
  connect(sender: Sender<unknown>): void;
  /** The sender closed for good. */
  senderClosed(sender: Sender<unknown>): void;
  /** Reports messages `post()` could not deliver. */
  reportDrop(channel: string, count: number, reason: string): void;
}

/** Internal hooks for patterns built on a sender. */
export interface SenderHooks {
  /** What the sender's errors and drops name it by (a pattern's own name for the stream); its target by default. */
  readonly label?: string;
  /** Credit or room arrived and waiting sends went out. */
  pumped?(): void;
  /** The sender can never deliver again. */
  failed?(error: SwitchboardError): void;
  /** Messages sent earlier that are not known delivered; true when handled (no `errors$` report). */
  undelivered?(messages: unknown[], error: SwitchboardError): boolean;
  /** A count of messages a lossy stream sent that are not known delivered. */
  lost?(count: number, error: SwitchboardError): void;
}

/** A send (or a queued post) waiting for credit. */
class PendingSend extends Wait {
  constructor(
    private readonly sender: Sender<unknown>,
    readonly value: unknown,
    readonly resolve: (() => void) | undefined,
    readonly reject: ((e: unknown) => void) | undefined,
    readonly timeoutMs: number,
  ) {
    super();
  }

  expired(): void {
    this.sender.gaveUp(this, this.sender.waitError(this.timeoutMs));
  }

  aborted(reason: unknown): void {
    this.sender.gaveUp(this, abortError(`send on ${this.sender.channel}`, reason));
  }
}

const RESOLVED = Promise.resolve();
const NO_HOOKS: SenderHooks = Object.freeze({});

/**
 * The sending end of a channel. `send()` resolves once the message is inside
 * the receiver's flow-control window; `post()` never throws. A `Sender` can
 * travel inside a message and arrives as a working `Sender` on the other side.
 */
export class Sender<T> extends PortableHandle {
  /**
   * What became of messages after `send()` had resolved: a
   * {@link NotDeliveredError} (with the `messages`) when their fate became
   * unknown (the receiving node went away, or the receiver closed, first),
   * or the receiver's refusal of one (undecodable, invalid, too large
   * there), carrying it in `messages` when it is at hand.
   */
  readonly errors$: Observable<SwitchboardError>;
  /** Outlets, managed by the hub. */
  outlets: Outlet[] = [];
  /** @internal Why the last outlet ended with its session: the cause of a wait that ends in vain. */
  lostBy: SwitchboardError | undefined;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly pending = new WaitList<PendingSend>();
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private connected = false;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private failure: SwitchboardError | undefined;
  /** Messages `post()` dropped, including posted messages lost in flight (see {@link undelivered}). */
  dropped = 0;
  /** Messages sent (handed to outlets; once per message in `all` mode). */
  sent = 0;
  /** True once `post()` was used: in-flight losses then also count as drops. */
  private posting = false;
  /**
   * @internal Made by the application (not by a pattern): its sends are
   * traced on `switchboard:channel:send`, and what it reports is the
   * values sent, without their headers.
   */
  user = false;

  constructor(
    private readonly host: SenderHost,
    /** Wire identity: where this sender points. */
    readonly target: HandleRef,
    readonly mode: DeliveryMode,
    options: SenderOptions<T> = {},
    private readonly hooks: SenderHooks = NO_HOOKS,
  ) {
    super();
    this.timeoutMs = checkTimeout(options.timeoutMs) ?? DEFAULT_SENDER_OPTIONS.timeoutMs;
    const maxPending = options.maxPending ?? DEFAULT_SENDER_OPTIONS.maxPending;
    if (!Number.isInteger(maxPending) || maxPending < 1)
      throw new OptionError('maxPending', `must be a positive integer, got ${String(maxPending)}`);
    this.maxPending = maxPending;
    this.schema = options.schema;
    this.errors$ = this.errorSubject.asObservable();
  }

  toHandleRef(): HandleRef {
    return this.target;
  }

  /** Channel name for errors and stats. */
  get channel(): string {
    return this.hooks.label ?? this.target.name ?? `#${this.target.id}@${this.target.node}`;
  }

  /** True once closed (or failed for good). */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** True once nothing more will be sent: closed and drained, or failed. */
  get finished(): boolean {
    return this.state === 'closed';
  }

  /** Sends waiting for credit. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Messages sent and not yet known to be delivered, over every outlet. */
  get inflight(): number {
    let n = 0;
    for (const o of this.outlets) n += o.inflight;
    return n;
  }

  /**
   * Sends `value`. Resolves when it is within the receiver's window (at once
   * when credit is available). Rejects with ERR_SB_CLOSED (sender closed),
   * ERR_SB_NO_RECEIVER (the receiver closed, or none was there within the
   * deadline), ERR_SB_NOT_DELIVERED (its node went away first),
   * ERR_SB_TIMEOUT (no credit in time), ERR_SB_ABORTED, ERR_SB_OVERFLOW (too
   * many waiting sends), ERR_SB_VALIDATION, ERR_SB_ENCODE (naming where the
   * bad value sits) or ERR_SB_MESSAGE_TOO_LARGE (over the receiving node's
   * `maxMessageSize`).
   */
  send(value: T, options?: SendOptions): Promise<void> {
    // The common case in a few lines, so that it is inlined into the caller's loop.
    if (
      this.state === 'open' &&
      this.schema === undefined &&
      this.connected &&
      this.pending.size === 0 &&
      options?.headers === undefined &&
      !(this.user && sendStart.hasSubscribers)
    ) {
      try {
        if (this.tryTransmit(value)) return RESOLVED;
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return this.sendLater(value, options);
    }
    return this.sendSlow(value, options);
  }

  /**
   * Sends `values` in order, each as by {@link send}, and resolves once all
   * are within the receiver's window: one promise for the batch instead of
   * one per value. Rejects with a {@link BatchSendError} at the first value
   * that could not be sent (its `code` is that value's error code, `sent`
   * says how many went out); the values after it are not sent.
   */
  async sendMany(values: Iterable<T>, options?: SendOptions): Promise<void> {
    let sent = 0;
    try {
      for (const value of values) {
        const p = this.send(value, options);
        if (p !== RESOLVED) await p;
        sent++;
      }
    } catch (err) {
      throw new BatchSendError(
        sent,
        err instanceof SwitchboardError
          ? err
          : new SwitchboardError(ErrorCode.INTERNAL, String(err), { cause: err }),
      );
    }
  }

  /** Kept out of {@link send}, which stays small enough to be inlined. */
  private sendSlow(value: T, options: SendOptions | undefined): Promise<void> {
    if (this.user && sendStart.hasSubscribers) {
      const ctx = this.traceContext('send', options?.headers);
      const h = tracedHeaders(options?.headers, ctx);
      return traced(sendTrace, ctx, () => this.sendChecked(value, options, h));
    }
    return this.sendChecked(value, options, options?.headers);
  }

  private traceContext(operation: SendTraceContext['operation'], h: unknown): SendTraceContext {
    return {
      channel: this.channel,
      node: this.mode === 'single' ? this.target.node : undefined,
      operation,
      headers: mutableHeaders(h),
    };
  }

  /** `value` checked against the schema, with `headers` checked and attached. */
  private prepare(value: T, headers: unknown): unknown {
    let v: unknown = value;
    if (this.schema !== undefined) v = validateSync(this.schema, value, `sender ${this.channel}`);
    if (headers !== undefined) {
      const h = checkHeaders(headers);
      if (h !== undefined) v = withHeaders(v, h);
    }
    return v;
  }

  private sendChecked(value: T, options: SendOptions | undefined, headers: unknown): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.closedError());
    let v: unknown;
    try {
      v = this.prepare(value, headers);
      if (!this.connected) this.connect();
      if (this.pending.size === 0 && this.tryTransmit(v)) return RESOLVED;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.sendLater(v, options);
  }

  /** A send that could not go at once: it waits for credit (or fails now). */
  private sendLater(v: unknown, options: SendOptions | undefined): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(
        new SwitchboardError(
          ErrorCode.OVERFLOW,
          `sender ${this.channel}: ${this.maxPending} sends already waiting for credit`,
        ),
      );
    }
    let timeoutMs: number;
    try {
      timeoutMs = checkTimeout(options?.timeoutMs) ?? this.timeoutMs;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const signal = options?.signal;
    if (signal?.aborted === true)
      return Promise.reject(abortError(`send on ${this.channel}`, signal.reason));
    return new Promise<void>((resolve, reject) => {
      const p = new PendingSend(this, v, resolve, reject, timeoutMs);
      this.host.timeouts.arm(p, timeoutMs, signal);
      this.pending.push(p);
    });
  }

  /**
   * Sends `value` now if credit and the link allow, without a promise:
   * true when it went out, false when it would have to wait (nothing is
   * queued then; `send()` waits instead). For hot loops that check credit
   * themselves.
   * @throws ERR_SB_CLOSED, ERR_SB_VALIDATION, ERR_SB_ENCODE, ERR_SB_MESSAGE_TOO_LARGE
   */
  trySend(value: T, options?: PostOptions): boolean {
    if (this.user && sendStart.hasSubscribers) {
      const ctx = this.traceContext('trySend', options?.headers);
      const h = tracedHeaders(options?.headers, ctx);
      return traced(sendTrace, ctx, () => this.trySendNow(value, h));
    }
    return this.trySendNow(value, options?.headers);
  }

  private trySendNow(value: T, headers: unknown): boolean {
    if (this.state !== 'open') throw this.closedError();
    const v = this.prepare(value, headers);
    if (!this.connected) this.connect();
    return this.pending.size === 0 && this.tryTransmit(v);
  }

  /**
   * Fire-and-forget: sends when credit allows, queues within `maxPending`
   * otherwise, and never throws. What cannot be delivered is counted in
   * `dropped` and reported on the switchboard's `events$`. Bad `headers`
   * are the one exception: an OptionError is thrown (a programming error,
   * never a silent drop).
   * @throws {OptionError} (`headers`) for headers that are not text to text
   */
  post(value: T, options?: PostOptions): void {
    const headers = options?.headers;
    if (headers !== undefined) checkHeaders(headers);
    if (this.user && sendStart.hasSubscribers) {
      const ctx = this.traceContext('post', headers);
      traced(sendTrace, ctx, () => this.postNow(value, tracedHeaders(headers, ctx)));
      return;
    }
    this.postNow(value, headers);
  }

  private postNow(value: T, headers: unknown): void {
    this.posting = true;
    if (this.state !== 'open' || this.failure !== undefined)
      return this.drop('sender closed or failed');
    let v: unknown;
    try {
      v = this.prepare(value, headers);
      if (!this.connected) this.connect();
      if (this.pending.size === 0 && this.tryTransmit(v)) return;
    } catch (err) {
      return this.drop(`cannot send: ${(err as Error).message}`);
    }
    if (this.pending.size >= this.maxPending) return this.drop('no credit and the queue is full');
    this.pending.push(new PendingSend(this, v, undefined, undefined, Number.POSITIVE_INFINITY));
  }

  /**
   * Creates the outlets now instead of at the first send, so that their
   * credit is known before anything is sent (patterns that pick a receiver
   * by credit). Idempotent; a no-op once closed.
   */
  open(): void {
    if (this.state === 'open' && !this.connected) this.connect();
  }

  /**
   * Closes the sender: no new sends; those already waiting still go out as
   * credit allows, then the receiver learns this sender hung up. Idempotent.
   */
  close(): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.finishIfDrained();
  }

  // ---- driven by the hub -------------------------------------------------

  /** Credit arrived, an outlet opened, or the link drained: send what waits. */
  pump(): void {
    for (let p = this.pending.peek(); p !== undefined; p = this.pending.peek()) {
      let sent: boolean;
      try {
        sent = this.tryTransmit(p.value);
      } catch (err) {
        this.settle(p);
        if (p.reject !== undefined) p.reject(err);
        else this.drop(`cannot send: ${(err as Error).message}`);
        continue;
      }
      if (!sent) break;
      this.settle(p);
      p.resolve?.();
    }
    this.hooks.pumped?.();
    this.finishIfDrained();
  }

  /**
   * The sender can never deliver again (receiver gone, or its node's
   * incarnation ended and the target cannot be reached again). Waiting sends
   * fail with `error`.
   */
  fail(error: SwitchboardError): void {
    if (this.state === 'closed') return;
    this.failure = error;
    for (const p of this.pending.drain()) {
      this.host.timeouts.disarm(p);
      if (p.reject !== undefined) p.reject(error);
      else this.drop(error.message);
    }
    this.finish();
    this.hooks.failed?.(error);
  }

  /** The receiver refused a message this sender sent (undecodable, invalid or too large there). */
  refused(error: SwitchboardError, value?: unknown): void {
    if (this.posting) {
      this.dropped++;
      this.host.reportDrop(this.channel, 1, `refused by the receiver: ${error.message}`);
    }
    this.errorSubject.next(
      new RefusedError<T>(error.code, this.target.node, `${this.channel}: ${error.message}`, {
        cause: error,
        messages: value === undefined ? [] : [this.sentValue(value) as T],
      }),
    );
  }

  /**
   * Reports messages sent earlier whose fate is unknown, on `errors$`. A
   * sender used with `post()` also counts them in `dropped` and reports them
   * as a `drop` event: a fire-and-forget caller has no promise to learn it
   * from. (A sender mixing `send()` and `post()` counts all of them.)
   */
  undelivered(messages: unknown[], error: SwitchboardError): void {
    if (messages.length === 0) return;
    if (this.hooks.undelivered?.(messages, error) === true) return;
    if (this.posting) {
      this.dropped += messages.length;
      this.host.reportDrop(this.channel, messages.length, `not delivered: ${error.message}`);
    }
    this.errorSubject.next(
      new NotDeliveredError<T>(
        error instanceof NotDeliveredError ? error.node : this.target.node,
        `${messages.length} message(s) on ${this.channel} not known to be delivered: ${error.message}`,
        {
          cause: error,
          messages: (this.user ? messages.map((m) => this.sentValue(m)) : messages) as T[],
        },
      ),
    );
  }

  /** What the application sent, for its reports: a value sent with headers without them. */
  private sentValue(m: unknown): unknown {
    return this.user && m instanceof Headed && m.head.length === 0 ? m.body : m;
  }

  /** A lossy stream ended with `count` messages not known to be delivered (no copies kept). */
  lost(count: number, error: SwitchboardError): void {
    if (count === 0) return;
    if (this.hooks.lost !== undefined) {
      this.hooks.lost(count, error);
      return;
    }
    if (this.posting) {
      this.dropped += count;
      this.host.reportDrop(this.channel, count, `not delivered: ${error.message}`);
    }
    this.errorSubject.next(
      new NotDeliveredError(
        this.target.node,
        `${count} message(s) on ${this.channel} not known to be delivered: ${error.message}`,
        { cause: error },
      ),
    );
  }

  // ---- the waiting list --------------------------------------------------

  /** @internal A waiting send gave up. */
  gaveUp(p: PendingSend, error: SwitchboardError): void {
    if (!this.pending.remove(p)) return;
    if (p.reject !== undefined) p.reject(error);
    else this.drop(error.message);
    this.finishIfDrained();
  }

  /**
   * @internal Why a send waited in vain: no receiver to send to, or no
   * credit from it. When the receivers' node went away meanwhile, its
   * loss is the cause.
   */
  waitError(timeoutMs: number): SwitchboardError {
    if (this.mode === 'single' && this.outlets.length === 0) {
      // No session with the node: nothing is known about its receivers.
      return new SwitchboardError(
        ErrorCode.TIMEOUT,
        `sender ${this.channel}: node ${this.target.node} was unreachable for ${timeoutMs} ms`,
        this.lostBy === undefined ? undefined : { cause: this.lostBy },
      );
    }
    if (!this.outlets.some((o) => o.state === 'open')) {
      const where = this.mode === 'single' ? ` on node ${this.target.node}` : '';
      return new SwitchboardError(
        ErrorCode.NO_RECEIVER,
        `sender ${this.channel}: no receiver ${this.channel}${where} within ${timeoutMs} ms`,
        this.lostBy === undefined ? undefined : { cause: this.lostBy },
      );
    }
    return new SwitchboardError(
      ErrorCode.TIMEOUT,
      `sender ${this.channel}: no credit within ${timeoutMs} ms (the receiver is not keeping up)`,
    );
  }

  // ---- internals ---------------------------------------------------------

  private connect(): void {
    this.connected = true;
    this.host.connect(this);
  }

  private tryTransmit(value: unknown): boolean {
    const outlets = this.outlets;
    if (this.mode === 'single') {
      const o = outlets[0];
      if (o === undefined || !sendable(o)) return false;
      o.transmit(value);
      this.sent++;
      return true;
    }
    if (this.mode === 'all') {
      let open = 0;
      for (const o of outlets) {
        if (o.state === 'closed') continue;
        // An outlet still opening is a receiver that exists: wait for it
        // rather than broadcast past it (it would miss the message for good).
        if (!sendable(o)) return false;
        open++;
      }
      if (open === 0) return false;
      // Encoded once for every receiver, and refused before any gets it.
      const e = new Envelope(value);
      let size = -1;
      for (const o of outlets) {
        if (o.state !== 'open') continue;
        const limit = o.limit();
        if (limit === Number.POSITIVE_INFINITY) continue;
        if (size < 0) size = e.encode().length;
        if (size > limit)
          throw new MessageTooLargeError(o.node, size, limit, `sender ${this.channel}`);
      }
      for (const o of outlets) if (o.state === 'open') o.transmit(e);
      this.sent++;
      return true;
    }
    // 'one': the receiver with the most credit (least loaded), ties in turn,
    // healthy nodes first. A receiver still opening has unknown credit: wait
    // for it (one round trip), or a burst would all go to whichever receiver
    // answered first.
    for (const o of outlets) if (o.state === 'opening') return false;
    const best = this.host.picker.pick(outlets, 'least-loaded', isOpen, negativeCredit, sendable);
    if (best === undefined) return false;
    best.transmit(value);
    this.sent++;
    return true;
  }

  private settle(p: PendingSend): void {
    this.pending.remove(p);
    this.host.timeouts.disarm(p);
  }

  private finishIfDrained(): void {
    if (this.state === 'closing' && this.pending.size === 0) this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const o of this.outlets) o.close();
    this.host.senderClosed(this);
    this.outletSettled();
  }

  /**
   * An outlet of a closed sender finished: `errors$` completes once none
   * can report anything more (a closing outlet still can).
   */
  outletSettled(): void {
    if (this.state !== 'closed') return;
    for (const o of this.outlets) if (o.state === 'closing') return;
    this.errorSubject.complete();
  }

  private drop(reason: string): void {
    this.dropped++;
    this.host.reportDrop(this.channel, 1, reason);
  }

  private closedError(): SwitchboardError {
    return (
      this.failure ?? new SwitchboardError(ErrorCode.CLOSED, `sender ${this.channel} is closed`)
    );
  }
}

function isOpen(o: Outlet): boolean {
  return o.state === 'open';
}

function sendable(o: Outlet): boolean {
  return o.state === 'open' && o.credit > 0 && o.creditBytes > 0 && o.ready();
}

function negativeCredit(o: Outlet): number {
  return -o.credit;
}
