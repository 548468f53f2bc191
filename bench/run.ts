/**
 * `npm run bench [-- --quick] [--rounds N] [--only a,b]`: runs every
 * registered bench module in sequence, then prints the combined table and
 * writes bench/results/latest.json and one SVG chart per workload.
 *
 * To add a benchmark, write a module implementing BenchModule (see
 * bench/framing.ts) and append it to `benchModules`.
 */
import { randomUUID } from 'node:crypto';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { channels } from './channels.js';
import { cluster } from './cluster.js';
import { framing } from './framing.js';
import { pubsub } from './pubsub.js';
import { rpc } from './rpc.js';
import { scale } from './scale.js';
import { steady } from './steady.js';
import type { BenchModule, BenchRow } from './harness.js';
import {
  RESULTS_FILE,
  appendResults,
  machineInfo,
  parseBenchArgs,
  printMachine,
  printTable,
  writeCharts,
} from './harness.js';

/** Every benchmark `npm run bench` runs, in order. Planned: transport, channels, rpc, pubsub. */
export const benchModules: BenchModule[] = [framing, channels, steady, cluster, scale, rpc, pubsub];

/** Runs the selected modules and reports; resolves to every row measured. */
export async function runBenchmarks(
  argv: readonly string[] = process.argv.slice(2),
  modules: readonly BenchModule[] = benchModules,
): Promise<BenchRow[]> {
  const options = parseBenchArgs(argv);
  const unknown = (options.only ?? []).filter((n) => !modules.some((m) => m.name === n));
  if (unknown.length > 0) {
    throw new Error(
      `unknown bench module(s): ${unknown.join(', ')}; have ${modules.map((m) => m.name).join(', ')}`,
    );
  }
  const selected = modules.filter(
    (m) => options.only === undefined || options.only.includes(m.name),
  );
  const machine = machineInfo();
  const run = { runId: randomUUID(), startedAt: new Date().toISOString(), machine, options };
  printMachine(machine);
  console.log(
    `${options.rounds} rounds per variant${options.quick ? ' (quick)' : ''}; modules: ${selected.map((m) => m.name).join(', ')}`,
  );

  const rows: BenchRow[] = [];
  for (const module of selected) {
    const started = Date.now();
    console.log(`\n> ${module.name}: ${module.description}`);
    const moduleRows = await module.run({ ...options, log: (line) => console.log(`  ${line}`) });
    rows.push(...moduleRows);
    // Saved as each module ends, so a crash later keeps what was measured.
    appendResults(moduleRows, run);
    console.log(`  done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  const baselines = [...new Set(selected.flatMap((m) => m.baselines))];
  const caveat = options.quick ? '; --quick: short rounds, indicative only' : '';
  printTable(rows, {
    baselines,
    title: `Results (median of ${options.rounds} rounds; ratio = variant / baseline${caveat})`,
  });
  const charts = writeCharts(rows, baselines);
  console.log(
    `\nwrote ${relative(process.cwd(), RESULTS_FILE)} and ${charts.length} chart(s) in ${relative(process.cwd(), RESULTS_FILE).replace(/latest\.json$/, '')}`,
  );
  return rows;
}

// Run only when executed (tsx bench/run.ts), not when imported for its list.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runBenchmarks().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
