/**
 * A publisher keeps one stream (a core `Sender`) per subscription in the
 * cluster, opened as soon as the publisher exists or sees the
 * subscription, so that a burst is not dropped while streams open.
 * `publish()` sends to the streams whose pattern matches the topic: FIFO
 * per (publisher, subscription). A value is encoded once for all of them
 * (an envelope), with the topic in the message's head.
 *
 * The one place a publisher can be held is its link to a peer (bounded,
 * see `linkBufferBytes`): while a link has no room, or a stream is still
 * opening, messages wait in a bounded queue per subscription
 * (`queueSize`); beyond it they are dropped, counted and reported.
 * `publish()` returns false then, and `drained()` lets a publisher that
 * must not lose anything wait instead.
 *
 * When a stream ends with its session, what it carried that the
 * subscriber had not reported taken is counted as dropped here (a lossy
 * stream keeps counts, not copies); the subscriber learns of the gap from
 * the next stream's hello.
 *
 * One file of about 400 lines: the streams per subscription, the topic
 * cache and the counts of what went where are read and written together by
 * `publish()` and by every change of the directory.
 */
import { randomUUID } from 'node:crypto';
import {
  ErrorCode,
  NotDeliveredError,
  OptionError,
  PeerLostError,
  SwitchboardError,
} from '../../../errors.js';
import { Envelope, Headed, headPrefix } from '../../envelope.js';
import { checkHeaders } from '../../headers.js';
import type { Headers } from '../../headers.js';
import { mutableHeaders, publishTrace, traced, tracedHeaders } from '../../tracing.js';
import type { PublishTraceContext } from '../../tracing.js';
import type { ChannelHub } from '../../hub.js';
import type { Sender } from '../../sender.js';
import { HELLO } from './subscription.js';
import { parseSubject, tokensMatch } from './topics.js';

/** Options of a {@link Publisher}. */
export interface PublisherOptions {
  /**
   * Messages held per subscription while its stream cannot take them (the
   * link to its node is full, or the stream is still opening); beyond this,
   * `publish()` drops them (counted, reported as `drop` events). Default 1024.
   */
  readonly queueSize?: number;
}

/** Options of one `publish()`. */
export interface PublishOptions {
  /** Headers the publication carries (docs/api.md, "Headers"): its subscribers see them on `Publication.headers`. */
  readonly headers?: Headers;
}

export const DEFAULT_PUBLISHER_OPTIONS = Object.freeze({ queueSize: 1024 });

/** The option names a publisher takes. */
export const PUBLISHER_OPTION_NAMES: readonly string[] = ['queueSize'];

/** Counters of one publisher. */
export interface PublisherStats {
  /** `publish()` calls. */
  readonly published: number;
  /** Messages handed to subscription streams (one per matching subscription). */
  readonly sent: number;
  /**
   * Messages dropped: a subscription's queue was full, a subscriber refused
   * one, its session ended before it reported them taken, or its node was
   * unreachable.
   */
  readonly dropped: number;
  /**
   * Of `dropped`: messages for a subscription whose node was unreachable
   * (its session had ended, the subscription not withdrawn). The
   * subscription's next stream counts them in its gap.
   */
  readonly unreachable: number;
  /** Messages waiting in subscription queues now. */
  readonly queued: number;
  /** Subscriptions known to this publisher, with a stream open. */
  readonly subscriptions: number;
}

/** A subscription somewhere in the cluster, as this node knows it. */
export interface Route {
  /** The subscription's id in the cluster. */
  readonly uid: string;
  readonly node: number;
  readonly id: number;
  readonly pattern: string;
  readonly tokens: readonly string[];
  /** Where drops on the publisher's side are reported: `<channel>@<node>`. */
  readonly label: string;
}

/** What a publisher needs from the pattern. */
export interface PublisherHost {
  readonly routes: ReadonlyMap<string, Route>;
  publisherClosed(p: Publisher): void;
}

