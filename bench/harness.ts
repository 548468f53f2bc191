/**
 * Shared helpers for every benchmark in bench/: machine description, rounds
 * with median and spread, a table with ratio columns against named
 * baselines, a JSON results file and hand-written SVG bar charts.
 *
 * Benchmarks report ratios against baselines measured in the same run,
 * because absolute numbers drift by 10-25 % between runs on shared machines
 * (docs/benchmarks.md).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** Where results go: bench/results (git-ignored except its .gitkeep). */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');
/** The JSON file holding the latest run, appended module by module. */
export const RESULTS_FILE = join(RESULTS_DIR, 'latest.json');

/** Command-line options every benchmark understands. */
export interface BenchOptions {
  /** `--quick`: fewer rounds and smaller workloads, for a fast smoke run. */
  quick: boolean;
  /** Measured rounds per variant (`--rounds N`). Default 5, or 2 with `--quick`. */
  rounds: number;
  /** Module names to run (`--only a,b`); undefined runs them all. */
  only: readonly string[] | undefined;
  /**
   * `--vs PATH`: an older build of the library (its dist/lib/index.js) that
   * the modules supporting it run side by side with this one, as the
   * variant `switchboard (before)`.
   */
  vs: string | undefined;
  /**
   * `--workloads a,b`: only the workloads whose label contains one of these
   * strings (`--workloads "64 KiB"`), in the modules that list workloads
   * (steady); undefined runs them all.
   */
  workloads: readonly string[] | undefined;
}

/** Parses `--quick`, `--rounds N`, `--only a,b`, `--vs PATH` and `--workloads a,b`; throws on anything else. */
export function parseBenchArgs(argv: readonly string[] = process.argv.slice(2)): BenchOptions {
  let quick = false;
  let rounds: number | undefined;
  let only: string[] | undefined;
  let vs: string | undefined;
  let workloads: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') {
      quick = true;
    } else if (arg === '--rounds' || arg.startsWith('--rounds=')) {
      const value = arg === '--rounds' ? argv[++i] : arg.slice('--rounds='.length);
      rounds = Number(value);
      if (!Number.isSafeInteger(rounds) || rounds < 1) {
        throw new Error(`--rounds expects a positive integer, got ${value}`);
      }
    } else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      only = (value ?? '').split(',').filter((s) => s.length > 0);
    } else if (arg === '--vs' || arg.startsWith('--vs=')) {
      const value = arg === '--vs' ? argv[++i] : arg.slice('--vs='.length);
      if (value === undefined || value.length === 0)
        throw new Error('--vs expects the path of an older build (its dist/lib/index.js)');
      vs = resolve(value);
    } else if (arg === '--workloads' || arg.startsWith('--workloads=')) {
      const value = arg === '--workloads' ? argv[++i] : arg.slice('--workloads='.length);
      workloads = (value ?? '').split(',').filter((s) => s.length > 0);
      if (workloads.length === 0) throw new Error('--workloads expects labels, e.g. "64 KiB"');
    } else {
      throw new Error(
        `unknown argument ${arg} (expected --quick, --rounds N, --only a,b, --vs PATH, --workloads a,b)`,
      );
    }
  }
  return { quick, rounds: rounds ?? (quick ? 2 : 5), only, vs, workloads };
}

/** What the numbers were measured on. */
export interface MachineInfo {
  node: string;
  v8: string;
  cpu: string;
  cores: number;
  os: string;
  arch: string;
  memoryGiB: number;
}

/** Describes this machine and runtime. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    os: `${platform()} ${release()}`,
    arch: process.arch,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** Prints the machine description, one line, before any result. */
export function printMachine(info: MachineInfo = machineInfo()): void {
  console.log(
    `node ${info.node} (v8 ${info.v8}) | ${info.cpu} x${info.cores} | ${info.os} ${info.arch} | ${info.memoryGiB} GiB`,
  );
}

/** Median and spread of one variant's rounds. */
export interface Measurement {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: how much the rounds disagree. */
  spread: number;
  samples: number[];
}

/** Summarizes round results. */
export function summarize(samples: readonly number[]): Measurement {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const min = sorted[0]!;
  const max = sorted.at(-1)!;
  return {
    median,
    min,
    max,
    spread: median === 0 ? 0 : (max - min) / median,
    samples: [...samples],
  };
}

/** One round of one variant: returns its metric (for example msg/s). */
export type Round = () => number | Promise<number>;

/** Warm-up of {@link compareRounds}. */
export interface WarmupOptions {
  /** Unmeasured rounds per variant before measuring. Default 1. */
  rounds?: number;
  /**
   * Keep warming up until every variant has run at least this long, in
   * seconds. Default 0. Workloads that allocate large buffers need it: V8
   * sizes its heap to the allocation rate over the first few hundred MB, and
   * short rounds would measure that ramp instead of the code.
   */
  seconds?: number;
}

/**
 * Runs every variant for `rounds` rounds, interleaved (A B, then B A, ...) so
 * that drift in machine load hits all variants alike, after an unmeasured
 * warm-up (JIT, allocator, heap sizing).
 */
