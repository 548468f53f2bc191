/**
 * Renders a switchboard's `stats()` in the Prometheus text exposition
 * format (version 0.0.4), or in OpenMetrics 1.0 text, for a scrape
 * endpoint or a log line (docs/metrics.md lists every metric, its labels
 * and its buckets). Names follow OpenTelemetry's semantic conventions for
 * RPC and messaging in Prometheus spelling (dots become underscores, the
 * unit and `_total` are suffixed); the switchboard's own counters are
 * under `switchboard_`.
 *
 * Pure: it reads the snapshot it is given and nothing else, so the same
 * snapshot always renders the same text.
 */
import type { RpcStats } from './channel/patterns/rpc/types.js';
import type { ReceiverStats } from './channel/receiver.js';
import type { PeerInfo } from './switchboard/events.js';
import type {
  HistogramSnapshot,
  MessagingLatency,
  MetricsStats,
  RpcLatency,
} from './switchboard/metrics.js';

/** What the renderer reads: a `stats()` snapshot (`SwitchboardStats`). */
export interface RenderableStats {
  readonly node: number;
  readonly incarnation: string;
  readonly peers: readonly PeerInfo[];
  readonly receivers: readonly ReceiverStats[];
  readonly drops: Readonly<Record<string, number>>;
  readonly rpc: RpcStats;
  readonly metrics: MetricsStats;
}

/** Options of {@link renderPrometheus}. */
export interface RenderOptions {
  /**
   * `prometheus` (default): the text format 0.0.4
   * (`text/plain; version=0.0.4`). `openmetrics`: OpenMetrics 1.0 text
   * (`application/openmetrics-text; version=1.0.0`): counter families are
   * named without `_total`, and the text ends with `# EOF`.
   */
  readonly format?: 'prometheus' | 'openmetrics';
}

/** The HTTP content type of each format. */
export const METRICS_CONTENT_TYPE = Object.freeze({
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
});

/** The value of `rpc_system_name` and `messaging_system`. */
export const METRICS_SYSTEM = 'switchboard';

type Labels = ReadonlyArray<readonly [string, string]>;
type Kind = 'counter' | 'gauge' | 'histogram';

/** Collects the families in order; each family's samples follow its HELP and TYPE lines. */
class Exposition {
  private readonly lines: string[] = [];

  constructor(private readonly openMetrics: boolean) {}

  family(name: string, kind: Kind, help: string, write: () => void): void {
    const start = this.lines.length;
    write();
    if (this.lines.length === start) return; // no samples: no family
    const family = this.openMetrics && kind === 'counter' ? name.replace(/_total$/, '') : name;
    this.lines.splice(start, 0, `# HELP ${family} ${escapeHelp(help)}`, `# TYPE ${family} ${kind}`);
  }

  sample(name: string, labels: Labels, value: number): void {
    this.lines.push(`${name}${renderLabels(labels)} ${formatValue(value)}`);
  }

  histogram(name: string, labels: Labels, h: HistogramSnapshot): void {
    let cumulative = 0;
    for (let i = 0; i < h.buckets.length; i++) {
      cumulative += h.counts[i] ?? 0;
      this.sample(`${name}_bucket`, [...labels, ['le', formatValue(h.buckets[i]!)]], cumulative);
    }
    this.sample(`${name}_bucket`, [...labels, ['le', '+Inf']], h.count);
    this.sample(`${name}_sum`, labels, h.sum);
    this.sample(`${name}_count`, labels, h.count);
  }

  text(): string {
    if (this.openMetrics) this.lines.push('# EOF');
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }
}

/**
 * The text of every counter and histogram in `stats` (a `stats()`
 * snapshot), in the Prometheus text format or OpenMetrics.
 */
