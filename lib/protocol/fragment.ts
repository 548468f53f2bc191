import { ErrorCode, OptionError, ProtocolError } from '../errors.js';
import { DEFAULT_FRAME_LIMITS, FrameFlag, FrameType } from './frame.js';
import type { FrameEncoder } from './encoder.js';

/**
 * A message larger than the fragment size travels as one DATA frame with
 * flag MORE, whose payload starts with the message's total size (u32 BE),
 * followed by CONT frames; the last one has MORE clear. Fragments of one
 * stream are contiguous in that stream, but frames of other streams (and
 * control frames) may come between them.
 */

/**
 * Writes the fragment of `message` that starts at `offset` into `encoder`
 * and returns the offset of the next one (`message.length` when done).
 * A message of at most `fragmentSize` bytes becomes one plain DATA frame,
 * without the size prefix. Throws {@link OptionError} when `fragmentSize` is
 * not a positive integer (the caller's loop would never end).
 */
export function writeFragment(
  encoder: FrameEncoder,
  stream: number,
  flags: number,
  message: Uint8Array,
  offset: number,
  fragmentSize: number,
): number {
  if (!Number.isSafeInteger(fragmentSize) || fragmentSize < 1) {
    throw new OptionError('fragmentSize', `expected a positive integer, got ${fragmentSize}`);
  }
  const end = Math.min(offset + fragmentSize, message.length);
  if (offset === 0 && end === message.length) {
    // The reassembler returns an unfragmented DATA payload as is, so a size
    // prefix here would reach the application as part of the message.
    encoder.frame(FrameType.DATA, flags & ~FrameFlag.MORE, stream, message);
    return end;
  }
  const more = end < message.length ? FrameFlag.MORE : 0;
  const piece = message.subarray(offset, end);
  if (offset === 0) {
    encoder.frameWithPrefix(FrameType.DATA, flags | more, stream, message.length, piece);
  } else {
    encoder.frame(FrameType.CONT, (flags & FrameFlag.RAW) | more, stream, piece);
  }
  return end;
}

interface Partial {
  readonly total: number;
  readonly flags: number;
  /**
   * The message: bytes [0, received) are in. Its length, the capacity, is
   * at most twice what has arrived (and at most the total), so memory
   * follows the bytes received, never the declared total.
   */
  buf: Buffer;
  received: number;
  /** What this message counts against maxPendingBytes (bytes plus overheads). */
  charged: number;
}

/**
 * What holding one fragment costs beyond its bytes (its frame's bookkeeping,
 * and for a first fragment the stream's record), charged against
 * maxPendingBytes. Without it a flood of empty or one-byte fragments would
 * grow memory while the byte count stayed near zero.
 */
const FRAGMENT_OVERHEAD = 128;

/**
 * Room a reassembler may set aside, across its unfinished messages, beyond
 * what has arrived of them: a message whose remaining bytes fit gets its
 * whole size at its first fragment (one buffer, written once, as a raw
 * reader of length-prefixed messages does). Past it, a buffer is at most
 * twice what has arrived. So what is held stays within twice the bytes
 * counted plus this, whatever totals a peer declares.
 */
export const REASSEMBLY_HEAD_START = 16 * 1024 * 1024;

/** True when `payload` was written in place, at the end of what `m` holds (see Reassembler.target). */
const inPlace = (m: Partial, payload: Buffer): boolean =>
  payload.buffer === m.buf.buffer && payload.byteOffset === m.buf.byteOffset + m.received;

/**
 * The bytes received of a message in progress once `n` more arrive.
 * @throws {ProtocolError} when the fragments disagree with the declared total
 */
function progress(
  stream: number,
  m: { readonly total: number; readonly received: number },
  n: number,
  more: boolean,
): number {
  const received = m.received + n;
  if (received > m.total || (!more && received !== m.total) || (more && received === m.total)) {
    throw new ProtocolError(
      ErrorCode.PROTOCOL,
      `fragments of stream ${stream} disagree with the declared size ${m.total}`,
      { state: 'reassembly' },
    );
  }
  return received;
}

/** Options of a {@link Reassembler}. */
export interface ReassemblerOptions {
  /** Largest message accepted, in bytes (an integer up to 2^32 - 1). Default 64 MiB. */
  maxMessageSize?: number;
  /**
   * Largest sum of bytes held in unfinished messages across streams, each
   * fragment counting 128 bytes more than its length. Default 2x maxMessageSize.
   */
  maxPendingBytes?: number;
}

