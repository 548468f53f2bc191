import { ErrorCode, OptionError, SwitchboardError } from '../errors.js';
import { HEADER_SIZE, writeHeader } from './frame.js';
import { writeHead } from './head.js';
import type { HeadField } from './head.js';

/** Options of a {@link FrameEncoder}. */
export interface FrameEncoderOptions {
  /** Size of each output block in bytes (a positive integer). Default 64 KiB. */
  blockSize?: number;
  /**
   * Payloads of at least this many bytes (a non-negative integer) are
   * referenced, not copied. Default 16 KiB. Empty payloads are never referenced.
   */
  copyThreshold?: number;
  /** Record each frame's size, for {@link FrameEncoder.takeSizes}. Default false. */
  recordSizes?: boolean;
}

/**
 * Packs many frames into few large buffers. Small payloads are copied into
 * the current block; large ones are referenced as views so a 64 KiB payload
 * is never copied twice. `take()` hands the finished buffers to the link,
 * which writes them once per event-loop turn.
 *
 * Blocks are never rewritten once sealed, so views returned by `take()` stay
 * valid for as long as the caller keeps them (the resend log relies on it).
 */
export class FrameEncoder {
  private readonly blockSize: number;
  private readonly copyThreshold: number;
  private block: Buffer;
  private start = 0;
  private pos = 0;
  private out: Buffer[] = [];
  private outBytes = 0;
  private sizes: Uint32Array | undefined;
  private sizeCount = 0;

  constructor(options: FrameEncoderOptions = {}) {
    this.blockSize = options.blockSize ?? 64 * 1024;
    this.copyThreshold = options.copyThreshold ?? 16 * 1024;
    if (!Number.isSafeInteger(this.blockSize) || this.blockSize < 1) {
      throw new OptionError('blockSize', `expected a positive integer, got ${this.blockSize}`);
    }
    if (!Number.isSafeInteger(this.copyThreshold) || this.copyThreshold < 0) {
      throw new OptionError(
        'copyThreshold',
        `expected a non-negative integer, got ${this.copyThreshold}`,
      );
    }
    this.block = Buffer.allocUnsafe(this.blockSize);
    if (options.recordSizes === true) this.sizes = new Uint32Array(256);
  }

  /**
   * The sizes of the frames appended since the last call, header included,
   * in order (with `recordSizes`; empty otherwise). A view, valid until the
   * next frame is appended.
   */
  takeSizes(): Uint32Array {
    const sizes = this.sizes ?? NO_SIZES;
    const n = this.sizeCount;
    this.sizeCount = 0;
    return sizes.subarray(0, n);
  }

  private recordSize(size: number): void {
    let sizes = this.sizes!;
    if (this.sizeCount === sizes.length) {
      const grown = new Uint32Array(sizes.length * 2);
      grown.set(sizes);
      this.sizes = sizes = grown;
    }
    sizes[this.sizeCount++] = size;
  }

  /** Bytes encoded and not yet taken. */
  get pendingBytes(): number {
    return this.outBytes + (this.pos - this.start);
  }

  /** Appends one frame. */
  frame(type: number, flags: number, stream: number, payload?: Uint8Array): void {
    const len = payload === undefined ? 0 : payload.length;
    if (this.sizes !== undefined) this.recordSize(HEADER_SIZE + len);
    // `len > 0` keeps an absent or empty payload off the reference path even
    // with a zero threshold: there is nothing to reference.
    if (len > 0 && len >= this.copyThreshold) {
      this.reserve(HEADER_SIZE);
      writeHeader(this.block, this.pos, type, flags, stream, len);
      this.pos += HEADER_SIZE;
      this.seal();
      this.push(payload as Uint8Array);
      return;
    }
    this.reserve(HEADER_SIZE + len);
    writeHeader(this.block, this.pos, type, flags, stream, len);
    this.pos += HEADER_SIZE;
    if (payload !== undefined) {
      this.block.set(payload, this.pos);
      this.pos += len;
    }
  }

