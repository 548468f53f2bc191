/**
 * `switchboard bench`: load against a live cluster, as `nats bench` puts
 * it on a NATS server. Three kinds:
 * - `rpc`: unary calls, `--concurrency` in flight, each one's round trip
 *   timed (default method `$sb.ping`, which every member serves, so the
 *   load spreads over the cluster without any application code);
 * - `channel`: messages of `--size` bytes to an application's named
 *   receiver (`--receiver NAME --node ID`) or MPMC channel (`--mpmc NAME`),
 *   each `send()` timed until the message was inside the receiver's credit
 *   window; at the end, how many are known delivered;
 * - `pubsub`: publications of `--size` bytes on `--topic`, as fast as they
 *   leave; the members' own metrics say how many their subscriptions
 *   handed out.
 * A live progress line on a terminal (stderr); the summary at the end.
 */
import {
  isSystemMethod,
  isValidPattern,
  isValidTopic,
  SYSTEM_METHODS,
  topicMatches,
} from '../../../lib/index.js';
import type { Sender, SwitchboardStats } from '../../../lib/index.js';
import { count as fmtCount, rate } from '../../demo/display.js';
import { UsageError } from '../../demo/options.js';
import type { Session } from '../attach.js';
import { askAll } from '../command.js';
import { defineCommand } from '../command.js';
import type { Args, Context } from '../command.js';
import { EXIT } from '../exit.js';
import { errorLine, ms, note, out, summarize, toJson } from '../format.js';
import type { LatencySummary } from '../format.js';
import { intFlag, secondsFlag } from '../target.js';

const KINDS = ['rpc', 'channel', 'pubsub'] as const;
type Kind = (typeof KINDS)[number];

/** What every kind counts while it runs. */
interface Tally {
  ops: number;
  errors: number;
  samples: number[];
  firstError: string | undefined;
}

/** The live progress line, on a terminal only. */
function progress(kind: Kind, tally: Tally, began: number, durationMs: number): () => void {
  if (process.stderr.isTTY !== true) return () => undefined;
  const timer = setInterval(() => {
    const t = performance.now() - began;
    const recent = tally.samples.slice(-2000);
    const s = summarize([...recent]);
    process.stderr.write(
      `\r\x1b[K${kind} ${(t / 1000).toFixed(1)}/${(durationMs / 1000).toFixed(0)} s  ` +
        `${fmtCount(tally.ops)} ops  ${rate(tally.ops, t)}  ${tally.errors} failed` +
        (s === undefined ? '' : `  p50 ${ms(s.p50)}  p99 ${ms(s.p99)}`),
    );
  }, 200);
  return () => {
    clearInterval(timer);
    process.stderr.write('\r\x1b[K');
  };
}

function failedOne(tally: Tally, err: unknown): void {
  tally.errors++;
  tally.firstError ??= errorLine(err);
}

