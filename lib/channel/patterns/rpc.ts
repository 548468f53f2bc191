/**
 * RPC built on channels (DESIGN.md section 6): unary, server-streaming,
 * client-streaming and bidirectional calls, with deadlines that travel with
 * the request, cancellation, typed remote errors and load balancing over
 * the nodes that serve a method.
 *
 * Nothing here touches a socket: every message is an ordinary channel
 * message, so RPC gets the channel layer's flow control, FIFO order, replay
 * across reconnects and session-loss reporting for free.
 *
 * Channels per node (never one per unary call):
 * - one anonymous **request receiver** per served method, announced in the
 *   directory as `('rpc', method)` with the method's kind as `meta`;
 * - one anonymous **reply receiver** per calling node, shared by every call;
 * - one cached **request sender** per (method, server node) and one cached
 *   **reply sender** per caller node. Requests carry the caller's node and
 *   reply receiver id as plain numbers (not a Sender handle), so the server
 *   reuses one sender per caller instead of reviving one per request.
 *
 * A request is `[op, callId, callerNode, replyReceiverId, remainingMs,
 * payload]`, plus `downReceiverId` when replies stream; `op` gives the kind
 * and `remainingMs` is -1 without a deadline. A cancel is `[CANCEL, callId,
 * callerNode]` on the same request channel, so it never overtakes its
 * request. A reply is `[callId, status, value]` on the reply receiver.
 *
 * Streams use one anonymous channel per call and direction, so each stream
 * has its own credit window (a slow reader slows its writer and nothing
 * else). Stream messages are `[VALUE, x]`, `[END]` or `[ERROR, ...info]`:
 * an explicit end marker tells a finished stream from one whose sender
 * vanished with its node.
 *
 * Decisions worth knowing:
 * - No server yet: a call waits up to `waitForServerMs` (default 1 s) for
 *   the directory to list one, because entries travel right after a node
 *   links or serves and failing at once would race them; then
 *   ERR_SB_NO_SERVER.
 * - `ctx.deadline` is in epoch ms (`Date.now()` scale); the wire carries the
 *   time left, so clocks need not agree.
 * - A lost server fails its calls when its session ends (peer-down or
 *   peer-restarted), not when a link merely drops: a link that comes back
 *   replays both the request and the reply.
 */
import { Observable, isObservable, takeWhile } from 'rxjs';
import type { Subscription } from 'rxjs';
import {
  ErrorCode,
  NotDeliveredError,
  OptionError,
  RemoteError,
  SwitchboardError,
} from '../../errors.js';
import type { SwitchboardEvent } from '../../switchboard/cluster.js';
import { hasTags } from '../../switchboard/nodes.js';
import type { NodeInfo } from '../../switchboard/nodes.js';
import type { ChannelHub, DirectoryEntry } from '../hub.js';
import { DEFAULT_RECEIVER_OPTIONS } from '../receiver.js';
import type { Receiver } from '../receiver.js';
import type { Sender, SenderOptions } from '../sender.js';

// ---- public types ----------------------------------------------------------

/** The four shapes of call, as in RpcNet. */
export const RpcKind = {
  /** One request, one reply. */
  UNARY: 'unary',
  /** One request, a stream of replies. */
  SERVER_STREAM: 'server-stream',
  /** A stream of requests, one reply. */
  CLIENT_STREAM: 'client-stream',
  /** A stream each way, independent of each other. */
  BIDI: 'bidi',
} as const;

export type RpcKind = (typeof RpcKind)[keyof typeof RpcKind];

/**
 * How a call without `node` picks among the nodes serving its method:
 * - `least-outstanding` (default): the node with the fewest calls from this
 *   node still unsettled, ties taken in turn;
 * - `round-robin`: each eligible node in turn;
 * - `random`: uniformly at random.
 */
export type LoadBalancing = 'round-robin' | 'random' | 'least-outstanding';

/** What a handler learns about the call it serves. */
export interface CallContext {
  /** The method called. */
  readonly method: string;
  /** The calling node's index. */
  readonly caller: number;
  /**
   * When the caller gives up, in epoch milliseconds (comparable with
   * `Date.now()`); `Infinity` when the call has no deadline. The caller
   * sends the time it has left, not a clock reading, so clock skew between
   * nodes does not matter; the server adds it to its own clock when it takes
   * the request (transit time is not subtracted).
   */
  readonly deadline: number;
  /**
   * Aborted when the caller cancels (its `AbortSignal`, or it stopped
   * reading a stream), when the deadline passes, when the caller's node is
   * lost, or when this switchboard closes. `signal.reason` is a
   * {@link SwitchboardError} (ERR_SB_ABORTED, ERR_SB_TIMEOUT,
   * ERR_SB_NOT_DELIVERED, ERR_SB_CLOSED). Created on first access.
   */
  readonly signal: AbortSignal;
}

/** Anything a stream can be read from: an async iterable, an iterable, or an rxjs Observable. */
export type StreamSource<T> = AsyncIterable<T> | Iterable<T> | Observable<T>;

/** Serves a unary method: returns (or resolves to) the reply; a throw becomes the caller's {@link RemoteError}. */
export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Res | PromiseLike<Res>;

/** Serves a server-streaming method: returns the stream of replies (an async generator fits). */
export type ServerStreamHandler<Req, Res> = (
  request: Req,
  ctx: CallContext,
) => StreamSource<Res> | PromiseLike<StreamSource<Res>>;

/** Serves a client-streaming method: reads the caller's stream, returns one reply. */
export type ClientStreamHandler<Req, Res> = (
  requests: AsyncIterable<Req>,
  ctx: CallContext,
) => Res | PromiseLike<Res>;

/** Serves a bidirectional method: reads the caller's stream and returns its own. */
export type BidiHandler<Req, Res> = (
  requests: AsyncIterable<Req>,
  ctx: CallContext,
) => StreamSource<Res> | PromiseLike<StreamSource<Res>>;

/** Options of `serve*()`. */
export interface ServeOptions {
  /**
   * Calls of this method handled at once on this node. Beyond it, requests
   * wait in the method's receiver and then in the callers' senders (credit),
   * so an overloaded server slows its callers instead of queueing without
   * bound. Default 1024.
   */
  readonly maxConcurrent?: number;
  /**
   * Requests each calling node may have in flight to this method before it
   * waits for credit (the request receiver's window). While the method is
   * at `maxConcurrent`, up to this many requests per calling node wait in
   * its receiver. Fixed by the first `serve` of the method on this node.
   * Default 256.
   */
  readonly window?: number;
  /**
   * Items of a caller's stream (client-streaming and bidi) in flight to this
   * server at most: the credit window of the per-call input channel.
   * Default 64.
   */
  readonly streamWindow?: number;
}

/** The defaults of {@link ServeOptions}. */
export const DEFAULT_SERVE_OPTIONS = Object.freeze({
  maxConcurrent: 1024,
  window: 256,
  streamWindow: 64,
});

/** A served method; `close()` stops serving it. */
export interface ServeHandle {
  readonly method: string;
  readonly kind: RpcKind;
  /** True once closed, or replaced by another `serve` of the same method on this node. */
  readonly closed: boolean;
  /**
   * Stops serving: withdraws the method from the directory at once; calls
   * already running finish and reply; requests arriving meanwhile get
   * ERR_SB_NO_SERVER. A no-op once the method was served again (the new
   * handler stays). Idempotent.
   */
  close(): void;
}

