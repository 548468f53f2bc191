/**
 * The fault-injecting TCP proxies the kit puts on every link (docs/testing.md,
 * "How link faults work"). Node `i`'s address in the node list is a proxy
 * the test process listens on (127.0.0.1, a port the kernel chose and the
 * proxy holds for the cluster's life, so no other test can take it); the
 * node itself listens on the same port of a private loopback address
 * (`bindHost`), where only its proxy connects.
 *
 * Links are dialled by the lower id (docs/wire-protocol.md, 11.3), so every
 * connection reaching node `b`'s proxy comes from some `a < b`; which one
 * the proxy reads from the dialer's HELLO, the first frame it must send
 * (wire-protocol.md, 4 and 5.2: a 10-byte header, then 116 bytes whose
 * `from` is a u16 at offset 40). Over TLS the HELLO is encrypted: such
 * connections pass unfaulted, and the cluster refuses link faults.
 */
import net from 'node:net';
import { Gate } from './gate.js';
import { resetSocket } from './reset.js';
import type { GateFaults } from './gate.js';

/** Which way a one-way fault applies: `a->b` is what `a` sends to `b`. */
export type Direction = 'both' | 'a->b' | 'b->a';

const HEADER = 10;
const HELLO_TYPE = 0x01;
const HELLO_SIZE = 116;
const SNIFF = HEADER + HELLO_SIZE;
const MAGIC = Buffer.from('SWBD', 'ascii');
const FROM_OFFSET = HEADER + 40;

/** The faults on one link, per direction (index 0: lower id to higher, 1: back). */
interface LinkState {
  cut: boolean;
  readonly hold: [boolean, boolean];
  readonly delayMs: [number, number];
  /** Bandwidth limit, bytes per second; 0 is none. */
  readonly bytesPerSecond: [number, number];
  /** Connections of this link now open through the proxy. */
  readonly pipes: Set<Pipe>;
}

interface Pipe {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly gates: [Gate, Gate];
}

/** The link's dialer (lower id) and acceptor, and a key for it. */
function ends(a: number, b: number): { lo: number; hi: number; key: string } {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return { lo, hi, key: `${lo}-${hi}` };
}

/** The `from` of a dialer's HELLO at the start of `buf`, or undefined if it is not one. */
function helloFrom(buf: Buffer): number | undefined {
  if (buf.length < SNIFF) return undefined;
  if (buf.readUInt32BE(0) !== 6 + HELLO_SIZE || buf[4] !== HELLO_TYPE) return undefined;
  if (!buf.subarray(HEADER, HEADER + 4).equals(MAGIC)) return undefined;
  return buf.readUInt16BE(FROM_OFFSET);
}

/** One proxy per node, and the faults of every link between them. */
export class LinkFabric {
  /** The node list the switchboards are given: one proxy address per node. */
  readonly addresses: readonly string[];
  private readonly links = new Map<string, LinkState>();
  /** Where each node really listens now (`host`, on its proxy's port); undefined while it is down. */
  private readonly upstream: Array<string | undefined>;
  private readonly unknown = new Set<net.Socket>();
  private closed = false;

  private constructor(
    private readonly servers: readonly net.Server[],
    readonly ports: readonly number[],
  ) {
    this.addresses = ports.map((p) => `127.0.0.1:${p}`);
    this.upstream = ports.map(() => undefined);
    servers.forEach((s, node) => s.on('connection', (c: net.Socket) => this.accept(node, c)));
  }

