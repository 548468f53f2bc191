/**
 * Cluster benchmark: what a cluster of real processes costs to bring up and
 * to keep alive, measured with child processes on this machine.
 *
 * - Rendezvous time for 2, 4, 8 and 16 nodes (2 and 4 with `--quick`): from
 *   the moment every child is told to start until every child reports all
 *   its peers linked and authenticated. Baseline `raw`: the same full mesh
 *   of plain node:net connections (lower id dials, no handshake), started
 *   the same way. Both retry a refused dial after 10 ms (the switchboard via
 *   `reconnectMinMs: 10`), so the numbers show the protocol, not the backoff
 *   when a peer binds a moment late.
 * - Resident memory per node once linked, against the `idle` child (same
 *   runtime, library loaded, nothing started).
 * - Heartbeat round trip (`peers()[i].rttMs`, `heartbeatMs: 100`) on an
 *   idle link and on a link saturated by 1 MiB messages sent as fast as
 *   `writable()` allows: control frames jump the data queue, so it must stay
 *   in milliseconds (docs/benchmarks.md, "Cluster").
 *
 * The children are this very file, forked with `--import tsx`: it runs
 * {@link child} when SWITCHBOARD_BENCH_CLUSTER_CHILD is set.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Cluster } from '../lib/switchboard/cluster.js';
import type { ClusterHandler } from '../lib/switchboard/events.js';
import type { SwitchboardOptions } from '../lib/switchboard/options.js';
import { freePorts } from '../spec/support/ports.js';
import type { BenchContext, BenchModule, BenchRow, Measurement } from './harness.js';
import { compareRounds, summarize, toRow } from './harness.js';

const CHILD_ENV = 'SWITCHBOARD_BENCH_CLUSTER_CHILD';
const SECRET = 'switchboard-bench-cluster-secret';
const MiB = 1024 * 1024;
/** How long one child operation may take before the benchmark gives up. */
const STEP_TIMEOUT_MS = 30_000;
const HEARTBEAT_MS = 100;

type Variant = 'raw' | 'switchboard';

/** Parent to child. */
type Command =
  | {
      readonly op: 'start';
      readonly variant: Variant;
      readonly nodes: string[];
      readonly id: number;
    }
  | { readonly op: 'stop' }
  | {
      readonly op: 'rtt';
      readonly nodes: string[];
      readonly id: number;
      readonly saturate: boolean;
      readonly durationMs: number;
    }
  | { readonly op: 'exit' };

/** Child to parent. */
type Report =
  | { readonly op: 'ready'; readonly rss: number }
  | { readonly op: 'up'; readonly rss: number }
  | { readonly op: 'stopped' }
  | { readonly op: 'rtt'; readonly samples: number[]; readonly bytes: number }
  | { readonly op: 'failed'; readonly message: string };

// ---- child side -------------------------------------------------------------

/** A cluster node that counts what arrives and keeps a sender busy on request. */
class BenchNode extends Cluster implements ClusterHandler {
  received = 0;
  private pumping: { peer: number; message: Buffer } | undefined;

  static async start(options: SwitchboardOptions): Promise<BenchNode> {
    const node = new BenchNode(options);
    node.setHandler(node);
    await node.startCluster();
    return node;
  }

  /** Sends `message` to `peer` whenever the link has room, until {@link stopPumping}. */
  pump(peer: number, message: Buffer): void {
    this.pumping = { peer, message };
    this.onWritable(peer);
  }

  stopPumping(): void {
    this.pumping = undefined;
  }

  onMessage(_peer: number, _stream: number, _flags: number, message: Buffer): void {
    this.received += message.length;
  }
  onControl(): void {}
  onWritable(peer: number): void {
    const p = this.pumping;
    if (p === undefined || p.peer !== peer) return;
    while (this.writable(peer)) this.sendMessage(peer, 1, 0, p.message);
  }
  onSessionStart(): void {}
  onSessionEnd(): void {}
}

/** Resident set size now. No forced GC: it would take milliseconds inside the timed window. */
function rss(): number {
  return process.memoryUsage().rss;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** The `raw` baseline: a full mesh of plain TCP connections, lower id dialing. */
async function rawMesh(nodes: readonly string[], id: number): Promise<() => Promise<void>> {
  const sockets = new Set<net.Socket>();
  let linked = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => (done = resolve));
  const count = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('error', () => {});
    if (++linked === nodes.length - 1) done();
  };
  const server = net.createServer({ noDelay: true }, count);
  await new Promise<void>((resolve) => server.listen(portOf(nodes[id]!), '127.0.0.1', resolve));
  const dial = (peer: number): void => {
    const socket = net.connect({ host: '127.0.0.1', port: portOf(nodes[peer]!), noDelay: true });
    socket.once('connect', () => count(socket));
    socket.once('error', () => {
      socket.destroy();
      setTimeout(() => dial(peer), 10);
    });
  };
  for (let peer = id + 1; peer < nodes.length; peer++) dial(peer);
  if (nodes.length > 1) await all;
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
}

