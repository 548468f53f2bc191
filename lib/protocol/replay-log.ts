import { ErrorCode, ProtocolError } from '../errors.js';

/**
 * The sequenced frames a link has written and the peer has not yet
 * acknowledged, kept as the encoder's own buffers (no per-frame objects).
 *
 * Each frame's size is kept in a ring of sizes, as the encoder recorded it
 * (or read from its length prefix once, as it is appended). An
 * acknowledgement then sums sizes and moves a byte cursor over whole
 * buffers: it never reads the buffers, which costs a cache miss per frame
 * once they are out of the cache.
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
  /** Sizes of the unacknowledged frames, oldest first: a ring from `sizeAt`. */
  private sizes = new Uint32Array(256);
  private sizeAt = 0;
  private sizeCount = 0;

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

  /**
   * Records buffers holding exactly `frames` whole sequenced frames. With
   * `sizes` (the encoder's record of them, see FrameEncoder.takeSizes) the
   * buffers are not read; without, their length prefixes are.
   */
  append(bufs: readonly Buffer[], frames: number, sizes?: Uint32Array): void {
    if (sizes !== undefined && sizes.length === frames) {
      for (const b of bufs) {
        this.bufs.push(b);
        this.unackedBytes += b.length;
      }
      for (let k = 0; k < frames; k++) this.pushSize(sizes[k]!);
      this.appended += frames;
      return;
    }
    let left = 0;
    let n = 0;
    for (const b of bufs) {
      this.bufs.push(b);
      this.unackedBytes += b.length;
      // What the last frame of the previous buffer still has in this one.
      if (left >= b.length) {
        left -= b.length;
        continue;
      }
      let off = left;
      while (off < b.length && n < frames) {
        const size =
          4 + b[off]! * 0x100_0000 + ((b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!);
        this.pushSize(size);
        n++;
        off += size;
      }
      left = off - b.length;
    }
    if (n !== frames) {
      throw new ProtocolError(
        ErrorCode.INTERNAL,
        `replay log: ${frames} frames appended, but the buffers hold ${n}`,
        { state: 'ack' },
      );
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
    this.sizeAt = 0;
    this.sizeCount = 0;
  }

  private pushSize(size: number): void {
    let sizes = this.sizes;
    if (this.sizeCount === sizes.length) {
      const grown = new Uint32Array(sizes.length * 2);
      for (let k = 0; k < this.sizeCount; k++)
        grown[k] = sizes[(this.sizeAt + k) & (sizes.length - 1)]!;
      this.sizes = sizes = grown;
      this.sizeAt = 0;
    }
    sizes[(this.sizeAt + this.sizeCount) & (sizes.length - 1)] = size;
    this.sizeCount++;
  }

  private skip(frames: number): void {
    // The bytes of the acknowledged frames, from the ring of sizes.
    const sizes = this.sizes;
    const mask = sizes.length - 1;
    let at = this.sizeAt;
    let bytes = 0;
    for (let n = 0; n < frames; n++) {
      bytes += sizes[at]!;
      at = (at + 1) & mask;
    }
    this.sizeAt = at;
    this.sizeCount -= frames;
    this.unackedBytes -= bytes;
    // Then the cursor, over whole buffers.
    let i = this.head;
    let off = this.headOffset + bytes;
    while (i < this.bufs.length && off >= this.bufs[i]!.length) {
      off -= this.bufs[i]!.length;
      i++;
    }
    for (let k = this.head; k < i; k++) {
      this.pool?.release(this.bufs[k]!);
      this.bufs[k] = EMPTY;
    }
    this.head = i;
    this.headOffset = off;
  }
}

const EMPTY = Buffer.alloc(0);
