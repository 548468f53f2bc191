/**
 * The one CBOR configuration of the library (DESIGN.md sections 4, 8 and 9;
 * RELIABILITY.md items 4 and 5).
 *
 * Every payload is encoded by {@link encodeValue} and decoded by
 * {@link decodeValue}, which hands the bytes to cbor-x only after the
 * pre-scan (cbor-scan.ts) has accepted them. What a payload can carry, and
 * what it is refused with, is the payload rule (payload-rule.ts).
 *
 * This is the module the rest of the library imports. It holds the cbor-x
 * encoder and decoder, the extensions registered on them and the state
 * those synchronous calls share (the decode context, the handle sink), and
 * re-exports what the codec's other files make public:
 * - codec-types.ts: the public types and limits;
 * - payload-rule.ts: classification of values, the gate, checkEncodable's walk;
 * - cbor-scan.ts: the pre-scan of untrusted bytes and its tables.
 * They import one way: codec.ts imports the others, and all of them import
 * codec-types.ts, which imports none.
 */
import { types } from 'node:util';

import { Decoder, Encoder, Tag, addExtension } from 'cbor-x';

import { DecodeError, EncodeError } from '../errors.js';
import {
  DEFAULT_CODEC_LIMITS,
  HANDLE_TAG,
  MAX_CODEC_DEPTH,
  PortableHandle,
  describe,
  isIndex,
  validateLimits,
} from './codec-types.js';
import type { CodecContext, CodecLimits, HandleRef } from './codec-types.js';
import { checkCbor, scan } from './cbor-scan.js';
import {
  C_LEAF,
  C_PLAIN,
  C_SET,
  C_ITERATED,
  C_HANDLE,
  C_COPY_PLAIN,
  C_COPY_MAP,
  C_COPY_SET,
  C_COPY_DATE,
  C_COPY_TYPED,
  Gate,
  REFUSED,
  TYPED_ARRAYS,
  checkRule,
  classify,
  copyOf,
  isValidRef,
  typedArrayName,
} from './payload-rule.js';

// What the codec's other files make public, exported from here as before.
export { DEFAULT_CODEC_LIMITS, HANDLE_TAG, MAX_CODEC_DEPTH, PortableHandle, checkCbor };
export type { CodecContext, CodecLimits, HandleRef };

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
// another decode. It lives here, with decodeValue (which sets it) and the
// handle decoder (which reads it): no other file sees it.
let currentContext: CodecContext | undefined;

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

/**
 * Handles written by the encodeValue call in progress, when its caller asked
 * for them. It lives here, with encodeValue (which sets it around one
 * synchronous encoder.encode() call, saved and restored) and the handle
 * extension (which reads it): no other file sees it.
 */
let handleSink: PortableHandle[] | undefined;

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
//
// The walk is checkRule() (payload-rule.ts). The public function lives here
// because a value nested deeper than MAX_CODEC_DEPTH ends in the encoder,
// which payload-rule.ts cannot import: codec.ts imports it.
// ---------------------------------------------------------------------------

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
  let deep: boolean;
  try {
    deep = checkRule(value, handles);
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

const { getPrototypeOf } = Object;

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
 * of payload-rule.ts for what is carried, and {@link checkEncodable} for
 * the same rule without the bytes.
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
