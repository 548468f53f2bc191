import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ClusterWaitError, NodeCallError, startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';

/**
 * switchboard/testing (docs/testing.md) used as a user would: a cluster of
 * three real processes running spec/testing/fixtures/node.ts, with short
 * heartbeats so every fault is seen in well under a second. The tests run
 * in order on one cluster (each leaves it healed and up), then the
 * failures and the cleanup on clusters of their own.
 */
const HEARTBEAT = 100;
const DEAD = 600;
const NODE = new URL('./fixtures/node.ts', import.meta.url);
/** The repository root (the runner fixture runs from there so `--import tsx` resolves). */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** True if a process with this pid exists. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of `pids` exists, at most `ms`. */
async function gone(pids: readonly number[], ms: number): Promise<number[]> {
  const deadline = performance.now() + ms;
  while (pids.some(exists) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return pids.filter(exists);
}

describe('a process cluster', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 3,
      options: { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD },
      data: (id) => ({ role: id === 0 ? 'first' : 'other' }),
      timeoutMs: 10_000,
    });
  }, 20_000);
  afterAll(() => cluster.close());

  it('rendezvous: every node sees every other up', async () => {
    await cluster.ready();
    for (const n of cluster.nodes) {
      expect(n.peers().map((p) => p.state)).toEqual(['up', 'up']);
      expect(n.stdout.lines).toContain(
        `node ${n.id} up, data {"role":"${n.id === 0 ? 'first' : 'other'}"}`,
      );
    }
  });

  it('calls into a node: values cross by structured clone, errors keep their code', async () => {
    const args = [1, 'two', Buffer.from('three'), new Map([[4, 'four']])];
    expect(await cluster.node(0).call('echo', ...args)).toEqual(args);
    // Through the links under test: RPC from node 0 to node 2.
    expect(await cluster.node(0).call('ask', 2)).toEqual({
      id: 2,
      incarnation: cluster.node(2).incarnation,
    });
    await cluster.node(2).call('send', 1, { hello: 'world' });
    expect(await cluster.node(1).waitForReport('received')).toEqual({ hello: 'world' });

    const failed = await cluster
      .node(1)
      .call('fail', 'on purpose')
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(NodeCallError);
    expect(failed).toMatchObject({ node: 1, fn: 'fail', code: 'E_FIXTURE' });
    expect((failed as Error).message).toBe('node 1: fail() threw Error: on purpose');
    await expect(cluster.node(1).call('nope')).rejects.toThrow(/no function "nope".*echo, ask/);
  });

  it('kill and restart: peers see the node down, then up as a new incarnation', async () => {
    const before = cluster.node(2).incarnation!;
    const pid = cluster.node(2).pid!;
    await cluster.kill(2);
    expect(exists(pid)).toBe(false);
    await cluster.waitUntilDown(2);
    expect(cluster.node(0).seen(2)?.state).toBe('down');

    await cluster.restart(2);
    await cluster.waitUntilAllUp();
    const after = cluster.node(2).incarnation!;
    expect(after).not.toBe(before);
    for (const by of [0, 1]) {
      expect(cluster.node(by).seen(2)).toMatchObject({ state: 'up', incarnation: after });
      expect(cluster.node(by).events).toContainEqual(
        expect.objectContaining({ type: 'peer-restarted', node: 2, incarnation: after }),
      );
    }
    expect(await cluster.node(0).call('ask', 2)).toEqual({ id: 2, incarnation: after });
    expect(cluster.node(2).stdout.lines).toContain('--- restarted ---');
  });

  it('pause past the dead-peer timeout: seen down, and up again after resume', async () => {
    const paused = performance.now();
    cluster.pause(1);
    await cluster.waitUntilDown(1);
    expect(performance.now() - paused).toBeGreaterThanOrEqual(DEAD - 2 * HEARTBEAT);
    expect(cluster.node(1).status).toBe('paused');
    cluster.resume(1);
    await cluster.waitUntilAllUp();
    expect(await cluster.node(1).call('ask', 0)).toMatchObject({ id: 0 });
  });

  it('blackhole: both ends see each other down, the third node sees both up; heal brings them back', async () => {
    cluster.blackhole(0, 1);
    await Promise.all([
      cluster.waitUntilDown(1, { by: [0] }),
      cluster.waitUntilDown(0, { by: [1] }),
    ]);
    expect(
      cluster
        .node(2)
        .peers()
        .map((p) => p.state),
    ).toEqual(['up', 'up']);
    await expect(cluster.node(0).call('ask', 1)).rejects.toThrow(NodeCallError);
    cluster.heal(0, 1);
    await cluster.waitUntilAllUp();
    expect(await cluster.node(0).call('ask', 1)).toMatchObject({ id: 1 });
  });

  it('one-way blackhole and cut are seen down too', async () => {
    // What 2 sends to 0 vanishes: 0 hears nothing from 2 and declares it down.
    cluster.blackhole(2, 0, { direction: 'a->b' });
    await cluster.waitUntilDown(2, { by: [0] });
    cluster.heal(2, 0);
    await cluster.waitUntilAllUp();

    cluster.cut(1, 2);
    await Promise.all([
      cluster.waitUntilDown(2, { by: [1] }),
      cluster.waitUntilDown(1, { by: [2] }),
    ]);
    cluster.heal();
    await cluster.waitUntilAllUp();
  });

  it('delay: a message across a delayed link arrives at least that late', async () => {
    // Below DEAD / 4 each way: a round trip of half the dead-peer timeout
    // or more would hold every message (docs/testing.md, "Delays").
    cluster.delay(0, 2, 80);
    const from = cluster.node(2).reports.length;
    const t = performance.now();
    await cluster.node(0).call('send', 2, 'late');
    await cluster.node(2).waitForReport('received', { from, match: (d) => d === 'late' });
    expect(performance.now() - t).toBeGreaterThanOrEqual(80);
    cluster.heal(0, 2);
    await cluster.waitUntilAllUp();
  });

  it('a failed wait shows what the node printed and reported', async () => {
    await cluster.node(1).call('print', 'a line only node 1 printed');
    const err = await cluster
      .node(1)
      .invoke('hang', [], { timeoutMs: 200 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterWaitError);
    const message = (err as Error).message;
    expect(message).toMatch(/^node 1: hang\(\) did not answer within 200 ms/);
    expect(message).toMatch(/stdout \(last 20 lines\):[\s\S]*a line only node 1 printed/);
    expect(message).toMatch(/stderr \(last 20 lines\):[\s\S]*err: a line only node 1 printed/);
    expect(message).toMatch(/reports \(last 10 of 1\):\n {4}received \{ hello: 'world' \}/);

    const down = (await cluster
      .waitUntilDown(0, { timeoutMs: 200 })
      .then(() => new Error('not expected to pass'))
      .catch((e: unknown) => e)) as Error;
    expect(down.message).toMatch(/^node 0 to be declared down by 1, 2: not met within the timeout/);
    expect(down.message).toMatch(/node 1 \([0-9a-f]{8}\) sees: 0 up/);
    expect(down.message).toContain('node 0 up, data {"role":"first"}');
  });

  it('stop: the node closes gracefully, its peers see it down at once; it restarts', async () => {
    const t = performance.now();
    await cluster.stop(1);
    expect(cluster.node(1).status).toBe('stopped');
    await cluster.waitUntilDown(1);
    expect(performance.now() - t).toBeLessThan(DEAD);
    const down = cluster.node(0).events.filter((e) => e.type === 'peer-down' && e.node === 1);
    expect(down.at(-1)?.detail).toMatch(/closed/);
    await cluster.restart(1);
    await cluster.waitUntilAllUp();
  });

  it('close kills every process the cluster ever ran', async () => {
    const pids = cluster.nodes.flatMap((n) => n.pids);
    expect(pids).toHaveLength(5); // three, then nodes 2 and 1 once more each
    await cluster.close();
    expect(pids.filter(exists)).toEqual([]);
    await expect(cluster.node(0).call('echo')).rejects.toThrow(/was killed by the test/);
  });
});

