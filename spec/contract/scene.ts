/**
 * Clusters for the delivery-contract checks: a {@link Scene} is a set of
 * ends (agents in this process or in children) linked into one cluster
 * over real TCP on the loopback, with the suite's short timers, one
 * recorder for all their observations, and the faults a check applies to a
 * child (SIGKILL, a restart with the same id, SIGSTOP/SIGCONT).
 *
 * A scene with a child is a switchboard/testing cluster: the children are
 * its processes, running agent-node.ts, and the ends in this process are
 * its nodes `here` (docs/testing.md, "Nodes in the test process"), so every
 * link of the scene passes through the kit's proxies. A scene without a
 * child is switchboards of this process linked directly.
 *
 * An end is an agent in this process ({@link LocalEnd}) or in a child
 * ({@link ChildEnd}); both take the same commands and report into the
 * scene's recorder.
 *
 * One file for the ends and the scenes: a scene builds its ends and wires
 * them to its cluster and recorder, and they change together.
 *
 * {@link placed} builds the two ends of a placement: `near` is always an
 * agent in this process; `far` is the same agent (`same`), a second
 * switchboard in this process (`tcp`), or a child process (`child`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeAll, startCluster } from '../../lib/testing/index.js';
import type { NodeReport, ProcessCluster } from '../../lib/testing/index.js';
import { readFileSync } from 'node:fs';
import type { Switchboard } from '../../lib/index.js';
import type { ClusterNode } from '../../lib/testing/index.js';
import { Agent } from './agent.js';
import type { AgentNodeData } from './agent-node.js';
import type { AgentCommand, AgentStats, NodeOptions, Obs, ObsOf } from './protocol.js';
import { Recorder } from './recorder.js';
import type { Placement } from './table.js';
import { localNodes } from '../support/ports.js';

export const SECRET = 'switchboard-contract-suite-secret-0123456789';

/** The suite's timers: a lost peer is known within a second. */
export const TIMERS = {
  heartbeatMs: 100,
  deadPeerMs: 600,
  handshakeTimeoutMs: 2_000,
  lingerMs: 1_500,
  reconnectMinMs: 20,
  reconnectMaxMs: 200,
} as const;

/** Slack on top of a timer for scheduling, IPC and a loaded 2-core machine, ms. */
export const SLACK = 700;

/** The children's node module. */
const AGENT_NODE = new URL('./agent-node.ts', import.meta.url);

// ---- the ends ----------------------------------------------------------------

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

// ---- scenes ------------------------------------------------------------------

export type EndKind = 'local' | 'child';

/** Extra switchboard options of a scene's nodes (the kit or the scene owns the node list, id and secret). */
export type SceneOptions = Omit<Partial<NodeOptions>, 'nodes' | 'id' | 'secret'>;

export interface Scene {
  readonly recorder: Recorder;
  /** By node id. */
  readonly ends: End[];
  /** The kit cluster of a scene with a child. */
  readonly cluster: ProcessCluster | undefined;
  /** Kills node `id` (a child) with SIGKILL if it is alive, and waits for it to be gone. */
  kill(id: number): Promise<void>;
  /** Kills node `id` (a child) and starts it again as the same node: a new incarnation. */
  restart(id: number): Promise<ChildEnd>;
  /** Destroys what is left: local switchboards, and the children of this scene. */
  dispose(): Promise<void>;
}

let streams = 0;

/** A stream id unique in this process: a valid channel name and topic token. */
export function streamId(prefix: string): string {
  return `${prefix}${++streams}`;
}

/** Where the children journal their takes: one directory per spec file, removed at its end. */
let journals: string | undefined;
afterAll(async () => {
  // The spare child too: each spec file has the kit to itself, its spares with it.
  await closeAll();
  if (journals !== undefined) rmSync(journals, { recursive: true, force: true });
  journals = undefined;
});

/**
 * Starts one end per `kinds` entry (node ids in that order), waits for the
 * rendezvous, and returns the scene. `extra(id)` adds options per node.
 */
export async function scene(
  kinds: readonly EndKind[],
  extra: (id: number) => SceneOptions = () => ({}),
): Promise<Scene> {
  return kinds.includes('child') ? kitScene(kinds, extra) : localScene(kinds.length, extra);
}

/** Switchboards of this process only, linked directly. */
async function localScene(n: number, extra: (id: number) => SceneOptions): Promise<Scene> {
  const recorder = new Recorder();
  const nodes = await localNodes(n);
  const ends: LocalEnd[] = [];
  const dispose = (): Promise<void> =>
    Promise.all(ends.map((e) => e.dispose())).then(() => undefined);
  try {
    for (let id = 0; id < n; id++) {
      const end = new LocalEnd(id, `node ${id} (this process)`, recorder);
      ends.push(end);
      await end.do({
        cmd: 'start',
        options: { nodes, id, secret: SECRET, ...TIMERS, ...extra(id) },
      });
    }
    await rendezvous(ends);
  } catch (err) {
    await dispose();
    throw err;
  }
  const noChild = (id: number): Promise<never> =>
    Promise.reject(new Error(`node ${id} is not a child`));
  return { recorder, ends, cluster: undefined, kill: noChild, restart: noChild, dispose };
}