/** The stream from one publisher to one subscription. */
class Link {
  readonly sender: Sender<unknown>;
  /** Messages sent to the subscription, on this stream and the ones before. */
  sent: number;

  constructor(
    hub: ChannelHub,
    readonly route: Route,
    owner: Publisher,
    queueSize: number,
    sentBefore: number,
    publisher: string,
  ) {
    this.sent = sentBefore;
    this.sender = hub.sender<unknown>(
      { node: route.node, id: route.id },
      { maxPending: queueSize, timeoutMs: Number.POSITIVE_INFINITY },
      {
        label: route.label,
        pumped: () => {
          if (this.sender.waiting === 0) owner.linkDrained(this);
        },
        failed: (error) => owner.linkFailed(this, error),
        lost: (count, error) => owner.lost(this, count, error),
        // A local subscription that ended with publications buffered hands them
        // back (as it buffered them; a hello is never buffered).
        undelivered: (messages, error) => {
          owner.lost(this, messages.length, error);
          return true;
        },
      },
    );
    // First on the stream: who publishes, and how much it sent on earlier ones.
    this.sender.post([HELLO, publisher, sentBefore]);
  }

  /** True once the subscriber granted credit. */
  get ready(): boolean {
    return this.sender.outlets[0]?.state === 'open';
  }
}

/** The subscriptions one topic goes to, cached per topic. */
interface TopicRoutes {
  readonly links: Link[];
  /** Matching subscriptions whose node is unreachable now. */
  readonly dormant: Route[];
  /** Some of them are on other nodes: the value is encoded. */
  readonly remote: boolean;
  /** The head `[topic]`, encoded once. */
  readonly prefix: Buffer;
}

const TOPIC_CACHE_MAX = 4096;
/** Subscriptions whose send counts are kept after their stream ended (so a later stream can say). */
const SENT_MEMORY = 4096;
const RESOLVED = Promise.resolve();

/**
 * Publishes to every matching subscription in the cluster. `publish()`
 * never waits and never throws because of a subscriber. Get one with
 * `switchboard.publisher()`, or use `switchboard.publish()`.
 */
export class Publisher {
  /** This publisher's id in the cluster. */
  readonly uid = randomUUID();
  private readonly links = new Map<string, Link>();
  private readonly cache = new Map<string, TopicRoutes>();
  private readonly backlogged = new Set<Link>();
  /** Messages sent per subscription (by uid), as of its last stream's end (a live link counts its own). */
  private readonly sentTo = new Map<string, number>();
  /**
   * Subscriptions whose stream ended with their node's session, not
   * withdrawn: what is published for them meanwhile is dropped, counted in
   * the send count their next stream's hello carries (so the subscription
   * learns of it as a gap). Forgotten when the subscription comes back,
   * or its node's next snapshot does not list it.
   */
  private readonly dormant = new Map<string, Route>();
  private unreachable = 0;
  private readonly queueSize: number;
  private drainWaiters: Array<() => void> = [];
  private published = 0;
  private sent = 0;
  private dropped = 0;
  private closed = false;

  /** @internal Created by `PubSub.publisher`. */
  constructor(
    private readonly host: PublisherHost,
    private readonly hub: ChannelHub,
    options: PublisherOptions = {},
  ) {
    const q = options.queueSize ?? DEFAULT_PUBLISHER_OPTIONS.queueSize;
    if (!Number.isInteger(q) || q < 1)
      throw new OptionError('queueSize', 'must be a positive integer');
    this.queueSize = q;
    this.routesChanged();
  }

