/**
 * The two ends of a stream (one sender to one receiver): over a link
 * ({@link RemoteOutlet} on the sender's node, {@link RemoteInlet} on the
 * receiver's), or both in this process ({@link LocalStream}). They carry
 * credit one way and messages the other, and keep the delivery accounting
 * of docs/wire-protocol.md 10.4-10.5: a sender knows, per message, whether
 * its receiver has finished with it, so that whatever a stream ends with is
 * reported exactly.
 *
 * A closing sender's stream lingers until its receiver has finished with
 * everything sent (the receiver keeps reporting `delivered` after the
 * sender's CLOSE), so a message sent just before `close()` is still
 * reported if its receiver's node is lost before taking it.
 */
import { ErrorCode, MessageTooLargeError, SwitchboardError } from '../errors.js';
import { clockMs } from '../protocol/clock.js';
import { encodeValue } from '../protocol/codec.js';
import type { PortableHandle } from '../protocol/codec.js';
import { FrameType } from '../protocol/frame.js';
import { Envelope } from './envelope.js';
import type { HeadField, MessageEncoder } from './envelope.js';
import { UNLIMITED_CREDIT } from './receiver.js';
import type { Inlet, Receiver } from './receiver.js';
import { Ring } from './ring.js';
import type { Outlet, Sender } from './sender.js';

/** What the stream ends need from the hub and the cluster layer. */
export interface StreamHost {
  readonly self: number;
  readonly encoder: MessageEncoder;
  writable(peer: number): boolean;
  /** The largest message `peer` accepts, bytes. */
  peerLimit(peer: number): number;
  /** False while the session with `peer` awaits confirmation (a stale session). */
  fresh(peer: number): boolean;
  /** Per peer, until when `fresh` is certainly true (HubTransport.leases). */
  readonly leases: Float64Array;
  sendFrame(
    peer: number,
    type: number,
    stream: number,
    payload?: Uint8Array,
    urgent?: boolean,
  ): void;
  /** With `head`, the message is that head followed by `bytes` (its body). */
  sendMessage(
    peer: number,
    stream: number,
    flags: number,
    bytes: Uint8Array,
    owned: boolean,
    head?: readonly HeadField[],
  ): void;
  /** Queues a delivery report of `inlet` for the end of the 10 ms window. */
  reportSoon(inlet: RemoteInlet): void;
  /** Handles of local receivers went to `peer` inside a message. */
  shipped(peer: number, handles: readonly PortableHandle[]): void;
  /** A closed outlet has nothing more to track (its receiver finished with everything). */
  outletDone(outlet: RemoteOutlet | LocalStream): void;
  /** A remote inlet whose sender closed has reported everything: forget its stream. */
  inletDone(inlet: RemoteInlet): void;
  /** An outlet can no longer deliver: report what it had in flight. */
  outletEnded(outlet: RemoteOutlet | LocalStream, error: SwitchboardError): void;
  /** The value a local receiver gets for `value` (checked or copied). */
  localValue(value: unknown): unknown;
  /** The largest message this node sends, bytes (checked with `forceEncoding`). */
  readonly ownLimit: number;
  /** True when local values are encoded (their size is then known). */
  readonly forceEncoding: boolean;
}

/** The sender side of a stream to a receiver on another node. */
export class RemoteOutlet implements Outlet {
  credit = 0;
  creditBytes = 0;
  state: 'opening' | 'open' | 'closing' | 'closed' = 'opening';
  error: SwitchboardError | undefined;
  private sentCount = 0;
  private deliveredCount = 0;
  private lossy = false;
  private readonly inflightValues = new Ring<unknown>(16);

  constructor(
    private readonly host: StreamHost,
    readonly sender: Sender<unknown>,
    readonly node: number,
    readonly receiverId: number,
    readonly stream: number,
  ) {}

  get inflight(): number {
    return this.sentCount - this.deliveredCount;
  }

  ready(): boolean {
    return this.host.writable(this.node);
  }

  limit(): number {
    return this.host.peerLimit(this.node);
  }

  transmit(value: unknown): void {
    const enc = this.host.encoder;
    const bytes = enc.encode(value);
    const size = enc.size;
    const limit = this.host.peerLimit(this.node);
    if (size > limit)
      throw new MessageTooLargeError(this.node, size, limit, `sender ${this.sender.channel}`);
    if (enc.handles.length > 0) this.host.shipped(this.node, enc.handles);
    this.host.sendMessage(this.node, this.stream, enc.flags, bytes, enc.owned, enc.head);
    this.sentCount++;
    // A lossy receiver granted unlimited credit once and never tops it up:
    // spending it would stall the stream after ~1 GiB.
    if (this.lossy) return;
    this.credit--;
    this.creditBytes -= size;
    this.inflightValues.push(value instanceof Envelope ? value.value : value);
  }

