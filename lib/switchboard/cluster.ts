/**
 * The cluster layer: one authenticated link per peer, the rendezvous,
 * heartbeats and failure detection, reconnects that resume the session,
 * and the lifecycle (docs/guide.md 2-3, docs/wire-protocol.md 6-9).
 *
 * One file of about 1000 lines because a peer's state (its link, its
 * session, its dialer, its last failure) changes in one place: accepting,
 * dialing, a session's end and `close()` each read and write all of it.
 * What it reports is in events.ts, why a link failed in failures.ts.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { isIP } from 'node:net';
import { debuglog } from 'node:util';
import pRetry from 'p-retry';
import type { Observable } from 'rxjs';
import { Subject } from 'rxjs';
import {
  ErrorCode,
  HandshakeError,
  PeerLostError,
  RendezvousTimeoutError,
  SwitchboardError,
} from '../errors.js';
import type { MissingPeerReason } from '../errors.js';
import { ClientConnectError } from '../errors.js';
import { clockMs } from '../protocol/clock.js';
import type { FrameSink } from '../protocol/decoder.js';
import type { HeadField } from '../protocol/head.js';
import { CLIENT_NODE, GoAwayCode } from '../protocol/handshake.js';
import type { HandshakeOptions, HandshakeResult } from '../protocol/handshake.js';
import { Connection } from './connection.js';
import type { ConnectionEvents } from './connection.js';
import { Link } from './link.js';
import type { LinkHandler } from './link.js';
import { CLIENT_HANDLE_BASE, clusterFingerprint, dials, formatAddress } from './nodes.js';
import type { NodeInfo } from './nodes.js';
import { resolveOptions } from './options.js';
import { PhiAccrual } from './phi.js';
import type { ResolvedOptions, SwitchboardOptions } from './options.js';
import { dial, listen } from './transport.js';
import type {
  ClientInfo,
  ClusterHandler,
  PeerInfo,
  PeerState,
  SwitchboardEvent,
} from './events.js';
import { connectFailure, handshakeFailure, withAdvice } from './failures.js';
import type { LinkFailure } from './failures.js';
import type { LinkServer, LinkSocket } from './transport.js';

const debug = debuglog('switchboard');

interface PeerCounters {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
}

/**
 * When the pending-handshake table is full, an inbound connection silent
 * this long (no HELLO yet) may be evicted to make room. A real peer's HELLO
 * follows its TCP connect by one round trip.
 */
const IDLE_HANDSHAKE_MS = 250;

/** Where frames go from a connection dropped right after its handshake. */
const DISCARD_FRAMES: FrameSink = { onFrame: () => undefined };

/** What a member knows of one client linked to it. */
interface ClientRecord {
  /** The client's incarnation (hex): its id. */
  readonly id: string;
  /** The node number its receivers' handles carry (CLIENT_HANDLE_BASE + 48 bits). */
  readonly handle: number;
  readonly address: string | undefined;
  readonly since: number;
}

/** A client's handle number: CLIENT_HANDLE_BASE plus the first 48 bits of its incarnation. */
export function clientHandle(incarnation: Buffer): number {
  return CLIENT_HANDLE_BASE + incarnation.readUIntBE(0, 6);
}

const AUTH_CODES = new Set<string>([
  ErrorCode.AUTH_FAILED,
  ErrorCode.FINGERPRINT_MISMATCH,
  ErrorCode.SECURITY_MISMATCH,
  ErrorCode.VERSION_MISMATCH,
  ErrorCode.UNKNOWN_NODE,
  ErrorCode.DUPLICATE_NODE,
]);

/**
 * The cluster layer: one authenticated link per peer, rendezvous, heartbeats
 * and failure detection, reconnects that resume the session, and the
 * lifecycle. Channels sit on top through {@link ClusterHandler}.
 */
export class Cluster implements ConnectionEvents {
  /** This node's index; a client's is `nodes.length`, a number no node has. */
  readonly id: number;
  /** `member` (Switchboard.start) or `client` (Switchboard.connect). */
  readonly role: 'member' | 'client';
  /**
   * Peers are numbered 0..peerCount-1: the nodes of the list, then, on a
   * member, one number per client it may hold (`maxClients`), or, on a
   * client, the client itself.
   */
  readonly peerCount: number;
  /** The node number handles to this process's receivers carry (a client's handle id). */
  readonly handleSelf: number;
  /** The validated node list. */
  readonly nodes: readonly NodeInfo[];
  /** This process's incarnation id (hex), new at every start. */
  readonly incarnation: string;
  /** Peer up/suspect/down/restarted, link errors, auth failures, drops; completes on close. */
  readonly events$: Observable<SwitchboardEvent>;

