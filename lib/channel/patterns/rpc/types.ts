/**
 * The public types of RPC (docs/api.md, "RPC"): the kinds of call, the
 * handler shapes, the options and their defaults, and the counters.
 */
import type { Observable } from 'rxjs';
import type { Headers } from '../../headers.js';

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
   * {@link SwitchboardError}: ERR_SB_TIMEOUT (the deadline passed, whether
   * this node's clock or the caller's cancel said so first),
   * ERR_SB_ABORTED (the caller cancelled), ERR_SB_PEER_LOST (the caller's
   * node was lost), ERR_SB_CLOSED (this switchboard closed). Created on
   * first access.
   */
  readonly signal: AbortSignal;
  /**
   * The headers the caller sent with the call (`CallOptions.headers`,
   * `traceparent` and `tracestate` among them when present); an empty
   * frozen object when none. A call the handler makes does not inherit
   * them: pass them on in its own `headers` (docs/observability.md).
   */
  readonly headers: Headers;
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
   * deadline. Default 30000 (docs/guide.md section 2, "RPC").
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
  /**
   * Headers sent with the request (docs/api.md, "Headers"): the handler
   * sees them on `ctx.headers`. Counted in the request's size.
   */
  readonly headers?: Headers;
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

/** The option names of each kind of options, for the unknown-name check. */
export const CALL_OPTION_NAMES: readonly string[] = [
  'node',
  'tags',
  'timeoutMs',
  'signal',
  'strategy',
  'waitForServerMs',
  'window',
  'headers',
];
export const SERVE_OPTION_NAMES: readonly string[] = ['maxConcurrent', 'window', 'streamWindow'];

/**
 * The caller's side of a streaming call: an async iterator over the replies
 * (read it once), or an Observable through {@link RpcStream.observable}.
 * Iteration rejects with the call's error (see `Switchboard.call`); a
 * normal end of the server's stream ends it. Stopping early (`break`,
 * `return()`) cancels the call.
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
