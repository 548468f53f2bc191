/**
 * RPC's calling side: correlation of calls and replies, deadlines that
 * travel, cancellation, and the choice of a server through the core's
 * picker (healthy nodes first). One anonymous reply receiver per node is
 * shared by every call; one request sender is cached per (method, server).
 *
 * A call's outcome is decided here once: its reply, ERR_SB_TIMEOUT when
 * the deadline passed first (a reply arriving after the deadline, of
 * whatever kind, still makes it a timeout: the handler may have failed
 * *because* of the deadline), ERR_SB_ABORTED, or a NotDeliveredError when
 * its server's node was lost before replying (the outcome is unknown).
 *
 * One file: the call's life (picking, sending, the deadline, the reply or
 * the stream, the cancel, the peer's loss) is one state machine over one
 * table of pending calls.
 */
import type { PeerLostError } from '../../../errors.js';
import type { Observable } from 'rxjs';
import {
  ContractMismatchError,
  ErrorCode,
  NotDeliveredError,
  OptionError,
  SwitchboardError,
} from '../../../errors.js';
import type { ContractServer } from '../../../errors.js';
import type { MethodSeries } from '../../../switchboard/metrics.js';
import { hasTags } from '../../../switchboard/nodes.js';
import type { DirectoryEntry } from '../../directory.js';
import { Headed } from '../../envelope.js';
import type { HeadHeaders } from '../../envelope.js';
import { checkHeaders } from '../../headers.js';
import { callTrace, mutableHeaders, settled, traced, tracedHeaders } from '../../tracing.js';
import type { CallTraceContext } from '../../tracing.js';
import type { ChannelHub } from '../../hub.js';
import type { PickStrategy } from '../../picker.js';
import { DEFAULT_RECEIVER_OPTIONS } from '../../receiver.js';
import type { Receiver } from '../../receiver.js';
import type { Sender } from '../../sender.js';
import { abortError, checkTimeout, Wait } from '../../waits.js';
import {
  CHANNEL_SENDER_OPTIONS,
  positiveInt,
  RPC_KIND,
  SERVICE_KIND,
  STREAM_SENDER_OPTIONS,
} from './server.js';
import { ItemStream, sendStream } from './streams.js';
import type { ItemReader } from './streams.js';
import { DEFAULT_CALL_OPTIONS } from './types.js';
import type { CallOptions, RpcKind, RpcStream, StreamCallOptions, StreamSource } from './types.js';
import { errorFromInfo, headOf, KIND_OP, Op, Reply, Why } from './wire.js';

/** Replies one server node may have in flight to a caller before waiting for credit. */
const REPLY_WINDOW = 1024;
const NO_OPTIONS: StreamCallOptions = Object.freeze({});
const NOOP = (): void => undefined;
const STRATEGY: Record<string, PickStrategy> = {
  'least-outstanding': 'least-loaded',
  'round-robin': 'round-robin',
  random: 'random',
};

/** The service contract a typed client's call was made with (lib/channel/patterns/rpc/contract.ts). */
export interface ContractRef {
  readonly service: string;
  readonly hash: string;
}

/** What the directory says of one service: the version hash each node serves it under. */
class ServiceView {
  /** Hash by node, cached until the directory changes. */
  hashes: Map<number, string> | undefined;
  unwatch: () => void = NOOP;
}

/** The per-method routing state of a caller. */
class Route {
  /** Directory entries, cached until the directory changes. */
  entries: DirectoryEntry[] | undefined;
  /** One request sender per server node. */
  readonly senders = new Map<number, Sender<unknown>>();
  readonly waiting = new Set<PendingCall>();
  unwatch: () => void = NOOP;

  constructor(
    readonly method: string,
    /** Its latency histograms (stats().metrics.rpcClient). */
    readonly series: MethodSeries,
  ) {}
}

/** The wait for a server to appear in the directory (rare: only while none serves). */
class ServerWait extends Wait {
  constructor(private readonly call: PendingCall) {
    super();
  }

  expired(): void {
    this.call.caller.noServerYet(this.call);
  }

  aborted(): void {}
}

const OPEN = 0;
const SETTLED = 1;

