/**
 * The head of a message (docs/wire-protocol.md 10.6, flag HEAD): a few
 * fields a pattern puts beside the application's value (a topic, a task's
 * ids), in a small binary form instead of inside the CBOR, so that a raw
 * body stays raw and a head costs no CBOR at either end.
 *
 * ```
 * u8 count, then per field:
 *   0x01 u32            an unsigned integer below 2^32
 *   0x02 f64            any other number
 *   0x03 u16 length, UTF-8 bytes   a string of at most 65535 bytes
 *   0x04 u16 n, then n pairs of (u16 length, UTF-8 bytes) x 2
 *                                  the message's headers (last field only)
 * then the body: the rest of the message.
 * ```
 *
 * The headers field (docs/wire-protocol.md 10.6) is not one of the
 * pattern's fields: it is counted in `count` but read into
 * {@link headHeaders}, so a pattern's head reads the same with and
 * without headers.
 */
import { DecodeError, ErrorCode, SwitchboardError } from '../errors.js';

/** What a head field may be. */
export type HeadField = number | string;

const U32 = 0x01;
const F64 = 0x02;
const STR = 0x03;
const HDRS = 0x04;

/** A message's headers: text names to text values (docs/api.md, "Headers"). */
export type HeadHeaders = Readonly<Record<string, string>>;

function fieldSize(f: HeadField): number {
  if (typeof f === 'number') return f >>> 0 === f ? 5 : 9;
  if (typeof f === 'string') {
    const n = Buffer.byteLength(f);
    if (n > 0xffff)
      throw new SwitchboardError(ErrorCode.ENCODE, `a head field of ${n} bytes (at most 65535)`);
    return 3 + n;
  }
  throw new SwitchboardError(ErrorCode.ENCODE, 'a head field must be a number or a string');
}

/**
 * Bytes the head of `fields` takes (the count byte included).
 * @throws ERR_SB_ENCODE for a field that is not a number or a string, or a string too long
 */
export function headSize(fields: readonly HeadField[], headers?: HeadHeaders): number {
  const count = fields.length;
  if (count > (headers === undefined ? 255 : 254))
    throw new SwitchboardError(ErrorCode.ENCODE, 'a head has at most 255 fields');
  let size = 1;
  for (let i = 0; i < count; i++) size += fieldSize(fields[i]!);
  return headers === undefined ? size : size + headersSize(headers);
}

/**
 * Bytes the headers field of `headers` takes (its type byte included).
 * @throws ERR_SB_ENCODE for more than 65535 headers, or a name or value over 65535 bytes
 */
export function headersSize(headers: HeadHeaders): number {
  let size = 3;
  let n = 0;
  for (const k in headers) {
    const kn = Buffer.byteLength(k);
    const vn = Buffer.byteLength(headers[k]!);
    if (kn > 0xffff || vn > 0xffff)
      throw new SwitchboardError(
        ErrorCode.ENCODE,
        `header "${k.slice(0, 64)}": names and values are at most 65535 bytes`,
      );
    size += 4 + kn + vn;
    n++;
  }
  if (n > 0xffff) throw new SwitchboardError(ErrorCode.ENCODE, 'at most 65535 headers');
  return size;
}

function writeString(s: string, out: Buffer, at: number): number {
  const n = out.write(s, at + 2, 'utf8');
  out[at] = n >>> 8;
  out[at + 1] = n;
  return at + 2 + n;
}

function writeHeaders(headers: HeadHeaders, out: Buffer, at: number): number {
  out[at] = HDRS;
  const countAt = at + 1;
  at += 3;
  let n = 0;
  for (const k in headers) {
    at = writeString(k, out, at);
    at = writeString(headers[k]!, out, at);
    n++;
  }
  out[countAt] = n >>> 8;
  out[countAt + 1] = n;
  return at;
}

/** Writes the head of `fields` (sized by {@link headSize}) at `at` in `out`; returns where it ends. */
export function writeHead(
  fields: readonly HeadField[],
  out: Buffer,
  at: number,
  headers?: HeadHeaders,
): number {
  const count = fields.length;
  out[at++] = headers === undefined ? count : count + 1;
  for (let i = 0; i < count; i++) {
    const f = fields[i]!;
    if (typeof f === 'number') {
      if (f >>> 0 === f) {
        // By hand: writeUInt32BE's range checks are already done.
        out[at] = U32;
        out[at + 1] = f >>> 24;
        out[at + 2] = f >>> 16;
        out[at + 3] = f >>> 8;
        out[at + 4] = f;
        at += 5;
      } else {
        out[at] = F64;
        out.writeDoubleBE(f, at + 1);
        at += 9;
      }
    } else {
      out[at] = STR;
      const n = out.write(f, at + 3, 'utf8');
      out[at + 1] = n >>> 8;
      out[at + 2] = n;
      at += 3 + n;
    }
  }
  return headers === undefined ? at : writeHeaders(headers, out, at);
}

