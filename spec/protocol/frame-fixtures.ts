/**
 * Shared fixtures for the protocol specs: frame generators, chunk splitters
 * and a collecting sink. Not a spec itself (jest only runs `*.spec.ts`).
 */
import fc from 'fast-check';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import type { FrameDecoderOptions } from '../../lib/protocol/decoder.js';
import { FrameFlag, FrameType, HEADER_SIZE, encodeFrame } from '../../lib/protocol/frame.js';

/** A frame as plain data, payload copied so later chunk reuse cannot alter it. */
export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const ALL_TYPES: readonly number[] = Object.values(FrameType);
export const ALL_FLAGS = FrameFlag.MORE | FrameFlag.RAW;

/** Any well-formed frame; payloads stay small so properties run fast. */
export function frameArb(maxPayload = 300): fc.Arbitrary<Frame> {
  return fc.record({
    type: fc.constantFrom(...ALL_TYPES),
    flags: fc.integer({ min: 0, max: ALL_FLAGS }),
    stream: fc.oneof(fc.constantFrom(0, 1, 0xffffffff), fc.nat({ max: 0xffffffff })),
    payload: fc
      .uint8Array({ minLength: 0, maxLength: maxPayload })
      .map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)),
  });
}

/** The wire bytes of `frames`, back to back. */
export function wire(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map((f) => encodeFrame(f.type, f.flags, f.stream, f.payload)));
}

/** Byte offsets where each frame of a valid stream starts. */
export function frameStarts(stream: Buffer): number[] {
  const starts: number[] = [];
  let pos = 0;
  while (pos + 4 <= stream.length) {
    starts.push(pos);
    pos += 4 + stream.readUInt32BE(pos);
  }
  return starts;
}

/** Splits `buf` at the given cut points (any order, duplicates and out-of-range ignored). */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < buf.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Splits `buf` into single bytes, each its own chunk. */
export function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

/** Decodes `chunks` with a fresh decoder and returns the frames (payloads copied). */
export function decodeChunks(chunks: readonly Buffer[], options?: FrameDecoderOptions): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(
    {
      onFrame(type, flags, stream, payload) {
        frames.push({ type, flags, stream, payload: Buffer.from(payload) });
      },
    },
    options,
  );
  for (const c of chunks) decoder.push(c);
  return frames;
}

/** A 10-byte header with an arbitrary (possibly invalid) length field. */
export function rawHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt32BE(length >>> 0, 0);
  b[4] = type;
  b[5] = flags;
  b.writeUInt32BE(stream >>> 0, 6);
  return b;
}

/** Runs `fn` and returns what it threw (fails the spec when it throws nothing). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}
