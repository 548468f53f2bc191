/**
 * What the metrics cost plain channels: messages per second over a local
 * channel (sender and receiver in one switchboard) and over a remote one
 * (16-byte Buffers from one switchboard to another over 127.0.0.1, both in
 * one child process), for each build given, several rounds, each round a
 * fresh child process per build (builds interleaved, so a busy machine
 * slows them alike). Prints the median of each.
 *
 *   npx tsx bench/metrics-ab.ts [--rounds 7] [--messages 1000000] NAME=DIST_LIB_INDEX ...
 *   npx tsx bench/metrics-ab.ts this=dist/lib/index.js main=/work/main/dist/lib/index.js
 *
 * docs/metrics.md, "What the metrics cost", has the figures.
 */
import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as Lib from '../lib/index.js';

interface Result {
  readonly local: number;
  readonly remote: number;
}

const HERE = fileURLToPath(import.meta.url);

async function child(entry: string, messages: number, port: number): Promise<void> {
  const { Switchboard } = (await import(pathToFileURL(resolve(entry)).href)) as typeof Lib;
  const local = await Switchboard.start({
    nodes: [{ host: '127.0.0.1', port }],
    id: 0,
    insecure: true,
  });
  await local.rendezvous();
  const localRate = await run(local, local, 0, messages, 'local');
  await local.close();
  const nodes = [
    { host: '127.0.0.1', port: port + 1 },
    { host: '127.0.0.1', port: port + 2 },
  ];
  const [a, b] = await Promise.all([
    Switchboard.start({ nodes, id: 0, insecure: true }),
    Switchboard.start({ nodes, id: 1, insecure: true }),
  ]);
  await Promise.all([a.rendezvous(), b.rendezvous()]);
  const remoteRate = await run(a, b, 1, Math.floor(messages / 4), 'remote');
  await Promise.all([a.close(), b.close()]);
  process.send!({ local: localRate, remote: remoteRate } satisfies Result);
}

type Sb = Lib.Switchboard;

/** Sends `n` messages from `from` to a receiver on `to` (node `node`); messages per second. */
async function run(from: Sb, to: Sb, node: number, n: number, name: string): Promise<number> {
  const rx = to.receiver<Buffer>(name);
  const tx = from.sender<Buffer>(name, { node });
  const value = Buffer.alloc(16, 7);
  const warm = Math.min(50_000, n / 10);
  let got = 0;
  let started = 0;
  const done = new Promise<number>((resolveDone) => {
    rx.consume({
      next: () => {
        got++;
        if (got === warm) started = performance.now();
        if (got === n) resolveDone(performance.now());
      },
      error: () => undefined,
      complete: () => undefined,
    });
  });
  for (let i = 0; i < n; i++) {
    const p = tx.send(value);
    // Await only when the send had to wait for credit: the hot loop of a real producer.
    if (tx.waiting > 0) await p;
    else if ((i & 1023) === 0) await p;
  }
  const ended = await done;
  tx.close();
  rx.close();
  return ((n - warm) / (ended - started)) * 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let rounds = 7;
  let messages = 1_000_000;
  const builds: Array<[string, string]> = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--rounds') rounds = Number(args[++i]);
    else if (a === '--messages') messages = Number(args[++i]);
    else {
      const eq = a.indexOf('=');
      builds.push(eq < 0 ? [a, a] : [a.slice(0, eq), a.slice(eq + 1)]);
    }
  }
  if (builds.length === 0)
    throw new Error('name at least one build: NAME=path/to/dist/lib/index.js');
  const results = new Map<string, Result[]>(builds.map(([name]) => [name, []]));
  let port = 47_400;
  for (let r = 0; r < rounds; r++) {
    for (const [name, entry] of builds) {
      const res = await new Promise<Result>((ok, fail) => {
        const c = fork(HERE, ['--child', entry, String(messages), String(port)], {
          execArgv: ['--import', 'tsx'],
        });
        c.once('message', (m) => ok(m as Result));
        c.once('exit', (code) =>
          code === 0 ? undefined : fail(new Error(`${name} exited ${code}`)),
        );
      });
      port += 3;
      results.get(name)!.push(res);
      console.error(
        `round ${r + 1} ${name}: local ${Math.round(res.local)}/s, remote ${Math.round(res.remote)}/s`,
      );
    }
  }
  console.log(
    `| build | local msgs/s (median of ${rounds}) | remote 16 B msgs/s (median of ${rounds}) |`,
  );
  console.log('| --- | --- | --- |');
  for (const [name, rs] of results) {
    const l = median(rs.map((x) => x.local));
    const m = median(rs.map((x) => x.remote));
    console.log(
      `| ${name} | ${Math.round(l).toLocaleString('en')} | ${Math.round(m).toLocaleString('en')} |`,
    );
  }
}

if (process.argv[2] === '--child') {
  void child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5])).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  void main();
}
