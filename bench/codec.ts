/**
 * `npx tsx bench/codec.ts [--against REF] [--rounds N]`: encodeValue (and
 * checkEncodable, where the codec has it) on the hot-path shapes, in ns per
 * call. Not part of `npm run bench`: it is a micro-benchmark for changes to
 * lib/protocol/codec.ts.
 *
 * With `--against REF`, the codec of git revision REF and the working
 * tree's (each its codec.ts and errors.ts, copied side by side under .tmp/,
 * so both are compiled and resolved alike) are measured in alternating child
 * processes, `--rounds` times each (default 7), and the medians are
 * compared. Separate processes because cbor-x keeps its extensions in module
 * state: two codecs in one process would share them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPEATS = 5;

interface CodecModule {
  encodeValue(value: unknown): Buffer;
  checkEncodable?(value: unknown): void;
  PortableHandle: abstract new () => { toHandleRef(): unknown };
}

/**
 * The measured shapes: `{ seq, data }` objects as in bench/framing.ts, a
 * protocol-style array, and a request carrying a reply handle.
 */
function shapes(codec: CodecModule): Array<[string, (seq: number) => unknown]> {
  const out: Array<[string, (seq: number) => unknown]> = [];
  for (const [label, size] of [
    ['16 B', 16],
    ['256 B', 256],
    ['4 KiB', 4096],
    ['64 KiB', 64 * 1024],
  ] as const) {
    const data = Buffer.alloc(size, 7);
    out.push([`{ seq, data } ${label}`, (seq) => ({ seq, data })]);
  }
  const payload = { seq: 1, data: Buffer.alloc(16, 7) };
  out.push(['[op, id, node, id, ms, payload]', (seq) => [3, seq, 2, 17, 1500, payload]]);
  class Reply extends codec.PortableHandle {
    override toHandleRef(): unknown {
      return { kind: 'mpsc', node: 2, id: 17 };
    }
  }
  const reply = new Reply();
  out.push(['{ seq, args, reply: handle }', (seq) => ({ seq, args: [1, 'x'], reply })]);
  return out;
}

/** ns per call of `fn`, over about `ms` milliseconds after a warm-up. */
function time(fn: (i: number) => void, ms: number): number {
  for (let i = 0; i < 20_000; i++) fn(i);
  let calls = 1000;
  for (;;) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn(i);
    const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    if (elapsed >= ms) return (elapsed * 1e6) / calls;
    calls *= elapsed < ms / 10 ? 10 : 2;
  }
}

/**
 * One round: every shape measured `REPEATS` times, interleaved, keeping the
 * fastest of each (the run least disturbed by GC and other processes):
 * `{ "encode <shape>": ns, "check <shape>": ns }`.
 */
async function round(modulePath: string): Promise<Record<string, number>> {
  const codec = (await import(pathToFileURL(modulePath).href)) as CodecModule;
  const result: Record<string, number> = {};
  const keep = (name: string, ns: number): void => {
    result[name] = Math.min(result[name] ?? Infinity, ns);
  };
  let sink = 0;
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    for (const [name, make] of shapes(codec)) {
      keep(
        `encode ${name}`,
        time((i) => {
          sink += codec.encodeValue(make(i)).length;
        }, 60),
      );
      const check = codec.checkEncodable;
      if (check !== undefined) {
        const values = Array.from({ length: 64 }, (_, i) => make(i));
        keep(
          `check ${name}`,
          time((i) => check(values[i & 63]), 40),
        );
      }
    }
  }
  if (sink < 0) console.log(sink);
  return result;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/**
 * Copies the codec of `ref` (or of the working tree, for `undefined`) under
 * `into`: every file of lib/protocol and the top-level lib files it may
 * import (errors.ts, options.ts), since the codec spans several files.
 */
function checkout(root: string, into: string, ref: string | undefined): string {
  const listed =
    ref === undefined
      ? [
          ...readdirSync(join(root, 'lib/protocol')).map((f) => `lib/protocol/${f}`),
          ...readdirSync(join(root, 'lib')).map((f) => `lib/${f}`),
        ]
      : execFileSync('git', ['ls-tree', '-r', '--name-only', ref, '--', 'lib'], {
          cwd: root,
          encoding: 'utf8',
        }).split('\n');
  const files = listed.filter((f) => /^lib\/(protocol\/)?[\w-]+\.ts$/.test(f));
  for (const file of files) {
    const text =
      ref === undefined
        ? readFileSync(join(root, file), 'utf8')
        : execFileSync('git', ['show', `${ref}:${file}`], { cwd: root, encoding: 'utf8' });
    mkdirSync(dirname(join(into, file)), { recursive: true });
    writeFileSync(join(into, file), text);
  }
  return join(into, 'lib/protocol/codec.ts');
}

function child(modulePath: string): Record<string, number> {
  const run = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child', modulePath],
    { encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`bench child failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Record<string, number>;
}

async function main(argv: string[]): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const current = join(root, 'lib/protocol/codec.ts');
  const flag = (name: string): string | undefined => {
    const at = argv.indexOf(name);
    return at === -1 ? undefined : argv[at + 1];
  };
  const childPath = flag('--child');
  if (childPath !== undefined) {
    process.stdout.write(JSON.stringify(await round(childPath)));
    return;
  }
  const ref = flag('--against');
  if (ref === undefined) {
    for (const [name, ns] of Object.entries(await round(current))) {
      console.log(`${name.padEnd(46)} ${ns.toFixed(1).padStart(9)} ns`);
    }
    return;
  }
  const rounds = Number(flag('--rounds') ?? 7);
  // Under the checkout, so cbor-x and the tsconfig resolve as for lib/.
  mkdirSync(join(root, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(root, '.tmp', 'bench-codec-'));
  const modules = {
    before: checkout(root, join(dir, 'before'), ref),
    after: checkout(root, join(dir, 'after'), undefined),
  };
  try {
    const before: Record<string, number[]> = {};
    const after: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      // Alternate which side goes first, so drift in the machine's speed spreads over both.
      const order = r % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
      for (const side of order) {
        const result = child(modules[side]);
        const into = side === 'before' ? before : after;
        for (const [name, ns] of Object.entries(result)) (into[name] ??= []).push(ns);
      }
    }
    console.log(`${rounds} rounds, medians in ns per call; before = ${ref}, after = working tree`);
    console.log(`${'shape'.padEnd(46)} ${'before'.padStart(9)} ${'after'.padStart(9)}  ratio`);
    for (const name of Object.keys(after)) {
      const b = before[name] === undefined ? undefined : median(before[name]);
      const a = median(after[name]!);
      const ratio = b === undefined ? '' : (a / b).toFixed(3);
      const shown = b === undefined ? '-' : b.toFixed(1);
      console.log(`${name.padEnd(46)} ${shown.padStart(9)} ${a.toFixed(1).padStart(9)}  ${ratio}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
