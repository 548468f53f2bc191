import { performance } from 'node:perf_hooks';
import { ClusterWaitError, startLocalCluster } from '../../lib/testing/index.js';
import type { LocalCluster } from '../../lib/testing/index.js';

/**
 * switchboard/testing's in-process clusters (docs/testing.md): three
 * switchboards in this process, their links through the kit's proxies, so
 * blackholes and cuts are as real as between processes.
 */
const HEARTBEAT = 100;
const DEAD = 600;

describe('an in-process cluster', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    cluster = await startLocalCluster({
      nodes: 3,
      options: { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD },
      setup: ({ sb, id, report }) => {
        sb.serve('whoami', () => id);
        void (async () => {
          for await (const m of sb.receiver<string>('inbox')) report('received', m);
        })();
        return { ask: (node: number) => sb.call('whoami', null, { node, timeoutMs: 2_000 }) };
      },
    });
  });
  afterAll(() => cluster.close());

  it('rendezvous, and calls into a node', async () => {
    await cluster.ready();
    expect(await cluster.node(0).call('ask', 2)).toBe(2);
    expect(
      cluster
        .sb(1)
        .peers()
        .map((p) => p.state),
    ).toEqual(['up', 'up']);
  });

  it('blackhole: seen down both ways, back up after heal', async () => {
    cluster.blackhole(0, 1);
    await Promise.all([
      cluster.waitUntilDown(1, { by: [0] }),
      cluster.waitUntilDown(0, { by: [1] }),
    ]);
    expect(
      cluster
        .sb(2)
        .peers()
        .map((p) => p.state),
    ).toEqual(['up', 'up']);
    cluster.heal(0, 1);
    await cluster.waitUntilAllUp();
    expect(await cluster.node(1).call('ask', 0)).toBe(0);
  });

  it('stop is seen at once (no dead-peer wait); restart comes back as a new incarnation', async () => {
    const before = cluster.sb(2).incarnation;
    const t = performance.now();
    await cluster.stop(2);
    await cluster.waitUntilDown(2);
    expect(performance.now() - t).toBeLessThan(DEAD);
    await expect(cluster.waitUntilAllUp({ timeoutMs: 100 })).rejects.toThrow(
      /node 2 was stopped by the test/,
    );
    await cluster.restart(2);
    await cluster.waitUntilAllUp();
    expect(cluster.sb(2).incarnation).not.toBe(before);
    expect(cluster.sb(0).peers()[1]).toMatchObject({
      state: 'up',
      incarnation: cluster.sb(2).incarnation,
    });
  });

  it('cut: both ends see each other down until heal', async () => {
    cluster.cut(0, 2);
    await cluster.waitUntilDown(2, { by: [0] });
    cluster.heal();
    await cluster.waitUntilAllUp();
  });

  it('a failed wait describes every node concerned', async () => {
    const err = (await cluster
      .waitUntilDown(1, { timeoutMs: 100 })
      .catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ClusterWaitError);
    expect(err.message).toMatch(/^node 1 to be declared down by 0, 2: not met within the timeout/);
    expect(err.message).toMatch(/node 0 \([0-9a-f]{8}\) sees: 1 up \([0-9a-f]{8}\), 2 up/);
    expect(err.message).toMatch(/node 2 \(in process, incarnation [0-9a-f]{8}\):/);
  });
});
