/**
 * The CBOR codec (docs/guide.md, "What a message can carry"; docs/reliability.md item 5): what
 * round-trips, how handles travel, and every decoding bomb as a hand-built
 * byte sequence. After every test, Object.prototype must be untouched and a
 * well-behaved value must still round-trip.
 */
import { Tag } from 'cbor-x';
import fc from 'fast-check';
import * as vm from 'node:vm';
import {
  DecodeError,
  EncodeError,
  ErrorCode,
  OptionError,
  SwitchboardError,
} from '../../lib/errors.js';
import {
  checkCbor,
  DEFAULT_CODEC_LIMITS,
  decodeValue,
  encodeValue,
  HANDLE_TAG,
  MAX_CODEC_DEPTH,
  PortableHandle,
} from '../../lib/protocol/codec.js';
import type { CodecContext, CodecLimits, HandleRef } from '../../lib/protocol/codec.js';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Bytes from spaced hex: `hex('a1 61 61 01')`. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** `count` copies of `unit`, then `tail`. */
function repeat(unit: string, count: number, tail = ''): Buffer {
  const one = hex(unit);
  return Buffer.concat([Buffer.alloc(count * one.length, one), hex(tail)]);
}

/** The DecodeError that decoding `bytes` throws (fails the test if it does not throw one). */
function decodeError(bytes: Uint8Array, limits?: CodecLimits): DecodeError {
  try {
    decodeValue(bytes, undefined, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).code).toBe(ErrorCode.DECODE);
    return err as DecodeError;
  }
  throw new Error(`expected a DecodeError for ${Buffer.from(bytes).toString('hex')}`);
}

/** The error that encoding `value` throws. */
function encodeError(value: unknown): EncodeError {
  try {
    encodeValue(value);
  } catch (err) {
    expect(err).toBeInstanceOf(EncodeError);
    expect((err as EncodeError).code).toBe(ErrorCode.ENCODE);
    return err as EncodeError;
  }
  throw new Error('expected an encode error');
}

class TestHandle extends PortableHandle {
  constructor(private readonly ref: HandleRef) {
    super();
  }

  toHandleRef(): HandleRef {
    return this.ref;
  }
}

/** A subclass of a subclass, to prove matching is by instanceof. */
class NamedTestHandle extends TestHandle {}

/** What the test context turns a handle into. */
class Revived {
  constructor(readonly ref: HandleRef) {}
}

const reviving: CodecContext = { reviveHandle: (ref) => new Revived(ref) };

function makeRef(kind: string, node: number, id: number, name?: string): HandleRef {
  return name === undefined ? { kind, node, id } : { kind, node, id, name };
}

/**
 * What a value looks like after a round trip through the codec with the
 * `reviving` context: the documented normalisations, applied recursively.
 */
function expected(value: unknown): unknown {
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof TestHandle) return new Revived(value.toHandleRef());
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value) || value instanceof Date) return value;
  if (Array.isArray(value)) return Array.from(value as unknown[], expected);
  if (value instanceof Map) {
    return new Map([...value].map(([k, v]) => [expected(k), expected(v)] as const));
  }
  if (value instanceof Set) return new Set([...value].map(expected));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[expected(k) as string] = expected(v);
  return out;
}

function roundTrip(value: unknown): unknown {
  return decodeValue(encodeValue(value), reviving);
}

// ---------------------------------------------------------------------------
// Invariants checked after every test
// ---------------------------------------------------------------------------

const prototypeKeys = Reflect.ownKeys(Object.prototype);
const prototypeDescriptors = Object.getOwnPropertyDescriptors(Object.prototype);

afterEach(() => {
  expect(Reflect.ownKeys(Object.prototype)).toEqual(prototypeKeys);
  expect(Object.getOwnPropertyDescriptors(Object.prototype)).toEqual(prototypeDescriptors);
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  const healthy = { seq: 7, data: 'still works', nested: [1, { ok: true }] };
  expect(decodeValue(encodeValue(healthy))).toStrictEqual(healthy);
});

// ---------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------

