/**
 * What the demo runs. Each scenario is written once and runs on every node:
 * `prepare` creates this node's endpoints (receivers, servers,
 * subscriptions) and returns the work to do once every node is prepared;
 * that work returns what this node saw, which the parent cross-checks in
 * `verify`. Roles follow the node id: node 0 is usually the producer or
 * caller, the others consume or serve.
 */
import type { Sender } from '../../lib/index.js';
import { topicMatches } from '../../lib/index.js';
import type { Switchboard } from '../../lib/index.js';
import { count } from './display.js';
import type { NodeOutcome, ScenarioParams } from './ipc.js';

/** What a scenario gets on one node. */
export interface NodeContext {
  readonly sb: Switchboard;
  readonly id: number;
  readonly params: ScenarioParams;
  /** Adds to this node's live progress counter (messages received or calls done). */
  readonly progress: (delta: number) => void;
}

/** The work a node does once every node is prepared. */
export type Work = () => Promise<NodeOutcome>;

/** One row of the demo's summary. */
export interface Scenario {
  readonly key: string;
  readonly title: string;
  /** What runs and what is checked, in a few words (logged when the step starts). */
  readonly checks: string;
  /** Messages (or calls) the scenario should count in total, for the progress display. */
  total(p: ScenarioParams): number;
  /** Runs on every node. */
  prepare(ctx: NodeContext): Work | Promise<Work>;
  /** Runs in the parent over every node's outcome (index = node id); returns problems. */
  verify?(outcomes: readonly NodeOutcome[], p: ScenarioParams): string[];
  /** A short fact for the summary (how work was spread, what was dropped...). */
  note?(outcomes: readonly NodeOutcome[], p: ScenarioParams): string;
}

// ---- helpers ---------------------------------------------------------------

const others = (p: ScenarioParams): number[] => Array.from({ length: p.n - 1 }, (_, i) => i + 1);

const ok = (count: number, facts?: Record<string, unknown>): NodeOutcome =>
  facts === undefined ? { count, problems: [] } : { count, problems: [], facts };

/**
 * Every node sends a token to every other node and waits for one from each.
 * Frames on a link keep their order, so once node B holds A's token it has
 * also processed every announcement A made before sending it (receivers,
 * servers, subscriptions): the whole cluster has the same directory.
 */
async function barrier(ctx: NodeContext, tag: string): Promise<void> {
  const { sb, params } = ctx;
  const inbox = sb.receiver<number>(`demo.sync.${tag}`, { expectSenders: params.n - 1 });
  const sends: Array<Promise<void>> = [];
  for (let node = 0; node < params.n; node++) {
    if (node === sb.id) continue;
    const s = sb.sender<number>(`demo.sync.${tag}`, { node });
    sends.push(s.send(sb.id).finally(() => s.close()));
  }
  await Promise.all(sends);
  let seen = 0;
  for await (const _ of inbox) seen++;
  if (seen !== params.n - 1)
    throw new Error(`barrier ${tag}: ${seen} of ${params.n - 1} tokens arrived`);
}

/** Checks that per-origin sequence numbers arrive as 0, 1, 2, ... and counts them. */
class SequenceCheck {
  readonly next = new Map<number, number>();
  readonly problems: string[] = [];

  see(from: number, seq: number): void {
    const want = this.next.get(from) ?? 0;
    if (seq !== want && this.problems.length < 5)
      this.problems.push(`from node ${from}: got #${seq}, expected #${want}`);
    this.next.set(from, seq + 1);
  }

  expectEach(origins: readonly number[], count: number, what: string): void {
    for (const o of origins) {
      const got = this.next.get(o) ?? 0;
      if (got !== count) this.problems.push(`${what} from node ${o}: ${got} of ${count}`);
    }
  }
}

interface Numbered {
  readonly from: number;
  readonly seq: number;
}

// ---- channels ----------------------------------------------------------------

