import { PeerLostError } from '../../lib/index.js';
import type { Receiver, Sender } from '../../lib/index.js';
import { closeAll, clusterOf, hubOf, startCluster, until } from '../support/cluster.js';
import type { Switchboard } from '../../lib/facade.js';

/**
 * What an event-loop stall longer than half the peer's dead-peer timeout
 * leaves behind: the link of `sb` to `peer` no longer holds a confirmed
 * session (its `confirmedUntil`, and the copy the receive paths read).
 */
function lapse(sb: Switchboard, peer: number): void {
  const links = (clusterOf(sb) as unknown as { links: Array<{ confirmedUntil: number }> }).links;
  links[peer]!.confirmedUntil = 0;
  clusterOf(sb).leases[peer] = 0;
}

describe('stale sessions are fenced where messages are handed out', () => {
  it('holds buffered messages of a session not confirmed lately, until the peer confirms it', async () => {
    const [a, b] = (await startCluster(2, { heartbeatMs: 1_000, deadPeerMs: 5_000 })) as [
      Switchboard,
      Switchboard,
    ];
    try {
      const rx = b.receiver<number>('jobs');
      const tx = a.sender<number>('jobs', { node: 1 });
      await tx.send(1);
      await until(() => rx.queued === 1, 5_000, 'the message to be buffered');
      lapse(b, 0);
      let got: number | undefined;
      const taking = rx.next().then((r) => (got = r.value));
      await new Promise((r) => setImmediate(r));
      // Not handed out in the same turn: a confirmation (PING, PONG) comes first.
      expect(got).toBeUndefined();
      await taking;
      expect(got).toBe(1);
      expect(clusterOf(b).leases[0]).toBeGreaterThan(performance.now());
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a subscriber that stalls inside its callback gets nothing more of the same read until the session is confirmed', async () => {
    const [a, b] = (await startCluster(2, { heartbeatMs: 100, deadPeerMs: 1_000 })) as [
      Switchboard,
      Switchboard,
    ];
    try {
      const rx = b.receiver<number>('jobs');
      const tx = a.sender<number>('jobs', { node: 1 });
      await tx.send(-1);
      await rx.next();
      // After the stall, is the next message handed out in the same run of
      // the event loop (before any microtask), or only once a PONG came?
      let stalledAt = -1;
      let turnEnded = false;
      const sameRun: number[] = [];
      const seen: number[] = [];
      const all = new Promise<void>((resolve) => {
        rx.observable().subscribe((v) => {
          seen.push(v);
          if (stalledAt >= 0 && !turnEnded) sameRun.push(v);
          if (v === 0) {
            // Longer than half the peer's dead-peer timeout, shorter than all of it.
            const until = performance.now() + 700;
            while (performance.now() < until);
            stalledAt = performance.now();
            queueMicrotask(() => (turnEnded = true));
          }
          if (seen.length === 20) resolve();
        });
      });
      // Twenty messages in one turn: one write, read in one chunk or a few.
      for (let i = 0; i < 20; i++) void tx.send(i);
      await all;
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(sameRun).toEqual([]);
    } finally {
      await closeAll([a, b]);
    }
  });

  it("drops what a sender's session left in a receiver once that session ended: it is reported there", async () => {
    const [a, b] = (await startCluster(2, { heartbeatMs: 50, deadPeerMs: 300 })) as [
      Switchboard,
      Switchboard,
    ];
    const reported: number[] = [];
    try {
      const rx = b.receiver<number>('jobs');
      const tx = a.sender<number>('jobs', { node: 1 });
      tx.errors$.subscribe((e) => {
        if ('messages' in e) reported.push(...(e as { messages: number[] }).messages);
      });
      for (let i = 0; i < 5; i++) await tx.send(i);
      await until(() => rx.queued === 5, 5_000, 'the messages to be buffered');
      await a.destroy();
      await until(() => b.peers()[0]!.state === 'down', 5_000, 'node 0 down');
      expect(reported).toEqual([0, 1, 2, 3, 4]);
      // Nothing node 0 was told about is handed out afterwards.
      expect(rx.queued).toBe(0);
      await expect(rx.next({ timeoutMs: 50 })).rejects.toMatchObject({ code: 'ERR_SB_TIMEOUT' });
      expect(b.stats().drops.jobs).toBe(5);
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('a session that ended hands out nothing more, even to a receive already waiting', () => {
  it("an RPC server's input stream, failed by its caller's session ending, gives the waiting handler none of the items still buffered", async () => {
    const [a, b] = (await startCluster(2, { heartbeatMs: 50, deadPeerMs: 300 })) as [
      Switchboard,
      Switchboard,
    ];
    try {
      const seen: number[] = [];
      let first!: () => void;
      const tookFirst = new Promise<void>((r) => (first = r));
      let gate!: () => void;
      const opened = new Promise<void>((r) => (gate = r));
      let ended!: (outcome: string) => void;
      const handlerEnded = new Promise<string>((r) => (ended = r));
      b.serveClientStream<number, number>('sum', async (items) => {
        try {
          for await (const n of items) {
            seen.push(n);
            if (seen.length === 1) {
              first();
              await opened;
            }
          }
          ended('done');
        } catch (err) {
          ended((err as { code?: string }).code ?? String(err));
        }
        return 0;
      });
      await until(() => a.peers()[0]!.state === 'up', 5_000, 'node 1 up');
      async function* items(): AsyncGenerator<number> {
        yield 1;
        yield 2;
        yield 3;
        await new Promise(() => undefined); // the stream stays open
      }
      void a.callClientStream<number, number>('sum', items(), { node: 1 }).catch(() => undefined);
      await tookFirst;
      // Items 2 and 3 arrive and wait in the server's input stream.
      await until(
        () => b.stats().receivers.some((r) => r.queued === 2),
        5_000,
        'items 2 and 3 to be buffered',
      );
      // What a stall leaves behind: the session is not confirmed, so nothing is handed out...
      (clusterOf(b) as unknown as { fresh: () => boolean }).fresh = () => false;
      (hubOf(b) as unknown as { leases: Float64Array }).leases = new Float64Array(2);
      gate();
      // The handler asks for the next item (microtasks), and is held.
      await new Promise((r) => setImmediate(r));
      expect(seen).toEqual([1]);
      // ...and then the session ends (node 0 is gone): its items were reported there.
      await a.destroy();
      expect(await handlerEnded).not.toBe('done');
      expect(seen).toEqual([1]);
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('handles sent inside messages are tracked by the node that holds them', () => {
  async function shipped(): Promise<{
    sbs: Switchboard[];
    reply: Receiver<string>;
    held: Promise<Sender<string>>;
  }> {
    const sbs = await startCluster(2, { heartbeatMs: 50, deadPeerMs: 300 });
    const [a, b] = sbs as [Switchboard, Switchboard];
    const inbox = b.receiver<{ replyTo: Sender<string> }>('inbox');
    const [tx, reply] = a.channel<string>();
    await a.sender<{ replyTo: Sender<string> }>('inbox', { node: 1 }).send({ replyTo: tx });
    const held = inbox.next().then((r) => r.value!.replyTo);
    return { sbs, reply, held };
  }

  it('the receiver fails with a PeerLostError naming the node when the holder dies before using it', async () => {
    const { sbs, reply, held } = await shipped();
    try {
      await held;
      await sbs[1]!.destroy();
      const err = await reply.next().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PeerLostError);
      expect(err).toMatchObject({ code: 'ERR_SB_PEER_LOST', node: 1 });
    } finally {
      await closeAll(sbs);
    }
  });

  it('the same while the holder has it open; a clean close by the holder ends it with done', async () => {
    const { sbs, reply, held } = await shipped();
    try {
      const s = await held;
      await s.send('hi');
      expect((await reply.next()).value).toBe('hi');
      s.close();
      expect(await reply.next()).toEqual({ value: undefined, done: true });
    } finally {
      await closeAll(sbs);
    }
    const second = await shipped();
    try {
      const s = await second.held;
      await s.send('hi');
      expect((await second.reply.next()).value).toBe('hi');
      await second.sbs[1]!.destroy();
      await expect(second.reply.next()).rejects.toMatchObject({
        code: 'ERR_SB_PEER_LOST',
        node: 1,
      });
    } finally {
      await closeAll(second.sbs);
    }
  });
});
