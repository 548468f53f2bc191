/**
 * The public entry point: one `Switchboard` per process. It composes the
 * cluster layer (links, rendezvous, failure detection), the channel core
 * and the patterns, and exposes exactly the application API; nothing of the
 * layers underneath is reachable from it. It lives above both folders so
 * imports keep flowing one way: channel -> switchboard -> protocol
 * (docs/guide.md, "Layers").
 *
 * Long because it is the API: each public method is a few lines of
 * delegation with the TSDoc users read.
 */
import { ClientRoleError, ErrorCode, OptionError, SwitchboardError } from './errors.js';
import { checkOptionNames } from './options.js';
import { SUBSCRIBE_OPTION_NAMES } from './channel/patterns/pubsub/subscription.js';
import { PUBLISHER_OPTION_NAMES } from './channel/patterns/pubsub/publisher.js';
import { PUSHER_OPTION_NAMES, WORKER_OPTION_NAMES } from './channel/patterns/pushpull/task.js';
import { CALL_OPTION_NAMES, SERVE_OPTION_NAMES } from './channel/patterns/rpc/types.js';
import { RECEIVER_OPTION_NAMES } from './channel/receiver.js';
import { SENDER_OPTION_NAMES } from './channel/sender.js';
import { ChannelHub } from './channel/hub.js';
import { Poster } from './channel/patterns/post/post.js';
import type { PostTarget } from './channel/patterns/post/post.js';
import { PubSub } from './channel/patterns/pubsub/pubsub.js';
import type {
  PublishOptions,
  Publisher,
  PublisherOptions,
} from './channel/patterns/pubsub/publisher.js';
import type { SubscribeOptions, Subscription } from './channel/patterns/pubsub/subscription.js';
import { PushPull } from './channel/patterns/pushpull/pushpull.js';
import type { Pusher } from './channel/patterns/pushpull/pusher.js';
import type {
  PushOptions,
  PusherOptions,
  TaskHandler,
  WorkerOptions,
} from './channel/patterns/pushpull/task.js';
import type { Worker } from './channel/patterns/pushpull/worker.js';
import { Rpc } from './channel/patterns/rpc/rpc.js';
import { serveService, serviceClient } from './channel/patterns/rpc/contract.js';
import type {
  ClientOptions,
  ServiceClient,
  ServiceContract,
  ServiceHandle,
  ServiceHandlers,
} from './channel/patterns/rpc/contract.js';
import type {
  BidiHandler,
  CallOptions,
  ClientStreamHandler,
  RpcStats,
  RpcStream,
  ServeHandle,
  ServeOptions,
  ServerStreamHandler,
  StreamCallOptions,
  StreamSource,
  UnaryHandler,
} from './channel/patterns/rpc/types.js';
import type { Receiver, ReceiverOptions, ReceiverStats } from './channel/receiver.js';
import type { PostOptions, Sender, SenderOptions } from './channel/sender.js';
import { checkHeaders } from './channel/headers.js';
import type { Delivery } from './channel/headers.js';
import { Cluster } from './switchboard/cluster.js';
import type { ClientInfo, PeerInfo, SwitchboardEvent } from './switchboard/events.js';
import type { NodeInfo } from './switchboard/nodes.js';
import { DEFAULT_CONNECT_OPTIONS, resolveConnectOptions } from './switchboard/options.js';
import type { ConnectOptions, SwitchboardOptions } from './switchboard/options.js';
import { ANONYMOUS } from './switchboard/metrics.js';
import type { Metrics, MetricsStats } from './switchboard/metrics.js';
import { renderPrometheus } from './prometheus.js';
import { RPC_KIND, SERVICE_KIND } from './channel/patterns/rpc/server.js';
import { Introspection, refuseSystemName, withoutSystemMethods } from './switchboard/introspect.js';
import type { RenderOptions } from './prometheus.js';
import type { Observable } from 'rxjs';