/** Many senders, one named receiver: FIFO per sender, nothing lost. */
const mpsc: Scenario = {
  key: 'mpsc',
  title: 'MPSC channel',
  checks: 'every other node streams to a named receiver on node 0; FIFO per sender, none lost',
  total: (p) => (p.n - 1) * p.messages,
  prepare: ({ sb, id, params, progress }) => {
    if (id === 0) {
      const inbox = sb.receiver<Numbered>('demo.mpsc', { expectSenders: params.n - 1 });
      return async () => {
        const check = new SequenceCheck();
        let count = 0;
        for await (const m of inbox) {
          check.see(m.from, m.seq);
          count++;
          progress(1);
        }
        check.expectEach(others(params), params.messages, 'messages');
        return { count, problems: check.problems };
      };
    }
    return async () => {
      const out = sb.sender<Numbered>('demo.mpsc', { node: 0 });
      for (let seq = 0; seq < params.messages; seq++) await out.send({ from: id, seq });
      out.close();
      return ok(0);
    };
  },
};

interface Question {
  readonly n: number;
  readonly reply: Sender<number>;
}

/** A Sender travels inside a message and works on the other side (reply channels). */
const replyChannel: Scenario = {
  key: 'reply',
  title: 'Sender in a message',
  checks: 'each question carries a fresh reply Sender; node 0 answers n*n through it',
  total: (p) => (p.n - 1) * questions(p),
  prepare: ({ sb, id, params, progress }) => {
    if (id === 0) {
      const inbox = sb.receiver<Question>('demo.ask', { expectSenders: params.n - 1 });
      return async () => {
        const answering: Array<Promise<void>> = [];
        for await (const q of inbox) {
          answering.push(q.reply.send(q.n * q.n).finally(() => q.reply.close()));
          if (answering.length >= 64) await Promise.all(answering.splice(0));
        }
        await Promise.all(answering);
        return ok(0);
      };
    }
    return async () => {
      const ask = sb.sender<Question>('demo.ask', { node: 0 });
      const problems: string[] = [];
      let count = 0;
      let next = 0;
      const total = questions(params);
      const worker = async (): Promise<void> => {
        while (next < total) {
          const n = id * 1_000_000 + next++;
          const [reply, answers] = sb.channel<number>();
          await ask.send({ n, reply });
          // Our copy never sent anything: closing it does not end `answers`.
          reply.close();
          const got: number[] = [];
          for await (const a of answers) got.push(a);
          if (got.length !== 1 || got[0] !== n * n) {
            if (problems.length < 5) problems.push(`asked ${n}, got [${got.join(', ')}]`);
          } else {
            count++;
            progress(1);
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      ask.close();
      return { count, problems };
    };
  },
};

function questions(p: ScenarioParams): number {
  return Math.max(20, Math.floor(p.messages / 20));
}

/** MPMC `one`: each message to exactly one receiver, the least loaded. */
const mpmcOne: Scenario = {
  key: 'mpmc-one',
  title: 'MPMC work queue (one)',
  checks:
    'node 0 sends to a cluster-wide name; each message reaches exactly one receiver, and every receiver gets a share',
  total: (p) => p.messages,
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    const inbox = id === 0 ? undefined : sb.mpmcReceiver<number>('demo.work', { expectSenders: 1 });
    return async () => {
      await barrier(ctx, 'mpmc-one');
      if (inbox === undefined) {
        const out = sb.mpmcSender<number>('demo.work', { mode: 'one' });
        for (let seq = 0; seq < params.messages; seq++) await out.send(seq);
        out.close();
        return ok(0);
      }
      const seqs: number[] = [];
      const problems: string[] = [];
      for await (const seq of inbox) {
        if (seqs.length > 0 && seq <= seqs[seqs.length - 1]! && problems.length < 5)
          problems.push(`#${seq} arrived after #${seqs[seqs.length - 1]}`);
        seqs.push(seq);
        progress(1);
      }
      return { count: seqs.length, problems, facts: { seqs } };
    };
  },
  verify: (outcomes, p) => {
    const seen = new Uint8Array(p.messages);
    const problems: string[] = [];
    for (const o of outcomes) {
      for (const s of (o.facts?.seqs as number[] | undefined) ?? []) {
        if (s < 0 || s >= p.messages) problems.push(`unexpected #${s}`);
        else if (seen[s] === 1) problems.push(`#${s} delivered twice`);
        else seen[s] = 1;
      }
    }
    const lost = seen.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
    if (lost > 0) problems.push(`${lost} message(s) reached no receiver`);
    // Work distribution: every receiver was idle with its full window open,
    // so the least-loaded rule must have given each of them a share.
    const idle = outcomes.slice(1).flatMap((o, i) => (o.count === 0 ? [i + 1] : []));
    if (idle.length > 0)
      problems.push(
        `node(s) ${idle.join(', ')} got no message: the work was not spread ` +
          `(${outcomes
            .slice(1)
            .map((o) => count(o.count))
            .join(' / ')})`,
      );
    return problems.slice(0, 5);
  },
  note: (outcomes) =>
    `spread ${outcomes
      .slice(1)
      .map((o) => count(o.count))
      .join(' / ')} over nodes 1..${outcomes.length - 1}`,
};

/** MPMC `all`: each message to every receiver, in order. */
const mpmcAll: Scenario = {
  key: 'mpmc-all',
  title: 'MPMC broadcast (all)',
  checks: 'node 0 broadcasts; every receiver gets every message, in order',
  total: (p) => (p.n - 1) * p.messages,
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    const inbox = id === 0 ? undefined : sb.mpmcReceiver<number>('demo.news', { expectSenders: 1 });
    return async () => {
      await barrier(ctx, 'mpmc-all');
      if (inbox === undefined) {
        const out = sb.mpmcSender<number>('demo.news', { mode: 'all' });
        for (let seq = 0; seq < params.messages; seq++) await out.send(seq);
        out.close();
        return ok(0);
      }
      let expect = 0;
      const problems: string[] = [];
      for await (const seq of inbox) {
        if (seq !== expect && problems.length < 5)
          problems.push(`got #${seq}, expected #${expect}`);
        expect = seq + 1;
        progress(1);
      }
      if (expect !== params.messages) problems.push(`${expect} of ${params.messages} arrived`);
      return { count: expect, problems };
    };
  },
};

/** `post()`: fire-and-forget; never throws, what is not delivered is counted. */
const post: Scenario = {
  key: 'post',
  title: 'Fire-and-forget (post)',
  checks: 'every other node posts to node 0; delivered + counted drops = posted, in order',
  total: (p) => (p.n - 1) * p.messages,
  prepare: ({ sb, id, params, progress }) => {
    if (id === 0) {
      const inbox = sb.receiver<Numbered>('demo.post', { expectSenders: params.n - 1 });
      return async () => {
        const problems: string[] = [];
        const received = new Map<number, number>();
        const last = new Map<number, number>();
        let count = 0;
        for await (const m of inbox) {
          // post() may drop (counted), so sequence numbers may skip, never go back.
          const prev = last.get(m.from) ?? -1;
          if (m.seq <= prev && problems.length < 5)
            problems.push(`from node ${m.from}: #${m.seq} after #${prev}`);
          last.set(m.from, m.seq);
          received.set(m.from, (received.get(m.from) ?? 0) + 1);
          count++;
          progress(1);
        }
        return { count, problems, facts: { received: Object.fromEntries(received) } };
      };
    }
    return async () => {
      let dropEvents = 0;
      const sub = sb.events$.subscribe((e) => {
        if (e.type === 'drop' && e.channel === 'demo.post') dropEvents += e.count;
      });
      // maxPending bounds what post() may queue while waiting for credit.
      const out = sb.sender<Numbered>('demo.post', { node: 0, maxPending: params.messages });
      for (let seq = 0; seq < params.messages; seq++) {
        out.post({ from: id, seq });
        // Let credit flow back now and then, as a real producer would.
        if (seq % 256 === 255) await new Promise((res) => setImmediate(res));
      }
      out.close();
      // What still waits for credit goes out (or is dropped, and counted) first.
      await until(() => out.waiting === 0, 20_000, 'posts drained');
      sub.unsubscribe();
      const problems =
        dropEvents === out.dropped
          ? []
          : [`${out.dropped} drops counted but ${dropEvents} reported on events$`];
      return { count: 0, problems, facts: { posted: params.messages, dropped: out.dropped } };
    };
  },
  verify: (outcomes, p) => {
    const received = (outcomes[0]?.facts?.received ?? {}) as Record<string, number>;
    const problems: string[] = [];
    for (const node of others(p)) {
      const f = outcomes[node]?.facts ?? {};
      const dropped = Number(f.dropped ?? 0);
      const got = received[String(node)] ?? 0;
      if (got + dropped !== p.messages)
        problems.push(
          `node ${node}: ${got} delivered + ${dropped} dropped != ${p.messages} posted (lost silently)`,
        );
    }
    return problems;
  },
  note: (outcomes) => {
    const dropped = outcomes.reduce((a, o) => a + Number(o.facts?.dropped ?? 0), 0);
    return `${count(dropped)} dropped (counted)`;
  },
};

/** After the restart: every node streams to the restarted node and back. */
const rejoin: Scenario = {
  key: 'rejoin',
  title: 'Traffic after rejoin',
  checks: 'the restarted node exchanges ordered streams with every other node',
  total: (p) => 2 * (p.n - 1) * rejoinCount(p),
  prepare: ({ sb, id, params, progress }) => {
    const count = rejoinCount(params);
    const peers =
      id === params.victim
        ? Array.from({ length: params.n }, (_, i) => i).filter((i) => i !== params.victim)
        : [params.victim];
    const inbox = sb.receiver<Numbered>('demo.rejoin', { expectSenders: peers.length });
    return async () => {
      const sending = peers.map(async (node) => {
        const out = sb.sender<Numbered>('demo.rejoin', { node });
        for (let seq = 0; seq < count; seq++) await out.send({ from: id, seq });
        out.close();
      });
      const check = new SequenceCheck();
      let got = 0;
      for await (const m of inbox) {
        check.see(m.from, m.seq);
        got++;
        progress(1);
      }
      await Promise.all(sending);
      check.expectEach(peers, count, 'messages');
      return { count: got, problems: check.problems };
    };
  },
};

function rejoinCount(p: ScenarioParams): number {
  return Math.max(10, Math.floor(p.messages / 10));
}

// ---- patterns ------------------------------------------------------------------

/** Resolves once `cond()` holds, checking once per event-loop turn; rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((res) => setImmediate(res));
  }
}

/** Runs `task(i)` for i in [0, total) with at most `width` running at once. */
async function inFlight(
  total: number,
  width: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, total) }, lane));
}

