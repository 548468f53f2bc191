/**
 * The commands that use the cluster as an application does: `call`,
 * `pub`, `sub` and `push`. Values are given and printed as JSON; what a
 * message carries beyond JSON (bytes, maps, bigints) is printed in the
 * spelling of format.ts.
 */
import { createInterface } from 'node:readline';
import { isValidPattern, isValidTopic } from '../../../lib/index.js';
import { UsageError } from '../../demo/options.js';
import { defineCommand } from '../command.js';
import { EXIT, FailedError } from '../exit.js';
import { errorLine, note, out, toJson } from '../format.js';
import { intFlag, secondsFlag } from '../target.js';

/** A positional JSON value. */
function parseValue(raw: string | undefined, what: string): unknown {
  if (raw === undefined) return null;
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new UsageError(
      `${what} must be JSON (a string needs its quotes: '"text"'); got ${raw}: ${(err as Error).message}`,
    );
  }
}

/** The operation failed: the error on stderr, and on stdout as JSON with --json. */
function failed(json: boolean, what: string, err: unknown): FailedError {
  if (json) out(toJson({ ok: false, error: err }, false));
  return new FailedError(`${what}: ${errorLine(err)}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One JSON value per line of stdin, blank lines skipped; a line that is not
 * JSON stops with `bad`. The line reader starts when the call first pulls:
 * one made earlier reads ahead, and loses the lines (and the end) it
 * announced before anyone iterated it.
 */
async function* stdinJsonLines(bad: (error: UsageError) => void): AsyncGenerator<unknown> {
  let n = 0;
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line) as unknown;
    } catch (err) {
      bad(new UsageError(`stdin line ${n} is not JSON: ${(err as Error).message}`));
      return;
    }
    yield value;
  }
}

export const call = defineCommand({
  name: 'call',
  summary: 'call an RPC method with a JSON request; print the reply',
  usage: `Usage: switchboard call <method> [json] [options]

Calls <method> with the request [json] (default null) on a member that
serves it (load-balanced, or --node) and prints the reply as JSON.
With --stream, calls a server-streaming method and prints each reply on
its own line as it arrives.
With --up, the request is a stream: each --item, or else one JSON value
per line of stdin until it ends (a client-streaming call: its one reply
is printed); --up --stream is a bidirectional call, each reply printed on
its own line as it arrives, while stdin is still being read.`,
  optionsHelp: `  --node <id>             call this member only
  --stream                replies are a stream: one JSON line per reply
  --up                    the request is a stream: --item values, or stdin lines
  --item <json>           with --up: one request item (repeat it; stdin unread)
  --timeout <s>           the call's deadline (default 30)`,
  options: {
    node: { type: 'string' },
    stream: { type: 'boolean' },
    up: { type: 'boolean' },
    item: { type: 'string', multiple: true },
    timeout: { type: 'string' },
  },
  positionals: [1, 2],
  parse(a) {
    const [method, raw] = a.positionals as [string, string | undefined];
    const nodeRaw = a.values.node as string | undefined;
    const node =
      nodeRaw === undefined ? undefined : intFlag('node', nodeRaw, 0, a.nodeCount - 1, 0);
    const up = a.values.up === true;
    const itemsRaw = a.values.item as string[] | undefined;
    if (up && raw !== undefined)
      throw new UsageError('--up takes its request items from --item or stdin, not [json]');
    if (!up && itemsRaw !== undefined) throw new UsageError('--item needs --up');
    return {
      method,
      request: up ? null : parseValue(raw, 'the request'),
      stream: a.values.stream === true,
      up,
      items: itemsRaw?.map((x, i) => parseValue(x, `--item ${i + 1}`)),
      options: {
        timeoutMs: secondsFlag('timeout', a.values.timeout as string | undefined, 30),
        ...(node === undefined ? {} : { node }),
      },
    };
  },
  async run(ctx, { method, request, stream, up, items, options }) {
    const { sb } = ctx.session;
    // A stdin line that is not JSON cancels the call, and the command exits as misused.
    const cancel = new AbortController();
    const upItems = (): Iterable<unknown> | AsyncIterable<unknown> =>
      items ?? stdinJsonLines((e) => cancel.abort(e));
    /** Throws the stdin line's UsageError once one cancelled the call. */
    const misused = (): void => {
      if (cancel.signal.aborted) throw cancel.signal.reason as UsageError;
    };
    const callOptions = up ? { ...options, signal: cancel.signal } : options;
    if (stream) {
      let n = 0;
      try {
        const replies = up
          ? sb.callBidi(method, upItems(), callOptions)
          : sb.callStream(method, request, callOptions);
        for await (const item of replies) {
          out(toJson(item, false));
          n++;
        }
      } catch (err) {
        misused();
        throw failed(ctx.json, `call "${method}" failed after ${n} replies`, err);
      }
      misused();
      return EXIT.OK;
    }
    let reply: unknown;
    try {
      reply = up
        ? await sb.callClientStream(method, upItems(), callOptions)
        : await sb.call(method, request, callOptions);
    } catch (err) {
      misused();
      throw failed(ctx.json, `call "${method}" failed`, err);
    }
    misused();
    out(toJson(reply, !ctx.json));
    return EXIT.OK;
  },
});

