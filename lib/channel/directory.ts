/**
 * The directory of outlets: what each node offers under a name (an MPMC
 * receiver, an RPC method, a subscription, a worker), kept on every node.
 * A node announces its own entries to every peer as a session starts (a
 * snapshot) and as they change (add, del), on the control stream
 * (docs/wire-protocol.md 10.11); a peer's entries are forgotten when its
 * session ends. Patterns look entries up and watch them; they never see the
 * wire.
 */
import { ClientRoleError, DecodeError } from '../errors.js';
import { decodeValue, encodeValue } from '../protocol/codec.js';

/** One offer: `kind`/`name` served by receiver `id` on `node`, with pattern-specific `meta`. */
export interface DirectoryEntry {
  readonly node: number;
  readonly kind: string;
  readonly name: string;
  /** The receiver that serves it on `node`. */
  readonly id: number;
  readonly meta: unknown;
}

/** How the directory reaches peers. */
export interface DirectoryTransport {
  readonly self: number;
  readonly nodeCount: number;
  hasSession(peer: number): boolean;
  /** Queues a CONTROL frame (stream 0) for `peer`. */
  sendControl(peer: number, payload: Uint8Array): void;
  /** A malformed control message from a peer (reported, never thrown). */
  malformed(peer: number, error: Error): void;
  /**
   * May `peer` offer entries of `kind`? Refused entries are dropped and
   * reported through {@link malformed} (a client may only subscribe).
   */
  mayAnnounce?(peer: number, kind: string): boolean;
}

type Watcher = () => void;

/** The cluster-wide directory, as this node knows it. */
export class Directory {
  /** Entries by `kind\0name`, then by `node:id`. */
  private readonly entries = new Map<string, Map<string, DirectoryEntry>>();
  /** This node's own entries, by `kind\0name\0node:id`. */
  private readonly own = new Map<string, DirectoryEntry>();
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly snapWatchers = new Set<(peer: number) => void>();

  constructor(private readonly transport: DirectoryTransport) {}

  /** Offers `(kind, name)` served by local receiver `id`, to every node. */
  announce(kind: string, name: string, id: number, meta: unknown): void {
    const t = this.transport;
    const e: DirectoryEntry = { node: t.self, kind, name, id, meta };
    this.own.set(ownKey(kind, name, id), e);
    this.apply(e, true);
    this.broadcast({ op: 'add', e: [kind, name, id, meta] });
  }

  /** Withdraws an offer made with {@link announce}. */
  withdraw(kind: string, name: string, id: number): void {
    if (!this.own.delete(ownKey(kind, name, id))) return;
    this.apply({ node: this.transport.self, kind, name, id, meta: null }, false);
    this.broadcast({ op: 'del', e: [kind, name, id] });
  }

  /** Withdraws every offer served by local receiver `id`. */
  withdrawReceiver(id: number): void {
    for (const e of [...this.own.values()]) if (e.id === id) this.withdraw(e.kind, e.name, e.id);
  }

  /** Entries for `(kind, name)` across the cluster (this node included), in a stable order. */
  lookup(kind: string, name: string): DirectoryEntry[] {
    return [...(this.entries.get(kind + '\0' + name)?.values() ?? [])];
  }

  /** Every entry of `kind`, whatever the name. */
  lookupKind(kind: string): DirectoryEntry[] {
    const out: DirectoryEntry[] = [];
    const prefix = kind + '\0';
    for (const [key, m] of this.entries) if (key.startsWith(prefix)) out.push(...m.values());
    return out;
  }