/** Options of {@link Switchboard.start}: the cluster's, plus the channel layer's. */
export interface StartOptions extends SwitchboardOptions {
  /**
   * Encode and decode messages even between endpoints of this process, so a
   * local receiver gets a copy exactly as a remote one would (tests).
   * Default false: a local receiver gets the very object that was sent.
   */
  readonly forceEncoding?: boolean;
  /**
   * Check values sent between endpoints of this process against the
   * encoding rule (docs/guide.md, "What a message can carry"), so that
   * code tested in one process does not fail once its endpoints are
   * apart. Default true; turn it off only for hot local paths that are
   * known to send plain data.
   */
  readonly checkLocalValues?: boolean;
}

/** Options of {@link Switchboard.connect}: the client's, plus the channel layer's. */
export interface ClientConnectOptions extends ConnectOptions {
  /** As {@link StartOptions.forceEncoding}. */
  readonly forceEncoding?: boolean;
  /** As {@link StartOptions.checkLocalValues}. */
  readonly checkLocalValues?: boolean;
}

/** The option names StartOptions adds to the cluster's. */
export const START_OPTION_NAMES: readonly string[] = ['forceEncoding', 'checkLocalValues'];

/** A snapshot of the switchboard's counters. */
export interface SwitchboardStats {
  /** This node's index; a client's is `nodes.length`. */
  readonly node: number;
  /** `member` (Switchboard.start) or `client` (Switchboard.connect). */
  readonly role: 'member' | 'client';
  readonly incarnation: string;
  readonly peers: PeerInfo[];
  /** Member: the clients linked to it (a client: none). */
  readonly clients: ClientInfo[];
  readonly receivers: ReceiverStats[];
  /** Messages dropped per channel (lossy receivers, `post()` failures, pub-sub gaps). */
  readonly drops: Record<string, number>;
  /** RPC counters (all zero before the first `serve` or `call`). */
  readonly rpc: RpcStats;
  /** Latency histograms and message counts (docs/metrics.md). */
  readonly metrics: MetricsStats;
}

const NO_RPC_STATS: RpcStats = Object.freeze({
  pendingCalls: 0,
  waitingForServer: 0,
  activeCalls: 0,
  runningHandlers: 0,
  served: [],
  calls: 0,
  failures: 0,
  lateReplies: 0,
});

/** What the repository's own specs reach below the public API. Not exported from the package. */
export interface SwitchboardInternals {
  readonly cluster: Cluster;
  readonly hub: ChannelHub;
}

const internalsOf = new WeakMap<Switchboard, SwitchboardInternals>();

/** @internal For the repository's specs of the layers below; not part of the public API. */
export function switchboardInternals(sb: Switchboard): SwitchboardInternals {
  return internalsOf.get(sb)!;
}

/**
 * One node of the cluster: start it with the node list and its own index,
 * `rendezvous()`, then make channels and use the patterns. Or a client of
 * a running cluster, outside its node list: {@link Switchboard.connect}.
 */
export class Switchboard {
  /** This node's index in the node list; a client's is `nodes.length`, which no node has. */
  readonly id: number;
  /**
   * `member`: a node of the list (`start`). `client`: attached with
   * `connect`; it calls, publishes, subscribes, pushes and owns anonymous
   * receivers, and the member-only operations throw ClientRoleError.
   */
  readonly role: 'member' | 'client';
  /** The validated node list. */
  readonly nodes: readonly NodeInfo[];
  /** This process's incarnation id (hex), new at every start. */
  readonly incarnation: string;
  /**
   * Peer up / suspect / reconnected / down / restarted, link errors,
   * authentication failures, drops, surfaced bugs; completes on close.
   */
  readonly events$: Observable<SwitchboardEvent>;
  private readonly cluster: Cluster;
  private readonly hub: ChannelHub;
  private readonly lingerMs: number;
  private rpcEngine: Rpc | undefined;
  private pubsubEngine: PubSub | undefined;
  private pushPullEngine: PushPull | undefined;
  private poster: Poster | undefined;
  private closing: Promise<void> | undefined;
  private readonly introspection: Introspection<SwitchboardStats>;

