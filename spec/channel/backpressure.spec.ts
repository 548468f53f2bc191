import type { Receiver } from '../../lib/channel/receiver.js';
import type { Switchboard } from '../../lib/facade.js';
import { closeAll, pathCluster, PATHS, until } from '../support/cluster.js';
import type { Path } from '../support/cluster.js';
import { receiveOne } from './fixtures/receive.js';

/**
 * docs/reliability.md 11 and 12: a receiver that stalls (never reads) or reads
 * slowly. Its senders see backpressure (`send` waits, then fails with
 * ERR_SB_TIMEOUT; beyond `maxPending` waiting sends, ERR_SB_OVERFLOW at
 * once); what is queued stays within the configured bounds; another channel
 * on the same link keeps flowing at its normal speed.
 *
 * Bounds: a receiver buffers at most `capacity` messages and, for remote
 * senders, `capacityBytes` plus one message per sender (a message larger than
 * the byte credit left may still go, so any size gets through). On the local
 * path messages are not encoded, so only the message bound applies.
 */

const CAPACITY = 64;
const CAPACITY_BYTES = 256 * 1024;
const MESSAGE = 16 * 1024;

function stalled(sb: Switchboard, name: string): Receiver<Uint8Array> {
  return sb.receiver<Uint8Array>(name, {
    capacity: CAPACITY,
    capacityBytes: CAPACITY_BYTES,
    window: 16,
    windowBytes: 64 * 1024,
  });
}