  protected readonly options: ResolvedOptions;
  private readonly events = new Subject<SwitchboardEvent>();
  private readonly incarnationBytes: Buffer;
  private readonly fingerprint: Buffer;
  private readonly links: Array<Link | undefined>;
  private readonly totals: PeerCounters[];
  private readonly pending = new Set<Connection>();
  private readonly lastPing: number[];
  /** Per peer, the phi-accrual detector under `failureDetector: 'phi'`. */
  private readonly detectors: Array<PhiAccrual | undefined>;
  /** Each peer's health as last told to the handler. */
  private readonly wasHealthy: boolean[];
  private readonly ever: boolean[];
  /** The incarnation of each peer's last session (hex), to tell a restart from a return. */
  private readonly lastIncarnation: Array<string | undefined>;
  /** Member: the clients linked, by peer number (nodes.length and up). */
  private readonly clientRecords = new Map<number, ClientRecord>();
  /** Member: a client's peer number by its incarnation (hex), and by its handle number. */
  private readonly clientByIncarnation = new Map<string, number>();
  private readonly clientByHandle = new Map<number, number>();
  /** Client: the number each member gave this client in its WELCOME. */
  private readonly localIds: Array<number | undefined> = [];
  private readonly linkSettings: ConstructorParameters<typeof Link>[1];
  private readonly linkHandler: LinkHandler;
  private readonly abort = new AbortController();
  private readonly dialing = new Set<number>();
  /**
   * Per peer, why the last attempt to link with it failed, until it links:
   * what a rendezvous timeout reports, since the failures themselves happen
   * on other connections, long before.
   */
  private readonly linkFailures: Array<LinkFailure | undefined> = [];
  /** The last inbound handshake that failed before its HELLO named a node. */
  private anonymousFailure: (LinkFailure & { readonly from: string | undefined }) | undefined;
  /** The node id an inbound connection's HELLO claimed, before it is authenticated. */
  private readonly claimed = new WeakMap<Connection, number>();
  private handler: ClusterHandler | undefined;
  private server: LinkServer | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private state: 'running' | 'closing' | 'closed' = 'running';
  private closePromise: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();
  protected readonly now: () => number = clockMs;
  /**
   * Per peer, until when (`clockMs()` scale, lib/protocol/clock.ts) the session cannot
   * have been ended by the peer: each link's `confirmedUntil`, 0 without a
   * confirmed session. The receive paths test `clockMs() < leases[peer]`
   * before anything else; only a lapsed lease costs a call into the link.
   */
  readonly leases: Float64Array;

  /**
   * @param extraOptionNames option names the caller reads from `options`
   *   itself, accepted on top of {@link SwitchboardOptions}; any other
   *   unknown name is an `OptionError`.
   */
  constructor(
    options: SwitchboardOptions,
    extraOptionNames: readonly string[] = [],
    resolved?: ResolvedOptions,
  ) {
    this.options = resolved ?? resolveOptions(options, extraOptionNames);
    this.id = this.options.id;
    this.role = this.options.role;
    this.nodes = this.options.nodes;
    const n = this.nodes.length;
    this.peerCount = this.role === 'client' ? n + 1 : n + this.options.maxClients;
    this.incarnationBytes = randomBytes(16);
    this.incarnation = this.incarnationBytes.toString('hex');
    this.handleSelf = this.role === 'client' ? clientHandle(this.incarnationBytes) : this.id;
    this.fingerprint = clusterFingerprint(this.nodes, this.options.clusterName);
    this.events$ = this.events.asObservable();
    // Every dial loop listens on the one abort signal (p-retry's delay, the
    // pending connect): more than Node's default of 10 in a cluster of 12+.
    setMaxListeners(2 * n + 10, this.abort.signal);
    const settings = {
      fragmentSize: this.options.fragmentSize,
      maxMessageSize: this.options.maxMessageSize,
      bufferBytes: this.options.linkBufferBytes,
      heartbeatMs: this.options.heartbeatMs,
      deadPeerMs: this.options.deadPeerMs,
    };
    // Links report to a private adapter, so subclasses are free to use any method names.
    this.linkHandler = {
      onMessage: (link, stream, flags, message) =>
        this.handler?.onMessage(link.peer, stream, flags, message),
      onOversize: (link, stream, size) => this.handler?.onOversize?.(link.peer, stream, size),
      onConfirmed: (link) => this.handler?.onConfirmed?.(link.peer),
      onPeerClosing: (link) => this.handler?.finalReports?.(link.peer),
      onControl: (link, type, flags, stream, payload) =>
        this.handler?.onControl(link.peer, type, flags, stream, payload),
      onWritable: (link) => this.handler?.onWritable(link.peer),
    };
    this.linkSettings = settings;
    this.leases = new Float64Array(this.peerCount);
    const peers = new Set(this.options.members);
    this.links = new Array<Link | undefined>(this.peerCount).fill(undefined);
    this.detectors = new Array<PhiAccrual | undefined>(this.peerCount).fill(undefined);
    for (const id of peers) this.makeLink(id);
    this.totals = Array.from({ length: this.peerCount }, () => ({
      bytesIn: 0,
      bytesOut: 0,
      framesIn: 0,
    }));
    this.lastPing = new Array<number>(this.peerCount).fill(0);
    this.wasHealthy = new Array<boolean>(this.peerCount).fill(false);
    this.ever = new Array<boolean>(this.peerCount).fill(false);
    this.lastIncarnation = new Array<string | undefined>(this.peerCount).fill(undefined);
  }

  /** The link to `peer`, with its phi detector: made up front for nodes, on admission for clients. */
  private makeLink(peer: number): Link {
    const link = new Link(peer, this.linkSettings, this.linkHandler, this.leases);
    this.links[peer] = link;
    if (this.options.failureDetector === 'phi') {
      const detector = new PhiAccrual(this.options.phi, this.options.heartbeatMs);
      link.onHeartbeat = (at) => detector.heartbeat(at);
      this.detectors[peer] = detector;
    }
    return link;
  }

  /** True for a peer number a member gave a client. */
  isClient(peer: number): boolean {
    return this.role === 'member' && peer >= this.nodes.length;
  }

  /** Does this process dial `peer`? Members by the dial rule, never a client; a client every member. */
  private dialsPeer(peer: number): boolean {
    if (peer >= this.nodes.length) return false;
    return this.role === 'client' ? this.links[peer] !== undefined : dials(this.id, peer);
  }

  /** HubTransport: the number `peer` knows this process by. */
  selfFor(peer: number): number {
    return this.role === 'client' ? (this.localIds[peer] ?? this.id) : this.id;
  }

  /** HubTransport: the peer a handle's node number names here (-1: nobody linked). */
  peerOfHandle(node: number): number {
    if (node < this.nodes.length) return node;
    if (node === this.handleSelf) return this.id;
    return this.role === 'member' ? (this.clientByHandle.get(node) ?? -1) : -1;
  }

