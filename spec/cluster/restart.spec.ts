import { performance } from 'node:perf_hooks';
import { startCluster } from '../../lib/testing/index.js';
import type { EventNote, NodeOptions, ProcessCluster } from '../../lib/testing/index.js';
import { logTiming } from './fixtures/system.js';
import type { ReceiveStats } from './fixtures/traffic-node.js';

/**
 * docs/reliability.md 9 and 13: a node killed with SIGKILL or frozen with SIGSTOP
 * is declared lost within the dead-peer timeout plus one heartbeat; a node
 * restarted with the same id rejoins as a new incarnation without restarting
 * the others; a frozen node that resumes relinks.
 *
 * The nodes are processes of a switchboard/testing cluster running
 * fixtures/traffic-node.ts. Timing bounds are measured in the test process,
 * from the signal to the arrival of the event over IPC, so they include IPC
 * and scheduling delays: MARGIN covers those on a loaded 2-core machine. The
 * lower bound shows the loss really came from the dead-peer timer (the last
 * frame can predate the signal by up to a heartbeat plus a tick).
 */
const NODE = new URL('./fixtures/traffic-node.ts', import.meta.url);
const HEARTBEAT = 200;
const DEAD = 1_500;
const MARGIN = 800;
const MESSAGES = 2_000;

/** An event of a node, its index in the node's `events`, and when the test process got it. */
interface TimedEvent {
  readonly event: EventNote;
  readonly index: number;
  readonly at: number;
}

let cluster: ProcessCluster | undefined;
/** Every node's events, with their arrival times, across restarts. */
let timeline: TimedEvent[][] = [];
afterEach(() => cluster?.close());

/** Starts a cluster of three with quick handshakes and reconnects, and waits for the rendezvous. */
async function start(options: NodeOptions): Promise<ProcessCluster> {
  cluster = await startCluster({
    module: NODE,
    nodes: 3,
    options: { handshakeTimeoutMs: 1_000, reconnectMaxMs: 200, ...options },
    timeoutMs: 15_000,
  });
  const c = cluster;
  timeline = c.nodes.map(() => []);
  for (const n of c.nodes)
    n.onEvent((event, at) => timeline[n.id]!.push({ event, index: n.events.length - 1, at }));
  await c.ready({ timeoutMs: 10_000 });
  return c;
}

/** Where each node's events end now. */
const mark = (): number[] => cluster!.nodes.map((n) => n.events.length);

/** Node `id`'s events from index `from` on, with their arrival times. */
const eventsOf = (id: number, from: number): TimedEvent[] =>
  timeline[id]!.filter((t) => t.index >= from);

/** Waits for `type` about `node` on each of `ids`, after the given marks. */
function eventOnEach(
  ids: readonly number[],
  marks: readonly number[],
  type: string,
  node: number,
  timeoutMs: number,
  extra: (e: EventNote) => boolean = () => true,
): Promise<TimedEvent[]> {
  const matches = (e: EventNote): boolean => e.type === type && e.node === node && extra(e);
  return Promise.all(
    ids.map(async (id) => {
      await cluster!.node(id).waitForEvent(matches, {
        from: marks[id]!,
        timeoutMs,
        what: `${type} of node ${node}`,
      });
      return eventsOf(id, marks[id]!).find((t) => matches(t.event))!;
    }),
  );
}

/** Asserts a measured detection time lies within the dead-peer bound. */
function expectDetectedInBound(what: string, ms: number): void {
  logTiming(what, ms);
  expect({ what, ms, early: ms < DEAD - 2 * HEARTBEAT }).toMatchObject({ early: false });
  expect({ what, ms, late: ms > DEAD + HEARTBEAT + MARGIN }).toMatchObject({ late: false });
}

