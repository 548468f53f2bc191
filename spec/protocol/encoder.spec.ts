import fc from 'fast-check';
import { ErrorCode, OptionError, SwitchboardError } from '../../lib/errors.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { FrameFlag, FrameType, HEADER_SIZE } from '../../lib/protocol/frame.js';
import type { Frame } from './frame-fixtures.js';
import { decodeChunks, frameArb, thrown, wire } from './frame-fixtures.js';

function encodeAll(encoder: FrameEncoder, frames: readonly Frame[]): Buffer[] {
  for (const f of frames) encoder.frame(f.type, f.flags, f.stream, f.payload);
  return encoder.take();
}

function total(bufs: readonly Buffer[]): number {
  return bufs.reduce((n, b) => n + b.length, 0);
}

describe('FrameEncoder', () => {
  it('packs many small frames into few buffers', () => {
    const frames: Frame[] = Array.from({ length: 1000 }, (_, i) => ({
      type: FrameType.DATA,
      flags: 0,
      stream: i,
      payload: Buffer.alloc(20, i & 0xff),
    }));
    const encoder = new FrameEncoder();
    expect(encoder.pendingBytes).toBe(0);
    for (const f of frames) encoder.frame(f.type, f.flags, f.stream, f.payload);
    expect(encoder.pendingBytes).toBe(1000 * (HEADER_SIZE + 20));
    const out = encoder.take();
    expect(out).toHaveLength(1);
    expect(total(out)).toBe(1000 * (HEADER_SIZE + 20));
    expect(encoder.pendingBytes).toBe(0);
    expect(decodeChunks(out)).toEqual(frames);

    const small = new FrameEncoder({ blockSize: 1024 });
    const blocks = encodeAll(small, frames);
    // 34 frames of 30 bytes fit a 1 KiB block.
    expect(blocks).toHaveLength(Math.ceil(1000 / Math.floor(1024 / 30)));
    expect(Buffer.concat(blocks)).toEqual(wire(frames));
  });

  it('gives back exactly the frames, whatever the block size and copy threshold', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb(200), { maxLength: 30 }),
        fc.integer({ min: 1, max: 512 }),
        fc.integer({ min: 0, max: 256 }),
        (frames: Frame[], blockSize: number, copyThreshold: number) => {
          const encoder = new FrameEncoder({ blockSize, copyThreshold });
          const out = encodeAll(encoder, frames);
          // Same bytes as encoding each frame on its own, and the same frames
          // when every output buffer arrives as its own chunk.
          expect(Buffer.concat(out)).toEqual(wire(frames));
          expect(decodeChunks(out)).toEqual(frames);
          expect(out.every((b) => b.length > 0)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('references large payloads as views instead of copying them', () => {
    const encoder = new FrameEncoder({ copyThreshold: 1024 });
    const big = Buffer.alloc(4096, 1);
    const bytes = new Uint8Array(2048).fill(2);
    encoder.frame(FrameType.DATA, 0, 1, Buffer.from('small'));
    encoder.frame(FrameType.DATA, 0, 2, big);
    encoder.frame(FrameType.DATA, FrameFlag.RAW, 3, bytes);
    const out = encoder.take();
    const bigView = out.find((b) => b.buffer === big.buffer && b.byteOffset === big.byteOffset);
    expect(bigView?.length).toBe(big.length);
    const bytesView = out.find((b) => b.buffer === bytes.buffer);
    expect(bytesView?.length).toBe(bytes.length);
    expect(Buffer.isBuffer(bytesView)).toBe(true);
    expect(decodeChunks(out).map((f) => f.payload.length)).toEqual([5, 4096, 2048]);
  });

  it('copies payloads below the threshold', () => {
    const encoder = new FrameEncoder({ copyThreshold: 1024 });
    const payload = Buffer.alloc(1023, 3);
    encoder.frame(FrameType.DATA, 0, 1, payload);
    const out = encoder.take();
    expect(out).toHaveLength(1);
    expect(out[0]!.buffer).not.toBe(payload.buffer);
  });

  it('never rewrites buffers it has handed out', () => {
    const encoder = new FrameEncoder({ blockSize: 256 });
    encoder.frame(FrameType.DATA, 0, 1, Buffer.alloc(50, 1));
    const first = encoder.take();
    const snapshot = first.map((b) => Buffer.from(b));
    for (let i = 0; i < 20; i++) encoder.frame(FrameType.DATA, 0, 2, Buffer.alloc(50, 9));
    encoder.take();
    expect(first).toEqual(snapshot);
  });

  it('encodes frames without payload, also with a zero copy threshold', () => {
    const encoder = new FrameEncoder({ copyThreshold: 0 });
    encoder.frame(FrameType.PING, 0, 0);
    encoder.frame(FrameType.WELCOME, 0, 0, new Uint8Array(0));
    encoder.frame(FrameType.DATA, 0, 4, Buffer.from('x'));
    expect(decodeChunks(encoder.take())).toEqual([
      { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(0) },
      { type: FrameType.WELCOME, flags: 0, stream: 0, payload: Buffer.alloc(0) },
      { type: FrameType.DATA, flags: 0, stream: 4, payload: Buffer.from('x') },
    ]);
  });

  describe('begin / commit', () => {
    it('lets a caller encode straight into the block', () => {
      const encoder = new FrameEncoder({ blockSize: 64 });
      encoder.frame(FrameType.PING, 0, 0, Buffer.alloc(8, 1));
      for (const text of ['hello', 'a longer message than the rest of the block']) {
        // Reserve more than is written: the frame takes only what commit says.
        const { buffer, offset } = encoder.begin(100);
        const n = buffer.write(text, offset);
        encoder.commit(FrameType.DATA, FrameFlag.RAW, 7, n);
      }
      encoder.frame(FrameType.PONG, 0, 0, Buffer.alloc(8, 2));
      expect(decodeChunks(encoder.take())).toEqual([
        { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(8, 1) },
        { type: FrameType.DATA, flags: FrameFlag.RAW, stream: 7, payload: Buffer.from('hello') },
        {
          type: FrameType.DATA,
          flags: FrameFlag.RAW,
          stream: 7,
          payload: Buffer.from('a longer message than the rest of the block'),
        },
        { type: FrameType.PONG, flags: 0, stream: 0, payload: Buffer.alloc(8, 2) },
      ]);
    });

    it('hands out room for at least the requested payload', () => {
      const encoder = new FrameEncoder({ blockSize: 32 });
      const { buffer, offset } = encoder.begin(1000);
      expect(buffer.length - offset).toBeGreaterThanOrEqual(1000);
      buffer.fill(5, offset, offset + 1000);
      encoder.commit(FrameType.DATA, 0, 1, 1000);
      expect(encoder.pendingBytes).toBe(HEADER_SIZE + 1000);
      expect(decodeChunks(encoder.take())[0]!.payload).toEqual(Buffer.alloc(1000, 5));
    });

    it('refuses a commit larger than the block it was given', () => {
      const encoder = new FrameEncoder({ blockSize: 64 });
      const { buffer, offset } = encoder.begin(10);
      const err = thrown(() => encoder.commit(FrameType.DATA, 0, 1, buffer.length - offset + 1));
      expect(err).toBeInstanceOf(SwitchboardError);
      expect((err as SwitchboardError).code).toBe(ErrorCode.INTERNAL);
      expect(encoder.pendingBytes).toBe(0);
    });

    it('encodes an empty payload', () => {
      const encoder = new FrameEncoder();
      encoder.begin(16);
      encoder.commit(FrameType.CLOSE, 0, 3, 0);
      expect(decodeChunks(encoder.take())).toEqual([
        { type: FrameType.CLOSE, flags: 0, stream: 3, payload: Buffer.alloc(0) },
      ]);
    });
  });

  describe('frameWithPrefix', () => {
    it.each([
      ['a copied payload', 100],
      ['a referenced payload', 5000],
    ])('writes a u32 prefix before %s', (_label, size) => {
      const encoder = new FrameEncoder({ copyThreshold: 1024 });
      const payload = Buffer.alloc(size, 0x5a);
      encoder.frameWithPrefix(FrameType.DATA, FrameFlag.MORE, 11, 0xdeadbeef, payload);
      encoder.frame(FrameType.PING, 0, 0, Buffer.alloc(8));
      const out = encoder.take();
      const frames = decodeChunks(out);
      expect(frames).toHaveLength(2);
      const f = frames[0]!;
      expect([f.type, f.flags, f.stream]).toEqual([FrameType.DATA, FrameFlag.MORE, 11]);
      expect(f.payload.readUInt32BE(0)).toBe(0xdeadbeef);
      expect(f.payload.subarray(4)).toEqual(payload);
      expect(out.some((b) => b.buffer === payload.buffer)).toBe(size >= 1024);
    });
  });

  describe('options', () => {
    it.each([
      ['blockSize', { blockSize: 0 }],
      ['blockSize', { blockSize: Number.NaN }],
      ['blockSize', { blockSize: 1.5 }],
      ['copyThreshold', { copyThreshold: -1 }],
      ['copyThreshold', { copyThreshold: Number.NaN }],
    ])('rejects a bad %s', (option, options) => {
      const err = thrown(() => new FrameEncoder(options));
      expect(err).toBeInstanceOf(OptionError);
      expect((err as OptionError).option).toBe(option);
    });
  });
});