/** A call made by this node, until it settles; its deadline and signal are its wait. */
class PendingCall extends Wait {
  state = OPEN;
  /**
   * When the call began (`performance.now()`), for its duration in
   * stats().metrics: the clock read that armed its deadline, when it has one.
   */
  startedAt = 0;
  /** The server's node, once picked; -1 before. */
  node = -1;
  serverWait: ServerWait | undefined;
  waited = false;
  sender: Sender<unknown> | undefined;
  resolve: (value: unknown) => void = NOOP;
  reject: (error: unknown) => void = NOOP;
  payload: unknown;
  /** The nodes that refused the call unrun (they stopped serving), not picked again for it. */
  refusedBy: number[] | undefined;
  /** Why the last of them refused it (or that it is gone since): the cause if the call then fails. */
  refusal: SwitchboardError | undefined;
  /** Servers that refused it for another contract version, and the hash each said it serves. */
  mismatches: Map<number, string | undefined> | undefined;
  /** The caller's stream (client-streaming, bidi) until the server accepts it. */
  source: StreamSource<unknown> | undefined;
  /** Our sender into the server's input stream. */
  up: Sender<unknown> | undefined;
  /** The reply stream (server-streaming, bidi). */
  stream: CallStream<unknown> | undefined;
  down: Receiver<unknown> | undefined;
  /** The headers the request carries, checked. */
  headers: HeadHeaders | undefined;
  /** Its `switchboard:rpc:call` context, when traced: a stream's outcome is published on it. */
  trace: CallTraceContext | undefined;

  constructor(
    readonly caller: Caller,
    readonly id: number,
    readonly method: string,
    readonly kind: RpcKind,
    readonly route: Route,
    readonly options: StreamCallOptions,
    readonly timeoutMs: number,
    readonly contract: ContractRef | undefined,
  ) {
    super();
  }

  expired(): void {
    this.caller.timedOut(this);
  }

  aborted(reason: unknown): void {
    this.caller.abort(this, reason);
  }
}

/** {@link RpcStream} over the per-call reply receiver. */
class CallStream<T> implements RpcStream<T>, ItemReader {
  readonly items: ItemStream<T>;

  constructor(
    private readonly caller: Caller,
    private readonly call: PendingCall,
    rx: Receiver<unknown>,
  ) {
    this.items = new ItemStream<T>(rx, this);
  }

  get node(): number {
    return this.call.node;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    return this.items.next();
  }

  /** Stops reading: cancels the call if it is still running. */
  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return this.items.return();
  }

  cancel(reason?: unknown): void {
    if (this.items.closed) return;
    this.caller.abort(this.call, reason);
  }

  get closed(): boolean {
    return this.items.closed;
  }

  observable(): Observable<T> {
    return this.items.observable(() => this.cancel());
  }

  vanished(): SwitchboardError {
    // The server's sender went away without an end marker: its node or method is gone.
    return new NotDeliveredError(
      this.call.node,
      `the reply stream of "${this.call.method}" from node ${this.call.node} ended without its end marker`,
    );
  }

  ended(): void {
    this.caller.succeeded(this.call);
  }

  failed(error: SwitchboardError): void {
    this.caller.fail(this.call, error);
  }
}

/**
 * The pending calls of this node by id. Ids are handed out in sequence, so
 * a power-of-two array indexed by the id's low bits holds nearly all of
 * them; a call still pending when its slot comes round again (a long
 * stream among many short calls) moves aside to a Map. Unlike a Map alone,
 * adding and removing allocates nothing and never rehashes.
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

/** The calling half of one switchboard's RPC. */
export class Caller {
  private failure: SwitchboardError | undefined;
  private replies: Receiver<unknown> | undefined;
  private nextId = 1;
  private readonly pending = new CallTable();
  private readonly outstanding: number[];
  private readonly routes = new Map<string, Route>();
  private readonly services = new Map<string, ServiceView>();
  /** The options of the last request sent, reused while they fit (no object per call). */
  private sendOptions: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {};
  private readonly loadOf = (e: DirectoryEntry): number => this.outstanding[e.node]!;
  /** The call being dispatched, for {@link serves} (one predicate, no closure per call). */
  private picking: PendingCall | undefined;
  private readonly serves = (x: DirectoryEntry): boolean => {
    const p = this.picking!;
    const o = p.options;
    return (
      x.meta === p.kind &&
      (p.contract === undefined ||
        this.serviceHash(p.contract.service, x.node) === p.contract.hash) &&
      (p.refusedBy === undefined || !p.refusedBy.includes(x.node)) &&
      (o.node === undefined || x.node === o.node) &&
      (o.tags === undefined || hasTags(this.hub.nodes[x.node]!, o.tags))
    );
  };
  calls = 0;
  failures = 0;
  late = 0;