async function startSwitchboard(
  nodes: string[],
  id: number,
  extra: Partial<SwitchboardOptions> = {},
): Promise<BenchNode> {
  const node = await BenchNode.start({
    nodes,
    id,
    secret: SECRET,
    reconnectMinMs: 10,
    reconnectMaxMs: 200,
    ...extra,
  });
  await node.rendezvous({ timeoutMs: STEP_TIMEOUT_MS });
  return node;
}

/** Samples the heartbeat RTT to `peer` once per heartbeat, keeping each new value. */
async function sampleRtt(node: BenchNode, peer: number, durationMs: number): Promise<number[]> {
  const samples: number[] = [];
  let last: number | undefined;
  const end = performance.now() + durationMs;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const rtt = node.peers().find((p) => p.node === peer)?.rttMs;
      if (rtt !== undefined && rtt !== last) samples.push(rtt);
      last = rtt;
      if (performance.now() >= end) {
        clearInterval(timer);
        resolve();
      }
    }, HEARTBEAT_MS / 2);
  });
  return samples;
}

/** The child process: obeys one command at a time. */
function child(): void {
  const send = (r: Report): void => {
    process.send?.(r);
  };
  let stop: (() => Promise<void>) | undefined;
  let current: BenchNode | undefined;
  const run = async (c: Command): Promise<void> => {
    switch (c.op) {
      case 'start':
        if (c.variant === 'raw') {
          stop = await rawMesh(c.nodes, c.id);
        } else {
          const node = await startSwitchboard(c.nodes, c.id);
          stop = () => node.close();
        }
        send({ op: 'up', rss: rss() });
        return;
      case 'stop':
        await stop?.();
        stop = undefined;
        send({ op: 'stopped' });
        return;
      case 'rtt': {
        // Node 0 measures and sends; node 1 receives and reports what arrived.
        const node = await startSwitchboard(c.nodes, c.id, {
          heartbeatMs: HEARTBEAT_MS,
          deadPeerMs: 10 * HEARTBEAT_MS,
        });
        current = node;
        if (c.id === 0) {
          // Let a few heartbeats go by so the first sample is a steady one.
          await sampleRtt(node, 1, 3 * HEARTBEAT_MS);
          if (c.saturate) node.pump(1, Buffer.alloc(MiB, 0x5a));
          const samples = await sampleRtt(node, 1, c.durationMs);
          node.stopPumping();
          send({ op: 'rtt', samples, bytes: 0 });
        } else {
          send({ op: 'up', rss: rss() });
        }
        stop = async () => {
          const bytes = node.received;
          await node.close();
          current = undefined;
          if (c.id === 1) send({ op: 'rtt', samples: [], bytes });
        };
        return;
      }
      case 'exit':
        await stop?.();
        await current?.destroy();
        process.disconnect();
        return;
    }
  };
  process.on('message', (c: Command) => {
    run(c).catch((err: unknown) =>
      send({
        op: 'failed',
        message: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }),
    );
  });
  send({ op: 'ready', rss: rss() });
}

// ---- parent side ------------------------------------------------------------

/** One forked child and the reports it has not yet been asked for. */
class Child {
  private readonly process: ChildProcess;
  private readonly queue: Report[] = [];
  private readonly waiters: Array<(r: Report) => void> = [];
  private exited = false;

