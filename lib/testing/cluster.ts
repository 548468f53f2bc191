/**
 * A cluster of real node processes for a test: `startCluster()` forks one
 * process per node running the user's module (lib/testing/child.ts runs
 * it), puts a fault-injecting proxy on every link (lib/testing/proxy.ts),
 * and gives the test the faults, the waits and the cleanup of
 * docs/testing.md. Every child dies with the cluster's `close()`, with the
 * test process's exit, or by itself when its IPC channel to the test drops.
 */
import { randomBytes } from 'node:crypto';
import type { Switchboard } from '../index.js';
import { LOCAL_POLL_MS, LocalNode, describeLocal, launchLocal, seenLocal } from './local.js';
import { bindCandidates } from './loopback.js';
import type { PeerView } from './messages.js';
import { mainOf } from './node-module.js';
import type { NodeMain } from './node-module.js';
import { ClusterNode } from './node-process.js';
import type { Launch } from './node-process.js';
import { launchOf, moduleUrl } from './launch.js';
import type { ProcessOptions } from './launch.js';
import { closeStandalone } from './start-node.js';
import { killSpares } from './spares.js';
import { OWNED } from './node-options.js';
import type { NodeOptions } from './node-options.js';
import { LinkFabric } from './proxy.js';
import { LinkedCluster } from './base.js';
import type { WaitOptions } from './base.js';
import { planSchedule, runSchedule } from './schedule.js';
import type { ScheduleOptions, SchedulePlan, ScheduleReport } from './schedule.js';

export type { NodeOptions } from './node-options.js';

/** Options of {@link startCluster}. */
export interface ClusterOptions extends ProcessOptions {
  /** The user's node module (`.js`, `.mjs`, or `.ts` with a loader): a path from `cwd`, or a file URL. */
  readonly module: string | URL;
  /** How many nodes. */
  readonly nodes: number;
  /** Switchboard options for every node, or per node (structured-cloneable). */
  readonly options?: NodeOptions | ((id: number) => NodeOptions);
  /** Tags of each node in the node list. */
  readonly tags?: (id: number) => readonly string[];
  /** What each node's module gets as `ctx.data` (structured-cloneable). */
  readonly data?: (id: number) => unknown;
  /**
   * Nodes that run in the test process itself instead of a child process
   * (a mixed cluster): their switchboards start here, behind proxies like
   * the others, and run {@link setup}; the test reaches them with
   * `cluster.sb(i)` and `cluster.local(i)`. Default: none.
   */
  readonly here?: readonly number[];
  /**
   * What each node of {@link here} runs once its switchboard is started, as
   * a node module's default export runs in a process. Default: the
   * module's default export, imported in the test process.
   */
  readonly setup?: NodeMain;
}

/** Every cluster not yet closed: the test process's exit kills what they left. */
const open = new Set<ProcessCluster>();
let exitHook = false;

/** Closes every cluster still open and kills every node of {@link startNode} still running (for an `afterEach`/`afterAll` that forgets none). */
export async function closeAll(): Promise<void> {
  killSpares();
  await Promise.all([...[...open].map((c) => c.close()), closeStandalone()]);
}

/**
 * Forks `nodes` processes running `module` and resolves once every node's
 * switchboard has started and its module returned (peers may still be
 * linking: `await cluster.ready()` for the rendezvous).
 */
