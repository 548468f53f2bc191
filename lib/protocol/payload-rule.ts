/**
 * The payload rule: what a value given to the codec may hold, how an object
 * that cbor-x sends to its extension list is classified, the gate that
 * claims the objects cbor-x would not write faithfully (codec.ts registers
 * it on the encoder), and the walk of checkEncodable. It encodes nothing,
 * and explains nothing: refusal.ts finds where and why a value was refused.
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

import { MAX_CODEC_DEPTH, PortableHandle, isIndex } from './codec-types.js';
import type { HandleRef } from './codec-types.js';

// ---------------------------------------------------------------------------
// The payload rule (docs/guide.md, "What a message can carry")
//
// cbor-x writes an object whose `constructor` is Object, Array or Map
// directly. Every other object goes through its extension list, tested with
// `instanceof` in order, and addExtension puts a new extension first. So the
// gate defined here, which codec.ts registers, is asked (right after the
// handle extension) about every object that is not plain, and about no plain
// one: its Symbol.hasInstance claims exactly the objects that cbor-x would
// not write faithfully, and its encode writes a faithful copy (of a built-in
// from another realm, say) or refuses. The hot path pays one call per
// non-plain object and keeps no path: when encoding fails, locate()
// (refusal.ts) walks the value again to say where and why.
//
// checkEncodable() (codec.ts, through checkRule() here) applies the same
// rule by walking the value the way cbor-x does (same dispatch on
// `constructor`, same key loop, same classify()), so the two agree on every
// value, and a failure of either is explained by the same locate().
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
export const TYPED_ARRAYS = new Map<string, TypedArrayConstructor>(
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

export function typedArrayName(value: object): string | undefined {
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
export const C_LEAF = 0;
/** A plain object that cbor-x writes key by key (null prototype, another realm, an own "constructor" key). */
export const C_PLAIN = 1;
/** A Set: cbor-x writes `Array.from(set)` under tag 258. */
export const C_SET = 2;
/** An array that cbor-x iterates (another realm's, or with an own "constructor" key). */
export const C_ITERATED = 3;
/** A PortableHandle: written by the handle extension. */
export const C_HANDLE = 4;
/** Written by the gate as a copy built in this realm, which cbor-x writes faithfully: */
export const C_COPY_PLAIN = 5; // a plain object cbor-x would iterate or refuse (a Symbol.iterator key...)
export const C_COPY_MAP = 6; // a Map cbor-x would iterate as an array (another realm's, own "constructor")
export const C_COPY_SET = 7;
export const C_COPY_DATE = 8;
export const C_COPY_TYPED = 9;
/** Not carried: refused, refusal() (refusal.ts) says why. */
const C_REFUSED = 10;

/**
 * How the rule treats an object that cbor-x sends to its extension list
 * (its `constructor` is not Object, Array or Map). The common supported
 * kinds come first: this runs once per Buffer of every message.
 */
export function classify(value: object): number {
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
export function isValidRef(ref: unknown): ref is HandleRef {
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
export const REFUSED = new Error('refused by the payload rule');

export class Gate {
  static [Symbol.hasInstance](value: unknown): boolean {
    return classify(value as object) >= C_COPY_PLAIN;
  }
}

/** The faithful copy the gate writes for an object it claims; REFUSED for the others. */
export function copyOf(value: object): unknown {
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

// ---------------------------------------------------------------------------
// check(): the rule without the bytes, the walk of checkEncodable()
// ---------------------------------------------------------------------------

/**
 * Set by check() for a value nested deeper than {@link MAX_CODEC_DEPTH}.
 * Module state, kept here with the walk that sets it: checkRule() resets it
 * before one synchronous walk and returns it after, so no other file sees it.
 */
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
 * The walk of checkEncodable() (codec.ts, which keeps the public function
 * because its fallback is the encoder). Returns if `value` passes the rule,
 * having pushed its handles to `handles` (when given) in the order encoding
 * writes them; the result is true if the value is nested deeper than
 * {@link MAX_CODEC_DEPTH}, where only the encoder can decide. Throws what
 * check() throws (REFUSED, a stack overflow, what a getter or toHandleRef()
 * threw), for locate() to explain.
 */
export function checkRule(value: unknown, handles: PortableHandle[] | undefined): boolean {
  deep = false;
  check(value, handles, 1);
  return deep;
}
