/**
 * One error base for the whole library. Every error carries a stable string
 * `code` that callers match on (`switch (err.code)` narrows), and keeps the
 * underlying `cause`. Subclasses exist only where a caller acts differently.
 * The table of codes lives in docs/errors.md.
 */

/** Every code the library throws or reports. */
export const ErrorCode = {
  /** An option is missing, malformed or out of range. */
  INVALID_OPTION: 'ERR_SB_INVALID_OPTION',
  /** The listening socket could not be bound (port in use, no permission, not a local address). */
  LISTEN: 'ERR_SB_LISTEN',
  /** Bytes on a link broke the wire protocol; the link is closed. */
  PROTOCOL: 'ERR_SB_PROTOCOL',
  /** A frame's declared length exceeds the configured maximum. */
  FRAME_TOO_LARGE: 'ERR_SB_FRAME_TOO_LARGE',
  /** A reassembled message exceeds the configured maximum message size. */
  MESSAGE_TOO_LARGE: 'ERR_SB_MESSAGE_TOO_LARGE',
  /** A payload could not be decoded (bad CBOR, limits, forbidden keys or tags). */
  DECODE: 'ERR_SB_DECODE',
  /** A value could not be encoded. */
  ENCODE: 'ERR_SB_ENCODE',
  /** A payload was rejected by an endpoint's validator. */
  VALIDATION: 'ERR_SB_VALIDATION',
  /** The peer failed authentication (wrong secret, bad or truncated proof, replay, reflection). */
  AUTH_FAILED: 'ERR_SB_AUTH_FAILED',
  /** The peer speaks another protocol version or not this protocol at all. */
  VERSION_MISMATCH: 'ERR_SB_VERSION_MISMATCH',
  /** The peer was configured with another node list or cluster name. */
  FINGERPRINT_MISMATCH: 'ERR_SB_FINGERPRINT_MISMATCH',
  /** The peer claims a node id that is not in the list, or not the one expected. */
  UNKNOWN_NODE: 'ERR_SB_UNKNOWN_NODE',
  /** Another live process already holds this node id's session. */
  DUPLICATE_NODE: 'ERR_SB_DUPLICATE_NODE',
  /** One side runs without a secret (insecure) and the other does not. */
  SECURITY_MISMATCH: 'ERR_SB_SECURITY_MISMATCH',
  /** The handshake did not finish in time. */
  HANDSHAKE_TIMEOUT: 'ERR_SB_HANDSHAKE_TIMEOUT',
  /** Too many unauthenticated connections are pending. */
  HANDSHAKE_LIMIT: 'ERR_SB_HANDSHAKE_LIMIT',
  /** rendezvous() timed out; `missing` names the peers. */
  RENDEZVOUS_TIMEOUT: 'ERR_SB_RENDEZVOUS_TIMEOUT',
  /** A peer sent nothing for the dead-peer timeout. */
  PEER_LOST: 'ERR_SB_PEER_LOST',
  /** The socket did not drain for the write-stall timeout. */
  WRITE_STALL: 'ERR_SB_WRITE_STALL',
  /** A frame stalled mid-way for too long. */
  READ_STALL: 'ERR_SB_READ_STALL',
  /** A link-level socket error. */
  LINK: 'ERR_SB_LINK',
  /** The message's fate is unknown: the peer's incarnation ended before it was acknowledged. */
  NOT_DELIVERED: 'ERR_SB_NOT_DELIVERED',
  /** The endpoint or switchboard is closed. */
  CLOSED: 'ERR_SB_CLOSED',
  /** The receiving end of a channel does not exist or has closed. */
  NO_RECEIVER: 'ERR_SB_NO_RECEIVER',
  /** An operation did not complete before its deadline. */
  TIMEOUT: 'ERR_SB_TIMEOUT',
  /** An operation was aborted by its AbortSignal. */
  ABORTED: 'ERR_SB_ABORTED',
  /** A bounded queue is full and the policy is to fail. */
  OVERFLOW: 'ERR_SB_OVERFLOW',
  /** A remote handler threw; see `remoteName`, `remoteCode`. */
  REMOTE: 'ERR_SB_REMOTE',
  /** No node serves the requested RPC method (or none matches the tags). */
  NO_SERVER: 'ERR_SB_NO_SERVER',
  /** The RPC server's service contract is not the one the caller was built from (another version hash). */
  CONTRACT_MISMATCH: 'ERR_SB_CONTRACT_MISMATCH',
  /** An internal invariant broke: a bug, reported instead of swallowed. */
  INTERNAL: 'ERR_SB_INTERNAL',
  /** A client asked for something only a member of the node list may do (serve, work, announce). */
  CLIENT_ROLE: 'ERR_SB_CLIENT_ROLE',
  /** A member refused a client: it already holds `maxClients` clients (or accepts none). */
  CLIENT_LIMIT: 'ERR_SB_CLIENT_LIMIT',
  /** `Switchboard.connect()` linked with no member in time; `reasons` says why, per member. */
  CONNECT: 'ERR_SB_CONNECT',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options common to every switchboard error. */
export interface SwitchboardErrorOptions {
  cause?: unknown;
}

/** Base of every error thrown by the library. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: SwitchboardErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** Where in the byte stream a protocol error happened. */
export interface ProtocolErrorDetails {
  /** Decoder or handshake state when the error was found. */
  state?: string;
  /** Absolute byte offset in the link's inbound stream. */
  offset?: number;
}

/**
 * The peer broke the wire protocol (bad frame, bad handshake). The link that
 * saw it is closed; other links are unaffected.
 */
export class ProtocolError extends SwitchboardError {
  readonly state: string | undefined;
  readonly offset: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    details: ProtocolErrorDetails = {},
    options?: SwitchboardErrorOptions,
  ) {
    super(code, message, options);
    this.state = details.state;
    this.offset = details.offset;
  }
}