async function runRpc(
  ctx: Context,
  s: BenchSettings,
  tally: Tally,
  until: number,
  perNode: Map<number, number>,
  skipped: number[],
): Promise<void> {
  const { method, payload, node } = s;
  const timeoutMs = 10_000;
  const options = node === undefined ? { timeoutMs } : { timeoutMs, node };
  const { sb, members } = ctx.session;
  // A system method is served by every member, this one too with --as-member:
  // each loop is given a member in turn, so the load reaches every member and
  // only members; those not up as the bench starts are left out (and named).
  const pinned = node === undefined && isSystemMethod(method);
  const up = new Set(
    sb
      .peers()
      .filter((p) => p.state === 'up')
      .map((p) => p.node),
  );
  const live = members.filter((m) => up.has(m));
  const targets = live.length > 0 ? live : members;
  if (pinned) for (const m of members) if (!targets.includes(m)) skipped.push(m);
  const loop = async (_: unknown, i: number): Promise<void> => {
    const opts = pinned ? { timeoutMs, node: targets[i % targets.length]! } : options;
    while (performance.now() < until) {
      const t = performance.now();
      try {
        const reply = await sb.call<unknown, unknown>(method, payload, opts);
        tally.samples.push(performance.now() - t);
        tally.ops++;
        const from = (reply as { node?: unknown } | null)?.node;
        if (typeof from === 'number') perNode.set(from, (perNode.get(from) ?? 0) + 1);
      } catch (err) {
        failedOne(tally, err);
        // A failing cluster must not spin the loop.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, loop));
}

async function runChannel(
  ctx: Context,
  s: BenchSettings,
  tally: Tally,
  until: number,
): Promise<{ delivered: number; target: string; loadMs: number }> {
  const began = performance.now();
  const { receiver: name, mpmc, node } = s;
  const { sb } = ctx.session;
  const sender: Sender<Buffer> =
    name !== undefined
      ? sb.sender<Buffer>(name, { node: node! })
      : sb.mpmcSender<Buffer>(mpmc!, { mode: 'one' });
  const message = Buffer.alloc(s.size, 0x61);
  const loop = async (): Promise<void> => {
    while (performance.now() < until) {
      const t = performance.now();
      try {
        await sender.send(message);
        tally.samples.push(performance.now() - t);
        tally.ops++;
      } catch (err) {
        failedOne(tally, err);
        if (sender.closed) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, loop));
  const loadMs = performance.now() - began;
  sender.close();
  // What is still in flight is known delivered once the receiver acknowledged it.
  const deadline = performance.now() + 5_000;
  while ((sender.inflight > 0 || sender.waiting > 0) && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  return {
    delivered: tally.ops - sender.inflight - sender.waiting,
    target: name !== undefined ? `receiver ${name} on node ${node}` : `mpmc ${mpmc}`,
    loadMs,
  };
}

/** Bytes a pub-sub bench lets its links hold unacknowledged, summed over the members. */
const MAX_BUFFERED = 1 << 20;

function buffered(sb: Session['sb']): number {
  let n = 0;
  for (const p of sb.peers()) n += p.bufferedBytes;
  return n;
}

/** Why the last count of {@link handedOut} is unknown (a member that did not answer). */
let unanswered: string | undefined;

/** Publications the members' subscriptions matching `topic` handed out, summed; undefined if a member did not answer. */
async function handedOut(session: Session, topic: string): Promise<number | undefined> {
  const answers = await askAll<SwitchboardStats>(session, SYSTEM_METHODS.stats, 5_000);
  let n = 0;
  for (const a of answers) {
    if (!a.ok) {
      unanswered = `node ${a.node}: ${a.error}`;
      return undefined;
    }
    for (const c of a.value.metrics.consumed)
      if (
        c.operation === 'receive' &&
        isValidPattern(c.destination) &&
        topicMatches(c.destination, topic)
      )
        n += c.count;
  }
  return n;
}

async function runPubsub(
  ctx: Context,
  s: BenchSettings,
  tally: Tally,
): Promise<{
  topic: string;
  subscriptions: number;
  delivered: number | undefined;
  loadMs: number;
  unknownBecause?: string;
}> {
  const { topic, durationMs } = s;
  const { sb } = ctx.session;
  const before = await handedOut(ctx.session, topic);
  const waitUntil = performance.now() + 1_000;
  while (sb.subscribers(topic) === 0 && performance.now() < waitUntil)
    await new Promise((r) => setTimeout(r, 20));
  const subscriptions = sb.subscribers(topic);
  const message = Buffer.alloc(s.size, 0x61);
  const began = performance.now();
  const until = began + durationMs;
  while (performance.now() < until) {
    const t = performance.now();
    try {
      for (let i = 0; i < 256; i++) sb.publish(topic, message);
      await sb.drained();
      // drained() says only that nothing waits here: without this, a publisher
      // far faster than its subscribers fills the links, and the rate printed
      // would be the rate of filling them, not of delivering.
      while (buffered(sb) > MAX_BUFFERED) await new Promise((r) => setTimeout(r, 1));
      tally.ops += 256;
      tally.samples.push((performance.now() - t) / 256);
    } catch (err) {
      failedOne(tally, err);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const loadMs = performance.now() - began;
  // Wait (bounded) until the members have handed out what they will. A
  // member still working through the load may answer late: ask again.
  const expected = tally.ops * subscriptions;
  let delivered: number | undefined;
  const deadline = performance.now() + 10_000;
  for (let last = -1; before !== undefined && performance.now() < deadline;) {
    const now = await handedOut(ctx.session, topic);
    if (now === undefined) continue;
    delivered = now - before;
    if (delivered >= expected || delivered === last) break;
    last = delivered;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    topic,
    subscriptions,
    delivered,
    loadMs,
    ...(delivered === undefined
      ? { unknownBecause: unanswered ?? 'no member answered in time' }
      : {}),
  };
}

/** The flags of `bench`, checked before it attaches. */
interface BenchSettings {
  readonly kind: Kind;
  readonly durationMs: number;
  readonly concurrency: number;
  readonly method: string;
  readonly payload: unknown;
  readonly node: number | undefined;
  readonly receiver: string | undefined;
  readonly mpmc: string | undefined;
  readonly topic: string;
  readonly size: number;
}

function parseBench(a: Args): BenchSettings {
  const v = a.values as Readonly<Record<string, string | undefined>>;
  const kind = a.positionals[0] as Kind;
  if (!KINDS.includes(kind))
    throw new UsageError(`bench takes one of ${KINDS.join(', ')}; got "${kind}"`);
  const node = v.node === undefined ? undefined : intFlag('node', v.node, 0, a.nodeCount - 1, 0);
  let payload: unknown = null;
  if (v.payload !== undefined)
    try {
      payload = JSON.parse(v.payload) as unknown;
    } catch (err) {
      throw new UsageError(`--payload must be JSON: ${(err as Error).message}`);
    }
  if (kind === 'channel') {
    if ((v.receiver === undefined) === (v.mpmc === undefined))
      throw new UsageError('bench channel needs --receiver <name> --node <id>, or --mpmc <name>');
    if (v.receiver !== undefined && node === undefined)
      throw new UsageError('bench channel --receiver needs --node <id>');
  }
  const topic = v.topic ?? 'bench.load';
  if (!isValidTopic(topic)) throw new UsageError(`--topic "${topic}" is not a topic`);
  return {
    kind,
    durationMs: secondsFlag('duration', v.duration, 5, 3_600),
    concurrency:
      kind === 'pubsub'
        ? 1
        : intFlag('concurrency', v.concurrency, 1, 4096, kind === 'rpc' ? 16 : 1),
    method: v.method ?? SYSTEM_METHODS.ping,
    payload,
    node,
    receiver: v.receiver,
    mpmc: v.mpmc,
    topic,
    size: intFlag('size', v.size, 0, 16 * 1024 * 1024, 16),
  };
}

function latencyLine(what: string, s: LatencySummary | undefined): string {
  if (s === undefined) return `  ${what.padEnd(10)} -`;
  return (
    `  ${what.padEnd(10)} min ${ms(s.min)}  p50 ${ms(s.p50)}  p90 ${ms(s.p90)}  ` +
    `p99 ${ms(s.p99)}  p99.9 ${ms(s.p999)}  max ${ms(s.max)}  avg ${ms(s.avg)}`
  );
}

export const bench = defineCommand({
  name: 'bench',
  summary: 'rpc, channel or pubsub load against the cluster, with a latency summary',
  usage: `Usage: switchboard bench <rpc|channel|pubsub> [options]

Puts load on the live cluster for --duration, shows a live progress line
on a terminal, and prints a summary at the end:
  rpc      unary calls of --method (default $sb.ping, served by every
           member), --concurrency in flight (default 16); the latency of
           each call, and how many each member answered (when the reply
           names its node, as $sb.ping's does)
  channel  messages of --size bytes to the named receiver --receiver on
           --node, or to the MPMC channel --mpmc (one receiver each),
           --concurrency sends in flight (default 1); the latency of
           send() (until the message is inside the receiver's credit
           window), and how many are known delivered at the end
  pubsub   publications of --size bytes on --topic (default bench.load);
           the publish rate, and how many publications the members'
           matching subscriptions handed out (from their metrics)`,
  optionsHelp: `  --duration <s>          how long to load the cluster (default 5)
  --concurrency <n>       operations in flight, 1..4096
  --method <name>         rpc: the method to call (default $sb.ping)
  --payload <json>        rpc: the request (default null)
  --node <id>             rpc: call only this member; channel: the receiver's member
  --receiver <name>       channel: a named receiver (with --node)
  --mpmc <name>           channel: an MPMC channel
  --topic <topic>         pubsub: the topic (default bench.load)
  --size <bytes>          channel, pubsub: message size (default 16)`,
  options: {
    duration: { type: 'string' },
    concurrency: { type: 'string' },
    method: { type: 'string' },
    payload: { type: 'string' },
    node: { type: 'string' },
    receiver: { type: 'string' },
    mpmc: { type: 'string' },
    topic: { type: 'string' },
    size: { type: 'string' },
  },
  positionals: [1, 1],
  parse: parseBench,
  async run(ctx, s) {
    const { kind, durationMs, concurrency } = s;
    const tally: Tally = { ops: 0, errors: 0, samples: [], firstError: undefined };
    const perNode = new Map<number, number>();
    const began = performance.now();
    const until = began + durationMs;
    const stopProgress = progress(kind, tally, began, durationMs);
    let extra: Record<string, unknown>;
    try {
      if (kind === 'rpc') {
        const skipped: number[] = [];
        await runRpc(ctx, s, tally, until, perNode, skipped);
        extra = {
          method: s.method,
          perNode: Object.fromEntries([...perNode].sort((a, b) => a[0] - b[0])),
          ...(skipped.length === 0 ? {} : { skipped }),
        };
      } else if (kind === 'channel') extra = await runChannel(ctx, s, tally, until);
      else extra = await runPubsub(ctx, s, tally);
    } finally {
      stopProgress();
    }
    // The load phase only: not the waits before and after pub-sub's load.
    const { loadMs, ...shown } = extra as { loadMs?: number };
    extra = shown;
    const elapsedMs = loadMs ?? performance.now() - began;
    const latency = summarize(tally.samples);
    const result = {
      kind,
      durationS: Math.round(elapsedMs) / 1000,
      concurrency,
      ops: tally.ops,
      errors: tally.errors,
      opsPerSecond: Math.round((tally.ops * 1000) / elapsedMs),
      latencyMs: latency ?? null,
      ...extra,
      ...(tally.firstError === undefined ? {} : { firstError: tally.firstError }),
    };
    if (ctx.json) out(toJson(result, false));
    else {
      const what =
        kind === 'rpc'
          ? `${String(extra.method)}`
          : kind === 'channel'
            ? String(extra.target)
            : `topic ${String(extra.topic)}`;
      out(`${kind} bench: ${what}, ${concurrency} in flight, ${(elapsedMs / 1000).toFixed(2)} s`);
      const unit = kind === 'rpc' ? 'calls' : kind === 'channel' ? 'messages' : 'publications';
      out(
        `  ${unit.padEnd(10)} ${fmtCount(tally.ops)} (${tally.errors} failed)  ${rate(tally.ops, elapsedMs)}`,
      );
      out(latencyLine(kind === 'rpc' ? 'call' : kind === 'channel' ? 'send' : 'publish', latency));
      if (kind === 'rpc' && perNode.size > 0)
        out(
          `  per node   ${[...perNode]
            .sort((a, b) => a[0] - b[0])
            .map(([n, c]) => `${n}: ${fmtCount(c)}`)
            .join('  ')}`,
        );
      if (Array.isArray(extra.skipped))
        out(
          `  skipped    node(s) ${(extra.skipped as number[]).join(', ')}: not up when the bench began`,
        );
      if (kind === 'channel') out(`  delivered  ${fmtCount(extra.delivered as number)}`);
      if (kind === 'pubsub')
        out(
          `  delivered  ${extra.delivered === undefined ? '- (a member did not answer)' : fmtCount(extra.delivered as number)} ` +
            `to ${String(extra.subscriptions)} subscription(s)`,
        );
      if (tally.firstError !== undefined) note(`first failure: ${tally.firstError}`);
    }
    return tally.errors === 0 && tally.ops > 0 ? EXIT.OK : EXIT.FAILED;
  },
});
