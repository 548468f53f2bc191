/**
 * The one CBOR configuration of the library (docs/guide.md, "What a message
 * can carry" and section 4 on hostile payloads; docs/wire-protocol.md for
 * the bytes).
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
 * - refusal.ts: where and why a value was refused (the EncodeError);
 * - cbor-scan.ts: the pre-scan of untrusted bytes and its tables.
 * They import one way: codec.ts imports the others, refusal.ts imports
 * payload-rule.ts, and all of them import codec-types.ts, which imports none.
 */
import { Decoder, Encoder, addExtension } from 'cbor-x';

import { DecodeError } from '../errors.js';
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
import { Gate, REFUSED, checkRule, copyOf, isValidRef } from './payload-rule.js';
import { locate } from './refusal.js';
import { decodeFlat, encodeFlat, flatFallback } from './flat-cbor.js';

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

/**
 * `out` sits in a scratch buffer larger than {@link MAX_SHARED_SLAB}. A
 * result that fills at least half of it stays a view (it pins at most
 * twice its own length), and cbor-x gets a fresh buffer sized for one more
 * message like it, so that a stream of large messages is encoded straight
 * into buffers of about their size: one allocation and one copy of the
 * bytes per message, where growing an 8 KiB buffer (cbor-x grows to 4x
 * what it needs) and copying the result out cost three allocations and two
 * copies. A smaller result is copied out; the scratch buffer then starts
 * over small, or sized for the next large message when this one was large.
 */
function leaveLargeSlab(out: Buffer): Buffer {
  const n = out.length;
  let result = out;
  if (n * 2 < out.buffer.byteLength) {
    result = n < 4096 ? Buffer.allocUnsafe(n) : Buffer.allocUnsafeSlow(n);
    out.copy(result);
  }
  // Room for a message up to 1/8 larger, and cbor-x's own end margin.
  const next = n * 2 < MAX_SHARED_SLAB ? SLAB_SIZE : (n + (n >>> 3) + 4096 + 4095) & ~4095;
  slabEncoder.useBuffer(Buffer.allocUnsafeSlow(next));
  return result;
}

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
const scratchHandles: PortableHandle[] = [];

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
 * message and keeps that size: a result in a slab larger than 64 KiB stays
 * a view only when it fills at least half of it, is copied out otherwise,
 * and cbor-x gets a fresh slab either way ({@link leaveLargeSlab}). So a
 * returned buffer never pins more than max(64 KiB, twice its own length),
 * and bounded logs stay bounded in real memory.
 *
 * @param onHandle if given, called once for each {@link PortableHandle}
 *   written, in order, after the whole value is encoded (never for a refused
 *   value); what it throws propagates as is.
 * @throws {EncodeError} for a value the codec cannot carry: `path` says
 *   where it sits; `cause` is the error thrown by user code (a getter,
 *   `toHandleRef()`), when that is why.
 */
export function encodeValue(value: unknown, onHandle?: (handle: PortableHandle) => void): Buffer {
  const original = value;
  let out: Buffer | undefined;
  try {
    out = encodeFlat(value);
  } catch (err) {
    flatFallback();
    throw locate(original, err);
  }
  if (out !== undefined) return out;
  value = flatFallback();
  let handles: PortableHandle[] | undefined;
  if (onHandle === undefined) {
    try {
      out = encoder.encode(value);
    } catch (err) {
      throw locate(original, err);
    }
  } else {
    // One array reused for the outermost encoding (a toHandleRef() that
    // encodes again gets its own), emptied before its handles are reported.
    const saved = handleSink;
    handles = saved === undefined ? scratchHandles : [];
    handleSink = handles;
    try {
      out = encoder.encode(value);
    } catch (err) {
      handles.length = 0;
      throw locate(original, err);
    } finally {
      handleSink = saved;
    }
    if (handles === scratchHandles) handles = handles.length === 0 ? undefined : handles.splice(0);
  }
  if (out.buffer.byteLength > MAX_SHARED_SLAB) out = leaveLargeSlab(out);
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
  if (limits.maxDepth > 0) {
    const flat = decodeFlat(source, limits.maxMessageSize);
    if (flat !== undefined) return flat;
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
