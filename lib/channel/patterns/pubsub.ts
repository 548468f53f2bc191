/**
 * Pub-sub: topics with NATS-style wildcard subscriptions, built on channels.
 *
 * - A subscription is a lossy receiver on the subscriber's node, announced
 *   in the hub's directory under kind {@link PUBSUB_KIND} with the pattern
 *   as name (meta: the channel name). The receiver grants unlimited credit
 *   and hands each message on at once; the subscription keeps a bounded
 *   buffer (`bufferSize`) with its policy: `drop-oldest`, `drop-newest` or
 *   `fail`. A slow subscriber therefore never holds a publisher up: it drops,
 *   on its own node, counted in its `stats()` and the switchboard's, and
 *   reported as `drop` events there.
 * - A publisher keeps one stream (a `Sender`) per subscription in the
 *   cluster, opened as soon as the publisher exists or sees the
 *   subscription, so that a burst is not dropped while streams open.
 *   `publish()` sends to the streams whose pattern matches the topic: FIFO
 *   per (publisher, subscription), so every subscriber sees one publisher's
 *   messages in publish order. The switchboard's own publisher is created at
 *   the first `publish()` or `subscribers()`: `await until subscribers(topic)`
 *   tells when its streams are open.
 * - The one place a publisher can be held is its link to a peer (bounded,
 *   see `linkBufferBytes`): while a link has no room, or a stream is still
 *   opening, messages wait in a bounded queue per subscription
 *   ({@link PublisherOptions.queueSize}); beyond it they are dropped, counted
 *   in the publisher's `stats()` and the switchboard's (under
 *   `<channel>@<node>`) and reported as `drop` events. `publish()` returns
 *   false then, and {@link Publisher.drained} lets a publisher that must not
 *   lose anything wait instead. Fan-out is lossless while subscribers keep
 *   up and the publisher heeds that signal.
 * - A subscription whose node's session ends disappears from the directory
 *   and its streams close; messages in flight to it are lost with it (a
 *   lossy stream keeps no copies). A transient link drop loses nothing.
 *
 * A message is encoded once per publish for all remote subscribers: a
 * 3-byte header (kind, topic length), the topic in UTF-8, then the value as
 * CBOR, or as the raw bytes when the value is a `Uint8Array` (no CBOR for
 * binary payloads; it arrives as a `Buffer`). A subscriber on the
 * publisher's node gets the value itself.
 */
import { merge, Observable, Subject } from 'rxjs';
import type { Subscriber as RxSubscriber } from 'rxjs';
import { ErrorCode, OptionError, SwitchboardError, DecodeError } from '../../errors.js';
import { decodeValue, encodeValue } from '../../protocol/codec.js';
import type { CodecContext } from '../../protocol/codec.js';
import type { ChannelHub, DirectoryEntry } from '../hub.js';
import type { Receiver } from '../receiver.js';
import { Ring } from '../ring.js';
import { validateSync } from '../schema.js';
import type { StandardSchemaV1 } from '../schema.js';
import { Sender } from '../sender.js';

/** Directory kind of subscriptions; the entry's name is the pattern, its meta the channel name. */
export const PUBSUB_KIND = 'pubsub';

/** What a subscription does when its buffer is full. */
export type SubscriptionOverflow = 'drop-oldest' | 'drop-newest' | 'fail';