export const pub = defineCommand({
  name: 'pub',
  summary: 'publish a JSON value on a topic',
  usage: `Usage: switchboard pub <topic> <json> [options]

Publishes <json> on <topic> (--count times), waits until it has left,
and says how many subscriptions it reached. Subscriptions become known a
moment after attaching: it first waits up to --wait for one to match.`,
  optionsHelp: `  --count <n>             publish it this many times, 1..1000000 (default 1)
  --wait <s>              wait this long for a matching subscription (default 1)`,
  options: { count: { type: 'string' }, wait: { type: 'string' } },
  positionals: [2, 2],
  parse(a) {
    const [topic, raw] = a.positionals as [string, string];
    if (!isValidTopic(topic))
      throw new UsageError(`pub: "${topic}" is not a topic: dot-separated tokens, no wildcards`);
    return {
      topic,
      value: parseValue(raw, 'the value'),
      count: intFlag('count', a.values.count as string | undefined, 1, 1_000_000, 1),
      waitMs: secondsFlag('wait', a.values.wait as string | undefined, 1),
    };
  },
  async run(ctx, { topic, value, count, waitMs }) {
    const { sb } = ctx.session;
    const until = performance.now() + waitMs;
    while (sb.subscribers(topic) === 0 && performance.now() < until) await sleep(20);
    const reached = sb.subscribers(topic);
    try {
      for (let i = 0; i < count; i++) {
        sb.publish(topic, value);
        // Keep the queue short: a million publications must not all wait in memory.
        if (i % 1024 === 1023) await sb.drained();
      }
      await sb.drained();
    } catch (err) {
      throw failed(ctx.json, `publish on "${topic}" failed`, err);
    }
    if (ctx.json) out(toJson({ ok: true, topic, published: count, subscriptions: reached }, false));
    else out(`published ${count} on ${topic}; ${reached} subscription(s) matched`);
    return EXIT.OK;
  },
});

export const sub = defineCommand({
  name: 'sub',
  summary: 'subscribe to a pattern and print what arrives',
  usage: `Usage: switchboard sub <pattern> [options]

Subscribes to <pattern> (tokens separated by dots, * for one token, > for
the rest: orders.*, orders.>) and prints each publication as it arrives,
"<topic> <json>" (with --json, one {"topic","value"} object per line),
until interrupted (Ctrl-C), --count publications arrived, or --timeout
passed. "subscribed" is written to stderr once the subscription is made.`,
  optionsHelp: `  --count <n>             stop after n publications (exit 1 if --timeout comes first)
  --timeout <s>           stop after this long (exit 0 unless --count was not reached)`,
  options: { count: { type: 'string' }, timeout: { type: 'string' } },
  positionals: [1, 1],
  parse(a) {
    const countRaw = a.values.count as string | undefined;
    const timeoutRaw = a.values.timeout as string | undefined;
    const pattern = a.positionals[0]!;
    if (!isValidPattern(pattern))
      throw new UsageError(
        `sub: "${pattern}" is not a pattern: dot-separated tokens, * for one, > for the rest`,
      );
    return {
      pattern,
      count: countRaw === undefined ? undefined : intFlag('count', countRaw, 1, 1e9, 1),
      timeoutMs: timeoutRaw === undefined ? undefined : secondsFlag('timeout', timeoutRaw, 0),
    };
  },
  async run(ctx, { pattern, count, timeoutMs }) {
    let subscription;
    try {
      subscription = ctx.session.sb.subscribe(pattern);
    } catch (err) {
      throw new UsageError(`sub: ${errorLine(err)}`);
    }
    const s = subscription;
    let stop: 'count' | 'timeout' | 'signal' | undefined;
    const end = (why: 'timeout' | 'signal'): void => {
      stop ??= why;
      s.close();
    };
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => end('timeout'), timeoutMs);
    const onSignal = (): void => end('signal');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    note(`subscribed to ${pattern}`);
    let n = 0;
    try {
      for await (const m of s) {
        if (stop !== undefined) break;
        out(
          ctx.json
            ? toJson({ topic: m.topic, value: m.value }, false)
            : `${m.topic} ${toJson(m.value, false)}`,
        );
        if (++n === count) {
          stop = 'count';
          break;
        }
      }
    } catch (err) {
      if (stop === undefined)
        throw new FailedError(`subscription to "${pattern}" failed: ${errorLine(err)}`);
    } finally {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      s.close();
    }
    if (count !== undefined && n < count)
      throw new FailedError(`${n} of ${count} publications arrived before ${stop ?? 'the end'}`);
    return EXIT.OK;
  },
});

export const push = defineCommand({
  name: 'push',
  summary: "push a JSON task to a queue; done once a worker's window took it",
  usage: `Usage: switchboard push <queue> <json> [options]

Pushes the task <json> to <queue> (--count times); each push is done once
a worker of the queue, on any member, took it into its window (the
least-loaded worker first). A queue without a worker waits, up to
--timeout.`,
  optionsHelp: `  --count <n>             push it this many times, 1..1000000 (default 1)
  --timeout <s>           give up on a push after this long (default 30)`,
  options: { count: { type: 'string' }, timeout: { type: 'string' } },
  positionals: [2, 2],
  parse(a) {
    const [queue, raw] = a.positionals as [string, string];
    return {
      queue,
      task: parseValue(raw, 'the task'),
      count: intFlag('count', a.values.count as string | undefined, 1, 1_000_000, 1),
      timeoutMs: secondsFlag('timeout', a.values.timeout as string | undefined, 30),
    };
  },
  async run(ctx, { queue, task, count, timeoutMs }) {
    let pushed = 0;
    try {
      for (let i = 0; i < count; i++) {
        await ctx.session.sb.push(queue, task, { timeoutMs });
        pushed++;
      }
    } catch (err) {
      throw failed(ctx.json, `push to "${queue}" failed after ${pushed} task(s)`, err);
    }
    if (ctx.json) out(toJson({ ok: true, queue, pushed }, false));
    else out(`pushed ${pushed} task(s) to ${queue}`);
    return EXIT.OK;
  },
});