export async function startCluster(options: ClusterOptions): Promise<ProcessCluster> {
  const n = options.nodes;
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`nodes must be a positive integer, got ${n}`);
  const cwd = options.cwd ?? process.cwd();
  const url = moduleUrl(options.module, cwd);
  const perNode = Array.from({ length: n }, (_, id) => {
    const o = typeof options.options === 'function' ? options.options(id) : (options.options ?? {});
    for (const k of OWNED) {
      if (k in o)
        throw new TypeError(`options.${k} is set by the kit for every node; leave it out`);
    }
    return o;
  });
  const here = new Set(options.here ?? []);
  for (const id of here) {
    if (!Number.isInteger(id) || id < 0 || id >= n)
      throw new RangeError(`here: no node ${id} in a cluster of ${n}`);
  }
  let setup = options.setup;
  if (setup === undefined && here.size > 0) {
    setup = mainOf(await import(url), `node module ${url}`);
  }
  const fabric = await LinkFabric.open(n);
  const nodes = fabric.addresses.map((a, id) => {
    const tags = options.tags?.(id);
    if (tags === undefined) return a;
    const [host, port] = [a.slice(0, a.lastIndexOf(':')), Number(a.slice(a.lastIndexOf(':') + 1))];
    return { host, port, tags: [...tags] };
  });
  const launch = launchOf(options, url, cwd);
  // Fresh for every cluster, and only ever sent over IPC.
  const secret = randomBytes(32).toString('hex');
  const spec = async (id: number): Promise<StartSpec> => ({
    nodes,
    secret,
    bindHosts: await bindCandidates(),
    options: perNode[id]!,
    module: url,
    data: options.data?.(id),
  });
  const tls = perNode.some((o) => o.tls !== undefined);
  const cluster = new ProcessCluster(fabric, launch, spec, tls, secret, here, (node, changes) =>
    launchLocal(node, {
      nodes,
      secret,
      options: perNode[node.id]!,
      setup,
      data: options.data?.(node.id),
      fabric,
      changes,
    }),
  );
  try {
    await Promise.all(cluster.members.map((node) => cluster.launchMember(node)));
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** What a node is started with, apart from its id. */
type StartSpec = Parameters<ClusterNode['start']>[0];

/** A running test cluster of processes. See docs/testing.md for each verb. */
export class ProcessCluster extends LinkedCluster {
  /**
   * One handle per node process, in id order (they survive restarts). With
   * no `here` option that is every node, `nodes[i]` being node `i`; the
   * nodes of `here` are {@link local}.
   */
  readonly nodes: readonly ClusterNode[];
  /** @internal Every node by id: a process, or a switchboard of this process. */
  readonly members: ReadonlyArray<ClusterNode | LocalNode>;
  private closing: Promise<void> | undefined;
  private scheduling = false;
  /** What failure messages say of the fault schedule running or last run. */
  private scheduleNote: string | undefined;

  /** @internal Use {@link startCluster}. */
  constructor(
    fabric: LinkFabric,
    private readonly launch: Launch,
    private readonly spec: (id: number) => Promise<StartSpec>,
    tls: boolean,
    /** The cluster's secret, for a test that starts a switchboard of its own against it. */
    readonly secret: string,
    here: ReadonlySet<number> = new Set(),
    private readonly startLocal: (
      node: LocalNode,
      changes: LinkedCluster['changes'],
    ) => Promise<void> = () => Promise.reject(new Error('no in-process nodes')),
  ) {
    super(fabric, launch.timeoutMs, tls);
    this.members = fabric.addresses.map((_, id) =>
      here.has(id)
        ? new LocalNode(id)
        : new ClusterNode(
            id,
            launch,
            this.changes,
            (node) => fabric.setUpstream(node.id, node.host),
            (node) => fabric.setUpstream(node.id, undefined),
          ),
    );
    this.nodes = this.members.filter((m): m is ClusterNode => m instanceof ClusterNode);
    open.add(this);
    if (!exitHook) {
      exitHook = true;
      // Synchronous, last resort: whatever a test forgot to close dies with it.
      process.once('exit', () => {
        for (const c of open) for (const node of c.nodes) node.signal('SIGKILL');
      });
    }
  }

  /** Waits also look every few ms when some nodes run here (their peer states change on timers). */
  protected override get pollMs(): number | undefined {
    return this.nodes.length < this.members.length ? LOCAL_POLL_MS : undefined;
  }

  private member(i: number): ClusterNode | LocalNode {
    const m = this.members[i];
    if (m === undefined) throw new RangeError(`no node ${i} in a cluster of ${this.size}`);
    return m;
  }

  /** The handle of node `i`, a process (for a node of `here`, see {@link local}). */
  node(i: number): ClusterNode {
    const m = this.member(i);
    if (m instanceof LocalNode)
      throw new TypeError(
        `node ${i} runs in the test process (here): use cluster.local(${i}) or cluster.sb(${i})`,
      );
    return m;
  }

  /** Node `i` of `here`: a switchboard of the test process, across its restarts. */
  local(i: number): LocalNode {
    const m = this.member(i);
    if (!(m instanceof LocalNode))
      throw new TypeError(`node ${i} is a process, not a node of here: use cluster.node(${i})`);
    return m;
  }

  /** The switchboard of node `i` of `here` (throws while it is stopped). */
  sb(i: number): Switchboard {
    return this.local(i).switchboard;
  }

  /** True if node `i` runs in the test process (`here`). */
  isHere(i: number): boolean {
    return this.member(i) instanceof LocalNode;
  }

  /** SIGKILL: the node dies at once, without a word to its peers. Resolves once it is gone. */
  kill(i: number): Promise<void> {
    return this.process(i, 'kill').kill();
  }

  /**
   * Graceful stop: the node closes its switchboard (peers see it down at
   * once) and exits; with `exitByItself`, it must then end without
   * `process.exit()`, every handle closed (docs/testing.md, section 3).
   * A node of `here` closes its switchboard.
   */
  async stop(
    i: number,
    options: WaitOptions & { readonly exitByItself?: boolean } = {},
  ): Promise<void> {
    const m = this.member(i);
    if (m instanceof LocalNode) return this.stopLocal(m);
    return m.stop(options.timeoutMs ?? this.timeoutMs, options.exitByItself === true);
  }

  /**
   * Starts node `i` again with the same id, as a new incarnation (SIGKILL
   * first if it still runs; a node of `here` is closed first); resolves
   * once its module is ready. Its peers see it restarted:
   * `waitUntilAllUp()` waits until they all have.
   */
  async restart(i: number): Promise<void> {
    const m = this.member(i);
    if (this.closing !== undefined) throw new Error('the cluster is closed');
    if (m instanceof LocalNode) await this.stopLocal(m);
    else await m.kill();
    await this.launchMember(m);
  }

  /** SIGSTOP: the node freezes (its sockets stay open, nothing answers). */
  pause(i: number): void {
    this.process(i, 'pause').pause();
  }

  /** SIGCONT after {@link pause}. */
  resume(i: number): void {
    this.process(i, 'resume').resume();
  }

  /** The plan {@link schedule} would run with these options (nothing is run). */
  planSchedule(options: ScheduleOptions = {}): SchedulePlan {
    return planSchedule(this.size, options);
  }

  /**
   * Runs a seeded fault schedule (docs/testing.md, "Fault schedules"):
   * faults drawn from `options.seed` (random if absent), one at a time,
   * each held, undone and recovered from; resolves with what it did. It
   * always ends healed, every node up, and stops by itself. A failing
   * step, `check` or final recovery rejects with a `ScheduleError` naming
   * the seed and the steps; while it runs, and after, every failed wait of
   * this cluster names them too. Every node must be a process (no `here`).
   */
  async schedule(options: ScheduleOptions = {}): Promise<ScheduleReport> {
    if (this.closing !== undefined) throw new Error('the cluster is closed');
    if (this.scheduling) throw new Error('a fault schedule is already running on this cluster');
    if (this.nodes.length < this.members.length)
      throw new Error('fault schedules need every node in a process of its own (no here)');
    const plan = planSchedule(this.size, options);
    this.scheduling = true;
    try {
      return await runSchedule(this, plan, options, (note) => (this.scheduleNote = note));
    } finally {
      this.scheduling = false;
    }
  }

  /** As {@link LinkedCluster.describe}, led by the fault schedule running or last run, if any. */
  override describe(nodes?: readonly number[]): string {
    const base = super.describe(nodes);
    return this.scheduleNote === undefined ? base : `${this.scheduleNote}\n${base}`;
  }

  /**
   * Kills every node process, closes the switchboards of `here` (each
   * within its `lingerMs`, as an in-process cluster does) and closes the
   * proxies. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(
        this.members.map((m) => (m instanceof LocalNode ? this.stopLocal(m) : m.kill())),
      );
      await this.fabric.close();
      open.delete(this);
    })();
    return this.closing;
  }

  // ---- what the waits look at ---------------------------------------------

  incarnation(i: number): string | undefined {
    const m = this.member(i);
    if (m instanceof LocalNode) return m.sb?.incarnation;
    return m.alive && m.status !== 'starting' ? m.incarnation : undefined;
  }

  gone(i: number): string | undefined {
    const m = this.member(i);
    if (m instanceof LocalNode) return m.stopped ? 'was stopped by the test' : undefined;
    return m.gone();
  }

  seen(by: number, of: number): PeerView | undefined {
    const m = this.member(by);
    return m instanceof LocalNode ? seenLocal(m, of) : m.seen(of);
  }

  protected running(i: number): boolean {
    const m = this.member(i);
    return m instanceof LocalNode ? m.sb !== undefined : m.alive;
  }

  protected describeNode(i: number): string {
    const m = this.member(i);
    return m instanceof LocalNode ? describeLocal(m) : m.describe();
  }

  protected override settleNode(i: number): Promise<void> {
    const m = this.member(i);
    return m instanceof LocalNode ? Promise.resolve() : m.settle();
  }

  /** @internal Forks `node` and waits until it is ready. */
  async launchNode(node: ClusterNode): Promise<void> {
    await node.start(await this.spec(node.id));
  }

  /** @internal Starts node `m`: forks it, or starts its switchboard here. */
  async launchMember(m: ClusterNode | LocalNode): Promise<void> {
    if (m instanceof LocalNode) await this.startLocal(m, this.changes);
    else await this.launchNode(m);
  }

  private process(i: number, verb: string): ClusterNode {
    const m = this.member(i);
    if (m instanceof LocalNode)
      throw new TypeError(`cannot ${verb} node ${i}: it runs in the test process (here)`);
    return m;
  }

  /** Closes a switchboard of `here`: its peers see it down at once. */
  private async stopLocal(node: LocalNode): Promise<void> {
    const sb = node.sb;
    node.stopped = true;
    node.sb = undefined;
    this.fabric.setUpstream(node.id, undefined);
    await sb?.close();
    this.changes.notify();
  }
}
