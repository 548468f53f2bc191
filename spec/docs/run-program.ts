/**
 * Runs a program the way a user would (a child process with pipes, so
 * output is not a terminal) and collects what it printed. The child gets its
 * own process group, so a program that hangs is killed with everything it
 * spawned when the time bound expires.
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface ProgramResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True if the time bound expired and the program was killed. */
  readonly timedOut: boolean;
  readonly ms: number;
}

/** Runs `command args` in `cwd` (default: the repository root), killed after `timeoutMs`. */
export function runProgram(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  cwd = ROOT,
): Promise<ProgramResult> {
  const env = { ...process.env };
  // jest runs with NODE_OPTIONS=--experimental-vm-modules; programs need none of it.
  delete env.NODE_OPTIONS;
  const began = performance.now();
  const child = spawn(command, [...args], {
    cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let timedOut = false;
  const killGroup = (): void => {
    try {
      // The negative pid is the child's process group: npm, tsx and the nodes it spawned.
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  return new Promise((resolvePromise) => {
    child.on('error', (err) => {
      stderr += `\nspawn error: ${err.message}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Anything the program left behind in its group goes too.
      killGroup();
      resolvePromise({
        code,
        signal,
        stdout,
        stderr,
        timedOut,
        ms: performance.now() - began,
      });
    });
  });
}

/** A readable account of a run, for failure messages. */
export function explain(r: ProgramResult): string {
  return (
    `exit code ${r.code}, signal ${r.signal}${r.timedOut ? ' (timed out)' : ''} after ` +
    `${Math.round(r.ms)} ms\n--- stdout ---\n${r.stdout.slice(-6000)}\n--- stderr ---\n${r.stderr.slice(-3000)}`
  );
}
