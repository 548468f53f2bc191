import { ErrorCode, ProtocolError } from '../errors.js';

/**
 * The sequenced frames a link has written and the peer has not yet
 * acknowledged, kept as the encoder's own buffers (no per-frame objects).
 * Frame boundaries are found by walking length prefixes, which happens only
 * when an acknowledgement trims the log or a resumed session replays it.
 *
 * Invariant: every buffer holds whole frame headers (the encoder never splits
 * a header), and a frame's payload may continue into the next buffers.
 */
export class ReplayLog {
  /**
   * @param pool Gets every buffer the log lets go of once the peer has
   * acknowledged all of it (see {@link BufferPool.release}); never on
   * {@link clear}, since a dead session's socket may still be writing.
   */
  constructor(private readonly pool?: { release(buf: Buffer): void }) {}

  private bufs: Buffer[] = [];
  /** Index in `bufs` and byte offset of the first unacknowledged frame. */
  private head = 0;
  private headOffset = 0;
  /** Sequence number of the first unacknowledged frame (= frames acknowledged). */
  private acked = 0;
  /** Sequence number the next appended frame gets (= frames appended). */
  private appended = 0;
  private unackedBytes = 0;

  /** Bytes written and not yet acknowledged. */
  get bytes(): number {
    return this.unackedBytes;
  }

  /** Frames acknowledged so far. */
  get ackedCount(): number {
    return this.acked;
  }

  /** Frames appended so far. */
  get sentCount(): number {
    return this.appended;
  }

  /** Records buffers holding exactly `frames` whole sequenced frames. */
  append(bufs: readonly Buffer[], frames: number): void {
    for (const b of bufs) {
      this.bufs.push(b);
      this.unackedBytes += b.length;
    }
    this.appended += frames;
  }

  /**
   * The peer has received `count` frames in all: forget them. Stale counts are
   * ignored. Throws {@link ProtocolError} for a count the peer cannot have
   * (not an integer, or more frames than were sent); nothing changes then.
   */
  ack(count: number): void {
    // Checked first: NaN or a fraction would slip past the comparisons below
    // and leave the cursor between frames.
    if (!Number.isSafeInteger(count)) {
      throw new ProtocolError(ErrorCode.PROTOCOL, `peer acknowledged ${count} frames`, {
        state: 'ack',
      });
    }
    if (count <= this.acked) return;
    if (count > this.appended) {
      throw new ProtocolError(
        ErrorCode.PROTOCOL,
        `peer acknowledged ${count} frames but only ${this.appended} were sent`,
        { state: 'ack' },
      );
    }
    this.skip(count - this.acked);
    this.acked = count;
    if (this.head > 64 || (this.head > 0 && this.head * 2 > this.bufs.length)) {
      this.bufs = this.bufs.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Buffers to write again, in order, for a peer that has received `count`
   * frames in all; acknowledges everything before `count`. Throws
   * {@link ProtocolError} for a count below what the peer already acknowledged
   * or above what was sent.
   */
  replayFrom(count: number): Buffer[] {
    if (count < this.acked) {
      throw new ProtocolError(
        ErrorCode.PROTOCOL,
        `peer asks for frames from ${count} but frames up to ${this.acked} were already acknowledged`,
        { state: 'resume' },
      );
    }
    this.ack(count);
    const out: Buffer[] = [];
    for (let i = this.head; i < this.bufs.length; i++) {
      const b = this.bufs[i]!;
      out.push(i === this.head ? b.subarray(this.headOffset) : b);
    }
    return out;
  }

  /** Forgets everything (the session ended). */
  clear(): void {
    this.bufs = [];
    this.head = 0;
    this.headOffset = 0;
    this.acked = 0;
    this.appended = 0;
    this.unackedBytes = 0;
  }

  private skip(frames: number): void {
    let i = this.head;
    let off = this.headOffset;
    let freed = 0;
    for (let n = 0; n < frames; n++) {
      let buf = this.bufs[i]!;
      while (off >= buf.length) {
        i++;
        off = 0;
        buf = this.bufs[i]!;
      }
      let remaining = 4 + buf.readUInt32BE(off);
      while (remaining > 0) {
        const here = Math.min(remaining, buf.length - off);
        remaining -= here;
        off += here;
        freed += here;
        if (remaining > 0) {
          i++;
          off = 0;
          buf = this.bufs[i]!;
        }
      }
    }
    // Release whole buffers behind the cursor.
    while (i < this.bufs.length && off >= this.bufs[i]!.length) {
      i++;
      off = 0;
    }
    for (let k = this.head; k < i; k++) {
      this.pool?.release(this.bufs[k]!);
      this.bufs[k] = EMPTY;
    }
    this.head = i;
    this.headOffset = off;
    this.unackedBytes -= freed;
  }
}

const EMPTY = Buffer.alloc(0);