/** Options of {@link PubSub.subscribe}. */
export interface SubscribeOptions<T> {
  /** Messages buffered at most for this subscriber. Default 4096. */
  readonly bufferSize?: number;
  /**
   * What a full buffer does: `drop-newest` (default, as NATS and ZeroMQ do)
   * drops the arriving message, `drop-oldest` drops the oldest buffered one,
   * `fail` ends the subscription with ERR_SB_OVERFLOW. Drops are counted in
   * `stats()` and reported as `drop` events on the subscriber's switchboard.
   */
  readonly overflow?: SubscriptionOverflow;
  /** Validator (Standard Schema) of the values; a refused value is an error on `errors$`, skipped. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** Options of a {@link Publisher}. */
export interface PublisherOptions {
  /**
   * Messages held per subscription while its stream cannot take them (the
   * link to its node is full, or the stream is still opening); beyond this,
   * `publish()` drops them (counted, reported as `drop` events). Default 1024.
   */
  readonly queueSize?: number;
}

export const DEFAULT_SUBSCRIBE_OPTIONS = Object.freeze({
  bufferSize: 4096,
  overflow: 'drop-newest',
});

export const DEFAULT_PUBLISHER_OPTIONS = Object.freeze({ queueSize: 1024 });

/** Longest topic or pattern, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 1024;

/** One published message as a subscriber sees it. */
export interface Publication<T> {
  /** The topic it was published on (never a pattern). */
  readonly topic: string;
  readonly value: T;
}

/** Counters of one subscription (this node's view). */
export interface SubscriptionStats {
  readonly pattern: string;
  /** The channel name drops are reported under (`pubsub:<pattern>#<n>`). */
  readonly channel: string;
  /** Messages that arrived. */
  readonly received: number;
  /** Messages handed to the application. */
  readonly delivered: number;
  /** Messages dropped by the overflow policy. */
  readonly dropped: number;
  /** Messages refused by the schema or undecodable. */
  readonly invalid: number;
  /** Messages buffered now. */
  readonly queued: number;
}

/** Counters of one publisher. */
export interface PublisherStats {
  /** `publish()` calls. */
  readonly published: number;
  /** Messages handed to subscription streams (one per matching subscription). */
  readonly sent: number;
  /** Messages dropped because a subscription's queue was full. */
  readonly dropped: number;
  /** Messages waiting in subscription queues now. */
  readonly queued: number;
  /** Subscriptions known to this publisher, with a stream open. */
  readonly subscriptions: number;
}

const WIRE_CBOR = 1;
const WIRE_RAW = 2;
const HEADER = 3;
const TOPIC_CACHE_MAX = 4096;
const RESOLVED = Promise.resolve();

// ---- topics and patterns ----------------------------------------------------

/**
 * Splits a topic or pattern into tokens, or returns an error message.
 * Tokens are non-empty and contain no whitespace; `*` and `>` may only
 * appear as whole tokens, in patterns, and `>` only last.
 */
function parseSubject(s: unknown, pattern: boolean): string[] | string {
  if (typeof s !== 'string' || s.length === 0) return 'must be a non-empty string';
  if (Buffer.byteLength(s) > MAX_TOPIC_BYTES) return `longer than ${MAX_TOPIC_BYTES} bytes`;
  const tokens = s.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return 'has an empty token';
    if (/\s/.test(t)) return 'contains whitespace';
    if (t === '*' || t === '>') {
      if (!pattern) return `has a wildcard token "${t}" (topics are literal)`;
      if (t === '>' && i !== tokens.length - 1) return '">" must be the last token';
    } else if (t.includes('*') || t.includes('>')) {
      return `"${t}": wildcards must be whole tokens`;
    }
  }
  return tokens;
}

/** True if `pattern` is a valid subscription pattern. */
export function isValidPattern(pattern: string): boolean {
  return typeof parseSubject(pattern, true) !== 'string';
}

/** True if `topic` is a valid topic to publish on. */
export function isValidTopic(topic: string): boolean {
  return typeof parseSubject(topic, false) !== 'string';
}

/**
 * NATS semantics: `*` matches exactly one token, `>` one or more trailing
 * tokens; everything else matches itself.
 */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = parseSubject(pattern, true);
  const t = parseSubject(topic, false);
  return typeof p !== 'string' && typeof t !== 'string' && tokensMatch(p, t);
}

function tokensMatch(pattern: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return topic.length > i;
    if (i >= topic.length) return false;
    if (p !== '*' && p !== topic[i]) return false;
  }
  return topic.length === pattern.length;
}

// ---- wire form -------------------------------------------------------------

function encodePublication(topic: Buffer, value: unknown): Buffer {
  const raw = value instanceof Uint8Array;
  const body = raw ? value : encodeValue(value);
  const out = Buffer.allocUnsafe(HEADER + topic.length + body.length);
  // TypedArray.set and plain stores: Buffer's checked writers cost more than the copy.
  out[0] = raw ? WIRE_RAW : WIRE_CBOR;
  out[1] = topic.length >>> 8;
  out[2] = topic.length;
  out.set(topic, HEADER);
  out.set(body, HEADER + topic.length);
  return out;
}

