/**
 * Waits on the system, never on time alone: a wait looks at what the nodes
 * reported each time something new arrives, and ends when its condition
 * holds, when it can no longer hold (a node it needs died), or at its
 * deadline. A failed wait says what it waited for and what each node it
 * concerns printed and reported (docs/testing.md, "When a wait fails").
 */

/** A failed wait of the kit: its message carries the nodes' output and reports. */
export class ClusterWaitError extends Error {
  override get name(): string {
    return 'ClusterWaitError';
  }
}

/** Tells the waits that something changed (a report, an output line, an exit). */
export class Changes {
  private readonly listeners = new Set<() => void>();

  notify(): void {
    for (const l of [...this.listeners]) l();
  }

  listen(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** A wait's condition: a value ends it, `undefined` keeps waiting, a thrown error fails it. */
export type Check<T> = () => T | undefined;

/** How a wait is described when it fails. */
export interface WaitSpec {
  /** What is awaited, as the message starts: `"node 2 down on nodes 0, 1"`. */
  readonly what: string;
  readonly timeoutMs: number;
  /** What the nodes concerned printed and reported, read when the wait fails. */
  readonly describe: () => string;
  /** Also look every this many ms (for conditions nothing announces). */
  readonly pollMs?: number;
  /** Resolves once the output of the nodes concerned is all in (awaited, bounded, before describing). */
  readonly settle?: () => Promise<void>;
}

/** How long a failing wait lets the nodes' last output arrive before describing them. */
const SETTLE_MS = 500;

/** Resolves with the first value `check` returns, re-checked on every change. */
export function waitFor<T>(changes: Changes, check: Check<T>, spec: WaitSpec): Promise<T> {
  const started = performance.now();
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      stop();
    };
    const fail = (why: string, cause?: unknown): void => {
      if (done) return;
      finish();
      const ms = Math.round(performance.now() - started);
      void settled(spec.settle).then(() =>
        reject(
          new ClusterWaitError(
            `${spec.what}: ${why} (after ${ms} ms)\n${spec.describe()}`,
            cause === undefined ? undefined : { cause },
          ),
        ),
      );
    };
    const look = (): void => {
      if (done) return;
      let value: T | undefined;
      try {
        value = check();
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err), err);
        return;
      }
      if (value !== undefined) {
        finish();
        resolve(value);
      }
    };
    const timer = setTimeout(
      () => fail(`not met within the timeout of ${spec.timeoutMs} ms`),
      spec.timeoutMs,
    );
    const poll = spec.pollMs === undefined ? undefined : setInterval(look, spec.pollMs);
    const stop = changes.listen(look);
    look();
  });
}

/** Waits for `settle`, at most {@link SETTLE_MS}. */
async function settled(settle: (() => Promise<void>) | undefined): Promise<void> {
  if (settle === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    settle().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, SETTLE_MS))),
  ]);
  clearTimeout(timer);
}

/** The last `n` entries of `lines`, indented, or a note that there were none. */
export function tail(lines: readonly string[], n: number, indent = '    '): string {
  if (lines.length === 0) return `${indent}(nothing)`;
  const shown = lines.slice(-n);
  const skipped = lines.length - shown.length;
  return [
    ...(skipped > 0 ? [`${indent}... ${skipped} earlier lines`] : []),
    ...shown.map((l) => indent + l),
  ].join('\n');
}