  onCredit(messages: number, bytes: number, delivered: number): void {
    if (this.state === 'closed') return;
    if (messages >= UNLIMITED_CREDIT && !this.lossy) {
      // A lossy receiver: never waits, so only counts are tracked in flight.
      this.lossy = true;
      this.inflightValues.drain();
    }
    this.credit += messages;
    this.creditBytes += bytes;
    if (delivered > this.deliveredCount) {
      if (!this.lossy) this.inflightValues.discard(delivered - this.deliveredCount);
      this.deliveredCount = Math.min(delivered, this.sentCount);
    }
    if (this.state === 'closing') {
      if (this.inflight === 0) this.done();
      return;
    }
    this.state = 'open';
    this.sender.pump();
  }

  /** The receiver refused message number `seq` of this stream. */
  onRefused(error: SwitchboardError, seq: number | undefined): void {
    let value: unknown;
    if (!this.lossy && seq !== undefined && seq >= this.deliveredCount)
      value = this.inflightValues.at(seq - this.deliveredCount);
    this.sender.refused(error, value);
  }

  close(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.host.sendFrame(this.node, FrameType.CLOSE, this.stream);
    if (this.inflight === 0) this.done();
    else this.state = 'closing';
  }

  /** Ends the outlet; returns the messages not known to be delivered (or their count when lossy). */
  terminate(error: SwitchboardError): unknown[] | number {
    this.state = 'closed';
    this.error = error;
    if (this.lossy) return this.inflight;
    return this.inflightValues.drain();
  }

  private done(): void {
    this.state = 'closed';
    this.host.outletDone(this);
  }
}

/** The receiver side of a stream from a sender on another node. */
export class RemoteInlet implements Inlet {
  credit = 0;
  creditBytes = 0;
  delivered = 0;
  /** Messages that arrived on the stream (refused ones included). */
  received = 0;
  receiver: Receiver<unknown> | undefined;
  attachedTo: Receiver<unknown> | undefined;
  /** The sender closed: report until everything received is finished with, then forget. */
  closing = false;
  /**
   * The session this stream belonged to ended: its sender reports what is
   * buffered here as not delivered, so none of it may be handed out, even
   * by a callback that runs while the session's end is being handled.
   */
  sessionEnded = false;
  /** The delivered count the sender was last told. */
  private reported = 0;
  private reportQueued = false;

  constructor(
    private readonly host: StreamHost,
    readonly node: number,
    readonly stream: number,
  ) {}

  ready(): boolean {
    // The clock against the lease first: a call into the link only once it lapsed.
    return (
      !this.sessionEnded && (clockMs() < this.host.leases[this.node]! || this.host.fresh(this.node))
    );
  }

  deliveredChanged(): void {
    if (this.reportQueued || this.delivered === this.reported) return;
    this.reportQueued = true;
    this.host.reportSoon(this);
  }

  /** Tells the sender the delivered count, unless a grant already did. */
  report(): void {
    this.reportQueued = false;
    if (this.delivered > this.reported) this.grant(0, 0, this.delivered);
    if (this.closing && this.delivered >= this.received) this.host.inletDone(this);
  }

  /** The sender closed the stream. */
  senderClosed(): void {
    this.closing = true;
    if (this.delivered >= this.received) {
      if (this.delivered > this.reported) this.grant(0, 0, this.delivered);
      this.host.inletDone(this);
    }
  }

  grant(messages: number, bytes: number, delivered: number): void {
    this.reported = delivered;
    const b = Buffer.allocUnsafe(16);
    b.writeUInt32BE(messages >>> 0, 0);
    b.writeUInt32BE(Math.max(0, Math.min(bytes, 0xffff_ffff)) >>> 0, 4);
    b.writeUInt32BE(Math.floor(delivered / 0x1_0000_0000), 8);
    b.writeUInt32BE(delivered >>> 0, 12);
    // A grant keeps the sender's pipe full: at once. A delivery report
    // (nothing granted) waits for the end of the turn like other frames.
    this.host.sendFrame(this.node, FrameType.CREDIT, this.stream, b, messages > 0 || bytes > 0);
  }

