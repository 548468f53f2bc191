/**
 * A fast path for the most common payload: one plain object whose values
 * are all small integers, ASCII strings, small `Buffer`s, booleans, null or
 * undefined (`{ seq, data }`, `{ id, op, name }`). It writes exactly the
 * bytes cbor-x writes for such an object (codec.ts's options: a map with a
 * 2-byte count, shortest heads for the rest) and reads them back to exactly
 * the value cbor-x returns, without cbor-x's general machinery: for a
 * two-field object that machinery is most of what a message costs to encode
 * and to decode (docs/benchmarks.md, "Small objects and the codec").
 *
 * Anything else returns `undefined` here and goes the general way:
 * {@link encodeFlat} and {@link decodeFlat} change no outcome, only the cost
 * (spec/protocol/flat-cbor.spec.ts compares them with cbor-x byte for byte
 * and value for value).
 */

/** At most this many fields (the 2-byte map count cbor-x writes allows more; the fast path need not). */
const MAX_FIELDS = 23;
/** Longest string or key written or read here (in bytes, ASCII only). */
const MAX_TEXT = 255;
/** Largest byte string written here: larger ones go to cbor-x, whose slab handling codec.ts tunes. */
const MAX_BYTES = 4096;
/** Scratch buffer results are cut from (never rewritten once handed out). */
const SLAB_SIZE = 16 * 1024;

let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabAt = 0;
/** Values read once from the object being encoded (a getter runs once). */
const values: unknown[] = [];

/** Bytes a text head and body of `n` ASCII characters take. */
const textSize = (n: number): number => (n < 24 ? 1 : 2) + n;

