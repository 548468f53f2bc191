import { performance } from 'node:perf_hooks';
import { localNodes } from '../support/ports.js';
import { Harness, logTiming, rendezvousAll, startCluster } from './fixtures/harness.js';
import type { NodeProcess } from './fixtures/harness.js';

const harness = new Harness();
afterEach(() => harness.cleanup());

/** Every node sees every other as up, with the incarnation that node reported. */
async function expectFullMesh(children: readonly NodeProcess[]): Promise<void> {
  const incarnations = children.map((c) => c.incarnation);
  for (const [id, c] of children.entries()) {
    const { peers, tcpSockets } = await c.peers();
    expect(peers.map((p) => [p.node, p.state, p.incarnation])).toEqual(
      children.flatMap((_, peer) => (peer === id ? [] : [[peer, 'up', incarnations[peer]]])),
    );
    // One socket per peer: no stray or duplicate connection left behind.
    expect(tcpSockets).toBe(children.length - 1);
    // Exactly one peer-up per peer, and nothing else went wrong on the way.
    const seen = c.events().map((e) => e.event);
    expect(
      seen
        .filter((e) => e.type === 'peer-up')
        .map((e) => [e.node, e.incarnation])
        .sort(),
    ).toEqual(children.flatMap((_, peer) => (peer === id ? [] : [[peer, incarnations[peer]]])));
    expect(seen.filter((e) => e.type !== 'peer-up')).toEqual([]);
  }
}

describe.each([3, 5])('a cluster of %i processes', (size) => {
  it('rendezvouses, sees every peer up, then closes and exits 0 by itself', async () => {
    const nodes = await localNodes(size);
    const children = await startCluster(harness, nodes);
    for (const c of children) {
      const { bootMs, spawnMs } = await c.ready();
      logTiming(`${c.label} of ${size}: boot (child clock)`, bootMs);
      logTiming(`${c.label} of ${size}: spawn to ready (parent clock)`, spawnMs);
    }
    const t = performance.now();
    await rendezvousAll(children);
    logTiming(`rendezvous of ${size}`, performance.now() - t);
    await expectFullMesh(children);
    const exits = await Promise.all(children.map((c) => c.closeAndExit()));
    expect(exits).toEqual(children.map(() => ({ code: 0, signal: null })));
  }, 30_000);
});
