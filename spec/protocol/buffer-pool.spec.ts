import { OptionError } from '../../lib/errors.js';
import { BufferPool } from '../../lib/protocol/buffer-pool.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { FrameType } from '../../lib/protocol/frame.js';
import { ReplayLog } from '../../lib/protocol/replay-log.js';

const KiB = 1024;

describe('BufferPool', () => {
  it('copies into the smallest power-of-two block and reuses it once released', () => {
    const pool = new BufferPool();
    const src = Buffer.alloc(20 * KiB, 7);
    const a = pool.copy(src);
    expect(a.equals(src)).toBe(true);
    expect(a.buffer.byteLength).toBe(32 * KiB);
    src.fill(9);
    expect(a[0]).toBe(7); // a copy, not a view of the caller's memory
    pool.release(a);
    expect(pool.idleBytes).toBe(32 * KiB);
    const b = pool.copy(Buffer.alloc(17 * KiB, 1));
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(17 * KiB);
    expect(pool.idleBytes).toBe(0);
    expect({ allocated: pool.allocated, reused: pool.reused }).toEqual({ allocated: 1, reused: 1 });
  });

  it('keeps size classes apart: a released 64 KiB block never serves a 16 KiB copy', () => {
    const pool = new BufferPool();
    const big = pool.copy(Buffer.alloc(64 * KiB));
    pool.release(big);
    const small = pool.copy(Buffer.alloc(16 * KiB));
    expect(small.buffer).not.toBe(big.buffer);
    expect(small.buffer.byteLength).toBe(16 * KiB);
    expect(pool.copy(Buffer.alloc(64 * KiB)).buffer).toBe(big.buffer);
  });

  it('gives sizes outside its range a plain copy that release ignores', () => {
    const pool = new BufferPool({ minSize: 16 * KiB, maxSize: 64 * KiB });
    for (const n of [0, 1, 16 * KiB - 1, 64 * KiB + 1, 300 * KiB]) {
      const src = Buffer.alloc(n, 3);
      const c = pool.copy(src);
      expect(c.equals(src)).toBe(true);
      expect(c.buffer).not.toBe(src.buffer);
      pool.release(c);
    }
    expect(pool.idleBytes).toBe(0);
    expect(pool.allocated).toBe(0);
  });

  it('ignores a second release of the same copy and buffers it never handed out', () => {
    const pool = new BufferPool();
    const a = pool.copy(Buffer.alloc(16 * KiB));
    pool.release(a);
    pool.release(a);
    pool.release(a.subarray(100)); // another view of the same block
    pool.release(Buffer.alloc(16 * KiB)); // a stranger of the right size
    expect(pool.idleBytes).toBe(16 * KiB);
    // Only one copy can get the block back: a double release would hand it out twice.
    const x = pool.copy(Buffer.alloc(16 * KiB, 1));
    const y = pool.copy(Buffer.alloc(16 * KiB, 2));
    expect(x.buffer).not.toBe(y.buffer);
    expect(x[0]).toBe(1);
  });

  it('keeps at most maxIdleBytes of released blocks', () => {
    const pool = new BufferPool({ maxIdleBytes: 100 * KiB });
    const copies = Array.from({ length: 10 }, () => pool.copy(Buffer.alloc(32 * KiB)));
    for (const c of copies) pool.release(c);
    expect(pool.idleBytes).toBe(96 * KiB);
  });

  it('lets idle blocks go only after a whole period without copies', () => {
    const pool = new BufferPool();
    pool.release(pool.copy(Buffer.alloc(64 * KiB)));
    expect(pool.trimIfUnused()).toBe(0); // a copy was served in this period
    expect(pool.idleBytes).toBe(64 * KiB);
    expect(pool.trimIfUnused()).toBe(64 * KiB);
    expect(pool.idleBytes).toBe(0);
    expect(pool.copy(Buffer.alloc(64 * KiB)).length).toBe(64 * KiB);
    expect(pool.allocated).toBe(2);
  });

  it('refuses sizes that are not powers of two, and a maximum below the minimum', () => {
    expect(() => new BufferPool({ minSize: 3000 })).toThrow(OptionError);
    expect(() => new BufferPool({ maxSize: 0 })).toThrow(OptionError);
    expect(() => new BufferPool({ minSize: 64 * KiB, maxSize: 16 * KiB })).toThrow(OptionError);
    expect(() => new BufferPool({ maxIdleBytes: -1 })).toThrow(OptionError);
    expect(() => new BufferPool({ maxIdleBytes: Number.NaN })).toThrow(OptionError);
  });
});

describe('ReplayLog with a pool', () => {
  /** A log whose large payloads are pooled copies, as a link writes them. */
  function setup(): { pool: BufferPool; log: ReplayLog; enc: FrameEncoder; copies: Buffer[] } {
    const pool = new BufferPool();
    const log = new ReplayLog(pool);
    const enc = new FrameEncoder({ copyThreshold: 16 * KiB });
    const copies: Buffer[] = [];
    for (let i = 0; i < 4; i++) {
      const c = pool.copy(Buffer.alloc(64 * KiB, i));
      copies.push(c);
      enc.frame(FrameType.DATA, 0, 1, Buffer.from([i])); // a small frame, copied into a block
      enc.frame(FrameType.DATA, 0, 1, c); // a large one, referenced
    }
    log.append(enc.take(), 8);
    return { pool, log, enc, copies };
  }

  it('returns a copy to the pool only once the frame carrying it is acknowledged', () => {
    const { pool, log, copies } = setup();
    log.ack(1); // the small frame before the first copy
    expect(pool.idleBytes).toBe(0);
    log.ack(2);
    expect(pool.idleBytes).toBe(64 * KiB);
    log.ack(7); // up to the small frame before the last copy
    expect(pool.idleBytes).toBe(3 * 64 * KiB);
    // The unacknowledged copy is intact and still replayed.
    const replay = Buffer.concat(log.replayFrom(7));
    expect(replay.subarray(replay.length - 64 * KiB).equals(Buffer.alloc(64 * KiB, 3))).toBe(true);
    expect(copies[3]![0]).toBe(3);
    log.ack(8);
    expect(pool.idleBytes).toBe(4 * 64 * KiB);
  });

  it('never returns copies when cleared (a dead session may still be writing them)', () => {
    const { pool, log } = setup();
    log.clear();
    expect(pool.idleBytes).toBe(0);
  });
});