/** Options of every call. */
export interface CallOptions {
  /** Call this node only (its index). Default: any node serving the method, by `strategy`. */
  readonly node?: number;
  /** Only nodes carrying every one of these tags (`nodes[i].tags`). */
  readonly tags?: readonly string[];
  /**
   * Milliseconds until the call fails with ERR_SB_TIMEOUT, for the whole call
   * (streams included). Travels with the request as the time left, so the
   * handler's `ctx.deadline` and `ctx.signal` follow it. `Infinity`: no
   * deadline. Default 30000 (DESIGN.md section 8).
   */
  readonly timeoutMs?: number;
  /** Aborts the call (ERR_SB_ABORTED here) and the handler's `ctx.signal` there. */
  readonly signal?: AbortSignal;
  /** How to pick a node when `node` is not given. Default `least-outstanding`. */
  readonly strategy?: LoadBalancing;
  /**
   * When no node serves the method yet (directory entries travel right
   * after a node links or serves), wait this many ms for one to appear
   * before failing with ERR_SB_NO_SERVER. 0 fails at once. The call's
   * deadline still applies (ERR_SB_TIMEOUT if it comes first). Default 1000.
   */
  readonly waitForServerMs?: number;
}

/** Options of calls that receive a stream (server-streaming, bidi). */
export interface StreamCallOptions extends CallOptions {
  /**
   * Replies in flight to this caller at most: the credit window of the
   * per-call reply stream, so a slow reader holds the server back. Default 64.
   */
  readonly window?: number;
}

/** The defaults of {@link CallOptions} and {@link StreamCallOptions}. */
export const DEFAULT_CALL_OPTIONS = Object.freeze({
  timeoutMs: 30_000,
  strategy: 'least-outstanding',
  waitForServerMs: 1_000,
  window: 64,
});

/** Counters of the RPC engine of one switchboard. */
export interface RpcStats {
  /** Calls made by this node not settled yet (open streams included). */
  readonly pendingCalls: number;
  /** Of those, calls waiting for a server to appear in the directory. */
  readonly waitingForServer: number;
  /** Calls this node is serving that can still be cancelled. */
  readonly activeCalls: number;
  /** Handlers running now (cancelled ones included until they return). */
  readonly runningHandlers: number;
  /** Methods this node serves. */
  readonly served: readonly string[];
  /** Calls started by this node. */
  readonly calls: number;
  /** Calls that failed (timeouts, aborts, remote errors, lost peers...). */
  readonly failures: number;
  /** Replies that arrived after their call had settled (deadline, abort, peer lost) and were dropped. */
  readonly lateReplies: number;
}

/** What the RPC engine needs from the switchboard. */
export interface RpcHost {
  readonly id: number;
  readonly nodes: readonly NodeInfo[];
  readonly hub: ChannelHub;
  readonly events$: Observable<SwitchboardEvent>;
}

// ---- wire ------------------------------------------------------------------

/** Messages on a request channel: a request (its op says its kind), or a cancel. */
const Op = { UNARY: 0, CANCEL: 1, SERVER_STREAM: 2, CLIENT_STREAM: 3, BIDI: 4 } as const;
/** Statuses of a reply. */
const Reply = { OK: 0, ERROR: 1, ACCEPT: 2 } as const;
/** Messages on a stream. */
const Item = { VALUE: 0, ERROR: 1, END: 2 } as const;
/** The request op of each kind, and back. */
const KIND_OP: Record<RpcKind, number> = {
  unary: Op.UNARY,
  'server-stream': Op.SERVER_STREAM,
  'client-stream': Op.CLIENT_STREAM,
  bidi: Op.BIDI,
};
const OP_KIND: ReadonlyArray<RpcKind | undefined> = [
  'unary',
  undefined,
  'server-stream',
  'client-stream',
  'bidi',
];

/** `[name, message, code | null, framework]`: framework errors arrive as a SwitchboardError, others as a RemoteError. */
type ErrorInfo = [string, string, string | null, 0 | 1];

const DIRECTORY_KIND = 'rpc';
/** Requests and replies never wait on the sender's own timer: the call's deadline bounds them. */
const CHANNEL_SENDER_OPTIONS: SenderOptions<unknown> = Object.freeze({
  timeoutMs: Number.POSITIVE_INFINITY,
  maxPending: 1 << 16,
});
const STREAM_SENDER_OPTIONS: SenderOptions<unknown> = Object.freeze({
  timeoutMs: Number.POSITIVE_INFINITY,
  maxPending: 8,
});
/** Replies one server node may have in flight to a caller before waiting for credit. */
const REPLY_WINDOW = 1024;
/** Items of an Observable buffered while the other side reads slowly, before ERR_SB_OVERFLOW. */
const OBSERVABLE_BUFFER = 1024;
const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true });
const NO_OPTIONS: StreamCallOptions = Object.freeze({});
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
const NOOP = (): void => undefined;

// ---- the public engine -----------------------------------------------------

/**
 * The RPC engine of one switchboard (`sb.rpc`); the switchboard's `serve*`
 * and `call*` methods delegate here. Created by the switchboard at first use.
 */
export class Rpc {
  private readonly engine: Engine;

  constructor(host: RpcHost) {
    this.engine = new Engine(host);
  }

  /**
   * Serves unary `method` on this node (replacing its current handler, of
   * any kind, if it has one). The handler's throw or rejection reaches the
   * caller as a {@link RemoteError} with its name, message and string
   * `code`.
   * @throws OptionError for a bad method name, handler or option; ERR_SB_CLOSED once closed.
   */
  serve<Req = unknown, Res = unknown>(
    method: string,
    handler: UnaryHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.engine.serve(method, RpcKind.UNARY, handler as unknown as Handler, options);
  }

  /** Serves server-streaming `method`: the handler returns the replies as a stream. */
  serveStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ServerStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.engine.serve(method, RpcKind.SERVER_STREAM, handler as unknown as Handler, options);
  }

  /** Serves client-streaming `method`: the handler reads the requests and returns one reply. */
  serveClientStream<Req = unknown, Res = unknown>(
    method: string,
    handler: ClientStreamHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.engine.serve(method, RpcKind.CLIENT_STREAM, handler as unknown as Handler, options);
  }

  /** Serves bidirectional `method`: the handler reads the requests and returns its own stream. */
  serveBidi<Req = unknown, Res = unknown>(
    method: string,
    handler: BidiHandler<Req, Res>,
    options?: ServeOptions,
  ): ServeHandle {
    return this.engine.serve(method, RpcKind.BIDI, handler as unknown as Handler, options);
  }

  /**
   * Calls unary `method` and resolves to its reply. Rejects with:
   * {@link RemoteError} (ERR_SB_REMOTE: the handler threw), ERR_SB_TIMEOUT
   * (deadline), ERR_SB_ABORTED (`signal`), {@link NotDeliveredError}
   * (ERR_SB_NOT_DELIVERED: the server's node was lost or restarted, or its
   * method closed, before replying; the outcome is unknown), ERR_SB_NO_SERVER
   * (no node serves it, or none matches `node`/`tags`, within
   * `waitForServerMs`), ERR_SB_ENCODE (the request or reply cannot be
   * encoded), ERR_SB_OVERFLOW (65536 requests already wait for the server's
   * credit), ERR_SB_CLOSED (this switchboard closed), ERR_SB_INVALID_OPTION.
   * A call whose server is merely unreachable for a moment (its link
   * reconnecting) waits: the request and the reply are replayed.
   */
  call<Res = unknown, Req = unknown>(
    method: string,
    request: Req,
    options?: CallOptions,
  ): Promise<Res> {
    return this.engine.callUnary(
      method,
      RpcKind.UNARY,
      request,
      undefined,
      options,
    ) as Promise<Res>;
  }

  /**
   * Calls server-streaming `method`. The replies arrive on the returned
   * {@link RpcStream} (async iterable, or `observable()`); the errors of
   * {@link call} surface from its iteration. Stopping the iteration early
   * (`break`) cancels the call.
   */
  callStream<Res = unknown, Req = unknown>(
    method: string,
    request: Req,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    return this.engine.callStream(
      method,
      RpcKind.SERVER_STREAM,
      request,
      undefined,
      options,
    ) as RpcStream<Res>;
  }

  /**
   * Calls client-streaming `method` with the items of `requests`, sent as
   * the server's credit allows (a slow server slows the reading of
   * `requests`), and resolves to the single reply. If `requests` throws, the
   * call rejects with that error and the handler's input stream throws it
   * as a RemoteError.
   */
  callClientStream<Res = unknown, Req = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: CallOptions,
  ): Promise<Res> {
    return this.engine.callUnary(
      method,
      RpcKind.CLIENT_STREAM,
      undefined,
      requests as StreamSource<unknown>,
      options,
    ) as Promise<Res>;
  }

  /** Calls bidirectional `method`: `requests` go up as credit allows; replies come down on the stream. */
  callBidi<Res = unknown, Req = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: StreamCallOptions,
  ): RpcStream<Res> {
    return this.engine.callStream(
      method,
      RpcKind.BIDI,
      undefined,
      requests as StreamSource<unknown>,
      options,
    ) as RpcStream<Res>;
  }

  /** A snapshot of the engine's counters (tests assert that nothing is left pending). */
  stats(): RpcStats {
    return this.engine.stats();
  }
}

