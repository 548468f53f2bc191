/**
 * Contract 8: pickers skip suspect peers. MPMC `one`, RPC calls without
 * `node` and push-pull pushes skip a peer that is suspect (silent for over
 * two heartbeats, not yet down: here a child stopped with SIGSTOP, with a
 * long dead-peer timeout) while this node or a healthy peer serves; they go
 * to the suspect peer only when nothing else can take the work, and then
 * complete once it resumes. `peers()` reports it as `suspect`.
 *
 * Three nodes: this one (node 0, the producer of every stream), a healthy
 * peer in this process (node 1) and the child (node 2). Each variant and
 * pattern is a stream; one stop of the child serves them all.
 */
import { ofStream, scene, streamId } from './scene.js';
import type { ChildEnd, LocalEnd, Scene } from './scene.js';
import type { PatternId } from './protocol.js';
import { casesOf } from './table.js';

/** Long enough that the stopped child stays suspect, not down, through the check. */
const DEAD_PEER_MS = 4_000;
const WARM = 4;
const OPS = 10;
const SUSPECT = 2;

/** Where each variant has consumers besides the suspect child. */
const HEALTHY: Readonly<Record<string, readonly number[]>> = {
  'this-node-serves': [0],
  'healthy-peer-serves': [1],
  'only-suspect': [],
};

interface Outcome {
  readonly sc: Scene;
  readonly streams: ReadonlyMap<string, string>;
  readonly suspectState: string | undefined;
  readonly stoppedAt: number;
  readonly resumedAt: number;
}

describe('contract 8, pickers skip suspect peers', () => {
  const cases = casesOf('picker');
  let outcome: Outcome | undefined;
  let failure: Error | undefined;

  beforeAll(async () => {
    try {
      outcome = await runScenario(cases.map((c) => [c.variant, c.pattern as PatternId] as const));
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
  }, 60_000);
  afterAll(() => outcome?.sc.dispose());

  it.each(cases.map((c) => [c.pattern, c.variant] as const))(
    '%s, %s: work issued while a peer is suspect goes elsewhere if anything else serves, and completes',
    (pattern, variant) => {
      if (failure !== undefined) throw failure;
      const o = outcome!;
      const r = o.sc.recorder;
      const stream = o.streams.get(`${variant} ${pattern}`)!;
      const issued = ofStream(r, 'settle', stream).filter((s) => s.seq >= WARM);
      const takes = ofStream(r, 'take', stream).filter((t) => t.seq >= WARM);
      const failed = issued
        .filter((s) => !s.ok)
        .map((s) => `${s.seq}: ${s.error?.code}: ${s.error?.message}`);
      const healthy = HEALTHY[variant]!;
      expect({
        // peers() says what the pickers should go by.
        peerState: o.suspectState,
        failed,
        settled: issued.length,
        // The suspect peer gets work only when no one else serves.
        takenBySuspect: takes.filter((t) => t.node === SUSPECT).length,
        takenElsewhere: takes.filter((t) => healthy.includes(t.node)).length,
      }).toEqual({
        peerState: 'suspect',
        failed: [],
        settled: OPS,
        takenBySuspect: healthy.length === 0 ? OPS : 0,
        takenElsewhere: healthy.length === 0 ? 0 : OPS,
      });
    },
  );
});

async function runScenario(cases: ReadonlyArray<readonly [string, PatternId]>): Promise<Outcome> {
  const sc = await scene(['local', 'local', 'child'], () => ({
    deadPeerMs: DEAD_PEER_MS,
  }));
  const r = sc.recorder;
  const [near] = sc.ends as [LocalEnd];
  const streams = new Map<string, string>();
  try {
    for (const [variant, pattern] of cases) {
      const stream = streamId('pk');
      streams.set(`${variant} ${pattern}`, stream);
      await near.do({
        cmd: 'producer',
        spec: {
          pattern,
          stream,
          consumerNode: SUSPECT,
          timeoutMs: 10_000,
          waitForServerMs: 10_000,
        },
      });
      for (const node of [...HEALTHY[variant]!, SUSPECT])
        // Workers with room for several tasks each (a picker that ignores suspicion shows at once).
        await sc.ends[node]!.do({
          cmd: 'consumer',
          spec: { pattern, stream, producerNode: 0, concurrency: 2, prefetch: 4 },
        });
    }
    // Every stream open and known everywhere before the stop.
    for (const [key, stream] of streams) {
      await near.do({ cmd: 'produce', spec: { stream, from: 0, count: WARM, concurrency: 1 } });
      await r.until(() => ofStream(r, 'settle', stream).length >= WARM, `${key}: warm-up`, 5_000);
    }
    const child = sc.ends[SUSPECT] as ChildEnd;
    const from = r.all.length;
    child.pause();
    const stoppedAt = Date.now();
    await r.first(
      'event',
      (e) =>
        r.all.indexOf(e) >= from && e.node === 0 && e.type === 'peer-suspect' && e.peer === SUSPECT,
      'node 0 to find the stopped child suspect',
      DEAD_PEER_MS / 2,
    );
    const suspectState = near.sb.peers().find((p) => p.node === SUSPECT)?.state;
    for (const stream of streams.values())
      await near.do({ cmd: 'produce', spec: { stream, from: WARM, count: OPS, concurrency: OPS } });
    // Healthy consumers take their work while the child is still stopped.
    await r
      .until(
        () =>
          cases.every(([variant, pattern]) => {
            if (HEALTHY[variant]!.length === 0) return true;
            const stream = streams.get(`${variant} ${pattern}`)!;
            return ofStream(r, 'settle', stream).length >= WARM + OPS;
          }),
        'the healthy consumers to take the work',
        DEAD_PEER_MS / 2,
      )
      .catch(() => undefined);
    child.resume();
    const resumedAt = Date.now();
    await r
      .until(
        () =>
          [...streams.values()].every(
            (s) =>
              ofStream(r, 'settle', s).length >= WARM + OPS &&
              ofStream(r, 'take', s).length >= WARM + OPS,
          ),
        'every operation to settle once the child resumed',
        10_000,
      )
      .catch(() => undefined);
    return { sc, streams, suspectState, stoppedAt, resumedAt };
  } catch (err) {
    await sc.dispose();
    throw err;
  }
}
