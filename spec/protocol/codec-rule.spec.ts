/**
 * The payload rule of the codec (docs/guide.md, "What a message can carry"):
 * every kind of value, at the top level and nested in an object, an array, a
 * Map value and a Set, either arrives as the rule says (deep equality and
 * prototypes) or is refused with an EncodeError whose path and message are
 * asserted exactly. checkEncodable must agree with encodeValue on every row
 * (and on random mixes of both kinds). Also: the handle callback, and values
 * nested far too deeply.
 */
import * as vm from 'node:vm';
import { Tag } from 'cbor-x';
import fc from 'fast-check';
import { EncodeError, ErrorCode, SwitchboardError } from '../../lib/errors.js';
import {
  checkEncodable,
  decodeValue,
  encodeValue,
  PortableHandle,
} from '../../lib/protocol/codec.js';
import type { CodecContext, HandleRef } from '../../lib/protocol/codec.js';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

class TestHandle extends PortableHandle {
  constructor(private readonly ref: unknown) {
    super();
  }

  toHandleRef(): HandleRef {
    return this.ref as HandleRef;
  }
}

class BrokenHandle extends PortableHandle {
  toHandleRef(): HandleRef {
    throw new TypeError('closed');
  }
}

/** What the test context turns a handle into. */
class Revived {
  constructor(readonly ref: HandleRef) {}
}

const reviving: CodecContext = { reviveHandle: (ref) => new Revived(ref) };

/** Where a row's value is put, the path prefix that gives, and how to get it back out. */
type Position = [
  label: string,
  prefix: string,
  wrap: (value: unknown) => unknown,
  unwrap: (decoded: unknown) => unknown,
];

const positions: Position[] = [
  ['at the top level', '', (v) => v, (d) => d],
  ['in an object', '.x', (v) => ({ x: v }), (d) => (d as { x: unknown }).x],
  ['in an array', '[1]', (v) => ['first', v], (d) => (d as unknown[])[1]],
  [
    'as a Map value',
    '.get("k")',
    (v) => new Map([['k', v]]),
    (d) => (d as Map<unknown, unknown>).get('k'),
  ],
  ['in a Set', '[1]', (v) => new Set(['first', v]), (d) => [...(d as Set<unknown>)][1]],
];

/** How `run` failed: the EncodeError it threw (any other outcome fails the test). */
function encodeError(run: () => unknown): EncodeError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(EncodeError);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as EncodeError).code).toBe(ErrorCode.ENCODE);
    return err as EncodeError;
  }
  throw new Error('expected an EncodeError');
}

/** A comparable summary of what encodeValue or checkEncodable did with a value. */
function outcome(run: () => unknown): string {
  try {
    run();
    return 'accepted';
  } catch (err) {
    if (!(err instanceof EncodeError)) return `threw ${String(err)}`;
    return `refused at ${JSON.stringify(err.path)}: ${err.message}`;
  }
}

function message(path: string, reason: string): string {
  return path === ''
    ? `cannot encode the value: ${reason}`
    : `cannot encode the value at ${path}: ${reason}`;
}

/** Deep equality plus the same prototype everywhere (Buffer vs Uint8Array, null-prototype...). */
function expectArrived(actual: unknown, expected: unknown): void {
  if (expected instanceof Date && Number.isNaN(expected.getTime())) {
    expect(actual).toBeInstanceOf(Date);
    expect((actual as Date).getTime()).toBeNaN();
    return;
  }
  expect(actual).toStrictEqual(expected);
  expectSamePrototypes(actual, expected);
}