/**
 * The caller's side of a streaming call: an async iterator over the replies
 * (read it once), or an Observable through {@link RpcStream.observable}.
 * Iteration rejects with the call's error (see {@link Rpc.call}); a normal
 * end of the server's stream ends it. Stopping early (`break`, `return()`)
 * cancels the call.
 */
export interface RpcStream<T> extends AsyncIterableIterator<T> {
  /**
   * Cancels the call: iteration rejects with ERR_SB_ABORTED and the
   * handler's `ctx.signal` aborts. A no-op once the stream ended or failed.
   */
  cancel(reason?: unknown): void;
  /** True once the stream ended normally or failed. */
  readonly closed: boolean;
  /** The replies as an Observable (pulled as fast as the subscriber takes them); unsubscribing cancels. */
  observable(): Observable<T>;
}

/** {@link RpcStream} over the per-call reply receiver. */
class CallStream<T> implements RpcStream<T> {
  private ended = false;
  private failure: Error | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly call: PendingCall,
    private readonly rx: Receiver<unknown>,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  /** The next reply; `done` after the server's stream ended. */
  next(): Promise<IteratorResult<T>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(DONE);
    return this.rx.next().then(this.onItem, this.onFailure);
  }

  /** Stops reading: cancels the call if it is still running. */
  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return Promise.resolve(DONE);
  }

  cancel(reason?: unknown): void {
    if (this.ended || this.failure !== undefined) return;
    this.engine.abort(this.call, reason);
  }

  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  observable(): Observable<T> {
    return new Observable<T>((subscriber) => {
      let stopped = false;
      const pull = (): void => {
        this.next().then(
          (r) => {
            if (stopped) return;
            if (r.done === true) {
              subscriber.complete();
            } else {
              subscriber.next(r.value);
              pull();
            }
          },
          (err: unknown) => {
            if (!stopped) subscriber.error(err);
          },
        );
      };
      pull();
      return () => {
        stopped = true;
        this.cancel();
      };
    });
  }

  /** The call failed: iteration rejects with `error`. */
  fail(error: Error): void {
    if (this.ended || this.failure !== undefined) return;
    this.failure = error;
    this.rx.fail(error instanceof SwitchboardError ? error : wrapLocal(error));
  }

  private readonly onItem = (r: IteratorResult<unknown>): IteratorResult<T> => {
    if (r.done === true) {
      // The server's sender went away without an end marker: its node or method is gone.
      const error =
        this.failure ??
        new NotDeliveredError(
          this.call.node,
          `the reply stream of "${this.call.method}" from node ${this.call.node} ended without its end marker`,
        );
      this.engine.fail(this.call, error);
      throw error;
    }
    const m = r.value as unknown[];
    switch (m[0]) {
      case Item.VALUE:
        return { value: m[1] as T, done: false };
      case Item.END:
        this.ended = true;
        this.engine.succeeded(this.call);
        this.rx.close();
        return DONE;
      default: {
        const error = errorFromInfo(this.call.node, m.slice(1));
        this.engine.fail(this.call, error);
        throw error;
      }
    }
  };

  private readonly onFailure = (err: unknown): never => {
    throw this.failure ?? err;
  };
}

// ---- internals: the engine --------------------------------------------------

type Handler = (input: unknown, ctx: CallContext) => unknown;

/** A method served on this node. */
class Served {
  handler: Handler = NOOP;
  kind: RpcKind = RpcKind.UNARY;
  handle: ServeHandleImpl | undefined;
  maxConcurrent: number = DEFAULT_SERVE_OPTIONS.maxConcurrent;
  streamWindow: number = DEFAULT_SERVE_OPTIONS.streamWindow;
  /** Handlers running now. */
  running = 0;
  sub: Subscription | undefined;
  /** The subscription stopped taking requests because `running` reached `maxConcurrent`. */
  paused = false;
  pausing = false;
  resumeQueued = false;
  /** Closed by its handle: answers NO_SERVER until its running handlers finish. */
  closing = false;

  constructor(
    readonly method: string,
    readonly receiver: Receiver<unknown>,
  ) {}
}

class ServeHandleImpl implements ServeHandle {
  closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly served: Served,
    readonly method: string,
    readonly kind: RpcKind,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.unserve(this.served, this);
  }
}

/** The per-method routing state of a caller. */
class Route {
  /** Directory entries, cached until the directory changes. */
  entries: DirectoryEntry[] | undefined;
  rr = 0;
  /** One request sender per server node. */
  readonly senders = new Map<number, Sender<unknown>>();
  readonly waiting = new Set<PendingCall>();
  unwatch: () => void = NOOP;

  constructor(readonly method: string) {}
}

const CallState = { OPEN: 0, DONE: 1 } as const;

/** A call made by this node, until it settles. */
class PendingCall {
  state: number = CallState.OPEN;
  /** The server's node, once picked; -1 before. */
  node = -1;
  waitTimer: NodeJS.Timeout | undefined;
  deadlineAt = Number.POSITIVE_INFINITY;
  waited = false;
  /** Links in its {@link Deadlines} list (no timer object per call). */
  list: DeadlineList | undefined;
  prev: PendingCall | undefined;
  next: PendingCall | undefined;
  sender: Sender<unknown> | undefined;
  resolve: (value: unknown) => void = NOOP;
  reject: (error: unknown) => void = NOOP;
  payload: unknown;
  /** The caller's stream (client-streaming, bidi) until the server accepts it. */
  source: StreamSource<unknown> | undefined;
  /** Our sender into the server's input stream. */
  up: Sender<unknown> | undefined;
  /** The reply stream (server-streaming, bidi). */
  stream: CallStream<unknown> | undefined;
  down: Receiver<unknown> | undefined;

  constructor(
    readonly engine: Engine,
    readonly id: number,
    readonly method: string,
    readonly kind: RpcKind,
    readonly route: Route,
    readonly options: StreamCallOptions,
    readonly timeoutMs: number,
  ) {}

  /** The caller's `signal` aborted (an EventListener object: no closure per call). */
  handleEvent(): void {
    this.engine.abort(this, this.options.signal?.reason);
  }
}

/** A call this node serves; it is also the handler's context. */
class ServerCall implements CallContext {
  readonly deadline: number;
  done = false;
  /** Links in the list of cancellable calls from its caller (see {@link ActiveCalls}). */
  prev: ServerCall | undefined;
  next: ServerCall | undefined;
  listed = false;
  cancelled: SwitchboardError | undefined;
  up: Receiver<unknown> | undefined;
  down: Sender<unknown> | undefined;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly engine: Engine,
    readonly served: Served,
    readonly id: number,
    readonly caller: number,
    readonly replyId: number,
    remainingMs: number,
  ) {
    this.deadline = remainingMs < 0 ? Number.POSITIVE_INFINITY : Date.now() + remainingMs;
  }

  get method(): string {
    return this.served.method;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      // Created on demand: a handler that never looks needs no controller and no timer.
      this.controller = new AbortController();
      if (this.cancelled !== undefined) {
        this.controller.abort(this.cancelled);
      } else if (!this.done && this.deadline !== Number.POSITIVE_INFINITY) {
        this.timer = setTimeout(
          () =>
            this.cancel(
              new SwitchboardError(
                ErrorCode.TIMEOUT,
                `call "${this.method}" from node ${this.caller} passed its deadline`,
              ),
            ),
          Math.max(0, this.deadline - Date.now()),
        );
        this.timer.unref();
      }
    }
    return this.controller.signal;
  }

  /** The caller gave up, or cannot hear us any more: abort the handler, stop the streams. */
  cancel(reason: SwitchboardError): void {
    if (this.done || this.cancelled !== undefined) return;
    this.cancelled = reason;
    clearTimeout(this.timer);
    this.engine.forgetActive(this);
    this.controller?.abort(reason);
    this.up?.fail(reason);
    this.down?.fail(reason);
  }

  /** The handler (and its streams) finished. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.engine.finished(this);
    if (this.up !== undefined && !this.up.closed) this.up.close();
  }
}

/** The server's view of a caller's stream: what the handler iterates. */
class InputStream implements AsyncIterableIterator<unknown> {
  private ended = false;