  constructor(private readonly hub: ChannelHub) {
    this.outstanding = new Array<number>(hub.nodes.length).fill(0);
  }

  /** Calls not settled yet, and how many of them wait for a server. */
  counts(): { pendingCalls: number; waitingForServer: number } {
    let waiting = 0;
    for (const r of this.routes.values()) waiting += r.waiting.size;
    return { pendingCalls: this.pending.size, waitingForServer: waiting };
  }

  callUnary(
    method: string,
    kind: RpcKind,
    request: unknown,
    source: StreamSource<unknown> | undefined,
    options: CallOptions = NO_OPTIONS,
    contract?: ContractRef,
  ): Promise<unknown> {
    if (callTrace.hasSubscribers) {
      const ctx = traceContext(method, kind, options);
      const h = tracedHeaders(options.headers, ctx);
      return traced(callTrace, ctx, () =>
        this.unary(method, kind, request, source, options, contract, ctx, h),
      );
    }
    return this.unary(method, kind, request, source, options, contract, undefined, options.headers);
  }

  private unary(
    method: string,
    kind: RpcKind,
    request: unknown,
    source: StreamSource<unknown> | undefined,
    options: CallOptions,
    contract: ContractRef | undefined,
    trace: CallTraceContext | undefined,
    headers: unknown,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const p = this.begin(method, kind, options, contract, headers);
      p.trace = trace;
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
    contract?: ContractRef,
  ): RpcStream<unknown> {
    if (callTrace.hasSubscribers) {
      const ctx = traceContext(method, kind, options);
      const h = tracedHeaders(options.headers, ctx);
      // start and end around the call's making; its outcome (the stream's end) comes later.
      return callTrace.traceSync(
        () => this.stream(method, kind, request, source, options, contract, ctx, h),
        ctx,
      );
    }
    return this.stream(
      method,
      kind,
      request,
      source,
      options,
      contract,
      undefined,
      options.headers,
    );
  }

  private stream(
    method: string,
    kind: RpcKind,
    request: unknown,
    source: StreamSource<unknown> | undefined,
    options: StreamCallOptions,
    contract: ContractRef | undefined,
    trace: CallTraceContext | undefined,
    headers: unknown,
  ): RpcStream<unknown> {
    const window = positiveInt(options.window ?? DEFAULT_CALL_OPTIONS.window, 'window');
    if (this.failure !== undefined) throw this.failure;
    const down = this.hub.receiver<unknown>(undefined, { window, capacity: window }, 1);
    let p: PendingCall;
    try {
      p = this.begin(method, kind, options, contract, headers);
    } catch (err) {
      down.close();
      throw err;
    }
    p.trace = trace;
    p.down = down;
    p.stream = new CallStream<unknown>(this, p, down);
    p.payload = request;
    p.source = source;
    this.dispatch(p);
    return p.stream;
  }

  // ---- lifecycle -----------------------------------------------------------

  /** A server's node was lost: its calls cannot complete, and their outcome is unknown. */
  serverLost(node: number, error: PeerLostError): void {
    for (const p of this.pending.all()) {
      // Refused unrun there and waiting for another server: that node is gone now.
      if (p.node < 0 && p.refusedBy?.includes(node) === true) p.refusal = error;
      if (p.node !== node) continue;
      this.fail(
        p,
        this.hub.closed
          ? closedError()
          : new NotDeliveredError(
              node,
              `node ${node} was lost during call "${p.method}"; its outcome is unknown`,
              { cause: error },
            ),
      );
    }
  }

  /** The switchboard closed: every call fails with `reason`. */
  shutdown(reason: SwitchboardError): void {
    if (this.failure !== undefined) return;
    this.failure = reason;
    for (const p of this.pending.all()) this.fail(p, reason);
    for (const r of this.routes.values()) r.unwatch();
    for (const v of this.services.values()) v.unwatch();
    this.replies?.close();
  }

