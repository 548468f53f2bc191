/**
 * The commands that look at a live cluster: `ping`, `peers`, `methods`
 * and `stats`, each from the system methods every member serves
 * (docs/api.md, "Introspection"), asked of every member at once.
 */
import { renderPrometheus, SYSTEM_METHODS } from '../../../lib/index.js';
import type {
  MethodInfo,
  MethodsReply,
  PeerInfo,
  PeersReply,
  PingReply,
  SwitchboardStats,
} from '../../../lib/index.js';
import { metricsLines } from '../../demo/metrics.js';
import { askAll, defineCommand } from '../command.js';
import type { Answer, Args } from '../command.js';
import { EXIT } from '../exit.js';
import { errorLine, ms, out, summarize, table, toJson } from '../format.js';
import { intFlag, secondsFlag } from '../target.js';

const TIMEOUT = { timeout: { type: 'string' } } as const;
const TIMEOUT_HELP = `  --timeout <s>           how long to wait for each member's answer (default 5)`;

const timeoutOf = (a: Args): number =>
  secondsFlag('timeout', a.values.timeout as string | undefined, 5);

/** Exit 1 when a member did not answer. */
const statusOf = (answers: readonly Answer<unknown>[]): number =>
  answers.every((a) => a.ok) ? EXIT.OK : EXIT.FAILED;

const shortInc = (inc: string | undefined): string => (inc === undefined ? '-' : inc.slice(0, 8));

function noAnswer(a: Answer<unknown> & { ok: false }): string {
  return `node ${a.node} (${a.address}): no answer: ${a.error}`;
}

export const ping = defineCommand({
  name: 'ping',
  summary: 'round-trip time to every member',
  usage: `Usage: switchboard ping [options]

Calls $sb.ping on every member, --count times each, one after the other,
and prints each member's round trip (min/avg/max) and incarnation.`,
  optionsHelp: `  --count <n>             calls per member, 1..1000 (default 3)
${TIMEOUT_HELP}`,
  options: { count: { type: 'string' }, ...TIMEOUT },
  positionals: [0, 0],
  parse: (a) => ({
    count: intFlag('count', a.values.count as string | undefined, 1, 1000, 3),
    timeoutMs: timeoutOf(a),
  }),
  async run(ctx, { count, timeoutMs }) {
    const { sb, members, addresses } = ctx.session;
    const links = new Map(sb.peers().map((p) => [p.node, p]));
    const rows = await Promise.all(
      members.map(async (node) => {
        const samples: number[] = [];
        let reply: PingReply | undefined;
        try {
          for (let i = 0; i < count; i++) {
            const began = performance.now();
            reply = await sb.call<null, PingReply>(SYSTEM_METHODS.ping, null, {
              node,
              timeoutMs,
              waitForServerMs: Math.min(timeoutMs, 2_000),
            });
            samples.push(performance.now() - began);
          }
        } catch (err) {
          return { node, address: addresses[node]!, ok: false as const, error: errorLine(err) };
        }
        const s = summarize(samples)!;
        return {
          node,
          address: addresses[node]!,
          ok: true as const,
          incarnation: reply!.incarnation,
          rttMs: { min: s.min, avg: s.avg, max: s.max },
          samples: samples.length,
          linkRttMs: links.get(node)?.rttMs,
        };
      }),
    );
    if (ctx.json) out(toJson({ members: rows }, false));
    else
      for (const line of table(
        rows.map((r) =>
          r.ok
            ? [
                `node ${r.node}`,
                r.address,
                `incarnation ${shortInc(r.incarnation)}`,
                `rtt min/avg/max ${ms(r.rttMs.min)} / ${ms(r.rttMs.avg)} / ${ms(r.rttMs.max)}`,
              ]
            : [`node ${r.node}`, r.address, `no answer: ${r.error}`],
        ),
      ))
        out(line);
    return rows.every((r) => r.ok) ? EXIT.OK : EXIT.FAILED;
  },
});

function peerRow(p: PeerInfo): string[] {
  return [
    `  node ${p.node}`,
    p.state,
    `incarnation ${shortInc(p.incarnation)}`,
    `rtt ${ms(p.rttMs)}`,
  ];
}

