/**
 * Failure detection under real faults (docs/failure-detection.md; docs/reliability.md
 * items 27 and 28):
 *
 * - the proactive re-dial: a connection silently dead (a proxy that stops
 *   forwarding on it, as a NAT or a load balancer that lost the flow does,
 *   while new connections pass) is dropped by its dialer once the link
 *   turns suspect, and the session resumes over a new one long before
 *   `deadPeerMs`, nothing lost, under either detector;
 * - a SIGSTOPped peer in another process is suspect, then down, under
 *   `failureDetector: 'phi'`, down no sooner than `deadPeerMs` (the bound
 *   the stale-session fence relies on) and within a bounded time.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Cluster } from '../../lib/switchboard/cluster.js';
import type { ClusterHandler, SwitchboardEvent } from '../../lib/switchboard/events.js';
import type { SwitchboardOptions } from '../../lib/switchboard/options.js';
import { bindCandidates } from '../../lib/testing/loopback.js';
import { startCluster } from '../../lib/testing/index.js';
import { freePorts } from '../support/ports.js';

const SECRET = 'an-adequately-long-secret';

/** A TCP proxy whose `freeze()` silences the connections open now, both ways, for good. */
class FreezingProxy {
  private readonly pipes = new Set<{ frozen: boolean; a: net.Socket; b: net.Socket }>();
  connections = 0;

  private constructor(
    private readonly server: net.Server,
    readonly upstream: { host: string; port: number },
  ) {
    server.on('connection', (client: net.Socket) => this.pipe(client));
  }

  static async open(
    port: number,
    upstream: { host: string; port: number },
  ): Promise<FreezingProxy> {
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve());
    });
    return new FreezingProxy(server, upstream);
  }

  freeze(): void {
    for (const p of this.pipes) p.frozen = true;
  }

  async close(): Promise<void> {
    for (const p of this.pipes) {
      p.a.destroy();
      p.b.destroy();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }

  private pipe(a: net.Socket): void {
    this.connections++;
    const b = net.connect({ ...this.upstream, noDelay: true });
    const p = { frozen: false, a, b };
    this.pipes.add(p);
    // A frozen pipe passes nothing on, not even a FIN or a reset: half-open.
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!p.frozen) to.write(chunk);
      });
      from.on('end', () => {
        if (!p.frozen) to.end();
      });
      from.on('close', () => {
        this.pipes.delete(p);
        if (!p.frozen) to.destroy();
      });
      from.on('error', () => undefined);
    };
    forward(a, b);
    forward(b, a);
  }
}