/** A payload that could not be decoded; an error for that message only. */
export class DecodeError extends SwitchboardError {
  constructor(message: string, options?: SwitchboardErrorOptions) {
    super(ErrorCode.DECODE, message, options);
  }
}

/**
 * A value that the codec refuses to encode (see docs/guide.md, "What a
 * message can carry"). `path` says where the refused value sits, in
 * JavaScript notation: `''` for the value itself, `.items[3].cb` inside it,
 * `.m.get("key")` for a `Map` value, `.m.keys()[0]` for a `Map` key and
 * `.s[2]` for the third member of a `Set`. `reason` is the message without
 * its path: what the value is and, where it helps, what to send instead.
 */
export class EncodeError extends SwitchboardError {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string, options?: SwitchboardErrorOptions) {
    super(
      ErrorCode.ENCODE,
      path === ''
        ? `cannot encode the value: ${reason}`
        : `cannot encode the value at ${path}: ${reason}`,
      options,
    );
    this.path = path;
    this.reason = reason;
  }
}

/** A handshake that failed; `code` says how (auth, version, fingerprint, node id...). */
export class HandshakeError extends ProtocolError {}

/** Options of an {@link OptionError}. */
export interface OptionErrorOptions extends SwitchboardErrorOptions {
  /** The option the caller probably meant, for an unknown name. */
  suggestion?: string | undefined;
}

/**
 * An option failed validation; `option` names it (a dotted path for nested
 * options: `tls.key`, `nodes[2]`). For an unknown option name, `suggestion`
 * is the known name it is closest to, if any.
 */
export class OptionError extends SwitchboardError {
  readonly option: string;
  /** The known option `option` was probably meant to be; `undefined` if none is close. */
  readonly suggestion: string | undefined;

  constructor(option: string, message: string, options?: OptionErrorOptions) {
    super(ErrorCode.INVALID_OPTION, `invalid option ${option}: ${message}`, options);
    this.option = option;
    this.suggestion = options?.suggestion;
  }
}

/**
 * `Switchboard.start` could not bind its listening socket. `address` is the
 * `host:port` it tried, `systemCode` the operating system's verdict
 * (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, `ENOTFOUND`...), `cause` Node's
 * original error.
 */
export class ListenError extends SwitchboardError {
  /** The `host:port` that could not be bound (IPv6 hosts in brackets). */
  readonly address: string;
  /** The system error code, such as `EADDRINUSE`; `undefined` if Node gave none. */
  readonly systemCode: string | undefined;

  /** @param reason what went wrong and what to check, after `cannot listen on <address>: `. */
  constructor(
    address: string,
    systemCode: string | undefined,
    reason: string,
    options?: SwitchboardErrorOptions,
  ) {
    super(ErrorCode.LISTEN, `cannot listen on ${address}: ${reason}`, options);
    this.address = address;
    this.systemCode = systemCode;
  }
}

