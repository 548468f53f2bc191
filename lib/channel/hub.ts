/**
 * The channel core of one switchboard: receivers and senders, the streams
 * between them (local, or over links), and what happens to each when a
 * peer's session starts, ends or goes stale. Every pattern is built on what
 * it hands out (docs/guide.md, "Patterns"):
 *
 * - endpoints: {@link ChannelHub.receiver}, {@link ChannelHub.sender},
 *   MPMC senders and receivers;
 * - the {@link Directory} of outlets, the {@link Picker}, the shared
 *   {@link Timeouts}, and {@link Envelope}s for values sent to many places;
 * - peer sessions through {@link PeerWatcher}: patterns never watch the
 *   public `events$`.
 *
 * Peer loss is handled here once: the messages in flight to a lost peer
 * are reported to their senders, the messages it had sent that were still
 * buffered are dropped (their sender reports them, so they must never be
 * handed out), and its directory entries go.
 *
 * One file because every frame type, every session event and every
 * endpoint table meet here; the pieces with a concern of their own
 * (directory, streams, picker, waits, queue, envelope) are their own files.
 */
import { debuglog } from 'node:util';
import type { PeerLostError } from '../errors.js';
import {
  DecodeError,
  ErrorCode,
  MessageTooLargeError,
  NotDeliveredError,
  OptionError,
  SwitchboardError,
} from '../errors.js';
import { decodeValue, encodeValue } from '../protocol/codec.js';
import type { CodecContext, HandleRef, PortableHandle } from '../protocol/codec.js';
import { FrameType } from '../protocol/frame.js';
import type { ClusterHandler, SwitchboardEvent } from '../switchboard/events.js';
import { Metrics } from '../switchboard/metrics.js';
import { CLIENT_HANDLE_BASE } from '../switchboard/nodes.js';
import type { NodeInfo } from '../switchboard/nodes.js';
import { Directory } from './directory.js';
import { decodeMessage, localValue, MessageEncoder } from './envelope.js';
import type { HeadField, LocalRule } from './envelope.js';
import { Picker } from './picker.js';
import { Receiver } from './receiver.js';
import type { ReceiverHooks, ReceiverHost, ReceiverOptions, ReceiverStats } from './receiver.js';
import { Sender } from './sender.js';
import type { SenderHooks, SenderHost, SenderOptions } from './sender.js';
import { LocalStream, RemoteInlet, RemoteOutlet, streamError } from './streams.js';
import type { StreamHost } from './streams.js';
import { Timeouts } from './waits.js';

const debug = debuglog('switchboard');

/** What the hub needs from the cluster layer. */
export interface HubTransport {
  readonly id: number;
  readonly nodes: readonly NodeInfo[];
  /**
   * Peers are numbered 0..peerCount-1: the nodes of the list, then clients
   * (docs/guide.md, "Clients"). Default `nodes.length`.
   */
  readonly peerCount?: number;
  /** The number `peer` knows this process by: its node id, or a client's number there. */
  selfFor?(peer: number): number;
  /** The node number handles to this process's receivers carry: its node id, or a client's handle id. */
  readonly handleSelf?: number;
  /**
   * The peer a handle's node number stands for here, -1 when none is
   * linked: node ids are themselves, client handle ids map to the client.
   */
  peerOfHandle?(node: number): number;
  /** True for a peer number this node gave a client. Default none. */
  isClient?(peer: number): boolean;
  /** This node's `maxMessageSize`, bytes. */
  readonly maxMessageSize: number;
  hasSession(peer: number): boolean;
  /** True while `peer` is connected and not suspect. */
  healthy(peer: number): boolean;
  writable(peer: number): boolean;
  /** The largest message `peer` accepts (its announced limit, and ours), bytes. */
  peerLimit(peer: number): number;
  /**
   * False when the session with `peer` may have been ended by the peer
   * (nothing confirmed it lately); a confirmation is then under way and
   * `onConfirmed` follows. Reads the clock.
   */
  fresh(peer: number): boolean;
  /**
   * Per peer, until when (`clockMs()` scale, lib/protocol/clock.ts) {@link fresh} is
   * certainly true; 0 when unknown. Read, never written, by this layer.
   */
  readonly leases: Float64Array;
  /** As {@link fresh}, at the time the bytes being handled now arrived (no clock read). */
  freshOnArrival(peer: number): boolean;
  /**
   * Application code ran synchronously while the bytes from `peer` were
   * being handled: {@link freshOnArrival} now reads the clock again.
   */
  ranSince(peer: number): void;
  /** `urgent`: written at once, not at the end of the turn (see Link.sendFrame). */
  sendFrame(
    peer: number,
    type: number,
    flags: number,
    stream: number,
    payload?: Uint8Array,
    urgent?: boolean,
  ): void;
  /** `owned`: the bytes are handed over and never change (else the link copies what it keeps). */
  sendMessage(
    peer: number,
    stream: number,
    flags: number,
    bytes: Uint8Array,
    owned: boolean,
    head?: readonly HeadField[],
  ): void;
  emit(event: SwitchboardEvent): void;
}