/**
 * Decodes publications arriving on one subscription. Streams usually carry
 * few topics, so the last topic's string is kept and reused while the bytes
 * match, saving a UTF-8 decode per message.
 */
class PublicationDecoder {
  private lastBytes: Buffer = Buffer.alloc(0);
  private lastTopic = '';

  constructor(private readonly ctx: CodecContext) {}

  decode(bytes: Uint8Array): Publication<unknown> {
    const b = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    if (b.length < HEADER) throw new DecodeError('pub-sub message shorter than its header');
    const kind = b[0];
    const length = (b[1]! << 8) | b[2]!;
    const end = HEADER + length;
    if (end > b.length || (kind !== WIRE_CBOR && kind !== WIRE_RAW))
      throw new DecodeError('malformed pub-sub message header');
    const body = b.subarray(end);
    return {
      topic: this.topic(b, length),
      value: kind === WIRE_RAW ? body : decodeValue(body, this.ctx),
    };
  }

  private topic(b: Buffer, length: number): string {
    const last = this.lastBytes;
    if (last.length === length) {
      let i = 0;
      while (i < length && last[i] === b[HEADER + i]) i++;
      if (i === length) return this.lastTopic;
    }
    this.lastTopic = b.toString('utf8', HEADER, HEADER + length);
    this.lastBytes = Buffer.from(b.subarray(HEADER, HEADER + length));
    return this.lastTopic;
  }
}

// ---- subscriptions -----------------------------------------------------------

/** What a subscription needs from the hub. */
interface SubscriptionHost extends CodecContext {
  reportDrop(channel: string, count: number, reason: string): void;
}

const DONE: IteratorResult<never> = Object.freeze({
  value: undefined,
  done: true,
}) as IteratorResult<never>;

/**
 * One subscription: an `AsyncIterable` of {@link Publication}s (`{ topic,
 * value }`: a wildcard subscriber needs the topic) and, through
 * `observable()`, an rxjs Observable; one consumer at a time. Iteration ends
 * when the subscription is closed (or its switchboard), and rejects with
 * ERR_SB_OVERFLOW when the `fail` policy ended it.
 *
 * The stream from each publisher is a lossy channel (unlimited credit, so a
 * publisher never waits); messages are decoded as they arrive and kept in
 * this subscription's bounded buffer, where the overflow policy applies.
 *
 * A subscriber on the publisher's node gets the published value itself, not
 * a copy (unless the switchboard forces encoding): do not mutate it.
 */
export class Subscription<T> implements AsyncIterable<Publication<T>> {
  /** Errors that do not end the subscription: undecodable or invalid messages. */
  readonly errors$: Observable<SwitchboardError>;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly buffer = new Ring<Publication<T>>(64);
  private readonly decoder: PublicationDecoder;
  private waiter:
    | {
        resolve: (r: IteratorResult<Publication<T>>) => void;
        reject: (e: unknown) => void;
      }
    | undefined;
  private observer: RxSubscriber<Publication<T>> | undefined;
  private state: 'open' | 'ended' | 'closed' = 'open';
  private failure: SwitchboardError | undefined;
  private received = 0;
  private delivered = 0;
  private dropped = 0;
  private invalid = 0;

  /** @internal Created by {@link PubSub.subscribe}. */
  constructor(
    /** The pattern subscribed to. */
    readonly pattern: string,
    private readonly receiver: Receiver<unknown>,
    private readonly host: SubscriptionHost,
    private readonly capacity: number,
    private readonly overflow: SubscriptionOverflow,
    private readonly schema: StandardSchemaV1<unknown, T> | undefined,
  ) {
    this.decoder = new PublicationDecoder(host);
    this.errors$ = merge(receiver.errors$, this.errorSubject);
    receiver.observable().subscribe({
      next: (v) => this.arrive(v),
      error: (e: unknown) =>
        this.fail(
          e instanceof SwitchboardError
            ? e
            : new SwitchboardError(ErrorCode.INTERNAL, String(e), { cause: e }),
        ),
      complete: () => this.end('ended'),
    });
  }