export const peers = defineCommand({
  name: 'peers',
  summary: "each member's view of its peers: up, suspect, down, incarnations, RTT",
  usage: `Usage: switchboard peers [options]

Asks every member for its view of the cluster ($sb.peers): the state of
each of its peers (connecting, up, suspect, down), the incarnation it
knows and the last heartbeat round trip. Members disagreeing is how a
partition shows.`,
  optionsHelp: TIMEOUT_HELP,
  options: { ...TIMEOUT },
  positionals: [0, 0],
  parse: (a) => ({ timeoutMs: timeoutOf(a) }),
  async run(ctx, { timeoutMs }) {
    const answers = await askAll<PeersReply>(ctx.session, SYSTEM_METHODS.peers, timeoutMs);
    const own = ctx.session.sb.peers();
    if (ctx.json) {
      out(toJson({ members: answers, attached: { role: ctx.session.role, links: own } }, false));
      return statusOf(answers);
    }
    const rows: string[][] = [];
    for (const a of answers) {
      if (!a.ok) {
        rows.push([noAnswer(a)]);
        continue;
      }
      rows.push([
        `node ${a.node} (${a.address}), incarnation ${shortInc(a.value.incarnation)}, sees:`,
      ]);
      for (const p of a.value.peers) rows.push(peerRow(p));
      const clients = a.value.clients ?? [];
      rows.push([
        `  ${clients.length} client(s) linked` +
          (clients.length === 0
            ? ''
            : `: ${clients.map((c) => `${c.address ?? '?'} ${c.state} rtt ${ms(c.rttMs)}`).join(', ')}`),
      ]);
    }
    rows.push([`this ${ctx.session.role}'s own links:`]);
    for (const p of own) rows.push(peerRow(p));
    // Headers are single cells: align only the peer rows.
    const peerLines = table(rows.filter((r) => r.length > 1));
    let i = 0;
    for (const r of rows) out(r.length > 1 ? peerLines[i++]! : r[0]!);
    return statusOf(answers);
  },
});

/** One method across the cluster. */
interface ClusterMethod {
  readonly name: string;
  readonly kinds: string[];
  readonly nodes: number[];
  readonly contracts: Array<NonNullable<MethodInfo['contract']> & { readonly nodes: number[] }>;
}

export const methods = defineCommand({
  name: 'methods',
  summary: 'every method the cluster serves, with its kind, nodes and contract',
  usage: `Usage: switchboard methods [options]

Asks every member what it serves ($sb.methods) and lists each method
once: its kind (unary, server-stream, client-stream, bidi), the nodes
serving it and, for a service contract's method, the contract's name and
version. The library's own $sb.* methods are not listed.`,
  optionsHelp: `  --schemas               print each contract method's request and response
                          JSON Schemas (when its schema library publishes them)
${TIMEOUT_HELP}`,
  options: { schemas: { type: 'boolean' }, ...TIMEOUT },
  positionals: [0, 0],
  parse: (a) => ({ timeoutMs: timeoutOf(a), schemas: a.values.schemas === true }),
  async run(ctx, { timeoutMs, schemas }) {
    const answers = await askAll<MethodsReply>(ctx.session, SYSTEM_METHODS.methods, timeoutMs);
    const all = new Map<string, ClusterMethod>();
    for (const a of answers) {
      if (!a.ok) continue;
      for (const m of a.value.methods) {
        let c = all.get(m.name);
        if (c === undefined)
          all.set(m.name, (c = { name: m.name, kinds: [], nodes: [], contracts: [] }));
        if (!c.kinds.includes(m.kind)) c.kinds.push(m.kind);
        c.nodes.push(a.node);
        if (m.contract !== undefined) {
          const same = c.contracts.find((k) => k.version === m.contract!.version);
          if (same === undefined) c.contracts.push({ ...m.contract, nodes: [a.node] });
          else same.nodes.push(a.node);
        }
      }
    }
    const list = [...all.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (ctx.json) {
      out(toJson({ methods: list, unanswered: answers.filter((a) => !a.ok) }, false));
      return statusOf(answers);
    }
    const rows: string[][] = [['METHOD', 'KIND', 'NODES', 'CONTRACT']];
    for (const m of list)
      rows.push([
        m.name,
        m.kinds.join(','),
        m.nodes.join(','),
        m.contracts
          .map(
            (k) =>
              `${k.name} ${k.version}${m.contracts.length > 1 ? ` (nodes ${k.nodes.join(',')})` : ''}`,
          )
          .join('; '),
      ]);
    for (const line of table(rows)) out(line);
    if (list.length === 0) out('(no method is served)');
    if (schemas)
      for (const m of list)
        for (const k of m.contracts) {
          if (k.request === undefined && k.response === undefined) continue;
          out(`\n${m.name} (${k.name} ${k.version}):`);
          out(`  request:  ${toJson(k.request, false)}`);
          out(`  response: ${toJson(k.response, false)}`);
        }
    for (const a of answers) if (!a.ok) out(noAnswer(a));
    return statusOf(answers);
  },
});

/**
 * What the members' receivers and subscriptions handed out, per channel
 * name or subscription pattern (the demo's metrics lines show what was
 * sent, called and processed; a live cluster's operator also wants what
 * arrived).
 */
function receivedLines(all: readonly SwitchboardStats[]): string[] {
  const got = new Map<string, number>();
  for (const s of all)
    for (const c of s.metrics.consumed)
      if (c.operation === 'receive')
        got.set(c.destination, (got.get(c.destination) ?? 0) + c.count);
  return [...got]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([dest, n]) => `received   ${dest.padEnd(22)} ${String(n).padStart(7)} received`);
}

