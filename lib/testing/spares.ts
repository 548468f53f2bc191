/**
 * Node processes booted ahead. Starting a node costs a process, a Node
 * runtime and the kit and library loaded in it (about half a second under
 * tsx); a spare has paid that already, and has imported the user's module
 * too, so a start or restart that takes one only starts a switchboard. A
 * spare belongs to one way of running nodes (the same command line,
 * environment, working directory and module), waits for its start command
 * and nothing else, never holds the test process open (its handles are
 * unref'd until a node takes it), and dies with the test process (the exit
 * hook, or its IPC channel dropping) or with `closeAll()`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Command, NodeMessage } from './messages.js';
import type { Launch } from './launch.js';

interface Spare {
  readonly proc: ChildProcess;
  booted: boolean;
}

/** Spares by launch key. */
const pool = new Map<string, Spare[]>();
let exitHook = false;

function keyOf(launch: Launch, module: string): string {
  return JSON.stringify([launch.command, launch.args, launch.cwd, launch.env, module]);
}

/** Starts a node process for `launch` (its program waits for the start command). */
export function spawnNode(launch: Launch): ChildProcess {
  return spawn(launch.command, launch.args, {
    cwd: launch.cwd,
    env: launch.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
}

/** Handles of `proc` that keep an event loop alive. */
function handles(proc: ChildProcess): Array<{ ref?: () => void; unref?: () => void }> {
  return [proc, proc.channel ?? {}, proc.stdout ?? {}, proc.stderr ?? {}] as Array<{
    ref?: () => void;
    unref?: () => void;
  }>;
}

/** Boots spares until `count` are there (booted or booting) for `launch` and `module`. */
export function warmSpares(launch: Launch, module: string, count: number): void {
  if (count <= 0) return;
  const key = keyOf(launch, module);
  const spares = pool.get(key) ?? [];
  pool.set(key, spares);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', killSpares);
  }
  while (spares.length < count) {
    const proc = spawnNode(launch);
    const spare: Spare = { proc, booted: false };
    spares.push(spare);
    proc.on('error', () => undefined);
    proc.once('exit', () => {
      const i = spares.indexOf(spare);
      if (i >= 0) spares.splice(i, 1);
    });
    proc.on('message', function booted(m: NodeMessage) {
      if (m.t !== 'booted') return;
      spare.booted = true;
      proc.off('message', booted);
      // Load the module now, so that the start that takes this spare does not wait for it.
      if (proc.connected) proc.send({ t: 'preload', module } satisfies Command);
    });
    for (const h of handles(proc)) h.unref?.();
  }
}

/**
 * A booted spare for `launch` and `module`, taken out of the pool with its
 * handles ref'd again, or undefined when none is ready.
 */
export function takeSpare(launch: Launch, module: string): ChildProcess | undefined {
  const spares = pool.get(keyOf(launch, module));
  if (spares === undefined) return undefined;
  const i = spares.findIndex((s) => s.booted && s.proc.connected && s.proc.exitCode === null);
  if (i < 0) return undefined;
  const [spare] = spares.splice(i, 1);
  for (const h of handles(spare!.proc)) h.ref?.();
  return spare!.proc;
}

/** Kills every spare (at exit, and for `closeAll()`). */
export function killSpares(): void {
  for (const spares of pool.values()) {
    for (const s of spares.splice(0)) s.proc.kill('SIGKILL');
  }
}
