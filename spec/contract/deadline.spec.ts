/**
 * Contract 2: a call past its deadline rejects with ERR_SB_TIMEOUT at its
 * deadline whatever the handler does (ignores `ctx.signal`, honours it,
 * throws on it, answers late), and on the server `ctx.signal.reason.code`
 * is ERR_SB_TIMEOUT; when the caller's own signal aborts the call, the call
 * rejects with ERR_SB_ABORTED and the server's reason is ERR_SB_ABORTED.
 *
 * Sixty calls per case, deadlines (or aborts) spread over 40-100 ms,
 * against handlers that work 250 ms: each call is asserted, at both ends.
 */
import type { Behaviour, ObsOf, PatternId } from './protocol.js';
import { ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import { PLACEMENTS, casesOf } from './table.js';
import type { Placement } from './table.js';

const CALLS = 60;
/** Deadlines (or abort delays) of the calls, spread over 40-100 ms. */
const DELAYS = Array.from({ length: CALLS }, (_, i) => 40 + ((i * 37) % 61));
/** How late after its deadline a call may reject (timers, a loaded machine), ms. */
const LATE_MS = 150;

describe.each(PLACEMENTS.filter((p) => casesOf('deadline', { placement: p }).length > 0))(
  'contract 2, deadlines, placement %s',
  (placement: Placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement);
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('deadline', { placement }).map((c) => [c.pattern, c.variant] as const))(
      '%s, handler that does "%s": every call rejects at its deadline with the promised code, at both ends',
      async (pattern, variant) => {
        await deadlinesHold(sc, pattern as PatternId, variant);
      },
      20_000,
    );
  },
);

async function deadlinesHold(sc: Placed, pattern: PatternId, variant: string): Promise<void> {
  const stream = streamId('dl');
  const r = sc.recorder;
  const abort = variant === 'abort';
  const behaviour: Behaviour = abort ? 'honour' : (variant as Behaviour);
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, waitForServerMs: 5_000 },
  });
  await sc.far.do({
    cmd: 'consumer',
    spec: { pattern, stream, producerNode: sc.near.node, behaviour },
  });
  await sc.near.do({
    cmd: 'produce',
    spec: {
      stream,
      from: 0,
      count: CALLS,
      concurrency: CALLS,
      ...(abort ? { aborts: DELAYS, deadlines: DELAYS.map(() => 5_000) } : { deadlines: DELAYS }),
    },
  });
  await r.until(
    () => ofStream(r, 'settle', stream).length >= CALLS,
    `${CALLS} calls to settle`,
    8_000,
  );
  // Every handler that started ends (the slowest works 250 ms).
  await r.until(
    () => ofStream(r, 'handler', stream).length >= ofStream(r, 'take', stream).length,
    'the handlers to end',
    5_000,
  );

  const expected = abort ? 'ERR_SB_ABORTED' : 'ERR_SB_TIMEOUT';
  const callers = ofStream(r, 'settle', stream).map((s) => callVerdict(s, expected));
  const servers = ofStream(r, 'handler', stream)
    .filter((h) => !(h.aborted && h.reason === expected))
    .map(
      (h) =>
        `call ${h.seq}: ctx.signal ${h.aborted ? `aborted with ${h.reason}` : 'not aborted'} when the handler ended`,
    );
  expect({
    callersWrong: callers.filter((v) => v !== 'ok'),
    serversWrong: servers,
    // Sanity: the calls did reach the server.
    reachedServer: ofStream(r, 'take', stream).length > 0,
  }).toEqual({ callersWrong: [], serversWrong: [], reachedServer: true });
}

/** `ok`, or what is wrong with one call's settlement. */
function callVerdict(s: ObsOf<'settle'>, expected: string): string {
  const delay = DELAYS[s.seq]!;
  const elapsed = s.at - s.issuedAt;
  if (s.ok) return `call ${s.seq} (after ${delay} ms): resolved after ${elapsed.toFixed(0)} ms`;
  if (s.error?.code !== expected)
    return `call ${s.seq} (after ${delay} ms): ${s.error?.name} ${s.error?.code}: ${s.error?.message} (after ${elapsed.toFixed(0)} ms)`;
  if (elapsed < delay - 1 || elapsed > delay + LATE_MS)
    return `call ${s.seq}: rejected with ${expected} after ${elapsed.toFixed(0)} ms, its deadline was ${delay} ms`;
  return 'ok';
}