  constructor(
    private readonly call: ServerCall,
    private readonly rx: Receiver<unknown>,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<unknown> {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    if (this.ended) return Promise.resolve(DONE);
    return this.rx.next().then(this.onItem);
  }

  return(): Promise<IteratorResult<unknown>> {
    this.ended = true;
    this.rx.close();
    return Promise.resolve(DONE);
  }

  private readonly onItem = (r: IteratorResult<unknown>): IteratorResult<unknown> => {
    if (r.done === true) {
      if (this.ended) return DONE;
      throw (
        this.call.cancelled ??
        new NotDeliveredError(
          this.call.caller,
          `the request stream of "${this.call.method}" from node ${this.call.caller} ended without its end marker`,
        )
      );
    }
    const m = r.value as unknown[];
    switch (m[0]) {
      case Item.VALUE:
        return { value: m[1], done: false };
      case Item.END:
        this.ended = true;
        this.rx.close();
        return DONE;
      default:
        this.ended = true;
        this.rx.close();
        throw errorFromInfo(this.call.caller, m.slice(1));
    }
  };
}

/** Everything of the RPC engine; {@link Rpc} is its public face. */
class Engine {
  private readonly hub: ChannelHub;
  private readonly self: number;
  private readonly nodes: readonly NodeInfo[];
  private failure: SwitchboardError | undefined;
  private events: Subscription | undefined;
  // ---- caller side
  private replies: Receiver<unknown> | undefined;
  private nextId = 1;
  private readonly pending = new CallTable();
  private readonly outstanding: number[];
  private readonly routes = new Map<string, Route>();
  private readonly deadlines = new Deadlines((p) => this.timedOut(p));
  /** The options of the last request sent, reused while they fit (no object per call). */
  private sendOptions: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {};
  private callCount = 0;
  private failureCount = 0;
  private late = 0;
  // ---- server side
  private readonly served = new Map<string, Served>();
  private readonly active: ActiveCalls[];
  private readonly replyTo: Array<Sender<unknown> | undefined>;

  constructor(host: RpcHost) {
    this.hub = host.hub;
    this.self = host.id;
    this.nodes = host.nodes;
    this.outstanding = new Array<number>(host.nodes.length).fill(0);
    this.active = host.nodes.map(() => new ActiveCalls());
    this.replyTo = new Array<Sender<unknown> | undefined>(host.nodes.length);
    const sub = host.events$.subscribe({
      next: (event) => this.onEvent(event),
      complete: () => this.shutdown(closedError()),
    });
    if (this.failure === undefined) this.events = sub;
  }

  stats(): RpcStats {
    let waiting = 0;
    for (const r of this.routes.values()) waiting += r.waiting.size;
    let active = 0;
    for (const m of this.active) active += m.size;
    let running = 0;
    for (const s of this.served.values()) running += s.running;
    return {
      pendingCalls: this.pending.size,
      waitingForServer: waiting,
      activeCalls: active,
      runningHandlers: running,
      served: [...this.served.values()].filter((s) => s.handle !== undefined).map((s) => s.method),
      calls: this.callCount,
      failures: this.failureCount,
      lateReplies: this.late,
    };
  }

  // ---- serving -------------------------------------------------------------

  serve(method: string, kind: RpcKind, handler: Handler, options: ServeOptions = {}): ServeHandle {
    if (this.failure !== undefined) throw closedError();
    checkMethod(method);
    if (typeof handler !== 'function') throw new OptionError('handler', 'must be a function');
    const maxConcurrent = positiveInt(
      options.maxConcurrent ?? DEFAULT_SERVE_OPTIONS.maxConcurrent,
      'maxConcurrent',
    );
    const streamWindow = positiveInt(
      options.streamWindow ?? DEFAULT_SERVE_OPTIONS.streamWindow,
      'streamWindow',
    );
    let s = this.served.get(method);
    if (s === undefined) {
      const window = positiveInt(options.window ?? DEFAULT_SERVE_OPTIONS.window, 'window');
      // Room for a full window from every node: credit held by an idle caller
      // must never starve another (a receiver refills only as it consumes).
      const n = this.nodes.length;
      const receiver = this.hub.receiver<unknown>(undefined, {
        window,
        capacity: window * n,
        capacityBytes: DEFAULT_RECEIVER_OPTIONS.windowBytes * n,
      });
      s = new Served(method, receiver);
      this.served.set(method, s);
      this.subscribe(s);
    }
    if (s.handle !== undefined) s.handle.closed = true;
    s.handler = handler;
    s.kind = kind;
    s.maxConcurrent = maxConcurrent;
    s.streamWindow = streamWindow;
    s.closing = false;
    const handle = new ServeHandleImpl(this, s, method, kind);
    s.handle = handle;
    this.resume(s);
    // Last: a local caller waiting for this method is dispatched from here.
    this.hub.announce(DIRECTORY_KIND, method, s.receiver.id, kind);
    return handle;
  }

  unserve(s: Served, handle: ServeHandleImpl): void {
    if (s.handle !== handle) return;
    s.handle = undefined;
    s.closing = true;
    this.hub.withdraw(DIRECTORY_KIND, s.method, s.receiver.id);
    this.maybeRetire(s);
  }

  /** A closing method goes once its handlers are done; what arrived meanwhile was answered NO_SERVER. */
  private maybeRetire(s: Served): void {
    if (!s.closing || s.running > 0) return;
    if (s.paused) {
      // Drain what waits in the receiver (each gets NO_SERVER), then close.
      s.paused = false;
      this.subscribe(s);
    }
    s.sub?.unsubscribe();
    s.receiver.close();
    this.served.delete(s.method);
  }

  private subscribe(s: Served): void {
    s.pausing = false;
    s.sub = s.receiver
      .observable()
      .pipe(
        // Stop taking requests (credit then stops too) once the limit is reached.
        takeWhile((m) => {
          if (!s.closing && (m as unknown[])[0] !== Op.CANCEL && s.running + 1 >= s.maxConcurrent) {
            s.pausing = true;
            return false;
          }
          return true;
        }, true),
      )
      .subscribe({
        next: (m) => this.onRequest(s, m),
        complete: () => {
          if (s.pausing) {
            s.paused = true;
            this.resume(s);
          }
        },
      });
  }

  /** Takes requests again once below the limit (deferred: never from inside the receiver's delivery). */
  private resume(s: Served): void {
    if (!s.paused || s.resumeQueued) return;
    s.resumeQueued = true;
    queueMicrotask(() => {
      s.resumeQueued = false;
      if (!s.paused || s.receiver.closed || s.running >= s.maxConcurrent) return;
      s.paused = false;
      this.subscribe(s);
    });
  }

