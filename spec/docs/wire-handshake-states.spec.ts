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
import net from 'node:net';
import { Switchboard } from '../../lib/index.js';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { FrameType, encodeFrame } from '../../lib/protocol/frame.js';
import { GoAwayCode, Handshake, decodeGoAway } from '../../lib/protocol/handshake.js';
import type { OutFrame } from '../../lib/protocol/handshake.js';
import { clusterFingerprint, parseNodes } from '../../lib/switchboard/nodes.js';
import { SECRET } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';

interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

/** A socket that speaks frames: what arrives is decoded and queued. */
class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private read = 0;
  private wake: (() => void) | undefined;
  private ended = false;
  private readonly decoder = new FrameDecoder(
    {
      onFrame: (type, _flags, _stream, payload) => {
        this.frames.push({ type, payload: Buffer.from(payload) });
        this.wake?.();
      },
    },
    { maxFramePayload: 1 << 20 },
  );

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake?.();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawPeer(socket));
      });
    });
  }

  /** The next frame not yet taken; rejects when the socket closed first. */
  async next(): Promise<Frame> {
    for (;;) {
      const f = this.frames[this.read];
      if (f !== undefined) {
        this.read++;
        return f;
      }
      if (this.ended) throw new Error('closed while waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 5_000);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /** The next frame of `type`, skipping others (SETTINGS, PING, ACK...). */
  async nextOf(type: number): Promise<Frame> {
    for (;;) {
      const f = await this.next();
      if (f.type === type) return f;
    }
  }

  /** Writes the frames in one write. */
  send(frames: readonly OutFrame[]): void {
    this.socket.write(Buffer.concat(frames.map((f) => encodeFrame(f.type, 0, 0, f.payload))));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

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