/** Why one peer had not linked when a rendezvous timed out. */
export interface MissingPeerReason {
  /** The peer's node id. */
  readonly node: number;
  /** Its `host:port` from the node list. */
  readonly address: string;
  /** The last reason a link with it failed, or what this node is still waiting for. */
  readonly reason: string;
  /** The error behind `reason`, when there is one (a `SwitchboardError`). */
  readonly error: Error | undefined;
}

/**
 * rendezvous() timed out; `missing` lists the peers that never linked and
 * `reasons` says why, one entry per missing peer: the last failed attempt to
 * link with it (refused, no answer, wrong secret, another node list...), or
 * what this node still waits for. The message lists each one; `cause` is
 * the one underlying error, or an `AggregateError` of all of them.
 */
export class RendezvousTimeoutError extends SwitchboardError {
  readonly missing: readonly number[];
  /** One entry per missing peer that has a reason, in the order of `missing`. */
  readonly reasons: readonly MissingPeerReason[];

  /**
   * @param missing the node ids not linked.
   * @param timeoutMs how long the rendezvous waited, ms.
   * @param reasons why each of them is missing (default none).
   */
  constructor(
    missing: readonly number[],
    timeoutMs: number,
    reasons: readonly MissingPeerReason[] = [],
  ) {
    // One error can explain several peers (an inbound failure that named no node).
    const errors = [...new Set(reasons.flatMap((r) => (r.error === undefined ? [] : [r.error])))];
    super(
      ErrorCode.RENDEZVOUS_TIMEOUT,
      [
        `rendezvous timed out after ${timeoutMs} ms; missing peers: ${missing.join(', ')}`,
        ...reasons.map((r) => `  node ${r.node} (${r.address}): ${r.reason}`),
      ].join('\n'),
      {
        cause:
          errors.length <= 1
            ? errors[0]
            : new AggregateError(errors, 'why the missing peers did not link'),
      },
    );
    this.missing = missing;
    this.reasons = reasons;
  }
}

/**
 * Messages whose fate is unknown: their peer's session ended (or the
 * switchboard was destroyed) before they were known to be delivered. They
 * may or may not have been processed. `messages` holds them, in the order
 * they were sent (empty where the pattern keeps no copies: lossy streams
 * report a count in the message instead).
 */
export class NotDeliveredError<T = unknown> extends SwitchboardError {
  /** The node the messages were sent to. */
  readonly node: number;
  /** The messages, as sent. */
  readonly messages: readonly T[];

  constructor(
    node: number,
    message: string,
    options?: SwitchboardErrorOptions & { messages?: readonly T[] },
  ) {
    super(ErrorCode.NOT_DELIVERED, message, options);
    this.node = node;
    this.messages = options?.messages ?? [];
  }
}

/** A remote handler threw; the remote error's name, message and code travel here. */
export class RemoteError extends SwitchboardError {
  readonly remoteName: string;
  readonly remoteCode: string | undefined;
  readonly node: number;

  constructor(
    node: number,
    remoteName: string,
    message: string,
    remoteCode?: string,
    options?: SwitchboardErrorOptions,
  ) {
    super(ErrorCode.REMOTE, message, options);
    this.node = node;
    this.remoteName = remoteName;
    this.remoteCode = remoteCode;
  }
}

/** True if `err` is a switchboard error with the given code. */
export function isErrorCode(err: unknown, code: ErrorCode): err is SwitchboardError {
  return err instanceof SwitchboardError && err.code === code;
}

/**
 * A peer's session ended while something depended on it: `peer-down`
 * events carry one, and so does a receiver whose sender's node was lost
 * (a crash, not a clean close), or a handler whose caller's node was lost.
 */
export class PeerLostError extends SwitchboardError {
  /** The node that was lost. */
  readonly node: number;

  constructor(node: number, message: string, options?: SwitchboardErrorOptions) {
    super(ErrorCode.PEER_LOST, message, options);
    this.node = node;
  }
}

/**
 * A message larger than the receiving node accepts (its `maxMessageSize`,
 * announced when the link is established) or than this node sends.
 */
export class MessageTooLargeError extends SwitchboardError {
  /** The encoded size, bytes. */
  readonly size: number;
  /** The limit it exceeds, bytes. */
  readonly limit: number;
  /** The node whose limit it is. */
  readonly node: number;