function expectSamePrototypes(actual: unknown, expected: unknown): void {
  if (typeof expected !== 'object' || expected === null) return;
  expect(Object.getPrototypeOf(actual)).toBe(Object.getPrototypeOf(expected));
  if (ArrayBuffer.isView(expected) || expected instanceof Date || expected instanceof Revived) {
    return;
  }
  if (expected instanceof Map) {
    const got = [...(actual as Map<unknown, unknown>)];
    [...expected].forEach(([k, v], i) => {
      expectSamePrototypes(got[i]![0], k);
      expectSamePrototypes(got[i]![1], v);
    });
  } else if (expected instanceof Set) {
    const got = [...(actual as Set<unknown>)];
    [...expected].forEach((v, i) => expectSamePrototypes(got[i], v));
  } else {
    for (const [k, v] of Object.entries(expected)) {
      expectSamePrototypes((actual as Record<string, unknown>)[k], v);
    }
  }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

interface Carried {
  /** Made afresh for every position, so generators and cycles are never shared. */
  value: () => unknown;
  /** What arrives (built in this realm). */
  arrives: () => unknown;
}

interface Refused {
  value: () => unknown;
  /** Path of the refused value inside the row's value. */
  at?: string;
  /** The reason, or a function of the position's prefix for reasons that name a path. */
  reason: string | ((prefix: string) => string);
  /** Message of the `cause`, for refusals caused by user code that threw. */
  cause?: string;
}

function runInOtherRealm(code: string): unknown {
  return vm.runInNewContext(code) as unknown;
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}
class Bag {
  *[Symbol.iterator](): Generator<number> {
    yield 1;
  }
}
class MyMap extends Map<unknown, unknown> {}
class MySet extends Set<unknown> {}
class MyDate extends Date {}
class MyArray extends Array<unknown> {}
class MyBytes extends Uint8Array {}

const ref = { kind: 'sender', node: 1, id: 2 };
const namedRef = { kind: 'receiver', node: 0, id: 7, name: 'jobs' };

// Node 20's built-in iterators inherit `constructor === Object`, so cbor-x
// writes them as plain objects without asking the rule; later Node versions
// give them an Iterator constructor, and the rule refuses them.
const iteratorsLookPlain = [].values().constructor === Object;

const carried: Record<string, Carried> = {
  null: { value: () => null, arrives: () => null },
  undefined: { value: () => undefined, arrives: () => undefined },
  true: { value: () => true, arrives: () => true },
  false: { value: () => false, arrives: () => false },
  'an integer': { value: () => 42, arrives: () => 42 },
  'an integer beyond 32 bits': { value: () => -(2 ** 40), arrives: () => -(2 ** 40) },
  'a float': { value: () => 0.1, arrives: () => 0.1 },
  NaN: { value: () => NaN, arrives: () => NaN },
  Infinity: { value: () => Infinity, arrives: () => Infinity },
  '-Infinity': { value: () => -Infinity, arrives: () => -Infinity },
  '-0 (arrives as 0)': { value: () => -0, arrives: () => 0 },
  'a small bigint': { value: () => 5n, arrives: () => 5n },
  'a bigint beyond 64 bits': { value: () => -(2n ** 100n), arrives: () => -(2n ** 100n) },
  'a string': { value: () => 'héllo 𝄞', arrives: () => 'héllo 𝄞' },
  'an empty string': { value: () => '', arrives: () => '' },
  'a lone surrogate (arrives as U+FFFD)': {
    value: () => 'a\uD800b',
    arrives: () => 'a\uFFFD\uFFFD\uFFFDb',
  },
  'a plain object': {
    value: () => ({ a: 1, b: 'x', c: [true], 'a key': null }),
    arrives: () => ({ a: 1, b: 'x', c: [true], 'a key': null }),
  },
  'undefined properties and elements': {
    value: () => ({ a: undefined, b: [undefined] }),
    arrives: () => ({ a: undefined, b: [undefined] }),
  },
  'a null-prototype object (arrives with Object.prototype)': {
    value: () => Object.assign(Object.create(null) as object, { a: 1, b: [2] }),
    arrives: () => ({ a: 1, b: [2] }),
  },
  'a plain object of another realm': {
    value: () => runInOtherRealm('({ a: 1, b: [2], c: { d: 3 } })'),
    arrives: () => ({ a: 1, b: [2], c: { d: 3 } }),
  },
  'an own "constructor" key': {
    value: () => ({ constructor: 'Ford', n: 1 }),
    arrives: () => ({ constructor: 'Ford', n: 1 }),
  },
  'a null-prototype object with a Symbol.iterator method (a symbol key: not carried)': {
    value: () =>
      Object.assign(Object.create(null) as object, {
        a: 1,
        *[Symbol.iterator](): Generator<number> {
          yield 2;
        },
      }),
    arrives: () => ({ a: 1 }),
  },
  'symbol-keyed properties (not carried)': {
    value: () => ({ a: 1, [Symbol('s')]: 2 }),
    arrives: () => ({ a: 1 }),
  },
  'non-enumerable properties (not carried)': {
    value: () => Object.defineProperty({ a: 1 }, 'hidden', { value: 2 }),
    arrives: () => ({ a: 1 }),
  },
  'a getter (its value)': {
    value: () => ({
      get g(): number {
        return 5;
      },
    }),
    arrives: () => ({ g: 5 }),
  },
  'a Proxy of a plain object': {
    value: () => new Proxy({ a: 1 }, {}),
    arrives: () => ({ a: 1 }),
  },
  'a value referenced twice (arrives as two copies)': {
    value: () => {
      const shared = { x: [1] };
      return { a: shared, b: shared };
    },
    arrives: () => ({ a: { x: [1] }, b: { x: [1] } }),
  },
  'an array': { value: () => [1, 'a', [null]], arrives: () => [1, 'a', [null]] },
  'an array with holes (they arrive as undefined)': {
    // eslint-disable-next-line no-sparse-arrays
    value: () => [1, , 3],
    arrives: () => [1, undefined, 3],
  },
  'an array with a named property (not carried)': {
    value: () => Object.assign([1, 2], { extra: 3 }),
    arrives: () => [1, 2],
  },
  'an array of another realm': {
    value: () => runInOtherRealm('[1, [2], { a: 3 }]'),
    arrives: () => [1, [2], { a: 3 }],
  },
  'a Date': {
    value: () => new Date(1_700_000_000_123),
    arrives: () => new Date(1_700_000_000_123),
  },
  'an invalid Date': { value: () => new Date(NaN), arrives: () => new Date(NaN) },
  'a Date of another realm': {
    value: () => runInOtherRealm('new Date(5)'),
    arrives: () => new Date(5),
  },
  'a Map': {
    value: () =>
      new Map<unknown, unknown>([
        [1, 'a'],
        ['k', { x: [1] }],
        [{ o: 1 }, null],
      ]),
    arrives: () =>
      new Map<unknown, unknown>([
        [1, 'a'],
        ['k', { x: [1] }],
        [{ o: 1 }, null],
      ]),
  },
  'a Map of another realm': {
    value: () => runInOtherRealm('new Map([[1, { a: 2 }]])'),
    arrives: () => new Map([[1, { a: 2 }]]),
  },
  'a Set': {
    value: () => new Set([1, 'a', null, [2]]),
    arrives: () => new Set([1, 'a', null, [2]]),
  },
  'a Set of another realm': {
    value: () => runInOtherRealm('new Set([1, [2]])'),
    arrives: () => new Set([1, [2]]),
  },
  'a Buffer': { value: () => Buffer.from([1, 2, 3]), arrives: () => Buffer.from([1, 2, 3]) },
  'a part of a Buffer (only the bytes it views)': {
    value: () => Buffer.from([0, 1, 2, 3, 4]).subarray(1, 3),
    arrives: () => Buffer.from([1, 2]),
  },
  'a Uint8Array': {
    value: () => new Uint8Array([1, 2, 3]),
    arrives: () => new Uint8Array([1, 2, 3]),
  },
  'a Float64Array': {
    value: () => new Float64Array([1.5, -0, NaN]),
    arrives: () => new Float64Array([1.5, -0, NaN]),
  },
  'an Int16Array viewing part of its buffer': {
    value: () => new Int16Array(new Int16Array([9, -1, 2, 9]).buffer, 2, 2),
    arrives: () => new Int16Array([-1, 2]),
  },
  'a BigInt64Array': {
    value: () => new BigInt64Array([-1n, 2n ** 62n]),
    arrives: () => new BigInt64Array([-1n, 2n ** 62n]),
  },
  'a Uint8ClampedArray': {
    value: () => new Uint8ClampedArray([255, 0]),
    arrives: () => new Uint8ClampedArray([255, 0]),
  },
  'a typed array of another realm': {
    value: () => runInOtherRealm('new Uint16Array([1, 2])'),
    arrives: () => new Uint16Array([1, 2]),
  },
  'a handle (revived by the receiving side)': {
    value: () => new TestHandle(ref),
    arrives: () => new Revived(ref),
  },
  'a named handle': {
    value: () => new TestHandle(namedRef),
    arrives: () => new Revived(namedRef),
  },
  'an object made by Object.create(plain object) (own properties only: not caught)': {
    value: () => Object.assign(Object.create({ inherited: 1 }) as object, { own: 2 }),
    arrives: () => ({ own: 2 }),
  },
  ...(iteratorsLookPlain
    ? {
        'a built-in iterator on Node 20 (arrives as {}: not caught)': {
          value: () => new Map([[1, 2]]).keys(),
          arrives: () => ({}),
        },
      }
    : {}),
};

const CLASS_HINT =
  'it would arrive without its prototype: spread it into a plain object, { ...value }';
const ERROR_HINT = 'send its name, message and code as plain fields';

const refused: Record<string, Refused> = {
  'a function': {
    value: () => () => 1,
    reason: 'a function is not a supported payload type',
  },
  'a class': { value: () => Point, reason: 'a function is not a supported payload type' },
  'a symbol': { value: () => Symbol('s'), reason: 'a symbol is not a supported payload type' },
  'a function deep inside': {
    value: () => ({ items: [0, 1, 2, { cb: () => 1 }] }),
    at: '.items[3].cb',
    reason: 'a function is not a supported payload type',
  },
  'a function under a key that is no identifier': {
    value: () => ({ 'a key': { 0: () => 1 } }),
    at: '["a key"]["0"]',
    reason: 'a function is not a supported payload type',
  },
  'a function as a Map key': {
    value: () => new Map([[(): number => 1, 1]]),
    at: '.keys()[0]',
    reason: 'a function is not a supported payload type',
  },
  'a function under a number key of a Map': {
    value: () => new Map([[1, (): number => 1]]),
    at: '.get(1)',
    reason: 'a function is not a supported payload type',
  },
  'a function under an object key of a Map': {
    value: () => new Map([[{}, (): number => 1]]),
    at: '.values()[0]',
    reason: 'a function is not a supported payload type',
  },
  'a function in a Set': {
    value: () => new Set([1, (): number => 1]),
    at: '[1]',
    reason: 'a function is not a supported payload type',
  },
  'a Promise': {
    value: () => Promise.resolve(1),
    reason: 'a Promise is not a supported payload type (await it first)',
  },
  'a Promise of another realm': {
    value: () => runInOtherRealm('Promise.resolve(1)'),
    reason: 'a Promise is not a supported payload type (await it first)',
  },
  'a URL': {
    value: () => new URL('https://example.com/a'),
    reason: 'a URL is not a supported payload type (send url.href)',
  },
  'a URLSearchParams': {
    value: () => new URLSearchParams('a=1'),
    reason: 'a URLSearchParams is not a supported payload type (send params.toString())',
  },
  'a WeakMap': {
    value: () => new WeakMap(),
    reason: 'a WeakMap is not a supported payload type (its entries cannot be listed)',
  },
  'a WeakSet': {
    value: () => new WeakSet(),
    reason: 'a WeakSet is not a supported payload type (its entries cannot be listed)',
  },
  'a WeakRef': {
    value: () => new WeakRef({}),
    reason: 'a WeakRef is not a supported payload type (send what deref() returns)',
  },
  'a generator': {
    value: () =>
      (function* numbers(): Generator<number> {
        yield 1;
      })(),
    reason: 'a generator is not a supported payload type (send an array: Array.from(value))',
  },
  'an async generator': {
    value: () =>
      (async function* numbers(): AsyncGenerator<number> {
        yield await Promise.resolve(1);
      })(),
    reason: 'an async generator is not a supported payload type (collect it into an array first)',
  },
  'an iterable class instance': {
    value: () => new Bag(),
    reason: 'an iterable (Bag) is not a supported payload type (send an array: Array.from(value))',
  },
  'an Error': {
    value: () => new Error('boom'),
    reason: `an Error is not a supported payload type (${ERROR_HINT})`,
  },
  'a TypeError': {
    value: () => new TypeError('boom'),
    reason: `an Error (TypeError) is not a supported payload type (${ERROR_HINT})`,
  },
  'a SwitchboardError': {
    value: () => new SwitchboardError(ErrorCode.TIMEOUT, 'late'),
    reason: `an Error (SwitchboardError) is not a supported payload type (${ERROR_HINT})`,
  },
  'a RegExp': {
    value: () => /x/g,
    reason: 'a RegExp is not a supported payload type (send its source and flags)',
  },
  'a cbor-x Tag': {
    value: () => new Tag(12345, 1),
    reason: 'a cbor-x Tag is not a supported payload type (arbitrary CBOR tags are not carried)',
  },
  'a boxed string': {
    value: () => new String('x'),
    reason: 'a boxed string is not a supported payload type (send the primitive: value.valueOf())',
  },
  'a boxed number': {
    value: () => new Number(1),
    reason: 'a boxed number is not a supported payload type (send the primitive: value.valueOf())',
  },
  'a boxed boolean': {
    value: () => new Boolean(false),
    reason: 'a boxed boolean is not a supported payload type (send the primitive: value.valueOf())',
  },
  'a boxed bigint': {
    value: () => Object(1n) as object,
    reason: 'a boxed bigint is not a supported payload type (send the primitive: value.valueOf())',
  },
  'an ArrayBuffer': {
    value: () => new ArrayBuffer(4),
    reason:
      'an ArrayBuffer is not a supported payload type (send a Buffer or a Uint8Array over it: new Uint8Array(buffer))',
  },
  'a SharedArrayBuffer': {
    value: () => new SharedArrayBuffer(4),
    reason:
      'a SharedArrayBuffer is not a supported payload type (send a copy of its bytes: Buffer.from(new Uint8Array(buffer)))',
  },
  'a DataView': {
    value: () => new DataView(new ArrayBuffer(4), 1, 2),
    reason:
      'a DataView is not a supported payload type (send the bytes it views: new Uint8Array(view.buffer, view.byteOffset, view.byteLength))',
  },
  'an instance of a user class': {
    value: () => new Point(3, 4),
    reason: `a class instance (Point) is not a supported payload type (${CLASS_HINT})`,
  },
  'an instance of a class of another realm': {
    value: () => runInOtherRealm('new (class Thing { constructor() { this.a = 1; } })()'),
    reason: `a class instance (Thing) is not a supported payload type (${CLASS_HINT})`,
  },
  'an object whose prototype has no constructor': {
    value: () => Object.create(Object.create(null) as object) as object,
    reason: `an object with a custom prototype is not a supported payload type (${CLASS_HINT})`,
  },
  'a subclass of Map': {
    value: () => new MyMap([[1, 2]]),
    reason:
      'a subclass of Map (MyMap) is not a supported payload type (send a plain Map: new Map(value))',
  },
  'a subclass of Set': {
    value: () => new MySet([1]),
    reason:
      'a subclass of Set (MySet) is not a supported payload type (send a plain Set: new Set(value))',
  },
  'a subclass of Date': {
    value: () => new MyDate(5),
    reason:
      'a subclass of Date (MyDate) is not a supported payload type (send a plain Date: new Date(value.getTime()))',
  },
  'a subclass of Array': {
    value: () => MyArray.from([1]),
    reason:
      'a subclass of Array (MyArray) is not a supported payload type (send a plain array: Array.from(value))',
  },
  'a subclass of Uint8Array': {
    value: () => new MyBytes([1]),
    reason:
      'a subclass of Uint8Array (MyBytes) is not a supported payload type (send a plain Uint8Array: new Uint8Array(value))',
  },
  'a Blob': {
    value: () => new Blob(['a']),
    reason:
      'a Blob is not a supported payload type (send its bytes: Buffer.from(await blob.arrayBuffer()))',
  },
  'a cycle': {
    value: () => {
      const a: Record<string, unknown> = { n: 1 };
      a['self'] = a;
      return a;
    },
    at: '.self',
    reason: (prefix) =>
      `a cycle: it refers back to ${prefix === '' ? 'the top-level value' : `the value at ${prefix}`}`,
  },
  'a cycle through arrays, below the top': {
    value: () => {
      const inner: unknown[] = [1];
      inner.push({ back: inner });
      return { list: inner };
    },
    at: '.list[1].back',
    reason: (prefix) => `a cycle: it refers back to the value at ${prefix}.list`,
  },
  'a getter that throws': {
    value: () => ({
      ok: 1,
      get g(): number {
        throw new Error('boom');
      },
    }),
    at: '.g',
    reason: 'reading it threw: boom',
    cause: 'boom',
  },
  'an invalid handle ref': {
    value: () => ({ reply: new TestHandle({ kind: 'sender', node: -1, id: 1 }) }),
    at: '.reply',
    reason:
      'an invalid handle ref: kind must be a string, node and id non-negative safe integers, name a string',
  },
  'a handle ref that is not an object': {
    value: () => new TestHandle(null),
    reason:
      'an invalid handle ref: kind must be a string, node and id non-negative safe integers, name a string',
  },
  'a handle whose toHandleRef() throws': {
    value: () => [new BrokenHandle()],
    at: '[0]',
    reason: 'its toHandleRef() threw: closed',
    cause: 'closed',
  },
};

// ---------------------------------------------------------------------------
// Invariants checked after every test
// ---------------------------------------------------------------------------

afterEach(() => {
  const healthy = { seq: 7, data: Buffer.from('still works'), nested: [1, { ok: true }] };
  expect(decodeValue(encodeValue(healthy))).toStrictEqual(healthy);
  expect(() => checkEncodable(healthy)).not.toThrow();
});

// ---------------------------------------------------------------------------
// The rule, row by row
// ---------------------------------------------------------------------------

describe.each(positions)('%s', (_label, prefix, wrap, unwrap) => {
  it.each(Object.entries(carried))('carries %s', (_name, row) => {
    const value = wrap(row.value());
    expect(outcome(() => checkEncodable(value))).toBe('accepted');
    const out = decodeValue(encodeValue(value), reviving);
    if (prefix !== '') expect(Object.getPrototypeOf(out)).toBe(Object.getPrototypeOf(wrap(0)));
    expectArrived(unwrap(out), row.arrives());
  });

  it.each(Object.entries(refused))('refuses %s', (_name, row) => {
    const path = prefix + (row.at ?? '');
    const reason = typeof row.reason === 'function' ? row.reason(prefix) : row.reason;
    const errors = [
      encodeError(() => encodeValue(wrap(row.value()))),
      encodeError(() => checkEncodable(wrap(row.value()))),
    ];
    for (const err of errors) {
      expect(err.path).toBe(path);
      expect(err.reason).toBe(reason);
      expect(err.message).toBe(message(path, reason));
      if (row.cause === undefined) {
        expect('cause' in err).toBe(false);
      } else {
        expect((err.cause as Error).message).toBe(row.cause);
      }
    }
  });
});

describe('checkEncodable and encodeValue', () => {
  // Supported leaves mixed with refused ones, nested every supported way.
  const leaf: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom(null, undefined, true, 0, -0, NaN, 'x', 5n, 2n ** 80n),
    fc.double(),
    fc.string(),
    fc.constant(Buffer.from([1])),
    fc.constant(new Date(3)),
    fc.constant(new Float32Array([1])),
    fc.constant(new TestHandle(ref)),
    fc
      .constantFrom<() => unknown>(
        () => () => 1,
        () => Symbol('s'),
        () => new Point(1, 2),
        () => Promise.resolve(),
        () => new MyMap(),
        () => new ArrayBuffer(1),
        () => new TestHandle({ kind: 1 }),
        () => runInOtherRealm('new Date(1)'),
        () => Object.create(null) as object,
      )
      .map((make) => make()),
  );
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth: 5 },
      leaf,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(fc.string(), tie('value'), { maxKeys: 4 }),
      fc
        .array(fc.tuple(fc.oneof(fc.string(), fc.integer(), tie('value')), tie('value')), {
          maxLength: 3,
        })
        .map((entries) => new Map(entries)),
      fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
    ),
  }));

  it('agree on random mixes of carried and refused values', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(outcome(() => checkEncodable(v))).toBe(outcome(() => encodeValue(v)));
      }),
      { numRuns: 2000 },
    );
  });

  it('report the first offending place in the order of encoding', () => {
    const value = { a: [1, { b: new Point(0, 0) }], c: () => 1 };
    expect(encodeError(() => encodeValue(value)).path).toBe('.a[1].b');
    expect(encodeError(() => checkEncodable(value)).path).toBe('.a[1].b');
  });
});

