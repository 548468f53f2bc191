/**
 * The parent's handle on one child process with an IPC channel: what it
 * reported (in order, with the parent's clock), how it ended, the tail of
 * its output, and waits that always end (a match, a fatal report, its exit,
 * or a timeout). What spec/support/children.ts builds on, for the specs
 * not yet on switchboard/testing (docs/testing.md).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** How a child ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A message from a child and when the parent got it (`performance.now()`). */
export interface Logged<M> {
  readonly message: M;
  readonly at: number;
}

/** What to run. */
export interface ChildSpawn {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  /** Characters of stdout and stderr kept for failure messages. */
  readonly keepOutput: number;
}

/** A child process reporting messages of type `M` over IPC. */
export abstract class IpcChild<M extends { readonly type: string }> {
  readonly proc: ChildProcess;
  /** Everything the child reported, in order. */
  readonly log: Array<Logged<M>> = [];
  /** Resolves when the process is gone (never rejects). */
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  private output = '';
  private readonly listeners = new Set<() => void>();

  constructor(what: ChildSpawn) {
    const env = { ...process.env };
    // Parents under jest run with NODE_OPTIONS=--experimental-vm-modules:
    // children need none of it (nor its warning).
    delete env.NODE_OPTIONS;
    this.proc = spawn(what.command, what.args, {
      cwd: what.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer): void => {
      // Bounded: only the tail matters when something fails.
      this.output = (this.output + chunk.toString()).slice(-what.keepOutput);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.proc.on('message', (message: M) => {
      const entry = { message, at: performance.now() };
      this.log.push(entry);
      this.received(entry);
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

  /** True until the process exited. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** The child's recent stdout and stderr. */
  get outputTail(): string {
    return this.output;
  }

  /** The current log position, to wait for or inspect only what comes after it. */
  mark(): number {
    return this.log.length;
  }

  /** Sends a signal (no-op once exited). */
  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(signal);
  }

  /**
   * Resolves with the first `pick(r)` that is not undefined, scanning the log
   * from index `from`, then waiting for new messages. Rejects on timeout, on
   * a fatal report, or when the child exits first.
   */
  waitFor<T>(
    pick: (r: Logged<M>) => T | undefined,
    what: string,
    timeoutMs: number,
    from = 0,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let index = from;
      const fail = (why: string): void => {
        done();
        reject(this.failure(why, what, from));
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
          const fatal = this.fatal(r.message);
          if (fatal !== undefined) {
            fail(fatal);
            return;
          }
        }
        if (this.exit !== undefined) fail(this.exitReason(this.exit));
      };
      const timer = setTimeout(
        () => fail(`timed out after ${Math.round(timeoutMs)} ms`),
        timeoutMs,
      );
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Why a wait fails on `message`, if it reports a fatal error. */
  protected abstract fatal(message: M): string | undefined;

  /** The error a failed wait for `what` rejects with. */
  protected abstract failure(why: string, what: string, from: number): Error;

  /** Why a wait fails once the child exited. */
  protected exitReason(exit: ExitInfo): string {
    return `exited (code ${exit.code}, signal ${exit.signal})`;
  }

  /** Called for each message as it arrives, before waits see it. */
  protected received(_entry: Logged<M>): void {}

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}
