/**
 * One Link against a fake connection: what it writes, byte for byte, for
 * acknowledgements and for the copies that keep resends safe. The fake
 * copies every buffer at write time, as the kernel would.
 */
import { FrameType } from '../../lib/protocol/frame.js';
import { Link } from '../../lib/switchboard/link.js';
import type { LinkHandler, LinkSettings } from '../../lib/switchboard/link.js';
import type { Connection } from '../../lib/switchboard/connection.js';
import type { Frame } from '../protocol/frame-fixtures.js';
import { decodeChunks } from '../protocol/frame-fixtures.js';

const KiB = 1024;
const INCARNATION = Buffer.alloc(16, 1);

class FakeConn {
  lastReceived = 0;
  closed = false;
  drainWaitSince: number | undefined = undefined;
  readonly chunks: Buffer[] = [];
  write(bufs: readonly Buffer[]): boolean {
    for (const b of bufs) this.chunks.push(Buffer.from(b));
    return true;
  }
  /** Every frame written so far, and forgets them. */
  frames(): Frame[] {
    const out = decodeChunks(this.chunks, { maxFramePayload: 1024 * KiB });
    this.chunks.length = 0;
    return out;
  }
}

interface Received {
  stream: number;
  message: Buffer;
}

function setup(settings: Partial<LinkSettings> = {}): {
  link: Link;
  conn: FakeConn;
  got: Received[];
} {
  const got: Received[] = [];
  const handler: LinkHandler = {
    onMessage: (_link, stream, _flags, message) => got.push({ stream, message }),
    onControl: () => {},
    onWritable: () => {},
    onOversize: () => {},
    onConfirmed: () => {},
    onPeerClosing: () => {},
  };
  const link = new Link(
    1,
    {
      fragmentSize: 64 * KiB,
      maxMessageSize: 64 * 1024 * KiB,
      bufferBytes: 32 * 1024 * KiB,
      heartbeatMs: 1000,
      deadPeerMs: 5000,
      ...settings,
    },
    handler,
  );
  const conn = new FakeConn();
  link.attach(conn as unknown as Connection, INCARNATION, false, 0);
  // The first frame on every connection: SETTINGS (what this node accepts and its timers).
  const opening = conn.frames();
  if (opening.length !== 1 || opening[0]!.type !== FrameType.SETTINGS)
    throw new Error('the link did not open with SETTINGS');
  return { link, conn, got };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function acks(frames: readonly Frame[]): number[] {
  return frames
    .filter((f) => f.type === FrameType.ACK)
    .map((f) => f.payload.readUInt32BE(0) * 2 ** 32 + f.payload.readUInt32BE(4));
}

describe('Link acknowledgements', () => {
  it('acknowledges a one-way run every 256 KiB, not per frame or per turn', async () => {
    // The lone-ACK timer is kept out of it: on a loaded machine three turns
    // can outlast its few milliseconds.
    const { link, conn, got } = setup({ ackDelayMs: 60_000 });
    const payload = Buffer.alloc(64 * KiB - 10);
    for (let i = 0; i < 3; i++) {
      link.onFrame(FrameType.DATA, 0, 1, payload);
      await turn();
    }
    expect(got).toHaveLength(3);
    expect(acks(conn.frames())).toEqual([]);
    link.onFrame(FrameType.DATA, 0, 1, payload); // 256 KiB with headers
    await turn();
    expect(acks(conn.frames())).toEqual([4]);
  });

  it('acknowledges the tail of a run on its own within a few milliseconds', async () => {
    const { link, conn } = setup();
    link.onFrame(FrameType.DATA, 0, 1, Buffer.from('lone'));
    await turn();
    expect(acks(conn.frames())).toEqual([]);
    await sleep(50);
    expect(acks(conn.frames())).toEqual([1]);
  });

  it('lets the acknowledgement ride on the reply, at once', async () => {
    const { link, conn } = setup();
    await turn();
    link.onFrame(FrameType.DATA, 0, 1, Buffer.from('request'));
    link.sendMessage(1, 0, Buffer.from('reply'));
    const frames = conn.frames();
    expect(frames.map((f) => f.type)).toEqual([FrameType.ACK, FrameType.DATA]);
    expect(acks(frames)).toEqual([1]);
  });

  it('asks for an acknowledgement with a PING once half its buffer is unacknowledged', async () => {
    const { link, conn } = setup({ bufferBytes: 64 * KiB });
    link.sendMessage(1, 0, Buffer.alloc(20 * KiB));
    await turn();
    expect(conn.frames().map((f) => f.type)).toEqual([FrameType.DATA]);
    link.sendMessage(1, 0, Buffer.alloc(20 * KiB));
    await turn();
    // The PING follows the data, so the ACK it brings back covers both.
    expect(conn.frames().map((f) => f.type)).toEqual([FrameType.DATA, FrameType.PING]);
    link.sendMessage(1, 0, Buffer.alloc(20 * KiB));
    await turn();
    expect(conn.frames().map((f) => f.type)).toEqual([FrameType.DATA]); // asked once
    const ack = Buffer.alloc(8);
    ack.writeUInt32BE(3, 4);
    link.onFrame(FrameType.ACK, 0, 0, ack);
    expect(link.bufferedBytes).toBe(0);
    link.sendMessage(1, 0, Buffer.alloc(40 * KiB));
    await turn();
    expect(conn.frames().map((f) => f.type)).toEqual([FrameType.DATA, FrameType.PING]);
  });
});

describe('Link copies', () => {
  /** Messages whose first byte says which they are, all from one reused buffer. */
  const SIZES = [150 * KiB, 100, 20 * KiB, 64 * KiB, 16 * KiB - 1, 16 * KiB];

  function sendAll(link: Link, scratch: Buffer): void {
    SIZES.forEach((n, i) => {
      scratch.fill(i + 1, 0, n);
      link.sendMessage(7, 0, scratch.subarray(0, n));
      scratch.fill(0xee); // the caller reuses its buffer at once
    });
  }

  function check(messages: readonly Buffer[]): void {
    expect(messages.map((m) => m.length)).toEqual(SIZES);
    messages.forEach((m, i) => {
      expect(m.every((b) => b === i + 1)).toBe(true);
    });
  }

  /** Reassembles the DATA and CONT frames a peer link would get. */
  function deliver(frames: readonly Frame[]): Buffer[] {
    const peer = setup();
    for (const f of frames) peer.link.onFrame(f.type, f.flags, f.stream, f.payload);
    return peer.got.map((g) => g.message);
  }

  it('sends what the caller passed, whatever it does with its buffer afterwards', async () => {
    const { link, conn } = setup();
    sendAll(link, Buffer.alloc(200 * KiB));
    for (let i = 0; i < 10; i++) await turn();
    check(deliver(conn.frames()));
  });

  it('resends the same bytes after a reconnect, though the caller reused its buffer', async () => {
    const { link, conn } = setup();
    const scratch = Buffer.alloc(200 * KiB);
    sendAll(link, scratch);
    for (let i = 0; i < 10; i++) await turn();
    conn.frames(); // written, never acknowledged
    scratch.fill(0x55);
    link.detach(conn as unknown as Connection);
    const next = new FakeConn();
    link.attach(next as unknown as Connection, INCARNATION, true, 0, 0);
    check(deliver(next.frames()));
  });

  it('takes a caller-owned buffer as it is, without a copy', async () => {
    const { link, conn } = setup();
    const mine = Buffer.alloc(32 * KiB, 1);
    link.sendMessage(7, 0, mine, true);
    mine.fill(2); // breaks the promise made with `owned`: the change shows
    await turn();
    expect(deliver(conn.frames())[0]!.every((b) => b === 2)).toBe(true);
  });

  it('reuses the copy block of an acknowledged message for the next one', async () => {
    const { link, conn } = setup();
    const pool = (link as unknown as { pool: { allocated: number; reused: number } }).pool;
    const ack = Buffer.alloc(8);
    for (let i = 1; i <= 50; i++) {
      link.sendMessage(7, 0, Buffer.alloc(64 * KiB, i));
      await turn();
      const frames = conn.frames();
      expect(frames[0]!.payload[0]).toBe(i & 0xff);
      ack.writeUInt32BE(i, 4);
      link.onFrame(FrameType.ACK, 0, 0, ack);
    }
    expect({ allocated: pool.allocated, reused: pool.reused }).toEqual({
      allocated: 1,
      reused: 49,
    });
  });
});
