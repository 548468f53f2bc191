/**
 * Clusters for the delivery-contract checks: a {@link Scene} is a set of
 * ends (agents in this process or in children) linked into one cluster
 * over real TCP on 127.0.0.1, with the suite's short timers, one recorder
 * for all their observations, and the faults a check applies to a child
 * (SIGKILL, a restart with the same id, SIGSTOP/SIGCONT).
 *
 * {@link placed} builds the two ends of a placement: `near` is always an
 * agent in this process; `far` is the same agent (`same`), a second
 * switchboard in this process (`tcp`), or a child process (`child`).
 */
import { ChildEnd, LocalEnd, Recorder } from './ends.js';
import type { AgentChild, AgentChildren, End } from './ends.js';
import type { NodeOptions, Obs, ObsOf } from './protocol.js';
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

export type EndKind = 'local' | 'child';

export interface Scene {
  readonly recorder: Recorder;
  /** By node id. */
  readonly ends: End[];
  readonly options: NodeOptions[];
  /** Kills node `id` (a child) with SIGKILL if it is alive, and waits for it to be gone. */
  kill(id: number): Promise<void>;
  /** Kills node `id` (a child) and starts a new child as the same node: a new incarnation. */
  restart(id: number): Promise<ChildEnd>;
  /** Destroys what is left: local switchboards, and the children of this scene. */
  dispose(): Promise<void>;
}

let streams = 0;

/** A stream id unique in this process: a valid channel name and topic token. */
export function streamId(prefix: string): string {
  return `${prefix}${++streams}`;
}

/**
 * Starts one end per `kinds` entry (node ids in that order), waits for the
 * rendezvous, and returns the scene. `extra(id)` adds options per node.
 */
export async function scene(
  kinds: readonly EndKind[],
  children: AgentChildren | undefined,
  extra: (id: number) => Partial<NodeOptions> = () => ({}),
): Promise<Scene> {
  const recorder = new Recorder();
  const nodes = await localNodes(kinds.length);
  const options = kinds.map((_, id): NodeOptions => ({
    nodes,
    id,
    secret: SECRET,
    ...TIMERS,
    ...extra(id),
  }));
  const ends: End[] = [];
  const mine: ChildEnd[] = [];
  try {
    for (const [id, kind] of kinds.entries()) {
      if (kind === 'local') {
        const end = new LocalEnd(id, `node ${id} (this process)`, recorder);
        ends.push(end);
        await end.do({ cmd: 'start', options: options[id]! });
      } else {
        if (children === undefined) throw new Error('scene: a child end needs a pool');
        const end = new ChildEnd(id, await children.take(recorder));
        ends.push(end);
        mine.push(end);
        await end.start(options[id]!);
      }
    }
    await Promise.all(ends.map((e) => e.do({ cmd: 'rendezvous', timeoutMs: 10_000 }, 12_000)));
  } catch (err) {
    await disposeAll(ends, mine);
    throw err;
  }
  const s: Scene = {
    recorder,
    ends,
    options,
    kill: async (id) => {
      const end = ends[id];
      if (!(end instanceof ChildEnd)) throw new Error(`node ${id} is not a child`);
      end.kill('SIGKILL');
      await end.child.exited;
    },
    restart: async (id) => {
      await s.kill(id);
      const end = new ChildEnd(id, await children!.take(recorder));
      ends[id] = end;
      mine.push(end);
      await end.start(options[id]!);
      return end;
    },
    dispose: () => disposeAll(ends, mine),
  };
  return s;
}

async function disposeAll(ends: readonly End[], children: readonly ChildEnd[]): Promise<void> {
  await Promise.all(ends.map((e) => (e instanceof LocalEnd ? e.dispose() : Promise.resolve())));
  for (const c of children) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
  }
  await Promise.all(children.map((c) => c.child.exited));
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
  children: AgentChildren | undefined,
  extra: { near?: Partial<NodeOptions>; far?: Partial<NodeOptions> } = {},
): Promise<Placed> {
  const kinds: EndKind[] =
    placement === 'same'
      ? ['local']
      : placement === 'tcp'
        ? ['local', 'local']
        : ['local', 'child'];
  const s = await scene(kinds, children, (id) =>
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
export function mergeJournal(recorder: Recorder, child: AgentChild): number {
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
