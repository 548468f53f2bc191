import { ClusterWaitError, startCluster } from '../../lib/testing/index.js';
import type { EventNote, NodeReport, ProcessCluster } from '../../lib/testing/index.js';

/**
 * docs/testing.md, sections 2 and 3: following the nodes live
 * (`node(i).onReport`, `node(i).onEvent`, `node(i).waitForEvent`) and a graceful stop that leaves
 * the node to exit by itself (`stop(i, { exitByItself: true })`), which
 * fails when something the node's code opened still holds it.
 */
const NODE = new URL('./fixtures/holder.ts', import.meta.url);

describe('following the nodes of a process cluster', () => {
  let cluster: ProcessCluster;

  beforeEach(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 2,
      options: { heartbeatMs: 100, deadPeerMs: 600 },
      timeoutMs: 10_000,
    });
    await cluster.ready();
  }, 20_000);
  afterEach(() => cluster.close());

  it('onReport hands over every report as it arrives, in order, until unsubscribed', async () => {
    const seen: NodeReport[] = [];
    const stop = cluster.node(1).onReport((r) => seen.push(r));
    await cluster.node(1).call('say', 'a', 1);
    await cluster.node(1).call('say', 'b', { two: 2 });
    // Reports cross IPC before the reply to the call that made them.
    expect(seen.map((r) => [r.kind, r.data])).toEqual([
      ['a', 1],
      ['b', { two: 2 }],
    ]);
    expect(seen[0]!.at).toBeLessThanOrEqual(seen[1]!.at);
    stop();
    await cluster.node(1).call('say', 'c', 3);
    expect(seen).toHaveLength(2);
    expect(cluster.node(1).reports.map((r) => r.kind)).toEqual(['a', 'b', 'c']);
  });

  it('onEvent hands over the switchboard events with their arrival time, across restarts', async () => {
    const of0: Array<{ event: EventNote; at: number }> = [];
    const of1: EventNote[] = [];
    cluster.node(0).onEvent((event, at) => of0.push({ event, at }));
    cluster.node(1).onEvent((event) => of1.push(event));
    const killed = performance.now();
    await cluster.kill(1);
    await cluster.waitUntilDown(1);
    const down = of0.find((e) => e.event.type === 'peer-down' && e.event.node === 1);
    expect(down).toBeDefined();
    expect(down!.at).toBeGreaterThanOrEqual(killed);
    await cluster.restart(1);
    await cluster.waitUntilAllUp();
    // The handle outlives the process: the new incarnation's events reach the same listener.
    expect(of1).toContainEqual(expect.objectContaining({ type: 'peer-up', node: 0 }));
    expect(of0).toContainEqual(
      expect.objectContaining({
        event: expect.objectContaining({ type: 'peer-restarted', node: 1 }) as unknown,
      }),
    );
  }, 20_000);

  it('waitForEvent resolves with the first matching event from an index, and fails once the node is gone', async () => {
    const from = cluster.node(0).events.length;
    // Already there: the peer-up of the rendezvous.
    expect(
      await cluster.node(0).waitForEvent((e) => e.type === 'peer-up' && e.node === 1),
    ).toMatchObject({ type: 'peer-up', node: 1 });
    await cluster.kill(1);
    const down = await cluster
      .node(0)
      .waitForEvent((e) => e.type === 'peer-down' && e.node === 1, { from, timeoutMs: 5_000 });
    expect(down).toMatchObject({ type: 'peer-down', node: 1, code: 'ERR_SB_PEER_LOST' });
    // Counted from `from`, the old peer-up does not match.
    await expect(
      cluster
        .node(0)
        .waitForEvent((e) => e.type === 'peer-up', { from, timeoutMs: 300, what: 'node 1 up' }),
    ).rejects.toThrow(/node 0 to see node 1 up: not met within the timeout of 300 ms/);
    // A node that is gone cannot see anything more: the wait fails at once, saying why.
    await expect(cluster.node(1).waitForEvent(() => false, { timeoutMs: 5_000 })).rejects.toThrow(
      /node 1 was killed by the test/,
    );
  }, 20_000);

  it('stop with exitByItself: a node whose handles are all closed exits 0 on its own', async () => {
    await cluster.stop(1, { exitByItself: true });
    expect(cluster.node(1).status).toBe('stopped');
    expect(cluster.node(1).stderr.lines.join('\n')).not.toContain('still running');
  });

  it('stop with exitByItself fails, naming what holds it, when the node code left a handle open', async () => {
    await cluster.node(1).call('hold');
    const stopping = cluster.stop(1, { exitByItself: true, timeoutMs: 1_500 });
    await expect(stopping).rejects.toThrow(ClusterWaitError);
    await expect(stopping).rejects.toThrow(/did not exit by itself within 1500 ms/);
    await expect(stopping).rejects.toThrow(
      /still running 500 ms after close\(\), held by: .*Timeout/,
    );
    // Without it, the same node would have been made to exit.
    await cluster.restart(1);
    await cluster.node(1).call('hold');
    await cluster.stop(1);
    expect(cluster.node(1).status).toBe('stopped');
  }, 20_000);
});
