import { debuglog } from 'node:util';
import {
  DecodeError,
  ErrorCode,
  NotDeliveredError,
  OptionError,
  SwitchboardError,
} from '../errors.js';
import { decodeValue, encodeValue } from '../protocol/codec.js';
import type { CodecContext, HandleRef } from '../protocol/codec.js';
import { FrameFlag, FrameType } from '../protocol/frame.js';
import type { ClusterHandler, SwitchboardEvent } from '../switchboard/cluster.js';
import type { NodeInfo } from '../switchboard/nodes.js';
import { Receiver, UNLIMITED_CREDIT } from './receiver.js';
import type { Inlet, ReceiverHost, ReceiverOptions, ReceiverStats } from './receiver.js';
import { Ring } from './ring.js';
import { Sender } from './sender.js';
import type { Outlet, SenderHost, SenderOptions } from './sender.js';

const debug = debuglog('switchboard');

/** What the hub needs from the cluster layer. */
export interface HubTransport {
  readonly id: number;
  readonly nodes: readonly NodeInfo[];
  hasSession(peer: number): boolean;
  writable(peer: number): boolean;
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
  sendMessage(peer: number, stream: number, flags: number, bytes: Uint8Array, owned: boolean): void;
  emit(event: SwitchboardEvent): void;
}

/** A directory entry: something a node offers under a name (an MPMC receiver, an RPC method, a subscription...). */
export interface DirectoryEntry {
  readonly node: number;
  readonly kind: string;
  readonly name: string;
  /** The receiver that serves it on `node`. */
  readonly id: number;
  readonly meta: unknown;
}

/** Options of the channel layer. */
export interface HubOptions {
  /** Encode and decode even when both ends are in this process (tests). Default false. */
  readonly forceEncoding?: boolean;
}

const CONTROL_STREAM = 0;
/**
 * Longest a receiving node keeps a sender uninformed of deliveries that no
 * credit top-up carried: if the receiver's node then dies, only messages
 * delivered in this last stretch can be reported as not delivered.
 */
const DELIVERY_REPORT_MS = 10;
const MAX_PARKED = 4096;

/** Kinds of handles on the wire. */
const HandleKind = { MPSC: 'mpsc', MPMC_ONE: 'mpmc-one', MPMC_ALL: 'mpmc-all' } as const;

/**
 * The channel layer of one switchboard: receivers and senders, the streams
 * between them (local or over links), credit, the directory of named
 * offerings, and what happens to each when a peer's session ends.
 */
