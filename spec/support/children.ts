/**
 * Parent side of the multi-process specs: spawns a child program with
 * `node --import tsx/esm` and an IPC channel, sends it commands, waits on
 * what it reports (always with a timeout), and kills whatever is left in
 * `cleanup()`, which every spec calls in `afterEach`/`afterAll` so nothing
 * outlives a failed test. The child side is spec/support/child-runtime.ts.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
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
export interface Received<M> {
  readonly message: M;
  readonly at: number;
}

/** How a child ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

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
 * takes.
 */
export class ChildProcessHandle<M extends { readonly type: string }, C extends CommandBase> {
  readonly proc: ChildProcess;
  /** Parent clock when the child was spawned. */
  readonly spawnedAt = performance.now();
  /** Everything the child reported, in order. */
  readonly log: Array<Received<M>> = [];
  /** Resolves when the process is gone (never rejects). */
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  private output = '';
  private nextRe = 1;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    program: string,
    arg: unknown,
    options: SpawnOptions = {},
  ) {
    const env = { ...process.env };
    // jest runs with --experimental-vm-modules; children do not need it (nor its warning).
    delete env.NODE_OPTIONS;
    const argv = [
      process.execPath,
      '--import',
      'tsx/esm',
      resolve(ROOT, program),
      JSON.stringify(arg),
    ];
    const [command, ...args] =
      options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv];
    this.proc = spawn(command!, args, {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer): void => {
      // Bounded: only the tail matters when a spec fails.
      this.output = (this.output + chunk.toString()).slice(-8_192);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.proc.on('message', (message: M) => {
      this.log.push({ message, at: performance.now() });
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.notify();
      });
      this.proc.on('error', (err) => {
        this.output += `\nspawn error: ${err.message}`;
        this.exit ??= { code: null, signal: null };
        resolve(this.exit);
        this.notify();
      });
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** True until the process exited. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** The current log position, to wait for or inspect what comes after it. */
  mark(): number {
    return this.log.length;
  }

  /** The child's recent stdout and stderr, for failure messages. */
  get outputTail(): string {
    return this.output;
  }

  /**
   * Resolves with the first `pick(r)` that is not undefined, scanning the log
   * from index `from`, then waiting for new messages. Rejects on timeout, on a
   * fatal report, or when the child exits first.
   */
  waitFor<T>(
    pick: (r: Received<M>) => T | undefined,
    what: string,
    timeoutMs: number,
    from = 0,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let index = from;
      const fail = (why: string): void => {
        done();
        reject(
          new Error(`${this.label}: ${why} while waiting for ${what}\n${this.describe(from)}`),
        );
      };
      const check = (): void => {
        for (; index < this.log.length; index++) {
          const r = this.log[index]!;
          const value = pick(r);
          if (value !== undefined) {
            done();
            resolve(value);
            return;
          }
          if (isFatal(r.message)) {
            fail(`fatal error in the child (${r.message.message})`);
            return;
          }
        }
        if (this.exit !== undefined)
          fail(`exited (code ${this.exit.code}, signal ${this.exit.signal})`);
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
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

  /** Sends a signal (no-op once exited). */
  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(signal);
  }

  /** What a failed wait adds to its message: by default the child's recent output. */
  protected describe(_from: number): string {
    return this.output;
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
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
