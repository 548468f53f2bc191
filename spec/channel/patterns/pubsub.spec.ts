import { firstValueFrom, filter, take as rxTake, toArray } from 'rxjs';
import type { Switchboard } from '../../../lib/facade.js';
import { isValidPattern, isValidTopic, topicMatches } from '../../../lib/index.js';
import type { Publication, Subscription } from '../../../lib/index.js';
import type { StandardSchemaV1 } from '../../../lib/channel/schema.js';
import type { SwitchboardEvent } from '../../../lib/switchboard/events.js';
import { closeAll, PATHS, startCluster, until } from '../../support/cluster.js';
import type { Path } from '../../support/cluster.js';

describe('topic matching (NATS semantics)', () => {
  it.each([
    ['orders.eu', 'orders.eu', true],
    ['orders.eu', 'orders.us', false],
    ['orders.eu', 'orders.eu.paris', false],
    ['orders.*', 'orders.eu', true],
    ['orders.*', 'orders', false],
    ['orders.*', 'orders.eu.paris', false],
    ['*.eu', 'orders.eu', true],
    ['*.eu', 'eu', false],
    ['orders.*.paris', 'orders.eu.paris', true],
    ['orders.*.paris', 'orders.eu.lyon', false],
    ['orders.>', 'orders.eu', true],
    ['orders.>', 'orders.eu.paris.1', true],
    ['orders.>', 'orders', false],
    ['>', 'orders', true],
    ['>', 'orders.eu.paris', true],
    ['*', 'orders', true],
    ['*', 'orders.eu', false],
    ['*.>', 'orders.eu', true],
    ['*.>', 'orders', false],
    ['orders.*.>', 'orders.eu.paris', true],
    ['orders.*.>', 'orders.eu', false],
    ['Orders.eu', 'orders.eu', false],
  ])('%s against %s: %s', (pattern, topic, expected) => {
    expect(topicMatches(pattern, topic)).toBe(expected);
  });

  it.each(['', 'a..b', '.a', 'a.', 'a.>.b', 'a*', 'a.b>', 'a b', 'a.\tb'])(
    'refuses the pattern %j',
    (pattern) => {
      expect(isValidPattern(pattern)).toBe(false);
    },
  );

  it.each(['', 'a..b', 'a.*', 'a.>', '*', 'a b', 'x*'])('refuses the topic %j', (topic) => {
    expect(isValidTopic(topic)).toBe(false);
  });
});

/** Local: one switchboard does everything. TCP: three nodes, subscribers spread, publishing from node 0. */
async function cluster(path: Path): Promise<Switchboard[]> {
  return startCluster(path === 'local' ? 1 : 3);
}

function on(sbs: readonly Switchboard[], i: number): Switchboard {
  return sbs[i % sbs.length]!;
}

function drops(sb: Switchboard): SwitchboardEvent[] {
  const seen: SwitchboardEvent[] = [];
  sb.events$.pipe(filter((e) => e.type === 'drop')).subscribe((e) => seen.push(e));
  return seen;
}

