/**
 * The one wait helper of the channel core: every operation that waits (a
 * send for credit, a receive for a message, a call for its reply, a push for
 * a worker) is a {@link Wait} with a deadline and an optional AbortSignal,
 * and pending waits of one kind form a bounded FIFO ({@link WaitList}).
 *
 * Deadlines cost no timer per wait: waits sharing a timeout value form a
 * FIFO sorted by construction, linked through the waits themselves, and one
 * timer per {@link Timeouts} is armed for the earliest head. Arming and
 * disarming a wait allocates nothing and touches no timer in the usual case
 * (many waits with the same timeout). The timer keeps the process alive only
 * while some wait is armed, so a switchboard at rest never holds it open.
 */
import { ErrorCode, OptionError, SwitchboardError } from '../errors.js';

/** Options every waiting operation takes. Times in ms. */
export interface WaitOptions {
  /** Fail with ERR_SB_TIMEOUT after this many ms. `Infinity`: no deadline. */
  readonly timeoutMs?: number;
  /** Fail with ERR_SB_ABORTED when this signal aborts. */
  readonly signal?: AbortSignal;
}

/** One FIFO of waits sharing a timeout value: their deadlines come in order. */
interface DeadlineList {
  head: Wait | undefined;
  tail: Wait | undefined;
}

/**
 * Something that waits. Subclasses say what expiry and abort mean; the
 * links are managed by {@link Timeouts} and {@link WaitList}.
 */
export abstract class Wait {
  /** When the deadline passes (`performance.now()` scale); Infinity without one. */
  deadlineAt = Number.POSITIVE_INFINITY;
  /** @internal links of the deadline list */
  dlist: DeadlineList | undefined;
  /** @internal */
  dprev: Wait | undefined;
  /** @internal */
  dnext: Wait | undefined;
  /** @internal links of the owner's FIFO */
  qprev: Wait | undefined;
  /** @internal */
  qnext: Wait | undefined;
  /** @internal */
  queued = false;
  /** @internal the signal listened to, removed on disarm */
  watched: AbortSignal | undefined;
  /** @internal */
  clock: Timeouts | undefined;

  /** The deadline passed (the wait is already disarmed). */
  abstract expired(): void;
  /** The signal aborted (the wait is already disarmed). */
  abstract aborted(reason: unknown): void;

  /** The signal's listener: the wait itself, so no closure is made per wait. */
  handleEvent(): void {
    const signal = this.watched;
    this.clock?.disarm(this);
    this.aborted(signal?.reason);
  }
}

/**
 * The deadlines and signals of a set of waits, with one timer. One per
 * switchboard, shared by every endpoint and pattern.
 */
export class Timeouts {
  private readonly lists = new Map<number, DeadlineList>();
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  /** Waits armed now. */
  get size(): number {
    return this.count;
  }

  /**
   * Arms `w`: `expired()` runs once `timeoutMs` has passed, `aborted()` when
   * `signal` aborts, whichever comes first; the other is then disarmed.
   * Returns false (arming nothing) when `signal` has already aborted.
   */
  arm(w: Wait, timeoutMs: number | undefined, signal: AbortSignal | undefined): boolean {
    if (signal !== undefined) {
      if (signal.aborted) return false;
      w.watched = signal;
      signal.addEventListener('abort', w, { once: true });
    }
    w.clock = this;
    if (timeoutMs !== undefined && timeoutMs !== Number.POSITIVE_INFINITY) {
      const now = performance.now();
      w.deadlineAt = now + timeoutMs;
      let l = this.lists.get(timeoutMs);
      if (l === undefined) this.lists.set(timeoutMs, (l = { head: undefined, tail: undefined }));
      w.dlist = l;
      w.dprev = l.tail;
      w.dnext = undefined;
      if (l.tail === undefined) l.head = w;
      else l.tail.dnext = w;
      l.tail = w;
      if (this.count++ === 0) this.timer?.ref();
      if (w.deadlineAt < this.timerAt) this.schedule(w.deadlineAt, now);
    }
    return true;
  }

  /** Stops watching `w`'s deadline and signal. Idempotent. */
  disarm(w: Wait): void {
    if (w.watched !== undefined) {
      w.watched.removeEventListener('abort', w);
      w.watched = undefined;
    }
    const l = w.dlist;
    if (l === undefined) return;
    if (w.dprev === undefined) l.head = w.dnext;
    else w.dprev.dnext = w.dnext;
    if (w.dnext === undefined) l.tail = w.dprev;
    else w.dnext.dprev = w.dprev;
    w.dlist = w.dprev = w.dnext = undefined;
    if (--this.count === 0) this.timer?.unref();
  }

  /** Stops the timer for good (the switchboard is shutting down). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private schedule(at: number, now: number): void {
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
        const w = l.head;
        this.disarm(w);
        w.expired();
      }
      if (l.head !== undefined && l.head.deadlineAt < next) next = l.head.deadlineAt;
    }
    if (next !== Number.POSITIVE_INFINITY && next < this.timerAt)
      this.schedule(next, performance.now());
  };
}

/**
 * A bounded FIFO of waits (sends waiting for credit, tasks for a worker),
 * linked through the waits: O(1) push, shift and removal from the middle
 * (a wait that timed out), no allocation.
 */
export class WaitList<W extends Wait> {
  private head: W | undefined;
  private tail: W | undefined;
  size = 0;

  /** The oldest wait, still listed. */
  peek(): W | undefined {
    return this.head;
  }

  push(w: W): void {
    w.queued = true;
    w.qprev = this.tail;
    w.qnext = undefined;
    if (this.tail === undefined) this.head = w;
    else this.tail.qnext = w;
    this.tail = w;
    this.size++;
  }

  /** Removes and returns the oldest wait. */
  shift(): W | undefined {
    const w = this.head;
    if (w !== undefined) this.remove(w);
    return w;
  }

  /** Removes `w`; false if it was not listed. */
  remove(w: W): boolean {
    if (!w.queued) return false;
    w.queued = false;
    if (w.qprev === undefined) this.head = w.qnext as W | undefined;
    else w.qprev.qnext = w.qnext;
    if (w.qnext === undefined) this.tail = w.qprev as W | undefined;
    else w.qnext.qprev = w.qprev;
    w.qprev = w.qnext = undefined;
    this.size--;
    return true;
  }

  /** Removes every wait, returning them oldest first. */
  drain(): W[] {
    const out: W[] = [];
    for (let w = this.shift(); w !== undefined; w = this.shift()) out.push(w);
    return out;
  }
}

/** Validates a `timeoutMs` option: a positive number of ms, or Infinity. */
export function checkTimeout(value: unknown, name = 'timeoutMs'): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0))
    throw new OptionError(
      name,
      `must be a positive number of ms (or Infinity), got ${typeof value === 'number' ? value : typeof value}`,
    );
  return value;
}

/** The error of an operation whose deadline passed. */
export function timeoutError(what: string, timeoutMs: number, detail = ''): SwitchboardError {
  return new SwitchboardError(
    ErrorCode.TIMEOUT,
    `${what} timed out after ${timeoutMs} ms${detail === '' ? '' : `: ${detail}`}`,
  );
}

/** The error of an operation aborted by its signal; the signal's reason is the cause. */
export function abortError(what: string, reason: unknown): SwitchboardError {
  return new SwitchboardError(ErrorCode.ABORTED, `${what} aborted`, { cause: reason });
}