  // ---- driven by the waits and the streams ---------------------------------------

  // The cancel goes before the call's streams are closed (fail): a server
  // that read the up stream's CLOSE first would take its caller for lost.
  timedOut(p: PendingCall): void {
    if (p.state !== OPEN) return;
    const where = p.node < 0 ? '' : ` on node ${p.node}`;
    this.sendCancel(p, Why.DEADLINE);
    this.fail(
      p,
      new SwitchboardError(
        ErrorCode.TIMEOUT,
        `call "${p.method}"${where} timed out after ${p.timeoutMs} ms`,
        p.refusal === undefined ? undefined : { cause: p.refusal },
      ),
    );
  }

  abort(p: PendingCall, reason: unknown): void {
    if (p.state !== OPEN) return;
    this.sendCancel(p, Why.ABORTED);
    this.fail(p, abortError(`call "${p.method}"`, reason));
  }

  noServerYet(p: PendingCall): void {
    this.fail(p, this.noServerError(p));
  }

  /** The server's stream ended normally (end marker). */
  succeeded(p: PendingCall): void {
    if (!this.settle(p)) return;
    this.stopUp(p);
    if (p.trace !== undefined) settled(callTrace, p.trace, undefined, undefined);
  }

  /** Ends a call with `error`, however it is waiting. */
  fail(p: PendingCall, error: Error): void {
    if (!this.settle(p, error)) return;
    this.failures++;
    this.stopUp(p);
    if (p.stream !== undefined) {
      p.stream.items.fail(error);
      if (p.trace !== undefined) settled(callTrace, p.trace, error, undefined);
    } else p.reject(error);
  }

  // ---- internals -----------------------------------------------------------

  /** Validates and registers a call; it is pending from here on. */
  private begin(
    method: string,
    kind: RpcKind,
    options: StreamCallOptions,
    contract: ContractRef | undefined,
    headers: unknown,
  ): PendingCall {
    if (this.failure !== undefined) throw this.failure;
    checkMethod(method);
    const checked = headers === undefined ? undefined : checkHeaders(headers);
    const timeoutMs = checkTimeout(options.timeoutMs) ?? DEFAULT_CALL_OPTIONS.timeoutMs;
    if (options.node !== undefined && !this.isNode(options.node))
      throw new OptionError(
        'node',
        `must be a node index (0..${this.hub.nodes.length - 1}), got ${String(options.node)}`,
      );
    const strategy = options.strategy;
    if (strategy !== undefined && STRATEGY[strategy] === undefined)
      throw new OptionError(
        'strategy',
        `must be least-outstanding, round-robin or random, got ${String(strategy)}`,
      );
    const wait = options.waitForServerMs;
    if (wait !== undefined && !(typeof wait === 'number' && wait >= 0))
      throw new OptionError('waitForServerMs', 'must be a number of ms >= 0 (or Infinity)');
    const signal = options.signal;
    if (signal?.aborted === true) throw abortError(`call "${method}"`, signal.reason);
    const p = new PendingCall(
      this,
      this.nextId,
      method,
      kind,
      this.route(method),
      options,
      timeoutMs,
      contract,
    );
    p.headers = checked;
    // Ids wrap well before CBOR needs 9 bytes; a call 2^31 calls old is long gone.
    this.nextId = this.nextId >= 0x7fff_ffff ? 1 : this.nextId + 1;
    this.calls++;
    this.pending.add(p);
    this.hub.timeouts.arm(p, timeoutMs, signal);
    p.startedAt =
      p.deadlineAt !== Number.POSITIVE_INFINITY ? p.deadlineAt - timeoutMs : performance.now();
    return p;
  }

