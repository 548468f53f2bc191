import { encodeHead, headEnd, headFields, headHeaders } from '../../lib/protocol/head.js';

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

describe('the headers field (docs/wire-protocol.md 10.6, field 04)', () => {
  it('is the example of the wire document, byte for byte, and reads back beside the fields', () => {
    const bytes = encodeHead([], Buffer.from('626869', 'hex'), { traceparent: '00-ab-cd-01' });
    expect(bytes.toString('hex')).toBe(
      '01' +
        '040001' +
        '000b' +
        Buffer.from('traceparent').toString('hex') +
        '000b' +
        Buffer.from('00-ab-cd-01').toString('hex') +
        '626869',
    );
    expect(headFields(bytes)).toEqual([]);
    expect(headHeaders).toEqual({ traceparent: '00-ab-cd-01' });
    expect(bytes.subarray(headEnd).toString('hex')).toBe('626869');
  });

  it('leaves a pattern fields where they were, and a head without headers unchanged', () => {
    const body = Buffer.from('b');
    const without = encodeHead([1, 'orders'], body);
    const withIt = encodeHead([1, 'orders'], body, { a: 'é', b: '' });
    expect(headFields(withIt)).toEqual([1, 'orders']);
    expect(headHeaders).toEqual({ a: 'é', b: '' });
    expect(withIt.subarray(headEnd).toString()).toBe('b');
    expect(headFields(without)).toEqual([1, 'orders']);
    expect(headHeaders).toBeUndefined();
    // The same bytes as before the field existed: count 2, the two fields, the body.
    expect(without.toString('hex')).toBe('02' + '0100000001' + '03000' + '66f7264657273' + '62');
  });

  it('refuses a headers field that is not last, or runs past the message', () => {
    const ok = encodeHead([7], Buffer.alloc(0), { k: 'v' });
    // Count one more field than there is: the headers field is no longer last.
    const notLast = Buffer.from(ok);
    notLast[0] = 3;
    expect(() => headFields(Buffer.concat([notLast, Buffer.from([0x01, 0, 0, 0, 1])]))).toThrow(
      expect.objectContaining({ code: 'ERR_SB_DECODE' }) as Error,
    );
    expect(() => headFields(ok.subarray(0, ok.length - 1))).toThrow(
      expect.objectContaining({ code: 'ERR_SB_DECODE' }) as Error,
    );
  });
});
