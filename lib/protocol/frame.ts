/**
 * Frame layout (docs/wire-protocol.md is the normative text):
 *
 *   offset 0  u32 BE  length: bytes after this field (6 + payload length)
 *   offset 4  u8      type
 *   offset 5  u8      flags
 *   offset 6  u32 BE  stream id
 *   offset 10 ...     payload
 *
 * Types 0x10-0x1f are *sequenced*: both ends count them from the start of a
 * session, acknowledgements carry that count, and a resumed session resends
 * from it. Every other type is unsequenced (handshake, liveness, teardown).
 */

/** Bytes before the payload: length (4), type (1), flags (1), stream (4). */
export const HEADER_SIZE = 10;
/** Bytes of the header counted by the length field (type, flags, stream). */
export const LENGTH_OVERHEAD = 6;

export const FrameType = {
  /** Handshake: identity, fingerprint, incarnation, nonce (fixed binary layout). */
  HELLO: 0x01,
  /** Handshake: 32-byte HMAC-SHA256 proof over the transcript. */
  AUTH: 0x02,
  /** Handshake: the acceptor verified the dialer; the session is open. */
  WELCOME: 0x03,

  /** A message (or its first fragment when flag MORE is set). */
  DATA: 0x10,
  /** A continuation fragment of the stream's message in progress. */
  CONT: 0x11,
  /** Flow-control credit: u32 messages, u32 bytes. */
  CREDIT: 0x12,
  /** Open a stream toward a receiver (CBOR payload). */
  OPEN: 0x13,
  /** Close a stream (optional CBOR reason). */
  CLOSE: 0x14,
  /** Cancel the operation carried by a stream. */
  CANCEL: 0x15,
  /** A stream-level error (CBOR `{ code, message }`). */
  ERROR: 0x16,
  /** Switchboard control message on stream 0 (CBOR). */
  CONTROL: 0x17,

  /** Cumulative acknowledgement: u64 count of sequenced frames received. */
  ACK: 0x20,
  /** Liveness probe: 8 opaque bytes echoed by PONG. */
  PING: 0x21,
  /** Liveness answer: the PING's 8 bytes. */
  PONG: 0x22,
  /** The sender is closing the link: u16 code, UTF-8 reason. */
  GOAWAY: 0x23,
  /** The sender's limits and timers, first after the handshake: (u16 id, u32 value) pairs. */
  SETTINGS: 0x24,
} as const;

export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FrameFlag = {
  /** More fragments of this message follow (DATA, CONT). */
  MORE: 0x01,
  /** The message payload is raw bytes, not CBOR (DATA). */
  RAW: 0x02,
  /** The message starts with a head of fields, then its body (DATA; docs/wire-protocol.md 10.6). */
  HEAD: 0x04,
} as const;

/** 1 at the index of each type this version defines (a table: read for every frame). */
const KNOWN_TYPES = new Uint8Array(256);
for (const t of Object.values(FrameType)) KNOWN_TYPES[t] = 1;

/** True for a type this protocol version defines. */
export function isKnownFrameType(type: number): boolean {
  return KNOWN_TYPES[type] === 1;
}

/** True for frame types counted for acknowledgement and resend (0x10-0x1f). */
export function isSequenced(type: number): boolean {
  return (type & 0xf0) === 0x10;
}

/** True for frame types that may be exchanged before authentication. */
export function isHandshakeFrame(type: number): boolean {
  return (
    type === FrameType.HELLO ||
    type === FrameType.AUTH ||
    type === FrameType.WELCOME ||
    type === FrameType.GOAWAY
  );
}

/** Name of a frame type, for logs and errors. */
export function frameTypeName(type: number): string {
  for (const [name, value] of Object.entries(FrameType)) if (value === type) return name;
  return `0x${type.toString(16).padStart(2, '0')}`;
}

/** Limits enforced by the decoder and reassembler. */
export interface FrameLimits {
  /** Largest frame payload accepted, in bytes. Default 1 MiB. */
  maxFramePayload: number;
  /** Largest reassembled message, in bytes. Default 64 MiB. */
  maxMessageSize: number;
  /** Payload bytes per fragment when splitting a message. Default 64 KiB. */
  fragmentSize: number;
}

export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = Object.freeze({
  maxFramePayload: 1024 * 1024,
  maxMessageSize: 64 * 1024 * 1024,
  fragmentSize: 64 * 1024,
});

/**
 * Writes a frame header into `buf` at `offset`. A pure function that specs
 * and benchmarks reuse to build fixtures.
 */
export function writeHeader(
  buf: Uint8Array,
  offset: number,
  type: number,
  flags: number,
  stream: number,
  payloadLength: number,
): void {
  const length = payloadLength + LENGTH_OVERHEAD;
  buf[offset] = length >>> 24;
  buf[offset + 1] = (length >>> 16) & 0xff;
  buf[offset + 2] = (length >>> 8) & 0xff;
  buf[offset + 3] = length & 0xff;
  buf[offset + 4] = type;
  buf[offset + 5] = flags;
  buf[offset + 6] = stream >>> 24;
  buf[offset + 7] = (stream >>> 16) & 0xff;
  buf[offset + 8] = (stream >>> 8) & 0xff;
  buf[offset + 9] = stream & 0xff;
}

/** One whole frame as a new buffer: for tests, fixtures and rare control frames. */
export function encodeFrame(
  type: number,
  flags: number,
  stream: number,
  payload?: Uint8Array,
): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  const buf = Buffer.allocUnsafe(HEADER_SIZE + len);
  writeHeader(buf, 0, type, flags, stream, len);
  if (payload !== undefined) buf.set(payload, HEADER_SIZE);
  return buf;
}
