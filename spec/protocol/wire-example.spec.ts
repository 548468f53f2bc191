/**
 * Keeps the worked example of docs/wire-protocol.md honest: the example is
 * recomputed here, from the fixed inputs the document states, with the real
 * handshake, framing and fragmentation code, and every hex block of the
 * document must hold exactly those bytes. The prose beside the bytes (the
 * column after two spaces) is free text.
 *
 * This spec is also the generator of those blocks: after a deliberate
 * protocol change, run
 *
 *   UPDATE_WIRE_EXAMPLE=1 npm test -- spec/protocol/wire-example.spec.ts
 *
 * to rewrite every marked block from the code (annotations included), then
 * review the diff of docs/wire-protocol.md like any other change.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FrameDecoder } from '../../lib/protocol/decoder.js';
import { FrameEncoder } from '../../lib/protocol/encoder.js';
import { Reassembler, writeFragment } from '../../lib/protocol/fragment.js';
import {
  FrameFlag,
  FrameType,
  HEADER_SIZE,
  encodeFrame,
  frameTypeName,
} from '../../lib/protocol/frame.js';
import { Handshake, HELLO_SIZE, decodeHello } from '../../lib/protocol/handshake.js';
import type { OutFrame } from '../../lib/protocol/handshake.js';
import { clusterFingerprint, dials, parseNodes } from '../../lib/switchboard/nodes.js';
import type { NodeSpec } from '../../lib/switchboard/nodes.js';
import { docBlocks, parseHex, rewriteDoc, toHex } from '../support/doc-blocks.js';

const DOC_PATH = fileURLToPath(new URL('../../docs/wire-protocol.md', import.meta.url));

/** Bytes `from`, `from + 1`, ... (`length` of them): easy to spot in a dump. */
const run = (from: number, length: number): Buffer =>
  Buffer.from(Array.from({ length }, (_, i) => (from + i) & 0xff));

/** The fixed inputs, exactly as docs/wire-protocol.md states them. */
const EXAMPLE = {
  nodes: [
    '10.0.0.1:7400',
    { host: '10.0.0.2', port: 7400, tags: ['role=worker', 'gpu'] },
  ] as NodeSpec[],
  clusterName: 'demo',
  secret: 'switchboard example secret',
  dialerIncarnation: run(0x10, 16),
  acceptorIncarnation: run(0x20, 16),
  dialerNonce: run(0x40, 32),
  acceptorNonce: run(0x60, 32),
  data: { stream: 1, flags: FrameFlag.RAW, message: Buffer.from('hello', 'ascii') },
  fragmented: {
    stream: 3,
    flags: FrameFlag.RAW,
    message: Buffer.from('fragmented message', 'ascii'),
    fragmentSize: 8,
  },
};

/** One documented block: hex lines with annotations, or plain text. */
interface Block {
  readonly kind: 'hex' | 'json';
  readonly lines: readonly string[];
  /** The bytes the block must hold (hex blocks) or its exact text (json). */
  readonly bytes: Buffer;
}

const HEX_COLUMN = 16 * 3 + 1;

function hexLine(bytes: Buffer, note: string): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return note === '' ? hex : `${hex.padEnd(HEX_COLUMN)} ${note}`;
}

/** Lines for a long field, 16 bytes a line, the note on the first. */
function fieldLines(bytes: Buffer, note: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    out.push(hexLine(bytes.subarray(i, i + 16), i === 0 ? note : ''));
  }
  return out;
}

function headerLine(frame: Buffer): string {
  const length = frame.readUInt32BE(0);
  const type = frame[4]!;
  const flags = frame[5]!;
  const flagNames = [
    flags & FrameFlag.MORE ? 'MORE' : '',
    flags & FrameFlag.RAW ? 'RAW' : '',
  ].filter((s) => s !== '');
  const flagText =
    flags === 0
      ? 'flags 0'
      : `flags 0x${flags.toString(16).padStart(2, '0')} ${flagNames.join('|')}`;
  return hexLine(
    frame.subarray(0, HEADER_SIZE),
    `header: length ${length} (6 + ${length - 6}), type ${frameTypeName(type)}, ${flagText}, stream ${frame.readUInt32BE(6)}`,
  );
}

