/**
 * The handshake state machine, driven purely: two `Handshake` instances (a
 * dialer and an acceptor) exchange OutFrames through `pump`, which plays
 * the part of the two connections, including the GOAWAY a failing side sends
 * before closing (as `Connection.fail` does). A tamper hook lets a test act
 * as a man in the middle: rewrite, drop, replace or inject frames.
 *
 * docs/reliability.md items 6 and 7: wrong secret, replay, reflection, truncated
 * MAC, wrong version, application frame before auth, unknown node id,
 * duplicate node, fingerprint mismatch: all refused with typed errors.
 */
import fc from 'fast-check';
import { ErrorCode, HandshakeError } from '../../lib/errors.js';
import { FrameType, frameTypeName } from '../../lib/protocol/frame.js';
import {
  FINGERPRINT_SIZE,
  GoAwayCode,
  HELLO_SIZE,
  Handshake,
  INCARNATION_SIZE,
  MAC_SIZE,
  NONCE_SIZE,
  PROTOCOL_VERSION,
  computeProof,
  decodeHello,
  encodeGoAway,
  encodeHello,
  errorCodeForGoAway,
  goAwayCodeFor,
} from '../../lib/protocol/handshake.js';
import type {
  HandshakeOptions,
  HandshakeResult,
  OutFrame,
  ResumeState,
} from '../../lib/protocol/handshake.js';

type Side = 'dialer' | 'acceptor';

const FINGERPRINT = Buffer.alloc(FINGERPRINT_SIZE, 0xf1);
const SECRET = Buffer.from('a shared secret of decent length', 'utf8');
/** Node ids used throughout: four nodes, node 1 dials node 2. */
const NODES = 4;
const DIALER_ID = 1;
const ACCEPTOR_ID = 2;
const DIALER_INC = Buffer.alloc(INCARNATION_SIZE, 0xd1);
const ACCEPTOR_INC = Buffer.alloc(INCARNATION_SIZE, 0xa2);

const fixedNonce = (byte: number) => (): Buffer => Buffer.alloc(NONCE_SIZE, byte);
const other = (side: Side): Side => (side === 'dialer' ? 'acceptor' : 'dialer');

interface Pair {
  dialer: Handshake;
  acceptor: Handshake;
}

interface PairOptions {
  dialer?: Partial<HandshakeOptions>;
  acceptor?: Partial<HandshakeOptions>;
}

/** A dialer (node 1) and an acceptor (node 2) of a four-node cluster, with the dial rule on. */
function pair(o: PairOptions = {}): Pair {
  return {
    dialer: new Handshake({
      role: 'dialer',
      self: DIALER_ID,
      peer: ACCEPTOR_ID,
      nodeCount: NODES,
      fingerprint: FINGERPRINT,
      incarnation: DIALER_INC,
      secret: SECRET,
      ...o.dialer,
    }),
    acceptor: new Handshake({
      role: 'acceptor',
      self: ACCEPTOR_ID,
      nodeCount: NODES,
      fingerprint: FINGERPRINT,
      incarnation: ACCEPTOR_INC,
      secret: SECRET,
      mayDial: (from) => from < ACCEPTOR_ID,
      ...o.acceptor,
    }),
  };
}

/** One frame on the simulated wire. */
interface Sent {
  readonly from: Side;
  readonly type: number;
  readonly payload: Buffer;
}

/** Rewrites the `index`-th frame put on the wire: return the frames to deliver instead. */
type Tamper = (frame: Sent, index: number) => readonly Sent[];

interface Outcome {
  /** Every frame delivered (after tampering), in order. */
  readonly log: Sent[];
  /** The error each side threw, if any. */
  readonly errors: Partial<Record<Side, unknown>>;
  /** The side that found the problem itself (the other one learnt it from a GOAWAY). */
  readonly detectedBy: Side | undefined;
}

/**
 * Runs the exchange to its end. A side that throws sends a GOAWAY carrying
 * the error's code (unless the error came from a GOAWAY) and then ignores
 * whatever still arrives, as its closed socket would.
 */
function pump(p: Pair, tamper?: Tamper): Outcome {
  const sides: Record<Side, Handshake> = { dialer: p.dialer, acceptor: p.acceptor };
  const queue: Sent[] = p.dialer.start().map((f) => ({ from: 'dialer' as const, ...f }));
  expect(p.acceptor.start()).toEqual([]);
  const log: Sent[] = [];
  const errors: Partial<Record<Side, unknown>> = {};
  let detectedBy: Side | undefined;
  let index = 0;
  while (queue.length > 0) {
    const original = queue.shift()!;
    const delivered = tamper === undefined ? [original] : tamper(original, index);
    index++;
    for (const frame of delivered) {
      log.push(frame);
      const to = other(frame.from);
      if (errors[to] !== undefined) continue;
      try {
        const out = sides[to].onFrame(frame.type, frame.payload);
        for (const f of out) queue.push({ from: to, ...f });
      } catch (err) {
        errors[to] = err;
        if (frame.type === FrameType.GOAWAY) continue;
        detectedBy ??= to;
        const code = err instanceof HandshakeError ? err.code : ErrorCode.INTERNAL;
        const reason = err instanceof Error ? err.message : String(err);
        queue.push({
          from: to,
          type: FrameType.GOAWAY,
          payload: encodeGoAway(goAwayCodeFor(code), reason),
        });
      }
    }
  }
  return { log, errors, detectedBy };
}

/** Asserts `err` is a HandshakeError with `code` (and `state`, when given). */
function expectRefusal(err: unknown, code: string, state?: string): HandshakeError {
  expect(err).toBeInstanceOf(HandshakeError);
  const e = err as HandshakeError;
  expect(e.code).toBe(code);
  expect(typeof e.state).toBe('string');
  if (state !== undefined) expect(e.state).toBe(state);
  return e;
}