  end(error: SwitchboardError): void {
    // Credit reports deliveries lazily (batched): say exactly how many were
    // taken, so the sender reports only the others as not delivered.
    if (this.delivered > this.reported) this.grant(0, 0, this.delivered);
    this.host.sendFrame(
      this.node,
      FrameType.CLOSE,
      this.stream,
      encodeValue({ code: error.code, message: error.message }),
    );
    this.host.inletDone(this);
  }

  refused(error: SwitchboardError): void {
    // Refusals happen as a message arrives: it is the last one received.
    this.host.sendFrame(
      this.node,
      FrameType.ERROR,
      this.stream,
      encodeValue({ code: error.code, message: error.message, seq: this.received - 1 }),
    );
  }
}

/**
 * Both ends of a stream inside one process: no socket, the same credit
 * rules. The receiver gets the very object that was sent (checked against
 * the encoding rule), or a copy with `forceEncoding`.
 */
export class LocalStream implements Outlet, Inlet {
  credit = 0;
  creditBytes = 0;
  delivered = 0;
  state: 'opening' | 'open' | 'closing' | 'closed' = 'opening';
  error: SwitchboardError | undefined;
  receiver: Receiver<unknown> | undefined;
  attachedTo: Receiver<unknown> | undefined;
  receiverId = 0;
  readonly node: number;
  private sentCount = 0;
  private dropped: unknown[] | undefined;

  constructor(
    readonly sender: Sender<unknown>,
    private readonly host: StreamHost,
  ) {
    this.node = host.self;
  }

  get inflight(): number {
    return this.sentCount - this.delivered;
  }

  bind(r: Receiver<unknown>): void {
    this.receiver = r;
    this.receiverId = r.id;
  }

  ready(): boolean {
    return true;
  }

  limit(): number {
    return this.host.forceEncoding ? this.host.ownLimit : Number.POSITIVE_INFINITY;
  }

  transmit(value: unknown): void {
    // Numbers, booleans, null and undefined pass the encoding rule as they
    // are: skip the call for them (strings may be over a forced size limit).
    const t = typeof value;
    const v =
      t === 'number' ||
      t === 'boolean' ||
      value == null ||
      (t === 'string' && !this.host.forceEncoding)
        ? value
        : this.host.localValue(value);
    this.sentCount++;
    this.receiver!.push(v, this, 0, true);
  }

  grant(): void {
    if (this.state !== 'opening' && this.state !== 'open') return;
    this.state = 'open';
    this.sender.pump();
  }

  deliveredChanged(): void {
    if (this.state === 'closing' && this.inflight <= 0) {
      this.state = 'closed';
      this.host.outletDone(this);
    }
  }

  end(error: SwitchboardError, dropped?: unknown[]): void {
    if (this.state === 'closed') return;
    this.dropped = dropped;
    this.host.outletEnded(this, error);
  }

  refused(error: SwitchboardError, value?: unknown): void {
    this.sender.refused(error, value);
  }

  close(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.state = this.inflight > 0 ? 'closing' : 'closed';
    this.receiver?.detach(this);
    if (this.state === 'closed') this.host.outletDone(this);
  }

  terminate(error: SwitchboardError): unknown[] {
    this.state = 'closed';
    this.error = error;
    // Locally, what is in flight is exactly what the receiver buffered and dropped.
    const dropped = this.dropped ?? [];
    this.dropped = undefined;
    return dropped;
  }
}

/** Decodes an ERROR or CLOSE payload `{ code, message, seq? }` into an error with a known code. */
export function streamError(
  payload: Buffer,
  fallback: ErrorCode,
  fallbackMessage: string,
  decode: (b: Buffer) => unknown,
): { error: SwitchboardError; seq: number | undefined } {
  try {
    const m = decode(payload) as { code?: unknown; message?: unknown; seq?: unknown } | undefined;
    if (m !== undefined && m !== null && typeof m.message === 'string') {
      const code =
        typeof m.code === 'string' && KNOWN_CODES.has(m.code) ? (m.code as ErrorCode) : fallback;
      const seq = typeof m.seq === 'number' && Number.isSafeInteger(m.seq) ? m.seq : undefined;
      return { error: new SwitchboardError(code, m.message), seq };
    }
  } catch {
    // Fall through to the generic error.
  }
  return { error: new SwitchboardError(fallback, fallbackMessage), seq: undefined };
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));
