/**
 * What process clusters (lib/testing/cluster.ts) and in-process clusters
 * (lib/testing/local.ts) share: the link faults, through the proxies of
 * lib/testing/proxy.ts, and the waits on what the nodes see of each other
 * (lib/testing/views.ts), which fail with every concerned node described.
 */
import type { PeerView } from './messages.js';
import type { Direction, LinkFabric } from './proxy.js';
import { allUp, describeViews, downFor, nodeList } from './views.js';
import type { Observed } from './views.js';
import { Changes, waitFor } from './waits.js';

/** Options of the waits. */
export interface WaitOptions {
  /** Default: the cluster's `timeoutMs`. */
  readonly timeoutMs?: number;
}

/** Options of {@link LinkedCluster.throttle}. */
export interface ThrottleOptions {
  /** The most bytes per second that pass (each way, with `both`). */
  readonly bytesPerSecond: number;
  /** Default `both`. */
  readonly direction?: Direction;
}

/** A test cluster whose links pass through the kit's proxies. */
export abstract class LinkedCluster implements Observed {
  protected readonly changes = new Changes();

  protected constructor(
    protected readonly fabric: LinkFabric,
    /** The default timeout of every wait, ms. */
    readonly timeoutMs: number,
    private readonly tls: boolean,
  ) {}

  get size(): number {
    return this.fabric.addresses.length;
  }

  /** The node list every switchboard was given (the proxies' addresses). */
  get addresses(): readonly string[] {
    return this.fabric.addresses;
  }

  abstract incarnation(i: number): string | undefined;
  abstract gone(i: number): string | undefined;
  abstract seen(by: number, of: number): PeerView | undefined;
  /** True while node `i` runs (paused included). */
  protected abstract running(i: number): boolean;
  /** What a failure message says of node `i`. */
  protected abstract describeNode(i: number): string;
  /** Resolves once node `i`'s last output is in. */
  protected settleNode(_i: number): Promise<void> {
    return Promise.resolve();
  }
  /** Also look every this many ms while waiting (for what no report announces). */
  protected get pollMs(): number | undefined {
    return undefined;
  }

  /** Waits for the rendezvous: every node sees every other up. */
  ready(options: WaitOptions = {}): Promise<void> {
    return this.waitUntilAllUp(options);
  }

  /** Waits until every node of `nodes` (default all) sees every other of them up, as the incarnation it runs. */
  async waitUntilAllUp(
    options: WaitOptions & { readonly nodes?: readonly number[] } = {},
  ): Promise<void> {
    const nodes = nodeList(this, options.nodes);
    await this.wait(
      () => allUp(this, nodes),
      `every node of ${nodes.join(', ')} to see every other up`,
      nodes,
      options,
    );
  }

  /** Waits until node `i` is declared down by every node of `by` (default: every other node running). */
  async waitUntilDown(
    i: number,
    options: WaitOptions & { readonly by?: readonly number[] } = {},
  ): Promise<void> {
    nodeList(this, [i]);
    const others = nodeList(this, undefined).filter((n) => n !== i && this.running(n));
    const by = nodeList(this, options.by ?? others);
    await this.wait(
      () => downFor(this, i, by),
      `node ${i} to be declared down by ${by.join(', ') || 'nobody'}`,
      [i, ...by],
      options,
    );
  }

  /** Resets every connection between `a` and `b`, and every new one until {@link heal}. */
  cut(a: number, b: number): void {
    this.links(a, b).cut(a, b);
  }

  /**
   * Nothing sent from `a` to `b` (`a->b`), back (`b->a`) or either way
   * (`both`, the default) gets through until {@link heal}: no bytes, no
   * FIN, no reset. Connections stay open, half-open as after a partition.
   */
  blackhole(a: number, b: number, options: { readonly direction?: Direction } = {}): void {
    this.links(a, b).blackhole(a, b, options.direction ?? 'both');
  }

  /** Everything between `a` and `b` (or one way) arrives `ms` late, in order. */
  delay(a: number, b: number, ms: number, options: { readonly direction?: Direction } = {}): void {
    this.links(a, b).delay(a, b, ms, options.direction ?? 'both');
  }

  /**
   * A bandwidth limit: at most `bytesPerSecond` pass from `a` to `b`, back,
   * or each way (`both`, the default), paced at the socket by the link's
   * proxy, until {@link heal}. Nothing is dropped: the sender feels TCP's
   * backpressure, and everything arrives, in order.
   */
  throttle(a: number, b: number, options: ThrottleOptions): void {
    this.links(a, b).throttle(a, b, options.bytesPerSecond, options.direction ?? 'both');
  }

  /** Takes every fault off the link between `a` and `b` (off every link without arguments). */
  heal(a?: number, b?: number): void {
    if (a === undefined || b === undefined) this.fabric.healAll();
    else this.links(a, b).heal(a, b);
  }

  /** How each node sees the others, the link faults, and each node, as failures show them. */
  describe(nodes: readonly number[] = nodeList(this, undefined)): string {
    return [
      'what each node sees:',
      describeViews(this, nodes),
      `link faults: ${this.fabric.summary()}`,
      ...nodes.map((i) => this.describeNode(i)),
    ].join('\n');
  }

  /** Waits until `check` holds; a failure describes `nodes`. */
  protected wait<T>(
    check: () => T | undefined,
    what: string,
    nodes: readonly number[],
    options: WaitOptions,
  ): Promise<T> {
    return waitFor(this.changes, check, {
      what,
      timeoutMs: options.timeoutMs ?? this.timeoutMs,
      describe: () => this.describe(nodes),
      settle: () => Promise.all(nodes.map((i) => this.settleNode(i))).then(() => undefined),
      ...(this.pollMs === undefined ? {} : { pollMs: this.pollMs }),
    });
  }

  private links(a: number, b: number): LinkFabric {
    nodeList(this, [a, b]);
    if (this.tls)
      throw new Error('link faults need plain TCP: over TLS the proxy cannot tell the links apart');
    return this.fabric;
  }
}