  /**
   * Publishes `value` on `topic` to every matching subscription, in order
   * per subscription. Never waits. Returns true when the message went out
   * to every matching subscription at once, false when it had to wait in a
   * subscription's queue or was dropped: a publisher that must not lose
   * messages then awaits {@link drained}.
   * @throws OptionError for an invalid topic; ERR_SB_ENCODE for a value
   *   that cannot be carried (nothing is sent then); ERR_SB_CLOSED once closed.
   */
  publish(topic: string, value: unknown, options?: PublishOptions): boolean {
    const headers = options?.headers;
    if (publishTrace.hasSubscribers) {
      const ctx: PublishTraceContext = { topic, headers: mutableHeaders(headers) };
      const h = tracedHeaders(headers, ctx);
      return traced(publishTrace, ctx, () => this.publishNow(topic, value, h));
    }
    return this.publishNow(topic, value, headers);
  }

  private publishNow(topic: string, value: unknown, headers: unknown): boolean {
    if (this.closed) throw new SwitchboardError(ErrorCode.CLOSED, 'publisher is closed');
    const h = headers === undefined ? undefined : checkHeaders(headers);
    const t = this.cache.get(topic) ?? this.resolve(topic);
    this.published++;
    this.hub.metrics.published(topic);
    const links = t.links;
    if (links.length === 0) {
      if (t.dormant.length === 0) return true;
      this.unreachableFor(t.dormant);
      return false;
    }
    // Encoded once for every subscription, and refused before any gets it.
    const message = new Envelope(
      h === undefined
        ? new Headed([topic], value, t.prefix)
        : new Headed([topic], value, undefined, h),
    );
    if (t.remote || this.hub.forceEncoding) message.encode();
    else this.hub.localValue(message);
    let ok = true;
    if (t.dormant.length > 0) {
      this.unreachableFor(t.dormant);
      ok = false;
    }
    for (let i = 0; i < links.length; i++) {
      const link = links[i]!;
      const s = link.sender;
      if (s.waiting >= this.queueSize) {
        this.dropped++;
        this.hub.reportDrop(link.route.label, 1, 'publisher queue full (link or stream not ready)');
        ok = false;
        continue;
      }
      const droppedBefore = s.dropped;
      s.post(message);
      if (s.dropped !== droppedBefore) {
        // Refused at once (too large for that node, say): counted by the sender's drop report.
        this.dropped += s.dropped - droppedBefore;
        ok = false;
        continue;
      }
      this.sent++;
      link.sent++;
      if (s.waiting > 0) {
        this.backlogged.add(link);
        ok = false;
      }
    }
    return ok;
  }