/**
 * One buffer: the head of `fields`, then `body`.
 * @throws ERR_SB_ENCODE for a field that is not a number or a string, or a string too long
 */
export function encodeHead(
  fields: readonly HeadField[],
  body: Uint8Array,
  headers?: HeadHeaders,
): Buffer {
  const size = headSize(fields, headers);
  const out = Buffer.allocUnsafe(size + body.length);
  out.set(body, writeHead(fields, out, 0, headers));
  return out;
}

/** `prefix` (a head encoded with an empty body, by {@link encodeHead}) followed by `body`, in one buffer. */
export function joinHead(prefix: Buffer, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + body.length);
  prefix.copy(out, 0);
  out.set(body, prefix.length);
  return out;
}

/*
 * The last string field decoded, and its bytes: a stream of messages with
 * the same topic decodes it once (a byte comparison instead of UTF-8
 * decoding and a new string per message). Short strings only.
 */
const LAST_MAX = 128;
const lastBytes = Buffer.alloc(LAST_MAX);
let lastLength = -1;
let lastString = '';

function stringAt(bytes: Buffer, at: number, n: number): string {
  if (n === lastLength) {
    let i = 0;
    while (i < n && lastBytes[i] === bytes[at + i]) i++;
    if (i === n) return lastString;
  }
  const s = bytes.toString('utf8', at, at + n);
  if (n <= LAST_MAX) {
    bytes.copy(lastBytes, 0, at, at + n);
    lastLength = n;
    lastString = s;
  }
  return s;
}

/** Where the body starts in the message {@link headFields} read last (module state: one synchronous read). */
export let headEnd = 0;
/** The headers of the message {@link headFields} read last; undefined when it had none. */
export let headHeaders: HeadHeaders | undefined;

/**
 * The fields of the head at the start of `bytes`; where the body starts is
 * then in {@link headEnd} (no result object per message).
 * @throws {DecodeError} for a malformed head (that message only)
 */
export function headFields(bytes: Buffer): HeadField[] {
  if (bytes.length < 1) throw new DecodeError('empty message where a head was expected');
  const count = bytes[0]!;
  // Exactly `count` slots (one fewer when the last is the headers): a
  // pushed-to empty array would reserve 17.
  const fields = new Array<HeadField>(count);
  let at = 1;
  headHeaders = undefined;
  for (let i = 0; i < count; i++) {
    const type = bytes[at];
    if (type === U32 && at + 5 <= bytes.length) {
      fields[i] =
        bytes[at + 1]! * 0x100_0000 +
        ((bytes[at + 2]! << 16) | (bytes[at + 3]! << 8) | bytes[at + 4]!);
      at += 5;
    } else if (type === F64 && at + 9 <= bytes.length) {
      fields[i] = bytes.readDoubleBE(at + 1);
      at += 9;
    } else if (type === STR && at + 3 <= bytes.length) {
      const n = bytes.readUInt16BE(at + 1);
      if (at + 3 + n > bytes.length) throw new DecodeError('a head string runs past the message');
      fields[i] = stringAt(bytes, at + 3, n);
      at += 3 + n;
    } else if (type === HDRS && i === count - 1 && at + 3 <= bytes.length) {
      at = readHeaders(bytes, at);
      // Headers are read apart from the pattern's fields: not a slot.
      fields.length = count - 1;
    } else {
      throw new DecodeError(`malformed head field ${i} at byte ${at}`);
    }
  }
  headEnd = at;
  return fields;
}

/** Reads the headers field at `at` into {@link headHeaders}; returns where it ends. */
function readHeaders(bytes: Buffer, at: number): number {
  const n = bytes.readUInt16BE(at + 1);
  at += 3;
  // No prototype: a header named "__proto__" or "constructor" is just a header.
  const out = Object.create(null) as Record<string, string>;
  for (let j = 0; j < n; j++) {
    const k = stringIn(bytes, at);
    at = stringEnd;
    out[k] = stringIn(bytes, at);
    at = stringEnd;
  }
  headHeaders = Object.freeze(out);
  return at;
}

let stringEnd = 0;

function stringIn(bytes: Buffer, at: number): string {
  if (at + 2 > bytes.length) throw new DecodeError('a header runs past the message');
  const n = (bytes[at]! << 8) | bytes[at + 1]!;
  if (at + 2 + n > bytes.length) throw new DecodeError('a header runs past the message');
  stringEnd = at + 2 + n;
  return bytes.toString('utf8', at + 2, at + 2 + n);
}
