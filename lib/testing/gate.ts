/**
 * One direction of one proxied connection: the bytes one node sends its
 * peer, on their way through the kit's proxy (lib/testing/proxy.ts). A gate
 * passes them on, holds them (a blackhole), or passes them on late (a
 * delay), keeping their order and TCP's backpressure; and it carries the
 * sending side's end of the connection (its FIN or its reset) the same
 * way, so a blackholed node's close never leaks through the blackhole.
 */
import type net from 'node:net';

/** What a gate does with the bytes it is given, read again for every chunk. */
export interface GateFaults {
  /** Nothing passes (bytes, FIN or reset) until released. */
  readonly hold: boolean;
  /** Each chunk passes this many ms after it arrived. */
  readonly delayMs: number;
}

/** Bytes queued in a delaying gate before it stops reading from its source. */
const DELAY_QUEUE_BYTES = 1024 * 1024;

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
    if (!this.waitingDrain && this.queuedBytes < DELAY_QUEUE_BYTES) this.src.resume();
    this.flush();
  }

  /** Both sockets are gone: drop what is queued. */
  dispose(): void {
    clearTimeout(this.timer);
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private take(chunk: Buffer): void {
    const { hold, delayMs } = this.faults();
    if (!hold && delayMs <= 0 && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    // Held or delayed: keep it, in order, and stop reading once enough is
    // queued, so the sender feels backpressure as through a slow network.
    this.queue.push({ chunk, due: performance.now() + Math.max(0, delayMs) });
    this.queuedBytes += chunk.length;
    if (hold || this.queuedBytes >= DELAY_QUEUE_BYTES) this.src.pause();
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
    if (this.faults().hold) return;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) {
      const { chunk } = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.write(chunk);
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.flush(), Math.max(1, this.queue[0]!.due - now));
      return;
    }
    if (!this.waitingDrain && !this.src.destroyed) this.src.resume();
    if (this.ended !== undefined) this.propagate();
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
    if (this.ended === 'reset') this.dst.resetAndDestroy();
    else this.dst.end();
  }
}