function tally(by: Record<string, number>): string {
  return Object.keys(by)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => count(by[k]!))
    .join(' / ');
}

interface Square {
  readonly square: number;
  readonly node: number;
}

/** Unary RPC: node 0 calls, every other node serves; no node given, so the strategy spreads the calls. */
const rpcUnary: Scenario = {
  key: 'rpc-unary',
  title: 'RPC unary',
  checks:
    'node 0 calls square(n), 32 in flight, on any server (least-outstanding); every reply checked',
  total: (p) => unaryCalls(p),
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    if (id !== 0) sb.serve<number, Square>('demo.square', (n) => ({ square: n * n, node: sb.id }));
    return async () => {
      await barrier(ctx, 'rpc-unary');
      if (id !== 0) {
        await barrier(ctx, 'rpc-unary-done');
        return ok(0);
      }
      const by: Record<string, number> = {};
      const problems: string[] = [];
      let done = 0;
      await inFlight(unaryCalls(params), 32, async (n) => {
        const r = await sb.call<number, Square>('demo.square', n);
        if (r.square !== n * n && problems.length < 5)
          problems.push(`square(${n}) = ${r.square} from node ${r.node}`);
        by[r.node] = (by[r.node] ?? 0) + 1;
        done++;
        progress(1);
      });
      await barrier(ctx, 'rpc-unary-done');
      if (Object.keys(by).length !== params.n - 1)
        problems.push(`only nodes ${Object.keys(by).join(', ')} got calls`);
      return { count: done, problems, facts: { by } };
    };
  },
  note: (outcomes) =>
    `spread ${tally((outcomes[0]?.facts?.by ?? {}) as Record<string, number>)} over nodes 1..${outcomes.length - 1}`,
};

