/**
 * Fuzzing the read path (docs/reliability.md item 4): random bytes and mutated
 * valid streams, each split at random points and fed to a fresh decoder and
 * reassembler. Every input must end in frames or in a ProtocolError (never
 * another error, never a stall), and after every bad input a fresh decoder
 * must still complete a well-behaved round trip.
 */
import fc from 'fast-check';
import { ProtocolError } from '../../lib/errors.js';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { Reassembler, writeFragment } from '../../lib/protocol/fragment.js';
import { FrameFlag, FrameType, HEADER_SIZE, isKnownFrameType } from '../../lib/protocol/frame.js';
import { frameStarts, splitAt } from './frame-fixtures.js';

/** Small limits, so corrupted lengths and totals hit them often. */
const LIMITS = { maxFramePayload: 1024, maxMessageSize: 4096, maxPendingBytes: 16 * 1024 };
/** Inputs per kind; four kinds make the 10^5 total. */
const RUNS = 25_000;

interface Outcome {
  frames: number;
  messages: Buffer[];
  error: ProtocolError | undefined;
}

/** Feeds `input` in `chunks` through a fresh decoder and reassembler, checking every invariant. */
function feed(input: Buffer, cuts: readonly number[]): Outcome {
  const reassembler = new Reassembler(LIMITS);
  const outcome: Outcome = { frames: 0, messages: [], error: undefined };
  const decoder = new FrameDecoder(
    {
      onFrame(type, flags, stream, payload) {
        outcome.frames++;
        // What gets past the decoder is always well-formed.
        if (
          !isKnownFrameType(type) ||
          (flags & ~(FrameFlag.MORE | FrameFlag.RAW | FrameFlag.HEAD)) !== 0
        ) {
          throw new Error(`decoder let through type ${type} flags ${flags}`);
        }
        if (payload.length > LIMITS.maxFramePayload) {
          throw new Error(`decoder let through a ${payload.length}-byte payload`);
        }
        if (type !== FrameType.DATA && type !== FrameType.CONT) return;
        const message = reassembler.add(type, flags, stream, payload);
        if (reassembler.pending > LIMITS.maxPendingBytes) {
          throw new Error(`reassembler holds ${reassembler.pending} bytes`);
        }
        if (message === undefined) return;
        if (message.length > LIMITS.maxMessageSize) {
          throw new Error(`reassembler returned a ${message.length}-byte message`);
        }
        outcome.messages.push(Buffer.from(message));
      },
    },
    { maxFramePayload: LIMITS.maxFramePayload },
  );
  try {
    for (const chunk of splitAt(input, cuts)) decoder.push(chunk);
  } catch (err) {
    // Anything but a ProtocolError escapes and fails the property.
    if (!(err instanceof ProtocolError)) throw err;
    outcome.error = err;
    return outcome;
  }
  // No error: every byte was taken (a decoder that stopped early would stall the link).
  if (decoder.offset !== input.length) {
    throw new Error(`decoder took ${decoder.offset} of ${input.length} bytes`);
  }
  return outcome;
}

interface Message {
  stream: number;
  flags: number;
  data: Uint8Array;
}

/**
 * A valid stream: handshake and liveness frames, then messages of three
 * streams written fragment by fragment in round-robin, as a link does.
 */
function validStream(messages: readonly Message[], fragmentSize: number): Buffer {
  const encoder = new FrameEncoder({ blockSize: 256, copyThreshold: 64 });
  encoder.frame(FrameType.HELLO, 0, 0, Buffer.alloc(12, 1));
  encoder.frame(FrameType.PING, 0, 0, Buffer.alloc(8, 2));
  const queues = [1, 2, 3].map((s) => messages.filter((m) => m.stream === s));
  const offsets = [0, 0, 0];
  for (let busy = true; busy;) {
    busy = false;
    queues.forEach((q, i) => {
      const m = q[0];
      if (m === undefined) return;
      busy = true;
      offsets[i] = writeFragment(encoder, m.stream, m.flags, m.data, offsets[i]!, fragmentSize);
      if (offsets[i] === m.data.length) {
        q.shift();
        offsets[i] = 0;
      }
    });
    encoder.frame(FrameType.CREDIT, 0, 1, Buffer.alloc(8, 3));
  }
  encoder.frame(FrameType.GOAWAY, 0, 0, Buffer.from([0, 0, 0x62, 0x79, 0x65]));
  return Buffer.concat(encoder.take());
}

const messageArb: fc.Arbitrary<Message> = fc.record({
  stream: fc.integer({ min: 1, max: 3 }),
  flags: fc.constantFrom(0, FrameFlag.RAW),
  data: fc.uint8Array({ maxLength: 200 }),
});

const validArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.array(messageArb, { maxLength: 6 }), fc.integer({ min: 1, max: 96 }))
  .map(([messages, fragmentSize]) => validStream(messages, fragmentSize));

const cutsArb = fc.array(fc.nat({ max: 1500 }), { maxLength: 12 });