export async function compareRounds(
  rounds: number,
  variants: Readonly<Record<string, Round>>,
  warmup: WarmupOptions = {},
): Promise<Record<string, Measurement>> {
  const names = Object.keys(variants);
  const run = async (
    order: readonly string[],
    record?: Record<string, number[]>,
  ): Promise<number> => {
    let slowest = 0;
    for (const name of order) {
      const t = seconds();
      const value = await variants[name]!();
      slowest = Math.max(slowest, seconds() - t);
      record?.[name]!.push(value);
    }
    return slowest;
  };
  let warmed = 0;
  for (let r = 0; r < (warmup.rounds ?? 1) || warmed < (warmup.seconds ?? 0); r++) {
    warmed += await run(r % 2 === 0 ? [...names].reverse() : names);
  }
  const samples: Record<string, number[]> = {};
  for (const name of names) samples[name] = [];
  for (let r = 0; r < rounds; r++) await run(r % 2 === 0 ? names : [...names].reverse(), samples);
  const out: Record<string, Measurement> = {};
  for (const name of names) out[name] = summarize(samples[name]!);
  return out;
}

/** Runs one workload for `rounds` rounds after a warm-up. */
export async function measure(
  rounds: number,
  round: Round,
  warmup: WarmupOptions = {},
): Promise<Measurement> {
  return (await compareRounds(rounds, { only: round }, warmup)).only!;
}

/** A monotonic clock in seconds, for timing sections of a round. */
export function seconds(): number {
  return performance.now() / 1000;
}

/** Whether a larger value is better (throughput) or a smaller one (latency). */
export type Better = 'higher' | 'lower';

/** One line of results. */
export interface BenchRow extends Measurement {
  /** The bench module that produced it (`framing`, `transport`, ...). */
  module: string;
  /** What was measured, e.g. `encode+decode 256 B`. */
  workload: string;
  /** Who was measured, e.g. `raw` or `switchboard`. */
  variant: string;
  /** Unit of median/min/max, e.g. `msg/s`, `B/s`, `µs`. */
  unit: string;
  better: Better;
  /** Free-form remark printed after the row. */
  note?: string;
}

/** Builds a row from a measurement. */
export function toRow(
  module: string,
  workload: string,
  variant: string,
  unit: string,
  m: Measurement,
  better: Better = 'higher',
  note?: string,
): BenchRow {
  return { module, workload, variant, unit, better, ...m, ...(note === undefined ? {} : { note }) };
}

/**
 * `row.median / baseline.median` where the baseline is the row of the same
 * module and workload whose variant is `baseline`; undefined without one.
 */
export function ratio(
  rows: readonly BenchRow[],
  row: BenchRow,
  baseline: string,
): number | undefined {
  const base = rows.find(
    (r) => r.module === row.module && r.workload === row.workload && r.variant === baseline,
  );
  if (base === undefined || base.median === 0) return undefined;
  return row.median / base.median;
}

const SI = [
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
] as const;

/** A value with an SI prefix and its unit: `1.23 M msg/s`, `1.65 GB/s`. */
export function formatValue(value: number, unit: string): string {
  if (unit === 'µs' || unit === 'ms' || unit === '%') return `${value.toFixed(1)} ${unit}`;
  // Byte units take the prefix as one symbol (GB/s); counted things read better apart (M msg/s).
  const glue = unit.startsWith('B') ? '' : ' ';
  for (const [scale, prefix] of SI) {
    if (Math.abs(value) >= scale) return `${(value / scale).toFixed(2)} ${prefix}${glue}${unit}`;
  }
  return `${value.toFixed(1)} ${unit}`;
}

/** Options of {@link printTable}. */
export interface TableOptions {
  /** Variant names to compare against, one ratio column each (e.g. `raw`, `zeromq`). */
  baselines: readonly string[];
  /** Printed above the table. */
  title?: string;
}

/**
 * Prints rows grouped by module and workload, with the median, the spread
 * and one `vs <baseline>` column per baseline (value / baseline median: above
 * 1.00x is faster for throughput, slower for latency; `better` says which).
 */
