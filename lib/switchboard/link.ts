/**
 * The one link to one peer: its session (sequence counts, the replay log,
 * reassembly), the write queues, acknowledgements, SETTINGS and the
 * session's confirmation (docs/wire-protocol.md 7-9). One file because
 * every frame that crosses the link passes through the same few counters
 * (what was written, acknowledged, received, confirmed), and splitting them
 * would scatter one state machine across files.
 */
import { ErrorCode, ProtocolError } from '../errors.js';
import type { FrameSink } from '../protocol/decoder.js';
import { BufferPool } from '../protocol/buffer-pool.js';
import { clockMs } from '../protocol/clock.js';
import { FrameEncoder } from '../protocol/encoder.js';
import { writeFragment, Reassembler } from '../protocol/fragment.js';
import { FrameType, HEADER_SIZE, isSequenced } from '../protocol/frame.js';
import { encodeHead, headSize } from '../protocol/head.js';
import type { HeadField } from '../protocol/head.js';
import { decodeGoAway, errorCodeForGoAway } from '../protocol/handshake.js';
import type { ResumeState } from '../protocol/handshake.js';
import { ReplayLog } from '../protocol/replay-log.js';
import { decodeSettings, encodeSettings } from '../protocol/settings.js';
import type { PeerSettings } from '../protocol/settings.js';
import type { Connection } from './connection.js';

/** Where a link delivers what it receives. Implemented by the router. */
export interface LinkHandler {
  /** A whole message (reassembled if it was fragmented). */
  onMessage(link: Link, stream: number, flags: number, message: Buffer): void;
  /** A fragmented message refused for its size (over our maxMessageSize): none of it was kept. */
  onOversize(link: Link, stream: number, size: number): void;
  /** The session, stale (not confirmed within the peer's dead-peer timeout), is confirmed again. */
  onConfirmed(link: Link): void;
  /** The peer said GOAWAY to close cleanly: queue the last delivery reports before the link goes. */
  onPeerClosing(link: Link): void;
  /** Any other sequenced frame (OPEN, CLOSE, CREDIT, CANCEL, ERROR, CONTROL). */
  onControl(link: Link, type: number, flags: number, stream: number, payload: Buffer): void;
  /** The link can take more data after having refused some. */
  onWritable(link: Link): void;
}

/** A peer session: lives as long as both incarnations do, across reconnects. */
interface Session {
  readonly peerIncarnation: Buffer;
  /** Sequenced frames received from the peer in this session. */
  received: number;
  /** The received count last acknowledged to the peer. */
  ackedReceived: number;
  readonly log: ReplayLog;
  readonly reassembler: Reassembler;
}

/** A frame held back behind a large message on the same stream (FIFO per stream). */
interface Pending {
  readonly type: number;
  readonly flags: number;
  readonly bytes: Uint8Array | undefined;
  offset: number;
}

/** Tunables of a link, from the switchboard options. */
export interface LinkSettings {
  readonly fragmentSize: number;
  readonly maxMessageSize: number;
  readonly bufferBytes: number;
  readonly heartbeatMs: number;
  readonly deadPeerMs: number;
  /** How long a lone acknowledgement waits for something to ride on; default {@link ACK_DELAY_MS}. */
  readonly ackDelayMs?: number;
}

/** Bytes of large-message fragments written per flush, so control frames and other streams interleave. */
const FRAGMENT_BUDGET = 256 * 1024;
/** Queued data that is written at once instead of at the end of the event-loop turn. */
const EAGER_FLUSH_BYTES = 64 * 1024;
/**
 * Payloads of at least this many bytes are referenced by the data encoder,
 * not copied into its blocks; a link copies such payloads it does not own
 * first, so a caller reusing its buffer cannot corrupt a resend.
 */
const REFERENCE_THRESHOLD = 16 * 1024;
/**
 * Sequenced bytes received before an acknowledgement is due at the end of
 * the turn. Below it the ACK rides on whatever this side writes next, or goes
 * alone after {@link ACK_DELAY_MS}: a one-way stream of large messages would
 * otherwise cost the receiver a write, and the sender a read, per message.
 */
