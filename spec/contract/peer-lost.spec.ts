/**
 * Contract 3: peers lost. The consumer's node (a child) is killed with
 * SIGKILL, killed and restarted with the same id (a new incarnation), or
 * stalls: its event loop blocks in a busy loop for longer than the
 * dead-peer timeout, right after its application took a message, and its
 * application carries on at once, before any timer (the hard case). The
 * producer's side stalls too (`stall-producer`, channels and post).
 *
 * Every message, call and task is either delivered or reported to its
 * sender (NotDeliveredError on `errors$` with the `messages`, a rejected
 * call, a redelivered task, a counted drop for `post`) and never delivered
 * after it was reported: reports and takes are stamped with one clock, and
 * a take after the report of the same message is a broken promise. No
 * duplicates and no reordering on channels; every call settles; every task
 * completes. After a stall the node rejoins as the same incarnation and a
 * fresh stream works.
 *
 * `kill` and `restart` run every pattern at once on one child; each stall
 * is a scenario of its own, so that the stalled application is that
 * pattern's.
 */
import { TIMERS, mergeJournal, ofStream, placed, streamId } from './scene.js';
import type { ChildEnd, End, Placed } from './scene.js';
import type { Recorder } from './recorder.js';
import { CHANNEL_PATTERNS, isRpc } from './protocol.js';
import type { PatternId, ProduceSpec } from './protocol.js';
import { patternsOf } from './table.js';

/** Operations per stream; the fault comes after the consumer took `FAULT_AFTER` of them. */
const COUNT = 140;
const FAULT_AFTER = 30;
/** The stalled consumer blocks right after taking this message. */
const STALL_AT = 40;
const STALL_MS = TIMERS.deadPeerMs + 400;
/**
 * Milliseconds before each operation: quick up to the fault, then slower
 * through the dead-peer timeout and the stall, then quick again, so that
 * traffic runs before, during and after the fault.
 */
const GAPS = Array.from({ length: COUNT }, (_, i) => (i < 45 ? 2 : i < 105 ? 20 : 4));

const NOT_DELIVERED_CODES = ['ERR_SB_NOT_DELIVERED', 'ERR_SB_PEER_LOST'];

interface Roles {
  readonly producer: End;
  readonly consumer: End;
}

/** What the checks need to know about one fault. */
interface Fault {
  readonly kind: 'kill' | 'restart' | 'stall-consumer' | 'stall-producer';
  readonly producerNode: number;
  readonly consumerNode: number;
  /** When the producer's node learnt that the session ended (peer-down or peer-restarted). */
  readonly endedAt: number | undefined;
  readonly setupFailure?: unknown;
}

// ---- kill and restart: every pattern on one child ---------------------------

