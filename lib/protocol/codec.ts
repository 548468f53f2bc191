/**
 * The one CBOR configuration of the library (DESIGN.md sections 4, 8 and 9;
 * RELIABILITY.md items 4 and 5).
 *
 * Every payload is encoded by {@link encodeValue} and decoded by
 * {@link decodeValue}. Decoding never hands untrusted bytes straight to
 * cbor-x: {@link checkCbor} first walks them with an iterative (non-recursive)
 * scan that enforces the size and depth limits, checks every declared length
 * against the bytes that remain, refuses `__proto__` keys, unknown tags,
 * stray or missing bytes, and only then lets cbor-x build the value. Because
 * the scan proves the input is one complete, well-formed item within the
 * limits, cbor-x's own recursion is bounded by `maxDepth` and its
 * allocations by what the bytes really contain.
 *
 * What a payload can carry (docs/guide.md, "What a message can carry"):
 * structuredClone's rules, tightened wherever cbor-x would change a value's
 * shape. Carried, and what arrives:
 * - `null`, `undefined`, booleans, strings, numbers (integers, floats,
 *   `NaN`, `Infinity`; `-0` arrives as `0` because cbor-x writes it as the
 *   integer 0), `bigint` (any size; beyond 64 bits cbor-x's encoder is
 *   quadratic in the size, ~0.25 s for 20 KB, so keep them small: decoding
 *   here is linear);
 * - plain objects: own enumerable string-keyed properties (`undefined`
 *   values kept; getters read once; symbol keys and non-enumerable
 *   properties are not carried, as with structuredClone). Null-prototype
 *   objects and plain objects of another realm arrive as ordinary plain
 *   objects;
 * - arrays, also of another realm (holes arrive as `undefined`; named
 *   properties of an array are not carried);
 * - `Buffer` (arrives as a `Buffer`), `Uint8Array` (tag 64), the other
 *   typed arrays (RFC 8746 tags), each as its own type, with only the bytes
 *   it views;
 * - `Date` (tag 1: epoch seconds as a float64, exact to the millisecond
 *   within 2^42 s, about 139,000 years, of 1970; beyond, 1 ms may be lost;
 *   an invalid Date arrives invalid), `Map` (tag 259), `Set` (tag 258);
 *   those of another realm (a `vm` context; under jest, the Dates Node's own
 *   modules make) arrive as this realm's;
 * - {@link PortableHandle} subclasses (tag {@link HANDLE_TAG}), revived by
 *   the {@link CodecContext} given to {@link decodeValue}.
 * A value referenced twice (not a cycle) arrives as two equal copies.
 *
 * Refused, with an {@link EncodeError} whose `path` says where the value
 * sits (e.g. `.items[3].cb`) and whose message says what to send instead:
 * functions, symbols, instances of user classes (they would arrive without
 * their prototype) and subclasses of the built-ins above (other than
 * `Buffer`), `Promise`, `URL`, `URLSearchParams`, `WeakMap`, `WeakSet`,
 * `WeakRef`, `Blob`, generators and other iterables that are not arrays,
 * `Map`s or `Set`s, `Error` and `RegExp` (cbor-x would write tag 27, whose
 * decoder calls a global constructor named by the peer), boxed primitives,
 * `ArrayBuffer`, `SharedArrayBuffer` and `DataView` (cbor-x would turn them
 * into a `Buffer`), cbor-x `Tag` objects (arbitrary tags), cycles, invalid
 * handle refs, and values nested too deeply for the encoder's stack.
 *
 * Not caught: cbor-x writes any object whose inherited `constructor` is
 * `Object` as a plain object without asking, so an object made by
 * `Object.create(plainObject)` arrives as its own properties only, and on
 * Node 20 the built-in iterators (`map.keys()`, `array.values()`, string
 * and `matchAll` iterators), whose prototypes inherit that `constructor`,
 * arrive as `{}`: spread them into an array first.
 *
 * Strings are UTF-8 on the wire and are not checked before encoding (that
 * would cost a pass over every string): a lone surrogate arrives as U+FFFD,
 * three of them in strings shorter than 64 code units, where cbor-x's own
 * UTF-8 loop writes the surrogate's raw 3-byte form.
 */
import { types } from 'node:util';

import { Decoder, Encoder, Tag, addExtension } from 'cbor-x';

import { DecodeError, EncodeError, OptionError } from '../errors.js';

/** What a channel handle (e.g. a `Sender`) looks like on the wire. */
export interface HandleRef {
  /** Handle type, e.g. `"sender"`; interpreted by {@link CodecContext.reviveHandle}. */
  readonly kind: string;
  /** Node index that owns the handle's other end (a non-negative integer). */
  readonly node: number;
  /** Identifier of the handle on that node (a non-negative integer). */
  readonly id: number;
  /** Optional name (named channels). */
  readonly name?: string;
}

/**
 * Base class for values that travel as handles (the channel layer's `Sender`
 * extends it). Any instance of a subclass, wherever it sits in a value
 * (object property, array element, `Map` value...), is written as tag
 * {@link HANDLE_TAG} around `[kind, node, id]` or `[kind, node, id, name]`.
 */
export abstract class PortableHandle {
  /**
   * The wire form of this handle. Called synchronously in the middle of
   * {@link encodeValue} (and by {@link checkEncodable}; again, when encoding
   * fails, to find what failed): it must be pure and must not call
   * `encodeValue` itself (cbor-x's encoder is not re-entrant). `node` and `id` must be
   * non-negative safe integers, `kind` and `name` strings, or encoding fails
   * with an `ERR_SB_ENCODE` error.
   */
  abstract toHandleRef(): HandleRef;
}

/** Turns a decoded HandleRef back into a live object bound to the local side. */
export interface CodecContext {
  /**
   * Called synchronously during {@link decodeValue} once per handle in the
   * payload, with a frozen, validated ref; its result replaces the handle in
   * the decoded value. If it throws, the decode fails with a `DecodeError`
   * whose `cause` is the thrown error.
   */
  reviveHandle(ref: HandleRef): unknown;
}

/**
 * CBOR tag number of a {@link PortableHandle}. 40100 lies in IANA's
 * first-come-first-served range (32768 and up) and is encoded in 3 bytes
 * (`d9 9c a4`).
 */
export const HANDLE_TAG: number = 40100;

/** Limits applied to every decoded payload. */
export interface CodecLimits {
  /**
   * Deepest allowed nesting of arrays and maps (the top-level container is
   * depth 1; tags do not count, and the scan never lets a tag wrap another
   * tag). Default 64; an integer from 0 to {@link MAX_CODEC_DEPTH}.
   */
  maxDepth: number;
  /**
   * Largest accepted payload, in bytes. Default 64 MiB (DESIGN.md section 8);
   * an integer from 1 to 2^31 - 1.
   */
  maxMessageSize: number;
}

/**
 * Upper bound for {@link CodecLimits.maxDepth}. cbor-x decodes recursively
 * and a tagged container costs it two stack frames; from a fresh stack it
 * overflows near 1,100 nested `Set`s, so 256 keeps a wide margin for callers
 * that decode from deep inside their own call stack.
 */
export const MAX_CODEC_DEPTH = 256;

/** Default limits: depth 64, 64 MiB. */
export const DEFAULT_CODEC_LIMITS: Readonly<CodecLimits> = Object.freeze({
  maxDepth: 64,
  maxMessageSize: 64 * 1024 * 1024,
});