function statsOf(sb: Switchboard, name: string): { queued: number; queuedBytes: number } {
  const s = sb.stats().receivers.find((r) => r.name === name);
  if (s === undefined) throw new Error(`no receiver ${name}`);
  return s;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describe.each(PATHS)('backpressure over the %s path', (path: Path) => {
  it('a stalled receiver: sends wait then time out, queues stay within the configured bounds', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = stalled(rx, 'stalled');
      // Three senders offer "gigabytes" (65,536 x 16 KiB each) to a receiver that never reads.
      const senders = [0, 1, 2].map(() =>
        tx.sender<Uint8Array>('stalled', { node: rx.id, timeoutMs: 150, maxPending: 4 }),
      );
      const payload = new Uint8Array(MESSAGE).fill(7);
      const offered = await Promise.all(
        senders.map(async (s) => {
          let sent = 0;
          try {
            for (; sent < 65_536; sent++) await s.send(payload);
          } catch (err) {
            expect(err).toMatchObject({ code: 'ERR_SB_TIMEOUT' });
          }
          return sent;
        }),
      );
      const total = offered.reduce((a, b) => a + b, 0);
      expect(total).toBeLessThanOrEqual(CAPACITY);
      const { queued, queuedBytes } = statsOf(rx, 'stalled');
      expect(queued).toBeLessThanOrEqual(CAPACITY);
      expect(queuedBytes).toBeLessThanOrEqual(CAPACITY_BYTES + senders.length * (MESSAGE + 64));
      if (path === 'tcp') {
        expect(total * MESSAGE).toBeLessThanOrEqual(CAPACITY_BYTES + senders.length * MESSAGE);
        // The link holds only what is in flight, not the offer.
        const link = tx.peers().find((p) => p.node === rx.id)!;
        expect(link.bufferedBytes).toBeLessThanOrEqual(CAPACITY_BYTES + senders.length * MESSAGE);
      }

      // Beyond maxPending, a send fails at once instead of queueing.
      const s = senders[0]!;
      const waiting = [0, 1, 2, 3].map(() => s.send(payload));
      await expect(s.send(payload)).rejects.toMatchObject({ code: 'ERR_SB_OVERFLOW' });
      expect(s.waiting).toBe(4);
      for (const w of waiting) await expect(w).rejects.toMatchObject({ code: 'ERR_SB_TIMEOUT' });

      // Once the receiver reads, what was accepted arrives.
      for (let i = 0; i < total; i++) {
        expect((await receiveOne(r)).length).toBe(MESSAGE);
      }
      expect(r.queued).toBe(0);
    } finally {
      await closeAll(sbs);
    }
  });

  it('a slow consumer: the sender waits as long as it reads, within bounds, in order', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = stalled(rx, 'slow');
      const s = tx.sender<Uint8Array>('slow', { node: rx.id, timeoutMs: 2_000 });
      const N = 400;
      let peakQueued = 0;
      let peakBytes = 0;
      const consume = (async () => {
        for (let i = 0; i < N; i++) {
          expect((await receiveOne(r))[0]).toBe(i % 256);
          // Slow: one message per turn of the event loop, after a look at the queue.
          const st = statsOf(rx, 'slow');
          peakQueued = Math.max(peakQueued, st.queued);
          peakBytes = Math.max(peakBytes, st.queuedBytes);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      for (let i = 0; i < N; i++) await s.send(new Uint8Array(MESSAGE).fill(i % 256));
      await consume;
      expect(peakQueued).toBeLessThanOrEqual(CAPACITY);
      expect(peakBytes).toBeLessThanOrEqual(CAPACITY_BYTES + MESSAGE + 64);
      // Consumer gone: the next sends wait for credit, then fail with a typed timeout.
      await expect(
        (async () => {
          for (;;) await s.send(new Uint8Array(MESSAGE), { timeoutMs: 100 });
        })(),
      ).rejects.toMatchObject({ code: 'ERR_SB_TIMEOUT' });
    } finally {
      await closeAll(sbs);
    }
  });

  it('a new sender is not starved by idle senders that hold all the credit', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<string>('shared', { capacity: 4, window: 2 });
      const reading: string[] = [];
      const reader = (async () => {
        for (;;) {
          const res = await r.next();
          if (res.done === true) return;
          reading.push(res.value);
        }
      })();
      // Two senders take a window each (the whole capacity), then fall idle.
      const idle = [0, 1].map(() => tx.sender<string>('shared', { node: rx.id }));
      for (const s of idle) await s.send('hello');
      await until(() => reading.length === 2, 5_000, 'the idle senders to be read');
      // The third still gets through, one message at a time if need be.
      const late = tx.sender<string>('shared', { node: rx.id, timeoutMs: 2_000 });
      for (let i = 0; i < 20; i++) await late.send(`late-${i}`);
      await until(() => reading.length === 22, 5_000, 'the late sender to be read');
      expect(reading.slice(2)).toEqual(Array.from({ length: 20 }, (_, i) => `late-${i}`));
      r.close();
      await reader;
    } finally {
      await closeAll(sbs);
    }
  });

  it('another channel to the same node keeps its normal round-trip time while one is stalled', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      // A ping-pong pair: tx -> rx "ping", rx -> tx "pong".
      const ping = rx.receiver<number>('ping');
      const pong = tx.receiver<number>('pong');
      const toRx = tx.sender<number>('ping', { node: rx.id });
      const toTx = rx.sender<number>('pong', { node: tx.id });
      const echo = (async () => {
        for (;;) {
          const res = await ping.next();
          if (res.done === true) return;
          await toTx.send(res.value);
        }
      })();
      const roundTrips = async (n: number): Promise<number[]> => {
        const times: number[] = [];
        for (let i = 0; i < n; i++) {
          const t = performance.now();
          await toRx.send(i);
          expect(await receiveOne(pong)).toBe(i);
          times.push(performance.now() - t);
        }
        return times;
      };
      await roundTrips(200); // warm up
      const before = median(await roundTrips(500));

      // Stall a channel on the same link, with a sender blocked on it.
      const r = stalled(rx, 'stalled');
      const blocked = tx.sender<Uint8Array>('stalled', { node: rx.id, timeoutMs: 30_000 });
      const filler = new Uint8Array(MESSAGE);
      const stuck: Array<Promise<void>> = [];
      for (let i = 0; i < CAPACITY + 8; i++) stuck.push(blocked.send(filler));
      // Let the stalled channel fill up before measuring.
      await stuck[0];
      const during = median(await roundTrips(500));

      expect(blocked.waiting).toBeGreaterThan(0);
      expect(r.queued).toBeGreaterThan(0);
      // Generous, as wall-clock numbers on a shared machine are noisy; a
      // stream stuck behind the stalled one would take a timeout, not 3x.
      expect(during).toBeLessThanOrEqual(3 * before + 1);

      ping.close();
      await echo;
      blocked.close();
      r.close();
      await Promise.allSettled(stuck);
    } finally {
      await closeAll(sbs);
    }
  });
});