  private onRequest(s: Served, raw: unknown): void {
    if (!Array.isArray(raw)) return;
    const m = raw as unknown[];
    const id = m[1];
    const caller = m[2];
    if (typeof id !== 'number' || !this.isNode(caller)) return;
    const op = m[0];
    if (op === Op.CANCEL) {
      this.active[caller]!.find(id)?.cancel(
        new SwitchboardError(ErrorCode.ABORTED, `call "${s.method}" cancelled by node ${caller}`),
      );
      return;
    }
    const replyId = m[3];
    const remaining = m[4];
    const kind = typeof op === 'number' ? OP_KIND[op] : undefined;
    if (kind === undefined || typeof replyId !== 'number' || typeof remaining !== 'number') return;
    const call = new ServerCall(this, s, id, caller, replyId, remaining);
    if (s.handle === undefined) {
      this.replyError(
        call,
        frameworkInfo(ErrorCode.NO_SERVER, `node ${this.self} no longer serves "${s.method}"`),
      );
      return;
    }
    if (kind !== s.kind) {
      this.replyError(
        call,
        frameworkInfo(
          ErrorCode.NO_SERVER,
          `node ${this.self} serves "${s.method}" as a ${s.kind} method, not ${kind}`,
        ),
      );
      return;
    }
    s.running++;
    const handler = s.handler;
    switch (op) {
      case Op.UNARY:
        return this.runUnary(call, handler, m[5]);
      case Op.SERVER_STREAM:
        this.active[caller]!.add(call);
        call.down = this.downSender(call, m[6]);
        void this.runStreamOut(call, handler, m[5]);
        return;
      case Op.CLIENT_STREAM:
        this.openInput(call);
        return this.runUnary(call, handler, new InputStream(call, call.up!));
      default:
        this.active[caller]!.add(call);
        call.down = this.downSender(call, m[6]);
        this.openInput(call);
        void this.runStreamOut(call, handler, new InputStream(call, call.up!));
        return;
    }
  }

  private runUnary(call: ServerCall, handler: Handler, input: unknown): void {
    let result: unknown;
    try {
      result = handler(input, call);
    } catch (err) {
      this.handlerFailed(call, err);
      return;
    }
    if (isThenable(result)) {
      // Still running: from now on a cancel can reach it.
      if (!call.done && call.cancelled === undefined) this.active[call.caller]!.add(call);
      result.then(
        (value) => this.handlerDone(call, value),
        (err: unknown) => this.handlerFailed(call, err),
      );
    } else {
      this.handlerDone(call, result);
    }
  }

  // A reply made after the caller gave up is still sent (one message; the
  // caller counts it in `lateReplies` and drops it): only the handler knows
  // whether its work was done, and it learns of the cancel from ctx.signal.
  private handlerDone(call: ServerCall, value: unknown): void {
    this.reply(call, [call.id, Reply.OK, value]);
    call.finish();
  }

  private handlerFailed(call: ServerCall, err: unknown): void {
    this.replyError(call, errorInfo(err));
    call.finish();
  }

  private replyError(call: ServerCall, info: ErrorInfo): void {
    this.reply(call, [call.id, Reply.ERROR, info]);
  }

  private reply(call: ServerCall, msg: unknown[]): void {
    const sender = this.replySender(call.caller, call.replyId);
    const sent = sender.sent;
    const promise = sender.send(msg);
    if (sender.sent !== sent) return;
    promise.then(undefined, (err: unknown) => {
      // A reply that cannot be encoded becomes an error reply; a caller that is gone needs nothing.
      if (msg[1] === Reply.OK && isCode(err, ErrorCode.ENCODE))
        this.replyError(call, frameworkInfo(ErrorCode.ENCODE, (err as Error).message));
    });
  }

  private replySender(node: number, replyId: number): Sender<unknown> {
    const s = this.replyTo[node];
    if (s !== undefined && !s.closed && s.target.id === replyId) return s;
    if (s !== undefined && !s.closed) s.close();
    const fresh = this.hub.sender<unknown>({ node, id: replyId }, CHANNEL_SENDER_OPTIONS);
    this.replyTo[node] = fresh;
    return fresh;
  }

  private downSender(call: ServerCall, id: unknown): Sender<unknown> {
    return this.hub.sender<unknown>(
      { node: call.caller, id: typeof id === 'number' ? id : 0 },
      STREAM_SENDER_OPTIONS,
    );
  }

  /** Creates the handler's input channel and tells the caller where to send. */
  private openInput(call: ServerCall): void {
    const w = call.served.streamWindow;
    call.up = this.hub.receiver<unknown>(undefined, { window: w, capacity: w }, 1);
    this.reply(call, [call.id, Reply.ACCEPT, call.up.id]);
  }

  /** Runs a handler that returns a stream and pumps it to the caller, as credit allows. */
  private async runStreamOut(call: ServerCall, handler: Handler, input: unknown): Promise<void> {
    const down = call.down!;
    let sending = false;
    try {
      const source = (await handler(input, call)) as StreamSource<unknown>;
      for await (const item of iterableOf(source)) {
        if (call.cancelled !== undefined) break;
        sending = true;
        await down.send([Item.VALUE, item]);
        sending = false;
      }
      if (call.cancelled === undefined) {
        sending = true;
        await down.send([Item.END]);
      }
    } catch (err) {
      if (call.cancelled === undefined) {
        if (!sending) {
          // The handler or its stream threw: the caller's iteration throws it.
          await down.send([Item.ERROR, ...errorInfo(err)]).catch(NOOP);
        } else if (isCode(err, ErrorCode.ENCODE)) {
          await down
            .send([Item.ERROR, ...frameworkInfo(ErrorCode.ENCODE, (err as Error).message)])
            .catch(NOOP);
        } else {
          // The caller stopped reading or is gone.
          call.cancel(asSwitchboardError(err));
        }
      }
    } finally {
      if (!down.closed) down.close();
      call.finish();
    }
  }

  forgetActive(call: ServerCall): void {
    this.active[call.caller]!.remove(call);
  }

  finished(call: ServerCall): void {
    this.forgetActive(call);
    const s = call.served;
    s.running--;
    if (s.closing) this.maybeRetire(s);
    else if (s.paused) this.resume(s);
  }

  // ---- calling -------------------------------------------------------------

