/**
 * What the parts of the delivery-contract suite say to each other: the
 * patterns, what a consumer or a producer of a pattern is asked to do, the
 * commands an agent takes (in this process or in a child over IPC), and the
 * observations it records.
 *
 * Observations are the suite's evidence. Every one carries `at`, read from
 * {@link clock}: epoch milliseconds with sub-millisecond resolution, the same
 * clock in every process on the machine, so that "the sender learnt of the
 * report before the receiver's application took the message" can be
 * decided across processes.
 *
 * Nothing here imports the library beyond its public entry point.
 */
import { performance } from 'node:perf_hooks';
import { SwitchboardError } from '../../lib/index.js';

/** The patterns of the contract, in table order. */
export const PATTERN_IDS = [
  'mpsc-named',
  'mpsc-anon',
  'mpmc-one',
  'mpmc-all',
  'rpc-unary',
  'rpc-server-stream',
  'rpc-client-stream',
  'rpc-bidi',
  'pubsub',
  'push-pull',
  'post',
] as const;

export type PatternId = (typeof PATTERN_IDS)[number];

export const RPC_PATTERNS = [
  'rpc-unary',
  'rpc-server-stream',
  'rpc-client-stream',
  'rpc-bidi',
] as const satisfies readonly PatternId[];

export type RpcPattern = (typeof RPC_PATTERNS)[number];

/** Patterns whose consumer is a channel receiver the application reads (`next()`). */
export const RECEIVING_PATTERNS = [
  'mpsc-named',
  'mpsc-anon',
  'mpmc-one',
  'mpmc-all',
  'post',
  'pubsub',
] as const satisfies readonly PatternId[];

/** Patterns that are channels (ordered, no duplicates, every message delivered or reported). */
export const CHANNEL_PATTERNS = [
  'mpsc-named',
  'mpsc-anon',
  'mpmc-one',
  'mpmc-all',
] as const satisfies readonly PatternId[];

export function isRpc(p: PatternId): p is RpcPattern {
  return (RPC_PATTERNS as readonly string[]).includes(p);
}

/** Epoch ms, sub-millisecond: one clock for every process of the machine. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** Values the codec cannot carry, each placed at `.items[3].cb` (see `badValue`). */
export const BAD_KINDS = ['function', 'symbol', 'promise', 'url', 'cycle', 'class'] as const;
export type BadKind = (typeof BAD_KINDS)[number];

/** Where every bad value sits in the message that carries it. */
export const BAD_PATH = '.items[3].cb';

/** A class whose instances are not plain data. */
class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}

  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

/** `{ items: [1, 2, 3, { cb: <bad> }] }`; for `cycle`, `cb` points back at the root. */
export function badValue(kind: BadKind): unknown {
  const slot: { cb: unknown } = { cb: undefined };
  const root = { items: [1, 2, 3, slot] };
  switch (kind) {
    case 'function':
      slot.cb = () => 1;
      break;
    case 'symbol':
      slot.cb = Symbol('not-data');
      break;
    case 'promise':
      slot.cb = Promise.resolve(1);
      break;
    case 'url':
      slot.cb = new URL('http://example.invalid/x');
      break;
    case 'cycle':
      slot.cb = root;
      break;
    case 'class':
      slot.cb = new Point(3, 4);
      break;
  }
  return root;
}

/** The messages every producer sends: stream, sequence number, item of a call, padding. */
export interface Msg {
  readonly s: string;
  readonly q: number;
  readonly i?: number;
  readonly pad?: string;
}

export function isMsg(v: unknown): v is Msg {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { s?: unknown }).s === 'string' &&
    typeof (v as { q?: unknown }).q === 'number'
  );
}

/** What a check needs to know of an error, as plain data (it crosses IPC). */
export interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  readonly code: string | undefined;
  /** Codes along the `cause` chain, nearest first (not including `code`). */
  readonly causes: readonly string[];
  readonly isSwitchboardError: boolean;
  readonly node?: number;
  readonly path?: string;
  readonly size?: number;
  readonly limit?: number;
  readonly remoteCode?: string;
  /** `messages` of a NotDeliveredError or RefusedError, as sequence numbers where they are Msgs. */
  readonly seqs?: readonly number[];
  /** `task` of a TaskError, when it is a Msg. */
  readonly taskSeq?: number;
}

/** Handler behaviours of the deadline checks (and `normal`). */
export const BEHAVIOURS = ['ignore', 'honour', 'throw', 'late'] as const;
export type Behaviour = (typeof BEHAVIOURS)[number] | 'normal';

