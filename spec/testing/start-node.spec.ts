import { randomBytes } from 'node:crypto';
import { closeAll, startCluster, startNode } from '../../lib/testing/index.js';
import type { ClusterNode } from '../../lib/testing/index.js';
import { localNodes } from '../support/ports.js';

/**
 * switchboard/testing's single nodes (docs/testing.md, "Single nodes"):
 * `startNode()` runs spec/testing/fixtures/node.ts in a process of its own
 * with switchboard options the test gives in full (node list, id and
 * secret), no proxy in front, optionally under a wrapper command; the
 * handle is a cluster node's, with its calls, events, waits and exits.
 */
const NODE = new URL('./fixtures/node.ts', import.meta.url);
const SECRET = randomBytes(16).toString('hex');

afterEach(() => closeAll());

/** True if a process with this pid exists. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it('two single nodes form a cluster of their own on the addresses given, under a wrapper command', async () => {
  const nodes = await localNodes(2);
  const [a, b] = (await Promise.all(
    [0, 1].map((id) =>
      startNode({
        module: NODE,
        options: { nodes, id, secret: SECRET, heartbeatMs: 100, deadPeerMs: 600 },
        // `env` execs what follows: the node's pid is still the one the kit signals.
        prefix: ['env', `SB_WRAPPED=${id}`],
        data: { role: 'single' },
        timeoutMs: 10_000,
      }),
    ),
  )) as [ClusterNode, ClusterNode];
  await a.waitForEvent((e) => e.type === 'peer-up' && e.node === 1, { what: 'peer-up of 1' });
  expect(await a.call('ask', 1)).toEqual({ id: 1, incarnation: b.incarnation });
  expect(await b.call('env', 'SB_WRAPPED')).toBe('1');
  expect(b.stdout.lines).toContain('node 1 up, data {"role":"single"}');
  // It listens where its node list says: no proxy, no private address.
  expect(a.host).toBe('127.0.0.1');

  await b.kill();
  expect(b.exitStatus).toEqual({ code: null, signal: 'SIGKILL' });
  await a.waitForEvent((e) => e.type === 'peer-down' && e.node === 1, { what: 'peer-down of 1' });
  await a.stop(10_000, true);
  expect(a.exitStatus).toEqual({ code: 0, signal: null });
  expect(a.status).toBe('stopped');
}, 30_000);

it('an intruder claiming a live id with the right secret is refused at both ends', async () => {
  const cluster = await startCluster({ module: NODE, nodes: 2, timeoutMs: 10_000 });
  await cluster.ready();
  const from = cluster.node(1).events.length;
  const intruder = await startNode({
    module: NODE,
    // Node 0's id, over the live node list; bound elsewhere, as node 0 holds its address.
    options: {
      nodes: [...cluster.addresses],
      id: 0,
      secret: cluster.secret,
      bindHost: '127.0.0.2',
    },
    timeoutMs: 10_000,
  });
  const refused = (e: { type: string; code?: string }): boolean =>
    e.type === 'auth-failure' && e.code === 'ERR_SB_DUPLICATE_NODE';
  await Promise.all([
    intruder.waitForEvent(refused, { what: 'its refusal' }),
    cluster.node(1).waitForEvent(refused, { from, what: 'the refusal' }),
  ]);
  expect(cluster.node(1).seen(0)?.incarnation).toBe(cluster.node(0).incarnation);
  await cluster.close();
}, 30_000);

it('closeAll() kills every single node still running', async () => {
  const nodes = await localNodes(1);
  const n = await startNode({ module: NODE, options: { nodes, id: 0, secret: SECRET } });
  const pid = n.pid!;
  expect(exists(pid)).toBe(true);
  await closeAll();
  expect(exists(pid)).toBe(false);
  expect(n.status).toBe('killed');
}, 30_000);

it('a node that fails to start is killed and fails startNode with what it printed', async () => {
  const nodes = await localNodes(1);
  await expect(
    startNode({
      module: new URL('./fixtures/broken.ts', import.meta.url),
      options: { nodes, id: 0, secret: SECRET },
      timeoutMs: 10_000,
    }),
  ).rejects.toThrow(/failed to start: broken fixture: failed on purpose[\s\S]*about to fail/);
}, 30_000);