function unaryCalls(p: ScenarioParams): number {
  return Math.max(100, Math.floor(p.messages / 2));
}

function streamLength(p: ScenarioParams): number {
  return Math.max(100, Math.floor(p.messages / 10));
}

/** Server-, client- and bidirectional streams, from node 0 to every other node. */
const rpcStream: Scenario = {
  key: 'rpc-stream',
  title: 'RPC streaming',
  checks:
    'node 0 calls every server: count(n) streams 0..n-1, sum() reads a stream, upper() maps one; all in order',
  // Per server: n items down, n up, n up and n down.
  total: (p) => (p.n - 1) * 4 * streamLength(p),
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    if (id !== 0) {
      sb.serveStream<number, number>('demo.count', function* (n) {
        for (let i = 0; i < n; i++) yield i;
      });
      sb.serveClientStream<number, number>('demo.sum', async (numbers) => {
        let sum = 0;
        for await (const x of numbers) sum += x;
        return sum;
      });
      sb.serveBidi<string, string>('demo.upper', async function* (words) {
        for await (const w of words) yield w.toUpperCase();
      });
    }
    return async () => {
      await barrier(ctx, 'rpc-stream');
      if (id !== 0) {
        await barrier(ctx, 'rpc-stream-done');
        return ok(0);
      }
      const n = streamLength(params);
      const problems: string[] = [];
      let items = 0;
      const numbers = function* (): Generator<number> {
        for (let i = 0; i < n; i++) {
          items++;
          progress(1);
          yield i;
        }
      };
      const words = function* (): Generator<string> {
        for (let i = 0; i < n; i++) {
          items++;
          progress(1);
          yield `word${i}`;
        }
      };
      await Promise.all(
        others(params).map(async (node) => {
          let expect = 0;
          for await (const i of sb.callStream<number, number>('demo.count', n, { node })) {
            if (i !== expect && problems.length < 5)
              problems.push(`count from node ${node}: got ${i}, expected ${expect}`);
            expect = i + 1;
            items++;
            progress(1);
          }
          if (expect !== n) problems.push(`count from node ${node}: ${expect} of ${n} items`);
          const sum = await sb.callClientStream<number, number>('demo.sum', numbers(), { node });
          if (sum !== (n * (n - 1)) / 2) problems.push(`sum from node ${node}: ${sum}`);
          let k = 0;
          for await (const w of sb.callBidi<string, string>('demo.upper', words(), { node })) {
            if (w !== `WORD${k}` && problems.length < 5)
              problems.push(`upper from node ${node}: got ${w}, expected WORD${k}`);
            k++;
            items++;
            progress(1);
          }
          if (k !== n) problems.push(`upper from node ${node}: ${k} of ${n} items`);
        }),
      );
      await barrier(ctx, 'rpc-stream-done');
      return { count: items, problems };
    };
  },
};