  callUnary(
    method: string,
    kind: RpcKind,
    request: unknown,
    source: StreamSource<unknown> | undefined,
    options: CallOptions = NO_OPTIONS,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const p = this.begin(method, kind, options);
      p.resolve = resolve;
      p.reject = reject;
      p.payload = request;
      p.source = source;
      this.dispatch(p);
    });
  }

  callStream(
    method: string,
    kind: RpcKind,
    request: unknown,
    source: StreamSource<unknown> | undefined,
    options: StreamCallOptions = NO_OPTIONS,
  ): RpcStream<unknown> {
    const window = positiveInt(options.window ?? DEFAULT_CALL_OPTIONS.window, 'window');
    if (this.failure !== undefined) throw closedError();
    const down = this.hub.receiver<unknown>(undefined, { window, capacity: window }, 1);
    let p: PendingCall;
    try {
      p = this.begin(method, kind, options);
    } catch (err) {
      down.close();
      throw err;
    }
    p.down = down;
    p.stream = new CallStream<unknown>(this, p, p.down);
    p.payload = request;
    p.source = source;
    this.dispatch(p);
    return p.stream;
  }

  /** Validates and registers a call; it is pending from here on. */
  private begin(method: string, kind: RpcKind, options: StreamCallOptions): PendingCall {
    if (this.failure !== undefined) throw closedError();
    checkMethod(method);
    const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_OPTIONS.timeoutMs;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
      throw new OptionError('timeoutMs', 'must be a positive number of ms (or Infinity)');
    if (options.node !== undefined && !this.isNode(options.node))
      throw new OptionError(
        'node',
        `must be a node index (0..${this.nodes.length - 1}), got ${String(options.node)}`,
      );
    const strategy = options.strategy;
    if (
      strategy !== undefined &&
      strategy !== 'least-outstanding' &&
      strategy !== 'round-robin' &&
      strategy !== 'random'
    )
      throw new OptionError(
        'strategy',
        `must be least-outstanding, round-robin or random, got ${String(strategy)}`,
      );
    const signal = options.signal;
    if (signal?.aborted === true) throw abortedError(method, signal.reason);
    const p = new PendingCall(
      this,
      this.nextId,
      method,
      kind,
      this.route(method),
      options,
      timeoutMs,
    );
    // Ids wrap well before CBOR needs 9 bytes; a call 2^31 calls old is long gone.
    this.nextId = this.nextId >= 0x7fff_ffff ? 1 : this.nextId + 1;
    this.callCount++;
    this.pending.add(p);
    if (timeoutMs !== Number.POSITIVE_INFINITY) this.deadlines.add(p, timeoutMs);
    signal?.addEventListener('abort', p, { once: true });
    return p;
  }

  /** Picks a server and sends the request, or waits for one to appear. */
  private dispatch(p: PendingCall): void {
    if (p.state !== CallState.OPEN) return;
    const route = p.route;
    const e = this.pick(route, p);
    if (e === undefined) {
      this.noServer(p);
      return;
    }
    if (p.waitTimer !== undefined) {
      clearTimeout(p.waitTimer);
      p.waitTimer = undefined;
    }
    route.waiting.delete(p);
    p.node = e.node;
    this.outstanding[e.node]!++;
    const sender = this.requestSender(route, e);
    p.sender = sender;
    let remaining = -1;
    if (p.deadlineAt !== Number.POSITIVE_INFINITY) {
      remaining = p.waited ? Math.max(1, Math.ceil(p.deadlineAt - performance.now())) : p.timeoutMs;
    }
    const payload = p.payload;
    p.payload = undefined;
    const replyId = this.replyReceiver().id;
    const op = KIND_OP[p.kind];
    const msg =
      p.down === undefined
        ? [op, p.id, this.self, replyId, remaining, payload]
        : [op, p.id, this.self, replyId, remaining, payload, p.down.id];
    // A request still waiting for credit when the deadline passes is withdrawn, never sent late.
    const signal = p.options.signal;
    let options = this.sendOptions;
    if (
      options.signal !== signal ||
      options.timeoutMs !== (remaining < 0 ? undefined : remaining)
    ) {
      options = this.sendOptions =
        remaining < 0
          ? signal === undefined
            ? {}
            : { signal }
          : signal === undefined
            ? { timeoutMs: remaining }
            : { timeoutMs: remaining, signal };
    }
    const sent = sender.sent;
    const promise = sender.send(msg, options);
    // Sent at once (the common case) means resolved: no handler, no allocation.
    if (sender.sent === sent) promise.then(undefined, (err: unknown) => this.sendFailed(p, err));
  }

  private pick(route: Route, p: PendingCall): DirectoryEntry | undefined {
    const entries = (route.entries ??= this.hub.lookup(DIRECTORY_KIND, route.method));
    const n = entries.length;
    if (n === 0) return undefined;
    const o = p.options;
    if (n === 1) {
      const e = entries[0]!;
      return this.eligible(e, p.kind, o) ? e : undefined;
    }
    switch (o.strategy ?? DEFAULT_CALL_OPTIONS.strategy) {
      case 'least-outstanding': {
        // The fewest unsettled calls from this node; ties taken in turn.
        let least = Number.POSITIVE_INFINITY;
        let ties = 0;
        for (const e of entries) {
          if (!this.eligible(e, p.kind, o)) continue;
          const n = this.outstanding[e.node]!;
          if (n < least) {
            least = n;
            ties = 1;
          } else if (n === least) {
            ties++;
          }
        }
        if (ties === 0) return undefined;
        let k = route.rr++ % ties;
        for (const e of entries)
          if (this.eligible(e, p.kind, o) && this.outstanding[e.node] === least && k-- === 0)
            return e;
        return undefined;
      }
      case 'round-robin':
      case 'random': {
        let count = 0;
        for (const e of entries) if (this.eligible(e, p.kind, o)) count++;
        if (count === 0) return undefined;
        let k = o.strategy === 'random' ? Math.floor(Math.random() * count) : route.rr++ % count;
        for (const e of entries) if (this.eligible(e, p.kind, o) && k-- === 0) return e;
        return undefined;
      }
    }
  }

  private eligible(e: DirectoryEntry, kind: RpcKind, o: CallOptions): boolean {
    return (
      e.meta === kind &&
      (o.node === undefined || e.node === o.node) &&
      (o.tags === undefined || hasTags(this.nodes[e.node]!, o.tags))
    );
  }

  private noServer(p: PendingCall): void {
    const route = p.route;
    if (route.waiting.has(p)) return;
    const wait = p.options.waitForServerMs ?? DEFAULT_CALL_OPTIONS.waitForServerMs;
    if (!(wait > 0)) {
      this.fail(p, this.noServerError(p));
      return;
    }
    p.waited = true;
    route.waiting.add(p);
    if (wait !== Number.POSITIVE_INFINITY)
      p.waitTimer = setTimeout(() => this.fail(p, this.noServerError(p)), wait);
  }

  private noServerError(p: PendingCall): SwitchboardError {
    const entries = this.hub.lookup(DIRECTORY_KIND, p.method);
    const o = p.options;
    const wanted = [
      `a ${p.kind} method`,
      ...(o.node === undefined ? [] : [`on node ${o.node}`]),
      ...(o.tags === undefined ? [] : [`tagged ${o.tags.join(', ')}`]),
    ].join(' ');
    const served =
      entries.length === 0
        ? 'no node serves it'
        : `served by ${entries.map((e) => `node ${e.node} (${String(e.meta)})`).join(', ')}`;
    return new SwitchboardError(
      ErrorCode.NO_SERVER,
      `no server for "${p.method}" (${wanted}): ${served}`,
    );
  }

  private route(method: string): Route {
    let r = this.routes.get(method);
    if (r === undefined) {
      const route = new Route(method);
      route.unwatch = this.hub.watch(DIRECTORY_KIND, method, () => {
        route.entries = undefined;
        // Deferred: the directory changes from inside the hub's own handlers.
        if (route.waiting.size > 0)
          queueMicrotask(() => {
            for (const p of [...route.waiting]) this.dispatch(p);
          });
      });
      this.routes.set(method, route);
      r = route;
    }
    return r;
  }

  private requestSender(route: Route, e: DirectoryEntry): Sender<unknown> {
    let s = route.senders.get(e.node);
    if (s === undefined || s.closed || s.target.id !== e.id) {
      if (s !== undefined && !s.closed) s.close();
      s = this.hub.sender<unknown>({ node: e.node, id: e.id }, CHANNEL_SENDER_OPTIONS);
      // Requests a closing server never took come back here: fail their calls, not later.
      s.errors$.subscribe((err) => this.undelivered(err));
      route.senders.set(e.node, s);
    }
    return s;
  }

  private replyReceiver(): Receiver<unknown> {
    if (this.replies !== undefined) return this.replies;
    // Replies are taken as they arrive, so capacity is only a credit budget:
    // a full window for every server node (see `serve`).
    const n = this.nodes.length;
    const r = this.hub.receiver<unknown>(undefined, {
      window: REPLY_WINDOW,
      capacity: REPLY_WINDOW * n,
      capacityBytes: DEFAULT_RECEIVER_OPTIONS.windowBytes * n,
    });
    r.observable().subscribe({
      next: (m) => this.onReply(m),
      complete: () => this.shutdown(closedError()),
    });
    this.replies = r;
    return r;
  }

  private onReply(raw: unknown): void {
    if (!Array.isArray(raw)) return;
    const m = raw as unknown[];
    const p = this.pending.get(m[0] as number);
    if (p === undefined) {
      this.late++;
      return;
    }
    switch (m[1]) {
      case Reply.OK:
        if (p.stream !== undefined) return;
        if (!this.settle(p)) return;
        this.stopUp(p);
        p.resolve(m[2]);
        return;
      case Reply.ERROR:
        this.fail(p, errorFromInfo(p.node, m[2]));
        return;
      case Reply.ACCEPT:
        this.accepted(p, m[2]);
        return;
      default:
        return;
    }
  }

  /** The server opened its input channel: send our stream into it. */
  private accepted(p: PendingCall, upId: unknown): void {
    const source = p.source;
    if (source === undefined || p.up !== undefined || typeof upId !== 'number') return;
    p.source = undefined;
    const up = this.hub.sender<unknown>({ node: p.node, id: upId }, STREAM_SENDER_OPTIONS);
    p.up = up;
    void this.pumpUp(p, up, source);
  }

  private async pumpUp(
    p: PendingCall,
    up: Sender<unknown>,
    source: StreamSource<unknown>,
  ): Promise<void> {
    let sending = false;
    try {
      for await (const item of iterableOf(source)) {
        if (p.state !== CallState.OPEN) break;
        sending = true;
        await up.send([Item.VALUE, item]);
        sending = false;
      }
      if (p.state === CallState.OPEN) {
        sending = true;
        await up.send([Item.END]);
      }
    } catch (err) {
      if (p.state !== CallState.OPEN) return;
      if (!sending) {
        // Our own stream threw: the server's input throws it too, and the call fails with it.
        up.send([Item.ERROR, ...errorInfo(err)]).catch(NOOP);
        this.fail(p, err instanceof Error ? err : new Error(String(err)));
      } else if (isCode(err, ErrorCode.ENCODE)) {
        this.fail(p, err as Error);
        this.sendCancel(p);
      }
      // Otherwise the server stopped reading: its reply (or a peer event) settles the call.
    } finally {
      if (!up.closed) up.close();
    }
  }

  /** The server's stream ended normally (end marker). */
  succeeded(p: PendingCall): void {
    if (this.settle(p)) this.stopUp(p);
  }

  timedOut(p: PendingCall): void {
    if (p.state !== CallState.OPEN) return;
    const where = p.node < 0 ? '' : ` on node ${p.node}`;
    this.fail(
      p,
      new SwitchboardError(
        ErrorCode.TIMEOUT,
        `call "${p.method}"${where} timed out after ${p.timeoutMs} ms`,
      ),
    );
    this.sendCancel(p);
  }

  abort(p: PendingCall, reason: unknown): void {
    if (p.state !== CallState.OPEN) return;
    this.fail(p, abortedError(p.method, reason));
    this.sendCancel(p);
  }

  sendFailed(p: PendingCall, err: unknown): void {
    if (p.state !== CallState.OPEN) return;
    if (isCode(err, ErrorCode.TIMEOUT)) {
      // Still waiting for credit at the deadline: the same timeout as any other.
      this.timedOut(p);
    } else if (isCode(err, ErrorCode.NO_RECEIVER)) {
      this.fail(
        p,
        new SwitchboardError(ErrorCode.NO_SERVER, `node ${p.node} stopped serving "${p.method}"`, {
          cause: err,
        }),
      );
    } else {
      this.fail(p, err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Requests in flight when their server's receiver closed or its node was lost. */
  private undelivered(err: SwitchboardError): void {
    const messages = (err as { messages?: unknown }).messages;
    if (!Array.isArray(messages)) return;
    for (const m of messages as unknown[]) {
      if (!Array.isArray(m) || m[0] === Op.CANCEL) continue;
      const p = this.pending.get(m[1] as number);
      if (p === undefined) continue;
      this.fail(
        p,
        new NotDeliveredError(
          p.node,
          `call "${p.method}" to node ${p.node}: request not known to be delivered (${err.message})`,
          { cause: err },
        ),
      );
    }
  }

  private sendCancel(p: PendingCall): void {
    const s = p.sender;
    if (s === undefined || s.closed || p.node < 0) return;
    s.send([Op.CANCEL, p.id, this.self]).catch(NOOP);
  }

  /** Ends a call with `error`, however it is waiting. */
  fail(p: PendingCall, error: Error): void {
    if (!this.settle(p)) return;
    this.failureCount++;
    this.stopUp(p);
    if (p.stream !== undefined) p.stream.fail(error);
    else p.reject(error);
  }

  /** Forgets a call; false if it had settled already. */
  private settle(p: PendingCall): boolean {
    if (p.state !== CallState.OPEN) return false;
    p.state = CallState.DONE;
    this.pending.remove(p);
    this.deadlines.remove(p);
    if (p.waitTimer !== undefined) {
      clearTimeout(p.waitTimer);
      p.route.waiting.delete(p);
    }
    p.options.signal?.removeEventListener('abort', p);
    if (p.node >= 0) this.outstanding[p.node]!--;
    p.payload = undefined;
    p.source = undefined;
    return true;
  }

  private stopUp(p: PendingCall): void {
    const up = p.up;
    if (up !== undefined && !up.closed)
      up.fail(new SwitchboardError(ErrorCode.CLOSED, `call "${p.method}" is over`));
  }

  // ---- lifecycle -----------------------------------------------------------

  private onEvent(event: SwitchboardEvent): void {
    if (event.type === 'peer-down') this.peerLost(event.node, event.error);
    else if (event.type === 'peer-restarted') this.peerLost(event.node, undefined);
  }

  /** A peer's session ended: its calls cannot complete, and its callers cannot hear us. */
  private peerLost(node: number, cause: SwitchboardError | undefined): void {
    for (const p of this.pending.all()) {
      if (p.node !== node) continue;
      this.fail(
        p,
        new NotDeliveredError(
          node,
          `node ${node} was lost during call "${p.method}"; its outcome is unknown`,
          cause === undefined ? undefined : { cause },
        ),
      );
    }
    const lost = new NotDeliveredError(node, `caller node ${node} was lost`, { cause });
    for (const call of this.active[node]!.all()) call.cancel(lost);
    this.replyTo[node] = undefined;
  }

  /** The switchboard closed: every call fails, every handler is aborted. */
  private shutdown(reason: SwitchboardError): void {
    if (this.failure !== undefined) return;
    this.failure = reason;
    this.events?.unsubscribe();
    for (const p of this.pending.all()) this.fail(p, reason);
    this.deadlines.clear();
    for (const m of this.active) for (const call of m.all()) call.cancel(reason);
    for (const s of this.served.values()) {
      s.sub?.unsubscribe();
      s.receiver.close();
      if (s.handle !== undefined) s.handle.closed = true;
    }
    for (const r of this.routes.values()) r.unwatch();
    this.replies?.close();
  }

  private isNode(n: unknown): n is number {
    return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < this.nodes.length;
  }
}

/**
 * The pending calls of this node by id. Ids are handed out in sequence, so
 * a power-of-two array indexed by the id's low bits holds nearly all of
 * them; a call still pending when its slot comes round again (a long
 * stream among many short calls) moves aside to a Map. Unlike a Map alone,
 * adding and removing allocates nothing and never rehashes (V8 shrinks a
 * Map as it empties, which a burst of replies does every round trip).
 */
class CallTable {
  private slots: Array<PendingCall | undefined> = new Array<PendingCall | undefined>(64);
  private mask = 63;
  private readonly aside = new Map<number, PendingCall>();
  size = 0;

  add(p: PendingCall): void {
    if (this.size * 2 >= this.slots.length) this.grow();
    this.size++;
    const i = p.id & this.mask;
    if (this.slots[i] === undefined) this.slots[i] = p;
    else this.aside.set(p.id, p);
  }

  get(id: number): PendingCall | undefined {
    const p = this.slots[id & this.mask];
    if (p !== undefined && p.id === id) return p;
    return this.aside.size === 0 ? undefined : this.aside.get(id);
  }

  remove(p: PendingCall): void {
    const i = p.id & this.mask;
    if (this.slots[i] === p) this.slots[i] = undefined;
    else if (!this.aside.delete(p.id)) return;
    this.size--;
  }

  /** A snapshot of every pending call. */
  all(): PendingCall[] {
    const out: PendingCall[] = [];
    for (const p of this.slots) if (p !== undefined) out.push(p);
    for (const p of this.aside.values()) out.push(p);
    return out;
  }

  private grow(): void {
    const all = this.all();
    this.slots = new Array<PendingCall | undefined>(this.slots.length * 2);
    this.mask = this.slots.length - 1;
    this.aside.clear();
    this.size = 0;
    for (const p of all) this.add(p);
  }
}

/**
 * The calls from one caller node that a CANCEL can still reach, in a list
 * linked through the calls (no allocation, no hashing per call). A cancel
 * walks it: cancels are rare and the list is at most `maxConcurrent` long.
 */
class ActiveCalls {
  private head: ServerCall | undefined;
  size = 0;

  add(call: ServerCall): void {
    if (call.listed) return;
    call.listed = true;
    call.prev = undefined;
    call.next = this.head;
    if (this.head !== undefined) this.head.prev = call;
    this.head = call;
    this.size++;
  }

  remove(call: ServerCall): void {
    if (!call.listed) return;
    call.listed = false;
    if (call.prev === undefined) this.head = call.next;
    else call.prev.next = call.next;
    if (call.next !== undefined) call.next.prev = call.prev;
    call.prev = call.next = undefined;
    this.size--;
  }

  find(id: number): ServerCall | undefined {
    for (let c = this.head; c !== undefined; c = c.next) if (c.id === id) return c;
    return undefined;
  }

  all(): ServerCall[] {
    const out: ServerCall[] = [];
    for (let c = this.head; c !== undefined; c = c.next) out.push(c);
    return out;
  }
}

/** One FIFO of calls sharing a timeout value: their deadlines come in order. */
interface DeadlineList {
  head: PendingCall | undefined;
  tail: PendingCall | undefined;
}

/**
 * The deadlines of pending calls, without a timer per call: calls sharing a
 * timeout value form a FIFO (so it is sorted), linked through the calls
 * themselves, and one timer is armed for the earliest head. Adding and
 * removing a call allocates nothing and touches no timer in the usual case
 * (every call with the same timeout, and at least one pending).
 */
class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly expired: (p: PendingCall) => void) {}

  add(p: PendingCall, timeoutMs: number): void {
    const now = performance.now();
    p.deadlineAt = now + timeoutMs;
    let l = this.lists.get(timeoutMs);
    if (l === undefined) this.lists.set(timeoutMs, (l = { head: undefined, tail: undefined }));
    p.list = l;
    p.prev = l.tail;
    p.next = undefined;
    if (l.tail === undefined) l.head = p;
    else l.tail.next = p;
    l.tail = p;
    // The timer keeps the process alive only while calls are pending.
    if (this.count++ === 0) this.timer?.ref();
    if (p.deadlineAt < this.timerAt) this.arm(p.deadlineAt, now);
  }

  remove(p: PendingCall): void {
    const l = p.list;
    if (l === undefined) return;
    if (p.prev === undefined) l.head = p.next;
    else p.prev.next = p.next;
    if (p.next === undefined) l.tail = p.prev;
    else p.next.prev = p.prev;
    p.list = p.prev = p.next = undefined;
    if (--this.count === 0) this.timer?.unref();
  }

  /** Stops the timer (the engine is shutting down). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number, now: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - now)));
    if (this.count === 0) this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    // Timers may run a fraction of a millisecond early by this clock: allow for it.
    const now = performance.now() + 1;
    let next = Number.POSITIVE_INFINITY;
    for (const l of this.lists.values()) {
      while (l.head !== undefined && l.head.deadlineAt <= now) {
        const p = l.head;
        this.remove(p);
        this.expired(p);
      }
      if (l.head !== undefined && l.head.deadlineAt < next) next = l.head.deadlineAt;
    }
    if (next !== Number.POSITIVE_INFINITY && next < this.timerAt) this.arm(next, performance.now());
  };
}

// ---- helpers ----------------------------------------------------------------

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof SwitchboardError && err.code === code;
}

function checkMethod(method: unknown): void {
  if (typeof method !== 'string' || method.length === 0)
    throw new OptionError('method', 'must be a non-empty string');
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new OptionError(name, `must be a positive integer, got ${String(value)}`);
  return value;
}

function closedError(): SwitchboardError {
  return new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed');
}

function abortedError(method: string, reason: unknown): SwitchboardError {
  return new SwitchboardError(ErrorCode.ABORTED, `call "${method}" aborted`, { cause: reason });
}

function asSwitchboardError(err: unknown): SwitchboardError {
  return err instanceof SwitchboardError ? err : wrapLocal(err);
}

function wrapLocal(err: unknown): SwitchboardError {
  return new SwitchboardError(ErrorCode.INTERNAL, String(err), { cause: err });
}

/** What a thrown value looks like on the wire: name, message and a string `code` if it has one. */
function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return [err.name, err.message, typeof code === 'string' ? code : null, 0];
  }
  return ['Error', String(err), null, 0];
}