function helloLines(frame: Buffer): string[] {
  const p = frame.subarray(HEADER_SIZE);
  const h = decodeHello(p);
  return [
    headerLine(frame),
    hexLine(p.subarray(0, 4), '  0 magic "SWBD"'),
    hexLine(p.subarray(4, 6), `  4 version ${h.version}`),
    hexLine(
      p.subarray(6, 7),
      `  6 flags ${h.insecure ? '0x01 (insecure)' : '0x00 (secret in use)'}`,
    ),
    hexLine(p.subarray(7, 8), `  7 role ${p[7]} (${h.role})`),
    ...fieldLines(p.subarray(8, 40), '  8 cluster fingerprint'),
    hexLine(p.subarray(40, 42), ` 40 from = node ${h.from}`),
    hexLine(p.subarray(42, 44), ` 42 to = node ${h.to}`),
    hexLine(p.subarray(44, 60), ' 44 incarnation'),
    ...fieldLines(p.subarray(60, 92), ' 60 nonce'),
    hexLine(
      p.subarray(92, 108),
      h.resume === undefined ? ' 92 resume incarnation: none (zeros)' : ' 92 resume incarnation',
    ),
    hexLine(p.subarray(108, 116), `108 resume received = ${h.resume?.received ?? 0}`),
  ];
}

function authLines(frame: Buffer, who: string): string[] {
  return [
    headerLine(frame),
    ...fieldLines(frame.subarray(HEADER_SIZE), `HMAC-SHA256 ${who} proof`),
  ];
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0);
  b.writeUInt32BE(n >>> 0, 4);
  return b;
}

/** A frame as `Connection` writes a handshake frame: flags 0, stream 0. */
const handshakeFrame = (f: OutFrame): Buffer => encodeFrame(f.type, 0, 0, f.payload);

function hexBlock(lines: string[], ...frames: Buffer[]): Block {
  return { kind: 'hex', lines, bytes: Buffer.concat(frames) };
}

interface Example {
  readonly blocks: ReadonlyMap<string, Block>;
  readonly secret: Buffer;
  readonly dialerHello: Buffer;
  readonly acceptorHello: Buffer;
  readonly acceptorProof: Buffer;
  readonly dialerProof: Buffer;
  /** Everything the dialer receives after WELCOME, in order (for the decode check). */
  readonly dialerSends: Buffer;
}