  private constructor(options: StartOptions | ClientConnectOptions, client = false) {
    this.cluster = client
      ? new Cluster(
          options as SwitchboardOptions,
          START_OPTION_NAMES,
          resolveConnectOptions(options, START_OPTION_NAMES),
        )
      : new Cluster(options as StartOptions, START_OPTION_NAMES);
    this.role = this.cluster.role;
    this.hub = new ChannelHub(this.cluster, {
      forceEncoding: options.forceEncoding === true,
      checkLocalValues: options.checkLocalValues !== false,
    });
    this.cluster.setHandler(this.hub);
    this.id = this.cluster.id;
    this.nodes = this.cluster.nodes;
    this.incarnation = this.cluster.incarnation;
    this.events$ = this.cluster.events$;
    this.lingerMs = this.cluster.lingerMs;
    internalsOf.set(this, { cluster: this.cluster, hub: this.hub });
    // The `$sb.*` system methods (lib/switchboard/introspect.ts), served from the start.
    this.introspection = new Introspection({
      id: this.id,
      incarnation: this.incarnation,
      peers: () => this.peers(),
      clients: () => this.clients(),
      stats: () => this.stats(),
      ownEntries: (kind) =>
        this.hub.directory
          .lookupKind(kind === 'rpc' ? RPC_KIND : SERVICE_KIND)
          .filter((e) => e.node === this.id),
      serve: (method, handler) => void this.rpc().serveUnary(method, handler),
    });
    // Members only: a client serves nothing in the cluster's name.
    if (this.role === 'member') this.introspection.serveAll();
  }

  /**
   * Validates `options`, binds `nodes[id]` and starts linking with every
   * peer. Resolves once listening; call `rendezvous()` to wait for the peers.
   * @throws OptionError naming the bad option (unknown names too, with the
   *   nearest known one); ListenError (ERR_SB_LISTEN) when `nodes[id]`
   *   cannot be bound
   */
  static async start(options: StartOptions): Promise<Switchboard> {
    const sb = new Switchboard(options);
    try {
      await sb.cluster.startCluster();
    } catch (err) {
      const failed = new SwitchboardError(ErrorCode.CLOSED, 'switchboard failed to start');
      sb.rpcEngine?.shutdown(failed);
      sb.hub.shutdown(failed, false);
      throw err;
    }
    return sb;
  }

  /**
   * Attaches to a running cluster as a client, without a slot in its node
   * list: dials `members` (default every node) on their listen ports and
   * resolves once one has accepted it; the others link as they answer, and
   * each reconnects as a member's links do (docs/guide.md, "Clients").
   * @throws OptionError naming the bad option; ClientConnectError
   *   (ERR_SB_CONNECT) when no member accepted it within `timeoutMs`
   *   (default 10000) or every member refused it, with each member's reason
   *   (ERR_SB_CLIENT_LIMIT: it holds its `maxClients`; ERR_SB_AUTH_FAILED:
   *   wrong secret...)
   */
  static async connect(options: ClientConnectOptions): Promise<Switchboard> {
    const sb = new Switchboard(options, true);
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_OPTIONS.timeoutMs;
    try {
      await sb.cluster.startCluster();
      await sb.cluster.firstMember(timeoutMs);
    } catch (err) {
      await sb.destroy(err instanceof Error ? err : undefined);
      throw err;
    }
    return sb;
  }