/** True when `s` is ASCII only and at most MAX_TEXT long. */
function ascii(s: string): boolean {
  const n = s.length;
  if (n > MAX_TEXT) return false;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Size of one value as cbor-x writes it, or -1 when it is not for the fast path. */
function valueSize(v: unknown): number {
  switch (typeof v) {
    case 'number': {
      if (v >>> 0 === v) return v < 24 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
      if (v >> 0 === v) {
        const m = -1 - v;
        return m < 24 ? 1 : m < 0x100 ? 2 : m < 0x10000 ? 3 : 5;
      }
      return -1;
    }
    case 'string':
      return ascii(v) ? textSize(v.length) : -1;
    case 'boolean':
    case 'undefined':
      return 1;
    case 'object': {
      if (v === null) return 1;
      if (!Buffer.isBuffer(v) || Object.getPrototypeOf(v) !== Buffer.prototype) return -1;
      const n = v.length;
      if (n > MAX_BYTES) return -1;
      return (n < 24 ? 1 : n < 0x100 ? 2 : 3) + n;
    }
    default:
      return -1;
  }
}

/** Writes a head of major type `major` (already shifted) for `n`, shortest form. */
function head(out: Buffer, at: number, major: number, n: number): number {
  if (n < 24) {
    out[at] = major | n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = major | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = major | 25;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  out[at] = major | 26;
  out.writeUInt32BE(n, at + 1);
  return at + 5;
}

function writeAscii(out: Buffer, at: number, s: string): number {
  at = head(out, at, 0x60, s.length);
  for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  return at + s.length;
}

function writeValue(out: Buffer, at: number, v: unknown): number {
  switch (typeof v) {
    case 'number':
      return v >>> 0 === v ? head(out, at, 0x00, v) : head(out, at, 0x20, -1 - v);
    case 'string':
      return writeAscii(out, at, v);
    case 'boolean':
      out[at] = v ? 0xf5 : 0xf4;
      return at + 1;
    case 'undefined':
      out[at] = 0xf7;
      return at + 1;
    default: {
      if (v === null) {
        out[at] = 0xf6;
        return at + 1;
      }
      const b = v as Buffer;
      at = head(out, at, 0x40, b.length);
      b.copy(out, at);
      return at + b.length;
    }
  }
}

/** What the general path encodes after {@link encodeFlat} returned undefined. */
let instead: unknown;

/**
 * After {@link encodeFlat} returned undefined: what the general path should
 * encode instead of its value. That is the value itself, or, once the
 * properties of a plain object were read (each once: a getter has run), a
 * shallow copy made of the values read, so that no getter runs twice.
 */
export function flatFallback(): unknown {
  const v = instead;
  instead = undefined;
  return v;
}

/**
 * The CBOR bytes of `value` when it is a plain object of the kind this
 * module handles, else undefined (then see {@link flatFallback}). The
 * bytes are a view into a scratch buffer that is never written again.
 */
export function encodeFlat(value: unknown): Buffer | undefined {
  instead = value;
  if (typeof value !== 'object' || value === null) return undefined;
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const keys = Object.keys(value);
  const n = keys.length;
  if (n > MAX_FIELDS) return undefined;
  let size = 3;
  let flat = true;
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    const v = (value as Record<string, unknown>)[k];
    values[i] = v;
    if (!flat) continue;
    const s = valueSize(v);
    if (s < 0 || !ascii(k)) flat = false;
    else size += textSize(k.length) + s;
  }
  if (!flat) {
    // Defined, not assigned: a "__proto__" key stays an own property.
    const copy: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      Object.defineProperty(copy, keys[i]!, {
        value: values[i],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    values.length = 0;
    instead = copy;
    return undefined;
  }
  if (SLAB_SIZE - slabAt < size) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabAt = 0;
  }
  const out = slab;
  const start = slabAt;
  out[start] = 0xb9;
  out[start + 1] = 0;
  out[start + 2] = n;
  let at = start + 3;
  for (let i = 0; i < n; i++) {
    at = writeAscii(out, at, keys[i]!);
    at = writeValue(out, at, values[i]);
  }
  values.length = 0;
  slabAt = at;
  instead = undefined;
  return out.subarray(start, at);
}

/** Reads a length or integer argument after an initial byte; -1 when not a form handled here. */
function readArg(b: Buffer, at: number, info: number, end: number): number {
  if (info < 24) return info;
  if (info === 24) return at < end ? b[at]! : -1;
  if (info === 25) return at + 1 < end ? (b[at]! << 8) | b[at + 1]! : -1;
  if (info === 26) return at + 3 < end ? b.readUInt32BE(at) : -1;
  return -1;
}

const argSize = (info: number): number => (info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : 4);

/** Buffer's own latin1 reader (what `toString('latin1')` calls), missing from its typings. */
interface LatinSlicing {
  latin1Slice(start: number, end: number): string;
}

/** An ASCII string of `n` bytes at `at`, or undefined when a byte is not ASCII. */
function readAscii(b: Buffer, at: number, n: number): string | undefined {
  for (let i = 0; i < n; i++) if (b[at + i]! > 0x7f) return undefined;
  return (b as unknown as LatinSlicing).latin1Slice(at, at + n);
}

/** Keys up to this many bytes are looked up in the key cache. */
const KEY_CACHE_MAX = 16;
const KEY_SLOTS = 256;
const keyBytes: Array<Buffer | undefined> = new Array<Buffer | undefined>(KEY_SLOTS).fill(
  undefined,
);
const keyStrings: string[] = new Array<string>(KEY_SLOTS).fill('');

/**
 * The key of `n` ASCII bytes at `at`: the same field names come in every
 * message, so a small direct-mapped cache saves making the string again.
 */
function cachedKey(b: Buffer, at: number, n: number): string | undefined {
  let h = n;
  for (let i = 0; i < n; i++) h = (h * 31 + b[at + i]!) | 0;
  const slot = h & (KEY_SLOTS - 1);
  const known = keyBytes[slot];
  if (known !== undefined && known.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (known[i] !== b[at + i]) {
        same = false;
        break;
      }
    }
    if (same) return keyStrings[slot];
  }
  const key = readAscii(b, at, n);
  if (key === undefined) return undefined;
  keyBytes[slot] = Buffer.from(b.subarray(at, at + n));
  keyStrings[slot] = key;
  return key;
}

/**
 * The value of `b` when it is exactly one CBOR map of the kind
 * {@link encodeFlat} writes (any length heads up to 4 bytes, float64
 * values too) and at most `maxBytes` long, else undefined. What it returns
 * is what cbor-x returns for those bytes: a plain object, byte strings as
 * `Buffer` views into `b`. A `__proto__` key, non-ASCII text and anything
 * else leave it to the general path, which checks and refuses as it does.
 */
export function decodeFlat(b: Buffer, maxBytes: number): Record<string, unknown> | undefined {
  const end = b.length;
  if (end > maxBytes || end === 0) return undefined;
  const initial = b[0]!;
  if (initial >>> 5 !== 5) return undefined;
  const countInfo = initial & 0x1f;
  const count = readArg(b, 1, countInfo, end);
  if (count < 0 || count > MAX_FIELDS) return undefined;
  let at = 1 + argSize(countInfo);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    if (at >= end) return undefined;
    const kb = b[at++]!;
    if (kb >>> 5 !== 3) return undefined;
    const klen = readArg(b, at, kb & 0x1f, end);
    if (klen < 0 || klen > MAX_TEXT) return undefined;
    at += argSize(kb & 0x1f);
    if (at + klen > end) return undefined;
    // "__proto__": the general path refuses it.
    if (klen === 9 && b[at] === 0x5f && b[at + 1] === 0x5f) return undefined;
    const key = klen <= KEY_CACHE_MAX ? cachedKey(b, at, klen) : readAscii(b, at, klen);
    if (key === undefined) return undefined;
    at += klen;
    if (at >= end) return undefined;
    const vb = b[at++]!;
    const major = vb >>> 5;
    const info = vb & 0x1f;
    let v: unknown;
    if (major === 0 || major === 1 || major === 2 || major === 3) {
      const arg = readArg(b, at, info, end);
      if (arg < 0) return undefined;
      at += argSize(info);
      if (major === 0) v = arg;
      else if (major === 1) v = -1 - arg;
      else {
        if (at + arg > end) return undefined;
        if (major === 2) v = b.subarray(at, at + arg);
        else {
          if (arg > MAX_TEXT) return undefined;
          v = readAscii(b, at, arg);
          if (v === undefined) return undefined;
        }
        at += arg;
      }
    } else if (vb === 0xf4) v = false;
    else if (vb === 0xf5) v = true;
    else if (vb === 0xf6) v = null;
    else if (vb === 0xf7) v = undefined;
    else if (vb === 0xfb) {
      if (at + 8 > end) return undefined;
      v = b.readDoubleBE(at);
      at += 8;
    } else return undefined;
    out[key] = v;
  }
  return at === end ? out : undefined;
}
