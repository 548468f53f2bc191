import { firstValueFrom, toArray, take as rxTake } from 'rxjs';
import type { Sender } from '../../lib/channel/sender.js';
import { closeAll, pathCluster, PATHS, take } from '../support/cluster.js';

describe.each(PATHS)('MPSC channels over the %s path', (path) => {
  it('delivers in order from one sender to a named receiver', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<{ seq: number }>('jobs');
      const s = tx.sender<{ seq: number }>('jobs', { node: rx.id });
      const got = take(r, 5000);
      for (let i = 0; i < 5000; i++) await s.send({ seq: i });
      expect((await got).map((m) => m.seq)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    } finally {
      await closeAll(sbs);
    }
  });

  it('interleaves two senders, each in FIFO order', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<[string, number]>('mix');
      const a = tx.sender<[string, number]>('mix', { node: rx.id });
      const b = tx.sender<[string, number]>('mix', { node: rx.id });
      const got = take(r, 2000);
      await Promise.all([
        (async () => {
          for (let i = 0; i < 1000; i++) await a.send(['a', i]);
        })(),
        (async () => {
          for (let i = 0; i < 1000; i++) await b.send(['b', i]);
        })(),
      ]);
      const all = await got;
      expect(all.filter((m) => m[0] === 'a').map((m) => m[1])).toEqual(
        Array.from({ length: 1000 }, (_, i) => i),
      );
      expect(all.filter((m) => m[0] === 'b').map((m) => m[1])).toEqual(
        Array.from({ length: 1000 }, (_, i) => i),
      );
    } finally {
      await closeAll(sbs);
    }
  });

  it('ends the receiver after n producers hang up', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<number>('limited', { expectSenders: 3 });
      const senders = [0, 1, 2].map(() => tx.sender<number>('limited', { node: rx.id }));
      await Promise.all(senders.map((s, i) => s.send(i)));
      for (const s of senders) s.close();
      const got: number[] = [];
      for await (const v of r) got.push(v);
      expect(got.sort()).toEqual([0, 1, 2]);
      expect(r.closed).toBe(true);
    } finally {
      await closeAll(sbs);
    }
  });

  it('carries a sender inside a message, which works on the other side', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const requests = rx.receiver<{ n: number; reply: Sender<number> }>('double');
      const serve = (async () => {
        for await (const req of requests) {
          await req.reply.send(req.n * 2);
          req.reply.close();
        }
      })();
      const [replyTx, replyRx] = tx.channel<number>();
      await tx
        .sender<{ n: number; reply: Sender<number> }>('double', { node: rx.id })
        .send({ n: 21, reply: replyTx });
      expect(await take(replyRx, 1)).toEqual([42]);
      requests.close();
      await serve;
    } finally {
      await closeAll(sbs);
    }
  });

  it('exposes the receiver as an Observable', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<string>('obs');
      const s = tx.sender<string>('obs', { node: rx.id });
      const all = firstValueFrom(r.observable().pipe(rxTake(3), toArray()));
      for (const v of ['x', 'y', 'z']) await s.send(v);
      expect(await all).toEqual(['x', 'y', 'z']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('fails sends to a closed receiver with a typed error', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<number>('gone');
      const s = tx.sender<number>('gone', { node: rx.id });
      await s.send(1);
      r.close();
      await expect(
        (async () => {
          // More than a window: the sender learns of the close within one.
          for (let i = 0; i < 200_000; i++) await s.send(i);
        })(),
      ).rejects.toMatchObject({ code: 'ERR_SB_NO_RECEIVER' });
    } finally {
      await closeAll(sbs);
    }
  });

  it('applies backpressure: a stalled receiver holds at most its capacity', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<number>('stall', { capacity: 64, window: 16 });
      const s = tx.sender<number>('stall', { node: rx.id, timeoutMs: 200, maxPending: 4 });
      let sent = 0;
      let error: unknown;
      try {
        for (;;) {
          await s.send(sent);
          sent++;
        }
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({ code: 'ERR_SB_TIMEOUT' });
      expect(sent).toBeLessThanOrEqual(16);
      expect(r.queued).toBeLessThanOrEqual(64);
      expect(await take(r, sent)).toEqual(Array.from({ length: sent }, (_, i) => i));
    } finally {
      await closeAll(sbs);
    }
  });

  it('carries binary payloads as raw bytes', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<Buffer>('bin');
      const s = tx.sender<Uint8Array>('bin', { node: rx.id });
      const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
      await s.send(payload);
      const [got] = await take(r, 1);
      expect(Buffer.compare(Buffer.from(got!), payload)).toBe(0);
    } finally {
      await closeAll(sbs);
    }
  });
});
