/**
 * Tasks pushed by a client whose session ends (docs/guide.md, "Clients"):
 * the worker finishes the task it was running, but its acknowledgement is
 * nobody's any more. A member gives a client's number to the next client
 * that attaches once the first one's sessions are over; the late
 * acknowledgement must not reach that client and settle its own task before
 * the task ran. Two members (fixtures/slow-member.ts; node 1 works one task
 * at a time) and two client processes of the built kit, one after the
 * other (fixtures/pusher-client.ts); then the same with a member's pusher
 * (node 0) restarted as a new incarnation.
 */
import { startCluster } from '../../lib/testing/index.js';
import type { ClusterNode, ProcessCluster } from '../../lib/testing/index.js';
import type * as Kit from '../../lib/testing/index.js';
import { runProgram } from '../docs/run-program.js';
import { distIsFresh } from '../packaging/pack.js';

const MEMBER = new URL('./fixtures/slow-member.ts', import.meta.url);
const CLIENT = new URL('./fixtures/pusher-client.ts', import.meta.url);
const DIST_KIT = new URL('../../dist/lib/testing/index.js', import.meta.url).href;
const CLIENT_SECRET = 'the client secret of the gone-client spec';
const TIMING = { heartbeatMs: 250, deadPeerMs: 1_500, reconnectMinMs: 20, reconnectMaxMs: 200 };
const WAIT = 15_000;

let cluster: ProcessCluster;
let kit: typeof Kit;

function spawn(): Promise<ClusterNode> {
  return kit.startClient({
    module: CLIENT,
    options: { nodes: cluster.addresses, clientSecret: CLIENT_SECRET, timeoutMs: WAIT, ...TIMING },
    timeoutMs: WAIT + 5_000,
  });
}

beforeAll(async () => {
  if (!distIsFresh()) {
    const r = await runProgram('npm', ['run', 'build'], 120_000);
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
  }
  kit = (await import(DIST_KIT)) as typeof Kit;
  cluster = await startCluster({
    module: MEMBER,
    nodes: 2,
    options: () => ({ ...TIMING, clientSecret: CLIENT_SECRET }),
    timeoutMs: 20_000,
  });
  await cluster.ready({ timeoutMs: WAIT });
}, 180_000);

afterAll(async () => {
  await kit?.closeAll();
  await cluster?.close();
}, 30_000);

it('a task still running when its client dies is not acknowledged to the client that takes its number', async () => {
  const worker = cluster.node(1);
  const a = await spawn();
  await a.invoke('rendezvous', [], { timeoutMs: WAIT });
  const first = await a.call<{ id: number; incarnation: string }>('identity');
  // A's task runs 5 s; A dies as soon as it starts.
  await a.call('push', 'a1', 5_000);
  await worker.waitForReport('task-start', { match: (t) => t === 'a1', timeoutMs: WAIT });
  const marks = worker.events.length;
  await a.kill();
  await worker.waitForEvent(
    (e) => e.type === 'client-down' && (e.detail ?? '').includes(first.incarnation),
    { from: marks, timeoutMs: WAIT, what: 'client-down of the killed client' },
  );

  // B attaches while a1 still runs, and gets A's number.
  const b = await spawn();
  await b.invoke('rendezvous', [], { timeoutMs: WAIT });
  const second = await b.call<{ id: number; incarnation: string }>('identity');
  expect(second.id).toBe(first.id);
  expect(second.incarnation).not.toBe(first.incarnation);
  const reportsBefore = worker.reports.filter((r) => r.kind === 'task-done').length;
  expect(reportsBefore).toBe(0); // a1 is still running: the scene is set
  await b.call('push', 'b1', 2_000);

  // B's pusher settles only once b1 ran: a1's acknowledgement went nowhere.
  await b.waitForReport('settled', { match: (t) => t === 'b1', timeoutMs: WAIT * 2 });
  const done = worker.reports.filter((r) => r.kind === 'task-done').map((r) => r.data);
  expect(done).toEqual(['a1', 'b1']);
  expect(b.reports.filter((r) => r.kind === 'failed')).toEqual([]);
  await b.stop(5_000);
}, 90_000);

it('a task still running when its member pusher restarts is not acknowledged to the new incarnation', async () => {
  const worker = cluster.node(1);
  const pusher = cluster.node(0);
  const doneFrom = worker.reports.length;
  await pusher.call('push', 'm1', 5_000);
  await worker.waitForReport('task-start', {
    from: doneFrom,
    match: (t) => t === 'm1',
    timeoutMs: WAIT,
  });
  const before = pusher.incarnation;
  await cluster.restart(0);
  await cluster.waitUntilAllUp({ timeoutMs: WAIT });
  expect(pusher.incarnation).not.toBe(before);
  const settledFrom = pusher.reports.length;
  expect(worker.reports.slice(doneFrom).filter((r) => r.kind === 'task-done')).toEqual([]);
  await pusher.call('push', 'm2', 2_000);
  await pusher.waitForReport('settled', {
    from: settledFrom,
    match: (t) => t === 'm2',
    timeoutMs: WAIT * 2,
  });
  const done = worker.reports
    .slice(doneFrom)
    .filter((r) => r.kind === 'task-done')
    .map((r) => r.data);
  expect(done).toEqual(['m1', 'm2']);
}, 90_000);
