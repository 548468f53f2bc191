import { freePorts, localNodes } from '../support/ports.js';
import {
  Harness,
  SECRET,
  clusterOptions,
  rendezvousAll,
  startCluster,
} from './fixtures/harness.js';
import type {
  NodeOptions,
  NodeProcess,
  ProbeResult,
  ProbeSpec,
  ReceiveStats,
} from './fixtures/harness.js';

/**
 * docs/reliability.md 6 and 7: processes with the wrong secret, an unknown node
 * id, a live node's id, or another node list try to join a live cluster of
 * three. Each is refused with its typed error, reported as `auth-failure`
 * on the events$ of both sides where both run a switchboard, while the live
 * sessions carry on: nodes 0 and 1 stream numbered messages to each other
 * throughout, and must lose, duplicate or reorder none, and no live node
 * sees a peer go suspect, down or restart.
 *
 * Intruders that claim a live node's id must bind somewhere else: they use
 * `bindHost: 127.0.0.2` (the whole of 127/8 is loopback on Linux).
 */
const LIVE = { heartbeatMs: 500, deadPeerMs: 5_000 };
const WAIT = 10_000;

const cluster = new Harness();
const intruders = new Harness();
let nodes: string[] = [];
let live: NodeProcess[] = [];
let incarnations: string[] = [];

beforeAll(async () => {
  nodes = await localNodes(3);
  live = await startCluster(cluster, nodes, LIVE);
  await rendezvousAll(live);
  incarnations = live.map((c) => c.incarnation!);
}, 30_000);
afterEach(() => intruders.cleanup());
afterAll(async () => {
  try {
    // The live cluster survived every intrusion and still shuts down cleanly.
    const exits = await Promise.all(live.map((c) => c.closeAndExit()));
    expect(exits).toEqual(live.map(() => ({ code: 0, signal: null })));
  } finally {
    await cluster.cleanup();
  }
}, 30_000);

/**
 * Runs `intrude` while nodes 0 and 1 stream to each other, then checks the
 * stream arrived whole and in order and no live session was disturbed.
 */
async function whileLiveTrafficFlows(intrude: () => Promise<void>): Promise<void> {
  const marks = live.map((c) => c.mark());
  const [n0, n1] = live as [NodeProcess, NodeProcess];
  const base0 = (await n1.request<Record<number, ReceiveStats>>({ cmd: 'received' }))[0]!;
  const base1 = (await n0.request<Record<number, ReceiveStats>>({ cmd: 'received' }))[1]!;
  await n0.request({ cmd: 'stream', to: 1 });
  await n1.request({ cmd: 'stream', to: 0 });
  try {
    await intrude();
  } finally {
    const sent01 = await n0.request<number>({ cmd: 'stop-stream', to: 1 });
    const sent10 = await n1.request<number>({ cmd: 'stop-stream', to: 0 });
    const got01 = await n1.request<ReceiveStats>({
      cmd: 'expect',
      from: 0,
      count: base0.count + sent01,
    });
    const got10 = await n0.request<ReceiveStats>({
      cmd: 'expect',
      from: 1,
      count: base1.count + sent10,
    });
    expect(sent01).toBeGreaterThan(0);
    expect(sent10).toBeGreaterThan(0);
    expect([got01, got10]).toEqual([
      { count: base0.count + sent01, outOfOrder: 0, sessions: 1 },
      { count: base1.count + sent10, outOfOrder: 0, sessions: 1 },
    ]);
  }
  for (const [id, c] of live.entries()) {
    const { peers } = await c.peers();
    expect({ id, peers: peers.map((p) => [p.node, p.state, p.incarnation]) }).toEqual({
      id,
      peers: [0, 1, 2].filter((p) => p !== id).map((p) => [p, 'up', incarnations[p]]),
    });
    // Refusals only: no live peer went suspect, down, restarted or reconnected.
    const other = c
      .events(marks[id])
      .map((e) => e.event.type)
      .filter((t) => t !== 'auth-failure');
    expect({ id, other }).toEqual({ id, other: [] });
  }
}

/** An intruder switchboard: `options` over the live node list, bound on 127.0.0.2. */
function spawnIntruder(label: string, id: number, extra: Partial<NodeOptions>): NodeProcess {
  return intruders.spawn(label, {
    options: clusterOptions(nodes, id, { ...LIVE, bindHost: '127.0.0.2', ...extra }),
  });
}

/** Waits for an auth-failure with `code` on `c` (about `node` when given). */
function authFailure(c: NodeProcess, code: string, node?: number, from = 0): Promise<unknown> {
  return c.waitEvent(
    (e) => e.type === 'auth-failure' && e.code === code && (node === undefined || e.node === node),
    `auth-failure ${code}${node === undefined ? '' : ` about node ${node}`}`,
    WAIT,
    from,
  );
}