  /** Binds `n` proxies on 127.0.0.1, each on a port the kernel picks. */
  static async open(n: number): Promise<LinkFabric> {
    const servers: net.Server[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const s = net.createServer({ noDelay: true, pauseOnConnect: true });
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
            s.off('error', reject);
            resolve();
          });
        });
        servers.push(s);
      }
    } catch (err) {
      for (const s of servers) s.close();
      throw err;
    }
    return new LinkFabric(
      servers,
      servers.map((s) => (s.address() as net.AddressInfo).port),
    );
  }

  /** Node `node` now listens on `host` (its proxy's port), or is down (`undefined`). */
  setUpstream(node: number, host: string | undefined): void {
    this.upstream[node] = host;
  }

  /** Resets every connection of the link, and every new one until {@link heal}. */
  cut(a: number, b: number): void {
    const link = this.link(a, b);
    link.cut = true;
    for (const p of link.pipes) {
      resetSocket(p.client);
      resetSocket(p.upstream);
    }
    link.pipes.clear();
  }

  /** Holds everything sent one way or both (bytes, FIN, reset) until {@link heal}. */
  blackhole(a: number, b: number, direction: Direction = 'both'): void {
    this.set(a, b, direction, (link, d) => (link.hold[d] = true));
  }

  /** Delays what is sent one way or both by `ms` (0 takes the delay away). */
  delay(a: number, b: number, ms: number, direction: Direction = 'both'): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`delay must be >= 0 ms, got ${ms}`);
    this.set(a, b, direction, (link, d) => (link.delayMs[d] = ms));
  }

  /**
   * Lets at most `bytesPerSecond` through one way or both, paced at the
   * socket: a slice of 20 ms worth at a time (0 takes the limit away).
   */
  throttle(a: number, b: number, bytesPerSecond: number, direction: Direction = 'both'): void {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0)
      throw new RangeError(`bytesPerSecond must be >= 0, got ${bytesPerSecond}`);
    this.set(a, b, direction, (link, d) => (link.bytesPerSecond[d] = bytesPerSecond));
  }

  /** Takes every fault off the link; what was held passes on, in order. */
  heal(a: number, b: number): void {
    this.set(a, b, 'both', (link, d) => {
      link.hold[d] = false;
      link.delayMs[d] = 0;
      link.bytesPerSecond[d] = 0;
    });
    this.link(a, b).cut = false;
  }

  /** Heals every link. */
  healAll(): void {
    for (const key of this.links.keys()) {
      const [lo, hi] = key.split('-').map(Number) as [number, number];
      this.heal(lo, hi);
    }
  }

  /** The faults now on the link between `a` and `b`, for failure messages. */
  describe(a: number, b: number): string {
    const link = this.links.get(ends(a, b).key);
    if (link === undefined) return 'no fault';
    const { lo, hi } = ends(a, b);
    const parts: string[] = [];
    if (link.cut) parts.push('cut');
    link.hold.forEach(
      (h, d) => h && parts.push(`blackhole ${d === 0 ? lo : hi}->${d === 0 ? hi : lo}`),
    );
    link.delayMs.forEach(
      (ms, d) => ms > 0 && parts.push(`delay ${ms} ms ${d === 0 ? lo : hi}->${d === 0 ? hi : lo}`),
    );
    link.bytesPerSecond.forEach(
      (bps, d) =>
        bps > 0 && parts.push(`throttle ${bps} B/s ${d === 0 ? lo : hi}->${d === 0 ? hi : lo}`),
    );
    return parts.length === 0 ? 'no fault' : parts.join(', ');
  }

  /** Every link with a fault on it, for failure messages. */
  summary(): string {
    const faulty = [...this.links.keys()]
      .map((key) => {
        const [lo, hi] = key.split('-').map(Number) as [number, number];
        const d = this.describe(lo, hi);
        return d === 'no fault' ? undefined : `${lo}-${hi}: ${d}`;
      })
      .filter((x) => x !== undefined);
    return faulty.length === 0 ? 'none' : faulty.join('; ');
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) {
      for (const p of link.pipes) {
        p.client.destroy();
        p.upstream.destroy();
      }
      link.pipes.clear();
    }
    for (const s of this.unknown) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }

  private link(a: number, b: number): LinkState {
    const { key } = ends(a, b);
    let link = this.links.get(key);
    if (link === undefined) {
      link = {
        cut: false,
        hold: [false, false],
        delayMs: [0, 0],
        bytesPerSecond: [0, 0],
        pipes: new Set(),
      };
      this.links.set(key, link);
    }
    return link;
  }

  private set(
    a: number,
    b: number,
    direction: Direction,
    change: (link: LinkState, d: 0 | 1) => void,
  ): void {
    if (a === b) throw new RangeError(`a link joins two different nodes, got ${a} and ${b}`);
    const link = this.link(a, b);
    // Index 0 is lower -> higher; a->b is index 0 exactly when a is the lower.
    const forward: 0 | 1 = a < b ? 0 : 1;
    const backward: 0 | 1 = forward === 0 ? 1 : 0;
    if (direction !== 'b->a') change(link, forward);
    if (direction !== 'a->b') change(link, backward);
    for (const p of link.pipes) for (const g of p.gates) g.update();
  }

  /** A dialer connected to node `node`'s proxy: find its link from its HELLO, then pipe. */
  private accept(node: number, client: net.Socket): void {
    client.setNoDelay(true);
    this.unknown.add(client);
    let sniffed = Buffer.alloc(0);
    const onError = (): void => void client.destroy();
    const onData = (chunk: Buffer): void => {
      sniffed = Buffer.concat([sniffed, chunk]);
      // Wait for a whole HELLO, unless the first bytes already say it is none.
      const maybeHello =
        sniffed.length < 5 ||
        (sniffed.readUInt32BE(0) === 6 + HELLO_SIZE && sniffed[4] === HELLO_TYPE);
      if (sniffed.length < SNIFF && maybeHello) return;
      client.off('data', onData);
      client.off('end', onEnd);
      client.pause();
      this.route(node, client, sniffed, helloFrom(sniffed));
    };
    const onEnd = (): void => void client.destroy();
    client.on('error', onError);
    client.on('data', onData);
    client.on('end', onEnd);
    client.once('close', () => this.unknown.delete(client));
    client.resume();
  }

  private route(node: number, client: net.Socket, first: Buffer, from: number | undefined): void {
    const known = from !== undefined && from < this.addresses.length && from !== node;
    const link = known ? this.link(from, node) : undefined;
    const host = this.upstream[node];
    if (this.closed || host === undefined || link?.cut === true) {
      // Down, or cut: the dialer sees its connection reset, and retries.
      resetSocket(client);
      return;
    }
    const upstream = net.connect({ host, port: this.ports[node]!, noDelay: true });
    upstream.pause();
    const faults = (d: 0 | 1): (() => GateFaults) =>
      link === undefined
        ? () => ({ hold: false, delayMs: 0, bytesPerSecond: 0 })
        : () => ({
            hold: link.hold[d],
            delayMs: link.delayMs[d],
            bytesPerSecond: link.bytesPerSecond[d],
          });
    // The client is always the lower id (the dialer): its bytes go index 0.
    const pipe: Pipe = {
      client,
      upstream,
      gates: [new Gate(client, upstream, faults(0)), new Gate(upstream, client, faults(1))],
    };
    link?.pipes.add(pipe);
    if (link === undefined) this.unknown.add(upstream);
    const forget = (): void => {
      link?.pipes.delete(pipe);
      this.unknown.delete(upstream);
    };
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      pipe.gates[0].start(first);
      pipe.gates[1].start(undefined);
    });
    upstream.on('error', () => {
      // Nothing listens there (the node died in between): reset the dialer.
      if (!connected) resetSocket(client);
    });
    client.on('error', () => undefined);
    let closed = 0;
    const onClose = (): void => {
      if (++closed === 2) {
        forget();
        for (const g of pipe.gates) g.dispose();
      }
    };
    upstream.once('close', onClose);
    client.once('close', onClose);
  }
}
