/**
 * An in-process cluster: several switchboards in the test's own process,
 * talking over real TCP on the loopback through the same fault-injecting
 * proxies as a process cluster (lib/testing/proxy.ts), for fast unit tests.
 * The verbs that need a process of their own (kill, pause) are not here:
 * `stop(i)` closes a switchboard gracefully, `restart(i)` starts it again
 * as a new incarnation, and the link faults are the same.
 */
import { randomBytes } from 'node:crypto';
import { Switchboard } from '../index.js';
import type { StartOptions } from '../index.js';
import { LinkedCluster } from './base.js';
import type { NodeOptions } from './node-options.js';
import { describeNode } from './describe.js';
import type { NodeReport } from './describe.js';
import { bindCandidates } from './loopback.js';
import { note } from './messages.js';
import type { EventNote, PeerView } from './messages.js';
import { functionsOf } from './node-module.js';
import type { NodeMain } from './node-module.js';
import { LinkFabric } from './proxy.js';
import type { Changes } from './waits.js';

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions {
  /** How many switchboards. */
  readonly nodes: number;
  /** Switchboard options for every node, or per node. */
  readonly options?: NodeOptions | ((id: number) => NodeOptions);
  /** Tags of each node in the node list. */
  readonly tags?: (id: number) => readonly string[];
  /** Run on each switchboard once it is started, as a node module's default export is. */
  readonly setup?: NodeMain;
  /** What `setup` gets as `ctx.data`. */
  readonly data?: (id: number) => unknown;
  /** The default timeout of every wait, ms. Default 10000. */
  readonly timeoutMs?: number;
}

/** One switchboard of an in-process cluster, across its restarts. */
export class LocalNode {
  /** The switchboard running now; undefined while stopped. */
  sb: Switchboard | undefined;
  /** What `setup` reported, in order. */
  readonly reports: NodeReport[] = [];
  /** The switchboard's events, flattened, in order. */
  readonly events: EventNote[] = [];
  /** The functions `setup` returned. */
  functions = new Map<string, (...args: unknown[]) => unknown>();
  stopped = false;

  constructor(readonly id: number) {}

  /** The running switchboard; throws while stopped. */
  get switchboard(): Switchboard {
    if (this.sb === undefined) throw new Error(`node ${this.id} is stopped`);
    return this.sb;
  }

  /** Calls a function `setup` returned for this node. */
  async call<T = unknown>(fn: string, ...args: unknown[]): Promise<T> {
    const f = this.functions.get(fn);
    if (f === undefined)
      throw new TypeError(`no function ${JSON.stringify(fn)} in node ${this.id}`);
    return (await f(...args)) as T;
  }
}

