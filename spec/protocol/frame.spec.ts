import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { encodeFrame, FrameType } from '../../lib/protocol/frame.js';

describe('frame', () => {
  it('round-trips one frame', () => {
    const got: Array<[number, number, number, string]> = [];
    const d = new FrameDecoder({ onFrame: (t, f, s, p) => got.push([t, f, s, p.toString()]) });
    d.push(encodeFrame(FrameType.DATA, 0, 7, Buffer.from('hi')));
    expect(got).toEqual([[FrameType.DATA, 0, 7, 'hi']]);
  });
});