/** Recomputes the whole example with the real code. */
function buildExample(): Example {
  const nodes = parseNodes(EXAMPLE.nodes);
  const fingerprint = clusterFingerprint(nodes, EXAMPLE.clusterName);
  const secret = Buffer.from(EXAMPLE.secret, 'utf8');
  const common = { nodeCount: nodes.length, fingerprint, secret };
  const dialer = new Handshake({
    ...common,
    role: 'dialer',
    self: 0,
    peer: 1,
    incarnation: EXAMPLE.dialerIncarnation,
    nonce: () => EXAMPLE.dialerNonce,
  });
  const acceptor = new Handshake({
    ...common,
    role: 'acceptor',
    self: 1,
    incarnation: EXAMPLE.acceptorIncarnation,
    nonce: () => EXAMPLE.acceptorNonce,
    mayDial: (from) => dials(from, 1),
  });
  const [dHello] = dialer.start();
  acceptor.start();
  const [aHello, aAuth] = acceptor.onFrame(dHello!.type, dHello!.payload);
  expect(dialer.onFrame(aHello!.type, aHello!.payload)).toEqual([]);
  const [dAuth] = dialer.onFrame(aAuth!.type, aAuth!.payload);
  const [welcome] = acceptor.onFrame(dAuth!.type, dAuth!.payload);
  expect(dialer.onFrame(welcome!.type, welcome!.payload)).toEqual([]);
  expect([dialer.status, acceptor.status]).toEqual(['done', 'done']);

  const dHelloFrame = handshakeFrame(dHello!);
  const aHelloFrame = handshakeFrame(aHello!);
  const aAuthFrame = handshakeFrame(aAuth!);
  const dAuthFrame = handshakeFrame(dAuth!);
  const welcomeFrame = handshakeFrame(welcome!);

  // One small message, written as a link writes it (no size prefix: it fits one fragment).
  const dataEncoder = new FrameEncoder();
  const d = EXAMPLE.data;
  writeFragment(dataEncoder, d.stream, d.flags, d.message, 0, 64 * 1024);
  const dataFrame = Buffer.concat(dataEncoder.take());

  // The acceptor acknowledges it: one sequenced frame received in this session.
  const ackFrame = encodeFrame(FrameType.ACK, 0, 0, u64(1));

  // A message split with an (unrealistically small) fragment size of 8 bytes.
  const f = EXAMPLE.fragmented;
  const fragments: Buffer[] = [];
  for (let offset = 0; offset < f.message.length;) {
    const enc = new FrameEncoder();
    offset = writeFragment(enc, f.stream, f.flags, f.message, offset, f.fragmentSize);
    fragments.push(Buffer.concat(enc.take()));
  }
  const ack4Frame = encodeFrame(FrameType.ACK, 0, 0, u64(1 + fragments.length));

  const fragmentLines = fragments.flatMap((frame, i) => {
    const payload = frame.subarray(HEADER_SIZE);
    if (i === 0) {
      return [
        headerLine(frame),
        hexLine(payload.subarray(0, 4), `total message size = ${payload.readUInt32BE(0)}`),
        hexLine(
          payload.subarray(4),
          `message bytes 0-${payload.length - 5} "${payload.subarray(4).toString('ascii')}"`,
        ),
      ];
    }
    return [headerLine(frame), hexLine(payload, `"${payload.toString('ascii')}"`)];
  });

  const blocks = new Map<string, Block>([
    [
      'canonical-json',
      {
        kind: 'json',
        lines: [canonicalJsonOf(fingerprint)],
        bytes: fingerprint,
      },
    ],
    [
      'fingerprint',
      hexBlock(fieldLines(fingerprint, 'SHA-256 of the canonical JSON'), fingerprint),
    ],
    ['dialer-hello', hexBlock(helloLines(dHelloFrame), dHelloFrame)],
    [
      'acceptor-hello-auth',
      hexBlock(
        [...helloLines(aHelloFrame), ...authLines(aAuthFrame, 'acceptor')],
        aHelloFrame,
        aAuthFrame,
      ),
    ],
    ['dialer-auth', hexBlock(authLines(dAuthFrame, 'dialer'), dAuthFrame)],
    ['welcome', hexBlock([headerLine(welcomeFrame) + ' (no payload)'], welcomeFrame)],
    [
      'data',
      hexBlock(
        [
          headerLine(dataFrame),
          hexLine(dataFrame.subarray(HEADER_SIZE), `message "${d.message.toString('ascii')}"`),
        ],
        dataFrame,
      ),
    ],
    [
      'ack',
      hexBlock(
        [headerLine(ackFrame), hexLine(ackFrame.subarray(HEADER_SIZE), 'u64 received = 1')],
        ackFrame,
      ),
    ],
    ['fragments', hexBlock(fragmentLines, ...fragments)],
    [
      'ack-fragments',
      hexBlock(
        [
          headerLine(ack4Frame),
          hexLine(ack4Frame.subarray(HEADER_SIZE), `u64 received = ${1 + fragments.length}`),
        ],
        ack4Frame,
      ),
    ],
  ]);
  return {
    blocks,
    secret,
    dialerHello: dHello!.payload,
    acceptorHello: aHello!.payload,
    acceptorProof: aAuth!.payload,
    dialerProof: dAuth!.payload,
    dialerSends: Buffer.concat([dataFrame, ...fragments]),
  };
}

/**
 * The canonical JSON of the example's node list as the document shows it.
 * nodes.ts keeps its construction private, so this spec writes what the
 * document must say and proves it by hashing: the SHA-256 of this exact
 * text must be the fingerprint the real code computes.
 */
