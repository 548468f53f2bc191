/**
 * Keeps the code tables of docs/wire-protocol.md honest: the GOAWAY table
 * of section 6 (and its copy in docs/errors.md), and the table of text
 * codes in ERROR, CLOSE and RPC error infos of section 10.15.
 *
 * Three kinds of check, so that neither the document nor the code can
 * drift alone:
 *
 * - the tables against the code's own tables: the GOAWAY numbers, names
 *   and error codes against lib/protocol/handshake.ts, every ERR_SB_* code
 *   against lib/errors.ts;
 * - the senders, read from the sources: every place in lib/ that puts a
 *   code into an ERROR, a CLOSE or a framework error info is listed below
 *   with the codes it can send, each of which must be in the table for
 *   that frame; a new sender makes the inventory fail until it is listed
 *   (and the document says what it sends);
 * - the behaviour, on two real channel hubs joined by frames: each sender
 *   path sends the code the table names, and a receiving hub does what the
 *   rows "(any other)" say with codes it does not expect.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChannelHub } from '../../lib/channel/hub.js';
import type { HubTransport } from '../../lib/channel/hub.js';
import type { Sender } from '../../lib/channel/sender.js';
import { errorFromInfo } from '../../lib/channel/patterns/rpc/wire.js';
import { ErrorCode, RemoteError, SwitchboardError } from '../../lib/errors.js';
import { decodeValue, encodeValue } from '../../lib/protocol/codec.js';
import { DEFAULT_FRAME_LIMITS, FrameType } from '../../lib/protocol/frame.js';
import { encodeHead } from '../../lib/protocol/head.js';
import {
  GoAwayCode,
  decodeGoAway,
  encodeGoAway,
  errorCodeForGoAway,
  goAwayCodeFor,
} from '../../lib/protocol/handshake.js';
import { parseNodes } from '../../lib/switchboard/nodes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WIRE = readFileSync(join(ROOT, 'docs/wire-protocol.md'), 'utf8');
const ERRORS = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
const LIBRARY_CODES = new Set<string>(Object.values(ErrorCode));

// ---- the tables, as the document has them ----------------------------------------

/** The rows of the first table after the heading `heading` (cells trimmed, header and rule left out). */
function tableAfter(doc: string, heading: string): string[][] {
  const lines = doc.split('\n');
  const at = lines.findIndex((l) => l.trim() === heading);
  if (at < 0) throw new Error(`no heading "${heading}"`);
  let i = at + 1;
  while (i < lines.length && !lines[i]!.startsWith('|')) {
    if (/^#{1,4} /.test(lines[i]!)) throw new Error(`no table under "${heading}"`);
    i++;
  }
  const rows: string[][] = [];
  for (; i < lines.length && lines[i]!.startsWith('|'); i++)
    rows.push(
      lines[i]!.slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
  return rows.slice(2);
}

/** The table of section 6 whose first column is the GOAWAY code. */
function goAwayTable(
  doc: string,
  heading: string,
): Array<{ n: number; name: string; code: string }> {
  const lines = doc.split('\n');
  const at = lines.findIndex((l) => l.trim() === heading);
  // Section 6 has the payload layout first: take the table whose header starts with the code.
  const start = lines.findIndex((l, i) => i > at && /^\|\s*(code|GOAWAY)\s*\|\s*name/.test(l));
  const rows: Array<{ n: number; name: string; code: string }> = [];
  for (let i = start + 2; lines[i]?.startsWith('|') === true; i++) {
    const cells = lines[i]!.slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    rows.push({
      n: Number(cells[0]),
      name: cells[1]!,
      code: cells[cells.length - 1]!.replace(/`/g, ''),
    });
  }
  return rows;
}

type Where = 'ERROR' | 'CLOSE' | 'error info';
const WHERE: readonly Where[] = ['ERROR', 'CLOSE', 'error info'];
const ANY_OTHER = '_(any other)_';

interface CodeRow {
  readonly code: string;
  readonly in: Where;
}

const CODE_ROWS: CodeRow[] = tableAfter(
  WIRE,
  '### 10.15 Codes in ERROR, CLOSE and error infos',
).map((cells) => ({ code: cells[0]!.replace(/`/g, ''), in: cells[1] as Where }));

/** The codes the table lists for `where`. */
function listed(where: Where): Set<string> {
  return new Set(
    CODE_ROWS.filter((r) => r.in === where && r.code !== ANY_OTHER).map((r) => r.code),
  );
}

describe('docs/wire-protocol.md, the GOAWAY table (section 6)', () => {
  const doc = goAwayTable(WIRE, '## 6. GOAWAY');
  const copy = goAwayTable(ERRORS, '## GOAWAY codes');

  it('has every code of lib/protocol/handshake.ts, with its number and name, and nothing else', () => {
    expect(doc.map((r) => [r.n, r.name])).toEqual(
      Object.entries(GoAwayCode).map(([k, v]) => [v, k]),
    );
  });

  it('names the error each code is turned into on the receiving side', () => {
    for (const r of doc) {
      expect(LIBRARY_CODES.has(r.code)).toBe(true);
      expect([r.n, errorCodeForGoAway(r.n)]).toEqual([r.n, r.code]);
    }
  });

  it('a code the table does not have, or a payload shorter than 2 bytes, is read as PROTOCOL', () => {
    const max = Math.max(...doc.map((r) => r.n));
    for (const n of [max + 1, 0x1234, 0xffff])
      expect(errorCodeForGoAway(decodeGoAway(encodeGoAway(n as GoAwayCode, 'x')).code)).toBe(
        ErrorCode.PROTOCOL,
      );
    for (const payload of [Buffer.alloc(0), Buffer.of(0)])
      expect(errorCodeForGoAway(decodeGoAway(payload).code)).toBe(ErrorCode.PROTOCOL);
  });

  it('an error is sent as the first row of its code, any other error as PROTOCOL (errors.md)', () => {
    for (const code of LIBRARY_CODES) {
      const row = doc.find((r) => r.code === code);
      expect([code, goAwayCodeFor(code as ErrorCode)]).toEqual([
        code,
        row?.n ?? GoAwayCode.PROTOCOL,
      ]);
    }
  });

  it('docs/errors.md has the same table', () => {
    expect(copy).toEqual(doc);
  });
});

describe('docs/wire-protocol.md, the table of codes in ERROR, CLOSE and error infos (10.15)', () => {
  it('lists library codes only, in the three places, each once per place', () => {
    expect(CODE_ROWS.length).toBeGreaterThan(0);
    for (const r of CODE_ROWS) {
      expect(WHERE).toContain(r.in);
      if (r.code !== ANY_OTHER) expect([r.code, LIBRARY_CODES.has(r.code)]).toEqual([r.code, true]);
    }
    const keys = CODE_ROWS.map((r) => `${r.in} ${r.code}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('says, for each place, what a receiver does with any other code', () => {
    for (const w of WHERE)
      expect(CODE_ROWS.filter((r) => r.in === w && r.code === ANY_OTHER)).toHaveLength(1);
  });
});

// ---- the senders, read from the sources ---------------------------------------------

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const LIB = sources(join(ROOT, 'lib')).map((p) => ({
  file: p.slice(ROOT.length),
  text: readFileSync(p, 'utf8'),
}));

/** The body of the method or function `name` in `file` (from its line to the next line at its indentation). */
function body(file: string, name: RegExp): string {
  const f = LIB.find((x) => x.file === file);
  if (f === undefined) throw new Error(`no ${file}`);
  const lines = f.text.split('\n');
  const start = lines.findIndex((l) => name.test(l));
  if (start < 0) throw new Error(`no ${String(name)} in ${file}`);
  const indent = /^\s*/.exec(lines[start]!)![0].length;
  let end = start + 1;
  while (
    end < lines.length &&
    !(lines[end]!.length > 0 && /^\s*/.exec(lines[end]!)![0].length <= indent)
  )
    end++;
  return lines.slice(start, end + 1).join('\n');
}

/** Every `ErrorCode.X` in `text`, as its value. */
function codesIn(text: string): string[] {
  return [...text.matchAll(/ErrorCode\.([A-Z_]+)/g)].map(
    (m) => ErrorCode[m[1] as keyof typeof ErrorCode],
  );
}

/**
 * Where lib/ puts a code into a frame. Each entry is one call site of the
 * primitives that do (RemoteInlet.end for CLOSE, RemoteInlet.refused for
 * ERROR, a CLOSE payload written in place, the framework error infos of
 * RPC), with the codes that can reach it there.
 */
interface SenderSite {
  readonly file: string;
  /** What marks the call site in the source. */
  readonly site: RegExp;
  readonly in: Where;
  /** The codes it can send, read from the source where they are literal. */
  codes(): string[];
}

/** RemoteInlet.end(error) writes `error.code` into a CLOSE; its callers, and what they pass. */
const CLOSE_SITES: SenderSite[] = [
  {
    // The OPEN that cannot be read: its CLOSE is written in place.
    file: 'lib/channel/hub.ts',
    site: /code: ErrorCode\.DECODE, message: 'bad OPEN'/,
    in: 'CLOSE',
    codes: () =>
      codesIn(body('lib/channel/hub.ts', /^ {2}private onOpen\(/)).filter(
        (c) => c === ErrorCode.DECODE,
      ),
  },
  {
    // DATA beyond the credit: `inlet.end(err)` with the error made just above.
    file: 'lib/channel/hub.ts',
    site: /inlet\.end\(err\)/,
    in: 'CLOSE',
    codes: () => {
      const b = body('lib/channel/hub.ts', /^ {2}onMessage\(/);
      return codesIn(b.slice(b.indexOf('withinCredit'), b.indexOf('inlet.end(err)')));
    },
  },
  {
    // An OPEN refused (no receiver by that id or name, too many parked): `refuse(message)`.
    file: 'lib/channel/hub.ts',
    site: /inlet\.end\(new SwitchboardError\(ErrorCode\.NO_RECEIVER, message\)\)/,
    in: 'CLOSE',
    codes: () => [ErrorCode.NO_RECEIVER],
  },
  {
    // A receiver closed, failed or already closed when a stream attaches: all NO_RECEIVER.
    file: 'lib/channel/receiver.ts',
    site: /inlet\.end\(error, dropped\.get\(inlet\)\)/,
    in: 'CLOSE',
    codes: () => {
      // shutdown(error) passes its argument on; every call of shutdown makes a NO_RECEIVER error.
      const text = LIB.find((x) => x.file === 'lib/channel/receiver.ts')!.text;
      const calls = [
        ...text.matchAll(/this\.shutdown\(\s*new SwitchboardError\(\s*ErrorCode\.([A-Z_]+)/g),
      ];
      const all = [...text.matchAll(/this\.shutdown\(/g)];
      if (calls.length !== all.length) throw new Error('a shutdown() call without a literal code');
      return calls.map((m) => ErrorCode[m[1] as keyof typeof ErrorCode]);
    },
  },
  {
    file: 'lib/channel/receiver.ts',
    site: /inlet\.end\(new SwitchboardError\(ErrorCode\.NO_RECEIVER, `receiver \$\{this\.name\} is closed`\)\)/,
    in: 'CLOSE',
    codes: () => [ErrorCode.NO_RECEIVER],
  },
];

/** RemoteInlet.refused(error) writes `error.code` into an ERROR; what reaches it. */
const ERROR_SITES: SenderSite[] = [
  {
    // Receiver.reject(inlet, bytes, error), from the hub: too large, or undecodable.
    file: 'lib/channel/hub.ts',
    site: /r\.reject\(|inlet\.receiver\.reject\(/,
    in: 'ERROR',
    codes: () => {
      const b =
        body('lib/channel/hub.ts', /^ {2}onMessage\(/) +
        body('lib/channel/hub.ts', /^ {2}onOversize\(/);
      const out: string[] = [];
      if (/new MessageTooLargeError\(/.test(b)) out.push(ErrorCode.MESSAGE_TOO_LARGE);
      // A decode failure passes the codec's SwitchboardError on, or wraps anything else as DecodeError.
      if (/new DecodeError\(/.test(b)) out.push(ErrorCode.DECODE);
      return [...out, ...codesIn(b).filter((c) => c !== ErrorCode.PROTOCOL)];
    },
  },
  {
    // Receiver.admit: the validator (ValidationError) or a pattern's check (its SwitchboardError, else INTERNAL).
    file: 'lib/channel/receiver.ts',
    site: /inlet\.refused\(e, value\)/,
    in: 'ERROR',
    codes: () => {
      const b = body('lib/channel/receiver.ts', /^ {2}private admit\(/);
      const out = codesIn(b);
      if (/validateSync\(/.test(b)) out.push(ErrorCode.VALIDATION);
      // The pattern's check: pub-sub's is the only one, and throws these.
      const sub = body('lib/channel/patterns/pubsub/subscription.ts', /^ {2}private arrive\(/);
      if (/new DecodeError\(/.test(sub)) out.push(ErrorCode.DECODE);
      return [...out, ...codesIn(sub)];
    },
  },
];

/** The framework error infos RPC's server sends. */
const INFO_SITES: SenderSite[] = [
  {
    file: 'lib/channel/patterns/rpc/server.ts',
    site: /frameworkInfo\(\s*ErrorCode\./,
    in: 'error info',
    codes: () => {
      const text = LIB.find((x) => x.file === 'lib/channel/patterns/rpc/server.ts')!.text;
      return [...text.matchAll(/frameworkInfo\(\s*ErrorCode\.([A-Z_]+)/g)].map(
        (m) => ErrorCode[m[1] as keyof typeof ErrorCode],
      );
    },
  },
  {
    // frameworkInfoOf(err, ...) only for the errors isCarryError lets through.
    file: 'lib/channel/patterns/rpc/server.ts',
    site: /frameworkInfoOf\(err, /,
    in: 'error info',
    codes: () => codesIn(body('lib/channel/patterns/rpc/server.ts', /^function isCarryError\(/)),
  },
  {
    // errorInfo: framework 1 for a validation error the library raised, framework 0 otherwise.
    file: 'lib/channel/patterns/rpc/wire.ts',
    site: /err instanceof ValidationError && raisedHere\.has\(err\)/,
    in: 'error info',
    codes: () => [ErrorCode.VALIDATION],
  },
];

const SITES = [...CLOSE_SITES, ...ERROR_SITES, ...INFO_SITES];

describe('the senders of these codes in lib/ (read from the sources)', () => {
  it('every site of the inventory is still there', () => {
    for (const s of SITES) {
      const text = LIB.find((x) => x.file === s.file)?.text ?? '';
      expect([s.file, String(s.site), text.split(s.site).length - 1 >= 1]).toEqual([
        s.file,
        String(s.site),
        true,
      ]);
    }
  });

  it('lib/ writes CLOSE and ERROR payloads only through the sites of the inventory', () => {
    // Every frame of these types is sent by RemoteInlet (streams.ts), RemoteOutlet's empty CLOSE, or the bad OPEN.
    const sends = LIB.flatMap((f) =>
      [...f.text.matchAll(/FrameType\.(CLOSE|ERROR),/g)].map((m) => `${f.file} ${m[1]}`),
    );
    expect(sends.sort()).toEqual(
      [
        'lib/channel/hub.ts CLOSE', // the bad OPEN
        'lib/channel/streams.ts CLOSE', // RemoteInlet.end(error): error.code
        'lib/channel/streams.ts CLOSE', // RemoteOutlet.close(): the sender's, empty
        'lib/channel/streams.ts ERROR', // RemoteInlet.refused(error): error.code
      ].sort(),
    );
    // That one has no payload.
    expect(LIB.find((x) => x.file === 'lib/channel/streams.ts')!.text).toContain(
      'this.host.sendFrame(this.node, FrameType.CLOSE, this.stream);',
    );
    // Who calls RemoteInlet.end and .refused: the hub and the receiver, at the sites above.
    const callers = LIB.flatMap((f) =>
      [...f.text.matchAll(/\binlet\.(end|refused)\(/g)].map((m) => `${f.file} ${m[1]}`),
    );
    expect(callers.sort()).toEqual(
      [
        'lib/channel/hub.ts end', // credit overrun
        'lib/channel/hub.ts end', // refuse(message)
        'lib/channel/receiver.ts end', // attach to a closed receiver
        'lib/channel/receiver.ts end', // shutdown: open streams
        'lib/channel/receiver.ts end', // shutdown: closed streams with messages left
        'lib/channel/receiver.ts refused', // admit
        'lib/channel/receiver.ts refused', // reject
      ].sort(),
    );
    expect(
      LIB.flatMap((f) => [...f.text.matchAll(/\.reject\(\s*inlet,/g)].map(() => f.file)),
    ).toEqual(['lib/channel/hub.ts', 'lib/channel/hub.ts', 'lib/channel/hub.ts']);
  });

  it.each(WHERE)('every code lib/ can send in %s is in the table for it', (where) => {
    const sent = new Set(SITES.filter((s) => s.in === where).flatMap((s) => s.codes()));
    expect(sent.size).toBeGreaterThan(0);
    const table = listed(where);
    expect([...sent].filter((c) => !table.has(c))).toEqual([]);
  });
});

// ---- the behaviour, on two hubs joined by frames ----------------------------------

const NODES = parseNodes(['127.0.0.1:7400', '127.0.0.1:7401']);

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** Node 0 and node 1, each a real ChannelHub; what one sends reaches the other on {@link settle}. */
class Pair {
  readonly hubs: [ChannelHub, ChannelHub];
  /** Every frame each node sent. */
  readonly sent: [Frame[], Frame[]] = [[], []];
  private readonly queue: [Frame[], Frame[]] = [[], []];

  constructor(
    limits: [number, number] = [
      DEFAULT_FRAME_LIMITS.maxMessageSize,
      DEFAULT_FRAME_LIMITS.maxMessageSize,
    ],
  ) {
    this.hubs = [
      new ChannelHub(this.transport(0, limits)),
      new ChannelHub(this.transport(1, limits)),
    ];
  }

  /** Delivers what was sent until both sides are quiet (timers of 10 ms included). */
  async settle(): Promise<void> {
    for (let quiet = 0; quiet < 3;) {
      let moved = false;
      for (const from of [0, 1] as const)
        for (const f of this.queue[from].splice(0)) {
          moved = true;
          this.deliver(from, f);
        }
      if (moved) quiet = 0;
      else {
        quiet++;
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    }
  }

  /** Hands node `to` a frame as if node `from` had sent it. */
  inject(from: 0 | 1, f: Frame): void {
    this.deliver(from, f);
  }

  /** The codes of the CLOSE and ERROR payloads `node` sent (CLOSEs without a payload left out). */
  codes(node: 0 | 1, type: number): string[] {
    return this.sent[node]
      .filter((f) => f.type === type && f.payload.length > 0)
      .map((f) => (decodeValue(f.payload) as { code: string }).code);
  }

  /** The id of the last stream `node` opened. */
  lastOpened(node: 0 | 1): number {
    const opens = this.sent[node].filter((f) => f.type === FrameType.OPEN);
    return opens[opens.length - 1]!.stream;
  }

  close(): void {
    const reason = new SwitchboardError(ErrorCode.CLOSED, 'spec over');
    for (const hub of this.hubs) hub.shutdown(reason, false);
  }

  private deliver(from: 0 | 1, f: Frame): void {
    const hub = this.hubs[from === 0 ? 1 : 0];
    if (f.type === FrameType.DATA) hub.onMessage(from, f.stream, f.flags, f.payload);
    else hub.onControl(from, f.type, f.flags, f.stream, f.payload);
  }

  private transport(id: 0 | 1, limits: [number, number]): HubTransport {
    const out = (f: Frame): void => {
      this.sent[id].push(f);
      this.queue[id].push(f);
    };
    return {
      id,
      nodes: NODES,
      maxMessageSize: limits[id],
      hasSession: (peer) => peer !== id,
      healthy: (peer) => peer !== id,
      writable: () => true,
      // Each sends whatever it likes: the receiver's own limit is what is checked here.
      peerLimit: () => DEFAULT_FRAME_LIMITS.maxMessageSize,
      fresh: () => true,
      leases: new Float64Array(NODES.length),
      freshOnArrival: () => true,
      ranSince: () => undefined,
      sendFrame: (_peer, type, flags, stream, payload) =>
        out({ type, flags, stream, payload: Buffer.from(payload ?? []) }),
      sendMessage: (_peer, stream, flags, body, _owned, head) =>
        out({
          type: FrameType.DATA,
          flags,
          stream,
          payload: Buffer.from(head === undefined ? body : encodeHead(head, body)),
        }),
      emit: () => undefined,
    };
  }
}

/** A Standard Schema that takes numbers only. */
const NUMBERS = {
  '~standard': {
    version: 1 as const,
    vendor: 'spec',
    validate: (v: unknown) =>
      typeof v === 'number' ? { value: v } : { issues: [{ message: 'not a number' }] },
  },
};

/** What a sender reported on errors$ so far. */
function reports(s: Sender<unknown>): SwitchboardError[] {
  const out: SwitchboardError[] = [];
  s.errors$.subscribe({ next: (e) => out.push(e), error: () => undefined });
  return out;
}

/** Sends `value` and settles the pair: the send resolves once credit came back. */
async function sendNow(pair: Pair, s: Sender<unknown>, value: unknown): Promise<void> {
  const p = s.send(value);
  await pair.settle();
  await p;
}

/** A sender's outcome: the rejection of a send made now, once the pair has settled. */
async function sendOutcome(pair: Pair, s: Sender<unknown>): Promise<unknown> {
  const p = s.send(1).then(
    () => 'sent',
    (e: unknown) => e,
  );
  await pair.settle();
  return p;
}

describe('the codes on the wire (two channel hubs joined by frames)', () => {
  let pair: Pair;
  beforeEach(() => {
    pair = new Pair();
  });
  afterEach(() => pair.close());

  it('CLOSE ERR_SB_NO_RECEIVER: a receiver that closes, and an OPEN for an id nobody has', async () => {
    const [a, b] = pair.hubs;
    const r = b.receiver<unknown>('jobs');
    const s = a.sender<unknown>({ node: 1, name: 'jobs' });
    await sendNow(pair, s, 1);
    await pair.settle();
    r.close();
    await pair.settle();
    const missing = a.sender<unknown>({ node: 1, id: 999 });
    const outcome = await sendOutcome(pair, missing);
    expect(pair.codes(1, FrameType.CLOSE)).toEqual([ErrorCode.NO_RECEIVER, ErrorCode.NO_RECEIVER]);
    expect(outcome).toMatchObject({ code: ErrorCode.NO_RECEIVER });
    expect(listed('CLOSE')).toContain(ErrorCode.NO_RECEIVER);
  });

  it('CLOSE ERR_SB_DECODE: an OPEN whose payload is not a CBOR map', async () => {
    pair.inject(0, { type: FrameType.OPEN, flags: 0, stream: 41, payload: Buffer.of(0xff) });
    pair.inject(0, { type: FrameType.OPEN, flags: 0, stream: 43, payload: encodeValue(null) });
    await pair.settle();
    expect(pair.sent[1].filter((f) => f.type === FrameType.CLOSE).map((f) => f.stream)).toEqual([
      41, 43,
    ]);
    expect(pair.codes(1, FrameType.CLOSE)).toEqual([ErrorCode.DECODE, ErrorCode.DECODE]);
    expect(listed('CLOSE')).toContain(ErrorCode.DECODE);
  });

  it('CLOSE ERR_SB_PROTOCOL: DATA beyond the credit ends that stream', async () => {
    const [, b] = pair.hubs;
    b.receiver<unknown>('narrow', { window: 1, capacity: 1 });
    pair.inject(0, {
      type: FrameType.OPEN,
      flags: 0,
      stream: 45,
      payload: encodeValue({ name: 'narrow' }),
    });
    for (let i = 0; i < 3; i++)
      pair.inject(0, { type: FrameType.DATA, flags: 0, stream: 45, payload: encodeValue(i) });
    await pair.settle();
    expect(pair.codes(1, FrameType.CLOSE)).toEqual([ErrorCode.PROTOCOL]);
    expect(listed('CLOSE')).toContain(ErrorCode.PROTOCOL);
  });

  it('ERROR ERR_SB_DECODE and ERR_SB_VALIDATION: an undecodable message, and one the validator refuses', async () => {
    const [a, b] = pair.hubs;
    b.receiver<unknown>('checked', { schema: NUMBERS });
    const s = a.sender<unknown>({ node: 1, name: 'checked' });
    const seen = reports(s);
    await sendNow(pair, s, 'not a number');
    await pair.settle();
    const stream = pair.lastOpened(0);
    pair.inject(0, { type: FrameType.DATA, flags: 0, stream, payload: Buffer.of(0xff) });
    await pair.settle();
    expect(pair.codes(1, FrameType.ERROR)).toEqual([ErrorCode.VALIDATION, ErrorCode.DECODE]);
    expect(seen.map((e) => e.code)).toEqual([ErrorCode.VALIDATION, ErrorCode.DECODE]);
    for (const c of [ErrorCode.VALIDATION, ErrorCode.DECODE]) expect(listed('ERROR')).toContain(c);
  });

  it('ERROR ERR_SB_MESSAGE_TOO_LARGE: a message above the receiver’s maximum', async () => {
    pair.close();
    pair = new Pair([DEFAULT_FRAME_LIMITS.maxMessageSize, 1024]);
    const [a, b] = pair.hubs;
    b.receiver<unknown>('small');
    const s = a.sender<unknown>({ node: 1, name: 'small' });
    const seen = reports(s);
    await sendNow(pair, s, Buffer.alloc(2048));
    expect(pair.codes(1, FrameType.ERROR)).toEqual([ErrorCode.MESSAGE_TOO_LARGE]);
    expect(seen.map((e) => e.code)).toEqual([ErrorCode.MESSAGE_TOO_LARGE]);
    expect(listed('ERROR')).toContain(ErrorCode.MESSAGE_TOO_LARGE);
  });

  it('ERROR (any other): an unknown code, or an unreadable payload, is still one refusal, as ERR_SB_DECODE', async () => {
    const [a, b] = pair.hubs;
    b.receiver<unknown>('jobs');
    const s = a.sender<unknown>({ node: 1, name: 'jobs' });
    const seen = reports(s);
    await sendNow(pair, s, 'kept');
    const stream = pair.lastOpened(0);
    // Not settled yet: the message is not covered by `delivered`, so the sender still holds it.
    pair.inject(1, {
      type: FrameType.ERROR,
      flags: 0,
      stream,
      payload: encodeValue({ code: 'E_SOMETHING_ELSE', message: 'refused for a reason', seq: 0 }),
    });
    pair.inject(1, { type: FrameType.ERROR, flags: 0, stream, payload: Buffer.of(0xff) });
    await pair.settle();
    expect(
      seen.map((e) => [
        e.code,
        e.message.endsWith('refused for a reason') || e.message.endsWith('message refused'),
      ]),
    ).toEqual([
      [ErrorCode.DECODE, true],
      [ErrorCode.DECODE, true],
    ]);
    expect((seen[0] as unknown as { messages: unknown[] }).messages).toEqual(['kept']);
    expect((seen[1] as unknown as { messages: unknown[] }).messages).toEqual([]);
    // The stream stays up.
    const after = s.send('after');
    await pair.settle();
    await expect(after).resolves.toBeUndefined();
  });

  it('CLOSE (any other): an unknown code, or an unreadable payload, ends the stream as ERR_SB_NO_RECEIVER', async () => {
    const [a, b] = pair.hubs;
    b.receiver<unknown>('one');
    b.receiver<unknown>('two');
    const s1 = a.sender<unknown>({ node: 1, name: 'one' });
    await sendNow(pair, s1, 1);
    const one = pair.lastOpened(0);
    const s2 = a.sender<unknown>({ node: 1, name: 'two' });
    await sendNow(pair, s2, 1);
    const two = pair.lastOpened(0);
    await pair.settle();
    pair.inject(1, {
      type: FrameType.CLOSE,
      flags: 0,
      stream: one,
      payload: encodeValue({ code: 'E_SOMETHING_ELSE', message: 'gone' }),
    });
    pair.inject(1, { type: FrameType.CLOSE, flags: 0, stream: two, payload: Buffer.of(0xff) });
    const [o1, o2] = await Promise.all([sendOutcome(pair, s1), sendOutcome(pair, s2)]);
    for (const [o, text] of [
      [o1, 'gone'],
      [o2, 'receiver closed'],
    ] as const) {
      expect(o).toBeInstanceOf(SwitchboardError);
      expect((o as SwitchboardError).code).toBe(ErrorCode.NO_RECEIVER);
      expect((o as SwitchboardError).message).toContain(text);
    }
  });
});

describe('error infos (any other), as the caller reads them', () => {
  it('framework 1 with a library code the table does not list: that library error', () => {
    const e = errorFromInfo(1, ['SwitchboardError', 'slow', ErrorCode.OVERFLOW, 1]);
    expect(listed('error info').has(ErrorCode.OVERFLOW)).toBe(false);
    expect(e).toBeInstanceOf(SwitchboardError);
    expect(e).not.toBeInstanceOf(RemoteError);
    expect(e.code).toBe(ErrorCode.OVERFLOW);
  });

  it('framework 1 with a code that is not a library code, or none: ERR_SB_REMOTE with the info’s name, message and code', () => {
    const e = errorFromInfo(1, ['OddError', 'odd', 'E_ODD', 1]);
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({
      code: ErrorCode.REMOTE,
      remoteName: 'OddError',
      remoteCode: 'E_ODD',
    });
    expect(errorFromInfo(1, ['OddError', 'odd', null, 1])).toMatchObject({
      code: ErrorCode.REMOTE,
    });
  });

  it('every framework code of the table is raised as that code', () => {
    for (const code of listed('error info'))
      expect(errorFromInfo(1, ['SwitchboardError', 'm', code, 1]).code).toBe(code);
  });
});