  /** The channel name this subscription's drops are reported under. */
  get channel(): string {
    return this.receiver.name;
  }

  /** True once closed, failed, or ended with its switchboard. */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** The next publication; `done` once the subscription ended and its buffer is empty. */
  next(): Promise<IteratorResult<Publication<T>>> {
    if (this.buffer.length > 0) {
      this.delivered++;
      return Promise.resolve({ value: this.buffer.shift()!, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.state !== 'open') return Promise.resolve(DONE);
    if (this.waiter !== undefined || this.observer !== undefined)
      return Promise.reject(this.busy());
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Publication<T>> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve(DONE);
      },
    };
  }

  /** The publications as an Observable; completes when the subscription ends. One subscriber at a time. */
  observable(): Observable<Publication<T>> {
    return new Observable<Publication<T>>((subscriber) => {
      if (this.observer !== undefined || this.waiter !== undefined) {
        subscriber.error(this.busy());
        return undefined;
      }
      this.observer = subscriber;
      while (this.buffer.length > 0 && this.observer === subscriber && !subscriber.closed) {
        this.delivered++;
        subscriber.next(this.buffer.shift()!);
      }
      this.settle();
      return () => {
        if (this.observer === subscriber) this.observer = undefined;
      };
    });
  }

  /** Ends the subscription: publishers stop sending to it, buffered messages are dropped. Idempotent. */
  close(): void {
    if (this.state === 'closed') return;
    this.buffer.drain();
    this.end('closed');
  }

  /** A snapshot of the counters. */
  stats(): SubscriptionStats {
    return {
      pattern: this.pattern,
      channel: this.receiver.name,
      received: this.received,
      delivered: this.delivered,
      dropped: this.dropped,
      invalid: this.invalid,
      queued: this.buffer.length,
    };
  }

  private arrive(v: unknown): void {
    this.received++;
    let m: Publication<T>;
    try {
      // Remote (or force-encoded) messages arrive as bytes; local ones as the object itself.
      const p = v instanceof Uint8Array ? this.decoder.decode(v) : (v as Publication<unknown>);
      m = (
        this.schema === undefined
          ? p
          : {
              topic: p.topic,
              value: validateSync(this.schema, p.value, `subscription ${this.pattern}`),
            }
      ) as Publication<T>;
    } catch (err) {
      this.invalid++;
      this.errorSubject.next(
        err instanceof SwitchboardError ? err : new DecodeError(String(err), { cause: err }),
      );
      return;
    }
    if (this.buffer.length === 0) {
      if (this.waiter !== undefined) {
        const w = this.waiter;
        this.waiter = undefined;
        this.delivered++;
        w.resolve({ value: m, done: false });
        return;
      }
      if (this.observer !== undefined) {
        this.delivered++;
        this.observer.next(m);
        return;
      }
    }
    if (this.buffer.length >= this.capacity) {
      switch (this.overflow) {
        case 'drop-newest':
          this.drop('buffer full, newest dropped');
          return;
        case 'drop-oldest':
          this.buffer.shift();
          this.drop('buffer full, oldest dropped');
          break;
        default:
          this.fail(
            new SwitchboardError(
              ErrorCode.OVERFLOW,
              `subscription ${this.receiver.name} overflowed its ${this.capacity}-message buffer`,
            ),
          );
          return;
      }
    }
    this.buffer.push(m);
  }

  private drop(reason: string): void {
    this.dropped++;
    this.host.reportDrop(this.receiver.name, 1, reason);
  }

  private fail(error: SwitchboardError): void {
    if (this.state === 'closed') return;
    this.failure = error;
    this.buffer.drain();
    this.end('closed');
  }

  private end(state: 'ended' | 'closed'): void {
    if (this.state === 'closed' || (this.state === 'ended' && state === 'ended')) return;
    this.state = state;
    // Withdraws the directory entry: publishers close their streams to it.
    this.receiver.close();
    this.settle();
    this.errorSubject.complete();
  }

