import { ErrorCode, OptionError, ProtocolError } from '../errors.js';
import { DEFAULT_FRAME_LIMITS, HEADER_SIZE, LENGTH_OVERHEAD, isKnownFrameType } from './frame.js';

/** Receives decoded frames. One method, so the hot path allocates no frame objects. */
export interface FrameSink {
  /**
   * `payload` is a view into the chunk that carried it when the frame lay
   * inside one chunk, and a fresh copy only when it straddled chunks. It is
   * valid until the sink returns unless the sink keeps a reference (views
   * keep their chunk alive; they are never overwritten).
   */
  onFrame(type: number, flags: number, stream: number, payload: Buffer): void;
  /**
   * Asked when a frame's payload straddles chunks, before any of it is
   * copied: a buffer of exactly `length` bytes to copy the payload into (the
   * same buffer then reaches `onFrame`), or undefined for a fresh one.
   * `prefix` is the payload's first four bytes as a u32 when they are in the
   * chunk at hand, else -1. The reassembler uses it to place a fragment
   * straight into the message it belongs to. Bytes written into the buffer
   * may be left incomplete if the frame never completes.
   */
  payloadTarget?(
    type: number,
    flags: number,
    stream: number,
    length: number,
    prefix: number,
  ): Buffer | undefined;
}

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Largest frame payload accepted, in bytes. Default 1 MiB. An integer from
   * 0 to 2^32 - 7; anything else throws {@link OptionError}.
   */
  maxFramePayload?: number;
}

const KNOWN_FLAGS = 0x07;
/** The largest payload a u32 length field can describe. */
const MAX_PAYLOAD_LENGTH = 0xffffffff - LENGTH_OVERHEAD;
const STATE_HEADER = 0;
const STATE_PAYLOAD = 1;
const STATE_FAILED = 2;

/**
 * Incremental frame decoder: fed arbitrary chunks, it yields the same frames
 * whatever the chunking. The declared length is checked against the maximum
 * as soon as the header is complete, before any payload byte is buffered.
 * After a malformed frame it stays failed and rethrows the same error.
 */
export class FrameDecoder {
  /**
   * Largest frame payload accepted, in bytes. Mutable: a link starts tiny
   * for the handshake and raises it once the peer is authenticated.
   */
  maxFramePayload: number;
  private state = STATE_HEADER;
  private readonly header = Buffer.alloc(HEADER_SIZE);
  private headerFill = 0;
  private type = 0;
  private flags = 0;
  private stream = 0;
  private body: Buffer = Buffer.alloc(0);
  private bodyFill = 0;
  private consumed = 0;
  private failure: ProtocolError | undefined;

  constructor(
    private readonly sink: FrameSink,
    options: FrameDecoderOptions = {},
  ) {
    const max = options.maxFramePayload ?? DEFAULT_FRAME_LIMITS.maxFramePayload;
    // A NaN or negative limit would silently disable the size check (every
    // comparison with NaN is false), so refuse it here.
    if (!Number.isSafeInteger(max) || max < 0 || max > MAX_PAYLOAD_LENGTH) {
      throw new OptionError(
        'maxFramePayload',
        `expected an integer from 0 to ${MAX_PAYLOAD_LENGTH} bytes, got ${max}`,
      );
    }
    this.maxFramePayload = max;
  }

  /** Bytes taken so far (the offset that errors report). */
  get offset(): number {
    return this.consumed;
  }

  /** True while a frame has started but not finished (for stall detection). */
  get inFrame(): boolean {
    return this.state === STATE_PAYLOAD || (this.state === STATE_HEADER && this.headerFill > 0);
  }

  /** Decodes `chunk`, calling the sink once per complete frame. Throws {@link ProtocolError}. */
  push(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.state === STATE_HEADER) {
        let payloadLength: number;
        if (this.headerFill === 0 && end - pos >= HEADER_SIZE) {
          payloadLength = this.readHeader(chunk, pos);
          pos += HEADER_SIZE;
          this.consumed += HEADER_SIZE;
          if (end - pos >= payloadLength) {
            // Whole frame inside this chunk: hand out a view, copy nothing.
            const payload = chunk.subarray(pos, pos + payloadLength);
            pos += payloadLength;
            this.consumed += payloadLength;
            this.sink.onFrame(this.type, this.flags, this.stream, payload);
            continue;
          }
        } else {
          const take = Math.min(HEADER_SIZE - this.headerFill, end - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          this.consumed += take;
          if (this.headerFill < HEADER_SIZE) return;
          this.headerFill = 0;
          this.consumed -= HEADER_SIZE;
          payloadLength = this.readHeader(this.header, 0);
          this.consumed += HEADER_SIZE;
          if (payloadLength === 0) {
            this.sink.onFrame(this.type, this.flags, this.stream, EMPTY);
            continue;
          }
        }
        // The frame straddles chunks: buffer it, sized by the validated length.
        const prefix = end - pos >= 4 ? chunk.readUInt32BE(pos) : -1;
        const target = this.sink.payloadTarget?.(
          this.type,
          this.flags,
          this.stream,
          payloadLength,
          prefix,
        );
        this.body =
          target !== undefined && target.length === payloadLength
            ? target
            : Buffer.allocUnsafe(payloadLength);
        this.bodyFill = 0;
        this.state = STATE_PAYLOAD;
      }
      const take = Math.min(this.body.length - this.bodyFill, end - pos);
      chunk.copy(this.body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      this.consumed += take;
      if (this.bodyFill === this.body.length) {
        const payload = this.body;
        this.body = EMPTY;
        this.state = STATE_HEADER;
        this.sink.onFrame(this.type, this.flags, this.stream, payload);
      }
    }
  }

  /** Parses and validates a header at `buf[at]`; returns the payload length. */
  private readHeader(buf: Buffer, at: number): number {
    const length = buf.readUInt32BE(at);
    const type = buf[at + 4]!;
    const flags = buf[at + 5]!;
    if (length < LENGTH_OVERHEAD) {
      this.fail(
        ErrorCode.PROTOCOL,
        `frame length ${length} is below the ${LENGTH_OVERHEAD}-byte minimum`,
      );
    }
    const payloadLength = length - LENGTH_OVERHEAD;
    if (payloadLength > this.maxFramePayload) {
      this.fail(
        ErrorCode.FRAME_TOO_LARGE,
        `frame payload of ${payloadLength} bytes exceeds the ${this.maxFramePayload}-byte maximum`,
      );
    }
    if (!isKnownFrameType(type)) {
      this.fail(ErrorCode.PROTOCOL, `unknown frame type 0x${type.toString(16)}`);
    }
    if ((flags & ~KNOWN_FLAGS) !== 0) {
      this.fail(ErrorCode.PROTOCOL, `unknown frame flags 0x${flags.toString(16)}`);
    }
    this.type = type;
    this.flags = flags;
    this.stream = buf.readUInt32BE(at + 6);
    return payloadLength;
  }

  private fail(code: ErrorCode, message: string): never {
    this.state = STATE_FAILED;
    this.failure = new ProtocolError(code, message, { state: 'header', offset: this.consumed });
    throw this.failure;
  }
}

const EMPTY = Buffer.alloc(0);