  /** Picks a server and sends the request, or waits for one to appear. */
  private dispatch(p: PendingCall): void {
    if (p.state !== OPEN) return;
    const route = p.route;
    const entries = (route.entries ??= this.hub.directory.lookup(RPC_KIND, route.method));
    const o = p.options;
    this.picking = p;
    const e = this.hub.picker.pick(
      entries,
      STRATEGY[o.strategy ?? DEFAULT_CALL_OPTIONS.strategy]!,
      this.serves,
      this.loadOf,
    );
    this.picking = undefined;
    if (e === undefined) {
      this.noServer(p);
      return;
    }
    if (p.serverWait !== undefined) {
      this.hub.timeouts.disarm(p.serverWait);
      p.serverWait = undefined;
    }
    route.waiting.delete(p);
    p.node = e.node;
    if (p.trace !== undefined) p.trace.node = e.node;
    this.outstanding[e.node]!++;
    let sender: Sender<unknown>;
    try {
      sender = this.requestSender(route, e);
    } catch (err) {
      this.fail(p, err as Error);
      return;
    }
    p.sender = sender;
    let remaining = -1;
    if (p.deadlineAt !== Number.POSITIVE_INFINITY)
      remaining = p.waited ? Math.max(1, Math.ceil(p.deadlineAt - performance.now())) : p.timeoutMs;
    // Kept until the call settles: a server that refuses it unrun (it stopped
    // serving) leaves it to another.
    const payload = p.payload;
    let replyId: number;
    try {
      replyId = this.replyReceiver().id;
    } catch (err) {
      this.fail(p, err as Error);
      return;
    }
    const op = KIND_OP[p.kind];
    // What the server calls this node: a client has another number on each member.
    const self = this.hub.selfFor(e.node);
    const msg = new Headed(
      p.contract !== undefined
        ? [op, p.id, self, replyId, remaining, p.down?.id ?? 0, p.contract.hash]
        : p.down === undefined
          ? [op, p.id, self, replyId, remaining]
          : [op, p.id, self, replyId, remaining, p.down.id],
      payload,
      undefined,
      p.headers,
    );
    // A request still waiting for credit when the deadline passes is withdrawn, never sent late.
    const signal = o.signal;
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
    if (wait !== Number.POSITIVE_INFINITY) {
      p.serverWait = new ServerWait(p);
      this.hub.timeouts.arm(p.serverWait, wait, undefined);
    }
  }

