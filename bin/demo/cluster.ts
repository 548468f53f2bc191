/**
 * The parent's side of the demo cluster: spawns the child nodes, sends them
 * commands and waits (always with a timeout) for what they report.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command, EventNote, Report } from './ipc.js';

/**
 * The child program, next to this file: `node.ts` when running under tsx,
 * `node.js` once compiled. Children run with the parent's own Node flags
 * (`process.execArgv`), so whichever loader runs the parent runs them too.
 */
const HERE = fileURLToPath(import.meta.url);
export const CHILD_PROGRAM = join(dirname(HERE), `node${extname(HERE)}`);

/** Finds `n` distinct free TCP ports on 127.0.0.1 (bound briefly, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** How a child ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A report and when the parent got it (`performance.now()`). */
export interface Received {
  readonly report: Report;
  readonly at: number;
}

/** One child node. */
export class DemoNode {
  readonly proc: ChildProcess;
  readonly log: Received[] = [];
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  /** Set before a deliberate kill, so waiting on this node fails with a clear reason. */
  killed = false;
  private output = '';
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly id: number,
    onReport: (node: DemoNode, r: Report) => void,
  ) {
    const env = { ...process.env };
    // npm test runs jest with NODE_OPTIONS=--experimental-vm-modules: children need none of it.
    delete env.NODE_OPTIONS;
    this.proc = spawn(process.execPath, [...process.execArgv, CHILD_PROGRAM], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer): void => {
      // Bounded: only the tail matters when something fails.
      this.output = (this.output + chunk.toString()).slice(-4_096);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.proc.on('message', (r: Report) => {
      this.log.push({ report: r, at: performance.now() });
      onReport(this, r);
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

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** The child's recent stdout and stderr. */
  get outputTail(): string {
    return this.output.trim();
  }

  send(c: Command): void {
    if (this.alive && this.proc.connected) this.proc.send(c);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(signal);
  }

  /** The log position now, to wait only for what comes after. */
  mark(): number {
    return this.log.length;
  }

  /**
   * Resolves with the first `pick(r)` that is not undefined, from log index
   * `from` on. Rejects on timeout, on a fatal report, or if the child exits first.
   */
  waitFor<T>(
    pick: (r: Received) => T | undefined,
    what: string,
    timeoutMs: number,
    from = 0,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let index = from;
      const fail = (why: string): void => {
        done();
        const tail = this.outputTail;
        reject(
          new Error(`node ${this.id} ${why} while waiting for ${what}${tail ? `:\n${tail}` : ''}`),
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
          if (r.report.type === 'fatal') {
            fail(`failed (${r.report.message})`);
            return;
          }
        }
        if (this.exit !== undefined) {
          fail(
            this.killed
              ? 'was killed'
              : `exited (code ${this.exit.code}, signal ${this.exit.signal})`,
          );
        }
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

  /** Waits for a report of `type` (from log index `from`). */
  waitReport<K extends Report['type']>(
    type: K,
    timeoutMs: number,
    from = 0,
    match: (r: Extract<Report, { type: K }>) => boolean = () => true,
  ): Promise<Extract<Report, { type: K }> & { at: number }> {
    return this.waitFor(
      (x) =>
        x.report.type === type && match(x.report as Extract<Report, { type: K }>)
          ? { ...(x.report as Extract<Report, { type: K }>), at: x.at }
          : undefined,
      type,
      timeoutMs,
      from,
    );
  }

  /** Waits for a switchboard event matching `pred` (from log index `from`). */
  waitEvent(
    pred: (e: EventNote) => boolean,
    what: string,
    timeoutMs: number,
    from = 0,
  ): Promise<{ event: EventNote; at: number }> {
    return this.waitFor(
      (x) =>
        x.report.type === 'event' && pred(x.report.event)
          ? { event: x.report.event, at: x.at }
          : undefined,
      what,
      timeoutMs,
      from,
    );
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}