/** Options of the channel layer. */
export interface HubOptions {
  /** Encode and decode even when both ends are in this process (tests). Default false. */
  readonly forceEncoding?: boolean;
  /** Check local values against the encoding rule. Default true. */
  readonly checkLocalValues?: boolean;
}

/** A pattern's view of peer sessions. */
export interface PeerWatcher {
  /** A session with `node` began (first contact, or after a loss or a restart). */
  sessionStarted?(node: number): void;
  /**
   * The session with `node` ended: its outlets were reported already; what
   * it sent and the patterns still hold is the pattern's to settle.
   */
  sessionEnded?(node: number, error: PeerLostError): void;
  /** `node` became suspect or healthy again: work waiting for room elsewhere may go now. */
  healthChanged?(node: number): void;
}

const CONTROL_STREAM = 0;
/**
 * Longest a receiving node keeps a sender uninformed of deliveries that no
 * credit top-up carried: if the receiver's node then dies, only messages
 * delivered in this last stretch can be reported as not delivered.
 */
const DELIVERY_REPORT_MS = 10;
const MAX_PARKED = 4096;
/** Names of closed receivers remembered, so senders to them fail at once instead of waiting. */
const MAX_CLOSED_NAMES = 4096;

/**
 * What a client may offer in the directory: its subscriptions (the pub-sub
 * pattern's kind, PUBSUB_KIND). Serving, working and MPMC receivers are
 * for members: a client's offer of them is refused (docs/guide.md, "Clients").
 */
const CLIENT_MAY_OFFER: ReadonlySet<string> = new Set(['pubsub']);

/** Kinds of handles on the wire. */
const HandleKind = { MPSC: 'mpsc', MPMC_ONE: 'mpmc-one', MPMC_ALL: 'mpmc-all' } as const;

