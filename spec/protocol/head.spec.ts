import { encodeHead, headEnd, headFields } from '../../lib/protocol/head.js';

describe('message heads (docs/wire-protocol.md 10.6)', () => {
  it('carries small unsigned integers, other numbers and strings beside the body', () => {
    const body = Buffer.from('body');
    const bytes = encodeHead([0, 1, 2 ** 32 - 1, 2 ** 40, -1, 0.5, 'orders.eu', ''], body);
    const fields = headFields(bytes);
    const at = headEnd;
    expect(fields).toEqual([0, 1, 2 ** 32 - 1, 2 ** 40, -1, 0.5, 'orders.eu', '']);
    expect(bytes.subarray(at).toString()).toBe('body');
    // u32 fields take 5 bytes, other numbers 9, strings 3 plus their UTF-8.
    expect(bytes.length).toBe(1 + 3 * 5 + 3 * 9 + (3 + 9) + 3 + body.length);
  });

  it('refuses fields it cannot carry, and malformed heads on arrival', () => {
    expect(() => encodeHead([{} as never], Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'ERR_SB_ENCODE' }) as Error,
    );
    expect(() => encodeHead(['x'.repeat(70_000)], Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'ERR_SB_ENCODE' }) as Error,
    );
    for (const bad of ['', '01', '0104', '010300ff61', '01090000']) {
      expect(() => headFields(Buffer.from(bad, 'hex'))).toThrow(
        expect.objectContaining({ code: 'ERR_SB_DECODE' }) as Error,
      );
    }
  });
});
