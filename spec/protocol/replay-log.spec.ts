import fc from 'fast-check';
import { ErrorCode, ProtocolError } from '../../lib/errors.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { FrameType, HEADER_SIZE } from '../../lib/protocol/frame.js';
import { ReplayLog } from '../../lib/protocol/replay-log.js';
import type { Frame } from './frame-fixtures.js';
import { decodeChunks, thrown } from './frame-fixtures.js';

const SEQUENCED = [
  FrameType.DATA,
  FrameType.CONT,
  FrameType.CREDIT,
  FrameType.OPEN,
  FrameType.CLOSE,
  FrameType.CANCEL,
  FrameType.ERROR,
  FrameType.CONTROL,
];

/**
 * A tiny block size and copy threshold force every layout the log must walk:
 * several frames per buffer, headers at the very end of a buffer, and
 * payloads in buffers of their own (views).
 */
function smallEncoder(): FrameEncoder {
  return new FrameEncoder({ blockSize: 24, copyThreshold: 8, recordSizes });
}

function frame(n: number, size: number): Frame {
  return {
    type: SEQUENCED[n % SEQUENCED.length]!,
    flags: 0,
    stream: n,
    payload: Buffer.alloc(size, n & 0xff),
  };
}

/** Encodes `frames` and appends them as one batch, as a link does after each flush. */
function appendBatch(log: ReplayLog, encoder: FrameEncoder, frames: readonly Frame[]): Buffer[] {
  for (const f of frames) encoder.frame(f.type, f.flags, f.stream, f.payload);
  const bufs = encoder.take();
  // A link hands over the encoder's record of the sizes; without it the log reads the prefixes.
  log.append(bufs, frames.length, recordSizes ? encoder.takeSizes() : undefined);
  return bufs;
}

function size(frames: readonly Frame[]): number {
  return frames.reduce((n, f) => n + HEADER_SIZE + f.payload.length, 0);
}

/** Whether the encoder records frame sizes for the log (as a link's does), set per run below. */
let recordSizes = false;

