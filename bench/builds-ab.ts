/**
 * Two or more builds of the library side by side on the patterns' hot
 * paths, as users drive them: CPU time per message, summed over every
 * process, which a busy machine disturbs far less than a rate does.
 *
 *   npx tsx bench/builds-ab.ts [--rounds 5] [--workloads fan,rpc64,pp,chan] NAME=DIST_LIB_INDEX ...
 *   npx tsx bench/builds-ab.ts before=/path/to/old/dist/lib/index.js after=dist/lib/index.js
 *
 * Workloads (node 0 is this script's child "driver", nodes 1..k are forked
 * from it; defaults everywhere, authentication on):
 * - `fan`: `publish()` of a 256-byte Buffer in a loop (awaiting
 *   `drained()` when it returns false, yielding every 256), 3 subscriber
 *   processes iterating with `for await`;
 * - `rpc64`: 64 loops of `await call('echo', { seq, data: 256 B })`;
 * - `pp`: `await pusher.push({ seq, data })` in a loop, one worker process
 *   (concurrency 16, prefetch 512);
 * - `chan`: `await sender.send({ seq, data: 16 B })`, one receiver process
 *   reading its Observable.
 * Each run warms up 500 ms, then measures 1.5 s: messages received, and
 * every process's user+system CPU over the window. Builds are interleaved
 * within each round; the table gives medians over rounds.
 * docs/benchmarks.md ("Before and after the one channel core") has figures.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as Lib from '../lib/index.js';

type Workload = 'fan' | 'rpc64' | 'pp' | 'chan';
const WORKLOADS: readonly Workload[] = ['fan', 'rpc64', 'pp', 'chan'];
const HERE = fileURLToPath(import.meta.url);
const SECRET = 'switchboard-builds-ab-secret';
const WARM_MS = 500;
const WINDOW_MS = 1500;

interface Read {
  readonly op: 'read';
  readonly cpuUs: number;
  readonly got: number;
}
interface RunResult {
  /** Messages (or calls) per second, on the receiving side. */
  readonly rate: number;
  /** CPU µs per message, all processes. */
  readonly cpuUs: number;
}

const cpuNow = (): number => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function load(entry: string): Promise<typeof Lib> {
  return (await import(pathToFileURL(resolve(entry)).href)) as typeof Lib;
}

function nodesFor(w: Workload, port: number): string[] {
  const n = w === 'fan' ? 4 : 2;
  return Array.from({ length: n }, (_, i) => `127.0.0.1:${port + i}`);
}

/** A subscriber, server, worker or receiver: counts what it took, reports CPU on request. */
async function member(w: Workload, entry: string, port: number, id: number): Promise<void> {
  const { Switchboard } = await load(entry);
  const sb = await Switchboard.start({ nodes: nodesFor(w, port), id, secret: SECRET });
  process.on('disconnect', () => process.exit(0));
  let got = 0;
  if (w === 'rpc64') sb.serve('echo', (x: unknown) => x);
  if (w === 'fan') {
    const sub = sb.subscribe<Buffer>('bench.>');
    void (async () => {
      for await (const _ of sub) got++;
    })();
  }
  if (w === 'pp') sb.worker('q', () => void got++, { concurrency: 16, prefetch: 512 });
  if (w === 'chan')
    sb.receiver('c')
      .observable()
      .subscribe(() => void got++);
  await sb.rendezvous({ timeoutMs: 30_000 });
  let cpu0 = 0;
  let got0 = 0;
  process.on('message', (m: { op: string }) => {
    if (m.op === 'mark') {
      cpu0 = cpuNow();
      got0 = got;
      process.send?.({ op: 'marked' });
    } else if (m.op === 'read') {
      process.send?.({ op: 'read', cpuUs: cpuNow() - cpu0, got: got - got0 } satisfies Read);
    }
  });
  process.send?.({ op: 'up' });
}

function reply<T>(c: ChildProcess, op: string): Promise<T> {
  return new Promise((res) => {
    const h = (m: { op: string }): void => {
      if (m.op !== op) return;
      c.off('message', h);
      res(m as T);
    };
    c.on('message', h);
  });
}

