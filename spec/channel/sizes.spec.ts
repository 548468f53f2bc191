import { MessageTooLargeError, RefusedError } from '../../lib/index.js';
import type { SwitchboardError } from '../../lib/index.js';
import { closeAll, clusterOf, SECRET, until } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';
import { Switchboard } from '../../lib/facade.js';

const MiB = 1024 * 1024;

/** Node 0 with the default maxMessageSize, node 1 accepting at most 1 MiB. */
async function mixedPair(): Promise<[Switchboard, Switchboard]> {
  const nodes = await localNodes(2);
  const sbs = await Promise.all([
    Switchboard.start({ nodes, id: 0, secret: SECRET }),
    Switchboard.start({ nodes, id: 1, secret: SECRET, maxMessageSize: MiB }),
  ]);
  await Promise.all(sbs.map((sb) => sb.rendezvous({ timeoutMs: 10_000 })));
  return [sbs[0], sbs[1]];
}

describe('sizes are announced (SETTINGS)', () => {
  it("each node learns its peer's maxMessageSize when the link is established", async () => {
    const [a, b] = await mixedPair();
    try {
      await until(() => clusterOf(a).peerLimit(1) === MiB, 5_000, 'the announcement');
      expect(clusterOf(b).peerLimit(0)).toBe(MiB); // never more than its own
    } finally {
      await closeAll([a, b]);
    }
  });

  it("a send over the receiving node's limit is refused at send(), typed, and the link keeps working", async () => {
    const [a, b] = await mixedPair();
    try {
      await until(() => clusterOf(a).peerLimit(1) === MiB, 5_000, 'the announcement');
      const rx = b.receiver<Buffer>('big');
      const tx = a.sender<Buffer>('big', { node: 1 });
      const err: unknown = await tx.send(Buffer.alloc(3 * MiB)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MessageTooLargeError);
      expect(err).toMatchObject({
        code: 'ERR_SB_MESSAGE_TOO_LARGE',
        size: 3 * MiB,
        limit: MiB,
        node: 1,
      });
      await tx.send(Buffer.alloc(100));
      expect((await rx.next()).value).toHaveLength(100);
      // The same for a call's request, and for a publication (a counted drop there).
      b.serve('echo', (x: unknown) => x);
      await expect(a.call('echo', Buffer.alloc(2 * MiB))).rejects.toMatchObject({
        code: 'ERR_SB_MESSAGE_TOO_LARGE',
      });
      await expect(a.call('echo', 'small')).resolves.toBe('small');
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a receiver that still gets one (a peer ignoring the announcement) refuses it and the sender is told, with the message', async () => {
    const [a, b] = await mixedPair();
    try {
      await until(() => clusterOf(a).peerLimit(1) === MiB, 5_000, 'the announcement');
      // Make node 0 behave like a peer that ignores what node 1 announced.
      const cluster = clusterOf(a) as unknown as { peerLimit: (p: number) => number };
      cluster.peerLimit = () => 64 * MiB;
      const rx = b.receiver<Buffer>('big');
      const tx = a.sender<Buffer>('big', { node: 1 });
      const errors: SwitchboardError[] = [];
      tx.errors$.subscribe((e) => errors.push(e));
      const big = Buffer.alloc(3 * MiB, 7);
      await tx.send(big);
      await tx.send(Buffer.from('after'));
      expect((await rx.next()).value?.toString()).toBe('after');
      await until(() => errors.length === 1, 5_000, 'the refusal');
      expect(errors[0]).toBeInstanceOf(RefusedError);
      expect(errors[0]).toMatchObject({ code: 'ERR_SB_MESSAGE_TOO_LARGE', node: 1 });
      expect((errors[0] as RefusedError<Buffer>).messages[0]).toBe(big);
      expect(b.stats().receivers.find((r) => r.name === 'big')).toMatchObject({ invalid: 1 });
      expect(a.peers()[0]!.state).toBe('up');
    } finally {
      await closeAll([a, b]);
    }
  });
});