export function printTable(rows: readonly BenchRow[], options: TableOptions): void {
  const header = [
    'module',
    'workload',
    'variant',
    'median',
    'spread',
    ...options.baselines.map((b) => `vs ${b}`),
  ];
  const lines: string[][] = rows.map((row) => [
    row.module,
    row.workload,
    row.variant,
    formatValue(row.median, row.unit),
    `±${((row.spread / 2) * 100).toFixed(0)}%`,
    ...options.baselines.map((b) => {
      const r = ratio(rows, row, b);
      return r === undefined ? '' : `${r.toFixed(2)}x`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const numeric = (i: number): boolean => i >= 3;
  const fmt = (cells: readonly string[]): string =>
    cells.map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  if (options.title !== undefined) console.log(`\n${options.title}`);
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let previous: string | undefined;
  rows.forEach((row, i) => {
    const group = `${row.module}\u0000${row.workload}`;
    if (previous !== undefined && group !== previous) console.log('');
    previous = group;
    const note = row.note === undefined ? '' : `  (${row.note})`;
    console.log(fmt(lines[i]!) + note);
  });
}

/** The results file: the latest run, appended to as each module finishes. */
export interface ResultsFile {
  runId: string;
  startedAt: string;
  machine: MachineInfo;
  options: BenchOptions;
  rows: BenchRow[];
}

/**
 * Appends `rows` to the results file of run `runId`, starting the file afresh
 * when it holds another run. Written via a temporary file and a rename, so a
 * crash never leaves half a file.
 */
export function appendResults(
  rows: readonly BenchRow[],
  run: Omit<ResultsFile, 'rows'>,
  file: string = RESULTS_FILE,
): void {
  let current: ResultsFile = { ...run, rows: [] };
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as ResultsFile;
    if (parsed.runId === run.runId && Array.isArray(parsed.rows)) current = parsed;
  } catch {
    // No file yet, or one from an older format: start afresh.
  }
  current.rows.push(...rows);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(current, null, 2)}\n`);
  renameSync(tmp, file);
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A file-name-safe form of a workload name. */
export function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/**
 * Renders one workload as a horizontal bar chart: a bar per variant at its
 * median, a whisker from min to max, the value and the ratio to `baseline`.
 * Plain SVG 1.1, no scripts, no external fonts.
 */
export function renderSvg(title: string, rows: readonly BenchRow[], baseline?: string): string {
  const barHeight = 22;
  const gap = 10;
  const labelWidth = 190;
  const chartWidth = 420;
  const valueWidth = 190;
  const top = 40;
  const width = labelWidth + chartWidth + valueWidth;
  const height = top + rows.length * (barHeight + gap) + 24;
  const scale = Math.max(...rows.map((r) => r.max), 1e-12);
  const base = baseline === undefined ? undefined : rows.find((r) => r.variant === baseline);
  const unit = rows[0]?.unit ?? '';
  const better = rows[0]?.better === 'lower' ? 'lower is better' : 'higher is better';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${width - 10}" y="20" text-anchor="end" fill="#666">${escapeXml(`${unit}, median of ${rows[0]?.samples.length ?? 0} rounds, ${better}`)}</text>`,
  ];
  rows.forEach((row, i) => {
    const y = top + i * (barHeight + gap);
    const w = (row.median / scale) * chartWidth;
    const x0 = labelWidth + (row.min / scale) * chartWidth;
    const x1 = labelWidth + (row.max / scale) * chartWidth;
    const mid = y + barHeight / 2;
    const fill = row.variant === baseline ? '#9e9e9e' : '#3f7fbf';
    const r = base === undefined || base.median === 0 ? undefined : row.median / base.median;
    const label = `${formatValue(row.median, row.unit)}${r === undefined || row === base ? '' : ` (${r.toFixed(2)}x)`}`;
    parts.push(
      `<text x="${labelWidth - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(row.variant)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${fill}"/>`,
      `<line x1="${x0.toFixed(1)}" y1="${mid}" x2="${x1.toFixed(1)}" y2="${mid}" stroke="#222" stroke-width="1.5"/>`,
      `<line x1="${x0.toFixed(1)}" y1="${mid - 5}" x2="${x0.toFixed(1)}" y2="${mid + 5}" stroke="#222"/>`,
      `<line x1="${x1.toFixed(1)}" y1="${mid - 5}" x2="${x1.toFixed(1)}" y2="${mid + 5}" stroke="#222"/>`,
      `<text x="${labelWidth + chartWidth + 8}" y="${mid + 4}">${escapeXml(label)}</text>`,
    );
  });
  parts.push(
    `<text x="10" y="${height - 8}" fill="#666">${escapeXml(`whiskers: min to max${baseline === undefined ? '' : `; ratios vs ${baseline}`}`)}</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}

/**
 * Writes one SVG per module and workload into `dir` and returns their paths.
 * The ratio shown is against the first of `baselines` present in the workload.
 */
export function writeCharts(
  rows: readonly BenchRow[],
  baselines: readonly string[],
  dir: string = RESULTS_DIR,
): string[] {
  mkdirSync(dir, { recursive: true });
  const groups = new Map<string, BenchRow[]>();
  for (const row of rows) {
    const key = `${row.module}-${slug(row.workload)}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const files: string[] = [];
  for (const [key, group] of groups) {
    const first = group[0]!;
    const baseline = baselines.find((b) => group.some((r) => r.variant === b));
    const file = join(dir, `${key}.svg`);
    writeFileSync(file, renderSvg(`${first.module}: ${first.workload}`, group, baseline));
    files.push(file);
  }
  return files;
}

/** What a bench module is given. */
export interface BenchContext extends BenchOptions {
  /** Prints a progress line (kept short: the table comes at the end). */
  log(line: string): void;
}

/**
 * A benchmark that `npm run bench` runs. Register it in bench/run.ts.
 * Each module measures its own baselines in the same run as its variants.
 */
export interface BenchModule {
  /** Short name, used by `--only` and in file names. */
  readonly name: string;
  /** One line saying what is measured. */
  readonly description: string;
  /** Variant names its ratio columns compare against, most important first. */
  readonly baselines: readonly string[];
  run(ctx: BenchContext): Promise<BenchRow[]>;
}