  /** Wakes a waiting consumer once the subscription is over and its buffer empty. */
  private settle(): void {
    if (this.state === 'open' || this.buffer.length > 0) return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      if (this.failure !== undefined) w.reject(this.failure);
      else w.resolve(DONE);
    }
    if (this.observer !== undefined) {
      const o = this.observer;
      this.observer = undefined;
      if (this.failure !== undefined) o.error(this.failure);
      else o.complete();
    }
  }

  private busy(): SwitchboardError {
    return new SwitchboardError(
      ErrorCode.INTERNAL,
      `subscription ${this.receiver.name} already has a consumer`,
    );
  }
}

// ---- publishers --------------------------------------------------------------

/** A subscription somewhere in the cluster, as this node knows it. */
interface Route {
  readonly key: string;
  readonly node: number;
  readonly id: number;
  readonly pattern: string;
  readonly tokens: readonly string[];
  /** Where drops on the publisher's side are reported: `<channel>@<node>`. */
  readonly label: string;
}

/** The stream from one publisher to one subscription. */
class SubscriptionLink extends Sender<unknown> {
  constructor(
    hub: ChannelHub,
    readonly route: Route,
    private readonly owner: Publisher,
    queueSize: number,
  ) {
    super(hub, { kind: 'mpsc', node: route.node, id: route.id }, 'single', {
      maxPending: queueSize,
      timeoutMs: Number.POSITIVE_INFINITY,
    });
  }

  override get channel(): string {
    return this.route.label;
  }

  /** True once the subscriber granted credit. */
  get ready(): boolean {
    return this.outlets[0]?.state === 'open';
  }

  override pump(): void {
    super.pump();
    if (this.waiting === 0) this.owner.linkDrained(this);
  }

  override fail(error: SwitchboardError): void {
    super.fail(error);
    this.owner.linkFailed(this);
  }
}

/** The subscriptions one topic goes to, cached per topic. */
interface TopicRoutes {
  readonly bytes: Buffer;
  readonly links: SubscriptionLink[];
  readonly remote: boolean;
}

/**
 * Publishes to every matching subscription in the cluster. `publish()`
 * never waits and never throws because of a subscriber; see the module
 * comment for where messages may be dropped. Get one with
 * `switchboard.publisher()`, or use `switchboard.publish()`.
 */
export class Publisher {
  private readonly links = new Map<string, SubscriptionLink>();
  private readonly cache = new Map<string, TopicRoutes>();
  private readonly backlogged = new Set<SubscriptionLink>();
  private readonly queueSize: number;
  private drainWaiters: Array<() => void> = [];
  private published = 0;
  private sent = 0;
  private dropped = 0;
  private closed = false;