export function renderPrometheus(stats: RenderableStats, options: RenderOptions = {}): string {
  const out = new Exposition(options.format === 'openmetrics');
  const m = stats.metrics;

  out.family(
    'rpc_client_call_duration_seconds',
    'histogram',
    'Duration of RPC calls made by this node, from the call until it settled.',
    () => {
      for (const r of m.rpcClient)
        out.histogram('rpc_client_call_duration_seconds', rpcLabels(r), r.duration);
    },
  );
  out.family(
    'rpc_server_call_duration_seconds',
    'histogram',
    'Duration of RPC handlers run by this node, from taking the request until the handler (or its reply stream) ended.',
    () => {
      for (const r of m.rpcServer)
        out.histogram('rpc_server_call_duration_seconds', rpcLabels(r), r.duration);
    },
  );
  const endpoint = (name: string, kind: Kind, help: string, value: (i: number) => number): void =>
    out.family(name, kind, help, () => {
      m.endpoints.forEach((e, i) =>
        out.sample(
          name,
          [
            ['rpc_service', e.service],
            ['rpc_method', e.method],
          ],
          value(i),
        ),
      );
    });
  endpoint(
    'switchboard_endpoint_num_requests_total',
    'counter',
    'Requests handled per served method (NATS num_requests).',
    (i) => m.endpoints[i]!.num_requests,
  );
  endpoint(
    'switchboard_endpoint_num_errors_total',
    'counter',
    'Requests whose handler failed, per served method (NATS num_errors).',
    (i) => m.endpoints[i]!.num_errors,
  );
  endpoint(
    'switchboard_endpoint_processing_time_seconds_total',
    'counter',
    'Total handler time per served method (NATS processing_time).',
    (i) => m.endpoints[i]!.processing_time / 1e9,
  );
  endpoint(
    'switchboard_endpoint_average_processing_time_seconds',
    'gauge',
    'Average handler time per served method (NATS average_processing_time).',
    (i) => m.endpoints[i]!.average_processing_time / 1e9,
  );

  out.family(
    'messaging_client_sent_messages_total',
    'counter',
    'Messages sent: send (channels), publish (topics), push (queues).',
    () => {
      for (const c of m.sent)
        out.sample(
          'messaging_client_sent_messages_total',
          messagingLabels(c.destination, c.operation),
          c.count,
        );
    },
  );
  out.family(
    'messaging_client_consumed_messages_total',
    'counter',
    'Messages consumed: receive (channels, subscriptions), process (tasks run by a worker).',
    () => {
      for (const c of m.consumed)
        out.sample(
          'messaging_client_consumed_messages_total',
          messagingLabels(c.destination, c.operation),
          c.count,
        );
    },
  );
  out.family(
    'messaging_process_duration_seconds',
    'histogram',
    'Duration of task handlers run by this node, per queue.',
    () => {
      for (const l of m.process)
        out.histogram('messaging_process_duration_seconds', latencyLabels(l), l.duration);
    },
  );
  out.family(
    'messaging_client_operation_duration_seconds',
    'histogram',
    'Duration of pushes made by this node, from push() until the task was done or failed for good.',
    () => {
      for (const l of m.operation)
        out.histogram('messaging_client_operation_duration_seconds', latencyLabels(l), l.duration);
    },
  );

  renderCounters(out, stats);
  return out.text();
}