/** Topics node 0 publishes on, in turn, and the pattern each node subscribes to (by id, in turn). */
const TOPICS = ['orders.created', 'orders.paid', 'orders.eu.shipped', 'stock.eu.low'];
const PATTERNS = ['orders.>', 'orders.*', '*.eu.*', '>'];

function patternOf(node: number): string {
  return PATTERNS[node % PATTERNS.length]!;
}

/** The sequence numbers a subscriber to `pattern` must receive, in order. */
function matching(pattern: string, p: ScenarioParams): number[] {
  const hits = TOPICS.map((t) => topicMatches(pattern, t));
  const out: number[] = [];
  for (let seq = 0; seq < p.messages; seq++) if (hits[seq % TOPICS.length]) out.push(seq);
  return out;
}

/** Pub-sub: node 0 publishes on four topics; every node (node 0 too) subscribes with a wildcard. */
const pubsub: Scenario = {
  key: 'pubsub',
  title: 'Pub-sub (wildcards)',
  checks: `node 0 publishes on ${TOPICS.join(', ')}; subscribers to ${PATTERNS.join(', ')} get exactly the matching ones, in order`,
  total: (p) =>
    Array.from({ length: p.n }, (_, i) => matching(patternOf(i), p).length).reduce(
      (a, b) => a + b,
      0,
    ),
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    const pattern = patternOf(id);
    const want = matching(pattern, params);
    // A buffer for everything this subscriber should get: the demo checks
    // delivery, so it must not drop by design (drops would be counted).
    const sub = sb.subscribe<number>(pattern, { bufferSize: want.length + 1 });
    return async () => {
      await barrier(ctx, 'pubsub');
      const problems: string[] = [];
      let got = 0;
      const reading = (async () => {
        if (want.length === 0) return;
        for await (const { topic, value } of sub) {
          if (value !== want[got] && problems.length < 5)
            problems.push(`${pattern}: got #${value} on ${topic}, expected #${want[got]}`);
          if (!topicMatches(pattern, topic)) problems.push(`${pattern} got topic ${topic}`);
          progress(1);
          if (++got === want.length) break;
        }
      })();
      if (id === 0) {
        // Publish once this publisher reaches every subscription (their streams are open).
        const expected = TOPICS.map(
          (t) =>
            Array.from({ length: params.n }, (_, i) => i).filter((i) =>
              topicMatches(patternOf(i), t),
            ).length,
        );
        await until(
          () => TOPICS.every((t, i) => sb.subscribers(t) === expected[i]),
          10_000,
          'every subscription reachable',
        );
        for (let seq = 0; seq < params.messages; seq++) {
          sb.publish(TOPICS[seq % TOPICS.length]!, seq);
          // Now and then, let the event loop turn (heartbeats, credit) and
          // wait for the publisher's own queues, so that they never overflow.
          if (seq % 256 === 255) {
            await new Promise((res) => setImmediate(res));
            await sb.drained();
          }
        }
        await sb.drained();
      }
      // Frames on a link keep their order: once every node's token is in,
      // everything node 0 published has reached this node's subscription.
      await barrier(ctx, 'pubsub-done');
      await until(() => got === want.length || sub.stats().queued === 0, 10_000, 'reading');
      const dropped = sub.stats().dropped;
      if (got < want.length) sub.close();
      await reading;
      if (got !== want.length)
        problems.push(`${pattern}: ${got} of ${want.length} arrived, ${dropped} dropped`);
      sub.close();
      return { count: got, problems, facts: { dropped } };
    };
  },
};

