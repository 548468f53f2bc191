import { filter } from 'rxjs';
import type { Switchboard } from '../../../lib/facade.js';
import type { SwitchboardEvent } from '../../../lib/switchboard/events.js';
import {
  closeAll,
  pathCluster,
  PATHS,
  startCluster,
  take,
  until,
  hubOf,
} from '../../support/cluster.js';

/** Drop events seen on `sb`, summed per channel. */
function dropCounter(sb: Switchboard): Map<string, number> {
  const counts = new Map<string, number>();
  sb.events$
    .pipe(filter((e): e is Extract<SwitchboardEvent, { type: 'drop' }> => e.type === 'drop'))
    .subscribe((e) => counts.set(e.channel, (counts.get(e.channel) ?? 0) + e.count));
  return counts;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe.each(PATHS)('fire-and-forget over the %s path', (path) => {
  it('posts to a named receiver, in order, without a sender in sight', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<number>('inbox');
      const got = take(r, 1000);
      for (let i = 0; i < 1000; i++) tx.post('inbox', i, { node: rx.id });
      expect(await got).toEqual(range(1000));
      expect(tx.stats().drops).toEqual({});
    } finally {
      await closeAll(sbs);
    }
  });

  it('posts to MPMC channels: one receiver each, or all of them', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const ones = [rx.mpmcReceiver<number>('work'), rx.mpmcReceiver<number>('work')];
      const alls = [rx.mpmcReceiver<string>('news'), rx.mpmcReceiver<string>('news')];
      await until(
        () =>
          hubOf(tx).directory.lookup('mpmc', 'work').length === 2 &&
          hubOf(tx).directory.lookup('mpmc', 'news').length === 2,
        5000,
        'receivers seen',
      );
      for (let i = 0; i < 100; i++) tx.post('work', i, { mode: 'one' });
      tx.post('news', 'hello', { mode: 'all' });
      await until(
        () => ones.reduce((n, r) => n + r.stats().received, 0) === 100,
        5000,
        'work arrived',
      );
      const got: number[] = [];
      for (const r of ones) while (r.queued > 0) got.push((await r.next()).value as number);
      expect(got.sort((a, b) => a - b)).toEqual(range(100));
      for (const r of alls) expect(await take(r, 1)).toEqual(['hello']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('never throws; what cannot go out is counted and reported as drop events', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const drops = dropCounter(tx);
      // A bad target is a drop, not an exception.
      expect(() => tx.post('x', 1, { node: 99 })).not.toThrow();
      expect(drops.get('x')).toBe(1);
      // A stalled receiver: its window fills, then the sender's queue (1024), then posts drop.
      const r = rx.receiver<number>('stalled', { capacity: 16, window: 16 });
      const n = 2000;
      for (let i = 0; i < n; i++) tx.post('stalled', i, { node: rx.id });
      await until(() => r.queued === 16, 5000, 'window used');
      // Locally the window takes 16 at once; remotely the first posts queue while the stream opens.
      const dropped = drops.get('stalled')!;
      expect(dropped).toBeGreaterThanOrEqual(n - 16 - 1024);
      expect(tx.stats().drops.stalled).toBe(dropped);
      // Draining the receiver lets the queued posts through, in order: all but the dropped tail.
      expect(await take(r, n - dropped)).toEqual(range(n - dropped));
    } finally {
      await closeAll(sbs);
    }
  });

  it('counts posts lost with their receiver as drops (direct Sender.post too)', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const drops = dropCounter(tx);
      const r = rx.receiver<number>('doomed');
      const s = tx.sender<number>('doomed', { node: rx.id });
      for (let i = 0; i < 10; i++) s.post(i);
      await until(() => r.queued === 10, 5000, 'posts buffered at the receiver');
      r.close();
      await until(() => s.closed, 5000, 'sender learns the receiver closed');
      expect(s.dropped).toBe(10);
      expect(drops.get('doomed')).toBe(10);
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('fire-and-forget when a node goes away', () => {
  it('reports posts in flight to a lost node as drops', async () => {
    const sbs = await startCluster(2, { heartbeatMs: 50, deadPeerMs: 300 });
    try {
      const [tx, rx] = sbs as [Switchboard, Switchboard];
      const drops = dropCounter(tx);
      const r = rx.receiver<number>('far');
      for (let i = 0; i < 100; i++) tx.post('far', i, { node: rx.id });
      await until(() => r.queued === 100, 5000, 'posts buffered remotely');
      await rx.destroy();
      await until(() => (drops.get('far') ?? 0) === 100, 5000, 'lost posts reported');
      expect(tx.stats().drops.far).toBe(100);
    } finally {
      await closeAll(sbs);
    }
  });
});
