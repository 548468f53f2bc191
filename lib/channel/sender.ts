import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import { ErrorCode, NotDeliveredError, SwitchboardError } from '../errors.js';
import { PortableHandle } from '../protocol/codec.js';
import type { HandleRef } from '../protocol/codec.js';
import { Ring } from './ring.js';
import { validateSync } from './schema.js';
import type { StandardSchemaV1 } from './schema.js';

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
  /** `opening` until the receiver's first credit; `closed` with `error` after. */
  readonly state: 'opening' | 'open' | 'closed';
  readonly error: SwitchboardError | undefined;
  /** Messages sent and not yet known to be delivered. */
  readonly inflight: number;
  /** True when the transport can take a message now (link buffer). */
  ready(): boolean;
  /** Sends one message; the caller checked credit and readiness. */
  transmit(value: unknown): void;
  /** Sends as many as credit allows without waiting (lossy patterns); false when it could not. */
  close(): void;
}

/** How a sender spreads messages over its outlets. */
export type DeliveryMode = 'single' | 'one' | 'all';

/** Options of a sender. Times in ms. */
export interface SenderOptions<T> {
  /** How long `send()` may wait for credit before failing with ERR_SB_TIMEOUT. Default 30000. */
  readonly timeoutMs?: number;
  /** Sends waiting for credit at most; more fail at once with ERR_SB_OVERFLOW. Default 1024. */
  readonly maxPending?: number;
  /** Validator (Standard Schema) applied before sending. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

export const DEFAULT_SENDER_OPTIONS = Object.freeze({ timeoutMs: 30_000, maxPending: 1024 });

/** Options of one `send`. */
export interface SendOptions {
  /** Overrides the sender's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Aborts the wait for credit (ERR_SB_ABORTED); a message already sent is not recalled. */
  readonly signal?: AbortSignal;
}

/** What a sender needs from the hub. */
export interface SenderHost {
  /** Creates the outlets of `sender` (lazily, at its first send). */
  connect(sender: Sender<unknown>): void;
  /** The sender closed for good. */
  senderClosed(sender: Sender<unknown>): void;
  /** Reports messages `post()` could not deliver. */
  reportDrop(channel: string, count: number, reason: string): void;
}

interface PendingSend {
  readonly value: unknown;
  readonly resolve: (() => void) | undefined;
  readonly reject: ((e: unknown) => void) | undefined;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const RESOLVED = Promise.resolve();

/**
 * The sending end of a channel. `send()` resolves once the message is inside
 * the receiver's flow-control window; `post()` never throws. A `Sender` can
 * travel inside a message and arrives as a working `Sender` on the other side.
 */
export class Sender<T> extends PortableHandle {
  /**
   * Messages whose fate became unknown after `send()` had resolved: the
   * receiving node went away, or the receiver closed, before the message was
   * known to be delivered. Each error carries the `messages`.
   */
  readonly errors$: Observable<SwitchboardError>;
  /** Outlets, managed by the hub. */
  outlets: Outlet[] = [];
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly pending = new Ring<PendingSend>(16);
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly schema: StandardSchemaV1<unknown, T> | undefined;
  private connected = false;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private failure: SwitchboardError | undefined;
  private rr = 0;
  /** Messages `post()` dropped, including posted messages lost in flight (see {@link undelivered}). */
  dropped = 0;
  sent = 0;
  /** True once `post()` was used: in-flight losses then also count as drops. */
  private posting = false;

  constructor(
    private readonly host: SenderHost,
    /** Wire identity: where this sender points. */
    readonly target: HandleRef,
    readonly mode: DeliveryMode,
    options: SenderOptions<T> = {},
  ) {
    super();
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SENDER_OPTIONS.timeoutMs;
    this.maxPending = options.maxPending ?? DEFAULT_SENDER_OPTIONS.maxPending;
    this.schema = options.schema;
    this.errors$ = this.errorSubject.asObservable();
  }

  toHandleRef(): HandleRef {
    return this.target;
  }

  /** Channel name for errors and stats. */
  get channel(): string {
    return this.target.name ?? `#${this.target.id}@${this.target.node}`;
  }

  /** True once closed (or failed for good). */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** Sends waiting for credit. */
  get waiting(): number {
    return this.pending.length;
  }

