import { OptionError } from '../errors.js';
import { checkOptionNames } from '../options.js';
import { parseNodes } from './nodes.js';
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
  /**
   * Clients (`Switchboard.connect`) this member holds at once; one more is
   * refused with ERR_SB_CLIENT_LIMIT. 0 accepts none. Default 256.
   */
  readonly maxClients?: number;
  /**
   * A second secret (at least 16 bytes) that admits clients only: its holder
   * can call, publish, subscribe and push, but cannot link as a member.
   * Default: none (clients use the cluster secret).
   */
  readonly clientSecret?: string | Buffer;
}

/**
 * Options of `Switchboard.connect`: a client of the cluster, outside its
 * node list. Times are milliseconds, sizes bytes.
 */
export interface ConnectOptions extends Omit<
  SwitchboardOptions,
  'id' | 'bindHost' | 'maxPendingHandshakes' | 'maxClients' | 'secret' | 'clientSecret'
> {
  /** The cluster secret. Give this or `clientSecret` (or `insecure`). */
  readonly secret?: string | Buffer;
  /** The members' client secret (their `clientSecret` option). */
  readonly clientSecret?: string | Buffer;
  /** Which members to dial, by node id. Default: every node of the list. */
  readonly members?: readonly number[];
  /** How long `connect()` waits until one member has accepted the client. Default 10000. */
  readonly timeoutMs?: number;
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
  readonly maxClients: number;
  /** Members: the client secret they accept. Clients: undefined. */
  readonly clientSecret: Buffer | undefined;
  /** Clients: `secret` is the members' client secret, not the cluster secret. */
  readonly usesClientSecret: boolean;
  /** `member`: a node of the list (Switchboard.start); `client`: Switchboard.connect. */
  readonly role: 'member' | 'client';
  /** Clients: the members to dial. Members: every other node. */
  readonly members: readonly number[];
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
  maxClients: 256,
});

/** Defaults of {@link ConnectOptions} on top of the shared ones. */
export const DEFAULT_CONNECT_OPTIONS = Object.freeze({
  timeoutMs: 10_000,
});

/** The most clients a member may hold: client numbers are u16 on the wire, above the node ids. */
export const MAX_CLIENTS = 0xfffe - 1024;

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
  maxClients: true,
  clientSecret: true,
};
const CONNECT_OPTION_KEYS: { readonly [K in keyof ConnectOptions]-?: true } = {
  nodes: true,
  secret: true,
  clientSecret: true,
  insecure: true,
  clusterName: true,
  tls: true,
  handshakeTimeoutMs: true,
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
  members: true,
  timeoutMs: true,
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

/** Every option name of {@link ConnectOptions}. */
export const CONNECT_OPTION_NAMES: readonly string[] = Object.freeze(
  Object.keys(CONNECT_OPTION_KEYS),
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
  const secret = secretOption('secret', options.secret);
  const clientSecret = secretOption('clientSecret', options.clientSecret);
  if (secret !== undefined || clientSecret !== undefined) {
    if (options.insecure === true)
      throw new OptionError(
        'insecure',
        `cannot be combined with a ${secret !== undefined ? 'secret' : 'clientSecret'}`,
      );
  } else if (options.insecure !== true) {
    throw new OptionError(
      'secret',
      'is required; pass { insecure: true } to run without authentication',
    );
  }
  if (secret === undefined && clientSecret !== undefined)
    throw new OptionError('clientSecret', 'needs a cluster secret beside it');
  if (clientSecret !== undefined && secret!.equals(clientSecret))
    throw new OptionError('clientSecret', 'must differ from the cluster secret');
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
    clusterName: options.clusterName ?? '',
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
    maxClients: num('maxClients', 0),
    clientSecret,
    usesClientSecret: false,
    role: 'member',
    members: nodes.filter((n) => n.id !== id).map((n) => n.id),
  };
  if (!Number.isInteger(resolved.maxClients) || resolved.maxClients > MAX_CLIENTS)
    throw new OptionError('maxClients', `must be an integer in 0..${MAX_CLIENTS}`);
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

/**
 * Validates the options of a client (`Switchboard.connect`): the shared
 * ones as a member's, then its own. A client has no index in the node
 * list: its `id` is `nodes.length`, a number no node has.
 * @throws OptionError naming the first bad option.
 */
export function resolveConnectOptions(
  options: ConnectOptions,
  extraNames: readonly string[] = [],
): ResolvedOptions & { readonly timeoutMs: number } {
  if (typeof options !== 'object' || options === null)
    throw new OptionError('options', 'must be an object');
  checkOptionNames(options, [...CONNECT_OPTION_NAMES, ...extraNames], '');
  const { members, timeoutMs, secret, clientSecret, ...shared } = options;
  if (secret !== undefined && clientSecret !== undefined)
    throw new OptionError('clientSecret', 'give either secret or clientSecret, not both');
  // Checked here, so that an error names the option the caller gave.
  const key = secretOption('secret', secret) ?? secretOption('clientSecret', clientSecret);
  const base = resolveOptions(
    { ...shared, id: 0, ...(key === undefined ? {} : { secret: key }) },
    extraNames,
  );
  const n = base.nodes.length;
  let dial: number[];
  if (members === undefined) dial = base.nodes.map((x) => x.id);
  else if (
    !Array.isArray(members) ||
    members.length === 0 ||
    !members.every((m) => Number.isInteger(m) && m >= 0 && m < n)
  ) {
    throw new OptionError('members', `must be a non-empty array of node ids (0..${n - 1})`);
  } else dial = [...new Set<number>(members as readonly number[])].sort((a, b) => a - b);
  const wait = timeoutMs ?? DEFAULT_CONNECT_OPTIONS.timeoutMs;
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 1)
    throw new OptionError('timeoutMs', `must be a number >= 1, got ${String(wait)}`);
  return {
    ...base,
    id: n,
    bindHost: '',
    maxClients: 0,
    clientSecret: undefined,
    usesClientSecret: clientSecret !== undefined,
    role: 'client',
    members: dial,
    timeoutMs: wait,
  };
}

function secretOption(name: string, value: unknown): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' && !Buffer.isBuffer(value))
    throw new OptionError(name, 'must be a string or a Buffer');
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  if (b.length < 16) throw new OptionError(name, 'must be at least 16 bytes');
  return b;
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
