/**
 * What every cluster command shares: its flags parsed with the common
 * ones (node:util parseArgs, strict), `--help`, attaching, asking every
 * member one system method, and closing within a bound whatever happened.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from '../demo/options.js';
import { attach } from './attach.js';
import type { Session } from './attach.js';
import { errorLine } from './format.js';
import { COMMON_HELP, COMMON_OPTIONS, resolveTarget } from './target.js';
import type { ClusterTarget } from './target.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** What a command's flags are checked from, before it attaches. */
export interface Args {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
  /** Nodes in the node list (bounds `--node`). */
  readonly nodeCount: number;
}

/**
 * One command of `switchboard`: `parse` checks its flags into `P` before
 * anything is dialled (a bad flag is exit 2 even when the cluster is down),
 * `run` does the work.
 */
export interface Command<P = unknown> {
  readonly name: string;
  /** One line for `switchboard --help`. */
  readonly summary: string;
  /** `Usage:` line and description, before the options. */
  readonly usage: string;
  /** Its own options' help lines. */
  readonly optionsHelp: string;
  readonly options: Options;
  /** How many positionals it takes, at least and at most. */
  readonly positionals: readonly [number, number];
  parse(args: Args): P;
  run(ctx: Context, settings: P): Promise<number>;
}

/** Erases a command's settings type, for the table of commands. */
export function defineCommand<P>(cmd: Command<P>): Command {
  // Methods are bivariant in their parameters, so this needs no cast; it is
  // sound because `runCommand` hands `run` only what this command's `parse` returned.
  return cmd;
}

/** What a command's `run` gets. */
export interface Context {
  readonly json: boolean;
  readonly target: ClusterTarget;
  readonly session: Session;
}

/** The full help text of `cmd`. */
export function helpOf(cmd: Command): string {
  return [
    cmd.usage,
    cmd.optionsHelp === '' ? '' : `Options:\n${cmd.optionsHelp}`,
    COMMON_HELP,
    EXIT_HELP,
  ]
    .filter(Boolean)
    .join('\n\n');
}

export const EXIT_HELP = `Exit status: 0 done; 1 the operation failed or a member did not answer;
2 bad command line, cluster file or secret; 3 could not attach to the cluster.`;

/** Parses `argv` for `cmd`, attaches, runs it, and closes. */
export async function runCommand(cmd: Command, argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: { ...COMMON_OPTIONS, ...cmd.options },
    });
  } catch (err) {
    throw new UsageError(`${cmd.name}: ${(err as Error).message}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) {
    process.stdout.write(`${helpOf(cmd)}\n`);
    return 0;
  }
  const [min, max] = cmd.positionals;
  const n = parsed.positionals.length;
  if (n < min || n > max)
    throw new UsageError(
      `${cmd.name}: ${cmd.usage.split('\n')[0]!.replace(/^Usage: /, 'usage: ')}`,
    );
  const target = resolveTarget(values);
  const settings = cmd.parse({
    values,
    positionals: parsed.positionals,
    nodeCount: target.addresses.length,
  });
  const session = await attach(target);
  try {
    return await cmd.run({ json: values.json === true, target, session }, settings);
  } finally {
    await closeWithin(session, 2_000);
  }
}

/** Closes gracefully, or destroys after `ms`. */
async function closeWithin(session: Session, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((done) => (timer = setTimeout(() => done('late'), ms)));
  const r = await Promise.race([session.sb.close().then(() => 'closed' as const), late]);
  clearTimeout(timer);
  if (r === 'late') await session.sb.destroy();
}

/** One member's answer to a system method. */
export type Answer<T> =
  | {
      readonly node: number;
      readonly address: string;
      readonly ok: true;
      readonly value: T;
      readonly ms: number;
    }
  | {
      readonly node: number;
      readonly address: string;
      readonly ok: false;
      readonly error: string;
      readonly code: string | undefined;
    };

/** Calls `method` on every member at once, each with `{ node }`. */
export function askAll<T>(
  session: Session,
  method: string,
  timeoutMs: number,
): Promise<Answer<T>[]> {
  return Promise.all(
    session.members.map(async (node): Promise<Answer<T>> => {
      const address = session.addresses[node]!;
      const began = performance.now();
      try {
        const value = await session.sb.call<null, T>(method, null, {
          node,
          timeoutMs,
          waitForServerMs: Math.min(timeoutMs, 2_000),
        });
        return { node, address, ok: true, value, ms: performance.now() - began };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        return {
          node,
          address,
          ok: false,
          error: errorLine(err),
          code: typeof code === 'string' ? code : undefined,
        };
      }
    }),
  );
}