describe('a node that fails to start', () => {
  it('fails startCluster with what it printed on stdout and stderr', async () => {
    const err = (await startCluster({
      module: new URL('./fixtures/broken.ts', import.meta.url),
      nodes: 1,
      timeoutMs: 10_000,
    }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ClusterWaitError);
    expect(err.message).toMatch(
      /^node 0 to start: failed to start: broken fixture: failed on purpose/,
    );
    expect(err.message).toContain('broken fixture: about to fail');
    expect(err.message).toContain('broken fixture: something on stderr');
  });
});

describe('a test runner that dies', () => {
  it('leaves no node behind, not even a paused one', async () => {
    const runner = spawn(process.execPath, ['--import', 'tsx', 'spec/testing/fixtures/runner.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let out = '';
    runner.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const pids = await new Promise<number[]>((resolve, reject) => {
      runner.stdout.on('data', () => {
        const m = /\{"pids".*\}/.exec(out);
        if (m !== null) resolve((JSON.parse(m[0]) as { pids: number[] }).pids);
      });
      runner.on('exit', (code) => reject(new Error(`runner exited (${code}): ${out}`)));
    });
    expect(pids).toHaveLength(2);
    expect(pids.every(exists)).toBe(true);
    runner.kill('SIGKILL');
    expect(await gone(pids, 5_000)).toEqual([]);
  }, 30_000);
});