describe('codec constants', () => {
  it('reserves a first-come-first-served tag for handles', () => {
    expect(HANDLE_TAG).toBe(40100);
    expect(HANDLE_TAG).toBeGreaterThanOrEqual(32768);
  });

  it('defaults to depth 64 and 64 MiB, frozen', () => {
    expect(DEFAULT_CODEC_LIMITS).toEqual({ maxDepth: 64, maxMessageSize: 64 * 1024 * 1024 });
    expect(Object.isFrozen(DEFAULT_CODEC_LIMITS)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

describe('round trip', () => {
  const exact: Array<[string, unknown]> = [
    ['null', null],
    ['undefined', undefined],
    ['booleans', [true, false]],
    [
      'small integers',
      [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, -1, -24, -25, -(2 ** 32)],
    ],
    ['large integers and floats', [2 ** 32, 2 ** 53, -(2 ** 53), 0.1, -1.5, 1e300, 5e-324]],
    ['NaN and infinities', [NaN, Infinity, -Infinity]],
    ['strings', ['', 'a', 'x'.repeat(100), 'é€𝄞', '\u0000', 'x'.repeat(70_000)]],
    [
      'bigints of any size',
      [0n, 5n, -5n, 2n ** 64n - 1n, -(2n ** 64n), 2n ** 64n, -(2n ** 200n) - 3n],
    ],
    ['dates', [new Date(0), new Date(1_700_000_000_123), new Date(-1), new Date(8.64e15)]],
    ['a Buffer', Buffer.from([1, 2, 3])],
    ['a Uint8Array', new Uint8Array([1, 2, 3])],
    [
      'typed arrays',
      [new Float64Array([1.5, -0, NaN]), new Int32Array([-1, 2]), new BigInt64Array([-1n])],
    ],
    [
      'more typed arrays',
      [
        new Uint16Array([1]),
        new Int8Array([-1]),
        new Float32Array([0.5]),
        new Uint8ClampedArray([255]),
      ],
    ],
    [
      'a Map',
      new Map<unknown, unknown>([
        [1, 'a'],
        ['k', { x: [1] }],
        [{ o: 1 }, null],
      ]),
    ],
    ['a Set', new Set([1, 'a', null])],
    ['nested objects', { a: { b: { c: [1, { d: 'e' }] } }, 'key with spaces': 1, '': 2, '0': 3 }],
    ['undefined properties', { a: undefined, b: [undefined] }],
    ['"constructor" and "prototype" keys', { constructor: 'Ford', prototype: { x: 1 } }],
    ['"__proto__" as a value', ['__proto__', { a: '__proto__' }]],
  ];

  it.each(exact)('%s', (_name, value) => {
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('turns -0 into 0 (cbor-x writes it as the integer 0)', () => {
    expect(Object.is(roundTrip(-0), 0)).toBe(true);
    expect(roundTrip([-0, { z: -0 }])).toStrictEqual([0, { z: 0 }]);
  });

  it('turns array holes into undefined', () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 3];
    const out = roundTrip(sparse) as unknown[];
    expect(out).toStrictEqual([1, undefined, 3]);
    expect(1 in out).toBe(true);
  });

  it('turns a lone surrogate into U+FFFD (UTF-8 cannot carry it)', () => {
    // cbor-x writes short strings with its own UTF-8 loop, which emits the
    // surrogate's raw 3 bytes (3 x U+FFFD on decoding); longer ones go
    // through Buffer#utf8Write, which substitutes one U+FFFD.
    expect(roundTrip('a\uD800b')).toBe('a\uFFFD\uFFFD\uFFFDb');
    expect(roundTrip('\uDC00'.repeat(100))).toBe('\uFFFD'.repeat(100));
  });

  it('keeps an invalid Date invalid', () => {
    const out = roundTrip(new Date(NaN));
    expect(out).toBeInstanceOf(Date);
    expect((out as Date).getTime()).toBeNaN();
  });

  it('refuses class instances, which would arrive without their prototype', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const err = encodeError({ at: new Point(3, 4) });
    expect(err.path).toBe('.at');
    expect(err.message).toMatch(/class instance \(Point\).*spread it into a plain object/);
    expect(roundTrip({ ...new Point(3, 4) })).toStrictEqual({ x: 3, y: 4 });
  });

  it('sends typed-array views as their exact bytes, and refuses ArrayBuffer and DataView', () => {
    const backing = new Uint8Array([9, 1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer;
    expect(roundTrip(new Uint16Array(backing, 2, 3))).toStrictEqual(new Uint16Array(backing, 2, 3));
    expect(roundTrip(Buffer.from(backing, 3, 4))).toStrictEqual(Buffer.from([3, 4, 5, 6]));
    expect(encodeError(backing).message).toMatch(/an ArrayBuffer is not a supported payload type/);
    expect(encodeError(new DataView(backing, 1, 2)).message).toMatch(/a DataView is not/);
  });

  it('sends arrays of another realm as arrays (indefinite length on the wire)', () => {
    const bytes = encodeValue({ list: vm.runInNewContext('[1, 2]') as unknown });
    expect(bytes.includes(0x9f)).toBe(true);
    expect(decodeValue(bytes)).toStrictEqual({ list: [1, 2] });
  });

  it('decodes byte strings as Buffers even from a plain Uint8Array', () => {
    const bytes = new Uint8Array(encodeValue({ b: Buffer.from('hi') }));
    const out = decodeValue(bytes) as { b: unknown };
    expect(Buffer.isBuffer(out.b)).toBe(true);
    expect(out.b).toStrictEqual(Buffer.from('hi'));
  });

  it('decodes a large bignum (cbor-x alone is quadratic in its size)', () => {
    // Hand-built: encoding a huge bigint is quadratic inside cbor-x (sender side).
    const digits = Buffer.alloc(200_000, 0xa5);
    const big = BigInt('0x' + digits.toString('hex'));
    const head = Buffer.from([0xc2, 0x5a, 0, 0, 0, 0]);
    head.writeUInt32BE(digits.length, 2);
    expect(decodeValue(Buffer.concat([head, digits]))).toBe(big);
    head[0] = 0xc3;
    expect(decodeValue(Buffer.concat([head, digits]))).toBe(-1n - big);
    expect(decodeValue(hex('c2 40'))).toBe(0n);
    const moderate = 3n ** 2000n; // ~400 bytes
    expect(roundTrip(moderate)).toBe(moderate);
    expect(roundTrip(-moderate)).toBe(-moderate);
  });

  it('round-trips arbitrary supported values, handles included', () => {
    fc.assert(
      fc.property(supportedValue, (value) => {
        expect(roundTrip(value)).toStrictEqual(expected(value));
      }),
      { numRuns: 1500 },
    );
  });
});

// Everything the codec promises to carry, nested up to a few levels.
const keyArb = fc
  .oneof(fc.string(), fc.string({ unit: 'grapheme' }))
  .filter((k) => k !== '__proto__');
const handleArb = fc
  .record({
    kind: fc.constantFrom('sender', 'receiver', 'x'),
    node: fc.nat(63),
    id: fc.nat(),
    name: fc.option(fc.string(), { nil: undefined }),
    nested: fc.boolean(),
  })
  .map(({ kind, node, id, name, nested }) => {
    const ref = makeRef(kind, node, id, name);
    return nested ? new NamedTestHandle(ref) : new TestHandle(ref);
  });
const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, undefined, true, false),
  fc.double(),
  fc.integer(),
  fc.nat({ max: 2 ** 32 + 5 }),
  fc.string({ unit: 'binary' }), // any code point (well-formed: no lone surrogates)
  keyArb,
  fc.bigInt({ min: -(2n ** 130n), max: 2n ** 130n }),
  // Dates within ±100,000 years keep millisecond precision as float seconds.
  fc.date({ min: new Date(-3e15), max: new Date(3e15), noInvalidDate: true }),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ maxLength: 40 }),
  fc.float64Array({ maxLength: 5 }),
  fc.int16Array({ maxLength: 5 }),
  fc.bigUint64Array({ maxLength: 3 }),
  handleArb,
);
const { supportedValue } = fc.letrec<{ supportedValue: unknown }>((tie) => ({
  supportedValue: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    leafArb,
    fc.array(tie('supportedValue'), { maxLength: 5 }),
    fc.dictionary(keyArb, tie('supportedValue'), { maxKeys: 5, noNullPrototype: true }),
    fc
      .array(fc.tuple(fc.oneof(keyArb, fc.integer()), tie('supportedValue')), { maxLength: 4 })
      .map((entries) => new Map(entries)),
    fc.array(tie('supportedValue'), { maxLength: 4 }).map((items) => new Set(items)),
  ),
}));

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

describe('encodeValue', () => {
  it('returns buffers that stay valid after later encodes, without copying small ones', () => {
    const kept = Array.from({ length: 3000 }, (_, i) => encodeValue({ i, s: 'x'.repeat(i % 60) }));
    const copies = kept.map((b) => Buffer.from(b));
    for (let i = 0; i < 10_000; i++) encodeValue({ junk: i, pad: 'y'.repeat(i % 300) });
    kept.forEach((b, i) => expect(b.equals(copies[i]!)).toBe(true));
    // Consecutive small results share cbor-x's slab: views, not copies.
    expect(kept[1]!.buffer).toBe(kept[2]!.buffer);
    expect(kept[1]!.buffer.byteLength).toBeLessThanOrEqual(64 * 1024);
    expect(decodeValue(kept[2999]!)).toStrictEqual({ i: 2999, s: 'x'.repeat(2999 % 60) });
  });

  it('never lets a result pin more than max(64 KiB, twice its own size)', () => {
    const big = encodeValue({ data: Buffer.alloc(1 << 20, 7) });
    expect(big.buffer.byteLength).toBeLessThanOrEqual(2 * big.length);
    const after = encodeValue({ small: 1 });
    expect(after.buffer.byteLength).toBeLessThanOrEqual(64 * 1024);
    expect(decodeValue(big)).toStrictEqual({ data: Buffer.alloc(1 << 20, 7) });
    expect(decodeValue(after)).toStrictEqual({ small: 1 });
  });

  it('encodes a run of large messages into buffers of about their size, each left intact', () => {
    // Sizes that grow, shrink and repeat, with small messages between them.
    const sizes = [70_000, 70_000, 300_000, 70_000, 16, 1 << 20, (1 << 20) + 9, 40_000, 16, 90_000];
    const kept = sizes.map((n, i) => encodeValue({ i, data: Buffer.alloc(n, i + 1) }));
    kept.forEach((b, i) => {
      expect(b.buffer.byteLength).toBeLessThanOrEqual(Math.max(64 * 1024, 2 * b.length));
      expect(decodeValue(b)).toStrictEqual({ i, data: Buffer.alloc(sizes[i]!, i + 1) });
    });
    // A repeated large size is encoded in place: its buffer is not much larger than itself.
    expect(kept[1]!.buffer.byteLength).toBeLessThan(1.25 * kept[1]!.length + 8192);
    // No two large results share a buffer, so none pins another.
    const large = kept.filter((b) => b.length > 32 * 1024).map((b) => b.buffer);
    expect(new Set(large).size).toBe(large.length);
  });

  it('refuses functions and symbols, naming where they sit', () => {
    const fn = encodeError({ f: () => 1 });
    expect(fn.message).toBe(
      'cannot encode the value at .f: a function is not a supported payload type',
    );
    expect(fn.path).toBe('.f');
    expect(encodeError(Symbol('s')).path).toBe('');
  });

  it('refuses Error, RegExp and raw cbor-x tags (their tags would be refused by the peer)', () => {
    expect(encodeError(new Error('boom')).message).toMatch(/Error/);
    expect(encodeError({ e: new SwitchboardError(ErrorCode.TIMEOUT, 'x') }).message).toMatch(
      /Error/,
    );
    expect(encodeError([/x/g]).message).toMatch(/RegExp/);
    expect(encodeError(new Tag(1, 12345)).message).toMatch(/Tag/);
  });

  it('refuses cycles with an ENCODE error and keeps working', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    const err = encodeError(cyclic);
    expect(err.path).toBe('.self');
    expect(err.reason).toBe('a cycle: it refers back to the top-level value');
    expect(decodeValue(encodeValue({ after: 'cycle' }))).toStrictEqual({ after: 'cycle' });
  });

  it.each([
    ['a negative node', makeRef('sender', -1, 1)],
    ['a fractional id', makeRef('sender', 1, 1.5)],
    ['an unsafe id', makeRef('sender', 1, 2 ** 53)],
    ['a non-string kind', { kind: 7, node: 1, id: 1 } as unknown as HandleRef],
    ['a non-string name', { kind: 'k', node: 1, id: 1, name: 3 } as unknown as HandleRef],
  ])('refuses a handle with %s', (_name, ref) => {
    expect(encodeError({ reply: new TestHandle(ref) }).message).toMatch(/invalid handle ref/);
  });

  it('wraps an error thrown by toHandleRef', () => {
    class Broken extends PortableHandle {
      toHandleRef(): HandleRef {
        throw new TypeError('closed');
      }
    }
    const err = encodeError([new Broken()]);
    expect(err.cause).toBeInstanceOf(TypeError);
  });
});

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

