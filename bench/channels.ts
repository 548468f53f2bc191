/**
 * Channel throughput, one way, between two processes on loopback, with the
 * baselines in the same run (targets: docs/benchmarks.md):
 *
 * - `raw`: node:net with cbor-x `{ seq, data }` objects behind a u32 length
 *   prefix, writes batched into 64 KiB and honouring backpressure: the
 *   ceiling any CBOR protocol over TCP can reach here.
 * - `zeromq`: zeromq.js 6 PUSH/PULL carrying the same CBOR bytes.
 * - `switchboard`: a remote MPSC channel (`await sender.send(x)` per message).
 *
 * Plus a local (in-process) channel and raw-bytes payloads. Targets: remote
 * channels >= 80 % of raw and >= 3x zeromq for small objects, >= 90 % of
 * raw at 64 KiB, >= 50 % of raw for binary payloads, >= 10 M msg/s locally.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { encode as cborEncode } from 'cbor-x';
import * as zmq from 'zeromq';
import { Switchboard } from '../lib/facade.js';
import type { Sender } from '../lib/channel/sender.js';
import type { BenchContext, BenchModule, BenchRow, Round } from './harness.js';
import { compareRounds, seconds, summarize, toRow } from './harness.js';
import { freePorts } from '../spec/support/ports.js';

interface Workload {
  label: string;
  size: number;
  binary: boolean;
  count: number;
}

const WORKLOADS: readonly Workload[] = [
  { label: '16 B objects', size: 16, binary: false, count: 400_000 },
  { label: '256 B objects', size: 256, binary: false, count: 300_000 },
  { label: '4 KiB objects', size: 4096, binary: false, count: 60_000 },
  { label: '64 KiB bytes', size: 64 * 1024, binary: true, count: 15_000 },
  { label: '256 B bytes', size: 256, binary: true, count: 400_000 },
];

const BATCH = 64 * 1024;

type PeerMessage =
  | { op: 'alive' }
  | { op: 'ready'; rawPort: number; zmqEndpoint: string }
  | { op: 'armed' }
  | { op: 'done'; variant: string; count: number; cpuUs: number }
  | { op: 'error'; message: string };

class Peer {
  private readonly child: ChildProcess;
  private waiters: Array<(m: PeerMessage) => void> = [];

  constructor() {
    const script = fileURLToPath(new URL('./channels-peer.ts', import.meta.url));
    this.child = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    this.child.on('message', (m: PeerMessage) => {
      if (m.op === 'error') throw new Error(`bench peer: ${m.message}`);
      const w = this.waiters.shift();
      w?.(m);
    });
  }

  next(): Promise<PeerMessage> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  send(m: unknown): void {
    this.child.send(m as object);
  }

  /** Arms the peer for a round; `done` settles when it has counted `count` messages. */
  async expect(
    variant: string,
    count: number,
    binary: boolean,
  ): Promise<{ done: Promise<PeerMessage> }> {
    const armed = this.next();
    this.send({ op: 'expect', variant, count, binary });
    await armed;
    // Wrapped: an async function returning a bare promise would wait for it.
    return { done: this.next() };
  }

  exit(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.send({ op: 'exit' });
    });
  }
}

/** CPU µs per message of each round, sender and receiver process, per variant (warm-up rounds included). */
type CpuLog = Record<string, Array<{ tx: number; rx: number }>>;

/**
 * One measured round of `variant`: arms the peer, runs `produce` (which
 * sends `count` messages), waits for the peer's count, and returns msg/s.
 * The CPU time both processes spent per message goes to `cpu`.
 */
function round(
  peer: Peer,
  variant: string,
  w: Workload,
  count: number,
  cpu: CpuLog,
  produce: () => Promise<void>,
): Round {
  return async () => {
    const { done } = await peer.expect(variant, count, w.binary);
    const t = seconds();
    const c0 = process.cpuUsage();
    await produce();
    const d = (await done) as Extract<PeerMessage, { op: 'done' }>;
    const own = process.cpuUsage(c0);
    (cpu[variant] ??= []).push({ tx: (own.user + own.system) / count, rx: d.cpuUs / count });
    return count / (seconds() - t);
  };
}

