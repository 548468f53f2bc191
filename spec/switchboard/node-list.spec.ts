/**
 * The node list's normalisation and the cluster fingerprint, as
 * docs/wire-protocol.md 11.1 and 11.2 define them on bytes: only A-Z are
 * lowercased, tags are ordered by their UTF-8 bytes, lone surrogates are
 * refused, and the fingerprint is SHA-256 of the canonical JSON's UTF-8.
 */
import { createHash } from 'node:crypto';
import { OptionError, Switchboard, clusterFingerprint, parseNodes } from '../../lib/index.js';

describe('node list normalisation (wire-protocol 11.1)', () => {
  it('lowercases A-Z only and keeps other characters as given', () => {
    const [a, b] = parseNodes(['Node-A.Example:7400', { host: 'ÉCOLE.Example', port: 7401 }]);
    expect(a!.host).toBe('node-a.example');
    // U+00C9 is not A-Z: kept, though toLowerCase() would map it.
    expect(b!.host).toBe('\u00c9cole.example');
  });

  it('orders tags by their UTF-8 bytes, not by UTF-16 code units', () => {
    // U+FF01 is EF BC 81 in UTF-8, U+1F600 is F0 9F 98 80: the bytes put
    // U+FF01 first; UTF-16 (FF01 against D83D DE00) would put it last.
    const [n] = parseNodes([{ host: 'h', port: 1, tags: ['\u{1F600}', 'b', '\uFF01', 'a', 'b'] }]);
    expect(n!.tags).toEqual(['a', 'b', 'b', '\uFF01', '\u{1F600}']);
    expect(['\u{1F600}', '\uFF01'].sort()).toEqual(['\u{1F600}', '\uFF01']);
  });

  it('refuses hosts, tags and cluster names that are not well-formed Unicode', () => {
    expect(() => parseNodes(['h\uD800:1'])).toThrow(OptionError);
    expect(() => parseNodes(['h\uD800:1'])).toThrow(/nodes\[0\].*well-formed/);
    expect(() => parseNodes([{ host: 'h', port: 1, tags: ['ok', 'x\uDC00'] }])).toThrow(
      /nodes\[0\]\.tags\[1\].*well-formed/,
    );
    // A surrogate pair is a character like any other.
    expect(parseNodes([{ host: 'h', port: 1, tags: ['\u{1F600}'] }])[0]!.tags).toEqual([
      '\u{1F600}',
    ]);
  });

  it('refuses a cluster name that is not a well-formed string at start', async () => {
    const base = { nodes: ['127.0.0.1:1'], id: 0, secret: 'node-list-spec-secret-0123' };
    await expect(Switchboard.start({ ...base, clusterName: 'x\uDBFF' })).rejects.toThrow(
      /clusterName.*well-formed/,
    );
    await expect(
      Switchboard.start({ ...base, clusterName: 7 as unknown as string }),
    ).rejects.toThrow(/clusterName.*must be a string/);
  });
});

describe('cluster fingerprint (wire-protocol 11.2)', () => {
  it('is SHA-256 of the canonical JSON text, hashed as UTF-8', () => {
    const nodes = parseNodes([
      'A.example:7400',
      { host: 'b.example', port: 7401, tags: ['\u{1F600}', 'gpu', '\uFF01'] },
    ]);
    const text =
      '{"v":1,"name":"prod \u00e9","nodes":[["a.example",7400,[]],' +
      '["b.example",7401,["gpu","\uFF01","\u{1F600}"]]]}';
    const expected = createHash('sha256').update(Buffer.from(text, 'utf8')).digest();
    expect(clusterFingerprint(nodes, 'prod \u00e9').equals(expected)).toBe(true);
    // Another tag order in the input gives the same list, hence the same fingerprint.
    const again = parseNodes([
      'a.example:7400',
      { host: 'B.EXAMPLE', port: 7401, tags: ['\uFF01', 'gpu', '\u{1F600}'] },
    ]);
    expect(clusterFingerprint(again, 'prod \u00e9').equals(expected)).toBe(true);
  });
});