/** The switchboard's own counters and gauges (`stats()` outside `metrics`). */
function renderCounters(out: Exposition, stats: RenderableStats): void {
  out.family('switchboard_info', 'gauge', 'This node: its index and incarnation.', () =>
    out.sample(
      'switchboard_info',
      [
        ['node', String(stats.node)],
        ['incarnation', stats.incarnation],
      ],
      1,
    ),
  );
  const peers = stats.peers;
  const peer = (name: string, kind: Kind, help: string, value: (i: number) => number | undefined) =>
    out.family(name, kind, help, () => {
      peers.forEach((p, i) => {
        const v = value(i);
        if (v !== undefined) out.sample(name, [['peer', String(p.node)]], v);
      });
    });
  out.family('switchboard_peer_state', 'gauge', 'Each peer: 1 for its current state.', () => {
    for (const p of peers)
      out.sample(
        'switchboard_peer_state',
        [
          ['peer', String(p.node)],
          ['state', p.state],
        ],
        1,
      );
  });
  peer(
    'switchboard_peer_received_bytes_total',
    'counter',
    'Bytes received from each peer.',
    (i) => peers[i]!.bytesIn,
  );
  peer(
    'switchboard_peer_sent_bytes_total',
    'counter',
    'Bytes sent to each peer.',
    (i) => peers[i]!.bytesOut,
  );
  peer(
    'switchboard_peer_received_frames_total',
    'counter',
    'Frames received from each peer.',
    (i) => peers[i]!.framesIn,
  );
  peer(
    'switchboard_peer_sent_frames_total',
    'counter',
    'Frames sent to each peer.',
    (i) => peers[i]!.framesOut,
  );
  peer(
    'switchboard_peer_buffered_bytes',
    'gauge',
    'Bytes queued or sent to each peer and not yet acknowledged.',
    (i) => peers[i]!.bufferedBytes,
  );
  peer('switchboard_peer_rtt_seconds', 'gauge', 'Last heartbeat round trip to each peer.', (i) =>
    peers[i]!.rttMs === undefined ? undefined : peers[i]!.rttMs / 1000,
  );

  // Receivers of one name (MPMC) are summed: one series per channel.
  const byName = new Map<string, number[]>();
  for (const r of stats.receivers) {
    const v = [r.queued, r.queuedBytes, r.received, r.delivered, r.dropped, r.invalid, r.senders];
    const sum = byName.get(r.name);
    if (sum === undefined) byName.set(r.name, v);
    else for (let i = 0; i < v.length; i++) sum[i]! += v[i]!;
  }
  const receiver = (name: string, kind: Kind, help: string, index: number): void =>
    out.family(name, kind, help, () => {
      for (const [channel, v] of byName) out.sample(name, [['channel', channel]], v[index]!);
    });
  receiver(
    'switchboard_receiver_queued_messages',
    'gauge',
    'Messages buffered in each open receiver.',
    0,
  );
  receiver(
    'switchboard_receiver_queued_bytes',
    'gauge',
    'Bytes buffered in each open receiver.',
    1,
  );
  receiver(
    'switchboard_receiver_received_messages_total',
    'counter',
    'Messages that arrived at each open receiver.',
    2,
  );
  receiver(
    'switchboard_receiver_delivered_messages_total',
    'counter',
    'Messages each open receiver handed to the application.',
    3,
  );
  receiver(
    'switchboard_receiver_dropped_messages_total',
    'counter',
    'Messages each open receiver dropped.',
    4,
  );
  receiver(
    'switchboard_receiver_invalid_messages_total',
    'counter',
    'Messages each open receiver refused (undecodable, invalid).',
    5,
  );
  receiver('switchboard_receiver_senders', 'gauge', 'Senders connected to each open receiver.', 6);

  out.family(
    'switchboard_dropped_messages_total',
    'counter',
    'Messages dropped per channel (lossy receivers, post() failures, pub-sub gaps, ended sessions).',
    () => {
      for (const [channel, n] of Object.entries(stats.drops))
        out.sample('switchboard_dropped_messages_total', [['channel', channel]], n);
    },
  );

  const rpc = stats.rpc;
  const one = (name: string, kind: Kind, help: string, value: number): void =>
    out.family(name, kind, help, () => out.sample(name, [], value));
  one(
    'switchboard_rpc_pending_calls',
    'gauge',
    'Calls made by this node not settled yet.',
    rpc.pendingCalls,
  );
  one(
    'switchboard_rpc_waiting_for_server',
    'gauge',
    'Pending calls waiting for a server.',
    rpc.waitingForServer,
  );
  one(
    'switchboard_rpc_active_calls',
    'gauge',
    'Calls served here that can still be cancelled.',
    rpc.activeCalls,
  );
  one('switchboard_rpc_running_handlers', 'gauge', 'Handlers running now.', rpc.runningHandlers);
  one('switchboard_rpc_calls_total', 'counter', 'Calls started by this node.', rpc.calls);
  one(
    'switchboard_rpc_failures_total',
    'counter',
    'Calls made by this node that failed.',
    rpc.failures,
  );
  one(
    'switchboard_rpc_late_replies_total',
    'counter',
    'Replies that came after their call had settled.',
    rpc.lateReplies,
  );
  out.family('switchboard_rpc_served', 'gauge', 'Methods this node serves: 1 each.', () => {
    for (const method of rpc.served)
      out.sample('switchboard_rpc_served', [['rpc_method', method]], 1);
  });
}

function rpcLabels(r: RpcLatency): Labels {
  const labels: Array<readonly [string, string]> = [
    ['rpc_system_name', METRICS_SYSTEM],
    ['rpc_service', r.service],
    ['rpc_method', r.method],
  ];
  if (r.errorType !== undefined) labels.push(['error_type', r.errorType]);
  return labels;
}

function messagingLabels(destination: string, operation: string): Array<readonly [string, string]> {
  return [
    ['messaging_system', METRICS_SYSTEM],
    ['messaging_destination_name', destination],
    ['messaging_operation_name', operation],
  ];
}

function latencyLabels(l: MessagingLatency): Labels {
  const labels = messagingLabels(l.destination, l.operation);
  if (l.errorType !== undefined) labels.push(['error_type', l.errorType]);
  return labels;
}

function renderLabels(labels: Labels): string {
  if (labels.length === 0) return '';
  return `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** Label values: backslash, double quote and line feed are escaped (the text format's rule). */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

/** HELP text: backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (n === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(n);
}
