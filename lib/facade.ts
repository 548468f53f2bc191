import { ErrorCode, SwitchboardError } from './errors.js';
import { ChannelHub } from './channel/hub.js';
import { Rpc } from './channel/patterns/rpc.js';
import type {
  BidiHandler,
  CallOptions,
  ClientStreamHandler,
  RpcStream,
  ServeHandle,
  ServeOptions,
  ServerStreamHandler,
  StreamCallOptions,
  StreamSource,
  UnaryHandler,
} from './channel/patterns/rpc.js';
import { Poster } from './channel/patterns/post.js';
import type { PostTarget } from './channel/patterns/post.js';
import { PubSub } from './channel/patterns/pubsub.js';
import type {
  Publisher,
  PublisherOptions,
  SubscribeOptions,
  Subscription,
} from './channel/patterns/pubsub.js';
import { PushPull } from './channel/patterns/pushpull.js';
import type {
  PushOptions,
  Pusher,
  PusherOptions,
  TaskHandler,
  Worker,
  WorkerOptions,
} from './channel/patterns/pushpull.js';
import type { Receiver, ReceiverOptions, ReceiverStats } from './channel/receiver.js';
import type { Sender, SenderOptions } from './channel/sender.js';
import { Cluster } from './switchboard/cluster.js';
import type { PeerInfo } from './switchboard/cluster.js';
import type { SwitchboardOptions } from './switchboard/options.js';

/** Options of {@link Switchboard.start}: the cluster's, plus the channel layer's. */
export interface StartOptions extends SwitchboardOptions {
  /**
   * Encode and decode messages even between endpoints of this process, so a
   * local receiver gets a copy exactly as a remote one would (tests).
   * Default false: a local receiver gets the very object that was sent.
   */
  readonly forceEncoding?: boolean;
}

/** A snapshot of the switchboard's counters. */
export interface SwitchboardStats {
  readonly node: number;
  readonly incarnation: string;
  readonly peers: PeerInfo[];
  readonly receivers: ReceiverStats[];
  /** Messages dropped per channel (lossy receivers, `post()` failures). */
  readonly drops: Record<string, number>;
}

/**
 * The public entry point: one per process. It composes the cluster layer
 * (links, rendezvous, failure detection) with the channel layer and the
 * patterns. It lives above both folders so imports keep flowing one way:
 * channel -> switchboard -> protocol.
 */
export class Switchboard extends Cluster {
  /** The channel layer (endpoints, streams, directory); used by the patterns. */
  readonly hub: ChannelHub;

  protected constructor(options: StartOptions) {
    super(options, ['forceEncoding']);
    this.hub = new ChannelHub(this, { forceEncoding: options.forceEncoding === true });
    this.setHandler(this.hub);
  }

  /**
   * Validates `options`, binds `nodes[id]` and starts linking with every
   * peer. Resolves once listening; call `rendezvous()` to wait for the peers.
   * @throws OptionError naming the bad option; a listen error (EADDRINUSE...)
   */
  static async start(options: StartOptions): Promise<Switchboard> {
    const sb = new Switchboard(options);
    await sb.startCluster();
    return sb;
  }

  /**
   * A receiver on this node. Named receivers (`"jobs"`) are unique per node
   * and reachable from every node with `sender(name, { node })`.
   */
  receiver<T>(name?: string, options?: ReceiverOptions<T>): Receiver<T> {
    return this.hub.receiver<T>(name, options);
  }

  /**
   * A sender to the receiver `name` on `node`. Sends made before that
   * receiver exists, or while its node is unreachable, wait (bounded by
   * `maxPending`, up to `timeoutMs`).
   */
  sender<T>(name: string, options: SenderOptions<T> & { readonly node: number }): Sender<T> {
    return this.hub.sender<T>({ node: options.node, name }, options);
  }

