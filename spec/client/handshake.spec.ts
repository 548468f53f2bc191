/**
 * The client role of the handshake (docs/wire-protocol.md 5.8), driven
 * purely: a client `Handshake` and a member's acceptor exchange frames
 * through `pump`, which delivers a failing side's GOAWAY as
 * `Connection.fail` would. Byte positions are checked against the document.
 */
import { ErrorCode, HandshakeError } from '../../lib/errors.js';
import { FrameType } from '../../lib/protocol/frame.js';
import {
  CLIENT_NODE,
  FINGERPRINT_SIZE,
  GoAwayCode,
  Handshake,
  INCARNATION_SIZE,
  NONCE_SIZE,
  computeProof,
  decodeHello,
  encodeGoAway,
  goAwayCodeFor,
} from '../../lib/protocol/handshake.js';
import type {
  ClientAdmission,
  HandshakeOptions,
  HandshakeResult,
  OutFrame,
  ResumeState,
} from '../../lib/protocol/handshake.js';

const FINGERPRINT = Buffer.alloc(FINGERPRINT_SIZE, 0xf1);
const SECRET = Buffer.from('the cluster secret of some length', 'utf8');
const CLIENT_SECRET = Buffer.from('the client secret, another one', 'utf8');
const MEMBER = 2;
const NODES = 3;
const CLIENT_INC = Buffer.alloc(INCARNATION_SIZE, 0xc1);
const MEMBER_INC = Buffer.alloc(INCARNATION_SIZE, 0xa2);

interface Admitted {
  readonly results: HandshakeResult[];
  readonly admission: ClientAdmission;
}

/** A member's admission: gives number `next`, remembers `resume` for CLIENT_INC. */
function admission(
  next: number,
  o: { secret?: Buffer; resume?: ResumeState; refuse?: HandshakeError } = {},
): Admitted {
  const results: HandshakeResult[] = [];
  return {
    results,
    admission: {
      secret: o.secret,
      resumeFor: (inc) => (inc.equals(CLIENT_INC) ? o.resume : undefined),
      admit: (r) => {
        results.push(r);
        if (o.refuse !== undefined) throw o.refuse;
        return next;
      },
    },
  };
}

function client(o: Partial<HandshakeOptions> = {}): Handshake {
  return new Handshake({
    role: 'client',
    self: CLIENT_NODE,
    peer: MEMBER,
    nodeCount: NODES,
    fingerprint: FINGERPRINT,
    incarnation: CLIENT_INC,
    secret: SECRET,
    nonce: () => Buffer.alloc(NONCE_SIZE, 0x11),
    ...o,
  });
}

function acceptor(o: Partial<HandshakeOptions> = {}): Handshake {
  return new Handshake({
    role: 'acceptor',
    self: MEMBER,
    nodeCount: NODES,
    fingerprint: FINGERPRINT,
    incarnation: MEMBER_INC,
    secret: SECRET,
    mayDial: (from) => from < MEMBER,
    nonce: () => Buffer.alloc(NONCE_SIZE, 0x22),
    ...o,
  });
}

interface Outcome {
  readonly client: HandshakeError | undefined;
  readonly acceptor: HandshakeError | undefined;
  readonly frames: Array<{ from: 'client' | 'acceptor'; frame: OutFrame }>;
}

/** Runs the exchange to its end; a side that throws sends its GOAWAY first. */
function pump(c: Handshake, a: Handshake): Outcome {
  const frames: Outcome['frames'] = [];
  const errors: { client?: HandshakeError; acceptor?: HandshakeError } = {};
  let queue: Array<{ to: 'client' | 'acceptor'; frame: OutFrame }> = [];
  const out = (from: 'client' | 'acceptor', list: OutFrame[]): void => {
    for (const frame of list) {
      frames.push({ from, frame });
      queue.push({ to: from === 'client' ? 'acceptor' : 'client', frame });
    }
  };
  a.start();
  out('client', c.start());
  while (queue.length > 0) {
    const batch = queue;
    queue = [];
    for (const { to, frame } of batch) {
      if (errors[to] !== undefined) continue;
      const side = to === 'client' ? c : a;
      try {
        out(to, side.onFrame(frame.type, frame.payload));
      } catch (err) {
        if (!(err instanceof HandshakeError)) throw err;
        errors[to] = err;
        out(to, [
          { type: FrameType.GOAWAY, payload: encodeGoAway(goAwayCodeFor(err.code), err.message) },
        ]);
      }
    }
  }
  return { client: errors.client, acceptor: errors.acceptor, frames };
}

