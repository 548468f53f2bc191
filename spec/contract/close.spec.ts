/**
 * Contract 1: closing with work in flight. `close()` (graceful) or
 * `destroy(err)` (immediate), on the producer's side or the consumer's,
 * while handlers run, sends wait for credit, a worker holds tasks, streams
 * are open, calls are pending and receives are pending:
 * - every pending operation settles exactly once: on the closing side with
 *   ERR_SB_CLOSED (a pending `next()` resolves `done` after `close()`, and
 *   rejects with ERR_SB_CLOSED after `destroy()`); on the other side with
 *   ERR_SB_NOT_DELIVERED or an error caused by ERR_SB_PEER_LOST (after a
 *   graceful close, work that finished in the linger may also succeed);
 * - nothing is lost silently (a message is taken or reported), and after a
 *   clean close nothing the receiver's application took is reported as not
 *   delivered;
 * - a graceful close lets running handlers and tasks finish within
 *   `lingerMs` (the caller on the other side gets the reply);
 * - no unhandled rejection anywhere (a child reports its own; jest fails a
 *   test on one in this process);
 * - a child whose switchboard closed, and which then does nothing, exits by
 *   itself within a few seconds (close-exit).
 *
 * One scenario per placement and variant carries every pattern at once (one
 * stream each); each pattern is then its own test on what was recorded.
 * On `tcp` and `child` the closing side is the far end, holding the
 * producers (`@producer`) or the consumers (`@consumer`).
 */
import { ChildEnd, SLACK, TIMERS, ofStream, placed, streamId } from './scene.js';
import type { End, Placed } from './scene.js';
import { channelName } from './patterns.js';
import { CHANNEL_PATTERNS, RECEIVING_PATTERNS, isRpc } from './protocol.js';
import type { AgentStats, ErrorInfo, ObsOf, PatternId } from './protocol.js';
import { casesOf } from './table.js';
import type { Placement } from './table.js';

/** Operations per stream, all issued at once. */
const OPS = 12;
/** Messages a receiving consumer takes before it stops reading. */
const HOLD = 2;
/** How long each handler and task works (long enough to be running at the close). */
const WORK_MS = 300;
/** The producers' send/call/push deadline: a wait for a node that will not return ends by then. */
const OP_TIMEOUT_MS = 2_000;

interface Outcome {
  readonly sc: Placed;
  readonly how: 'close' | 'destroy';
  readonly closing: End;
  /** The node holding the producers, and the one holding the consumers. */
  readonly producerNode: number;
  readonly consumerNode: number;
  readonly streams: ReadonlyMap<PatternId, string>;
  readonly closingAt: number;
  readonly closedAt: number | undefined;
  /** When the other side began its own close, after the checks' wait. */
  readonly otherClosingAt: number;
  /** The last stats of each side, once closed. */
  readonly closingStats: AgentStats | undefined;
  readonly otherStats: AgentStats | undefined;
  /** How the closing child's process ended, or why it did not end by itself. */
  readonly exit:
    { readonly code: number | null; readonly signal: string | null } | string | undefined;
}

const scenarios = casesOf('close-inflight')
  .map((c) => `${c.placement} ${c.variant}`)
  .filter((v, i, all) => all.indexOf(v) === i);

