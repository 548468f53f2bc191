/**
 * The test's side of the delivery-contract suite: a {@link Recorder} that
 * keeps every observation of a scenario, and the {@link End}s a check
 * drives: an agent in this process ({@link LocalEnd}) or in a child process
 * of a switchboard/testing cluster ({@link ChildEnd}), both taking the same
 * commands and reporting into the same recorder.
 */
import { readFileSync } from 'node:fs';
import type { Switchboard } from '../../lib/index.js';
import type { ClusterNode, ProcessCluster } from '../../lib/testing/index.js';
import { Agent } from './agent.js';
import type { AgentCommand, AgentStats, Obs, ObsOf } from './protocol.js';

/** Rejects with `what` if `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
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

/** Every observation of a scenario, with waits on them that always end. */
export class Recorder {
  readonly all: Obs[] = [];
  private readonly listeners = new Set<() => void>();
  /** Extra context for a failed wait (the children's output). */
  private readonly context: Array<() => string> = [];

  push(o: Obs): void {
    this.all.push(o);
    for (const l of [...this.listeners]) l();
  }

  /** Adds what a failed wait should print. */
  describeWith(f: () => string): void {
    this.context.push(f);
  }

  of<K extends Obs['t']>(t: K, pred: (o: ObsOf<K>) => boolean = () => true): Array<ObsOf<K>> {
    return this.all.filter((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>));
  }

  /**
   * Resolves once `cond()` holds, checked now, at each new observation and
   * every 5 ms;
   * rejects after `ms` with `what`, the recent observations and the
   * children's output.
   */
  until(cond: () => boolean, what: string, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok: boolean;
        try {
          ok = cond();
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (!ok) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${this.describe()}`));
      }, ms);
      // Also polled: a condition may read state that no observation announces (peers()).
      const poll = setInterval(check, 5);
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves with the first observation of kind `t` matching `pred` (seen already, or to come). */
  async first<K extends Obs['t']>(
    t: K,
    pred: (o: ObsOf<K>) => boolean,
    what: string,
    ms: number,
  ): Promise<ObsOf<K>> {
    let found: ObsOf<K> | undefined;
    await this.until(
      () =>
        (found = this.all.find((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>))) !==
        undefined,
      what,
      ms,
    );
    return found!;
  }

  describe(): string {
    const counts = new Map<string, number>();
    for (const o of this.all) counts.set(o.t, (counts.get(o.t) ?? 0) + 1);
    const tail = this.all
      .filter((o) => o.t !== 'take' && o.t !== 'issue' && o.t !== 'settle')
      .slice(-12)
      .map((o) => `  ${JSON.stringify(o).slice(0, 300)}`);
    return [
      `observations: ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')}`,
      ...tail,
      ...this.context.map((f) => f()),
    ].join('\n');
  }
}

/** One end of a placement: an agent with a switchboard. */
export interface End {
  readonly node: number;
  readonly label: string;
  readonly where: 'local' | 'child';
  do<T = unknown>(c: AgentCommand, timeoutMs?: number): Promise<T>;
  stats(): Promise<AgentStats>;
}

/** An agent in this process. */
export class LocalEnd implements End {
  readonly where = 'local' as const;
  readonly agent: Agent;

  constructor(
    readonly node: number,
    readonly label: string,
    recorder: Recorder,
  ) {
    this.agent = new Agent((o) => recorder.push(o));
  }

  /** The switchboard (this process only: checks read `peers()` and events from it). */
  get sb(): Switchboard {
    return this.agent.sb;
  }

  async do<T = unknown>(c: AgentCommand, timeoutMs = 10_000): Promise<T> {
    return (await within(this.agent.handle(c), timeoutMs, `${this.label}: ${c.cmd}`)) as T;
  }

  stats(): Promise<AgentStats> {
    return Promise.resolve(this.agent.stats());
  }

  /** Destroys the switchboard if a check left it open. */
  async dispose(): Promise<void> {
    if (this.agent.started) await this.agent.sb.destroy();
  }
}

/**
 * A child end: a process of a switchboard/testing cluster running
 * agent-node.ts. Its handle survives restarts (a new incarnation, the same
 * end), and its observations reach the scene's recorder as the node
 * reports them (scene.ts subscribes).
 */
export class ChildEnd implements End {
  readonly where = 'child' as const;

  constructor(
    readonly node: number,
    private readonly cluster: ProcessCluster,
    /** The file its takes are journaled to (every incarnation appends). */
    readonly journal: string,
  ) {}

  /** The kit's handle on the process. */
  get handle(): ClusterNode {
    return this.cluster.node(this.node);
  }

  get label(): string {
    return `node ${this.node} (child, pid ${this.handle.pid ?? '-'})`;
  }

  do<T = unknown>(c: AgentCommand, timeoutMs = 10_000): Promise<T> {
    return this.handle.invoke<T>('do', [c], { timeoutMs });
  }

  stats(): Promise<AgentStats> {
    return this.do<AgentStats>({ cmd: 'stats' });
  }

  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void> {
    return this.cluster.kill(this.node);
  }

  /** SIGSTOP. */
  pause(): void {
    this.cluster.pause(this.node);
  }

  /** SIGCONT. */
  resume(): void {
    this.cluster.resume(this.node);
  }

  /** SIGKILL, then a new process as the same node (a new incarnation); resolves once it runs. */
  restart(): Promise<void> {
    return this.cluster.restart(this.node);
  }

  /**
   * Tells the process, whose switchboard a check closed, to leave without
   * `process.exit()`: resolves with how it ended, or with why it did not
   * end by itself within `timeoutMs` (then it is killed).
   */
  async exitByItself(
    timeoutMs: number,
  ): Promise<{ readonly code: number | null; readonly signal: string | null } | string> {
    try {
      await this.cluster.stop(this.node, { exitByItself: true, timeoutMs });
    } catch (err) {
      return (err as Error).message.split('\n')[0]!;
    }
    return this.handle.exitStatus ?? 'still running';
  }

  /** The takes it journaled (they survive a SIGKILL that its IPC reports may not). */
  journaled(): Array<ObsOf<'take'>> {
    let text: string;
    try {
      text = readFileSync(this.journal, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as ObsOf<'take'>);
  }
}