describe('the client role of the handshake', () => {
  it('says role 2 and node 0xffff in its HELLO, and gets its number in WELCOME', () => {
    const { admission: clients, results } = admission(7);
    const c = client();
    const a = acceptor({ clients });
    const run = pump(c, a);
    expect([run.client, run.acceptor]).toEqual([undefined, undefined]);
    expect(run.frames.map((f) => `${f.from}:${f.frame.type}`)).toEqual([
      `client:${FrameType.HELLO}`,
      `acceptor:${FrameType.HELLO}`,
      `acceptor:${FrameType.AUTH}`,
      `client:${FrameType.AUTH}`,
      `acceptor:${FrameType.WELCOME}`,
    ]);
    const hello = run.frames[0]!.frame.payload;
    expect([hello[6], hello[7], hello.readUInt16BE(40), hello.readUInt16BE(42)]).toEqual([
      0,
      2,
      0xffff,
      MEMBER,
    ]);
    const answer = decodeHello(run.frames[1]!.frame.payload);
    expect([answer.role, answer.from, answer.to]).toEqual(['acceptor', MEMBER, 0xffff]);
    // The client's proof is under its own label: not a member's (dialer) proof.
    const proof = run.frames[3]!.frame.payload;
    const acceptorHello = run.frames[1]!.frame.payload;
    expect(proof).toEqual(computeProof(SECRET, 'client', hello, acceptorHello));
    expect(proof).not.toEqual(computeProof(SECRET, 'dialer', hello, acceptorHello));
    expect(run.frames[4]!.frame.payload).toEqual(Buffer.from([0, 7]));
    expect(c.status).toBe('done');
    expect(c.result).toMatchObject({ peer: MEMBER, localId: 7, resumed: false });
    expect(a.result).toMatchObject({ peer: 7, client: true });
    expect(results.map((r) => r.peerIncarnation)).toEqual([CLIENT_INC]);
  });

  it('keys both proofs with the client secret when its HELLO sets flag 0x02', () => {
    const { admission: clients } = admission(3, { secret: CLIENT_SECRET });
    const c = client({ secret: CLIENT_SECRET, clientSecret: true });
    const run = pump(c, acceptor({ clients }));
    expect([run.client, run.acceptor]).toEqual([undefined, undefined]);
    expect(run.frames[0]!.frame.payload[6]).toBe(0x02);
    const [hello, answer] = [run.frames[0]!.frame.payload, run.frames[1]!.frame.payload];
    expect(run.frames[2]!.frame.payload).toEqual(
      computeProof(CLIENT_SECRET, 'acceptor', hello, answer),
    );
  });

  it('refuses the client secret where no member has one, and a wrong one', () => {
    const none = pump(
      client({ secret: CLIENT_SECRET, clientSecret: true }),
      acceptor({ clients: admission(3).admission }),
    );
    expect(none.acceptor?.code).toBe(ErrorCode.AUTH_FAILED);
    expect(none.client?.code).toBe(ErrorCode.AUTH_FAILED);
    const wrong = pump(
      client({ secret: Buffer.from('a guess at the client secret'), clientSecret: true }),
      acceptor({ clients: admission(3, { secret: CLIENT_SECRET }).admission }),
    );
    // The client checks the member's proof first: it finds the mismatch.
    expect(wrong.client?.code).toBe(ErrorCode.AUTH_FAILED);
  });

  it('never lets the client secret pass for the cluster secret', () => {
    // A client holding the client secret, posing as one holding the cluster's.
    const run = pump(
      client({ secret: CLIENT_SECRET }),
      acceptor({ clients: admission(3, { secret: CLIENT_SECRET }).admission }),
    );
    expect(run.client?.code).toBe(ErrorCode.AUTH_FAILED);
    expect(run.acceptor?.code).toBe(ErrorCode.AUTH_FAILED);
  });

  it('is refused with GOAWAY 16 (ERR_SB_CLIENT_LIMIT) by a full member or one taking none', () => {
    const full = new HandshakeError(ErrorCode.CLIENT_LIMIT, 'full', { state: 'admit' });
    const run = pump(client(), acceptor({ clients: admission(3, { refuse: full }).admission }));
    expect(run.acceptor).toBe(full);
    const goaway = run.frames.find((f) => f.frame.type === FrameType.GOAWAY)!;
    expect(goaway.frame.payload.readUInt16BE(0)).toBe(GoAwayCode.CLIENT_LIMIT);
    expect(run.client?.code).toBe(ErrorCode.CLIENT_LIMIT);
    const none = pump(client(), acceptor());
    expect([none.acceptor?.code, none.client?.code]).toEqual([
      ErrorCode.CLIENT_LIMIT,
      ErrorCode.CLIENT_LIMIT,
    ]);
  });

  it('refuses a client HELLO that names a node, and the client flag on a member HELLO', () => {
    const named = pump(client({ self: 0 }), acceptor({ clients: admission(3).admission }));
    expect(named.acceptor?.code).toBe(ErrorCode.PROTOCOL);
    const member = new Handshake({
      role: 'dialer',
      self: 0,
      peer: MEMBER,
      nodeCount: NODES,
      fingerprint: FINGERPRINT,
      incarnation: CLIENT_INC,
      secret: SECRET,
    });
    const hello = Buffer.from(member.start()[0]!.payload);
    hello[6] = 0x02;
    expect(() => decodeHello(hello)).toThrow(
      expect.objectContaining({ code: ErrorCode.PROTOCOL }) as Error,
    );
  });

  it('refuses a client of another node list or security mode, as a member', () => {
    const other = pump(
      client({ fingerprint: Buffer.alloc(FINGERPRINT_SIZE, 0x0f) }),
      acceptor({ clients: admission(3).admission }),
    );
    expect(other.acceptor?.code).toBe(ErrorCode.FINGERPRINT_MISMATCH);
    const insecure = pump(
      client({ secret: undefined }),
      acceptor({ clients: admission(3).admission }),
    );
    expect(insecure.acceptor?.code).toBe(ErrorCode.SECURITY_MISMATCH);
  });

  it('resumes the session the member keeps for its incarnation', () => {
    const resume = { incarnation: CLIENT_INC, received: 41 };
    const c = client({ resumeFor: () => ({ incarnation: MEMBER_INC, received: 12 }) });
    const a = acceptor({ clients: admission(5, { resume }).admission });
    const run = pump(c, a);
    expect([run.client, run.acceptor]).toEqual([undefined, undefined]);
    expect(c.result).toMatchObject({
      resumed: true,
      peerReceived: 41,
      ownReceived: 12,
      localId: 5,
    });
    expect(a.result).toMatchObject({ resumed: true, peerReceived: 12, ownReceived: 41, peer: 5 });
  });
});