  /**
   * Calls `fn` whenever entries of `(kind, name)` change (`name` undefined:
   * any name of `kind`). Returns the unsubscribe.
   */
  watch(kind: string, name: string | undefined, fn: Watcher): () => void {
    const key = name === undefined ? kind + '\0*' : kind + '\0' + name;
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  // ---- driven by the hub ---------------------------------------------------

  /**
   * Calls `fn(peer)` after each snapshot from a peer is applied: from then
   * on, what that peer offers is known (an entry it does not list is gone).
   */
  watchSnapshots(fn: (peer: number) => void): () => void {
    this.snapWatchers.add(fn);
    return () => this.snapWatchers.delete(fn);
  }

  /** A session with `peer` began: send it our entries (an empty snapshot says there are none). */
  sessionStarted(peer: number): void {
    const entries = [...this.own.values()].map((e) => [e.kind, e.name, e.id, e.meta]);
    this.transport.sendControl(peer, encodeValue({ op: 'snap', entries }));
  }

  /** The session with `peer` ended: forget what it offered. */
  sessionEnded(peer: number): void {
    for (const [key, m] of this.entries) {
      let changed = false;
      for (const [k, e] of m) {
        if (e.node === peer) {
          m.delete(k);
          changed = true;
        }
      }
      if (m.size === 0) this.entries.delete(key);
      if (changed) this.notify(key);
    }
  }

  /** A CONTROL frame from `peer`. Malformed ones are reported and ignored. */
  onControl(peer: number, payload: Buffer): void {
    let msg: { op?: unknown; e?: unknown; entries?: unknown };
    try {
      const decoded = decodeValue(payload);
      if (typeof decoded !== 'object' || decoded === null)
        throw new DecodeError('directory message is not a map');
      msg = decoded;
    } catch (err) {
      this.transport.malformed(peer, err as Error);
      return;
    }
    if (msg.op === 'snap' && Array.isArray(msg.entries)) {
      for (const raw of msg.entries) {
        const e = this.allowed(parseEntry(peer, raw));
        if (e !== undefined) this.apply(e, true);
      }
      for (const fn of [...this.snapWatchers]) fn(peer);
    } else if (msg.op === 'add' || msg.op === 'del') {
      const e = this.allowed(parseEntry(peer, msg.e));
      if (e !== undefined) this.apply(e, msg.op === 'add');
    }
  }

  /** The entry, unless its peer may not offer its kind (a client serving): then reported, dropped. */
  private allowed(e: DirectoryEntry | undefined): DirectoryEntry | undefined {
    if (e === undefined || this.transport.mayAnnounce?.(e.node, e.kind) !== false) return e;
    this.transport.malformed(
      e.node,
      new ClientRoleError(
        'announce',
        `peer ${e.node} is a client and may not offer ${e.kind} "${e.name}"; entry ignored`,
      ),
    );
    return undefined;
  }

  // ---- internals -------------------------------------------------------------

  private broadcast(msg: object): void {
    const t = this.transport;
    let payload: Buffer | undefined;
    for (let p = 0; p < t.nodeCount; p++) {
      if (p === t.self || !t.hasSession(p)) continue;
      payload ??= encodeValue(msg);
      t.sendControl(p, payload);
    }
  }

  private apply(e: DirectoryEntry, add: boolean): void {
    const key = e.kind + '\0' + e.name;
    let m = this.entries.get(key);
    if (m === undefined) {
      if (!add) return;
      this.entries.set(key, (m = new Map<string, DirectoryEntry>()));
    }
    const k = `${e.node}:${e.id}`;
    if (add) m.set(k, e);
    else if (!m.delete(k)) return;
    if (m.size === 0) this.entries.delete(key);
    this.notify(key);
  }

  private notify(key: string): void {
    for (const fn of [...(this.watchers.get(key) ?? [])]) fn();
    const kind = key.slice(0, key.indexOf('\0'));
    for (const fn of [...(this.watchers.get(kind + '\0*') ?? [])]) fn();
  }
}

function ownKey(kind: string, name: string, id: number): string {
  return `${kind}\0${name}\0${id}`;
}

function parseEntry(peer: number, raw: unknown): DirectoryEntry | undefined {
  if (
    !Array.isArray(raw) ||
    typeof raw[0] !== 'string' ||
    typeof raw[1] !== 'string' ||
    typeof raw[2] !== 'number'
  )
    return undefined;
  return { node: peer, kind: raw[0], name: raw[1], id: raw[2], meta: raw[3] ?? null };
}