it('refuses a process with the wrong secret, on both sides', async () => {
  const marks = live.map((c) => c.mark());
  await whileLiveTrafficFlows(async () => {
    // Claiming node 0, it dials nodes 1 and 2.
    const intruder = spawnIntruder('wrong-secret', 0, { secret: 'not-the-cluster-secret-at-all' });
    await Promise.all([
      authFailure(intruder, 'ERR_SB_AUTH_FAILED', 1),
      authFailure(intruder, 'ERR_SB_AUTH_FAILED', 2),
      authFailure(live[1]!, 'ERR_SB_AUTH_FAILED', undefined, marks[1]),
      authFailure(live[2]!, 'ERR_SB_AUTH_FAILED', undefined, marks[2]),
    ]);
  });
}, 30_000);

it('refuses a second process claiming a live node id with ERR_SB_DUPLICATE_NODE, on both sides', async () => {
  const marks = live.map((c) => c.mark());
  await whileLiveTrafficFlows(async () => {
    const intruder = spawnIntruder('duplicate-0', 0, {});
    await Promise.all([
      authFailure(intruder, 'ERR_SB_DUPLICATE_NODE', 1),
      authFailure(intruder, 'ERR_SB_DUPLICATE_NODE', 2),
      // The live side knows who it refused: the proof was good, the id taken.
      authFailure(live[1]!, 'ERR_SB_DUPLICATE_NODE', 0, marks[1]),
      authFailure(live[2]!, 'ERR_SB_DUPLICATE_NODE', 0, marks[2]),
    ]);
    const { peers } = await intruder.peers();
    expect(peers.every((p) => p.state !== 'up')).toBe(true);
  });
}, 30_000);

it('refuses a process configured with a different node list (fingerprint), on both sides', async () => {
  const marks = live.map((c) => c.mark());
  await whileLiveTrafficFlows(async () => {
    // Same addresses, but a tag on node 2: a subtle misconfiguration, still loud.
    const [a, b, c] = nodes as [string, string, string];
    const port = Number(c.slice(c.lastIndexOf(':') + 1));
    const intruder = spawnIntruder('other-list', 0, {
      nodes: [a, b, { host: '127.0.0.1', port, tags: ['gpu'] }],
    });
    await Promise.all([
      authFailure(intruder, 'ERR_SB_FINGERPRINT_MISMATCH', 1),
      authFailure(intruder, 'ERR_SB_FINGERPRINT_MISMATCH', 2),
      authFailure(live[1]!, 'ERR_SB_FINGERPRINT_MISMATCH', undefined, marks[1]),
      authFailure(live[2]!, 'ERR_SB_FINGERPRINT_MISMATCH', undefined, marks[2]),
    ]);
  });
}, 30_000);

describe('a process claiming id 3 in a cluster of three', () => {
  /**
   * A switchboard cannot be configured with an id outside its node list, so
   * a process that claims id 3 has a longer list. Under the dial rule node 3
   * dials nobody and nobody dials it, so it cannot even knock; these probes
   * drive the handshake by hand (the library's own state machine, in a
   * child process) to present id 3 as such a node would.
   */
  async function probe(spec: Partial<ProbeSpec>): Promise<ProbeResult> {
    const prober = intruders.spawn('prober', {});
    const port = Number(nodes[1]!.slice(nodes[1]!.lastIndexOf(':') + 1));
    return prober.request<ProbeResult>({
      cmd: 'probe',
      probe: {
        host: '127.0.0.1',
        port,
        nodes,
        secret: SECRET,
        self: 3,
        peer: 1,
        timeoutMs: 5_000,
        ...spec,
      },
    });
  }

  it('with its own, longer node list: refused with ERR_SB_FINGERPRINT_MISMATCH', async () => {
    const [extra] = await freePorts(1);
    const marks = live.map((c) => c.mark());
    await whileLiveTrafficFlows(async () => {
      const result = await probe({ nodes: [...nodes, `127.0.0.1:${extra}`] });
      expect(result).toMatchObject({ welcomed: false, code: 'ERR_SB_FINGERPRINT_MISMATCH' });
      await authFailure(live[1]!, 'ERR_SB_FINGERPRINT_MISMATCH', undefined, marks[1]);
    });
  }, 30_000);

  it('with the right fingerprint and secret: refused with ERR_SB_UNKNOWN_NODE', async () => {
    const marks = live.map((c) => c.mark());
    await whileLiveTrafficFlows(async () => {
      const result = await probe({});
      expect(result).toMatchObject({ welcomed: false, code: 'ERR_SB_UNKNOWN_NODE' });
      await authFailure(live[1]!, 'ERR_SB_UNKNOWN_NODE', undefined, marks[1]);
    });
  }, 30_000);
});
