/**
 * A worker pool with tags and the least-outstanding strategy.
 *
 *   node --import tsx docs/examples/worker-pool.ts
 *
 * Four nodes: a client and three workers, all serving `render`. Two
 * workers carry the tag `gpu` (one fast, one slow), one carries `cpu`.
 * Calls with `tags: ['gpu']` only go to gpu workers; without `node`, each
 * call goes to the worker with the fewest of this client's calls still
 * outstanding, so the fast worker takes more of them. Round-robin, for
 * comparison, splits evenly whatever the speed.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Switchboard } from '../../lib/index.js';
import type { LoadBalancing, NodeSpec } from '../../lib/index.js';

const CALLS = 60;
const IN_FLIGHT = 12;
/** Simulated work per call, in ms, per worker node. */
const WORK_MS: Record<number, number> = { 1: 2, 2: 20, 3: 2 };

const host = '127.0.0.1';
const nodes: NodeSpec[] = [
  { host, port: await freePort() },
  { host, port: await freePort(), tags: ['gpu'] },
  { host, port: await freePort(), tags: ['gpu'] },
  { host, port: await freePort(), tags: ['cpu'] },
];
const secret = randomBytes(32);
const sbs = await Promise.all(nodes.map((_, id) => Switchboard.start({ nodes, id, secret })));
const client = sbs[0]!;
const workers = sbs.slice(1);
try {
  await Promise.all(sbs.map((sb) => sb.rendezvous()));
  for (const w of workers) {
    w.serve<number, number>('render', async (frame, ctx) => {
      await delay(WORK_MS[w.id] ?? 0, undefined, { signal: ctx.signal });
      return w.id;
    });
  }

  /** Makes CALLS calls, IN_FLIGHT at a time; returns how many each node served. */
  async function run(strategy: LoadBalancing): Promise<Record<number, number>> {
    const served = { 1: 0, 2: 0, 3: 0 } as Record<number, number>;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < CALLS) {
        const node = await client.call<number, number>('render', next++, {
          tags: ['gpu'],
          strategy,
        });
        served[node]!++;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    return served;
  }

  const least = await run('least-outstanding');
  console.log(
    `least-outstanding: fast gpu node 1 took ${least[1]}, slow gpu node 2 took ${least[2]}`,
  );
  const rr = await run('round-robin');
  console.log(`round-robin: node 1 took ${rr[1]}, node 2 took ${rr[2]}`);
  if (least[3] !== 0 || rr[3] !== 0) throw new Error('a cpu worker got gpu work');
  console.log(`only workers tagged gpu served: cpu node 3 took ${least[3] + rr[3]}`);
  if (!(least[1]! > least[2]!)) throw new Error('least-outstanding did not favour the fast worker');
  if (rr[1] !== CALLS / 2) throw new Error('round-robin did not alternate');
  console.log('worker-pool: ok');
} finally {
  await Promise.all(sbs.map((sb) => sb.close()));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
