import { jest } from '@jest/globals';
import fc from 'fast-check';
import { ErrorCode, OptionError, ProtocolError } from '../../lib/errors.js';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { REASSEMBLY_HEAD_START, Reassembler, writeFragment } from '../../lib/protocol/fragment.js';
import type { ReassemblerOptions } from '../../lib/protocol/fragment.js';
import {
  DEFAULT_FRAME_LIMITS,
  FrameFlag,
  FrameType,
  encodeFrame,
} from '../../lib/protocol/frame.js';
import { splitAt, thrown } from './frame-fixtures.js';

const { DATA, CONT } = FrameType;
const { MORE, RAW } = FrameFlag;

interface Message {
  stream: number;
  flags: number;
  data: Buffer;
}

/** What the receiving side saw, in arrival order. */
interface Received {
  messages: Message[];
  controls: Array<[number, number]>;
}

/**
 * Writes `messages` fragment by fragment, taking streams in the order given by
 * `schedule` (indices into the streams that still have fragments) and putting
 * a control frame between turns, as a link does when other traffic interleaves.
 * Messages of one stream go one after the other: fragments of a stream are
 * contiguous within that stream.
 */
function send(
  messages: readonly Message[],
  fragmentSize: number,
  schedule: readonly number[] = [],
  encoder = new FrameEncoder({ blockSize: 4096, copyThreshold: 512 }),
): { wire: Buffer; controls: Array<[number, number]> } {
  const queues = new Map<number, Message[]>();
  for (const m of messages) {
    const q = queues.get(m.stream) ?? [];
    q.push(m);
    queues.set(m.stream, q);
  }
  const cursors = new Map<number, number>();
  const controls: Array<[number, number]> = [];
  let turn = 0;
  while (queues.size > 0) {
    const streams = [...queues.keys()];
    const stream = streams[(schedule[turn] ?? turn) % streams.length]!;
    const q = queues.get(stream)!;
    const m = q[0]!;
    const next = writeFragment(
      encoder,
      stream,
      m.flags,
      m.data,
      cursors.get(stream) ?? 0,
      fragmentSize,
    );
    if (next === m.data.length) {
      q.shift();
      cursors.delete(stream);
      if (q.length === 0) queues.delete(stream);
    } else {
      cursors.set(stream, next);
    }
    const control: [number, number] =
      turn % 2 === 0 ? [FrameType.PING, 0] : [FrameType.CREDIT, stream];
    encoder.frame(control[0], 0, control[1], Buffer.alloc(8, turn & 0xff));
    controls.push(control);
    turn++;
  }
  return { wire: Buffer.concat(encoder.take()), controls };
}

/**
 * Feeds `chunks` through a decoder into a reassembler, as a link's read path
 * does; with `inPlace`, the decoder copies straddling fragments straight into
 * their messages (Reassembler.target), as the link does.
 */
function receive(
  chunks: readonly Buffer[],
  options?: ReassemblerOptions,
  inPlace = false,
): Received {
  const reassembler = new Reassembler(options);
  const got: Received = { messages: [], controls: [] };
  const decoder = new FrameDecoder({
    ...(inPlace
      ? {
          payloadTarget: (
            type: number,
            flags: number,
            stream: number,
            len: number,
            prefix: number,
          ) => reassembler.target(type, flags, stream, len, prefix),
        }
      : {}),
    onFrame(type, flags, stream, payload) {
      if (type === DATA || type === CONT) {
        const message = reassembler.add(type, flags, stream, payload);
        if (message !== undefined) {
          got.messages.push({
            stream,
            flags: reassembler.completedFlags,
            data: Buffer.from(message),
          });
        }
      } else {
        got.controls.push([type, stream]);
      }
    },
  });
  for (const c of chunks) decoder.push(c);
  expect(reassembler.pending).toBe(0);
  return got;
}

/**
 * Messages grouped per stream in arrival order, data as base64: only the
 * order within a stream is promised, and strings compare far faster than
 * jest's element-wise Buffer equality at 200 KiB.
 */
function byStream(messages: readonly Message[]): Map<number, Array<[number, string]>> {
  const map = new Map<number, Array<[number, string]>>();
  for (const m of messages) {
    map.set(m.stream, [...(map.get(m.stream) ?? []), [m.flags, m.data.toString('base64')]]);
  }
  return map;
}

