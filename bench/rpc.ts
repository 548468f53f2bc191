/**
 * RPC benchmark: request-reply between two processes on loopback, with the
 * baselines in the same run (targets: docs/benchmarks.md):
 *
 * - `raw`: node:net, `{ id, name }` objects encoded with cbor-x behind a u32
 *   length prefix; the server decodes each request and encodes its reply.
 *   With 1 call in flight it is a plain ping-pong; with 64 in flight both
 *   sides handle a whole read and answer it in one corked write.
 * - `zeromq`: zeromq.js 6 DEALER (client) / ROUTER (server) carrying the
 *   same CBOR bytes, decoded and re-encoded like `raw`.
 * - `switchboard`: `sb.call('echo', { id, name })` against `sb.serve('echo',
 *   (req) => req)` in the other process.
 *
 * Workloads: the round trip with 1 call in flight (p50, p99, p99.9, in µs,
 * each round a few thousand calls), and calls/s with 64 in flight.
 * Targets: p50 within 1.3x raw, p99 within 1.5x raw, 64 in flight at
 * >= 50 % of raw.
 *
 * The server is this very file, forked with `--import tsx`: it runs
 * {@link child} when SWITCHBOARD_BENCH_RPC_CHILD is set.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import * as zmq from 'zeromq';
import { Switchboard } from '../lib/facade.js';
import { freePorts } from '../spec/support/ports.js';
import type { BenchContext, BenchModule, BenchRow, Measurement } from './harness.js';
import { summarize, toRow } from './harness.js';

const CHILD_ENV = 'SWITCHBOARD_BENCH_RPC_CHILD';
const SECRET = 'switchboard-bench-rpc-secret';
const IN_FLIGHT = 64;
const STEP_TIMEOUT_MS = 30_000;

interface Request {
  id: number;
  name: string;
}

type Command = { op: 'start'; nodes: string[]; rawPort: number; zmqPort: number } | { op: 'exit' };
type Report = { op: 'ready' } | { op: 'failed'; message: string };

// ---- length-prefixed CBOR, shared by the raw client and server --------------

/** Splits a byte stream into u32-length-prefixed messages; copies only what straddles reads. */
class Deframer {
  private left: Buffer | undefined;