  /**
   * Appends one frame whose payload is the head of `fields` (`headLength`
   * bytes, see head.ts) followed by `body`, both copied into the block (no
   * buffer of their own). Returns false, appending nothing, when the
   * payload is large enough to be referenced instead: join them then.
   */
  frameHeaded(
    type: number,
    flags: number,
    stream: number,
    fields: readonly HeadField[],
    headLength: number,
    body: Uint8Array,
  ): boolean {
    const len = headLength + body.length;
    if (len >= this.copyThreshold) return false;
    if (this.sizes !== undefined) this.recordSize(HEADER_SIZE + len);
    this.reserve(HEADER_SIZE + len);
    writeHeader(this.block, this.pos, type, flags, stream, len);
    const at = writeHead(fields, this.block, this.pos + HEADER_SIZE);
    this.block.set(body, at);
    this.pos = at + body.length;
    return true;
  }

  /**
   * Appends one frame whose payload is a u32 BE `prefix` followed by
   * `payload` (the first fragment of a split message carries the total size).
   */
  frameWithPrefix(
    type: number,
    flags: number,
    stream: number,
    prefix: number,
    payload: Uint8Array,
  ): void {
    const len = payload.length;
    if (this.sizes !== undefined) this.recordSize(HEADER_SIZE + 4 + len);
    const reference = len > 0 && len >= this.copyThreshold;
    this.reserve(HEADER_SIZE + 4 + (reference ? 0 : len));
    writeHeader(this.block, this.pos, type, flags, stream, len + 4);
    this.block.writeUInt32BE(prefix, this.pos + HEADER_SIZE);
    this.pos += HEADER_SIZE + 4;
    if (reference) {
      this.seal();
      this.push(payload);
    } else {
      this.block.set(payload, this.pos);
      this.pos += len;
    }
  }

  /**
   * Reserves room for a header plus `maxPayload` bytes and returns the block
   * and the payload's offset, so a caller can encode straight into it; it must
   * then call {@link commit} with the bytes actually written.
   */
  begin(maxPayload: number): { buffer: Buffer; offset: number } {
    this.reserve(HEADER_SIZE + maxPayload);
    return { buffer: this.block, offset: this.pos + HEADER_SIZE };
  }

  /**
   * Finishes a frame started with {@link begin}. Throws a
   * {@link SwitchboardError} with code `ERR_SB_INTERNAL` when `payloadLength`
   * does not fit the block `begin` handed out (a caller bug that would
   * otherwise put garbage on the wire).
   */
  commit(type: number, flags: number, stream: number, payloadLength: number): void {
    if (!(payloadLength >= 0 && this.pos + HEADER_SIZE + payloadLength <= this.block.length)) {
      throw new SwitchboardError(
        ErrorCode.INTERNAL,
        `commit of ${payloadLength} payload bytes overruns the block begin() reserved`,
      );
    }
    writeHeader(this.block, this.pos, type, flags, stream, payloadLength);
    this.pos += HEADER_SIZE + payloadLength;
    if (this.sizes !== undefined) this.recordSize(HEADER_SIZE + payloadLength);
  }

  /** Returns the encoded buffers in order and starts afresh. */
  take(): Buffer[] {
    this.seal();
    const out = this.out;
    this.out = [];
    this.outBytes = 0;
    return out;
  }

  private reserve(n: number): void {
    if (this.block.length - this.pos >= n) return;
    this.seal();
    this.block = Buffer.allocUnsafe(Math.max(this.blockSize, n));
    this.start = 0;
    this.pos = 0;
  }

  private seal(): void {
    if (this.pos > this.start) {
      this.push(this.block.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }

  private push(buf: Uint8Array): void {
    this.out.push(
      Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength),
    );
    this.outBytes += buf.length;
  }
}

const NO_SIZES = new Uint32Array(0);
