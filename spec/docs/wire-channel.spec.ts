/**
 * Keeps the channel-layer dumps of docs/wire-protocol.md (sections 13.5 to
 * 13.9, the `wire-channel` blocks) honest. Two real channel hubs, node 0 and
 * node 1, are joined by a transport that turns what each hub sends into
 * frame bytes (the link's own frame encoder and fragmenter) and feeds those
 * bytes, one at a time, to the other hub through the real frame decoder and
 * reassembler. Each scenario (a plain channel, a receiver that closes, RPC,
 * pub-sub, push-pull) runs on that pair, and every marked hex block of the
 * document must hold exactly the bytes the code sent. The notes after the
 * hex (the column after two spaces) are free text.
 *
 * The blocks use their own marker, `<!-- wire-channel: name -->`, so that
 * spec/protocol/wire-example.spec.ts (marker `wire-example`) and this spec
 * each own their blocks. After a deliberate protocol change, run
 *
 *   UPDATE_WIRE_CHANNEL=1 npm test -- spec/docs/wire-channel
 *
 * to rewrite every marked block (notes included) from the code, then review
 * the diff of docs/wire-protocol.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Subject } from 'rxjs';
import { ChannelHub } from '../../lib/channel/hub.js';
import type { HubTransport } from '../../lib/channel/hub.js';
import { UNLIMITED_CREDIT } from '../../lib/channel/receiver.js';
import { PUBSUB_KIND, PubSub } from '../../lib/channel/patterns/pubsub/pubsub.js';
import { MAX_TOPIC_BYTES } from '../../lib/channel/patterns/pubsub/topics.js';
import { PushPull } from '../../lib/channel/patterns/pushpull/pushpull.js';
import { PUSHPULL_KIND } from '../../lib/channel/patterns/pushpull/task.js';
import { Rpc } from '../../lib/channel/patterns/rpc/rpc.js';
import type { Sender } from '../../lib/channel/sender.js';
import { ErrorCode, SwitchboardError } from '../../lib/errors.js';
import {
  DEFAULT_CODEC_LIMITS,
  HANDLE_TAG,
  decodeValue,
  encodeValue,
} from '../../lib/protocol/codec.js';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { Reassembler, writeFragment } from '../../lib/protocol/fragment.js';
import { encodeHead } from '../../lib/protocol/head.js';
import {
  DEFAULT_FRAME_LIMITS,
  FrameFlag,
  FrameType,
  HEADER_SIZE,
  encodeFrame,
  frameTypeName,
} from '../../lib/protocol/frame.js';
import type { SwitchboardEvent } from '../../lib/switchboard/events.js';
import { parseNodes } from '../../lib/switchboard/nodes.js';
import { docBlocks, parseHex, rewriteDoc, toHex } from '../support/doc-blocks.js';
import type { DocBlock } from '../support/doc-blocks.js';

const DOC_PATH = fileURLToPath(new URL('../../docs/wire-protocol.md', import.meta.url));
const NODES = parseNodes(['10.0.0.1:7400', '10.0.0.2:7400']);

// ---- two hubs joined by frame bytes ---------------------------------------------

/**
 * Node 0 and node 1, each with a real ChannelHub. What a hub sends is
 * encoded into frames and logged; {@link settle} delivers the frames to the
 * other hub byte by byte, through a FrameDecoder and a Reassembler as a link
 * does, until nothing moves any more.
 */
class Pair {
  readonly hubs: readonly [ChannelHub, ChannelHub];
  readonly events$ = new Subject<SwitchboardEvent>();
  readonly emitted: SwitchboardEvent[] = [];
  private readonly pending: [Buffer[], Buffer[]] = [[], []];
  private readonly log: [Buffer[], Buffer[]] = [[], []];
  private readonly taken = [0, 0];
  private readonly decoders: readonly [FrameDecoder, FrameDecoder];

  constructor() {
    this.hubs = [new ChannelHub(this.transport(0)), new ChannelHub(this.transport(1))];
    this.decoders = [this.decoder(0), this.decoder(1)];
  }

  /** Frames `from` sent since the last call. */
  take(from: 0 | 1): Buffer[] {
    const out = this.log[from].slice(this.taken[from]);
    this.taken[from] = this.log[from].length;
    return out;
  }