  constructor() {
    const script = fileURLToPath(import.meta.url);
    this.process = fork(script, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, [CHILD_ENV]: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.process.on('message', (r: Report) => {
      const w = this.waiters.shift();
      if (w === undefined) this.queue.push(r);
      else w(r);
    });
    this.process.once('exit', () => (this.exited = true));
  }

  /** The next report, which must be `op`. */
  async next<T extends Report['op']>(op: T): Promise<Extract<Report, { op: T }>> {
    const queued = this.queue.shift();
    let timer: NodeJS.Timeout | undefined;
    const report =
      queued ??
      (await Promise.race([
        new Promise<Report>((resolve) => this.waiters.push(resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`bench child: no '${op}' within ${STEP_TIMEOUT_MS} ms`)),
            STEP_TIMEOUT_MS,
          );
        }),
      ]).finally(() => clearTimeout(timer)));
    if (report.op === 'failed') throw new Error(`bench child failed: ${report.message}`);
    if (report.op !== op) throw new Error(`bench child: expected '${op}', got '${report.op}'`);
    return report as Extract<Report, { op: T }>;
  }

  send(c: Command): void {
    this.process.send(c);
  }

  /** Asks the child to exit; kills it if it does not within a few seconds. */
  async exit(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.send({ op: 'exit' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

async function spawnChildren(n: number): Promise<{ children: Child[]; idleRss: number[] }> {
  const children = Array.from({ length: n }, () => new Child());
  const ready = await Promise.all(children.map((c) => c.next('ready')));
  return { children, idleRss: ready.map((r) => r.rss) };
}

async function localNodes(n: number): Promise<string[]> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
}

/** Starts `variant` on every child at once; resolves to the rendezvous time (ms) and RSS per node. */
async function rendezvousRound(
  children: readonly Child[],
  variant: Variant,
): Promise<{ ms: number; rss: number[] }> {
  const nodes = await localNodes(children.length);
  const t0 = performance.now();
  children.forEach((c, id) => c.send({ op: 'start', variant, nodes, id }));
  const up = await Promise.all(children.map((c) => c.next('up')));
  const ms = performance.now() - t0;
  children.forEach((c) => c.send({ op: 'stop' }));
  await Promise.all(children.map((c) => c.next('stopped')));
  return { ms, rss: up.map((u) => u.rss) };
}

async function clusterSize(ctx: BenchContext, n: number): Promise<BenchRow[]> {
  const { children, idleRss } = await spawnChildren(n);
  try {
    let lastRss: number[] = [];
    const results = await compareRounds(
      ctx.rounds,
      {
        raw: async () => (await rendezvousRound(children, 'raw')).ms,
        switchboard: async () => {
          const r = await rendezvousRound(children, 'switchboard');
          lastRss = r.rss;
          return r.ms;
        },
      },
      { rounds: 1 },
    );
    const workload = `rendezvous, ${n} nodes`;
    const memory = `RSS per node, ${n} nodes`;
    ctx.log(
      `${n} nodes: rendezvous ${results.switchboard!.median.toFixed(1)} ms (raw mesh ${results.raw!.median.toFixed(1)} ms), ` +
        `RSS ${(summarize(lastRss).median / MiB).toFixed(1)} MiB per node (idle ${(summarize(idleRss).median / MiB).toFixed(1)} MiB)`,
    );
    return [
      toRow('cluster', workload, 'raw', 'ms', results.raw!, 'lower', 'plain TCP full mesh'),
      toRow('cluster', workload, 'switchboard', 'ms', results.switchboard!, 'lower'),
      toRow(
        'cluster',
        memory,
        'idle',
        'B',
        summarize(idleRss),
        'lower',
        'child with the library loaded, nothing started; median over nodes',
      ),
      toRow(
        'cluster',
        memory,
        'switchboard',
        'B',
        summarize(lastRss),
        'lower',
        'after rendezvous; median over nodes',
      ),
    ];
  } finally {
    await Promise.all(children.map((c) => c.exit()));
  }
}

/** Heartbeat RTT on a two-node link, idle or saturated; returns samples (ms) and bytes delivered. */
async function rttRun(
  saturate: boolean,
  durationMs: number,
): Promise<{ samples: number[]; bytes: number }> {
  const { children } = await spawnChildren(2);
  try {
    const nodes = await localNodes(2);
    const [sender, receiver] = children as [Child, Child];
    receiver.send({ op: 'rtt', nodes, id: 1, saturate, durationMs });
    sender.send({ op: 'rtt', nodes, id: 0, saturate, durationMs });
    await receiver.next('up');
    const { samples } = await sender.next('rtt');
    sender.send({ op: 'stop' });
    receiver.send({ op: 'stop' });
    const { bytes } = await receiver.next('rtt');
    return { samples, bytes };
  } finally {
    await Promise.all(children.map((c) => c.exit()));
  }
}

function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function rttRow(workload: string, variant: string, samples: number[], extra = ''): BenchRow {
  if (samples.length === 0) throw new Error(`no heartbeat RTT samples for ${variant}`);
  const m: Measurement = summarize(samples);
  const note = `${samples.length} heartbeats, p90 ${percentile(samples, 90).toFixed(2)} ms, max ${m.max.toFixed(2)} ms${extra}`;
  return toRow('cluster', workload, variant, 'ms', m, 'lower', note);
}

export const cluster: BenchModule = {
  name: 'cluster',
  description:
    'rendezvous time and RSS per node for 2-16 child processes; heartbeat RTT idle and under 1 MiB messages',
  baselines: ['raw', 'idle'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    for (const n of ctx.quick ? [2, 4] : [2, 4, 8, 16]) rows.push(...(await clusterSize(ctx, n)));

    const durationMs = ctx.quick ? 1500 : 5000;
    const workload = `heartbeat RTT, heartbeatMs ${HEARTBEAT_MS}`;
    const idle = await rttRun(false, durationMs);
    const busy = await rttRun(true, durationMs);
    const seconds = durationMs / 1000;
    const rate = busy.bytes / seconds;
    ctx.log(
      `heartbeat RTT: idle median ${summarize(idle.samples).median.toFixed(2)} ms, ` +
        `saturated median ${summarize(busy.samples).median.toFixed(2)} ms (max ${summarize(busy.samples).max.toFixed(2)} ms) ` +
        `while moving ${(rate / MiB).toFixed(0)} MiB/s`,
    );
    rows.push(
      rttRow(workload, 'idle', idle.samples),
      rttRow(
        workload,
        'saturated',
        busy.samples,
        `; link carrying ${(rate / MiB).toFixed(0)} MiB/s of 1 MiB messages`,
      ),
    );
    rows.push(
      toRow(
        'cluster',
        '1 MiB messages, saturating one link',
        'switchboard',
        'B/s',
        summarize([rate]),
        'higher',
        `one ${seconds} s run, measured at the receiver`,
      ),
    );
    return rows;
  },
};

if (process.env[CHILD_ENV] === '1') child();