// The scan keeps per-level counters in Int32Arrays, so sizes must fit in 31 bits.
const MAX_MESSAGE_SIZE_LIMIT = 0x7fffffff;

// ---------------------------------------------------------------------------
// cbor-x configuration, created once at module load.
//
// `useRecords: false` turns off cbor-x's record extension and shared
// structures (tags 0xdffe..0xffff, which define object shapes that later
// messages reuse: state shared across messages that a hostile peer could
// poison, and a `new Function` code path). `mapsAsObjects: true` decodes
// CBOR maps into plain objects. No `structuredClone`: it costs a Map lookup
// per object on every encode just to support cycles and shared references.
// ---------------------------------------------------------------------------

const cborOptions = { useRecords: false, mapsAsObjects: true } as const;
const encoder = new Encoder(cborOptions);
// A separate decoder: an Encoder instance carries a (here unused) structures
// array that would route decoding through cbor-x's shared-structures path.
const decoder = new Decoder(cborOptions);

// `useBuffer` exists at runtime but is missing from cbor-x's typings.
const slabEncoder = encoder as Encoder & { useBuffer(buffer: Uint8Array): void };

/** Size of the fresh scratch buffer handed to cbor-x after a large message (its own default). */
const SLAB_SIZE = 8192;
/** Largest cbor-x scratch buffer that encoded messages may stay views into. */
const MAX_SHARED_SLAB = 64 * 1024;

// cbor-x's typings demand Extension<T, R> with a concrete class and an encode
// that returns bytes; the runtime only needs what is declared here (an
// extension without Class only installs a decoder, one without tag asks
// getTag, and writes no tag when that returns undefined).
interface CborExtension {
  Class?: abstract new (...args: never[]) => unknown;
  tag?: number;
  getTag?(value: never): number | undefined;
  encode?(value: never, encodeItem: (item: unknown) => void): void;
  decode?(item: unknown): unknown;
}
const registerExtension = addExtension as unknown as (extension: CborExtension) => void;

// The context of the decodeValue call in progress. cbor-x's extension
// decoders receive only the decoded item, so the context passed to
// decodeValue reaches the handle decoder through this variable. It is set
// and restored around one synchronous decoder.decode() call (saved and
// restored, so a nested decodeValue from inside reviveHandle is safe too),
// and nothing asynchronous can run in between, so a context never leaks into
// another decode.
let currentContext: CodecContext | undefined;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function handleRefFromWire(item: unknown): HandleRef {
  if (!Array.isArray(item) || (item.length !== 3 && item.length !== 4)) {
    throw new DecodeError('malformed handle: expected [kind, node, id, name?]');
  }
  const fields = item as unknown[];
  const kind = fields[0];
  const node = fields[1];
  const id = fields[2];
  const name = fields[3];
  if (typeof kind !== 'string' || !isIndex(node) || !isIndex(id)) {
    throw new DecodeError(
      'malformed handle: kind must be a string, node and id non-negative integers',
    );
  }
  if (fields.length === 4) {
    if (typeof name !== 'string') throw new DecodeError('malformed handle: name must be a string');
    return Object.freeze({ kind, node, id, name });
  }
  return Object.freeze({ kind, node, id });
}

// ---------------------------------------------------------------------------
// The payload rule (docs/guide.md, "What a message can carry")
//
// cbor-x writes an object whose `constructor` is Object, Array or Map
// directly. Every other object goes through its extension list, tested with
// `instanceof` in order, and addExtension puts a new extension first. So the
// gate registered here is asked (right after the handle extension) about
// every object that is not plain, and about no plain one: its
// Symbol.hasInstance claims exactly the objects that cbor-x would not write
// faithfully, and its encode writes a faithful copy (of a built-in from
// another realm, say) or refuses. The hot path pays one call per non-plain
// object and keeps no path: when encoding fails, locate() walks the value
// again to say where and why.
//
// checkEncodable() applies the same rule by walking the value the way cbor-x
// does (same dispatch on `constructor`, same key loop, same classify()), so
// the two agree on every value, and a failure of either is explained by the
// same locate().
// ---------------------------------------------------------------------------

const { getPrototypeOf } = Object;
const OBJECT_PROTO: object = Object.prototype;
const ARRAY_PROTO: object = Array.prototype;
const MAP_PROTO: object = Map.prototype;
const SET_PROTO: object = Set.prototype;
const DATE_PROTO: object = Date.prototype;
// What Buffer.from() and friends return (Node's FastBuffer shares Buffer.prototype).
const BUFFER_PROTO = getPrototypeOf(Buffer.alloc(0)) as object;

type TypedArrayConstructor = new (
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
) => ArrayBufferView;

/** This realm's typed array constructors, by their `Symbol.toStringTag`. */
const TYPED_ARRAYS = new Map<string, TypedArrayConstructor>(
  [
    Uint8Array,
    Uint8ClampedArray,
    Uint16Array,
    Uint32Array,
    BigUint64Array,
    Int8Array,
    Int16Array,
    Int32Array,
    BigInt64Array,
    Float32Array,
    Float64Array,
  ].map((C) => [C.name, C as unknown as TypedArrayConstructor]),
);
const TYPED_ARRAY_PROTOS = new Map<string, object>(
  [...TYPED_ARRAYS].map(([name, C]) => [name, C.prototype as object]),
);

// %TypedArray%.prototype[Symbol.toStringTag] reads the internal slot: the
// element type of a real typed array of any realm, undefined for anything
// else (a fake with a typed array prototype, a proxy).
// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with .call
const typedArrayTag = Object.getOwnPropertyDescriptor(
  getPrototypeOf(Uint8Array.prototype) as object,
  Symbol.toStringTag,
)?.get as (this: unknown) => string | undefined;