/** What a consumer (receiver, server, subscriber, worker) does. */
export interface ConsumerSpec {
  readonly pattern: PatternId;
  readonly stream: string;
  /** Where the producer lives (an anonymous channel ships its sender there). */
  readonly producerNode: number;
  /** Take this many messages, then stop reading (the rest waits in the buffer and for credit). */
  readonly hold?: number;
  readonly window?: number;
  readonly capacity?: number;
  /** Milliseconds of work per handler or task (not honouring any signal unless `behaviour` says). */
  readonly work?: number;
  readonly behaviour?: Behaviour;
  readonly concurrency?: number;
  readonly prefetch?: number;
  readonly maxConcurrent?: number;
  /** Busy-loop this long right after the application took message `stallAt`. */
  readonly stallAt?: number;
  readonly stallMs?: number;
  /** Bytes of padding in each reply (sizes). */
  readonly replyPad?: number;
  /** Replies per call of a server-streaming or bidi method. Default 2. */
  readonly replies?: number;
  /** Receive with a deadline (`timeoutMs`) or an AbortSignal aborted after `receiveMs` (`signal`). */
  readonly receive?: 'plain' | 'timeoutMs' | 'signal';
  /** The deadline or abort delay of each timed receive. */
  readonly receiveMs?: number;
}

/** How a producer (sender, caller, publisher, pusher, poster) is set up. */
export interface ProducerSpec {
  readonly pattern: PatternId;
  readonly stream: string;
  /** The consumer's node (named receivers and `post({ node })`). */
  readonly consumerNode: number;
  readonly timeoutMs?: number;
  readonly waitForServerMs?: number;
  readonly maxPending?: number;
}

/** What the values of a run are. */
export type ValueSpec =
  { readonly kind: 'msg'; readonly pad?: number } | { readonly kind: 'bad'; readonly bad: BadKind };

/** A run of operations by a producer. */
export interface ProduceSpec {
  readonly stream: string;
  readonly from: number;
  readonly count: number;
  /** Operations outstanding at most (1: each awaited before the next). */
  readonly concurrency: number;
  readonly value?: ValueSpec;
  /** Per operation (index in the run): a call's `timeoutMs`. */
  readonly deadlines?: readonly number[];
  /** Per operation: abort the call's own signal after this many ms. */
  readonly aborts?: readonly number[];
  /** Items of each client-streaming or bidi request stream. Default 2. */
  readonly items?: number;
  /** Busy-loop this long right after issuing operation `stallAt`. */
  readonly stallAt?: number;
  readonly stallMs?: number;
  /** Per operation: wait this many ms before issuing it. */
  readonly gaps?: readonly number[];
  /** Stop issuing once the consumer's node is reported down. */
  readonly stopOnPeerDown?: boolean;
}

/** Options of a switchboard as JSON (the secret as a string). */
export interface NodeOptions {
  readonly nodes: readonly string[];
  readonly id: number;
  readonly secret: string;
  readonly heartbeatMs?: number;
  readonly deadPeerMs?: number;
  readonly handshakeTimeoutMs?: number;
  readonly lingerMs?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  readonly maxMessageSize?: number;
}

/** Commands an agent takes. */
export type AgentCommand =
  | { readonly cmd: 'start'; readonly options: NodeOptions; readonly journal?: string }
  | { readonly cmd: 'rendezvous'; readonly timeoutMs: number }
  | { readonly cmd: 'consumer'; readonly spec: ConsumerSpec }
  | { readonly cmd: 'producer'; readonly spec: ProducerSpec }
  | { readonly cmd: 'produce'; readonly spec: ProduceSpec }
  | { readonly cmd: 'idle'; readonly pattern: PatternId; readonly stream: string }
  | { readonly cmd: 'close-consumer'; readonly stream: string }
  | { readonly cmd: 'close-producer'; readonly stream: string }
  | { readonly cmd: 'close'; readonly how: 'close' | 'destroy' }
  | { readonly cmd: 'stats' }
  | { readonly cmd: 'peers' };

/** Counters of one stream, as far as this node has them. */
export interface StreamStats {
  readonly stream: string;
  readonly pattern: PatternId;
  readonly role: 'consumer' | 'producer';
  /** The public `stats()` of the endpoint, where it has one. */
  readonly stats: Record<string, unknown> | undefined;
}

/** A snapshot of an agent. */
export interface AgentStats {
  readonly node: number;
  readonly incarnation: string;
  readonly drops: Record<string, number>;
  readonly streams: readonly StreamStats[];
  readonly peers: ReadonlyArray<{
    readonly node: number;
    readonly state: string;
    readonly incarnation: string | undefined;
  }>;
}

interface Base {
  readonly at: number;
  /** The switchboard that recorded it. */
  readonly node: number;
  readonly inc: string;
}

/** The kinds of tracked operations. */
export type OpKind = 'send' | 'call' | 'stream' | 'push' | 'publish' | 'post' | 'receive';

