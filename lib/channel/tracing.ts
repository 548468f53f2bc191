/**
 * The diagnostics_channel TracingChannels the library publishes on
 * (docs/observability.md): one per operation, with a context object per
 * operation that subscribers read and, on the sending side, add headers to
 * (an APM agent injects `traceparent` there on `start`). Node's own
 * TracingChannel semantics: `start` and `end` around the synchronous part,
 * `error` when it throws or its outcome is a failure, `asyncStart` and
 * `asyncEnd` when the outcome of an asynchronous operation is known.
 *
 * Nothing here runs unless someone subscribed: every call site checks
 * `hasSubscribers` before it builds a context, so the library costs the
 * same as without tracing when nobody listens.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import type { TracingChannel } from 'node:diagnostics_channel';
import type { Headers } from './headers.js';

/** Base of every context: what Node's TracingChannel adds, and the headers. */
export interface TraceContext {
  /** Set when the operation failed (before the `error` event). */
  error?: unknown;
  /** Set when the operation succeeded (unary calls and handlers: the reply). */
  result?: unknown;
}

/** `switchboard:rpc:call`: a call made by this node. */
export interface CallTraceContext extends TraceContext {
  readonly method: string;
  readonly kind: string;
  /** The server's node: the `node` option until one is picked, then the picked node; undefined before either. */
  node: number | undefined;
  /** The headers the request carries: add to them on `start` (they are read after it). */
  readonly headers: Record<string, string>;
}

/** `switchboard:rpc:serve`: a handler run on this node. */
export interface ServeTraceContext extends TraceContext {
  readonly method: string;
  readonly kind: string;
  /** The calling node. */
  readonly caller: number;
  /** This node. */
  readonly node: number;
  /** The headers the request carried (frozen). */
  readonly headers: Headers;
}

/** `switchboard:channel:send`: a `send()`, `trySend()` or `post()` on a sender made by the application. */
export interface SendTraceContext extends TraceContext {
  /** The channel's name (`#<id>` for an anonymous one). */
  readonly channel: string;
  /** The receiver's node; undefined for an MPMC sender. */
  readonly node: number | undefined;
  /** `send`, `trySend` or `post`. */
  readonly operation: 'send' | 'trySend' | 'post';
  /** The headers the message carries: add to them on `start`. */
  readonly headers: Record<string, string>;
}

/** `switchboard:channel:receive`: a message arriving at a receiver made by the application. */
export interface ReceiveTraceContext extends TraceContext {
  readonly channel: string;
  /** The sending node. */
  readonly node: number;
  /** The headers it carried (frozen). */
  readonly headers: Headers;
}

/** `switchboard:pubsub:publish`: a `publish()`. */
export interface PublishTraceContext extends TraceContext {
  readonly topic: string;
  /** The headers the publication carries: add to them on `start`. */
  readonly headers: Record<string, string>;
}

/** `switchboard:pushpull:push`: a task pushed by this node. */
export interface PushTraceContext extends TraceContext {
  readonly queue: string;
  /** The headers the task carries: add to them on `start`. */
  readonly headers: Record<string, string>;
}

/** `switchboard:pushpull:task`: a task handler run on this node. */
export interface TaskTraceContext extends TraceContext {
  readonly queue: string;
  readonly id: number;
  /** The pushing node. */
  readonly from: number;
  readonly attempt: number;
  /** The headers the task carried (frozen). */
  readonly headers: Headers;
}

/** The names of the channels, as `tracingChannel(name)` takes them. */
export const TRACING_CHANNELS = Object.freeze({
  call: 'switchboard:rpc:call',
  serve: 'switchboard:rpc:serve',
  send: 'switchboard:channel:send',
  receive: 'switchboard:channel:receive',
  publish: 'switchboard:pubsub:publish',
  push: 'switchboard:pushpull:push',
  task: 'switchboard:pushpull:task',
} as const);

export const callTrace: TracingChannel<unknown, CallTraceContext> = tracingChannel(
  TRACING_CHANNELS.call,
);
export const serveTrace: TracingChannel<unknown, ServeTraceContext> = tracingChannel(
  TRACING_CHANNELS.serve,
);
export const sendTrace: TracingChannel<unknown, SendTraceContext> = tracingChannel(
  TRACING_CHANNELS.send,
);
export const receiveTrace: TracingChannel<unknown, ReceiveTraceContext> = tracingChannel(
  TRACING_CHANNELS.receive,
);
export const publishTrace: TracingChannel<unknown, PublishTraceContext> = tracingChannel(
  TRACING_CHANNELS.publish,
);
export const pushTrace: TracingChannel<unknown, PushTraceContext> = tracingChannel(
  TRACING_CHANNELS.push,
);
export const taskTrace: TracingChannel<unknown, TaskTraceContext> = tracingChannel(
  TRACING_CHANNELS.task,
);

/**
 * The `start` events of the per-message channels: send and receive check
 * only whether `start` has subscribers (one getter, not five, per
 * message), so they publish when `start` is subscribed, as
 * `tracingChannel(name).subscribe({ start, ... })` does (docs/observability.md).
 */
export const sendStart = sendTrace.start;
export const receiveStart = receiveTrace.start;

/** A copy of `headers` the subscribers of `start` may add to (empty for anything but an object). */
export function mutableHeaders(headers: unknown): Record<string, string> {
  return isObject(headers) ? { ...(headers as Record<string, string>) } : {};
}

/**
 * What a traced operation sends as its headers: the context's (the
 * caller's and what subscribers added), or `given` itself when it is not
 * an object, so that the operation's own check refuses it as untraced.
 */
export function tracedHeaders(given: unknown, ctx: { readonly headers: Headers }): unknown {
  return given === undefined || isObject(given) ? ctx.headers : given;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Runs `fn` as one traced operation: `start`, `fn`, `end`, and when `fn`
 * returned a thenable, `asyncStart` and `asyncEnd` once it settles (`error`
 * first if it rejects). A throw publishes `error` and is rethrown. A
 * thenable comes back chained (as Node's `tracePromise` does), so a
 * rejection nobody handles is still reported as unhandled.
 */
export function traced<C extends TraceContext, R>(
  channel: TracingChannel<unknown, C>,
  ctx: C,
  fn: () => R,
): R {
  const result = channel.traceSync(fn, ctx);
  if (isThenable(result)) {
    delete ctx.result;
    return result.then(
      (value) => {
        settled(channel, ctx, undefined, value);
        return value;
      },
      (err: unknown) => {
        settled(channel, ctx, err ?? new Error('rejected'), undefined);
        throw err;
      },
    ) as R;
  }
  return result;
}

/** The outcome of a traced operation is known: `error` (when it failed), `asyncStart`, `asyncEnd`. */
export function settled<C extends TraceContext>(
  channel: TracingChannel<unknown, C>,
  ctx: C,
  error: unknown,
  result: unknown,
): void {
  if (error !== undefined) {
    ctx.error = error;
    channel.error.publish(ctx);
  } else if (result !== undefined) {
    ctx.result = result;
  }
  channel.asyncStart.publish(ctx);
  channel.asyncEnd.publish(ctx);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}