  /**
   * Resolves when every peer is linked and authenticated. Rejects with a
   * RendezvousTimeoutError naming the missing peers, whichever side was to
   * dial. A member never waits for clients; a client waits for every member
   * it dials.
   * @param options.timeoutMs default 30000
   */
  rendezvous(options?: { timeoutMs?: number }): Promise<void> {
    try {
      check(options, ['timeoutMs']);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.cluster.rendezvous(options);
  }

  /**
   * A snapshot of every peer of the node list: state, incarnation, traffic,
   * round trip. A client's peers are the members it dials; clients linked
   * to a member are in {@link clients}.
   */
  peers(): PeerInfo[] {
    return this.cluster.peers();
  }

  /** Member: the clients linked to it (id, address, state, traffic, round trip). A client: none. */
  clients(): ClientInfo[] {
    return this.cluster.clients();
  }

  // ---- channels ----------------------------------------------------------

  /**
   * A receiver on this node. Named receivers (`"jobs"`) are unique per node
   * and reachable from every node with `sender(name, { node })`.
   */
  receiver<T>(
    name: string | undefined,
    options: ReceiverOptions<T> & { readonly withHeaders: true },
  ): Receiver<Delivery<T>>;
  receiver<T>(name?: string, options?: ReceiverOptions<T>): Receiver<T>;
  receiver<T>(name?: string, options?: ReceiverOptions<T>): Receiver<T> {
    this.assertOpen();
    // No node of the list names a client: nobody could address it by name.
    if (name !== undefined) this.assertMember('receiver', 'a named receiver');
    check(options, RECEIVER_OPTION_NAMES);
    return trackReceiver(this.hub.metrics, userReceiver(this.hub.receiver<T>(name, options)), name);
  }

  /**
   * A sender to the receiver `name` on `node`. Sends made before that
   * receiver exists, or while its node is unreachable, wait (bounded by
   * `maxPending`, up to `timeoutMs`, then ERR_SB_NO_RECEIVER).
   */
  sender<T>(name: string, options: SenderOptions<T> & { readonly node: number }): Sender<T> {
    this.assertOpen();
    check(options, SENDER_TARGET_NAMES);
    const node = (options as { node?: unknown } | undefined)?.node;
    if (
      typeof node !== 'number' ||
      !Number.isInteger(node) ||
      node < 0 ||
      node >= this.nodes.length
    )
      throw new OptionError(
        'node',
        `must be a node index (0..${this.nodes.length - 1}), got ${String(node)}`,
      );
    return trackSender(
      this.hub.metrics,
      userSender(this.hub.sender<T>({ node: options.node, name }, options)),
      name,
    );
  }

  /**
   * An anonymous channel: a receiver on this node and a sender to it. The
   * sender can be sent to any node inside a message. The receiver ends when
   * every sender that connected has closed; it fails with a PeerLostError
   * when a node holding one of its senders is lost.
   */
  channel<T>(
    options: ReceiverOptions<T> & SenderOptions<T> & { readonly withHeaders: true },
  ): [Sender<T>, Receiver<Delivery<T>>];
  channel<T>(options?: ReceiverOptions<T> & SenderOptions<T>): [Sender<T>, Receiver<T>];
  channel<T>(options?: ReceiverOptions<T> & SenderOptions<T>): [Sender<T>, Receiver<T>] {
    this.assertOpen();
    check(options, CHANNEL_OPTION_NAMES);
    const r = userReceiver(this.hub.receiver<T>(undefined, options, options?.expectSenders ?? 1));
    const s = userSender(this.hub.sender<T>({ node: this.hub.handleSelf, id: r.id }, options));
    return [
      trackSender(this.hub.metrics, s, undefined),
      trackReceiver(this.hub.metrics, r, undefined),
    ];
  }

  /** A receiver of the cluster-wide MPMC channel `name`. */
  mpmcReceiver<T>(
    name: string,
    options: ReceiverOptions<T> & { readonly withHeaders: true },
  ): Receiver<Delivery<T>>;
  mpmcReceiver<T>(name: string, options?: ReceiverOptions<T>): Receiver<T>;
  mpmcReceiver<T>(name: string, options?: ReceiverOptions<T>): Receiver<T> {
    this.assertOpen();
    this.assertMember('mpmcReceiver');
    check(options, RECEIVER_OPTION_NAMES);
    return trackReceiver(
      this.hub.metrics,
      userReceiver(this.hub.mpmcReceiver<T>(name, options)),
      name,
    );
  }

  /**
   * A sender to the MPMC channel `name`: each message goes to exactly one
   * receiver (`one`, the least loaded, healthy nodes first) or to every
   * receiver (`all`). Sends wait while the channel has no receiver.
   */
  mpmcSender<T>(
    name: string,
    options: SenderOptions<T> & { readonly mode: 'one' | 'all' },
  ): Sender<T> {
    this.assertOpen();
    check(options, MPMC_SENDER_NAMES);
    return trackSender(
      this.hub.metrics,
      userSender(this.hub.mpmcSender<T>(name, options.mode, options)),
      name,
    );
  }

  // ---- RPC -----------------------------------------------------------------

  /**
   * Serves unary `method` on this node, announced to every node; serving it
   * again replaces the handler. A thrown error reaches the caller as a
   * `RemoteError` (name, message, string `code`).
   * @throws OptionError for a bad method name, handler or option; ERR_SB_CLOSED once closed.
   */
  serve<Req = unknown, Res = unknown>(
    method: string,
    handler: UnaryHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    this.assertMember('serve');
    check(options, SERVE_OPTION_NAMES);
    refuseSystemName(method, 'method');
    return this.rpc().serveUnary(method, handler, options);
  }

  /**
   * Calls unary `method` on a node that serves it (`node`, `tags`,
   * `strategy`), within `timeoutMs` (default 30 s). Rejects with RemoteError
   * (the handler threw), ERR_SB_TIMEOUT (the deadline passed, whatever the
   * handler did), ERR_SB_ABORTED, NotDeliveredError (the server's node was
   * lost first: outcome unknown), ERR_SB_NO_SERVER, ERR_SB_ENCODE,
   * ERR_SB_MESSAGE_TOO_LARGE, ERR_SB_OVERFLOW, ERR_SB_CLOSED.
   */
  call<Req = unknown, Res = unknown>(
    method: string,
    request: Req,
    options?: CallOptions,
  ): Promise<Res> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    try {
      check(options, UNARY_CALL_NAMES);
      return this.rpc().call(method, request, options) as Promise<Res>;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Serves server-streaming `method`: the handler returns a stream. */
  serveStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ServerStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    this.assertMember('serveStream');
    check(options, SERVE_OPTION_NAMES);
    refuseSystemName(method, 'method');
    return this.rpc().serveStream(method, handler, options);
  }

  /** Calls server-streaming `method`; iterate the replies. Stopping early cancels the call. */
  callStream<Req = unknown, Res = unknown>(
    method: string,
    request: Req,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    check(options, CALL_OPTION_NAMES);
    return this.rpc().callStream(method, request, options) as RpcStream<Res>;
  }

  /** Serves client-streaming `method`. */
  serveClientStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ClientStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    this.assertMember('serveClientStream');
    check(options, SERVE_OPTION_NAMES);
    refuseSystemName(method, 'method');
    return this.rpc().serveClientStream(method, handler, options);
  }