  constructor(private readonly onMessage: (body: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.left !== undefined) {
      buf = Buffer.concat([this.left, chunk]);
      this.left = undefined;
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = buf.readUInt32BE(pos);
      if (buf.length - pos - 4 < len) break;
      this.onMessage(buf.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    if (pos < buf.length) this.left = Buffer.from(buf.subarray(pos));
  }
}

function frame(value: unknown): Buffer {
  const body = cborEncode(value);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

// ---- the server process -------------------------------------------------------

function child(): void {
  const send = (r: Report): void => {
    process.send?.(r);
  };
  let sb: Switchboard | undefined;
  let server: net.Server | undefined;
  let router: zmq.Router | undefined;
  process.on('message', (c: Command) => {
    void (async () => {
      try {
        if (c.op === 'start') {
          // raw: answer each read in one corked write.
          server = net.createServer((socket) => {
            socket.setNoDelay(true);
            const replies: Buffer[] = [];
            const deframer = new Deframer((body) =>
              replies.push(frame(cborDecode(body) as Request)),
            );
            socket.on('data', (chunk: Buffer) => {
              deframer.push(chunk);
              if (replies.length === 1) {
                socket.write(replies[0]!);
              } else if (replies.length > 1) {
                socket.cork();
                for (const r of replies) socket.write(r);
                socket.uncork();
              }
              replies.length = 0;
            });
            socket.on('error', () => undefined);
          });
          await new Promise<void>((resolve) => server!.listen(c.rawPort, '127.0.0.1', resolve));
          // zeromq: ROUTER answering each request.
          router = new zmq.Router();
          await router.bind(`tcp://127.0.0.1:${c.zmqPort}`);
          void (async () => {
            for await (const [identity, body] of router) {
              await router.send([identity!, cborEncode(cborDecode(body!) as Request)]);
            }
          })().catch(() => undefined);
          // switchboard: node 1 serving 'echo'.
          sb = await Switchboard.start({ nodes: c.nodes, id: 1, secret: SECRET });
          sb.serve<Request, Request>('echo', (req) => req);
          await sb.rendezvous({ timeoutMs: STEP_TIMEOUT_MS });
          send({ op: 'ready' });
        } else {
          router?.close();
          server?.close();
          await sb?.close();
          process.exit(0);
        }
      } catch (err) {
        send({ op: 'failed', message: String(err) });
      }
    })();
  });
}

// ---- the client side ----------------------------------------------------------

/** One variant's client: a round trip, and a rate with {@link IN_FLIGHT} calls in flight. */
interface Client {
  /** One call; resolves when its reply is back and checked. */
  roundTrip(id: number): Promise<void>;
  /** `count` calls with `IN_FLIGHT` outstanding; resolves to calls/s. */
  rate(count: number): Promise<number>;
  close(): Promise<void>;
}

async function rawClient(port: number): Promise<Client> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let onReply: (r: Request) => void = () => undefined;
  let afterRead: () => void = () => undefined;
  const deframer = new Deframer((body) => onReply(cborDecode(body) as Request));
  socket.on('data', (chunk: Buffer) => {
    deframer.push(chunk);
    afterRead();
  });
  return {
    roundTrip(id) {
      return new Promise<void>((resolve, reject) => {
        onReply = (r) =>
          r.id === id ? resolve() : reject(new Error(`raw: reply ${r.id} for ${id}`));
        afterRead = () => undefined;
        socket.write(frame({ id, name: 'bench' }));
      });
    },
    rate(count) {
      return new Promise<number>((resolve) => {
        let sent = 0;
        let received = 0;
        let batch: Buffer[] = [];
        const t0 = performance.now();
        onReply = () => {
          received++;
          if (sent < count) batch.push(frame({ id: sent++, name: 'bench' }));
        };
        afterRead = () => {
          // Writes corked per read: everything a read made possible goes out in one write.
          if (batch.length > 0) {
            socket.cork();
            for (const b of batch) socket.write(b);
            socket.uncork();
            batch = [];
          }
          if (received === count) resolve(count / ((performance.now() - t0) / 1000));
        };
        socket.cork();
        for (; sent < Math.min(IN_FLIGHT, count); sent++)
          socket.write(frame({ id: sent, name: 'bench' }));
        socket.uncork();
      });
    },
    close() {
      socket.destroy();
      return Promise.resolve();
    },
  };
}

function zeromqClient(port: number): Client {
  const dealer = new zmq.Dealer();
  dealer.connect(`tcp://127.0.0.1:${port}`);
  const receive = async (): Promise<Request> => {
    const [body] = await dealer.receive();
    return cborDecode(body!) as Request;
  };
  return {
    async roundTrip(id) {
      await dealer.send(cborEncode({ id, name: 'bench' }));
      const r = await receive();
      if (r.id !== id) throw new Error(`zeromq: reply ${r.id} for ${id}`);
    },
    async rate(count) {
      const t0 = performance.now();
      let sent = 0;
      const first = Math.min(IN_FLIGHT, count);
      for (; sent < first; sent++) await dealer.send(cborEncode({ id: sent, name: 'bench' }));
      for (let received = 0; received < count; received++) {
        await receive();
        if (sent < count) await dealer.send(cborEncode({ id: sent++, name: 'bench' }));
      }
      return count / ((performance.now() - t0) / 1000);
    },
    close() {
      dealer.close();
      return Promise.resolve();
    },
  };
}

function switchboardClient(sb: Switchboard): Client {
  return {
    async roundTrip(id) {
      const r = await sb.call<Request, Request>('echo', { id, name: 'bench' });
      if (r.id !== id) throw new Error(`switchboard: reply ${r.id} for ${id}`);
    },
    async rate(count) {
      const t0 = performance.now();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) await sb.call<Request, Request>('echo', { id: next++, name: 'bench' });
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker));
      return count / ((performance.now() - t0) / 1000);
    },
    async close() {
      await sb.close();
    },
  };
}

/** `calls` round trips one after another; returns each one's latency in µs. */
async function latencies(client: Client, calls: number): Promise<number[]> {
  const out = new Array<number>(calls);
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await client.roundTrip(i);
    out[i] = (performance.now() - t) * 1000;
  }
  return out;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** The forked server process. */
class Server {
  private readonly process: ChildProcess;
  private readonly waiters: Array<(r: Report) => void> = [];

  constructor() {
    this.process = fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, [CHILD_ENV]: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.process.on('message', (r: Report) => this.waiters.shift()?.(r));
  }

