/**
 * `switchboard demo`: the parent. It starts the child nodes with
 * `switchboard/testing` (one process per node running bin/demo/node.ts),
 * drives every scenario on all of them at once (prepare everywhere, then
 * go), kills and restarts one node midway, shows live progress and prints
 * the summary.
 */
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../../lib/testing/index.js';
import type { ClusterNode, EventNote, ProcessCluster } from '../../lib/testing/index.js';
import { Display, count, rate, seconds } from './display.js';
import type { SummaryRow } from './display.js';
import type { MetricsStats } from '../../lib/index.js';
import { metricsLines } from './metrics.js';
import type { NodeOutcome, Progress, ScenarioParams } from './ipc.js';
import type { DemoOptions } from './options.js';
import { FAILOVER, KILL_AFTER, REJOIN, SCENARIOS } from './scenarios.js';
import type { Scenario } from './scenarios.js';

/**
 * Faster failure detection than the library's defaults (1 s / 5 s), so the
 * kill is noticed quickly. node.ts also shortens the reconnect backoff and
 * the close linger; everything else runs on the defaults.
 */
const HEARTBEAT_MS = 300;
const DEAD_PEER_MS = 2_000;

/**
 * The node module, next to this file: `node.ts` under tsx, `node.js` once
 * compiled. The kit runs the nodes with this process's loader flags.
 */
const HERE = fileURLToPath(import.meta.url);
const NODE_MODULE = join(dirname(HERE), `node${extname(HERE)}`);

const BOOT_MS = 20_000;
const READY_MS = 20_000;
const PREPARE_MS = 10_000;
const RUN_MS = 30_000;
const CLOSE_MS = 10_000;

/** Peer states as one letter each, for the status block. */
const STATE_LETTER: Record<string, string> = {
  connecting: 'C',
  up: 'U',
  suspect: 'S',
  down: 'D',
  killed: 'X',
};

/** Thrown when the cluster is in no state to go on (a node hung or died). */
class Abort extends Error {}

interface Phase {
  readonly title: string;
  readonly total: number;
  readonly started: number;
  readonly counts: number[];
}

/** The JSON `--json` prints. */
export interface DemoSummary {
  readonly ok: boolean;
  readonly nodes: number;
  readonly messages: number;
  readonly ms: number;
  readonly rows: ReadonlyArray<SummaryRow & { readonly rate: number | undefined }>;
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const live = !options.json && !options.plain && process.stdout.isTTY === true;
  const display = new Display(options.json ? process.stderr : process.stdout, live);
  const demo = new Demo(options, display);
  const onSignal = (): void => {
    demo.killAll();
    display.stop();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await demo.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await demo.close();
    display.stop();
  }
}