// ---------------------------------------------------------------------------
// Shared references and handles written
// ---------------------------------------------------------------------------

describe('shared references', () => {
  it('arrive as separate equal copies, not as one object', () => {
    const shared = { x: 1 };
    const out = decodeValue(encodeValue({ a: shared, b: [shared] })) as {
      a: unknown;
      b: unknown[];
    };
    expect(out).toStrictEqual({ a: { x: 1 }, b: [{ x: 1 }] });
    expect(out.a).not.toBe(out.b[0]);
  });

  it('cost no more to explain a failure than to walk once (no exponential walk)', () => {
    // 40 levels, each referencing the one below twice: 2^40 paths, 41 objects.
    let value: unknown = { bad: () => 1 };
    for (let i = 0; i < 40; i++) value = [value, value];
    const started = Date.now();
    expect(encodeError(() => checkEncodable(value)).path).toBe('[0]'.repeat(40) + '.bad');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('handles written', () => {
  const a = new TestHandle({ kind: 'sender', node: 1, id: 1 });
  const b = new TestHandle({ kind: 'sender', node: 1, id: 2 });
  const c = new TestHandle({ kind: 'sender', node: 2, id: 3, name: 'n' });
  const value = { first: a, list: [b, { again: a }], map: new Map([['k', c]]), set: new Set([b]) };

  it('are reported once per occurrence, in the order they are written', () => {
    const seen: PortableHandle[] = [];
    const bytes = encodeValue(value, (h) => seen.push(h));
    expect(seen).toEqual([a, b, a, c, b]);
    expect(seen[0]).toBe(a);
    expect(bytes.equals(encodeValue(value))).toBe(true);
  });

  it('are reported by checkEncodable in the same order', () => {
    const seen: PortableHandle[] = [];
    checkEncodable(value, (h) => seen.push(h));
    expect(seen).toEqual([a, b, a, c, b]);
  });

  it('are not reported for a refused value', () => {
    const seen: PortableHandle[] = [];
    const bad = { reply: a, then: () => 1 };
    encodeError(() => encodeValue(bad, (h) => seen.push(h)));
    encodeError(() => checkEncodable(bad, (h) => seen.push(h)));
    expect(seen).toEqual([]);
  });

  it('let what the callback throws through, unchanged', () => {
    const boom = new Error('no');
    const fail = (): void => {
      throw boom;
    };
    expect(() => encodeValue([a], fail)).toThrow(boom);
    expect(() => checkEncodable([a], fail)).toThrow(boom);
    expect(encodeValue([a], () => undefined).length).toBeGreaterThan(0);
  });

  it('are not reported when there are none', () => {
    const seen: PortableHandle[] = [];
    encodeValue({ seq: 1, data: Buffer.alloc(4) }, (h) => seen.push(h));
    expect(seen).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------

describe('deep nesting', () => {
  function nested(levels: number, make: (inner: unknown) => unknown): unknown {
    let value: unknown = 0;
    for (let i = 0; i < levels; i++) value = make(value);
    return value;
  }

  it.each([
    ['arrays', (v: unknown): unknown => [v]],
    ['objects', (v: unknown): unknown => ({ a: v })],
    ['Maps', (v: unknown): unknown => new Map([[1, v]])],
    ['Sets', (v: unknown): unknown => new Set([v])],
  ])('refuses 100,000 levels of %s with a typed error, no crash', (_name, make) => {
    const value = nested(100_000, make);
    for (const run of [() => encodeValue(value), () => checkEncodable(value)]) {
      const err = encodeError(run);
      expect(err.path).toBe('');
      expect(err.reason).toBe(
        'nested too deeply to encode: 100000 levels overflow the stack (a receiver accepts at most 256)',
      );
    }
  });

  it('names a cycle that closes 100,000 levels down, not the depth', () => {
    const top: unknown[] = [];
    let bottom = top;
    for (let i = 0; i < 100_000; i++) {
      const next: unknown[] = [];
      bottom.push(next);
      bottom = next;
    }
    bottom.push(top);
    for (const run of [() => encodeValue(top), () => checkEncodable(top)]) {
      const err = encodeError(run);
      expect(err.path).toBe('[0]'.repeat(100_001));
      expect(err.reason).toBe('a cycle: it refers back to the top-level value');
    }
  });

  it.each([
    ['arrays', (v: unknown): unknown => [v]],
    ['objects', (v: unknown): unknown => ({ a: v })],
    ['Sets', (v: unknown): unknown => new Set([v])],
  ])('agrees with encodeValue at every depth of %s, where the stack ends too', (_name, make) => {
    const verdicts = new Set<string>();
    for (const levels of [200, 300, 600, 900, 1200, 1500, 1800, 2500, 4000]) {
      const value = nested(levels, make);
      const verdict = outcome(() => encodeValue(value));
      verdicts.add(verdict.slice(0, 8));
      expect(outcome(() => checkEncodable(value))).toBe(verdict);
    }
    expect(verdicts).toEqual(new Set(['accepted', 'refused ']));
  });

  it('carries what a receiver accepts', () => {
    const value = nested(256, (v) => [v]);
    expect(
      decodeValue(encodeValue(value), undefined, { maxDepth: 256, maxMessageSize: 1e6 }),
    ).toEqual(value);
    expect(() => checkEncodable(value)).not.toThrow();
  });
});
