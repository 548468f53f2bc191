/**
 * The demo's metrics step: what every node's `stats().metrics` says about
 * the traffic the scenarios made (docs/metrics.md), summed over the nodes:
 * RPC calls per method with latency percentiles estimated from the
 * histograms' buckets, the served methods' NATS-style counters, and
 * messages sent and consumed per queue and topic.
 */
import type { HistogramSnapshot, MetricsStats } from '../../lib/index.js';

/** Histograms of several nodes (same bounds) added up. */
function merge(hs: readonly HistogramSnapshot[]): HistogramSnapshot | undefined {
  if (hs.length === 0) return undefined;
  const counts = hs[0]!.counts.map((_, i) => hs.reduce((a, h) => a + (h.counts[i] ?? 0), 0));
  return {
    buckets: hs[0]!.buckets,
    counts,
    count: hs.reduce((a, h) => a + h.count, 0),
    sum: hs.reduce((a, h) => a + h.sum, 0),
  };
}

/**
 * The `q` quantile, in ms, estimated as Prometheus' histogram_quantile does:
 * linear within the bucket the rank falls in. Above the last bound: that bound.
 */
export function quantileMs(h: HistogramSnapshot, q: number): number {
  const rank = q * h.count;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i]!;
    if (seen + c >= rank && c > 0) {
      const hi = h.buckets[i];
      if (hi === undefined) return h.buckets.at(-1)! * 1000;
      const lo = i === 0 ? 0 : h.buckets[i - 1]!;
      return (lo + ((hi - lo) * (rank - seen)) / c) * 1000;
    }
    seen += c;
  }
  return 0;
}

const ms = (v: number): string => (v >= 10 ? v.toFixed(0) : v.toFixed(2));

/** The metrics table: one line per RPC method, served method, queue and topic. */
export function metricsLines(all: readonly MetricsStats[]): string[] {
  const lines: string[] = [];
  const methods = new Map<string, { ok: HistogramSnapshot[]; failed: number }>();
  for (const m of all)
    for (const r of m.rpcClient) {
      const name = r.service === '' ? r.method : `${r.service}.${r.method}`;
      const e = methods.get(name) ?? { ok: [], failed: 0 };
      if (r.errorType === undefined) e.ok.push(r.duration);
      else e.failed += r.duration.count;
      methods.set(name, e);
    }
  for (const [name, e] of [...methods].sort((a, b) => a[0].localeCompare(b[0]))) {
    const h = merge(e.ok);
    const calls = (h?.count ?? 0) + e.failed;
    const lat =
      h === undefined || h.count === 0
        ? ''
        : `  p50 ${ms(quantileMs(h, 0.5))} ms  p99 ${ms(quantileMs(h, 0.99))} ms`;
    lines.push(
      `rpc call   ${name.padEnd(22)} ${String(calls).padStart(7)} calls  ${e.failed} failed${lat}`,
    );
  }
  const served = new Map<string, { n: number; errors: number; ns: number }>();
  for (const m of all)
    for (const ep of m.endpoints) {
      const e = served.get(ep.name) ?? { n: 0, errors: 0, ns: 0 };
      e.n += ep.num_requests;
      e.errors += ep.num_errors;
      e.ns += ep.processing_time;
      served.set(ep.name, e);
    }
  for (const [name, e] of [...served].sort((a, b) => a[0].localeCompare(b[0])))
    lines.push(
      `rpc served ${name.padEnd(22)} ${String(e.n).padStart(7)} requests  ${e.errors} errors  avg ${ms(e.n === 0 ? 0 : e.ns / e.n / 1e6)} ms`,
    );
  interface Flow {
    readonly kind: 'queue' | 'topic';
    readonly destination: string;
    sent: number;
    processed: number;
  }
  const flows = new Map<string, Flow>();
  const flow = (kind: Flow['kind'], destination: string): Flow => {
    const key = `${kind} ${destination}`;
    let f = flows.get(key);
    if (f === undefined) flows.set(key, (f = { kind, destination, sent: 0, processed: 0 }));
    return f;
  };
  for (const m of all) {
    for (const c of m.sent)
      if (c.operation !== 'send')
        flow(c.operation === 'push' ? 'queue' : 'topic', c.destination).sent += c.count;
    for (const c of m.consumed)
      if (c.operation === 'process') flow('queue', c.destination).processed += c.count;
  }
  for (const [, f] of [...flows].sort((a, b) => a[0].localeCompare(b[0])))
    lines.push(
      `${f.kind.padEnd(10)} ${f.destination.padEnd(22)} ${String(f.sent).padStart(7)} sent${f.kind === 'queue' ? `  ${f.processed} processed` : ''}`,
    );
  return lines;
}