class Demo {
  private readonly n: number;
  private cluster: ProcessCluster | undefined;
  /** view[observer][peer]: what each node thinks of each peer. */
  private readonly view: string[][];
  /** downAt[observer] peer -> when the parent heard `observer` declare `peer` down. */
  private readonly downAt: Array<Map<number, number>>;
  private phase: Phase | undefined;
  /** What the demo waits for between scenarios, for the status block. */
  private step: string | undefined;
  private readonly rows: SummaryRow[] = [];
  private readonly began = performance.now();
  private readonly deadline: number;
  private victim = -1;
  private startup = true;
  private plainTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: DemoOptions,
    private readonly display: Display,
  ) {
    this.n = options.nodes;
    this.deadline = this.began + options.timeoutS * 1000;
    this.view = Array.from({ length: this.n }, (_, i) =>
      Array.from({ length: this.n }, (_, j) => (i === j ? 'self' : 'connecting')),
    );
    this.downAt = Array.from({ length: this.n }, () => new Map<number, number>());
  }

  private get nodes(): readonly ClusterNode[] {
    return this.cluster?.nodes ?? [];
  }

  async run(): Promise<number> {
    const d = this.display;
    d.status(() => this.statusLines());
    try {
      await this.startAll();
      const only = this.options.only;
      const wanted = (key: string): boolean => only === undefined || only.includes(key);
      for (const s of SCENARIOS) {
        if (wanted(s.key)) this.rows.push(await this.scenario(s));
        if (s.key === KILL_AFTER && this.options.kill && wanted('kill')) {
          this.rows.push(...(await this.killAndRestart()));
          this.rows.push(await this.scenario(REJOIN));
        }
      }
      await this.showMetrics();
      this.rows.push(await this.closeAll());
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      d.log(d.paint('bad', `stopping: ${why}`));
      if (!this.rows.some((r) => r.result === 'FAILED'))
        this.rows.push(row('abort', 'Demo', 'FAILED', '', [why]));
    } finally {
      clearInterval(this.plainTimer);
      this.phase = undefined;
      this.step = undefined;
      d.status(undefined);
    }
    return this.finish();
  }

  // ---- steps -----------------------------------------------------------------

  private async startAll(): Promise<void> {
    const d = this.display;
    const t0 = performance.now();
    this.step = 'starting the nodes';
    // The kit draws a fresh 32-byte secret and hands it to each node over IPC.
    const cluster = await this.wait(
      startCluster({
        module: NODE_MODULE,
        nodes: this.n,
        // node.ts runs the scenarios on the library's defaults but these.
        options: {
          heartbeatMs: HEARTBEAT_MS,
          deadPeerMs: DEAD_PEER_MS,
          reconnectMinMs: 25,
          reconnectMaxMs: 250,
          lingerMs: 2_000,
        },
        timeoutMs: this.left(BOOT_MS),
      }),
    );
    this.cluster = cluster;
    for (const node of cluster.nodes) this.follow(node);
    const ports = cluster.addresses.map((a) => a.slice(a.lastIndexOf(':') + 1));
    d.write(
      d.paint('bold', `switchboard demo: ${this.n} nodes`) +
        ` on 127.0.0.1 (ports ${ports.join(', ')}), Node ${process.version}\n` +
        `links authenticated with HMAC-SHA256 over a random 32-byte secret; ` +
        `heartbeat ${HEARTBEAT_MS} ms, dead-peer timeout ${DEAD_PEER_MS} ms (demo settings)`,
    );
    d.log(`spawned ${this.n} node processes (pids ${cluster.nodes.map((x) => x.pid).join(', ')})`);
    this.step = 'waiting for rendezvous';
    const ready = await this.wait(Promise.all(cluster.nodes.map((x) => this.rendezvous(x))));
    const links = (this.n * (this.n - 1)) / 2;
    d.log(
      `rendezvous: ${links} authenticated link${links === 1 ? '' : 's'}, every node linked ` +
        `with every other in ${seconds(performance.now() - t0)} ` +
        `(slowest node: ${Math.max(...ready)} ms after its start)`,
    );
    this.startup = false;
    this.step = undefined;
  }

  /** Node `x` waits for every peer; resolves with how long after its start it had them. */
  private rendezvous(x: ClusterNode): Promise<number> {
    const ms = this.left(READY_MS);
    return x.invoke<number>('rendezvous', [ms], { timeoutMs: ms + 1_000 });
  }

  /** Every node prepares scenario `s`. */
  private prepare(s: Scenario, params: ScenarioParams): Promise<void[]> {
    return this.wait(
      Promise.all(
        this.nodes.map((x) =>
          x.invoke<void>('prepare', [s.key, params], { timeoutMs: this.left(PREPARE_MS) }),
        ),
      ),
    );
  }

  /** Node `x` runs scenario `s`: its outcome and when the parent got it. */
  private go(x: ClusterNode, s: Scenario): Promise<{ outcome: NodeOutcome; at: number }> {
    return x
      .invoke<NodeOutcome>('go', [s.key], { timeoutMs: this.left(RUN_MS) })
      .then((outcome) => ({ outcome, at: performance.now() }));
  }

  private async scenario(s: Scenario): Promise<SummaryRow> {
    const d = this.display;
    d.log(`${d.paint('bold', s.title)}: ${d.paint('dim', s.checks)}`);
    const params: ScenarioParams = {
      n: this.n,
      messages: this.options.messages,
      victim: this.victim,
    };
    const nodes = this.nodes;
    await this.prepare(s, params);
    const started = performance.now();
    this.phase = { title: s.title, total: s.total(params), started, counts: nodes.map(() => 0) };
    this.plainProgress();
    const done = await this.wait(Promise.all(nodes.map((x) => this.go(x, s))), s.title);
    clearInterval(this.plainTimer);
    this.phase = undefined;
    return this.outcome(
      s,
      params,
      done.map((r) => r.outcome),
      Math.max(...done.map((r) => r.at)) - started,
    );
  }

  /** Checks what every node reported for `s` (index = node id), logs it and makes its row. */
  private outcome(
    s: Scenario,
    params: ScenarioParams,
    outcomes: readonly NodeOutcome[],
    ms: number,
  ): SummaryRow {
    const d = this.display;
    const problems = [
      ...outcomes.flatMap((o, i) => o.problems.map((p) => `node ${i}: ${p}`)),
      ...(s.verify?.(outcomes, params) ?? []),
    ];
    const total = outcomes.reduce((a, o) => a + o.count, 0);
    const note = problems.length === 0 ? (s.note?.(outcomes, params) ?? '') : '';
    const result = problems.length === 0 ? 'ok' : 'FAILED';
    d.log(
      `${d.paint(result === 'ok' ? 'ok' : 'bad', result === 'ok' ? '✔' : '✘')} ${s.title}: ` +
        `${count(total)} checked in ${seconds(ms)} (${rate(total, ms)})` +
        (note ? `, ${note}` : '') +
        (problems.length > 0 ? `\n    ${problems.slice(0, 5).join('\n    ')}` : ''),
    );
    return { key: s.key, pattern: s.title, messages: total, ms, result, note, problems };
  }

  /**
   * Kills the last node with SIGKILL while it works on push-pull tasks,
   * waits for every survivor to declare it down and for its tasks to be
   * handed over, then restarts it and waits for it to rejoin.
   */
  private async killAndRestart(): Promise<SummaryRow[]> {
    const d = this.display;
    const s = FAILOVER;
    const victim = this.n - 1;
    d.log(`${d.paint('bold', s.title)}: ${d.paint('dim', s.checks)}`);
    this.victim = victim;
    const params: ScenarioParams = { n: this.n, messages: this.options.messages, victim };
    const cluster = this.cluster!;
    const old = cluster.node(victim);
    const survivors = this.nodes.filter((x) => x.id !== victim);
    const from = old.reports.length;
    await this.prepare(s, params);
    const started = performance.now();
    this.phase = {
      title: s.title,
      total: s.total(params),
      started,
      counts: this.nodes.map(() => 0),
    };
    this.plainProgress();
    const runs = this.nodes.map((x) => this.go(x, s));
    // The victim's call ends with its process.
    runs[victim]!.catch(() => undefined);
    // Kill it once it is busy with tasks.
    await this.wait(
      old.waitForReport<Progress>('progress', {
        from,
        match: (r) => r.scenario === s.key,
        timeoutMs: this.left(RUN_MS),
      }),
    );
    d.log(
      d.paint('warn', `killing node ${victim} (pid ${old.pid}) with SIGKILL`) +
        ` while it runs push-pull tasks`,
    );
    const t0 = performance.now();
    for (const x of survivors) this.downAt[x.id]!.delete(victim);
    await this.wait(cluster.kill(victim));
    this.phase.counts[victim] = 0;
    for (let p = 0; p < this.n; p++) if (p !== victim) this.view[victim]![p] = 'killed';
    this.step = `waiting for the others to declare node ${victim} down`;
    const [, done] = await this.wait(
      Promise.all([
        cluster.waitUntilDown(victim, { timeoutMs: this.left(DEAD_PEER_MS + 10_000) }),
        Promise.all(survivors.map((x) => runs[x.id]!)),
      ]),
      s.title,
    );
    clearInterval(this.plainTimer);
    this.phase = undefined;
    this.step = undefined;
    const detected =
      Math.max(...survivors.map((x) => this.downAt[x.id]!.get(victim) ?? performance.now())) - t0;
    d.log(
      `every survivor declared node ${victim} down within ${seconds(detected)} of the kill ` +
        `(dead-peer timeout ${DEAD_PEER_MS} ms)`,
    );
    const failoverRow = this.outcome(
      s,
      params,
      done.map((r) => r.outcome).concat([{ count: 0, problems: [] }]),
      Math.max(...done.map((r) => r.at)) - started,
    );

    const t1 = performance.now();
    const seenBefore = survivors.map((x) => x.events.length);
    for (let p = 0; p < this.n; p++) if (p !== victim) this.view[victim]![p] = 'connecting';
    d.log(`restarting node ${victim} on the same port`);
    this.step = `waiting for node ${victim} to rejoin`;
    await this.wait(cluster.restart(victim));
    d.log(`node ${victim} restarted (pid ${old.pid})`);
    await this.wait(
      Promise.all([
        this.rendezvous(old),
        cluster.waitUntilAllUp({ timeoutMs: this.left(READY_MS) }),
      ]).then(() => {
        // A survivor that saw it up again must have seen it restarted first.
        survivors.forEach((x, i) => {
          const restarted = x.events
            .slice(seenBefore[i])
            .some((e) => e.type === 'peer-restarted' && e.node === victim);
          if (!restarted) throw new Error(`node ${x.id} reported no peer-restarted of ${victim}`);
        });
      }),
    );
    const rejoined = performance.now() - t1;
    this.step = undefined;
    d.log(
      `${d.paint('ok', '✔')} node ${victim} rejoined as a new incarnation ` +
        `(${(old.incarnation ?? '').slice(0, 8)}); every survivor reported peer-restarted`,
    );
    const killRow: SummaryRow = {
      key: 'kill',
      pattern: 'Node kill + restart',
      messages: undefined,
      ms: detected + rejoined,
      result: 'ok',
      note:
        `down seen by ${survivors.length}/${survivors.length} in ${seconds(detected)}, ` +
        `rejoined in ${seconds(rejoined)}`,
      problems: [],
    };
    return [killRow, failoverRow];
  }

  /**
   * What the nodes' own metrics say about the traffic (docs/metrics.md),
   * summed over the nodes; with --metrics, each node's Prometheus text too.
   */
  private async showMetrics(): Promise<void> {
    const d = this.display;
    const ms = this.left(PREPARE_MS);
    const all = await this.wait(
      Promise.all(this.nodes.map((x) => x.invoke<MetricsStats>('metrics', [], { timeoutMs: ms }))),
    );
    d.write(
      `\nmetrics: stats().metrics of the ${all.length} nodes, summed (a restarted node counts from zero again)\n\n${metricsLines(all).join('\n')}\n`,
    );
    if (!this.options.metrics) return;
    for (const x of this.nodes) {
      const text = await this.wait(x.invoke<string>('metricsText', [], { timeoutMs: ms }));
      d.write(`\n# node ${x.id}: sb.metrics()\n${text}`);
    }
  }

  private async closeAll(): Promise<SummaryRow> {
    const t0 = performance.now();
    this.step = 'closing every node';
    const cluster = this.cluster!;
    // Each node closes its switchboard and must then exit 0 by itself: if
    // the library left a handle open, the node hangs, and the kit says so.
    const failures = await Promise.all(
      this.nodes.map((x) =>
        cluster.stop(x.id, { timeoutMs: this.left(CLOSE_MS), exitByItself: true }).then(
          () => undefined,
          (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!,
        ),
      ),
    );
    const ms = performance.now() - t0;
    this.step = undefined;
    const problems = failures.filter((f) => f !== undefined);
    const result = problems.length === 0 ? 'ok' : 'FAILED';
    this.display.log(
      result === 'ok'
        ? `${this.display.paint('ok', '✔')} every node closed gracefully and exited 0 in ${seconds(ms)}`
        : this.display.paint('bad', `✘ close: ${problems.join('; ')}`),
    );
    return {
      key: 'close',
      pattern: 'Graceful close',
      messages: undefined,
      ms,
      result,
      note: result === 'ok' ? 'all exited 0' : '',
      problems,
    };
  }

  private finish(): number {
    const d = this.display;
    const ms = performance.now() - this.began;
    const failed = this.rows.filter((r) => r.result !== 'ok');
    const ok = failed.length === 0;
    if (this.options.json) {
      const summary: DemoSummary = {
        ok,
        nodes: this.n,
        messages: this.options.messages,
        ms: Math.round(ms),
        rows: this.rows.map((r) => ({
          ...r,
          ms: r.ms === undefined ? undefined : Math.round(r.ms),
          rate:
            r.messages === undefined || r.ms === undefined || r.ms === 0
              ? undefined
              : Math.round((r.messages * 1000) / r.ms),
        })),
      };
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    }
    d.write(
      `\nsummary: ${this.n} nodes, ${count(this.options.messages)} messages per sender\n\n` +
        d.table(this.rows) +
        '\n\n',
    );
    if (ok) {
      d.write(d.paint('ok', `all ${this.rows.length} checks passed in ${seconds(ms)}`));
      return 0;
    }
    const lines = failed.map(
      (r) => `  ${r.pattern}: ${r.result}${r.problems.length > 0 ? ` - ${r.problems[0]}` : ''}`,
    );
    d.write(
      d.paint('bad', `${failed.length} of ${this.rows.length} checks did not pass:`) +
        '\n' +
        lines.join('\n'),
    );
    return 1;
  }

  // ---- plumbing ----------------------------------------------------------------

  /** On a signal: every node dies at once (the kit also kills them as this process exits). */
  killAll(): void {
    for (const x of this.nodes) x.signal('SIGKILL');
  }

  /** Every node killed that is still there, and the kit's proxies closed. */
  async close(): Promise<void> {
    await this.cluster?.close();
  }

  /** Milliseconds to wait: `ms`, but never past the overall deadline. */
  private left(ms: number): number {
    return Math.max(1, Math.min(ms, this.deadline - performance.now()));
  }

  /** Awaits a step; a node that hung or died stops the demo. */
  private async wait<T>(p: Promise<T>, during?: string): Promise<T> {
    try {
      return await p;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (during !== undefined) this.rows.push(row('abort', during, 'FAILED', '', [why]));
      if (performance.now() >= this.deadline)
        throw new Abort(
          `the demo did not finish within --timeout ${this.options.timeoutS} s: ${why}`,
        );
      throw new Abort(why);
    }
  }

  /** Follows node `x` live: its progress counts and its switchboard's events. */
  private follow(x: ClusterNode): void {
    x.onReport((r) => {
      if (r.kind === 'progress' && this.phase !== undefined)
        this.phase.counts[x.id] = (r.data as Progress).count;
    });
    x.onEvent((e, at) => this.onEvent(x.id, e, at));
  }

  private onEvent(observer: number, e: EventNote, at: number): void {
    const d = this.display;
    // Counted by the scenarios themselves.
    if (e.type === 'drop') return;
    if (e.type === 'peer-down' && e.node !== undefined) this.downAt[observer]!.set(e.node, at);
    const states: Record<string, string> = {
      'peer-up': 'up',
      'peer-restarted': 'up',
      'peer-reconnected': 'up',
      'peer-suspect': 'suspect',
      'peer-down': 'down',
    };
    const state = states[e.type];
    if (state !== undefined && e.node !== undefined) this.view[observer]![e.node] = state;
    // At start-up every pair reports peer-up: the rendezvous line sums that up.
    if (this.startup && e.type === 'peer-up') return;
    const about = e.node === undefined ? '' : ` node ${e.node}`;
    const detail =
      e.type === 'peer-up' || e.type === 'peer-restarted'
        ? e.incarnation?.slice(0, 8)
        : e.detail?.split('\n')[0];
    const text = `node ${observer}: ${e.type}${about}${detail ? ` (${detail})` : ''}`;
    const style = e.type === 'peer-down' || e.type.endsWith('error') ? 'bad' : 'dim';
    d.log(e.type === 'peer-up' || e.type === 'peer-restarted' ? text : d.paint(style, text));
  }

  /** Without a terminal: a progress line per second while a long step runs. */
  private plainProgress(): void {
    if (this.display.live) return;
    let last = -1;
    clearInterval(this.plainTimer);
    this.plainTimer = setInterval(() => {
      const p = this.phase;
      if (p === undefined) return;
      const done = p.counts.reduce((a, b) => a + b, 0);
      if (done === last) return;
      last = done;
      const ms = performance.now() - p.started;
      const of = p.total > 0 ? ` / ${count(p.total)}` : '';
      this.display.log(`  ${p.title}: ${count(done)}${of} (${rate(done, ms)})`);
    }, 1_000);
    this.plainTimer.unref();
  }

  private statusLines(): string[] {
    const d = this.display;
    const cells = this.view.map((row, i) => {
      const letters = row
        .map((s, j) => (i === j ? '·' : (STATE_LETTER[s] ?? '?')))
        .map((l) =>
          l === 'U'
            ? d.paint('ok', l)
            : l === 'D' || l === 'X'
              ? d.paint('bad', l)
              : l === 'S'
                ? d.paint('warn', l)
                : l,
        )
        .join('');
      return `n${i} ${letters}`;
    });
    const lines = [
      `${d.paint('bold', 'peers')}  ${cells.join('  ')}   ${d.paint('dim', 'U up  S suspect  D down  C connecting  X killed')}`,
    ];
    const p = this.phase;
    if (p !== undefined) {
      const done = p.counts.reduce((a, b) => a + b, 0);
      const ms = performance.now() - p.started;
      const width = 24;
      const filled = Math.min(width, Math.round((done / p.total) * width));
      const bar =
        p.total > 0
          ? `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${count(done)} / ${count(p.total)}`
          : count(done);
      lines.push(
        `${d.paint('bold', '▸')} ${p.title.padEnd(26)} ${bar}  ${rate(done, ms)}  ${seconds(ms)}`,
      );
    }
    if (this.step !== undefined) {
      const spin = '|/-\\'[Math.floor(performance.now() / 150) % 4];
      lines.push(`${d.paint('bold', '▸')} ${this.step} ${spin}`);
    }
    return lines;
  }
}

function row(
  key: string,
  pattern: string,
  result: SummaryRow['result'],
  note: string,
  problems: string[],
): SummaryRow {
  return { key, pattern, messages: undefined, ms: undefined, result, note, problems };
}