/** A switchboard/testing cluster: the children are its processes, the local ends its nodes here. */
async function kitScene(
  kinds: readonly EndKind[],
  extra: (id: number) => SceneOptions,
): Promise<Scene> {
  const recorder = new Recorder();
  journals ??= mkdtempSync(join(tmpdir(), 'sb-contract-'));
  const dir = journals;
  const tag = streamId('scene');
  const here = kinds.flatMap((k, id) => (k === 'local' ? [id] : []));
  const locals = new Map(
    here.map((id) => [id, new LocalEnd(id, `node ${id} (this process)`, recorder)]),
  );
  const cluster = await startCluster({
    module: AGENT_NODE,
    nodes: kinds.length,
    here,
    options: (id) => ({ ...TIMERS, ...extra(id) }),
    setup: ({ sb, id }) => {
      locals.get(id)!.agent.attach(sb);
    },
    data: (id): AgentNodeData => ({ journal: join(dir, `${tag}-node${id}.jsonl`) }),
    timeoutMs: 15_000,
  });
  const ends: End[] = kinds.map(
    (k, id) => locals.get(id) ?? new ChildEnd(id, cluster, join(dir, `${tag}-node${id}.jsonl`)),
  );
  const dispose = async (): Promise<void> => {
    await Promise.all([...locals.values()].map((e) => e.dispose()));
    await cluster.close();
  };
  try {
    for (const end of ends) {
      if (!(end instanceof ChildEnd)) continue;
      const node = end.handle;
      const take = (r: NodeReport): void => {
        if (r.kind === 'obs') for (const o of r.data as Obs[]) recorder.push(o);
      };
      // What it reported while the cluster started, then the rest as it comes (one turn: no gap).
      for (const r of node.reports) take(r);
      node.onReport(take);
    }
    recorder.describeWith(() => `--- the cluster:\n${cluster.describe()}`);
    await cluster.ready();
    await rendezvous(ends);
  } catch (err) {
    await dispose();
    throw err;
  }
  const child = (id: number): ChildEnd => {
    const end = ends[id];
    if (!(end instanceof ChildEnd)) throw new Error(`node ${id} is not a child`);
    return end;
  };
  return {
    recorder,
    ends,
    cluster,
    kill: (id) => child(id).kill(),
    restart: async (id) => {
      const end = child(id);
      await end.restart();
      return end;
    },
    dispose,
  };
}

/** Every end's own rendezvous, as an application awaits it. */
async function rendezvous(ends: readonly End[]): Promise<void> {
  await Promise.all(ends.map((e) => e.do({ cmd: 'rendezvous', timeoutMs: 10_000 }, 12_000)));
}

/** A placement's scene and its two ends. */
export interface Placed extends Scene {
  readonly placement: Placement;
  readonly near: LocalEnd;
  /** The other end (the same as `near` on `same`); changes when a child is restarted. */
  readonly far: End;
}

/** Builds the scene of `placement`. `near`/`far` options apply to those ends. */
export async function placed(
  placement: Placement,
  extra: { near?: SceneOptions; far?: SceneOptions } = {},
): Promise<Placed> {
  const kinds: EndKind[] =
    placement === 'same'
      ? ['local']
      : placement === 'tcp'
        ? ['local', 'local']
        : ['local', 'child'];
  const s = await scene(kinds, (id) =>
    placement === 'same'
      ? { ...extra.near, ...extra.far }
      : id === 0
        ? { ...extra.near }
        : { ...extra.far },
  );
  const farId = placement === 'same' ? 0 : 1;
  return Object.assign(s, {
    placement,
    near: s.ends[0] as LocalEnd,
    get far(): End {
      return s.ends[farId]!;
    },
  });
}

// ---- reading the evidence ---------------------------------------------------

/** The observations of one stream, by kind. */
export function ofStream<K extends Obs['t']>(
  recorder: Recorder,
  t: K,
  stream: string,
): Array<ObsOf<K>> {
  return recorder.of(t, (o) => (o as { stream?: string }).stream === stream);
}

/** Settled operations of a stream by sequence number (the last settlement of each). */
export function settledBySeq(recorder: Recorder, stream: string): Map<number, ObsOf<'settle'>> {
  const m = new Map<number, ObsOf<'settle'>>();
  for (const s of ofStream(recorder, 'settle', stream)) m.set(s.seq, s);
  return m;
}

/** A compact, readable form of an error for assertion messages. */
export function shortError(
  e: { code?: string | undefined; name: string; message: string } | undefined,
): string {
  if (e === undefined) return '(no error)';
  return `${e.name} ${e.code ?? '(no code)'}: ${e.message.split('\n')[0]!.slice(0, 200)}`;
}

/**
 * Adds the takes `child` journaled that its IPC reports did not bring (a
 * killed child's last reports die in the pipe; the journal does not).
 */
export function mergeJournal(recorder: Recorder, child: ChildEnd): number {
  const key = (t: ObsOf<'take'>): string => `${t.inc}/${t.stream}/${t.seq}/${t.attempt}/${t.at}`;
  const seen = new Set(recorder.of('take').map(key));
  let added = 0;
  for (const t of child.journaled()) {
    if (seen.has(key(t))) continue;
    recorder.push(t);
    added++;
  }
  return added;
}