describe.each(['kill', 'restart'] as const)(
  'contract 3, peers lost: %s of the consumer node',
  (kind) => {
    const patterns = patternsOf('peer-lost', kind, 'child');
    let sc: Placed | undefined;
    let fault: Fault | undefined;
    let streams = new Map<PatternId, string>();
    let failure: Error | undefined;

    beforeAll(async () => {
      try {
        sc = await placed('child');
        streams = new Map(patterns.map((p) => [p, streamId(kind === 'kill' ? 'kl' : 'rs')]));
        fault = await killScenario(sc, kind, streams);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
    }, 60_000);
    afterAll(() => sc?.dispose());

    it.each(patterns)(
      `%s: every message, call and task is delivered or reported, never delivered after the report; no duplicates, no reordering (${kind})`,
      (pattern) => {
        if (failure !== undefined) throw failure;
        expect(violations(sc!.recorder, pattern, streams.get(pattern)!, fault!)).toEqual([]);
      },
    );
  },
);

async function killScenario(
  sc: Placed,
  kind: 'kill' | 'restart',
  streams: ReadonlyMap<PatternId, string>,
): Promise<Fault> {
  const r = sc.recorder;
  const roles: Roles = { producer: sc.near, consumer: sc.far };
  for (const [pattern, stream] of streams) await setUp(roles, pattern, stream, kind);
  for (const [pattern, stream] of streams)
    await roles.producer.do({ cmd: 'produce', spec: run(pattern, stream, kind === 'kill') });
  for (const [pattern, stream] of streams)
    await r.until(
      () => ofStream(r, 'take', stream).length >= FAULT_AFTER,
      `${pattern}: ${FAULT_AFTER} taken before the kill`,
      10_000,
    );
  const child = sc.far as ChildEnd;
  const from = r.all.length;
  await sc.kill(1);
  mergeJournal(r, child);
  if (kind === 'restart') {
    const reborn = await sc.restart(1);
    for (const [pattern, stream] of streams)
      await reborn.do({ cmd: 'consumer', spec: consumerSpec(pattern, stream, sc.near.node) });
  }
  const ended = await r
    .first(
      'event',
      (e) =>
        r.all.indexOf(e) >= from &&
        e.node === sc.near.node &&
        e.peer === 1 &&
        (e.type === 'peer-down' || e.type === 'peer-restarted'),
      'the session with the killed node to end',
      TIMERS.deadPeerMs + 5_000,
    )
    .catch(() => undefined);
  // Push-pull: a worker on this side takes what the lost one held (with no restart to do it).
  if (kind === 'kill' && streams.has('push-pull'))
    await sc.near.do({
      cmd: 'consumer',
      spec: consumerSpec('push-pull', streams.get('push-pull')!, sc.near.node),
    });
  for (const [pattern, stream] of streams)
    await quiesce(r, pattern, stream, sc.near.node, kind === 'kill');
  // What a post still had queued for the killed node is counted once its poster closes.
  if (kind === 'kill') await sc.near.do({ cmd: 'close', how: 'close' }, TIMERS.lingerMs + 5_000);
  if (kind === 'restart') mergeJournal(r, sc.far as ChildEnd);
  return { kind, producerNode: sc.near.node, consumerNode: 1, endedAt: ended?.at };
}

// ---- stalls: one pattern per scenario ------------------------------------------

describe('contract 3, peers lost: the consumer node stalls past the dead-peer timeout', () => {
  it.each(patternsOf('peer-lost', 'stall-consumer', 'child'))(
    '%s: nothing reported is taken after the stall; delivered or reported; no duplicates, no reordering; the node rejoins as the same incarnation and a fresh stream works',
    async (pattern) => {
      await stallCase(pattern, 'stall-consumer');
    },
    40_000,
  );
});

describe('contract 3, peers lost: the producer node stalls past the dead-peer timeout', () => {
  it.each(patternsOf('peer-lost', 'stall-producer', 'child'))(
    '%s: nothing the stalled producer was told was not delivered is taken; delivered or reported; no duplicates, no reordering; the node rejoins and a fresh stream works',
    async (pattern) => {
      await stallCase(pattern, 'stall-producer');
    },
    40_000,
  );
});

async function stallCase(
  pattern: PatternId,
  kind: 'stall-consumer' | 'stall-producer',
): Promise<void> {
  const sc = await placed('child');
  try {
    const r = sc.recorder;
    const roles: Roles =
      kind === 'stall-consumer'
        ? { producer: sc.near, consumer: sc.far }
        : { producer: sc.far, consumer: sc.near };
    const stream = streamId('st');
    const incarnation = (await sc.far.stats()).incarnation;
    await setUp(roles, pattern, stream, kind);
    const spec = run(pattern, stream, false);
    await roles.producer.do({
      cmd: 'produce',
      spec: kind === 'stall-producer' ? { ...spec, stallAt: STALL_AT, stallMs: STALL_MS } : spec,
    });
    await r.first('stalled', (s) => s.stream === stream, 'the stall', 10_000);
    const ended = await r
      .first(
        'event',
        (e) =>
          e.node === roles.producer.node &&
          e.peer === roles.consumer.node &&
          (e.type === 'peer-down' || e.type === 'peer-restarted'),
        'the producer side to see the session end',
        5_000,
      )
      .catch(() => undefined);
    if (pattern === 'push-pull')
      // A second worker takes what the stalled one held.
      await sc.near.do({
        cmd: 'consumer',
        spec: consumerSpec(pattern, stream, roles.producer.node),
      });
    await quiesce(r, pattern, stream, roles.producer.node);
    const fault: Fault = {
      kind,
      producerNode: roles.producer.node,
      consumerNode: roles.consumer.node,
      endedAt: ended?.at,
    };
    const problems = violations(r, pattern, stream, fault);
    if (ended === undefined)
      problems.push(
        `node ${roles.producer.node} never saw the session with node ${roles.consumer.node} end (stall of ${STALL_MS} ms, deadPeerMs ${TIMERS.deadPeerMs})`,
      );
    problems.push(...(await rejoins(sc, incarnation, pattern, roles)));
    expect(problems).toEqual([]);
  } finally {
    await sc.dispose();
  }
}

/** After the stall: the child is up again as the same incarnation, and a fresh stream carries messages. */
async function rejoins(
  sc: Placed,
  incarnation: string,
  pattern: PatternId,
  roles: Roles,
): Promise<string[]> {
  const r = sc.recorder;
  const out: string[] = [];
  try {
    await r.until(
      () => sc.near.sb.peers().some((p) => p.node === 1 && p.state === 'up'),
      'the stalled node to be up again',
      5_000,
    );
  } catch {
    out.push(
      `after the stall node 1 is not up again: ${JSON.stringify(sc.near.sb.peers().find((p) => p.node === 1))}`,
    );
  }
  const now = sc.near.sb.peers().find((p) => p.node === 1)?.incarnation;
  if (now !== incarnation)
    out.push(`after the stall node 1 is incarnation ${now}, was ${incarnation}`);
  const fresh = streamId('fr');
  try {
    await setUp(roles, pattern, fresh, 'fresh');
    await roles.producer.do({
      cmd: 'produce',
      spec: { stream: fresh, from: 0, count: 5, concurrency: 1 },
    });
    await r.until(
      () =>
        ofStream(r, 'take', fresh).length >= 5 &&
        ofStream(r, 'settle', fresh).filter((s) => s.node === roles.producer.node).length >= 5,
      'a fresh stream after the stall',
      5_000,
    );
    const failed = ofStream(r, 'settle', fresh).filter((s) => !s.ok);
    if (failed.length > 0)
      out.push(
        `fresh stream after the stall: ${failed.map((s) => `${s.seq} ${s.error?.code}: ${s.error?.message}`).join('; ')}`,
      );
  } catch (err) {
    out.push(`fresh stream after the stall: ${(err as Error).message.split('\n')[0]}`);
  }
  return out;
}

// ---- shared ------------------------------------------------------------------

function consumerSpec(pattern: PatternId, stream: string, producerNode: number, stall = false) {
  return {
    pattern,
    stream,
    producerNode,
    concurrency: 2,
    prefetch: 2,
    ...(stall ? { stallAt: STALL_AT, stallMs: STALL_MS } : {}),
  };
}

async function setUp(
  roles: Roles,
  pattern: PatternId,
  stream: string,
  kind: Fault['kind'] | 'fresh',
): Promise<void> {
  await roles.producer.do({
    cmd: 'producer',
    spec: {
      pattern,
      stream,
      consumerNode: roles.consumer.node,
      // A send to a node that does not return gives up, so that every operation settles.
      timeoutMs: kind === 'kill' ? 1_500 : 8_000,
      waitForServerMs: kind === 'kill' ? 1_500 : 8_000,
    },
  });
  await roles.consumer.do({
    cmd: 'consumer',
    spec: consumerSpec(pattern, stream, roles.producer.node, kind === 'stall-consumer'),
  });
}

function run(pattern: PatternId, stream: string, stopOnPeerDown: boolean): ProduceSpec {
  return {
    stream,
    from: 0,
    count: COUNT,
    concurrency: isRpc(pattern) || pattern === 'push-pull' ? 4 : 8,
    gaps: GAPS,
    stopOnPeerDown,
  };
}

/** Waits until the run is issued and settled, and (push-pull) every task ran to its end. */
async function quiesce(
  r: Recorder,
  pattern: PatternId,
  stream: string,
  producerNode: number,
  gone = false,
): Promise<void> {
  await r
    .until(
      () => {
        const produced = ofStream(r, 'produced', stream).some((p) => p.node === producerNode);
        const issues = ofStream(r, 'issue', stream).filter((i) => i.node === producerNode);
        const settled = ofStream(r, 'settle', stream).filter((s) => s.node === producerNode);
        if (!produced || settled.length < issues.length) return false;
        const resolved = settled.filter((s) => s.ok).map((s) => s.seq);
        if (pattern === 'push-pull') {
          const done = new Set(
            ofStream(r, 'handler', stream)
              .filter((h) => h.ok)
              .map((h) => h.seq),
          );
          return resolved.every((q) => done.has(q));
        }
        if (isRpc(pattern)) return true;
        // A message sent is on its way until it is taken, reported, or (post) counted as dropped.
        const taken = new Set(ofStream(r, 'take', stream).map((t) => t.seq));
        if (pattern === 'post') {
          const dropped = r
            .of(
              'event',
              (e) => e.type === 'drop' && e.node === producerNode && e.channel === `c-${stream}`,
            )
            .reduce((n, e) => n + (e.count ?? 0), 0);
          // With the consumer gone for good, posts may wait for it in their queue.
          return gone || resolved.filter((q) => !taken.has(q)).length <= dropped;
        }
        const reported = new Set(
          ofStream(r, 'report', stream).flatMap((p) =>
            p.node === producerNode ? (p.error.seqs ?? []) : [],
          ),
        );
        return resolved.every((q) => taken.has(q) || reported.has(q));
      },
      `${pattern}: the run to settle`,
      15_000,
    )
    .catch(() => undefined);
}

/** Everything the recording of `stream` shows against contract 3. */
function violations(r: Recorder, pattern: PatternId, stream: string, f: Fault): string[] {
  const out: string[] = [];
  const issues = ofStream(r, 'issue', stream).filter(
    (i) => i.node === f.producerNode && i.kind !== 'receive',
  );
  const settles = ofStream(r, 'settle', stream).filter((s) => s.node === f.producerNode);
  const settleOf = new Map(settles.map((s) => [s.op, s]));
  // Push-pull tasks may run on either side (a second worker takes over); the others on the consumer's node.
  const takes = ofStream(r, 'take', stream)
    .filter((t) => pattern === 'push-pull' || t.node === f.consumerNode)
    .sort((a, b) => a.at - b.at);
  const reports = ofStream(r, 'report', stream).filter((p) => p.node === f.producerNode);

  for (const i of issues) {
    const s = settleOf.get(i.op);
    if (s === undefined) out.push(`${i.kind} ${i.seq} never settled`);
    else if (s.count > 1) out.push(`${i.kind} ${i.seq} settled ${s.count} times`);
    else if (!s.ok && (!s.error?.isSwitchboardError || s.error.code === undefined))
      out.push(
        `${i.kind} ${i.seq} rejected with an untyped error: ${s.error?.name}: ${s.error?.message}`,
      );
  }
  for (const p of reports)
    if (p.error.code !== 'ERR_SB_NOT_DELIVERED' && pattern !== 'push-pull')
      out.push(`errors$ reported ${p.error.name} ${p.error.code}: ${p.error.message}`);
  for (const t of takes)
    if (t.foreign !== undefined) out.push(`took a value that was never sent: ${t.foreign}`);

  // When the producer learnt that each message was not delivered: a report, or its send's rejection.
  const toldAt = new Map<number, { at: number; how: string }>();
  const tell = (seq: number, at: number, how: string): void => {
    const known = toldAt.get(seq);
    if (known === undefined || at < known.at) toldAt.set(seq, { at, how });
  };
  for (const p of reports)
    for (const q of p.error.seqs ?? []) tell(q, p.at, `${p.error.code} on errors$`);
  for (const s of settles)
    if (
      !s.ok &&
      (NOT_DELIVERED_CODES.includes(s.error?.code ?? '') ||
        s.error?.causes.some((c) => NOT_DELIVERED_CODES.includes(c)) === true)
    )
      tell(s.seq, s.at, `its ${s.kind} rejected with ${s.error?.code}`);
  if (pattern === 'post' && f.endedAt !== undefined && f.kind.startsWith('stall')) {
    // post() reports counts, not messages: what it had sent when the session
    // ended was counted as dropped then (its credit window, far larger than the
    // run, let every post go out at once).
    for (const i of issues)
      if (i.at < f.endedAt) tell(i.seq, f.endedAt, 'counted as dropped when the session ended');
  }

  // Never delivered after it was reported.
  const late = takes.filter((t) => {
    const told = toldAt.get(t.seq);
    return told !== undefined && t.at > told.at && !(pattern === 'push-pull' && t.attempt > 1);
  });
  for (const t of late.slice(0, 10)) {
    const told = toldAt.get(t.seq)!;
    out.push(
      `${pattern === 'push-pull' ? 'task' : 'message'} ${t.seq} taken by node ${t.node} (incarnation ${t.inc.slice(0, 8)}) ${(t.at - told.at).toFixed(1)} ms after its sender was told (${told.how})`,
    );
  }
  if (late.length > 10) out.push(`... and ${late.length - 10} more taken after their report`);

  const takenSeqs = takes.map((t) => t.seq);
  const taken = new Set(takenSeqs);
  const resolved = settles.filter((s) => s.ok).map((s) => s.seq);

  if ((CHANNEL_PATTERNS as readonly string[]).includes(pattern) || pattern === 'post') {
    const dups = takenSeqs.filter((q, i) => takenSeqs.indexOf(q) !== i);
    if (dups.length > 0) out.push(`duplicates: ${[...new Set(dups)].slice(0, 20).join(', ')}`);
    const backwards = takenSeqs.filter((q, i) => i > 0 && q < takenSeqs[i - 1]!);
    if (backwards.length > 0)
      out.push(
        `reordered: ${backwards
          .slice(0, 10)
          .map((q) => `${q} after ${takenSeqs[takenSeqs.indexOf(q) - 1]}`)
          .join(', ')}`,
      );
  }
  if ((CHANNEL_PATTERNS as readonly string[]).includes(pattern)) {
    const lost = resolved.filter((q) => !taken.has(q) && !toldAt.has(q));
    if (lost.length > 0)
      out.push(
        `sent but neither taken nor reported: ${lost.slice(0, 20).join(', ')}${lost.length > 20 ? ` (${lost.length} in all)` : ''}`,
      );
  }
  if (pattern === 'post') {
    const drops = r.of(
      'event',
      (e) => e.type === 'drop' && e.node === f.producerNode && e.channel === `c-${stream}`,
    );
    const final = r.of('final', (o) => o.node === f.producerNode).at(-1);
    const dropped = Math.max(
      drops.reduce((n, e) => n + (e.count ?? 0), 0),
      final?.stats.drops[`c-${stream}`] ?? 0,
    );
    const missing = resolved.filter((q) => !taken.has(q)).length;
    if (missing > dropped)
      out.push(`post: ${missing} posted messages never taken, ${dropped} counted as dropped`);
  }
  if (isRpc(pattern)) {
    const runs = new Map<number, number>();
    for (const q of takenSeqs) runs.set(q, (runs.get(q) ?? 0) + 1);
    const twice = [...runs].filter(([, n]) => n > 1).map(([q]) => q);
    if (twice.length > 0)
      out.push(`calls whose handler ran more than once: ${twice.slice(0, 20).join(', ')}`);
  }
  if (pattern === 'push-pull') {
    const done = new Set(
      ofStream(r, 'handler', stream)
        .filter((h) => h.ok)
        .map((h) => h.seq),
    );
    const unfinished = resolved.filter((q) => !done.has(q));
    if (unfinished.length > 0)
      out.push(
        `tasks pushed but never completed: ${unfinished.slice(0, 20).join(', ')} (${unfinished.length} in all)`,
      );
    for (const p of reports)
      out.push(`the pusher reported ${p.error.name} ${p.error.code}: ${p.error.message}`);
    // A task handed out again must not also run from the copy its stalled worker kept.
    if (f.endedAt !== undefined) {
      const redelivered = new Set(takes.filter((t) => t.attempt > 1).map((t) => t.seq));
      const stale = takes.filter(
        (t) => t.attempt === 1 && redelivered.has(t.seq) && t.at > f.endedAt!,
      );
      for (const t of stale.slice(0, 10))
        out.push(
          `task ${t.seq} started by node ${t.node} from its first copy ${(t.at - f.endedAt).toFixed(1)} ms after the pusher's session ended and the task was handed out again`,
        );
    }
  }
  for (const u of r.of('unhandled'))
    out.push(
      `unhandled rejection on node ${u.node}: ${u.error.name} ${u.error.code ?? ''} ${u.error.message}`,
    );
  return out;
}
