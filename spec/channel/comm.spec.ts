import { createHash, randomFillSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Switchboard } from '../../lib/facade.js';
import { localNodes } from '../support/ports.js';
import { closeAll, pathCluster, PATHS, SECRET, until, hubOf } from '../support/cluster.js';
import { receive as next } from './fixtures/receive.js';

/**
 * The `comm` crate's channel tests, over the in-process and the TCP path.
 * (Two interleaved senders and a receiver that ends once its n producers hung
 * up are in mpsc.spec.ts; the three-process broadcast is cluster-comm.spec.ts.)
 */

/** Open file descriptors of this process. */
function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

describe.each(PATHS)('comm crate suite over the %s path', (path) => {
  it('survives 16,384 sequential sender connections without growing descriptors or stream maps', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const N = 16_384;
      const r = rx.receiver<number>('sequential');
      const fdsBefore = fdCount();
      let fdsMax = fdsBefore;
      const got = next(r, N);
      for (let i = 0; i < N; i++) {
        const s = tx.sender<number>('sequential', { node: rx.id });
        await s.send(i);
        s.close();
        if (i % 1024 === 0) fdsMax = Math.max(fdsMax, fdCount());
      }
      expect(await got).toEqual(Array.from({ length: N }, (_, i) => i));
      // One multiplexed link: not a socket (nor a descriptor) per sender.
      expect(fdsMax - fdsBefore).toBeLessThanOrEqual(2);
      expect(fdCount() - fdsBefore).toBeLessThanOrEqual(2);
      // Every stream was forgotten on both sides once its CLOSE arrived.
      const open = (sb: Switchboard): number =>
        hubOf(sb)
          .streamCounts()
          .reduce((sum, c) => sum + c.out + c.in, 0);
      await until(() => open(rx) === 0 && open(tx) === 0, 5_000, 'stream maps to empty');
      expect(r.stats()).toMatchObject({ received: N, delivered: N, queued: 0, senders: 0 });
      // And the receiver's credit accounting did not leak: a new sender gets a full window
      // (1024 messages by default) while nobody reads.
      const last = tx.sender<number>('sequential', { node: rx.id, timeoutMs: 5_000 });
      for (let i = 0; i < 1024; i++) await last.send(i);
      await until(() => r.queued === 1024, 5_000, 'a full window buffered');
    } finally {
      await closeAll(sbs);
    }
  }, 30_000);

  it('carries a 64 MiB message intact', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const size = 64 * 1024 * 1024;
      const r = rx.receiver<Buffer>('big');
      const s = tx.sender<Uint8Array>('big', { node: rx.id, timeoutMs: 5_000 });
      const payload = randomFillSync(Buffer.allocUnsafe(size));
      const digest = createHash('sha256').update(payload).digest('hex');
      const framesBefore = tx.peers().find((p) => p.node === rx.id)?.framesOut ?? 0;
      const rssBefore = process.memoryUsage().rss;
      const sent = s.send(payload);
      const [got] = await next(r, 1);
      await sent;
      expect(got!.length).toBe(size);
      expect(createHash('sha256').update(got!).digest('hex')).toBe(digest);
      if (path === 'tcp') {
        // Fragmented (64 KiB fragments by default), and a copy, not the sender's buffer.
        const frames = tx.peers().find((p) => p.node === rx.id)!.framesOut - framesBefore;
        expect(frames).toBeGreaterThanOrEqual(size / (64 * 1024));
        expect(got).not.toBe(payload);
      }
      // A few copies at most (sender's copy, replay log, reassembly), never a blow-up.
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(8 * size);
      // The channel still works after the big message (its byte credit was not left in debt).
      await s.send(Buffer.from('after'));
      const [small] = await next(r, 1);
      expect(Buffer.from(small!).toString()).toBe('after');
    } finally {
      await closeAll(sbs);
    }
  }, 30_000);

  it('delivers a broadcast sent before any receiver exists, once one does', async () => {
    // The waiting rule: an `all` send waits (bounded by maxPending and
    // timeoutMs) while the channel has no receiver; it then goes to every
    // receiver whose stream is open when it is transmitted. Receivers that
    // join later get only later messages.
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const s = tx.mpmcSender<string>('news', { mode: 'all', timeoutMs: 10_000 });
      const sends = [s.send('early-1'), s.send('early-2')];
      expect(s.waiting).toBe(2);
      const r = rx.mpmcReceiver<string>('news');
      await Promise.all(sends);
      await s.send('late');
      expect(await next(r, 3)).toEqual(['early-1', 'early-2', 'late']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('fails a broadcast that waits for a receiver too long with ERR_SB_NO_RECEIVER', async () => {
    const { sbs, tx } = await pathCluster(path);
    try {
      const s = tx.mpmcSender<string>('nobody', { mode: 'all', timeoutMs: 50 });
      await expect(s.send('lost')).rejects.toMatchObject({ code: 'ERR_SB_NO_RECEIVER' });
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('comm crate suite: a one-node cluster', () => {
  it('broadcasts to every receiver of the node, each in order', async () => {
    const nodes = await localNodes(1);
    const sb = await Switchboard.start({ nodes, id: 0, secret: SECRET });
    try {
      await sb.rendezvous({ timeoutMs: 1_000 });
      const rs = [0, 1, 2].map(() => sb.mpmcReceiver<number>('solo'));
      const s = sb.mpmcSender<number>('solo', { mode: 'all' });
      const got = Promise.all(rs.map((r) => next(r, 500)));
      for (let i = 0; i < 500; i++) await s.send(i);
      for (const g of await got) expect(g).toEqual(Array.from({ length: 500 }, (_, i) => i));
    } finally {
      await sb.close();
    }
  });
});
