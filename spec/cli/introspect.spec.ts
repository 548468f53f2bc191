/**
 * The system methods every member serves (docs/api.md, "Introspection"),
 * called member to member across real processes: `$sb.ping`, `$sb.peers`,
 * `$sb.stats` and `$sb.methods`, each aimed at one member with
 * `{ node }`; the `$sb.` prefix refused to the application's own serving.
 */
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import type { MethodsReply, PeersReply, PingReply, SwitchboardStats } from '../../lib/index.js';

const MEMBER = new URL('./fixtures/member.ts', import.meta.url);

describe('introspection served by every member', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      module: MEMBER,
      nodes: 3,
      options: { heartbeatMs: 100, deadPeerMs: 600 },
      timeoutMs: 20_000,
    });
    await cluster.ready();
  }, 30_000);
  afterAll(() => cluster.close());

  const ask = <T>(from: number, method: string, node: number): Promise<T> =>
    cluster.node(from).call<T>('ask', method, node);

  it('$sb.ping answers from the member asked', async () => {
    for (const node of [0, 1, 2]) {
      const from = (node + 1) % 3;
      const before = Date.now();
      const r = await ask<PingReply>(from, '$sb.ping', node);
      expect(r.node).toBe(node);
      expect(r.incarnation).toBe(cluster.node(node).incarnation);
      expect(r.time).toBeGreaterThanOrEqual(before - 1_000);
    }
  });

  it("$sb.peers is that member's view: every other member up, with its incarnation", async () => {
    const r = await ask<PeersReply>(1, '$sb.peers', 0);
    expect(r.node).toBe(0);
    expect(r.incarnation).toBe(cluster.node(0).incarnation);
    expect(r.clients).toEqual([]);
    const others = r.peers.filter((p) => p.node !== 0);
    expect(others.map((p) => p.node).sort()).toEqual([1, 2]);
    for (const p of others) {
      expect(p.state).toBe('up');
      expect(p.incarnation).toBe(cluster.node(p.node).incarnation);
      expect(p.address).toBe(cluster.addresses[p.node]);
    }
  });

  it('$sb.methods lists what the member serves, with kinds and its contract', async () => {
    const m0 = await ask<MethodsReply>(2, '$sb.methods', 0);
    expect(m0.node).toBe(0);
    expect(m0.methods.map((m) => [m.name, m.kind])).toEqual([
      ['calc.double', 'unary'],
      ['count', 'server-stream'],
      ['doubles', 'bidi'],
      ['echo', 'unary'],
      ['sum', 'client-stream'],
    ]);
    const hash = m0.methods[0]!.contract?.version;
    expect(hash).toMatch(/^[0-9a-f]{16}$/);
    expect(m0.methods[0]!.contract).toEqual({
      name: 'calc',
      version: hash,
      request: {
        vendor: 'zod',
        jsonSchema: expect.objectContaining({ type: 'number' }) as unknown,
      },
      response: {
        vendor: 'zod',
        jsonSchema: expect.objectContaining({ type: 'number' }) as unknown,
      },
    });
    expect(m0.methods[2]!.contract).toBeUndefined();
    const m1 = await ask<MethodsReply>(0, '$sb.methods', 1);
    expect(m1.methods.map((m) => m.name)).toEqual(['add', 'echo']);
  });

  it("$sb.stats is the member's stats(), metrics included, without the system methods", async () => {
    // Known traffic: node 0 calls echo on node 2 three times.
    for (let i = 0; i < 3; i++) await ask(0, 'echo', 2);
    await ask(1, '$sb.ping', 2);
    const s = await ask<SwitchboardStats>(1, '$sb.stats', 2);
    expect(s.node).toBe(2);
    expect(s.incarnation).toBe(cluster.node(2).incarnation);
    expect([...s.rpc.served].sort()).toEqual(['add', 'echo']);
    const echo = s.metrics.endpoints.find((e) => e.name === 'echo');
    expect(echo?.num_requests).toBe(3);
    expect(s.metrics.endpoints.map((e) => e.name).sort()).toEqual(['add', 'echo']);
    expect(s.metrics.rpcServer.every((r) => r.service !== '$sb')).toBe(true);
    expect(s.peers.map((p) => p.node).sort()).toEqual([0, 1, 2].filter((n) => n !== 2));
    // The same holds of the member's own stats() and its Prometheus text.
    expect(await cluster.node(2).call<string[]>('served')).toEqual(
      expect.arrayContaining(['add', 'echo']),
    );
    expect(await cluster.node(2).call<string[]>('served')).toHaveLength(2);
    expect(await cluster.node(2).call<string>('metricsText')).not.toContain('$sb');
  });

  it.each([
    ['serve', '$sb.peers'],
    ['serve', '$sb.mine'],
    ['serveStream', '$sb.stream'],
    ['serveService', '$sb'],
  ] as const)('refuses %s of the reserved name %s with an OptionError', async (how, name) => {
    const r = await cluster.node(1).call('tryServe', name, how);
    expect(r).toMatchObject({
      name: 'OptionError',
      code: 'ERR_SB_INVALID_OPTION',
      message: expect.stringContaining('reserved') as unknown,
    });
    // The real one still answers.
    expect((await ask<PingReply>(0, '$sb.ping', 1)).node).toBe(1);
  });

  it('a name that merely resembles the prefix is the application’s', async () => {
    expect(await cluster.node(1).call('tryServe', 'sb.peers', 'serve')).toEqual({ served: true });
    expect(await cluster.node(1).call('tryServe', '$sbx', 'serve')).toEqual({ served: true });
  });

  it('$sb.peers shows a killed member down', async () => {
    await cluster.kill(2);
    await cluster.waitUntilDown(2);
    const r = await ask<PeersReply>(1, '$sb.peers', 0);
    expect(r.peers.find((p) => p.node === 2)?.state).toBe('down');
    expect(r.peers.find((p) => p.node === 1)?.state).toBe('up');
  });
});
