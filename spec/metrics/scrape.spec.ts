import { LATENCY_BUCKETS } from '../../lib/index.js';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import { histograms, parseExposition, valueOf } from './exposition.js';
import type { Family } from './exposition.js';

/**
 * docs/metrics.md: after known traffic between two real processes (N calls
 * of which K fail, M channel messages, P publications, T tasks of which B
 * fail), the text each node's `sb.metrics()` returns parses strictly and
 * counts exactly what was done, on the side that did it.
 */
const NODE = new URL('./fixtures/node.ts', import.meta.url);
const N = 23;
const K = 4;
const M = 37;
const P = 11;
const T = 9;
const B = 2;

const SB = 'switchboard';
const rpc = (service: string, method: string, errorType?: string): Record<string, string> => ({
  rpc_system_name: SB,
  rpc_service: service,
  rpc_method: method,
  ...(errorType === undefined ? {} : { error_type: errorType }),
});
const msg = (
  destination: string,
  operation: string,
  errorType?: string,
): Record<string, string> => ({
  messaging_system: SB,
  messaging_destination_name: destination,
  messaging_operation_name: operation,
  ...(errorType === undefined ? {} : { error_type: errorType }),
});

/** Every histogram in the text: bounds as documented, cumulative, +Inf equal to _count, a positive _sum. */
function checkHistograms(families: Map<string, Family>): number {
  let seen = 0;
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    for (const h of histograms(families, f.name)) {
      seen++;
      expect(h.le).toEqual([...LATENCY_BUCKETS.map(String), '+Inf']);
      for (let i = 1; i < h.cumulative.length; i++)
        expect(h.cumulative[i]).toBeGreaterThanOrEqual(h.cumulative[i - 1]!);
      expect(h.count).toBe(h.cumulative[h.cumulative.length - 1]);
      expect(h.count).toBeGreaterThan(0);
      expect(h.sum).toBeGreaterThan(0);
    }
  }
  return seen;
}

/** The `_count` of the histogram series of `name` with exactly `labels`. */
function countOf(families: Map<string, Family>, name: string, labels: Record<string, string>) {
  return valueOf(families, `${name}_count`, labels);
}

