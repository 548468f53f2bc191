import { OptionError } from '../errors.js';

/** Options of a {@link BufferPool}. */
export interface BufferPoolOptions {
  /** Smallest copy served from the pool, in bytes (a power of two). Default 16 KiB. */
  minSize?: number;
  /** Largest copy served from the pool, in bytes (a power of two). Default 1 MiB. */
  maxSize?: number;
  /** Bytes of released blocks kept for reuse; beyond it they are left to the GC. Default 8 MiB. */
  maxIdleBytes?: number;
}

/**
 * Copies of large payloads in reusable blocks, so a link that must keep what
 * it sent until the peer acknowledges it does not allocate (and later
 * garbage-collect) a fresh buffer per message. A copy of n bytes comes from
 * the smallest power-of-two block that holds it; {@link release} returns the
 * block once nothing refers to the copy any more.
 *
 * The pool knows its blocks by their ArrayBuffer (weakly), so releasing a
 * buffer it did not hand out, or the same copy twice, does nothing; a copy
 * that is never released is simply collected.
 */
export class BufferPool {
  readonly minSize: number;
  readonly maxSize: number;
  readonly maxIdleBytes: number;
  /** Free blocks per size class (index = log2(size / minSize)). */
  private readonly free: Buffer[][];
  /** Blocks handed out and not yet released, by their memory. */
  private readonly leased = new WeakMap<ArrayBufferLike, Buffer>();
  private idle = 0;
  /** Copies served from a reused block (for tests and stats). */
  reused = 0;
  /** Copies that needed a new block. */
  allocated = 0;
  /** Copies served since the last {@link trimIfUnused}. */
  private recent = 0;

  constructor(options: BufferPoolOptions = {}) {
    this.minSize = powerOfTwo('minSize', options.minSize ?? 16 * 1024);
    this.maxSize = powerOfTwo('maxSize', options.maxSize ?? 1024 * 1024);
    if (this.maxSize < this.minSize) {
      throw new OptionError('maxSize', `must be at least minSize (${this.minSize})`);
    }
    const idle = options.maxIdleBytes ?? 8 * 1024 * 1024;
    if (!Number.isSafeInteger(idle) || idle < 0) {
      throw new OptionError('maxIdleBytes', `expected a non-negative integer, got ${idle}`);
    }
    this.maxIdleBytes = idle;
    this.free = [];
    for (let s = this.minSize; s <= this.maxSize; s *= 2) this.free.push([]);
  }

  /** Bytes held in released blocks, waiting for reuse. */
  get idleBytes(): number {
    return this.idle;
  }

  /**
   * A private copy of `bytes`. Sizes outside [minSize, maxSize] get a plain
   * buffer of their own (never pooled); the rest get a view of a pooled block.
   */
  copy(bytes: Uint8Array): Buffer {
    const n = bytes.length;
    if (n < this.minSize || n > this.maxSize) {
      const out = Buffer.allocUnsafeSlow(n);
      out.set(bytes);
      return out;
    }
    this.recent++;
    const cls = sizeClass(n, this.minSize);
    let block = this.free[cls]!.pop();
    if (block === undefined) {
      block = Buffer.allocUnsafeSlow(this.minSize << cls);
      this.allocated++;
    } else {
      this.idle -= block.length;
      this.reused++;
    }
    this.leased.set(block.buffer, block);
    block.set(bytes);
    return n === block.length ? block : block.subarray(0, n);
  }

  /**
   * Gives a copy back. The caller promises that nothing will read `buf` (or
   * any other view of its block) again. Anything not leased from this pool
   * is ignored, so callers may pass every buffer they let go of.
   */
  release(buf: Buffer): void {
    const block = this.leased.get(buf.buffer);
    if (block === undefined) return;
    this.leased.delete(buf.buffer);
    if (this.idle + block.length > this.maxIdleBytes) return;
    this.idle += block.length;
    this.free[sizeClass(block.length, this.minSize)]!.push(block);
  }

  /**
   * Lets the idle blocks go when no copy was served since the previous call,
   * so a link that stopped carrying large messages does not keep their
   * memory. Returns the bytes let go.
   */
  trimIfUnused(): number {
    const busy = this.recent > 0;
    this.recent = 0;
    if (busy || this.idle === 0) return 0;
    const freed = this.idle;
    for (const list of this.free) list.length = 0;
    this.idle = 0;
    return freed;
  }
}

function sizeClass(n: number, minSize: number): number {
  let cls = 0;
  for (let s = minSize; s < n; s *= 2) cls++;
  return cls;
}

function powerOfTwo(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || !Number.isInteger(Math.log2(v))) {
    throw new OptionError(name, `expected a power of two, got ${v}`);
  }
  return v;
}