/** Sends `MESSAGES` numbered messages along every [from, to] and checks they all arrived in order. */
async function expectTraffic(routes: ReadonlyArray<readonly [number, number]>): Promise<void> {
  const c = cluster!;
  await Promise.all(routes.map(([from, to]) => c.node(from).call('send', to, MESSAGES)));
  const got = await Promise.all(
    routes.map(([from, to]) =>
      c.node(to).invoke<ReceiveStats>('expect', [from, MESSAGES], { timeoutMs: 10_000 }),
    ),
  );
  for (const [i, g] of got.entries())
    expect({ route: routes[i], count: g.count, outOfOrder: g.outOfOrder }).toEqual({
      route: routes[i],
      count: MESSAGES,
      outOfOrder: 0,
    });
}

/**
 * What disturbed node `id`'s link with `node` since `from`: every event
 * about it except `peer-suspect`, which only flags a silence (an observer
 * starved of CPU for a few hundred ms on a loaded machine raises it) and
 * changes nothing.
 */
function disturbances(id: number, from: number, node: number): string[] {
  return eventsAbout(id, from, node).filter((t) => t !== 'peer-suspect');
}

/** Event types node `id` reported about `node` since `from`. */
function eventsAbout(id: number, from: number, node: number): string[] {
  return eventsOf(id, from)
    .filter((e) => e.event.node === node)
    .map((e) => e.event.type);
}

/** Every node closes and then exits 0 by itself. */
async function closeAndExit(): Promise<void> {
  const c = cluster!;
  await Promise.all(c.nodes.map((n) => c.stop(n.id, { exitByItself: true })));
  expect(c.nodes.map((n) => n.status)).toEqual(c.nodes.map(() => 'stopped'));
}

const options = { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD };

describe('kill -9 of one node in a cluster of three', () => {
  it('is declared down within the bound; restarted with the same id it rejoins as a new incarnation', async () => {
    const c = await start(options);
    const before = c.nodes.map((n) => n.incarnation!);
    const marks = mark();

    const killed = c.kill(1);
    const killedAt = performance.now();
    const downs = await eventOnEach([0, 2], marks, 'peer-down', 1, 5_000);
    for (const [i, d] of downs.entries()) {
      expect(d.event.code).toBe('ERR_SB_PEER_LOST');
      expectDetectedInBound(`peer-down on node ${i * 2}`, d.at - killedAt);
    }
    await killed;
    expect(c.node(1).status).toBe('killed');
    expect(c.node(1).gone()).toBe('was killed by the test');

    await c.restart(1);
    const incarnation = c.node(1).incarnation!;
    expect(incarnation).not.toBe(before[1]);
    await eventOnEach(
      [0, 2],
      marks,
      'peer-restarted',
      1,
      10_000,
      (e) => e.incarnation === incarnation,
    );
    await c.waitUntilAllUp({ timeoutMs: 10_000 });

    // The others kept their incarnations and their own link: nothing about each other.
    expect(
      c
        .node(1)
        .peers()
        .map((p) => [p.node, p.state, p.incarnation]),
    ).toEqual([
      [0, 'up', before[0]],
      [2, 'up', before[2]],
    ]);
    expect(disturbances(0, marks[0]!, 2)).toEqual([]);
    expect(disturbances(2, marks[2]!, 0)).toEqual([]);
    for (const id of [0, 2]) {
      const about1 = eventsAbout(id, marks[id]!, 1).filter(
        (t) => t !== 'peer-suspect' && t !== 'link-error',
      );
      expect(about1).toEqual(['peer-down', 'peer-restarted']);
    }

    await expectTraffic([
      [0, 1],
      [1, 0],
      [1, 2],
      [2, 1],
    ]);
    await closeAndExit();
  }, 30_000);

  it('restarted before the dead-peer timeout: the old session ends as restarted, with no peer-down', async () => {
    // A long dead-peer timeout, so the restart always beats it.
    const c = await start({ heartbeatMs: HEARTBEAT, deadPeerMs: 10_000 });
    const marks = mark();

    await c.kill(2);
    await c.restart(2);
    const incarnation = c.node(2).incarnation!;
    await eventOnEach(
      [0, 1],
      marks,
      'peer-restarted',
      2,
      10_000,
      (e) => e.incarnation === incarnation,
    );
    for (const id of [0, 1]) expect(eventsAbout(id, marks[id]!, 2)).not.toContain('peer-down');
    await c.waitUntilAllUp({ timeoutMs: 10_000 });
    await expectTraffic([
      [0, 2],
      [2, 1],
    ]);
    await closeAndExit();
  }, 30_000);
});

