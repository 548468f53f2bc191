import { createHash, randomFillSync } from 'node:crypto';
import type { SwitchboardError } from '../../lib/errors.js';
import type { Switchboard } from '../../lib/facade.js';
import type { SwitchboardEvent } from '../../lib/switchboard/events.js';
import { closeAll, clusterOf, startCluster, until } from '../support/cluster.js';
import { receive, receiveOne } from './fixtures/receive.js';

/**
 * docs/reliability.md 14 on channels: the TCP connection under the link between
 * two live nodes is destroyed in the middle of a stream, several times, from
 * either side. The session survives (same incarnations), the link resumes
 * and replays what the peer had not received: nothing is lost, duplicated or
 * reordered, and no sender hears of a loss. TCP only: the local path has no
 * link to cut.
 */

/** Destroys the socket under `sb`'s link to `peer` (as a network fault would). */
function cut(sb: Switchboard, peer: number): void {
  const links = (
    clusterOf(sb) as unknown as {
      links: Array<{ conn?: { socket: { destroy(): void } } } | undefined>;
    }
  ).links;
  const conn = links[peer]?.conn;
  if (conn === undefined) throw new Error(`no connection from node ${sb.id} to ${peer}`);
  conn.socket.destroy();
}

function recordEvents(sb: Switchboard): SwitchboardEvent[] {
  const out: SwitchboardEvent[] = [];
  sb.events$.subscribe((e) => out.push(e));
  return out;
}

const FAST_RECONNECT = { reconnectMinMs: 5, reconnectMaxMs: 50 };

describe('a TCP link cut mid-stream (same incarnations)', () => {
  it('resumes, losing, duplicating and reordering nothing, across several cuts', async () => {
    const sbs = await startCluster(2, FAST_RECONNECT);
    const [a, b] = sbs as [Switchboard, Switchboard];
    try {
      const evA = recordEvents(a);
      const evB = recordEvents(b);
      // One stream each way, so both data and credit frames are in flight at every cut.
      const ab = b.receiver<number>('a-to-b');
      const ba = a.receiver<number>('b-to-a');
      const sAB = a.sender<number>('a-to-b', { node: b.id });
      const sBA = b.sender<number>('b-to-a', { node: a.id });
      const errors: SwitchboardError[] = [];
      sAB.errors$.subscribe((e) => errors.push(e));
      sBA.errors$.subscribe((e) => errors.push(e));

      const types = (evs: SwitchboardEvent[]): string[] => evs.map((e) => e.type);
      const reconnects = (): number =>
        types(evA).filter((t) => t === 'peer-reconnected').length +
        types(evB).filter((t) => t === 'peer-reconnected').length;
      const N = 40_000;
      const cutsAt = [4_000, 12_000, 20_000, 28_000, 36_000];
      const gotAB: number[] = [];
      const gotBA: number[] = [];
      const consumeAB = (async () => {
        let k = 0;
        while (gotAB.length < N) {
          gotAB.push(await receiveOne(ab));
          if (gotAB.length === cutsAt[k]) {
            // Each cut hits a settled link: both sides relinked after the previous one.
            await until(() => reconnects() >= 2 * k, 10_000, `relink after cut ${k}`);
            // Alternate the side that sees the fault first.
            if (k % 2 === 0) cut(b, a.id);
            else cut(a, b.id);
            k++;
          }
        }
      })();
      const consumeBA = (async () => {
        while (gotBA.length < N) {
          gotBA.push(await receiveOne(ba));
        }
      })();
      const produce = async (s: typeof sAB): Promise<void> => {
        for (let i = 0; i < N; i++) await s.send(i);
      };
      await Promise.all([produce(sAB), produce(sBA), consumeAB, consumeBA]);

      const expected = Array.from({ length: N }, (_, i) => i);
      expect(gotAB).toEqual(expected);
      expect(gotBA).toEqual(expected);
      expect(errors).toEqual([]);
      // Every cut was a reconnect of the same session, never a lost peer.
      for (const evs of [evA, evB]) {
        expect(types(evs)).not.toContain('peer-down');
        expect(types(evs)).not.toContain('peer-restarted');
      }
      // The last cut may come after everything was already delivered: wait for its relink.
      await until(() => reconnects() >= 2 * cutsAt.length, 10_000, 'a relink after every cut');
      expect(reconnects()).toBeGreaterThanOrEqual(2 * cutsAt.length);
    } finally {
      await closeAll(sbs);
    }
  }, 30_000);

  it('delivers fragmented messages intact when the link is cut in the middle of them', async () => {
    const sbs = await startCluster(2, FAST_RECONNECT);
    const [a, b] = sbs as [Switchboard, Switchboard];
    try {
      const evA = recordEvents(a);
      const r = b.receiver<Buffer>('blobs');
      const s = a.sender<Uint8Array>('blobs', { node: b.id });
      const size = 4 * 1024 * 1024;
      const blobs = [0, 1, 2].map(() => randomFillSync(Buffer.allocUnsafe(size)));
      const digests = blobs.map((x) => createHash('sha256').update(x).digest('hex'));
      const bytesIn = (): number => b.peers().find((p) => p.node === a.id)!.bytesIn;
      const start = bytesIn();
      const received = receive(r, 3);
      const sent = Promise.all(blobs.map((x) => s.send(x)));
      // Cut while the second message is on the wire, then again during the third.
      for (const [i, at] of [1.5 * size, 2.5 * size].entries()) {
        await until(() => bytesIn() - start >= at, 10_000, `${at} bytes on the wire`);
        if (i === 0) cut(a, b.id);
        else cut(b, a.id);
      }
      await sent;
      const got = await received;
      expect(got.map((x) => createHash('sha256').update(x).digest('hex'))).toEqual(digests);
      expect(evA.filter((e) => e.type === 'peer-reconnected')).toHaveLength(2);
      expect(evA.filter((e) => e.type === 'peer-down')).toEqual([]);
    } finally {
      await closeAll(sbs);
    }
  }, 30_000);
});