function canonicalJsonOf(fingerprint: Buffer): string {
  const text =
    '{"v":1,"name":"demo","nodes":[["10.0.0.1",7400,[]],["10.0.0.2",7400,["gpu","role=worker"]]]}';
  if (!createHash('sha256').update(text, 'utf8').digest().equals(fingerprint)) {
    throw new Error('the canonical JSON of the example no longer hashes to the fingerprint');
  }
  return text;
}

// ---- the spec ------------------------------------------------------------------

describe('docs/wire-protocol.md worked example', () => {
  const example = buildExample();
  let doc = readFileSync(DOC_PATH, 'utf8');
  if (process.env.UPDATE_WIRE_EXAMPLE === '1') {
    doc = rewriteDoc(doc, 'wire-example', example.blocks);
    writeFileSync(DOC_PATH, doc);
  }
  const found = docBlocks(doc, 'wire-example');

  it('has every example block exactly once, and no block this spec does not check', () => {
    expect(found.map((b) => b.name).sort()).toEqual([...example.blocks.keys()].sort());
  });

  it.each([...example.blocks.keys()])('block %s holds the bytes the code produces', (name) => {
    const block = example.blocks.get(name)!;
    const inDoc = found.find((b) => b.name === name);
    expect(inDoc).toBeDefined();
    // Both kinds are fenced as `text`, which Prettier leaves alone.
    expect(inDoc!.lang).toBe('text');
    if (block.kind === 'json') {
      // The document's text, hashed, is the fingerprint.
      const text = inDoc!.body;
      expect(text).toBe(block.lines[0]);
      expect(createHash('sha256').update(text, 'utf8').digest()).toEqual(block.bytes);
      return;
    }
    // Compared as hex text so a failure shows the bytes to put in the document.
    expect(toHex(parseHex(name, inDoc!.body))).toBe(toHex(block.bytes));
  });

  it('states the MAC labels the code uses, and the proofs are HMACs over label, dialer HELLO, acceptor HELLO', () => {
    for (const [role, proof] of [
      ['dialer', example.dialerProof],
      ['acceptor', example.acceptorProof],
    ] as const) {
      const label = `switchboard/1 ${role} proof`;
      expect(doc).toContain(`\`${label}\``);
      const mac = createHmac('sha256', example.secret)
        .update(Buffer.from(label, 'ascii'))
        .update(example.dialerHello)
        .update(example.acceptorHello)
        .digest();
      expect(mac).toEqual(proof);
    }
    expect(example.dialerHello.length).toBe(HELLO_SIZE);
  });

  it('states the fixed inputs the example is computed from', () => {
    const hex = (b: Buffer): string => b.toString('hex');
    for (const needle of [
      `\`${EXAMPLE.secret}\``,
      `\`${EXAMPLE.clusterName}\``,
      hex(EXAMPLE.dialerIncarnation),
      hex(EXAMPLE.acceptorIncarnation),
      hex(EXAMPLE.dialerNonce),
      hex(EXAMPLE.acceptorNonce),
      '`10.0.0.1:7400`',
      "`{ host: '10.0.0.2', port: 7400, tags: ['role=worker', 'gpu'] }`",
    ]) {
      expect(doc).toContain(needle);
    }
  });

  it('decodes back: the example frames carry the example messages', () => {
    const messages: string[] = [];
    const reassembler = new Reassembler();
    const decoder = new FrameDecoder({
      onFrame(type, flags, stream, payload) {
        const m = reassembler.add(type, flags, stream, payload);
        if (m !== undefined)
          messages.push(`${stream}:${reassembler.completedFlags}:${m.toString('ascii')}`);
      },
    });
    // Byte by byte, as the decoder must give the same frames whatever the chunking.
    for (const byte of example.dialerSends) decoder.push(Buffer.of(byte));
    expect(messages).toEqual([`1:${FrameFlag.RAW}:hello`, `3:${FrameFlag.RAW}:fragmented message`]);
  });
});
