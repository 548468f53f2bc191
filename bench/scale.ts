/**
 * What being there costs, as a user's processes pay it (docs/benchmarks.md,
 * "The cost of being there"). Every node is a child process running the
 * built package (dist/lib/index.js) under plain node through
 * bench/scale-node.mjs, with the public API only:
 *
 * - import cost: the RSS of a process that imported the library against a
 *   bare one (both after a forced GC), median over interleaved runs;
 * - for 2, 8, 16, 32 and 64 nodes (2 and 8 with `--quick`): rendezvous time
 *   (every child told to start at once, until every child's `rendezvous()`
 *   resolved), RSS per node once linked, and idle CPU: what each node
 *   spends per second with every link up and nothing sent (heartbeats and
 *   timers only), per node and per link;
 * - memory per channel: 10,000 named channels on one link, one message
 *   each, heap and RSS growth on the sending and the receiving node.
 *
 * Figures are medians over nodes. The machine's other load shows in idle
 * CPU and rendezvous time: compare within one sitting.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePorts } from '../spec/support/ports.js';
import type { BenchContext, BenchModule, BenchRow } from './harness.js';
import { summarize, toRow } from './harness.js';

const NODE_SCRIPT = fileURLToPath(new URL('./scale-node.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/lib/index.js', import.meta.url));
const MiB = 1024 * 1024;
const STEP_TIMEOUT_MS = 180_000;

type Report =
  | { op: 'alive' }
  | { op: 'imported'; rss: number }
  | { op: 'up'; rss: number }
  | { op: 'idled'; cpuUs: number; rss: number }
  | { op: 'listening' }
  | {
      op: 'channels';
      heapBefore: number;
      heapAfter: number;
      rssBefore: number;
      rssAfter: number;
    }
  | { op: 'failed'; message: string };

/** One child node and its reports, taken in order. */
class Node {
  private readonly child: ChildProcess;
  private readonly queue: Report[] = [];
  private waiter: ((r: Report) => void) | undefined;

  constructor() {
    this.child = fork(NODE_SCRIPT, [], { execArgv: ['--expose-gc'], stdio: 'inherit' });
    this.child.on('message', (r: Report) => {
      const w = this.waiter;
      this.waiter = undefined;
      if (w !== undefined) w(r);
      else this.queue.push(r);
    });
  }

  send(command: object): void {
    this.child.send(command);
  }

  async next<K extends Report['op']>(op: K): Promise<Extract<Report, { op: K }>> {
    const r =
      this.queue.shift() ??
      (await new Promise<Report>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`scale bench: no '${op}' within ${STEP_TIMEOUT_MS} ms`)),
          STEP_TIMEOUT_MS,
        );
        this.waiter = (x) => {
          clearTimeout(timer);
          resolve(x);
        };
      }));
    if (r.op === 'failed') throw new Error(`scale bench node: ${r.message}`);
    if (r.op !== op) throw new Error(`scale bench: expected '${op}', got '${r.op}'`);
    return r as Extract<Report, { op: K }>;
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.send({ op: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
}

async function spawn(n: number): Promise<Node[]> {
  const nodes = Array.from({ length: n }, () => new Node());
  await Promise.all(nodes.map((c) => c.next('alive')));
  return nodes;
}

const lib = pathToFileURL(DIST).href;

/** RSS of a bare process and of one that imported the library, `runs` of each, interleaved. */
async function importCost(runs: number): Promise<{ bare: number[]; loaded: number[] }> {
  const bare: number[] = [];
  const loaded: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const which of ['bare', 'import'] as const) {
      const [c] = (await spawn(1)) as [Node];
      c.send(which === 'bare' ? { op: 'bare' } : { op: 'import', lib });
      const { rss } = await c.next('imported');
      (which === 'bare' ? bare : loaded).push(rss);
      await c.exit();
    }
  }
  return { bare, loaded };
}

interface SizeResult {
  rendezvousMs: number;
  rss: number[];
  cpuMsPerSecond: number[];
}

