/**
 * The table of docs/wire-protocol.md 5.1 (what each handshake state
 * accepts and refuses) against a real switchboard: a raw socket plays node
 * 0, built from the document's own pieces (HELLO, proofs, frames), and
 * dials node 1. Once the handshake is done the session's frames are
 * expected and only HELLO, AUTH and WELCOME are refused; a refusal before
 * it fails the handshake, and nothing after the refused frame is processed,
 * not even the rest of the same write.
 */
import { randomBytes } from 'node:crypto';
import { Switchboard } from '../../lib/index.js';
import { FrameType } from '../../lib/protocol/frame.js';
import { GoAwayCode, Handshake, decodeGoAway } from '../../lib/protocol/handshake.js';
import { clusterFingerprint, parseNodes } from '../../lib/switchboard/nodes.js';
import { SECRET } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';
import { RawPeer } from './raw-peer.js';
import type { Frame } from './raw-peer.js';

describe('docs/wire-protocol.md 5.1, what each handshake state accepts (a raw node 0 against node 1)', () => {
  let nodes: string[];
  let node1: Switchboard;
  let raw: RawPeer | undefined;

  beforeAll(async () => {
    nodes = await localNodes(2);
    node1 = await Switchboard.start({ nodes, id: 1, secret: SECRET });
  });
  afterEach(() => raw?.destroy());
  afterAll(() => node1.close());

  const dialer = (): Handshake =>
    new Handshake({
      role: 'dialer',
      self: 0,
      nodeCount: 2,
      peer: 1,
      fingerprint: clusterFingerprint(parseNodes(nodes)),
      incarnation: randomBytes(16),
      secret: Buffer.from(SECRET),
    });

  const connect = async (): Promise<RawPeer> => {
    const port = Number(nodes[1]!.slice(nodes[1]!.lastIndexOf(':') + 1));
    raw = await RawPeer.connect(port);
    return raw;
  };

  it('done: the session’s frames are expected (a PING is answered), and a HELLO is refused with GOAWAY PROTOCOL', async () => {
    const peer = await connect();
    const hs = dialer();
    peer.send(hs.start());
    while (hs.status !== 'done') peer.send(hs.onFrame(...frameArgs(await peer.next())));
    const ping = Buffer.from('8 bytes!');
    peer.send([{ type: FrameType.PING, payload: ping }]);
    expect((await peer.nextOf(FrameType.PONG)).payload).toEqual(ping);
    // A new HELLO on the authenticated connection.
    peer.send([{ type: FrameType.HELLO, payload: dialer().start()[0]!.payload }]);
    const goAway = decodeGoAway((await peer.nextOf(FrameType.GOAWAY)).payload);
    expect(goAway.code).toBe(GoAwayCode.PROTOCOL);
    await peer.closed;
  });

  it('awaiting AUTH: a PING is refused, the handshake fails, and the AUTH in the same write is never processed', async () => {
    const peer = await connect();
    const hs = dialer();
    peer.send(hs.start());
    const hello = await peer.next();
    expect(hello.type).toBe(FrameType.HELLO);
    hs.onFrame(hello.type, hello.payload);
    const auth = await peer.next();
    expect(auth.type).toBe(FrameType.AUTH);
    // The correct AUTH, but after a frame this state refuses, in one write.
    const ours = hs.onFrame(auth.type, auth.payload);
    peer.send([{ type: FrameType.PING, payload: Buffer.alloc(8) }, ...ours]);
    const goAway = decodeGoAway((await peer.next()).payload);
    expect(goAway.code).toBe(GoAwayCode.PROTOCOL);
    await peer.closed;
    // The AUTH behind the PING was never checked: no WELCOME came.
    expect(peer.frames.map((f) => f.type)).toEqual([
      FrameType.HELLO,
      FrameType.AUTH,
      FrameType.GOAWAY,
    ]);
  });

  it('awaiting HELLO: an AUTH first is refused with GOAWAY PROTOCOL, and nothing is sent back but that', async () => {
    const peer = await connect();
    peer.send([{ type: FrameType.AUTH, payload: Buffer.alloc(32) }, ...dialer().start()]);
    const goAway = decodeGoAway((await peer.next()).payload);
    expect(goAway.code).toBe(GoAwayCode.PROTOCOL);
    await peer.closed;
    expect(peer.frames.map((f) => f.type)).toEqual([FrameType.GOAWAY]);
  });
});

function frameArgs(f: Frame): [number, Buffer] {
  return [f.type, f.payload];
}
