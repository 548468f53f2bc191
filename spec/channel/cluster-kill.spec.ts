import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_RECEIVER_OPTIONS } from '../../lib/channel/receiver.js';
import { startCluster } from '../../lib/testing/index.js';
import type { NodeReport, ProcessCluster } from '../../lib/testing/index.js';
import type { Streamed } from './fixtures/channel-node.js';

/**
 * docs/reliability.md 13 on a channel: the receiving node is killed with SIGKILL
 * in the middle of a 100k-message stream, then restarted with the same id.
 *
 * Both nodes are processes of a switchboard/testing cluster running
 * fixtures/channel-node.ts. The sender (node 0) reports every loss its
 * `errors$` announces as it happens, and at the end how each send went; the
 * receiver (node 1) journals what it took to a file, synchronously, before
 * the event loop can report those deliveries (see `sink` in
 * fixtures/channel-node.ts), so the test knows every message the sender may
 * believe delivered. Pass criteria:
 * - the loss is reported (NotDeliveredError on `errors$`, `peer-down`)
 *   within the dead-peer timeout plus a heartbeat (plus IPC/scheduling margin);
 * - every message is delivered, or reported to the sender as not delivered
 *   (messages taken just before the kill may be both: their outcome was
 *   unknown to the sender, which is what the error says);
 * - no message is delivered twice, and each incarnation gets its messages in
 *   order;
 * - the same named sender resumes with the restarted node, without
 *   restarting node 0.
 */
const NODE = new URL('./fixtures/channel-node.ts', import.meta.url);
const HEARTBEAT = 100;
const DEAD = 800;
const MARGIN = 700;
const TOTAL = 100_000;
const KILL_AT = 30_000;
/**
 * The receiver's default credit window. A sender has at most this much
 * unused credit, and deliveries are reported with the next credit top-up
 * (once half a window was taken) or within 10 ms, so at most about two
 * windows are ever in flight, not known to be delivered.
 */
const WINDOW = DEFAULT_RECEIVER_OPTIONS.window;

let cluster: ProcessCluster | undefined;
let dir: string | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The last message a `runs` report says was taken. */
const lastTaken = (runs: unknown): number => (runs as Array<[number, number]>).at(-1)![1];

describe('kill -9 of the receiving node during a 100k-message stream', () => {
  it('reports every message not delivered, duplicates nothing, and resumes after the restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kill-'));
    const journals = [join(dir, 'first.jsonl'), join(dir, 'second.jsonl')] as const;
    cluster = await startCluster({
      module: NODE,
      nodes: 2,
      options: {
        heartbeatMs: HEARTBEAT,
        deadPeerMs: DEAD,
        handshakeTimeoutMs: 2_000,
        reconnectMaxMs: 200,
      },
      timeoutMs: 15_000,
    });
    const sender = cluster.node(0);
    const receiver = cluster.node(1);
    await receiver.call('sink', 'stream', journals[0]);
    await cluster.ready({ timeoutMs: 10_000 });

    let lossReportedAt: number | undefined;
    sender.onReport((r: NodeReport) => {
      if (r.kind === 'loss') lossReportedAt ??= r.at;
    });
    let downAt: number | undefined;
    sender.onEvent((e, at) => {
      if (e.type === 'peer-down' && e.node === 1) downAt ??= at;
    });
    await sender.call('stream', 'stream', 1, TOTAL, 20_000);

    await receiver.waitForReport('runs', {
      match: (runs) => lastTaken(runs) >= KILL_AT,
      timeoutMs: 20_000,
    });
    const killedAt = performance.now();
    await cluster.kill(1);
    await cluster.waitUntilDown(1, { timeoutMs: 10_000 });
    expect(downAt).toBeDefined();
    expectWithinBound('peer-down', downAt! - killedAt);
    expect(lossReportedAt).toBeDefined();
    expectWithinBound('NotDeliveredError', lossReportedAt! - killedAt);

    // Node 0 stays up; node 1 comes back as a new incarnation.
    const eventsBefore = sender.events.length;
    const reportsBefore = receiver.reports.length;
    await cluster.restart(1);
    await receiver.call('sink', 'stream', journals[1]);
    await cluster.waitUntilAllUp({ timeoutMs: 15_000 });
    expect(sender.events.slice(eventsBefore)).toContainEqual(
      expect.objectContaining({ type: 'peer-restarted', node: 1 }),
    );
    const streamed = await sender.invoke<Streamed>('streamed', [], { timeoutMs: 30_000 });
    await receiver.waitForReport('runs', {
      from: reportsBefore,
      match: (runs) => lastTaken(runs) === TOTAL - 1,
      timeoutMs: 20_000,
    });

    expect(streamed.rejected).toEqual([]);
    expect(streamed.codes).toEqual(['ERR_SB_NOT_DELIVERED']);
    expect(streamed.closed).toBe(false);
    const undelivered = streamed.undelivered;
    // From the journals: the IPC reports of the killed node may have died in its pipe.
    const before = taken(journals[0]);
    const after = taken(journals[1]);
    // In order within each incarnation, without gaps (a gap would be a loss nobody reported).
    expect(before).toHaveLength(1);
    expect(after).toHaveLength(1);
    const [[firstBefore, lastBefore]] = before as [[number, number]];
    const [[firstAfter, lastAfter]] = after as [[number, number]];
    expect(firstBefore).toBe(0);
    expect(lastAfter).toBe(TOTAL - 1);
    // No duplicates: the restarted node gets only what came after.
    expect(firstAfter).toBeGreaterThan(lastBefore);
    // Everything between was reported, each message once, and nothing the new node got.
    expect(new Set(undelivered).size).toBe(undelivered.length);
    const reported = new Set(undelivered);
    const unreported: number[] = [];
    for (let i = lastBefore + 1; i < firstAfter; i++) if (!reported.has(i)) unreported.push(i);
    expect(unreported).toEqual([]);
    expect(undelivered.filter((i) => i >= firstAfter)).toEqual([]);
    // Bounded: only what the credit window let the sender have in flight.
    expect(undelivered.length).toBeLessThanOrEqual(2 * WINDOW);
    // Unknown outcomes (taken, but the acknowledgement died with the node) are the last ones.
    const unknown = undelivered.filter((i) => i <= lastBefore);
    if (unknown.length > 0) expect(Math.min(...unknown)).toBeGreaterThan(lastBefore - 2 * WINDOW);

    await cluster.stop(1, { exitByItself: true });
  }, 60_000);
});

/** The runs a sink journaled, merged. */
function taken(journal: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of readFileSync(journal, 'utf8').split('\n')) {
    if (line === '') continue;
    for (const [a, b] of JSON.parse(line) as Array<[number, number]>) {
      const last = out.at(-1);
      if (last !== undefined && a === last[1] + 1) last[1] = b;
      else out.push([a, b]);
    }
  }
  return out;
}

/** A loss must come from the dead-peer timer: not before it, and not much after. */
function expectWithinBound(what: string, ms: number): void {
  expect({ what, ms, early: ms < DEAD - 2 * HEARTBEAT }).toMatchObject({ early: false });
  expect({ what, ms, late: ms > DEAD + HEARTBEAT + MARGIN }).toMatchObject({ late: false });
}
