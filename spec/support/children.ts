/**
 * Parent side of the multi-process specs: spawns a child program with
 * `node --import tsx/esm` and an IPC channel, sends it commands, waits on
 * what it reports (always with a timeout), and kills whatever is left in
 * `cleanup()`, which every spec calls in `afterEach`/`afterAll` so nothing
 * outlives a failed test. The child side is spec/support/child-runtime.ts.
 */
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { IpcChild } from './ipc-child.js';
import type { Logged } from './ipc-child.js';
import type {
  CommandBase,
  CommandBody,
  FatalMessage,
  ReplyMessage,
  StartedMessage,
} from './child-runtime.js';

/** The repository root: children run from there so `--import tsx/esm` resolves. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Rejects with `what` if `promise` does not settle within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A message from a child and when the parent received it (`performance.now()`). */
export type Received<M> = Logged<M>;

export type { ExitInfo } from './ipc-child.js';

/** Where to run a child. */
export interface SpawnOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  readonly netns?: string;
}

const isFatal = (m: { readonly type: string }): m is FatalMessage => m.type === 'fatal';
const isReply = (m: { readonly type: string }, re: number): m is ReplyMessage =>
  m.type === 'reply' && (m as ReplyMessage).re === re;
const isStarted = (m: { readonly type: string }): m is StartedMessage => m.type === 'started';

/**
 * One child process running `program` (a path from {@link ROOT}) with `arg`
 * as JSON in its first argument. `M` is what it reports, `C` the commands it
 * takes. The process handling itself is spec/support/ipc-child.ts.
 */
export class ChildProcessHandle<
  M extends { readonly type: string },
  C extends CommandBase,
> extends IpcChild<M> {
  /** Parent clock when the child was spawned. */
  readonly spawnedAt = performance.now();
  private nextRe = 1;

  constructor(
    readonly label: string,
    program: string,
    arg: unknown,
    options: SpawnOptions = {},
  ) {
    const argv = [
      process.execPath,
      '--import',
      'tsx/esm',
      resolve(ROOT, program),
      JSON.stringify(arg),
    ];
    const [command, ...args] =
      options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv];
    super({ command: command!, args, cwd: ROOT, keepOutput: 8_192 });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Waits until the child reports a started switchboard; returns its incarnation. */
  started(timeoutMs = 10_000, from = 0): Promise<string> {
    return this.waitFor(
      (r) => (isStarted(r.message) ? r.message.incarnation : undefined),
      'started',
      timeoutMs,
      from,
    );
  }

  /** Sends a command; resolves with the reply value, rejects with the child's error. */
  async request<T = unknown>(body: CommandBody<C>, timeoutMs = 10_000): Promise<T> {
    if (!this.alive || !this.proc.connected) throw new Error(`${this.label}: not running`);
    const re = this.nextRe++;
    const from = this.log.length;
    this.proc.send({ ...body, re });
    const reply = await this.waitFor(
      (r) => (isReply(r.message, re) ? r.message : undefined),
      `reply to ${body.cmd}`,
      timeoutMs,
      from,
    );
    if (!reply.ok) {
      const err = new Error(`${this.label}: ${body.cmd} failed: ${reply.message}`);
      (err as Error & { code?: string | undefined }).code = reply.code;
      throw err;
    }
    return reply.value as T;
  }

  protected fatal(message: M): string | undefined {
    return isFatal(message) ? `fatal error in the child (${message.message})` : undefined;
  }

  protected failure(why: string, what: string, from: number): Error {
    return new Error(`${this.label}: ${why} while waiting for ${what}\n${this.describe(from)}`);
  }

  /** What a failed wait adds to its message: by default the child's recent output. */
  protected describe(_from: number): string {
    return this.outputTail;
  }
}

/** Keeps every child a spec spawns; `cleanup()` kills the survivors and waits for them. */
export class ChildPool<
  P extends Pick<ChildProcessHandle<never, never>, 'label' | 'alive' | 'exited' | 'kill'>,
> {
  private readonly children: P[] = [];

  /** Takes `child` into the pool; returns it. */
  protected adopt(child: P): P {
    this.children.push(child);
    return child;
  }

  /** Kills every child still running (resuming stopped ones first) and waits for them. */
  async cleanup(): Promise<void> {
    const alive = this.children.filter((c) => c.alive);
    for (const c of alive) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    await within(
      Promise.all(alive.map((c) => c.exited)),
      10_000,
      `children to die: ${alive.map((c) => c.label).join(', ')}`,
    );
    this.children.length = 0;
  }
}

/**
 * Options for a switchboard in a spec child: quick reconnects; then
 * `defaults`, then `extra`.
 */
export function specNodeOptions<O>(
  nodes: readonly string[],
  id: number,
  secret: string,
  defaults: Partial<O>,
  extra: Partial<O>,
): O {
  return {
    nodes,
    id,
    secret,
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    lingerMs: 1_000,
    ...defaults,
    ...extra,
  } as O;
}
