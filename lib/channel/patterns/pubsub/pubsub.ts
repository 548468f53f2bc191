/**
 * Pub-sub for one switchboard (docs/guide.md, "Pub-sub"): its
 * subscriptions, its view of every subscription in the cluster (from the
 * directory), and its publishers. Topic matching is NATS's
 * (./topics.ts); delivery is the core's, with lossy streams so that a slow
 * subscriber never holds a publisher up: it drops, on its own node,
 * counted and reported.
 */
import { randomUUID } from 'node:crypto';
import { OptionError } from '../../../errors.js';
import type { SwitchboardError } from '../../../errors.js';
import type { DirectoryEntry } from '../../directory.js';
import type { ChannelHub } from '../../hub.js';
import { Publisher } from './publisher.js';
import type { PublisherHost, PublisherOptions, Route } from './publisher.js';
import { Subscription } from './subscription.js';
import type { SubscribeOptions } from './subscription.js';
import { parseSubject } from './topics.js';

/** Directory kind of subscriptions; the entry's name is the pattern, its meta `{ c: channel, u: uid }`. */
export const PUBSUB_KIND = 'pubsub';

export class PubSub implements PublisherHost {
  /** Every subscription in the cluster, by uid. */
  routes = new Map<string, Route>();
  private readonly publishers = new Set<Publisher>();
  private readonly subscriptions = new Set<Subscription<unknown>>();
  private defaultPublisher: Publisher | undefined;
  private nextSubscription = 1;
  private readonly unwatch: () => void;
  private readonly unwatchSnapshots: () => void;

  constructor(private readonly hub: ChannelHub) {
    this.unwatch = hub.directory.watch(PUBSUB_KIND, undefined, () => this.refresh());
    this.unwatchSnapshots = hub.directory.watchSnapshots((peer) => {
      for (const p of this.publishers) p.snapshotFrom(peer);
    });
    this.refresh();
  }

  /**
   * Subscribes to `pattern` (`orders.eu`, `orders.*`, `orders.>`): every
   * message published on a matching topic from now on, on any node, once.
   * @throws OptionError for an invalid pattern or option.
   */
  subscribe<T>(pattern: string, options: SubscribeOptions<T> = {}): Subscription<T> {
    const tokens = parseSubject(pattern, true);
    if (typeof tokens === 'string')
      throw new OptionError('pattern', `"${String(pattern)}" ${tokens}`);
    const name = `pubsub:${pattern}#${this.nextSubscription++}`;
    const uid = randomUUID();
    const sub = new Subscription<T>(pattern, uid, name, this.hub, options);
    this.subscriptions.add(sub as Subscription<unknown>);
    this.hub.directory.announce(PUBSUB_KIND, pattern, sub.receiverId, { c: name, u: uid });
    return sub;
  }

  /** A publisher with its own streams and options. */
  publisher(options?: PublisherOptions): Publisher {
    const p = new Publisher(this, this.hub, options);
    this.publishers.add(p);
    return p;
  }

  /** The switchboard's own publisher (default options), created at first use. */
  get default(): Publisher {
    this.defaultPublisher ??= this.publisher();
    return this.defaultPublisher;
  }

  /** @internal */
  publisherClosed(p: Publisher): void {
    this.publishers.delete(p);
    if (this.defaultPublisher === p) this.defaultPublisher = undefined;
  }

  /** Graceful close: waits, at most until `deadline`, for the publishers' queues to drain. */
  async drain(deadline: number): Promise<void> {
    const left = deadline - performance.now();
    if (left <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.publishers].map((p) => p.drained())),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, left))),
    ]);
    clearTimeout(timer);
  }

  /**
   * The switchboard closed (`error` set: it was destroyed, and pending
   * reads reject with it). Subscriptions end first, so that local
   * publishers count what they still buffered as dropped.
   */
  shutdown(error?: SwitchboardError): void {
    this.unwatch();
    this.unwatchSnapshots();
    for (const s of [...this.subscriptions]) {
      if (error === undefined) s.close();
      else s.fail(error);
    }
    for (const p of [...this.publishers]) p.close();
  }

  private refresh(): void {
    const next = new Map<string, Route>();
    for (const e of this.hub.directory.lookupKind(PUBSUB_KIND)) {
      const route = routeOf(e);
      if (route === undefined) continue;
      next.set(route.uid, this.routes.get(route.uid) ?? route);
    }
    this.routes = next;
    for (const s of [...this.subscriptions]) if (s.closed) this.subscriptions.delete(s);
    for (const p of this.publishers) p.routesChanged();
  }
}

function routeOf(e: DirectoryEntry): Route | undefined {
  const tokens = parseSubject(e.name, true);
  const meta = e.meta as { c?: unknown; u?: unknown } | null;
  if (typeof tokens === 'string' || typeof meta?.u !== 'string') return undefined;
  const channel = typeof meta.c === 'string' ? meta.c : `pubsub:${e.name}`;
  return {
    uid: meta.u,
    node: e.node,
    id: e.id,
    pattern: e.name,
    tokens,
    label: `${channel}@${e.node}`,
  };
}
