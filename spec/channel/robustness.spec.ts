import { filter, firstValueFrom } from 'rxjs';
import type { ChannelHub } from '../../lib/channel/hub.js';
import { UNLIMITED_CREDIT } from '../../lib/channel/receiver.js';
import type { SwitchboardError } from '../../lib/errors.js';
import { encodeValue } from '../../lib/protocol/codec.js';
import { FrameType } from '../../lib/protocol/frame.js';
import { closeAll, startCluster, until, hubOf, clusterOf } from '../support/cluster.js';

/** The hub's private stream tables, for injecting what a misbehaving peer would send. */
interface HubInternals {
  inStreams: Array<Map<number, unknown>>;
  outStreams: Array<Map<number, { credit: number; creditBytes: number }>>;
}
const internals = (hub: ChannelHub): HubInternals => hub as unknown as HubInternals;

describe('channel robustness against a misbehaving peer (TCP)', () => {
  it('ends a stream whose sender ignores credit, and keeps the link', async () => {
    const [rx, tx] = await startCluster(2);
    try {
      const r = rx!.receiver<number>('strict', { window: 4, capacity: 8 });
      const s = tx!.sender<number>('strict', { node: rx!.id });
      await s.send(0);
      await until(() => internals(hubOf(rx!)).inStreams[tx!.id]!.size === 1);
      const [stream] = [...internals(hubOf(rx!)).inStreams[tx!.id]!.keys()];
      const linkError = firstValueFrom(rx!.events$.pipe(filter((e) => e.type === 'link-error')));
      // What a peer that ignores flow control would deliver: far beyond the window.
      for (let i = 0; i < 20; i++) hubOf(rx!).onMessage(tx!.id, stream!, 0, encodeValue(i));
      await expect(linkError).resolves.toMatchObject({ error: { code: 'ERR_SB_PROTOCOL' } });
      expect(r.queued).toBeLessThanOrEqual(8 + 1);
      expect(internals(hubOf(rx!)).inStreams[tx!.id]!.size).toBe(0);
      // The link itself is fine: another channel still works.
      const r2 = rx!.receiver<string>('other');
      await tx!.sender<string>('other', { node: rx!.id }).send('still up');
      await expect(r2.next()).resolves.toEqual({ value: 'still up', done: false });
    } finally {
      await closeAll([rx!, tx!]);
    }
  });

  it('refuses OPEN and directory payloads that are not maps without closing the link', async () => {
    const [a, b] = await startCluster(2);
    try {
      const errors: unknown[] = [];
      a!.events$.subscribe((e) => {
        if (e.type === 'error' || e.type === 'link-error') errors.push(e);
      });
      for (const bad of [null, undefined, 7, 'x']) {
        hubOf(a!).onControl(b!.id, FrameType.OPEN, 0, 0x8000_7fff, encodeValue(bad));
        hubOf(a!).onControl(b!.id, FrameType.CONTROL, 0, 0, encodeValue(bad));
      }
      expect(clusterOf(a!).isUp(b!.id)).toBe(true);
      const r = a!.receiver<number>('after');
      await b!.sender<number>('after', { node: a!.id }).send(1);
      await expect(r.next()).resolves.toEqual({ value: 1, done: false });
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('tells the sender when the receiver refuses a message', async () => {
    const [rx, tx] = await startCluster(2);
    try {
      rx!.receiver<number>('picky');
      const s = tx!.sender<number>('picky', { node: rx!.id });
      await s.send(1);
      const refused = firstValueFrom(s.errors$);
      await until(() => internals(hubOf(rx!)).inStreams[tx!.id]!.size === 1);
      const [stream] = [...internals(hubOf(rx!)).inStreams[tx!.id]!.keys()];
      // A CBOR map with a __proto__ key: refused by the codec on the receiving side.
      const bomb = Buffer.from('a1695f5f70726f746f5f5f01', 'hex');
      hubOf(rx!).onMessage(tx!.id, stream!, 0, bomb);
      await expect(refused).resolves.toMatchObject({ code: 'ERR_SB_DECODE' });
    } finally {
      await closeAll([rx!, tx!]);
    }
  });

  it('does not spend credit on a lossy stream, so it never runs dry', async () => {
    const [rx, tx] = await startCluster(2);
    try {
      const r = rx!.receiver<number>('lossy', { overflow: 'drop-newest', capacity: 16 });
      const s = tx!.sender<number>('lossy', { node: rx!.id });
      const errs: SwitchboardError[] = [];
      s.errors$.subscribe((e) => errs.push(e));
      await s.send(0);
      await until(() => s.outlets[0]?.state === 'open');
      for (let i = 1; i < 5000; i++) s.post(i);
      const o = internals(hubOf(tx!)).outStreams[rx!.id]!.values().next().value!;
      expect(o.credit).toBe(UNLIMITED_CREDIT);
      expect(o.creditBytes).toBe(UNLIMITED_CREDIT);
      await until(() => r.stats().received === 5000);
      expect(r.stats().dropped).toBeGreaterThan(0);
      expect(errs).toEqual([]);
    } finally {
      await closeAll([rx!, tx!]);
    }
  });
});
