import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SWITCHBOARD_OPTIONS } from '../../lib/index.js';
import { decodeSettings, encodeSettings, SettingId } from '../../lib/protocol/settings.js';

const DEFAULTS = {
  maxMessageSize: DEFAULT_SWITCHBOARD_OPTIONS.maxMessageSize,
  heartbeatMs: DEFAULT_SWITCHBOARD_OPTIONS.heartbeatMs,
  deadPeerMs: DEFAULT_SWITCHBOARD_OPTIONS.deadPeerMs,
};

describe('SETTINGS payload (docs/wire-protocol.md 8.2)', () => {
  it('is (u16 id, u32 value) entries, and the document shows the defaults exactly', () => {
    const bytes = encodeSettings(DEFAULTS);
    const hex = bytes.toString('hex').replace(/(..)/g, '$1 ').trim();
    expect(hex).toBe('00 01 04 00 00 00 00 02 00 00 03 e8 00 03 00 00 13 88');
    const doc = readFileSync(
      fileURLToPath(new URL('../../docs/wire-protocol.md', import.meta.url)),
      'utf8',
    );
    expect(doc).toContain('`00 01 04 00 00 00  00 02 00 00 03 e8  00 03 00 00 13 88`');
  });

  it('round-trips, ignores unknown ids and zero timers, and keeps what is not announced', () => {
    const mine = { maxMessageSize: 1, heartbeatMs: 2, deadPeerMs: 3 };
    expect(decodeSettings(encodeSettings(DEFAULTS), mine)).toEqual(DEFAULTS);
    const odd = Buffer.alloc(18);
    odd.writeUInt16BE(0x7777, 0);
    odd.writeUInt32BE(42, 2);
    odd.writeUInt16BE(SettingId.HEARTBEAT_MS, 6);
    odd.writeUInt32BE(0, 8);
    odd.writeUInt16BE(SettingId.MAX_MESSAGE_SIZE, 12);
    odd.writeUInt32BE(1024, 14);
    expect(decodeSettings(odd, mine)).toEqual({
      maxMessageSize: 1024,
      heartbeatMs: 2,
      deadPeerMs: 3,
    });
    expect(decodeSettings(Buffer.alloc(0), mine)).toEqual(mine);
  });

  it('refuses a payload that is not whole entries with ERR_SB_PROTOCOL', () => {
    expect(() => decodeSettings(Buffer.alloc(7), DEFAULTS)).toThrow(
      expect.objectContaining({ code: 'ERR_SB_PROTOCOL' }) as Error,
    );
  });
});