/** Starts `nodes` switchboards in this process and resolves once each has run `setup`. */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const n = options.nodes;
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`nodes must be a positive integer, got ${n}`);
  const fabric = await LinkFabric.open(n);
  const perNode = Array.from({ length: n }, (_, id) =>
    typeof options.options === 'function' ? options.options(id) : (options.options ?? {}),
  );
  const cluster = new LocalCluster(fabric, options, perNode);
  try {
    await Promise.all(cluster.nodes.map((node) => cluster.launch(node)));
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** A running in-process cluster. See docs/testing.md. */
export class LocalCluster extends LinkedCluster {
  readonly nodes: readonly LocalNode[];
  /** Peer states change on timers too: waits also look every few ms. */
  protected override get pollMs(): number {
    return LOCAL_POLL_MS;
  }
  private readonly secret = randomBytes(32).toString('hex');
  private readonly nodeList: readonly NodeListEntry[];
  private closing: Promise<void> | undefined;

  /** @internal Use {@link startLocalCluster}. */
  constructor(
    fabric: LinkFabric,
    private readonly options: LocalClusterOptions,
    private readonly perNode: readonly NodeOptions[],
  ) {
    super(
      fabric,
      options.timeoutMs ?? 10_000,
      perNode.some((o) => o.tls !== undefined),
    );
    this.nodes = fabric.addresses.map((_, id) => new LocalNode(id));
    this.nodeList = fabric.addresses.map((a, id) => {
      const tags = options.tags?.(id);
      if (tags === undefined) return a;
      const at = a.lastIndexOf(':');
      return { host: a.slice(0, at), port: Number(a.slice(at + 1)), tags: [...tags] };
    });
  }

  /** Node `i`. */
  node(i: number): LocalNode {
    const node = this.nodes[i];
    if (node === undefined) throw new RangeError(`no node ${i} in a cluster of ${this.size}`);
    return node;
  }

  /** The switchboard of node `i` (throws while it is stopped). */
  sb(i: number): Switchboard {
    return this.node(i).switchboard;
  }

  /** Closes node `i`'s switchboard gracefully: its peers see it down at once. */
  async stop(i: number): Promise<void> {
    const node = this.node(i);
    const sb = node.sb;
    node.stopped = true;
    node.sb = undefined;
    this.fabric.setUpstream(i, undefined);
    await sb?.close();
    this.changes.notify();
  }

  /** Starts node `i` again (closing it first if it runs), as a new incarnation. */
  async restart(i: number): Promise<void> {
    if (this.closing !== undefined) throw new Error('the cluster is closed');
    await this.stop(i);
    await this.launch(this.node(i));
  }

  /** Closes every switchboard (each within its `lingerMs`) and the proxies. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.nodes.map((n) => this.stop(n.id)));
      await this.fabric.close();
    })();
    return this.closing;
  }

  // ---- what the waits look at ---------------------------------------------

  incarnation(i: number): string | undefined {
    return this.node(i).sb?.incarnation;
  }

  gone(i: number): string | undefined {
    return this.node(i).stopped ? 'was stopped by the test' : undefined;
  }

  seen(by: number, of: number): PeerView | undefined {
    return seenLocal(this.node(by), of);
  }

  protected running(i: number): boolean {
    return this.node(i).sb !== undefined;
  }

  protected describeNode(i: number): string {
    return describeLocal(this.node(i));
  }

  /** @internal Starts `node`'s switchboard and runs `setup` on it. */
  async launch(node: LocalNode): Promise<void> {
    await launchLocal(node, {
      nodes: this.nodeList,
      secret: this.secret,
      options: this.perNode[node.id]!,
      setup: this.options.setup,
      data: this.options.data?.(node.id),
      fabric: this.fabric,
      changes: this.changes,
    });
  }
}

/** Waits over in-process switchboards also look this often, ms: peer states change on timers too. */
export const LOCAL_POLL_MS = 10;

/** A node list entry: `host:port`, or with tags. */
export type NodeListEntry = string | { host: string; port: number; tags: string[] };

/** @internal What a switchboard of the test process needs to join a kit cluster. */
export interface LocalLaunch {
  readonly nodes: readonly NodeListEntry[];
  readonly secret: string;
  readonly options: NodeOptions;
  readonly setup: NodeMain | undefined;
  readonly data: unknown;
  readonly fabric: LinkFabric;
  readonly changes: Changes;
}

/**
 * @internal Starts `node`'s switchboard in this process behind its proxy
 * (on the first free private address) and runs `setup` on it.
 */
export async function launchLocal(node: LocalNode, l: LocalLaunch): Promise<void> {
  const id = node.id;
  let last: unknown;
  let sb: Switchboard | undefined;
  for (const bindHost of await bindCandidates()) {
    try {
      sb = await Switchboard.start({
        reconnectMinMs: 20,
        reconnectMaxMs: 250,
        lingerMs: 1_000,
        ...(l.options as Partial<StartOptions>),
        nodes: l.nodes,
        id,
        secret: l.secret,
        bindHost,
      });
      l.fabric.setUpstream(id, bindHost);
      break;
    } catch (err) {
      last = err;
      if ((err as { systemCode?: unknown }).systemCode !== 'EADDRINUSE') break;
    }
  }
  if (sb === undefined) throw last;
  node.sb = sb;
  node.stopped = false;
  sb.events$.subscribe((e) => {
    const n = note(e);
    if (n !== undefined) node.events.push(n);
    l.changes.notify();
  });
  const fns = await l.setup?.({
    sb,
    id,
    data: l.data,
    report: (kind, data) => {
      node.reports.push({ kind, data, at: performance.now() });
      l.changes.notify();
    },
  });
  node.functions = functionsOf(fns, `setup of node ${id}`);
  l.changes.notify();
}

/** @internal What in-process node `node` last saw of `of`. */
export function seenLocal(node: LocalNode, of: number): PeerView | undefined {
  const p = node.sb?.peers().find((x) => x.node === of);
  return p === undefined ? undefined : { node: p.node, state: p.state, incarnation: p.incarnation };
}

/** @internal An in-process node as failure messages show it. */
export function describeLocal(node: LocalNode): string {
  const sb = node.sb;
  return describeNode({
    head: `node ${node.id} (in process, ${sb === undefined ? 'stopped' : `incarnation ${sb.incarnation.slice(0, 8)}`})`,
    peers:
      sb?.peers().map((p) => ({ node: p.node, state: p.state, incarnation: p.incarnation })) ?? [],
    events: node.events,
    reports: node.reports,
  });
}