const ACK_BYTES = 256 * 1024;
/** Longest an acknowledgement waits for a ride. */
const ACK_DELAY_MS = 5;
/** Released copy blocks a link keeps for reuse. */
const POOL_IDLE_BYTES = 4 * 1024 * 1024;

/**
 * The one link to one peer. It owns the session (sequence counts, the replay
 * log, reassembly) and at most one authenticated connection at a time.
 * Frames queue in two encoders: control (unsequenced: ACK, PING, PONG),
 * always written first, and data (sequenced). Everything queued in one
 * event-loop turn goes out in one corked write.
 */
export class Link implements FrameSink {
  conn: Connection | undefined;
  session: Session | undefined;
  /** Round-trip time of the last heartbeat, in ms. */
  rttMs: number | undefined;
  /** Time the session last heard from the peer (survives reconnects). */
  lastHeard = 0;
  suspect = false;
  framesOut = 0;
  /** Told when the peer's PING arrives (its heartbeat), with the time it was read. */
  onHeartbeat: ((at: number) => void) | undefined = undefined;
  /** What the peer announced (SETTINGS); our own values until it has. */
  peerSettings: PeerSettings;
  /**
   * Until when (`clockMs()` scale) the peer cannot have ended the
   * session: it answered a PING sent at some time t, so it heard from us at
   * t or later, and ends a session only after its dead-peer timeout of
   * silence. Half of that timeout is kept as margin.
   */
  confirmedUntil = 0;
  /**
   * Where {@link confirmedUntil} is also kept, at `leases[peer]`, for the
   * receive paths to test without calling into the link (Cluster.leases).
   */
  private readonly leases: Float64Array;
  /** A confirmation was asked for and not yet received. */
  private confirming = false;
  private confirmAskedAt = Number.NEGATIVE_INFINITY;
  private readonly ctrl = new FrameEncoder({ blockSize: 4096 });
  private readonly data = new FrameEncoder({
    copyThreshold: REFERENCE_THRESHOLD,
    recordSizes: true,
  });
  /**
   * Blocks for the copies of large single-frame messages: the replay log
   * gives each back once the peer acknowledges its frame, so a steady stream
   * of large messages reuses a few blocks instead of allocating per message.
   * One pool per link: a block only ever carries data for this peer.
   */
  private readonly pool: BufferPool;
  private dataFrames = 0;
  /** Streams with a large message in progress, and what queued behind it. */
  private big = new Map<number, Pending[]>();
  private bigBytes = 0;
  /** A setImmediate(flushNow) is pending. */
  private flushScheduled = false;
  private refused = false;
  /** Replayed frames already received over the previous connection (see attach). */
  private skipIncoming = 0;
  /** Sequenced bytes received since the last ACK was queued. */
  private unackedIn = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  /** A PING went out to ask for an ACK (the replay log is half the buffer). */
  private ackAsked = false;
  /** The delay ran out: the next flush acknowledges even with nothing else to write. */
  private ackForced = false;
  private readonly ackDue = (): void => {
    this.ackTimer = undefined;
    const s = this.session;
    if (s === undefined || s.received === s.ackedReceived) return;
    this.ackForced = true;
    this.flush();
  };
  /** Set once this event-loop turn has written; cleared by the end-of-turn flush. */
  private wroteThisTurn = false;
  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.wroteThisTurn = false;
    this.flush();
  };

  constructor(
    readonly peer: number,
    private readonly settings: LinkSettings,
    private readonly handler: LinkHandler,
    leases?: Float64Array,
  ) {
    this.leases = leases ?? new Float64Array(peer + 1);
    this.peerSettings = {
      maxMessageSize: settings.maxMessageSize,
      heartbeatMs: settings.heartbeatMs,
      deadPeerMs: settings.deadPeerMs,
    };
    this.pool = new BufferPool({
      minSize: REFERENCE_THRESHOLD,
      maxSize: Math.max(
        REFERENCE_THRESHOLD,
        Math.min(1024 * 1024, nextPowerOfTwo(settings.fragmentSize)),
      ),
      maxIdleBytes: POOL_IDLE_BYTES,
    });
  }

  /** True while a session with the peer exists (connected or reconnecting). */
  get hasSession(): boolean {
    return this.session !== undefined;
  }

  /** True while an authenticated connection is attached. */
  get connected(): boolean {
    return this.conn !== undefined && !this.conn.closed;
  }

  /** Bytes queued or written but not acknowledged. */
  get bufferedBytes(): number {
    return this.data.pendingBytes + this.bigBytes + (this.session?.log.bytes ?? 0);
  }

  /** What to offer the peer for resumption in a handshake. */
  resumeState(): ResumeState | undefined {
    const s = this.session;
    return s === undefined ? undefined : { incarnation: s.peerIncarnation, received: s.received };
  }

  /**
   * True when a session exists and the buffer has room. When it returns
   * false the handler's `onWritable` fires once room is back.
   */
  writable(): boolean {
    if (this.session !== undefined && this.bufferedBytes < this.settings.bufferBytes) return true;
    this.refused = true;
    return false;
  }

  /**
   * Queues one sequenced frame. The caller checks {@link writable} for data;
   * small control frames (credit, open, close) may always be queued.
   * `urgent` writes it (and whatever is queued) now rather than at the end of
   * the turn: for what keeps the peer's pipe full, such as credit, which
   * should not wait behind this turn's reads (megabytes, possibly).
   */
  sendFrame(
    type: number,
    flags: number,
    stream: number,
    payload?: Uint8Array,
    urgent = false,
  ): void {
    if (this.session === undefined) return;
    const held = this.big.get(stream);
    if (held !== undefined) {
      held.push({ type, flags, bytes: payload, offset: 0 });
      this.bigBytes += payload?.length ?? 0;
    } else {
      this.data.frame(type, flags, stream, payload);
      this.dataFrames++;
      if (urgent) {
        this.flush();
        return;
      }
    }
    this.schedule();
  }

  /**
   * Queues one message, fragmenting it when it exceeds the fragment size.
   * The link keeps what it sends until the peer acknowledges it, so unless
   * `owned` is true (the caller hands `bytes` over and never changes them)
   * it copies whatever it would otherwise keep a reference to.
   */
  sendMessage(
    stream: number,
    flags: number,
    bytes: Uint8Array,
    owned = false,
    head?: readonly HeadField[],
  ): void {
    if (this.session === undefined) return;
    if (head !== undefined) {
      // A head and its body: written straight into the frame block when the
      // message is one small frame, joined into one buffer otherwise.
      const headLength = headSize(head);
      const total = headLength + bytes.length;
      if (
        total <= this.settings.maxMessageSize &&
        total <= this.settings.fragmentSize &&
        !this.big.has(stream) &&
        this.data.frameHeaded(FrameType.DATA, flags, stream, head, headLength, bytes)
      ) {
        this.dataFrames++;
        if (this.data.pendingBytes >= EAGER_FLUSH_BYTES) this.flush();
        else this.schedule();
        return;
      }
      bytes = encodeHead(head, bytes);
      owned = true;
    }
    if (bytes.length > this.settings.maxMessageSize) {
      throw new ProtocolError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `message of ${bytes.length} bytes exceeds the ${this.settings.maxMessageSize}-byte maximum`,
      );
    }
    const single = bytes.length <= this.settings.fragmentSize;
    const held = this.big.get(stream);
    if (!owned && (!single || held !== undefined || bytes.length >= REFERENCE_THRESHOLD)) {
      // Kept past this call: make it ours. A large single frame is referenced
      // by exactly one log entry, so its block goes back to the pool when that
      // frame is acknowledged; the pieces of a fragmented message (or a small
      // frame queued behind one) get a plain copy, left to the GC.
      bytes =
        single && bytes.length >= REFERENCE_THRESHOLD ? this.pool.copy(bytes) : Buffer.from(bytes);
    }
    if (held !== undefined) {
      held.push({ type: FrameType.DATA, flags, bytes, offset: 0 });
      this.bigBytes += bytes.length;
    } else if (single) {
      this.data.frame(FrameType.DATA, flags, stream, bytes);
      this.dataFrames++;
      // A producer that never yields would otherwise fill a whole window
      // before the first byte leaves: write every 64 KiB so the peer works
      // while we encode.
      if (this.data.pendingBytes >= EAGER_FLUSH_BYTES) {
        this.flush();
        return;
      }
    } else {
      this.big.set(stream, [{ type: FrameType.DATA, flags, bytes, offset: 0 }]);
      this.bigBytes += bytes.length;
    }
    this.schedule();
  }

  /** Queues a PING carrying `stamp` (ms, from the switchboard clock). */
  ping(stamp: number): void {
    if (!this.connected) return;
    this.queuePing(stamp);
    this.schedule();
    // Once per heartbeat: copy blocks unused since the last one are let go.
    this.pool.trimIfUnused();
  }

  /** Starts a session (fresh or resumed) on an authenticated connection. */
  attach(
    conn: Connection,
    peerIncarnation: Buffer,
    resumed: boolean,
    peerReceived: number,
    ownReceived = 0,
  ): void {
    this.conn = conn;
    this.suspect = false;
    this.ackAsked = false;
    this.lastHeard = conn.lastReceived;
    const replay: Buffer[] = [];
    if (resumed && this.session !== undefined) {
      // The peer tells us how much it got; resend the rest, in order.
      replay.push(...this.session.log.replayFrom(peerReceived));
      // Frames that reached us over the old connection after our HELLO was
      // built come again in the peer's replay: skip exactly those.
      this.skipIncoming = Math.max(0, this.session.received - ownReceived);
    } else {
      this.session = {
        peerIncarnation,
        received: 0,
        ackedReceived: 0,
        log: new ReplayLog(this.pool),
        reassembler: new Reassembler({ maxMessageSize: this.settings.maxMessageSize }),
      };
      this.discardQueued();
    }
    this.ctrl.take();
    // First on every connection: what we accept and how long we wait (docs/wire-protocol.md 8.2).
    this.ctrl.frame(
      FrameType.SETTINGS,
      0,
      0,
      encodeSettings({
        maxMessageSize: this.settings.maxMessageSize,
        heartbeatMs: this.settings.heartbeatMs,
        deadPeerMs: this.settings.deadPeerMs,
      }),
    );
    // The handshake itself proves the peer holds the session now.
    this.confirmed(clockMs());
    if (replay.length > 0) conn.write([...this.ctrl.take(), ...replay]);
    this.schedule();
  }

  /**
   * False when the peer may have ended the session (nothing confirmed it
   * within half its dead-peer timeout, as after an event-loop stall): a
   * PING then asks, and `onConfirmed` follows its PONG. `now` is
   * `clockMs()`.
   */
  fresh(now: number): boolean {
    if (now < this.confirmedUntil) return true;
    if (!this.confirming || now - this.confirmAskedAt > this.peerSettings.heartbeatMs) {
      this.confirming = true;
      this.confirmAskedAt = now;
      if (this.connected) {
        this.queuePing(now);
        this.schedule();
      }
    }
    return false;
  }

  private pong(stamp: number): void {
    const now = clockMs();
    this.rttMs = Math.max(0, now - stamp);
    // Our own clock reading, echoed: proof the peer heard us at that time.
    if (stamp <= now) this.confirmed(stamp);
  }

  private confirmed(stamp: number): void {
    const until = stamp + this.peerSettings.deadPeerMs / 2;
    if (until > this.confirmedUntil) this.leases[this.peer] = this.confirmedUntil = until;
    if (this.confirming && until > clockMs()) {
      this.confirming = false;
      this.handler.onConfirmed(this);
    }
  }

  /** The connection is gone; the session stays for a resume. */
  detach(conn: Connection): void {
    if (this.conn !== conn) return;
    this.lastHeard = conn.lastReceived;
    this.conn = undefined;
    this.ctrl.take();
  }

  /** The session ended (peer lost or restarted): forget everything queued for it. */
  endSession(): void {
    this.session = undefined;
    this.confirming = false;
    this.leases[this.peer] = this.confirmedUntil = 0;
    this.discardQueued();
    this.refused = false;
    this.unackedIn = 0;
    this.ackForced = false;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /** Where a fragment that straddles socket reads is copied: into its message (Reassembler.target). */
  payloadTarget(
    type: number,
    flags: number,
    stream: number,
    length: number,
    prefix: number,
  ): Buffer | undefined {
    const s = this.session;
    if (s === undefined || this.skipIncoming > 0) return undefined;
    if (type !== FrameType.DATA && type !== FrameType.CONT) return undefined;
    return s.reassembler.target(type, flags, stream, length, prefix);
  }

  /** Frames from the attached connection. */
  onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    const s = this.session!;
    this.suspect = false;
    if (isSequenced(type)) {
      if (this.skipIncoming > 0) {
        this.skipIncoming--;
        return;
      }
      s.received++;
      // The acknowledgement rides on whatever this side sends next (often a
      // reply); a long one-way run is acknowledged every ACK_BYTES.
      this.unackedIn += HEADER_SIZE + payload.length;
      if (this.unackedIn >= ACK_BYTES) this.scheduleLate();
      else if (this.ackTimer === undefined) {
        this.ackTimer = setTimeout(this.ackDue, this.settings.ackDelayMs ?? ACK_DELAY_MS);
        this.ackTimer.unref();
      }
      if (type === FrameType.DATA || type === FrameType.CONT) {
        const message = s.reassembler.add(type, flags, stream, payload);
        if (message !== undefined)
          this.handler.onMessage(this, stream, s.reassembler.completedFlags, message);
        else if (s.reassembler.refused > 0) {
          const size = s.reassembler.refused;
          s.reassembler.refused = 0;
          this.handler.onOversize(this, stream, size);
        }
      } else {
        this.handler.onControl(this, type, flags, stream, payload);
      }
      return;
    }
    switch (type) {
      case FrameType.ACK: {
        if (payload.length !== 8)
          throw new ProtocolError(ErrorCode.PROTOCOL, 'ACK payload must be 8 bytes');
        const count = payload.readUInt32BE(0) * 0x1_0000_0000 + payload.readUInt32BE(4);
        s.log.ack(count);
        this.ackAsked = false;
        if (this.refused && this.bufferedBytes < this.settings.bufferBytes) {
          this.refused = false;
          this.handler.onWritable(this);
        }
        return;
      }
      case FrameType.PING:
        if (payload.length !== 8)
          throw new ProtocolError(ErrorCode.PROTOCOL, 'PING payload must be 8 bytes');
        this.onHeartbeat?.(this.conn!.chunkAt);
        this.ctrl.frame(FrameType.PONG, 0, 0, payload);
        this.schedule();
        return;
      case FrameType.PONG:
        if (payload.length !== 8)
          throw new ProtocolError(ErrorCode.PROTOCOL, 'PONG payload must be 8 bytes');
        this.pong(payload.readDoubleBE(0));
        return;
      case FrameType.SETTINGS:
        this.peerSettings = decodeSettings(payload, this.peerSettings);
        return;
      case FrameType.GOAWAY: {
        const { code, reason } = decodeGoAway(payload);
        if (errorCodeForGoAway(code) === ErrorCode.CLOSED) {
          // A clean goodbye: our reports go out before our own GOAWAY.
          this.handler.onPeerClosing(this);
          this.flush();
        }
        throw new ProtocolError(errorCodeForGoAway(code), `peer closed the link: ${reason}`, {
          state: 'goaway',
        });
      }
      default:
        throw new ProtocolError(
          ErrorCode.PROTOCOL,
          `frame type 0x${type.toString(16)} after authentication`,
          {
            state: 'session',
          },
        );
    }
  }

  /** Writes everything queued; called once per event-loop turn and on 'drain'. */
  flush(): void {
    const conn = this.conn;
    const s = this.session;
    if (conn === undefined || conn.closed || s === undefined || conn.drainWaitSince !== undefined)
      return;
    if (
      s.received !== s.ackedReceived &&
      (this.ackForced ||
        this.unackedIn >= ACK_BYTES ||
        this.ctrl.pendingBytes > 0 ||
        this.dataFrames > 0 ||
        this.big.size > 0)
    ) {
      // Due, or free: it rides on a write that happens anyway.
      const ack = Buffer.allocUnsafe(8);
      ack.writeUInt32BE(Math.floor(s.received / 0x1_0000_0000), 0);
      ack.writeUInt32BE(s.received >>> 0, 4);
      this.ctrl.frame(FrameType.ACK, 0, 0, ack);
      s.ackedReceived = s.received;
      this.unackedIn = 0;
      this.ackForced = false;
    }
    if (this.big.size > 0) this.writeFragments();
    const out = this.ctrl.take();
    const frames = this.dataFrames;
    if (frames > 0) {
      const data = this.data.take();
      this.dataFrames = 0;
      s.log.append(data, frames, this.data.takeSizes());
      this.framesOut += frames;
      for (const b of data) out.push(b);
      if (!this.ackAsked && s.log.bytes >= this.settings.bufferBytes / 2) {
        // The peer acknowledges lazily and cannot know our buffer size: a
        // PING makes it answer at once, and the ACK rides on the PONG.
        this.ackAsked = true;
        this.queuePing(clockMs());
        // After the data, so the ACK it brings back covers that too.
        for (const c of this.ctrl.take()) out.push(c);
      }
    }
    if (out.length === 0) return;
    const ok = conn.write(out);
    if (ok && this.big.size > 0) this.schedule();
  }

  /** The socket drained: continue. */
  drained(): void {
    this.flush();
    if (this.refused && this.bufferedBytes < this.settings.bufferBytes) {
      this.refused = false;
      this.handler.onWritable(this);
    }
  }

  private writeFragments(): void {
    let budget = FRAGMENT_BUDGET;
    const size = this.settings.fragmentSize;
    // Round-robin over streams with a large message in progress, one fragment
    // each per pass; what queued behind it on the same stream follows in order.
    while (budget > 0 && this.big.size > 0) {
      for (const [stream, queue] of this.big) {
        const m = queue[0]!;
        const length = m.bytes?.length ?? 0;
        if (m.type === FrameType.DATA && length > size) {
          const before = m.offset;
          m.offset = writeFragment(this.data, stream, m.flags, m.bytes!, m.offset, size);
          budget -= m.offset - before;
          this.bigBytes -= m.offset - before;
        } else {
          this.data.frame(m.type, m.flags, stream, m.bytes);
          m.offset = length;
          budget -= length + 16;
          this.bigBytes -= length;
        }
        this.dataFrames++;
        if (m.offset >= length) {
          queue.shift();
          if (queue.length === 0) this.big.delete(stream);
        }
        if (budget <= 0) break;
      }
    }
  }

  private queuePing(stamp: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(stamp, 0);
    this.ctrl.frame(FrameType.PING, 0, 0, b);
  }

  private discardQueued(): void {
    this.data.take();
    this.data.takeSizes();
    this.dataFrames = 0;
    this.big.clear();
    this.bigBytes = 0;
  }

  private schedule(): void {
    if (!this.wroteThisTurn && this.conn !== undefined) {
      // The first frame of a turn goes out at once (a lone request or reply
      // sees no added latency), with any ACK pending from scheduleLate; what
      // follows in the same turn is coalesced into the end-of-turn flush.
      this.wroteThisTurn = true;
      this.flush();
    }
    this.scheduleLate();
  }

  /** Flushes at the end of this turn only, never at once. */
  private scheduleLate(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushNow);
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