describe('handles', () => {
  it('encodes any subclass of PortableHandle as the handle tag, compactly', () => {
    const bytes = encodeValue(new NamedTestHandle(makeRef('sender', 2, 7)));
    // d9 9ca4 = tag 40100, then [ "sender", 2, 7 ]
    expect(bytes.toString('hex')).toBe('d99ca483' + '6673656e646572' + '0207');
  });

  it('revives handles at any depth through the context of the current decode', () => {
    const a = new TestHandle(makeRef('sender', 1, 2));
    const b = new NamedTestHandle(makeRef('sender', 3, 4, 'jobs'));
    const value = {
      reply: a,
      list: [1, [2, [3, [b]]]],
      map: new Map<unknown, unknown>([['k', a]]),
      set: new Set([b]),
    };
    const seen: HandleRef[] = [];
    const out = decodeValue(encodeValue(value), {
      reviveHandle: (ref) => {
        seen.push(ref);
        return new Revived(ref);
      },
    });
    expect(out).toStrictEqual(expected(value));
    expect(seen).toHaveLength(4);
    expect(seen.every((ref) => Object.isFrozen(ref))).toBe(true);
  });

  it('returns frozen HandleRefs without a context', () => {
    const out = decodeValue(
      encodeValue([
        new TestHandle(makeRef('sender', 1, 2)),
        new TestHandle(makeRef('r', 0, 0, 'n')),
      ]),
    ) as HandleRef[];
    expect(out).toStrictEqual([makeRef('sender', 1, 2), makeRef('r', 0, 0, 'n')]);
    expect(out.every((ref) => Object.isFrozen(ref))).toBe(true);
  });

  it('does not leak a context into a later decode, even after a failure', () => {
    const bytes = encodeValue(new TestHandle(makeRef('sender', 1, 2)));
    const failing: CodecContext = {
      reviveHandle: () => {
        throw new Error('unknown channel');
      },
    };
    const err = (() => {
      try {
        decodeValue(bytes, failing);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).message).toMatch(
      /cannot revive sender handle 1\/2: unknown channel/,
    );
    expect((err as DecodeError).cause).toBeInstanceOf(Error);
    expect(decodeValue(bytes)).toStrictEqual(makeRef('sender', 1, 2));
  });

  it('supports a nested decodeValue from inside reviveHandle', () => {
    const inner = encodeValue({ inner: new TestHandle(makeRef('i', 0, 1)) });
    const outer = encodeValue([new TestHandle(makeRef('o', 0, 2)), 'after']);
    const out = decodeValue(outer, {
      reviveHandle: (ref) => (ref.kind === 'o' ? decodeValue(inner, reviving) : new Revived(ref)),
    });
    expect(out).toStrictEqual([{ inner: new Revived(makeRef('i', 0, 1)) }, 'after']);
  });

  it.each([
    ['not an array', 'd9 9ca4 a0'],
    ['too short', 'd9 9ca4 82 61 6b 01'],
    ['too long', 'd9 9ca4 85 61 6b 01 02 61 6e 00'],
    ['a numeric kind', 'd9 9ca4 83 01 01 02'],
    ['a negative node', 'd9 9ca4 83 61 6b 20 02'],
    ['a float id', 'd9 9ca4 83 61 6b 01 fb 3ff8000000000000'],
    ['a bigint id', 'd9 9ca4 83 61 6b 01 1b 0000000000000002'],
    ['a numeric name', 'd9 9ca4 84 61 6b 01 02 03'],
  ])('refuses a handle that is %s', (_name, bytes) => {
    expect(decodeError(hex(bytes)).message).toMatch(/handle|tagged item/);
  });
});

// ---------------------------------------------------------------------------
// Bombs (docs/reliability.md item 5)
// ---------------------------------------------------------------------------

describe('nesting bombs', () => {
  it.each([
    ['definite arrays', repeat('81', 10_000, '00')],
    ['definite maps', repeat('a100', 10_000, '00')],
    ['indefinite arrays', Buffer.concat([repeat('9f', 10_000, '00'), repeat('ff', 10_000)])],
    ['indefinite maps', Buffer.concat([repeat('bf00', 10_000, '00'), repeat('ff', 10_000)])],
    ['tagged Sets', repeat('d90102 81', 10_000, '00')],
    ['arrays inside map keys', repeat('a1 81', 10_000, '00')],
    ['a million arrays', repeat('81', 1_000_000, '00')],
  ])('refuses 10,000+ levels of %s without a stack overflow', (_name, bytes) => {
    expect(decodeError(bytes).message).toMatch(/nesting deeper than maxDepth 64/);
  });

  it('accepts exactly maxDepth levels and refuses one more (empty containers count)', () => {
    expect(decodeValue(repeat('81', 63, '80'))).toBeDefined();
    expect(decodeValue(repeat('81', 64, '00'))).toBeDefined();
    decodeError(repeat('81', 64, '80'));
    decodeError(repeat('81', 65, '00'));
    const limits = { maxDepth: 3, maxMessageSize: 1000 };
    expect(decodeValue(hex('81 81 81 00'), undefined, limits)).toStrictEqual([[[0]]]);
    decodeError(hex('81 81 81 80'), limits);
    expect(decodeValue(hex('05'), undefined, { maxDepth: 0, maxMessageSize: 10 })).toBe(5);
  });

  it(`decodes ${MAX_CODEC_DEPTH} levels of tagged containers (the largest allowed depth) safely`, () => {
    const limits = { maxDepth: MAX_CODEC_DEPTH, maxMessageSize: 1 << 20 };
    expect(
      decodeValue(repeat('d90102 81', MAX_CODEC_DEPTH, '00'), undefined, limits),
    ).toBeInstanceOf(Set);
    expect(
      decodeValue(repeat('d90103 a1 00', MAX_CODEC_DEPTH, '00'), undefined, limits),
    ).toBeInstanceOf(Map);
  });
});

describe('length bombs', () => {
  const heads: Array<[string, string]> = [];
  for (const [kind, major] of [
    ['array', 0x80],
    ['map', 0xa0],
    ['byte string', 0x40],
    ['text string', 0x60],
  ] as const) {
    const h = (n: number): string => (major + n).toString(16);
    heads.push([`${kind} of 2^32 - 1`, `${h(26)} ffffffff`]);
    heads.push([`${kind} of 2^32`, `${h(27)} 00000001 00000000`]);
    heads.push([`${kind} of 2^64 - 1`, `${h(27)} ffffffff ffffffff`]);
    heads.push([`${kind} of 2^31`, `${h(26)} 80000000`]);
  }

  it.each(heads)('refuses a declared %s before allocating anything', (_name, head) => {
    expect(decodeError(hex(head + '00 00 00 00')).message).toMatch(
      /exceeds the \d+ remaining bytes/,
    );
    // also deep inside a valid-looking structure
    expect(decodeError(hex('a1 61 61 82 01' + head + '00')).message).toMatch(/remaining bytes/);
  });

  it('refuses a map whose entries need more bytes than remain (two per entry)', () => {
    decodeError(hex('a2 01 02 03'));
  });

  it('refuses counts that each fit but together do not', () => {
    // 40 nested arrays, each claiming 20 items, in 41 bytes.
    expect(decodeError(repeat('94', 40, '00')).message).toMatch(/truncated|remaining/);
  });

  it('refuses a payload beyond maxMessageSize', () => {
    const limits = { maxDepth: 64, maxMessageSize: 10 };
    expect(decodeValue(encodeValue('x'.repeat(8)), undefined, limits)).toBe('x'.repeat(8));
    expect(decodeError(encodeValue('x'.repeat(10)), limits).message).toMatch(
      /11 bytes exceeds maxMessageSize 10/,
    );
  });
});

describe('__proto__ keys', () => {
  const PROTO = '69 5f5f70726f746f5f5f'; // "__proto__"
  const POLLUTED = 'a1 68 706f6c6c75746564 f5'; // { polluted: true }

  it.each([
    ['at the top', `a1 ${PROTO} ${POLLUTED}`],
    ['with a 1-byte length', `a1 78 09 5f5f70726f746f5f5f ${POLLUTED}`],
    ['with a 2-byte length', `a1 79 0009 5f5f70726f746f5f5f ${POLLUTED}`],
    ['with a 4-byte length', `a1 7a 00000009 5f5f70726f746f5f5f ${POLLUTED}`],
    ['with an 8-byte length', `a1 7b 0000000000000009 5f5f70726f746f5f5f ${POLLUTED}`],
    ['as a later key', `a2 61 61 01 ${PROTO} ${POLLUTED}`],
    ['in a nested map', `a1 61 61 82 01 a1 ${PROTO} ${POLLUTED}`],
    ['in an indefinite map', `bf 61 61 01 ${PROTO} ${POLLUTED} ff`],
    ['in a Map (tag 259)', `d9 0103 a1 ${PROTO} ${POLLUTED}`],
    ['in a map inside a Set', `d9 0102 81 a1 ${PROTO} 01`],
  ])('refuses "__proto__" %s and leaves Object.prototype alone', (_name, bytes) => {
    expect(decodeError(hex(bytes)).message).toMatch(/forbidden map key "__proto__"/);
  });

  it('refuses what JSON.parse would produce and a sender forwards', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown;
    decodeError(encodeValue(parsed));
  });

  it('accepts "__proto__" as a value and near-miss keys', () => {
    expect(decodeValue(hex(`a1 61 61 ${PROTO}`))).toStrictEqual({ a: '__proto__' });
    expect(decodeValue(hex(`81 ${PROTO}`))).toStrictEqual(['__proto__']);
    const near = decodeValue(hex('a2 68 5f5f70726f746f5f 01 6a 5f5f70726f746f5f5f5f 02'));
    expect(near).toStrictEqual({ __proto_: 1, __proto___: 2 });
    // A byte string key spelling __proto__ is not a text key: cbor-x refuses it as a property name.
    expect(decodeError(hex('a1 49 5f5f70726f746f5f5f 01')).cause).toBeInstanceOf(Error);
  });

  it('gives "constructor" and "prototype" keys as own data, prototype untouched', () => {
    // { constructor: { prototype: { polluted: true } } }
    const out = decodeValue(
      hex(`a1 6b 636f6e7374727563746f72 a1 69 70726f746f74797065 ${POLLUTED}`),
    ) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['constructor']);
    expect(out['constructor']).toStrictEqual({ prototype: { polluted: true } });
    expect({}.constructor).toBe(Object);
  });
});

