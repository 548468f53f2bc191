/**
 * Contract 4: a value the codec cannot carry (a function, a symbol, a
 * Promise, a URL, a cyclic reference, a class instance) placed at
 * `.items[3].cb` makes `send`/`call`/`push` reject and `publish` throw with
 * ERR_SB_ENCODE, naming the path; nothing is sent (the consumer's first
 * message is the good one sent next); `post()` never throws and counts the
 * drop (`stats().drops`, a `drop` event). On every placement, the local
 * path included.
 */
import { channelName } from './patterns.js';
import { BAD_PATH } from './protocol.js';
import type { BadKind, PatternId } from './protocol.js';
import { ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import { PLACEMENTS, casesOf } from './table.js';
import type { Placement } from './table.js';

describe.each(PLACEMENTS.filter((p) => casesOf('encode', { placement: p }).length > 0))(
  'contract 4, values the codec cannot carry, placement %s',
  (placement: Placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement);
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('encode', { placement }).map((c) => [c.pattern, c.variant] as const))(
      '%s: a %s at .items[3].cb is refused with ERR_SB_ENCODE naming the path, nothing is sent',
      async (pattern, bad) => {
        await refusesBadValue(sc, pattern as PatternId, bad as BadKind);
      },
      20_000,
    );
  },
);

async function refusesBadValue(sc: Placed, pattern: PatternId, bad: BadKind): Promise<void> {
  const stream = streamId('enc');
  const r = sc.recorder;
  await sc.far.do({ cmd: 'consumer', spec: { pattern, stream, producerNode: sc.near.node } });
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, timeoutMs: 5_000, waitForServerMs: 5_000 },
  });
  const channel = channelName(stream);
  const dropsBefore = (await sc.near.stats()).drops[channel] ?? 0;
  const dropEventsBefore = dropEvents(sc, channel);

  await sc.near.do({
    cmd: 'produce',
    spec: { stream, from: 0, count: 1, concurrency: 1, value: { kind: 'bad', bad } },
  });
  const refused = await r.first(
    'settle',
    (s) => s.stream === stream && s.seq === 0,
    'the bad operation to settle',
    5_000,
  );

  // Then a good one: the consumer must see it first, and nothing else.
  await sc.near.do({ cmd: 'produce', spec: { stream, from: 1, count: 1, concurrency: 1 } });
  await r.until(
    () => ofStream(r, 'take', stream).some((t) => t.seq === 1),
    `the good message of ${stream} to be taken`,
    5_000,
  );
  const takes = ofStream(r, 'take', stream).map((t) =>
    t.foreign === undefined ? t.seq : `foreign ${t.foreign}`,
  );
  expect({ takes }).toEqual({ takes: [1] });

  if (pattern === 'post') {
    // post() never throws: the drop is counted and reported.
    expect({ ok: refused.ok, threw: refused.threw ?? false }).toEqual({ ok: true, threw: false });
    await r.until(
      () => dropEvents(sc, channel) > dropEventsBefore,
      `a drop event on ${channel}`,
      2_000,
    );
    const dropsAfter = (await sc.near.stats()).drops[channel] ?? 0;
    expect({ drops: dropsAfter - dropsBefore }).toEqual({ drops: 1 });
    return;
  }
  // One verdict, so that a failure shows every part of it.
  const e = refused.error;
  const how = pattern === 'pubsub' ? 'throws' : 'rejects';
  expect({
    ok: refused.ok,
    code: e?.code,
    isSwitchboardError: e?.isSwitchboardError,
    // publish() throws; the promise APIs reject (a synchronous throw would escape a caller's `.catch`).
    how: refused.threw === true ? 'throws' : 'rejects',
    // The path is the promise, in the message (and in `path` where the error has one).
    message: e?.message,
    path: e?.path ?? BAD_PATH,
  }).toEqual({
    ok: false,
    code: 'ERR_SB_ENCODE',
    isSwitchboardError: true,
    how,
    message: expect.stringContaining(BAD_PATH) as unknown,
    path: BAD_PATH,
  });
}

function dropEvents(sc: Placed, channel: string): number {
  return sc.recorder.of(
    'event',
    (o) => o.type === 'drop' && o.node === sc.near.node && o.channel === channel,
  ).length;
}
