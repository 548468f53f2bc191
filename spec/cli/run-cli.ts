/**
 * Runs the `switchboard` command as a user does: `node dist/bin/switchboard.js`
 * in a child process with pipes (output not a terminal), built first when
 * dist/ is stale, killed with its process group when its time bound passes.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, runProgram } from '../docs/run-program.js';
import { BUILD_MS, distIsFresh, expectOk } from '../packaging/pack.js';

export const BIN = join(ROOT, 'dist/bin/switchboard.js');

/** Builds dist/ unless it is what `npm run build` would make now. */
export async function ensureBuilt(): Promise<void> {
  if (!distIsFresh())
    expectOk('npm run build', await runProgram('npm', ['run', 'build'], BUILD_MS));
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** A running `switchboard` process. */
export class CliProcess {
  stdout = '';
  stderr = '';
  private readonly child: ChildProcess;
  private readonly done: Promise<CliResult>;
  private timedOut = false;
  private readonly watchers = new Set<() => void>();

  constructor(
    args: readonly string[],
    env: Readonly<Record<string, string>>,
    timeoutMs: number,
    /** Written to its stdin, which then ends; without it, stdin is not connected. */
    input?: string,
  ) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    // jest runs with NODE_OPTIONS=--experimental-vm-modules; the command needs none of it.
    delete childEnv.NODE_OPTIONS;
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: childEnv,
      detached: true,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) this.child.stdin!.end(input);
    const changed = (): void => {
      for (const w of this.watchers) w();
    };
    this.child.stdout!.on('data', (c: Buffer) => {
      this.stdout += c.toString();
      changed();
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      this.stderr += c.toString();
      changed();
    });
    const timer = setTimeout(() => {
      this.timedOut = true;
      this.kill('SIGKILL');
    }, timeoutMs);
    this.done = new Promise((resolve) => {
      this.child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: this.stdout, stderr: this.stderr, timedOut: this.timedOut });
      });
    });
  }

  /** Signals the process group. */
  kill(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.child.pid!, signal);
    } catch {
      // Already gone.
    }
  }

  /** Resolves once `pattern` shows in stderr (or stdout); rejects if the process ends first. */
  waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stderr'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(this[stream])) {
          this.watchers.delete(check);
          resolve();
        }
      };
      this.watchers.add(check);
      void this.done.then((r) => {
        if (this.watchers.delete(check))
          reject(new Error(`exited (${r.code}) before ${pattern}: ${r.stdout}\n${r.stderr}`));
      });
      check();
    });
  }

  result(): Promise<CliResult> {
    return this.done;
  }
}

/** Runs `switchboard args` to its end. */
export function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  timeoutMs = 30_000,
  input?: string,
): Promise<CliResult> {
  return new CliProcess(args, env, timeoutMs, input).result();
}

/** Says what the command did, for a failed expectation. */
export function explainCli(r: CliResult): string {
  return `exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