describe('tags', () => {
  it.each([
    ['12345', 'd9 3039 00', 12345],
    ['55799 (self-described CBOR)', 'd9 d9f7 00', 55799],
    ['27 (cbor-x would call a global constructor)', 'd8 1b 82 68 46756e6374696f6e 61 78', 27],
    ['0 (date string)', 'c0 74 323032302d30312d30315430303a30303a30305a', 0],
    ['28 (shared value)', 'd8 1c 00', 28],
    ['29 (shared reference)', 'd8 1d 00', 29],
    ['51 (packed table)', 'd8 33 80', 51],
    ['6 (packed reference)', 'c6 00', 6],
    ['105 (legacy record)', 'd8 69 80', 105],
    ['0xdfff (record definition)', 'd9 dfff 80', 0xdfff],
    ['0xe000 (record reference)', 'd9 e000 80', 0xe000],
    ['76 (reserved typed array)', 'd8 4c 40', 76],
    ['84 (float16 array)', 'd8 54 42 0000', 84],
    ['2^32', 'db 0000000100000000 00', 2 ** 32],
  ])('refuses tag %s', (_name, bytes, tag) => {
    expect(decodeError(hex(bytes)).message).toMatch(new RegExp(`^unknown tag ${tag} at byte`));
  });

  it('refuses an unknown tag deep inside a nested array, naming its offset', () => {
    expect(decodeError(hex('82 01 82 02 81 d9 3039 00')).message).toBe(
      'unknown tag 12345 at byte 5',
    );
  });

  it.each([
    ['a tag on a tag', 'c1 c1 00'],
    ['a Date of text', 'c1 61 61'],
    ['a Date of true', 'c1 f5'],
    ['a Date of a 64-bit integer (a bigint to cbor-x)', 'c1 1b 0000000000000001'],
    ['a Date of a simple value', 'c1 f8 20'],
    ['a bignum of an array', 'c2 80'],
    ['a bignum of text', 'c2 61 01'],
    ['a Set of a map', 'd9 0102 a0'],
    ['a Map of an array', 'd9 0103 80'],
    ['a typed array of text', 'd8 40 61 61'],
    ['a Uint16Array of 3 bytes', 'd8 45 43 010203'],
    ['a Float64Array of 12 bytes', 'd8 56 4c 000000000000000000000000'],
    ['a tag before a break', '9f c1 ff'],
    ['a tag at the end', 'c1'],
  ])('refuses %s', (_name, bytes) => {
    decodeError(hex(bytes));
  });

  it('accepts the tags cbor-x writes for supported types', () => {
    expect(decodeValue(hex('c1 1a 6553f100'))).toStrictEqual(new Date(1_700_000_000_000));
    expect(decodeValue(hex('c1 fb 41d954fc4007df3b'))).toStrictEqual(new Date(1_700_000_000_123));
    expect(decodeValue(hex('c2 41 01'))).toBe(1n);
    expect(decodeValue(hex('c3 41 00'))).toBe(-1n);
    expect(decodeValue(hex('d8 40 42 0102'))).toStrictEqual(new Uint8Array([1, 2]));
    expect(decodeValue(hex('d8 45 42 0100'))).toStrictEqual(new Uint16Array([1]));
    // the big-endian form, as cbor-x writes it on big-endian hosts
    expect(decodeValue(hex('d8 41 42 0001'))).toStrictEqual(new Uint16Array([1]));
    expect(decodeValue(hex('d9 0102 82 01 02'))).toStrictEqual(new Set([1, 2]));
    expect(decodeValue(hex('d9 0103 a1 01 02'))).toStrictEqual(new Map([[1, 2]]));
  });
});

