/**
 * The handshake as a pure state machine (docs/wire-protocol.md 5): HELLO,
 * AUTH with the HMAC over the transcript, WELCOME, and every refusal with
 * its GOAWAY code. One file because each check depends on the transcript
 * built by the ones before it; read top to bottom, it is the section of
 * the document it implements.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, HandshakeError } from '../errors.js';
import { FrameType, frameTypeName } from './frame.js';

/**
 * The handshake, as a pure state machine (no sockets, no timers): frames in,
 * frames out. docs/wire-protocol.md gives the byte layout and the exact
 * bytes each MAC covers.
 *
 *   dialer                       acceptor
 *   HELLO(role=dialer)     -->
 *                          <--   HELLO(role=acceptor), AUTH(acceptor proof)
 *   AUTH(dialer proof)     -->
 *                          <--   WELCOME
 *
 * Each proof is HMAC-SHA256(secret, label || dialer HELLO || acceptor HELLO),
 * the label naming the prover's role, so a proof can be neither replayed
 * (the other side's nonce is fresh) nor reflected (the labels differ).
 *
 * A client (a process outside the node list) dials with role `client`:
 * the same exchange, its HELLO naming no node (0xFFFF), its proof under
 * the client label, keyed with the cluster secret or, when its HELLO says
 * so, the members' client secret; the member's WELCOME then carries the
 * number it gave the client (docs/wire-protocol.md 5.8).
 */

export const PROTOCOL_MAGIC = Buffer.from('SWBD', 'ascii');
export const PROTOCOL_VERSION = 1;
export const HELLO_SIZE = 116;
export const MAC_SIZE = 32;
export const FINGERPRINT_SIZE = 32;
export const INCARNATION_SIZE = 16;
export const NONCE_SIZE = 32;
/** The largest frame payload a peer may send before it is authenticated. */
export const MAX_HANDSHAKE_PAYLOAD = 256;

const FLAG_INSECURE = 0x01;
/** Client HELLO only: the proofs are keyed with the client secret, not the cluster secret. */
const FLAG_CLIENT_SECRET = 0x02;
const ROLE_DIALER = 0;
const ROLE_ACCEPTOR = 1;
const ROLE_CLIENT = 2;
/** The node id a client's HELLO gives for itself, and the member's HELLO gives as `to`. */
export const CLIENT_NODE = 0xffff;
const LABEL_DIALER = Buffer.from('switchboard/1 dialer proof', 'ascii');
const LABEL_ACCEPTOR = Buffer.from('switchboard/1 acceptor proof', 'ascii');
const LABEL_CLIENT = Buffer.from('switchboard/1 client proof', 'ascii');
const NO_INCARNATION = Buffer.alloc(INCARNATION_SIZE);