interface Job {
  readonly seq: number;
}

/** Push-pull: node 0 pushes tasks; workers on every other node pull them. */
const pushpull: Scenario = {
  key: 'pushpull',
  title: 'Push-pull',
  checks:
    'node 0 pushes tasks to workers on every other node (least loaded first); each done exactly once',
  total: (p) => tasks(p),
  prepare: (ctx) => {
    const { sb, id, params, progress } = ctx;
    const seqs: number[] = [];
    const worker =
      id === 0
        ? undefined
        : sb.worker<Job>(
            'demo.jobs',
            (job) => {
              seqs.push(job.seq);
              progress(1);
            },
            { concurrency: 4 },
          );
    return async () => {
      await barrier(ctx, 'pushpull');
      if (worker !== undefined) {
        await barrier(ctx, 'pushpull-done');
        await worker.close();
        return { count: seqs.length, problems: [], facts: { seqs } };
      }
      const pusher = sb.pusher<Job>('demo.jobs');
      await until(() => pusher.stats().workers === params.n - 1, 10_000, 'every worker reachable');
      const failures: string[] = [];
      const sub = pusher.errors$.subscribe((e) => failures.push(e.message));
      for (let seq = 0; seq < tasks(params); seq++) await pusher.push({ seq });
      await pusher.settled();
      const st = pusher.stats();
      sub.unsubscribe();
      await pusher.close();
      await barrier(ctx, 'pushpull-done');
      const problems = failures.slice(0, 5);
      if (st.completed !== tasks(params))
        problems.push(`${st.completed} of ${tasks(params)} tasks acknowledged`);
      return { count: 0, problems, facts: { stats: st } };
    };
  },
  verify: (outcomes, p) => {
    const seen = new Uint8Array(tasks(p));
    const problems: string[] = [];
    for (const o of outcomes.slice(1)) {
      for (const s of (o.facts?.seqs as number[] | undefined) ?? []) {
        if (seen[s] === 1 && problems.length < 5) problems.push(`task #${s} ran twice`);
        seen[s] = 1;
      }
    }
    const lost = seen.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
    if (lost > 0) problems.push(`${lost} task(s) never ran`);
    return problems;
  },
  note: (outcomes) =>
    `spread ${outcomes
      .slice(1)
      .map((o) => count(o.count))
      .join(' / ')} over nodes 1..${outcomes.length - 1}`,
};

function tasks(p: ScenarioParams): number {
  return Math.max(100, Math.floor(p.messages / 2));
}

/**
 * Push-pull while a worker's node is killed: node 0 pushes tasks to workers
 * on every other node; the parent kills the victim (the last node) while it
 * holds tasks. Its unacknowledged tasks must be handed to the survivors
 * once its loss is detected (at least once), so every task completes.
 */
