import type { NotDeliveredError, SwitchboardError } from '../../lib/errors.js';
import type { Receiver } from '../../lib/channel/receiver.js';
import type { Switchboard } from '../../lib/facade.js';
import { closeAll, pathCluster, PATHS, until, hubOf } from '../support/cluster.js';
import type { Path } from '../support/cluster.js';

/**
 * MPMC channels (docs/guide.md, "Channels"): a cluster-wide name, receivers on any node;
 * mode `one` gives each message to exactly one receiver, mode `all` to every
 * receiver. Over TCP, receivers sit both on the sender's node and on the
 * other one, so one sender drives local and remote streams at once.
 */

/**
 * Consumes a receiver in the background until it ends. A `busy` sink yields
 * to the event loop after each message, like a worker doing some work; an
 * idle one takes messages as fast as they come.
 */
class Sink<T> {
  readonly got: T[] = [];
  readonly done: Promise<void>;

  constructor(
    readonly receiver: Receiver<T>,
    busy = false,
  ) {
    this.done = (async () => {
      for (;;) {
        const res = await receiver.next();
        if (res.done === true) return;
        this.got.push(res.value);
        if (busy) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
  }
}

function total<T>(sinks: ReadonlyArray<Sink<T>>): number {
  return sinks.reduce((n, s) => n + s.got.length, 0);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function increasing(xs: readonly number[]): boolean {
  return xs.every((x, i) => i === 0 || x > xs[i - 1]!);
}

/** Waits until `sb` knows `n` receivers of the MPMC channel `name`. */
function known(sb: Switchboard, name: string, n: number): Promise<void> {
  return until(
    () => hubOf(sb).directory.lookup('mpmc', name).length === n,
    5_000,
    `${n} receivers of ${name}`,
  );
}

/** Collects what a sender reports as not delivered. */
function lost(errors: SwitchboardError[]): number[] {
  return errors.flatMap((e) => (e as NotDeliveredError & { messages: number[] }).messages);
}

describe.each(PATHS)('MPMC channels over the %s path', (path: Path) => {
  it('mode one: each message reaches exactly one receiver, and the load is spread', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      // Busy workers: a receiver that keeps up instantly would rightly take everything.
      const sinks = [rx, rx, tx].map((sb) => new Sink(sb.mpmcReceiver<number>('work'), true));
      await known(tx, 'work', 3);
      const s = tx.mpmcSender<number>('work', { mode: 'one' });
      const N = 3000;
      for (let i = 0; i < N; i++) await s.send(i);
      await until(() => total(sinks) === N, 10_000, 'every message');
      const all = sinks.flatMap((k) => k.got).sort((a, b) => a - b);
      expect(all).toEqual(range(0, N));
      for (const k of sinks) {
        expect(increasing(k.got)).toBe(true);
        expect(k.got.length).toBeGreaterThanOrEqual(N / 10);
      }
      for (const k of sinks) k.receiver.close();
      await Promise.all(sinks.map((k) => k.done));
    } finally {
      await closeAll(sbs);
    }
  });

  it('mode all: every receiver gets every message, in order', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const sinks = [rx, rx, tx].map((sb) => new Sink(sb.mpmcReceiver<number>('news')));
      await known(tx, 'news', 3);
      const s = tx.mpmcSender<number>('news', { mode: 'all', maxPending: 2000 });
      const N = 2000;
      // Not awaited one by one: sends queue behind each other, and the first
      // ones go out while the remote streams are still opening.
      await Promise.all(range(0, N).map((i) => s.send(i)));
      await until(() => total(sinks) === 3 * N, 10_000, 'every copy');
      for (const k of sinks) expect(k.got).toEqual(range(0, N));
      for (const k of sinks) k.receiver.close();
      await Promise.all(sinks.map((k) => k.done));
    } finally {
      await closeAll(sbs);
    }
  });

  it('mode one: receivers join and leave at run time; nothing is lost silently', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const a = new Sink(rx.mpmcReceiver<number>('jobs'), true);
      await known(tx, 'jobs', 1);
      const s = tx.mpmcSender<number>('jobs', { mode: 'one' });
      const errors: SwitchboardError[] = [];
      s.errors$.subscribe((e) => errors.push(e));
      for (let i = 0; i < 200; i++) await s.send(i);
      await until(() => a.got.length === 200, 5_000, 'phase 1');
      expect(a.got).toEqual(range(0, 200));

      // B joins: from then on both share the work.
      const b = new Sink(tx.mpmcReceiver<number>('jobs'));
      await known(tx, 'jobs', 2);
      for (let i = 200; i < 1200; i++) await s.send(i);
      await until(() => a.got.length + b.got.length === 1200, 5_000, 'phase 2');
      expect(b.got.length).toBeGreaterThan(0);
      expect(a.got.length).toBeGreaterThan(200);

      // A leaves with work in flight: what it never took is reported to the sender.
      for (let i = 1200; i < 1400; i++) await s.send(i);
      a.receiver.close();
      await a.done;
      await known(tx, 'jobs', 1);
      for (let i = 1400; i < 1600; i++) await s.send(i);
      const undelivered = (): number[] => lost(errors);
      await until(
        () => a.got.length + b.got.length + undelivered().length === 1600,
        5_000,
        'every message delivered or reported',
      );
      // A was busy: it left with messages buffered or in flight, which the sender heard of.
      expect(undelivered().length).toBeGreaterThan(0);
      expect(errors.every((e) => e.code === 'ERR_SB_NOT_DELIVERED')).toBe(true);
      const everything = [...a.got, ...b.got, ...undelivered()].sort((x, y) => x - y);
      expect(everything).toEqual(range(0, 1600));
      expect(increasing(a.got)).toBe(true);
      expect(increasing(b.got)).toBe(true);
      // After A left, only B gets work.
      expect(a.got.every((x) => x < 1400)).toBe(true);
      expect(b.got.filter((x) => x >= 1400)).toEqual(range(1400, 1600));
      b.receiver.close();
      await b.done;
    } finally {
      await closeAll(sbs);
    }
  });

  it('mode all: a receiver that joins gets what follows; one that leaves gets nothing more', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const a = new Sink(rx.mpmcReceiver<number>('feed'));
      const b = new Sink(tx.mpmcReceiver<number>('feed'));
      await known(tx, 'feed', 2);
      const s = tx.mpmcSender<number>('feed', { mode: 'all' });
      const errors: SwitchboardError[] = [];
      s.errors$.subscribe((e) => errors.push(e));
      for (let i = 0; i < 200; i++) await s.send(i);

      const c = new Sink(rx.mpmcReceiver<number>('feed'));
      await known(tx, 'feed', 3);
      for (let i = 200; i < 400; i++) await s.send(i);
      await until(() => a.got.length === 400 && b.got.length === 400, 5_000, 'phase 2');

      a.receiver.close();
      await a.done;
      await known(tx, 'feed', 2);
      for (let i = 400; i < 600; i++) await s.send(i);
      await until(() => b.got.length === 600 && c.got.length === 400, 5_000, 'phase 3');

      expect(a.got).toEqual(range(0, 400));
      expect(b.got).toEqual(range(0, 600));
      expect(c.got).toEqual(range(200, 600));
      expect(errors).toEqual([]);
      for (const k of [b, c]) k.receiver.close();
      await Promise.all([b.done, c.done]);
    } finally {
      await closeAll(sbs);
    }
  });
});