/** GOAWAY reason codes (u16 on the wire). */
export const GoAwayCode = {
  NORMAL: 0,
  PROTOCOL: 1,
  AUTH_FAILED: 2,
  VERSION_MISMATCH: 3,
  FINGERPRINT_MISMATCH: 4,
  UNKNOWN_NODE: 5,
  DUPLICATE_NODE: 6,
  SECURITY_MISMATCH: 7,
  HANDSHAKE_TIMEOUT: 8,
  HANDSHAKE_LIMIT: 9,
  PEER_LOST: 10,
  WRITE_STALL: 11,
  SHUTDOWN: 12,
  INTERNAL: 13,
  FRAME_TOO_LARGE: 14,
  REPLACED: 15,
  CLIENT_LIMIT: 16,
  CLIENT_ROLE: 17,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

const GOAWAY_TO_ERROR: Record<number, ErrorCode> = {
  [GoAwayCode.NORMAL]: ErrorCode.CLOSED,
  [GoAwayCode.PROTOCOL]: ErrorCode.PROTOCOL,
  [GoAwayCode.AUTH_FAILED]: ErrorCode.AUTH_FAILED,
  [GoAwayCode.VERSION_MISMATCH]: ErrorCode.VERSION_MISMATCH,
  [GoAwayCode.FINGERPRINT_MISMATCH]: ErrorCode.FINGERPRINT_MISMATCH,
  [GoAwayCode.UNKNOWN_NODE]: ErrorCode.UNKNOWN_NODE,
  [GoAwayCode.DUPLICATE_NODE]: ErrorCode.DUPLICATE_NODE,
  [GoAwayCode.SECURITY_MISMATCH]: ErrorCode.SECURITY_MISMATCH,
  [GoAwayCode.HANDSHAKE_TIMEOUT]: ErrorCode.HANDSHAKE_TIMEOUT,
  [GoAwayCode.HANDSHAKE_LIMIT]: ErrorCode.HANDSHAKE_LIMIT,
  [GoAwayCode.PEER_LOST]: ErrorCode.PEER_LOST,
  [GoAwayCode.WRITE_STALL]: ErrorCode.WRITE_STALL,
  [GoAwayCode.SHUTDOWN]: ErrorCode.CLOSED,
  [GoAwayCode.INTERNAL]: ErrorCode.INTERNAL,
  [GoAwayCode.FRAME_TOO_LARGE]: ErrorCode.FRAME_TOO_LARGE,
  [GoAwayCode.REPLACED]: ErrorCode.LINK,
  [GoAwayCode.CLIENT_LIMIT]: ErrorCode.CLIENT_LIMIT,
  [GoAwayCode.CLIENT_ROLE]: ErrorCode.CLIENT_ROLE,
};

/** The GOAWAY code that reports an error code to the peer. */
export function goAwayCodeFor(code: ErrorCode): GoAwayCode {
  for (const [k, v] of Object.entries(GOAWAY_TO_ERROR))
    if (v === code) return Number(k) as GoAwayCode;
  return GoAwayCode.PROTOCOL;
}

/** The error code a received GOAWAY code stands for. */
export function errorCodeForGoAway(code: number): ErrorCode {
  return GOAWAY_TO_ERROR[code] ?? ErrorCode.PROTOCOL;
}

/** Payload of a GOAWAY frame: u16 BE code, then a UTF-8 reason (at most 200 bytes). */
export function encodeGoAway(code: GoAwayCode, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 200);
  const buf = Buffer.allocUnsafe(2 + text.length);
  buf.writeUInt16BE(code, 0);
  text.copy(buf, 2);
  return buf;
}

