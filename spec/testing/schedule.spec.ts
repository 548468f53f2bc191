import {
  FAULT_KINDS,
  Prng,
  ScheduleError,
  planSchedule,
  startCluster,
} from '../../lib/testing/index.js';
import type { FaultKind, ProcessCluster, ScheduleStep } from '../../lib/testing/index.js';

/**
 * Seeded fault schedules (docs/testing.md, "Fault schedules"): the plan is
 * a function of the seed, and a run against three real processes carries
 * it out, logs it, ends healed with every node up, and names its seed in
 * every failure.
 */
const HEARTBEAT = 100;
const DEAD = 600;
const NODE = new URL('./fixtures/node.ts', import.meta.url);

const texts = (steps: readonly ScheduleStep[]): string[] => steps.map((s) => s.text);

describe('a fault schedule plan', () => {
  it('is the same for the same seed, and differs for another', () => {
    const a = planSchedule(3, { seed: 42, steps: 20 });
    expect(planSchedule(3, { seed: 42, steps: 20 })).toEqual(a);
    expect(a.seed).toBe(42);
    expect(a.steps).toHaveLength(20);
    for (const other of [43, 0, 2 ** 32 - 1])
      expect(texts(planSchedule(3, { seed: other, steps: 20 }).steps)).not.toEqual(texts(a.steps));
  });

  it('replays from its replay options, and a seedless plan draws and reports one', () => {
    const drawn = planSchedule(4, { steps: 8, holdMs: [10, 20] });
    expect(Number.isInteger(drawn.seed)).toBe(true);
    expect(drawn.replay).toEqual({ steps: 8, holdMs: [10, 20], seed: drawn.seed });
    expect(planSchedule(4, drawn.replay)).toEqual(drawn);
  });

  it('stays pinned: a seed names the same run in every version', () => {
    // A change here breaks every replay a user wrote down: only on purpose.
    expect(texts(planSchedule(3, { seed: 1, steps: 5 }).steps)).toEqual(PINNED);
  });

  it('draws every kind it is allowed, within the ranges given, and only those', () => {
    const plan = planSchedule(5, {
      seed: 7,
      steps: 300,
      holdMs: [50, 60],
      delayMs: [10, 20],
      bytesPerSecond: [1_000, 2_000],
      nodes: [1, 2, 4],
    });
    expect(new Set(plan.steps.map((s) => s.fault))).toEqual(new Set(FAULT_KINDS));
    for (const s of plan.steps) {
      expect(s.holdMs).toBeGreaterThanOrEqual(50);
      expect(s.holdMs).toBeLessThanOrEqual(60);
      for (const n of s.link ?? [s.node!]) expect([1, 2, 4]).toContain(n);
      if (s.link !== undefined) expect(s.link[0]).not.toBe(s.link[1]);
      if (s.fault === 'delay') expect(s.delayMs).toBeGreaterThanOrEqual(10);
      if (s.fault === 'delay') expect(s.delayMs).toBeLessThanOrEqual(20);
      if (s.fault === 'throttle') expect(s.bytesPerSecond).toBeGreaterThanOrEqual(1_000);
      if (s.fault === 'throttle') expect(s.bytesPerSecond).toBeLessThanOrEqual(2_000);
    }
    const only: FaultKind[] = ['cut', 'pause'];
    const some = planSchedule(3, { seed: 7, steps: 50, faults: only });
    expect(new Set(some.steps.map((s) => s.fault))).toEqual(new Set(only));
  });

  it('by duration: faults until their hold times reach it', () => {
    const plan = planSchedule(3, { seed: 9, durationMs: 5_000, holdMs: [100, 400] });
    const held = plan.steps.map((s) => s.holdMs);
    const total = held.reduce((x, y) => x + y, 0);
    expect(total).toBeGreaterThanOrEqual(5_000);
    expect(total - held.at(-1)!).toBeLessThan(5_000);
  });

  it('refuses what it cannot plan, naming the option', () => {
    expect(() => planSchedule(3, { seed: -1 })).toThrow(/seed must be an integer/);
    expect(() => planSchedule(3, { steps: 2, durationMs: 10 })).toThrow(/steps or durationMs/);
    expect(() => planSchedule(3, { faults: ['flood' as FaultKind] })).toThrow(/unknown fault/);
    expect(() => planSchedule(3, { nodes: [3] })).toThrow(/no node 3/);
    expect(() => planSchedule(3, { nodes: [0], faults: ['cut'] })).toThrow(/two nodes/);
    expect(() => planSchedule(3, { holdMs: [5, 1] })).toThrow(/holdMs/);
  });

  it('the PRNG gives the same numbers for a seed, within the ranges asked', () => {
    const a = new Prng(123);
    const b = new Prng(123);
    const xs = Array.from({ length: 100 }, () => a.int(3, 9));
    expect(Array.from({ length: 100 }, () => b.int(3, 9))).toEqual(xs);
    expect(Math.min(...xs)).toBe(3);
    expect(Math.max(...xs)).toBe(9);
  });
});

