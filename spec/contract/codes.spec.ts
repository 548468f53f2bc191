/**
 * Contract 6: the same failure has the same code at both ends and in the
 * docs.
 * - A deadline is ERR_SB_TIMEOUT on the caller and as `ctx.signal.reason`
 *   on the server, call by call.
 * - A send to a named (or anonymous) receiver that was closed is
 *   ERR_SB_NO_RECEIVER at once; to a name that never existed, within the
 *   sender's `timeoutMs`, still ERR_SB_NO_RECEIVER, never ERR_SB_TIMEOUT.
 * - `peer-down` events carry an error with code ERR_SB_PEER_LOST, whether
 *   the peer closed, was destroyed or was killed.
 * - docs/errors.md has a row for every code the contract names.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../../lib/index.js';
import { ChildEnd, SLACK, TIMERS, ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import type { PatternId } from './protocol.js';
import { PLACEMENTS, casesOf } from './table.js';
import type { Placement } from './table.js';

const placementsOf = (variant: string): Placement[] =>
  PLACEMENTS.filter((p) => casesOf('codes', { variant, placement: p }).length > 0);

describe.each(PLACEMENTS.filter((p) => casesOf('codes', { placement: p }).length > 0))(
  'contract 6, codes agree, placement %s',
  (placement: Placement) => {
    let sc: Placed;
    beforeAll(async () => {
      sc = await placed(placement);
    }, 30_000);
    afterAll(() => sc?.dispose());

    it.each(casesOf('codes', { variant: 'deadline-both-ends', placement }).map((c) => c.pattern))(
      '%s: a passed deadline is ERR_SB_TIMEOUT on the caller and as ctx.signal.reason on the server, call by call',
      async (pattern) => {
        await deadlineCodesAgree(sc, pattern as PatternId);
      },
      20_000,
    );

    it.each(casesOf('codes', { variant: 'no-receiver-closed', placement }).map((c) => c.pattern))(
      '%s: a send to a receiver that was closed rejects with ERR_SB_NO_RECEIVER at once',
      async (pattern) => {
        await closedReceiverIsNoReceiver(sc, pattern as PatternId);
      },
      20_000,
    );

    it.each(
      casesOf('codes', { variant: 'no-receiver-never-existed', placement }).map((c) => c.pattern),
    )(
      '%s: a send to a name that never existed rejects with ERR_SB_NO_RECEIVER within its timeoutMs, never ERR_SB_TIMEOUT',
      async (pattern) => {
        await neverExistedIsNoReceiver(sc, pattern as PatternId);
      },
      20_000,
    );
  },
);

describe.each(placementsOf('peer-down-close'))(
  'contract 6, peer-down codes, placement %s',
  (placement) => {
    const variants = casesOf('codes', { placement })
      .map((c) => c.variant)
      .filter((v) => v.startsWith('peer-down-'));
    it.each(variants)(
      '%s: the peer-down event carries ERR_SB_PEER_LOST (a PeerLostError naming the node)',
      async (variant) => {
        const sc = await placed(placement);
        try {
          await peerDownIsPeerLost(sc, variant);
        } finally {
          await sc.dispose();
        }
      },
      20_000,
    );
  },
);

describe('contract 6, the docs', () => {
  it.each(casesOf('codes', { variant: 'docs' }).map((c) => c.variant))(
    '%s: docs/errors.md has a row for every code the contract names, each a code of ErrorCode',
    () => {
      const doc = readFileSync(
        fileURLToPath(new URL('../../docs/errors.md', import.meta.url)),
        'utf8',
      );
      const named = [
        'ERR_SB_CLOSED',
        'ERR_SB_NOT_DELIVERED',
        'ERR_SB_PEER_LOST',
        'ERR_SB_TIMEOUT',
        'ERR_SB_ABORTED',
        'ERR_SB_ENCODE',
        'ERR_SB_NO_RECEIVER',
        'ERR_SB_MESSAGE_TOO_LARGE',
      ];
      const codes = new Set<string>(Object.values(ErrorCode));
      expect({
        notInErrorCode: named.filter((c) => !codes.has(c)),
        noRowInDocs: named.filter((c) => !new RegExp(`^\\| \`${c}\` +\\|`, 'm').test(doc)),
      }).toEqual({ notInErrorCode: [], noRowInDocs: [] });
    },
  );
});

async function deadlineCodesAgree(sc: Placed, pattern: PatternId): Promise<void> {
  const stream = streamId('dlc');
  const r = sc.recorder;
  const calls = 20;
  const deadlines = Array.from({ length: calls }, (_, i) => 50 + ((i * 7) % 31));
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, waitForServerMs: 5_000 },
  });
  await sc.far.do({
    cmd: 'consumer',
    spec: { pattern, stream, producerNode: sc.near.node, behaviour: 'late' },
  });
  await sc.near.do({
    cmd: 'produce',
    spec: { stream, from: 0, count: calls, concurrency: calls, deadlines },
  });
  await r.until(
    () => ofStream(r, 'settle', stream).length >= calls,
    `${calls} calls to settle`,
    8_000,
  );
  await r.until(
    () => ofStream(r, 'handler', stream).length >= ofStream(r, 'take', stream).length,
    'the handlers to end',
    5_000,
  );
  const caller = new Map(
    ofStream(r, 'settle', stream).map((s) => [s.seq, s.error?.code ?? 'resolved']),
  );
  const disagree = ofStream(r, 'handler', stream)
    .map((h) => ({
      seq: h.seq,
      caller: caller.get(h.seq),
      server: h.aborted ? h.reason : 'not aborted',
    }))
    .filter((p) => p.caller !== 'ERR_SB_TIMEOUT' || p.server !== 'ERR_SB_TIMEOUT');
  expect({ disagree, served: ofStream(r, 'handler', stream).length > 0 }).toEqual({
    disagree: [],
    served: true,
  });
}

async function closedReceiverIsNoReceiver(sc: Placed, pattern: PatternId): Promise<void> {
  const stream = streamId('nor');
  const r = sc.recorder;
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, timeoutMs: 5_000 },
  });
  await sc.far.do({ cmd: 'consumer', spec: { pattern, stream, producerNode: sc.near.node } });
  await sc.near.do({ cmd: 'produce', spec: { stream, from: 0, count: 1, concurrency: 1 } });
  await r.until(() => ofStream(r, 'take', stream).length === 1, 'the first message taken', 5_000);
  await sc.far.do({ cmd: 'close-consumer', stream });

  // A send the sender made before it learnt of the close may still resolve
  // (it is then reported on errors$); the next one must be refused at once.
  let seq = 1;
  for (;;) {
    await sc.near.do({ cmd: 'produce', spec: { stream, from: seq, count: 1, concurrency: 1 } });
    const s = await r.first(
      'settle',
      (o) => o.stream === stream && o.seq === seq,
      `send ${seq} to settle`,
      6_000,
    );
    if (!s.ok || seq >= 3) break;
    await r.until(
      () => ofStream(r, 'report', stream).some((o) => o.error.seqs?.includes(seq) === true),
      `send ${seq}, made after the close, to be reported`,
      3_000,
    );
    seq++;
  }
  const last = ofStream(r, 'settle', stream).at(-1)!;
  expect({
    code: last.error?.code,
    message: last.error?.message,
    atOnce: last.at - last.issuedAt < 1_000,
  }).toEqual({ code: 'ERR_SB_NO_RECEIVER', message: expect.any(String) as unknown, atOnce: true });
}

async function neverExistedIsNoReceiver(sc: Placed, pattern: PatternId): Promise<void> {
  const stream = streamId('nev');
  const timeoutMs = 300;
  const r = sc.recorder;
  await sc.near.do({
    cmd: 'producer',
    spec: { pattern, stream, consumerNode: sc.far.node, timeoutMs },
  });
  await sc.near.do({ cmd: 'produce', spec: { stream, from: 0, count: 1, concurrency: 1 } });
  const s = await r.first(
    'settle',
    (o) => o.stream === stream,
    'the send to settle',
    timeoutMs + 5_000,
  );
  expect({
    ok: s.ok,
    code:
      s.error?.code === 'ERR_SB_NO_RECEIVER'
        ? s.error.code
        : `${s.error?.code}: ${s.error?.message}`,
    withinTimeout: s.at - s.issuedAt <= timeoutMs + SLACK,
  }).toEqual({ ok: false, code: 'ERR_SB_NO_RECEIVER', withinTimeout: true });
}

async function peerDownIsPeerLost(sc: Placed, variant: string): Promise<void> {
  const r = sc.recorder;
  const far = sc.far;
  const from = r.all.length;
  const started = Date.now();
  if (variant === 'peer-down-kill') {
    if (!(far instanceof ChildEnd)) throw new Error('a kill needs a child');
    await far.kill();
  } else {
    await far.do({ cmd: 'close', how: variant === 'peer-down-close' ? 'close' : 'destroy' });
  }
  const down = await r.first(
    'event',
    (e) =>
      r.all.indexOf(e) >= from &&
      e.node === sc.near.node &&
      e.type === 'peer-down' &&
      e.peer === far.node,
    `peer-down of node ${far.node} on node ${sc.near.node}`,
    TIMERS.deadPeerMs + TIMERS.lingerMs + 5_000,
  );
  const e = down.error;
  expect({ code: e?.code, name: e?.name, node: e?.node }).toEqual({
    code: 'ERR_SB_PEER_LOST',
    name: 'PeerLostError',
    node: far.node,
  });
  if (variant === 'peer-down-kill')
    expect(Date.now() - started).toBeLessThanOrEqual(TIMERS.deadPeerMs + SLACK);
}