export class ChannelHub implements ClusterHandler, CodecContext, ReceiverHost, SenderHost {
  private readonly receivers = new Map<number, Receiver<unknown>>();
  private readonly named = new Map<string, Receiver<unknown>>();
  private nextReceiverId = 1;
  private readonly outStreams: Array<Map<number, RemoteOutlet>>;
  private readonly inStreams: Array<Map<number, RemoteInlet>>;
  private readonly nextStream: number[];
  private readonly parked = new Map<string, Array<RemoteInlet | LocalStream>>();
  private parkedCount = 0;
  /** Named single-target senders waiting for their peer's session to (re)start. */
  private readonly rebind: Array<Set<Sender<unknown>>>;
  private readonly mpmcSenders = new Map<string, Set<Sender<unknown>>>();
  private readonly directory = new Map<string, Map<string, DirectoryEntry>>();
  private readonly local = new Map<string, DirectoryEntry>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly forceEncoding: boolean;
  private readonly senders = new Set<Sender<unknown>>();
  private closed = false;
  /** Inlets whose delivered count the sender has not heard yet. */
  private reports: RemoteInlet[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  private readonly sendReports = (): void => {
    this.reportTimer = undefined;
    const due = this.reports;
    this.reports = [];
    if (this.closed) return;
    for (const inlet of due) inlet.report();
  };
  private readonly reportSoon = (inlet: RemoteInlet): void => {
    this.reports.push(inlet);
    if (this.reportTimer === undefined) {
      this.reportTimer = setTimeout(this.sendReports, DELIVERY_REPORT_MS);
      this.reportTimer.unref();
    }
  };
  /** Drops counted per channel name. */
  readonly drops = new Map<string, number>();

  constructor(
    /** The cluster layer underneath. */
    readonly transport: HubTransport,
    options: HubOptions = {},
  ) {
    const n = transport.nodes.length;
    this.outStreams = Array.from({ length: n }, () => new Map<number, RemoteOutlet>());
    this.inStreams = Array.from({ length: n }, () => new Map<number, RemoteInlet>());
    this.nextStream = new Array<number>(n).fill(1);
    this.rebind = Array.from({ length: n }, () => new Set<Sender<unknown>>());
    this.forceEncoding = options.forceEncoding === true;
  }

  get self(): number {
    return this.transport.id;
  }

  // ---- endpoints ---------------------------------------------------------

  /** A receiver on this node: named (unique per node) or anonymous. */
  receiver<T>(
    name: string | undefined,
    options: ReceiverOptions<T> = {},
    defaultExpect = Number.POSITIVE_INFINITY,
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
    const r = new Receiver<T>(name ?? `#${id}`, id, this.self, this, options, defaultExpect);
    this.receivers.set(id, r as Receiver<unknown>);
    if (name !== undefined) {
      this.named.set(name, r as Receiver<unknown>);
      const waiting = this.parked.get(name);
      if (waiting !== undefined) {
        this.parked.delete(name);
        this.parkedCount -= waiting.length;
        for (const inlet of waiting) {
          if (inlet instanceof RemoteInlet) inlet.receiver = r as Receiver<unknown>;
          else inlet.bind(r as Receiver<unknown>);
          r.attach(inlet);
        }
      }
    }
    return r;
  }

  /** A sender to the receiver `name` (or id) on `node`. */
  sender<T>(
    target: { node: number; name?: string; id?: number },
    options: SenderOptions<T> = {},
  ): Sender<T> {
    this.assertOpen();
    const node = target.node;
    if (!Number.isInteger(node) || node < 0 || node >= this.transport.nodes.length) {
      throw new OptionError(
        'node',
        `must be a node index (0..${this.transport.nodes.length - 1}), got ${String(node)}`,
      );
    }
    const ref: HandleRef =
      target.name !== undefined
        ? { kind: HandleKind.MPSC, node, id: 0, name: target.name }
        : { kind: HandleKind.MPSC, node, id: target.id ?? 0 };
    return this.track(new Sender<T>(this, ref, 'single', options));
  }

  /** A sender to every (`all`) or any one (`one`) receiver of the MPMC channel `name`. */
  mpmcSender<T>(name: string, mode: 'one' | 'all', options: SenderOptions<T> = {}): Sender<T> {
    this.assertOpen();
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
    const r = this.receiver<T>(undefined, options);
    this.announce('mpmc', name, r.id, null);
    return r;
  }

  // ---- directory ---------------------------------------------------------

  /** Offers `(kind, name)` served by local receiver `id`, to every node. */
  announce(kind: string, name: string, id: number, meta: unknown): void {
    const e: DirectoryEntry = { node: this.self, kind, name, id, meta };
    this.local.set(entryKey(kind, name, this.self, id), e);
    this.applyEntry(e, true);
    const payload = encodeValue({ op: 'add', e: [kind, name, id, meta] });
    for (let p = 0; p < this.transport.nodes.length; p++) {
      if (p !== this.self && this.transport.hasSession(p))
        this.transport.sendFrame(p, FrameType.CONTROL, 0, CONTROL_STREAM, payload);
    }
  }

  /** Withdraws an offer made with {@link announce}. */
  withdraw(kind: string, name: string, id: number): void {
    if (!this.local.delete(entryKey(kind, name, this.self, id))) return;
    this.applyEntry({ node: this.self, kind, name, id, meta: null }, false);
    if (this.closed) return;
    const payload = encodeValue({ op: 'del', e: [kind, name, id] });
    for (let p = 0; p < this.transport.nodes.length; p++) {
      if (p !== this.self && this.transport.hasSession(p))
        this.transport.sendFrame(p, FrameType.CONTROL, 0, CONTROL_STREAM, payload);
    }
  }

  /** Entries for `(kind, name)` across the cluster (this node included). */
  lookup(kind: string, name: string): DirectoryEntry[] {
    return [...(this.directory.get(kind + '\0' + name)?.values() ?? [])];
  }

  /** Every entry of `kind`, whatever the name. */
  lookupKind(kind: string): DirectoryEntry[] {
    const out: DirectoryEntry[] = [];
    for (const [key, m] of this.directory) if (key.startsWith(kind + '\0')) out.push(...m.values());
    return out;
  }

  /** Calls `fn` whenever entries of `(kind, name)` change (`name` undefined: any name of `kind`). Returns an unsubscribe. */
  watch(kind: string, name: string | undefined, fn: () => void): () => void {
    const key = name === undefined ? kind + '\0*' : kind + '\0' + name;
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  // ---- ClusterHandler ----------------------------------------------------

  onMessage(peer: number, stream: number, flags: number, message: Buffer): void {
    const inlet = this.inStreams[peer]!.get(stream);
    if (inlet === undefined || inlet.receiver === undefined) return;
    const r = inlet.receiver;
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
    let value: unknown;
    if ((flags & FrameFlag.RAW) !== 0) {
      // Zero-copy, like byte strings inside CBOR: a view into the read
      // chunk. An application keeping many small ones copies them.
      value = message;
    } else {
      try {
        value = decodeValue(message, this);
      } catch (err) {
        const e =
          err instanceof SwitchboardError ? err : new DecodeError(String(err), { cause: err });
        r.rejectMessage(inlet, message.length, e);
        this.sendError(peer, stream, e);
        return;
      }
    }
    r.push(value, inlet, message.length);
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
              this.remoteError(payload, ErrorCode.NO_RECEIVER, 'receiver closed'),
            );
        } else {
          const inlet = this.inStreams[peer]!.get(stream);
          if (inlet === undefined) return;
          this.inStreams[peer]!.delete(stream);
          this.unpark(inlet);
          inlet.receiver?.detach(inlet);
        }
        return;
      case FrameType.ERROR: {
        const o = this.outStreams[peer]!.get(stream);
        if (o !== undefined)
          o.sender.refused(this.remoteError(payload, ErrorCode.DECODE, 'message refused'));
        return;
      }
      case FrameType.CONTROL:
        return this.onDirectory(peer, payload);
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
    const entries = [...this.local.values()].map((e) => [e.kind, e.name, e.id, e.meta]);
    if (entries.length > 0)
      this.transport.sendFrame(
        peer,
        FrameType.CONTROL,
        0,
        CONTROL_STREAM,
        encodeValue({ op: 'snap', entries }),
      );
    const waiting = [...this.rebind[peer]!];
    this.rebind[peer]!.clear();
    for (const s of waiting) if (!s.closed) this.connectSingle(s);
  }

