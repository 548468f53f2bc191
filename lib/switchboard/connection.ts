import { ErrorCode, HandshakeError, ProtocolError, SwitchboardError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import type { FrameSink } from '../protocol/decoder.js';
import { encodeFrame, FrameType, isHandshakeFrame } from '../protocol/frame.js';
import {
  encodeGoAway,
  goAwayCodeFor,
  Handshake,
  MAX_HANDSHAKE_PAYLOAD,
} from '../protocol/handshake.js';
import type { GoAwayCode, HandshakeOptions, HandshakeResult } from '../protocol/handshake.js';
import type { LinkSocket } from './transport.js';

/** What a connection reports to its owner. */
export interface ConnectionEvents {
  /** The handshake succeeded; from now on frames go to the sink returned. */
  onEstablished(conn: Connection, result: HandshakeResult): FrameSink;
  /** The socket is gone; `err` says why (undefined for a clean close). */
  onClosed(conn: Connection, err: SwitchboardError | undefined): void;
  /** The socket can take more bytes. */
  onDrained(conn: Connection): void;
}

let nextConnectionId = 1;

/**
 * One socket: the handshake first (with a tiny frame limit, so pre-auth
 * input stays small), then authenticated frames handed to a sink. It never
 * outlives its socket; the link that owns it survives reconnects.
 */
export class Connection implements FrameSink {
  readonly id = nextConnectionId++;
  readonly startedAt: number;
  readonly handshake: Handshake;
  private readonly decoder: FrameDecoder;
  private sink: FrameSink | undefined;
  private authenticated = false;
  private ended = false;
  /** Our GOAWAY went out: nothing more is written, but the peer's last frames are read. */
  private writeClosed = false;
  private endError: SwitchboardError | undefined;
  /** Time of the last complete frame received (any frame counts as life). */
  lastReceived: number;
  /** When the chunk being handled now was read (the clock is read once per chunk). */
  chunkAt: number;
  /**
   * The time that stands for now while the chunk is handled: `chunkAt`, or
   * later once application code ran in between (Cluster.ranSince).
   */
  handledAt: number;
  /** Set while the socket asked us to wait for 'drain'; the time we started waiting. */
  drainWaitSince: number | undefined;
  bytesIn = 0;
  bytesOut = 0;
  framesIn = 0;
  /** The peer's address, kept because the socket forgets it once destroyed. */
  readonly remoteAddress: string | undefined;

  constructor(
    readonly socket: LinkSocket,
    readonly role: 'dialer' | 'acceptor',
    handshakeOptions: HandshakeOptions,
    private readonly maxFramePayload: number,
    private readonly events: ConnectionEvents,
    private readonly now: () => number,
    private readonly target?: number,
  ) {
    this.startedAt = now();
    this.remoteAddress = socket.remoteAddress;
    this.lastReceived = this.startedAt;
    this.chunkAt = this.startedAt;
    this.handledAt = this.startedAt;
    this.handshake = new Handshake(handshakeOptions);
    this.decoder = new FrameDecoder(this, { maxFramePayload: MAX_HANDSHAKE_PAYLOAD });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.drainWaitSince = undefined;
      this.events.onDrained(this);
    });
    socket.on('error', (err: Error) =>
      this.fail(
        new SwitchboardError(ErrorCode.LINK, `socket error: ${err.message}`, { cause: err }),
      ),
    );
    socket.on('close', () => this.onClose());
  }

  /** True once authenticated; stays true after the socket closes, so the owner can tell. */
  get established(): boolean {
    return this.authenticated;
  }

  /** Why the connection ended, once it has. */
  get failure(): SwitchboardError | undefined {
    return this.endError;
  }

  /** The peer: the node dialed, or the one that authenticated. */
  get peer(): number | undefined {
    return this.handshake.result?.peer ?? this.target;
  }

  /** True once the socket is closing or closed. */
  get closed(): boolean {
    return this.ended;
  }

  /** True while a frame is partly received (stall detection). */
  get midFrame(): boolean {
    return this.decoder.inFrame;
  }

  /** Sends the dialer's first HELLO. */
  start(): void {
    this.writeHandshake(this.handshake.start());
  }

  /** Writes buffers in one corked batch; returns false when the socket wants a 'drain'. */
  write(bufs: readonly Buffer[]): boolean {
    if (this.ended || this.writeClosed) return true;
    const s = this.socket;
    let ok = true;
    if (bufs.length === 1) {
      ok = s.write(bufs[0]!);
      this.bytesOut += bufs[0]!.length;
    } else {
      s.cork();
      for (const b of bufs) {
        ok = s.write(b);
        this.bytesOut += b.length;
      }
      s.uncork();
    }
    if (!ok && this.drainWaitSince === undefined) this.drainWaitSince = this.now();
    return ok;
  }

  /**
   * Tells the peer why and closes our side. What the peer still sends
   * before it closes is read and handled (its last delivery reports: see
   * Cluster's shutdown); `ms` bounds the wait for it.
   */
  goAway(code: GoAwayCode, reason: string, err?: SwitchboardError, ms = 1_000): void {
    if (this.ended || this.writeClosed) return;
    this.endError ??= err;
    this.writeClosed = true;
    this.socket.end(encodeFrame(FrameType.GOAWAY, 0, 0, encodeGoAway(code, reason)));
    // Do not wait for a peer that never answers.
    setTimeout(() => this.socket.destroy(), ms).unref();
  }

  /** Closes at once with `err` (reported to the peer in a GOAWAY when possible). */
  fail(err: SwitchboardError): void {
    if (this.ended) {
      this.endError ??= err;
      return;
    }
    this.endError = err;
    this.ended = true;
    if (this.writeClosed) {
      setImmediate(() => this.socket.destroy());
      return;
    }
    try {
      this.socket.end(
        encodeFrame(FrameType.GOAWAY, 0, 0, encodeGoAway(goAwayCodeFor(err.code), err.message)),
      );
    } catch {
      // The socket is already unusable; destroying it below is enough.
    }
    setImmediate(() => this.socket.destroy());
  }

  onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    this.framesIn++;
    if (this.sink !== undefined) {
      this.sink.onFrame(type, flags, stream, payload);
      return;
    }
    if (!isHandshakeFrame(type)) {
      throw new HandshakeError(ErrorCode.PROTOCOL, 'application frame before authentication', {
        state: this.handshake.status,
      });
    }
    const out = this.handshake.onFrame(type, payload);
    this.writeHandshake(out);
    const result = this.handshake.result;
    if (this.handshake.status === 'done' && result !== undefined) {
      this.decoder.maxFramePayload = this.maxFramePayload;
      // Set first: onEstablished emits events whose listeners check `established`.
      this.authenticated = true;
      this.sink = this.events.onEstablished(this, result);
    }
  }

  payloadTarget(
    type: number,
    flags: number,
    stream: number,
    length: number,
    prefix: number,
  ): Buffer | undefined {
    return this.sink?.payloadTarget?.(type, flags, stream, length, prefix);
  }

  private writeHandshake(frames: ReadonlyArray<{ type: number; payload: Buffer }>): void {
    if (frames.length === 0) return;
    this.write(frames.map((f) => encodeFrame(f.type, 0, 0, f.payload)));
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.bytesIn += chunk.length;
    const framesBefore = this.framesIn;
    this.chunkAt = this.handledAt = this.now();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof SwitchboardError) this.fail(err);
      else
        this.fail(
          new ProtocolError(
            ErrorCode.INTERNAL,
            `error while handling a frame: ${String(err)}`,
            {},
            { cause: err },
          ),
        );
    } finally {
      // Any complete frame counts as life; one clock read per chunk, not per frame.
      if (this.framesIn !== framesBefore) this.lastReceived = this.chunkAt;
    }
  }

  private onClose(): void {
    this.ended = true;
    this.sink = undefined;
    this.events.onClosed(this, this.endError);
  }
}