describe('metrics scraped from two processes after known traffic', () => {
  let cluster: ProcessCluster;
  let client: Map<string, Family>;
  let server: Map<string, Family>;

  beforeAll(async () => {
    cluster = await startCluster({
      module: NODE,
      nodes: 2,
      options: { heartbeatMs: 200, deadPeerMs: 2_000 },
      timeoutMs: 15_000,
    });
    await cluster.ready();
    const driver = cluster.node(0);
    expect(await driver.call('calls', N - K, K)).toBe(K);
    await driver.call('send', M);
    await driver.call('publish', P);
    expect(await driver.call('push', T, B)).toBe(B);
    // What node 1 consumed is counted as it is taken: wait (bounded) until its loops took everything.
    for (let i = 0; i < 200; i++) {
      const done =
        (await cluster.node(1).call('received')) === M &&
        (await cluster.node(1).call('publications')) === P;
      if (done) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    client = parseExposition(await driver.call<string>('scrape'));
    server = parseExposition(await cluster.node(1).call<string>('scrape'));
  }, 60_000);
  afterAll(() => cluster?.close());

  it('parses strictly, and every histogram is cumulative with +Inf equal to _count', () => {
    // Calls (ok, failed) and pushes (ok, failed) on node 0; handlers and tasks on node 1.
    expect(checkHistograms(client)).toBe(4);
    expect(checkHistograms(server)).toBe(4);
    for (const families of [client, server])
      for (const f of families.values()) expect(f.help.length).toBeGreaterThan(0);
  });

  it('counts the calls on the calling side, per method and error type', () => {
    const name = 'rpc_client_call_duration_seconds';
    expect(countOf(client, name, rpc('calc', 'add'))).toBe(N - K);
    expect(countOf(client, name, rpc('calc', 'fail', 'TypeError'))).toBe(K);
    expect(countOf(client, name, rpc('calc', 'fail'))).toBeUndefined();
    expect(valueOf(client, 'switchboard_rpc_calls_total', {})).toBe(N);
    expect(valueOf(client, 'switchboard_rpc_failures_total', {})).toBe(K);
    // Node 0 serves nothing: no server-side series at all.
    expect(client.has('rpc_server_call_duration_seconds')).toBe(false);
  });

  it('counts the handlers on the serving side, and the NATS-style endpoint counters agree', () => {
    const name = 'rpc_server_call_duration_seconds';
    expect(countOf(server, name, rpc('calc', 'add'))).toBe(N - K);
    expect(countOf(server, name, rpc('calc', 'fail', 'TypeError'))).toBe(K);
    const add = { rpc_service: 'calc', rpc_method: 'add' };
    const fail = { rpc_service: 'calc', rpc_method: 'fail' };
    expect(valueOf(server, 'switchboard_endpoint_num_requests_total', add)).toBe(N - K);
    expect(valueOf(server, 'switchboard_endpoint_num_errors_total', add)).toBe(0);
    expect(valueOf(server, 'switchboard_endpoint_num_requests_total', fail)).toBe(K);
    expect(valueOf(server, 'switchboard_endpoint_num_errors_total', fail)).toBe(K);
    const time = valueOf(server, 'switchboard_endpoint_processing_time_seconds_total', add)!;
    const sum = valueOf(server, `${name}_sum`, rpc('calc', 'add'))!;
    expect(time).toBeGreaterThan(0);
    expect(Math.abs(time - sum)).toBeLessThan(1e-6);
    expect(
      valueOf(server, 'switchboard_endpoint_average_processing_time_seconds', add)! * (N - K),
    ).toBeCloseTo(time, 6);
    expect(valueOf(server, 'switchboard_rpc_served', { rpc_method: 'calc.add' })).toBe(1);
  });

  it('counts channel messages sent on one side and consumed on the other', () => {
    expect(valueOf(client, 'messaging_client_sent_messages_total', msg('inbox', 'send'))).toBe(M);
    expect(
      valueOf(server, 'messaging_client_consumed_messages_total', msg('inbox', 'receive')),
    ).toBe(M);
  });

  it('counts publications per topic and deliveries per subscription pattern', () => {
    expect(
      valueOf(client, 'messaging_client_sent_messages_total', msg('orders.eu', 'publish')),
    ).toBe(P);
    expect(
      valueOf(server, 'messaging_client_consumed_messages_total', msg('orders.*', 'receive')),
    ).toBe(P);
  });

  it('counts tasks pushed and processed, with push-to-done and handler durations by outcome', () => {
    expect(valueOf(client, 'messaging_client_sent_messages_total', msg('jobs', 'push'))).toBe(T);
    const op = 'messaging_client_operation_duration_seconds';
    expect(countOf(client, op, msg('jobs', 'push'))).toBe(T - B);
    expect(countOf(client, op, msg('jobs', 'push', 'Error'))).toBe(B);
    expect(
      valueOf(server, 'messaging_client_consumed_messages_total', msg('jobs', 'process')),
    ).toBe(T);
    const proc = 'messaging_process_duration_seconds';
    expect(countOf(server, proc, msg('jobs', 'process'))).toBe(T - B);
    expect(countOf(server, proc, msg('jobs', 'process', 'Error'))).toBe(B);
  });

  it('renders the same counts as OpenMetrics text', async () => {
    const text = await cluster.node(0).call<string>('scrape', 'openmetrics');
    const om = parseExposition(text, true);
    expect(om.get('messaging_client_sent_messages')?.type).toBe('counter');
    expect(valueOf(om, 'messaging_client_sent_messages_total', msg('inbox', 'send'))).toBe(M);
    expect(countOf(om, 'rpc_client_call_duration_seconds', rpc('calc', 'add'))).toBe(N - K);
  });
});