describe('malformed input', () => {
  it('refuses every truncation of a valid payload', () => {
    const value = {
      seq: 1,
      text: 'é'.repeat(30),
      bytes: Buffer.alloc(300, 1),
      list: [1.5, -70000, 2n ** 70n, new Date(5), null, undefined, true],
      set: new Set([new Float32Array([1, 2])]),
      map: new Map([[1, { deep: [[[]]] }]]),
      handle: new TestHandle(makeRef('sender', 1, 2, 'n')),
    };
    const bytes = encodeValue(value);
    for (let length = 0; length < bytes.length; length++) {
      decodeError(bytes.subarray(0, length));
    }
    expect(decodeValue(bytes, reviving)).toStrictEqual(expected(value));
  });

  it.each([
    ['one trailing byte', '01 00', /1 trailing bytes after the CBOR item at byte 1/],
    ['a second item', '82 01 02 83 01 02 03', /4 trailing bytes/],
    ['a trailing break', 'a0 ff', /trailing/],
  ])('refuses %s', (_name, bytes, message) => {
    expect(decodeError(hex(bytes)).message).toMatch(message);
  });

  it.each([
    ['empty input', ''],
    ['a lone break', 'ff'],
    ['a break in a definite array', '82 01 ff'],
    ['a map that breaks after a key', 'bf 01 ff'],
    ['an unterminated indefinite array', '9f 01 02'],
    ['reserved additional information 28', '1c'],
    ['reserved additional information 30 on a map', 'be'],
    ['an indefinite byte string', '5f 41 00 ff'],
    ['an indefinite text string', '7f 61 61 ff'],
    ['an indefinite integer', '1f'],
    ['an indefinite tag', 'df 00'],
    ['simple value 0', 'e0'],
    ['a one-byte simple value', 'f8 20'],
    ['a one-byte simple value spelling true', 'f8 15'],
    ['a truncated float64', 'fb 0000'],
    ['a truncated length', '5a 0000'],
  ])('refuses %s', (_name, bytes) => {
    decodeError(hex(bytes));
  });

  it('wraps errors from cbor-x itself, keeping the cause', () => {
    // A map key that is an array passes the scan but is no property name.
    const err = decodeError(hex('a1 80 01'));
    expect(err.message).toMatch(/^invalid CBOR: /);
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('refuses input that is not bytes', () => {
    expect(() => decodeValue('a1' as unknown as Uint8Array)).toThrow(DecodeError);
    expect(() => checkCbor([0] as unknown as Uint8Array)).toThrow(DecodeError);
  });

  it('accepts indefinite arrays and maps, and floats of every width', () => {
    expect(decodeValue(hex('9f 01 9f ff 02 ff'))).toStrictEqual([1, [], 2]);
    expect(decodeValue(hex('bf 61 61 01 61 62 bf ff ff'))).toStrictEqual({ a: 1, b: {} });
    expect(decodeValue(hex('83 f9 3c00 fa 3fc00000 fb 3ff8000000000000'))).toStrictEqual([
      1, 1.5, 1.5,
    ]);
    expect(decodeValue(hex('84 f4 f5 f6 f7'))).toStrictEqual([false, true, null, undefined]);
  });
});

describe('limits', () => {
  it.each([
    ['maxDepth', { maxDepth: -1, maxMessageSize: 10 }],
    ['maxDepth', { maxDepth: MAX_CODEC_DEPTH + 1, maxMessageSize: 10 }],
    ['maxDepth', { maxDepth: 1.5, maxMessageSize: 10 }],
    ['maxMessageSize', { maxDepth: 4, maxMessageSize: 0 }],
    ['maxMessageSize', { maxDepth: 4, maxMessageSize: 2 ** 31 }],
    ['maxMessageSize', { maxDepth: 4, maxMessageSize: NaN }],
  ])('refuses an out-of-range %s with an OptionError', (option, limits) => {
    for (const call of [
      () => decodeValue(hex('00'), undefined, limits),
      () => checkCbor(hex('00'), limits),
    ]) {
      try {
        call();
        throw new Error('expected an OptionError');
      } catch (err) {
        expect(err).toBeInstanceOf(OptionError);
        expect((err as OptionError).option).toBe(option);
      }
    }
  });

  it('lets checkCbor be used alone', () => {
    expect(() => checkCbor(encodeValue({ a: [1, 2, { b: 'c' }] }))).not.toThrow();
    expect(() => checkCbor(repeat('81', 100, '00'))).toThrow(/nesting/);
    expect(() => checkCbor(hex('81 81 00'), { maxDepth: 1, maxMessageSize: 10 })).toThrow(
      /nesting/,
    );
  });
});
