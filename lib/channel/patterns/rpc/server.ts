/**
 * RPC's serving side: one anonymous request receiver per served method,
 * announced in the directory as `('rpc', method)` with the method's kind as
 * meta, and one cached reply sender per calling node. Requests carry the
 * caller's node and reply receiver id as plain numbers (not a Sender
 * handle), so one sender per caller serves every call.
 *
 * The handler's `ctx.signal` aborts when the caller cancels, when the
 * deadline passes (ERR_SB_TIMEOUT, whichever of this node's clock and the
 * caller's cancel says so first), when the caller's node is lost
 * (ERR_SB_PEER_LOST) or when this switchboard closes (ERR_SB_CLOSED).
 * Replying never throws and never rejects unhandled, whenever the handler
 * finishes: a reply nobody can take is dropped.
 *
 * One file: serving (taking requests within `maxConcurrent`, running each
 * kind of handler, replying, cancelling) is one state machine over the
 * served methods and the calls they run.
 */
import { takeWhile } from 'rxjs';
import type { Subscription } from 'rxjs';
import { ErrorCode, OptionError, PeerLostError, SwitchboardError } from '../../../errors.js';
import type { ChannelHub } from '../../hub.js';
import type { MethodSeries } from '../../../switchboard/metrics.js';
import { Headed } from '../../envelope.js';
import { NO_HEADERS } from '../../headers.js';
import type { Headers } from '../../headers.js';
import { serveTrace, settled, traced } from '../../tracing.js';
import type { ServeTraceContext } from '../../tracing.js';
import { DEFAULT_RECEIVER_OPTIONS } from '../../receiver.js';
import type { Receiver } from '../../receiver.js';
import type { Sender, SenderOptions } from '../../sender.js';
import { Wait } from '../../waits.js';
import { ItemStream, sendStream } from './streams.js';
import type { ItemReader } from './streams.js';
import { DEFAULT_SERVE_OPTIONS, RpcKind } from './types.js';
import type { CallContext, ServeHandle, ServeOptions, StreamSource } from './types.js';
import {
  errorInfo,
  frameworkInfo,
  frameworkInfoOf,
  headOf,
  Item,
  Op,
  OP_KIND,
  Reply,
  Why,
} from './wire.js';
import type { ErrorInfo } from './wire.js';

/** The directory kind of served methods. */
export const RPC_KIND = 'rpc';
/** The directory kind of served service contracts: name, version hash and methods (contract.ts). */
export const SERVICE_KIND = 'service';

/** Requests and replies never wait on the sender's own timer: the call's deadline bounds them. */
export const CHANNEL_SENDER_OPTIONS: SenderOptions<unknown> = Object.freeze({
  timeoutMs: Number.POSITIVE_INFINITY,
  maxPending: 1 << 16,
});
export const STREAM_SENDER_OPTIONS: SenderOptions<unknown> = Object.freeze({
  timeoutMs: Number.POSITIVE_INFINITY,
  maxPending: 8,
});

/** A handler of any kind, as the server runs it. */
export type Handler = (input: unknown, ctx: CallContext) => unknown;

const NOOP = (): void => undefined;

/** How long after the caller's deadline a handler's signal aborts (ms): clocks tick in whole ms, timers are not exact. */
const DEADLINE_GRACE_MS = 3;

/** A method served on this node. */
class Served {
  handler: Handler = NOOP;
  kind: RpcKind = RpcKind.UNARY;
  /** The version hash of the service contract it is served under; undefined for a plain `serve`. */
  hash: string | undefined;
  handle: ServeHandleImpl | undefined;
  maxConcurrent: number = DEFAULT_SERVE_OPTIONS.maxConcurrent;
  streamWindow: number = DEFAULT_SERVE_OPTIONS.streamWindow;
  /** Handlers running now. */
  running = 0;
  sub: Subscription | undefined;
  /** No request is taken while `running` is at `maxConcurrent` (credit then stops too). */
  paused = false;
  resumeQueued = false;
  /** Closed by its handle: answers NO_SERVER until its running handlers finish. */
  closing = false;

  constructor(
    readonly method: string,
    readonly receiver: Receiver<unknown>,
    /** Its handler durations (stats().metrics.rpcServer). */
    readonly series: MethodSeries,
  ) {}
}