async function clusterOf(n: number, idleMs: number): Promise<SizeResult> {
  const children = await spawn(n);
  try {
    children.forEach((c) => c.send({ op: 'import', lib }));
    await Promise.all(children.map((c) => c.next('imported')));
    const nodes = (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
    const t0 = performance.now();
    children.forEach((c, id) => c.send({ op: 'start', nodes, id }));
    const up = await Promise.all(children.map((c) => c.next('up')));
    const rendezvousMs = performance.now() - t0;
    // Let the last handshakes' work and the first heartbeats settle.
    await new Promise((r) => setTimeout(r, 1500));
    children.forEach((c) => c.send({ op: 'idle', ms: idleMs }));
    const idle = await Promise.all(children.map((c) => c.next('idled')));
    return {
      rendezvousMs,
      rss: up.map((u) => u.rss),
      cpuMsPerSecond: idle.map((x) => x.cpuUs / idleMs),
    };
  } finally {
    await Promise.all(children.map((c) => c.exit()));
  }
}

async function channelsOnOneLink(count: number): Promise<{
  sender: { heap: number; rss: number };
  receiver: { heap: number; rss: number };
}> {
  const [a, b] = (await spawn(2)) as [Node, Node];
  try {
    a.send({ op: 'import', lib });
    b.send({ op: 'import', lib });
    await Promise.all([a.next('imported'), b.next('imported')]);
    const nodes = (await freePorts(2)).map((p) => `127.0.0.1:${p}`);
    a.send({ op: 'start', nodes, id: 0 });
    b.send({ op: 'start', nodes, id: 1 });
    await Promise.all([a.next('up'), b.next('up')]);
    b.send({ op: 'channels', count, role: 'receive', peer: 0 });
    await b.next('listening');
    a.send({ op: 'channels', count, role: 'send', peer: 1 });
    const [s, r] = await Promise.all([a.next('channels'), b.next('channels')]);
    const per = (x: typeof s) => ({
      heap: (x.heapAfter - x.heapBefore) / count,
      rss: (x.rssAfter - x.rssBefore) / count,
    });
    return { sender: per(s), receiver: per(r) };
  } finally {
    await Promise.all([a.exit(), b.exit()]);
  }
}

export const scale: BenchModule = {
  name: 'scale',
  description:
    'import cost, rendezvous time, RSS and idle CPU per node for 2-64 child processes (built package, plain node), memory per channel',
  baselines: ['bare node'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    if (!existsSync(DIST)) throw new Error(`scale bench: ${DIST} missing; run npm run build first`);
    const rows: BenchRow[] = [];

    const cost = await importCost(ctx.quick ? 2 : 5);
    const bare = summarize(cost.bare);
    const loaded = summarize(cost.loaded);
    ctx.log(
      `import: ${(loaded.median / MiB).toFixed(1)} MiB RSS against ${(bare.median / MiB).toFixed(1)} MiB bare ` +
        `(+${((loaded.median - bare.median) / MiB).toFixed(1)} MiB)`,
    );
    rows.push(
      toRow('scale', 'RSS after import', 'bare node', 'B', bare, 'lower', 'after a forced GC'),
      toRow(
        'scale',
        'RSS after import',
        'switchboard',
        'B',
        loaded,
        'lower',
        `+${((loaded.median - bare.median) / MiB).toFixed(1)} MiB over bare node`,
      ),
    );

    const idleMs = ctx.quick ? 2000 : 5000;
    for (const n of ctx.quick ? [2, 8] : [2, 8, 16, 32, 64]) {
      const r = await clusterOf(n, idleMs);
      const cpu = summarize(r.cpuMsPerSecond);
      const perLink = summarize(r.cpuMsPerSecond.map((x) => x / (n - 1)));
      const rss = summarize(r.rss);
      ctx.log(
        `${n} nodes: rendezvous ${r.rendezvousMs.toFixed(0)} ms, RSS ${(rss.median / MiB).toFixed(1)} MiB per node, ` +
          `idle ${cpu.median.toFixed(3)} ms CPU/s per node (${perLink.median.toFixed(3)} per link)`,
      );
      rows.push(
        toRow(
          'scale',
          `rendezvous, ${n} nodes`,
          'switchboard',
          'ms',
          summarize([r.rendezvousMs]),
          'lower',
        ),
        toRow(
          'scale',
          `RSS per node, ${n} nodes`,
          'switchboard',
          'B',
          rss,
          'lower',
          'after rendezvous',
        ),
        toRow(
          'scale',
          `idle CPU per node, ${n} nodes`,
          'switchboard',
          'ms/s',
          cpu,
          'lower',
          `every link up, nothing sent, ${idleMs / 1000} s`,
        ),
        toRow('scale', `idle CPU per link, ${n} nodes`, 'switchboard', 'ms/s', perLink, 'lower'),
      );
    }

    const count = ctx.quick ? 2000 : 10_000;
    const ch = await channelsOnOneLink(count);
    ctx.log(
      `${count} channels on one link: sender +${ch.sender.heap.toFixed(0)} B heap/channel, ` +
        `receiver +${ch.receiver.heap.toFixed(0)} B heap/channel ` +
        `(RSS ${ch.sender.rss.toFixed(0)} / ${ch.receiver.rss.toFixed(0)} B)`,
    );
    for (const [side, v] of [
      ['sending node', ch.sender],
      ['receiving node', ch.receiver],
    ] as const) {
      rows.push(
        toRow(
          'scale',
          `memory per channel, ${count} channels on one link`,
          `heap, ${side}`,
          'B',
          summarize([v.heap]),
          'lower',
          `RSS ${v.rss.toFixed(0)} B per channel`,
        ),
      );
    }
    return rows;
  },
};