describe('SIGSTOP of one node in a cluster of three', () => {
  it('is declared lost within the bound, and relinks after SIGCONT', async () => {
    const c = await start(options);
    const before = c.nodes.map((n) => n.incarnation!);
    const marks = mark();

    // Node 1 both dials (node 2) and is dialed (by node 0).
    c.pause(1);
    const stoppedAt = performance.now();
    const [redials, lost, downs] = await Promise.all([
      // Node 0 dials node 1: it drops the silent connection once node 1 is
      // suspect and dials again (docs/failure-detection.md), long before the loss.
      eventOnEach([0], marks, 'link-error', 1, 5_000, (e) => e.code === 'ERR_SB_LINK'),
      // Node 2 is dialed by node 1: its connection fails at the dead-peer timeout.
      eventOnEach([2], marks, 'link-error', 1, 5_000, (e) => e.code === 'ERR_SB_PEER_LOST'),
      eventOnEach([0, 2], marks, 'peer-down', 1, 5_000),
    ]);
    for (const e of redials) expect(e.at - stoppedAt).toBeLessThan(DEAD - 2 * HEARTBEAT);
    for (const [i, e] of [...lost, ...downs].entries())
      expectDetectedInBound(`${e.event.type} #${i}`, e.at - stoppedAt);
    // The two live nodes never doubted each other.
    expect(disturbances(0, marks[0]!, 2)).toEqual([]);
    expect(disturbances(2, marks[2]!, 0)).toEqual([]);

    const resumeMarks = mark();
    c.resume(1);
    const resumedAt = performance.now();
    // Same process, same incarnation: it comes back up, it did not restart.
    await eventOnEach(
      [0, 2],
      resumeMarks,
      'peer-up',
      1,
      10_000,
      (e) => e.incarnation === before[1],
    );
    await c.waitUntilAllUp({ timeoutMs: 10_000 });
    const relinkMs = performance.now() - resumedAt;
    logTiming('relink after SIGCONT', relinkMs);
    expect(relinkMs).toBeLessThan(5_000);
    // Every side saw each session with the frozen node end, then a new one begin with the
    // same incarnation: down, then up; never a restart, never a resume of the dead session.
    const lifecycle = (id: number, from: number, peer: number): string[] =>
      eventsOf(id, from)
        .filter((e) => e.event.node === peer && e.event.type.startsWith('peer-'))
        .filter((e) => e.event.type !== 'peer-suspect')
        .map((e) => `${e.event.type} ${e.event.incarnation ?? ''}`.trim());
    for (const [id, from, peer] of [
      [0, marks[0]!, 1],
      [2, marks[2]!, 1],
      [1, resumeMarks[1]!, 0],
      [1, resumeMarks[1]!, 2],
    ] as const) {
      expect({ node: id, peer, seen: lifecycle(id, from, peer) }).toEqual({
        node: id,
        peer,
        seen: ['peer-down', `peer-up ${before[peer]}`],
      });
    }
    for (const n of c.nodes) {
      expect({ id: n.id, peers: n.peers().map((p) => [p.node, p.state, p.incarnation]) }).toEqual({
        id: n.id,
        peers: [0, 1, 2].filter((p) => p !== n.id).map((p) => [p, 'up', before[p]]),
      });
    }
    await expectTraffic([
      [0, 1],
      [1, 2],
      [2, 1],
    ]);
    await closeAndExit();
  }, 30_000);
});