function frameworkInfo(code: ErrorCode, message: string): ErrorInfo {
  return ['SwitchboardError', message, code, 1];
}

/** Rebuilds an error sent by `node`: a RemoteError, or the library's own error when the framework raised it. */
function errorFromInfo(node: number, raw: unknown): SwitchboardError {
  const info = Array.isArray(raw) ? (raw as unknown[]) : [];
  const name = typeof info[0] === 'string' ? info[0] : 'Error';
  const message = typeof info[1] === 'string' ? info[1] : 'remote error';
  const code = typeof info[2] === 'string' ? info[2] : undefined;
  if (info[3] === 1 && code !== undefined && ERROR_CODES.has(code))
    return new SwitchboardError(code as ErrorCode, `node ${node}: ${message}`);
  return new RemoteError(node, name, message, code);
}

/** Something `for await` can read: Observables are adapted with a bounded buffer. */
function iterableOf<T>(source: StreamSource<T>): AsyncIterable<T> | Iterable<T> {
  if (isObservable(source)) return observableIterable(source);
  if (
    source !== null &&
    typeof source === 'object' &&
    (Symbol.asyncIterator in source || Symbol.iterator in source)
  )
    return source;
  throw new SwitchboardError(
    ErrorCode.INVALID_OPTION,
    'a stream must be an AsyncIterable, an Iterable or an Observable',
  );
}