  /** Calls client-streaming `method` with a stream of requests (sent as the server's credit allows). */
  callClientStream<Req = unknown, Res = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: CallOptions,
  ): Promise<Res> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    try {
      check(options, UNARY_CALL_NAMES);
      return this.rpc().callClientStream(
        method,
        requests as StreamSource<unknown>,
        options,
      ) as Promise<Res>;
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Serves bidirectional `method`. */
  serveBidi<Req = unknown, Res = unknown>(
    method: string,
    handler: BidiHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    this.assertMember('serveBidi');
    check(options, SERVE_OPTION_NAMES);
    refuseSystemName(method, 'method');
    return this.rpc().serveBidi(method, handler, options);
  }

  /** Calls bidirectional `method`: `requests` go up as credit allows; replies come down on the stream. */
  callBidi<Req = unknown, Res = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    check(options, CALL_OPTION_NAMES);
    return this.rpc().callBidi(
      method,
      requests as StreamSource<unknown>,
      options,
    ) as RpcStream<Res>;
  }

  /**
   * Serves every method of a service contract (made with `defineService`):
   * method `m` as the RPC method `<name>.m`, with `handlers.m`, each
   * type-checked against its method's kind, request and response. With
   * schemas, a request is validated before its handler runs and a reply
   * before it leaves (a refusal is the caller's ValidationError). The
   * contract's name, methods and version hash are announced; serving a
   * contract of the same name again replaces it.
   * @throws OptionError for a missing or unknown handler or a bad option; ERR_SB_CLOSED once closed.
   */
  serveService<C extends ServiceContract>(
    contract: C,
    handlers: NoInfer<ServiceHandlers<C>>,
    options?: ServeOptions,
  ): ServiceHandle {
    this.assertMember('serveService');
    check(options, SERVE_OPTION_NAMES);
    refuseSystemName((contract as { name?: unknown } | undefined)?.name, 'contract.name');
    const handle = serveService(this.rpc(), contract, handlers, options);
    this.introspection.contractServed(contract);
    return handle;
  }

  /**
   * A typed client of a service contract: one method per contract method,
   * taking the call options of its kind, which override `options` (the
   * options of `call`: `node`, `tags`, `timeoutMs`, `strategy`...). Its
   * calls go only to nodes serving the same version of the contract; with
   * none, they fail with a ContractMismatchError (ERR_SB_CONTRACT_MISMATCH)
   * when some node serves the methods under another version, and as `call`
   * does otherwise. With schemas, the request is validated before it
   * leaves and the reply when it arrives (ValidationError).
   */
  client<C extends ServiceContract>(contract: C, options?: ClientOptions): ServiceClient<C> {
    return serviceClient(this.rpc(), contract, options) as ServiceClient<C>;
  }

  // ---- pub-sub, push-pull, fire-and-forget ------------------------------------

  /**
   * Subscribes to `pattern`: dot-separated tokens, `*` for exactly one
   * token, `>` for one or more trailing tokens (`orders.*`, `orders.>`).
   * Iterate the subscription for `{ topic, value }`. A bounded buffer
   * (`bufferSize`, default 4096) with an `overflow` policy (default
   * `drop-newest`) keeps a slow subscriber from holding anyone up; drops and
   * gaps are counted and reported.
   * @throws OptionError for an invalid pattern or option.
   */
  subscribe<T = unknown>(pattern: string, options?: SubscribeOptions<T>): Subscription<T> {
    this.assertOpen();
    check(options, SUBSCRIBE_OPTION_NAMES);
    const sub = this.pubsub().subscribe<T>(pattern, options);
    this.hub.metrics.track(
      'receive',
      pattern,
      () => sub.stats().delivered,
      // Ended, but still handing out what it buffered: not over yet.
      () => sub.closed && sub.stats().queued === 0,
    );
    return sub;
  }

  /**
   * Publishes `value` on `topic` to every matching subscription on every
   * node, in publish order per subscription. Never waits, never throws
   * because of a subscriber. Returns false when the message had to queue or
   * was dropped for some subscriber (await {@link drained} to never drop).
   * @throws OptionError for an invalid topic; ERR_SB_ENCODE for a value that cannot be carried.
   */
  publish<T = unknown>(topic: string, value: T, options?: PublishOptions): boolean {
    this.assertOpen();
    return this.pubsub().default.publish(topic, value, options);
  }

  /** Resolves once nothing `publish()` sent waits in a queue. */
  drained(): Promise<void> {
    return this.pubsub().default.drained();
  }

  /** Subscriptions matching `topic` that `publish()` reaches now (their stream is open). */
  subscribers(topic: string): number {
    return this.pubsub().default.subscribers(topic);
  }

  /** A publisher of its own (own streams, own `queueSize`). */
  publisher(options?: PublisherOptions): Publisher {
    this.assertOpen();
    check(options, PUBLISHER_OPTION_NAMES);
    return this.pubsub().publisher(options);
  }

  /**
   * A worker of queue `name`: runs `handler` on tasks pushed from any node,
   * `concurrency` at a time (default 1). A task is done when the handler
   * returns or resolves; delivery is at least once (docs/guide.md).
   */
  worker<T = unknown>(
    name: string,
    handler: TaskHandler<T>,
    options?: WorkerOptions<T>,
  ): Worker<T> {
    this.assertOpen();
    this.assertMember('worker');
    check(options, WORKER_OPTION_NAMES);
    return this.pushPull().worker<T>(name, handler, options);
  }

  /** A pusher to queue `name`, with its own options and counters. */
  pusher<T = unknown>(name: string, options?: PusherOptions<T>): Pusher<T> {
    this.assertOpen();
    check(options, PUSHER_OPTION_NAMES);
    return this.pushPull().pusher<T>(name, options);
  }

  /**
   * Pushes `task` to queue `name` (with this node's shared pusher of that
   * queue): resolves once a worker's window took it, the least-loaded
   * worker with room first.
   */
  push<T = unknown>(name: string, task: T, options?: PushOptions): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(closedError());
    return this.pushPull().push<T>(name, task, options);
  }

  /**
   * Fire-and-forget: posts `value` to the receiver `name` on `{ node }`, or
   * to the MPMC channel `name` (`{ mode: 'one' | 'all' }`). Never throws,
   * never waits; what cannot be delivered is counted in `stats().drops` and
   * reported as a `drop` event on `events$`.
   * @throws {OptionError} (`headers`) only for bad `options.headers`
   */
  post<T = unknown>(name: string, value: T, target: PostTarget, options?: PostOptions): void {
    if (options?.headers !== undefined) checkHeaders(options.headers);
    if (this.closing !== undefined) {
      this.hub.reportDrop(String(name), 1, 'cannot post: switchboard closed');
      return;
    }
    this.hub.metrics.posted(String(name));
    (this.poster ??= new Poster(this.hub)).post(name, value, target, options);
  }

  // ---- operating -------------------------------------------------------------

  /** Per-peer and per-channel counters and queue depths. */
  stats(): SwitchboardStats {
    // The `$sb.*` system methods are the library's, not the application's traffic.
    return withoutSystemMethods({
      node: this.id,
      role: this.role,
      incarnation: this.incarnation,
      peers: this.cluster.peers(),
      clients: this.cluster.clients(),
      receivers: this.hub.receiverStats(),
      drops: Object.fromEntries(this.hub.drops),
      rpc: this.rpcEngine?.stats() ?? NO_RPC_STATS,
      metrics: this.hub.metrics.snapshot(),
    });
  }

  /**
   * Every counter and histogram of {@link stats}, in the Prometheus text
   * format (default) or OpenMetrics text (`{ format: 'openmetrics' }`):
   * what a `/metrics` endpoint returns (docs/metrics.md).
   */
  metrics(options?: RenderOptions): string {
    check(options, ['format']);
    return renderPrometheus(this.stats(), options);
  }

  /**
   * Graceful shutdown, bounded by `lingerMs` in all: stop serving and let
   * running handlers and tasks finish, wait until what this node sent is
   * delivered, say GOAWAY (exchanging the last delivery reports with each
   * peer), then end every endpoint: receivers end (`done`), pending
   * operations fail with ERR_SB_CLOSED. The process can then exit by
   * itself. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown(true);
    return this.closing;
  }

  /**
   * Immediate shutdown: everything in flight fails (receivers with
   * ERR_SB_CLOSED, `err` as its cause); peers are told at once. Idempotent.
   */
  destroy(err?: Error): Promise<void> {
    this.closing ??= this.shutdown(false, err);
    return this.closing;
  }

  // ---- internals -------------------------------------------------------------

  private rpc(): Rpc {
    this.assertOpen();
    return (this.rpcEngine ??= new Rpc(this.hub));
  }

  private pubsub(): PubSub {
    return (this.pubsubEngine ??= new PubSub(this.hub));
  }

  private pushPull(): PushPull {
    return (this.pushPullEngine ??= new PushPull(this.hub));
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw closedError();
  }

  /** Member-only operations: a client serves nothing in the cluster's name. */
  private assertMember(operation: string, what?: string): void {
    if (this.role === 'client')
      throw new ClientRoleError(
        operation,
        what === undefined
          ? undefined
          : `${what} is for members of the node list; a client (Switchboard.connect) has anonymous receivers only`,
      );
  }

  private async shutdown(graceful: boolean, err?: Error): Promise<void> {
    const started = performance.now();
    const deadline = started + this.lingerMs;
    this.hub.closing = true;
    if (graceful) {
      await Promise.all([
        this.rpcEngine?.drain(deadline),
        this.pushPullEngine?.drain(deadline),
        this.pubsubEngine?.drain(deadline),
      ]);
    }
    this.hub.stopping();
    if (graceful) await this.cluster.close(Math.max(0, deadline - performance.now()));
    else await this.cluster.destroy(err);
    const reason =
      err instanceof SwitchboardError
        ? err
        : new SwitchboardError(
            ErrorCode.CLOSED,
            graceful ? 'switchboard closed' : 'switchboard destroyed',
            err === undefined ? undefined : { cause: err },
          );
    this.rpcEngine?.shutdown(reason);
    this.pushPullEngine?.shutdown(reason);
    this.pubsubEngine?.shutdown(graceful ? undefined : reason);
    this.hub.shutdown(reason, graceful);
  }
}

