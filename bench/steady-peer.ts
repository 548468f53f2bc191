/**
 * The receiving process of bench/steady.ts. It holds a switchboard node with
 * two named receivers, one consumed through its Observable and one with
 * `for await`, a raw node:net server, and, when the parent names an older
 * build of the library (`--vs`), a node of that build with an Observable
 * receiver. It measures on the receiving side: once the armed variant's
 * first message arrives it waits out the warm-up, then counts messages,
 * bytes and its own CPU time over a fixed window, and reports. Every variant
 * checks order (objects carry `seq`) or size (bytes), so none can cheat.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { decode as cborDecode } from 'cbor-x';
import { Switchboard } from '../lib/facade.js';
import { rawParser } from './raw.js';
import type { PeerCommand, PeerReport } from './steady.js';

let armed: Extract<PeerCommand, { op: 'arm' }> | undefined;
/** The next `seq` the armed variant must deliver. */
let expected = 0;
let lastArrival = 0;
let firstAt = 0;
/** Phase of the armed variant: waiting for its first message, warming up, measuring. */
let phase: 'idle' | 'first' | 'warm' | 'window' = 'idle';
let count = 0;
let bytes = 0;
let windowStart = 0;
let cpuStart = process.cpuUsage();
let windowTimer: NodeJS.Timeout | undefined;

function report(r: PeerReport): void {
  process.send!(r);
}

function fail(message: string): void {
  report({ op: 'error', message });
  phase = 'idle';
  armed = undefined;
}

/** One message of `variant` arrived (a decoded object or raw bytes). */
function see(variant: string, value: unknown): void {
  lastArrival = performance.now();
  const a = armed;
  if (a === undefined || a.variant !== variant || phase === 'idle') return;
  let size: number;
  if (a.binary) {
    if (!(value instanceof Uint8Array) || value.length !== a.size)
      return fail(`${variant}: expected ${a.size} bytes`);
    size = value.length;
  } else {
    const m = value as { seq?: unknown; data?: Uint8Array };
    if (m.seq !== expected)
      return fail(`${variant}: expected seq ${expected}, got ${String(m.seq)}`);
    size = m.data?.length ?? 0;
  }
  expected++;
  if (phase === 'first') {
    phase = 'warm';
    firstAt = lastArrival;
    setTimeout(() => {
      phase = 'window';
      count = 0;
      bytes = 0;
      windowStart = performance.now();
      cpuStart = process.cpuUsage();
      report({ op: 'window' });
      windowTimer = setTimeout(closeWindow, a.windowMs);
    }, a.warmMs);
    return;
  }
  if (phase === 'window') {
    count++;
    bytes += size;
  }
}

function closeWindow(): void {
  windowTimer = undefined;
  const elapsed = (performance.now() - windowStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const a = armed!;
  phase = 'idle';
  armed = undefined;
  report({
    op: 'result',
    variant: a.variant,
    rate: count / elapsed,
    byteRate: bytes / elapsed,
    count,
    cpuUs: cpu.user + cpu.system,
    sinceFirstMs: performance.now() - firstAt,
  });
}

/** Resolves once nothing has arrived for `quietMs` (what a previous round left in flight). */
async function quiet(quietMs: number): Promise<void> {
  for (;;) {
    const idle = performance.now() - lastArrival;
    if (idle >= quietMs) return;
    await new Promise((r) => setTimeout(r, quietMs - idle));
  }
}

const closers: Array<() => Promise<void>> = [];

async function init(cmd: Extract<PeerCommand, { op: 'init' }>): Promise<void> {
  const options = {
    nodes: cmd.nodes,
    id: 1,
    secret: cmd.secret,
    maxMessageSize: cmd.maxMessageSize,
  };
  const sb = await Switchboard.start(options);
  closers.push(() => sb.close());
  sb.receiver<unknown>('observable')
    .observable()
    .subscribe((v) => see('switchboard', v));
  const iterated = sb.receiver<unknown>('iterated');
  void (async () => {
    for await (const v of iterated) see('switchboard, for await', v);
  })();
  const batched = sb.receiver<unknown>('batches');
  void (async () => {
    for await (const batch of batched.batches(256))
      for (const v of batch) see('switchboard, trySend + batches', v);
  })();
  sb.receiver<unknown>('many')
    .observable()
    .subscribe((v) => see('switchboard, sendMany(64)', v));
  const server = net.createServer({ noDelay: true }, (socket) => {
    // Which raw variant a connection carries is its first byte.
    let variant: string | undefined;
    let parse: ((chunk: Buffer) => void) | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (variant === undefined) {
        variant = chunk[0] === 1 ? 'raw, batched' : 'raw';
        const v = variant;
        parse = rawParser((body) => {
          // Decoded only for the armed variant: what a previous round left
          // in flight may be of another workload.
          const a = armed;
          if (a === undefined || a.variant !== v) lastArrival = performance.now();
          else see(v, a.binary ? body : cborDecode(body));
        });
        chunk = chunk.subarray(1);
      }
      parse!(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  const waits = [sb.rendezvous({ timeoutMs: 20_000 })];
  if (cmd.before !== undefined) {
    const { Switchboard: Before } = (await import(pathToFileURL(cmd.before.lib).href)) as {
      Switchboard: typeof Switchboard;
    };
    const old = await Before.start({ ...options, nodes: cmd.before.nodes });
    closers.push(() => old.close());
    old
      .receiver<unknown>('observable')
      .observable()
      .subscribe((v) => see('switchboard (before)', v));
    waits.push(old.rendezvous({ timeoutMs: 20_000 }));
  }
  await Promise.all(waits);
  report({ op: 'ready', rawPort: (server.address() as net.AddressInfo).port });
}

process.on('message', (cmd: PeerCommand) => {
  void (async () => {
    try {
      if (cmd.op === 'init') await init(cmd);
      else if (cmd.op === 'arm') {
        await quiet(100);
        clearTimeout(windowTimer);
        armed = cmd;
        expected = 0;
        phase = 'first';
        report({ op: 'armed' });
      } else {
        for (const close of closers.reverse()) await close();
        process.exit(0);
      }
    } catch (err) {
      fail(String(err));
    }
  })();
});

// IPC messages sent before this listener existed would be lost: say we are listening.
report({ op: 'alive' });

process.on('uncaughtException', (err) => {
  console.error('bench/steady-peer.ts:', err);
  process.exit(1);
});
