import { OptionError } from '../errors.js';
import { checkOptionNames } from '../options.js';
import { parseClusterName, parseNodes } from './nodes.js';
import type { NodeInfo, NodeSpec } from './nodes.js';
import { resolvePhiOptions } from './phi.js';
import type { PhiOptions, PhiSettings } from './phi.js';

/** How a silent peer is judged (docs/failure-detection.md). */
export type FailureDetector = 'timeout' | 'phi';

/** Mutual TLS material (PEM strings or Buffers). Every node presents a certificate signed by `ca`. */
export interface TlsOptions {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
  readonly ca: string | Buffer | ReadonlyArray<string | Buffer>;
}

/** Options of `Switchboard.start`. Times are milliseconds, sizes bytes. */
export interface SwitchboardOptions {
  /** The cluster: the same list, in the same order, on every node. */
  readonly nodes: readonly NodeSpec[];
  /** This process's index in `nodes`. */
  readonly id: number;
  /** Shared secret for mutual HMAC-SHA256 authentication. Required unless `insecure`. */
  readonly secret?: string | Buffer;
  /** Run without authentication. Must be chosen explicitly; peers must agree. Default false. */
  readonly insecure?: boolean;
  /** Optional cluster name mixed into the fingerprint. Default `''`. */
  readonly clusterName?: string;
  /** Mutual TLS for traffic privacy. Default: plain TCP. */
  readonly tls?: TlsOptions;
  /** Address to bind instead of `nodes[id].host` (e.g. `0.0.0.0`). */
  readonly bindHost?: string;
  /** Whole-handshake timeout. Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /** Unauthenticated connections held at once; more are refused at once. Default 64. */
  readonly maxPendingHandshakes?: number;
  /** Heartbeat interval on every link. Default 1000. */
  readonly heartbeatMs?: number;
  /** A peer silent this long is lost. Default 5000. */
  readonly deadPeerMs?: number;
  /**
   * How a silent peer turns suspect and down: `'timeout'` (suspect after two
   * heartbeats, down after `deadPeerMs`) or `'phi'` (phi-accrual, tuned by
   * `phi`; down never before `deadPeerMs`). Default `'timeout'`.
   */
  readonly failureDetector?: FailureDetector;
  /** The phi-accrual detector's settings; only with `failureDetector: 'phi'`. */
  readonly phi?: PhiOptions;
  /** A socket that does not drain this long is closed. Default 10000. */
  readonly writeStallMs?: number;
  /** Largest frame payload. Default 1 MiB. */
  readonly maxFramePayload?: number;
  /** Fragment size for large messages. Default 64 KiB. */
  readonly fragmentSize?: number;
  /** Largest message. Default 64 MiB. */
  readonly maxMessageSize?: number;
  /** Bytes buffered per peer (queued plus unacknowledged) before senders wait. Default 32 MiB. */
  readonly linkBufferBytes?: number;
  /** First reconnect delay. Default 250. */
  readonly reconnectMinMs?: number;
  /** Largest reconnect delay. Default 10000. */
  readonly reconnectMaxMs?: number;
  /** How long `close()` waits for queued data to be acknowledged. Default 5000. */
  readonly lingerMs?: number;
}

/** The resolved options. */
export interface ResolvedOptions {
  readonly nodes: readonly NodeInfo[];
  readonly id: number;
  readonly secret: Buffer | undefined;
  readonly clusterName: string;
  readonly tls: TlsOptions | undefined;
  readonly bindHost: string;
  readonly handshakeTimeoutMs: number;
  readonly maxPendingHandshakes: number;
  readonly heartbeatMs: number;
  readonly deadPeerMs: number;
  readonly failureDetector: FailureDetector;
  /** Resolved even under `'timeout'` (the defaults then), used only under `'phi'`. */
  readonly phi: PhiSettings;
  readonly writeStallMs: number;
  readonly maxFramePayload: number;
  readonly fragmentSize: number;
  readonly maxMessageSize: number;
  readonly linkBufferBytes: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly lingerMs: number;
}

/** Defaults, anchored on NATS, gRPC, Akka Artery and ZMQ (the table in docs/guide.md section 2). */
export const DEFAULT_SWITCHBOARD_OPTIONS = Object.freeze({
  clusterName: '',
  handshakeTimeoutMs: 5_000,
  maxPendingHandshakes: 64,
  heartbeatMs: 1_000,
  deadPeerMs: 5_000,
  failureDetector: 'timeout',
  writeStallMs: 10_000,
  maxFramePayload: 1024 * 1024,
  fragmentSize: 64 * 1024,
  maxMessageSize: 64 * 1024 * 1024,
  linkBufferBytes: 32 * 1024 * 1024,
  reconnectMinMs: 250,
  reconnectMaxMs: 10_000,
  lingerMs: 5_000,
});

// Typed as a record so the compiler fails when an option is added to the
// interface but not here (or the reverse): the list is what unknown names
// are checked against.
const SWITCHBOARD_OPTION_KEYS: { readonly [K in keyof SwitchboardOptions]-?: true } = {
  nodes: true,
  id: true,
  secret: true,
  insecure: true,
  clusterName: true,
  tls: true,
  bindHost: true,
  handshakeTimeoutMs: true,
  maxPendingHandshakes: true,
  heartbeatMs: true,
  deadPeerMs: true,
  failureDetector: true,
  phi: true,
  writeStallMs: true,
  maxFramePayload: true,
  fragmentSize: true,
  maxMessageSize: true,
  linkBufferBytes: true,
  reconnectMinMs: true,
  reconnectMaxMs: true,
  lingerMs: true,
};
const TLS_OPTION_KEYS: { readonly [K in keyof TlsOptions]-?: true } = {
  key: true,
  cert: true,
  ca: true,
};