class ServeHandleImpl implements ServeHandle {
  closed = false;

  constructor(
    private readonly server: Server,
    private readonly served: Served,
    readonly method: string,
    readonly kind: RpcKind,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.unserve(this.served, this);
  }
}

/** A call this node serves; it is also the handler's context, and its deadline's wait. */
class ServerCall extends Wait implements CallContext {
  done = false;
  /** Links in the list of cancellable calls from its caller (see {@link ActiveCalls}). */
  prev: ServerCall | undefined;
  next: ServerCall | undefined;
  listed = false;
  cancelled: SwitchboardError | undefined;
  up: Receiver<unknown> | undefined;
  down: Sender<unknown> | undefined;
  /** What the handler (or its stream) threw, for its duration's `error.type`. */
  failure: unknown;
  /** The headers the request carried. */
  headers: Headers = NO_HEADERS;
  /** Its `switchboard:rpc:serve` context, when traced. */
  trace: ServeTraceContext | undefined;
  private controller: AbortController | undefined;

  constructor(
    private readonly server: Server,
    readonly served: Served,
    readonly id: number,
    readonly caller: number,
    readonly replyId: number,
    private readonly remainingMs: number,
  ) {
    super();
    this.receivedAt = performance.now();
  }

  /** The deadline in `Date.now()` time: read only when asked (one clock read per call saved). */
  get deadline(): number {
    if (this.remainingMs < 0) return Number.POSITIVE_INFINITY;
    return Math.round(Date.now() + this.remainingMs - (performance.now() - this.receivedAt));
  }

  /** When the request was taken, `performance.now()` scale: the signal's deadline counts from here. */
  private readonly receivedAt: number;

  get method(): string {
    return this.served.method;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      // Made on demand: a handler that never looks needs no controller and no deadline.
      this.controller = new AbortController();
      if (this.cancelled !== undefined) this.controller.abort(this.cancelled);
      else if (!this.done && this.remainingMs >= 0)
        // A little after the caller's own deadline (the request left it
        // before it arrived here): the caller always times out first, so a
        // handler that gives up on its signal is reported as the timeout.
        this.server.timeouts.arm(
          this,
          Math.max(1, this.receivedAt + this.remainingMs + DEADLINE_GRACE_MS - performance.now()),
          undefined,
        );
    }
    return this.controller.signal;
  }

  /** The deadline passed on this node's clock. */
  expired(): void {
    this.cancel(this.deadlineError());
  }

  aborted(): void {
    // No signal is armed on a server call.
  }

  /** The error a passed deadline aborts the handler with. */
  deadlineError(): SwitchboardError {
    return new SwitchboardError(
      ErrorCode.TIMEOUT,
      `call "${this.method}" from node ${this.caller} passed its deadline`,
    );
  }

  /** The caller gave up, or cannot hear us any more: abort the handler, stop the streams. */
  cancel(reason: SwitchboardError): void {
    if (this.done || this.cancelled !== undefined) return;
    this.cancelled = reason;
    this.server.timeouts.disarm(this);
    this.server.forgetActive(this);
    this.controller?.abort(reason);
    this.up?.fail(reason);
    this.down?.fail(reason);
  }

  /** The handler (and its streams) finished. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.served.series.record(performance.now() - this.receivedAt, this.failure ?? this.cancelled);
    this.server.timeouts.disarm(this);
    this.server.finished(this);
    if (this.up !== undefined && !this.up.closed) this.up.close();
  }
}

/** The server's view of a caller's stream: what a client-streaming or bidi handler iterates. */
class InputReader implements ItemReader {
  constructor(private readonly call: ServerCall) {}

  get node(): number {
    return this.call.caller;
  }

  vanished(): SwitchboardError {
    return (
      this.call.cancelled ??
      new PeerLostError(
        this.call.caller,
        `the request stream of "${this.call.method}" from node ${this.call.caller} ended without its end marker`,
      )
    );
  }

  ended(): void {}

