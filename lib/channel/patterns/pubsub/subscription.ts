/**
 * One pub-sub subscription: a lossy receiver of the core (it grants
 * unlimited credit, so a publisher never waits for it) whose buffer applies
 * the subscription's overflow policy, announced in the directory under
 * kind `pubsub` with the pattern as name.
 *
 * Every stream from a publisher starts with a hello, `[0, publisher,
 * sentBefore]`: the publisher's id and how many messages it sent to this
 * subscription on earlier streams (streams end with their session; a new
 * one starts when the peers meet again). The subscription counts what it
 * received from each publisher, so a hello that says more was sent than
 * arrived is a **gap**: those messages were lost with an ended session.
 * They are counted as dropped and reported on `gaps$` and as a `drop`
 * event, so a subscriber never carries on as if nothing was missed.
 */
import type { Observable } from 'rxjs';
import { merge, Subject } from 'rxjs';
import { DecodeError, ErrorCode, OptionError, SwitchboardError } from '../../../errors.js';
import { Headed } from '../../envelope.js';
import type { Headers } from '../../headers.js';
import type { ChannelHub } from '../../hub.js';
import { SKIP } from '../../receiver.js';
import type { Inlet, Receiver } from '../../receiver.js';
import type { ReceiveOptions } from '../../queue.js';
import { validateSync } from '../../schema.js';
import type { StandardSchemaV1 } from '../../schema.js';

/** What a subscription does when its buffer is full. */
export type SubscriptionOverflow = 'drop-oldest' | 'drop-newest' | 'fail';

/** Options of `subscribe`. */
export interface SubscribeOptions<T> {
  /** Messages buffered at most for this subscriber. Default 4096. */
  readonly bufferSize?: number;
  /**
   * What a full buffer does: `drop-newest` (default, as NATS and ZeroMQ do)
   * drops the arriving message, `drop-oldest` drops the oldest buffered one,
   * `fail` ends the subscription with ERR_SB_OVERFLOW. Drops are counted in
   * `stats()` and reported as `drop` events on the subscriber's switchboard.
   */
  readonly overflow?: SubscriptionOverflow;
  /** Validator (Standard Schema) of the values; a refused value is an error on `errors$`, skipped. */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

export const DEFAULT_SUBSCRIBE_OPTIONS = Object.freeze({
  bufferSize: 4096,
  overflow: 'drop-newest',
});

/** The option names `subscribe` takes. */
export const SUBSCRIBE_OPTION_NAMES: readonly string[] = ['bufferSize', 'overflow', 'schema'];

/** One published message as a subscriber sees it. */
export interface Publication<T> {
  /** The topic it was published on (never a pattern). */
  readonly topic: string;
  readonly value: T;
  /** The headers it was published with; absent when it had none (docs/api.md, "Headers"). */
  readonly headers?: Headers;
}

/** Messages of one publisher that never reached this subscription (their session ended first). */
export interface PublicationGap {
  /** The publisher's node. */
  readonly node: number;
  /** The publisher's id (unique in the cluster). */
  readonly publisher: string;
  /** Messages it sent that never arrived. */
  readonly missed: number;
}

/** Counters of one subscription (this node's view). */
export interface SubscriptionStats {
  readonly pattern: string;
  /** The channel name drops are reported under (`pubsub:<pattern>#<n>`). */
  readonly channel: string;
  /** Messages that arrived. */
  readonly received: number;
  /** Messages handed to the application. */
  readonly delivered: number;
  /**
   * Messages dropped: by the overflow policy, buffered from a publisher
   * whose session ended before they were taken, or missed in a gap.
   */
  readonly dropped: number;
  /** Of `dropped`, messages missed in gaps (sent, never arrived). */
  readonly missed: number;
  /** Messages refused by the schema or undecodable. */
  readonly invalid: number;
  /** Messages buffered now. */
  readonly queued: number;
}

/** The first message of every stream: `[HELLO, publisher, sentBefore]`. */
export const HELLO = 0;

/**
 * A subscription: an `AsyncIterable` of {@link Publication}s (`{ topic,
 * value }`: a wildcard subscriber needs the topic) and, through
 * `observable()`, an rxjs Observable; one consumer at a time. Iteration ends
 * when the subscription is closed (or its switchboard), and rejects with
 * ERR_SB_OVERFLOW when the `fail` policy ended it.
 *
 * A subscriber on the publisher's node gets the published value itself, not
 * a copy (unless the switchboard forces encoding): do not mutate it.
 */
export class Subscription<T> implements AsyncIterable<Publication<T>> {
  /** Errors that do not end the subscription: undecodable or invalid messages, lost publishers. */
  readonly errors$: Observable<SwitchboardError>;
  /** Gaps: messages of a publisher that were lost with an ended session. */
  readonly gaps$: Observable<PublicationGap>;
  private readonly errorSubject = new Subject<SwitchboardError>();
  private readonly gapSubject = new Subject<PublicationGap>();
  private readonly receiver: Receiver<Publication<T>>;
  /** Per stream, the count of the publisher it comes from. */
  private readonly from = new WeakMap<Inlet, { n: number }>();
  /** Per publisher, messages received from it (on every stream, across sessions). */
  private readonly counts = new Map<string, { n: number }>();
  /** The last stream a publication came on, and its count: a burst looks up neither map. */
  private lastInlet: Inlet | undefined;
  private lastCount: { n: number } | undefined;
  private received = 0;
  private missed = 0;
  private invalid = 0;

