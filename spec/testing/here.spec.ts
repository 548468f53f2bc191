import { ClusterWaitError, startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';

/**
 * switchboard/testing's mixed clusters (docs/testing.md, "Nodes in the
 * test process"): `here: [0]` puts node 0's switchboard in this process,
 * behind its proxy like the others, while nodes 1 and 2 are processes
 * running spec/testing/fixtures/node.ts. Node 0 runs the same module here
 * (its default export, imported in this process) unless `setup` says
 * otherwise; the waits, the link faults and restarts cover it as any node.
 */
const HEARTBEAT = 100;
const DEAD = 600;
const NODE = new URL('./fixtures/node.ts', import.meta.url);

/** True if a process with this pid exists. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a mixed cluster: node 0 in the test process, nodes 1 and 2 processes', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 3,
      here: [0],
      options: { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD },
      data: (id) => ({ role: id === 0 ? 'here' : 'child' }),
      timeoutMs: 10_000,
    });
  }, 20_000);
  afterAll(() => cluster.close());

  it('rendezvous, and calls both ways between this process and the children', async () => {
    await cluster.ready();
    expect(cluster.isHere(0)).toBe(true);
    expect(cluster.nodes.map((n) => n.id)).toEqual([1, 2]);
    const sb = cluster.sb(0);
    expect(sb.peers().map((p) => [p.node, p.state])).toEqual([
      [1, 'up'],
      [2, 'up'],
    ]);
    // The module ran here too: its functions are node 0's.
    expect(await cluster.local(0).call('ask', 2)).toEqual({
      id: 2,
      incarnation: cluster.node(2).incarnation,
    });
    expect(await cluster.node(1).call('ask', 0)).toEqual({ id: 0, incarnation: sb.incarnation });
    expect(cluster.node(1).seen(0)).toEqual({
      node: 0,
      state: 'up',
      incarnation: sb.incarnation,
    });
  });

  it('says which handle a node has, and refuses process faults on a node of here', async () => {
    expect(() => cluster.node(0)).toThrow(/runs in the test process \(here\): use cluster.local/);
    expect(() => cluster.local(1)).toThrow(/is a process, not a node of here/);
    expect(() => cluster.kill(0)).toThrow(/cannot kill node 0: it runs in the test process/);
    expect(() => cluster.pause(0)).toThrow(/cannot pause node 0/);
    await expect(cluster.schedule({ seed: 1, steps: 1 })).rejects.toThrow(
      /fault schedules need every node in a process/,
    );
  });

  it('a killed child is declared down by the node here too, and back once restarted', async () => {
    const before = cluster.node(2).incarnation;
    await cluster.kill(2);
    await cluster.waitUntilDown(2);
    expect(
      cluster
        .sb(0)
        .peers()
        .find((p) => p.node === 2)?.state,
    ).toBe('down');
    await cluster.restart(2);
    await cluster.waitUntilAllUp();
    const after = cluster.node(2).incarnation;
    expect(after).not.toBe(before);
    expect(
      cluster
        .sb(0)
        .peers()
        .find((p) => p.node === 2)?.incarnation,
    ).toBe(after);
  });

  it('a blackhole between the test process and a child is seen at both ends, and healed', async () => {
    cluster.blackhole(0, 1);
    await Promise.all([
      cluster.waitUntilDown(1, { by: [0] }),
      cluster.waitUntilDown(0, { by: [1] }),
    ]);
    // Node 2 still sees both.
    expect(cluster.node(2).seen(0)?.state).toBe('up');
    expect(cluster.node(2).seen(1)?.state).toBe('up');
    cluster.heal();
    await cluster.waitUntilAllUp();
  });

  it('restarts the node here as a new incarnation that the children see', async () => {
    const before = cluster.sb(0).incarnation;
    const events = cluster.local(0).events.length;
    await cluster.restart(0);
    await cluster.waitUntilAllUp();
    const after = cluster.sb(0).incarnation;
    expect(after).not.toBe(before);
    expect(cluster.node(1).seen(0)?.incarnation).toBe(after);
    expect(cluster.node(2).seen(0)?.incarnation).toBe(after);
    // The handle keeps its history across the restart.
    expect(cluster.local(0).events.length).toBeGreaterThan(events);
  });

  it('a wait that fails describes the node here as well as the processes', async () => {
    // Nobody is down: the wait cannot hold.
    const err = (await cluster
      .waitUntilDown(0, { by: [1], timeoutMs: 300 })
      .catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ClusterWaitError);
    expect(err.message).toMatch(/^node 0 to be declared down by 1: not met within the timeout/);
    expect(err.message).toMatch(/\nnode 0 \(in process, incarnation [0-9a-f]{8}\)/);
    expect(err.message).toMatch(/\nnode 1 \(pid \d+, running/);
  });
});

describe('closing a mixed cluster', () => {
  it('kills the children and closes the switchboard here; setup replaces the module here', async () => {
    const cluster = await startCluster({
      module: NODE,
      nodes: 2,
      here: [1],
      setup: ({ sb, id }) => {
        sb.serve('whoami', () => ({ id, here: true }));
        return { ping: () => 'pong' };
      },
      timeoutMs: 10_000,
    });
    await cluster.ready();
    // Node 0 is the process; node 1, here, runs setup instead of the module.
    expect(await cluster.node(0).call('ask', 1)).toEqual({ id: 1, here: true });
    expect(await cluster.local(1).call('ping')).toBe('pong');
    const sb = cluster.sb(1);
    const pids = cluster.nodes.flatMap((n) => n.pids);
    await cluster.close();
    expect(pids.filter(exists)).toEqual([]);
    expect(sb.peers().every((p) => p.state === 'down')).toBe(true);
    expect(() => cluster.sb(1)).toThrow(/node 1 is stopped/);
  }, 20_000);
});
