/**
 * RPC's streams: reading a stream the other side sends (items with an end
 * marker, docs/wire-protocol.md 10.14.2) and sending one, for both the
 * caller and the server. Each stream is one anonymous channel per call and
 * direction, so each has its own credit window (a slow reader slows its
 * writer and nothing else).
 */
import { isObservable, Observable } from 'rxjs';
import type { Subscription } from 'rxjs';
import { ErrorCode, SwitchboardError } from '../../../errors.js';
import { Headed } from '../../envelope.js';
import { Queue } from '../../queue.js';
import type { Receiver } from '../../receiver.js';
import type { Sender } from '../../sender.js';
import type { StreamSource } from './types.js';
import { errorFromInfo, errorInfo, headOf, Item } from './wire.js';

/** Items of an Observable buffered while the other side reads slowly, before ERR_SB_OVERFLOW. */
const OBSERVABLE_BUFFER = 1024;
const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true });

/** Something `for await` can read: Observables are adapted with a bounded buffer. */
export function iterableOf<T>(source: StreamSource<T>): AsyncIterable<T> | Iterable<T> {
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
 * An Observable read as an async iterable, through the core's queue.
 * Observables cannot be slowed down, so items wait in a buffer of
 * {@link OBSERVABLE_BUFFER}; when the reader falls further behind, the
 * stream fails with ERR_SB_OVERFLOW.
 */
function observableIterable<T>(source: Observable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let sub: Subscription | undefined;
      const queue = new Queue<T, undefined>(
        'an Observable stream',
        { taken: () => undefined, ready: () => true, returned: () => sub?.unsubscribe() },
        undefined,
      );
      const it = queue[Symbol.asyncIterator]();
      return {
        next: () => {
          sub ??= source.subscribe({
            next: (v) => {
              if (queue.length >= OBSERVABLE_BUFFER) {
                queue.fail(
                  new SwitchboardError(
                    ErrorCode.OVERFLOW,
                    `an Observable stream ran ${OBSERVABLE_BUFFER} items ahead of its reader`,
                  ),
                  true,
                );
                sub?.unsubscribe();
              } else queue.push(v, undefined, 0, true);
            },
            error: (e: unknown) =>
              queue.fail(
                e instanceof SwitchboardError
                  ? e
                  : new SwitchboardError(ErrorCode.INTERNAL, String(e), { cause: e }),
              ),
            complete: () => queue.end(),
          });
          return it.next();
        },
        return: () => it.return!(),
      };
    },
  };
}

/** How sending a stream ended. */
export type SendOutcome =
  | { readonly kind: 'done' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'source-failed'; readonly error: unknown }
  | { readonly kind: 'send-failed'; readonly error: unknown };

/**
 * Sends the items of `source` into `sender` as credit allows, then the end
 * marker; stops (without the marker) once `wanted()` turns false. The
 * source's own failure is sent as an error item; a failure to send (the
 * reader went away, an item the codec refuses) is returned, and the caller
 * may still send an error item before it closes `sender`.
 */
export async function sendStream(
  source: StreamSource<unknown>,
  sender: Sender<unknown>,
  wanted: () => boolean,
  sourceFailed?: (error: unknown) => void,
): Promise<SendOutcome> {
  let sending = false;
  try {
    for await (const item of iterableOf(source)) {
      if (!wanted()) return { kind: 'stopped' };
      sending = true;
      await sender.send(new Headed([Item.VALUE], item));
      sending = false;
    }
    if (!wanted()) return { kind: 'stopped' };
    sending = true;
    await sender.send(new Headed([Item.END], null));
    return { kind: 'done' };
  } catch (err) {
    if (sending) return { kind: 'send-failed', error: err };
    // The error item goes first (at once when credit allows), then the owner learns of it.
    const told = wanted()
      ? sender.send(new Headed([Item.ERROR], errorInfo(err))).catch(() => undefined)
      : undefined;
    sourceFailed?.(err);
    await told;
    return { kind: 'source-failed', error: err };
  }
}

/** What reading a stream of items reports to its owner. */
export interface ItemReader {
  /** The other side's node (for errors). */
  readonly node: number;
  /** Says what happened when the stream ended without its end marker (its sender vanished). */
  vanished(): SwitchboardError;
  /** The end marker came. */
  ended(): void;
  /** An error item came. */
  failed(error: SwitchboardError): void;
}

/**
 * Reads items from `rx`: values come out, the end marker ends the
 * iteration, an error item or a vanished sender fails it.
 */
export class ItemStream<T> implements AsyncIterableIterator<T> {
  private ended = false;
  private failure: Error | undefined;

  constructor(
    private readonly rx: Receiver<unknown>,
    private readonly owner: ItemReader,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  /** True once the stream ended normally or failed. */
  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(DONE);
    return this.rx.next().then(this.onItem, this.onFailure);
  }

  return(): Promise<IteratorResult<T>> {
    this.ended = true;
    this.rx.close();
    return Promise.resolve(DONE);
  }

  /** Ends the stream with `error` (the call failed): iteration rejects with it. */
  fail(error: Error): void {
    if (this.closed) return;
    this.failure = error;
    this.rx.fail(
      error instanceof SwitchboardError
        ? error
        : new SwitchboardError(ErrorCode.INTERNAL, String(error), { cause: error }),
    );
  }

  /** The items as an Observable, pulled as fast as the subscriber takes them; `stop` runs on unsubscribe. */
  observable(stop: () => void): Observable<T> {
    return pulled(() => this.next(), stop);
  }

  private readonly onItem = (r: IteratorResult<unknown>): IteratorResult<T> => {
    if (r.done === true) {
      if (this.ended) return DONE;
      const error = this.failure ?? this.owner.vanished();
      this.failure ??= error;
      this.owner.failed(asSwitchboardError(error));
      throw error;
    }
    const m = headOf(r.value);
    switch (m?.head[0]) {
      case Item.VALUE:
        return { value: m.body as T, done: false };
      case Item.END:
        this.ended = true;
        this.rx.close();
        this.owner.ended();
        return DONE;
      default: {
        const error = errorFromInfo(this.owner.node, m?.body);
        this.failure = error;
        this.rx.close();
        this.owner.failed(error);
        throw error;
      }
    }
  };

  private readonly onFailure = (err: unknown): never => {
    throw this.failure ?? err;
  };
}

function asSwitchboardError(e: Error): SwitchboardError {
  return e instanceof SwitchboardError
    ? e
    : new SwitchboardError(ErrorCode.INTERNAL, String(e), { cause: e });
}

/**
 * An Observable of what `next` yields, pulled as fast as the subscriber
 * takes it: completes at `done`, errors with a rejection; `stop` runs on
 * unsubscribe.
 */
export function pulled<T>(
  next: () => Promise<IteratorResult<T, unknown>>,
  stop: () => void,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let stopped = false;
    const pull = (): void => {
      next().then(
        (r) => {
          if (stopped) return;
          if (r.done === true) subscriber.complete();
          else {
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
      stop();
    };
  });
}