function typedArrayName(value: object): string | undefined {
  return typedArrayTag.call(value);
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever called with .call
const functionSource = Function.prototype.toString;

/**
 * True if `proto` is the prototype of the built-in constructor `name` of some
 * realm (this one or a `vm` context's): what sets a `Map` of another realm
 * apart from an instance of a subclass of `Map`.
 */
function isBuiltinPrototype(proto: object | null, name: string): boolean {
  if (proto === null) return false;
  const C: unknown = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value;
  return (
    typeof C === 'function' &&
    C.name === name &&
    (C as { prototype?: unknown }).prototype === proto &&
    functionSource.call(C) === `function ${name}() { [native code] }`
  );
}

// What classify() finds. Up to C_HANDLE, cbor-x (or the handle extension)
// writes the object faithfully; from C_COPY_PLAIN on, the gate claims it.
/** A leaf cbor-x writes as it is: a Date, a Buffer, a typed array. */
const C_LEAF = 0;
/** A plain object that cbor-x writes key by key (null prototype, another realm, an own "constructor" key). */
const C_PLAIN = 1;
/** A Set: cbor-x writes `Array.from(set)` under tag 258. */
const C_SET = 2;
/** An array that cbor-x iterates (another realm's, or with an own "constructor" key). */
const C_ITERATED = 3;
/** A PortableHandle: written by the handle extension. */
const C_HANDLE = 4;
/** Written by the gate as a copy built in this realm, which cbor-x writes faithfully: */
const C_COPY_PLAIN = 5; // a plain object cbor-x would iterate or refuse (a Symbol.iterator key...)
const C_COPY_MAP = 6; // a Map cbor-x would iterate as an array (another realm's, own "constructor")
const C_COPY_SET = 7;
const C_COPY_DATE = 8;
const C_COPY_TYPED = 9;
/** Not carried: refused, refusal() says why. */
const C_REFUSED = 10;

/**
 * How the rule treats an object that cbor-x sends to its extension list
 * (its `constructor` is not Object, Array or Map). The common supported
 * kinds come first: this runs once per Buffer of every message.
 */
function classify(value: object): number {
  const proto = getPrototypeOf(value) as object | null;
  if (proto === BUFFER_PROTO) return typedArrayName(value) === 'Uint8Array' ? C_LEAF : C_REFUSED;
  if (value instanceof PortableHandle) return C_HANDLE;
  if (proto === DATE_PROTO) return types.isDate(value) ? C_LEAF : C_REFUSED;
  if (proto === SET_PROTO) return types.isSet(value) ? C_SET : C_REFUSED;
  const typed = typedArrayName(value);
  if (typed !== undefined) {
    if (proto === TYPED_ARRAY_PROTOS.get(typed)) return C_LEAF;
    return TYPED_ARRAYS.has(typed) && isBuiltinPrototype(proto, typed) ? C_COPY_TYPED : C_REFUSED;
  }
  if (proto === OBJECT_PROTO || proto === null) return plainKind(value);
  if (proto === ARRAY_PROTO) return Array.isArray(value) ? C_ITERATED : C_REFUSED;
  if (proto === MAP_PROTO) return types.isMap(value) ? C_COPY_MAP : C_REFUSED;
  // Another realm's built-ins (a vm context; under jest, Dates made by
  // Node's own modules) are carried as this realm's; subclasses are not.
  if (getPrototypeOf(proto) === null && isBuiltinPrototype(proto, 'Object')) {
    return plainKind(value);
  }
  if (types.isDate(value)) return isBuiltinPrototype(proto, 'Date') ? C_COPY_DATE : C_REFUSED;
  if (types.isMap(value)) return isBuiltinPrototype(proto, 'Map') ? C_COPY_MAP : C_REFUSED;
  if (types.isSet(value)) return isBuiltinPrototype(proto, 'Set') ? C_COPY_SET : C_REFUSED;
  if (Array.isArray(value)) return isBuiltinPrototype(proto, 'Array') ? C_ITERATED : C_REFUSED;
  return C_REFUSED;
}

/**
 * A plain object on cbor-x's extension path: written key by key, unless
 * cbor-x would take it for an iterable, an async iterable, a Blob or a
 * DataView (by a symbol key or its own "constructor"), in which case the
 * gate writes a copy of its own enumerable string keys, as for any plain
 * object.
 */
function plainKind(value: object): number {
  const v = value as Record<PropertyKey, unknown>;
  const tag = v[Symbol.toStringTag];
  return v[Symbol.iterator] ||
    v[Symbol.asyncIterator] ||
    tag === 'Blob' ||
    tag === 'File' ||
    v['constructor'] === DataView
    ? C_COPY_PLAIN
    : C_PLAIN;
}

/** True for what a {@link PortableHandle.toHandleRef} may return. */
function isValidRef(ref: unknown): ref is HandleRef {
  if (typeof ref !== 'object' || ref === null) return false;
  const r = ref as Partial<Record<keyof HandleRef, unknown>>;
  return (
    typeof r.kind === 'string' &&
    isIndex(r.node) &&
    isIndex(r.id) &&
    (r.name === undefined || typeof r.name === 'string')
  );
}

/**
 * What the hot path throws when the rule refuses a value: preallocated, so a
 * refusal costs no stack capture before locate() builds the real error.
 */
const REFUSED = new Error('refused by the payload rule');

/** Handles written by the encodeValue call in progress, when its caller asked for them. */
let handleSink: PortableHandle[] | undefined;

class Gate {
  static [Symbol.hasInstance](value: unknown): boolean {
    return classify(value as object) >= C_COPY_PLAIN;
  }
}

function copyOf(value: object): unknown {
  switch (classify(value)) {
    case C_COPY_PLAIN:
      return Object.fromEntries(Object.entries(value));
    case C_COPY_MAP:
      return new Map(value as Map<unknown, unknown>);
    case C_COPY_SET:
      return new Set(value as Set<unknown>);
    case C_COPY_DATE:
      return new Date(Date.prototype.getTime.call(value));
    case C_COPY_TYPED: {
      const view = value as ArrayBufferView & { length: number };
      const C = TYPED_ARRAYS.get(typedArrayName(value)!)!;
      return new C(view.buffer, view.byteOffset, view.length);
    }
    default:
      throw REFUSED;
  }
}

// No tag: what the gate writes is a copy cbor-x tags as it would the original.
registerExtension({
  Class: Gate,
  encode(value: object, encodeItem: (item: unknown) => void): void {
    encodeItem(copyOf(value));
  },
});

// Registered after the gate, so asked before it: a handle costs one
// instanceof, as it did before the gate existed, and the gate never sees one.
registerExtension({
  Class: PortableHandle,
  tag: HANDLE_TAG,
  encode(handle: PortableHandle, encodeItem: (item: unknown) => void): void {
    const ref: unknown = handle.toHandleRef();
    if (!isValidRef(ref)) throw REFUSED;
    handleSink?.push(handle);
    // A positional array keeps the common handle to ~10 bytes.
    encodeItem(
      ref.name === undefined
        ? [ref.kind, ref.node, ref.id]
        : [ref.kind, ref.node, ref.id, ref.name],
    );
  },
  decode(item: unknown): unknown {
    const ref = handleRefFromWire(item);
    const ctx = currentContext;
    if (ctx === undefined) return ref;
    try {
      return ctx.reviveHandle(ref);
    } catch (err) {
      throw new DecodeError(
        `cannot revive ${ref.kind} handle ${ref.node}/${ref.id}: ${describe(err)}`,
        { cause: err },
      );
    }
  },
});

// cbor-x's own tag-27 decoder calls a global constructor named by the
// payload. The scan refuses that tag anyway; uninstalling the decoder means
// no scan bug could reach it.
registerExtension({ tag: 27 });

// cbor-x builds bignums (tags 2 and 3) one byte at a time with BigInt
// shifts, which is quadratic: a 100 KB bignum took ~1 s. Parsing the hex
// form is linear (1 MB in ~6 ms).
function bignumFromBytes(item: unknown): bigint {
  if (!(item instanceof Uint8Array)) throw new DecodeError('bignum content must be a byte string');
  if (item.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(item.buffer, item.byteOffset, item.byteLength).toString('hex'));
}
registerExtension({ tag: 2, decode: bignumFromBytes });
registerExtension({ tag: 3, decode: (item: unknown): bigint => -1n - bignumFromBytes(item) });

// ---------------------------------------------------------------------------
// checkEncodable: the rule without the bytes
// ---------------------------------------------------------------------------

/** Set by check() for a value nested deeper than {@link MAX_CODEC_DEPTH}. */
let deep = false;

/*
 * Mirrors cbor-x's encode() for the non-plain objects through classify(),
 * and its dispatch and loops for the others, down to the key loop of
 * writeObject (for...in, filtered by the object's own hasOwnProperty when it
 * is a function). Recursive like cbor-x: a cycle or a value too deep ends in
 * a stack overflow, which locate() then explains. But the two stacks do not
 * end at the same depth, so a value nested deeper than any receiver accepts
 * sets `deep`, and checkEncodable then lets cbor-x itself decide.
 */
function check(value: unknown, handles: PortableHandle[] | undefined, depth: number): void {
  if (typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw REFUSED;
    return;
  }
  if (value === null) return;
  if (depth > MAX_CODEC_DEPTH) deep = true;
  const c: unknown = value.constructor;
  if (c === Object) {
    checkProperties(value, handles, depth);
  } else if (c === Array) {
    const items = value as unknown[];
    const length = items.length;
    for (let i = 0; i < length; i++) check(items[i], handles, depth + 1);
  } else if (c === Map) {
    for (const [k, v] of value as Map<unknown, unknown>) {
      check(k, handles, depth + 1);
      check(v, handles, depth + 1);
    }
  } else {
    checkOther(value, handles, depth);
  }
}

function checkProperties(
  object: object,
  handles: PortableHandle[] | undefined,
  depth: number,
): void {
  const o = object as Record<string, unknown>;
  for (const key in o) {
    // eslint-disable-next-line no-prototype-builtins -- the very call cbor-x makes
    if (typeof o.hasOwnProperty !== 'function' || o.hasOwnProperty(key)) {
      check(o[key], handles, depth + 1);
    }
  }
}

function checkOther(value: object, handles: PortableHandle[] | undefined, depth: number): void {
  switch (classify(value)) {
    case C_LEAF:
    case C_COPY_DATE:
    case C_COPY_TYPED:
      return;
    case C_PLAIN:
      checkProperties(value, handles, depth);
      return;
    case C_SET:
    case C_COPY_SET:
      for (const item of Array.from(value as Set<unknown>)) check(item, handles, depth + 1);
      return;
    case C_ITERATED:
      for (const item of value as unknown[]) check(item, handles, depth + 1);
      return;
    case C_COPY_MAP:
      for (const [k, v] of new Map(value as Map<unknown, unknown>)) {
        check(k, handles, depth + 1);
        check(v, handles, depth + 1);
      }
      return;
    case C_COPY_PLAIN:
      for (const [, v] of Object.entries(value)) check(v, handles, depth + 1);
      return;
    case C_HANDLE: {
      const ref: unknown = (value as PortableHandle).toHandleRef();
      if (!isValidRef(ref)) throw REFUSED;
      handles?.push(value as PortableHandle);
      return;
    }
    default:
      throw REFUSED;
  }
}

/**
 * Applies exactly the rule of {@link encodeValue} to `value` without
 * encoding it: returns if `encodeValue(value)` would succeed, and throws the
 * {@link EncodeError} it would throw (same path, same message) otherwise.
 * For values that are passed by reference instead of encoded (between two
 * endpoints of one process), so they are held to the rule of remote ones.
 *
 * It reads the value as encoding does (getters run, `toHandleRef()` is
 * called) and costs a small fraction of encoding: about 30 ns for
 * `{ seq, data }` and 55 ns for `[op, id, node, id, ms, { seq, data }]`,
 * against 400 to 500 ns to encode them (bench/codec.ts). A value nested
 * deeper than {@link MAX_CODEC_DEPTH} levels is encoded once too (and the
 * bytes dropped): how deep cbor-x can go depends on its stack, so only it
 * can say whether it will refuse such a value.
 *
 * @param onHandle if given, called once for each {@link PortableHandle} in
 *   the value, in the order encodeValue would write them, after the whole
 *   value has passed (never for a refused value).
 * @throws {EncodeError} for a value the codec cannot carry.
 */
export function checkEncodable(value: unknown, onHandle?: (handle: PortableHandle) => void): void {
  const handles = onHandle === undefined ? undefined : [];
  deep = false;
  try {
    check(value, handles, 1);
  } catch (err) {
    throw locate(value, err);
  }
  // Rare and never decodable anyway: the encoder's own stack decides.
  if (deep) encodeValue(value);
  if (handles !== undefined) for (const handle of handles) onHandle!(handle);
}

// ---------------------------------------------------------------------------
// Explaining a failure
// ---------------------------------------------------------------------------

/** One container on the path from the top-level value to the one examined. */
interface Frame {
  readonly container: object;
  /** Advances to the next child (setting `segment` before reading it); false at the end. */
  readonly children: Iterator<void>;
  /** How the path goes from `container` to `child`. */
  segment: string;
  child: unknown;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function propertySegment(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function mapValueSegment(key: unknown, index: number): string {
  switch (typeof key) {
    case 'string':
      return `.get(${JSON.stringify(key)})`;
    case 'number':
    case 'boolean':
    case 'undefined':
      return `.get(${String(key)})`;
    case 'bigint':
      return `.get(${key}n)`;
    default:
      return key === null ? '.get(null)' : `.values()[${index}]`;
  }
}

function* properties(frame: Frame, o: Record<string, unknown>): Generator<void> {
  for (const key in o) {
    // eslint-disable-next-line no-prototype-builtins -- the very call cbor-x makes
    if (typeof o.hasOwnProperty !== 'function' || o.hasOwnProperty(key)) {
      frame.segment = propertySegment(key);
      frame.child = o[key];
      yield;
    }
  }
}

function* entries(frame: Frame, entries: Iterable<readonly [unknown, unknown]>): Generator<void> {
  let index = 0;
  for (const [k, v] of entries) {
    frame.segment = `.keys()[${index}]`;
    frame.child = k;
    yield;
    frame.segment = mapValueSegment(k, index);
    frame.child = v;
    yield;
    index++;
  }
}

function* members(frame: Frame, items: Iterable<unknown>): Generator<void> {
  let index = 0;
  frame.segment = '[0]';
  for (const item of items) {
    frame.segment = `[${index++}]`;
    frame.child = item;
    yield;
  }
}

function* elements(frame: Frame, items: unknown[]): Generator<void> {
  const length = items.length;
  for (let i = 0; i < length; i++) {
    frame.segment = `[${i}]`;
    frame.child = items[i];
    yield;
  }
}

/** Why a value is refused; `cause` is what user code threw, if that is why. */
interface Offence {
  readonly reason: string;
  readonly cause?: unknown;
  readonly hasCause: boolean;
}

function offence(reason: string): Offence {
  return { reason, hasCause: false };
}

function threw(what: string, err: unknown): Offence {
  return { reason: `${what} threw: ${describe(err)}`, cause: err, hasCause: true };
}

/** What walking into `value` means: its children as encoding visits them, a refusal, or nothing (a leaf). */
type Opening = ((frame: Frame) => Iterator<void>) | Offence | undefined;

function open(value: object): Opening {
  const c: unknown = value.constructor;
  if (c === Object) return (f) => properties(f, value as Record<string, unknown>);
  if (c === Array) return (f) => elements(f, value as unknown[]);
  if (c === Map) return (f) => entries(f, value as Map<unknown, unknown>);
  switch (classify(value)) {
    case C_LEAF:
    case C_COPY_DATE:
    case C_COPY_TYPED:
      return undefined;
    case C_PLAIN:
      return (f) => properties(f, value as Record<string, unknown>);
    case C_SET:
    case C_COPY_SET: {
      const items = Array.from(value as Set<unknown>);
      return (f) => members(f, items);
    }
    case C_ITERATED:
      return (f) => members(f, value as unknown[]);
    case C_COPY_MAP: {
      const copy = new Map(value as Map<unknown, unknown>);
      return (f) => entries(f, copy);
    }
    case C_COPY_PLAIN: {
      const copy = Object.fromEntries(Object.entries(value)) as Record<string, unknown>;
      return (f) => properties(f, copy);
    }
    case C_HANDLE: {
      let ref: unknown;
      try {
        ref = (value as PortableHandle).toHandleRef();
      } catch (err) {
        return threw('its toHandleRef()', err);
      }
      return isValidRef(ref)
        ? undefined
        : offence(
            'an invalid handle ref: kind must be a string, node and id non-negative safe integers, name a string',
          );
    }
    default:
      return offence(refusal(value));
  }
}

function unsupported(what: string, hint?: string): string {
  return `${what} is not a supported payload type${hint === undefined ? '' : ` (${hint})`}`;
}

function constructorName(value: object): string | undefined {
  try {
    const C: unknown = (getPrototypeOf(value) as { constructor?: unknown } | null)?.constructor;
    const name: unknown = typeof C === 'function' ? C.name : undefined;
    return typeof name === 'string' && name !== '' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** Why the rule refuses `value`, an object classify() refused, with what to send instead. */
function refusal(value: object): string {
  const name = constructorName(value);
  // "a Promise", or "a Promise (MyPromise)" for a subclass.
  const named = (article: string, noun: string): string =>
    `${article} ${noun}${name === undefined || name === noun ? '' : ` (${name})`}`;
  if (types.isBoxedPrimitive(value)) {
    const primitive = typeof (value as { valueOf(): unknown }).valueOf();
    return unsupported(`a boxed ${primitive}`, 'send the primitive: value.valueOf()');
  }
  if (types.isPromise(value)) return unsupported(named('a', 'Promise'), 'await it first');
  if (types.isNativeError(value) || value instanceof Error) {
    return unsupported(named('an', 'Error'), 'send its name, message and code as plain fields');
  }
  if (types.isRegExp(value)) return unsupported(named('a', 'RegExp'), 'send its source and flags');
  if (value instanceof Tag)
    return unsupported('a cbor-x Tag', 'arbitrary CBOR tags are not carried');
  if (types.isArrayBuffer(value)) {
    return unsupported(
      'an ArrayBuffer',
      'send a Buffer or a Uint8Array over it: new Uint8Array(buffer)',
    );
  }
  if (types.isSharedArrayBuffer(value)) {
    return unsupported(
      'a SharedArrayBuffer',
      'send a copy of its bytes: Buffer.from(new Uint8Array(buffer))',
    );
  }
  if (types.isDataView(value)) {
    return unsupported(
      'a DataView',
      'send the bytes it views: new Uint8Array(view.buffer, view.byteOffset, view.byteLength)',
    );
  }
  const typed = typedArrayName(value);
  if (typed !== undefined) {
    if (!TYPED_ARRAYS.has(typed)) return unsupported(`a ${typed}`);
    return unsupported(named('a subclass of', typed), `send a plain ${typed}: new ${typed}(value)`);
  }
  if (types.isMap(value))
    return unsupported(named('a subclass of', 'Map'), 'send a plain Map: new Map(value)');
  if (types.isSet(value))
    return unsupported(named('a subclass of', 'Set'), 'send a plain Set: new Set(value)');
  if (types.isDate(value)) {
    return unsupported(
      named('a subclass of', 'Date'),
      'send a plain Date: new Date(value.getTime())',
    );
  }
  if (Array.isArray(value)) {
    return unsupported(named('a subclass of', 'Array'), 'send a plain array: Array.from(value)');
  }
  if (types.isWeakMap(value) || types.isWeakSet(value)) {
    return unsupported(
      named('a', types.isWeakMap(value) ? 'WeakMap' : 'WeakSet'),
      'its entries cannot be listed',
    );
  }
  if (value instanceof WeakRef) return unsupported('a WeakRef', 'send what deref() returns');
  if (value instanceof URL) return unsupported(named('a', 'URL'), 'send url.href');
  if (value instanceof URLSearchParams) {
    return unsupported(named('a', 'URLSearchParams'), 'send params.toString()');
  }
  if (value instanceof Blob) {
    return unsupported(named('a', 'Blob'), 'send its bytes: Buffer.from(await blob.arrayBuffer())');
  }
  const v = value as Record<symbol, unknown>;
  if (v[Symbol.iterator]) {
    const what = types.isGeneratorObject(value) ? 'a generator' : named('an', 'iterable');
    return unsupported(what, 'send an array: Array.from(value)');
  }
  if (v[Symbol.asyncIterator]) {
    const what = types.isGeneratorObject(value) ? 'an async generator' : 'an async iterable';
    return unsupported(what, 'collect it into an array first');
  }
  if (name !== undefined && name !== 'Object') {
    return unsupported(
      `a class instance (${name})`,
      'it would arrive without its prototype: spread it into a plain object, { ...value }',
    );
  }
  return unsupported(
    'an object with a custom prototype',
    'it would arrive without its prototype: spread it into a plain object, { ...value }',
  );
}

/** The path of the value examined: the segments of every open frame. */
function pathOf(frames: readonly Frame[], upTo = frames.length): string {
  let path = '';
  for (let i = 0; i < upTo; i++) path += frames[i]!.segment;
  return path;
}

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

/**
 * The EncodeError for a value whose encoding (or check) failed with
 * `failure`: walks the value again, as encoding does but without recursion,
 * and names the first offending place. Containers on the current path are
 * tracked to spot a cycle where it closes; containers already walked are not
 * walked again, so shared references cost nothing more.
 */
function locate(root: unknown, failure: unknown): EncodeError {
  try {
    return search(root, failure);
  } catch (err) {
    // Only if the walk itself fails (no stack left, a value that changes
    // under inspection): report what encoding said.
    return new EncodeError('', describe(failure), { cause: err });
  }
}

function search(root: unknown, failure: unknown): EncodeError {
  const frames: Frame[] = [];
  const onPath = new Set<object>();
  const walked = new Set<object>();
  let deepest = 0;
  let value = root;
  const fail = (problem: Offence): EncodeError =>
    new EncodeError(
      pathOf(frames),
      problem.reason,
      problem.hasCause ? { cause: problem.cause } : undefined,
    );
  for (;;) {
    // Examine `value`, the child of the innermost frame (or the root).
    if (typeof value === 'function') return fail(offence(unsupported('a function')));
    if (typeof value === 'symbol') return fail(offence(unsupported('a symbol')));
    if (typeof value === 'object' && value !== null && !walked.has(value)) {
      if (onPath.has(value)) {
        const at = frames.findIndex((f) => f.container === value);
        const target = at === 0 ? 'the top-level value' : `the value at ${pathOf(frames, at)}`;
        return fail(offence(`a cycle: it refers back to ${target}`));
      }
      let opening: Opening;
      try {
        opening = open(value);
      } catch (err) {
        return fail(threw('reading it', err));
      }
      if (typeof opening === 'function') {
        const frame = { container: value, segment: '', child: undefined } as Frame & {
          children: Iterator<void>;
        };
        frame.children = opening(frame);
        frames.push(frame);
        onPath.add(value);
        if (frames.length > deepest) deepest = frames.length;
      } else if (opening !== undefined) {
        return fail(opening);
      }
    }
    // Move to the next child, closing the frames that have none left.
    for (;;) {
      const frame = frames[frames.length - 1];
      if (frame === undefined) return unexplained(failure, deepest);
      let done: boolean | undefined;
      try {
        done = frame.children.next().done;
      } catch (err) {
        return fail(threw('reading it', err));
      }
      if (!done) {
        value = frame.child;
        break;
      }
      frames.pop();
      onPath.delete(frame.container);
      walked.add(frame.container);
    }
  }
}

/** The error when the walk finds nothing to blame: depth, or what cbor-x said. */
function unexplained(failure: unknown, deepest: number): EncodeError {
  if (isStackOverflow(failure)) {
    return new EncodeError(
      '',
      `nested too deeply to encode: ${deepest} levels overflow the stack (a receiver accepts at most ${MAX_CODEC_DEPTH})`,
    );
  }
  if (failure === REFUSED) {
    return new EncodeError('', 'refused, but the value changed while it was inspected again');
  }
  return new EncodeError('', describe(failure), { cause: failure });
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/**
 * Encodes `value` as one CBOR item, or refuses it: see the module comment
 * for what is carried, and {@link checkEncodable} for the same rule without
 * the bytes.
 *
 * The result stays valid and unchanged after later calls, so callers may keep
 * it (resend logs). cbor-x returns a view into a scratch buffer ("slab") that
 * it shares across encodes, but it only ever appends to that slab and moves
 * to a new one when it runs short; it never rewrites bytes it has returned,
 * so small results are returned without a copy. The one cost of a view is
 * that it keeps its slab alive, and cbor-x grows the slab to ~4x the largest
 * message and keeps that size: when a result sits in a slab larger than
 * 64 KiB, it is copied into an exact-size buffer and cbor-x gets a fresh
 * 8 KiB slab. So a returned buffer never pins more than max(64 KiB, its own
 * length), and bounded logs stay bounded in real memory.
 *
 * @param onHandle if given, called once for each {@link PortableHandle}
 *   written, in order, after the whole value is encoded (never for a refused
 *   value); what it throws propagates as is.
 * @throws {EncodeError} for a value the codec cannot carry: `path` says
 *   where it sits; `cause` is the error thrown by user code (a getter,
 *   `toHandleRef()`), when that is why.
 */
export function encodeValue(value: unknown, onHandle?: (handle: PortableHandle) => void): Buffer {
  let out: Buffer;
  let handles: PortableHandle[] | undefined;
  if (onHandle === undefined) {
    try {
      out = encoder.encode(value);
    } catch (err) {
      throw locate(value, err);
    }
  } else {
    handles = [];
    const saved = handleSink;
    handleSink = handles;
    try {
      out = encoder.encode(value);
    } catch (err) {
      throw locate(value, err);
    } finally {
      handleSink = saved;
    }
  }
  if (out.buffer.byteLength > MAX_SHARED_SLAB) {
    const copy = Buffer.allocUnsafeSlow(out.length);
    out.copy(copy);
    slabEncoder.useBuffer(Buffer.allocUnsafeSlow(SLAB_SIZE));
    out = copy;
  }
  if (handles !== undefined) for (const handle of handles) onHandle!(handle);
  return out;
}

// ---------------------------------------------------------------------------
// The pre-scan
// ---------------------------------------------------------------------------

// Per-level state of the scan, kept in flat typed arrays (grown on demand)
// instead of recursion. The scan runs to completion before cbor-x or any
// callback runs, so one module-level stack is never used re-entrantly.
let stackRemaining = new Int32Array(DEFAULT_CODEC_LIMITS.maxDepth);
let stackFlags = new Uint8Array(DEFAULT_CODEC_LIMITS.maxDepth);

// Flags of the container being scanned.
const F_MAP = 1;
/** In a map: the next item is a value (else a key). Must be F_MAP << 1. */
const F_VALUE_NEXT = 2;
const F_INDEFINITE = 4;
/**
 * Starting count of an indefinite container: it is decremented per item
 * like any other count but can never reach zero (each item takes a byte and
 * a payload has at most 2^31 - 1 bytes), so only its break code ends it.
 */
const INDEFINITE = 0x7fffffff;

// What the scan does with each initial byte, looked up in a 256-entry table:
// one indexed load and one dense switch instead of a chain of tests on the
// major type and additional information. K_SKIPn are the byte counts
// themselves, so skipping is `pos += kind`.
const K_INVALID = 0;
const K_SKIP1 = 1; // integer with a 1-byte argument
const K_SKIP2 = 2; // integer with a 2-byte argument, float16
const K_SKIP4 = 4; // integer with a 4-byte argument, float32
const K_SKIP8 = 8; // integer with an 8-byte argument, float64
const K_ITEM = 9; // integer below 24, false, true, null, undefined
const K_STRING = 10; // definite byte or text string
const K_ARRAY = 11;
const K_MAP = 12;
const K_ARRAY_INDEFINITE = 13;
const K_MAP_INDEFINITE = 14;
const K_TAG = 15;
const K_BREAK = 16;

/** Action per initial byte. */
const KIND = new Uint8Array(256);
/** Bytes of the argument that follow each initial byte (0 to 8). */
const ARG_BYTES = new Uint8Array(256);
for (let initial = 0; initial < 256; initial++) {
  const major = initial >> 5;
  const info = initial & 0x1f;
  // Additional information 24-27: a 1, 2, 4 or 8-byte argument follows;
  // 28-30 are reserved; 31 is indefinite length (or break in major 7).
  const size = info < 24 ? 0 : info < 28 ? 1 << (info - 24) : -1;
  ARG_BYTES[initial] = Math.max(size, 0);
  let kind = K_INVALID;
  if (size >= 0) {
    if (major <= 1) kind = size === 0 ? K_ITEM : size;
    else if (major <= 3) kind = K_STRING;
    else if (major === 4) kind = K_ARRAY;
    else if (major === 5) kind = K_MAP;
    else if (major === 6) kind = K_TAG;
    // Major 7: false, true, null, undefined (20-23) and floats (25-27).
    // Other simple values mean nothing here and cbor-x refuses them.
    else if (info >= 20 && info <= 23) kind = K_ITEM;
    else if (info >= 25) kind = size;
  } else if (info === 31) {
    // Indefinite-length strings are refused: cbor-x neither writes nor reads them.
    if (major === 4) kind = K_ARRAY_INDEFINITE;
    else if (major === 5) kind = K_MAP_INDEFINITE;
    else if (major === 7) kind = K_BREAK;
  }
  KIND[initial] = kind;
}
const INVALID_REASON = [
  'reserved integer encoding',
  'reserved integer encoding',
  'indefinite-length or reserved byte string header',
  'indefinite-length or reserved text string header',
  'reserved array header',
  'reserved map header',
  'malformed tag',
  'unsupported simple value',
];

// What may follow an allowed tag: a bit per major type. Major 6 is in no
// mask, so a tag never wraps another tag.
const M_UINT = 1 << 0;
const M_NINT = 1 << 1;
const M_BYTES = 1 << 2;
const M_ARRAY = 1 << 4;
const M_MAP = 1 << 5;
const M_FLOAT = 1 << 7; // checked further: floats only, not simple values
/**
 * Tag 1 (Date) holds epoch seconds: cbor-x writes a 32-bit integer or a
 * float64. Its content is checked further: no simple values, and no 8-byte
 * integers (cbor-x would decode them as bigints, which Date cannot take).
 */
const RULE_DATE = M_UINT | M_NINT | M_FLOAT;

/**
 * Allowed tags: `(element size << 8) | mask of allowed content majors`, or 0
 * for a tag that is refused. Exactly the tags cbor-x writes for the
 * supported types (checked by encoding each one):
 * - 1: Date, epoch seconds as an integer of up to 32 bits or a float;
 * - 2, 3: bigints beyond 64 bits, a byte string;
 * - 64-86: RFC 8746 typed arrays, a byte string whose length is a multiple
 *   of the element size. cbor-x writes the little-endian tags (64, 68-72,
 *   77-79, 85, 86) on little-endian hosts and the big-endian ones (65-67,
 *   73-75, 81, 82) on big-endian hosts; both are accepted so mixed clusters
 *   interoperate. 76, 80, 83, 84 and 87 are never written and are refused;
 * - 258: Set, an array; 259: Map, a map;
 * - HANDLE_TAG: a handle, an array.
 * Everything else is refused, notably 0 (date strings: never written), 27
 * (cbor-x calls a global constructor named by the payload), 28/29 (shared
 * references), 6, 51 and 216-255 (packed values), 105 and 0xdff9 and up
 * (records, bundled strings), 55799 (self-described CBOR: never written; it
 * only wraps another item).
 */
function tagRule(tag: number): number {
  switch (tag) {
    case 1:
      return RULE_DATE;
    case 2:
    case 3:
    case 64:
    case 68:
    case 72:
      return (1 << 8) | M_BYTES;
    case 65:
    case 69:
    case 73:
    case 77:
      return (2 << 8) | M_BYTES;
    case 66:
    case 70:
    case 74:
    case 78:
    case 81:
    case 85:
      return (4 << 8) | M_BYTES;
    case 67:
    case 71:
    case 75:
    case 79:
    case 82:
    case 86:
      return (8 << 8) | M_BYTES;
    case 258:
    case HANDLE_TAG:
      return M_ARRAY;
    case 259:
      return M_MAP;
    default:
      return 0;
  }
}

function readUint32(bytes: Uint8Array, pos: number): number {
  return (
    bytes[pos]! * 0x1000000 + ((bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!)
  );
}

/**
 * The argument of the item whose initial byte is `initial`, read from `pos`
 * (the caller has checked that ARG_BYTES[initial] bytes remain). 8-byte
 * arguments above 2^53 lose precision, which is harmless: they are only
 * compared with sizes or looked up as tag numbers that are all small.
 */
function readArgument(bytes: Uint8Array, pos: number, initial: number): number {
  const info = initial & 0x1f;
  if (info < 24) return info;
  if (info === 24) return bytes[pos]!;
  if (info === 25) return (bytes[pos]! << 8) | bytes[pos + 1]!;
  if (info === 26) return readUint32(bytes, pos);
  return readUint32(bytes, pos) * 0x100000000 + readUint32(bytes, pos + 4);
}

/** True if the 9 bytes at `pos` spell `__proto__`. */
function isProtoKey(bytes: Uint8Array, pos: number): boolean {
  return (
    bytes[pos] === 0x5f &&
    bytes[pos + 1] === 0x5f &&
    bytes[pos + 2] === 0x70 &&
    bytes[pos + 3] === 0x72 &&
    bytes[pos + 4] === 0x6f &&
    bytes[pos + 5] === 0x74 &&
    bytes[pos + 6] === 0x6f &&
    bytes[pos + 7] === 0x5f &&
    bytes[pos + 8] === 0x5f
  );
}

// Errors are built out of line to keep the scan loop small.
function invalid(what: string, pos: number): DecodeError {
  return new DecodeError(`${what} at byte ${pos}`);
}
function truncated(pos: number): DecodeError {
  return new DecodeError(`truncated CBOR: input ends at byte ${pos} inside an item`);
}
function tooLong(declared: number, left: number, pos: number): DecodeError {
  return new DecodeError(
    `declared length ${declared} at byte ${pos} exceeds the ${left} remaining bytes`,
  );
}

function validateLimits(limits: CodecLimits): void {
  const { maxDepth, maxMessageSize } = limits;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_CODEC_DEPTH) {
    throw new OptionError(
      'maxDepth',
      `must be an integer from 0 to ${MAX_CODEC_DEPTH}, got ${String(maxDepth)}`,
    );
  }
  if (
    !Number.isInteger(maxMessageSize) ||
    maxMessageSize < 1 ||
    maxMessageSize > MAX_MESSAGE_SIZE_LIMIT
  ) {
    throw new OptionError(
      'maxMessageSize',
      `must be an integer from 1 to ${MAX_MESSAGE_SIZE_LIMIT} bytes, got ${String(maxMessageSize)}`,
    );
  }
}

/**
 * Checks that `bytes` is exactly one well-formed CBOR item that
 * {@link decodeValue} may hand to cbor-x. The walk is iterative (no
 * recursion, no allocation proportional to the input) and skips string
 * contents by their length, so it costs a small fraction of decoding.
 *
 * Refused, each with a `DecodeError` naming the byte offset:
 * - input longer than `maxMessageSize`, empty, or not a `Uint8Array`;
 * - arrays and maps nested deeper than `maxDepth` (an empty container
 *   counts too);
 * - any declared length (array, map, byte or text string) larger than the
 *   remaining bytes could hold (an array item needs at least one byte, a map
 *   entry two), so a header claiming 2^32 or 2^64-1 items is refused before
 *   anything is allocated;
 * - indefinite-length byte and text strings (cbor-x never writes them and
 *   cannot decode them); indefinite-length arrays and maps are accepted
 *   (cbor-x writes them for arrays of another realm) and their break
 *   codes are checked, including a map that breaks after a key;
 * - a map key that is the text string `"__proto__"` (however its length is
 *   encoded), in any map: also inside a `Map`, where it would be harmless,
 *   because one rule is simpler to trust. Only the exact ASCII bytes can
 *   decode to that string: the UTF-8 decoders in use turn overlong forms
 *   into U+FFFD. `"constructor"` and `"prototype"` are accepted: assigning
 *   them on a fresh plain object creates own data properties and touches no
 *   prototype, and they are legitimate field names; only code that merges
 *   payloads into other objects could misuse them, and that code needs its
 *   own guard whatever the transport;
 * - tags outside the allow-list (1, 2, 3, RFC 8746 typed arrays, 258, 259,
 *   {@link HANDLE_TAG}), a tag whose content has the wrong type, a tag on a
 *   tag, a typed array whose length is not a multiple of its element size;
 * - simple values other than false, true, null and undefined, reserved
 *   additional-information values, a break outside an indefinite item;
 * - input that ends inside an item, or bytes after the top-level item.
 *
 * @param limits defaults to {@link DEFAULT_CODEC_LIMITS}.
 * @throws {DecodeError} when the input is refused.
 * @throws {OptionError} when `limits` is out of range.
 */
export function checkCbor(bytes: Uint8Array, limits: CodecLimits = DEFAULT_CODEC_LIMITS): void {
  if (limits !== DEFAULT_CODEC_LIMITS) validateLimits(limits);
  if (!(bytes instanceof Uint8Array)) {
    throw new DecodeError('CBOR input must be a Uint8Array or Buffer');
  }
  scan(bytes, limits.maxDepth, limits.maxMessageSize);
}

function scan(bytes: Uint8Array, maxDepth: number, maxMessageSize: number): void {
  const end = bytes.length;
  if (end > maxMessageSize) {
    throw new DecodeError(`CBOR payload of ${end} bytes exceeds maxMessageSize ${maxMessageSize}`);
  }
  if (stackFlags.length < maxDepth) {
    stackRemaining = new Int32Array(maxDepth);
    stackFlags = new Uint8Array(maxDepth);
  }
  const remainingStack = stackRemaining;
  const flagStack = stackFlags;

  let pos = 0;
  let depth = 0; // open containers
  let remaining = 1; // items still due in the current container; the top level holds one
  let flags = 0;
  let tagged = 0; // the rule of the tag that precedes the next item, or 0

  for (;;) {
    if (remaining === 0) {
      if (depth === 0) break;
      depth--;
      remaining = remainingStack[depth]!;
      flags = flagStack[depth]!;
      continue;
    }
    if (pos >= end) throw truncated(pos);
    const initial = bytes[pos++]!;
    const kind = KIND[initial]!;

    if (kind === K_TAG) {
      const size = ARG_BYTES[initial]!;
      if (pos + size > end) throw truncated(pos);
      if (tagged !== 0) throw invalid('tag on a tag', pos - 1);
      const tag = readArgument(bytes, pos, initial);
      tagged = tagRule(tag);
      if (tagged === 0) throw invalid(`unknown tag ${tag}`, pos - 1);
      pos += size;
      continue; // the tag and its content count as one item
    }
    if (kind === K_BREAK) {
      if ((flags & F_INDEFINITE) === 0 || tagged !== 0) {
        throw invalid('unexpected break code', pos - 1);
      }
      if ((flags & F_VALUE_NEXT) !== 0) throw invalid('map key without a value', pos - 1);
      remaining = 0;
      continue;
    }

    // One item of the current container; in a map, keys and values alternate.
    remaining--;
    flags ^= (flags & F_MAP) << 1;
    const rule = tagged;
    if (rule !== 0) {
      tagged = 0;
      if (
        (rule & (1 << (initial >> 5))) === 0 ||
        (rule === RULE_DATE &&
          (initial === 0x1b || initial === 0x3b || (initial >= 0xe0 && initial < 0xf9)))
      ) {
        throw invalid('tagged item of the wrong type', pos - 1);
      }
    }

    switch (kind) {
      case K_ITEM:
        break;
      case K_SKIP1:
      case K_SKIP2:
      case K_SKIP4:
      case K_SKIP8:
        pos += kind;
        if (pos > end) throw truncated(end);
        break;
      case K_STRING: {
        let length = initial & 0x1f;
        if (length > 23) {
          const size = ARG_BYTES[initial]!;
          if (pos + size > end) throw truncated(pos);
          length = readArgument(bytes, pos, initial);
          pos += size;
        }
        if (length > end - pos) throw tooLong(length, end - pos, pos);
        if (rule > 0x1ff && length % (rule >> 8) !== 0) {
          throw invalid(`typed array of ${length} bytes is not whole elements`, pos);
        }
        // After the toggle above, F_VALUE_NEXT set means this item is a map key.
        if (
          length === 9 &&
          initial >= 0x60 &&
          (flags & F_VALUE_NEXT) !== 0 &&
          isProtoKey(bytes, pos)
        ) {
          throw invalid('forbidden map key "__proto__"', pos);
        }
        pos += length;
        break;
      }
      case K_ARRAY:
      case K_MAP: {
        let count = initial & 0x1f;
        if (count > 23) {
          const size = ARG_BYTES[initial]!;
          if (pos + size > end) throw truncated(pos);
          count = readArgument(bytes, pos, initial);
          pos += size;
        }
        const items = kind === K_MAP ? count * 2 : count;
        if (items > end - pos) throw tooLong(count, end - pos, pos);
        if (depth >= maxDepth) throw invalid(`nesting deeper than maxDepth ${maxDepth}`, pos);
        if (items === 0) break; // nothing to wait for: no level to open
        remainingStack[depth] = remaining;
        flagStack[depth] = flags;
        depth++;
        remaining = items;
        flags = kind === K_MAP ? F_MAP : 0;
        break;
      }
      case K_ARRAY_INDEFINITE:
      case K_MAP_INDEFINITE:
        if (depth >= maxDepth) throw invalid(`nesting deeper than maxDepth ${maxDepth}`, pos);
        remainingStack[depth] = remaining;
        flagStack[depth] = flags;
        depth++;
        remaining = INDEFINITE;
        flags = kind === K_MAP_INDEFINITE ? F_MAP | F_INDEFINITE : F_INDEFINITE;
        break;
      default:
        throw invalid(INVALID_REASON[initial >> 5]!, pos - 1);
    }
  }
  if (pos !== end) {
    throw new DecodeError(`${end - pos} trailing bytes after the CBOR item at byte ${pos}`);
  }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/**
 * Decodes one CBOR item produced by {@link encodeValue} (or by a compatible
 * peer), after {@link checkCbor} has accepted it.
 *
 * Byte strings arrive as `Buffer`s (also when `bytes` is a plain
 * `Uint8Array`). They, and typed arrays at aligned offsets, are zero-copy
 * views into `bytes`: do not reuse `bytes` for other data while the value
 * is in use. Maps arrive as plain objects (`Map`s only when sent as `Map`s);
 * their number, boolean, null and bigint keys become strings, other key
 * types are refused. Handles are passed to `ctx.reviveHandle`; without a
 * `ctx` they arrive as frozen {@link HandleRef}s. `Object.prototype` is
 * never touched.
 *
 * @param ctx revives handles; see {@link CodecContext}.
 * @param limits defaults to {@link DEFAULT_CODEC_LIMITS}.
 * @throws {DecodeError} for anything refused by {@link checkCbor}, a
 *   malformed handle, a failing `reviveHandle`, or any error from cbor-x
 *   (kept as `cause`). The failure concerns this payload only: the codec
 *   keeps working for the next one.
 * @throws {OptionError} when `limits` is out of range.
 */
export function decodeValue(
  bytes: Uint8Array,
  ctx?: CodecContext,
  limits: CodecLimits = DEFAULT_CODEC_LIMITS,
): unknown {
  if (limits !== DEFAULT_CODEC_LIMITS) validateLimits(limits);
  let source: Buffer;
  if (Buffer.isBuffer(bytes)) {
    source = bytes;
  } else if (bytes instanceof Uint8Array) {
    // cbor-x returns byte strings as subarrays of its input: a Buffer input
    // makes them Buffers, as they were on the sending side.
    source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } else {
    throw new DecodeError('CBOR input must be a Uint8Array or Buffer');
  }
  scan(source, limits.maxDepth, limits.maxMessageSize);
  const savedContext = currentContext;
  currentContext = ctx;
  try {
    return decoder.decode(source) as unknown;
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(`invalid CBOR: ${describe(err)}`, { cause: err });
  } finally {
    currentContext = savedContext;
  }
}
