import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { filter, firstValueFrom, timeout } from 'rxjs';
import type { NotDeliveredError } from '../../lib/errors.js';
import { DEFAULT_RECEIVER_OPTIONS } from '../../lib/channel/receiver.js';
import { Switchboard } from '../../lib/facade.js';
import type { SwitchboardEvent } from '../../lib/switchboard/events.js';
import { localNodes } from '../support/ports.js';
import { Children, childOptions } from './fixtures/children.js';

/**
 * docs/reliability.md 13 on a channel: the receiving node is killed with SIGKILL
 * in the middle of a 100k-message stream, then restarted with the same id.
 *
 * The sender lives in this (jest) process as node 0, so its `errors$` and
 * its promises are observed directly; the receiver is a child process (node
 * 1) that journals what it took to a file, synchronously, before the event
 * loop can report those deliveries (see `sink` in fixtures/channel-node.ts),
 * so the parent knows every message the sender may believe delivered. Pass
 * criteria:
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

const children = new Children();
let dir: string | undefined;
afterEach(async () => {
  await children.cleanup();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('kill -9 of the receiving node during a 100k-message stream', () => {
  it('reports every message not delivered, duplicates nothing, and resumes after the restart', async () => {
    const nodes = await localNodes(2);
    const options = { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD };
    dir = mkdtempSync(join(tmpdir(), 'sb-kill-'));
    const journals = [join(dir, 'first.jsonl'), join(dir, 'second.jsonl')] as const;
    const sb = await Switchboard.start(childOptions(nodes, 0, options));
    try {
      const first = children.spawn('node1', childOptions(nodes, 1, options));
      await first.started();
      await first.request({ cmd: 'sink', name: 'stream', journal: journals[0] });
      await sb.rendezvous({ timeoutMs: 10_000 });

      const s = sb.sender<number>('stream', { node: 1, timeoutMs: 20_000 });
      const undelivered: number[] = [];
      const codes = new Set<string>();
      let lossReportedAt: number | undefined;
      s.errors$.subscribe((e) => {
        lossReportedAt ??= performance.now();
        codes.add(e.code);
        undelivered.push(...(e as NotDeliveredError & { messages: number[] }).messages);
      });
      const rejected: Array<[number, unknown]> = [];
      const produce = (async () => {
        for (let i = 0; i < TOTAL; i++) {
          try {
            await s.send(i);
          } catch (err) {
            rejected.push([i, err]);
          }
        }
      })();

      await first.waitFor(
        (r) =>
          r.message.type === 'runs' && r.message.runs.at(-1)![1] >= KILL_AT ? true : undefined,
        `${KILL_AT} messages taken`,
        20_000,
      );
      const down = nextEvent(sb, (e) => e.type === 'peer-down' && e.node === 1, 10_000);
      first.kill('SIGKILL');
      const killedAt = performance.now();
      await down;
      const downAt = performance.now();
      await first.exited;
      expectWithinBound('peer-down', downAt - killedAt);
      expect(lossReportedAt).toBeDefined();
      expectWithinBound('NotDeliveredError', lossReportedAt! - killedAt);

      // Node 0 stays up; node 1 comes back as a new incarnation.
      const restarted = nextEvent(sb, (e) => e.type === 'peer-restarted' && e.node === 1, 15_000);
      const second = children.spawn('node1-reborn', childOptions(nodes, 1, options));
      await second.started();
      await second.request({ cmd: 'sink', name: 'stream', journal: journals[1] });
      await restarted;
      await produce;
      await second.waitFor(
        (r) =>
          r.message.type === 'runs' && r.message.runs.at(-1)![1] === TOTAL - 1 ? true : undefined,
        'the last message',
        20_000,
      );

      expect(rejected).toEqual([]);
      expect([...codes]).toEqual(['ERR_SB_NOT_DELIVERED']);
      expect(s.closed).toBe(false);
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

      await second.request({ cmd: 'close' });
      await second.exited;
    } finally {
      await sb.close();
    }
  }, 60_000);
});

/** Resolves with the next event of `sb` matching `pred`; rejects after `ms`. */
function nextEvent(
  sb: Switchboard,
  pred: (e: SwitchboardEvent) => boolean,
  ms: number,
): Promise<SwitchboardEvent> {
  return firstValueFrom(sb.events$.pipe(filter(pred), timeout({ first: ms })));
}

/** The runs a sink reported, merged where consecutive. */
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
