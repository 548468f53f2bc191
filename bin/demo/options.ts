/** Command-line flags of `switchboard demo`. */
import { parseArgs } from 'node:util';

export interface DemoOptions {
  /** Child processes in the cluster. */
  readonly nodes: number;
  /** Messages per sender in each channel scenario (other scenarios scale it). */
  readonly messages: number;
  /** Kill one node midway and restart it. */
  readonly kill: boolean;
  /** Print the summary as JSON on stdout (progress goes to stderr). */
  readonly json: boolean;
  /** Print every node's metrics in the Prometheus text format at the end. */
  readonly metrics: boolean;
  /** Plain lines even on a terminal. */
  readonly plain: boolean;
  /** Give up (and fail) after this many seconds. */
  readonly timeoutS: number;
  /** Run only these steps (scenario keys); undefined: all. */
  readonly only: readonly string[] | undefined;
}

/** The steps `--only` accepts. */
export const STEP_KEYS = [
  'mpsc',
  'reply',
  'mpmc-one',
  'mpmc-all',
  'rpc-unary',
  'rpc-stream',
  'kill',
  'pubsub',
  'pushpull',
  'post',
] as const;

export const DEFAULT_DEMO_OPTIONS: DemoOptions = Object.freeze({
  nodes: 3,
  messages: 10_000,
  kill: true,
  json: false,
  metrics: false,
  plain: false,
  timeoutS: 60,
  only: undefined,
});

export const DEMO_HELP = `Usage: switchboard demo [options]

Starts a local cluster of child processes on 127.0.0.1 (random free ports,
a random shared secret), rendezvouses, and runs every pattern across it:
MPSC and MPMC channels (with a Sender travelling inside a message), RPC
(unary and streaming), pub-sub with wildcards, push-pull and
fire-and-forget. Midway it kills one node with SIGKILL, shows the others
noticing (peer-down) and the node rejoining after a restart. Each step
checks real results (counts, order, no duplicates). Prints a summary table
and exits 0 when every check passed, 1 otherwise.

Options:
  --nodes <n>       child processes in the cluster, 2..16 (default ${DEFAULT_DEMO_OPTIONS.nodes})
  --messages <n>    messages per sender in each channel step, 100..1000000
                    (default ${DEFAULT_DEMO_OPTIONS.messages}); RPC and the other steps scale from it
  --no-kill         skip killing and restarting a node
  --json            print the summary as JSON on stdout; progress goes to stderr
  --metrics         also print every node's metrics in the Prometheus text format
  --plain           plain log lines even on a terminal (the default when
                    stdout is not a terminal)
  --timeout <s>     give up and fail after this many seconds (default ${DEFAULT_DEMO_OPTIONS.timeoutS})
  --only <steps>    run only these steps, comma-separated: ${STEP_KEYS.join(', ')}
                    (the node kill and the rejoin check run with --only kill)
  -h, --help        show this help

Environment:
  NO_COLOR          no colours on a terminal
  NODE_DEBUG=switchboard
                    the library's debug log, from every node (on stderr)

Exit status: 0 all checks passed; 1 a check failed or the demo timed out;
2 bad command line.`;

function steps(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const keys = raw
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const bad = keys.filter((k) => !(STEP_KEYS as readonly string[]).includes(k));
  if (keys.length === 0 || bad.length > 0)
    throw new UsageError(`--only takes steps among ${STEP_KEYS.join(', ')}; got "${raw}"`);
  return keys;
}

/** A bad command line; the message says which flag. */
export class UsageError extends Error {}

/** A whole number given to `--flag` (`dflt` when absent); a UsageError otherwise. */
export function intFlag(
  flag: string,
  raw: string | undefined,
  min: number,
  max: number,
  dflt: number,
): number {
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new UsageError(`--${flag} must be an integer in ${min}..${max}, got "${raw}"`);
  return v;
}

/** Parses the flags after `demo`; `help` is true when --help was given. */
export function parseDemoArgs(argv: readonly string[]): DemoOptions & { readonly help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        nodes: { type: 'string' },
        messages: { type: 'string' },
        'no-kill': { type: 'boolean' },
        json: { type: 'boolean' },
        metrics: { type: 'boolean' },
        plain: { type: 'boolean' },
        timeout: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const d = DEFAULT_DEMO_OPTIONS;
  return {
    nodes: intFlag('nodes', values.nodes, 2, 16, d.nodes),
    messages: intFlag('messages', values.messages, 100, 1_000_000, d.messages),
    kill: values['no-kill'] !== true,
    json: values.json === true,
    metrics: values.metrics === true,
    plain: values.plain === true,
    timeoutS: intFlag('timeout', values.timeout, 5, 3_600, d.timeoutS),
    only: steps(values.only),
    help: values.help === true,
  };
}