  /**
   * An anonymous channel: a receiver on this node and a sender to it. The
   * sender can be sent to any node inside a message. The receiver ends when
   * every sender that connected has closed.
   */
  channel<T>(options?: ReceiverOptions<T> & SenderOptions<T>): [Sender<T>, Receiver<T>] {
    const r = this.hub.receiver<T>(undefined, options, options?.expectSenders ?? 1);
    const s = this.hub.sender<T>({ node: this.id, id: r.id }, options);
    return [s, r];
  }

  /** A receiver of the cluster-wide MPMC channel `name`. */
  mpmcReceiver<T>(name: string, options?: ReceiverOptions<T>): Receiver<T> {
    return this.hub.mpmcReceiver<T>(name, options);
  }

  /**
   * A sender to the MPMC channel `name`: each message goes to exactly one
   * receiver (`one`, the least loaded) or to every receiver (`all`). Sends
   * wait while the channel has no receiver.
   */
  mpmcSender<T>(
    name: string,
    options: SenderOptions<T> & { readonly mode: 'one' | 'all' },
  ): Sender<T> {
    return this.hub.mpmcSender<T>(name, options.mode, options);
  }

  // ---- RPC (lib/channel/patterns/rpc.ts) ----

  private rpcEngine: Rpc | undefined;

  /** The RPC engine (created at first use): every `serve*`/`call*` below, and its `stats()`. */
  get rpc(): Rpc {
    return (this.rpcEngine ??= new Rpc(this));
  }

  /**
   * Serves unary `method` on this node, announced to every node; serving it
   * again replaces the handler. A thrown error reaches the caller as a
   * `RemoteError` (name, message, string `code`). See {@link Rpc.serve}.
   */
  serve<Req = unknown, Res = unknown>(
    method: string,
    handler: UnaryHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.rpc.serve(method, handler, options);
  }

  /**
   * Calls unary `method` on a node that serves it (`node`, `tags`,
   * `strategy`), within `timeoutMs` (default 30 s). See {@link Rpc.call}
   * for the errors.
   */
  call<Res = unknown, Req = unknown>(
    method: string,
    request: Req,
    options?: CallOptions,
  ): Promise<Res> {
    return this.rpc.call<Res, Req>(method, request, options);
  }

