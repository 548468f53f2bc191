/**
 * SETTINGS (docs/wire-protocol.md 8.2): what each node tells its peer as a
 * connection is established, so that the peer can respect it: the largest
 * message it accepts (a sender refuses larger ones at `send()`, as NATS does
 * with `max_payload` and HTTP/2 with SETTINGS_MAX_FRAME_SIZE), and its
 * heartbeat and dead-peer timers (the peer fences a session it has not
 * confirmed within the other side's dead-peer timeout).
 *
 * The payload is a sequence of 6-byte entries, `u16` id then `u32` value,
 * big-endian. Unknown ids are ignored, so later versions can add entries.
 */
import { ErrorCode, ProtocolError } from '../errors.js';

/** Entry ids. */
export const SettingId = {
  /** Largest message the sender of SETTINGS accepts, bytes. */
  MAX_MESSAGE_SIZE: 0x0001,
  /** Its heartbeat interval, ms. */
  HEARTBEAT_MS: 0x0002,
  /** Its dead-peer timeout, ms: it ends a session silent this long. */
  DEAD_PEER_MS: 0x0003,
} as const;

/** The values a node announces. */
export interface PeerSettings {
  readonly maxMessageSize: number;
  readonly heartbeatMs: number;
  readonly deadPeerMs: number;
}

const ENTRY = 6;

/** The SETTINGS payload announcing `s` (values clamped to u32). */
export function encodeSettings(s: PeerSettings): Buffer {
  const entries: Array<[number, number]> = [
    [SettingId.MAX_MESSAGE_SIZE, s.maxMessageSize],
    [SettingId.HEARTBEAT_MS, s.heartbeatMs],
    [SettingId.DEAD_PEER_MS, s.deadPeerMs],
  ];
  const out = Buffer.allocUnsafe(entries.length * ENTRY);
  entries.forEach(([id, value], i) => {
    out.writeUInt16BE(id, i * ENTRY);
    out.writeUInt32BE(Math.max(0, Math.min(0xffff_ffff, Math.round(value))), i * ENTRY + 2);
  });
  return out;
}

/**
 * Reads a SETTINGS payload over `defaults` (what is not announced keeps its
 * default; unknown ids are skipped).
 * @throws {ProtocolError} ERR_SB_PROTOCOL when the length is not a multiple of 6
 */
export function decodeSettings(payload: Buffer, defaults: PeerSettings): PeerSettings {
  if (payload.length % ENTRY !== 0)
    throw new ProtocolError(
      ErrorCode.PROTOCOL,
      `SETTINGS payload of ${payload.length} bytes is not a whole number of 6-byte entries`,
      { state: 'session' },
    );
  let { maxMessageSize, heartbeatMs, deadPeerMs } = defaults;
  for (let at = 0; at < payload.length; at += ENTRY) {
    const id = payload.readUInt16BE(at);
    const value = payload.readUInt32BE(at + 2);
    if (id === SettingId.MAX_MESSAGE_SIZE) maxMessageSize = value;
    else if (id === SettingId.HEARTBEAT_MS && value > 0) heartbeatMs = value;
    else if (id === SettingId.DEAD_PEER_MS && value > 0) deadPeerMs = value;
  }
  return { maxMessageSize, heartbeatMs, deadPeerMs };
}