/** Raw node:net: u32-prefixed messages, batched into 64 KiB writes, honouring backpressure. */
function rawSend(socket: net.Socket, w: Workload, count: number, data: Buffer) {
  return async (): Promise<void> => {
    let parts: Buffer[] = [];
    let bytes = 0;
    for (let seq = 0; seq < count; seq++) {
      const body = w.binary ? data : cborEncode({ seq, data });
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(body.length, 0);
      parts.push(len, body);
      bytes += 4 + body.length;
      if (bytes >= BATCH || seq === count - 1) {
        // Small messages are packed into one buffer; large ones go out as
        // they are, corked into one writev, never copied.
        let ok = true;
        if (body.length >= 16 * 1024) {
          socket.cork();
          for (const part of parts) ok = socket.write(part);
          socket.uncork();
        } else {
          ok = socket.write(Buffer.concat(parts, bytes));
        }
        parts = [];
        bytes = 0;
        if (!ok) await new Promise((r) => socket.once('drain', r));
      }
    }
  };
}

function zmqSend(push: zmq.Push, w: Workload, count: number, data: Buffer) {
  return async (): Promise<void> => {
    for (let seq = 0; seq < count; seq++)
      await push.send(w.binary ? data : cborEncode({ seq, data }));
  };
}

function switchboardSend(s: Sender<unknown>, w: Workload, count: number, data: Buffer) {
  return async (): Promise<void> => {
    for (let seq = 0; seq < count; seq++) await s.send(w.binary ? data : { seq, data });
  };
}

async function localRound(sb: Switchboard, count: number): Promise<number> {
  const [s, r] = sb.channel<{ seq: number }>();
  let got = 0;
  const done = new Promise<void>((resolve) => {
    r.observable().subscribe((m) => {
      if (m.seq !== got) throw new Error('local channel out of order');
      if (++got === count) resolve();
    });
  });
  const t = seconds();
  for (let seq = 0; seq < count; seq++) {
    const p = s.send({ seq });
    // Only a send that had to wait for credit needs awaiting.
    if (s.waiting > 0) await p;
  }
  await done;
  const rate = count / (seconds() - t);
  s.close();
  r.close();
  return rate;
}

/** A forced full GC, so heap deltas measure what is retained. */
const gc: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * Bytes retained per open remote channel: `count` named receivers on one
 * in-process node, a sender to each from another, every stream opened by
 * one message, measured as heap plus external memory after a full GC.
 */
async function openChannelsMemory(count: number): Promise<number> {
  const nodes = (await freePorts(2)).map((p) => `127.0.0.1:${p}`);
  const secret = 'bench-secret-0123456789abcdef';
  const [a, b] = await Promise.all([0, 1].map((id) => Switchboard.start({ nodes, id, secret })));
  try {
    await Promise.all([a!.rendezvous({ timeoutMs: 10_000 }), b!.rendezvous({ timeoutMs: 10_000 })]);
    const used = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    const before = used();
    const receivers = Array.from({ length: count }, (_, i) => b!.receiver<number>(`ch-${i}`));
    const senders = receivers.map((_, i) => a!.sender<number>(`ch-${i}`, { node: 1 }));
    await Promise.all(senders.map((s, i) => s.send(i)));
    await Promise.all(receivers.map((r) => r.next()));
    const after = used();
    for (const s of senders) s.close();
    for (const r of receivers) r.close();
    return (after - before) / count;
  } finally {
    await Promise.all([a!.close(), b!.close()]);
  }
}

