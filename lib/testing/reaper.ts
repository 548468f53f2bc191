/**
 * Paused nodes and a crashing test runner. A node exits by itself when its
 * IPC channel to the test drops (lib/testing/child.ts), but a node stopped
 * with SIGSTOP runs nothing, so it would stay stopped forever if the test
 * process died (SIGKILL, an out-of-memory kill) while it was paused, since
 * no exit hook runs then. The reaper is a small shell that the test process
 * feeds the pids of its paused nodes over a pipe; when the pipe closes,
 * because the test process is gone whatever the way, it kills those still
 * listed. It ignores SIGINT, SIGTERM and SIGHUP, so an interrupted run (^C
 * reaches the whole process group) cannot take it down before it has done
 * its job. Started on the first `pause()` only.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

const SCRIPT = `
trap '' INT TERM HUP
paused=""
while read -r op pid; do
  case "$op" in
    +) paused="$paused $pid" ;;
    -) paused=$(for p in $paused; do [ "$p" = "$pid" ] || printf '%s ' "$p"; done) ;;
  esac
done
for p in $paused; do kill -KILL "$p" 2>/dev/null; done
`;

let reaper: ChildProcess | undefined;

function started(): ChildProcess | undefined {
  if (reaper === undefined) {
    reaper = spawn('/bin/sh', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'] });
    reaper.on('error', () => undefined);
    reaper.stdin!.on('error', () => undefined);
    // Never what keeps the test process alive.
    reaper.unref();
    (reaper.stdin as unknown as { unref?: () => void }).unref?.();
  }
  return reaper.exitCode === null ? reaper : undefined;
}

/** `pid` is paused: kill it if the test process dies before it is resumed. */
export function watchPaused(pid: number): void {
  started()?.stdin!.write(`+ ${pid}\n`);
}

/** `pid` is running again, or gone. */
export function unwatchPaused(pid: number): void {
  if (reaper !== undefined) started()?.stdin!.write(`- ${pid}\n`);
}
