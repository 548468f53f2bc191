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
 * then the body: the rest of the message.
 * ```
 */
import { DecodeError, ErrorCode, SwitchboardError } from '../errors.js';

/** What a head field may be. */
export type HeadField = number | string;

const U32 = 0x01;
const F64 = 0x02;
const STR = 0x03;

function fieldSize(f: HeadField): number {
  if (typeof f === 'number') return f >= 0 && f <= 0xffff_ffff && Number.isInteger(f) ? 5 : 9;
  if (typeof f === 'string') {
    const n = Buffer.byteLength(f);
    if (n > 0xffff)
      throw new SwitchboardError(ErrorCode.ENCODE, `a head field of ${n} bytes (at most 65535)`);
    return 3 + n;
  }
  throw new SwitchboardError(ErrorCode.ENCODE, 'a head field must be a number or a string');
}

/**
 * One buffer: the head of `fields`, then `body`.
 * @throws ERR_SB_ENCODE for a field that is not a number or a string, or a string too long
 */
export function encodeHead(fields: readonly HeadField[], body: Uint8Array): Buffer {
  if (fields.length > 255)
    throw new SwitchboardError(ErrorCode.ENCODE, 'a head has at most 255 fields');
  let size = 1;
  for (const f of fields) size += fieldSize(f);
  const out = Buffer.allocUnsafe(size + body.length);
  out[0] = fields.length;
  let at = 1;
  for (const f of fields) {
    if (typeof f === 'number') {
      if (f >= 0 && f <= 0xffff_ffff && Number.isInteger(f)) {
        out[at] = U32;
        out.writeUInt32BE(f, at + 1);
        at += 5;
      } else {
        out[at] = F64;
        out.writeDoubleBE(f, at + 1);
        at += 9;
      }
    } else {
      out[at] = STR;
      const n = out.write(f, at + 3, 'utf8');
      out.writeUInt16BE(n, at + 1);
      at += 3 + n;
    }
  }
  out.set(body, at);
  return out;
}

/**
 * The fields of the head at the start of `bytes`, and where the body starts.
 * @throws {DecodeError} for a malformed head (that message only)
 */
export function decodeHead(bytes: Buffer): { fields: HeadField[]; body: number } {
  if (bytes.length < 1) throw new DecodeError('empty message where a head was expected');
  const count = bytes[0]!;
  const fields: HeadField[] = [];
  let at = 1;
  for (let i = 0; i < count; i++) {
    const type = bytes[at];
    if (type === U32 && at + 5 <= bytes.length) {
      fields.push(bytes.readUInt32BE(at + 1));
      at += 5;
    } else if (type === F64 && at + 9 <= bytes.length) {
      fields.push(bytes.readDoubleBE(at + 1));
      at += 9;
    } else if (type === STR && at + 3 <= bytes.length) {
      const n = bytes.readUInt16BE(at + 1);
      if (at + 3 + n > bytes.length) throw new DecodeError('a head string runs past the message');
      fields.push(bytes.toString('utf8', at + 3, at + 3 + n));
      at += 3 + n;
    } else {
      throw new DecodeError(`malformed head field ${i} at byte ${at}`);
    }
  }
  return { fields, body: at };
}