export const channels: BenchModule = {
  name: 'channels',
  description:
    'one-way remote MPSC channel vs raw node:net+cbor-x and zeromq PUSH/PULL; local channel',
  baselines: ['raw', 'zeromq'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    const nodes = (await freePorts(2)).map((p) => `127.0.0.1:${p}`);
    const secret = 'bench-secret-0123456789abcdef';
    const peer = new Peer();
    await peer.next();
    const ready = peer.next();
    peer.send({ op: 'init', nodes, secret });
    const sb = await Switchboard.start({ nodes, id: 0, secret });
    const info = (await ready) as Extract<PeerMessage, { op: 'ready' }>;
    await sb.rendezvous({ timeoutMs: 10_000 });
    const socket = net.connect({ port: info.rawPort, host: '127.0.0.1', noDelay: true });
    await new Promise((r) => socket.once('connect', r));
    const push = new zmq.Push();
    push.connect(info.zmqEndpoint);
    const sender = sb.sender<unknown>('bench', { node: 1 });
    try {
      for (const w of WORKLOADS) {
        const count = ctx.quick ? Math.ceil(w.count / 5) : w.count;
        const data = Buffer.alloc(w.size, 0x5a);
        const cpu: CpuLog = {};
        const m = await compareRounds(
          ctx.rounds,
          {
            raw: round(peer, 'raw', w, count, cpu, rawSend(socket, w, count, data)),
            zeromq: round(peer, 'zeromq', w, count, cpu, zmqSend(push, w, count, data)),
            switchboard: round(
              peer,
              'switchboard',
              w,
              count,
              cpu,
              switchboardSend(sender, w, count, data),
            ),
          },
          { rounds: 1, seconds: ctx.quick ? 0.3 : 1 },
        );
        const workload = `one-way ${w.label}`;
        const unit = w.size >= 64 * 1024 ? 'B/s' : 'msg/s';
        const scale = unit === 'B/s' ? w.size : 1;
        for (const [variant, mm] of Object.entries(m)) {
          const scaled = {
            ...mm,
            median: mm.median * scale,
            min: mm.min * scale,
            max: mm.max * scale,
            samples: mm.samples.map((x) => x * scale),
          };
          rows.push(toRow('channels', workload, variant, unit, scaled));
        }
        ctx.log(
          `${workload}: switchboard/raw ${(m.switchboard!.median / m.raw!.median).toFixed(2)}, ` +
            `switchboard/zeromq ${(m.switchboard!.median / m.zeromq!.median).toFixed(2)}`,
        );
        // The cost behind the rate: CPU µs per message, both processes, measured rounds only.
        const split: string[] = [];
        for (const [variant, all] of Object.entries(cpu)) {
          const measured = all.slice(-ctx.rounds);
          rows.push(
            toRow(
              'channels',
              `${workload}: CPU per message, sender + receiver`,
              variant,
              'µs',
              summarize(measured.map((c) => c.tx + c.rx)),
              'lower',
            ),
          );
          const tx = summarize(measured.map((c) => c.tx)).median;
          const rx = summarize(measured.map((c) => c.rx)).median;
          split.push(`${variant} ${tx.toFixed(2)} + ${rx.toFixed(2)}`);
        }
        ctx.log(`${workload}: CPU µs per message, sender + receiver: ${split.join(', ')}`);
      }
      const channelCount = ctx.quick ? 2_000 : 10_000;
      const perChannel = await compareRounds(1, {
        switchboard: () => openChannelsMemory(channelCount),
      });
      rows.push(
        toRow(
          'channels',
          `memory per open remote channel (${channelCount} open)`,
          'switchboard',
          'B',
          perChannel.switchboard!,
          'lower',
          'both ends: receiver, sender, stream state on two nodes',
        ),
      );
      ctx.log(`memory per open channel: ${Math.round(perChannel.switchboard!.median)} B`);
      const localCount = ctx.quick ? 1_000_000 : 3_000_000;
      const local = await compareRounds(ctx.rounds, {
        switchboard: () => localRound(sb, localCount),
      });
      rows.push(
        toRow('channels', 'local channel {seq}', 'switchboard', 'msg/s', local.switchboard!),
      );
      ctx.log(`local channel: ${(local.switchboard!.median / 1e6).toFixed(2)} M msg/s`);
      // The same without the check of every value against the encoding rule
      // (checkLocalValues: false, docs/guide.md 1): what the check costs.
      const [alone] = await freePorts(1);
      const unchecked = await Switchboard.start({
        nodes: [`127.0.0.1:${alone}`],
        id: 0,
        secret,
        checkLocalValues: false,
      });
      try {
        const raw = await compareRounds(ctx.rounds, {
          switchboard: () => localRound(unchecked, localCount),
        });
        rows.push(
          toRow(
            'channels',
            'local channel {seq}, checkLocalValues: false',
            'switchboard',
            'msg/s',
            raw.switchboard!,
          ),
        );
        ctx.log(
          `local channel, values not checked: ${(raw.switchboard!.median / 1e6).toFixed(2)} M msg/s`,
        );
      } finally {
        await unchecked.close();
      }
    } finally {
      sender.close();
      socket.destroy();
      push.close();
      await sb.close();
      await peer.exit();
    }
    return rows;
  },
};
