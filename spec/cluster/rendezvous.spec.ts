import { performance } from 'node:perf_hooks';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import { logTiming } from './fixtures/system.js';

/**
 * A cluster of real processes (switchboard/testing, running
 * fixtures/mesh-node.ts) rendezvouses into a full mesh, with nothing else
 * happening on the way, and every node then closes and exits 0 by itself.
 */
const NODE = new URL('./fixtures/mesh-node.ts', import.meta.url);

let cluster: ProcessCluster | undefined;
afterEach(() => cluster?.close());

/** Every node sees every other as up, with the incarnation that node runs. */
async function expectFullMesh(c: ProcessCluster): Promise<void> {
  const incarnations = c.nodes.map((n) => n.incarnation);
  for (const node of c.nodes) {
    const id = node.id;
    expect(node.peers().map((p) => [p.node, p.state, p.incarnation])).toEqual(
      c.nodes.flatMap((_, peer) => (peer === id ? [] : [[peer, 'up', incarnations[peer]]])),
    );
    // One socket per peer: no stray or duplicate connection left behind.
    expect(await node.call('tcpSockets')).toBe(c.size - 1);
    // Exactly one peer-up per peer, and nothing else went wrong on the way.
    expect(
      node.events
        .filter((e) => e.type === 'peer-up')
        .map((e) => [e.node, e.incarnation])
        .sort(),
    ).toEqual(c.nodes.flatMap((_, peer) => (peer === id ? [] : [[peer, incarnations[peer]]])));
    expect(node.events.filter((e) => e.type !== 'peer-up')).toEqual([]);
  }
}

describe.each([3, 5])('a cluster of %i processes', (size) => {
  it('rendezvouses, sees every peer up, then closes and exits 0 by itself', async () => {
    const t0 = performance.now();
    cluster = await startCluster({
      module: NODE,
      nodes: size,
      options: { handshakeTimeoutMs: 1_000, reconnectMaxMs: 200 },
      timeoutMs: 15_000,
    });
    logTiming(`start of ${size} (parent clock)`, performance.now() - t0);
    const t = performance.now();
    await cluster.ready({ timeoutMs: 10_000 });
    logTiming(`rendezvous of ${size}`, performance.now() - t);
    await expectFullMesh(cluster);
    await Promise.all(cluster.nodes.map((n) => cluster!.stop(n.id, { exitByItself: true })));
    expect(cluster.nodes.map((n) => n.status)).toEqual(cluster.nodes.map(() => 'stopped'));
  }, 30_000);
});
