/**
 * Contract 10: a node announces its `maxMessageSize` when a link is
 * established, and a sender refuses a message over the receiving node's
 * limit at `send()`: ERR_SB_MESSAGE_TOO_LARGE, a MessageTooLargeError with
 * `size`, `limit` and `node`; for channels, calls (the request, and the
 * reply the server sends back), push; `publish` and `post` count a drop
 * instead of throwing. The link keeps working afterwards.
 *
 * The receiving end has a small limit and the sending end the default, so
 * the refusal can only come from the announced limit.
 */
import { channelName, topicName } from './patterns.js';
import type { ErrorInfo, ObsOf, PatternId } from './protocol.js';
import { ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import { casesOf } from './table.js';
import type { Placement } from './table.js';

/** The receiving node's limit, and a message comfortably over it. */
const LIMIT = 32 * 1024;
const BIG = 40 * 1024;

const placementsOf = (variant: string): Placement[] =>
  [...new Set(casesOf('size', { variant }).map((c) => c.placement))].filter(
    (p): p is Placement => p !== '-',
  );

describe.each(placementsOf('request'))(
  'contract 10, a request over the receiving node limit, placement %s',
  (placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement, { far: { maxMessageSize: LIMIT } });
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('size', { variant: 'request', placement }).map((c) => c.pattern))(
      '%s: refused at the send with ERR_SB_MESSAGE_TOO_LARGE (size, limit, node); the link keeps working',
      async (pattern) => {
        await refusesOversize(sc, pattern as PatternId);
      },
      20_000,
    );
  },
);

describe.each(placementsOf('reply'))(
  'contract 10, a reply over the caller node limit, placement %s',
  (placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement, { near: { maxMessageSize: LIMIT } });
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('size', { variant: 'reply', placement }).map((c) => c.pattern))(
      '%s: the call fails at once with ERR_SB_MESSAGE_TOO_LARGE; the link keeps working',
      async (pattern) => {
        await refusesOversizeReply(sc, pattern as PatternId);
      },
      20_000,
    );
  },
);

async function refusesOversize(sc: Placed, pattern: PatternId): Promise<void> {
  const stream = streamId('big');
  const r = sc.recorder;
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, timeoutMs: 5_000, waitForServerMs: 5_000 },
  });
  await sc.far.do({ cmd: 'consumer', spec: { pattern, stream, producerNode: sc.near.node } });
  const before = await sc.near.stats();
  const dropEventsBefore = dropEvents(sc);

  await sc.near.do({
    cmd: 'produce',
    spec: { stream, from: 0, count: 1, concurrency: 1, value: { kind: 'msg', pad: BIG } },
  });
  const big = await r.first(
    'settle',
    (s) => s.stream === stream && s.seq === 0,
    'the oversize operation to settle',
    5_000,
  );
  // The link keeps working: a small message goes through, and the big one never did.
  await sc.near.do({ cmd: 'produce', spec: { stream, from: 1, count: 1, concurrency: 1 } });
  await r.until(
    () => ofStream(r, 'take', stream).some((t) => t.seq === 1),
    `the small message of ${stream} to be taken`,
    5_000,
  );
  expect({ takes: ofStream(r, 'take', stream).map((t) => t.seq) }).toEqual({ takes: [1] });

  if (pattern === 'pubsub' || pattern === 'post') {
    // Counted as a drop for that subscriber (or that post), never thrown.
    await r.until(
      () => dropEvents(sc).length > dropEventsBefore.length,
      `a drop event on node ${sc.near.node}`,
      3_000,
    );
    const after = await sc.near.stats();
    const counted =
      pattern === 'post'
        ? (after.drops[channelName(stream)] ?? 0) - (before.drops[channelName(stream)] ?? 0)
        : Number(producerStats(after, stream)?.dropped ?? 0) -
          Number(producerStats(before, stream)?.dropped ?? 0);
    // The drop event names what was dropped: the post's channel, or the subscription.
    const named = pattern === 'post' ? channelName(stream) : topicName(stream);
    expect({
      ok: big.ok,
      threw: big.threw ?? false,
      counted,
      dropEvents: dropEvents(sc)
        .slice(dropEventsBefore.length)
        .map((d) => (d.channel!.includes(named) ? named : `${d.channel!} (${d.reason!})`)),
    }).toEqual({ ok: true, threw: false, counted: 1, dropEvents: [named] });
    return;
  }
  const e = big.error;
  expect({
    ok: big.ok,
    threw: big.threw ?? false,
    code: e?.code,
    name: e?.name,
    node: e?.node,
    limit: e?.limit,
    sizeOverLimit: e?.size !== undefined && e.size > LIMIT,
  }).toEqual({
    ok: false,
    threw: false,
    code: 'ERR_SB_MESSAGE_TOO_LARGE',
    name: 'MessageTooLargeError',
    node: sc.far.node,
    limit: LIMIT,
    sizeOverLimit: true,
  });
}

