import fc from 'fast-check';
import type { Receiver } from '../../lib/channel/receiver.js';
import type { Switchboard } from '../../lib/facade.js';
import { closeAll, pathCluster, PATHS } from '../support/cluster.js';
import type { Path } from '../support/cluster.js';
import { receiveOne } from './fixtures/receive.js';

/**
 * Properties of the delivery contract under random interleavings: several
 * senders (on the receiver's node and, over TCP, on the other one too) send
 * random batches, sometimes awaited, sometimes left in flight, with random
 * turns of the event loop in between, to a receiver with a small window that
 * reads at a random pace. Whatever the schedule: per-sender FIFO, no
 * duplicate, no loss.
 */

interface Step {
  readonly sender: number;
  readonly count: number;
  /** Await this batch before the next step (otherwise it stays in flight). */
  readonly wait: boolean;
  /** Let the event loop turn after this step. */
  readonly yieldTurn: boolean;
}

const step: fc.Arbitrary<Step> = fc.record({
  sender: fc.nat({ max: 7 }),
  count: fc.integer({ min: 1, max: 60 }),
  wait: fc.boolean(),
  yieldTurn: fc.boolean(),
});

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Reads `n` messages, yielding to the event loop where `pace` says so (cycled). */
async function readPaced<T>(r: Receiver<T>, n: number, pace: readonly boolean[]): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    out.push(await receiveOne(r));
    if (pace.length > 0 && pace[out.length % pace.length] === true) await turn();
  }
  return out;
}

describe.each(PATHS)('random interleavings of senders over the %s path', (path: Path) => {
  let sbs: Switchboard[] = [];
  let rx: Switchboard;
  let tx: Switchboard;
  let run = 0;
  beforeAll(async () => {
    ({ sbs, rx, tx } = await pathCluster(path));
  });
  afterAll(() => closeAll(sbs));

  it('keeps per-sender FIFO order, with no duplicate and no loss', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(step, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 32 }),
        fc.array(fc.boolean(), { maxLength: 8 }),
        async (k, steps, window, pace) => {
          const name = `prop-${run++}`;
          const r = rx.receiver<[number, number]>(name, { window, capacity: 2 * window });
          // Alternate the senders' nodes: local and remote streams into one receiver.
          const senders = Array.from({ length: k }, (_, i) =>
            (i % 2 === 0 ? tx : rx).sender<[number, number]>(name, {
              node: rx.id,
              maxPending: 2_000,
              timeoutMs: 2_000,
            }),
          );
          const total = steps.reduce((n, st) => n + st.count, 0);
          const reading = readPaced(r, total, pace);
          const next = new Array<number>(k).fill(0);
          const inFlight: Array<Promise<void>> = [];
          for (const st of steps) {
            const i = st.sender % k;
            const batch = Array.from({ length: st.count }, () => senders[i]!.send([i, next[i]!++]));
            if (st.wait) await Promise.all(batch);
            else inFlight.push(...batch);
            if (st.yieldTurn) await turn();
          }
          await Promise.all(inFlight);
          const got = await reading;

          expect(got).toHaveLength(total);
          for (let i = 0; i < k; i++) {
            const mine = got.filter(([from]) => from === i).map(([, n]) => n);
            expect(mine).toEqual(Array.from({ length: next[i]! }, (_, n) => n));
          }
          for (const s of senders) s.close();
          r.close();
        },
      ),
      { numRuns: 100 },
    );
  }, 60_000);
});