  /**
   * Delivers everything sent, and everything that causes, until both
   * directions stay quiet for two event-loop turns (a worker's
   * acknowledgements leave in a `setImmediate` scheduled during the turn).
   */
  async settle(): Promise<void> {
    let quiet = 0;
    while (quiet < 2) {
      let moved = false;
      for (const from of [0, 1] as const) {
        for (const frame of this.pending[from].splice(0)) {
          moved = true;
          for (const byte of frame) this.decoders[from].push(Buffer.of(byte));
        }
      }
      if (moved) {
        quiet = 0;
        continue;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
      quiet = this.pending[0].length + this.pending[1].length === 0 ? quiet + 1 : 0;
    }
  }

  close(): void {
    const reason = new SwitchboardError(ErrorCode.CLOSED, 'spec over');
    for (const hub of this.hubs) hub.shutdown(reason, false);
    this.events$.complete();
  }

  private transport(id: 0 | 1): HubTransport {
    const out = (frame: Buffer): void => {
      this.pending[id].push(frame);
      this.log[id].push(frame);
    };
    return {
      id,
      nodes: NODES,
      maxMessageSize: DEFAULT_FRAME_LIMITS.maxMessageSize,
      hasSession: (peer) => peer !== id,
      healthy: (peer) => peer !== id,
      writable: () => true,
      peerLimit: () => DEFAULT_FRAME_LIMITS.maxMessageSize,
      fresh: () => true,
      leases: new Float64Array(NODES.length),
      freshOnArrival: () => true,
      ranSince: () => undefined,
      sendFrame: (_peer, type, flags, stream, payload) =>
        out(encodeFrame(type, flags, stream, payload)),
      sendMessage: (_peer, stream, flags, body, _owned, head) => {
        // A link writes the head in front of the body: the message is both.
        const bytes = head === undefined ? body : encodeHead(head, body);
        let offset = 0;
        do {
          const encoder = new FrameEncoder();
          offset = writeFragment(
            encoder,
            stream,
            flags,
            bytes,
            offset,
            DEFAULT_FRAME_LIMITS.fragmentSize,
          );
          out(Buffer.concat(encoder.take()));
        } while (offset < bytes.length);
      },
      emit: (event) => this.emitted.push(event),
    };
  }

  private decoder(from: 0 | 1): FrameDecoder {
    const reassembler = new Reassembler();
    return new FrameDecoder({
      onFrame: (type, flags, stream, payload) => {
        const hub = this.hubs[from === 0 ? 1 : 0];
        if (type === FrameType.DATA || type === FrameType.CONT) {
          const message = reassembler.add(type, flags, stream, payload);
          if (message !== undefined)
            hub.onMessage(from, stream, reassembler.completedFlags, message);
        } else {
          hub.onControl(from, type, flags, stream, payload);
        }
      },
    });
  }
}

// ---- annotated dumps --------------------------------------------------------------

const HEX_COLUMN = 16 * 3 + 1;

function hexLine(bytes: Buffer, note: string): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return note === '' ? hex : `${hex.padEnd(HEX_COLUMN)} ${note}`;
}

/** `bytes` 16 to a line, the note on the first. */
function longLines(bytes: Buffer, note: string): string[] {
  if (bytes.length === 0) return [];
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 16)
    out.push(hexLine(bytes.subarray(i, i + 16), i === 0 ? note : ''));
  return out;
}

function streamText(stream: number): string {
  return stream >= 0x8000_0000 ? `0x${stream.toString(16)}` : String(stream);
}

function headerLine(frame: Buffer): string {
  const length = frame.readUInt32BE(0);
  const flags = frame[5]!;
  const names = [
    flags & FrameFlag.MORE ? 'MORE' : '',
    flags & FrameFlag.RAW ? 'RAW' : '',
    flags & FrameFlag.HEAD ? 'HEAD' : '',
  ];
  const flagText =
    flags === 0
      ? 'flags 0'
      : `flags 0x${flags.toString(16).padStart(2, '0')} ${names.filter((n) => n !== '').join('|')}`;
  return hexLine(
    frame.subarray(0, HEADER_SIZE),
    `header: length ${length} (6 + ${length - 6}), type ${frameTypeName(frame[4]!)}, ` +
      `${flagText}, stream ${streamText(frame.readUInt32BE(6))}`,
  );
}

const TAG_NAMES = new Map<number, string>([
  [1, 'Date'],
  [2, 'positive bignum'],
  [3, 'negative bignum'],
  [64, 'Uint8Array'],
  [258, 'Set'],
  [259, 'Map'],
  [HANDLE_TAG, 'handle'],
]);

