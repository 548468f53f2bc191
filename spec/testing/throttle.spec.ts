import { performance } from 'node:perf_hooks';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';

/**
 * The kit's bandwidth limit (docs/testing.md, "Faults"): `throttle` paces
 * the real bytes of a link at its proxy. Two processes running
 * spec/testing/fixtures/bulk.ts; the dead-peer timeout is long enough that
 * heartbeats queued behind a throttled transfer do not take the link down.
 *
 * The only timing asserted is a lower bound that follows from the limit: B
 * bytes cannot cross a link limited to R bytes per second in less than
 * (B - slice) / R, where a slice (20 ms worth) is the most the proxy writes
 * ahead of the rate.
 */
const NODE = new URL('./fixtures/bulk.ts', import.meta.url);
const SLICE_SECONDS = 0.02;

interface Sent {
  readonly i: number;
  readonly size: number;
  readonly sha: string;
}

describe('a throttled link', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 2,
      options: { heartbeatMs: 200, deadPeerMs: 5_000 },
      timeoutMs: 20_000,
    });
    await cluster.ready();
  }, 30_000);
  afterAll(() => cluster.close());

  /** Bulk reports node `to` received after `from`, once there are `n`. */
  async function received(to: number, from: number, n: number): Promise<Sent[]> {
    await cluster.node(to).waitForReport('bulk', {
      from,
      match: (d) => (d as Sent).i === n - 1,
    });
    return cluster
      .node(to)
      .reports.slice(from)
      .filter((r) => r.kind === 'bulk')
      .map((r) => r.data as Sent);
  }

  it('takes at least as long as the limit allows, and loses nothing', async () => {
    const rate = 128 * 1024;
    const sizes = [48 * 1024, 48 * 1024, 48 * 1024, 48 * 1024];
    const bytes = sizes.reduce((a, b) => a + b, 0);
    cluster.throttle(0, 1, { bytesPerSecond: rate, direction: 'a->b' });
    expect(cluster.describe()).toContain(`link faults: 0-1: throttle ${rate} B/s 0->1`);

    const from = cluster.node(1).reports.length;
    const t = performance.now();
    const sent = await cluster.node(0).call<Sent[]>('sendBulk', 1, sizes);
    const got = await received(1, from, sizes.length);
    const elapsed = performance.now() - t;

    expect(got).toEqual(sent);
    // Framing only adds bytes, so the payload alone gives a lower bound.
    expect(elapsed).toBeGreaterThanOrEqual(((bytes - rate * SLICE_SECONDS) / rate) * 1_000);
    cluster.heal(0, 1);
    expect(cluster.describe()).toContain('link faults: none');
  });

  it('limits each way with both, and the peers stay up through it', async () => {
    const rate = 64 * 1024;
    cluster.throttle(1, 0, { bytesPerSecond: rate });
    expect(cluster.describe()).toContain(`throttle ${rate} B/s 0->1, throttle ${rate} B/s 1->0`);
    const sizes = [32 * 1024, 32 * 1024];
    const from = cluster.node(0).reports.length;
    const t = performance.now();
    const sent = await cluster.node(1).call<Sent[]>('sendBulk', 0, sizes);
    const got = await received(0, from, sizes.length);
    const elapsed = performance.now() - t;
    expect(got).toEqual(sent);
    expect(elapsed).toBeGreaterThanOrEqual(((64 * 1024 - rate * SLICE_SECONDS) / rate) * 1_000);
    await cluster.waitUntilAllUp();
    cluster.heal();
  });

  it('heal lifts the limit from bytes already on their way', async () => {
    // At 16 KiB/s the 2 MiB buffer would need over two minutes; healed as
    // soon as the small one before it is through, it arrives well within
    // the wait's timeout of 20 s, complete.
    const rate = 16 * 1024;
    const sizes = [1024, 2 * 1024 * 1024];
    cluster.throttle(0, 1, { bytesPerSecond: rate });
    const from = cluster.node(1).reports.length;
    const sending = cluster.node(0).call<Sent[]>('sendBulk', 1, sizes);
    await cluster.node(1).waitForReport('bulk', { from, match: (d) => (d as Sent).i === 0 });
    cluster.heal(0, 1);
    const got = await received(1, from, sizes.length);
    expect(got).toEqual(await sending);
    await cluster.waitUntilAllUp();
  }, 40_000);
});
