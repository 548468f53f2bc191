/**
 * Contract 9: pub-sub at a session end. The session between a publisher and
 * a subscriber ends while both processes live on: one of them (a child)
 * stalls its event loop past the dead-peer timeout, or is stopped with
 * SIGSTOP until the other side finds it down and then resumed with
 * SIGCONT; publishing goes on before, during and after.
 * - What was in flight is counted as dropped on the publisher
 *   (`publisher.stats().dropped`, and a `drop` event with a reason).
 * - The subscription can tell it has a gap: `gaps$` emits `{ node,
 *   publisher, missed }` when the next stream from that publisher starts,
 *   `stats().missed` sums them (within `stats().dropped`), and a `drop`
 *   event on its node names the reason.
 * - The accounting closes: everything the publisher handed to the
 *   subscription's streams (`stats().sent`) or published for it while its
 *   node was unreachable (`stats().unreachable`) is delivered to the
 *   subscriber's application or counted as dropped by the subscription;
 *   every published message is delivered or counted as dropped somewhere;
 *   a message is never both delivered and counted as missed in a gap.
 * - Delivered messages come once each, in publish order, and a fresh
 *   stream carries the last ones.
 */
import { TIMERS, ofStream, placed, streamId } from './scene.js';
import type { ChildEnd, End, Placed } from './scene.js';
import { topicName } from './patterns.js';
import type { AgentStats } from './protocol.js';
import { casesOf } from './table.js';

const COUNT = 140;
const FAULT_AFTER = 30;
const STALL_AT = 40;
const STALL_MS = TIMERS.deadPeerMs + 400;
/** Quick up to the fault, slower through it, and on well after the rejoin. */
const GAPS = Array.from({ length: COUNT }, (_, i) => (i < 45 ? 2 : i < 105 ? 20 : 10));

describe('contract 9, pub-sub at a session end', () => {
  it.each(casesOf('pubsub-gap').map((c) => c.variant))(
    '%s: in-flight messages counted as dropped by the publisher, the gap known to the subscription, the accounting closed',
    async (variant) => {
      const sc = await placed('child');
      try {
        expect(await gapCase(sc, variant)).toEqual([]);
      } finally {
        await sc.dispose();
      }
    },
    40_000,
  );
});