  /** @internal Created by {@link PubSub.publisher}. */
  constructor(
    private readonly pubsub: PubSub,
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
   * messages then awaits {@link drained}. A new publisher opens its streams
   * at once; until a stream's first credit arrives (one round trip), its
   * messages wait in its queue.
   * @throws OptionError for an invalid topic; ERR_SB_ENCODE for a value
   *   that cannot be encoded (nothing is sent then); ERR_SB_CLOSED once closed.
   */
  publish(topic: string, value: unknown): boolean {
    if (this.closed) throw new SwitchboardError(ErrorCode.CLOSED, 'publisher is closed');
    const t = this.cache.get(topic) ?? this.resolve(topic);
    this.published++;
    const links = t.links;
    if (links.length === 0) return true;
    const wire = t.remote ? encodePublication(t.bytes, value) : undefined;
    let ok = true;
    for (let i = 0; i < links.length; i++) {
      const link = links[i]!;
      if (link.waiting >= this.queueSize) {
        this.dropped++;
        this.hub.reportDrop(link.route.label, 1, 'publisher queue full (link or stream not ready)');
        ok = false;
        continue;
      }
      link.post(wire === undefined || link.route.node === this.hub.self ? { topic, value } : wire);
      this.sent++;
      if (link.waiting > 0) {
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
      queued += link.waiting;
      if (link.ready) open++;
    }
    return {
      published: this.published,
      sent: this.sent,
      dropped: this.dropped,
      queued,
      subscriptions: open,
    };
  }

  /** Closes every stream (queued messages still go out). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    this.cache.clear();
    this.backlogged.clear();
    this.settleDrained();
    this.pubsub.publisherClosed(this);
  }

  // ---- driven by PubSub and the links ----------------------------------------

  /** The set of subscriptions changed: open streams to new ones, close the others. */
  routesChanged(): void {
    if (this.closed) return;
    this.cache.clear();
    const routes = this.pubsub.routes;
    for (const [key, link] of this.links) {
      if (routes.get(key) !== link.route) {
        this.links.delete(key);
        this.backlogged.delete(link);
        link.close();
      }
    }
    for (const route of routes.values()) {
      if (this.links.has(route.key)) continue;
      const link = new SubscriptionLink(this.hub, route, this, this.queueSize);
      this.links.set(route.key, link);
      link.open();
    }
    this.settleDrained();
  }

  /** @internal */
  linkDrained(link: SubscriptionLink): void {
    if (this.backlogged.delete(link) && this.backlogged.size === 0) this.settleDrained();
  }

  /** @internal The subscription is gone (closed, failed, or its node's session ended). */
  linkFailed(link: SubscriptionLink): void {
    if (this.links.get(link.route.key) === link) {
      this.links.delete(link.route.key);
      this.cache.clear();
    }
    this.linkDrained(link);
  }

  private resolve(topic: string): TopicRoutes {
    const tokens = parseSubject(topic, false);
    if (typeof tokens === 'string') throw new OptionError('topic', `"${String(topic)}" ${tokens}`);
    const links: SubscriptionLink[] = [];
    let remote = false;
    for (const link of this.links.values()) {
      if (link.closed || !tokensMatch(link.route.tokens, tokens)) continue;
      links.push(link);
      if (link.route.node !== this.hub.self) remote = true;
    }
    const t: TopicRoutes = { bytes: Buffer.from(topic, 'utf8'), links, remote };
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

// ---- the pattern -------------------------------------------------------------

/**
 * Pub-sub for one switchboard: its subscriptions, its view of every
 * subscription in the cluster (from the directory), and its publishers.
 * Reached through the switchboard (`subscribe`, `publish`, `publisher`).
 */
export class PubSub {
  /** Every subscription in the cluster, by `<node>:<receiver id>`. */
  routes = new Map<string, Route>();
  private readonly publishers = new Set<Publisher>();
  private defaultPublisher: Publisher | undefined;
  private nextSubscription = 1;

  constructor(private readonly hub: ChannelHub) {
    hub.watch(PUBSUB_KIND, undefined, () => this.refresh());
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
    const bufferSize = options.bufferSize ?? DEFAULT_SUBSCRIBE_OPTIONS.bufferSize;
    if (!Number.isInteger(bufferSize) || bufferSize < 1)
      throw new OptionError('bufferSize', 'must be a positive integer');
    const overflow = options.overflow ?? DEFAULT_SUBSCRIBE_OPTIONS.overflow;
    if (overflow !== 'drop-oldest' && overflow !== 'drop-newest' && overflow !== 'fail')
      throw new OptionError('overflow', 'must be "drop-oldest", "drop-newest" or "fail"');
    const name = `pubsub:${pattern}#${this.nextSubscription++}`;
    // A lossy receiver grants unlimited credit; it hands each message on at
    // once, and the subscription's own buffer applies the policy.
    const r = this.hub.receiver<unknown>(name, { capacity: 1, overflow: 'drop-newest' });
    const sub = new Subscription<T>(pattern, r, this.hub, bufferSize, overflow, options.schema);
    this.hub.announce(PUBSUB_KIND, pattern, r.id, name);
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

  private refresh(): void {
    const next = new Map<string, Route>();
    for (const e of this.hub.lookupKind(PUBSUB_KIND)) {
      const key = `${e.node}:${e.id}`;
      const route = this.routes.get(key) ?? makeRoute(key, e);
      if (route !== undefined) next.set(key, route);
    }
    this.routes = next;
    for (const p of this.publishers) p.routesChanged();
  }
}

function makeRoute(key: string, e: DirectoryEntry): Route | undefined {
  const tokens = parseSubject(e.name, true);
  if (typeof tokens === 'string') return undefined;
  const channel = typeof e.meta === 'string' ? e.meta : `pubsub:${e.name}`;
  return {
    key,
    node: e.node,
    id: e.id,
    pattern: e.name,
    tokens,
    label: `${channel}@${e.node}`,
  };
}
