/**
 * Framing micro-benchmark: what the frame layer costs on top of CBOR.
 *
 * Both variants encode `{ seq, data }` objects with cbor-x, put them on a
 * simulated wire and decode them again, in the same run:
 *
 * - `raw`: the minimal framing a hand-written protocol would use: a u32
 *   length prefix, messages batched into 64 KiB blocks (large ones
 *   referenced, not copied, as the frame encoder does), and a parser that
 *   copies only the messages that straddle reads.
 * - `switchboard`: FrameEncoder + writeFragment (64 KiB fragments) on the
 *   way out, FrameDecoder + Reassembler on the way in: the path every
 *   remote channel message takes.
 *
 * The simulated wire concatenates the encoded buffers and slices them into
 * 64 KiB reads, like a socket; that step is identical for both and is not
 * timed. cbor-x is called directly for now: lib/protocol/codec.ts (the
 * configured, limit-checking codec) is being written and will replace it.
 *
 * Target (docs/benchmarks.md): framing costs under 15 % over `raw`.
 */
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import { FrameDecoder } from '../lib/protocol/decoder.js';
import { FrameEncoder } from '../lib/protocol/encoder.js';
import { Reassembler, writeFragment } from '../lib/protocol/fragment.js';
import { DEFAULT_FRAME_LIMITS, FrameType } from '../lib/protocol/frame.js';
import type { BenchContext, BenchModule, BenchRow, Round } from './harness.js';
import { compareRounds, seconds, toRow } from './harness.js';

/** Socket reads are at most this large (Node's default read buffer). */
const READ_SIZE = 64 * 1024;
/** A link flushes its encoder about this often (once per event-loop turn). */
const FLUSH_BYTES = 256 * 1024;
/** Same block size and copy threshold as FrameEncoder's defaults. */
const BLOCK_SIZE = 64 * 1024;
const COPY_THRESHOLD = 16 * 1024;

interface Payload {
  label: string;
  size: number;
  /** Messages per round in a full run; a quick run does a fifth. */
  count: number;
}

const PAYLOADS: readonly Payload[] = [
  { label: '16 B', size: 16, count: 200_000 },
  { label: '256 B', size: 256, count: 150_000 },
  { label: '4 KiB', size: 4096, count: 40_000 },
  { label: '64 KiB', size: 64 * 1024, count: 3_000 },
];

interface Message {
  seq: number;
  data: Buffer;
}

/** Concatenates what an encoder produced and cuts it into socket-sized reads. */
function wire(bufs: readonly Buffer[]): Buffer[] {
  const all = Buffer.concat(bufs);
  const reads: Buffer[] = [];
  for (let at = 0; at < all.length; at += READ_SIZE) reads.push(all.subarray(at, at + READ_SIZE));
  return reads;
}

/** Checks that every message arrived, in order, so neither variant can cheat. */
class Checker {
  private next = 0;

  see(value: unknown, size: number): void {
    const m = value as Message;
    if (m.seq !== this.next || m.data.length !== size) {
      throw new Error(`message ${this.next} arrived as seq ${m.seq}, ${m.data.length} bytes`);
    }
    this.next++;
  }

  done(count: number): void {
    if (this.next !== count) throw new Error(`${this.next} of ${count} messages arrived`);
  }
}

/** The baseline's sender: u32 length prefix + CBOR, batched like FrameEncoder. */
class RawWriter {
  private block = Buffer.allocUnsafe(BLOCK_SIZE);
  private start = 0;
  private pos = 0;
  private out: Buffer[] = [];
  pending = 0;

  write(body: Buffer): void {
    const reference = body.length >= COPY_THRESHOLD;
    this.reserve(4 + (reference ? 0 : body.length));
    this.block.writeUInt32BE(body.length, this.pos);
    this.pos += 4;
    if (reference) {
      this.seal();
      this.out.push(body);
    } else {
      this.block.set(body, this.pos);
      this.pos += body.length;
    }
    this.pending += 4 + body.length;
  }

  take(): Buffer[] {
    this.seal();
    const out = this.out;
    this.out = [];
    this.pending = 0;
    return out;
  }

  private reserve(n: number): void {
    if (this.block.length - this.pos >= n) return;
    this.seal();
    this.block = Buffer.allocUnsafe(Math.max(BLOCK_SIZE, n));
    this.start = 0;
    this.pos = 0;
  }

