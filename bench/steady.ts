/**
 * Channel throughput in steady state, driven the way docs/guide.md shows it:
 * the sender (this process, the dialing node) runs `await sender.send(x)`
 * once per message, for as long as the receiver (a forked child) measures;
 * the receiver consumes through its Observable, or with `for await`. The
 * rate is taken on the receiving side over a fixed window after a warm-up
 * that starts at the first message, so the credit window and the link
 * buffer, full at the start of a round, do not count (docs/benchmarks.md,
 * "Steady state").
 *
 * Baselines in the same sitting and the same two processes:
 * - `raw`: node:net, one `socket.write()` per message (u32 length prefix,
 *   then the CBOR bytes of `{ seq, data }` or the raw bytes), awaiting
 *   `drain` when the socket says so: what a user writes by hand;
 * - `raw, batched`: the same messages packed into a preallocated 64 KiB
 *   buffer, written when full (large messages corked as they are): the
 *   fastest honest writer, the ceiling.
 * With `--vs <path to an older build's dist/lib/index.js>`, both processes
 * also run a node of that build, `switchboard (before)`: the regression
 * check of docs/benchmarks.md, interleaved with everything else.
 *
 * CPU per message counts both processes over the window.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encode as cborEncode } from 'cbor-x';
import { Switchboard } from '../lib/facade.js';
import type { Sender } from '../lib/channel/sender.js';
import type { BenchContext, BenchModule, BenchRow, Round } from './harness.js';
import { compareRounds, summarize, toRow } from './harness.js';
import { freePorts } from '../spec/support/ports.js';

/** What the parent tells bench/steady-peer.ts. */
export type PeerCommand =
  | {
      op: 'init';
      nodes: string[];
      secret: string;
      maxMessageSize: number;
      before: { lib: string; nodes: string[] } | undefined;
    }
  | {
      op: 'arm';
      variant: string;
      binary: boolean;
      size: number;
      warmMs: number;
      windowMs: number;
    }
  | { op: 'exit' };

/** What bench/steady-peer.ts reports. */
export type PeerReport =
  | { op: 'alive' }
  | { op: 'ready'; rawPort: number }
  | { op: 'armed' }
  | { op: 'window' }
  | {
      op: 'result';
      variant: string;
      rate: number;
      byteRate: number;
      count: number;
      cpuUs: number;
      sinceFirstMs: number;
    }
  | { op: 'error'; message: string };

interface Workload {
  label: string;
  size: number;
  binary: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const WORKLOADS: readonly Workload[] = [
  { label: '16 B objects', size: 16, binary: false },
  { label: '256 B objects', size: 256, binary: false },
  { label: '4 KiB objects', size: 4 * KiB, binary: false },
  { label: '64 KiB objects', size: 64 * KiB, binary: false },
  { label: '1 MiB objects', size: MiB, binary: false },
  { label: '16 MiB objects', size: 16 * MiB, binary: false },
  { label: '256 B bytes', size: 256, binary: true },
  { label: '64 KiB bytes', size: 64 * KiB, binary: true },
];

const BATCH = 64 * KiB;
/** Raw batching: messages this large are written as they are, corked. */
const LARGE = 16 * KiB;
/** Room for a 16 MiB object and its framing. */
const MAX_MESSAGE = 32 * MiB;
const STEP_TIMEOUT_MS = 60_000;

class Peer {
  private readonly child: ChildProcess;
  private readonly queue: PeerReport[] = [];
  private waiter: ((r: PeerReport) => void) | undefined;

  constructor(private readonly onError: (message: string) => void) {
    const script = fileURLToPath(new URL('./steady-peer.ts', import.meta.url));
    this.child = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    this.child.on('message', (r: PeerReport) => {
      if (r.op === 'error') return this.onError(r.message);
      const w = this.waiter;
      this.waiter = undefined;
      if (w !== undefined) w(r);
      else this.queue.push(r);
    });
  }

  /** The next report, bounded in time. */
  next(): Promise<PeerReport> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error('bench peer did not answer in time'));
      }, STEP_TIMEOUT_MS);
      this.waiter = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
  }

  send(cmd: PeerCommand): void {
    this.child.send(cmd);
  }

  exit(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.send({ op: 'exit' });
    });
  }
}

/** A sending loop: runs until `stop()` is called, then settles. */
type Producer = (data: Buffer, w: Workload, stopped: () => boolean) => Promise<void>;

/**
 * A raw writer whose writes the kernel takes at once never waits for
 * `drain`, so it would never let the event loop run (and never see the end
 * of the window): it yields every 1024 messages, as a program that also
 * handles I/O must. A switchboard sender yields on its own (its link writes
 * at the end of the turn, and `send()` waits once the link buffer is full).
 */
const YIELD_EVERY = 1023;
const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A large message as it is, behind its length prefix, in one corked write; false once the socket is full. */
function writeLarge(socket: net.Socket, body: Uint8Array): boolean {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(body.length, 0);
  socket.cork();
  socket.write(len);
  const ok = socket.write(body);
  socket.uncork();
  return ok;
}