/**
 * One line per CBOR item (strings longer than a line continue on the next),
 * nested items indented; `labels` name the elements of a top-level array.
 */
function cborLines(bytes: Buffer, labels: readonly string[] = []): string[] {
  const lines: string[] = [];
  let pos = 0;
  const argument = (info: number): number => {
    const size = info < 24 ? 0 : 1 << (info - 24);
    let value = info < 24 ? info : 0;
    for (let i = 0; i < size; i++) value = value * 256 + bytes[pos + 1 + i]!;
    return value;
  };
  const item = (depth: number, label = ''): void => {
    const start = pos;
    const initial = bytes[pos]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    const indent = '  '.repeat(depth) + (label === '' ? '' : `${label}: `);
    if (info === 31) throw new Error('the dumps use no indefinite lengths');
    const head = 1 + (info < 24 ? 0 : 1 << (info - 24));
    const arg = argument(info);
    pos += head;
    // cbor-x writes plain objects with a 2-byte pair count however small: say so.
    const minimal = info < 24 || arg >= [24, 256, 65536, 2 ** 32][info - 24]!;
    const width = minimal ? '' : ` (count in ${1 << (info - 24)} bytes)`;
    switch (major) {
      case 0:
        lines.push(hexLine(bytes.subarray(start, pos), `${indent}unsigned ${arg}`));
        return;
      case 1:
        lines.push(hexLine(bytes.subarray(start, pos), `${indent}negative ${-1 - arg}`));
        return;
      case 2:
      case 3: {
        const content = bytes.subarray(pos, pos + arg);
        pos += arg;
        const note =
          major === 3
            ? `${indent}text(${arg}) ${JSON.stringify(content.toString('utf8'))}`
            : `${indent}bytes(${arg})`;
        lines.push(...longLines(bytes.subarray(start, pos), note));
        return;
      }
      case 4:
        lines.push(hexLine(bytes.subarray(start, pos), `${indent}array(${arg})${width}`));
        for (let i = 0; i < arg; i++) item(depth + 1, depth === 0 ? (labels[i] ?? '') : '');
        return;
      case 5:
        lines.push(
          hexLine(
            bytes.subarray(start, pos),
            `${indent}map, ${arg} pair${arg === 1 ? '' : 's'}${width}`,
          ),
        );
        for (let i = 0; i < arg * 2; i++) item(depth + 1);
        return;
      case 6:
        lines.push(
          hexLine(
            bytes.subarray(start, pos),
            `${indent}tag ${arg}${TAG_NAMES.has(arg) ? ` (${TAG_NAMES.get(arg)!})` : ''}`,
          ),
        );
        item(depth + 1);
        return;
      default: {
        const simple: Record<number, string> = {
          20: 'false',
          21: 'true',
          22: 'null',
          23: 'undefined',
        };
        let note = simple[info];
        if (note === undefined) {
          const b = bytes.subarray(start + 1, pos);
          note =
            info === 27
              ? `float64 ${b.readDoubleBE(0)}`
              : info === 26
                ? `float32 ${b.readFloatBE(0)}`
                : `float16 0x${b.toString('hex')}`;
        }
        lines.push(hexLine(bytes.subarray(start, pos), indent + note));
      }
    }
  };
  item(0);
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} bytes after the CBOR item`);
  return lines;
}

function payloadOf(frame: Buffer): Buffer {
  return frame.subarray(HEADER_SIZE);
}

/** A frame whose payload is one CBOR item (or empty). */
function cborFrameLines(frame: Buffer, labels: readonly string[] = []): string[] {
  const payload = payloadOf(frame);
  if (payload.length === 0) return [`${headerLine(frame)} (no payload)`];
  return [headerLine(frame), ...cborLines(payload, labels)];
}

/** A DATA frame with flag HEAD: its head fields (10.6), then its body (CBOR, or raw with RAW). */
function headedFrameLines(frame: Buffer, labels: readonly string[], bodyLabel: string): string[] {
  const p = payloadOf(frame);
  const count = p[0]!;
  const lines = [headerLine(frame), hexLine(p.subarray(0, 1), `head: ${count} field(s)`)];
  let at = 1;
  for (let i = 0; i < count; i++) {
    const type = p[at]!;
    const label = labels[i] ?? `field ${i}`;
    if (type === 0x01) {
      lines.push(hexLine(p.subarray(at, at + 5), `  ${label}: u32 ${p.readUInt32BE(at + 1)}`));
      at += 5;
    } else if (type === 0x02) {
      lines.push(hexLine(p.subarray(at, at + 9), `  ${label}: f64 ${p.readDoubleBE(at + 1)}`));
      at += 9;
    } else {
      const n = p.readUInt16BE(at + 1);
      const text = p.toString('utf8', at + 3, at + 3 + n);
      lines.push(hexLine(p.subarray(at, at + 3), `  ${label}: string, ${n} bytes`));
      lines.push(hexLine(p.subarray(at + 3, at + 3 + n), `    ${JSON.stringify(text)}`));
      at += 3 + n;
    }
  }
  const body = p.subarray(at);
  if ((frame[5]! & FrameFlag.RAW) !== 0) lines.push(hexLine(body, `${bodyLabel}: raw bytes`));
  else {
    const [first, ...rest] = cborLines(body);
    lines.push(
      `${first!.slice(0, HEX_COLUMN + 1)}${bodyLabel}: ${first!.slice(HEX_COLUMN + 1)}`,
      ...rest,
    );
  }
  return lines;
}

function u64At(b: Buffer, offset: number): number {
  return b.readUInt32BE(offset) * 0x1_0000_0000 + b.readUInt32BE(offset + 4);
}

function creditLines(frame: Buffer): string[] {
  const p = payloadOf(frame);
  const messages = p.readUInt32BE(0);
  const bytes = p.readUInt32BE(4);
  const unlimited = (n: number): string =>
    n === UNLIMITED_CREDIT ? ` (0x${n.toString(16)}: unlimited)` : '';
  return [
    headerLine(frame),
    hexLine(p.subarray(0, 4), `messages granted = ${messages}${unlimited(messages)}`),
    hexLine(p.subarray(4, 8), `bytes granted = ${bytes}${unlimited(bytes)}`),
    hexLine(p.subarray(8, 16), `delivered = ${u64At(p, 8)}`),
  ];
}

/** One documented block: its lines as the generator writes them, and the bytes it must hold. */
interface Block {
  readonly lines: readonly string[];
  readonly bytes: Buffer;
}

function block(lines: string[], ...frames: Buffer[]): Block {
  return { lines, bytes: Buffer.concat(frames) };
}

const typesOf = (frames: readonly Buffer[]): string[] => frames.map((f) => frameTypeName(f[4]!));

/** The first frame of `type` among `frames`: its stream id and decoded CBOR payload. */
function frameOf(frames: readonly Buffer[], type: number): { stream: number; payload: unknown } {
  const f = frames.find((x) => x[4] === type);
  if (f === undefined) throw new Error(`no ${frameTypeName(type)} frame`);
  return { stream: f.readUInt32BE(6), payload: decodeValue(payloadOf(f)) };
}

// ---- the scenarios ---------------------------------------------------------------

interface Example {
  readonly blocks: Map<string, Block>;
  /** Facts the scenarios observed, checked by the spec. */
  readonly facts: Record<string, unknown>;
}

/** Runs every scenario with the real code; returns the blocks and what was observed. */
async function buildExample(): Promise<Example> {
  const blocks = new Map<string, Block>();
  const facts: Record<string, unknown> = {};

  // -- A plain channel: OPEN by name, CREDIT, one DATA, CLOSE by the sender.
  const a = new Pair();
  const [a0, a1] = a.hubs;
  const jobs = a1.receiver<unknown>('jobs', {
    capacity: 256,
    window: 64,
    capacityBytes: 1024 * 1024,
    windowBytes: 64 * 1024,
  });
  const tx = a0.sender<unknown>({ node: 1, name: 'jobs' });
  const sent = tx.send({ seq: 1 });
  const opened = a.take(0);
  facts.openedBeforeCredit = typesOf(opened);
  await a.settle();
  await sent;
  const credit = a.take(1);
  const data = a.take(0);
  facts.firstAnswer = typesOf(credit);
  facts.firstData = typesOf(data);
  facts.received = (await jobs.next()).value;
  facts.creditAfterOneTaken = typesOf(a.take(1));
  tx.close();
  const closed = a.take(0);
  facts.senderClose = typesOf(closed);
  await a.settle();
  facts.replyToSenderClose = typesOf(a.take(1));
  facts.inStreamsAfterClose = a1.streamCounts()[0]!.in;
  blocks.set('open', block(cborFrameLines(opened[0]!), opened[0]!));
  blocks.set('credit', block(creditLines(credit[0]!), credit[0]!));
  blocks.set('data', block(cborFrameLines(data[0]!), data[0]!));
  blocks.set('close', block(cborFrameLines(closed[0]!), closed[0]!));

  // -- The receiver closes with one message taken and one still buffered.
  const tx2 = a0.sender<unknown>({ node: 1, name: 'jobs' });
  const lost: unknown[] = [];
  tx2.errors$.subscribe((e) => lost.push(...((e as { messages?: unknown[] }).messages ?? [])));
  const both = Promise.all([tx2.send({ seq: 1 }), tx2.send({ seq: 2 })]);
  await a.settle();
  await both;
  facts.secondStream = typesOf(a.take(0));
  a.take(1);
  facts.secondTaken = (await jobs.next()).value;
  jobs.close();
  const ending = a.take(1);
  facts.receiverClose = typesOf(ending);
  await a.settle();
  facts.reportedNotDelivered = lost;
  facts.sendAfterClose = await tx2.send({ seq: 3 }).then(
    () => 'resolved',
    (e: SwitchboardError) => e.code,
  );
  blocks.set(
    'receiver-close',
    block([...creditLines(ending[0]!), ...cborFrameLines(ending[1]!)], ...ending),
  );

  // -- A handle in a message: a sender to the receiver "results" on node 0.
  const back = a0.sender<unknown>({ node: 0, name: 'results' });
  const withHandle = encodeValue({ reply: back });
  const revived = (decodeValue(withHandle, a1) as { reply: Sender<unknown> }).reply;
  facts.revivedTarget = { ...revived.target };
  blocks.set('handle', block(cborLines(withHandle), withHandle));
  a.close();

  // -- RPC: the directory entry, a unary request and its reply.
  const b = new Pair();
  const caller = new Rpc(b.hubs[0]);
  const server = new Rpc(b.hubs[1]);
  server.serveUnary('add', ([x, y]: [number, number]) => x + y);
  const announced = b.take(1);
  facts.serveSends = typesOf(announced);
  await b.settle();
  const call = caller.call('add', [2, 3], { timeoutMs: 5000 });
  await b.settle();
  facts.rpcResult = await call;
  const callerFrames = b.take(0);
  const serverFrames = b.take(1);
  facts.rpcCaller = typesOf(callerFrames);
  facts.rpcServer = typesOf(serverFrames);
  facts.rpcAnnounce = frameOf(announced, FrameType.CONTROL);
  facts.rpcRequestOpen = frameOf(callerFrames, FrameType.OPEN);
  facts.rpcReplyOpen = frameOf(serverFrames, FrameType.OPEN);
  const request = callerFrames.find((f) => f[4] === FrameType.DATA)!;
  const reply = serverFrames.find((f) => f[4] === FrameType.DATA)!;
  blocks.set('directory-add', block(cborFrameLines(announced[0]!), announced[0]!));
  const requestLabels = ['op (unary)', 'callId', 'callerNode', 'replyReceiverId', 'remainingMs'];
  blocks.set('rpc-request', block(headedFrameLines(request, requestLabels, 'payload'), request));
  blocks.set(
    'rpc-reply',
    block(headedFrameLines(reply, ['callId', 'status (OK)'], 'value'), reply),
  );
  b.close();

  // -- Pub-sub: a subscription's unlimited credit, then one publication.
  const c = new Pair();
  const ps0 = new PubSub(c.hubs[0]);
  const ps1 = new PubSub(c.hubs[1]);
  const sub = ps1.subscribe<unknown>('orders.*');
  await c.settle();
  const subscribed = c.take(1);
  facts.subscribeSends = typesOf(subscribed);
  facts.pubsubAnnounce = frameOf(subscribed, FrameType.CONTROL);
  const publisher = ps0.publisher();
  await c.settle();
  const publisherOpens = c.take(0);
  facts.publisherOpens = typesOf(publisherOpens);
  facts.publisherOpen = frameOf(publisherOpens, FrameType.OPEN);
  const lossyCredit = c.take(1);
  facts.subscriptionAnswers = typesOf(lossyCredit);
  facts.published = publisher.publish('orders.eu', { qty: 2 });
  const publication = c.take(0);
  await c.settle();
  facts.publication = (await sub.next()).value;
  blocks.set('pubsub-credit', block(creditLines(lossyCredit[0]!), lossyCredit[0]!));
  blocks.set(
    'pubsub-message',
    block(headedFrameLines(publication[0]!, ['topic'], 'value'), publication[0]!),
  );
  sub.close();
  publisher.close();
  c.close();

  // -- Push-pull: one task and its acknowledgement.
  const d = new Pair();
  const pp0 = new PushPull(d.hubs[0]);
  const pp1 = new PushPull(d.hubs[1]);
  const ran: unknown[] = [];
  const worker = pp1.worker<unknown>(
    'resize',
    (task, ctx) => {
      ran.push({ task, id: ctx.id, from: ctx.from, attempt: ctx.attempt });
    },
    { concurrency: 2 },
  );
  await d.settle();
  facts.workerAnnounce = frameOf(d.take(1), FrameType.CONTROL);
  const pusher = pp0.pusher<unknown>('resize');
  await d.settle();
  facts.pusherOpen = frameOf(d.take(0), FrameType.OPEN);
  facts.workerCredit = typesOf(d.take(1));
  await pusher.push({ width: 640 });
  const task = d.take(0);
  await d.settle();
  await pusher.settled();
  facts.ran = ran;
  facts.pusherStats = pusher.stats();
  const workerFrames = d.take(1);
  facts.workerAcks = typesOf(workerFrames);
  facts.ackOpen = frameOf(workerFrames, FrameType.OPEN);
  const ack = workerFrames.find((f) => f[4] === FrameType.DATA)!;
  blocks.set(
    'pushpull-task',
    block(headedFrameLines(task[0]!, ['from', 'ack', 'id', 'attempt'], 'task'), task[0]!),
  );
  blocks.set('pushpull-ack', block(cborFrameLines(ack, ['done', 'failed']), ack));
  await worker.close();
  await pusher.close();
  d.close();

  return { blocks, facts };
}

// ---- the spec ------------------------------------------------------------------------

describe('docs/wire-protocol.md channel dumps', () => {
  let example: Example;
  let doc: string;
  let found: DocBlock[];

  beforeAll(async () => {
    example = await buildExample();
    doc = readFileSync(DOC_PATH, 'utf8');
    if (process.env.UPDATE_WIRE_CHANNEL === '1') {
      doc = rewriteDoc(doc, 'wire-channel', example.blocks);
      writeFileSync(DOC_PATH, doc);
    }
    found = docBlocks(doc, 'wire-channel');
  });

  const NAMES = [
    'open',
    'credit',
    'data',
    'close',
    'receiver-close',
    'handle',
    'directory-add',
    'rpc-request',
    'rpc-reply',
    'pubsub-credit',
    'pubsub-message',
    'pushpull-task',
    'pushpull-ack',
  ];

  it('has every channel block exactly once, and no block this spec does not check', () => {
    expect([...example.blocks.keys()].sort()).toEqual([...NAMES].sort());
    expect(found.map((b) => b.name).sort()).toEqual([...NAMES].sort());
  });

  it.each(NAMES)('block %s holds the bytes the code produces', (name) => {
    const inDoc = found.find((b) => b.name === name);
    expect(inDoc).toBeDefined();
    expect(inDoc!.lang).toBe('text');
    // Compared as hex text so that a failure shows the bytes to put in the document.
    expect(toHex(parseHex(name, inDoc!.body))).toBe(toHex(example.blocks.get(name)!.bytes));
  });

  it('the channel exchanges went as section 10 and 13.5 describe them', () => {
    const f = example.facts;
    // A stream opens with OPEN alone; the receiver answers with CREDIT; data follows.
    expect(f.openedBeforeCredit).toEqual(['OPEN']);
    expect(f.firstAnswer).toEqual(['CREDIT']);
    expect(f.firstData).toEqual(['DATA']);
    expect(f.received).toEqual({ seq: 1 });
    // One message of a 64-message window taken: no new CREDIT yet (batched).
    expect(f.creditAfterOneTaken).toEqual([]);
    // The sender's CLOSE is answered by nothing but the last delivery report
    // (the sender tracks its messages until then), and the receiver forgets the stream.
    expect(f.senderClose).toEqual(['CLOSE']);
    expect(f.replyToSenderClose).toEqual(['CREDIT']);
    expect(f.inStreamsAfterClose).toBe(0);
    // The receiver's CLOSE follows a CREDIT carrying the exact delivered count.
    expect(f.secondStream).toEqual(['OPEN', 'DATA', 'DATA']);
    expect(f.secondTaken).toEqual({ seq: 1 });
    expect(f.receiverClose).toEqual(['CREDIT', 'CLOSE']);
    expect(f.reportedNotDelivered).toEqual([{ seq: 2 }]);
    expect(f.sendAfterClose).toBe(ErrorCode.NO_RECEIVER);
    // A handle revives as a sender to the same target.
    expect(f.revivedTarget).toEqual({ kind: 'mpsc', node: 0, id: 0, name: 'results' });
  });

  it('the patterns exchanged what sections 10.14 and 13.7 to 13.9 describe', () => {
    const f = example.facts;
    expect(f.serveSends).toEqual(['CONTROL']);
    expect(f.rpcResult).toBe(5);
    // Request stream: OPEN, request; reply stream opened by the server: CREDIT back.
    // (then, maybe, the delivery report of the reply: 10.5)
    expect((f.rpcCaller as string[]).slice(0, 3)).toEqual(['OPEN', 'DATA', 'CREDIT']);
    expect((f.rpcCaller as string[]).slice(3).every((t) => t === 'CREDIT')).toBe(true);
    expect(f.rpcServer).toEqual(['CREDIT', 'OPEN', 'DATA']);
    expect(f.subscribeSends).toEqual(['CONTROL']);
    // The publisher's first message on a stream is its hello (10.14.3), once credit came.
    expect(f.publisherOpens).toEqual(['OPEN', 'DATA']);
    expect(f.subscriptionAnswers).toEqual(['CREDIT']);
    expect(f.published).toBe(true);
    expect(f.publication).toEqual({ topic: 'orders.eu', value: { qty: 2 } });
    expect(f.ran).toEqual([{ task: { width: 640 }, id: 1, from: 0, attempt: 1 }]);
    expect(f.workerAcks).toEqual(['CREDIT', 'OPEN', 'DATA']);
    expect(f.pusherStats).toMatchObject({ completed: 1, inFlight: 0, failed: 0 });
    // The ids and streams the prose of 13.7 to 13.9 states.
    const TOP = 0x8000_0001;
    expect(f.rpcAnnounce).toEqual({
      stream: 0,
      payload: { op: 'add', e: ['rpc', 'add', 1, 'unary'] },
    });
    expect(f.rpcRequestOpen).toEqual({ stream: 1, payload: { id: 1 } });
    expect(f.rpcReplyOpen).toEqual({ stream: TOP, payload: { id: 1 } });
    expect(f.pubsubAnnounce).toEqual({
      stream: 0,
      payload: {
        op: 'add',
        e: ['pubsub', 'orders.*', 1, { c: 'pubsub:orders.*#1', u: expect.any(String) as unknown }],
      },
    });
    expect(f.publisherOpen).toEqual({ stream: 1, payload: { id: 1 } });
    expect(f.workerAnnounce).toEqual({
      stream: 0,
      payload: { op: 'add', e: ['pushpull', 'resize', 1, { c: 2, p: 2 }] },
    });
    expect(f.pusherOpen).toEqual({ stream: 1, payload: { id: 1 } });
    expect(f.workerCredit).toEqual(['CREDIT']);
    expect(f.ackOpen).toEqual({ stream: TOP, payload: { id: 1 } });
  });

  it('states the constants the code uses', () => {
    const hex = `0x${UNLIMITED_CREDIT.toString(16)}`;
    for (const needle of [
      `\`${hex}\``,
      `tag ${HANDLE_TAG}`,
      `\`d9 9c a4\``,
      `depth ${DEFAULT_CODEC_LIMITS.maxDepth}`,
      `\`'${PUBSUB_KIND}'\``,
      `\`'${PUSHPULL_KIND}'\``,
      `${MAX_TOPIC_BYTES} bytes`,
      "`'mpsc'`",
      "`'mpmc-one'`",
      "`'mpmc-all'`",
      "`'rpc'`",
      "`'mpmc'`",
    ]) {
      expect(doc).toContain(needle);
    }
    expect(encodeValue(null).toString('hex')).toBe('f6');
  });
});