  failed(): void {}
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

/** The serving half of one switchboard's RPC. */
export class Server {
  private readonly served = new Map<string, Served>();
  private readonly active: ActiveCalls[];
  private readonly replyTo: Array<Sender<unknown> | undefined>;
  private failure: SwitchboardError | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly hub: ChannelHub) {
    // Indexed by calling peer: nodes, then the clients linked to this node.
    this.active = Array.from({ length: hub.peerCount }, () => new ActiveCalls());
    this.replyTo = new Array<Sender<unknown> | undefined>(hub.peerCount);
  }

  get timeouts(): ChannelHub['timeouts'] {
    return this.hub.timeouts;
  }

  /** Methods served, calls cancellable, handlers running. */
  counts(): { served: string[]; activeCalls: number; runningHandlers: number } {
    let active = 0;
    for (const m of this.active) active += m.size;
    let running = 0;
    for (const s of this.served.values()) running += s.running;
    return {
      served: [...this.served.values()].filter((s) => s.handle !== undefined).map((s) => s.method),
      activeCalls: active,
      runningHandlers: running,
    };
  }

  serve(
    method: string,
    kind: RpcKind,
    handler: Handler,
    options: ServeOptions = {},
    hash?: string,
  ): ServeHandle {
    if (this.failure !== undefined) throw this.failure;
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
      const n = this.hub.nodes.length;
      const receiver = this.hub.receiver<unknown>(undefined, {
        window,
        capacity: window * n,
        capacityBytes: DEFAULT_RECEIVER_OPTIONS.windowBytes * n,
      });
      s = new Served(method, receiver, this.hub.metrics.server(method));
      this.served.set(method, s);
      this.take(s);
    }
    if (s.handle !== undefined) s.handle.closed = true;
    s.handler = handler;
    s.kind = kind;
    s.hash = hash;
    s.maxConcurrent = maxConcurrent;
    s.streamWindow = streamWindow;
    s.closing = false;
    const handle = new ServeHandleImpl(this, s, method, kind);
    s.handle = handle;
    this.resume(s);
    // Last: a local caller waiting for this method is dispatched from here.
    this.hub.directory.announce(RPC_KIND, method, s.receiver.id, kind);
    return handle;
  }

  unserve(s: Served, handle: ServeHandleImpl): void {
    if (s.handle !== handle) return;
    s.handle = undefined;
    s.closing = true;
    this.hub.directory.withdraw(RPC_KIND, s.method, s.receiver.id);
    // Requests waiting behind maxConcurrent are refused unrun now (their
    // callers may go elsewhere), not when the running handlers finish.
    if (s.paused) this.take(s);
    this.maybeRetire(s);
  }

  /**
   * Graceful close: stops serving every method (new requests get
   * ERR_SB_NO_SERVER), then waits until the running handlers have replied,
   * at most until `deadline` (`performance.now()` scale).
   */
  async drain(deadline: number): Promise<void> {
    for (const s of [...this.served.values()]) if (s.handle !== undefined) s.handle.close();
    while (this.counts().runningHandlers > 0) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The switchboard closed: every handler still running is aborted with `reason`. */
  shutdown(reason: SwitchboardError): void {
    if (this.failure !== undefined) return;
    this.failure = reason;
    for (const m of this.active) for (const call of m.all()) call.cancel(reason);
    for (const s of this.served.values()) {
      s.sub?.unsubscribe();
      s.receiver.close();
      if (s.handle !== undefined) s.handle.closed = true;
    }
    this.wakeIdle();
  }

  /** A caller's node was lost: its calls cannot hear us any more. */
  callerLost(node: number, error: PeerLostError): void {
    const lost = this.hub.closed
      ? new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed', { cause: error })
      : new PeerLostError(node, `caller node ${node} was lost`, { cause: error });
    for (const call of this.active[node]!.all()) call.cancel(lost);
    this.replyTo[node] = undefined;
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
    if (s.running === 0) this.wakeIdle();
  }

  // ---- taking requests ---------------------------------------------------------

  private take(s: Served): void {
    s.paused = false;
    let pausing = false;
    s.sub = s.receiver
      .observable()
      .pipe(
        // Stop taking requests (credit then stops too) once at the limit;
        // what arrives meanwhile waits in the receiver.
        takeWhile((m) => {
          if (!s.closing && headOf(m)?.head[0] !== Op.CANCEL && s.running + 1 >= s.maxConcurrent) {
            pausing = true;
            return false;
          }
          return true;
        }, true),
      )
      .subscribe({
        next: (m) => this.onRequest(s, m),
        error: NOOP,
        complete: () => {
          if (!pausing) return;
          s.paused = true;
          this.resume(s);
        },
      });
  }

  /** Takes requests again once below the limit (deferred: never from inside the receiver's delivery). */
  private resume(s: Served): void {
    if (!s.paused || s.resumeQueued) return;
    s.resumeQueued = true;
    queueMicrotask(() => {
      s.resumeQueued = false;
      if (!s.paused || s.receiver.closed || (!s.closing && s.running >= s.maxConcurrent)) return;
      this.take(s);
    });
  }

  /** A closing method goes once its handlers are done; what arrived meanwhile was answered NO_SERVER. */
  private maybeRetire(s: Served): void {
    if (!s.closing || s.running > 0) return;
    // Answer what waits in the receiver (each gets NO_SERVER), then close.
    if (s.paused) this.take(s);
    s.sub?.unsubscribe();
    s.receiver.close();
    this.served.delete(s.method);
  }

  private onRequest(s: Served, raw: unknown): void {
    const r = headOf(raw);
    if (r === undefined) return;
    const m = r.head;
    const id = m[1];
    const caller = m[2];
    if (typeof id !== 'number' || !this.isNode(caller)) return;
    const op = m[0];
    if (op === Op.CANCEL) {
      const call = this.active[caller]!.find(id);
      if (call === undefined) return;
      call.cancel(
        m[3] === Why.DEADLINE || Date.now() >= call.deadline
          ? call.deadlineError()
          : new SwitchboardError(
              ErrorCode.ABORTED,
              `call "${s.method}" cancelled by node ${caller}`,
            ),
      );
      return;
    }
    const replyId = m[3];
    const remaining = m[4];
    const kind = typeof op === 'number' ? OP_KIND[op] : undefined;
    if (kind === undefined || typeof replyId !== 'number' || typeof remaining !== 'number') return;
    const call = new ServerCall(this, s, id, caller, replyId, remaining);
    if (r.headers !== undefined) call.headers = r.headers;
    if (s.handle === undefined) {
      this.replyError(
        call,
        frameworkInfo(ErrorCode.NO_SERVER, `node ${this.hub.self} no longer serves "${s.method}"`),
      );
      return;
    }
    if (kind !== s.kind) {
      this.replyError(
        call,
        frameworkInfo(
          ErrorCode.NO_SERVER,
          `node ${this.hub.self} serves "${s.method}" as a ${s.kind} method, not ${kind}`,
        ),
      );
      return;
    }
    const want = m[6];
    if (typeof want === 'string' && want !== s.hash) {
      // A typed client built from another version of the contract: the handler does not run.
      this.replyError(
        call,
        frameworkInfo(
          ErrorCode.CONTRACT_MISMATCH,
          `node ${this.hub.self} serves "${s.method}" ${s.hash === undefined ? 'without a contract' : `under contract version ${s.hash}`}, not ${want}`,
          { hash: s.hash ?? '' },
        ),
      );
      return;
    }
    s.running++;
    let handler = s.handler;
    if (serveTrace.hasSubscribers) handler = this.tracedHandler(call, kind, handler);
    switch (op) {
      case Op.UNARY:
        return this.runUnary(call, handler, r.body);
      case Op.SERVER_STREAM:
        this.active[caller]!.add(call);
        call.down = this.downSender(call, m[5]);
        void this.runStreamOut(call, handler, r.body);
        return;
      case Op.CLIENT_STREAM:
        return this.runUnary(call, handler, this.openInput(call));
      default:
        this.active[caller]!.add(call);
        call.down = this.downSender(call, m[5]);
        void this.runStreamOut(call, handler, this.openInput(call));
        return;
    }
  }

  // ---- running handlers --------------------------------------------------------

  /**
   * `handler` run on `switchboard:rpc:serve`: start and end around its
   * synchronous part, its outcome (the reply, or the end of the stream it
   * returned) as asyncStart and asyncEnd, error first when it failed.
   */
  private tracedHandler(call: ServerCall, kind: RpcKind, handler: Handler): Handler {
    const ctx: ServeTraceContext = {
      method: call.method,
      kind,
      caller: call.caller,
      node: this.hub.self,
      headers: call.headers,
    };
    call.trace = ctx;
    if (kind === RpcKind.UNARY || kind === RpcKind.CLIENT_STREAM)
      return (input, c) => traced(serveTrace, ctx, () => handler(input, c));
    // A stream's outcome is published when it is sent (runStreamOut).
    return (input, c) => serveTrace.traceSync(() => handler(input, c), ctx);
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
    this.reply(call, Reply.OK, value);
    call.finish();
  }

  private handlerFailed(call: ServerCall, err: unknown): void {
    call.failure = err ?? 'undefined';
    this.replyError(call, errorInfo(err));
    call.finish();
  }

  private replyError(call: ServerCall, info: ErrorInfo): void {
    this.reply(call, Reply.ERROR, info);
  }

  /** Sends a reply; never throws, never leaves a rejection unhandled. */
  private reply(call: ServerCall, status: number, value: unknown): void {
    if (this.failure !== undefined || call.cancelled instanceof PeerLostError) return;
    let sender: Sender<unknown>;
    try {
      sender = this.replySender(call.caller, call.replyId);
    } catch {
      return; // the switchboard closed under the handler: nobody to tell
    }
    const sent = sender.sent;
    const promise = sender.send(new Headed([call.id, status], value));
    if (sender.sent !== sent) return;
    promise.then(undefined, (err: unknown) => {
      // A reply that cannot be carried becomes an error reply; a caller that is gone needs nothing.
      if (status === Reply.OK && isCarryError(err))
        this.replyError(call, frameworkInfoOf(err, 'the reply'));
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
  private openInput(call: ServerCall): ItemStream<unknown> {
    const w = call.served.streamWindow;
    call.up = this.hub.receiver<unknown>(undefined, { window: w, capacity: w }, 1);
    this.reply(call, Reply.ACCEPT, call.up.id);
    return new ItemStream<unknown>(call.up, new InputReader(call));
  }

  /** Runs a handler that returns a stream and sends it to the caller, as credit allows. */
  private async runStreamOut(call: ServerCall, handler: Handler, input: unknown): Promise<void> {
    const down = call.down!;
    try {
      let source: StreamSource<unknown>;
      try {
        source = (await handler(input, call)) as StreamSource<unknown>;
      } catch (err) {
        call.failure = err ?? 'undefined';
        // A synchronous throw was published already (error, then end).
        if (call.trace !== undefined && call.trace.error !== err)
          settled(serveTrace, call.trace, err, undefined);
        if (call.cancelled === undefined)
          await down.send(new Headed([Item.ERROR], errorInfo(err))).catch(NOOP);
        return;
      }
      const outcome = await sendStream(source, down, () => call.cancelled === undefined);
      if (outcome.kind !== 'done' && outcome.kind !== 'stopped') call.failure = outcome.error;
      if (call.trace !== undefined)
        settled(
          serveTrace,
          call.trace,
          outcome.kind === 'send-failed' || outcome.kind === 'source-failed'
            ? outcome.error
            : call.cancelled,
          undefined,
        );
      if (outcome.kind === 'send-failed' && call.cancelled === undefined) {
        const err = outcome.error;
        if (isCarryError(err)) {
          await down
            .send(new Headed([Item.ERROR], frameworkInfoOf(err, 'a reply stream item')))
            .catch(NOOP);
        } else {
          // The caller stopped reading or is gone.
          call.cancel(
            err instanceof SwitchboardError
              ? err
              : new SwitchboardError(ErrorCode.INTERNAL, String(err), { cause: err }),
          );
        }
      }
    } finally {
      if (!down.closed) down.close();
      call.finish();
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private isNode(n: unknown): n is number {
    return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < this.hub.peerCount;
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

export function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new OptionError(name, `must be a positive integer, got ${String(value)}`);
  return value;
}

/** An error that says a value could not travel (unencodable, or too large for the caller's node). */
function isCarryError(err: unknown): err is SwitchboardError {
  return (
    err instanceof SwitchboardError &&
    (err.code === ErrorCode.ENCODE || err.code === ErrorCode.MESSAGE_TOO_LARGE)
  );
}
