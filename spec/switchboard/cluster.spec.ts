import { firstValueFrom, filter } from 'rxjs';
import { Cluster } from '../../lib/switchboard/cluster.js';
import type { ClusterHandler } from '../../lib/switchboard/events.js';
import type { SwitchboardOptions } from '../../lib/switchboard/options.js';
import { jest } from '@jest/globals';
import { FrameType } from '../../lib/protocol/frame.js';
import { Link } from '../../lib/switchboard/link.js';
import { localNodes } from '../support/ports.js';

const SECRET = 'an-adequately-long-secret';

class TestCluster extends Cluster implements ClusterHandler {
  readonly got: Array<{ peer: number; stream: number; text: string }> = [];
  /** The messages themselves, in arrival order (views into the read chunks). */
  readonly bodies: Buffer[] = [];
  readonly ends: number[] = [];
  static async start(o: SwitchboardOptions): Promise<TestCluster> {
    const c = new TestCluster(o);
    c.setHandler(c);
    await c.startCluster();
    return c;
  }
  onMessage(peer: number, stream: number, _flags: number, message: Buffer): void {
    this.got.push({ peer, stream, text: message.toString() });
    this.bodies.push(message);
  }
  onControl(): void {}
  onWritable(): void {}
  onSessionStart(): void {}
  onSessionEnd(peer: number): void {
    this.ends.push(peer);
  }
}

async function cluster(n: number, extra: Partial<SwitchboardOptions> = {}): Promise<TestCluster[]> {
  const nodes = await localNodes(n);
  return Promise.all(
    nodes.map((_, id) => TestCluster.start({ nodes, id, secret: SECRET, ...extra })),
  );
}

