import { Sender } from '../../lib/channel/sender.js';
import { closeAll, pathCluster } from '../support/cluster.js';
import { receiveOne as one } from './fixtures/receive.js';

/**
 * The local fast path (both ends in one process): no encoding and no socket.
 * A local receiver gets the very object that was sent (so a sender must not
 * mutate it afterwards), checked against the same encoding rule as a remote
 * one, so code that works in one process works across two; with
 * `forceEncoding: true` it gets what a remote receiver would: a decoded copy.
 */

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

describe('the local path', () => {
  it('hands the receiver the very object that was sent, checked by the remote rule', async () => {
    const { sbs, rx } = await pathCluster('local');
    try {
      const r = rx.receiver<{ items: number[]; at: Date; tags: Map<string, number> }>('same');
      const s = rx.sender<{ items: number[]; at: Date; tags: Map<string, number> }>('same', {
        node: rx.id,
      });
      const sent = { items: [1, 2, 3], at: new Date(0), tags: new Map([['a', 1]]) };
      await s.send(sent);
      const got = await one(r);
      expect(got).toBe(sent);
      // Shared, not copied: a mutation after send shows (hence: do not mutate what you sent).
      sent.items.push(4);
      expect(got.items).toEqual([1, 2, 3, 4]);
      // What a remote receiver could not get faithfully is refused here too, where it sits.
      const loose = rx.sender<unknown>('same', { node: rx.id });
      await expect(loose.send({ p: new Point(3, 4) })).rejects.toMatchObject({
        code: 'ERR_SB_ENCODE',
        path: '.p',
      });
      await expect(loose.send({ later: Promise.resolve(1) })).rejects.toMatchObject({
        code: 'ERR_SB_ENCODE',
        path: '.later',
      });

      const bytes = Buffer.from('raw');
      const rb = rx.receiver<Buffer>('bytes');
      await rx.sender<Buffer>('bytes', { node: rx.id }).send(bytes);
      expect(await one(rb)).toBe(bytes);
    } finally {
      await closeAll(sbs);
    }
  });

  it('with checkLocalValues: false, hands over anything, class instances included', async () => {
    const { sbs, rx } = await pathCluster('local', { checkLocalValues: false });
    try {
      const r = rx.receiver<{ p: Point }>('trusted');
      const s = rx.sender<{ p: Point }>('trusted', { node: rx.id });
      const sent = { p: new Point(3, 4) };
      await s.send(sent);
      const got = await one(r);
      expect(got).toBe(sent);
      expect(got.p).toBeInstanceOf(Point);
      expect(got.p.norm()).toBe(5);
    } finally {
      await closeAll(sbs);
    }
  });

  it('hands the receiver a copy, as a remote one would get, with forceEncoding', async () => {
    const { sbs, rx } = await pathCluster('local', { forceEncoding: true });
    try {
      const r = rx.receiver<Record<string, unknown>>('copy');
      const s = rx.sender<Record<string, unknown>>('copy', { node: rx.id });
      const sent = {
        items: [1, 2, 3],
        at: new Date(1_700_000_000_000),
        tags: new Map([['a', 1]]),
        set: new Set(['x']),
        big: 2n ** 70n,
      };
      await s.send(sent);
      sent.items.push(4);
      const got = await one(r);
      expect(got).not.toBe(sent);
      expect(got.items).toEqual([1, 2, 3]);
      expect(got.at).toEqual(sent.at);
      expect(got.tags).toEqual(new Map([['a', 1]]));
      expect(got.set).toEqual(new Set(['x']));
      expect(got.big).toBe(2n ** 70n);
      // A class instance would arrive without its prototype: refused, as to a remote receiver.
      await expect(s.send({ p: new Point(3, 4) })).rejects.toMatchObject({
        code: 'ERR_SB_ENCODE',
        path: '.p',
      });

      const bytes = Buffer.from('raw');
      const rb = rx.receiver<Buffer>('bytes');
      await rx.sender<Buffer>('bytes', { node: rx.id }).send(bytes);
      const gotBytes = await one(rb);
      expect(gotBytes).not.toBe(bytes);
      expect(gotBytes.equals(bytes)).toBe(true);
    } finally {
      await closeAll(sbs);
    }
  });

  it.each([false, true])(
    'a sender inside a message works on arrival (forceEncoding: %s)',
    async (forceEncoding) => {
      const { sbs, rx } = await pathCluster('local', { forceEncoding });
      try {
        const requests = rx.receiver<{ n: number; reply: Sender<number> }>('double');
        const [replyTx, replyRx] = rx.channel<number>();
        await rx
          .sender<{ n: number; reply: Sender<number> }>('double', { node: rx.id })
          .send({ n: 21, reply: replyTx });
        const req = await one(requests);
        expect(req.reply).toBeInstanceOf(Sender);
        if (forceEncoding) expect(req.reply).not.toBe(replyTx);
        else expect(req.reply).toBe(replyTx);
        await req.reply.send(req.n * 2);
        expect(await one(replyRx)).toBe(42);
      } finally {
        await closeAll(sbs);
      }
    },
  );
});