  onSessionEnd(peer: number, reason: SwitchboardError): void {
    debug('node %d: session with %d ended: %s', this.self, peer, reason.message);
    const lost =
      reason instanceof NotDeliveredError
        ? reason
        : new NotDeliveredError(peer, reason.message, { cause: reason });
    const outs = [...this.outStreams[peer]!.values()];
    this.outStreams[peer]!.clear();
    for (const o of outs) this.outletEnded(o, lost, true);
    const ins = [...this.inStreams[peer]!.values()];
    this.inStreams[peer]!.clear();
    for (const inlet of ins) {
      this.unpark(inlet);
      inlet.receiver?.detach(inlet);
    }
    // Forget what the peer offered.
    for (const [key, m] of this.directory) {
      let changed = false;
      for (const [k, e] of m) {
        if (e.node === peer) {
          m.delete(k);
          changed = true;
        }
      }
      if (changed) this.notify(key);
    }
  }

  // ---- CodecContext ------------------------------------------------------

  reviveHandle(ref: HandleRef): unknown {
    switch (ref.kind) {
      case HandleKind.MPSC:
        return this.track(new Sender(this, ref, 'single'));
      case HandleKind.MPMC_ONE:
      case HandleKind.MPMC_ALL:
        if (ref.name === undefined) throw new DecodeError('MPMC handle without a name');
        return this.track(new Sender(this, ref, ref.kind === HandleKind.MPMC_ALL ? 'all' : 'one'));
      default:
        throw new DecodeError(`unknown handle kind "${ref.kind}"`);
    }
  }