describe('Cluster (in-process nodes over TCP)', () => {
  it('rendezvouses three nodes and carries messages both ways', async () => {
    const cs = await cluster(3);
    try {
      await Promise.all(cs.map((c) => c.rendezvous({ timeoutMs: 5000 })));
      cs[0]!.sendMessage(2, 7, 0, Buffer.from('hello'));
      cs[2]!.sendMessage(0, 9, 0, Buffer.from('back'));
      const big = Buffer.alloc(300_000, 'x');
      cs[1]!.sendMessage(0, 3, 0, big);
      await waitFor(() => cs[2]!.got.length === 1 && cs[0]!.got.length === 2);
      expect(cs[2]!.got).toEqual([{ peer: 0, stream: 7, text: 'hello' }]);
      expect(cs[0]!.got.map((g) => g.text.length).sort((a, b) => a - b)).toEqual([4, 300_000]);
      for (const c of cs) expect(c.peers().every((p) => p.state === 'up')).toBe(true);
    } finally {
      await Promise.all(cs.map((c) => c.close()));
    }
  });

  it('rejects rendezvous naming the missing peer, whichever side dials', async () => {
    const nodes = await localNodes(3);
    const a = await TestCluster.start({ nodes, id: 1, secret: SECRET });
    try {
      await expect(a.rendezvous({ timeoutMs: 300 })).rejects.toMatchObject({
        code: 'ERR_SB_RENDEZVOUS_TIMEOUT',
        missing: [0, 2],
      });
    } finally {
      await a.close();
    }
  });

  it('refuses a peer with the wrong secret and reports an auth failure', async () => {
    const nodes = await localNodes(2);
    const a = await TestCluster.start({ nodes, id: 1, secret: SECRET });
    const failure = firstValueFrom(a.events$.pipe(filter((e) => e.type === 'auth-failure')));
    const b = await TestCluster.start({ nodes, id: 0, secret: 'another-long-enough-secret' });
    try {
      await expect(failure).resolves.toMatchObject({ error: { code: 'ERR_SB_AUTH_FAILED' } });
      expect(a.isUp(0)).toBe(false);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('resumes after the TCP link is cut, losing nothing', async () => {
    const cs = await cluster(2, { reconnectMinMs: 10, reconnectMaxMs: 50 });
    try {
      await Promise.all(cs.map((c) => c.rendezvous({ timeoutMs: 5000 })));
      const N = 20000;
      let sent = 0;
      const pump = (): void => {
        while (sent < N && cs[0]!.writable(1)) {
          cs[0]!.sendMessage(1, 1, 0, Buffer.from(String(sent++)));
          if (sent % 500 === 0) break;
        }
        if (sent === 5000) {
          // Cut the socket under the session.
          (
            cs[0] as unknown as { links: Array<{ conn?: { socket: { destroy(): void } } }> }
          ).links[1]!.conn!.socket.destroy();
        }
        if (sent < N) setImmediate(pump);
      };
      pump();
      await waitFor(() => cs[1]!.got.length >= N, 15000);
      expect(cs[1]!.got.map((g) => Number(g.text))).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(cs[1]!.ends).toEqual([]);
    } finally {
      await Promise.all(cs.map((c) => c.close()));
    }
  });

  it('a sender reusing one buffer for every message: all arrive as sent, across a cut, while copy blocks are recycled', async () => {
    const linkBufferBytes = 4 * 1024 * 1024;
    const cs = await cluster(2, { reconnectMinMs: 10, reconnectMaxMs: 50, linkBufferBytes });
    try {
      await Promise.all(cs.map((c) => c.rendezvous({ timeoutMs: 5000 })));
      const N = 600;
      const size = (i: number): number => (i % 5 === 4 ? 20 * 1024 + i : 64 * 1024);
      const scratch = Buffer.alloc(64 * 1024);
      let sent = 0;
      await new Promise<void>((resolve) => {
        const pump = (): void => {
          while (sent < N && cs[0]!.writable(1)) {
            const n = size(sent);
            scratch.fill(sent & 0xff, 0, n);
            scratch.writeUInt32BE(sent, 0);
            cs[0]!.sendMessage(1, 1, 0, scratch.subarray(0, n));
            scratch.fill(0xee); // reused at once, as the contract allows
            sent++;
            if (sent === N / 2) {
              // Cut the socket under the session, with writes in flight.
              (
                cs[0] as unknown as { links: Array<{ conn?: { socket: { destroy(): void } } }> }
              ).links[1]!.conn!.socket.destroy();
            }
            if (sent % 50 === 0) break;
          }
          if (sent < N) setImmediate(pump);
          else resolve();
        };
        pump();
      });
      await waitFor(() => cs[1]!.bodies.length >= N, 15000);
      const bad = cs[1]!.bodies.findIndex(
        (b, i) =>
          b.length !== size(i) ||
          b.readUInt32BE(0) !== i ||
          b.subarray(4).some((x) => x !== (i & 0xff)),
      );
      expect(bad).toBe(-1);
      expect(cs[1]!.bodies).toHaveLength(N);
      const pool = (
        cs[0] as unknown as { links: Array<{ pool: { allocated: number; reused: number } }> }
      ).links[1]!.pool;
      // Every message was a pooled copy. Blocks in use are bounded by what
      // the link may keep unacknowledged (4 MiB: about 66 here), plus blocks
      // released beyond the idle cap and later replaced: most are reused.
      expect(pool.allocated + pool.reused).toBe(N);
      expect(pool.allocated).toBeLessThan(N / 4);
    } finally {
      await Promise.all(cs.map((c) => c.close()));
    }
  });

  it('a sender with the smallest link buffer streams on: it asks for the ACKs the lazy receiver would delay', async () => {
    const cs = await cluster(2, { linkBufferBytes: 64 * 1024 });
    // PINGs the receiving side gets: heartbeats come once a second; the rest ask for ACKs.
    const onFrame = jest.spyOn(Link.prototype, 'onFrame');
    const pings = (): number =>
      onFrame.mock.contexts.filter(
        (link, i) => (link as Link).peer === 0 && onFrame.mock.calls[i]![0] === FrameType.PING,
      ).length;
    try {
      await Promise.all(cs.map((c) => c.rendezvous({ timeoutMs: 5000 })));
      const N = 300;
      let sent = 0;
      const pump = (): void => {
        while (sent < N && cs[0]!.writable(1)) {
          cs[0]!.sendMessage(1, 1, 0, Buffer.alloc(20 * 1024, sent & 0xff));
          sent++;
        }
        if (sent < N) setImmediate(pump);
      };
      pump();
      await waitFor(() => cs[1]!.bodies.length >= N, 10000);
      expect(cs[1]!.bodies.map((b) => b[0])).toEqual(Array.from({ length: N }, (_, i) => i & 0xff));
      // Everything sent was acknowledged: nothing is left to resend.
      await waitFor(() => cs[0]!.peers().find((p) => p.node === 1)!.bufferedBytes === 0, 2000);
      // 6 MiB through a 64 KiB buffer: an ask every 32 KiB or so, not a 5 ms wait each time.
      expect(pings()).toBeGreaterThan(50);
    } finally {
      onFrame.mockRestore();
      await Promise.all(cs.map((c) => c.close()));
    }
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}
void FrameType;