/** The well-behaved peer's round trip, run after every bad input. */
const REFERENCE: readonly Message[] = [
  { stream: 1, flags: 0, data: Buffer.from('after the storm') },
  { stream: 2, flags: FrameFlag.RAW, data: Buffer.alloc(300, 0x42) },
  { stream: 3, flags: 0, data: Buffer.alloc(0) },
];
const REFERENCE_WIRE = validStream(REFERENCE, 100);
/**
 * Arrival order: streams take turns, so streams 1 and 3 (one frame each)
 * complete in the first round and stream 2's three fragments finish last.
 */
const REFERENCE_MESSAGES = [REFERENCE[0]!, REFERENCE[2]!, REFERENCE[1]!].map((m) =>
  Buffer.from(m.data),
);

let inputs = 0;
let failures = 0;
let roundTrips = 0;

/** Runs one fuzz input and, when it was refused, proves the round trip still works. */
function check(input: Buffer, cuts: readonly number[]): void {
  inputs++;
  const outcome = feed(input, cuts);
  if (outcome.error === undefined) return;
  failures++;
  const after = feed(REFERENCE_WIRE, cuts);
  roundTrips++;
  if (after.error !== undefined || !sameMessages(after.messages)) {
    throw new Error('a well-behaved stream failed after a bad input');
  }
}

function sameMessages(got: readonly Buffer[]): boolean {
  return (
    got.length === REFERENCE_MESSAGES.length &&
    got.every((m, i) => m.equals(REFERENCE_MESSAGES[i]!))
  );
}

describe('frame fuzzing', () => {
  it('decodes the reference stream', () => {
    const outcome = feed(REFERENCE_WIRE, []);
    expect(outcome.error).toBeUndefined();
    expect(sameMessages(outcome.messages)).toBe(true);
  });

  it('decodes every unmutated valid stream', () => {
    fc.assert(
      fc.property(validArb, cutsArb, (input, cuts) => {
        expect(feed(input, cuts).error).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('survives random bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.uint8Array({ minLength: 64, maxLength: 600 }),
          // Random bytes behind a valid header, so the payload path is fuzzed too.
          fc
            .tuple(
              fc.constantFrom(FrameType.DATA, FrameType.CONT),
              fc.nat(3),
              fc.uint8Array({ maxLength: 300 }),
            )
            .map(([type, flags, body]) => {
              const b = Buffer.alloc(HEADER_SIZE + body.length);
              b.writeUInt32BE(body.length + 6, 0);
              b[4] = type;
              b[5] = flags;
              b.set(body, HEADER_SIZE);
              return b;
            }),
        ),
        cutsArb,
        (bytes, cuts) => check(Buffer.from(bytes), cuts),
      ),
      { numRuns: RUNS },
    );
  });

  it('survives bit flips in valid streams', () => {
    fc.assert(
      fc.property(
        validArb,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), {
          minLength: 1,
          maxLength: 6,
        }),
        cutsArb,
        (valid, positions, cuts) => {
          const input = Buffer.from(valid);
          for (const p of positions) {
            const bit = Math.floor(p * input.length * 8);
            input[bit >> 3]! ^= 1 << (bit & 7);
          }
          check(input, cuts);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('survives truncations and dropped ranges in valid streams', () => {
    fc.assert(
      fc.property(
        validArb,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.boolean(),
        cutsArb,
        (valid, a, b, truncate, cuts) => {
          const from = Math.floor(Math.min(a, b) * valid.length);
          const to = Math.floor(Math.max(a, b) * valid.length);
          // Truncation keeps a prefix; a dropped range joins two valid pieces.
          const input = truncate
            ? valid.subarray(0, to)
            : Buffer.concat([valid.subarray(0, from), valid.subarray(to)]);
          check(input, cuts);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('survives corrupted length fields in valid streams', () => {
    const lengths = fc.oneof(
      fc.constantFrom(
        0,
        1,
        5,
        6,
        7,
        LIMITS.maxFramePayload + 6,
        LIMITS.maxFramePayload + 7,
        0x7fffffff,
        0x80000000,
        0xffffffff,
      ),
      fc.nat({ max: 2000 }),
      fc.nat({ max: 0xffffffff }),
    );
    fc.assert(
      fc.property(
        validArb,
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), lengths), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.boolean(),
        cutsArb,
        (valid, corruptions, prefix, cuts) => {
          const input = Buffer.from(valid);
          const starts = frameStarts(valid);
          for (const [p, length] of corruptions) {
            const at = starts[Math.floor(p * starts.length)]!;
            if (prefix) {
              // The u32 total of a first fragment (DATA with MORE) when there is one.
              const flags = input[at + 5]!;
              if (input[at + 4] === FrameType.DATA && (flags & FrameFlag.MORE) !== 0) {
                input.writeUInt32BE(length, at + HEADER_SIZE);
                continue;
              }
            }
            input.writeUInt32BE(length, at);
          }
          check(input, cuts);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('ran at least 10^5 inputs, refused many, and round-tripped after each refusal', () => {
    expect(inputs).toBeGreaterThanOrEqual(100_000);
    expect(failures).toBeGreaterThan(inputs / 4);
    expect(roundTrips).toBe(failures);
  });
});
