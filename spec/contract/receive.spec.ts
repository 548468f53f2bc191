/**
 * Contract 7: `receiver.next({ timeoutMs })` rejects with ERR_SB_TIMEOUT and
 * `next({ signal })` with ERR_SB_ABORTED when nothing came in time, and
 * nothing is lost: a message arriving later goes to the next receive. The
 * same for `subscription.next(...)`.
 *
 * The consumer receives only with short deadlines (or signals); the
 * producer sends at irregular gaps around that deadline, so messages often
 * arrive just as a receive gives up. Every message must be taken once, in
 * order, and every failed receive must carry exactly the promised code.
 */
import type { PatternId } from './protocol.js';
import { ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import { PLACEMENTS, casesOf } from './table.js';
import type { Placement } from './table.js';

const COUNT = 20;
/** The receive's deadline (or the delay before its signal aborts), ms. */
const RECEIVE_MS = 8;
/** Gaps before each send, around the deadline (a fixed pseudo-random sequence). */
const GAPS = Array.from({ length: COUNT }, (_, i) => [2, 8, 15, 7, 9, 1, 12, 8, 20, 6][i % 10]!);

describe.each(PLACEMENTS.filter((p) => casesOf('receive', { placement: p }).length > 0))(
  'contract 7, receives with a deadline or a signal, placement %s',
  (placement: Placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement);
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('receive', { placement }).map((c) => [c.pattern, c.variant] as const))(
      '%s: next({ %s }) rejects with the promised code and loses nothing',
      async (pattern, variant) => {
        await receivesLoseNothing(sc, pattern as PatternId, variant as 'timeoutMs' | 'signal');
      },
      20_000,
    );
  },
);

async function receivesLoseNothing(
  sc: Placed,
  pattern: PatternId,
  variant: 'timeoutMs' | 'signal',
): Promise<void> {
  const stream = streamId('rcv');
  const r = sc.recorder;
  await sc.near.do({ cmd: 'producer', spec: { pattern, stream, consumerNode: sc.far.node } });
  await sc.far.do({
    cmd: 'consumer',
    spec: { pattern, stream, producerNode: sc.near.node, receive: variant, receiveMs: RECEIVE_MS },
  });
  await sc.near.do({
    cmd: 'produce',
    spec: { stream, from: 0, count: COUNT, concurrency: 1, gaps: GAPS },
  });
  await r.until(
    () =>
      ofStream(r, 'take', stream).length >= COUNT ||
      ofStream(r, 'end', stream).length > 0 ||
      ofStream(r, 'settle', stream).some((s) => !s.ok),
    `${COUNT} messages of ${stream} taken`,
    10_000,
  );
  const expected = variant === 'timeoutMs' ? 'ERR_SB_TIMEOUT' : 'ERR_SB_ABORTED';
  const failures = ofStream(r, 'receive-error', stream);
  expect({
    sendsFailed: ofStream(r, 'settle', stream)
      .filter((s) => !s.ok)
      .map((s) => s.error?.message),
    ended: ofStream(r, 'end', stream).map((e) => e.error?.message ?? 'done'),
    taken: ofStream(r, 'take', stream).map((t) => t.seq),
    // Some receives did give up (the gaps make sure of it), each with the promised code.
    someGaveUp: failures.length > 0,
    codes: [...new Set(failures.map((f) => `${f.error.name} ${f.error.code ?? '(no code)'}`))],
  }).toEqual({
    sendsFailed: [],
    ended: [],
    taken: Array.from({ length: COUNT }, (_, i) => i),
    someGaveUp: true,
    codes: [`SwitchboardError ${expected}`],
  });
}
