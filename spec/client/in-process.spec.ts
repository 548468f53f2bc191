/**
 * Clients in one process with their members (docs/guide.md, section 7), for
 * what the multi-process spec does not cover: an insecure cluster, a member
 * taking no clients (`maxClients: 0`), the events and the counts on both
 * sides as a client comes and goes.
 */
import { ErrorCode, Switchboard } from '../../lib/index.js';
import type { SwitchboardEvent } from '../../lib/index.js';
import { localNodes } from '../support/ports.js';

const QUICK = { heartbeatMs: 100, deadPeerMs: 600, reconnectMinMs: 10, reconnectMaxMs: 100 };

async function members(
  n: number,
  extra: (id: number) => Record<string, unknown>,
): Promise<{ nodes: string[]; sbs: Switchboard[] }> {
  const nodes = await localNodes(n);
  const sbs = await Promise.all(
    nodes.map((_, id) => Switchboard.start({ nodes, id, ...QUICK, ...extra(id) })),
  );
  await Promise.all(sbs.map((sb) => sb.rendezvous({ timeoutMs: 5_000 })));
  return { nodes, sbs };
}

describe('clients in one process', () => {
  it('attach to an insecure cluster, insecure themselves', async () => {
    const { nodes, sbs } = await members(2, () => ({ insecure: true }));
    try {
      sbs[1]!.serve('ping', () => 'pong');
      const client = await Switchboard.connect({ nodes, insecure: true, ...QUICK });
      expect(await client.call('ping', null, { timeoutMs: 2_000 })).toBe('pong');
      await client.close();
    } finally {
      await Promise.all(sbs.map((sb) => sb.close()));
    }
  });

  it('are refused by a member with maxClients 0, and served by the others', async () => {
    const secret = 'a cluster secret, long enough';
    const { nodes, sbs } = await members(2, (id) => ({ secret, maxClients: id === 0 ? 0 : 4 }));
    try {
      sbs[1]!.serve('ping', () => 'pong');
      await expect(
        Switchboard.connect({ nodes, secret, members: [0], timeoutMs: 2_000, ...QUICK }),
      ).rejects.toMatchObject({
        code: ErrorCode.CONNECT,
        reasons: [{ node: 0, error: { code: ErrorCode.CLIENT_LIMIT } }],
      });
      const client = await Switchboard.connect({ nodes, secret, timeoutMs: 2_000, ...QUICK });
      expect(await client.call('ping', null, { timeoutMs: 2_000 })).toBe('pong');
      expect(client.peers().map((p) => [p.node, p.state])).toEqual([
        [0, 'connecting'],
        [1, 'up'],
      ]);
      await client.destroy();
    } finally {
      await Promise.all(sbs.map((sb) => sb.close()));
    }
  });

  it('show as client-up and client-down on a member, and in its stats, apart from its peers', async () => {
    const secret = 'a cluster secret, long enough';
    const { nodes, sbs } = await members(2, () => ({ secret }));
    const seen: SwitchboardEvent[] = [];
    const sub = sbs[0]!.events$.subscribe((e) => seen.push(e));
    try {
      const client = await Switchboard.connect({ nodes, secret, members: [0], ...QUICK });
      const up = seen.filter((e) => e.type === 'client-up');
      expect(up).toEqual([
        { type: 'client-up', client: client.incarnation, address: expect.any(String) as string },
      ]);
      const stats = sbs[0]!.stats();
      expect([stats.role, stats.peers.length, stats.clients.map((c) => c.client)]).toEqual([
        'member',
        1,
        [client.incarnation],
      ]);
      expect(client.stats()).toMatchObject({ role: 'client', node: 2, clients: [] });
      await client.close();
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (seen.some((e) => e.type === 'client-down')) resolve();
          else setTimeout(check, 10);
        };
        check();
      });
      const down = seen.find((e) => e.type === 'client-down');
      expect(down).toMatchObject({ type: 'client-down', client: client.incarnation });
      expect(sbs[0]!.clients()).toEqual([]);
      // Nothing about the client was reported as a node of the list.
      expect(seen.filter((e) => 'node' in e && e.node !== undefined && e.node >= 2)).toEqual([]);
    } finally {
      sub.unsubscribe();
      await Promise.all(sbs.map((sb) => sb.close()));
    }
  });
});