/** Node 0: drives the workload, then prints one JSON result line. */
async function driver(w: Workload, entry: string, port: number): Promise<void> {
  const { Switchboard } = await load(entry);
  const nodes = nodesFor(w, port);
  const members = nodes
    .slice(1)
    .map((_, i) => fork(HERE, ['member', w, entry, String(port), String(i + 1)]));
  const ups = members.map((c) => reply(c, 'up'));
  const sb = await Switchboard.start({ nodes, id: 0, secret: SECRET });
  await sb.rendezvous({ timeoutMs: 30_000 });
  await Promise.all(ups);
  let stop = false;
  let done = 0;
  const payload = { seq: 0, data: Buffer.alloc(w === 'chan' ? 16 : 256, 7) };
  const loops: Promise<void>[] = [];
  if (w === 'rpc64')
    for (let i = 0; i < 64; i++)
      loops.push(
        (async () => {
          while (!stop) {
            await sb.call('echo', payload, { timeoutMs: 30_000 });
            done++;
          }
        })(),
      );
  if (w === 'fan')
    loops.push(
      (async () => {
        let n = 0;
        while (!stop) {
          if (!sb.publish('bench.x', Buffer.alloc(256, 1))) await sb.drained();
          else if (++n % 256 === 0) await new Promise(setImmediate);
          done++;
        }
      })(),
    );
  if (w === 'pp')
    loops.push(
      (async () => {
        const p = sb.pusher('q');
        while (!stop) {
          await p.push(payload);
          done++;
        }
      })(),
    );
  if (w === 'chan')
    loops.push(
      (async () => {
        const s = sb.sender('c', { node: 1 });
        while (!stop) {
          await s.send(payload);
          done++;
        }
      })(),
    );
  await sleep(WARM_MS);
  const cpu0 = cpuNow();
  const done0 = done;
  const t0 = performance.now();
  await Promise.all(
    members.map((c) => {
      const p = reply(c, 'marked');
      c.send({ op: 'mark' });
      return p;
    }),
  );
  await sleep(WINDOW_MS);
  const reads = await Promise.all(
    members.map((c) => {
      const p = reply<Read>(c, 'read');
      c.send({ op: 'read' });
      return p;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const ownCpu = cpuNow() - cpu0;
  const calls = done - done0;
  stop = true;
  // One message per subscriber for fan-out: CPU per publication counts all three.
  const count = w === 'rpc64' ? calls : reads[0]!.got;
  const cpu = ownCpu + reads.reduce((a, r) => a + r.cpuUs, 0);
  const result: RunResult = { rate: count / seconds, cpuUs: cpu / count };
  console.log(JSON.stringify(result));
  for (const c of members) c.disconnect();
  process.on('unhandledRejection', () => undefined);
  void sb.destroy().catch(() => undefined);
  await Promise.race([Promise.allSettled(loops), sleep(500)]);
  process.exit(0);
}

function runOnce(w: Workload, entry: string, port: number): Promise<RunResult> {
  return new Promise((res, rej) => {
    const c = fork(HERE, ['driver', w, entry, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), 90_000);
    c.on('exit', () => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) rej(new Error(`${w} on ${entry}: no result\n${out}`));
      else res(JSON.parse(line) as RunResult);
    });
  });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(argv: readonly string[]): Promise<void> {
  let rounds = 5;
  let workloads: readonly Workload[] = WORKLOADS;
  const builds: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a === '--workloads') workloads = argv[++i]!.split(',') as Workload[];
    else if (a.includes('='))
      builds.push([a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (builds.length === 0 || workloads.some((w) => !WORKLOADS.includes(w)))
    throw new Error(
      'usage: builds-ab.ts [--rounds N] [--workloads fan,rpc64,pp,chan] NAME=ENTRY ...',
    );
  let port = 47_700;
  for (const w of workloads) {
    const results = new Map<string, RunResult[]>(builds.map(([n]) => [n, []]));
    for (let r = 0; r < rounds; r++)
      for (const [name, entry] of builds) {
        port = port >= 48_600 ? 47_700 : port + 8;
        results.get(name)!.push(await runOnce(w, entry, port));
      }
    for (const [name, rs] of results)
      console.log(
        `${w.padEnd(6)} ${name.padEnd(12)} ${median(rs.map((x) => x.rate))
          .toFixed(0)
          .padStart(
            9,
          )} msg/s   ${median(rs.map((x) => x.cpuUs)).toFixed(2)} µs CPU/msg (all processes)`,
      );
  }
}

const [role, w, entry, port, id] = process.argv.slice(2);
if (role === 'member') void member(w as Workload, entry!, Number(port), Number(id));
else if (role === 'driver') void driver(w as Workload, entry!, Number(port));
else
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