/** Bytes that differ at every offset modulo 251, so a misplaced fragment shows. */
function pattern(size: number, seed: number): Buffer {
  const cycle = Buffer.alloc(251);
  for (let i = 0; i < cycle.length; i++) cycle[i] = (i * 31 + seed) & 0xff;
  return size === 0 ? Buffer.alloc(0) : Buffer.alloc(size, cycle);
}

function expectProtocolError(err: unknown, code: ErrorCode): void {
  expect(err).toBeInstanceOf(ProtocolError);
  expect((err as ProtocolError).code).toBe(code);
}

/** The payload of a first fragment: u32 total, then the first bytes. */
function first(total: number, bytes: number): Buffer {
  const b = Buffer.alloc(4 + bytes, 1);
  b.writeUInt32BE(total, 0);
  return b;
}

describe('writeFragment + Reassembler', () => {
  describe.each([64, DEFAULT_FRAME_LIMITS.fragmentSize])('with %i-byte fragments', (fs) => {
    const sizes = [0, 1, fs - 1, fs, fs + 1, Math.floor(3.5 * fs)];

    it.each(sizes)('round-trips a %i-byte message on its own', (size) => {
      const m: Message = { stream: 3, flags: 0, data: pattern(size, size) };
      const { wire } = send([m], fs);
      expect(byStream(receive([wire]).messages)).toEqual(byStream([m]));
    });

    it('round-trips every boundary size, interleaved across streams with control frames', () => {
      const messages: Message[] = sizes.flatMap((size, i) => [
        { stream: 1 + (i % 3), flags: i % 2 === 0 ? RAW : 0, data: pattern(size, i) },
        { stream: 10 + i, flags: RAW, data: pattern(sizes[sizes.length - 1 - i]!, 100 + i) },
      ]);
      const { wire, controls } = send(messages, fs);
      // Split the wire like socket reads do, so fragments also straddle chunks.
      const cuts = Array.from({ length: Math.ceil(wire.length / 1000) }, (_, i) => i * 997 + 13);
      const got = receive(splitAt(wire, cuts));
      expect(byStream(got.messages)).toEqual(byStream(messages));
      expect(got.controls).toEqual(controls);
    });
  });

  it('writes a message that fits one fragment as a plain DATA frame', () => {
    const encoder = new FrameEncoder();
    const data = Buffer.from('fits');
    expect(writeFragment(encoder, 5, RAW, data, 0, 64)).toBe(data.length);
    expect(Buffer.concat(encoder.take())).toEqual(encodeFrame(DATA, RAW, 5, data));
  });

  it('round-trips random messages under random interleavings and chunkings', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            stream: fc.integer({ min: 1, max: 4 }),
            flags: fc.constantFrom(0, RAW),
            data: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
          }),
          { maxLength: 12 },
        ),
        fc.integer({ min: 1, max: 80 }),
        fc.array(fc.nat({ max: 7 }), { maxLength: 200 }),
        fc.array(fc.nat({ max: 20_000 }), { maxLength: 30 }),
        fc.boolean(),
        (messages: Message[], fs: number, schedule: number[], cuts: number[], inPlace: boolean) => {
          const { wire, controls } = send(messages, fs, schedule);
          const got = receive(splitAt(wire, cuts), undefined, inPlace);
          expect(byStream(got.messages)).toEqual(byStream(messages));
          expect(got.controls).toEqual(controls);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    ['a 64 KiB object (one full fragment and 14 bytes)', 65_550, 64 * 1024],
    ['a 1 MiB message', 1024 * 1024 + 7, 64 * 1024],
  ])(
    'places the fragments of %s straight into the message when reads split them',
    (_label, size, chunkSize) => {
      const data = pattern(size, 3);
      const { wire } = send([{ stream: 9, flags: 0, data }], DEFAULT_FRAME_LIMITS.fragmentSize);
      const chunks: Buffer[] = [];
      for (let at = 0; at < wire.length; at += chunkSize)
        chunks.push(wire.subarray(at, at + chunkSize));
      const reassembler = new Reassembler();
      const handedOut: ArrayBufferLike[] = [];
      let message: Buffer | undefined;
      const decoder = new FrameDecoder(
        {
          payloadTarget(type, flags, stream, length, prefix) {
            const t = reassembler.target(type, flags, stream, length, prefix);
            if (t !== undefined) handedOut.push(t.buffer);
            return t;
          },
          onFrame(type, flags, stream, payload) {
            if (type !== DATA && type !== CONT) return;
            message = reassembler.add(type, flags, stream, payload) ?? message;
          },
        },
        { maxFramePayload: DEFAULT_FRAME_LIMITS.maxFramePayload },
      );
      for (const c of chunks) decoder.push(c);
      expect(message?.equals(data)).toBe(true);
      // The message is one of the buffers handed out: no joining copy at the end.
      expect(handedOut).toContain(message!.buffer);
      // Every buffer is at most twice the bytes in by then (plus the prefix slot).
      expect(Math.max(...handedOut.map((b) => b.byteLength))).toBeLessThanOrEqual(size + 4);
      expect(reassembler.pending).toBe(0);
    },
  );

  it('never sizes an in-place buffer by the declared total alone', () => {
    const r = new Reassembler({ maxMessageSize: 0xffffffff });
    // A first fragment of 1,000 bytes declaring 4 GiB: room for 2,000, not 4 GiB.
    const t = r.target(DATA, MORE, 1, 4 + 1000, 0xfffffff0);
    expect(t?.length).toBe(1004);
    expect(t!.buffer.byteLength).toBeLessThanOrEqual(4 + 2000);
    t!.writeUInt32BE(0xfffffff0, 0);
    expect(r.add(DATA, MORE, 1, t!)).toBeUndefined();
    const next = r.target(CONT, MORE, 1, 5000, -1);
    expect(next!.buffer.byteLength).toBeLessThanOrEqual(2 * 6000);
    // No place for what add would refuse: over the size limit, a stream in
    // progress getting DATA, a CONT with no message or past the total.
    const small = new Reassembler({ maxMessageSize: 100 });
    expect(small.target(DATA, MORE, 2, 50, 101)).toBeUndefined();
    expect(r.target(DATA, MORE, 1, 50, 100)).toBeUndefined();
    expect(r.target(CONT, 0, 7, 50, -1)).toBeUndefined();
    expect(small.target(DATA, 0, 2, 50, 100)).toBeUndefined();
    small.add(DATA, MORE, 3, first(20, 10));
    expect(small.target(CONT, 0, 3, 11, -1)).toBeUndefined();
    expect(small.target(CONT, 0, 3, 10, -1)?.length).toBe(10);
  });

  it('sets aside whole messages only within its head start, across streams', () => {
    const MiB = 1024 * 1024;
    const r = new Reassembler({ maxMessageSize: 64 * MiB });
    const room = (stream: number, total: number): number => {
      const t = r.target(DATA, MORE, stream, 4 + 1024, total)!;
      t.writeUInt32BE(total, 0);
      r.add(DATA, MORE, stream, t);
      return t.buffer.byteLength - 4;
    };
    expect(REASSEMBLY_HEAD_START).toBe(16 * MiB);
    expect(room(1, 12 * MiB)).toBe(12 * MiB);
    // The head start is mostly taken: the next gets twice what arrived.
    expect(room(2, 12 * MiB)).toBe(2048);
    r.discard(1);
    expect(room(3, 12 * MiB)).toBe(12 * MiB);
    // Completing a message gives its room back too (stream 2 still sets aside 1 KiB).
    r.add(CONT, 0, 3, Buffer.alloc(12 * MiB - 1024));
    expect(room(4, 16 * MiB)).toBe(16 * MiB);
    // Past the head start, a message grows by doubling what has arrived.
    expect(room(5, 64 * MiB)).toBe(2048);
    const next = r.target(CONT, MORE, 5, 64 * 1024, -1)!;
    expect(next.buffer.byteLength).toBe(2 * (1024 + 64 * 1024));
  });

  it('refuses a fragment size below one byte', () => {
    const err = thrown(() => writeFragment(new FrameEncoder(), 1, 0, Buffer.alloc(10), 0, 0));
    expect(err).toBeInstanceOf(OptionError);
    expect((err as OptionError).option).toBe('fragmentSize');
  });
});