/** Asserts both sides failed with `code`, neither reached `done`, and no WELCOME was sent. */
function expectBothRefused(
  p: Pair,
  out: Outcome,
  code: string,
  detectedBy?: Side,
): { dialer: HandshakeError; acceptor: HandshakeError } {
  const dialer = expectRefusal(out.errors.dialer, code);
  const acceptor = expectRefusal(out.errors.acceptor, code);
  if (detectedBy !== undefined) {
    expect(out.detectedBy).toBe(detectedBy);
    // The other side only heard about it: its message quotes the GOAWAY.
    const told = detectedBy === 'dialer' ? acceptor : dialer;
    expect(told.message).toMatch(/^peer refused the handshake: /);
  }
  expect(p.dialer.status).toBe('failed');
  expect(p.acceptor.status).toBe('failed');
  expect(out.log.some((f) => f.type === FrameType.WELCOME)).toBe(false);
  return { dialer, acceptor };
}

/** Throws from `fn` and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

/** Replaces the payload of the first frame of `type` sent by `from`. */
function rewrite(from: Side, type: number, edit: (payload: Buffer) => Buffer): Tamper {
  let done = false;
  return (f) => {
    if (done || f.from !== from || f.type !== type) return [f];
    done = true;
    return [{ ...f, payload: edit(Buffer.from(f.payload)) }];
  };
}

/** Edits a HELLO payload in place through its byte offsets. */
function patchHello(edit: (b: Buffer) => void): (payload: Buffer) => Buffer {
  return (payload) => {
    edit(payload);
    return payload;
  };
}

