/**
 * Pub-sub fan-out and push-pull work distribution across child processes,
 * with the baselines in the same run (targets: docs/benchmarks.md):
 *
 * - Fan-out: one publisher (this process) sends 256 B messages to three
 *   subscriber processes; each subscriber must get every message. Reported
 *   per subscriber (messages each received per second) with the loss.
 *   - `raw`: node:net, a u32 length prefix per message, messages batched
 *     into 64 KiB blocks, each block written to the three sockets,
 *     honouring backpressure; subscribers parse every frame.
 *   - `switchboard`: `publish('bench.data', bytes)`, awaiting `drained()`
 *     whenever `publish()` returns false; subscribers iterate a
 *     `subscribe('bench.>')` subscription with `for await`.
 *   - `zeromq`: zeromq.js 6 PUB/SUB, `await pub.send([topic, bytes])`
 *     (default high-water mark: PUB drops what a slow subscriber cannot take).
 *   - `axon`: axon pub/sub, `send(bytes)` in chunks of 1000 per turn.
 *   Each round ends with an end marker (repeated until every subscriber saw
 *   it, since lossy variants may drop it); the time runs until the last
 *   subscriber reports.
 * - Push-pull: 256 B tasks to three worker processes, each task to one
 *   worker. `switchboard`: `await pusher.push(bytes)` then `settled()`, so
 *   the time includes every worker's acknowledgement; the others
 *   (round-robin raw sockets, zeromq PUSH/PULL, axon push/pull) count
 *   arrivals, polled every 5 ms.
 *
 * Targets: fan-out >= 50 % of raw and >= 5x zeromq, with zero loss.
 *
 * The children are this very file, forked with `--import tsx`: it runs
 * {@link child} when SWITCHBOARD_BENCH_PUBSUB_CHILD is set. Each child is one
 * process holding every variant's subscriber and worker, so all variants
 * run on the same three processes.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import * as axon from 'axon';
import * as zmq from 'zeromq';
import { Switchboard } from '../lib/facade.js';
import type { Pusher } from '../lib/index.js';
import { freePorts } from '../spec/support/ports.js';
import type { BenchContext, BenchModule, BenchRow, Round } from './harness.js';
import { compareRounds, seconds, summarize, toRow } from './harness.js';

const CHILD_ENV = 'SWITCHBOARD_BENCH_PUBSUB_CHILD';
const SECRET = 'switchboard-bench-pubsub-secret';
const SUBSCRIBERS = 3;
const SIZE = 256;
const BATCH = 64 * 1024;
const STEP_TIMEOUT_MS = 60_000;
/** A data message is SIZE bytes; markers are shorter: their first byte says which. */
const PROBE = 1;
const END = 2;

type Variant = 'raw' | 'switchboard' | 'zeromq' | 'axon';
const VARIANTS: readonly Variant[] = ['raw', 'switchboard', 'zeromq', 'axon'];
type Kind = 'fanout' | 'work';

interface Endpoints {
  readonly nodes: string[];
  readonly rawFanout: number;
  readonly rawWork: number;
  readonly zmqPub: string;
  readonly zmqPush: string;
  readonly axonPub: number;
  readonly axonPush: number;
}

/** Parent to child. */
type Command =
  | { readonly op: 'start'; readonly id: number; readonly endpoints: Endpoints }
  | { readonly op: 'arm'; readonly variant: Variant; readonly kind: Kind }
  | { readonly op: 'count' }
  | { readonly op: 'exit' };

/** Child to parent. */
type Report =
  | { readonly op: 'ready' }
  | { readonly op: 'started' }
  | { readonly op: 'armed' }
  | { readonly op: 'probed'; readonly variant: Variant; readonly kind: Kind }
  | {
      readonly op: 'end';
      readonly variant: Variant;
      readonly count: number;
      readonly dropped: number;
      /** CPU time (user + system) since the round was armed, µs. */
      readonly cpuUs: number;
    }
  | { readonly op: 'count'; readonly count: number; readonly cpuUs: number }
  | { readonly op: 'failed'; readonly message: string };

// ---- child side -------------------------------------------------------------------