/** Parses a GOAWAY payload; tolerant, since it is only ever reported. */
export function decodeGoAway(payload: Buffer): { code: number; reason: string } {
  if (payload.length < 2) return { code: GoAwayCode.PROTOCOL, reason: 'malformed GOAWAY' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}

/** What one side remembers of an earlier session with a peer, offered for resumption. */
export interface ResumeState {
  /** The peer incarnation of that session. */
  readonly incarnation: Buffer;
  /** Sequenced frames received from it in that session. */
  readonly received: number;
}

/** Who says a HELLO: a member dialing, a member accepting, or a client (always dialing). */
export type HandshakeRole = 'dialer' | 'acceptor' | 'client';

const ROLE_BYTES: Record<HandshakeRole, number> = {
  dialer: ROLE_DIALER,
  acceptor: ROLE_ACCEPTOR,
  client: ROLE_CLIENT,
};
const ROLES: readonly HandshakeRole[] = ['dialer', 'acceptor', 'client'];

/** A parsed HELLO. */
export interface Hello {
  readonly version: number;
  readonly insecure: boolean;
  /** Client HELLO: the proofs are keyed with the client secret. */
  readonly clientSecret?: boolean;
  readonly role: HandshakeRole;
  readonly fingerprint: Buffer;
  readonly from: number;
  readonly to: number;
  readonly incarnation: Buffer;
  readonly nonce: Buffer;
  readonly resume: ResumeState | undefined;
}

/** Writes a HELLO payload. Exposed for specs and compatible peers. */
export function encodeHello(h: Hello): Buffer {
  const buf = Buffer.alloc(HELLO_SIZE);
  PROTOCOL_MAGIC.copy(buf, 0);
  buf.writeUInt16BE(h.version, 4);
  buf[6] = (h.insecure ? FLAG_INSECURE : 0) | (h.clientSecret === true ? FLAG_CLIENT_SECRET : 0);
  buf[7] = ROLE_BYTES[h.role];
  h.fingerprint.copy(buf, 8, 0, FINGERPRINT_SIZE);
  buf.writeUInt16BE(h.from, 40);
  buf.writeUInt16BE(h.to, 42);
  h.incarnation.copy(buf, 44, 0, INCARNATION_SIZE);
  h.nonce.copy(buf, 60, 0, NONCE_SIZE);
  (h.resume?.incarnation ?? NO_INCARNATION).copy(buf, 92, 0, INCARNATION_SIZE);
  const received = h.resume?.received ?? 0;
  buf.writeUInt32BE(Math.floor(received / 0x1_0000_0000), 108);
  buf.writeUInt32BE(received >>> 0, 112);
  return buf;
}

/** Parses a HELLO payload; throws {@link HandshakeError}. */
export function decodeHello(payload: Buffer): Hello {
  if (payload.length < 6 || !payload.subarray(0, 4).equals(PROTOCOL_MAGIC)) {
    throw fail(
      ErrorCode.VERSION_MISMATCH,
      'peer does not speak the switchboard protocol (bad magic)',
      'hello',
    );
  }
  const version = payload.readUInt16BE(4);
  if (version !== PROTOCOL_VERSION) {
    throw fail(
      ErrorCode.VERSION_MISMATCH,
      `peer speaks protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`,
      'hello',
    );
  }
  if (payload.length !== HELLO_SIZE) {
    throw fail(
      ErrorCode.PROTOCOL,
      `HELLO of ${payload.length} bytes, expected ${HELLO_SIZE}`,
      'hello',
    );
  }
  const flags = payload[6]!;
  const role = payload[7]!;
  if ((flags & ~(FLAG_INSECURE | FLAG_CLIENT_SECRET)) !== 0 || ROLES[role] === undefined) {
    throw fail(ErrorCode.PROTOCOL, 'HELLO has unknown flags or role', 'hello');
  }
  if ((flags & FLAG_CLIENT_SECRET) !== 0 && (role !== ROLE_CLIENT || (flags & FLAG_INSECURE) !== 0))
    throw fail(
      ErrorCode.PROTOCOL,
      'only a secure client HELLO may name the client secret',
      'hello',
    );
  const resumeIncarnation = Buffer.from(payload.subarray(92, 108));
  const high = payload.readUInt32BE(108);
  if (high > 0x1fffff) throw fail(ErrorCode.PROTOCOL, 'HELLO resume count out of range', 'hello');
  const received = high * 0x1_0000_0000 + payload.readUInt32BE(112);
  return {
    version,
    insecure: (flags & FLAG_INSECURE) !== 0,
    ...((flags & FLAG_CLIENT_SECRET) !== 0 ? { clientSecret: true } : {}),
    role: ROLES[role],
    fingerprint: Buffer.from(payload.subarray(8, 40)),
    from: payload.readUInt16BE(40),
    to: payload.readUInt16BE(42),
    incarnation: Buffer.from(payload.subarray(44, 60)),
    nonce: Buffer.from(payload.subarray(60, 92)),
    resume: resumeIncarnation.equals(NO_INCARNATION)
      ? undefined
      : { incarnation: resumeIncarnation, received },
  };
}

/** The MAC a side of the given role proves itself with. Exposed for specs and compatible peers. */
export function computeProof(
  secret: Buffer,
  role: HandshakeRole,
  dialerHello: Buffer,
  acceptorHello: Buffer,
): Buffer {
  return createHmac('sha256', secret)
    .update(role === 'dialer' ? LABEL_DIALER : role === 'client' ? LABEL_CLIENT : LABEL_ACCEPTOR)
    .update(dialerHello)
    .update(acceptorHello)
    .digest();
}

/** How an acceptor takes clients (docs/wire-protocol.md 5.8). */
export interface ClientAdmission {
  /** The client secret: a client HELLO with that flag is keyed with it. `undefined`: none. */
  readonly secret: Buffer | undefined;
  /** What this side remembers of an earlier session with the client of that incarnation. */
  resumeFor(incarnation: Buffer): ResumeState | undefined;
  /**
   * After the client's proof verified: the number this node gives it (its
   * peer index here, sent in WELCOME). Throw a HandshakeError to refuse
   * (ERR_SB_CLIENT_LIMIT when full).
   */
  admit(result: HandshakeResult): number;
}

/** Options of a {@link Handshake}. */
export interface HandshakeOptions {
  /** `client`: a process outside the node list, dialing `peer`. */
  readonly role: HandshakeRole;
  /** This node's index in the node list ({@link CLIENT_NODE} for a client). */
  readonly self: number;
  /** Number of nodes in the list; ids are 0..nodeCount-1. */
  readonly nodeCount: number;
  /** Dialer only: the node it meant to reach. */
  readonly peer?: number;
  /** 32-byte cluster fingerprint. */
  readonly fingerprint: Buffer;
  /** 16-byte incarnation id of this process. */
  readonly incarnation: Buffer;
  /** Shared secret; `undefined` means insecure mode (explicitly chosen by the caller). */
  readonly secret: Buffer | undefined;
  /** Client only: `secret` is the client secret, not the cluster secret. */
  readonly clientSecret?: boolean;
  /** Acceptor only: how clients are taken; `undefined` refuses them (ERR_SB_CLIENT_LIMIT). */
  readonly clients?: ClientAdmission;
  /** Acceptor only: may `peer` dial this node? (the deterministic dial rule) */
  readonly mayDial?: (peer: number) => boolean;
  /** What this side remembers of an earlier session with `peer`, for resumption. */
  readonly resumeFor?: (peer: number) => ResumeState | undefined;
  /** Acceptor only: last check before WELCOME; throw a HandshakeError to refuse. */
  readonly admit?: (result: HandshakeResult) => void;
  /** Nonce source, injectable for specs. Default `crypto.randomBytes(32)`. */
  readonly nonce?: () => Buffer;
}

/** The outcome of a successful handshake. */
export interface HandshakeResult {
  /** The peer's node id; for an acceptor whose peer is a client, the number it gave it. */
  readonly peer: number;
  /** Acceptor: the peer is a client. */
  readonly client?: boolean;
  /** Client: the number the member gave this client (in its WELCOME). */
  readonly localId?: number;
  readonly peerIncarnation: Buffer;
  /**
   * True when both sides resume the same session (same two incarnations):
   * the link then replays from `peerReceived` instead of starting afresh.
   */
  readonly resumed: boolean;
  /** Sequenced frames the peer says it received from us in the resumed session. */
  readonly peerReceived: number;
  /**
   * What this side told the peer it had received, in a resumed session. The
   * peer replays from there; frames this side counted after building its
   * HELLO (on the old connection) arrive again and must be skipped.
   */
  readonly ownReceived: number;
}

/** One frame for the transport to send. */
export interface OutFrame {
  readonly type: number;
  readonly payload: Buffer;
}

type State = 'initial' | 'await-hello' | 'await-auth' | 'await-welcome' | 'done' | 'failed';

/** The handshake state machine for one connection. */
export class Handshake {
  private state: State = 'initial';
  private ownHello: Buffer | undefined;
  private own: Hello | undefined;
  private peerHelloBytes: Buffer | undefined;
  private peerHello: Hello | undefined;
  private outcome: HandshakeResult | undefined;
  private key: Buffer;

  constructor(private readonly opts: HandshakeOptions) {
    if (opts.fingerprint.length !== FINGERPRINT_SIZE)
      throw new RangeError('fingerprint must be 32 bytes');
    if (opts.incarnation.length !== INCARNATION_SIZE)
      throw new RangeError('incarnation must be 16 bytes');
    if (opts.role !== 'acceptor' && opts.peer === undefined)
      throw new RangeError('a dialer must name its peer');
    // Insecure mode still runs the same exchange with an empty key: the flow
    // stays uniform and the flag in HELLO makes both sides agree on the mode.
    this.key = opts.secret ?? Buffer.alloc(0);
  }

  /** The state, for errors and stall reports. */
  get status(): State {
    return this.state;
  }

  /**
   * The peer's identity and resume outcome, set as soon as the peer's proof
   * has verified (the peer is then authenticated). That is before `done` for
   * a dialer awaiting WELCOME and for an acceptor whose `admit` refuses: the
   * session is open only once `status` is `done`.
   */
  get result(): HandshakeResult | undefined {
    return this.outcome;
  }

  /** Starts the exchange: the dialer's HELLO, nothing for the acceptor. */
  start(): OutFrame[] {
    if (this.state !== 'initial') throw new Error('handshake already started');
    this.state = 'await-hello';
    if (this.opts.role === 'acceptor') return [];
    const peer = this.opts.peer!;
    this.ownHello = this.makeHello(peer);
    return [{ type: FrameType.HELLO, payload: this.ownHello }];
  }

  /** Feeds one received frame; returns frames to send. Throws {@link HandshakeError}. */
  onFrame(type: number, payload: Buffer): OutFrame[] {
    // Captured first: an unexpected error must report the state it happened in, not 'failed'.
    const state = this.state;
    try {
      return this.step(type, payload);
    } catch (err) {
      this.state = 'failed';
      if (err instanceof HandshakeError) throw err;
      throw fail(ErrorCode.INTERNAL, `handshake failed: ${String(err)}`, state, err);
    }
  }

  private step(type: number, payload: Buffer): OutFrame[] {
    if (type === FrameType.GOAWAY) {
      const { code, reason } = decodeGoAway(payload);
      throw fail(errorCodeForGoAway(code), `peer refused the handshake: ${reason}`, this.state);
    }
    switch (this.state) {
      case 'await-hello':
        if (type !== FrameType.HELLO) break;
        return this.onHello(payload);
      case 'await-auth':
        if (type !== FrameType.AUTH) break;
        return this.onAuth(payload);
      case 'await-welcome':
        if (type !== FrameType.WELCOME) break;
        if (this.opts.role === 'client') {
          if (payload.length !== 2)
            throw fail(ErrorCode.PROTOCOL, 'a client WELCOME carries 2 bytes', this.state);
          this.outcome = { ...this.outcome!, localId: payload.readUInt16BE(0) };
        } else if (payload.length !== 0) {
          throw fail(ErrorCode.PROTOCOL, 'WELCOME must be empty', this.state);
        }
        this.state = 'done';
        return [];
      default:
        throw fail(
          ErrorCode.PROTOCOL,
          `frame ${frameTypeName(type)} after the handshake ended`,
          this.state,
        );
    }
    throw fail(
      ErrorCode.PROTOCOL,
      `unexpected ${frameTypeName(type)} frame before authentication`,
      this.state,
    );
  }

  private onHello(payload: Buffer): OutFrame[] {
    const o = this.opts;
    const hello = decodeHello(payload);
    const expectedRole = o.role === 'acceptor' ? 'dialer' : 'acceptor';
    const client = o.role === 'acceptor' && hello.role === 'client';
    if (hello.role !== expectedRole && !client) {
      throw fail(
        ErrorCode.AUTH_FAILED,
        `peer claims role ${hello.role}, expected ${expectedRole}`,
        this.state,
      );
    }
    if (hello.insecure !== (o.secret === undefined)) {
      throw fail(
        ErrorCode.SECURITY_MISMATCH,
        hello.insecure
          ? 'peer runs without a secret (insecure) and this node requires one'
          : 'peer requires a secret and this node runs insecure',
        this.state,
      );
    }
    if (!hello.fingerprint.equals(o.fingerprint)) {
      throw fail(
        ErrorCode.FINGERPRINT_MISMATCH,
        'peer was configured with a different node list or cluster name (fingerprint mismatch)',
        this.state,
      );
    }
    if (hello.to !== o.self) {
      throw fail(
        ErrorCode.UNKNOWN_NODE,
        o.role === 'client'
          ? `node ${hello.from} answered as if to node ${hello.to}, not to a client`
          : `peer meant to reach node ${hello.to}, this is node ${o.self}`,
        this.state,
      );
    }
    if (client) return this.onClientHello(payload, hello);
    if (hello.from >= o.nodeCount || hello.from === o.self) {
      throw fail(
        ErrorCode.UNKNOWN_NODE,
        `peer claims node id ${hello.from}, not a peer in the node list`,
        this.state,
      );
    }
    if (o.role !== 'acceptor' && hello.from !== o.peer) {
      throw fail(
        ErrorCode.UNKNOWN_NODE,
        `dialed node ${o.peer} but node ${hello.from} answered`,
        this.state,
      );
    }
    if (o.role === 'acceptor' && o.mayDial !== undefined && !o.mayDial(hello.from)) {
      throw fail(
        ErrorCode.UNKNOWN_NODE,
        `node ${hello.from} may not dial node ${o.self} (dial rule)`,
        this.state,
      );
    }
    if (hello.incarnation.equals(o.incarnation)) {
      throw fail(
        ErrorCode.AUTH_FAILED,
        'peer presents this process\u2019s own incarnation (reflection)',
        this.state,
      );
    }
    this.peerHelloBytes = Buffer.from(payload);
    this.peerHello = hello;
    if (o.role !== 'acceptor') {
      if (hello.nonce.equals(this.own!.nonce)) {
        throw fail(
          ErrorCode.AUTH_FAILED,
          'peer echoed this node\u2019s nonce (reflection)',
          this.state,
        );
      }
      this.state = 'await-auth';
      return [];
    }
    this.ownHello = this.makeHello(hello.from);
    return this.answer(hello, this.ownHello, this.peerHelloBytes);
  }

  /** An acceptor's answer to a client HELLO: the checks common to members were made. */
  private onClientHello(payload: Buffer, hello: Hello): OutFrame[] {
    const o = this.opts;
    if (o.clients === undefined)
      throw fail(ErrorCode.CLIENT_LIMIT, `node ${o.self} accepts no clients`, this.state);
    if (hello.from !== CLIENT_NODE)
      throw fail(ErrorCode.PROTOCOL, 'a client HELLO must give 0xffff as its node', this.state);
    if (hello.incarnation.equals(o.incarnation))
      throw fail(
        ErrorCode.AUTH_FAILED,
        'peer presents this process\u2019s own incarnation (reflection)',
        this.state,
      );
    if (hello.clientSecret === true) {
      if (o.clients.secret === undefined)
        throw fail(
          ErrorCode.AUTH_FAILED,
          `client offers the client secret, but node ${o.self} has no clientSecret`,
          this.state,
        );
      this.key = o.clients.secret;
    }
    this.peerHelloBytes = Buffer.from(payload);
    this.peerHello = hello;
    this.ownHello = this.makeHello(CLIENT_NODE, o.clients.resumeFor(hello.incarnation));
    return this.answer(hello, this.ownHello, this.peerHelloBytes);
  }

  /** The acceptor's HELLO and proof, once `ownHello` is made (never to a peer echoing our nonce). */
  private answer(hello: Hello, own: Buffer, peerBytes: Buffer): OutFrame[] {
    if (hello.nonce.equals(this.own!.nonce)) {
      throw fail(
        ErrorCode.AUTH_FAILED,
        'peer echoed this node\u2019s nonce (reflection)',
        this.state,
      );
    }
    this.state = 'await-auth';
    const proof = computeProof(this.key, 'acceptor', peerBytes, own);
    return [
      { type: FrameType.HELLO, payload: own },
      { type: FrameType.AUTH, payload: proof },
    ];
  }

  private onAuth(payload: Buffer): OutFrame[] {
    const o = this.opts;
    if (payload.length !== MAC_SIZE) {
      throw fail(
        ErrorCode.AUTH_FAILED,
        `proof of ${payload.length} bytes, expected ${MAC_SIZE} (truncated)`,
        this.state,
      );
    }
    const dialing = o.role !== 'acceptor';
    const dialerHello = dialing ? this.ownHello! : this.peerHelloBytes!;
    const acceptorHello = dialing ? this.peerHelloBytes! : this.ownHello!;
    const expected = computeProof(
      this.key,
      dialing ? 'acceptor' : this.peerHello!.role,
      dialerHello,
      acceptorHello,
    );
    if (!timingSafeEqual(expected, payload)) {
      throw fail(
        ErrorCode.AUTH_FAILED,
        'peer failed authentication (wrong secret or forged proof)',
        this.state,
      );
    }
    this.outcome = this.makeResult();
    if (dialing) {
      this.state = 'await-welcome';
      return [
        {
          type: FrameType.AUTH,
          payload: computeProof(this.key, o.role, dialerHello, acceptorHello),
        },
      ];
    }
    if (this.outcome.client === true) {
      const id = o.clients!.admit(this.outcome);
      this.outcome = { ...this.outcome, peer: id };
      const welcome = Buffer.alloc(2);
      welcome.writeUInt16BE(id, 0);
      this.state = 'done';
      return [{ type: FrameType.WELCOME, payload: welcome }];
    }
    o.admit?.(this.outcome);
    this.state = 'done';
    return [{ type: FrameType.WELCOME, payload: Buffer.alloc(0) }];
  }

  private makeHello(peer: number, resume = this.opts.resumeFor?.(peer)): Buffer {
    const o = this.opts;
    this.own = {
      version: PROTOCOL_VERSION,
      insecure: o.secret === undefined,
      clientSecret: o.role === 'client' && o.clientSecret === true,
      role: o.role,
      fingerprint: o.fingerprint,
      from: o.self,
      to: peer,
      incarnation: o.incarnation,
      nonce: o.nonce?.() ?? randomBytes(NONCE_SIZE),
      resume,
    };
    return encodeHello(this.own);
  }

  private makeResult(): HandshakeResult {
    const own = this.own!;
    const peer = this.peerHello!;
    // Both sides compute the same answer from the same two HELLOs.
    const resumed =
      own.resume !== undefined &&
      peer.resume !== undefined &&
      own.resume.incarnation.equals(peer.incarnation) &&
      peer.resume.incarnation.equals(own.incarnation);
    return {
      peer: peer.from,
      ...(peer.role === 'client' ? { client: true } : {}),
      peerIncarnation: peer.incarnation,
      resumed,
      peerReceived: resumed ? peer.resume.received : 0,
      ownReceived: resumed ? own.resume.received : 0,
    };
  }
}

function fail(code: ErrorCode, message: string, state: string, cause?: unknown): HandshakeError {
  return new HandshakeError(code, message, { state }, cause === undefined ? undefined : { cause });
}