describe.each(scenarios)('contract 1, closing with work in flight: %s', (scenario) => {
  const [placement, variant] = scenario.split(' ') as [Placement, string];
  const [how, side] = variant.split('@') as ['close' | 'destroy', 'self' | 'producer' | 'consumer'];
  const patterns = casesOf('close-inflight', { placement, variant }).map(
    (c) => c.pattern as PatternId,
  );
  let outcome: Outcome | undefined;
  let failure: Error | undefined;

  beforeAll(async () => {
    try {
      outcome = await runScenario(placement, how, side, patterns);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
  }, 60_000);
  afterAll(() => outcome?.sc.dispose());

  it.each(patterns)(
    `%s: every pending operation settles once with the promised code; nothing is lost; running work finishes (${variant})`,
    (pattern) => {
      if (failure !== undefined) throw failure;
      expect(violations(outcome!, pattern)).toEqual([]);
    },
  );

  const exitCases = casesOf('close-exit', { placement, variant });
  if (exitCases.length > 0) {
    it(`close-exit: the child whose switchboard ${how === 'close' ? 'closed' : 'was destroyed'} exits by itself (${variant})`, () => {
      if (failure !== undefined) throw failure;
      expect({ exit: outcome!.exit, unhandled: unhandled(outcome!) }).toEqual({
        exit: { code: 0, signal: null },
        unhandled: [],
      });
    });
  }
});

async function runScenario(
  placement: Placement,
  how: 'close' | 'destroy',
  side: 'self' | 'producer' | 'consumer',
  patterns: readonly PatternId[],
): Promise<Outcome> {
  const sc = await placed(placement);
  const r = sc.recorder;
  // The far end closes; it holds the producers or the consumers.
  const closing = sc.far;
  const producers = side === 'consumer' ? sc.near : sc.far;
  const consumers = side === 'consumer' ? sc.far : sc.near;
  const streams = new Map<PatternId, string>();
  try {
    for (const pattern of patterns) {
      const stream = streamId('cl');
      streams.set(pattern, stream);
      await producers.do({
        cmd: 'producer',
        spec: {
          pattern,
          stream,
          consumerNode: consumers.node,
          timeoutMs: OP_TIMEOUT_MS,
          waitForServerMs: OP_TIMEOUT_MS,
        },
      });
      await consumers.do({
        cmd: 'consumer',
        spec: {
          pattern,
          stream,
          producerNode: producers.node,
          hold: HOLD,
          window: 4,
          capacity: 4,
          work: WORK_MS,
          maxConcurrent: 2,
          concurrency: 1,
          prefetch: 1,
        },
      });
      // Receives pending on both sides.
      if ((RECEIVING_PATTERNS as readonly string[]).includes(pattern)) {
        for (const end of new Set([producers, consumers]))
          await end.do({ cmd: 'idle', pattern, stream });
      }
    }
    for (const pattern of patterns) {
      await producers.do({
        cmd: 'produce',
        spec: { stream: streams.get(pattern)!, from: 0, count: OPS, concurrency: OPS },
      });
    }
    // Work in flight: receivers took their first messages and stopped, handlers and tasks run.
    for (const pattern of patterns) {
      const stream = streams.get(pattern)!;
      const want = pattern === 'push-pull' ? 1 : 2;
      await r.until(
        () => ofStream(r, 'take', stream).length >= want,
        `${pattern}: ${want} taken`,
        5_000,
      );
    }
  } catch (err) {
    await sc.dispose();
    throw err;
  }

  const closingAt = Date.now();
  const closingStats = await closing
    .do<AgentStats>({ cmd: 'close', how }, TIMERS.lingerMs + 5_000)
    .catch(() => undefined);
  // From here on a child does nothing more: its process must leave by itself, within 5 s.
  const exiting = closing instanceof ChildEnd ? closing.exitByItself(5_000) : undefined;
  const closed = r.of('closed', (o) => o.node === closing.node).at(-1);
  // The other side's operations settle: at once, or by their own deadline at the latest.
  const others = sc.ends.filter((e) => e !== closing);
  await r
    .until(
      () =>
        r
          .of('issue', (o) => o.node !== closing.node && o.kind !== 'receive')
          .every((i) => r.all.some((o) => o.t === 'settle' && o.node === i.node && o.op === i.op)),
      'the other side to settle',
      OP_TIMEOUT_MS + TIMERS.lingerMs + SLACK,
    )
    .catch(() => undefined);
  // Then the other side closes too: what it still held is accounted for in its last stats.
  const otherClosingAt = Date.now();
  const otherStats =
    others.length === 0
      ? undefined
      : await others[0]!
          .do<AgentStats>({ cmd: 'close', how: 'close' }, TIMERS.lingerMs + 5_000)
          .catch(() => undefined);
  const exit: Outcome['exit'] = await exiting;
  return {
    sc,
    how,
    closing,
    producerNode: producers.node,
    consumerNode: consumers.node,
    streams,
    closingAt: r.of('closing', (o) => o.node === closing.node).at(-1)?.at ?? closingAt,
    closedAt: closed?.at,
    otherClosingAt: r.of('closing', (o) => o.node !== closing.node).at(-1)?.at ?? otherClosingAt,
    closingStats,
    otherStats,
    exit,
  };
}

const OTHER_CODES = ['ERR_SB_NOT_DELIVERED', 'ERR_SB_PEER_LOST'];

/** The other side's error: NOT_DELIVERED, PEER_LOST, or caused by one of them. */
function otherSideError(e: ErrorInfo | undefined): boolean {
  return (
    e !== undefined &&
    e.isSwitchboardError &&
    (OTHER_CODES.includes(e.code ?? '') || e.causes.some((c) => OTHER_CODES.includes(c)))
  );
}

function describeSettle(s: ObsOf<'settle'> | undefined): string {
  if (s === undefined) return 'never settled';
  if (s.ok) return s.done === true ? 'resolved done' : 'resolved';
  return `rejected ${s.error?.name ?? '?'} ${s.error?.code ?? '(no code)'}${s.error?.causes.length ? ` (causes ${s.error.causes.join(', ')})` : ''}: ${s.error?.message.split('\n')[0] ?? ''}`;
}

/** Everything the contract says that the recording of `pattern` contradicts. */
function violations(o: Outcome, pattern: PatternId): string[] {
  const r = o.sc.recorder;
  const stream = o.streams.get(pattern)!;
  const out: string[] = [];
  const closingNode = o.closing.node;
  const graceful = o.how === 'close';

  if (o.closedAt === undefined)
    out.push(`${o.how}() of node ${closingNode} did not resolve within lingerMs + 5 s`);
  else if (o.closedAt - o.closingAt > TIMERS.lingerMs + SLACK)
    out.push(
      `${o.how}() took ${(o.closedAt - o.closingAt).toFixed(0)} ms (lingerMs ${TIMERS.lingerMs})`,
    );

  const settles = ofStream(r, 'settle', stream);
  for (const s of settles)
    if (s.count > 1) out.push(`${s.kind} ${s.seq} on node ${s.node} settled ${s.count} times`);

  for (const issue of ofStream(r, 'issue', stream)) {
    const s = settles.find((x) => x.node === issue.node && x.op === issue.op);
    const what = `${issue.kind}${issue.kind === 'receive' ? '' : ` ${issue.seq}`} on node ${issue.node}`;
    if (s !== undefined && s.at < o.closingAt) continue; // settled before the close: not in flight
    if (s?.threw === true) out.push(`${what} threw instead of rejecting: ${describeSettle(s)}`);
    const onClosingSide = issue.node === closingNode;
    if (onClosingSide) {
      if (issue.kind === 'receive') {
        const okay = graceful
          ? s?.ok === true && s.done === true
          : s?.ok === false && s.error?.code === 'ERR_SB_CLOSED';
        if (!okay)
          out.push(
            `${what} (closing side): ${describeSettle(s)}, expected ${graceful ? 'done' : 'ERR_SB_CLOSED'}`,
          );
      } else {
        const okay =
          (s?.ok === false && s.error?.code === 'ERR_SB_CLOSED') || (graceful && s?.ok === true);
        if (!okay)
          out.push(
            `${what} (closing side): ${describeSettle(s)}, expected ERR_SB_CLOSED${graceful ? ' (or success within the linger)' : ''}`,
          );
      }
    } else if (s === undefined || s.at >= o.otherClosingAt) {
      if (issue.kind !== 'receive')
        out.push(
          `${what} (other side): did not settle within ${OP_TIMEOUT_MS + TIMERS.lingerMs + SLACK} ms of the close (then: ${describeSettle(s)})`,
        );
    } else if (issue.kind === 'receive') {
      // A receive on the other side may stay pending (its endpoint lives on).
      if (s !== undefined && !(s.ok && s.done === true) && !otherSideError(s.error))
        out.push(`${what} (other side): ${describeSettle(s)}`);
    } else {
      const okay = (s?.ok === true && graceful) || (s?.ok === false && otherSideError(s.error));
      if (!okay)
        out.push(
          `${what} (other side): ${describeSettle(s)}, expected ERR_SB_NOT_DELIVERED or an ERR_SB_PEER_LOST-caused error${graceful ? ' (or success)' : ''}`,
        );
    }
  }

  const taken = new Set(
    ofStream(r, 'take', stream)
      .filter((t) => t.node === o.consumerNode)
      .map((t) => t.seq),
  );
  const reports = ofStream(r, 'report', stream);
  const reported = new Set(reports.flatMap((p) => p.error.seqs ?? []));
  const resolved = settles.filter((s) => s.ok && s.kind !== 'receive').map((s) => s.seq);

  if ((CHANNEL_PATTERNS as readonly string[]).includes(pattern)) {
    const lost = resolved.filter((q) => !taken.has(q) && !reported.has(q));
    if (lost.length > 0)
      out.push(
        `messages sent (send resolved) but neither taken nor reported on errors$: ${lost.join(', ')}`,
      );
    if (graceful) {
      const both = [...taken].filter((q) => reported.has(q));
      if (both.length > 0)
        out.push(
          `after a clean close, messages the receiver took were reported not delivered: ${both.join(', ')}`,
        );
    }
  }
  if (pattern === 'post') {
    const dropsOn = (node: number): number =>
      (node === closingNode ? o.closingStats : o.otherStats)?.drops[channelName(stream)] ?? 0;
    // Each side counts what it dropped, so a message may be counted at both ends.
    const dropped =
      dropsOn(o.producerNode) + (o.consumerNode === o.producerNode ? 0 : dropsOn(o.consumerNode));
    const posted = resolved.length;
    if (posted > taken.size + dropped)
      out.push(
        `post: ${posted} posted, ${taken.size} taken, ${dropped} counted as dropped: ${posted - taken.size - dropped} lost silently`,
      );
    // After a clean close the poster does not count as dropped what its receiver took.
    if (graceful && taken.size + dropsOn(o.producerNode) > posted)
      out.push(
        `post: after a clean close ${taken.size} taken + ${dropsOn(o.producerNode)} counted as dropped by the poster > ${posted} posted`,
      );
  }
  if (pattern === 'pubsub') {
    const pub = streamStats(o, stream, 'producer');
    const sub = streamStats(o, stream, 'consumer');
    const published = resolved.length;
    const counted = Number(pub?.dropped ?? 0) + Number(sub?.dropped ?? 0);
    if (published > taken.size + counted)
      out.push(
        `pubsub: ${published} published, ${taken.size} taken, ${counted} counted as dropped (publisher ${String(pub?.dropped)}, subscription ${String(sub?.dropped)}): some lost silently`,
      );
  }

  // A graceful close lets running handlers and tasks finish (and the caller gets the reply).
  if (graceful && (isRpc(pattern) || pattern === 'push-pull')) {
    const handlers = ofStream(r, 'handler', stream);
    for (const t of ofStream(r, 'take', stream)) {
      if (t.at >= o.closingAt) continue;
      const h = handlers.find(
        (x) => x.node === t.node && x.seq === t.seq && x.attempt === t.attempt,
      );
      if (h === undefined || !h.ok)
        out.push(
          `${pattern === 'push-pull' ? 'task' : 'handler'} ${t.seq}, running at the close, did not finish (${h === undefined ? 'no end' : 'failed'})`,
        );
      else if (h.at > o.closingAt + TIMERS.lingerMs + SLACK)
        out.push(
          `handler ${t.seq} finished ${(h.at - o.closingAt).toFixed(0)} ms after the close began`,
        );
      if (isRpc(pattern) && o.producerNode !== closingNode) {
        const s = settles.find((x) => x.seq === t.seq && x.node === o.producerNode);
        if (s?.ok !== true)
          out.push(
            `call ${t.seq}, whose handler was running at the close, did not get its reply: ${describeSettle(s)}`,
          );
      }
    }
  }

  for (const u of unhandled(o)) out.push(u);
  return out;
}

function unhandled(o: Outcome): string[] {
  return o.sc.recorder
    .of('unhandled')
    .map(
      (u) =>
        `unhandled rejection on node ${u.node}: ${u.error.name} ${u.error.code ?? ''} ${u.error.message}`,
    );
}

function streamStats(
  o: Outcome,
  stream: string,
  role: 'producer' | 'consumer',
): Record<string, unknown> | undefined {
  const node = role === 'producer' ? o.producerNode : o.consumerNode;
  const stats = node === o.closing.node ? o.closingStats : o.otherStats;
  return stats?.streams.find((s) => s.stream === stream && s.role === role)?.stats;
}