describe('Handshake', () => {
  describe('success', () => {
    it('authenticates both sides with four frames and yields matching results', () => {
      const p = pair();
      const out = pump(p);
      expect(out.errors).toEqual({});
      expect(out.log.map((f) => `${f.from} ${frameTypeName(f.type)}`)).toEqual([
        'dialer HELLO',
        'acceptor HELLO',
        'acceptor AUTH',
        'dialer AUTH',
        'acceptor WELCOME',
      ]);
      expect(p.dialer.status).toBe('done');
      expect(p.acceptor.status).toBe('done');
      expect(p.dialer.result).toEqual<HandshakeResult>({
        peer: ACCEPTOR_ID,
        peerIncarnation: ACCEPTOR_INC,
        resumed: false,
        peerReceived: 0,
        ownReceived: 0,
      });
      expect(p.acceptor.result).toEqual<HandshakeResult>({
        peer: DIALER_ID,
        peerIncarnation: DIALER_INC,
        resumed: false,
        peerReceived: 0,
        ownReceived: 0,
      });
      // The frames are exactly what the wire document describes.
      const [dHello, aHello, aAuth, dAuth, welcome] = out.log.map((f) => f.payload);
      expect(dHello!.length).toBe(HELLO_SIZE);
      expect(aHello!.length).toBe(HELLO_SIZE);
      expect(aAuth).toEqual(computeProof(SECRET, 'acceptor', dHello!, aHello!));
      expect(dAuth).toEqual(computeProof(SECRET, 'dialer', dHello!, aHello!));
      expect(welcome!.length).toBe(0);
      const d = decodeHello(dHello!);
      expect(d).toMatchObject({
        version: PROTOCOL_VERSION,
        insecure: false,
        role: 'dialer',
        from: DIALER_ID,
        to: ACCEPTOR_ID,
        resume: undefined,
      });
      const a = decodeHello(aHello!);
      expect(a).toMatchObject({ role: 'acceptor', from: ACCEPTOR_ID, to: DIALER_ID });
      expect(d.nonce.equals(a.nonce)).toBe(false);
    });

    it('succeeds the other way round (node 2 dialing node 1) when the dial rule allows it', () => {
      const p = pair({
        dialer: { self: 2, peer: 1, incarnation: ACCEPTOR_INC },
        acceptor: { self: 1, incarnation: DIALER_INC, mayDial: (from) => from === 2 },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result).toMatchObject({ peer: 1, peerIncarnation: DIALER_INC });
      expect(p.acceptor.result).toMatchObject({ peer: 2, peerIncarnation: ACCEPTOR_INC });
    });

    it('draws a fresh 32-byte nonce per handshake by default', () => {
      const nonces = [pair(), pair()].map((p) => decodeHello(p.dialer.start()[0]!.payload).nonce);
      expect(nonces[0]!.length).toBe(NONCE_SIZE);
      expect(nonces[0]!.equals(nonces[1]!)).toBe(false);
    });

    it('uses the injected nonce source', () => {
      const p = pair({ dialer: { nonce: fixedNonce(0x5a) } });
      const hello = decodeHello(p.dialer.start()[0]!.payload);
      expect(hello.nonce).toEqual(Buffer.alloc(NONCE_SIZE, 0x5a));
    });

    it('runs in insecure mode when both sides have no secret, with the flag set in both HELLOs', () => {
      const p = pair({ dialer: { secret: undefined }, acceptor: { secret: undefined } });
      const out = pump(p);
      expect(out.errors).toEqual({});
      expect(p.dialer.status).toBe('done');
      expect(p.acceptor.status).toBe('done');
      const hellos = out.log.filter((f) => f.type === FrameType.HELLO);
      expect(hellos.map((f) => decodeHello(f.payload).insecure)).toEqual([true, true]);
      expect(hellos.map((f) => f.payload[6])).toEqual([0x01, 0x01]);
      // The same exchange runs, with an empty HMAC key.
      const auth = out.log.find((f) => f.from === 'acceptor' && f.type === FrameType.AUTH)!;
      expect(auth.payload).toEqual(
        computeProof(Buffer.alloc(0), 'acceptor', hellos[0]!.payload, hellos[1]!.payload),
      );
    });

    it('lets an acceptor without a dial rule accept any other node', () => {
      const p = pair({ dialer: { self: 3 } });
      p.acceptor = new Handshake({
        role: 'acceptor',
        self: ACCEPTOR_ID,
        nodeCount: NODES,
        fingerprint: FINGERPRINT,
        incarnation: ACCEPTOR_INC,
        secret: SECRET,
      });
      expect(pump(p).errors).toEqual({});
      expect(p.acceptor.result?.peer).toBe(3);
    });

    it('hands the authenticated result to admit() before WELCOME', () => {
      const admitted: HandshakeResult[] = [];
      const p = pair({ acceptor: { admit: (r) => void admitted.push(r) } });
      const out = pump(p);
      expect(out.errors).toEqual({});
      expect(admitted).toEqual([p.acceptor.result]);
      expect(admitted[0]!.peer).toBe(DIALER_ID);
    });
  });

  describe('resume', () => {
    const remember =
      (peer: number, state: ResumeState) =>
      (p: number): ResumeState | undefined =>
        p === peer ? state : undefined;

    it('resumes when both sides remember each other, each learning what the other received', () => {
      const asked: number[] = [];
      const p = pair({
        dialer: {
          resumeFor: (peer) => {
            asked.push(peer);
            return { incarnation: ACCEPTOR_INC, received: 7 };
          },
        },
        acceptor: {
          resumeFor: (peer) => {
            asked.push(peer);
            return { incarnation: DIALER_INC, received: 5 };
          },
        },
      });
      const out = pump(p);
      expect(out.errors).toEqual({});
      expect(asked).toEqual([ACCEPTOR_ID, DIALER_ID]);
      // peerReceived: what the *peer* says it received from us.
      expect(p.dialer.result).toMatchObject({ resumed: true, peerReceived: 5 });
      expect(p.acceptor.result).toMatchObject({ resumed: true, peerReceived: 7 });
      const [dHello, aHello] = out.log.slice(0, 2).map((f) => decodeHello(f.payload));
      expect(dHello!.resume).toEqual({ incarnation: ACCEPTOR_INC, received: 7 });
      expect(aHello!.resume).toEqual({ incarnation: DIALER_INC, received: 5 });
    });

    it('carries counts up to 2^53 - 1 in the u64 field', () => {
      const big = Number.MAX_SAFE_INTEGER;
      const p = pair({
        dialer: { resumeFor: remember(ACCEPTOR_ID, { incarnation: ACCEPTOR_INC, received: 1 }) },
        acceptor: { resumeFor: remember(DIALER_ID, { incarnation: DIALER_INC, received: big }) },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result).toMatchObject({ resumed: true, peerReceived: big });
      expect(p.acceptor.result).toMatchObject({ resumed: true, peerReceived: 1 });
    });

    it('starts a new session when the acceptor restarted (new incarnation, nothing remembered)', () => {
      const restarted = Buffer.alloc(INCARNATION_SIZE, 0xa3);
      const p = pair({
        dialer: { resumeFor: remember(ACCEPTOR_ID, { incarnation: ACCEPTOR_INC, received: 7 }) },
        acceptor: { incarnation: restarted },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result).toEqual({
        peer: ACCEPTOR_ID,
        peerIncarnation: restarted,
        resumed: false,
        peerReceived: 0,
        ownReceived: 0,
      });
      expect(p.acceptor.result).toMatchObject({ resumed: false, peerReceived: 0 });
    });

    it('starts a new session when the dialer restarted', () => {
      const restarted = Buffer.alloc(INCARNATION_SIZE, 0xd2);
      const p = pair({
        dialer: { incarnation: restarted },
        acceptor: { resumeFor: remember(DIALER_ID, { incarnation: DIALER_INC, received: 9 }) },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result).toMatchObject({ resumed: false, peerReceived: 0 });
      expect(p.acceptor.result).toMatchObject({
        peerIncarnation: restarted,
        resumed: false,
        peerReceived: 0,
        ownReceived: 0,
      });
    });

    it('starts a new session when only one side still remembers the other', () => {
      const p = pair({
        dialer: { resumeFor: remember(ACCEPTOR_ID, { incarnation: ACCEPTOR_INC, received: 3 }) },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result).toMatchObject({ resumed: false, peerReceived: 0 });
      expect(p.acceptor.result).toMatchObject({ resumed: false, peerReceived: 0 });
    });

    it('starts a new session when a remembered incarnation is not the peer’s current one', () => {
      const p = pair({
        dialer: {
          resumeFor: remember(ACCEPTOR_ID, {
            incarnation: Buffer.alloc(INCARNATION_SIZE, 0x77),
            received: 3,
          }),
        },
        acceptor: { resumeFor: remember(DIALER_ID, { incarnation: DIALER_INC, received: 4 }) },
      });
      expect(pump(p).errors).toEqual({});
      expect(p.dialer.result?.resumed).toBe(false);
      expect(p.acceptor.result?.resumed).toBe(false);
    });
  });

  describe('security mode', () => {
    it.each<[string, PairOptions, RegExp]>([
      ['insecure dialer, secure acceptor', { dialer: { secret: undefined } }, /runs without/],
      ['secure dialer, insecure acceptor', { acceptor: { secret: undefined } }, /requires a/],
    ])('%s: SECURITY_MISMATCH on both sides', (_name, opts, message) => {
      const p = pair(opts);
      const out = pump(p);
      const { acceptor } = expectBothRefused(p, out, ErrorCode.SECURITY_MISMATCH, 'acceptor');
      expect(acceptor.state).toBe('await-hello');
      expect(acceptor.message).toMatch(message);
    });
  });

  describe('authentication', () => {
    it('wrong secret: the dialer finds it verifying the acceptor’s proof and never proves itself', () => {
      const p = pair({ dialer: { secret: Buffer.from('another secret, same length!!!!!') } });
      const out = pump(p);
      const { dialer, acceptor } = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'dialer');
      expect(dialer.state).toBe('await-auth');
      expect(dialer.message).toMatch(/wrong secret/);
      expect(acceptor.state).toBe('await-auth');
      // The dialer's proof never went out, and neither side has a result.
      expect(out.log.some((f) => f.from === 'dialer' && f.type === FrameType.AUTH)).toBe(false);
      expect(p.dialer.result).toBeUndefined();
      expect(p.acceptor.result).toBeUndefined();
    });

    it('a forged dialer proof: the acceptor refuses and sends no WELCOME', () => {
      const p = pair();
      const out = pump(
        p,
        rewrite('dialer', FrameType.AUTH, (mac) => {
          mac[0]! ^= 0x01;
          return mac;
        }),
      );
      const { acceptor } = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'acceptor');
      expect(acceptor.state).toBe('await-auth');
      expect(p.acceptor.result).toBeUndefined();
    });

    it.each<[string, (mac: Buffer) => Buffer]>([
      ['truncated to 31 bytes', (mac) => mac.subarray(0, MAC_SIZE - 1)],
      ['empty', () => Buffer.alloc(0)],
      ['one byte too long (valid MAC plus a byte)', (mac) => Buffer.concat([mac, Buffer.of(0)])],
      ['twice the size', (mac) => Buffer.concat([mac, mac])],
    ])('a MAC %s is refused with AUTH_FAILED, whichever side sent it', (_name, edit) => {
      for (const from of ['acceptor', 'dialer'] as const) {
        const p = pair();
        const out = pump(p, rewrite(from, FrameType.AUTH, edit));
        const refused = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, other(from));
        expect(refused[other(from)].message).toMatch(/expected 32/);
      }
    });

    it('a replayed handshake (recorded dialer HELLO + AUTH) is refused by a fresh acceptor', () => {
      const recorded = pump(pair());
      expect(recorded.errors).toEqual({});
      const hello = recorded.log.find((f) => f.from === 'dialer' && f.type === FrameType.HELLO)!;
      const auth = recorded.log.find((f) => f.from === 'dialer' && f.type === FrameType.AUTH)!;

      // Same node, same process, a new connection: a fresh acceptor nonce.
      const victim = pair().acceptor;
      victim.start();
      const answer = victim.onFrame(FrameType.HELLO, hello.payload);
      expect(answer.map((f) => f.type)).toEqual([FrameType.HELLO, FrameType.AUTH]);
      const err = thrown(() => victim.onFrame(FrameType.AUTH, auth.payload));
      expectRefusal(err, ErrorCode.AUTH_FAILED, 'await-auth');
      expect(victim.status).toBe('failed');
      expect(victim.result).toBeUndefined();
    });

    it('a replayed acceptor HELLO + AUTH is refused by a fresh dialer', () => {
      const recorded = pump(pair());
      const replay = recorded.log.filter(
        (f) => f.from === 'acceptor' && f.type !== FrameType.WELCOME,
      );
      const victim = pair().dialer;
      victim.start();
      expect(victim.onFrame(FrameType.HELLO, replay[0]!.payload)).toEqual([]);
      const err = thrown(() => victim.onFrame(FrameType.AUTH, replay[1]!.payload));
      expectRefusal(err, ErrorCode.AUTH_FAILED, 'await-auth');
      expect(victim.result).toBeUndefined();
    });

    it('an acceptor echoing the dialer’s nonce is refused (reflected nonce)', () => {
      const p = pair({ dialer: { nonce: fixedNonce(0x42) } });
      const out = pump(
        p,
        rewrite(
          'acceptor',
          FrameType.HELLO,
          patchHello((b) => b.fill(0x42, 60, 92)),
        ),
      );
      const { dialer } = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'dialer');
      expect(dialer.message).toMatch(/nonce/);
      expect(dialer.state).toBe('await-hello');
    });

    it('a dialer presenting the acceptor’s own nonce is refused (reflected nonce)', () => {
      const p = pair({
        dialer: { nonce: fixedNonce(0x42) },
        acceptor: { nonce: fixedNonce(0x42) },
      });
      const out = pump(p);
      const { acceptor } = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'acceptor');
      expect(acceptor.message).toMatch(/nonce/);
      // Refused before any proof was computed or sent.
      expect(out.log.some((f) => f.type === FrameType.AUTH)).toBe(false);
    });

    it('the acceptor’s own proof reflected back as the dialer’s proof is refused', () => {
      const p = pair();
      let acceptorProof: Buffer | undefined;
      const out = pump(p, (f) => {
        if (f.type !== FrameType.AUTH) return [f];
        if (f.from === 'acceptor') {
          acceptorProof = f.payload;
          return [f];
        }
        return [{ ...f, payload: acceptorProof! }];
      });
      expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'acceptor');
    });

    describe('reflected HELLO', () => {
      it('the acceptor’s own HELLO sent back to it mid-handshake is a protocol error', () => {
        const { acceptor } = pair();
        acceptor.start();
        const dialerHello = pair().dialer.start()[0]!;
        const [own] = acceptor.onFrame(FrameType.HELLO, dialerHello.payload);
        const err = thrown(() => acceptor.onFrame(FrameType.HELLO, own!.payload));
        expectRefusal(err, ErrorCode.PROTOCOL, 'await-auth');
      });

      it('an acceptor’s HELLO reflected to a fresh acceptor of the same process is refused', () => {
        const first = pair().acceptor;
        first.start();
        const [own] = first.onFrame(FrameType.HELLO, pair().dialer.start()[0]!.payload);
        const hello = own!.payload;

        const reflect = (edit: (b: Buffer) => void): unknown => {
          const victim = pair().acceptor;
          victim.start();
          const b = Buffer.from(hello);
          edit(b);
          return thrown(() => victim.onFrame(FrameType.HELLO, b));
        };
        // As is: wrong role.
        expectRefusal(
          reflect(() => {}),
          ErrorCode.AUTH_FAILED,
          'await-hello',
        );
        // Role flipped: it was addressed to node 1, not to this node.
        expectRefusal(
          reflect((b) => (b[7] = 0)),
          ErrorCode.UNKNOWN_NODE,
        );
        // Role flipped and ids swapped: it claims to come from this very node.
        expectRefusal(
          reflect((b) => {
            b[7] = 0;
            b.writeUInt16BE(ACCEPTOR_ID, 42);
          }),
          ErrorCode.UNKNOWN_NODE,
        );
        // Every field forged but the incarnation: this process's own incarnation gives it away.
        const e = expectRefusal(
          reflect((b) => {
            b[7] = 0;
            b.writeUInt16BE(0, 40);
            b.writeUInt16BE(ACCEPTOR_ID, 42);
          }),
          ErrorCode.AUTH_FAILED,
        );
        expect(e.message).toMatch(/incarnation/);
      });

      it('a dialer receiving its own HELLO back is refused', () => {
        const reflect = (edit: (b: Buffer) => void): unknown => {
          const { dialer } = pair();
          const b = Buffer.from(dialer.start()[0]!.payload);
          edit(b);
          return thrown(() => dialer.onFrame(FrameType.HELLO, b));
        };
        expectRefusal(
          reflect(() => {}),
          ErrorCode.AUTH_FAILED,
          'await-hello',
        );
        expectRefusal(
          reflect((b) => (b[7] = 1)),
          ErrorCode.UNKNOWN_NODE,
        );
        const e = expectRefusal(
          reflect((b) => {
            b[7] = 1;
            b.writeUInt16BE(ACCEPTOR_ID, 40);
            b.writeUInt16BE(DIALER_ID, 42);
          }),
          ErrorCode.AUTH_FAILED,
        );
        expect(e.message).toMatch(/incarnation/);
      });
    });
  });

  describe('malformed HELLO', () => {
    it.each<[string, (b: Buffer) => Buffer, string]>([
      ['wrong magic', patchHello((b) => b.write('SWBX', 0, 'ascii')), ErrorCode.VERSION_MISMATCH],
      [
        'not this protocol at all',
        () => Buffer.from('GET / HTTP/1.1\r\n\r\n'),
        ErrorCode.VERSION_MISMATCH,
      ],
      ['shorter than magic + version', (b) => b.subarray(0, 5), ErrorCode.VERSION_MISMATCH],
      ['protocol version 2', patchHello((b) => b.writeUInt16BE(2, 4)), ErrorCode.VERSION_MISMATCH],
      ['protocol version 0', patchHello((b) => b.writeUInt16BE(0, 4)), ErrorCode.VERSION_MISMATCH],
      [
        'version 2 with a longer HELLO (version is checked before size)',
        (b) => {
          const longer = Buffer.concat([b, Buffer.alloc(40)]);
          longer.writeUInt16BE(2, 4);
          return longer;
        },
        ErrorCode.VERSION_MISMATCH,
      ],
      ['one byte short', (b) => b.subarray(0, HELLO_SIZE - 1), ErrorCode.PROTOCOL],
      ['one byte long', (b) => Buffer.concat([b, Buffer.of(0)]), ErrorCode.PROTOCOL],
      ['just magic and version', (b) => b.subarray(0, 6), ErrorCode.PROTOCOL],
      ['unknown flag 0x02', patchHello((b) => (b[6] = 0x02)), ErrorCode.PROTOCOL],
      ['unknown flag 0x80', patchHello((b) => (b[6] = 0x80)), ErrorCode.PROTOCOL],
      ['unknown role 3', patchHello((b) => (b[7] = 3)), ErrorCode.PROTOCOL],
      ['unknown role 0xff', patchHello((b) => (b[7] = 0xff)), ErrorCode.PROTOCOL],
      [
        'resume count above 2^53 - 1',
        patchHello((b) => {
          b.fill(0x11, 92, 108);
          b.writeUInt32BE(0x200000, 108);
        }),
        ErrorCode.PROTOCOL,
      ],
    ])('%s: refused by the acceptor', (_name, edit, code) => {
      const p = pair();
      const out = pump(p, rewrite('dialer', FrameType.HELLO, edit));
      expectBothRefused(p, out, code, 'acceptor');
      expect(out.log.filter((f) => f.from === 'acceptor').map((f) => f.type)).toEqual([
        FrameType.GOAWAY,
      ]);
    });

    it('the same checks apply to the acceptor’s HELLO at the dialer', () => {
      for (const [edit, code] of [
        [patchHello((b) => b.writeUInt16BE(9, 4)), ErrorCode.VERSION_MISMATCH],
        [(b: Buffer) => b.subarray(0, 100), ErrorCode.PROTOCOL],
        [patchHello((b) => (b[6] = 0x03)), ErrorCode.PROTOCOL],
      ] as const) {
        const p = pair();
        expectBothRefused(p, pump(p, rewrite('acceptor', FrameType.HELLO, edit)), code, 'dialer');
      }
    });
  });

  describe('application frames before authentication', () => {
    const APPLICATION_TYPES = Object.values(FrameType).filter(
      (t) =>
        t !== FrameType.HELLO &&
        t !== FrameType.AUTH &&
        t !== FrameType.WELCOME &&
        t !== FrameType.GOAWAY,
    );

    /** Drives `side` to `state` with a well-behaved peer, returning both and the peer's next frames. */
    function at(side: Side, state: string): { hs: Handshake; next: OutFrame[] } {
      const p = pair();
      const d = p.dialer.start();
      p.acceptor.start();
      if (side === 'acceptor') {
        if (state === 'await-hello') return { hs: p.acceptor, next: d };
        const [aHello, aAuth] = p.acceptor.onFrame(FrameType.HELLO, d[0]!.payload);
        p.dialer.onFrame(FrameType.HELLO, aHello!.payload);
        return { hs: p.acceptor, next: p.dialer.onFrame(FrameType.AUTH, aAuth!.payload) };
      }
      const [aHello, aAuth] = p.acceptor.onFrame(FrameType.HELLO, d[0]!.payload);
      if (state === 'await-hello') return { hs: p.dialer, next: [aHello!, aAuth!] };
      p.dialer.onFrame(FrameType.HELLO, aHello!.payload);
      if (state === 'await-auth') return { hs: p.dialer, next: [aAuth!] };
      const [dAuth] = p.dialer.onFrame(FrameType.AUTH, aAuth!.payload);
      return { hs: p.dialer, next: p.acceptor.onFrame(FrameType.AUTH, dAuth!.payload) };
    }

    const cases: Array<[Side, string]> = [
      ['acceptor', 'await-hello'],
      ['acceptor', 'await-auth'],
      ['dialer', 'await-hello'],
      ['dialer', 'await-auth'],
      ['dialer', 'await-welcome'],
    ];

    it.each(cases)(
      '%s in %s: every application or link-control frame is a PROTOCOL error, and the handshake never completes',
      (side, state) => {
        for (const type of APPLICATION_TYPES) {
          const { hs, next } = at(side, state);
          expect(hs.status).toBe(state);
          const err = thrown(() => hs.onFrame(type, Buffer.alloc(8)));
          const e = expectRefusal(err, ErrorCode.PROTOCOL, state);
          expect(e.message).toContain(frameTypeName(type));
          expect(hs.status).toBe('failed');
          // Not even the well-behaved peer's next frames revive it.
          for (const f of next) {
            expectRefusal(
              thrown(() => hs.onFrame(f.type, f.payload)),
              ErrorCode.PROTOCOL,
            );
          }
          expect(hs.status).toBe('failed');
          // Before the peer proved itself there is no result at all.
          if (state !== 'await-welcome') expect(hs.result).toBeUndefined();
        }
      },
    );

    it('an unexpected handshake frame is a PROTOCOL error too (AUTH before HELLO, WELCOME to an acceptor, HELLO twice)', () => {
      const a = at('acceptor', 'await-hello').hs;
      expectRefusal(
        thrown(() => a.onFrame(FrameType.AUTH, Buffer.alloc(MAC_SIZE))),
        ErrorCode.PROTOCOL,
        'await-hello',
      );
      const b = at('acceptor', 'await-auth').hs;
      expectRefusal(
        thrown(() => b.onFrame(FrameType.WELCOME, Buffer.alloc(0))),
        ErrorCode.PROTOCOL,
        'await-auth',
      );
      const d = at('dialer', 'await-auth').hs;
      expectRefusal(
        thrown(() => d.onFrame(FrameType.HELLO, Buffer.alloc(HELLO_SIZE))),
        ErrorCode.PROTOCOL,
        'await-auth',
      );
      const w = at('dialer', 'await-hello').hs;
      expectRefusal(
        thrown(() => w.onFrame(FrameType.WELCOME, Buffer.alloc(0))),
        ErrorCode.PROTOCOL,
        'await-hello',
      );
    });

    it('a WELCOME with a payload is a PROTOCOL error', () => {
      const { hs } = at('dialer', 'await-welcome');
      expectRefusal(
        thrown(() => hs.onFrame(FrameType.WELCOME, Buffer.of(0))),
        ErrorCode.PROTOCOL,
        'await-welcome',
      );
      expect(hs.status).toBe('failed');
    });
  });

  describe('identity', () => {
    it('a different node list or cluster name: FINGERPRINT_MISMATCH on both sides', () => {
      const p = pair({ acceptor: { fingerprint: Buffer.alloc(FINGERPRINT_SIZE, 0xf2) } });
      const out = pump(p);
      const { acceptor } = expectBothRefused(p, out, ErrorCode.FINGERPRINT_MISMATCH, 'acceptor');
      expect(acceptor.state).toBe('await-hello');
    });

    it('the dialer checks the acceptor’s fingerprint as well', () => {
      const p = pair();
      const out = pump(
        p,
        rewrite(
          'acceptor',
          FrameType.HELLO,
          patchHello((b) => (b[8]! ^= 1)),
        ),
      );
      expectBothRefused(p, out, ErrorCode.FINGERPRINT_MISMATCH, 'dialer');
    });

    it.each<[string, PairOptions, RegExp]>([
      ['a node id beyond the list (id = nodeCount)', { dialer: { self: NODES } }, /not a peer/],
      ['a node id far beyond the list', { dialer: { self: 0xffff } }, /not a peer/],
      [
        'the acceptor’s own id',
        { dialer: { self: ACCEPTOR_ID, incarnation: Buffer.alloc(INCARNATION_SIZE, 7) } },
        /not a peer/,
      ],
      ['a HELLO addressed to another node', { dialer: { peer: 3 } }, /meant to reach node 3/],
      ['a higher id dialing a lower one (dial rule)', { dialer: { self: 3 } }, /dial rule/],
    ])('%s: UNKNOWN_NODE at the acceptor', (_name, opts, message) => {
      const p = pair(opts);
      const out = pump(p);
      const { acceptor } = expectBothRefused(p, out, ErrorCode.UNKNOWN_NODE, 'acceptor');
      expect(acceptor.message).toMatch(message);
      expect(acceptor.state).toBe('await-hello');
    });

    it('the dial rule is asked about the claimed node id', () => {
      const asked: number[] = [];
      const p = pair({
        dialer: { self: 0 },
        acceptor: {
          mayDial: (from) => {
            asked.push(from);
            return false;
          },
        },
      });
      expectBothRefused(p, pump(p), ErrorCode.UNKNOWN_NODE, 'acceptor');
      expect(asked).toEqual([0]);
    });

    it('a dialer that reached the wrong node: UNKNOWN_NODE at the dialer', () => {
      const p = pair();
      const out = pump(
        p,
        rewrite(
          'acceptor',
          FrameType.HELLO,
          patchHello((b) => b.writeUInt16BE(3, 40)),
        ),
      );
      const { dialer } = expectBothRefused(p, out, ErrorCode.UNKNOWN_NODE, 'dialer');
      expect(dialer.message).toMatch(/dialed node 2 but node 3 answered/);
    });

    it('an acceptor HELLO addressed to another node: UNKNOWN_NODE at the dialer', () => {
      const p = pair();
      const out = pump(
        p,
        rewrite(
          'acceptor',
          FrameType.HELLO,
          patchHello((b) => b.writeUInt16BE(0, 42)),
        ),
      );
      expectBothRefused(p, out, ErrorCode.UNKNOWN_NODE, 'dialer');
    });

    it('a peer presenting this process’s incarnation is refused (AUTH_FAILED)', () => {
      const p = pair({ dialer: { incarnation: ACCEPTOR_INC } });
      const out = pump(p);
      const { acceptor } = expectBothRefused(p, out, ErrorCode.AUTH_FAILED, 'acceptor');
      expect(acceptor.message).toMatch(/incarnation/);
    });

    it('admit() refusing with DUPLICATE_NODE: the acceptor never sends WELCOME, the dialer is told', () => {
      const admitted: HandshakeResult[] = [];
      const p = pair({
        acceptor: {
          admit: (r) => {
            admitted.push(r);
            throw new HandshakeError(ErrorCode.DUPLICATE_NODE, `node ${r.peer} is live`, {
              state: 'admit',
            });
          },
        },
      });
      const out = pump(p);
      const { acceptor, dialer } = expectBothRefused(p, out, ErrorCode.DUPLICATE_NODE, 'acceptor');
      // The admit hook's own error travels unchanged.
      expect(acceptor.state).toBe('admit');
      expect(acceptor.message).toBe('node 1 is live');
      expect(dialer.message).toContain('node 1 is live');
      expect(admitted).toHaveLength(1);
      expect(admitted[0]).toMatchObject({ peer: DIALER_ID, peerIncarnation: DIALER_INC });
      expect(out.log.at(-1)).toMatchObject({ from: 'acceptor', type: FrameType.GOAWAY });
    });

    it('a hook throwing something else becomes INTERNAL, with the state it failed in and the cause', () => {
      const bug = new TypeError('bug in the hook');
      const p = pair({
        acceptor: {
          mayDial: () => {
            throw bug;
          },
        },
      });
      const out = pump(p);
      const e = expectRefusal(out.errors.acceptor, ErrorCode.INTERNAL, 'await-hello');
      expect(e.cause).toBe(bug);
      expectRefusal(out.errors.dialer, ErrorCode.INTERNAL);
      expect(p.acceptor.status).toBe('failed');
    });
  });

  describe('GOAWAY during the handshake', () => {
    const codes = Object.entries(GoAwayCode);

    it.each(codes)(
      'GOAWAY %s (%d) fails every pre-auth state with the mapped code',
      (name, code) => {
        const expected = errorCodeForGoAway(code);
        const payload = encodeGoAway(code, `because ${name}`);
        const states: Array<() => Handshake> = [
          () => {
            const { acceptor } = pair();
            acceptor.start();
            return acceptor;
          },
          () => {
            const { dialer } = pair();
            dialer.start();
            return dialer;
          },
          () => {
            const p = pair();
            const d = p.dialer.start();
            p.acceptor.start();
            const [aHello] = p.acceptor.onFrame(FrameType.HELLO, d[0]!.payload);
            p.dialer.onFrame(FrameType.HELLO, aHello!.payload);
            return p.dialer;
          },
        ];
        for (const make of states) {
          const hs = make();
          const state = hs.status;
          const e = expectRefusal(
            thrown(() => hs.onFrame(FrameType.GOAWAY, payload)),
            expected,
            state,
          );
          expect(e.message).toBe(`peer refused the handshake: because ${name}`);
          expect(hs.status).toBe('failed');
          expect(hs.result).toBeUndefined();
        }
      },
    );

    it('maps GOAWAY codes as the wire document says', () => {
      expect(Object.fromEntries(codes.map(([name, c]) => [name, errorCodeForGoAway(c)]))).toEqual({
        NORMAL: ErrorCode.CLOSED,
        PROTOCOL: ErrorCode.PROTOCOL,
        AUTH_FAILED: ErrorCode.AUTH_FAILED,
        VERSION_MISMATCH: ErrorCode.VERSION_MISMATCH,
        FINGERPRINT_MISMATCH: ErrorCode.FINGERPRINT_MISMATCH,
        UNKNOWN_NODE: ErrorCode.UNKNOWN_NODE,
        DUPLICATE_NODE: ErrorCode.DUPLICATE_NODE,
        SECURITY_MISMATCH: ErrorCode.SECURITY_MISMATCH,
        HANDSHAKE_TIMEOUT: ErrorCode.HANDSHAKE_TIMEOUT,
        HANDSHAKE_LIMIT: ErrorCode.HANDSHAKE_LIMIT,
        PEER_LOST: ErrorCode.PEER_LOST,
        WRITE_STALL: ErrorCode.WRITE_STALL,
        SHUTDOWN: ErrorCode.CLOSED,
        INTERNAL: ErrorCode.INTERNAL,
        FRAME_TOO_LARGE: ErrorCode.FRAME_TOO_LARGE,
        REPLACED: ErrorCode.LINK,
        CLIENT_LIMIT: ErrorCode.CLIENT_LIMIT,
        CLIENT_ROLE: ErrorCode.CLIENT_ROLE,
      });
    });

    it('an unknown GOAWAY code or a malformed GOAWAY fails with PROTOCOL', () => {
      for (const payload of [encodeGoAway(999 as GoAwayCode, 'from the future'), Buffer.of(0)]) {
        const { acceptor } = pair();
        acceptor.start();
        expectRefusal(
          thrown(() => acceptor.onFrame(FrameType.GOAWAY, payload)),
          ErrorCode.PROTOCOL,
          'await-hello',
        );
      }
    });
  });

  describe('after the end', () => {
    it.each(['dialer', 'acceptor'] as const)(
      'any frame reaching a finished %s is a PROTOCOL error',
      (side) => {
        for (const type of [FrameType.HELLO, FrameType.AUTH, FrameType.WELCOME, FrameType.DATA]) {
          const p = pair();
          expect(pump(p).errors).toEqual({});
          const hs = p[side];
          expect(hs.status).toBe('done');
          const e = expectRefusal(
            thrown(() => hs.onFrame(type, Buffer.alloc(0))),
            ErrorCode.PROTOCOL,
            'done',
          );
          expect(e.message).toMatch(/after the handshake ended/);
        }
      },
    );

    it('a failed handshake refuses everything after', () => {
      const { acceptor } = pair();
      acceptor.start();
      thrown(() => acceptor.onFrame(FrameType.DATA, Buffer.alloc(0)));
      expectRefusal(
        thrown(() => acceptor.onFrame(FrameType.HELLO, pair().dialer.start()[0]!.payload)),
        ErrorCode.PROTOCOL,
        'failed',
      );
    });

    it('start() runs once; bad options are refused at construction', () => {
      const { dialer } = pair();
      dialer.start();
      expect(() => dialer.start()).toThrow('already started');
      const base: HandshakeOptions = {
        role: 'dialer',
        self: 0,
        peer: 1,
        nodeCount: 2,
        fingerprint: FINGERPRINT,
        incarnation: DIALER_INC,
        secret: SECRET,
      };
      expect(() => new Handshake({ ...base, fingerprint: Buffer.alloc(31) })).toThrow(RangeError);
      expect(() => new Handshake({ ...base, incarnation: Buffer.alloc(15) })).toThrow(RangeError);
      const { peer: _peer, ...noPeer } = base;
      expect(() => new Handshake(noPeer)).toThrow(RangeError);
    });
  });

  describe('HELLO encoding', () => {
    it('round-trips every field at its documented offset', () => {
      const hello = {
        version: PROTOCOL_VERSION,
        insecure: true,
        role: 'acceptor' as const,
        fingerprint: Buffer.alloc(32, 0xfa),
        from: 0x0102,
        to: 0x0304,
        incarnation: Buffer.alloc(16, 0x1c),
        nonce: Buffer.alloc(32, 0x9e),
        resume: { incarnation: Buffer.alloc(16, 0x2e), received: 0x0001_0000_0002 },
      };
      const b = encodeHello(hello);
      expect(b.length).toBe(HELLO_SIZE);
      expect(b.subarray(0, 4).toString('ascii')).toBe('SWBD');
      expect(b.readUInt16BE(4)).toBe(1);
      expect([b[6], b[7]]).toEqual([0x01, 0x01]);
      expect(b.subarray(8, 40)).toEqual(hello.fingerprint);
      expect([b.readUInt16BE(40), b.readUInt16BE(42)]).toEqual([0x0102, 0x0304]);
      expect(b.subarray(44, 60)).toEqual(hello.incarnation);
      expect(b.subarray(60, 92)).toEqual(hello.nonce);
      expect(b.subarray(92, 108)).toEqual(hello.resume.incarnation);
      expect([b.readUInt32BE(108), b.readUInt32BE(112)]).toEqual([1, 2]);
      expect(decodeHello(b)).toEqual(hello);
    });

    it('writes zeros for "no resume" and reads an all-zero resume incarnation as none', () => {
      const b = encodeHello({
        version: 1,
        insecure: false,
        role: 'dialer',
        fingerprint: FINGERPRINT,
        from: 0,
        to: 1,
        incarnation: DIALER_INC,
        nonce: Buffer.alloc(32, 1),
        resume: undefined,
      });
      expect(b.subarray(92)).toEqual(Buffer.alloc(24));
      // A count without an incarnation means nothing.
      b.writeUInt32BE(5, 112);
      expect(decodeHello(b).resume).toBeUndefined();
    });
  });

  describe('fuzzing (fast-check)', () => {
    /** A valid run's frames, index by index: dialer HELLO, acceptor HELLO, acceptor AUTH, dialer AUTH, WELCOME. */
    const KNOWN_TYPES = Object.values(FrameType);

    type Mutation =
      | { kind: 'xor'; at: number; mask: number }
      | { kind: 'set'; at: number; value: number }
      | { kind: 'truncate'; length: number }
      | { kind: 'extend'; bytes: Uint8Array }
      | { kind: 'replace'; bytes: Uint8Array }
      | { kind: 'retype'; type: number };

    const mutationArb: fc.Arbitrary<Mutation[]> = fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.record({ kind: fc.constant('xor' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), length: fc.nat() }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('replace' as const), bytes: fc.uint8Array({ maxLength: 130 }) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('retype' as const), type: fc.constantFrom(...KNOWN_TYPES) }) },
      ),
      { minLength: 1, maxLength: 4 },
    ); // prettier-ignore

    function mutate(f: Sent, mutations: readonly Mutation[]): Sent {
      let payload = Buffer.from(f.payload);
      let type = f.type;
      for (const m of mutations) {
        switch (m.kind) {
          case 'xor':
            if (payload.length > 0) payload[m.at % payload.length]! ^= m.mask;
            break;
          case 'set':
            if (payload.length > 0) payload[m.at % payload.length] = m.value;
            break;
          case 'truncate':
            payload = payload.subarray(0, m.length % (payload.length + 1));
            break;
          case 'extend':
            payload = Buffer.concat([payload, m.bytes]);
            break;
          case 'replace':
            payload = Buffer.from(m.bytes);
            break;
          case 'retype':
            type = m.type;
            break;
        }
      }
      return { from: f.from, type, payload };
    }

    /** Runs a handshake with frame `target` mutated; checks the outcome. */
    function check(target: number, mutations: readonly Mutation[], insecure: boolean): void {
      const secret = insecure ? undefined : SECRET;
      const p = pair({ dialer: { secret }, acceptor: { secret } });
      let unchanged = true;
      const out = pump(p, (f, i) => {
        if (i !== target) return [f];
        const m = mutate(f, mutations);
        unchanged = m.type === f.type && m.payload.equals(f.payload);
        return [m];
      });
      for (const err of Object.values(out.errors)) {
        // Never another error type: no RangeError, no TypeError from a short buffer.
        if (!(err instanceof HandshakeError)) throw err;
      }
      const success = p.dialer.status === 'done' && p.acceptor.status === 'done';
      if (unchanged) {
        if (!success) throw new Error(`an unchanged frame ${target} failed the handshake`);
        return;
      }
      if (success) throw new Error(`frame ${target} was altered and the handshake still succeeded`);
      if (out.errors.dialer === undefined && out.errors.acceptor === undefined) {
        throw new Error('a failed handshake with no error');
      }
      // Up to the dialer's proof, nobody may get as far as `done`.
      if (target < 3 && (p.dialer.status === 'done' || p.acceptor.status === 'done')) {
        throw new Error(`frame ${target} was altered and one side completed`);
      }
    }

    it('mutating any HELLO, AUTH or WELCOME never yields a successful handshake unless the bytes are unchanged', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 4 }),
          mutationArb,
          fc.boolean(),
          (target, mutations, insecure) => check(target, mutations, insecure),
        ),
        { numRuns: 50_000 },
      );
    });

    it('random payloads of any handshake frame type, in any state, only ever throw HandshakeError', () => {
      const states: Array<[Side, number]> = [
        ['acceptor', 0],
        ['acceptor', 1],
        ['dialer', 0],
        ['dialer', 1],
        ['dialer', 2],
      ];
      fc.assert(
        fc.property(
          fc.constantFrom(...states),
          fc.constantFrom(...KNOWN_TYPES, 0x00, 0x7f, 0xff),
          fc.uint8Array({ maxLength: 300 }),
          ([side, steps], type, bytes) => {
            const p = pair();
            const d = p.dialer.start();
            p.acceptor.start();
            let hs: Handshake = side === 'acceptor' ? p.acceptor : p.dialer;
            if (steps > 0) {
              const [aHello, aAuth] = p.acceptor.onFrame(FrameType.HELLO, d[0]!.payload);
              if (side === 'dialer') {
                p.dialer.onFrame(FrameType.HELLO, aHello!.payload);
                if (steps > 1) p.dialer.onFrame(FrameType.AUTH, aAuth!.payload);
              }
              hs = side === 'acceptor' ? p.acceptor : p.dialer;
            }
            try {
              hs.onFrame(type, Buffer.from(bytes));
            } catch (err) {
              if (!(err instanceof HandshakeError)) throw err;
              expect(hs.status).toBe('failed');
              return;
            }
            // Only a genuine (empty) WELCOME completes the dialer; nothing else completes anything.
            const genuineWelcome =
              side === 'dialer' && steps === 2 && type === FrameType.WELCOME && bytes.length === 0;
            expect(hs.status).toBe(genuineWelcome ? 'done' : hs.status);
            if (!genuineWelcome) expect(hs.status).not.toBe('done');
          },
        ),
        { numRuns: 50_000 },
      );
    });
  });
});