describe.each([
  ['reading the length prefixes', false],
  ["with the encoder's record of the sizes", true],
])('ReplayLog, %s', (_how, record) => {
  beforeAll(() => {
    recordSizes = record;
  });

  it('replays exactly the unacknowledged frames across buffer boundaries', () => {
    const log = new ReplayLog();
    const encoder = smallEncoder();
    const sizes = [0, 3, 8, 20, 1, 14, 0, 40, 7, 9, 2, 100];
    const frames = sizes.map((s, i) => frame(i, s));
    const bufs = appendBatch(log, encoder, frames.slice(0, 5));
    // The layout really does split frames over buffers.
    expect(bufs.length).toBeGreaterThan(3);
    appendBatch(log, encoder, frames.slice(5));
    expect(log.sentCount).toBe(frames.length);
    expect(log.bytes).toBe(size(frames));

    for (const count of [0, 0, 1, 2, 3, 5, 8, 11, 12]) {
      const replay = log.replayFrom(count);
      expect(decodeChunks(replay)).toEqual(frames.slice(count));
      expect(replay.reduce((n, b) => n + b.length, 0)).toBe(size(frames.slice(count)));
      expect(log.ackedCount).toBe(count);
      expect(log.bytes).toBe(size(frames.slice(count)));
    }
    expect(log.replayFrom(12)).toEqual([]);
    expect(log.bytes).toBe(0);
  });

  it('trims on ack and ignores stale counts', () => {
    const log = new ReplayLog();
    const encoder = smallEncoder();
    const frames = Array.from({ length: 6 }, (_, i) => frame(i, i * 5));
    appendBatch(log, encoder, frames);
    log.ack(4);
    log.ack(2);
    log.ack(4);
    expect(log.ackedCount).toBe(4);
    expect(log.bytes).toBe(size(frames.slice(4)));
    expect(decodeChunks(log.replayFrom(4))).toEqual(frames.slice(4));
  });

  it('replays the same frames when asked twice (a second reconnect)', () => {
    const log = new ReplayLog();
    const encoder = smallEncoder();
    const frames = Array.from({ length: 9 }, (_, i) => frame(i, (i * 7) % 30));
    appendBatch(log, encoder, frames);
    const once = Buffer.concat(log.replayFrom(3));
    const twice = Buffer.concat(log.replayFrom(3));
    expect(twice).toEqual(once);
    expect(decodeChunks([twice])).toEqual(frames.slice(3));
  });

  it('stays correct over many small batches (compaction of the buffer list)', () => {
    const log = new ReplayLog();
    const encoder = smallEncoder();
    const frames: Frame[] = [];
    for (let i = 0; i < 500; i++) {
      const f = frame(i, i % 23);
      frames.push(f);
      appendBatch(log, encoder, [f]);
      if (i % 3 === 2) log.ack(i - 1);
    }
    expect(decodeChunks(log.replayFrom(log.ackedCount))).toEqual(frames.slice(log.ackedCount));
    log.ack(500);
    expect(log.bytes).toBe(0);
    expect(log.replayFrom(500)).toEqual([]);
  });

  it('refuses an acknowledgement of frames never sent, and a replay of acknowledged ones', () => {
    const log = new ReplayLog();
    appendBatch(log, smallEncoder(), [frame(0, 1), frame(1, 2)]);
    for (const bad of [3, 1.5, Number.NaN]) {
      const err = thrown(() => log.ack(bad));
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as ProtocolError).code).toBe(ErrorCode.PROTOCOL);
    }
    log.ack(1);
    const err = thrown(() => log.replayFrom(0));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe(ErrorCode.PROTOCOL);
    // The failed calls changed nothing.
    expect(log.ackedCount).toBe(1);
    expect(decodeChunks(log.replayFrom(1))).toEqual([frame(1, 2)]);
  });

  it('forgets everything on clear()', () => {
    const log = new ReplayLog();
    const encoder = smallEncoder();
    appendBatch(log, encoder, [frame(0, 30), frame(1, 2)]);
    log.clear();
    expect([log.bytes, log.ackedCount, log.sentCount]).toEqual([0, 0, 0]);
    expect(log.replayFrom(0)).toEqual([]);
    appendBatch(log, encoder, [frame(5, 9)]);
    expect(decodeChunks(log.replayFrom(0))).toEqual([frame(5, 9)]);
  });

  it('matches a model under random appends, acks and replays', () => {
    type Op =
      | { kind: 'append'; sizes: number[] }
      | { kind: 'ack'; fraction: number }
      | { kind: 'replay'; fraction: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('append' as const),
        sizes: fc.array(fc.oneof(fc.nat({ max: 10 }), fc.nat({ max: 80 })), { maxLength: 8 }),
      }),
      fc.record({
        kind: fc.constant('ack' as const),
        fraction: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
      fc.record({
        kind: fc.constant('replay' as const),
        fraction: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 40 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 32 }),
        (ops: Op[], blockSize: number, copyThreshold: number) => {
          const log = new ReplayLog();
          const encoder = new FrameEncoder({ blockSize, copyThreshold, recordSizes });
          const sent: Frame[] = [];
          let acked = 0;
          for (const o of ops) {
            if (o.kind === 'append') {
              const batch = o.sizes.map((s, i) => frame(sent.length + i, s));
              appendBatch(log, encoder, batch);
              sent.push(...batch);
            } else {
              // Any count the peer may legally name: from the last ack to all sent.
              const count = acked + Math.floor(o.fraction * (sent.length - acked));
              if (o.kind === 'ack') {
                log.ack(count);
              } else {
                expect(decodeChunks(log.replayFrom(count))).toEqual(sent.slice(count));
              }
              acked = count;
            }
            expect(log.ackedCount).toBe(acked);
            expect(log.sentCount).toBe(sent.length);
            expect(log.bytes).toBe(size(sent.slice(acked)));
          }
          expect(decodeChunks(log.replayFrom(acked))).toEqual(sent.slice(acked));
          log.ack(sent.length);
          expect(log.bytes).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