/** Everything an agent records. */
export type Obs =
  /** The consumer's application took message `seq` (a request, a task: `attempt`). */
  | (Base & {
      readonly t: 'take';
      readonly stream: string;
      readonly seq: number;
      readonly attempt: number;
      /** A value that is not a Msg of this stream arrived (a bad value got through). */
      readonly foreign?: string;
    })
  /** An operation was issued. */
  | (Base & {
      readonly t: 'issue';
      readonly stream: string;
      readonly op: number;
      readonly kind: OpKind;
      readonly seq: number;
    })
  /** An operation settled (`count` is how many times it did, which must be 1). */
  | (Base & {
      readonly t: 'settle';
      readonly stream: string;
      readonly op: number;
      readonly kind: OpKind;
      readonly seq: number;
      readonly issuedAt: number;
      readonly ok: boolean;
      /** A receive that resolved `done`. */
      readonly done?: boolean;
      /** The operation threw instead of returning (a promise API must reject instead). */
      readonly threw?: boolean;
      readonly error?: ErrorInfo;
      readonly count: number;
      /** Replies a streaming call received, or the reply's `q`. */
      readonly replies?: number;
    })
  /** A producer's `errors$` reported something. */
  | (Base & { readonly t: 'report'; readonly stream: string; readonly error: ErrorInfo })
  /** A handler or task finished; `reason` is `ctx.signal.reason.code` if aborted. */
  | (Base & {
      readonly t: 'handler';
      readonly stream: string;
      readonly seq: number;
      readonly attempt: number;
      readonly startedAt: number;
      readonly ok: boolean;
      readonly aborted: boolean;
      readonly reason: string | undefined;
      readonly deadline: number | undefined;
    })
  /** A consumer's iteration ended (done, or with an error). */
  | (Base & {
      readonly t: 'end';
      readonly stream: string;
      readonly done: boolean;
      readonly error?: ErrorInfo;
    })
  /** A timed receive rejected (receive checks). */
  | (Base & { readonly t: 'receive-error'; readonly stream: string; readonly error: ErrorInfo })
  /** An event of `events$`. */
  | (Base & {
      readonly t: 'event';
      readonly type: string;
      readonly peer?: number;
      readonly error?: ErrorInfo;
      readonly channel?: string;
      readonly count?: number;
      readonly reason?: string;
      readonly incarnation?: string;
    })
  /** A subscription's `gaps$`. */
  | (Base & {
      readonly t: 'gap';
      readonly stream: string;
      readonly from: number;
      readonly publisher: string;
      readonly missed: number;
    })
  /** An unhandled rejection in this process (children only: jest fails the test itself). */
  | (Base & { readonly t: 'unhandled'; readonly error: ErrorInfo })
  /** The event loop was blocked from `from` to `at`. */
  | (Base & { readonly t: 'stalled'; readonly stream: string; readonly from: number })
  /** A produce run issued its last operation (or stopped). */
  | (Base & { readonly t: 'produced'; readonly stream: string; readonly issued: number })
  | (Base & { readonly t: 'closing'; readonly how: 'close' | 'destroy' })
  | (Base & { readonly t: 'closed'; readonly how: 'close' | 'destroy'; readonly startedAt: number })
  /** The last word of an agent whose switchboard closed. */
  | (Base & { readonly t: 'final'; readonly stats: AgentStats; readonly unsettled: number });

export type ObsOf<K extends Obs['t']> = Extract<Obs, { readonly t: K }>;

/** Reads an error into plain data. */
export function errorInfo(err: unknown): ErrorInfo {
  if (!(err instanceof Error)) {
    return {
      name: typeof err,
      message: String(err),
      code: undefined,
      causes: [],
      isSwitchboardError: false,
    };
  }
  const e = err as Error & Record<string, unknown>;
  const causes: string[] = [];
  let c: unknown = e.cause;
  for (let depth = 0; c !== undefined && c !== null && depth < 8; depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') causes.push(code);
    c = (c as { cause?: unknown }).cause;
  }
  const info: {
    -readonly [K in keyof ErrorInfo]: ErrorInfo[K];
  } = {
    name: e.name,
    message: e.message,
    code: typeof e.code === 'string' ? e.code : undefined,
    causes,
    isSwitchboardError: e instanceof SwitchboardError,
  };
  if (typeof e.node === 'number') info.node = e.node;
  if (typeof e.path === 'string') info.path = e.path;
  if (typeof e.size === 'number') info.size = e.size;
  if (typeof e.limit === 'number') info.limit = e.limit;
  if (typeof e.remoteCode === 'string') info.remoteCode = e.remoteCode;
  if (Array.isArray(e.messages))
    info.seqs = (e.messages as unknown[]).filter(isMsg).map((m) => m.q);
  if (isMsg(e.task)) info.taskSeq = e.task.q;
  return info;
}