const failover: Scenario = {
  key: 'failover',
  title: 'Push-pull failover',
  checks:
    'a worker node is killed holding tasks; they go to the other workers and every task completes (at least once)',
  // Unknown in advance: node 0 pushes until the victim is declared down.
  total: () => 0,
  prepare: ({ sb, id, params, progress }) => {
    // Every node runs a worker (node 0 too, so that one always survives).
    const seqs: number[] = [];
    const worker = sb.worker<Job>(
      'demo.failover',
      async (job) => {
        // Some work, so that the victim holds tasks when it is killed.
        await new Promise((res) => setTimeout(res, 2));
        seqs.push(job.seq);
        progress(1);
      },
      { concurrency: 2 },
    );
    if (id !== 0) {
      const done = sb.receiver<number>('demo.failover.done', { expectSenders: 1 });
      return async () => {
        for await (const _ of done) break;
        await worker.close();
        return { count: seqs.length, problems: [], facts: { seqs } };
      };
    }
    const pusher = sb.pusher<Job>('demo.failover');
    return async () => {
      await until(() => pusher.stats().workers === params.n, 10_000, 'every worker reachable');
      const failures: string[] = [];
      const sub = pusher.errors$.subscribe((e) => failures.push(e.message));
      // Push for as long as the victim lives (the parent kills it once it
      // is busy), then a last batch: however fast the machine, the victim
      // holds tasks when it dies.
      let down = false;
      const events = sb.events$.subscribe((e) => {
        if (e.type === 'peer-down' && e.node === params.victim) down = true;
      });
      const stopAt = performance.now() + 20_000;
      let pushed = 0;
      while (!down && performance.now() < stopAt) await pusher.push({ seq: pushed++ });
      events.unsubscribe();
      for (let i = 0; i < AFTER_DOWN; i++) await pusher.push({ seq: pushed++ });
      await pusher.settled();
      const st = pusher.stats();
      sub.unsubscribe();
      await pusher.close();
      await worker.close();
      // Tell the other surviving workers the queue is done.
      await Promise.all(
        others(params)
          .filter((node) => node !== params.victim)
          .map(async (node) => {
            const done = sb.sender<number>('demo.failover.done', { node });
            await done.send(0);
            done.close();
          }),
      );
      if (!down) failures.push(`node ${params.victim} was never declared down`);
      const problems = failures.slice(0, 5);
      if (st.completed !== pushed || st.failed !== 0)
        problems.push(`${st.completed} of ${pushed} tasks completed, ${st.failed} failed`);
      if (st.redelivered === 0) problems.push('no task was handed over after the kill');
      return {
        count: seqs.length,
        problems,
        facts: { seqs, redelivered: st.redelivered, completed: st.completed },
      };
    };
  },
  verify: (outcomes) => {
    // Survivors ran a task twice only if it was handed over.
    const runs = new Map<number, number>();
    for (const o of outcomes)
      for (const s of (o.facts?.seqs as number[] | undefined) ?? [])
        runs.set(s, (runs.get(s) ?? 0) + 1);
    const twice = [...runs.values()].filter((r) => r > 1).length;
    const redelivered = Number(outcomes[0]?.facts?.redelivered ?? 0);
    return twice > redelivered
      ? [`${twice} tasks ran twice on survivors, only ${redelivered} were handed over`]
      : [];
  },
  note: (outcomes) =>
    `all ${count(Number(outcomes[0]?.facts?.completed ?? 0))} done; ` +
    `${count(Number(outcomes[0]?.facts?.redelivered ?? 0))} handed over after the kill`,
};

/** Tasks pushed after the victim was declared down: work goes on without it. */
const AFTER_DOWN = 200;

/** Runs while a node is killed. */
export const FAILOVER: Scenario = failover;

/** Every scenario, in the order the demo runs them; the node kill happens before `afterKill`. */
export const SCENARIOS: readonly Scenario[] = [
  mpsc,
  replyChannel,
  mpmcOne,
  mpmcAll,
  rpcUnary,
  rpcStream,
  pubsub,
  pushpull,
  post,
];

/** Runs after the node kill and restart. */
export const REJOIN: Scenario = rejoin;

/** Scenarios before the node kill; the rest run after the restarted node rejoined. */
export const KILL_AFTER = 'rpc-stream';

export function findScenario(key: string): Scenario | undefined {
  return [REJOIN, FAILOVER, ...SCENARIOS].find((s) => s.key === key);
}
