/**
 * Contract 5: handles. The `Sender` of an anonymous channel travels inside
 * a message to another node (the holder). If the holder's node is killed
 * before it used the sender, or while its stream is open, the receiver
 * ends with a typed error naming that node (PeerLostError,
 * ERR_SB_PEER_LOST, `node`) within about the dead-peer timeout, and never
 * hangs. If the holder closes its sender cleanly, the receiver ends with
 * `done` (after every message sent).
 */
import { ChildEnd, SLACK, TIMERS, ofStream, placed, streamId } from './scene.js';
import type { Placed } from './scene.js';
import { casesOf } from './table.js';
import type { Placement } from './table.js';

describe('contract 5, handles: an anonymous channel sender held by another node', () => {
  it.each(casesOf('handles').map((c) => [c.variant, c.placement] as const))(
    'holder %s (placement %s)',
    async (variant, placement) => {
      const sc = await placed(placement as Placement);
      try {
        await holderCase(sc, variant);
      } finally {
        await sc.dispose();
      }
    },
    20_000,
  );
});

async function holderCase(sc: Placed, variant: string): Promise<void> {
  const r = sc.recorder;
  const stream = streamId('hd');
  const holder = sc.far;
  // The receiver lives here; its sender goes to the holder inside a message.
  await holder.do({
    cmd: 'producer',
    spec: { pattern: 'mpsc-anon', stream, consumerNode: sc.near.node },
  });
  await sc.near.do({
    cmd: 'consumer',
    spec: { pattern: 'mpsc-anon', stream, producerNode: holder.node },
  });
  const sent = variant === 'killed-before-use' ? 0 : 5;
  // Resolves once the holder has the sender (and issued the run).
  await holder.do({ cmd: 'produce', spec: { stream, from: 0, count: sent, concurrency: 1 } });
  await r.until(() => ofStream(r, 'take', stream).length >= sent, `${sent} messages taken`, 5_000);

  if (variant === 'closed-cleanly') {
    await holder.do({ cmd: 'close-producer', stream });
    const end = await r.first('end', (e) => e.stream === stream, 'the receiver to end', 5_000);
    expect({
      end: end.done ? 'done' : `${end.error?.code}: ${end.error?.message}`,
      taken: ofStream(r, 'take', stream).map((t) => t.seq),
    }).toEqual({ end: 'done', taken: [0, 1, 2, 3, 4] });
    return;
  }
  if (!(holder instanceof ChildEnd)) throw new Error('a kill needs a child');
  const killedAt = Date.now();
  await holder.kill();
  const end = await r.first(
    'end',
    (e) => e.stream === stream,
    'the receiver to end after its holder was killed',
    TIMERS.deadPeerMs + 5_000,
  );
  const e = end.error;
  expect({
    done: end.done,
    code: e?.code,
    name: e?.name,
    node: e?.node,
    withinDeadPeer: end.at - killedAt <= TIMERS.deadPeerMs + SLACK,
  }).toEqual({
    done: false,
    code: 'ERR_SB_PEER_LOST',
    name: 'PeerLostError',
    node: holder.node,
    withinDeadPeer: true,
  });
}