const drained = (socket: net.Socket): Promise<void> =>
  new Promise((r) => socket.once('drain', () => r()));

function frameOf(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Raw, one write per message: what a user writes by hand. */
function rawPerMessage(socket: net.Socket): Producer {
  return async (data, w, stopped) => {
    for (let seq = 0; !stopped(); seq++) {
      const body = w.binary ? data : cborEncode({ seq, data });
      const ok = body.length >= LARGE ? writeLarge(socket, body) : socket.write(frameOf(body));
      if (!ok) await drained(socket);
      else if ((seq & YIELD_EVERY) === YIELD_EVERY) await yieldToLoop();
    }
  };
}

/** Raw, batched into a preallocated 64 KiB buffer: the ceiling. */
function rawBatched(socket: net.Socket): Producer {
  return async (data, w, stopped) => {
    let block = Buffer.allocUnsafe(BATCH);
    let at = 0;
    const flush = async (): Promise<void> => {
      if (at === 0) return;
      // The socket keeps the view until written: the next block is a new one.
      const ok = socket.write(block.subarray(0, at));
      block = Buffer.allocUnsafe(BATCH);
      at = 0;
      if (!ok) await drained(socket);
    };
    for (let seq = 0; !stopped(); seq++) {
      const body = w.binary ? data : cborEncode({ seq, data });
      if (body.length >= LARGE) {
        await flush();
        if (!writeLarge(socket, body)) await drained(socket);
        continue;
      }
      if (at + 4 + body.length > BATCH) await flush();
      if ((seq & YIELD_EVERY) === YIELD_EVERY) await yieldToLoop();
      block.writeUInt32BE(body.length, at);
      block.set(body, at + 4);
      at += 4 + body.length;
    }
    await flush();
  };
}

/** `await sender.send(x)` per message, as the guide shows it. */
function switchboardSend(sender: Sender<unknown>): Producer {
  return async (data, w, stopped) => {
    for (let seq = 0; !stopped(); seq++) await sender.send(w.binary ? data : { seq, data });
  };
}

/**
 * The hot-loop API (docs/guide.md "Hot loops"): `trySend` while credit
 * lasts, `await send()` when it does not; the peer takes with `batches()`.
 */
function switchboardTrySend(sender: Sender<unknown>): Producer {
  return async (data, w, stopped) => {
    for (let seq = 0; !stopped(); seq++) {
      const x = w.binary ? data : { seq, data };
      if (!sender.trySend(x)) await sender.send(x);
    }
  };
}

/** `await sender.sendMany(batch)` of 64 values at a time; the peer takes through its Observable. */
function switchboardSendMany(sender: Sender<unknown>): Producer {
  return async (data, w, stopped) => {
    const batch: unknown[] = new Array<unknown>(64);
    for (let seq = 0; !stopped();) {
      for (let i = 0; i < 64; i++, seq++) batch[i] = w.binary ? data : { seq, data };
      await sender.sendMany(batch);
    }
  };
}

interface Sample {
  rate: number;
  byteRate: number;
  cpuPerMessageUs: number;
}

/**
 * One round of one variant: arms the peer, sends until the peer's window
 * closed, and returns the receiving side's rate; the CPU both processes
 * spent per message in the window goes to `log`.
 */
function round(
  peer: Peer,
  variant: string,
  w: Workload,
  produce: Producer,
  timing: { warmMs: number; windowMs: number },
  log: Record<string, Sample[]>,
): Round {
  return async () => {
    const armed = peer.next();
    peer.send({ op: 'arm', variant, binary: w.binary, size: w.size, ...timing });
    await armed;
    let stop = false;
    const data = Buffer.alloc(w.size, 0x5a);
    const sending = produce(data, w, () => stop);
    let result: PeerReport;
    let own: NodeJS.CpuUsage;
    try {
      const window = await peer.next();
      if (window.op !== 'window') throw new Error(`expected the window to open, got ${window.op}`);
      const cpu0 = process.cpuUsage();
      result = await peer.next();
      own = process.cpuUsage(cpu0);
    } finally {
      stop = true;
    }
    await sending;
    if (result.op !== 'result') throw new Error(`expected a result, got ${result.op}`);
    const count = Math.max(1, result.count);
    (log[variant] ??= []).push({
      rate: result.rate,
      byteRate: result.byteRate,
      cpuPerMessageUs: (own.user + own.system + result.cpuUs) / count,
    });
    return result.rate;
  };
}

async function connectRaw(port: number, marker: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await new Promise((r) => socket.once('connect', r));
  socket.write(Buffer.from([marker]));
  // Reported by the round that was writing (its write fails); not a crash.
  socket.on('error', () => undefined);
  return socket;
}

export const steady: BenchModule = {
  name: 'steady',
  description:
    'one-way channel in steady state, `await send()` per message, received by Observable and by for await, vs raw node:net written per message and batched; 16 B to 16 MiB',
  baselines: ['raw, batched', 'raw'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    const timing = ctx.quick ? { warmMs: 200, windowMs: 400 } : { warmMs: 500, windowMs: 1500 };
    const vs = ctx.vs;
    const ports = await freePorts(vs === undefined ? 2 : 4);
    const nodes = ports.slice(0, 2).map((p) => `127.0.0.1:${p}`);
    const beforeNodes = ports.slice(2).map((p) => `127.0.0.1:${p}`);
    const secret = 'bench-secret-0123456789abcdef';
    let failure: string | undefined;
    const peer = new Peer((message) => (failure ??= message));
    await peer.next();
    const ready = peer.next();
    const before = vs === undefined ? undefined : { lib: vs, nodes: beforeNodes };
    peer.send({ op: 'init', nodes, secret, maxMessageSize: MAX_MESSAGE, before });
    const options = { nodes, id: 0, secret, maxMessageSize: MAX_MESSAGE };
    const sb = await Switchboard.start(options);
    let old: Switchboard | undefined;
    if (vs !== undefined) {
      const { Switchboard: Before } = (await import(pathToFileURL(vs).href)) as {
        Switchboard: typeof Switchboard;
      };
      old = await Before.start({ ...options, nodes: beforeNodes });
    }
    const info = await ready;
    if (info.op !== 'ready') throw new Error(`bench peer: ${failure ?? info.op}`);
    await Promise.all([
      sb.rendezvous({ timeoutMs: 20_000 }),
      old?.rendezvous({ timeoutMs: 20_000 }),
    ]);
    const perMessage = await connectRaw(info.rawPort, 0);
    const batched = await connectRaw(info.rawPort, 1);
    const observed = sb.sender<unknown>('observable', { node: 1 });
    const iterated = sb.sender<unknown>('iterated', { node: 1 });
    const tried = sb.sender<unknown>('batches', { node: 1 });
    const many = sb.sender<unknown>('many', { node: 1 });
    const previous = old?.sender<unknown>('observable', { node: 1 });
    try {
      const picked = ctx.workloads;
      const selected = WORKLOADS.filter(
        (w) => picked === undefined || picked.some((p) => w.label.includes(p)),
      );
      if (selected.length === 0)
        throw new Error(`--workloads matched none of: ${WORKLOADS.map((w) => w.label).join(', ')}`);
      for (const w of selected) {
        const log: Record<string, Sample[]> = {};
        const variants: Record<string, Round> = {
          'raw, batched': round(peer, 'raw, batched', w, rawBatched(batched), timing, log),
          raw: round(peer, 'raw', w, rawPerMessage(perMessage), timing, log),
          switchboard: round(peer, 'switchboard', w, switchboardSend(observed), timing, log),
          'switchboard, for await': round(
            peer,
            'switchboard, for await',
            w,
            switchboardSend(iterated),
            timing,
            log,
          ),
          'switchboard, trySend + batches': round(
            peer,
            'switchboard, trySend + batches',
            w,
            switchboardTrySend(tried),
            timing,
            log,
          ),
          'switchboard, sendMany(64)': round(
            peer,
            'switchboard, sendMany(64)',
            w,
            switchboardSendMany(many),
            timing,
            log,
          ),
        };
        if (previous !== undefined)
          variants['switchboard (before)'] = round(
            peer,
            'switchboard (before)',
            w,
            switchboardSend(previous),
            timing,
            log,
          );
        const m = await compareRounds(ctx.rounds, variants, { rounds: 1 });
        if (failure !== undefined) throw new Error(`bench peer: ${failure}`);
        const workload = `steady ${w.label}`;
        const bytesUnit = w.size >= 64 * KiB;
        for (const [variant, mm] of Object.entries(m)) {
          // Measured rounds only: the warm-up round is the first sample.
          const samples = log[variant]!.slice(-ctx.rounds);
          const value = bytesUnit
            ? summarize(samples.map((s) => s.byteRate))
            : { ...mm, ...summarize(samples.map((s) => s.rate)) };
          rows.push(toRow('steady', workload, variant, bytesUnit ? 'B/s' : 'msg/s', value));
          rows.push(
            toRow(
              'steady',
              `${workload}: CPU per message, sender + receiver`,
              variant,
              'µs',
              summarize(samples.map((s) => s.cpuPerMessageUs)),
              'lower',
            ),
          );
        }
        const ratio = (a: string, b: string): string => (m[a]!.median / m[b]!.median).toFixed(2);
        ctx.log(
          `${workload}: switchboard/raw batched ${ratio('switchboard', 'raw, batched')}, ` +
            `/raw ${ratio('switchboard', 'raw')}, for await/raw batched ${ratio('switchboard, for await', 'raw, batched')}` +
            (previous !== undefined
              ? `, /before ${ratio('switchboard', 'switchboard (before)')}`
              : ''),
        );
      }
    } finally {
      perMessage.destroy();
      batched.destroy();
      await peer.exit();
      await sb.close();
      await old?.close();
    }
    return rows;
  },
};