/**
 * Rebuilds fragmented messages per stream. Memory follows the bytes actually
 * received, never the declared totals, and is capped across streams.
 */
export class Reassembler {
  private readonly maxMessageSize: number;
  private readonly maxPendingBytes: number;
  private readonly partials = new Map<number, Partial>();
  /** Streams whose message in progress exceeds maxMessageSize: counted, not kept. */
  private readonly skipping = new Map<number, { readonly total: number; received: number }>();
  private pendingBytes = 0;
  /** Capacity of unfinished messages' buffers beyond their bytes received. */
  private ahead = 0;

  constructor(options: ReassemblerOptions = {}) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_FRAME_LIMITS.maxMessageSize;
    // The total travels as a u32, so larger limits mean nothing.
    if (
      !Number.isSafeInteger(this.maxMessageSize) ||
      this.maxMessageSize < 0 ||
      this.maxMessageSize > 0xffffffff
    ) {
      throw new OptionError(
        'maxMessageSize',
        `expected an integer from 0 to ${0xffffffff} bytes, got ${this.maxMessageSize}`,
      );
    }
    this.maxPendingBytes = options.maxPendingBytes ?? this.maxMessageSize * 2;
    if (!Number.isSafeInteger(this.maxPendingBytes) || this.maxPendingBytes < 0) {
      throw new OptionError(
        'maxPendingBytes',
        `expected a non-negative integer, got ${this.maxPendingBytes}`,
      );
    }
  }

  /** Bytes counted for unfinished messages: their bytes plus 128 per fragment held. */
  get pending(): number {
    return this.pendingBytes;
  }

  /**
   * Takes a DATA or CONT frame. Returns the whole message when it is complete
   * (a view of `payload` for an unfragmented DATA frame), or undefined while
   * fragments are missing. Throws {@link ProtocolError} on a broken sequence.
   */
  add(type: number, flags: number, stream: number, payload: Buffer): Buffer | undefined {
    const more = (flags & FrameFlag.MORE) !== 0;
    if (type === FrameType.DATA) {
      if (
        (this.partials.size > 0 && this.partials.has(stream)) ||
        (this.skipping.size > 0 && this.skipping.has(stream))
      ) {
        throw new ProtocolError(
          ErrorCode.PROTOCOL,
          `DATA on stream ${stream} while a fragmented message is unfinished`,
          {
            state: 'reassembly',
          },
        );
      }
      if (!more) {
        this.completedFlags = flags;
        return payload;
      }
      if (payload.length < 4) {
        throw new ProtocolError(
          ErrorCode.PROTOCOL,
          'first fragment shorter than its 4-byte size prefix',
          {
            state: 'reassembly',
          },
        );
      }
      const total = payload.readUInt32BE(0);
      const first = payload.subarray(4);
      if (total > this.maxMessageSize) {
        // Refused, not fatal: its fragments are counted and let go as they
        // come (nothing is held), and the link tells the sender once the
        // last one is in (docs/wire-protocol.md 9.2).
        if (first.length >= total) {
          throw new ProtocolError(
            ErrorCode.PROTOCOL,
            'first fragment holds the whole message but MORE is set',
            { state: 'reassembly' },
          );
        }
        this.skipping.set(stream, { total, received: first.length });
        return undefined;
      }
      if (first.length >= total) {
        throw new ProtocolError(
          ErrorCode.PROTOCOL,
          'first fragment holds the whole message but MORE is set',
          {
            state: 'reassembly',
          },
        );
      }
      const charged = this.reserve(first.length);
      const staged = this.staged;
      this.staged = undefined;
      let buf: Buffer;
      if (
        staged !== undefined &&
        payload.buffer === staged.buffer &&
        payload.byteOffset === staged.byteOffset
      ) {
        buf = staged.subarray(4);
      } else {
        buf = Buffer.allocUnsafeSlow(this.capacityFor(total, first.length, 0));
        first.copy(buf);
      }
      this.ahead += buf.length - first.length;
      this.partials.set(stream, {
        total,
        flags: flags & ~FrameFlag.MORE,
        buf,
        received: first.length,
        charged,
      });
      return undefined;
    }
    const skip = this.skipping.get(stream);
    if (skip !== undefined) {
      skip.received = progress(stream, skip, payload.length, more);
      if (!more) {
        this.skipping.delete(stream);
        this.refused = skip.total;
      }
      return undefined;
    }
    const partial = this.partials.get(stream);
    if (partial === undefined) {
      throw new ProtocolError(
        ErrorCode.PROTOCOL,
        `CONT on stream ${stream} with no message in progress`,
        {
          state: 'reassembly',
        },
      );
    }
    const received = progress(stream, partial, payload.length, more);
    partial.charged += this.reserve(payload.length);
    if (!inPlace(partial, payload)) {
      this.grow(partial, received);
      payload.copy(partial.buf, partial.received);
    }
    this.ahead -= received - partial.received;
    partial.received = received;
    if (more) return undefined;
    this.partials.delete(stream);
    this.pendingBytes -= partial.charged;
    this.completedFlags = partial.flags;
    return partial.buf;
  }

  /**
   * Where the decoder should copy a frame's payload that straddles socket
   * reads (FrameSink.payloadTarget): for a CONT frame, the place in its
   * message where its bytes belong; for the first fragment of a message (its
   * `prefix`, the declared total, known), the start of a new message buffer
   * behind a 4-byte slot for the prefix. `add` then finds the bytes in place
   * and copies nothing. Undefined where `add` would refuse the frame or
   * would not keep it (the decoder then uses a buffer of its own).
   */
  target(
    type: number,
    flags: number,
    stream: number,
    length: number,
    prefix: number,
  ): Buffer | undefined {
    if (this.skipping.size > 0 && this.skipping.has(stream)) return undefined;
    if (type === FrameType.CONT) {
      const partial = this.partials.get(stream);
      if (partial === undefined || partial.received + length > partial.total) return undefined;
      this.grow(partial, partial.received + length);
      return partial.buf.subarray(partial.received, partial.received + length);
    }
    if (
      type !== FrameType.DATA ||
      (flags & FrameFlag.MORE) === 0 ||
      prefix < 0 ||
      length < 4 ||
      prefix > this.maxMessageSize ||
      length - 4 >= prefix ||
      this.partials.has(stream)
    )
      return undefined;
    const store = Buffer.allocUnsafeSlow(4 + this.capacityFor(prefix, length - 4, 0));
    this.staged = store;
    return store.subarray(0, length);
  }

  /** The buffer `target` last handed out for a first fragment, until `add` takes it. */
  private staged: Buffer | undefined;

  /** Flags of the first frame of the message `add` last returned (RAW, ...), MORE cleared. */
  completedFlags = 0;

  /**
   * Set when the `add` call that just returned undefined completed a message
   * refused for its size: that size. The caller reads it and sets it back to 0.
   */
  refused = 0;

  /** Drops an unfinished message (stream closed or reset). */
  discard(stream: number): void {
    this.skipping.delete(stream);
    const partial = this.partials.get(stream);
    if (partial === undefined) return;
    this.partials.delete(stream);
    this.pendingBytes -= partial.charged;
    this.ahead -= partial.buf.length - partial.received;
  }

  /** Drops everything (link torn down). */
  clear(): void {
    this.staged = undefined;
    this.partials.clear();
    this.skipping.clear();
    this.pendingBytes = 0;
    this.ahead = 0;
  }

  /**
   * The capacity for `needed` bytes of a message of `total` whose buffer
   * now sets aside `own` bytes beyond those received: the whole total when
   * the head start allows it, else room for as much again as is needed.
   */
  private capacityFor(total: number, needed: number, own: number): number {
    if (total - needed <= REASSEMBLY_HEAD_START - (this.ahead - own)) return total;
    return Math.min(total, needed * 2);
  }

  /** Makes room in `m.buf` for `needed` bytes, keeping the `m.received` already in. */
  private grow(m: Partial, needed: number): void {
    if (needed <= m.buf.length) return;
    const own = m.buf.length - m.received;
    const next = Buffer.allocUnsafeSlow(this.capacityFor(m.total, needed, own));
    m.buf.copy(next, 0, 0, m.received);
    this.ahead += next.length - m.buf.length;
    m.buf = next;
  }

  /**
   * Counts a fragment of `n` bytes against the cap and returns what was
   * charged. Checks before counting, so a refused fragment leaves no trace.
   */
  private reserve(n: number): number {
    const cost = n + FRAGMENT_OVERHEAD;
    if (this.pendingBytes + cost > this.maxPendingBytes) {
      throw new ProtocolError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `unfinished messages hold more than ${this.maxPendingBytes} bytes`,
        { state: 'reassembly' },
      );
    }
    this.pendingBytes += cost;
    return cost;
  }
}