export const stats = defineCommand({
  name: 'stats',
  summary: "every member's stats, from its metrics: calls with p50/p99, tasks, publications",
  usage: `Usage: switchboard stats [options]

Asks every member for its stats() ($sb.stats) and prints, from each
member's metrics (docs/metrics.md): RPC calls it made per method with
p50/p99 (estimated from the histograms' buckets), the methods it served
(requests, errors, average time), tasks pushed and processed per queue,
messages sent per channel and publications per topic; then the same
summed over the cluster. Counts are since each member started.`,
  optionsHelp: `  --prometheus            print each member's metrics in the Prometheus text format
${TIMEOUT_HELP}`,
  options: { prometheus: { type: 'boolean' }, ...TIMEOUT },
  positionals: [0, 0],
  parse: (a) => ({ timeoutMs: timeoutOf(a), prometheus: a.values.prometheus === true }),
  async run(ctx, { timeoutMs, prometheus }) {
    const answers = await askAll<SwitchboardStats>(ctx.session, SYSTEM_METHODS.stats, timeoutMs);
    if (ctx.json) {
      out(toJson({ members: answers }, false));
      return statusOf(answers);
    }
    const got: SwitchboardStats[] = [];
    for (const a of answers) {
      if (!a.ok) {
        out(noAnswer(a));
        continue;
      }
      const s = a.value;
      got.push(s);
      if (prometheus) {
        out(`# node ${a.node} (${a.address}), incarnation ${s.incarnation}`);
        process.stdout.write(renderPrometheus(s));
        continue;
      }
      const up = s.peers.filter((p) => p.state === 'up').length;
      out(
        `node ${a.node} (${a.address}), incarnation ${shortInc(s.incarnation)}: ` +
          `${up}/${s.peers.length} peers up, ${s.rpc.served.length} methods served, ` +
          `${s.rpc.pendingCalls} calls pending, ${Object.values(s.drops).reduce((x, y) => x + y, 0)} dropped`,
      );
      const lines = [...metricsLines([s.metrics]), ...receivedLines([s])];
      for (const l of lines) out(`  ${l}`);
      if (lines.length === 0) out('  (no traffic yet)');
    }
    if (!prometheus && got.length > 1) {
      out(`cluster (${got.length} members):`);
      for (const l of [...metricsLines(got.map((s) => s.metrics)), ...receivedLines(got)])
        out(`  ${l}`);
    }
    return statusOf(answers);
  },
});
