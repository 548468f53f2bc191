/**
 * Fuzzing the CBOR codec (docs/reliability.md items 4 and 5): random bytes,
 * random sequences of CBOR tokens, and mutations of valid encodings (bit
 * flips, truncation, insertion, deletion, overwrites, duplication). Each
 * input must either decode, and then re-encode (so it can be forwarded), or
 * throw a DecodeError that does not hide a stack overflow: never another
 * error type. After every input a well-behaved value must still round-trip,
 * and after every batch Object.prototype must be untouched.
 */
import fc from 'fast-check';
import { DecodeError } from '../../lib/errors.js';
import {
  DEFAULT_CODEC_LIMITS,
  decodeValue,
  encodeValue,
  PortableHandle,
} from '../../lib/protocol/codec.js';
import type { CodecContext, CodecLimits, HandleRef } from '../../lib/protocol/codec.js';

/** Inputs per kind: 30,000 + 30,000 + 40,000 = 10^5 in total. */
const RUNS = { randomBytes: 30_000, tokenSoup: 30_000, mutations: 40_000 };

/** Small limits, so corrupted inputs hit the depth and size checks often. */
const SMALL_LIMITS: CodecLimits = { maxDepth: 3, maxMessageSize: 64 };

class FuzzHandle extends PortableHandle {
  constructor(private readonly ref: HandleRef) {
    super();
  }

  toHandleRef(): HandleRef {
    return this.ref;
  }
}

// Revives into a PortableHandle, so decoded values re-encode with their handles.
const ctx: CodecContext = { reviveHandle: (ref) => new FuzzHandle(ref) };

const HEALTHY = {
  seq: 42,
  data: 'healthy',
  reply: new FuzzHandle({ kind: 'sender', node: 1, id: 9 }),
  list: [1n, new Date(1000), Buffer.from([1, 2])],
};

let decoded = 0;
let refused = 0;

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

/** The property shared by every kind of input. */
function check(input: Uint8Array): void {
  for (const limits of [DEFAULT_CODEC_LIMITS, SMALL_LIMITS]) {
    let value: unknown;
    try {
      value = decodeValue(input, ctx, limits);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      if (isStackOverflow(err) || isStackOverflow(err.cause)) {
        throw new Error('a stack overflow behind a DecodeError', { cause: err });
      }
      refused++;
      continue;
    }
    decoded++;
    // Whatever decodes can be forwarded.
    encodeValue(value);
  }
  // A well-behaved payload still round-trips after the bad one.
  expect(decodeValue(encodeValue(HEALTHY), ctx)).toStrictEqual(HEALTHY);
}

const prototypeKeys = Reflect.ownKeys(Object.prototype);

afterEach(() => {
  expect(Reflect.ownKeys(Object.prototype)).toEqual(prototypeKeys);
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  expect(decodeValue(encodeValue(HEALTHY), ctx)).toStrictEqual(HEALTHY);
});

afterAll(() => {
  // Both outcomes must be exercised, or the fuzzing proves little.
  expect(decoded).toBeGreaterThan(1000);
  expect(refused).toBeGreaterThan(1000);
});

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/** Byte sequences that start CBOR items the scan treats specially. */
// prettier-ignore
const TOKENS = [
  '00', '17', '18 ff', '19 ffff', '1a ffffffff', '1b ffffffffffffffff', '20', '38 ff', '1c', '1f',
  '40', '41', '58 05', '5a ffffffff', '5b 0000000100000000', '5f',
  '60', '63 616263', '69 5f5f70726f746f5f5f', '78 09', '7a ffffffff', '7f',
  '80', '81', '82', '98 20', '9a ffffffff', '9b ffffffffffffffff', '9f',
  'a0', 'a1', 'a2', 'b8 10', 'ba ffffffff', 'bf', 'ff',
  'c1', 'c2', 'c3', 'c0', 'd8 40', 'd8 45', 'd8 56', 'd8 1b', 'd8 1c', 'd8 1d', 'd8 69',
  'd9 0102', 'd9 0103', 'd9 9ca4', 'd9 d9f7', 'd9 dfff', 'db ffffffffffffffff',
  '81 81 81 81 81 81 81 81', '9f 9f 9f 9f 9f 9f 9f 9f', 'a1 00 a1 00 a1 00 a1 00',
  'e0', 'f4', 'f5', 'f6', 'f7', 'f8 20', 'f9 3c00', 'fa 3fc00000', 'fb 3ff8000000000000', 'fc',
].map((text) => Buffer.from(text.replace(/\s+/g, ''), 'hex'));

