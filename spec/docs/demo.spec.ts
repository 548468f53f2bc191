/**
 * The demo as a user runs it: `npm run demo -- --nodes 3` in a child process
 * (output not a terminal), bounded in time. It must exit 0 and print a
 * summary in which every pattern checked out.
 */
import { explain, runProgram } from './run-program.js';
import type { ProgramResult } from './run-program.js';

/** The demo must finish well under a minute; this bound only catches a hang. */
const BOUND_MS = 90_000;

/** Every row the summary must show, each with the result `ok`. */
const ROWS = [
  'MPSC channel',
  'Sender in a message',
  'MPMC work queue (one)',
  'MPMC broadcast (all)',
  'RPC unary',
  'RPC streaming',
  'Node kill + restart',
  'Push-pull failover',
  'Traffic after rejoin',
  'Pub-sub (wildcards)',
  'Push-pull',
  'Fire-and-forget (post)',
  'Graceful close',
];

/** Rows that count messages or calls: their count must be positive. */
const COUNTED = ROWS.filter((r) => !['Node kill + restart', 'Graceful close'].includes(r));

function expectExit0(r: ProgramResult): void {
  if (r.code !== 0 || r.timedOut) throw new Error(`the demo failed: ${explain(r)}`);
}

/** The summary table's rows: pattern -> { messages, result }. */
function summaryRows(stdout: string): Map<string, { messages: string; result: string }> {
  const lines = stdout.split('\n');
  const head = lines.findIndex((l) => /^pattern\s+messages\s+time\s+rate\s+result$/.test(l));
  if (head < 0) throw new Error(`no summary table in:\n${stdout}`);
  const rows = new Map<string, { messages: string; result: string }>();
  // Columns are separated by two spaces or more; the pattern never contains two.
  for (const line of lines.slice(head + 2)) {
    if (line.trim() === '') break;
    const cols = line.split(/\s{2,}/);
    rows.set(cols[0]!, { messages: cols[1]!, result: cols.slice(4).join('  ') });
  }
  return rows;
}

describe('npm run demo', () => {
  let run: ProgramResult;

  beforeAll(async () => {
    run = await runProgram('npm', ['run', 'demo', '--', '--nodes', '3'], BOUND_MS);
  }, BOUND_MS + 5_000);

  it('exits 0 well within a minute', () => {
    expectExit0(run);
    expect(run.ms).toBeLessThan(60_000);
  });

  it('prints plain lines, without terminal escapes, when stdout is not a terminal', () => {
    expect(run.stdout).not.toContain('\u001b[');
    expect(run.stdout).toMatch(/^\[\s*\d+\.\d\ds\] spawned 3 node processes/m);
    expect(run.stdout).toMatch(/rendezvous: 3 authenticated links/);
  });

  it('shows every pattern checked out in the summary table', () => {
    expectExit0(run);
    const rows = summaryRows(run.stdout);
    expect([...rows.keys()]).toEqual(ROWS);
    for (const [pattern, row] of rows) {
      expect({ pattern, result: row.result.split(/\s/)[0] }).toEqual({ pattern, result: 'ok' });
    }
    for (const pattern of COUNTED) {
      const n = Number(rows.get(pattern)!.messages.replace(/,/g, ''));
      expect({ pattern, positive: n > 0 }).toEqual({ pattern, positive: true });
    }
    expect(run.stdout).toMatch(new RegExp(`all ${ROWS.length} checks passed`));
  });

  it("prints what the nodes' own metrics counted: every RPC call and every task", () => {
    // Node 0 makes every demo.square call and pushes every demo.jobs task.
    const calls =
      /^rpc call +demo\.square +(\d+) calls {2}0 failed {2}p50 [\d.]+ ms {2}p99 [\d.]+ ms$/m.exec(
        run.stdout,
      );
    expect(calls).not.toBeNull();
    expect(Number(calls![1])).toBeGreaterThan(0);
    const jobs = /^queue +demo\.jobs +(\d+) sent {2}(\d+) processed$/m.exec(run.stdout);
    expect(jobs).not.toBeNull();
    expect(Number(jobs![1])).toBeGreaterThan(0);
    // The push-pull step runs after the restart: no counter was lost with a process.
    expect(jobs![2]).toBe(jobs![1]);
  });

  it('shows the survivors noticing the killed node and its rejoining', () => {
    expectExit0(run);
    for (const observer of [0, 1]) {
      expect(run.stdout).toContain(`node ${observer}: peer-down node 2`);
      expect(run.stdout).toContain(`node ${observer}: peer-restarted node 2`);
    }
    expect(run.stdout).toMatch(/killing node 2 \(pid \d+\) with SIGKILL/);
    expect(run.stdout).toMatch(/Push-pull failover .* ok {2}all [\d,]+ done; [\d,]+ handed over/);
  });
});

describe('switchboard command line', () => {
  const cli = (args: string[]): Promise<ProgramResult> =>
    runProgram(process.execPath, ['--import', 'tsx', 'bin/switchboard.ts', ...args], 30_000);

  it('documents every flag in --help', async () => {
    const r = await cli(['demo', '--help']);
    expectExit0(r);
    for (const flag of [
      '--nodes',
      '--messages',
      '--no-kill',
      '--json',
      '--metrics',
      '--plain',
      '--timeout',
      '--help',
    ])
      expect(r.stdout).toContain(flag);
    const top = await cli(['--help']);
    expectExit0(top);
    expect(top.stdout).toMatch(/^\s+demo \[options\]/m);
  }, 40_000);

  it('refuses a bad flag with exit code 2 and says which', async () => {
    const r = await cli(['demo', '--nodes', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nodes must be an integer in 2..16');
  }, 40_000);

  it('prints a JSON summary with --json', async () => {
    const r = await cli(['demo', '--json', '--nodes', '2', '--messages', '200', '--no-kill']);
    const summary = JSON.parse(r.stdout) as {
      ok: boolean;
      nodes: number;
      rows: Array<{ key: string; result: string; messages?: number }>;
    };
    expect(summary.nodes).toBe(2);
    expect(summary.rows.map((x) => x.key)).toContain('mpsc');
    expect(summary.ok).toBe(summary.rows.every((x) => x.result === 'ok'));
    expect(r.code).toBe(summary.ok ? 0 : 1);
  }, 40_000);
});