  /** Serves server-streaming `method`: the handler returns a stream. See {@link Rpc.serveStream}. */
  serveStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ServerStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.rpc.serveStream(method, handler, options);
  }

  /** Calls server-streaming `method`; iterate the replies. See {@link Rpc.callStream}. */
  callStream<Res = unknown, Req = unknown>(
    method: string,
    request: Req,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    return this.rpc.callStream<Res, Req>(method, request, options);
  }

  /** Serves client-streaming `method`. See {@link Rpc.serveClientStream}. */
  serveClientStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ClientStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.rpc.serveClientStream(method, handler, options);
  }

  /** Calls client-streaming `method` with a stream of requests. See {@link Rpc.callClientStream}. */
  callClientStream<Res = unknown, Req = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: CallOptions,
  ): Promise<Res> {
    return this.rpc.callClientStream<Res, Req>(method, requests, options);
  }

  /** Serves bidirectional `method`. See {@link Rpc.serveBidi}. */
  serveBidi<Req = unknown, Res = unknown>(
    method: string,
    handler: BidiHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.rpc.serveBidi(method, handler, options);
  }

  /** Calls bidirectional `method`. See {@link Rpc.callBidi}. */
  callBidi<Res = unknown, Req = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    return this.rpc.callBidi<Res, Req>(method, requests, options);
  }

  // ---- pub-sub, push-pull, fire-and-forget (lib/channel/patterns/) ----

  private pubsubEngine: PubSub | undefined;
  private pushPullEngine: PushPull | undefined;
  private poster: Poster | undefined;

  /** Pub-sub on this node (created at first use): subscriptions and publishers. */
  get pubsub(): PubSub {
    return (this.pubsubEngine ??= new PubSub(this.hub));
  }

  /** Push-pull on this node (created at first use): workers and pushers. */
  get pushPull(): PushPull {
    return (this.pushPullEngine ??= new PushPull(this.hub, this.events$));
  }

  /**
   * Subscribes to `pattern`: dot-separated tokens, `*` for exactly one
   * token, `>` for one or more trailing tokens (`orders.*`, `orders.>`).
   * Iterate the subscription for `{ topic, value }`. A bounded buffer
   * (`bufferSize`, default 4096) with an `overflow` policy (default
   * `drop-newest`) keeps a slow subscriber from holding anyone up; drops are
   * counted and reported as `drop` events. See {@link PubSub.subscribe}.
   * @throws OptionError for an invalid pattern or option.
   */
  subscribe<T = unknown>(pattern: string, options?: SubscribeOptions<T>): Subscription<T> {
    return this.pubsub.subscribe<T>(pattern, options);
  }

  /**
   * Publishes `value` on `topic` to every matching subscription on every
   * node, in publish order per subscription. Never waits, never throws
   * because of a subscriber. Returns false when the message had to queue or
   * was dropped for some subscriber (await {@link drained} to never drop).
   * @throws OptionError for an invalid topic; ERR_SB_ENCODE for a value that cannot be encoded.
   */
  publish<T = unknown>(topic: string, value: T): boolean {
    return this.pubsub.default.publish(topic, value);
  }

  /** Resolves once nothing `publish()` sent waits in a queue. See {@link Publisher.drained}. */
  drained(): Promise<void> {
    return this.pubsub.default.drained();
  }

  /** Subscriptions matching `topic` that `publish()` reaches now (their stream is open). */
  subscribers(topic: string): number {
    return this.pubsub.default.subscribers(topic);
  }

  /** A publisher of its own (own streams, own `queueSize`). */
  publisher(options?: PublisherOptions): Publisher {
    return this.pubsub.publisher(options);
  }

  /**
   * A worker of queue `name`: runs `handler` on tasks pushed from any node,
   * `concurrency` at a time (default 1). A task is done when the handler
   * returns or resolves. See {@link Worker} and the at-least-once contract
   * in lib/channel/patterns/pushpull.ts.
   */
  worker<T = unknown>(
    name: string,
    handler: TaskHandler<T>,
    options?: WorkerOptions<T>,
  ): Worker<T> {
    return this.pushPull.worker<T>(name, handler, options);
  }

  /** A pusher to queue `name`, with its own options and counters. See {@link Pusher}. */
  pusher<T = unknown>(name: string, options?: PusherOptions<T>): Pusher<T> {
    return this.pushPull.pusher<T>(name, options);
  }

  /**
   * Pushes `task` to queue `name` (with this node's shared pusher of that
   * queue): resolves once a worker's window took it, the least-loaded
   * worker with room first. See {@link Pusher.push} for the errors.
   */
  push<T = unknown>(name: string, task: T, options?: PushOptions): Promise<void> {
    return this.pushPull.push<T>(name, task, options);
  }

  /**
   * Fire-and-forget: posts `value` to the receiver `name` on `{ node }`, or
   * to the MPMC channel `name` (`{ mode: 'one' | 'all' }`). Never throws,
   * never waits; what cannot be delivered is counted in `stats().drops` and
   * reported as a `drop` event on `events$`.
   */
  post<T = unknown>(name: string, value: T, target: PostTarget): void {
    (this.poster ??= new Poster(this.hub)).post(name, value, target);
  }

  /** Per-peer and per-channel counters and queue depths. */
  stats(): SwitchboardStats {
    return {
      node: this.id,
      incarnation: this.incarnation,
      peers: this.peers(),
      receivers: this.hub.receiverStats(),
      drops: Object.fromEntries(this.hub.drops),
    };
  }

  override async close(): Promise<void> {
    await super.close();
    this.hub.shutdown(new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed'));
  }

  override async destroy(err?: Error): Promise<void> {
    await super.destroy(err);
    this.hub.shutdown(
      err instanceof SwitchboardError
        ? err
        : new SwitchboardError(ErrorCode.CLOSED, 'switchboard destroyed', { cause: err }),
    );
  }
}