  /**
   * Binds the listening socket and starts linking with every peer.
   * @throws ListenError (`ERR_SB_LISTEN`) when the socket cannot be bound;
   *   the cluster is then destroyed, `events$` completed.
   */
  async startCluster(): Promise<void> {
    const o = this.options;
    if (this.role === 'client') {
      this.startTicker();
      for (const link of this.links) if (link !== undefined) this.startDialing(link);
      debug('client %s dialing %o', this.incarnation, o.members);
      return;
    }
    const self = this.nodes[this.id]!;
    try {
      this.server = await listen(o.bindHost, self.port, o.tls, (socket) => this.onSocket(socket), {
        tlsHandshakeTimeoutMs: o.handshakeTimeoutMs,
        maxTlsPending: o.maxPendingHandshakes,
        onTlsRefused: (error, remoteAddress) => {
          this.noteInboundFailure(undefined, remoteAddress, error);
          this.emit({ type: 'auth-failure', node: undefined, remoteAddress, error });
        },
      });
    } catch (err) {
      // Nothing else started yet; destroying completes events$ for anyone subscribed.
      await this.destroy(err instanceof Error ? err : undefined);
      throw err;
    }
    this.server.on('error', (err: Error) => this.emit({ type: 'error', error: err }));
    this.startTicker();
    for (const link of this.links)
      if (link !== undefined && this.dialsPeer(link.peer)) this.startDialing(link);
    debug(
      'node %d (%s) listening on %s, incarnation %s',
      this.id,
      formatAddress(self),
      o.bindHost,
      this.incarnation,
    );
  }

  private startTicker(): void {
    const o = this.options;
    // Twice per heartbeat (and often enough for the shortest timeout it
    // checks): on an idle node these wakeups are most of what it costs.
    const tick = Math.max(
      10,
      Math.min(o.heartbeatMs, o.handshakeTimeoutMs / 2, o.deadPeerMs / 4, o.writeStallMs / 4) / 2,
    );
    this.ticker = setInterval(() => this.tick(), tick);
  }

  /** Sets the receiver of link traffic (the channel layer). */
  setHandler(handler: ClusterHandler): void {
    this.handler = handler;
  }

  /** Reports an event on `events$`. */
  emit(event: SwitchboardEvent): void {
    if (this.state === 'closed') return;
    // A client's comings and goings are client-up / client-down; the
    // per-node events speak of nodes of the list only.
    if ('node' in event && event.node !== undefined && this.isClient(event.node)) return;
    debug('event %s %o', event.type, 'node' in event ? event.node : '');
    this.events.next(event);
    this.wake();
  }

