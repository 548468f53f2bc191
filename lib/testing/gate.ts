/**
 * One direction of one proxied connection: the bytes one node sends its
 * peer, on their way through the kit's proxy (lib/testing/proxy.ts). A gate
 * passes them on, holds them (a blackhole), passes them on late (a
 * delay) or no faster than a rate (a bandwidth limit), keeping their order
 * and TCP's backpressure; and it carries the
 * sending side's end of the connection (its FIN or its reset) the same
 * way, so a blackholed node's close never leaks through the blackhole.
 */
import type net from 'node:net';
import { resetSocket } from './reset.js';

/** What a gate does with the bytes it is given, read again for every chunk. */
export interface GateFaults {
  /** Nothing passes (bytes, FIN or reset) until released. */
  readonly hold: boolean;
  /** Each chunk passes this many ms after it arrived. */
  readonly delayMs: number;
  /** At most this many bytes pass per second; 0 is no limit. */
  readonly bytesPerSecond: number;
}

/** Bytes queued in a delaying gate before it stops reading from its source. */
const DELAY_QUEUE_BYTES = 1024 * 1024;

/**
 * A limited gate writes a slice of at most this many seconds' worth of
 * bytes at a time (and waits that long after it), so a large chunk trickles
 * out instead of passing in one burst. It is also the most the gate ever
 * writes ahead of the rate: B bytes take at least (B - slice) / rate.
 */
export const SLICE_SECONDS = 0.02;

/**
 * Seconds' worth of bytes a limited gate queues before it stops reading: a
 * throttled link's own buffer stays small, and the sender feels the limit
 * (as through a slow network) rather than the proxy hiding it in memory.
 */
const LIMITED_QUEUE_SECONDS = 0.1;
const LIMITED_QUEUE_MIN = 16 * 1024;

/** The bytes a gate limited to `bytesPerSecond` writes at once. */
export function sliceBytes(bytesPerSecond: number): number {
  return Math.max(1, Math.floor(bytesPerSecond * SLICE_SECONDS));
}

function queueLimit(bytesPerSecond: number): number {
  if (bytesPerSecond <= 0) return DELAY_QUEUE_BYTES;
  return Math.min(
    DELAY_QUEUE_BYTES,
    Math.max(LIMITED_QUEUE_MIN, Math.floor(bytesPerSecond * LIMITED_QUEUE_SECONDS)),
  );
}

interface Queued {
  readonly chunk: Buffer;
  readonly due: number;
}

/** The bytes from `src` to `dst`, through the faults of {@link GateFaults}. */
export class Gate {
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** How the source ended, once it has: 'end' (a FIN) or 'reset'. */
  private ended: 'end' | 'reset' | undefined;
  private propagated = false;
  private waitingDrain = false;
  /** Under a bandwidth limit, when (performance.now()) the next slice may be written. */
  private nextSliceAt = 0;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly faults: () => GateFaults,
  ) {}

  /** Starts moving bytes; `first` is what was read from `src` before (the sniffed HELLO). */
  start(first: Buffer | undefined): void {
    if (first !== undefined && first.length > 0) this.take(first);
    this.src.on('data', (chunk: Buffer) => this.take(chunk));
    this.src.on('end', () => this.finish('end'));
    this.src.on('close', (hadError) => this.finish(hadError ? 'reset' : 'end'));
    this.src.on('error', () => this.finish('reset'));
    this.update();
  }

  /** Faults changed: release held bytes, or start holding. */
  update(): void {
    if (this.faults().hold) {
      this.src.pause();
      return;
    }
    if (!this.waitingDrain && this.queuedBytes < queueLimit(this.faults().bytesPerSecond))
      this.src.resume();
    this.flush();
  }

  /** Both sockets are gone: drop what is queued. */
  dispose(): void {
    clearTimeout(this.timer);
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private take(chunk: Buffer): void {
    const { hold, delayMs, bytesPerSecond } = this.faults();
    if (!hold && delayMs <= 0 && bytesPerSecond <= 0 && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    // Held, delayed or limited: keep it, in order, and stop reading once
    // enough is queued, so the sender feels backpressure as through a slow
    // network.
    this.queue.push({ chunk, due: performance.now() + Math.max(0, delayMs) });
    this.queuedBytes += chunk.length;
    if (hold || this.queuedBytes >= queueLimit(bytesPerSecond)) this.src.pause();
    this.flush();
  }

  private write(chunk: Buffer): void {
    if (this.dst.destroyed) return;
    if (!this.dst.write(chunk) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.src.pause();
      this.dst.once('drain', () => {
        this.waitingDrain = false;
        this.update();
      });
    }
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { hold, bytesPerSecond } = this.faults();
    if (hold) return;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) {
      if (bytesPerSecond > 0) {
        if (this.nextSliceAt > now) break;
        this.writeSlice(now, bytesPerSecond);
        continue;
      }
      const { chunk } = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.write(chunk);
    }
    // Read again once the queue is half empty, so a limited link never idles
    // waiting for its sender while there is more to come.
    const room = this.queuedBytes < queueLimit(bytesPerSecond) / 2;
    if (room && !this.waitingDrain && !this.src.destroyed) this.src.resume();
    if (this.queue.length > 0) {
      const due = Math.max(this.queue[0]!.due, bytesPerSecond > 0 ? this.nextSliceAt : 0);
      this.timer = setTimeout(() => this.flush(), Math.max(1, due - now));
      return;
    }
    if (this.ended !== undefined) this.propagate();
  }

  /**
   * Writes one slice of the queue's head under a limit of `bytesPerSecond`,
   * and holds the next one back for as long as this one takes at that rate.
   * Counting from `now` when the gate was idle (or its timer fired late)
   * never lets a late timer catch up in a burst: the rate is an upper bound.
   */
  private writeSlice(now: number, bytesPerSecond: number): void {
    const head = this.queue[0]!;
    const n = Math.min(head.chunk.length, sliceBytes(bytesPerSecond));
    if (n === head.chunk.length) this.queue.shift();
    else this.queue[0] = { chunk: head.chunk.subarray(n), due: head.due };
    this.queuedBytes -= n;
    this.write(head.chunk.subarray(0, n));
    this.nextSliceAt = Math.max(this.nextSliceAt, now) + (n * 1000) / bytesPerSecond;
  }

  private finish(how: 'end' | 'reset'): void {
    // A reset after a FIN is still a reset; a FIN after a reset changes nothing.
    if (this.ended === 'reset') return;
    this.ended = how;
    this.flush();
  }

  /** The source ended: once everything before it has passed, so does the destination. */
  private propagate(): void {
    if (this.propagated || this.faults().hold || this.queue.length > 0) return;
    this.propagated = true;
    if (this.dst.destroyed) return;
    if (this.ended === 'reset') resetSocket(this.dst);
    else this.dst.end();
  }
}
