import { jest } from '@jest/globals';
import fc from 'fast-check';
import { ErrorCode, OptionError, ProtocolError } from '../../lib/errors.js';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import {
  DEFAULT_FRAME_LIMITS,
  FrameType,
  HEADER_SIZE,
  LENGTH_OVERHEAD,
  encodeFrame,
} from '../../lib/protocol/frame.js';
import type { Frame } from './frame-fixtures.js';
import {
  bytewise,
  decodeChunks,
  frameArb,
  rawHeader,
  splitAt,
  thrown,
  wire,
} from './frame-fixtures.js';

/** A decoder whose sink records every call, payloads kept as given (views stay views). */
function recording(options?: { maxFramePayload?: number }): {
  decoder: FrameDecoder;
  payloads: Buffer[];
  frames: Array<[number, number, number, string]>;
} {
  const payloads: Buffer[] = [];
  const frames: Array<[number, number, number, string]> = [];
  const decoder = new FrameDecoder(
    {
      onFrame(type, flags, stream, payload) {
        payloads.push(payload);
        frames.push([type, flags, stream, payload.toString('hex')]);
      },
    },
    options,
  );
  return { decoder, payloads, frames };
}

/** Counts Buffer allocations of at least `min` bytes made while `fn` runs. */
function largeAllocations(min: number, fn: () => void): number[] {
  const sizes: number[] = [];
  const spies = (['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const).map((name) => {
    const original = Buffer[name] as (...args: unknown[]) => Buffer;
    const spy = (size: number, ...rest: unknown[]): Buffer => {
      if (size >= min) sizes.push(size);
      return original.call(Buffer, size, ...rest);
    };
    return jest.spyOn(Buffer, name).mockImplementation(spy as never);
  });
  try {
    fn();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return sizes;
}

/** True when two views share at least one byte of memory. */
function overlaps(a: Buffer, b: Buffer): boolean {
  return (
    a.buffer === b.buffer &&
    a.byteOffset < b.byteOffset + b.length &&
    b.byteOffset < a.byteOffset + a.length
  );
}

function expectProtocolError(err: unknown, code: ErrorCode): ProtocolError {
  expect(err).toBeInstanceOf(ProtocolError);
  const pe = err as ProtocolError;
  expect(pe.code).toBe(code);
  return pe;
}

describe('FrameDecoder', () => {
  describe('chunking independence', () => {
    it('decodes the same frames whole, byte by byte and at random split points', () => {
      fc.assert(
        fc.property(
          fc.array(frameArb(), { maxLength: 12 }),
          fc.array(fc.nat({ max: 5000 }), { maxLength: 40 }),
          (frames: Frame[], cuts: number[]) => {
            const bytes = wire(frames);
            const whole = decodeChunks([bytes]);
            expect(whole).toEqual(frames);
            expect(decodeChunks(bytewise(bytes))).toEqual(frames);
            expect(decodeChunks(splitAt(bytes, cuts))).toEqual(frames);
          },
        ),
        { numRuns: 300 },
      );
    });

    it('decodes frames whose payloads straddle many chunks', () => {
      const big: Frame = {
        type: FrameType.DATA,
        flags: 0,
        stream: 9,
        payload: Buffer.alloc(200_000, 0xab),
      };
      const small: Frame = { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.alloc(8) };
      const bytes = wire([small, big, small]);
      const cuts = Array.from({ length: 30 }, (_, i) => 7 + i * 7001);
      expect(decodeChunks(splitAt(bytes, cuts))).toEqual([small, big, small]);
    });

    it('reports empty payloads as zero-length buffers', () => {
      const { decoder, payloads } = recording();
      const bytes = encodeFrame(FrameType.WELCOME, 0, 3);
      decoder.push(bytes.subarray(0, 4));
      decoder.push(bytes.subarray(4));
      decoder.push(bytes);
      expect(payloads.map((p) => p.length)).toEqual([0, 0]);
    });
  });

  describe('payload views', () => {
    it('hands out a view of the chunk when the frame lies inside it', () => {
      const a = encodeFrame(FrameType.DATA, 0, 1, Buffer.from('first'));
      const b = encodeFrame(FrameType.DATA, 0, 2, Buffer.from('second'));
      const chunk = Buffer.concat([a, b]);
      const { decoder, payloads } = recording();
      decoder.push(chunk);
      expect(payloads).toHaveLength(2);
      const [p1, p2] = payloads as [Buffer, Buffer];
      expect(p1.buffer).toBe(chunk.buffer);
      expect(p1.byteOffset).toBe(chunk.byteOffset + HEADER_SIZE);
      expect(p2.buffer).toBe(chunk.buffer);
      expect(p2.byteOffset).toBe(chunk.byteOffset + a.length + HEADER_SIZE);
      expect(p2.toString()).toBe('second');
    });

    it('copies a payload that straddles chunks, so it does not alias either chunk', () => {
      const bytes = encodeFrame(FrameType.DATA, 0, 1, Buffer.from('straddling payload'));
      const c1 = Buffer.from(bytes.subarray(0, 15));
      const c2 = Buffer.from(bytes.subarray(15));
      const { decoder, payloads } = recording();
      decoder.push(c1);
      decoder.push(c2);
      const p = payloads[0]!;
      expect(p.toString()).toBe('straddling payload');
      // Small buffers may share Node's pool slab, so compare memory ranges, not ArrayBuffers.
      expect(overlaps(p, c1)).toBe(false);
      expect(overlaps(p, c2)).toBe(false);
      c1.fill(0);
      c2.fill(0);
      expect(p.toString()).toBe('straddling payload');
    });
  });

  describe('length limits', () => {
    it.each([
      ['4 GiB (0xffffffff)', 0xffffffff, DEFAULT_FRAME_LIMITS.maxFramePayload],
      [
        'one byte above the default maximum',
        DEFAULT_FRAME_LIMITS.maxFramePayload + 1 + LENGTH_OVERHEAD,
        DEFAULT_FRAME_LIMITS.maxFramePayload,
      ],
      ['one byte above a configured maximum', 1000 + 1 + LENGTH_OVERHEAD, 1000],
    ])(
      'rejects a length prefix of %s on the push that completes the header, buffering nothing',
      (_label, length, maxFramePayload) => {
        const header = rawHeader(length, FrameType.DATA, 0, 5);
        const { decoder, frames } = recording({ maxFramePayload });
        // Nine bytes: not yet a header, so no verdict and no allocation.
        const early = largeAllocations(64, () => {
          for (const b of bytewise(header.subarray(0, HEADER_SIZE - 1))) decoder.push(b);
        });
        expect(early).toEqual([]);
        expect(decoder.inFrame).toBe(true);
        let err: unknown;
        const allocated = largeAllocations(64, () => {
          err = thrown(() => decoder.push(header.subarray(HEADER_SIZE - 1)));
        });
        const pe = expectProtocolError(err, ErrorCode.FRAME_TOO_LARGE);
        expect(pe.offset).toBe(0);
        expect(pe.state).toBe('header');
        expect(allocated).toEqual([]);
        expect(frames).toEqual([]);
      },
    );

    it('rejects an oversized header arriving whole with payload bytes after it, allocating nothing', () => {
      const lead = encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8));
      const chunk = Buffer.concat([
        lead,
        rawHeader(0xffffffff, FrameType.DATA, 0, 1),
        Buffer.alloc(100),
      ]);
      const { decoder, frames } = recording();
      let err: unknown;
      const allocated = largeAllocations(64, () => {
        err = thrown(() => decoder.push(chunk));
      });
      const pe = expectProtocolError(err, ErrorCode.FRAME_TOO_LARGE);
      // The offset points at the offending frame, after the valid one.
      expect(pe.offset).toBe(lead.length);
      expect(pe.state).toBe('header');
      expect(allocated).toEqual([]);
      expect(frames).toHaveLength(1);
    });

    it('accepts a payload of exactly the maximum', () => {
      const payload = Buffer.alloc(1000, 7);
      const frames = decodeChunks([encodeFrame(FrameType.DATA, 0, 1, payload)], {
        maxFramePayload: 1000,
      });
      expect(frames).toEqual([{ type: FrameType.DATA, flags: 0, stream: 1, payload }]);
    });
  });

  describe('malformed headers', () => {
    it.each([
      ['length 0', rawHeader(0, FrameType.DATA, 0, 1)],
      ['length 5 (below the 6-byte minimum)', rawHeader(5, FrameType.DATA, 0, 1)],
      ['unknown type 0x00', rawHeader(6, 0x00, 0, 1)],
      ['unknown type 0x04', rawHeader(6, 0x04, 0, 1)],
      ['unknown type 0x18', rawHeader(6, 0x18, 0, 1)],
      ['unknown type 0xff', rawHeader(6, 0xff, 0, 1)],
      ['unknown flag 0x08', rawHeader(6, FrameType.DATA, 0x08, 1)],
      ['unknown flag 0x80', rawHeader(6, FrameType.DATA, 0x80, 1)],
    ])('rejects %s with ERR_SB_PROTOCOL, whole or byte by byte', (_label, header) => {
      const whole = recording();
      expectProtocolError(
        thrown(() => whole.decoder.push(header)),
        ErrorCode.PROTOCOL,
      );
      const split = recording();
      const chunks = bytewise(header);
      for (const c of chunks.slice(0, -1)) split.decoder.push(c);
      const pe = expectProtocolError(
        thrown(() => split.decoder.push(chunks.at(-1)!)),
        ErrorCode.PROTOCOL,
      );
      expect(pe.offset).toBe(0);
      expect(pe.state).toBe('header');
    });

    it('stays failed after an error and rethrows it for any later input', () => {
      const { decoder, frames } = recording();
      const first = thrown(() => decoder.push(rawHeader(3, FrameType.DATA, 0, 1)));
      expectProtocolError(first, ErrorCode.PROTOCOL);
      expect(thrown(() => decoder.push(encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))))).toBe(
        first,
      );
      expect(thrown(() => decoder.push(Buffer.alloc(0)))).toBe(first);
      expect(frames).toEqual([]);
    });

    it('delivers the frames before a bad one in the same chunk', () => {
      const good = encodeFrame(FrameType.DATA, 0, 1, Buffer.from('ok'));
      const { decoder, frames } = recording();
      const err = thrown(() => decoder.push(Buffer.concat([good, rawHeader(6, 0x99, 0, 1)])));
      expect(expectProtocolError(err, ErrorCode.PROTOCOL).offset).toBe(good.length);
      expect(frames).toEqual([[FrameType.DATA, 0, 1, Buffer.from('ok').toString('hex')]]);
    });
  });

  describe('truncated input', () => {
    it('is not in a frame before any input or after whole frames', () => {
      const { decoder } = recording();
      expect(decoder.inFrame).toBe(false);
      decoder.push(encodeFrame(FrameType.DATA, 0, 1, Buffer.from('x')));
      expect(decoder.inFrame).toBe(false);
      expect(decoder.offset).toBe(HEADER_SIZE + 1);
    });

    it.each([1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])(
      'yields no frame and reports inFrame after %i bytes of a 20-byte frame',
      (n) => {
        const bytes = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(10, 1));
        const { decoder, frames } = recording();
        decoder.push(bytes.subarray(0, n));
        expect(frames).toEqual([]);
        expect(decoder.inFrame).toBe(true);
        expect(decoder.offset).toBe(n);
        decoder.push(bytes.subarray(n));
        expect(frames).toHaveLength(1);
        expect(decoder.inFrame).toBe(false);
      },
    );
  });

  describe('options', () => {
    it.each([-1, 1.5, Number.NaN, 2 ** 32])('rejects maxFramePayload %p', (maxFramePayload) => {
      const err = thrown(() => new FrameDecoder({ onFrame() {} }, { maxFramePayload }));
      expect(err).toBeInstanceOf(OptionError);
      expect((err as OptionError).option).toBe('maxFramePayload');
    });
  });
});
