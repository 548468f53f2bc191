/**
 * The parent's side of the demo cluster: spawns the child nodes, sends them
 * commands and waits (always with a timeout) for what they report.
 */
import net from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpcChild } from './child.js';
import type { ExitInfo, Logged } from './child.js';
import type { Command, EventNote, Report } from './ipc.js';

export type { ExitInfo } from './child.js';

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

/** A report and when the parent got it (`performance.now()`). */
export type Received = Logged<Report>;

/** One child node. */
export class DemoNode extends IpcChild<Report> {
  /** Set before a deliberate kill, so waiting on this node fails with a clear reason. */
  killed = false;

  constructor(
    readonly id: number,
    private readonly onReport: (node: DemoNode, r: Report) => void,
  ) {
    super({
      command: process.execPath,
      args: [...process.execArgv, CHILD_PROGRAM],
      keepOutput: 4_096,
    });
  }

  send(c: Command): void {
    if (this.alive && this.proc.connected) this.proc.send(c);
  }

  protected override received(entry: Received): void {
    this.onReport(this, entry.message);
  }

  protected fatal(r: Report): string | undefined {
    return r.type === 'fatal' ? `failed (${r.message})` : undefined;
  }

  protected failure(why: string, what: string): Error {
    const tail = this.outputTail.trim();
    return new Error(`node ${this.id} ${why} while waiting for ${what}${tail ? `:\n${tail}` : ''}`);
  }

  protected override exitReason(exit: ExitInfo): string {
    return this.killed ? 'was killed' : super.exitReason(exit);
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
        x.message.type === type && match(x.message as Extract<Report, { type: K }>)
          ? { ...(x.message as Extract<Report, { type: K }>), at: x.at }
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
        x.message.type === 'event' && pred(x.message.event)
          ? { event: x.message.event, at: x.at }
          : undefined,
      what,
      timeoutMs,
      from,
    );
  }
}