function dropCount(events: readonly SwitchboardEvent[], channel: string): number {
  let n = 0;
  for (const e of events) if (e.type === 'drop' && e.channel === channel) n += e.count;
  return n;
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/**
 * The next `n` publications. Unlike `take()` from the support module, it
 * does not end the subscription (breaking out of `for await` closes it).
 */
async function take<T>(sub: Subscription<T>, n: number): Promise<Array<Publication<T>>> {
  const out: Array<Publication<T>> = [];
  while (out.length < n) {
    const r = await sub.next();
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

describe.each(PATHS)('pub-sub over the %s path', (path) => {
  it('delivers each topic to exactly the matching subscriptions', async () => {
    const sbs = await cluster(path);
    try {
      const patterns = ['orders.eu', 'orders.*', 'orders.>', '*.eu', '>', 'stock.*'];
      const subs = patterns.map((p, i) => on(sbs, i + 1).subscribe<number>(p));
      const pub = sbs[0]!;
      await until(() => pub.subscribers('orders.eu') === 5, 5000, 'subscriptions seen');
      const topics = ['orders.eu', 'orders.us', 'orders.eu.paris', 'stock.eu', 'misc'];
      topics.forEach((t, i) => pub.publish(t, i));
      const expected = patterns.map((p) => topics.filter((t) => topicMatches(p, t)));
      const got = await Promise.all(subs.map((s, i) => take(s, expected[i]!.length)));
      expect(got.map((list) => list.map((m) => m.topic))).toEqual(expected);
      expect(got.map((list) => list.map((m) => m.value))).toEqual(
        expected.map((list) => list.map((t) => topics.indexOf(t))),
      );
      // Nothing more arrives: a trailing marker is the next message of every subscription.
      pub.publish('orders.eu.end', -1);
      const tails = await Promise.all(
        subs.filter((_, i) => topicMatches(patterns[i]!, 'orders.eu.end')).map((s) => take(s, 1)),
      );
      for (const [m] of tails) expect(m!.value).toBe(-1);
    } finally {
      await closeAll(sbs);
    }
  });

  it('fans out to several subscribers on every node, each in publish order per publisher', async () => {
    const sbs = await cluster(path);
    try {
      const subs = range(6).map((i) => on(sbs, i).subscribe<[number, number]>('feed.>'));
      const publishers = [sbs[0]!, on(sbs, 2)];
      await until(
        () => publishers.every((p) => p.subscribers('feed.x') === 6),
        5000,
        'subscriptions seen by both publishers',
      );
      const n = 2000;
      const got = subs.map((s) => take(s, 2 * n));
      for (let i = 0; i < n; i++) {
        // Never waits: both publishers interleave in one synchronous loop.
        expect(publishers[0]!.publish('feed.a', [0, i])).toBe(true);
        publishers[1]!.publish('feed.b.c', [1, i]);
      }
      for (const list of await Promise.all(got)) {
        expect(list.filter((m) => m.value[0] === 0).map((m) => m.value[1])).toEqual(range(n));
        expect(list.filter((m) => m.value[0] === 1).map((m) => m.value[1])).toEqual(range(n));
        expect(new Set(list.map((m) => m.topic))).toEqual(new Set(['feed.a', 'feed.b.c']));
      }
      for (const s of subs) expect(s.stats().dropped).toBe(0);
    } finally {
      await closeAll(sbs);
    }
  });

  it.each(['drop-newest', 'drop-oldest'] as const)(
    'a slow subscriber (%s) drops, counted, while the publisher and the others go on',
    async (overflow) => {
      const sbs = await cluster(path);
      try {
        const slowNode = on(sbs, 1);
        const events = drops(slowNode);
        const slow = slowNode.subscribe<number>('tick', { bufferSize: 10, overflow });
        const fast = [on(sbs, 2).subscribe<number>('tick'), sbs[0]!.subscribe<number>('tick')];
        const pub = sbs[0]!;
        await until(() => pub.subscribers('tick') === 3, 5000, 'subscriptions seen');
        const n = 1000;
        const got = fast.map((s) => take(s, n));
        const started = performance.now();
        for (let i = 0; i < n; i++) pub.publish('tick', i);
        // The publisher never waited on the slow subscriber.
        expect(performance.now() - started).toBeLessThan(1000);
        for (const list of await Promise.all(got))
          expect(list.map((m) => m.value)).toEqual(range(n));
        await until(() => slow.stats().received === n, 5000, 'slow subscriber saw everything');
        expect(slow.stats()).toMatchObject({ received: n, dropped: n - 10, queued: 10 });
        expect(slowNode.stats().drops[slow.channel]).toBe(n - 10);
        expect(dropCount(events, slow.channel)).toBe(n - 10);
        const kept = (await take(slow, 10)).map((m) => m.value);
        expect(kept).toEqual(overflow === 'drop-newest' ? range(10) : range(10, n - 10));
        for (const s of fast) expect(s.stats().dropped).toBe(0);
      } finally {
        await closeAll(sbs);
      }
    },
  );

  it('the fail policy ends that subscriber only, with ERR_SB_OVERFLOW', async () => {
    const sbs = await cluster(path);
    try {
      const doomed = on(sbs, 1).subscribe<number>('tick', { bufferSize: 5, overflow: 'fail' });
      const fine = on(sbs, 2).subscribe<number>('tick');
      const pub = sbs[0]!;
      await until(() => pub.subscribers('tick') === 2, 5000, 'subscriptions seen');
      const n = 500;
      const got = take(fine, n);
      for (let i = 0; i < n; i++) pub.publish('tick', i);
      expect((await got).map((m) => m.value)).toEqual(range(n));
      await until(() => doomed.closed, 5000, 'failed subscription');
      await expect(
        (async () => {
          for await (const _ of doomed) {
            // drain what was buffered before the failure, if anything
          }
        })(),
      ).rejects.toMatchObject({ code: 'ERR_SB_OVERFLOW' });
      // Publishers forget it; the other subscription keeps working.
      await until(() => pub.subscribers('tick') === 1, 5000, 'failed subscription withdrawn');
      pub.publish('tick', n);
      expect((await take(fine, 1))[0]!.value).toBe(n);
    } finally {
      await closeAll(sbs);
    }
  });

  it('validates values with a schema: invalid ones are errors, skipped', async () => {
    const sbs = await cluster(path);
    try {
      const evenOnly: StandardSchemaV1<unknown, number> = {
        '~standard': {
          version: 1,
          vendor: 'spec',
          validate: (v) =>
            typeof v === 'number' && v % 2 === 0 ? { value: v } : { issues: [{ message: 'odd' }] },
        },
      };
      const sub = on(sbs, 1).subscribe('n', { schema: evenOnly });
      const errors = firstValueFrom(sub.errors$.pipe(rxTake(2), toArray()));
      const pub = sbs[0]!;
      await until(() => pub.subscribers('n') === 1, 5000, 'subscription seen');
      for (let i = 0; i < 5; i++) pub.publish('n', i);
      expect((await take(sub, 3)).map((m) => m.value)).toEqual([0, 2, 4]);
      expect((await errors).map((e) => e.code)).toEqual(['ERR_SB_VALIDATION', 'ERR_SB_VALIDATION']);
      expect(sub.stats()).toMatchObject({ received: 5, delivered: 3, invalid: 2 });
    } finally {
      await closeAll(sbs);
    }
  });

  it('offers an Observable, carries binary values as bytes, and stops at close', async () => {
    const sbs = await cluster(path);
    try {
      const sub = on(sbs, 1).subscribe<Uint8Array>('bin.*');
      const pub = sbs[0]!;
      await until(() => pub.subscribers('bin.x') === 1, 5000, 'subscription seen');
      const all = firstValueFrom(sub.observable().pipe(rxTake(3), toArray()));
      for (let i = 0; i < 3; i++) pub.publish(`bin.${i}`, Buffer.from([i, i + 1, i + 2]));
      const got: Array<Publication<Uint8Array>> = await all;
      expect(got.map((m) => m.topic)).toEqual(['bin.0', 'bin.1', 'bin.2']);
      expect(got.map((m) => [...m.value])).toEqual([
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
      ]);
      sub.close();
      expect(sub.closed).toBe(true);
      await until(() => pub.subscribers('bin.x') === 0, 5000, 'subscription withdrawn');
      expect(pub.publish('bin.x', Buffer.alloc(1))).toBe(true);
      expect(await sub.next()).toEqual({ value: undefined, done: true });
    } finally {
      await closeAll(sbs);
    }
  });

  it('refuses bad patterns, topics and options with typed errors', async () => {
    const sbs = await cluster(path);
    try {
      const sb = sbs[0]!;
      const thrown = (fn: () => unknown): unknown => {
        try {
          fn();
        } catch (err) {
          return err;
        }
        return undefined;
      };
      const invalid = (option: string): object => ({ code: 'ERR_SB_INVALID_OPTION', option });
      expect(thrown(() => sb.subscribe('a..b'))).toMatchObject(invalid('pattern'));
      expect(thrown(() => sb.subscribe('a', { bufferSize: 0 }))).toMatchObject(
        invalid('bufferSize'),
      );
      expect(
        thrown(() => sb.subscribe('a', { overflow: 'block' as unknown as 'fail' })),
      ).toMatchObject(invalid('overflow'));
      expect(thrown(() => sb.publish('a.*', 1))).toMatchObject(invalid('topic'));
      expect(thrown(() => sb.publisher({ queueSize: -1 }))).toMatchObject(invalid('queueSize'));
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('pub-sub over a full link', () => {
  it('drops for that peer (counted) instead of blocking, and drained() lets a publisher lose nothing', async () => {
    // The smallest link buffer, and messages large enough to fill it in one burst.
    const sbs = await startCluster(2, { linkBufferBytes: 64 * 1024 });
    try {
      const [pub, subNode] = sbs as [Switchboard, Switchboard];
      const events = drops(pub);
      const sub = subNode.subscribe<Buffer>('big');
      const local = pub.subscribe<Buffer>('big');
      const publisher = pub.publisher({ queueSize: 4 });
      await until(() => publisher.subscribers('big') === 2, 5000, 'subscriptions seen');
      const payload = (i: number): Buffer => Buffer.alloc(8 * 1024, i);
      const n = 100;
      let refused = 0;
      const started = performance.now();
      for (let i = 0; i < n; i++) if (!publisher.publish('big', payload(i))) refused++;
      expect(performance.now() - started).toBeLessThan(1000);
      const stats = publisher.stats();
      expect(refused).toBeGreaterThan(0);
      expect(stats.dropped).toBeGreaterThan(0);
      const label = [...new Set(events.map((e) => (e.type === 'drop' ? e.channel : '')))];
      expect(label).toHaveLength(1);
      expect(label[0]).toMatch(/^pubsub:big#\d+@1$/);
      expect(dropCount(events, label[0]!)).toBe(stats.dropped);
      expect(pub.stats().drops[label[0]!]).toBe(stats.dropped);
      // The local subscriber got everything; the remote one an in-order subsequence.
      expect((await take(local, n)).map((m) => m.value[0])).toEqual(range(n));
      const remote = (await take(sub, n - stats.dropped)).map((m) => m.value[0]!);
      expect(remote).toEqual([...remote].sort((a, b) => a - b));
      expect(new Set(remote).size).toBe(n - stats.dropped);

      // A publisher that waits for drained() whenever publish() says so loses nothing.
      const before = publisher.stats().dropped;
      const all = take(sub, n);
      for (let i = 0; i < n; i++)
        if (!publisher.publish('big', payload(i))) await publisher.drained();
      expect((await all).map((m) => m.value[0])).toEqual(range(n));
      expect(publisher.stats().dropped).toBe(before);
      await take(local, n);
      publisher.close();
    } finally {
      await closeAll(sbs);
    }
  });

  it('a subscriber whose node goes away is forgotten; the others keep receiving', async () => {
    const sbs = await startCluster(3, { heartbeatMs: 50, deadPeerMs: 300 });
    try {
      const [pub, a, b] = sbs as [Switchboard, Switchboard, Switchboard];
      const subA = a.subscribe<number>('x');
      const subB: Subscription<number> = b.subscribe<number>('x');
      await until(() => pub.subscribers('x') === 2, 5000, 'subscriptions seen');
      pub.publish('x', 1);
      expect((await take(subA, 1))[0]!.value).toBe(1);
      await b.destroy();
      await until(() => pub.subscribers('x') === 1, 5000, 'lost subscriber forgotten');
      pub.publish('x', 2);
      expect((await take(subA, 1))[0]!.value).toBe(2);
      expect(subB.closed).toBe(true);
    } finally {
      await closeAll(sbs);
    }
  });
});