/**
 * An Observable read as an async iterable. Observables cannot be slowed
 * down, so items wait in a buffer of {@link OBSERVABLE_BUFFER}; when the
 * reader falls further behind, the stream fails with ERR_SB_OVERFLOW.
 */
function observableIterable<T>(source: Observable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const buffer: T[] = [];
      let head = 0;
      let finished = false;
      let failure: unknown;
      let waiter:
        { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
      let sub: Subscription | undefined;
      const settle = (): void => {
        const w = waiter;
        if (w === undefined) return;
        if (head < buffer.length) {
          waiter = undefined;
          const value = buffer[head++]!;
          if (head === buffer.length) buffer.length = head = 0;
          w.resolve({ value, done: false });
        } else if (failure !== undefined) {
          waiter = undefined;
          w.reject(failure);
        } else if (finished) {
          waiter = undefined;
          w.resolve(DONE);
        }
      };
      const start = (): void => {
        sub = source.subscribe({
          next: (v) => {
            if (failure !== undefined) return;
            if (buffer.length - head >= OBSERVABLE_BUFFER) {
              failure = new SwitchboardError(
                ErrorCode.OVERFLOW,
                `an Observable stream ran ${OBSERVABLE_BUFFER} items ahead of its reader`,
              );
              sub?.unsubscribe();
            } else {
              buffer.push(v);
            }
            settle();
          },
          error: (e: unknown) => {
            failure = e;
            settle();
          },
          complete: () => {
            finished = true;
            settle();
          },
        });
        if (failure !== undefined) sub.unsubscribe();
      };
      return {
        next: () =>
          new Promise<IteratorResult<T>>((resolve, reject) => {
            waiter = { resolve, reject };
            if (sub === undefined) start();
            settle();
          }),
        return: () => {
          sub?.unsubscribe();
          finished = true;
          return Promise.resolve(DONE);
        },
      };
    },
  };
}