class Node extends Cluster implements ClusterHandler {
  readonly got: string[] = [];
  readonly ends: number[] = [];
  readonly seen: Array<{ at: number; event: SwitchboardEvent }> = [];
  static async start(o: SwitchboardOptions): Promise<Node> {
    const c = new Node(o);
    c.setHandler(c);
    c.events$.subscribe((event) => c.seen.push({ at: performance.now(), event }));
    await c.startCluster();
    return c;
  }
  onMessage(_peer: number, _stream: number, _flags: number, message: Buffer): void {
    this.got.push(message.toString());
  }
  onControl(): void {}
  onWritable(): void {}
  onSessionStart(): void {}
  onSessionEnd(peer: number): void {
    this.ends.push(peer);
  }
  first(type: SwitchboardEvent['type'], after: number): number | undefined {
    return this.seen.find((s) => s.event.type === type && s.at >= after)?.at;
  }
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const HEARTBEAT = 100;
const DEAD = 3_000;

describe.each([
  ['timeout', {}],
  ['phi', { failureDetector: 'phi', phi: { acceptablePauseMs: 200 } }],
] as const)('proactive re-dial (%s detector)', (_name, detector) => {
  let nodes: Node[] = [];
  let proxy: FreezingProxy | undefined;
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.destroy()));
    await proxy?.close();
    nodes = [];
    proxy = undefined;
  });

  it('drops a silently dead connection and resumes the session well before deadPeerMs', async () => {
    // Node 0 dials node 1 (the lower id dials), through the proxy at node 1's address.
    const [port0, port1] = (await freePorts(2)) as [number, number];
    const alias = (await bindCandidates())[0]!;
    proxy = await FreezingProxy.open(port1, { host: alias, port: port1 });
    const list = [`127.0.0.1:${port0}`, `127.0.0.1:${port1}`];
    const options = {
      nodes: list,
      secret: SECRET,
      heartbeatMs: HEARTBEAT,
      deadPeerMs: DEAD,
      reconnectMinMs: 50,
      ...detector,
    } as const;
    nodes = [
      await Node.start({ ...options, id: 0 }),
      await Node.start({ ...options, id: 1, bindHost: alias }),
    ];
    await Promise.all(nodes.map((n) => n.rendezvous({ timeoutMs: 5_000 })));
    // A few seconds of heartbeats for phi to learn from.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const [a, b] = nodes as [Node, Node];

    const frozen = performance.now();
    proxy.freeze();
    a.sendMessage(1, 7, 0, Buffer.from('during the freeze, 0 to 1'));
    b.sendMessage(0, 7, 0, Buffer.from('during the freeze, 1 to 0'));
    await until(() => a.first('peer-reconnected', frozen) !== undefined, DEAD, 'the re-dial');
    const suspectAt = a.first('peer-suspect', frozen)!;
    const reconnectedAt = a.first('peer-reconnected', frozen)!;
    expect(suspectAt).toBeDefined();
    // The reconnect comes soon after the suspicion, far inside deadPeerMs.
    expect(reconnectedAt - frozen).toBeLessThan(DEAD / 2);
    const suspect = a.seen.find((s) => s.at >= frozen && s.event.type === 'peer-suspect')!;
    expect(suspect.event).toMatchObject({
      node: 1,
      reason: expect.stringMatching(/redialing/) as unknown,
    });
    expect(proxy.connections).toBe(2);

    // The session resumed: what was sent during the freeze is replayed, once.
    await until(() => a.got.length === 1 && b.got.length === 1, 2_000, 'the replay');
    expect(b.got).toEqual(['during the freeze, 0 to 1']);
    expect(a.got).toEqual(['during the freeze, 1 to 0']);
    // Nobody ended the session, and nobody was declared down.
    for (const n of nodes) {
      expect(n.ends).toEqual([]);
      expect(n.seen.filter((s) => s.event.type === 'peer-down')).toEqual([]);
      expect(n.peers()[0]!.state).toBe('up');
    }
  }, 20_000);
});

describe("a SIGSTOPped peer under failureDetector: 'phi'", () => {
  it('is suspect, then down no sooner than deadPeerMs, within a bounded time', async () => {
    const dead = 1_500;
    const cluster = await startCluster({
      module: new URL('./fixtures/quiet-node.ts', import.meta.url),
      nodes: 2,
      options: {
        heartbeatMs: HEARTBEAT,
        deadPeerMs: dead,
        failureDetector: 'phi',
        phi: { acceptablePauseMs: 300 },
      },
      timeoutMs: 15_000,
    });
    try {
      await cluster.ready();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const observer = cluster.node(0);
      const before = observer.events.length;
      const times: Partial<Record<string, number>> = {};
      const paused = performance.now();
      cluster.pause(1);
      await until(
        () => {
          for (const e of observer.events.slice(before))
            if (e.node === 1) times[e.type] ??= performance.now() - paused;
          return times['peer-down'] !== undefined;
        },
        dead + 5_000,
        'node 1 to be declared down',
      );
      const suspect = times['peer-suspect']!;
      const down = times['peer-down']!;
      expect(suspect).toBeDefined();
      // Suspect from phi: past the mean interval plus the acceptable pause.
      expect(suspect).toBeGreaterThan(300);
      expect(suspect).toBeLessThan(down);
      // Down: never before deadPeerMs of silence, and not long after.
      expect(down).toBeGreaterThanOrEqual(dead - 2 * HEARTBEAT);
      expect(down).toBeLessThan(dead + 2_000);
      const event = observer.events.slice(before).find((e) => e.type === 'peer-down')!;
      expect(event.detail).toMatch(/phi/);
      cluster.resume(1);
    } finally {
      await cluster.close();
    }
  }, 40_000);
});