  /** Lets rendezvous() and connect() look again. */
  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves when every peer is linked and authenticated. Rejects with
   * {@link RendezvousTimeoutError} naming the missing peers, whichever side
   * was to dial, and in `reasons` why each is missing (its address, the last
   * failure of a link with it or what this node waits for, the error); with
   * `ERR_SB_CLOSED` if the switchboard closes first.
   * @param options.timeoutMs ms, default 30000
   */
  rendezvous(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      // Never a client: members do not wait for them.
      const missing = (): number[] =>
        this.links
          .filter((l) => l !== undefined && l.peer < this.nodes.length && !l.connected)
          .map((l) => l!.peer);
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err === undefined) resolve();
        else reject(err);
      };
      const check = (): void => {
        if (this.state !== 'running')
          done(new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed during rendezvous'));
        else if (missing().length === 0) done();
      };
      const timer = setTimeout(() => {
        const ids = missing();
        done(
          new RendezvousTimeoutError(
            ids,
            timeoutMs,
            ids.map((p) => this.whyMissing(p)),
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Why `peer` is not linked: its last failure, or what this node is waiting for. */
  private whyMissing(peer: number): MissingPeerReason {
    const node = this.nodes[peer]!;
    const address = formatAddress(node);
    const failure = this.linkFailures[peer];
    if (failure !== undefined) return { node: peer, address, ...failure };
    if (this.dialsPeer(peer)) {
      const inFlight = [...this.pending].find((c) => c.role === 'dialer' && c.peer === peer);
      const reason =
        inFlight !== undefined
          ? `connected, handshake still in progress (${inFlight.handshake.status})`
          : this.ever[peer] === true
            ? 'link lost; redialing'
            : 'no dial attempt has finished yet';
      return { node: peer, address, reason, error: undefined };
    }
    const self = formatAddress(this.nodes[this.id]!);
    const waiting =
      this.ever[peer] === true
        ? `link lost; waiting for node ${peer} to dial this node again at ${self}`
        : `never connected: node ${peer} is to dial this node at ${self}`;
    // An inbound failure that named no node may still be this peer's: say so
    // when it came from the peer's host, or when that cannot be told (the
    // host is a name; a refused TLS client's address is gone with its socket).
    const anonymous = this.anonymousFailure;
    const from = anonymous?.from?.replace(/^::ffff:/, '');
    if (
      anonymous !== undefined &&
      (from === undefined || isIP(node.host) === 0 || from === node.host)
    ) {
      return {
        node: peer,
        address,
        reason: `${waiting}; a connection from ${from ?? 'an unknown address'} (node ${peer}?) failed its handshake before naming its node: ${anonymous.reason}`,
        error: anonymous.error,
      };
    }
    const check = `is node ${peer} started, and can it reach that address?`;
    return { node: peer, address, reason: `${waiting}; ${check}`, error: undefined };
  }

  /**
   * Records why an inbound handshake failed: against the node its HELLO
   * claimed (unauthenticated, but what a misconfigured peer would send), or
   * as the last anonymous failure when it named none.
   */
  private noteInboundFailure(
    claimed: number | undefined,
    remoteAddress: string | undefined,
    err: SwitchboardError | undefined,
  ): void {
    if (this.state !== 'running') return;
    if (claimed === undefined) {
      if (err === undefined) return; // a client that hung up before a word: nothing to report
      this.anonymousFailure = { from: remoteAddress, reason: withAdvice(err), error: err };
      return;
    }
    // A stranger claiming a linked peer's id says nothing about that peer.
    if (this.links[claimed]?.connected !== false) return;
    this.linkFailures[claimed] = handshakeFailure(
      err,
      claimed,
      'acceptor',
      this.options.handshakeTimeoutMs,
    );
  }

  /** A snapshot of every peer of the node list (a client: the members it dials). */
  peers(): PeerInfo[] {
    return this.nodes
      .filter((n) => this.links[n.id] !== undefined)
      .map((n) => {
        const link = this.links[n.id]!;
        const t = this.totals[n.id]!;
        const c = link.conn;
        return {
          node: n.id,
          address: formatAddress(n),
          tags: n.tags,
          state: this.peerState(link),
          incarnation: link.session?.peerIncarnation.toString('hex'),
          bytesIn: t.bytesIn + (c?.bytesIn ?? 0),
          bytesOut: t.bytesOut + (c?.bytesOut ?? 0),
          framesIn: t.framesIn + (c?.framesIn ?? 0),
          framesOut: link.framesOut,
          bufferedBytes: link.bufferedBytes,
          rttMs: link.rttMs,
        };
      });
  }

  /** Member: a snapshot of every client linked (or reconnecting within the dead-peer timeout). */
  clients(): ClientInfo[] {
    return [...this.clientRecords].map(([peer, c]) => {
      const link = this.links[peer]!;
      const t = this.totals[peer]!;
      const conn = link.conn;
      return {
        client: c.id,
        address: c.address,
        state: link.connected ? (link.suspect ? 'suspect' : 'up') : 'suspect',
        since: c.since,
        bytesIn: t.bytesIn + (conn?.bytesIn ?? 0),
        bytesOut: t.bytesOut + (conn?.bytesOut ?? 0),
        bufferedBytes: link.bufferedBytes,
        rttMs: link.rttMs,
      };
    });
  }

  /** Client: resolves once one member accepted it, rejects when none did (see Switchboard.connect). */
  firstMember(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const dialed = this.options.members;
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err === undefined) resolve();
        else reject(err);
      };
      const reasons = (): MissingPeerReason[] => dialed.map((p) => this.whyMissing(p));
      const check = (): void => {
        if (this.state !== 'running')
          done(new SwitchboardError(ErrorCode.CLOSED, 'client closed while connecting'));
        else if (dialed.some((p) => this.links[p]!.connected)) done();
        else if (dialed.every((p) => isRefusal(this.linkFailures[p]?.error))) {
          // Every member said no (full, wrong secret, another node list): no use waiting.
          done(new ClientConnectError('every member dialed refused this client', reasons()));
        }
      };
      const timer = setTimeout(
        () =>
          done(
            new ClientConnectError(
              `no member accepted this client within ${timeoutMs} ms`,
              reasons(),
            ),
          ),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }

  /** True while a session with `peer` exists (connected, or reconnecting within the dead-peer timeout). */
  hasSession(peer: number): boolean {
    return this.links[peer]?.hasSession ?? false;
  }

  /** True while `peer` is connected. */
  isUp(peer: number): boolean {
    return this.links[peer]?.connected ?? false;
  }

  /** True while `peer` is connected and not suspect (pickers prefer such peers). */
  healthy(peer: number): boolean {
    const link = this.links[peer];
    return link !== undefined && link.connected && !link.suspect;
  }

  /** How long `close()` waits for what was sent to be delivered, ms. */
  get lingerMs(): number {
    return this.options.lingerMs;
  }

  /** This node's largest message, bytes. */
  get maxMessageSize(): number {
    return this.options.maxMessageSize;
  }

  /** The largest message `peer` accepts: what it announced, and never more than ours. */
  peerLimit(peer: number): number {
    const link = this.links[peer];
    const own = this.options.maxMessageSize;
    return link === undefined ? own : Math.min(own, link.peerSettings.maxMessageSize);
  }

  /**
   * False when `peer` may already have ended our session without our
   * knowing: nothing has confirmed it within half the peer's dead-peer
   * timeout (an event-loop stall here, a long GC pause, a partition). The
   * link then asks the peer (a PING) and `onConfirmed` follows its answer;
   * if the session ended instead, `onSessionEnd` does. Reads the clock.
   */
  fresh(peer: number): boolean {
    const link = this.links[peer];
    return link?.session === undefined || link.fresh(this.now());
  }

  /** As {@link fresh}, at the time the bytes now being handled were read (no clock read). */
  freshOnArrival(peer: number): boolean {
    const link = this.links[peer];
    if (link?.session === undefined) return true;
    return link.fresh(link.conn?.handledAt ?? this.now());
  }

  /** Code ran that may have taken any time: the bytes being handled count as read now. */
  ranSince(peer: number): void {
    const conn = this.links[peer]?.conn;
    if (conn !== undefined) conn.handledAt = this.now();
  }

  /** True when a message may be queued for `peer` now; otherwise `onWritable` follows. */
  writable(peer: number): boolean {
    return this.links[peer]?.writable() ?? false;
  }

  /** Queues a sequenced control frame for `peer`. */
  sendFrame(
    peer: number,
    type: number,
    flags: number,
    stream: number,
    payload?: Uint8Array,
    urgent = false,
  ): void {
    this.links[peer]?.sendFrame(type, flags, stream, payload, urgent);
  }

  /**
   * Queues a message for `peer` (fragmented when large). The link keeps it
   * until the peer acknowledges it, for a resend after a reconnect: it
   * copies `bytes` unless `owned` says the caller hands them over and will
   * never change them.
   */
  sendMessage(
    peer: number,
    stream: number,
    flags: number,
    bytes: Uint8Array,
    owned = false,
    head?: readonly HeadField[],
  ): void {
    this.links[peer]?.sendMessage(stream, flags, bytes, owned, head);
  }

  /** True once close() or destroy() began. */
  get closed(): boolean {
    return this.state !== 'running';
  }

  /**
   * Graceful shutdown: stop accepting, wait up to `lingerMs` for queued data
   * to be acknowledged, then say GOAWAY and close. Idempotent.
   */
  close(lingerMs = this.options.lingerMs): Promise<void> {
    this.closePromise ??= this.shutdown(true, undefined, lingerMs);
    return this.closePromise;
  }

  /** Immediate shutdown; everything in flight fails with `err`. Idempotent. */
  destroy(err?: Error): Promise<void> {
    this.closePromise ??= this.shutdown(false, err);
    return this.closePromise;
  }

  // ---- connections -------------------------------------------------------

  private handshakeOptions(
    role: 'dialer' | 'acceptor',
    peer?: number,
    onClaim?: (from: number) => void,
    remoteAddress?: string,
  ): HandshakeOptions {
    if (this.role === 'client') {
      return {
        role: 'client',
        self: CLIENT_NODE,
        nodeCount: this.nodes.length,
        peer: peer!,
        fingerprint: this.fingerprint,
        incarnation: this.incarnationBytes,
        secret: this.options.secret,
        clientSecret: this.options.usesClientSecret,
        resumeFor: (p) => this.links[p]?.resumeState(),
      };
    }
    return {
      ...(this.options.maxClients > 0
        ? {
            clients: {
              secret: this.options.clientSecret,
              resumeFor: (incarnation: Buffer) => {
                const slot = this.clientByIncarnation.get(incarnation.toString('hex'));
                return slot === undefined ? undefined : this.links[slot]?.resumeState();
              },
              admit: (r: HandshakeResult) => this.admitClient(r, remoteAddress),
            },
          }
        : {}),
      role,
      self: this.id,
      nodeCount: this.nodes.length,
      ...(peer === undefined ? {} : { peer }),
      fingerprint: this.fingerprint,
      incarnation: this.incarnationBytes,
      secret: this.options.secret,
      mayDial: (from) => {
        // The handshake's only word, before authentication, of which node a
        // connection claims to be: kept to say why that node is missing.
        onClaim?.(from);
        return dials(from, this.id);
      },
      resumeFor: (p) => this.links[p]?.resumeState(),
      admit: (r) => this.admit(r),
    };
  }

  /**
   * Gives an authenticated client its peer number: the one its session has
   * (a reconnect), else a free one. Refuses it when `maxClients` are linked.
   */
  private admitClient(r: HandshakeResult, address: string | undefined): number {
    const id = r.peerIncarnation.toString('hex');
    const known = this.clientByIncarnation.get(id);
    if (known !== undefined) return known;
    const max = this.options.maxClients;
    if (this.clientRecords.size >= max) {
      throw new HandshakeError(
        ErrorCode.CLIENT_LIMIT,
        `node ${this.id} already holds its maxClients of ${max} clients`,
        { state: 'admit' },
      );
    }
    const handle = clientHandle(r.peerIncarnation);
    if (this.clientByHandle.has(handle)) {
      throw new HandshakeError(
        ErrorCode.DUPLICATE_NODE,
        `another client linked to node ${this.id} has the same handle id (its incarnation's first 48 bits)`,
        { state: 'admit' },
      );
    }
    let slot = this.nodes.length;
    while (this.links[slot] !== undefined) slot++;
    this.makeLink(slot);
    this.totals[slot] = { bytesIn: 0, bytesOut: 0, framesIn: 0 };
    this.ever[slot] = false;
    this.wasHealthy[slot] = false;
    this.clientRecords.set(slot, { id, handle, address, since: Date.now() });
    this.clientByIncarnation.set(id, slot);
    this.clientByHandle.set(handle, slot);
    return slot;
  }

  /** A client's session ended: its number is free again. */
  private forgetClient(link: Link, reason: PeerLostError): void {
    const c = this.clientRecords.get(link.peer);
    if (c === undefined) return;
    this.clientRecords.delete(link.peer);
    this.clientByIncarnation.delete(c.id);
    this.clientByHandle.delete(c.handle);
    this.links[link.peer] = undefined;
    this.detectors[link.peer] = undefined;
    this.leases[link.peer] = 0;
    this.emit({ type: 'client-down', client: c.id, error: reason });
  }

  /** Refuses a second live process claiming a node id whose session is healthy. */
  private admit(r: HandshakeResult): void {
    const link = this.links[r.peer]!;
    if (
      link.connected &&
      link.session !== undefined &&
      !link.session.peerIncarnation.equals(r.peerIncarnation)
    ) {
      throw new HandshakeError(
        ErrorCode.DUPLICATE_NODE,
        `node ${r.peer} is already linked to a live process (incarnation ${link.session.peerIncarnation.toString('hex')})`,
        { state: 'admit' },
      );
    }
  }

  private newConnection(
    socket: LinkSocket,
    role: 'dialer' | 'acceptor',
    peer?: number,
  ): Connection {
    const conn: Connection = new Connection(
      socket,
      role,
      this.handshakeOptions(
        role,
        peer,
        (from) => this.claimed.set(conn, from),
        socket.remoteAddress,
      ),
      this.options.maxFramePayload,
      this,
      this.now,
      peer,
    );
    this.pending.add(conn);
    return conn;
  }

  private onSocket(socket: LinkSocket): void {
    if (
      this.state !== 'running' ||
      (this.pending.size >= this.options.maxPendingHandshakes && !this.evictIdleHandshake())
    ) {
      // Refuse at once: no buffers, no timers for connections we will not serve.
      socket.destroy();
      return;
    }
    this.newConnection(socket, 'acceptor').start();
  }

  /**
   * Makes room in a full pending table by closing the oldest inbound
   * connection that has not sent its HELLO within {@link IDLE_HANDSHAKE_MS}.
   * Without it, connections that never speak would lock real peers out until
   * the handshake timeout; a real dialer sends HELLO as soon as it connects,
   * so it is never the one evicted.
   */
  private evictIdleHandshake(): boolean {
    const now = this.now();
    // A Set iterates in insertion order: oldest first.
    for (const conn of this.pending) {
      if (
        conn.role === 'acceptor' &&
        conn.handshake.status === 'await-hello' &&
        now - conn.startedAt > IDLE_HANDSHAKE_MS
      ) {
        this.pending.delete(conn);
        conn.fail(
          new HandshakeError(
            ErrorCode.HANDSHAKE_LIMIT,
            `too many pending handshakes; evicted after ${Math.round(now - conn.startedAt)} ms without a HELLO`,
            { state: conn.handshake.status },
          ),
        );
        return true;
      }
    }
    return false;
  }

  /** ConnectionEvents: a connection authenticated. */
  onEstablished(conn: Connection, result: HandshakeResult): FrameSink {
    this.pending.delete(conn);
    const link = this.links[result.peer]!;
    if (result.resumed && link.session?.peerIncarnation.equals(result.peerIncarnation) !== true) {
      // Our HELLO offered to resume, but the session ended (dead-peer timeout) before
      // the handshake finished. Resuming now would graft the peer's old sequence
      // numbers onto a fresh session; drop this connection instead. The next
      // handshake offers no resume, so both sides start a new session.
      conn.fail(
        new SwitchboardError(
          ErrorCode.LINK,
          `session with node ${result.peer} ended during the handshake; relinking`,
        ),
      );
      return DISCARD_FRAMES;
    }
    const old = link.conn;
    if (old !== undefined && old !== conn) {
      // Same incarnation reconnecting over a connection we still thought alive (half-open).
      this.detach(link, old);
      old.fail(
        new SwitchboardError(ErrorCode.LINK, 'replaced by a newer connection from the same peer'),
      );
    }
    const incarnation = result.peerIncarnation.toString('hex');
    if (link.session !== undefined && !result.resumed) {
      const previous = link.session.peerIncarnation.toString('hex');
      this.endSession(
        link,
        new PeerLostError(
          link.peer,
          previous === incarnation
            ? `session with node ${link.peer} could not be resumed`
            : `node ${link.peer} restarted (incarnation ${previous} ended)`,
        ),
        previous === incarnation ? 'down' : 'restarted',
      );
    }
    const fresh = !result.resumed;
    link.attach(
      conn,
      result.peerIncarnation,
      result.resumed,
      result.peerReceived,
      result.ownReceived,
    );
    this.lastPing[link.peer] = this.now();
    this.detectors[link.peer]?.restart();
    this.linkFailures[link.peer] = undefined;
    if (result.localId !== undefined) this.localIds[link.peer] = result.localId;
    debug(
      'node %d linked with %d (%s, %s)',
      this.id,
      link.peer,
      conn.role,
      result.resumed ? 'resumed' : 'new session',
    );
    if (fresh) {
      // A new session with the same incarnation (after peer-down) is the peer coming
      // back, not restarting: only a new incarnation is a restart.
      const restarted =
        this.ever[link.peer] === true && this.lastIncarnation[link.peer] !== incarnation;
      this.ever[link.peer] = true;
      this.lastIncarnation[link.peer] = incarnation;
      this.handler?.onSessionStart(link.peer);
      const client = this.clientRecords.get(link.peer);
      if (client !== undefined)
        this.emit({ type: 'client-up', client: client.id, address: client.address });
      this.emit(
        restarted
          ? { type: 'peer-restarted', node: link.peer, incarnation }
          : { type: 'peer-up', node: link.peer, incarnation },
      );
    } else {
      this.emit({ type: 'peer-reconnected', node: link.peer });
    }
    return link;
  }

  /** ConnectionEvents: a socket closed. */
  onClosed(conn: Connection, err: SwitchboardError | undefined): void {
    this.pending.delete(conn);
    const peer = conn.peer;
    if (!conn.established) {
      // A dialer's failures are recorded by its dial loop, which knows more.
      if (conn.role === 'acceptor')
        this.noteInboundFailure(peer ?? this.claimed.get(conn), conn.remoteAddress, err);
      if (err !== undefined && AUTH_CODES.has(err.code)) {
        this.emit({
          type: 'auth-failure',
          node: peer,
          remoteAddress: conn.remoteAddress,
          error: err,
        });
      }
      return;
    }
    if (peer === undefined) return;
    const link = this.links[peer]!;
    if (link.conn !== conn) return;
    this.detach(link, conn);
    if (this.state !== 'running') return;
    if (err !== undefined && err.code === ErrorCode.CLOSED) {
      // The peer said goodbye: its session is over, no resume to wait for.
      this.endSession(
        link,
        new PeerLostError(peer, `node ${peer} closed: ${err.message}`, { cause: err }),
        'down',
      );
    } else {
      this.emit({ type: 'peer-suspect', node: peer, reason: err?.message ?? 'connection closed' });
      if (err !== undefined) this.emit({ type: 'link-error', node: peer, error: err });
    }
    if (this.dialsPeer(peer)) this.startDialing(link);
  }

  /** ConnectionEvents: a socket drained. */
  onDrained(conn: Connection): void {
    const peer = conn.peer;
    if (peer === undefined || !conn.established) return;
    const link = this.links[peer]!;
    if (link.conn === conn) link.drained();
  }

  private detach(link: Link, conn: Connection): void {
    const t = this.totals[link.peer]!;
    t.bytesIn += conn.bytesIn;
    t.bytesOut += conn.bytesOut;
    t.framesIn += conn.framesIn;
    conn.bytesIn = conn.bytesOut = conn.framesIn = 0;
    link.detach(conn);
  }

  private endSession(link: Link, reason: PeerLostError, how: 'down' | 'restarted'): void {
    if (link.session === undefined) return;
    link.endSession();
    // A dial in progress to this peer offered, in its HELLO, to resume the session
    // that just ended: abandon it, so the peer never resumes a session we dropped.
    for (const conn of this.pending) {
      if (conn.role === 'dialer' && conn.peer === link.peer) {
        conn.fail(
          new SwitchboardError(
            ErrorCode.LINK,
            `session with node ${link.peer} ended during the handshake; relinking`,
          ),
        );
      }
    }
    this.handler?.onSessionEnd(link.peer, reason);
    if (how === 'down') this.emit({ type: 'peer-down', node: link.peer, error: reason });
    if (this.isClient(link.peer)) this.forgetClient(link, reason);
  }

  // ---- dialing -----------------------------------------------------------

  private startDialing(link: Link): void {
    if (this.dialing.has(link.peer) || this.state !== 'running') return;
    this.dialing.add(link.peer);
    const o = this.options;
    const node = this.nodes[link.peer]!;
    const signal = this.abort.signal;
    const attempt = async (): Promise<void> => {
      if (link.connected || this.state !== 'running') return;
      try {
        await this.dialOnce(node, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        if (!(err instanceof SwitchboardError) && !isNetworkError(err)) {
          // A bug in the dial path: surface it, then keep the loop alive.
          this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
        }
        throw err instanceof Error
          ? new Error(err.message, { cause: err })
          : new Error(String(err));
      }
    };
    pRetry(attempt, {
      retries: Number.POSITIVE_INFINITY,
      factor: 2,
      minTimeout: o.reconnectMinMs,
      maxTimeout: o.reconnectMaxMs,
      randomize: true,
      signal,
      shouldRetry: () => this.state === 'running',
      onFailedAttempt: ({ error, attemptNumber }) =>
        debug('dial %d attempt %d failed: %s', node.id, attemptNumber, error.message),
    })
      .catch((err: unknown) => {
        if (!signal.aborted)
          this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
      })
      .finally(() => {
        this.dialing.delete(link.peer);
        if (this.state === 'running' && !link.connected) this.startDialing(link);
      });
  }

  private async dialOnce(node: NodeInfo, signal: AbortSignal): Promise<void> {
    // A SYN lost in a partition is retried by the kernel, backing off, for about
    // two minutes: give up after the handshake timeout instead, so the reconnect
    // loop (capped at reconnectMaxMs) relinks soon after the network heals.
    const attempt = new AbortController();
    const onClose = (): void => attempt.abort(signal.reason);
    if (signal.aborted) onClose();
    else signal.addEventListener('abort', onClose, { once: true });
    const timeoutMs = this.options.handshakeTimeoutMs;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort(
        new SwitchboardError(
          ErrorCode.LINK,
          `connect to node ${node.id} timed out after ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    let socket: LinkSocket;
    try {
      socket = await dial(node.host, node.port, this.options.tls, attempt.signal);
    } catch (err) {
      // The peer's TLS certificate was refused: report it like any failed authentication.
      if (err instanceof HandshakeError && AUTH_CODES.has(err.code))
        this.emit({ type: 'auth-failure', node: node.id, remoteAddress: node.host, error: err });
      if (!signal.aborted) {
        this.linkFailures[node.id] = connectFailure(err, node, timedOut);
        this.wake();
      }
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onClose);
    }
    if (this.state !== 'running') {
      socket.destroy();
      throw new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed');
    }
    let conn: Connection;
    try {
      conn = this.newConnection(socket, 'dialer', node.id);
    } catch (err) {
      // A bug, but not a reason to leave the socket open until the peer times it out.
      socket.destroy();
      throw err;
    }
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (conn.established) {
          cleanup();
          resolve();
        } else if (conn.closed) {
          cleanup();
          reject(
            conn.failure ??
              new SwitchboardError(
                ErrorCode.LINK,
                `connection to node ${node.id} closed during the handshake`,
              ),
          );
        }
      };
      const onClose = (): void => {
        // Let the connection's own close handler record the reason first.
        setImmediate(() => {
          cleanup();
          if (conn.established) resolve();
          else
            reject(
              conn.failure ??
                new SwitchboardError(
                  ErrorCode.LINK,
                  `connection to node ${node.id} closed during the handshake`,
                ),
            );
        });
      };
      const cleanup = (): void => {
        this.waiters.delete(check);
        socket.off('close', onClose);
      };
      this.waiters.add(check);
      socket.once('close', onClose);
      conn.start();
    }).catch((err: unknown) => {
      if (!signal.aborted) {
        const hungUp = conn.failure === undefined;
        const failure = err instanceof SwitchboardError ? err : undefined;
        this.linkFailures[node.id] = handshakeFailure(
          failure,
          node.id,
          'dialer',
          timeoutMs,
          hungUp,
        );
        this.wake();
      }
      throw err;
    });
  }

  // ---- timers ------------------------------------------------------------

  private tick(): void {
    const o = this.options;
    const now = this.now();
    for (const conn of this.pending) {
      if (now - conn.startedAt > o.handshakeTimeoutMs) {
        conn.fail(
          new HandshakeError(
            ErrorCode.HANDSHAKE_TIMEOUT,
            `handshake not finished within ${o.handshakeTimeoutMs} ms`,
            { state: conn.handshake.status },
          ),
        );
      }
    }
    for (const link of this.links) {
      if (link === undefined || link.session === undefined) continue;
      const conn = link.conn;
      const detector = this.detectors[link.peer];
      if (conn !== undefined && !conn.closed) {
        const silent = now - conn.lastReceived;
        const phi = detector?.phi(silent);
        // Under either detector a session ends only after deadPeerMs of
        // silence, the bound the peer's fence assumes (Link.confirmedUntil);
        // phi may only put it off, on a link whose heartbeats are irregular.
        if (silent > o.deadPeerMs && (phi === undefined || phi >= o.phi.threshold)) {
          // Bytes trickling in without ever completing a frame are no sign
          // of life: a slow-drip peer is a stalled reader's problem, not a
          // lost peer's, and is named as such.
          conn.fail(
            conn.midFrame
              ? new SwitchboardError(
                  ErrorCode.READ_STALL,
                  `node ${link.peer} stalled in the middle of a frame: none completed for ${Math.round(silent)} ms`,
                )
              : new SwitchboardError(
                  ErrorCode.PEER_LOST,
                  `node ${link.peer} sent nothing for ${Math.round(silent)} ms${phiText(phi)}`,
                ),
          );
          continue;
        }
        if (conn.drainWaitSince !== undefined && now - conn.drainWaitSince > o.writeStallMs) {
          conn.fail(
            new SwitchboardError(
              ErrorCode.WRITE_STALL,
              `socket to node ${link.peer} did not drain for ${o.writeStallMs} ms`,
            ),
          );
          continue;
        }
        const suspect =
          phi === undefined ? silent > 2 * o.heartbeatMs : phi >= o.phi.suspectThreshold;
        if (suspect && !link.suspect) {
          link.suspect = true;
          const reason = `silent for ${Math.round(silent)} ms${phiText(phi)}`;
          if (this.dialsPeer(link.peer) && !conn.midFrame) {
            // Proactive re-dial: drop the silent connection (onClosed reports
            // peer-suspect with this reason) and dial again now, rather than
            // wait on TCP's retransmission timers. The session stays: a live
            // peer resumes it and the replay fills the gap.
            conn.fail(new SwitchboardError(ErrorCode.LINK, `${reason}; redialing`));
            continue;
          }
          this.emit({ type: 'peer-suspect', node: link.peer, reason });
        }
        if (now - this.lastPing[link.peer]! >= o.heartbeatMs) {
          this.lastPing[link.peer] = now;
          link.ping(now);
        }
      } else {
        const silent = now - link.lastHeard;
        if (
          silent > o.deadPeerMs &&
          (detector === undefined || detector.phi(silent) >= o.phi.threshold)
        ) {
          const how =
            detector === undefined
              ? `no contact for ${o.deadPeerMs} ms`
              : `no contact for ${Math.round(silent)} ms${phiText(detector.phi(silent))}`;
          this.endSession(
            link,
            new PeerLostError(link.peer, `node ${link.peer} lost: ${how}`),
            'down',
          );
        }
      }
    }
    // Pickers prefer healthy peers: tell the channel layer when that changes
    // (checked here, off the frame path; a tick late at most).
    for (const link of this.links) {
      if (link === undefined) continue;
      const healthy = this.healthy(link.peer);
      if (healthy === this.wasHealthy[link.peer]) continue;
      this.wasHealthy[link.peer] = healthy;
      this.handler?.onHealth?.(link.peer);
    }
  }

  // ---- shutdown ----------------------------------------------------------

  private async shutdown(
    graceful: boolean,
    err?: Error,
    lingerMs = this.options.lingerMs,
  ): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    for (const w of [...this.waiters]) w();
    this.abort.abort(new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed'));
    const serverClosed = new Promise<void>((resolve) => {
      if (this.server === undefined) resolve();
      else this.server.close(() => resolve());
    });
    for (const conn of this.pending)
      conn.fail(new SwitchboardError(ErrorCode.CLOSED, 'switchboard closing'));
    if (graceful) await this.linger(lingerMs);
    const reason =
      err instanceof SwitchboardError
        ? err
        : new SwitchboardError(
            ErrorCode.CLOSED,
            'switchboard closed',
            err === undefined ? undefined : { cause: err },
          );
    const sockets: Array<Promise<void>> = [];
    for (const link of this.links) {
      const conn = link?.conn;
      if (link === undefined || conn === undefined || conn.closed) continue;
      sockets.push(new Promise((resolve) => conn.socket.once('close', () => resolve())));
      if (graceful) {
        // Our last delivery reports, then GOAWAY; the peer answers with its
        // own reports before it closes, so each side reports exactly what
        // the other did not take (docs/wire-protocol.md 6).
        this.handler?.finalReports?.(link.peer);
        link.flush();
        conn.goAway(GoAwayCode.SHUTDOWN, 'switchboard closing');
      } else {
        // Best effort: the peer then ends the session at once instead of
        // waiting out its dead-peer timeout.
        conn.fail(
          new SwitchboardError(ErrorCode.CLOSED, `switchboard destroyed: ${reason.message}`),
        );
      }
    }
    clearInterval(this.ticker);
    await Promise.all([serverClosed, ...sockets]);
    for (const link of this.links) {
      if (link === undefined || link.session === undefined) continue;
      link.endSession();
      this.handler?.onSessionEnd(
        link.peer,
        new PeerLostError(link.peer, `this node closed: ${reason.message}`, { cause: reason }),
      );
    }
    this.state = 'closed';
    this.events.complete();
  }

  /**
   * Waits, at most `lingerMs`, until every link's queued data is
   * acknowledged and every message sent is known delivered (the channel
   * layer's count), so that a clean close reports nothing delivered as not
   * delivered.
   */
  private async linger(lingerMs: number): Promise<void> {
    const deadline = this.now() + lingerMs;
    const busy = (): boolean =>
      this.links.some(
        (l) =>
          l !== undefined &&
          l.connected &&
          (l.bufferedBytes > 0 || (this.handler?.inflight?.(l.peer) ?? 0) > 0),
      );
    while (busy() && this.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private peerState(link: Link): PeerState {
    if (link.connected) return link.suspect ? 'suspect' : 'up';
    if (link.session !== undefined) return 'suspect';
    return this.ever[link.peer] === true ? 'down' : 'connecting';
  }
}

/** A definitive no from a member during the handshake: waiting longer will not help by itself. */
function isRefusal(err: Error | undefined): boolean {
  return (
    err instanceof HandshakeError &&
    err.state !== 'tls' &&
    (AUTH_CODES.has(err.code) || err.code === ErrorCode.CLIENT_LIMIT)
  );
}

/** ` (phi 8.3)` under the phi detector, nothing under the timeout. */
function phiText(phi: number | undefined): string {
  return phi === undefined ? '' : ` (phi ${phi === Infinity ? 'over 300' : phi.toFixed(1)})`;
}

function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}