describe('a fault schedule run', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 3,
      options: { heartbeatMs: HEARTBEAT, deadPeerMs: DEAD },
      timeoutMs: 10_000,
    });
    await cluster.ready();
  }, 20_000);
  afterAll(() => cluster.close());

  it('carries out its plan on real processes and links, and ends with every node up', async () => {
    const pidsBefore = cluster.nodes.map((n) => n.pids.length);
    const checked: number[] = [];
    const report = await cluster.schedule({
      seed: 2026,
      steps: 8,
      holdMs: [100, 300],
      delayMs: [20, 60],
      check: async (step) => {
        checked.push(step.index);
        // Every step recovered: RPC across each link works again.
        expect(await cluster.node(0).call('ask', 1)).toMatchObject({ id: 1 });
        expect(await cluster.node(2).call('ask', 0)).toMatchObject({ id: 0 });
      },
    });
    expect(report.steps).toEqual(
      cluster.planSchedule({ seed: 2026, steps: 8, holdMs: [100, 300], delayMs: [20, 60] }).steps,
    );
    expect(checked).toEqual(report.steps.map((s) => s.index));
    for (const s of report.steps)
      expect(report.log).toContainEqual(expect.objectContaining({ step: s.index, action: s.text }));
    expect(report.log.at(-1)).toMatchObject({ step: -1, action: 'all up' });

    // A killed or restarted node came back as a new process, once per such step.
    const relaunched = cluster.nodes.map(
      (n) =>
        report.steps.filter((s) => s.node === n.id && (s.fault === 'kill' || s.fault === 'restart'))
          .length,
    );
    expect(cluster.nodes.map((n) => n.pids.length)).toEqual(
      pidsBefore.map((p, i) => p + relaunched[i]!),
    );
    expect(cluster.describe()).toContain('link faults: none');
    for (const n of cluster.nodes) {
      expect(n.status).toBe('running');
      expect(n.peers().map((p) => p.state)).toEqual(['up', 'up']);
    }
  }, 60_000);

  it('a wait that fails while a schedule runs names its seed and how to replay it', async () => {
    const run = cluster.schedule({ seed: 99, steps: 2, faults: ['delay'], holdMs: [400, 400] });
    const err = (await cluster
      .waitUntilDown(0, { timeoutMs: 200 })
      .then(() => new Error('not expected to pass'))
      .catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^node 0 to be declared down by 1, 2: not met within the timeout/);
    expect(err.message).toContain(
      'fault schedule: seed 99, 2 steps; replay with cluster.schedule({',
    );
    expect(err.message).toContain('"seed":99');
    expect(err.message).toMatch(/> 0: delay \d<?->\d by \d+ ms for 400 ms/);
    await run;
  }, 30_000);

  it('a failing check stops the schedule, which heals, and fails naming its seed and steps', async () => {
    const options = { seed: 5, steps: 4, faults: ['blackhole', 'cut'] as FaultKind[] };
    const err = (await cluster
      .schedule({
        ...options,
        check: (step) => {
          if (step.index === 1) throw new Error('invariant broken');
        },
      })
      .then(() => new Error('not expected to pass'))
      .catch((e: unknown) => e)) as ScheduleError;
    expect(err).toBeInstanceOf(ScheduleError);
    expect(err.step).toBe(1);
    expect(err.message).toMatch(
      /^fault schedule with seed 5: step 1 \(.+\) failed: invariant broken/,
    );
    expect(err.message).toMatch(/ {4}> 1: /);
    expect(err.message).toMatch(/ {6}2: .* \(not run\)/);
    expect(err.report.replay).toEqual(options);
    expect(cluster.planSchedule(err.report.replay)).toEqual(
      expect.objectContaining({ steps: err.report.steps }),
    );
    expect(err.report.log.at(-1)).toMatchObject({ step: -1, action: 'all up' });
    expect(cluster.describe()).toContain('link faults: none');
    await cluster.waitUntilAllUp({ timeoutMs: 1_000 });
  }, 30_000);

  it('runs one schedule at a time', async () => {
    const first = cluster.schedule({ seed: 3, steps: 1, faults: ['delay'], holdMs: [50, 50] });
    await expect(cluster.schedule({ seed: 4, steps: 1 })).rejects.toThrow(/already running/);
    await first;
  });
});

const PINNED = [
  'restart 2, then 337 ms',
  'restart 0, then 266 ms',
  'kill 0 for 314 ms',
  'delay 1<->0 by 80 ms for 273 ms',
  'blackhole 0->2 for 736 ms',
];
