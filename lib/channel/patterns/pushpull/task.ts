/**
 * Push-pull's types and messages (docs/wire-protocol.md 10.14.4).
 *
 * - A task, on a worker's receiver: a message whose head is `[from, ack,
 *   id, attempt]` (the pusher's node, its acknowledgement receiver there,
 *   the task id, unique per pusher, and the attempt, 1 the first time) and
 *   whose body is the task.
 * - Acknowledgements, on a pusher's acknowledgement receiver, batched per
 *   worker and event-loop turn: `[doneIds, failures]`, each failure
 *   `[id, name, message, code | null]`.
 */
import { RemoteError } from '../../../errors.js';
import { Headed } from '../../envelope.js';
import type { StandardSchemaV1 } from '../../schema.js';
import type { Headers } from '../../headers.js';

/** What a handler learns about the task it runs. */
export interface TaskContext {
  /** The queue name. */
  readonly queue: string;
  /** The task's id, unique per pusher (with `from`). */
  readonly id: number;
  /** The node of the pusher. */
  readonly from: number;
  /** 1 the first time the task is handed out; more after a retry or a redelivery (it may have run before). */
  readonly attempt: number;
  /** The headers it was pushed with (docs/api.md, "Headers"); an empty frozen object when none. */
  readonly headers: Headers;
  /**
   * Aborted when this switchboard is destroyed, or closes with the task
   * still running past its linger time (`reason`: ERR_SB_CLOSED). Created
   * on first access.
   */
  readonly signal: AbortSignal;
}

/** Runs one task; the task is done when it returns or its promise resolves. */
export type TaskHandler<T> = (task: T, ctx: TaskContext) => unknown;

/** Options of a worker. */
export interface WorkerOptions<T> {
  /** Tasks run at once. Default 1. */
  readonly concurrency?: number;
  /**
   * Tasks buffered per pusher beyond those running, so the next starts
   * without a round trip (the credit window each pusher gets). Default
   * `concurrency`.
   */
  readonly prefetch?: number;
  /** Validator (Standard Schema); a refused task fails (no handler call) and is reported on `errors$`. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** Options of a pusher. Times in ms. */
export interface PusherOptions<T> {
  /** How long `push()` may wait for a worker's window before failing with ERR_SB_TIMEOUT. Default 30000. */
  readonly timeoutMs?: number;
  /** Pushes waiting for a window at most; more fail at once with ERR_SB_OVERFLOW. Default 1024. */
  readonly maxPending?: number;
  /** Times a task whose handler failed is handed out again before it is reported failed. Default 0. */
  readonly retries?: number;
  /** Validator (Standard Schema) applied in `push()`. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** Options of one `push`: a deadline (overrides the pusher's `timeoutMs`) and a signal. */
export interface PushOptions {
  readonly timeoutMs?: number;
  /** Aborts the wait for a window (ERR_SB_ABORTED); a task already handed out is not recalled. */
  readonly signal?: AbortSignal;
  /** Headers the task carries (docs/api.md, "Headers"): its handler sees them on `ctx.headers`. */
  readonly headers?: Headers;
}

export const DEFAULT_WORKER_OPTIONS = Object.freeze({ concurrency: 1 });
export const DEFAULT_PUSHER_OPTIONS = Object.freeze({
  timeoutMs: 30_000,
  maxPending: 1024,
  retries: 0,
});

/** The option names of each. */
export const WORKER_OPTION_NAMES: readonly string[] = ['concurrency', 'prefetch', 'schema'];
export const PUSHER_OPTION_NAMES: readonly string[] = [
  'timeoutMs',
  'maxPending',
  'retries',
  'schema',
];

/** Counters of a worker. */
export interface WorkerStats {
  readonly queue: string;
  readonly running: number;
  readonly queued: number;
  readonly completed: number;
  readonly failed: number;
}

/** Counters of a pusher. */
export interface PusherStats {
  readonly queue: string;
  /** Tasks accepted by `push()`. */
  readonly pushed: number;
  /** Tasks waiting for a worker (new, retried or redelivered). */
  readonly waiting: number;
  /** Tasks held by workers, not yet acknowledged. */
  readonly inFlight: number;
  readonly completed: number;
  /** Tasks that failed for good (reported on `errors$`). */
  readonly failed: number;
  /** Tasks handed out again after their worker's node went away or it closed. */
  readonly redelivered: number;
  /** Attempts retried after a handler failure. */
  readonly retried: number;
  /** Workers with an open stream. */
  readonly workers: number;
}

/** A task whose handler failed (on its last allowed attempt, on the pusher's side). */
export class TaskError<T = unknown> extends RemoteError {
  constructor(
    node: number,
    remoteName: string,
    message: string,
    remoteCode: string | undefined,
    /** The task as pushed. */
    readonly task: T,
    /** Handler attempts made. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(node, remoteName, message, remoteCode, options);
  }
}

/** A task's head as it travels. */
export type TaskHead = readonly [from: number, ack: number, id: number, attempt: number];
/** A handler failure as it travels: `[id, name, message, code | null]`. */
export type Failure = [number, string, string, string | null];
/** Acknowledgements: `[done ids, failures]`. */
export type AckMessage = [number[], Failure[]];

/** The directory kind of workers; the entry's name is the queue, its meta `{ c, p }` (concurrency, prefetch). */
export const PUSHPULL_KIND = 'pushpull';

/** A task message (its head checked: four integers), or undefined when malformed. */
export function parseTask(v: unknown): (Headed & { readonly head: TaskHead }) | undefined {
  if (!(v instanceof Headed) || v.head.length !== 4) return undefined;
  for (let i = 0; i < 4; i++) if (!Number.isSafeInteger(v.head[i])) return undefined;
  return v as Headed & { readonly head: TaskHead };
}