describe('Reassembler', () => {
  describe('flags', () => {
    it.each([
      ['an unfragmented RAW message', [[DATA, RAW, Buffer.from('raw')]], RAW],
      ['an unfragmented CBOR message', [[DATA, 0, Buffer.from('cbor')]], 0],
      [
        'a fragmented RAW message',
        [
          [DATA, RAW | MORE, first(6, 3)],
          [CONT, RAW, Buffer.alloc(3)],
        ],
        RAW,
      ],
      [
        'a fragmented CBOR message',
        [
          [DATA, MORE, first(6, 3)],
          [CONT, MORE, Buffer.alloc(1)],
          [CONT, 0, Buffer.alloc(2)],
        ],
        0,
      ],
    ] as Array<[string, Array<[number, number, Buffer]>, number]>)(
      'reports the first frame flags of %s, MORE cleared',
      (_label, frames, expected) => {
        const r = new Reassembler();
        r.completedFlags = 0xff;
        let message: Buffer | undefined;
        for (const [type, flags, payload] of frames) message = r.add(type, flags, 2, payload);
        expect(message).toBeDefined();
        expect(r.completedFlags).toBe(expected);
      },
    );

    it('returns an unfragmented payload as is (no copy)', () => {
      const payload = Buffer.from('view');
      expect(new Reassembler().add(DATA, 0, 1, payload)).toBe(payload);
    });
  });

  describe('declared size', () => {
    it.each([
      ['above maxMessageSize', 1001, { maxMessageSize: 1000 }],
      ['of 4 GiB', 0xffffffff, {}],
    ])('skips a total %s without allocating: counted, not kept', (_label, total, options) => {
      const r = new Reassembler(options);
      const payload = first(total, 10);
      const sizes: number[] = [];
      const spies = (['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const).map((name) =>
        jest.spyOn(Buffer, name).mockImplementation(((size: number) => {
          sizes.push(size);
          return new Uint8Array(0) as Buffer;
        }) as never),
      );
      let out: unknown;
      try {
        out = r.add(DATA, MORE, 1, payload);
      } finally {
        for (const s of spies) s.mockRestore();
      }
      expect(out).toBeUndefined();
      expect(sizes).toEqual([]);
      expect(r.pending).toBe(0);
      expect(r.refused).toBe(0);
    });

    it('reports a skipped message once its last fragment is in, and goes on with the stream', () => {
      const r = new Reassembler({ maxMessageSize: 1000 });
      expect(r.add(DATA, MORE, 1, first(1500, 600))).toBeUndefined();
      expect(r.add(CONT, MORE, 1, Buffer.alloc(500))).toBeUndefined();
      expect(r.refused).toBe(0);
      expect(r.pending).toBe(0);
      expect(r.add(CONT, 0, 1, Buffer.alloc(400))).toBeUndefined();
      expect(r.refused).toBe(1500);
      r.refused = 0;
      expect(r.add(DATA, 0, 1, Buffer.from('next'))?.toString()).toBe('next');
    });

    it('still refuses skipped fragments that disagree with the declared size', () => {
      const r = new Reassembler({ maxMessageSize: 1000 });
      r.add(DATA, MORE, 1, first(1500, 600));
      expectProtocolError(
        thrown(() => r.add(CONT, 0, 1, Buffer.alloc(10))),
        ErrorCode.PROTOCOL,
      );
    });

    it('accepts a total of exactly maxMessageSize', () => {
      const r = new Reassembler({ maxMessageSize: 1000 });
      expect(r.add(DATA, MORE, 1, first(1000, 600))).toBeUndefined();
      expect(r.add(CONT, 0, 1, Buffer.alloc(400))?.length).toBe(1000);
    });
  });

  describe('broken sequences', () => {
    it.each([
      ['CONT without a start', [[CONT, 0, Buffer.alloc(3)]]],
      ['CONT with MORE without a start', [[CONT, MORE, Buffer.alloc(3)]]],
      [
        'DATA while a message is unfinished',
        [
          [DATA, MORE, first(10, 5)],
          [DATA, 0, Buffer.alloc(2)],
        ],
      ],
      [
        'a new first fragment while a message is unfinished',
        [
          [DATA, MORE, first(10, 5)],
          [DATA, MORE, first(10, 5)],
        ],
      ],
      [
        'fragments exceeding the declared total',
        [
          [DATA, MORE, first(10, 6)],
          [CONT, 0, Buffer.alloc(5)],
        ],
      ],
      [
        'a last fragment short of the declared total',
        [
          [DATA, MORE, first(10, 6)],
          [CONT, 0, Buffer.alloc(3)],
        ],
      ],
      [
        'MORE on a fragment that reaches the total',
        [
          [DATA, MORE, first(10, 6)],
          [CONT, MORE, Buffer.alloc(4)],
        ],
      ],
      ['a first fragment without its size prefix', [[DATA, MORE, Buffer.alloc(3)]]],
      ['a first fragment holding the whole message', [[DATA, MORE, first(5, 5)]]],
      ['a first fragment declaring an empty message', [[DATA, MORE, first(0, 0)]]],
    ] as Array<[string, Array<[number, number, Buffer]>]>)('refuses %s', (_label, frames) => {
      const r = new Reassembler();
      const last = frames.at(-1)!;
      for (const [type, flags, payload] of frames.slice(0, -1)) r.add(type, flags, 7, payload);
      expectProtocolError(
        thrown(() => r.add(last[0], last[1], 7, last[2])),
        ErrorCode.PROTOCOL,
      );
    });

    it('keeps other streams independent', () => {
      const r = new Reassembler();
      r.add(DATA, MORE, 1, first(4, 2));
      r.add(DATA, MORE, 2, first(4, 1));
      expect(r.add(DATA, 0, 3, Buffer.from('x'))?.toString()).toBe('x');
      expect(r.add(CONT, 0, 2, Buffer.from('abc'))?.length).toBe(4);
      expect(r.add(CONT, 0, 1, Buffer.from('de'))?.length).toBe(4);
      expect(r.pending).toBe(0);
    });
  });

  describe('memory bounds', () => {
    it('caps the bytes held across streams at maxPendingBytes', () => {
      const r = new Reassembler({ maxMessageSize: 10_000, maxPendingBytes: 10_000 });
      for (const s of [1, 2, 3]) r.add(DATA, MORE, s, first(5000, 3000));
      expect(r.pending).toBeGreaterThanOrEqual(9000);
      expectProtocolError(
        thrown(() => r.add(DATA, MORE, 4, first(5000, 3000))),
        ErrorCode.MESSAGE_TOO_LARGE,
      );
    });

    it('frees what a discarded or completed message held', () => {
      const r = new Reassembler({ maxMessageSize: 10_000, maxPendingBytes: 10_000 });
      for (const s of [1, 2, 3]) r.add(DATA, MORE, s, first(5000, 3000));
      r.discard(2);
      r.discard(99);
      r.add(DATA, MORE, 4, first(5000, 1000));
      expect(r.add(CONT, 0, 1, Buffer.alloc(2000))?.length).toBe(5000);
      r.discard(3);
      r.discard(4);
      expect(r.pending).toBe(0);
      r.add(DATA, MORE, 5, first(5000, 3000));
      r.clear();
      expect(r.pending).toBe(0);
      // After clear() the stream is free again.
      expect(r.add(DATA, 0, 5, Buffer.from('ok'))?.toString()).toBe('ok');
    });

    it('bounds a flood of empty continuation fragments', () => {
      const r = new Reassembler({ maxPendingBytes: 1024 * 1024 });
      r.add(DATA, MORE, 1, first(1000, 0));
      const err = thrown(() => {
        for (let i = 0; i < 100_000; i++) r.add(CONT, MORE, 1, Buffer.alloc(0));
      });
      expectProtocolError(err, ErrorCode.MESSAGE_TOO_LARGE);
    });

    it('bounds a flood of empty first fragments across streams', () => {
      const r = new Reassembler({ maxPendingBytes: 1024 * 1024 });
      const err = thrown(() => {
        for (let s = 0; s < 100_000; s++) r.add(DATA, MORE, s, first(1000, 0));
      });
      expectProtocolError(err, ErrorCode.MESSAGE_TOO_LARGE);
    });

    it('copies a small fragment out of its chunk instead of pinning the chunk', () => {
      // A 64 KiB socket read whose only fragment byte is a few bytes: keeping a
      // view would hold the whole read for those bytes.
      const chunk = Buffer.alloc(64 * 1024);
      first(10, 6).copy(chunk, 100);
      const r = new Reassembler();
      r.add(DATA, MORE, 1, chunk.subarray(100, 110));
      chunk.fill(0xee);
      const message = r.add(CONT, 0, 1, Buffer.alloc(4, 2));
      expect(message).toEqual(Buffer.from([1, 1, 1, 1, 1, 1, 2, 2, 2, 2]));
    });
  });

  describe('options', () => {
    it.each([
      ['maxMessageSize', { maxMessageSize: -1 }],
      ['maxMessageSize', { maxMessageSize: Number.NaN }],
      ['maxMessageSize', { maxMessageSize: 2 ** 32 }],
      ['maxPendingBytes', { maxPendingBytes: 0.5 }],
      ['maxPendingBytes', { maxPendingBytes: Number.NaN }],
    ])('rejects a bad %s', (option, options) => {
      const err = thrown(() => new Reassembler(options));
      expect(err).toBeInstanceOf(OptionError);
      expect((err as OptionError).option).toBe(option);
    });
  });
});
