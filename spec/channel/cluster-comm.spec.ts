import { localNodes } from '../support/ports.js';
import { Children, childOptions } from './fixtures/children.js';
import type { Child, Reply } from './fixtures/children.js';

/**
 * The `comm` crate's three-process test: a leader broadcasts a number and
 * then a sender on an MPMC `all` channel; each follower replies through the
 * sender it received, which works on its node as it would on the leader's.
 * Each node is its own process.
 */
const children = new Children();
afterEach(() => children.cleanup());

describe.each([0, 2])('three processes, leader on node %d', (leaderId) => {
  it('each follower replies to the broadcast through the sender it carried', async () => {
    const nodes = await localNodes(3);
    const cs = nodes.map((_, id) => children.spawn(`node${id}`, childOptions(nodes, id)));
    await Promise.all(cs.map((c) => c.started()));
    await Promise.all(cs.map((c) => c.request({ cmd: 'rendezvous', timeoutMs: 10_000 }, 12_000)));
    const leader = cs[leaderId]!;
    const followers = cs.filter((c) => c !== leader);
    await Promise.all(followers.map((c) => c.request({ cmd: 'follower', channel: 'numbers' })));

    const replies = await leader.request<Reply[]>(
      { cmd: 'leader', channel: 'numbers', followers: 2, value: 42, timeoutMs: 10_000 },
      15_000,
    );

    const expected = [0, 1, 2].filter((id) => id !== leaderId).map((from) => ({ from, value: 42 }));
    expect([...replies].sort((a, b) => a.from - b.from)).toEqual(expected);
    // Each follower saw the number once, and answered once.
    for (const f of followers) {
      await f.waitFor(
        (r) => (r.message.type === 'answered' ? r.message.value : undefined),
        'answered',
        5_000,
      );
      expect(answers(f)).toEqual([42]);
    }
    await Promise.all(cs.map((c) => c.request({ cmd: 'close' })));
    await Promise.all(cs.map((c) => c.exited));
  }, 30_000);
});

function answers(c: Child): number[] {
  return c.log.flatMap((r) => (r.message.type === 'answered' ? [r.message.value] : []));
}