/** Splits a stream of u32-length-prefixed frames; copies only frames that straddle reads. */
function frames(socket: net.Socket, onFrame: (frame: Buffer) => void): void {
  let rest: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    const buf = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
    rest = undefined;
    let at = 0;
    while (buf.length - at >= 4) {
      const len = buf.readUInt32BE(at);
      if (buf.length - at - 4 < len) break;
      onFrame(buf.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at < buf.length) rest = buf.subarray(at);
  });
}

function child(): void {
  const send = (r: Report): void => {
    process.send?.(r);
  };
  let variant: Variant | undefined;
  let kind: Kind = 'fanout';
  let got = 0;
  let ended = false;
  let cpuMark = process.cpuUsage();
  const cpuUs = (): number => {
    const c = process.cpuUsage(cpuMark);
    return c.user + c.system;
  };
  let dropped = (): number => 0;
  const probed = new Set<string>();
  /** One message of `v` (`k`) arrived. */
  const see = (v: Variant, k: Kind, first: number, length: number): void => {
    if (length === SIZE) {
      if (v === variant && k === kind) got++;
      return;
    }
    if (first === PROBE) {
      if (!probed.has(`${v}/${k}`)) {
        probed.add(`${v}/${k}`);
        send({ op: 'probed', variant: v, kind: k });
      }
    } else if (first === END && v === variant && k === kind && !ended) {
      ended = true;
      send({ op: 'end', variant: v, count: got, dropped: dropped(), cpuUs: cpuUs() });
    }
  };
  const closers: Array<() => Promise<void> | void> = [];

  const start = async (id: number, e: Endpoints): Promise<void> => {
    const sb = await Switchboard.start({ nodes: e.nodes, id, secret: SECRET });
    closers.push(() => sb.close());
    await sb.rendezvous({ timeoutMs: STEP_TIMEOUT_MS });
    const sub = sb.subscribe<Buffer>('bench.>');
    dropped = () => sub.stats().dropped;
    void (async () => {
      for await (const m of sub) see('switchboard', 'fanout', m.value[0]!, m.value.length);
    })();
    sb.worker<Buffer>('bench', (t) => see('switchboard', 'work', t[0]!, t.length), {
      concurrency: 16,
      prefetch: 512,
    });

    for (const [port, k] of [
      [e.rawFanout, 'fanout'],
      [e.rawWork, 'work'],
    ] as const) {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      frames(socket, (f) => see('raw', k, f[0]!, f.length));
      closers.push(() => void socket.destroy());
    }

    const zsub = new zmq.Subscriber();
    zsub.connect(e.zmqPub);
    zsub.subscribe('bench');
    const zpull = new zmq.Pull();
    zpull.connect(e.zmqPush);
    closers.push(() => {
      zsub.close();
      zpull.close();
    });
    void (async () => {
      for await (const [, body] of zsub) see('zeromq', 'fanout', body![0]!, body!.length);
    })().catch(() => undefined);
    void (async () => {
      for await (const [body] of zpull) see('zeromq', 'work', body![0]!, body!.length);
    })().catch(() => undefined);

    const asub = axon.socket('sub') as axon.SubSocket;
    asub.connect(e.axonPub, '127.0.0.1');
    asub.on('message', (b: Buffer) => see('axon', 'fanout', b[0]!, b.length));
    const apull = axon.socket('pull') as axon.PullSocket;
    apull.connect(e.axonPush, '127.0.0.1');
    apull.on('message', (b: Buffer) => see('axon', 'work', b[0]!, b.length));
    closers.push(() => {
      asub.close();
      apull.close();
    });
  };

  const run = async (c: Command): Promise<void> => {
    switch (c.op) {
      case 'start':
        await start(c.id, c.endpoints);
        send({ op: 'started' });
        return;
      case 'arm':
        variant = c.variant;
        kind = c.kind;
        got = 0;
        ended = false;
        cpuMark = process.cpuUsage();
        send({ op: 'armed' });
        return;
      case 'count':
        send({ op: 'count', count: got, cpuUs: cpuUs() });
        return;
      case 'exit':
        for (const close of closers.reverse()) await close();
        process.disconnect();
        // zeromq and axon keep timers of their own: do not wait for them.
        setTimeout(() => process.exit(0), 200).unref();
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
  send({ op: 'ready' });
}

// ---- parent side ------------------------------------------------------------------

/** One forked child: reports are queued until asked for, by kind. */
class Child {
  private readonly process: ChildProcess;
  private readonly queue: Report[] = [];
  private readonly waiters: Array<{ op: Report['op']; resolve: (r: Report) => void }> = [];
  private failure: Error | undefined;

  constructor() {
    this.process = fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, [CHILD_ENV]: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.process.on('message', (r: Report) => {
      if (r.op === 'failed') {
        this.failure = new Error(`bench child failed: ${r.message}`);
        for (const w of this.waiters.splice(0)) w.resolve(r);
        return;
      }
      const at = this.waiters.findIndex((w) => w.op === r.op);
      if (at >= 0) this.waiters.splice(at, 1)[0]!.resolve(r);
      else this.queue.push(r);
    });
  }

  /** The next report `op` (queued or to come). */
  async next<T extends Report['op']>(op: T): Promise<Extract<Report, { op: T }>> {
    if (this.failure !== undefined) throw this.failure;
    const at = this.queue.findIndex((r) => r.op === op);
    if (at >= 0) return this.queue.splice(at, 1)[0] as Extract<Report, { op: T }>;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      new Promise<Report>((resolve) => this.waiters.push({ op, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`bench child: no '${op}' within ${STEP_TIMEOUT_MS} ms`)),
          STEP_TIMEOUT_MS,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    this.check();
    return r as Extract<Report, { op: T }>;
  }

  /** Throws the child's failure, if it reported one. */
  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** A report `op` if one is queued. */
  poll<T extends Report['op']>(op: T): Extract<Report, { op: T }> | undefined {
    if (this.failure !== undefined) throw this.failure;
    const at = this.queue.findIndex((r) => r.op === op);
    return at >= 0 ? (this.queue.splice(at, 1)[0] as Extract<Report, { op: T }>) : undefined;
  }

  send(c: Command): void {
    this.process.send(c);
  }

  async exit(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.send({ op: 'exit' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Everything the parent holds: the switchboard node 0 and every variant's sending side. */
class Rig {
  readonly payload = Buffer.alloc(SIZE, 0x5a);
  readonly probe = Buffer.from([PROBE]);
  readonly end = Buffer.from([END]);
  private readonly fanoutSockets: net.Socket[] = [];
  private readonly workSockets: net.Socket[] = [];
  private servers: net.Server[] = [];
  /** The pusher a user would make once and push with in a loop. */
  private readonly pusher: Pusher<Buffer>;

  private constructor(
    readonly children: Child[],
    readonly sb: Switchboard,
    readonly zpub: zmq.Publisher,
    readonly zpush: zmq.Push,
    readonly apub: axon.PubSocket,
    readonly apush: axon.PushSocket,
  ) {
    this.pusher = sb.pusher<Buffer>('bench');
  }

  static async start(): Promise<Rig> {
    const children = Array.from({ length: SUBSCRIBERS }, () => new Child());
    await Promise.all(children.map((c) => c.next('ready')));
    const ports = await freePorts(SUBSCRIBERS + 7);
    const nodes = ports.slice(0, SUBSCRIBERS + 1).map((p) => `127.0.0.1:${p}`);
    const [rawFanout, rawWork, zp, zq, axonPub, axonPush] = ports.slice(SUBSCRIBERS + 1) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const endpoints: Endpoints = {
      nodes,
      rawFanout,
      rawWork,
      zmqPub: `tcp://127.0.0.1:${zp}`,
      zmqPush: `tcp://127.0.0.1:${zq}`,
      axonPub,
      axonPush,
    };
    const sb = await Switchboard.start({ nodes, id: 0, secret: SECRET });
    const zpub = new zmq.Publisher();
    await zpub.bind(endpoints.zmqPub);
    const zpush = new zmq.Push();
    await zpush.bind(endpoints.zmqPush);
    const apub = axon.socket('pub') as axon.PubSocket;
    const apush = axon.socket('push') as axon.PushSocket;
    await new Promise<void>((resolve) => apub.bind(axonPub, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => apush.bind(axonPush, '127.0.0.1', resolve));
    const rig = new Rig(children, sb, zpub, zpush, apub, apush);
    const accepted = [
      rig.listen(rawFanout, rig.fanoutSockets),
      rig.listen(rawWork, rig.workSockets),
    ];
    children.forEach((c, i) => c.send({ op: 'start', id: i + 1, endpoints }));
    await sb.rendezvous({ timeoutMs: STEP_TIMEOUT_MS });
    await Promise.all(children.map((c) => c.next('started')));
    await Promise.all(accepted);
    for (const kind of ['fanout', 'work'] as const)
      for (const v of VARIANTS) await rig.probeUntilSeen(v, kind);
    return rig;
  }

  private listen(port: number, into: net.Socket[]): Promise<void> {
    return new Promise((resolve) => {
      const server = net.createServer({ noDelay: true }, (s) => {
        s.on('error', () => undefined);
        into.push(s);
        if (into.length === SUBSCRIBERS) resolve();
      });
      server.listen(port, '127.0.0.1');
      this.servers.push(server);
    });
  }

  /** Sends probes until every child saw one (slow joiners, round-robin pulls). */
  private async probeUntilSeen(v: Variant, kind: Kind): Promise<void> {
    const seen = new Set<Child>();
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (seen.size < SUBSCRIBERS) {
      if (Date.now() > deadline) throw new Error(`${v} ${kind}: subscribers never saw a probe`);
      if (v === 'switchboard' && kind === 'work') {
        // Least-loaded with ties in turn: a few probes reach every worker.
        for (let i = 0; i < SUBSCRIBERS; i++) await this.pusher.push(this.probe);
      } else {
        await this.sendMarker(v, kind, this.probe);
      }
      await tick(20);
      for (const c of this.children) {
        for (let r = c.poll('probed'); r !== undefined; r = c.poll('probed'))
          if (r.variant === v && r.kind === kind) seen.add(c);
          else throw new Error(`unexpected probe report ${r.variant}/${r.kind}`);
      }
    }
  }

  /** Sends a marker to every subscriber (fan-out), or one per worker, round-robin (work). */
  private async sendMarker(v: Variant, kind: Kind, marker: Buffer): Promise<void> {
    const sockets = kind === 'fanout' ? this.fanoutSockets : this.workSockets;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      switch (v) {
        case 'raw':
          sockets[i]!.write(frame(marker));
          break;
        case 'switchboard':
          // Fan-out only: push-pull probes go through the pusher.
          if (i === 0) this.sb.publish(`bench.${marker[0] === PROBE ? 'probe' : 'end'}`, marker);
          break;
        case 'zeromq':
          if (kind === 'fanout') {
            if (i === 0) await this.zpub.send(['bench', marker]);
          } else await this.zpush.send(marker);
          break;
        case 'axon':
          if (kind === 'fanout') {
            if (i === 0) this.apub.send(marker);
          } else this.apush.send(marker);
          break;
      }
    }
  }

  private async arm(v: Variant, kind: Kind): Promise<void> {
    for (const c of this.children) c.send({ op: 'arm', variant: v, kind });
    await Promise.all(this.children.map((c) => c.next('armed')));
  }

  /** One fan-out round: per-subscriber msg/s (mean), what was lost, CPU µs per message. */
  async fanout(
    v: Variant,
    count: number,
  ): Promise<{ rate: number; loss: number; dropped: number; cpu: number }> {
    await this.arm(v, 'fanout');
    const c0 = process.cpuUsage();
    const t0 = seconds();
    await this.publish(v, count);
    // End markers until every subscriber reported: a lossy variant may drop one, and
    // a subscriber ignores all but the first. The time runs until the last report.
    const ends: Array<Extract<Report, { op: 'end' }>> = [];
    const all = Promise.all(this.children.map(async (c) => ends.push(await c.next('end'))));
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      await this.sendMarker(v, 'fanout', this.end);
      if (await Promise.race([all.then(() => true), tick(20).then(() => false)])) break;
      if (Date.now() > deadline) throw new Error(`${v}: subscribers never saw the end marker`);
    }
    const t1 = seconds();
    const own = process.cpuUsage(c0);
    const received = ends.reduce((n, e) => n + e.count, 0);
    const elapsed = t1 - t0;
    return {
      rate: received / SUBSCRIBERS / elapsed,
      loss: 1 - received / (SUBSCRIBERS * count),
      dropped: ends.reduce((n, e) => n + e.dropped, 0),
      cpu: (own.user + own.system + ends.reduce((n, e) => n + e.cpuUs, 0)) / count,
    };
  }

  private async publish(v: Variant, count: number): Promise<void> {
    const payload = this.payload;
    switch (v) {
      case 'raw': {
        const sockets = this.fanoutSockets;
        const per = Math.floor(BATCH / (4 + SIZE));
        for (let sent = 0; sent < count;) {
          const n = Math.min(per, count - sent);
          const block = Buffer.allocUnsafe(n * (4 + SIZE));
          for (let i = 0; i < n; i++) {
            block.writeUInt32BE(SIZE, i * (4 + SIZE));
            payload.copy(block, i * (4 + SIZE) + 4);
          }
          sent += n;
          const full = sockets.filter((s) => !s.write(block));
          if (full.length > 0)
            await Promise.all(full.map((s) => new Promise((r) => s.once('drain', r))));
        }
        return;
      }
      case 'switchboard': {
        const sb = this.sb;
        for (let i = 0; i < count; i++) if (!sb.publish('bench.data', payload)) await sb.drained();
        return;
      }
      case 'zeromq':
        for (let i = 0; i < count; i++) await this.zpub.send(['bench', payload]);
        return;
      case 'axon':
        for (let i = 0; i < count; i++) {
          this.apub.send(payload);
          if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
        }
        return;
    }
  }

  /** One push-pull round: tasks/s through the three workers, and CPU µs per task. */
  async work(v: Variant, count: number): Promise<{ rate: number; cpu: number }> {
    await this.arm(v, 'work');
    const payload = this.payload;
    const c0 = process.cpuUsage();
    const t0 = seconds();
    let t1: number | undefined;
    switch (v) {
      case 'raw': {
        // Round-robin, one 64 KiB block per worker at a time.
        const sockets = this.workSockets;
        const per = Math.floor(BATCH / (4 + SIZE));
        let k = 0;
        for (let sent = 0; sent < count; k++) {
          const n = Math.min(per, count - sent);
          const block = Buffer.allocUnsafe(n * (4 + SIZE));
          for (let i = 0; i < n; i++) {
            block.writeUInt32BE(SIZE, i * (4 + SIZE));
            payload.copy(block, i * (4 + SIZE) + 4);
          }
          sent += n;
          const s = sockets[k % sockets.length]!;
          if (!s.write(block)) await new Promise((r) => s.once('drain', r));
        }
        break;
      }
      case 'switchboard': {
        const pusher = this.pusher;
        for (let i = 0; i < count; i++) await pusher.push(payload);
        await pusher.settled();
        t1 = seconds();
        break;
      }
      case 'zeromq':
        for (let i = 0; i < count; i++) await this.zpush.send(payload);
        break;
      case 'axon':
        for (let i = 0; i < count; i++) {
          this.apush.send(payload);
          if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
        }
        break;
    }
    // Poll the workers' counts until every task arrived somewhere (the switchboard's
    // were acknowledged already: one poll, for the CPU time).
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      for (const c of this.children) c.send({ op: 'count' });
      const counts = await Promise.all(this.children.map((c) => c.next('count')));
      const total = counts.reduce((n, r) => n + r.count, 0);
      if (total >= count) {
        t1 ??= seconds();
        const own = process.cpuUsage(c0);
        const cpu = own.user + own.system + counts.reduce((n, r) => n + r.cpuUs, 0);
        return { rate: count / (t1 - t0), cpu: cpu / count };
      }
      if (Date.now() > deadline) throw new Error(`${v}: ${total} of ${count} tasks arrived`);
      await tick(5);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c.exit()));
    for (const s of [...this.fanoutSockets, ...this.workSockets]) s.destroy();
    for (const s of this.servers) s.close();
    this.zpub.close();
    this.zpush.close();
    this.apub.close();
    this.apush.close();
    await this.sb.close();
  }
}

function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** A row of CPU µs per message, from the measured rounds (the first sample is the warm-up). */
function cpuRow(workload: string, v: Variant, samples: readonly number[]): BenchRow {
  return toRow('pubsub', workload, v, 'µs', summarize(samples.slice(1)), 'lower');
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1)} %`;
}

export const pubsub: BenchModule = {
  name: 'pubsub',
  description:
    'fan-out of 256 B messages to 3 subscriber processes, and push-pull to 3 worker processes, vs raw node:net, zeromq.js and axon',
  baselines: ['raw', 'zeromq'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const scale = ctx.quick ? 0.2 : 1;
    /** Messages per round: the slow peers get fewer, so a round stays near a second. */
    const counts: Record<Variant, number> = {
      raw: Math.round(600_000 * scale),
      switchboard: Math.round(300_000 * scale),
      zeromq: Math.round(100_000 * scale),
      axon: Math.round(100_000 * scale),
    };
    const rig = await Rig.start();
    const rows: BenchRow[] = [];
    try {
      const loss: Record<string, number[]> = {};
      const dropped: Record<string, number> = {};
      const fanCpu: Record<string, number[]> = {};
      const fanRounds: Record<string, Round> = {};
      for (const v of VARIANTS) {
        loss[v] = [];
        dropped[v] = 0;
        fanCpu[v] = [];
        fanRounds[v] = async () => {
          const r = await rig.fanout(v, counts[v]);
          loss[v]!.push(r.loss);
          dropped[v]! += r.dropped;
          fanCpu[v]!.push(r.cpu);
          return r.rate;
        };
      }
      const fan = await compareRounds(ctx.rounds, fanRounds, { rounds: 1 });
      const fanWorkload = `fan-out to ${SUBSCRIBERS} subscriber processes, ${SIZE} B, per subscriber`;
      for (const v of VARIANTS) {
        const worst = Math.max(...loss[v]!);
        rows.push(
          toRow(
            'pubsub',
            fanWorkload,
            v,
            'msg/s',
            fan[v]!,
            'higher',
            `loss ${pct(worst)} (worst round)`,
          ),
        );
      }
      // CPU time, all four processes, per message published: the cost behind the rate,
      // steadier than the rate when other work shares the machine.
      const fanCpuWorkload = `fan-out CPU per message, publisher + ${SUBSCRIBERS} subscribers`;
      for (const v of VARIANTS) rows.push(cpuRow(fanCpuWorkload, v, fanCpu[v]!));
      const sw = fan.switchboard!.median;
      ctx.log(
        `fan-out: switchboard ${(sw / 1e6).toFixed(2)} M msg/s per subscriber = ` +
          `${((sw / fan.raw!.median) * 100).toFixed(0)} % of raw, ${(sw / fan.zeromq!.median).toFixed(1)}x zeromq; ` +
          `loss ${pct(Math.max(...loss.switchboard!))}, subscriber drops ${dropped.switchboard}; ` +
          `zeromq loss ${pct(summarize(loss.zeromq!).median)}, axon loss ${pct(summarize(loss.axon!).median)}`,
      );

      const workCounts: Record<Variant, number> = {
        raw: Math.round(600_000 * scale),
        switchboard: Math.round(200_000 * scale),
        zeromq: Math.round(100_000 * scale),
        axon: Math.round(100_000 * scale),
      };
      const workCpu: Record<string, number[]> = {};
      const workRounds: Record<string, Round> = {};
      for (const v of VARIANTS) {
        workCpu[v] = [];
        workRounds[v] = async () => {
          const r = await rig.work(v, workCounts[v]);
          workCpu[v]!.push(r.cpu);
          return r.rate;
        };
      }
      const work = await compareRounds(ctx.rounds, workRounds, { rounds: 1 });
      const workWorkload = `push-pull to ${SUBSCRIBERS} worker processes, ${SIZE} B`;
      const notes: Record<Variant, string> = {
        raw: 'round-robin 64 KiB blocks, no acknowledgement',
        switchboard: 'least-loaded with credit, every task acknowledged',
        zeromq: 'PUSH/PULL, no acknowledgement',
        axon: 'push/pull, no acknowledgement',
      };
      for (const v of VARIANTS)
        rows.push(toRow('pubsub', workWorkload, v, 'task/s', work[v]!, 'higher', notes[v]));
      const workCpuWorkload = `push-pull CPU per task, pusher + ${SUBSCRIBERS} workers`;
      for (const v of VARIANTS) rows.push(cpuRow(workCpuWorkload, v, workCpu[v]!));
      const ws = work.switchboard!.median;
      ctx.log(
        `push-pull: switchboard ${(ws / 1e3).toFixed(0)} k task/s = ${((ws / work.raw!.median) * 100).toFixed(0)} % of raw, ` +
          `${(ws / work.zeromq!.median).toFixed(1)}x zeromq, ${(ws / work.axon!.median).toFixed(1)}x axon`,
      );
    } finally {
      await rig.close();
    }
    return rows;
  },
};

if (process.env[CHILD_ENV] === '1') child();
