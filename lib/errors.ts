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
  /** An internal invariant broke: a bug, reported instead of swallowed. */
  INTERNAL: 'ERR_SB_INTERNAL',
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

/** An option failed validation; `option` names it. */
export class OptionError extends SwitchboardError {
  readonly option: string;

  constructor(option: string, message: string, options?: SwitchboardErrorOptions) {
    super(ErrorCode.INVALID_OPTION, `invalid option ${option}: ${message}`, options);
    this.option = option;
  }
}

/** rendezvous() timed out; `missing` lists the peers that never linked. */
export class RendezvousTimeoutError extends SwitchboardError {
  readonly missing: readonly number[];

  constructor(missing: readonly number[], timeoutMs: number) {
    super(
      ErrorCode.RENDEZVOUS_TIMEOUT,
      `rendezvous timed out after ${timeoutMs} ms; missing peers: ${missing.join(', ')}`,
    );
    this.missing = missing;
  }
}

/**
 * A message whose fate is unknown: its peer's incarnation ended (or the
 * switchboard was destroyed) before the message was acknowledged. It may or
 * may not have been processed.
 */
export class NotDeliveredError extends SwitchboardError {
  readonly node: number;

  constructor(node: number, message: string, options?: SwitchboardErrorOptions) {
    super(ErrorCode.NOT_DELIVERED, message, options);
    this.node = node;
  }
}

/** A remote handler threw; the remote error's name, message and code travel here. */
export class RemoteError extends SwitchboardError {
  readonly remoteName: string;
  readonly remoteCode: string | undefined;
  readonly node: number;

  constructor(node: number, remoteName: string, message: string, remoteCode?: string) {
    super(ErrorCode.REMOTE, message);
    this.node = node;
    this.remoteName = remoteName;
    this.remoteCode = remoteCode;
  }
}

/** True if `err` is a switchboard error with the given code. */
export function isErrorCode(err: unknown, code: ErrorCode): err is SwitchboardError {
  return err instanceof SwitchboardError && err.code === code;
}
