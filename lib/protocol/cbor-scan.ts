/**
 * The pre-scan of untrusted bytes, pure over the bytes: it builds no value
 * and runs neither cbor-x nor user code.
 *
 * Decoding never hands untrusted bytes straight to cbor-x: {@link checkCbor}
 * (and {@link decodeValue}, through {@link scan}) first walks them with an
 * iterative (non-recursive) scan that enforces the size and depth limits,
 * checks every declared length against the bytes that remain, refuses
 * `__proto__` keys, unknown tags, stray or missing bytes, and only then lets
 * cbor-x build the value. Because the scan proves the input is one complete,
 * well-formed item within the limits, cbor-x's own recursion is bounded by
 * `maxDepth` and its allocations by what the bytes really contain.
 *
 * One file of about 400 lines: the initial-byte tables, the tag rules and
 * the loop that reads them are one piece. The loop's switch is on the
 * tables' constants, and moving the tables to a file of their own would put
 * imported bindings in the innermost loop of every decode.
 */
import { DecodeError } from '../errors.js';
import { DEFAULT_CODEC_LIMITS, HANDLE_TAG, validateLimits } from './codec-types.js';
import type { CodecLimits } from './codec-types.js';

// Per-level state of the scan, kept in flat typed arrays (grown on demand)
// instead of recursion. The scan runs to completion before cbor-x or any
// callback runs, so one module-level stack is never used re-entrantly. It
// lives here, private to scan(), its one user.
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

/**
 * The walk of {@link checkCbor}, without its checks of the arguments:
 * {@link decodeValue}, which makes those checks itself, calls it directly.
 */
export function scan(bytes: Uint8Array, maxDepth: number, maxMessageSize: number): void {
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