  /** @internal Created by `PubSub.subscribe`. */
  constructor(
    /** The pattern subscribed to. */
    readonly pattern: string,
    /** This subscription's id in the cluster (the directory entry's meta). */
    readonly uid: string,
    name: string,
    private readonly hub: ChannelHub,
    options: SubscribeOptions<T>,
  ) {
    const bufferSize = options.bufferSize ?? DEFAULT_SUBSCRIBE_OPTIONS.bufferSize;
    if (!Number.isInteger(bufferSize) || bufferSize < 1)
      throw new OptionError('bufferSize', 'must be a positive integer');
    const overflow = options.overflow ?? DEFAULT_SUBSCRIBE_OPTIONS.overflow;
    if (overflow !== 'drop-oldest' && overflow !== 'drop-newest' && overflow !== 'fail')
      throw new OptionError('overflow', 'must be "drop-oldest", "drop-newest" or "fail"');
    const schema = options.schema;
    this.receiver = hub.receiver<Publication<T>>(
      name,
      { capacity: bufferSize, overflow },
      Number.POSITIVE_INFINITY,
      { arrive: (v, inlet) => this.arrive(v, inlet, schema) },
    );
    this.errors$ = merge(this.receiver.errors$, this.errorSubject);
    this.gaps$ = this.gapSubject.asObservable();
  }

  /** The receiver's id on this node (its directory entry). */
  get receiverId(): number {
    return this.receiver.id;
  }

  /** The channel name this subscription's drops are reported under. */
  get channel(): string {
    return this.receiver.name;
  }

  /** True once closed, failed, or ended with its switchboard. */
  get closed(): boolean {
    return this.receiver.closed;
  }

  /**
   * The next publication; `done` once the subscription ended and its
   * buffer is empty. With `timeoutMs` or `signal`, rejects with
   * ERR_SB_TIMEOUT or ERR_SB_ABORTED and loses nothing.
   */
  next(options?: ReceiveOptions): Promise<IteratorResult<Publication<T>, undefined>> {
    return this.receiver.next(options);
  }

  [Symbol.asyncIterator](): AsyncIterator<Publication<T>> {
    return this.receiver[Symbol.asyncIterator]();
  }

  /** The publications as an Observable; completes when the subscription ends. One subscriber at a time. */
  observable(): Observable<Publication<T>> {
    return this.receiver.observable();
  }

  /** Ends the subscription: publishers stop sending to it, buffered messages are dropped. Idempotent. */
  close(): void {
    this.receiver.close();
    this.errorSubject.complete();
    this.gapSubject.complete();
  }

  /** @internal The switchboard was destroyed: iteration rejects with `error`. */
  fail(error: SwitchboardError): void {
    this.receiver.fail(error);
    this.errorSubject.complete();
    this.gapSubject.complete();
  }

  /** A snapshot of the counters. */
  stats(): SubscriptionStats {
    const r = this.receiver.stats();
    return {
      pattern: this.pattern,
      channel: r.name,
      received: this.received,
      delivered: r.delivered,
      dropped: r.dropped + this.missed,
      missed: this.missed,
      invalid: this.invalid,
      queued: r.queued,
    };
  }

  /** Maps an arriving message: a hello is consumed (and checked for a gap), a publication counted. */
  private arrive(
    v: unknown,
    inlet: Inlet,
    schema: StandardSchemaV1<unknown, T> | undefined,
  ): unknown {
    if (v instanceof Headed) {
      let count = this.lastCount;
      if (this.lastInlet !== inlet) {
        count = this.from.get(inlet);
        this.lastInlet = inlet;
        this.lastCount = count;
      }
      if (count !== undefined) count.n++;
      this.received++;
      const topic = v.head[0];
      if (typeof topic !== 'string' || v.head.length !== 1) {
        this.invalid++;
        throw new DecodeError(`subscription ${this.pattern}: malformed publication`);
      }
      const body: unknown = v.body;
      const headers = v.headers;
      if (schema === undefined)
        return headers === undefined ? { topic, value: body } : { topic, value: body, headers };
      try {
        const value = validateSync(schema, body, `subscription ${this.pattern}`);
        return headers === undefined ? { topic, value } : { topic, value, headers };
      } catch (err) {
        this.invalid++;
        throw err instanceof SwitchboardError
          ? err
          : new SwitchboardError(ErrorCode.VALIDATION, String(err), { cause: err });
      }
    }
    const m = Array.isArray(v) ? (v as unknown[]) : undefined;
    const publisher = m?.[1];
    const before = m?.[2];
    if (m?.[0] !== HELLO || typeof publisher !== 'string' || typeof before !== 'number') {
      this.invalid++;
      throw new DecodeError(`subscription ${this.pattern}: malformed message`);
    }
    let count = this.counts.get(publisher);
    if (count === undefined) this.counts.set(publisher, (count = { n: 0 }));
    this.from.set(inlet, count);
    if (this.lastInlet === inlet) this.lastCount = count;
    const got = count.n;
    if (before > got) this.gap(inlet.node, publisher, before - got);
    count.n = Math.max(got, before);
    return SKIP;
  }

  private gap(node: number, publisher: string, missed: number): void {
    this.missed += missed;
    this.hub.reportDrop(
      this.receiver.name,
      missed,
      `gap: ${missed} message(s) from publisher ${publisher} on node ${node} were lost with an ended session`,
    );
    this.gapSubject.next({ node, publisher, missed });
  }
}
