/**
 * The codec's fast path for flat objects (lib/protocol/flat-cbor.ts) must
 * change no outcome: encodeValue writes the bytes cbor-x writes with the
 * codec's options, and decodeValue returns what checkCbor + cbor-x return
 * (or refuses what they refuse), for flat objects and for everything near
 * them.
 */
import fc from 'fast-check';
import { Decoder, Encoder } from 'cbor-x';
import { DecodeError } from '../../lib/errors.js';
import { checkCbor, decodeValue, encodeValue } from '../../lib/protocol/codec.js';
import { decodeFlat, encodeFlat, flatFallback } from '../../lib/protocol/flat-cbor.js';

const options = { useRecords: false, mapsAsObjects: true } as const;
const reference = new Encoder(options);
const referenceDecoder = new Decoder(options);

/** What the codec did before the fast path: the scan, then cbor-x (whose errors refuse too). */
function decodedBefore(bytes: Buffer): { value: unknown } | { refused: true } {
  try {
    checkCbor(bytes);
    return { value: referenceDecoder.decode(bytes) as unknown };
  } catch {
    return { refused: true };
  }
}

function decodedNow(bytes: Buffer): { value: unknown } | { refused: true } {
  try {
    return { value: decodeValue(bytes) };
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
    return { refused: true };
  }
}

const asciiKey = fc.string({ maxLength: 30 });
const anyKey = fc.oneof(
  asciiKey,
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constant('__proto__'),
);
const flatValue = fc.oneof(
  fc.integer({ min: -(2 ** 32), max: 2 ** 32 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(
    0,
    -0,
    23,
    24,
    255,
    256,
    65535,
    65536,
    -24,
    -25,
    -256,
    -257,
    2 ** 32 - 1,
    -(2 ** 32),
  ),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 5000 }).map((u) => Buffer.from(u)),
  fc.uint8Array({ maxLength: 8 }),
  fc.constant({ nested: 1 }),
  fc.constant([1, 2]),
);
/** Objects as users send them, fast-path shaped or near it (a key or value that is not). */
const objects = fc
  .array(
    fc.tuple(
      fc.oneof({ weight: 5, arbitrary: asciiKey }, { weight: 1, arbitrary: anyKey }),
      flatValue,
    ),
    {
      maxLength: 26,
    },
  )
  .map((entries) => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of entries)
      Object.defineProperty(o, k, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return o;
  });

describe('the flat-object fast path', () => {
  it('writes the bytes cbor-x writes, and reads them back as the general path does', () => {
    fc.assert(
      fc.property(objects, (o) => {
        const expected = Buffer.from(reference.encode(o));
        const bytes = encodeValue(o);
        expect(bytes.equals(expected)).toBe(true);
        expect(decodedNow(Buffer.from(bytes))).toStrictEqual(decodedBefore(Buffer.from(bytes)));
      }),
      { numRuns: 3000 },
    );
  });

  it('reads altered bytes exactly as the general path does: the same value or a refusal', () => {
    fc.assert(
      fc.property(
        objects,
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (o, edits, cut) => {
          const bytes = Buffer.from(reference.encode(o));
          for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
          const altered = cut % 4 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
          expect(decodedNow(altered)).toStrictEqual(decodedBefore(altered));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('reads the other head forms cbor-x accepts (long heads, float64, small maps)', () => {
    const cases = [
      Buffer.from('a2617318056164f5', 'hex'), // {s: 5 with a 1-byte head, d: true}
      Buffer.from('a1617819000a', 'hex'), // {x: 10 with a 2-byte head}
      Buffer.from('a1617a1a0000000c', 'hex'), // {z: 12 with a 4-byte head}
      Buffer.from('a16166fb3ff8000000000000', 'hex'), // {f: 1.5}
      Buffer.from('a16166fa3fc00000', 'hex'), // {f: float32 1.5}: the general path
      Buffer.from('a0', 'hex'),
      Buffer.from('b800', 'hex'),
      Buffer.from('a1616258020102', 'hex'), // {b: bytes with a 1-byte length}
      Buffer.from('a1696e5f5f70726f746f5f5f01', 'hex'), // a key that is not quite __proto__
      Buffer.from('a1695f5f70726f746f5f5f01', 'hex'), // __proto__: refused
      Buffer.from('a1616101ff', 'hex'), // a stray byte after the map: refused
    ];
    for (const bytes of cases) expect(decodedNow(bytes)).toStrictEqual(decodedBefore(bytes));
    expect(decodedNow(cases[9]!)).toEqual({ refused: true });
  });

  it('takes the fast path for flat objects and leaves the rest to the general one', () => {
    const flat = { seq: 1, data: Buffer.alloc(16), name: 'x', ok: true, none: null };
    const bytes = encodeFlat(flat);
    expect(bytes?.equals(Buffer.from(reference.encode(flat)))).toBe(true);
    expect(decodeFlat(bytes!, 1 << 20)).toStrictEqual(flat);
    // Too large for the limit given: left to the general path, which refuses it.
    expect(decodeFlat(bytes!, bytes!.length - 1)).toBeUndefined();
    for (const other of [{ deep: { a: 1 } }, [1, 2], 'text', new Map(), { big: 2 ** 40 }]) {
      expect(encodeFlat(other)).toBeUndefined();
      expect(flatFallback()).toStrictEqual(other);
    }
    expect(decodeFlat(Buffer.from(reference.encode({ deep: { a: 1 } })), 1 << 20)).toBeUndefined();
  });

  it('hands out byte strings as Buffer views, as the general path does', () => {
    const bytes = encodeValue({ seq: 1, data: Buffer.from([1, 2, 3]) });
    const value = decodeValue(bytes) as { data: Buffer };
    expect(Buffer.isBuffer(value.data)).toBe(true);
    expect(value.data.buffer).toBe(bytes.buffer);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
  });

  it('keeps every result unchanged by later encodes', () => {
    const first = encodeValue({ seq: 7, name: 'first' });
    const copy = Buffer.from(first);
    for (let i = 0; i < 5000; i++)
      encodeValue({ seq: i, name: 'later', data: Buffer.alloc(100, i) });
    expect(first.equals(copy)).toBe(true);
  });

  it('runs a getter once, whether or not the object takes the fast path', () => {
    for (const value of [5, { nested: true }, 2 ** 40]) {
      let calls = 0;
      const o = {
        get v(): unknown {
          calls++;
          return value;
        },
      };
      expect(Buffer.from(encodeValue(o)).equals(Buffer.from(reference.encode({ v: value })))).toBe(
        true,
      );
      expect(calls).toBe(1);
    }
  });

  it('still names the property whose getter throws', () => {
    const o = {
      seq: 1,
      get bad(): number {
        throw new Error('boom');
      },
    };
    expect(() => encodeValue(o)).toThrow(/bad/);
  });
});