  /**
   * Resolves once no subscription queue of this publisher holds a message
   * (at once when none does). Messages for a peer whose link stays full wait
   * until it drains or its session ends.
   */
  drained(): Promise<void> {
    if (this.backlogged.size === 0) return RESOLVED;
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Subscriptions matching `topic` that this publisher has an open stream to. */
  subscribers(topic: string): number {
    let n = 0;
    for (const link of this.resolve(topic).links) if (link.ready) n++;
    return n;
  }

  /** A snapshot of the counters. */
  stats(): PublisherStats {
    let queued = 0;
    let open = 0;
    for (const link of this.links.values()) {
      queued += link.sender.waiting;
      if (link.ready) open++;
    }
    return {
      published: this.published,
      sent: this.sent,
      dropped: this.dropped,
      unreachable: this.unreachable,
      queued,
      subscriptions: open,
    };
  }

  /** Closes every stream (queued messages still go out). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.sender.close();
    this.links.clear();
    this.dormant.clear();
    this.cache.clear();
    this.backlogged.clear();
    this.settleDrained();
    this.host.publisherClosed(this);
  }

  // ---- driven by the pattern and the links -----------------------------------

  /** The set of subscriptions changed: open streams to new ones, close the others. */
  routesChanged(): void {
    if (this.closed) return;
    this.cache.clear();
    const routes = this.host.routes;
    for (const [uid, link] of this.links) {
      if (routes.get(uid) !== link.route) {
        this.links.delete(uid);
        this.sentTo.set(uid, link.sent);
        this.backlogged.delete(link);
        link.sender.close();
      }
    }
    for (const route of routes.values()) {
      if (this.links.has(route.uid)) continue;
      this.dormant.delete(route.uid);
      const link = new Link(
        this.hub,
        route,
        this,
        this.queueSize,
        this.sentTo.get(route.uid) ?? 0,
        this.uid,
      );
      this.links.set(route.uid, link);
      // The count goes on across streams: keep it at the end of the memory.
      const sent = this.sentTo.get(route.uid);
      if (sent !== undefined) {
        this.sentTo.delete(route.uid);
        this.sentTo.set(route.uid, sent);
      }
      link.sender.open();
    }
    while (this.sentTo.size > SENT_MEMORY) this.sentTo.delete(this.sentTo.keys().next().value!);
    this.settleDrained();
  }

  /** @internal */
  linkDrained(link: Link): void {
    if (this.backlogged.delete(link) && this.backlogged.size === 0) this.settleDrained();
  }

  /** @internal The subscription is gone (closed, failed, or its node's session ended). */
  linkFailed(link: Link, error: SwitchboardError): void {
    if (this.links.get(link.route.uid) === link) {
      this.links.delete(link.route.uid);
      this.sentTo.set(link.route.uid, link.sent);
      this.cache.clear();
      // Its node's session ended: the subscription may live on there.
      if (error instanceof NotDeliveredError && !this.closed && !byClose(error)) {
        this.dormant.set(link.route.uid, link.route);
        if (this.dormant.size > SENT_MEMORY) this.dormant.delete(this.dormant.keys().next().value!);
      }
    }
    this.linkDrained(link);
  }

  /** @internal `peer`'s snapshot came: a dormant subscription it does not list is gone. */
  snapshotFrom(peer: number): void {
    let changed = false;
    for (const [uid, route] of this.dormant) {
      if (route.node !== peer || this.host.routes.has(uid)) continue;
      this.dormant.delete(uid);
      changed = true;
    }
    if (changed) this.cache.clear();
  }

  /** Publications for subscriptions whose node is unreachable: counted, and remembered for their gap. */
  private unreachableFor(dormant: readonly Route[]): void {
    for (const route of dormant) {
      this.dropped++;
      this.unreachable++;
      this.sentTo.set(route.uid, (this.sentTo.get(route.uid) ?? 0) + 1);
      this.hub.reportDrop(route.label, 1, `node ${route.node} unreachable`);
    }
  }

  /** @internal A stream ended with `count` messages its subscriber never reported taking. */
  lost(link: Link, count: number, error: SwitchboardError): void {
    this.dropped += count;
    this.hub.reportDrop(link.route.label, count, `not delivered: ${error.message}`);
  }

  private resolve(topic: string): TopicRoutes {
    const tokens = parseSubject(topic, false);
    if (typeof tokens === 'string') throw new OptionError('topic', `"${String(topic)}" ${tokens}`);
    const links: Link[] = [];
    let remote = false;
    for (const link of this.links.values()) {
      if (link.sender.closed || !tokensMatch(link.route.tokens, tokens)) continue;
      links.push(link);
      if (link.route.node !== this.hub.self) remote = true;
    }
    const dormant: Route[] = [];
    for (const route of this.dormant.values())
      if (tokensMatch(route.tokens, tokens)) dormant.push(route);
    const t: TopicRoutes = { links, dormant, remote, prefix: headPrefix([topic]) };
    if (this.cache.size >= TOPIC_CACHE_MAX) this.cache.clear();
    this.cache.set(topic, t);
    return t;
  }

  private settleDrained(): void {
    if (this.backlogged.size > 0 || this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

/** True when a session ended because the peer closed (its subscriptions went with it). */
function byClose(error: SwitchboardError): boolean {
  const lost = error.cause;
  return (
    lost instanceof PeerLostError &&
    lost.cause instanceof SwitchboardError &&
    lost.cause.code === ErrorCode.CLOSED
  );
}
