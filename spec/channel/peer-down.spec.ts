import { filter, firstValueFrom, timeout } from 'rxjs';
import type { NotDeliveredError, SwitchboardError } from '../../lib/errors.js';
import { Switchboard } from '../../lib/facade.js';
import type { StartOptions } from '../../lib/facade.js';
import type { SwitchboardEvent } from '../../lib/switchboard/events.js';
import { SECRET, until } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';
import { receive as take } from './fixtures/receive.js';

/**
 * docs/reliability.md 16: sends to a peer that is down, whether it has not
 * started yet or has died. Sends wait in the sender's queue, bounded by
 * `maxPending`; one more fails at once with ERR_SB_OVERFLOW (and `post()`
 * counts a drop); when the peer comes back, what waited is flushed in order.
 * Waiting sends that outlive `timeoutMs` fail with ERR_SB_TIMEOUT.
 */

const MAX_PENDING = 100;

function options(nodes: string[], id: number): StartOptions {
  return {
    nodes,
    id,
    secret: SECRET,
    heartbeatMs: 50,
    deadPeerMs: 400,
    reconnectMinMs: 10,
    reconnectMaxMs: 50,
  };
}

function nextEvent(
  sb: Switchboard,
  pred: (e: SwitchboardEvent) => boolean,
  ms = 5_000,
): Promise<SwitchboardEvent> {
  return firstValueFrom(sb.events$.pipe(filter(pred), timeout({ first: ms })));
}

/** True if `p` has settled by the next turn of the event loop. */
async function settledAtOnce(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

describe('sends to a peer that is down', () => {
  const open: Switchboard[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((sb) => sb.destroy()));
  });
  const start = async (nodes: string[], id: number): Promise<Switchboard> => {
    const sb = await Switchboard.start(options(nodes, id));
    open.push(sb);
    return sb;
  };

  it('not started yet: buffers up to maxPending, refuses more at once, flushes in order on arrival', async () => {
    const nodes = await localNodes(2);
    const a = await start(nodes, 0);
    const s = a.sender<number>('jobs', { node: 1, maxPending: MAX_PENDING, timeoutMs: 10_000 });
    const waiting = Array.from({ length: MAX_PENDING }, (_, i) => s.send(i));
    expect(s.waiting).toBe(MAX_PENDING);

    const refused = s.send(MAX_PENDING);
    expect(await settledAtOnce(refused)).toBe(true);
    await expect(refused).rejects.toMatchObject({ code: 'ERR_SB_OVERFLOW' });
    s.post(-1);
    expect(s.dropped).toBe(1);
    expect(a.stats().drops).toEqual({ jobs: 1 });
    // Nothing is buffered on the link for a peer that never linked.
    expect(a.peers()[0]!.bufferedBytes).toBe(0);

    const b = await start(nodes, 1);
    const r = b.receiver<number>('jobs');
    await Promise.all(waiting);
    expect(await take(r, MAX_PENDING)).toEqual(Array.from({ length: MAX_PENDING }, (_, i) => i));
    // And the channel carries on.
    await s.send(1000);
    expect(await take(r, 1)).toEqual([1000]);
  });

  it('died: in-flight messages are reported, later sends buffer within maxPending and flush in order when it returns', async () => {
    const nodes = await localNodes(2);
    const a = await start(nodes, 0);
    let b = await start(nodes, 1);
    await a.rendezvous({ timeoutMs: 5_000 });
    let r = b.receiver<number>('jobs');
    const s = a.sender<number>('jobs', { node: 1, maxPending: MAX_PENDING, timeoutMs: 10_000 });
    const errors: SwitchboardError[] = [];
    s.errors$.subscribe((e) => errors.push(e));

    // Some traffic, part of it taken, part still buffered when node 1 dies.
    for (let i = 0; i < 50; i++) await s.send(i);
    const taken = await take(r, 20);
    const down = nextEvent(a, (e) => e.type === 'peer-down' && e.node === 1);
    await b.destroy();
    await down;
    // What was sent and not known to be delivered was reported, nothing else.
    const reported = errors.flatMap(
      (e) => (e as NotDeliveredError & { messages: number[] }).messages,
    );
    expect(errors.every((e) => e.code === 'ERR_SB_NOT_DELIVERED')).toBe(true);
    expect([...new Set([...taken, ...reported])].sort((x, y) => x - y)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );

    // Down: sends wait (bounded), the one too many fails at once.
    const waiting = Array.from({ length: MAX_PENDING }, (_, i) => s.send(100 + i));
    const refused = s.send(999);
    expect(await settledAtOnce(refused)).toBe(true);
    await expect(refused).rejects.toMatchObject({ code: 'ERR_SB_OVERFLOW' });
    expect(s.waiting).toBe(MAX_PENDING);
    expect(a.peers()[0]!.bufferedBytes).toBe(0);

    // Back as a new incarnation: the named sender resumes, the queue flushes in order.
    const back = nextEvent(a, (e) => e.type === 'peer-restarted' && e.node === 1);
    b = await start(nodes, 1);
    r = b.receiver<number>('jobs');
    await back;
    await Promise.all(waiting);
    expect(await take(r, MAX_PENDING)).toEqual(
      Array.from({ length: MAX_PENDING }, (_, i) => 100 + i),
    );
    expect(s.closed).toBe(false);
  });

  it('died a little after taking messages: exactly the ones it never took are reported', async () => {
    const nodes = await localNodes(2);
    const a = await start(nodes, 0);
    const b = await start(nodes, 1);
    await a.rendezvous({ timeoutMs: 5_000 });
    const r = b.receiver<number>('jobs');
    const s = a.sender<number>('jobs', { node: 1 });
    const errors: SwitchboardError[] = [];
    s.errors$.subscribe((e) => errors.push(e));
    for (let i = 0; i < 50; i++) await s.send(i);
    // 20 taken: far below the half window that triggers a credit top-up, so
    // only the lazy delivery report can tell the sender about them.
    expect(await take(r, 20)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // The sender hears of those 20 from the delivery report, not from a top-up.
    await until(() => s.outlets[0]?.inflight === 30, 5_000, 'the delivery report');
    const down = nextEvent(a, (e) => e.type === 'peer-down' && e.node === 1);
    await b.destroy();
    await down;
    const reported = errors.flatMap(
      (e) => (e as NotDeliveredError & { messages: number[] }).messages,
    );
    expect(reported).toEqual(Array.from({ length: 30 }, (_, i) => 20 + i));
  });

  it('sends still waiting when timeoutMs runs out fail with ERR_SB_TIMEOUT, and nothing of them arrives later', async () => {
    const nodes = await localNodes(2);
    const a = await start(nodes, 0);
    const s = a.sender<number>('jobs', { node: 1, maxPending: MAX_PENDING, timeoutMs: 100 });
    const results = await Promise.allSettled([0, 1, 2].map((i) => s.send(i)));
    expect(
      results.map((x) => x.status === 'rejected' && (x.reason as SwitchboardError).code),
    ).toEqual(['ERR_SB_TIMEOUT', 'ERR_SB_TIMEOUT', 'ERR_SB_TIMEOUT']);
    expect(s.waiting).toBe(0);
    const b = await start(nodes, 1);
    const r = b.receiver<number>('jobs');
    await s.send(3);
    expect(await take(r, 1)).toEqual([3]);
  });
});