  /** `where` prefixes the message; `message`, when given, is the whole message (an error rebuilt from a peer's report). */
  constructor(node: number, size: number, limit: number, where: string, message?: string) {
    super(
      ErrorCode.MESSAGE_TOO_LARGE,
      message ??
        `${where}: a message of ${size} bytes exceeds node ${node}'s maxMessageSize of ${limit} bytes`,
    );
    this.node = node;
    this.size = size;
    this.limit = limit;
  }
}

/**
 * A receiver refused a message its sender sent (it could not decode it, its
 * validator refused it, or it was over that node's `maxMessageSize`). The
 * code is the receiver's reason (ERR_SB_DECODE, ERR_SB_VALIDATION,
 * ERR_SB_MESSAGE_TOO_LARGE...); `messages` holds the message when the
 * sender still had it.
 */
export class RefusedError<T = unknown> extends SwitchboardError {
  /** The receiving node. */
  readonly node: number;
  /** The refused message (empty when the sender kept no copy: lossy streams). */
  readonly messages: readonly T[];

  constructor(
    code: ErrorCode,
    node: number,
    message: string,
    options?: SwitchboardErrorOptions & { messages?: readonly T[] },
  ) {
    super(code, message, options);
    this.node = node;
    this.messages = options?.messages ?? [];
  }
}

/** What a caller found serving a method of its contract: the node, and that node's contract hash. */
export interface ContractServer {
  readonly node: number;
  /** The version hash the node serves the method under; `undefined`: served without a contract. */
  readonly hash: string | undefined;
}

/**
 * A typed client's call found the method served only under another
 * version of its service contract (or without one): `expected` is the
 * caller's version hash, `found` what each node serving the method
 * announced. The handler did not run.
 */
export class ContractMismatchError extends SwitchboardError {
  /** The contract's name. */
  readonly service: string;
  /** The full method name, `service.method`. */
  readonly method: string;
  /** The caller's version hash. */
  readonly expected: string;
  /** The nodes that serve the method, and under which hash. */
  readonly found: readonly ContractServer[];

  constructor(
    service: string,
    method: string,
    expected: string,
    found: readonly ContractServer[],
    options?: SwitchboardErrorOptions,
  ) {
    const what = found.map((f) =>
      f.hash === undefined
        ? `node ${f.node} serves it without a contract`
        : `node ${f.node} serves ${service}#${f.hash}`,
    );
    super(
      ErrorCode.CONTRACT_MISMATCH,
      `call "${method}" expects contract ${service}#${expected}, but ${what.length === 0 ? 'no node serves it' : what.join(', ')}`,
      options,
    );
    this.service = service;
    this.method = method;
    this.expected = expected;
    this.found = found;
  }
}

/**
 * A client (`Switchboard.connect()`) asked for something only a member of
 * the node list may do: serve a method, run a worker, own a named or MPMC
 * receiver. Members enforce the same rule on what a client announces.
 */
export class ClientRoleError extends SwitchboardError {
  /** The operation refused (`serve`, `worker`, ...). */
  readonly operation: string;

  constructor(operation: string, message?: string, options?: SwitchboardErrorOptions) {
    super(
      ErrorCode.CLIENT_ROLE,
      message ??
        `${operation}() is for members of the node list; a client (Switchboard.connect) may not ${operation}`,
      options,
    );
    this.operation = operation;
  }
}

/**
 * `Switchboard.connect()` linked with no member within `timeoutMs`, or every
 * member it dialed refused it. `reasons` has one entry per member dialed
 * (its address, why the last attempt failed, the error: a HandshakeError
 * with ERR_SB_CLIENT_LIMIT when the member was full, ERR_SB_AUTH_FAILED for
 * a wrong secret...); `cause` is the error when there is one, else an
 * AggregateError of them.
 */
export class ClientConnectError extends SwitchboardError {
  readonly reasons: readonly MissingPeerReason[];

  constructor(message: string, reasons: readonly MissingPeerReason[]) {
    const errors = [...new Set(reasons.flatMap((r) => (r.error === undefined ? [] : [r.error])))];
    super(
      ErrorCode.CONNECT,
      [message, ...reasons.map((r) => `  node ${r.node} (${r.address}): ${r.reason}`)].join('\n'),
      {
        cause:
          errors.length <= 1
            ? errors[0]
            : new AggregateError(errors, 'why no member accepted the client'),
      },
    );
    this.reasons = reasons;
  }
}
