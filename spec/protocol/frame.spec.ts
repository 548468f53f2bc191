import {
  DEFAULT_FRAME_LIMITS,
  FrameFlag,
  FrameType,
  HEADER_SIZE,
  LENGTH_OVERHEAD,
  encodeFrame,
  frameTypeName,
  isHandshakeFrame,
  isKnownFrameType,
  isSequenced,
  writeHeader,
} from '../../lib/protocol/frame.js';

describe('frame', () => {
  it('lays out the header as documented: u32 length, u8 type, u8 flags, u32 stream', () => {
    const frame = encodeFrame(FrameType.DATA, FrameFlag.RAW, 0x01020304, Buffer.from('hi'));
    expect([...frame]).toEqual([
      0, 0, 0, 8, // length: 6 header bytes after the length field + 2 payload bytes
      0x10, 0x02, // type DATA, flag RAW
      1, 2, 3, 4, // stream, big-endian
      0x68, 0x69, // payload
    ]); // prettier-ignore
    expect(HEADER_SIZE).toBe(4 + LENGTH_OVERHEAD);
  });

  it('writes headers in place at an offset, with the full u32 ranges', () => {
    const buf = Buffer.alloc(3 + HEADER_SIZE, 0xaa);
    writeHeader(buf, 3, FrameType.GOAWAY, 0, 0xffffffff, 0xffffffff - LENGTH_OVERHEAD);
    expect([...buf]).toEqual([
      0xaa, 0xaa, 0xaa,
      0xff, 0xff, 0xff, 0xff,
      0x23, 0,
      0xff, 0xff, 0xff, 0xff,
    ]); // prettier-ignore
  });

  it('encodes a frame without payload as a bare header', () => {
    expect([...encodeFrame(FrameType.WELCOME, 0, 0)]).toEqual([0, 0, 0, 6, 3, 0, 0, 0, 0, 0]);
  });

  it('classifies frame types', () => {
    const all = Object.values(FrameType) as number[];
    expect(all.every(isKnownFrameType)).toBe(true);
    expect([0x00, 0x04, 0x18, 0x25, 0xff].some(isKnownFrameType)).toBe(false);
    expect(all.filter(isSequenced).map(frameTypeName)).toEqual([
      'DATA',
      'CONT',
      'CREDIT',
      'OPEN',
      'CLOSE',
      'CANCEL',
      'ERROR',
      'CONTROL',
    ]);
    expect(all.filter(isHandshakeFrame).map(frameTypeName)).toEqual([
      'HELLO',
      'AUTH',
      'WELCOME',
      'GOAWAY',
    ]);
    expect(frameTypeName(0x7)).toBe('0x07');
  });

  it('has frozen defaults matching the design brief', () => {
    expect(Object.isFrozen(DEFAULT_FRAME_LIMITS)).toBe(true);
    expect(DEFAULT_FRAME_LIMITS).toEqual({
      maxFramePayload: 1024 * 1024,
      maxMessageSize: 64 * 1024 * 1024,
      fragmentSize: 64 * 1024,
    });
  });
});