/** Every option name of {@link SwitchboardOptions}, the names `resolveOptions` accepts. */
export const SWITCHBOARD_OPTION_NAMES: readonly string[] = Object.freeze(
  Object.keys(SWITCHBOARD_OPTION_KEYS),
);

/** Every option name of {@link TlsOptions}. */
export const TLS_OPTION_NAMES: readonly string[] = Object.freeze(Object.keys(TLS_OPTION_KEYS));

type NumericKey = {
  [
    K in keyof typeof DEFAULT_SWITCHBOARD_OPTIONS
  ]: (typeof DEFAULT_SWITCHBOARD_OPTIONS)[K] extends number ? K : never;
}[keyof typeof DEFAULT_SWITCHBOARD_OPTIONS];

/**
 * Validates options; throws {@link OptionError} naming the first bad option.
 * Unknown option names are refused first (with the nearest known name as
 * `suggestion`), since a misspelt name would otherwise surface as a missing
 * or defaulted option: `secert` as "secret is required".
 * @param extraNames option names the caller handles itself on top of
 *   {@link SwitchboardOptions} (the facade's `forceEncoding`); accepted here,
 *   not validated.
 */
export function resolveOptions(
  options: SwitchboardOptions,
  extraNames: readonly string[] = [],
): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw new OptionError('options', 'must be an object');
  checkOptionNames(options, [...SWITCHBOARD_OPTION_NAMES, ...extraNames], '');
  if (options.tls !== undefined) {
    if (typeof options.tls !== 'object' || options.tls === null)
      throw new OptionError('tls', 'must be an object { key, cert, ca }');
    checkOptionNames(options.tls, TLS_OPTION_NAMES, 'tls');
  }
  const nodes = parseNodes(options.nodes);
  const { id } = options;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= nodes.length) {
    throw new OptionError(
      'id',
      `must be an integer index into nodes (0..${nodes.length - 1}), got ${String(id)}`,
    );
  }
  let secret: Buffer | undefined;
  if (options.secret !== undefined) {
    secret =
      typeof options.secret === 'string'
        ? Buffer.from(options.secret, 'utf8')
        : Buffer.from(options.secret);
    if (secret.length < 16) throw new OptionError('secret', 'must be at least 16 bytes');
    if (options.insecure === true)
      throw new OptionError('insecure', 'cannot be combined with a secret');
  } else if (options.insecure !== true) {
    throw new OptionError(
      'secret',
      'is required; pass { insecure: true } to run without authentication',
    );
  }
  const num = (key: NumericKey, min: number): number => {
    const value = options[key] ?? DEFAULT_SWITCHBOARD_OPTIONS[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw new OptionError(key, `must be a number >= ${min}, got ${String(value)}`);
    }
    return value;
  };
  const resolved: ResolvedOptions = {
    nodes,
    id,
    secret,
    clusterName: parseClusterName(options.clusterName),
    tls: options.tls,
    bindHost: options.bindHost ?? nodes[id]!.host,
    handshakeTimeoutMs: num('handshakeTimeoutMs', 1),
    maxPendingHandshakes: num('maxPendingHandshakes', 1),
    heartbeatMs: num('heartbeatMs', 1),
    deadPeerMs: num('deadPeerMs', 1),
    failureDetector: detector(options.failureDetector),
    phi: resolvePhiOptions(options.phi),
    writeStallMs: num('writeStallMs', 1),
    maxFramePayload: num('maxFramePayload', 1024),
    fragmentSize: num('fragmentSize', 256),
    maxMessageSize: num('maxMessageSize', 1),
    linkBufferBytes: num('linkBufferBytes', 64 * 1024),
    reconnectMinMs: num('reconnectMinMs', 0),
    reconnectMaxMs: num('reconnectMaxMs', 0),
    lingerMs: num('lingerMs', 0),
  };
  if (options.phi !== undefined && resolved.failureDetector !== 'phi') {
    throw new OptionError('phi', "applies only with failureDetector: 'phi'");
  }
  if (resolved.deadPeerMs <= resolved.heartbeatMs) {
    throw new OptionError('deadPeerMs', 'must be larger than heartbeatMs');
  }
  if (resolved.fragmentSize + 4 > resolved.maxFramePayload) {
    throw new OptionError('fragmentSize', 'must leave 4 bytes of room below maxFramePayload');
  }
  if (resolved.maxMessageSize > 0xffff_ffff)
    throw new OptionError('maxMessageSize', 'must be below 4 GiB');
  if (options.tls !== undefined) {
    const t = options.tls;
    if (t.key === undefined || t.cert === undefined || t.ca === undefined) {
      throw new OptionError('tls', 'needs key, cert and ca');
    }
  }
  return resolved;
}

function detector(value: unknown): FailureDetector {
  const d = value ?? DEFAULT_SWITCHBOARD_OPTIONS.failureDetector;
  if (d !== 'timeout' && d !== 'phi')
    throw new OptionError(
      'failureDetector',
      `must be 'timeout' or 'phi', got ${typeof d === 'string' ? `'${d}'` : typeof d}`,
    );
  return d;
}
