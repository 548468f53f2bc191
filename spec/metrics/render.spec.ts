import { LATENCY_BUCKETS, OptionError, renderPrometheus, Switchboard } from '../../lib/index.js';
import type { MetricsStats, RenderableStats } from '../../lib/index.js';
import { Histogram } from '../../lib/switchboard/metrics.js';
import { freePorts } from '../support/ports.js';
import { histograms, parseExposition, valueOf } from './exposition.js';

/** docs/metrics.md: the renderer on snapshots made by hand, and a fresh switchboard's text. */
const NO_METRICS: MetricsStats = {
  rpcClient: [],
  rpcServer: [],
  endpoints: [],
  sent: [],
  consumed: [],
  process: [],
  operation: [],
};

function stats(over: Partial<RenderableStats> = {}): RenderableStats {
  return {
    node: 0,
    incarnation: 'abc',
    peers: [],
    receivers: [],
    drops: {},
    rpc: {
      pendingCalls: 0,
      waitingForServer: 0,
      activeCalls: 0,
      runningHandlers: 0,
      served: [],
      calls: 0,
      failures: 0,
      lateReplies: 0,
    },
    metrics: NO_METRICS,
    ...over,
  };
}

describe('renderPrometheus', () => {
  it('renders empty stats as valid text with no RPC or messaging family', () => {
    const text = renderPrometheus(stats());
    const families = parseExposition(text);
    expect([...families.keys()].filter((n) => /^(rpc|messaging)_/.test(n))).toEqual([]);
    expect(valueOf(families, 'switchboard_info', { node: '0', incarnation: 'abc' })).toBe(1);
    expect(valueOf(families, 'switchboard_rpc_calls_total', {})).toBe(0);
    // A family without samples has no HELP or TYPE line either.
    expect(text).not.toContain('switchboard_peer_state');
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    const name = 'a"b\\c\nd';
    const text = renderPrometheus(stats({ drops: { [name]: 3 } }));
    expect(text).toContain('switchboard_dropped_messages_total{channel="a\\"b\\\\c\\nd"} 3\n');
    const families = parseExposition(text);
    expect(valueOf(families, 'switchboard_dropped_messages_total', { channel: name })).toBe(3);
  });

  it('renders histograms cumulatively, with +Inf, _sum and _count, and sums receivers of one name', () => {
    const counts = LATENCY_BUCKETS.map(() => 0).concat(0);
    counts[0] = 2;
    counts[3] = 1;
    counts[counts.length - 1] = 1;
    const duration = { buckets: LATENCY_BUCKETS, counts, count: 4, sum: 12.5 };
    const receiver = {
      name: 'jobs',
      queued: 1,
      queuedBytes: 2,
      received: 3,
      delivered: 2,
      dropped: 0,
      invalid: 0,
      senders: 1,
    };
    const text = renderPrometheus(
      stats({
        receivers: [receiver, { ...receiver, delivered: 5 }],
        metrics: {
          ...NO_METRICS,
          rpcClient: [{ service: '', method: 'ping', errorType: 'ERR_SB_TIMEOUT', duration }],
        },
      }),
    );
    const families = parseExposition(text);
    const [h] = histograms(families, 'rpc_client_call_duration_seconds');
    expect(h!.labels).toEqual({
      rpc_system_name: 'switchboard',
      rpc_service: '',
      rpc_method: 'ping',
      error_type: 'ERR_SB_TIMEOUT',
    });
    const expected = [2, 2, 2, 3, ...LATENCY_BUCKETS.slice(4).map(() => 3), 4];
    expect(h!.cumulative).toEqual(expected);
    expect(h!.sum).toBe(12.5);
    expect(h!.count).toBe(4);
    expect(
      valueOf(families, 'switchboard_receiver_delivered_messages_total', { channel: 'jobs' }),
    ).toBe(7);
  });

  it('renders OpenMetrics: counter families without _total, and # EOF at the end', () => {
    const text = renderPrometheus(stats(), { format: 'openmetrics' });
    expect(text.endsWith('# EOF\n')).toBe(true);
    expect(text).toContain('# TYPE switchboard_rpc_calls counter\n');
    expect(text).toContain('\nswitchboard_rpc_calls_total 0\n');
    const families = parseExposition(text, true);
    expect(families.get('switchboard_rpc_calls')?.type).toBe('counter');
    // The Prometheus parser refuses it (the # EOF line), and the other way round.
    expect(() => parseExposition(text)).toThrow();
    expect(() => parseExposition(renderPrometheus(stats()), true)).toThrow();
  });
});