  // ---- SenderHost / ReceiverHost -----------------------------------------

  connect(sender: Sender<unknown>): void {
    if (sender.mode === 'single') {
      this.connectSingle(sender);
      return;
    }
    const name = sender.target.name!;
    let set = this.mpmcSenders.get(name);
    if (set === undefined) {
      this.mpmcSenders.set(name, (set = new Set()));
      this.watch('mpmc', name, () => this.refreshMpmc(name));
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
    if (this.named.get(receiver.name) === receiver) this.named.delete(receiver.name);
    for (const e of [...this.local.values()])
      if (e.id === receiver.id) this.withdraw(e.kind, e.name, e.id);
  }

  reportDrop(channel: string, count: number, reason: string): void {
    this.drops.set(channel, (this.drops.get(channel) ?? 0) + count);
    this.transport.emit({ type: 'drop', channel, count, reason });
  }

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

  /** Closes every endpoint (the switchboard is closing). */
  shutdown(reason: SwitchboardError): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.senders]) s.fail(reason);
    for (const r of [...this.receivers.values()]) r.close();
  }

  // ---- internals ---------------------------------------------------------

  private track<T>(s: Sender<T>): Sender<T> {
    this.senders.add(s);
    return s;
  }

  private connectSingle(sender: Sender<unknown>): void {
    const t = sender.target;
    if (t.node === this.self) {
      const r = t.name !== undefined ? this.named.get(t.name) : this.receivers.get(t.id);
      const stream = new LocalStream(sender, this);
      sender.outlets = [stream];
      if (r !== undefined) {
        stream.bind(r);
        r.attach(stream);
      } else if (t.name !== undefined) {
        this.park(t.name, stream);
      } else {
        stream.end(
          new SwitchboardError(ErrorCode.NO_RECEIVER, `no receiver #${t.id} on node ${t.node}`),
        );
      }
      return;
    }
    if (!this.transport.hasSession(t.node)) {
      // Buffer (bounded by the sender's maxPending) until the peer links.
      sender.outlets = [];
      this.rebind[t.node]!.add(sender);
      return;
    }
    sender.outlets = [this.openRemote(sender, t.node, t.id, t.name)];
  }

  private openRemote(
    sender: Sender<unknown>,
    node: number,
    id: number,
    name: string | undefined,
  ): RemoteOutlet {
    const stream = this.allocStream(node);
    const o = new RemoteOutlet(this, sender, node, id, stream);
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
    const entries = this.lookup('mpmc', sender.target.name!);
    const want = new Set(entries.map((e) => `${e.node}:${e.id}`));
    const keep: Outlet[] = [];
    for (const o of sender.outlets) {
      if (want.has(`${o.node}:${o.receiverId}`) && o.state !== 'closed') {
        keep.push(o);
        want.delete(`${o.node}:${o.receiverId}`);
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

  /** An outlet can no longer deliver: report what it had in flight and tell its sender. */
  outletEnded(o: RemoteOutlet | LocalStream, error: SwitchboardError, sessionLost = false): void {
    const inflight = o.terminate(error);
    if (o instanceof RemoteOutlet) this.outStreams[o.node]!.delete(o.stream);
    const s = o.sender;
    s.undelivered(inflight, error);
    if (s.mode !== 'single') {
      s.outlets = s.outlets.filter((x) => x !== o);
      s.pump();
      return;
    }
    if (sessionLost && s.target.name !== undefined && !s.closed) {
      // A named receiver can be reached again once its node is back.
      s.outlets = [];
      this.rebind[o.node]!.add(s);
      return;
    }
    s.fail(error);
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
    const inlet = new RemoteInlet(this.transport, peer, stream, this.reportSoon);
    this.inStreams[peer]!.set(stream, inlet);
    if (typeof target.name === 'string') {
      const r = this.named.get(target.name);
      if (r !== undefined) {
        inlet.receiver = r;
        r.attach(inlet);
      } else if (this.parkedCount < MAX_PARKED) {
        this.park(target.name, inlet);
      } else {
        this.inStreams[peer]!.delete(stream);
        inlet.end(
          new SwitchboardError(
            ErrorCode.NO_RECEIVER,
            `too many senders waiting for receivers on node ${this.self}`,
          ),
        );
      }
      return;
    }
    const r = typeof target.id === 'number' ? this.receivers.get(target.id) : undefined;
    if (r === undefined) {
      this.inStreams[peer]!.delete(stream);
      inlet.end(
        new SwitchboardError(
          ErrorCode.NO_RECEIVER,
          `no receiver #${String(target.id)} on node ${this.self}`,
        ),
      );
      return;
    }
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

  /** Forgets a remote outlet closed by its sender. */
  forgetOutlet(o: RemoteOutlet): void {
    this.outStreams[o.node]!.delete(o.stream);
  }

  /** Forgets a local stream that never found its receiver. */
  dropParked(stream: LocalStream): void {
    this.unpark(stream);
  }

  private onDirectory(peer: number, payload: Buffer): void {
    let msg: { op?: unknown; e?: unknown; entries?: unknown };
    try {
      const decoded = decodeValue(payload);
      if (typeof decoded !== 'object' || decoded === null) {
        throw new DecodeError('directory message is not a map');
      }
      msg = decoded;
    } catch (err) {
      this.transport.emit({ type: 'error', error: err as Error });
      return;
    }
    const parse = (raw: unknown): DirectoryEntry | undefined => {
      if (
        !Array.isArray(raw) ||
        typeof raw[0] !== 'string' ||
        typeof raw[1] !== 'string' ||
        typeof raw[2] !== 'number'
      )
        return undefined;
      return { node: peer, kind: raw[0], name: raw[1], id: raw[2], meta: raw[3] ?? null };
    };
    if (msg.op === 'snap' && Array.isArray(msg.entries)) {
      for (const raw of msg.entries) {
        const e = parse(raw);
        if (e !== undefined) this.applyEntry(e, true);
      }
    } else if (msg.op === 'add' || msg.op === 'del') {
      const e = parse(msg.e);
      if (e !== undefined) this.applyEntry(e, msg.op === 'add');
    }
  }

  private applyEntry(e: DirectoryEntry, add: boolean): void {
    const key = e.kind + '\0' + e.name;
    let m = this.directory.get(key);
    if (m === undefined) {
      if (!add) return;
      this.directory.set(key, (m = new Map<string, DirectoryEntry>()));
    }
    const k = `${e.node}:${e.id}`;
    if (add) m.set(k, e);
    else m.delete(k);
    if (m.size === 0) this.directory.delete(key);
    this.notify(key);
  }

  private notify(key: string): void {
    for (const fn of [...(this.watchers.get(key) ?? [])]) fn();
    const kind = key.slice(0, key.indexOf('\0'));
    for (const fn of [...(this.watchers.get(kind + '\0*') ?? [])]) fn();
  }

  private allocStream(peer: number): number {
    const n = this.nextStream[peer]!;
    this.nextStream[peer] = n >= 0x7fff_ffff ? 1 : n + 1;
    return ((this.self > peer ? 0x8000_0000 : 0) | n) >>> 0;
  }

  private sendError(peer: number, stream: number, err: SwitchboardError): void {
    this.transport.sendFrame(
      peer,
      FrameType.ERROR,
      0,
      stream,
      encodeValue({ code: err.code, message: err.message }),
    );
  }

  private remoteError(payload: Buffer, code: ErrorCode, fallback: string): SwitchboardError {
    try {
      const m = decodeValue(payload) as { code?: unknown; message?: unknown } | undefined;
      if (m !== undefined && typeof m.message === 'string') {
        const c =
          typeof m.code === 'string' && Object.values(ErrorCode).includes(m.code as ErrorCode)
            ? (m.code as ErrorCode)
            : code;
        return new SwitchboardError(c, m.message);
      }
    } catch {
      // Fall through to the generic error.
    }
    return new SwitchboardError(code, fallback);
  }

  /**
   * Encodes a message body: raw bytes as they are (the caller's memory, so
   * the link copies what it keeps), anything else as CBOR (fresh bytes,
   * handed over).
   */
  encodeBody(value: unknown): { flags: number; bytes: Uint8Array } {
    if (value instanceof Uint8Array) return { flags: FrameFlag.RAW, bytes: value };
    return { flags: 0, bytes: encodeValue(value) };
  }

  /** The local path with `forceEncoding`: what a remote receiver would get. */
  roundTrip(value: unknown): unknown {
    if (!this.forceEncoding) return value;
    const { flags, bytes } = this.encodeBody(value);
    return (flags & FrameFlag.RAW) !== 0 ? Buffer.from(bytes) : decodeValue(bytes, this);
  }

  private assertOpen(): void {
    if (this.closed) throw new SwitchboardError(ErrorCode.CLOSED, 'switchboard is closed');
  }
}

function entryKey(kind: string, name: string, node: number, id: number): string {
  return `${kind}\0${name}\0${node}:${id}`;
}

/** True if `stream` on the link to `peer` was opened by this node (the top bit says which side opened it). */
function openedBy(self: number, peer: number, stream: number): boolean {
  return stream >>> 31 === (self > peer ? 1 : 0);
}

/** Sender side of a stream to a receiver on another node. */
class RemoteOutlet implements Outlet {
  credit = 0;
  creditBytes = 0;
  state: 'opening' | 'open' | 'closed' = 'opening';
  error: SwitchboardError | undefined;
  private sentCount = 0;
  private deliveredCount = 0;
  private lossy = false;
  private readonly inflightValues = new Ring<unknown>(16);

  constructor(
    private readonly hub: ChannelHub,
    readonly sender: Sender<unknown>,
    readonly node: number,
    readonly receiverId: number,
    readonly stream: number,
  ) {}

  get inflight(): number {
    return this.sentCount - this.deliveredCount;
  }

  ready(): boolean {
    return this.hub.transport.writable(this.node);
  }

  transmit(value: unknown): void {
    const { flags, bytes } = this.hub.encodeBody(value);
    this.hub.transport.sendMessage(
      this.node,
      this.stream,
      flags,
      bytes,
      (flags & FrameFlag.RAW) === 0,
    );
    this.sentCount++;
    // A lossy receiver granted unlimited credit once and never tops it up:
    // spending it would stall the stream after ~1 GiB.
    if (this.lossy) return;
    this.credit--;
    this.creditBytes -= bytes.length;
    this.inflightValues.push(value);
  }

  onCredit(messages: number, bytes: number, delivered: number): void {
    if (this.state === 'closed') return;
    if (messages >= UNLIMITED_CREDIT) {
      // A lossy receiver: never waits, so nothing is tracked in flight.
      this.lossy = true;
      this.inflightValues.drain();
    }
    this.credit += messages;
    this.creditBytes += bytes;
    if (delivered > this.deliveredCount) {
      this.inflightValues.discard(delivered - this.deliveredCount);
      this.deliveredCount = delivered;
    }
    this.state = 'open';
    this.sender.pump();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.hub.forgetOutlet(this);
    this.hub.transport.sendFrame(this.node, FrameType.CLOSE, 0, this.stream);
  }

  /** Ends the outlet; returns the messages not known to be delivered. */
  terminate(error: SwitchboardError): unknown[] {
    this.state = 'closed';
    this.error = error;
    return this.inflightValues.drain();
  }
}

/** Receiver side of a stream from a sender on another node. */
class RemoteInlet implements Inlet {
  credit = 0;
  creditBytes = 0;
  delivered = 0;
  receiver: Receiver<unknown> | undefined;
  /** The delivered count the sender was last told. */
  private reported = 0;
  private reportQueued = false;

  constructor(
    private readonly transport: HubTransport,
    readonly peer: number,
    readonly stream: number,
    private readonly reportSoon: (inlet: RemoteInlet) => void,
  ) {}

  deliveredChanged(): void {
    if (this.reportQueued || this.delivered === this.reported) return;
    this.reportQueued = true;
    this.reportSoon(this);
  }

  /** Tells the sender the delivered count, unless a grant already did. */
  report(): void {
    this.reportQueued = false;
    if (this.receiver !== undefined && this.delivered > this.reported) {
      this.grant(0, 0, this.delivered);
    }
  }

  grant(messages: number, bytes: number, delivered: number): void {
    this.reported = delivered;
    const b = Buffer.allocUnsafe(16);
    b.writeUInt32BE(messages >>> 0, 0);
    b.writeUInt32BE(Math.max(0, Math.min(bytes, 0xffff_ffff)) >>> 0, 4);
    b.writeUInt32BE(Math.floor(delivered / 0x1_0000_0000), 8);
    b.writeUInt32BE(delivered >>> 0, 12);
    // A grant keeps the sender's pipe full: at once. A delivery report
    // (nothing granted) waits for the end of the turn like other frames.
    this.transport.sendFrame(
      this.peer,
      FrameType.CREDIT,
      0,
      this.stream,
      b,
      messages > 0 || bytes > 0,
    );
  }

  end(error: SwitchboardError): void {
    // Credit reports deliveries lazily (batched): say exactly how many were
    // taken, so the sender reports only the others as not delivered.
    if (this.delivered > 0) this.grant(0, 0, this.delivered);
    this.transport.sendFrame(
      this.peer,
      FrameType.CLOSE,
      0,
      this.stream,
      encodeValue({ code: error.code, message: error.message }),
    );
  }
}

/**
 * Both ends of a stream inside one process: no encoding, no socket, the
 * same credit rules. The receiver gets the very object that was sent
 * (unless the hub forces encoding).
 */
class LocalStream implements Outlet, Inlet {
  credit = 0;
  creditBytes = 0;
  delivered = 0;
  state: 'opening' | 'open' | 'closed' = 'opening';
  error: SwitchboardError | undefined;
  receiver: Receiver<unknown> | undefined;
  readonly receiverId: number = 0;
  readonly node: number;
  private dropped: unknown[] | undefined;

  constructor(
    readonly sender: Sender<unknown>,
    private readonly hub: ChannelHub,
  ) {
    this.node = hub.self;
  }

  get inflight(): number {
    return 0;
  }

  bind(r: Receiver<unknown>): void {
    this.receiver = r;
    (this as { receiverId: number }).receiverId = r.id;
  }

  ready(): boolean {
    return true;
  }

  transmit(value: unknown): void {
    this.receiver!.push(this.hub.roundTrip(value), this, 0);
  }

  grant(): void {
    if (this.state === 'closed') return;
    this.state = 'open';
    this.sender.pump();
  }

  end(error: SwitchboardError, dropped?: unknown[]): void {
    if (this.state === 'closed') return;
    this.dropped = dropped;
    this.hub.outletEnded(this, error);
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.receiver !== undefined) this.receiver.detach(this);
    else this.hub.dropParked(this);
  }

  terminate(error: SwitchboardError): unknown[] {
    this.state = 'closed';
    this.error = error;
    // Locally, what is in flight is exactly what the receiver buffered and dropped.
    const dropped = this.dropped ?? [];
    this.dropped = undefined;
    return dropped;
  }
}