  /**
   * Sends `value`. Resolves when it is within the receiver's window (at once
   * when credit is available). Rejects with ERR_SB_CLOSED (sender closed),
   * ERR_SB_NO_RECEIVER (receiver gone), ERR_SB_NOT_DELIVERED (its node went
   * away first), ERR_SB_TIMEOUT, ERR_SB_ABORTED, ERR_SB_OVERFLOW (too many
   * waiting sends), ERR_SB_VALIDATION or ERR_SB_ENCODE.
   */
  send(value: T, options?: SendOptions): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.closedError());
    try {
      if (this.schema !== undefined)
        value = validateSync(this.schema, value, `sender ${this.channel}`);
      if (!this.connected) this.connect();
      if (this.pending.length === 0 && this.tryTransmit(value)) return RESOLVED;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending.length >= this.maxPending) {
      return Promise.reject(
        new SwitchboardError(
          ErrorCode.OVERFLOW,
          `sender ${this.channel}: ${this.maxPending} sends already waiting for credit`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const p: PendingSend = {
        value,
        resolve,
        reject,
        timer: undefined,
        signal: options?.signal,
        onAbort: undefined,
      };
      const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
      if (Number.isFinite(timeoutMs)) {
        p.timer = setTimeout(() => {
          if (this.pending.remove(p)) {
            this.unhook(p);
            reject(
              new SwitchboardError(
                ErrorCode.TIMEOUT,
                `sender ${this.channel}: no credit within ${timeoutMs} ms`,
              ),
            );
          }
        }, timeoutMs);
      }
      if (p.signal !== undefined) {
        if (p.signal.aborted) {
          clearTimeout(p.timer);
          reject(
            new SwitchboardError(ErrorCode.ABORTED, 'send aborted', { cause: p.signal.reason }),
          );
          return;
        }
        p.onAbort = () => {
          if (this.pending.remove(p)) {
            this.unhook(p);
            reject(
              new SwitchboardError(ErrorCode.ABORTED, 'send aborted', { cause: p.signal?.reason }),
            );
          }
        };
        p.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.push(p);
    });
  }

  /**
   * Fire-and-forget: sends when credit allows, queues within `maxPending`
   * otherwise, and never throws. What cannot be delivered is counted in
   * `dropped` and reported on the switchboard's `events$`.
   */
  post(value: T): void {
    this.posting = true;
    if (this.state !== 'open' || this.failure !== undefined)
      return this.drop('sender closed or failed');
    try {
      if (this.schema !== undefined)
        value = validateSync(this.schema, value, `sender ${this.channel}`);
      if (!this.connected) this.connect();
      if (this.pending.length === 0 && this.tryTransmit(value)) return;
    } catch {
      return this.drop('invalid or unencodable message');
    }
    if (this.pending.length >= this.maxPending) return this.drop('no credit and the queue is full');
    this.pending.push({
      value,
      resolve: undefined,
      reject: undefined,
      timer: undefined,
      signal: undefined,
      onAbort: undefined,
    });
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
    while (this.pending.length > 0) {
      const p = this.pending.peek()!;
      let sent: boolean;
      try {
        sent = this.tryTransmit(p.value);
      } catch (err) {
        this.pending.shift();
        this.unhook(p);
        p.reject?.(err);
        continue;
      }
      if (!sent) break;
      this.pending.shift();
      this.unhook(p);
      p.resolve?.();
    }
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
      this.unhook(p);
      if (p.reject !== undefined) p.reject(error);
      else this.drop(error.message);
    }
    this.finish();
  }

  /** The receiver refused a message this sender sent (undecodable or invalid there). */
  refused(error: SwitchboardError): void {
    this.errorSubject.next(error);
  }

  /**
   * Reports messages sent earlier whose fate is unknown, on `errors$`. A
   * sender used with `post()` also counts them in `dropped` and reports them
   * as a `drop` event: a fire-and-forget caller has no promise to learn it
   * from. (A sender mixing `send()` and `post()` counts all of them.)
   */
  undelivered(messages: unknown[], error: SwitchboardError): void {
    if (messages.length === 0) return;
    if (this.posting) {
      this.dropped += messages.length;
      this.host.reportDrop(this.channel, messages.length, `not delivered: ${error.message}`);
    }
    const err = new NotDeliveredError(
      error instanceof NotDeliveredError ? error.node : this.target.node,
      `${messages.length} message(s) on ${this.channel} not known to be delivered: ${error.message}`,
      { cause: error },
    );
    (err as NotDeliveredError & { messages: unknown[] }).messages = messages;
    this.errorSubject.next(err);
  }

  // ---- internals ---------------------------------------------------------

  private connect(): void {
    this.connected = true;
    this.host.connect(this);
  }

  private tryTransmit(value: unknown): boolean {
    const outlets = this.outlets;
    if (this.mode === 'all') {
      let open = 0;
      for (const o of outlets) {
        if (o.state === 'closed') continue;
        // An outlet still opening is a receiver that exists: wait for it
        // rather than broadcast past it (it would miss the message for good).
        if (o.state !== 'open' || o.credit <= 0 || o.creditBytes <= 0 || !o.ready()) return false;
        open++;
      }
      if (open === 0) return false;
      for (const o of outlets) if (o.state === 'open') o.transmit(value);
      this.sent++;
      return true;
    }
    if (this.mode === 'single') {
      const o = outlets[0];
      if (
        o === undefined ||
        o.state !== 'open' ||
        o.credit <= 0 ||
        o.creditBytes <= 0 ||
        !o.ready()
      )
        return false;
      o.transmit(value);
      this.sent++;
      return true;
    }
    // 'one': the receiver with the most credit (least loaded), ties round-robin.
    // A receiver still opening has unknown credit: wait for it (one round
    // trip), or a burst would all go to whichever receiver answered first.
    let best: Outlet | undefined;
    const n = outlets.length;
    for (let k = 0; k < n; k++) {
      const o = outlets[(this.rr + k) % n]!;
      if (o.state === 'opening') return false;
      if (o.state !== 'open' || o.credit <= 0 || o.creditBytes <= 0 || !o.ready()) continue;
      if (best === undefined || o.credit > best.credit) best = o;
    }
    if (best === undefined) return false;
    this.rr = (this.rr + 1) % Math.max(1, n);
    best.transmit(value);
    this.sent++;
    return true;
  }

  private finishIfDrained(): void {
    if (this.state === 'closing' && this.pending.length === 0) this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const o of this.outlets) o.close();
    this.host.senderClosed(this);
    this.errorSubject.complete();
  }

  private unhook(p: PendingSend): void {
    clearTimeout(p.timer);
    if (p.onAbort !== undefined) p.signal?.removeEventListener('abort', p.onAbort);
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