async function gapCase(sc: Placed, variant: string): Promise<string[]> {
  const r = sc.recorder;
  const stream = streamId('gp');
  const stalled = sc.far as ChildEnd;
  const subscriberInChild = variant.endsWith('subscriber');
  const publisher: End = subscriberInChild ? sc.near : sc.far;
  const subscriber: End = subscriberInChild ? sc.far : sc.near;
  const stall = variant.startsWith('stall') ? { stallAt: STALL_AT, stallMs: STALL_MS } : {};
  await publisher.do({
    cmd: 'producer',
    spec: { pattern: 'pubsub', stream, consumerNode: subscriber.node },
  });
  await subscriber.do({
    cmd: 'consumer',
    spec: {
      pattern: 'pubsub',
      stream,
      producerNode: publisher.node,
      ...(subscriberInChild ? stall : {}),
    },
  });
  await publisher.do({
    cmd: 'produce',
    spec: {
      stream,
      from: 0,
      count: COUNT,
      concurrency: 1,
      gaps: GAPS,
      ...(subscriberInChild ? {} : stall),
    },
  });
  const from = r.all.length;
  const ended = (): boolean =>
    r.all
      .slice(from)
      .some(
        (o) => o.t === 'event' && o.node === sc.near.node && o.type === 'peer-down' && o.peer === 1,
      );
  if (variant.startsWith('sigstop')) {
    await r.until(
      () => ofStream(r, 'take', stream).length >= FAULT_AFTER,
      `${FAULT_AFTER} taken`,
      5_000,
    );
    stalled.pause();
    await r.until(ended, 'this node to find the stopped child down', TIMERS.deadPeerMs + 3_000);
    stalled.resume();
  } else {
    await r.first('stalled', (s) => s.stream === stream, 'the stall', 10_000);
  }
  const out: string[] = [];
  // The publisher goes on after the rejoin: its last message comes on a fresh stream.
  await r
    .until(
      () => ofStream(r, 'take', stream).some((t) => t.seq === COUNT - 1),
      'the last message, on a fresh stream',
      8_000,
    )
    .catch(() =>
      out.push(
        `the last message (${COUNT - 1}) never arrived after the session ended and the nodes met again`,
      ),
    );

  const pubStats = streamStats(await publisher.stats(), stream, 'producer');
  const subStats = streamStats(await subscriber.stats(), stream, 'consumer');
  const published = ofStream(r, 'settle', stream).filter(
    (s) => s.ok && s.node === publisher.node,
  ).length;
  const takes = ofStream(r, 'take', stream).filter((t) => t.node === subscriber.node);
  const seqs = takes.map((t) => t.seq);
  const delivered = takes.length;
  const sent = num(pubStats?.sent);
  // Published while the subscription's node was unreachable: never on a
  // stream, counted as dropped by the publisher and in the subscription's gap.
  const unreachable = num(pubStats?.unreachable);
  const pubDropped = num(pubStats?.dropped);
  const subDropped = num(subStats?.dropped);
  const missed = num(subStats?.missed);
  const gaps = ofStream(r, 'gap', stream);
  const dropsOn = (node: number): Array<{ channel: string; reason: string }> =>
    r
      .of(
        'event',
        (e) =>
          e.type === 'drop' && e.node === node && (e.channel ?? '').includes(topicName(stream)),
      )
      .map((e) => ({ channel: e.channel!, reason: e.reason! }));
  const counts = `published ${published}, sent ${sent}, unreachable ${unreachable}, delivered ${delivered} (stats ${String(subStats?.delivered)}), publisher dropped ${pubDropped}, subscription dropped ${subDropped} of which missed ${missed}, gaps ${JSON.stringify(gaps.map((g) => g.missed))}`;

  if (!(ended() || r.all.slice(from).some((o) => o.t === 'event' && o.type === 'peer-down')))
    out.push('no node saw the session end');
  if (pubDropped === 0) out.push(`the publisher counted nothing in flight as dropped (${counts})`);
  else if (dropsOn(publisher.node).filter((d) => d.reason.length > 0).length === 0)
    out.push(
      `the publisher counted ${pubDropped} dropped but no drop event with a reason on its node`,
    );
  if (sent + unreachable !== delivered + subDropped)
    out.push(
      `sent to the subscription ${sent} + unreachable ${unreachable} != delivered ${delivered} + counted dropped by it ${subDropped} (${counts})`,
    );
  // Whatever the subscription counts as dropped (missed in a gap, or buffered
  // when the session ended) it never reported taken, so the publisher counted
  // it too: the publisher's count alone must cover every message not delivered.
  if (published - delivered > pubDropped)
    out.push(
      `${published - delivered} published messages not delivered, but the publisher counted only ${pubDropped} as dropped (and the subscription's ${subDropped} are among those): ${published - delivered - pubDropped} counted nowhere (${counts})`,
    );
  if (delivered + missed > sent + unreachable)
    out.push(
      `delivered ${delivered} + missed in gaps ${missed} > sent ${sent} + unreachable ${unreachable}: some counted as missed were delivered (${counts})`,
    );
  const gapSum = gaps.reduce((n, g) => n + g.missed, 0);
  if (gapSum !== missed) out.push(`gaps$ reported ${gapSum} missed, stats().missed is ${missed}`);
  for (const g of gaps)
    if (g.from !== publisher.node || g.publisher.length === 0 || g.missed <= 0)
      out.push(
        `malformed gap ${JSON.stringify({ node: g.from, publisher: g.publisher, missed: g.missed })}`,
      );
  if (missed > 0 && dropsOn(subscriber.node).length === 0)
    out.push(`the subscription missed ${missed} but no drop event on its node names the reason`);
  const dups = seqs.filter((q, i) => seqs.indexOf(q) !== i);
  if (dups.length > 0) out.push(`delivered twice: ${[...new Set(dups)].join(', ')}`);
  const back = seqs.filter((q, i) => i > 0 && q < seqs[i - 1]!);
  if (back.length > 0) out.push(`out of publish order: ${back.slice(0, 10).join(', ')}`);
  for (const u of r.of('unhandled'))
    out.push(`unhandled rejection on node ${u.node}: ${u.error.name} ${u.error.message}`);
  return out;
}

function streamStats(
  stats: AgentStats,
  stream: string,
  role: 'producer' | 'consumer',
): Record<string, unknown> | undefined {
  return stats.streams.find((s) => s.stream === stream && s.role === role)?.stats;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number.NaN;
}