describe('Histogram', () => {
  it('puts a value equal to a bound in that bound’s bucket (le), and above the last in +Inf', () => {
    const h = new Histogram();
    h.observe(LATENCY_BUCKETS[0]! * 1000);
    h.observe(0);
    h.observe(LATENCY_BUCKETS[5]! * 1000 + 1e-9);
    h.observe(60_000);
    const s = h.snapshot();
    expect(s.counts[0]).toBe(2);
    expect(s.counts[6]).toBe(1);
    expect(s.counts[LATENCY_BUCKETS.length]).toBe(1);
    expect(s.count).toBe(4);
    expect(s.sum).toBeCloseTo(60 + LATENCY_BUCKETS[0]! + LATENCY_BUCKETS[5]!, 9);
  });
});

describe('sb.metrics()', () => {
  it('renders a fresh switchboard, and refuses unknown options', async () => {
    const [port] = await freePorts(1);
    const sb = await Switchboard.start({
      nodes: [{ host: '127.0.0.1', port: port! }],
      id: 0,
      insecure: true,
    });
    try {
      const families = parseExposition(sb.metrics());
      expect(
        valueOf(families, 'switchboard_info', { node: '0', incarnation: sb.incarnation }),
      ).toBe(1);
      expect(families.has('rpc_client_call_duration_seconds')).toBe(false);
      expect(sb.stats().metrics).toEqual(NO_METRICS);
      expect(() => sb.metrics({ formt: 'openmetrics' } as never)).toThrow(OptionError);
    } finally {
      await sb.close();
    }
  });

  it('keeps counting what closed endpoints sent and received (counters never go back)', async () => {
    const [port] = await freePorts(1);
    const sb = await Switchboard.start({
      nodes: [{ host: '127.0.0.1', port: port! }],
      id: 0,
      insecure: true,
    });
    const count = (op: string, dest: string): number | undefined => {
      const m = sb.stats().metrics;
      return [...m.sent, ...m.consumed].find((c) => c.operation === op && c.destination === dest)
        ?.count;
    };
    try {
      const rx = sb.receiver<number>('inbox');
      for (let round = 1; round <= 2; round++) {
        const tx = sb.sender<number>('inbox', { node: 0 });
        for (let i = 0; i < 3; i++) await tx.send(i);
        for (let i = 0; i < 3; i++) await rx.next();
        tx.close();
        expect(count('send', 'inbox')).toBe(3 * round);
        expect(count('receive', 'inbox')).toBe(3 * round);
      }
      rx.close();
      const [s, r] = sb.channel<number>();
      await s.send(1);
      await r.next();
      s.close();
      expect(count('receive', 'inbox')).toBe(6);
      expect(count('send', '(anonymous)')).toBe(1);
      expect(count('receive', '(anonymous)')).toBe(1);
      // A receiver whose senders all closed ends, yet still hands out what it buffered.
      const [s2, r2] = sb.channel<number>();
      await s2.send(1);
      await s2.send(2);
      s2.close();
      await new Promise((resolve) => setImmediate(resolve));
      expect(r2.closed).toBe(true);
      expect(count('receive', '(anonymous)')).toBe(1);
      expect((await r2.next()).value).toBe(1);
      expect((await r2.next()).value).toBe(2);
      expect((await r2.next()).done).toBe(true);
      expect(count('receive', '(anonymous)')).toBe(3);
      expect(count('send', '(anonymous)')).toBe(3);
    } finally {
      await sb.close();
    }
  });
});
