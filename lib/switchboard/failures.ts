/**
 * Why an attempt to link with a peer failed, in words that say what to
 * check: the reasons the rendezvous error lists per missing peer
 * (docs/errors.md, ERR_SB_RENDEZVOUS_TIMEOUT).
 */
import { ErrorCode, HandshakeError, SwitchboardError } from '../errors.js';
import { formatAddress } from './nodes.js';
import type { NodeInfo } from './nodes.js';

/** Why an attempt to link with a peer failed, in words that say what to check. */
export interface LinkFailure {
  readonly reason: string;
  /** The error behind it, always a SwitchboardError (network errors wrapped, their cause kept). */
  readonly error: Error | undefined;
}

/** How lib/protocol/handshake.ts words a GOAWAY received during the handshake (docs/errors.md). */
const REFUSED_PREFIX = 'peer refused the handshake: ';

/** What to check, per handshake failure. */
const HANDSHAKE_ADVICE: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.AUTH_FAILED]: 'check that every node has the same secret',
  [ErrorCode.FINGERPRINT_MISMATCH]:
    'give every node the identical nodes list (order, hosts, ports, tags) and clusterName',
  [ErrorCode.SECURITY_MISMATCH]: 'give every node a secret, or run every node insecure',
  [ErrorCode.VERSION_MISMATCH]:
    'run the same library version on every node, and check that the address is a switchboard node',
  [ErrorCode.UNKNOWN_NODE]: 'check the node list and which process listens at each address',
  [ErrorCode.DUPLICATE_NODE]: 'run only one process per node id',
  [ErrorCode.HANDSHAKE_TIMEOUT]:
    'the peer or the network is slow; raise handshakeTimeoutMs if it persists',
  [ErrorCode.HANDSHAKE_LIMIT]: 'the acceptor had too many unauthenticated connections pending',
  [ErrorCode.PROTOCOL]: 'check that the address is a switchboard node of the same version',
  [ErrorCode.CLIENT_LIMIT]:
    'the member holds its maxClients clients (or accepts none): raise maxClients there, or dial other members',
};

const TLS_ADVICE = 'check that every node uses tls, with a certificate from the cluster ca';

/** `; ` and what to check for the error's code, or nothing. */
function adviceFor(err: SwitchboardError): string {
  const advice =
    err instanceof HandshakeError && err.state === 'tls' ? TLS_ADVICE : HANDSHAKE_ADVICE[err.code];
  return advice === undefined ? '' : `; ${advice}`;
}

/** The error's message and what to check for its code. */
export function withAdvice(err: SwitchboardError): string {
  return `${err.message}${adviceFor(err)}`;
}

/** Why the TCP (or TLS) connect to `node` failed. */
export function connectFailure(err: unknown, node: NodeInfo, timedOut: boolean): LinkFailure {
  if (timedOut && err instanceof SwitchboardError) {
    return {
      reason: `no answer: ${err.message}; is the host up, and is the port open (no firewall dropping it)?`,
      error: err,
    };
  }
  if (err instanceof SwitchboardError) return { reason: withAdvice(err), error: err };
  // Not `instanceof Error`: errors from another realm (a VM context) are errors too.
  const raw = err as { message?: unknown; code?: unknown } | null;
  const message = typeof raw?.message === 'string' ? raw.message : String(err);
  const code = raw?.code;
  const error = new SwitchboardError(
    ErrorCode.LINK,
    `connect to node ${node.id} at ${formatAddress(node)} failed: ${message}`,
    { cause: err },
  );
  switch (code) {
    case 'ECONNREFUSED':
      return {
        reason: `connection refused; is node ${node.id} started, and listening on that address?`,
        error,
      };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { reason: `the host name does not resolve (${message})`, error };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return {
        reason: `the host is unreachable (${message}); check the address and the network`,
        error,
      };
    default:
      return { reason: `connect failed: ${message}`, error };
  }
}

/**
 * Why a handshake with `peer` failed, seen from this side's `role` (an
 * acceptor's reasons start "dials this node"). `err` undefined, or
 * `hungUp`, means the other side closed without a word.
 */
export function handshakeFailure(
  err: SwitchboardError | undefined,
  peer: number,
  role: 'dialer' | 'acceptor',
  timeoutMs: number,
  hungUp = err === undefined,
): LinkFailure {
  const inbound = role === 'acceptor' ? 'dials this node, but ' : '';
  if (err === undefined) {
    return {
      reason: `${inbound}the connection closed during the handshake`,
      error: new SwitchboardError(
        ErrorCode.LINK,
        `connection from node ${peer} closed during the handshake`,
      ),
    };
  }
  const then = adviceFor(err);
  if (err.message.startsWith(REFUSED_PREFIX)) {
    // The peer's own words, where "peer" means this node: quoted, so they read as its.
    const words = err.message.slice(REFUSED_PREFIX.length);
    const who = role === 'acceptor' ? 'dials this node and ' : '';
    return { reason: `${who}refused the handshake: "${words}"${then}`, error: err };
  }
  if (
    role === 'dialer' &&
    err.code === ErrorCode.HANDSHAKE_TIMEOUT &&
    err instanceof HandshakeError &&
    err.state === 'await-hello'
  ) {
    return {
      reason: `no answer: connected, but no HELLO came back within ${timeoutMs} ms; is that port a switchboard node, or another program?`,
      error: err,
    };
  }
  if (hungUp) {
    return {
      reason: `${inbound}the other side hung up during the handshake without a reason; is that port a switchboard node, with the same tls setting?`,
      error: err,
    };
  }
  return { reason: `${inbound}handshake failed: ${err.message}${then}`, error: err };
}