  private noServerError(p: PendingCall): SwitchboardError {
    const entries = this.hub.directory.lookup(RPC_KIND, p.method);
    const o = p.options;
    if (p.contract !== undefined) {
      // Served, but under another version of the contract (or none): say so, not "no server".
      const c = p.contract;
      const found: ContractServer[] = entries
        .filter(
          (x) =>
            (o.node === undefined || x.node === o.node) &&
            (o.tags === undefined || hasTags(this.hub.nodes[x.node]!, o.tags)),
        )
        .map((x) => ({
          node: x.node,
          hash:
            p.mismatches?.has(x.node) === true
              ? p.mismatches.get(x.node)
              : this.serviceHash(c.service, x.node),
        }))
        .filter((f) => f.hash !== c.hash);
      if (found.length > 0)
        return new ContractMismatchError(
          c.service,
          p.method,
          c.hash,
          found,
          p.refusal === undefined ? undefined : { cause: p.refusal },
        );
    }
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
      p.refusal === undefined ? undefined : { cause: p.refusal },
    );
  }

  /** The version hash `node` serves `service` under, from its announcement; undefined if none. */
  private serviceHash(service: string, node: number): string | undefined {
    let v = this.services.get(service);
    if (v === undefined) {
      const view = new ServiceView();
      view.unwatch = this.hub.directory.watch(SERVICE_KIND, service, () => {
        view.hashes = undefined;
        // A call waiting for a server of the right version may have one now.
        queueMicrotask(() => {
          for (const r of this.routes.values())
            for (const p of [...r.waiting]) if (p.contract?.service === service) this.dispatch(p);
        });
      });
      this.services.set(service, view);
      v = view;
    }
    if (v.hashes === undefined) {
      v.hashes = new Map();
      for (const e of this.hub.directory.lookup(SERVICE_KIND, service)) {
        const h = (e.meta as { h?: unknown } | null)?.h;
        if (typeof h === 'string') v.hashes.set(e.node, h);
      }
    }
    return v.hashes.get(node);
  }

  private route(method: string): Route {
    let r = this.routes.get(method);
    if (r === undefined) {
      const route = new Route(method, this.hub.metrics.client(method));
      route.unwatch = this.hub.directory.watch(RPC_KIND, method, () => {
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
      s = this.hub.sender<unknown>({ node: e.node, id: e.id }, CHANNEL_SENDER_OPTIONS, {
        // Requests a closing server never took come back here: fail their calls now.
        undelivered: (messages, err) => {
          this.undelivered(messages, err);
          return true;
        },
      });
      route.senders.set(e.node, s);
    }
    return s;
  }

  private replyReceiver(): Receiver<unknown> {
    if (this.replies !== undefined) return this.replies;
    // Replies are taken as they arrive, so capacity is only a credit budget:
    // a full window for every server node.
    const n = this.hub.nodes.length;
    const r = this.hub.receiver<unknown>(undefined, {
      window: REPLY_WINDOW,
      capacity: REPLY_WINDOW * n,
      capacityBytes: DEFAULT_RECEIVER_OPTIONS.windowBytes * n,
    });
    r.consume({
      next: (m) => {
        try {
          this.onReply(m);
        } catch (err) {
          // Never into the receiver that delivered it.
          queueMicrotask(() => {
            throw err;
          });
        }
      },
      error: NOOP,
      complete: NOOP,
    });
    this.replies = r;
    return r;
  }

  private onReply(raw: unknown): void {
    const m = headOf(raw);
    if (m === undefined || typeof m.head[0] !== 'number') return;
    const p = this.pending.get(m.head[0]);
    if (p === undefined) {
      this.late++;
      return;
    }
    // Past the deadline, whatever came is a timeout: the handler may have
    // failed because of it, and the caller's timer may just not have run yet.
    const now = performance.now();
    if (now >= p.deadlineAt) {
      this.late++;
      this.timedOut(p);
      return;
    }
    switch (m.head[1]) {
      case Reply.OK:
        if (p.stream !== undefined) return;
        if (!this.settle(p, undefined, now)) return;
        this.stopUp(p);
        p.resolve(m.body);
        return;
      case Reply.ERROR: {
        const error = errorFromInfo(p.node, m.body);
        if (error.code === ErrorCode.NO_SERVER) {
          this.refused(p, error);
          return;
        }
        if (error.code === ErrorCode.CONTRACT_MISMATCH && p.contract !== undefined) {
          // The directory was behind the server: what it serves now is in the error's details.
          const d = (m.body as unknown[])[4] as { hash?: unknown } | undefined;
          const hash = typeof d?.hash === 'string' && d.hash !== '' ? d.hash : undefined;
          (p.mismatches ??= new Map()).set(p.node, hash);
          this.refused(
            p,
            new ContractMismatchError(
              p.contract.service,
              p.method,
              p.contract.hash,
              [{ node: p.node, hash }],
              { cause: error },
            ),
          );
          return;
        }
        this.fail(p, error);
        return;
      }
      case Reply.ACCEPT:
        this.accepted(p, m.body);
        return;
      default:
        return;
    }
  }

  /**
   * The server did not run the call (it stopped serving the method, or
   * serves it as another kind). Without a `node` option the call goes to
   * another server, or waits for one as any call does; the node that
   * refused it is not picked again for it. While this node closes, the
   * call ends with the close.
   */
  private refused(p: PendingCall, error: SwitchboardError): void {
    if (this.hub.closing) {
      this.fail(p, new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed', { cause: error }));
      return;
    }
    if (p.options.node !== undefined || p.up !== undefined) {
      this.fail(p, error);
      return;
    }
    (p.refusedBy ??= []).push(p.node);
    p.refusal = error;
    this.outstanding[p.node]!--;
    p.node = -1;
    p.sender = undefined;
    p.waited = true;
    this.dispatch(p);
  }

  /** The server opened its input channel: send our stream into it. */
  private accepted(p: PendingCall, upId: unknown): void {
    const source = p.source;
    if (source === undefined || p.up !== undefined || typeof upId !== 'number') return;
    p.source = undefined;
    let up: Sender<unknown>;
    try {
      up = this.hub.sender<unknown>({ node: p.node, id: upId }, STREAM_SENDER_OPTIONS);
    } catch (err) {
      this.fail(p, err as Error);
      return;
    }
    p.up = up;
    // Our own stream throwing fails the call with that error, before the
    // server (whose input then throws it too) can answer.
    const sourceFailed = (e: unknown): void =>
      this.fail(p, e instanceof Error ? e : new Error(String(e)));
    void sendStream(source, up, () => p.state === OPEN, sourceFailed).then((outcome) => {
      if (!up.closed) up.close();
      if (p.state !== OPEN) return;
      if (
        outcome.kind === 'send-failed' &&
        outcome.error instanceof SwitchboardError &&
        (outcome.error.code === ErrorCode.ENCODE ||
          outcome.error.code === ErrorCode.MESSAGE_TOO_LARGE)
      ) {
        this.sendCancel(p, Why.ABORTED);
        this.fail(p, outcome.error);
      }
      // Otherwise the server stopped reading: its reply (or the node's loss) settles the call.
    });
  }

  private sendFailed(p: PendingCall, err: unknown): void {
    if (p.state !== OPEN) return;
    if (err instanceof SwitchboardError && err.code === ErrorCode.TIMEOUT) {
      // Still waiting for credit at the deadline: the same timeout as any other.
      this.timedOut(p);
    } else if (err instanceof SwitchboardError && err.code === ErrorCode.NO_RECEIVER) {
      // Never sent: the server stopped serving first. Refused unrun, as by the server.
      this.refused(
        p,
        new SwitchboardError(ErrorCode.NO_SERVER, `node ${p.node} stopped serving "${p.method}"`, {
          cause: err,
        }),
      );
    } else {
      this.fail(p, err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * Requests in flight when their server's receiver closed or its node was
   * lost. A receiver that closed (the server stopped serving the method)
   * hands back only what it never took, so those calls were refused unrun,
   * as if answered ERR_SB_NO_SERVER: an unnamed call goes to another server.
   * After a lost node nothing is known, and the call fails not delivered.
   */
  private undelivered(messages: unknown[], err: SwitchboardError): void {
    for (const raw of messages) {
      const m = headOf(raw);
      if (m === undefined || m.head[0] === Op.CANCEL || typeof m.head[1] !== 'number') continue;
      const p = this.pending.get(m.head[1]);
      if (p === undefined || p.state !== OPEN) continue;
      if (err.code === ErrorCode.NO_RECEIVER && !this.hub.closed) {
        this.refused(
          p,
          new SwitchboardError(
            ErrorCode.NO_SERVER,
            `node ${p.node} stopped serving "${p.method}"`,
            { cause: err },
          ),
        );
        continue;
      }
      this.fail(
        p,
        this.hub.closed
          ? closedError()
          : new NotDeliveredError(
              p.node,
              `call "${p.method}" to node ${p.node}: request not known to be delivered (${err.message})`,
              { cause: err, messages: [m.body] },
            ),
      );
    }
  }

  private sendCancel(p: PendingCall, why: number): void {
    const s = p.sender;
    if (s === undefined || s.closed || p.node < 0) return;
    s.send(new Headed([Op.CANCEL, p.id, this.hub.selfFor(p.node), why], null)).catch(NOOP);
  }

  /**
   * Forgets a call (`error`: why it failed); false if it had settled
   * already. `now`: a clock reading of this turn, when the caller has one.
   */
  private settle(p: PendingCall, error?: Error, now = performance.now()): boolean {
    if (p.state !== OPEN) return false;
    p.state = SETTLED;
    p.route.series.record(now - p.startedAt, error);
    this.pending.remove(p);
    this.hub.timeouts.disarm(p);
    if (p.serverWait !== undefined) {
      this.hub.timeouts.disarm(p.serverWait);
      p.serverWait = undefined;
    }
    p.route.waiting.delete(p);
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

  private isNode(n: unknown): n is number {
    return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < this.hub.nodes.length;
  }
}

function checkMethod(method: unknown): void {
  if (typeof method !== 'string' || method.length === 0)
    throw new OptionError('method', 'must be a non-empty string');
}

/** The `switchboard:rpc:call` context of a call about to be made. */
function traceContext(method: string, kind: RpcKind, options: CallOptions): CallTraceContext {
  return { method, kind, node: options.node, headers: mutableHeaders(options.headers) };
}

function closedError(): SwitchboardError {
  return new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed');
}
