import { startCluster } from '../../lib/testing/index.js';
import type { ClusterNode, ProcessCluster } from '../../lib/testing/index.js';
import type { Reply } from './fixtures/channel-node.js';

/**
 * The `comm` crate's three-process test: a leader broadcasts a number and
 * then a sender on an MPMC `all` channel; each follower replies through the
 * sender it received, which works on its node as it would on the leader's.
 * Each node is its own process (switchboard/testing, running
 * fixtures/channel-node.ts).
 */
const NODE = new URL('./fixtures/channel-node.ts', import.meta.url);

let cluster: ProcessCluster | undefined;
afterEach(() => cluster?.close());

describe.each([0, 2])('three processes, leader on node %d', (leaderId) => {
  it('each follower replies to the broadcast through the sender it carried', async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 3,
      options: {
        heartbeatMs: 100,
        deadPeerMs: 800,
        handshakeTimeoutMs: 2_000,
        reconnectMaxMs: 200,
      },
      timeoutMs: 15_000,
    });
    await cluster.ready({ timeoutMs: 12_000 });
    const leader = cluster.node(leaderId);
    const followers = cluster.nodes.filter((c) => c !== leader);
    await Promise.all(followers.map((c) => c.call('follower', 'numbers')));

    const replies = await leader.invoke<Reply[]>('leader', ['numbers', 2, 42, 10_000], {
      timeoutMs: 15_000,
    });

    const expected = [0, 1, 2].filter((id) => id !== leaderId).map((from) => ({ from, value: 42 }));
    expect([...replies].sort((a, b) => a.from - b.from)).toEqual(expected);
    // Each follower saw the number once, and answered once.
    for (const f of followers) {
      await f.waitForReport('answered', { timeoutMs: 5_000 });
      expect(answers(f)).toEqual([42]);
    }
    // Every node closes and then exits by itself: nothing of the library holds it.
    await Promise.all(cluster.nodes.map((c) => cluster!.stop(c.id, { exitByItself: true })));
  }, 30_000);
});

function answers(c: ClusterNode): unknown[] {
  return c.reports.flatMap((r) => (r.kind === 'answered' ? [r.data] : []));
}