/** The channel layer of one switchboard. */
export class ChannelHub
  implements ClusterHandler, CodecContext, ReceiverHost, SenderHost, StreamHost
{
  readonly timeouts = new Timeouts();
  /** Latency histograms and message counts the patterns record (lib/switchboard/metrics.ts). */
  readonly metrics = new Metrics();
  readonly picker: Picker;
  readonly directory: Directory;
  readonly encoder = new MessageEncoder();
  readonly leases: Float64Array;
  /** Drops counted per channel name. */
  readonly drops = new Map<string, number>();
  readonly forceEncoding: boolean;
  readonly ownLimit: number;
  private readonly local: LocalRule;
  private readonly receivers = new Map<number, Receiver<unknown>>();
  private readonly named = new Map<string, Receiver<unknown>>();
  private readonly closedNames = new Set<string>();
  private nextReceiverId = 1;
  private readonly outStreams: Array<Map<number, RemoteOutlet>>;
  private readonly inStreams: Array<Map<number, RemoteInlet>>;
  private readonly nextStream: number[];
  private readonly parked = new Map<string, Array<RemoteInlet | LocalStream>>();
  private parkedCount = 0;
  /** Named single-target senders waiting for their peer's session to (re)start. */
  private readonly rebind: Array<Set<Sender<unknown>>>;
  private readonly mpmcSenders = new Map<string, Set<Sender<unknown>>>();
  private readonly senders = new Set<Sender<unknown>>();
  /** Receivers with handles out on other nodes, not yet used there. */
  private readonly shippers = new Set<Receiver<unknown>>();
  private readonly watchers = new Set<PeerWatcher>();
  private state: 'open' | 'stopping' | 'closed' = 'open';
  /** Inlets whose delivered count the sender has not heard yet. */
  private reports: RemoteInlet[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  private readonly sendReports = (): void => {
    this.reportTimer = undefined;
    const due = this.reports;
    this.reports = [];
    for (const inlet of due) inlet.report();
  };

  constructor(
    /** The cluster layer underneath. */
    readonly transport: HubTransport,
    options: HubOptions = {},
  ) {
    const n = transport.peerCount ?? transport.nodes.length;
    this.peerCount = n;
    this.leases = transport.leases;
    this.outStreams = Array.from({ length: n }, () => new Map<number, RemoteOutlet>());
    this.inStreams = Array.from({ length: n }, () => new Map<number, RemoteInlet>());
    this.nextStream = new Array<number>(n).fill(1);
    this.rebind = Array.from({ length: n }, () => new Set<Sender<unknown>>());
    this.forceEncoding = options.forceEncoding === true;
    this.ownLimit = transport.maxMessageSize;
    this.local = {
      forceEncoding: this.forceEncoding,
      check: options.checkLocalValues !== false,
      maxMessageSize: this.ownLimit,
      self: transport.id,
    };
    this.picker = new Picker({
      healthy: (node) => node === transport.id || transport.healthy(node),
    });
    this.directory = new Directory({
      self: transport.id,
      nodeCount: n,
      hasSession: (p) => transport.hasSession(p),
      sendControl: (p, payload) =>
        transport.sendFrame(p, FrameType.CONTROL, 0, CONTROL_STREAM, payload),
      malformed: (_p, error) => transport.emit({ type: 'error', error }),
      mayAnnounce: (p, kind) => transport.isClient?.(p) !== true || CLIENT_MAY_OFFER.has(kind),
    });
  }

  /** Peers are 0..peerCount-1: the nodes, then the clients linked to this process. */
  readonly peerCount: number;

  /** The number `peer` knows this process by (a client has one per member). */
  selfFor(peer: number): number {
    return this.transport.selfFor?.(peer) ?? this.transport.id;
  }

  /** The node number in handles to this process's own receivers. */
  get handleSelf(): number {
    return this.transport.handleSelf ?? this.transport.id;
  }

  /** The peer index a handle's node number names here; -1 when it names nobody linked. */
  private peerOf(node: number): number {
    // Node ids, and the numbers this process gave its clients (patterns
    // address a caller by them; handles never carry them: reviveHandle).
    if (node < this.peerCount) return node;
    if (node === this.handleSelf) return this.self;
    return this.transport.peerOfHandle?.(node) ?? -1;
  }

  get self(): number {
    return this.transport.id;
  }

  /** The node list. */
  get nodes(): readonly NodeInfo[] {
    return this.transport.nodes;
  }

  /** True once the switchboard began closing. */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /**
   * True from the first step of a close (patterns draining, endpoints still
   * working): what then fails for want of this node's own services fails
   * because of the close.
   */
  closing = false;

  // ---- endpoints ---------------------------------------------------------

  /** A receiver on this node: named (unique per node) or anonymous. */
  receiver<T>(
    name: string | undefined,
    options: ReceiverOptions<T> = {},
    defaultExpect = Number.POSITIVE_INFINITY,
    hooks?: ReceiverHooks,
  ): Receiver<T> {
    this.assertOpen();
    if (name !== undefined) {
      if (typeof name !== 'string' || name.length === 0)
        throw new OptionError('name', 'must be a non-empty string');
      if (this.named.has(name))
        throw new OptionError(
          'name',
          `a receiver named "${name}" already exists on node ${this.self}`,
        );
    }
    const id = this.nextReceiverId++;
    const r = new Receiver<T>(name ?? `#${id}`, id, this.self, this, options, defaultExpect, hooks);
    const any = r as Receiver<unknown>;
    this.receivers.set(id, any);
    if (name !== undefined) {
      this.named.set(name, any);
      this.closedNames.delete(name);
      const waiting = this.parked.get(name);
      if (waiting !== undefined) {
        this.parked.delete(name);
        this.parkedCount -= waiting.length;
        for (const inlet of waiting) {
          if (inlet instanceof RemoteInlet) inlet.receiver = any;
          else inlet.bind(any);
          any.attach(inlet);
        }
      }
    }
    return r;
  }

  /** A sender to the receiver `name` (or id) on `node`. */
  sender<T>(
    target: { node: number; name?: string; id?: number },
    options: SenderOptions<T> = {},
    hooks?: SenderHooks,
  ): Sender<T> {
    this.assertOpen();
    const node = target.node;
    // Named receivers live on nodes of the list only. By id, patterns also
    // address the clients linked here (peerCount) and this process's own
    // receivers by their handle number.
    const limit = target.name !== undefined ? this.nodes.length : this.peerCount;
    if (
      !Number.isInteger(node) ||
      node < 0 ||
      (node >= limit && (target.name !== undefined || node !== this.handleSelf))
    ) {
      throw new OptionError(
        'node',
        `must be a node index (0..${this.nodes.length - 1}), got ${String(node)}`,
      );
    }
    if (target.name !== undefined && (typeof target.name !== 'string' || target.name.length === 0))
      throw new OptionError('name', 'must be a non-empty string');
    const ref: HandleRef =
      target.name !== undefined
        ? { kind: HandleKind.MPSC, node, id: 0, name: target.name }
        : { kind: HandleKind.MPSC, node, id: target.id ?? 0 };
    return this.track(new Sender<T>(this, ref, 'single', options, hooks));
  }

  /** A sender to every (`all`) or any one (`one`) receiver of the MPMC channel `name`. */
  mpmcSender<T>(name: string, mode: 'one' | 'all', options: SenderOptions<T> = {}): Sender<T> {
    this.assertOpen();
    if (typeof name !== 'string' || name.length === 0)
      throw new OptionError('name', 'must be a non-empty string');
    if (mode !== 'one' && mode !== 'all') throw new OptionError('mode', 'must be "one" or "all"');
    const ref: HandleRef = {
      kind: mode === 'all' ? HandleKind.MPMC_ALL : HandleKind.MPMC_ONE,
      node: 0,
      id: 0,
      name,
    };
    return this.track(new Sender<T>(this, ref, mode, options));
  }

  /** A receiver of the MPMC channel `name`, announced cluster-wide. */
  mpmcReceiver<T>(name: string, options: ReceiverOptions<T> = {}): Receiver<T> {
    if (typeof name !== 'string' || name.length === 0)
      throw new OptionError('name', 'must be a non-empty string');
    const r = this.receiver<T>(undefined, options);
    this.directory.announce('mpmc', name, r.id, null);
    return r;
  }

  /** Watches peer sessions (patterns); returns the unsubscribe. */
  watchPeers(w: PeerWatcher): () => void {
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** True when `node` is this node or a connected, non-suspect peer. */
  healthy(node: number): boolean {
    return node === this.self || this.transport.healthy(node);
  }

  // ---- ClusterHandler ----------------------------------------------------

  onMessage(peer: number, stream: number, flags: number, message: Buffer): void {
    const inlet = this.inStreams[peer]!.get(stream);
    if (inlet === undefined || inlet.receiver === undefined || inlet.closing) return;
    const r = inlet.receiver;
    inlet.received++;
    if (!r.withinCredit(inlet)) {
      // The peer ignores flow control: end this stream, keep the link.
      this.inStreams[peer]!.delete(stream);
      r.detach(inlet);
      const err = new SwitchboardError(
        ErrorCode.PROTOCOL,
        `node ${peer} sent beyond its credit on ${r.name}; stream closed`,
      );
      inlet.end(err);
      this.transport.emit({ type: 'link-error', node: peer, error: err });
      return;
    }
    if (message.length > this.ownLimit) {
      r.reject(
        inlet,
        message.length,
        new MessageTooLargeError(this.self, message.length, this.ownLimit, `receiver ${r.name}`),
      );
      return;
    }
    let value: unknown;
    try {
      value = decodeMessage(flags, message, this);
    } catch (err) {
      r.reject(
        inlet,
        message.length,
        err instanceof SwitchboardError ? err : new DecodeError(String(err), { cause: err }),
      );
      return;
    }
    // A subscriber that took it synchronously may have run for any time (a
    // stall inside its callback): the next message of this chunk is judged
    // by the clock, not by when the chunk was read.
    if (r.push(value, inlet, message.length, this.transport.freshOnArrival(peer)))
      this.transport.ranSince(peer);
  }

  /** A message the link refused to reassemble: larger than this node's maxMessageSize. */
  onOversize(peer: number, stream: number, size: number): void {
    const inlet = this.inStreams[peer]!.get(stream);
    if (inlet === undefined || inlet.receiver === undefined || inlet.closing) return;
    inlet.received++;
    inlet.receiver.reject(
      inlet,
      0,
      new MessageTooLargeError(this.self, size, this.ownLimit, `receiver ${inlet.receiver.name}`),
    );
  }

  onControl(peer: number, type: number, _flags: number, stream: number, payload: Buffer): void {
    switch (type) {
      case FrameType.OPEN:
        return this.onOpen(peer, stream, payload);
      case FrameType.CREDIT: {
        const o = this.outStreams[peer]!.get(stream);
        if (o === undefined || payload.length !== 16) return;
        const delivered = payload.readUInt32BE(8) * 0x1_0000_0000 + payload.readUInt32BE(12);
        o.onCredit(payload.readUInt32BE(0), payload.readUInt32BE(4), delivered);
        return;
      }
      case FrameType.CLOSE:
        if (openedBy(this.self, peer, stream)) {
          const o = this.outStreams[peer]!.get(stream);
          if (o !== undefined)
            this.outletEnded(
              o,
              streamError(payload, ErrorCode.NO_RECEIVER, 'receiver closed', decodeQuiet).error,
            );
        } else {
          const inlet = this.inStreams[peer]!.get(stream);
          if (inlet === undefined || inlet.closing) return;
          if (inlet.receiver === undefined) {
            this.inStreams[peer]!.delete(stream);
            this.unpark(inlet);
            return;
          }
          inlet.receiver.detach(inlet);
          // Kept until the receiver has finished with what it buffered: the sender still counts it.
          inlet.senderClosed();
        }
        return;
      case FrameType.ERROR: {
        const o = this.outStreams[peer]!.get(stream);
        if (o === undefined) return;
        const { error, seq } = streamError(
          payload,
          ErrorCode.DECODE,
          'message refused',
          decodeQuiet,
        );
        o.onRefused(error, seq);
        return;
      }
      case FrameType.CONTROL:
        return this.directory.onControl(peer, payload);
      default:
        return;
    }
  }

  onWritable(peer: number): void {
    const seen = new Set<Sender<unknown>>();
    for (const o of this.outStreams[peer]!.values()) {
      if (seen.has(o.sender)) continue;
      seen.add(o.sender);
      o.sender.pump();
    }
  }

  onSessionStart(peer: number): void {
    this.directory.sessionStarted(peer);
    const waiting = [...this.rebind[peer]!];
    this.rebind[peer]!.clear();
    for (const s of waiting) if (!s.closed) this.connectSingle(s);
    for (const w of [...this.watchers]) w.sessionStarted?.(peer);
  }

  onSessionEnd(peer: number, reason: PeerLostError): void {
    debug('node %d: session with %d ended: %s', this.self, peer, reason.message);
    const lost = new NotDeliveredError(peer, reason.message, { cause: reason });
    // First, before any callback runs: nothing buffered from the ended session goes out.
    for (const inlet of this.inStreams[peer]!.values()) inlet.sessionEnded = true;
    const outs = [...this.outStreams[peer]!.values()];
    this.outStreams[peer]!.clear();
    for (const o of outs) this.outletEnded(o, lost, true);
    this.directory.sessionEnded(peer);
    for (const w of [...this.watchers]) w.sessionEnded?.(peer, reason);
    const ins = [...this.inStreams[peer]!.values()];
    this.inStreams[peer]!.clear();
    const quiet = this.state !== 'open';
    for (const inlet of ins) {
      if (inlet.receiver === undefined) this.unpark(inlet);
      else inlet.receiver.lost(inlet, reason, quiet);
    }
    for (const r of [...this.shippers]) {
      if (quiet) break;
      r.nodeLost(peer, reason);
    }
  }

  onHealth(peer: number): void {
    // MPMC senders pick among their outlets by health; patterns pick by their own.
    for (const set of this.mpmcSenders.values()) for (const s of set) s.pump();
    for (const w of [...this.watchers]) w.healthChanged?.(peer);
  }

  /** A stale session with `peer` was confirmed: held messages may go. */
  onConfirmed(peer: number): void {
    debug('node %d: session with %d confirmed', this.self, peer);
    for (const r of this.receivers.values()) r.release();
  }

  /**
   * `peer` is closing gracefully (its GOAWAY came), or this node is: tell it
   * exactly what was delivered of its streams, so that it reports only the
   * rest. Buffered messages from it are dropped by the session's end.
   */
  finalReports(peer: number): void {
    for (const inlet of this.inStreams[peer]!.values()) inlet.report();
  }

  // ---- CodecContext ------------------------------------------------------

  reviveHandle(ref: HandleRef): unknown {
    // Between the node ids and the client handle ids lie the numbers each
    // process gives its clients: they mean nothing elsewhere, so never travel.
    if (ref.node >= this.nodes.length && ref.node < CLIENT_HANDLE_BASE)
      throw new DecodeError(`handle names node ${ref.node}, which is not in the node list`);
    switch (ref.kind) {
      case HandleKind.MPSC:
        return userSender(this.track(new Sender(this, ref, 'single')));
      case HandleKind.MPMC_ONE:
      case HandleKind.MPMC_ALL:
        if (ref.name === undefined) throw new DecodeError('MPMC handle without a name');
        return userSender(
          this.track(new Sender(this, ref, ref.kind === HandleKind.MPMC_ALL ? 'all' : 'one')),
        );
      default:
        throw new DecodeError(`unknown handle kind "${ref.kind}"`);
    }
  }

  // ---- SenderHost / ReceiverHost / StreamHost ----------------------------

  connect(sender: Sender<unknown>): void {
    if (sender.mode === 'single') {
      this.connectSingle(sender);
      return;
    }
    const name = sender.target.name!;
    let set = this.mpmcSenders.get(name);
    if (set === undefined) {
      this.mpmcSenders.set(name, (set = new Set()));
      this.directory.watch('mpmc', name, () => this.refreshMpmc(name));
    }
    set.add(sender);
    this.refreshMpmcSender(sender);
  }

  senderClosed(sender: Sender<unknown>): void {
    this.senders.delete(sender);
    for (const set of this.rebind) set.delete(sender);
    if (sender.mode !== 'single') this.mpmcSenders.get(sender.target.name!)?.delete(sender);
  }

  receiverClosed(receiver: Receiver<unknown>): void {
    this.receivers.delete(receiver.id);
    this.shippers.delete(receiver);
    if (this.named.get(receiver.name) === receiver) {
      this.named.delete(receiver.name);
      this.closedNames.add(receiver.name);
      if (this.closedNames.size > MAX_CLOSED_NAMES)
        this.closedNames.delete(this.closedNames.values().next().value!);
    }
    this.directory.withdrawReceiver(receiver.id);
  }

  reportDrop(channel: string, count: number, reason: string): void {
    this.drops.set(channel, (this.drops.get(channel) ?? 0) + count);
    this.transport.emit({ type: 'drop', channel, count, reason });
  }

  writable(peer: number): boolean {
    return this.transport.writable(peer);
  }

  peerLimit(peer: number): number {
    return this.transport.peerLimit(peer);
  }

  fresh(peer: number): boolean {
    return this.transport.fresh(peer);
  }

  sendFrame(
    peer: number,
    type: number,
    stream: number,
    payload?: Uint8Array,
    urgent?: boolean,
  ): void {
    this.transport.sendFrame(peer, type, 0, stream, payload, urgent);
  }

  sendMessage(
    peer: number,
    stream: number,
    flags: number,
    bytes: Uint8Array,
    owned: boolean,
    head?: readonly HeadField[],
  ): void {
    this.transport.sendMessage(peer, stream, flags, bytes, owned, head);
  }

  reportSoon(inlet: RemoteInlet): void {
    this.reports.push(inlet);
    if (this.reportTimer === undefined) {
      this.reportTimer = setTimeout(this.sendReports, DELIVERY_REPORT_MS);
      this.reportTimer.unref();
    }
  }

  shipped(peer: number, handles: readonly PortableHandle[]): void {
    for (const h of handles) {
      if (!(h instanceof Sender) || h.mode !== 'single') continue;
      const t = h.target;
      if (this.peerOf(t.node) !== this.self) continue;
      const r = t.name !== undefined ? this.named.get(t.name) : this.receivers.get(t.id);
      if (r === undefined) continue;
      r.shippedTo(peer);
      this.shippers.add(r);
    }
  }

  outletDone(outlet: RemoteOutlet | LocalStream): void {
    if (outlet instanceof RemoteOutlet) {
      if (this.outStreams[outlet.node]!.get(outlet.stream) === outlet)
        this.outStreams[outlet.node]!.delete(outlet.stream);
    } else if (outlet.receiver === undefined) {
      this.unpark(outlet);
    }
    outlet.sender.outletSettled();
  }

  inletDone(inlet: RemoteInlet): void {
    if (this.inStreams[inlet.node]!.get(inlet.stream) === inlet)
      this.inStreams[inlet.node]!.delete(inlet.stream);
  }

  localValue(value: unknown): unknown {
    return localValue(value, this.local, this);
  }

  /** An outlet can no longer deliver: report what it had in flight and tell its sender. */
  outletEnded(o: RemoteOutlet | LocalStream, error: SwitchboardError, sessionLost = false): void {
    const wasClosing = o.state === 'closing';
    const inflight = o.terminate(error);
    if (o instanceof RemoteOutlet && this.outStreams[o.node]!.get(o.stream) === o)
      this.outStreams[o.node]!.delete(o.stream);
    const s = o.sender;
    if (typeof inflight === 'number') s.lost(inflight, error);
    else s.undelivered(inflight, error);
    if (wasClosing || s.finished) {
      s.outletSettled();
      return;
    }
    if (sessionLost) s.lostBy = error.cause instanceof SwitchboardError ? error.cause : error;
    if (s.mode !== 'single') {
      s.outlets = s.outlets.filter((x) => x !== o);
      s.pump();
      return;
    }
    if (sessionLost && s.target.name !== undefined) {
      // A named receiver can be reached again once its node is back.
      s.outlets = [];
      this.rebind[o.node]!.add(s);
      return;
    }
    // This node is closing: its own senders end because of that.
    s.fail(
      this.state === 'open'
        ? error
        : new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed', { cause: error }),
    );
  }

  // ---- stats and lifecycle -------------------------------------------------

  /** Per-receiver counters. */
  receiverStats(): ReceiverStats[] {
    return [...this.receivers.values()].map((r) => r.stats());
  }

  /** Open streams per peer (for stats). */
  streamCounts(): Array<{ node: number; out: number; in: number }> {
    return this.outStreams.map((m, node) => ({
      node,
      out: m.size,
      in: this.inStreams[node]!.size,
    }));
  }

  /** Messages sent to `peer` that it has not reported finished with. */
  inflight(peer: number): number {
    let n = 0;
    for (const o of this.outStreams[peer]!.values()) n += o.inflight;
    return n;
  }

  /**
   * The switchboard is closing: from now on the sessions that end are ours
   * to end (receivers do not fail because of them), and no endpoint can be made.
   */
  stopping(): void {
    if (this.state === 'open') this.state = 'stopping';
  }

  /**
   * Ends every endpoint. Graceful (`close()`): receivers end (`done`).
   * Otherwise (`destroy()`): receivers fail with `reason`. Senders fail
   * with `reason` either way.
   */
  shutdown(reason: SwitchboardError, graceful: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    // Receivers first: what they buffered goes back to its local senders,
    // which report it before they fail.
    for (const r of [...this.receivers.values()]) {
      if (graceful) r.close();
      else r.fail(reason);
    }
    for (const s of [...this.senders]) s.fail(reason);
    clearTimeout(this.reportTimer);
    this.reports = [];
    this.timeouts.clear();
  }

  // ---- internals ---------------------------------------------------------

  private track<T>(s: Sender<T>): Sender<T> {
    this.senders.add(s);
    return s;
  }

  private connectSingle(sender: Sender<unknown>): void {
    const t = sender.target;
    const node = this.peerOf(t.node);
    if (node < 0) {
      // A client's receiver, and that client is not linked to this node.
      this.noReceiver(sender, `receiver #${t.id} is on a client not linked to node ${this.self}`);
      return;
    }
    if (node === this.self) {
      const r = t.name !== undefined ? this.named.get(t.name) : this.receivers.get(t.id);
      const stream = new LocalStream(sender, this);
      sender.outlets = [stream];
      if (r !== undefined) {
        stream.bind(r);
        r.attach(stream);
      } else if (t.name !== undefined && !this.closedNames.has(t.name)) {
        this.park(t.name, stream);
      } else {
        stream.end(
          new SwitchboardError(
            ErrorCode.NO_RECEIVER,
            t.name !== undefined
              ? `receiver "${t.name}" on node ${t.node} is closed`
              : `no receiver #${t.id} on node ${t.node}`,
          ),
        );
      }
      return;
    }
    if (!this.transport.hasSession(node) && node >= this.nodes.length) {
      // A client's number without a session names nobody: that client is
      // gone for good (a reconnecting one keeps its session), and the
      // number may go to another client next.
      this.noReceiver(sender, `receiver #${t.id} was on a client that left node ${this.self}`);
      return;
    }
    if (!this.transport.hasSession(node)) {
      // Buffer (bounded by the sender's maxPending) until the peer links.
      sender.outlets = [];
      this.rebind[node]!.add(sender);
      return;
    }
    sender.outlets = [this.openRemote(sender, node, t.id, t.name)];
  }

  /** Ends `sender` as a sender to a receiver that does not exist (ERR_SB_NO_RECEIVER). */
  private noReceiver(sender: Sender<unknown>, message: string): void {
    const stream = new LocalStream(sender, this);
    sender.outlets = [stream];
    stream.end(new SwitchboardError(ErrorCode.NO_RECEIVER, message));
  }

  private openRemote(
    sender: Sender<unknown>,
    node: number,
    id: number,
    name: string | undefined,
  ): RemoteOutlet {
    const stream = this.allocStream(node);
    const o = new RemoteOutlet(this, sender, node, id, stream);
    sender.lostBy = undefined;
    this.outStreams[node]!.set(stream, o);
    this.transport.sendFrame(
      node,
      FrameType.OPEN,
      0,
      stream,
      encodeValue(name !== undefined ? { name } : { id }),
    );
    return o;
  }

  private refreshMpmc(name: string): void {
    for (const s of this.mpmcSenders.get(name) ?? []) this.refreshMpmcSender(s);
  }

  /** Makes an MPMC sender's outlets match the directory: one per receiver. */
  private refreshMpmcSender(sender: Sender<unknown>): void {
    if (sender.closed) return;
    const entries = this.directory.lookup('mpmc', sender.target.name!);
    const want = new Set(entries.map((e) => `${e.node}:${e.id}`));
    const keep: Array<RemoteOutlet | LocalStream> = [];
    for (const o of sender.outlets as Array<RemoteOutlet | LocalStream>) {
      const key = `${o.node}:${o.receiverId}`;
      if (want.has(key) && o.state !== 'closed' && o.state !== 'closing') {
        keep.push(o);
        want.delete(key);
      } else if (o.state !== 'closed') {
        o.close();
      }
    }
    for (const e of entries) {
      if (!want.has(`${e.node}:${e.id}`)) continue;
      if (e.node === this.self) {
        const r = this.receivers.get(e.id);
        if (r === undefined) continue;
        const stream = new LocalStream(sender, this);
        stream.bind(r);
        keep.push(stream);
        sender.outlets = keep;
        r.attach(stream);
      } else if (this.transport.hasSession(e.node)) {
        keep.push(this.openRemote(sender, e.node, e.id, undefined));
      }
    }
    sender.outlets = keep;
    sender.pump();
  }

  private onOpen(peer: number, stream: number, payload: Buffer): void {
    let target: { id?: unknown; name?: unknown };
    try {
      const decoded = decodeValue(payload);
      if (typeof decoded !== 'object' || decoded === null)
        throw new DecodeError('OPEN is not a map');
      target = decoded;
    } catch {
      this.transport.sendFrame(
        peer,
        FrameType.CLOSE,
        0,
        stream,
        encodeValue({ code: ErrorCode.DECODE, message: 'bad OPEN' }),
      );
      return;
    }
    const inlet = new RemoteInlet(this, peer, stream);
    this.inStreams[peer]!.set(stream, inlet);
    const refuse = (message: string): void => {
      this.inStreams[peer]!.delete(stream);
      inlet.end(new SwitchboardError(ErrorCode.NO_RECEIVER, message));
    };
    if (typeof target.name === 'string') {
      const r = this.named.get(target.name);
      if (r !== undefined) {
        inlet.receiver = r;
        r.attach(inlet);
      } else if (this.closedNames.has(target.name)) {
        refuse(`receiver "${target.name}" on node ${this.self} is closed`);
      } else if (this.parkedCount < MAX_PARKED) {
        this.park(target.name, inlet);
      } else {
        refuse(`too many senders waiting for receivers on node ${this.self}`);
      }
      return;
    }
    const r = typeof target.id === 'number' ? this.receivers.get(target.id) : undefined;
    if (r === undefined) return refuse(`no receiver #${String(target.id)} on node ${this.self}`);
    inlet.receiver = r;
    r.attach(inlet);
  }

  private park(name: string, inlet: RemoteInlet | LocalStream): void {
    let list = this.parked.get(name);
    if (list === undefined) this.parked.set(name, (list = []));
    list.push(inlet);
    this.parkedCount++;
  }

  private unpark(inlet: RemoteInlet | LocalStream): void {
    if (inlet.receiver !== undefined) return;
    for (const [name, list] of this.parked) {
      const at = list.indexOf(inlet);
      if (at >= 0) {
        list.splice(at, 1);
        this.parkedCount--;
        if (list.length === 0) this.parked.delete(name);
        return;
      }
    }
  }

  private allocStream(peer: number): number {
    const n = this.nextStream[peer]!;
    this.nextStream[peer] = n >= 0x7fff_ffff ? 1 : n + 1;
    return ((this.self > peer ? 0x8000_0000 : 0) | n) >>> 0;
  }

  private assertOpen(): void {
    if (this.state === 'closed')
      throw new SwitchboardError(ErrorCode.CLOSED, 'switchboard is closed');
  }
}

/** True if `stream` on the link to `peer` was opened by this node (the top bit says which side opened it). */
function openedBy(self: number, peer: number, stream: number): boolean {
  return stream >>> 31 === (self > peer ? 1 : 0);
}

function decodeQuiet(b: Buffer): unknown {
  return decodeValue(b);
}

/** A sender that reached the application inside a message: traced and unwrapped as one it made. */
function userSender<T>(s: Sender<T>): Sender<T> {
  s.user = true;
  return s;
}