async function refusesOversizeReply(sc: Placed, pattern: PatternId): Promise<void> {
  const big = streamId('bigr');
  const small = streamId('smallr');
  const r = sc.recorder;
  for (const stream of [big, small]) {
    await sc.near.do({
      cmd: 'producer',
      spec: {
        pattern,
        stream,
        consumerNode: sc.far.node,
        timeoutMs: 5_000,
        waitForServerMs: 5_000,
      },
    });
  }
  await sc.far.do({
    cmd: 'consumer',
    spec: { pattern, stream: big, producerNode: sc.near.node, replyPad: BIG },
  });
  await sc.far.do({
    cmd: 'consumer',
    spec: { pattern, stream: small, producerNode: sc.near.node },
  });

  await sc.near.do({ cmd: 'produce', spec: { stream: big, from: 0, count: 1, concurrency: 1 } });
  const failed = await r.first(
    'settle',
    (s) => s.stream === big,
    'the call with an oversize reply to settle',
    8_000,
  );
  const e = failed.error;
  expect({
    ok: failed.ok,
    // Refused where the reply is sent: the caller learns it at once, not at its deadline.
    settledWithinMs: failed.at - failed.issuedAt < 3_000,
    code: withMessage(e?.code, e, 'ERR_SB_MESSAGE_TOO_LARGE'),
    // The same typed error as a refused request: whose limit, and by how much.
    name: e?.name,
    node: e?.node,
    limit: e?.limit,
    sizeOverLimit: e?.size !== undefined && e.size > LIMIT,
  }).toEqual({
    ok: false,
    settledWithinMs: true,
    code: 'ERR_SB_MESSAGE_TOO_LARGE',
    name: 'MessageTooLargeError',
    node: sc.near.node,
    limit: LIMIT,
    sizeOverLimit: true,
  });

  await sc.near.do({ cmd: 'produce', spec: { stream: small, from: 0, count: 1, concurrency: 1 } });
  const ok = await r.first('settle', (s) => s.stream === small, 'a normal call after it', 5_000);
  expect({ ok: ok.ok, error: ok.error?.message }).toEqual({ ok: true, error: undefined });
}

function dropEvents(sc: Placed): Array<ObsOf<'event'>> {
  return sc.recorder.of('event', (o) => o.type === 'drop' && o.node === sc.near.node);
}

/** `code` when it is `expected`; otherwise the code and the error's message, for the failure. */
export function withMessage(
  code: string | undefined,
  e: ErrorInfo | undefined,
  expected: string,
): string | undefined {
  return code === expected ? code : `${code ?? '(no code)'}: ${e?.message ?? '(no error)'}`;
}

function producerStats(
  stats: {
    streams: ReadonlyArray<{
      stream: string;
      role: string;
      stats: Record<string, unknown> | undefined;
    }>;
  },
  stream: string,
): Record<string, unknown> | undefined {
  return stats.streams.find((s) => s.stream === stream && s.role === 'producer')?.stats;
}