const SENDER_TARGET_NAMES = [...SENDER_OPTION_NAMES, 'node'];
const MPMC_SENDER_NAMES = [...SENDER_OPTION_NAMES, 'mode'];
const CHANNEL_OPTION_NAMES = [...RECEIVER_OPTION_NAMES, ...SENDER_OPTION_NAMES];
const UNARY_CALL_NAMES = CALL_OPTION_NAMES.filter((n) => n !== 'window');

/**
 * Refuses option names the API does not know (a misspelt option would
 * otherwise run with the default the user meant to change).
 * Per-message options (`send`, `next`, `push`) are not checked: they are
 * on the hot path.
 */
function check(options: object | undefined, known: readonly string[]): void {
  if (options !== undefined) checkOptionNames(options, known, '');
}

/** Endpoints the application made: headers unwrapped, operations traced. */
function userReceiver<T>(r: Receiver<T>): Receiver<T> {
  r.user = true;
  return r;
}

function userSender<T>(s: Sender<T>): Sender<T> {
  s.user = true;
  return s;
}

function closedError(): SwitchboardError {
  return new SwitchboardError(ErrorCode.CLOSED, 'switchboard is closed');
}

/** Counts what the application's receiver hands out, in `stats().metrics.consumed`. */
function trackReceiver<T>(metrics: Metrics, r: Receiver<T>, name: string | undefined): Receiver<T> {
  metrics.track(
    'receive',
    name ?? ANONYMOUS,
    () => r.stats().delivered,
    // An ended receiver still hands out what it buffered: over once that is gone.
    () => r.closed && r.queued === 0,
  );
  return r;
}

/** Counts what the application's sender sends, in `stats().metrics.sent`. */
function trackSender<T>(metrics: Metrics, s: Sender<T>, name: string | undefined): Sender<T> {
  metrics.track(
    'send',
    name ?? ANONYMOUS,
    () => s.sent,
    () => s.finished,
  );
  return s;
}