const tokenArb = fc.oneof(
  { arbitrary: fc.constantFrom(...TOKENS), weight: 4 },
  {
    arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4 }).map((a) => Buffer.from(a)),
    weight: 1,
  },
);

const keyArb = fc.oneof(
  fc.string({ maxLength: 6 }),
  // One bit away from "__proto__" ("^" is 0x5e, "_" is 0x5f), and its neighbours.
  fc.constantFrom('__proto_^', '^_proto__', '__proto_', 'constructor', 'prototype', 'a'),
);

const { valueArb } = fc.letrec<{ valueArb: unknown }>((tie) => ({
  valueArb: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    fc.constantFrom(null, undefined, true, false, 0, -1, 1.5, NaN),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 12 }),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
    fc.date({ min: new Date(-1e13), max: new Date(1e13), noInvalidDate: true }),
    fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
    fc.uint8Array({ maxLength: 6 }),
    fc.float64Array({ maxLength: 2 }),
    fc.uint16Array({ maxLength: 3 }),
    fc
      .record({ node: fc.nat(9), id: fc.nat(99), name: fc.option(keyArb, { nil: undefined }) })
      .map(({ node, id, name }) =>
        name === undefined
          ? new FuzzHandle({ kind: 'sender', node, id })
          : new FuzzHandle({ kind: 'sender', node, id, name }),
      ),
    fc.array(tie('valueArb'), { maxLength: 4 }),
    fc.dictionary(keyArb, tie('valueArb'), { maxKeys: 4, noNullPrototype: true }),
    fc.array(fc.tuple(keyArb, tie('valueArb')), { maxLength: 3 }).map((e) => new Map(e)),
    fc.array(tie('valueArb'), { maxLength: 3 }).map((items) => new Set(items)),
  ),
}));

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'duplicate'; at: number; length: number; to: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: tokenArb }),
  fc.record({
    op: fc.constant('delete' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({
    op: fc.constant('set' as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    op: fc.constant('duplicate' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 16 }),
    to: fc.nat(),
  }),
);

function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(input);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % bytes.length;
    switch (m.op) {
      case 'flip':
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << m.bit);
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
        break;
      case 'set':
        if (bytes.length > 0) bytes[at] = m.byte;
        break;
      case 'duplicate': {
        const slice = bytes.subarray(at, at + m.length);
        const to = bytes.length === 0 ? 0 : m.to % bytes.length;
        bytes = Buffer.concat([bytes.subarray(0, to), slice, bytes.subarray(to)]);
        break;
      }
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

describe('codec fuzzing', () => {
  it(`survives ${RUNS.randomBytes} random byte strings`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (input) => check(input)),
      { numRuns: RUNS.randomBytes },
    );
  });

  it(`survives ${RUNS.tokenSoup} random sequences of CBOR tokens`, () => {
    fc.assert(
      fc.property(fc.array(tokenArb, { maxLength: 40 }), (tokens) => check(Buffer.concat(tokens))),
      { numRuns: RUNS.tokenSoup },
    );
  });

  it(`survives ${RUNS.mutations} mutations of valid encodings`, () => {
    fc.assert(
      fc.property(
        valueArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        (value, mutations) => {
          const valid = encodeValue(value);
          decodeValue(valid, ctx); // the unmutated encoding is accepted
          check(mutate(valid, mutations));
        },
      ),
      { numRuns: RUNS.mutations },
    );
  });
});