  private seal(): void {
    if (this.pos > this.start) {
      this.out.push(this.block.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}

/** The baseline's receiver: reads the prefix, decodes in place, copies only straddlers. */
class RawReader {
  private left: Buffer | undefined;

  constructor(private readonly onMessage: (body: Buffer) => void) {}

  push(chunk: Buffer): void {
    let pos = 0;
    if (this.left !== undefined) {
      let left = this.left;
      if (left.length < 4) {
        const take = Math.min(4 - left.length, chunk.length);
        left = Buffer.concat([left, chunk.subarray(0, take)]);
        pos = take;
        if (left.length < 4) {
          this.left = left;
          return;
        }
      }
      const need = 4 + left.readUInt32BE(0) - left.length;
      if (chunk.length - pos < need) {
        this.left = Buffer.concat([left, chunk.subarray(pos)]);
        return;
      }
      this.left = undefined;
      this.onMessage(Buffer.concat([left.subarray(4), chunk.subarray(pos, pos + need)]));
      pos += need;
    }
    while (chunk.length - pos >= 4) {
      const len = chunk.readUInt32BE(pos);
      if (chunk.length - pos - 4 < len) break;
      this.onMessage(chunk.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    if (pos < chunk.length) this.left = Buffer.from(chunk.subarray(pos));
  }
}

function rawRound(payload: Payload, count: number, data: Buffer): Round {
  return () => {
    let t = seconds();
    const writer = new RawWriter();
    const sent: Buffer[] = [];
    for (let seq = 0; seq < count; seq++) {
      writer.write(cborEncode({ seq, data }));
      if (writer.pending >= FLUSH_BYTES) sent.push(...writer.take());
    }
    sent.push(...writer.take());
    let elapsed = seconds() - t;

    const reads = wire(sent);
    const check = new Checker();
    t = seconds();
    const reader = new RawReader((body) => check.see(cborDecode(body), payload.size));
    for (const r of reads) reader.push(r);
    elapsed += seconds() - t;
    check.done(count);
    return count / elapsed;
  };
}

function framedRound(payload: Payload, count: number, data: Buffer): Round {
  const fragmentSize = DEFAULT_FRAME_LIMITS.fragmentSize;
  const stream = 1;
  return () => {
    let t = seconds();
    const encoder = new FrameEncoder({ blockSize: BLOCK_SIZE, copyThreshold: COPY_THRESHOLD });
    const sent: Buffer[] = [];
    for (let seq = 0; seq < count; seq++) {
      const body = cborEncode({ seq, data });
      let offset = 0;
      do offset = writeFragment(encoder, stream, 0, body, offset, fragmentSize);
      while (offset < body.length);
      if (encoder.pendingBytes >= FLUSH_BYTES) sent.push(...encoder.take());
    }
    sent.push(...encoder.take());
    let elapsed = seconds() - t;

    const reads = wire(sent);
    const check = new Checker();
    t = seconds();
    const reassembler = new Reassembler();
    const decoder = new FrameDecoder({
      onFrame(type, flags, streamId, body) {
        if (type !== FrameType.DATA && type !== FrameType.CONT) return;
        const message = reassembler.add(type, flags, streamId, body);
        if (message !== undefined) check.see(cborDecode(message), payload.size);
      },
    });
    for (const r of reads) decoder.push(r);
    elapsed += seconds() - t;
    check.done(count);
    return count / elapsed;
  };
}

/** The framing bench module: one workload per payload size, `raw` vs `switchboard`. */
export const framing: BenchModule = {
  name: 'framing',
  description: 'frame encode+decode of CBOR {seq, data} messages vs a u32-prefix baseline',
  baselines: ['raw'],
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    for (const payload of PAYLOADS) {
      const count = ctx.quick ? Math.ceil(payload.count / 5) : payload.count;
      const data = Buffer.alloc(payload.size, 0x5a);
      const workload = `encode+decode ${payload.label}`;
      const m = await compareRounds(
        ctx.rounds,
        {
          raw: rawRound(payload, count, data),
          switchboard: framedRound(payload, count, data),
        },
        // Large payloads warm up for a few hundred MB (heap sizing), not one short round.
        { rounds: 1, seconds: ctx.quick ? 0.3 : 1 },
      );
      for (const [variant, measurement] of Object.entries(m)) {
        rows.push(toRow('framing', workload, variant, 'msg/s', measurement));
      }
      const overhead = 1 - m.switchboard!.median / m.raw!.median;
      ctx.log(`framing ${payload.label}: framing overhead ${(overhead * 100).toFixed(1)} %`);
    }
    return rows;
  },
};