  async start(c: Extract<Command, { op: 'start' }>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const report = await Promise.race([
      new Promise<Report>((resolve) => {
        this.waiters.push(resolve);
        this.process.send(c);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('bench server did not start')), STEP_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (report.op === 'failed') throw new Error(`bench server failed: ${report.message}`);
  }

  async exit(): Promise<void> {
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.send({ op: 'exit' } satisfies Command);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

const LATENCY_METRICS = [
  { label: 'p50', p: 0.5 },
  { label: 'p99', p: 0.99 },
  { label: 'p99.9', p: 0.999 },
] as const;

/** The RPC bench module. */
export const rpc: BenchModule = {
  name: 'rpc',
  description: 'request-reply between two processes: round-trip latency and 64-in-flight rate',
  baselines: ['raw', 'zeromq'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const [rawPort, zmqPort, p0, p1] = await freePorts(4);
    const nodes = [`127.0.0.1:${p0}`, `127.0.0.1:${p1}`];
    const server = new Server();
    const sb = await Switchboard.start({ nodes, id: 0, secret: SECRET });
    const clients: Record<string, Client> = {};
    try {
      await Promise.all([
        server.start({ op: 'start', nodes, rawPort: rawPort!, zmqPort: zmqPort! }),
        sb.rendezvous({ timeoutMs: STEP_TIMEOUT_MS }),
      ]);
      clients.raw = await rawClient(rawPort!);
      clients.zeromq = zeromqClient(zmqPort!);
      clients.switchboard = switchboardClient(sb);
      const names = Object.keys(clients);
      const calls = ctx.quick ? 4_000 : 20_000;
      const rateCalls = ctx.quick ? 40_000 : 150_000;

      // Warm-up: JIT, first streams, socket buffers.
      for (const name of names) {
        await latencies(clients[name]!, Math.ceil(calls / 4));
        await clients[name]!.rate(Math.ceil(rateCalls / 4));
      }
      const lat: Record<string, Record<string, number[]>> = {};
      const rates: Record<string, number[]> = {};
      for (const name of names) {
        lat[name] = Object.fromEntries(LATENCY_METRICS.map((m) => [m.label, []]));
        rates[name] = [];
      }
      for (let round = 0; round < ctx.rounds; round++) {
        // Interleaved, alternating order, so drift in machine load hits every variant alike.
        const order = round % 2 === 0 ? names : [...names].reverse();
        for (const name of order) {
          const sorted = (await latencies(clients[name]!, calls)).sort((a, b) => a - b);
          for (const m of LATENCY_METRICS) lat[name]![m.label]!.push(percentile(sorted, m.p));
        }
        for (const name of order) rates[name]!.push(await clients[name]!.rate(rateCalls));
      }

      const rows: BenchRow[] = [];
      const byMetric: Record<string, Record<string, Measurement>> = {};
      for (const m of LATENCY_METRICS) {
        const workload = `round trip, 1 in flight, ${m.label}`;
        byMetric[m.label] = {};
        for (const name of names) {
          const measurement = summarize(lat[name]![m.label]!);
          byMetric[m.label]![name] = measurement;
          rows.push(toRow('rpc', workload, name, 'µs', measurement, 'lower'));
        }
      }
      const rateBy: Record<string, Measurement> = {};
      for (const name of names) {
        rateBy[name] = summarize(rates[name]!);
        rows.push(
          toRow(
            'rpc',
            `calls/s, ${IN_FLIGHT} in flight`,
            name,
            'calls/s',
            rateBy[name],
            'higher',
            name === 'raw' ? 'writes corked per read' : undefined,
          ),
        );
      }
      const x = (a: Measurement | undefined, b: Measurement | undefined): string =>
        a === undefined || b === undefined ? '?' : `${(a.median / b.median).toFixed(2)}x`;
      ctx.log(
        `switchboard vs raw: p50 ${x(byMetric.p50!.switchboard, byMetric.p50!.raw)} (target <= 1.3x), ` +
          `p99 ${x(byMetric.p99!.switchboard, byMetric.p99!.raw)} (target <= 1.5x), ` +
          `${IN_FLIGHT} in flight ${x(rateBy.switchboard, rateBy.raw)} (target >= 0.50x)`,
      );
      ctx.log(
        `switchboard vs zeromq: p50 ${x(byMetric.p50!.switchboard, byMetric.p50!.zeromq)}, ` +
          `${IN_FLIGHT} in flight ${x(rateBy.switchboard, rateBy.zeromq)}`,
      );
      return rows;
    } finally {
      for (const name of ['raw', 'zeromq']) await clients[name]?.close().catch(() => undefined);
      await sb.close();
      await server.exit();
    }
  },
};

if (process.env[CHILD_ENV] === '1') child();
