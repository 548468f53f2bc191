import { freePorts } from '../support/ports.js';
import {
  Harness,
  available,
  clusterOptions,
  establishedSockets,
  rendezvousAll,
} from './fixtures/harness.js';
import type { NodeProcess } from './fixtures/harness.js';

/**
 * docs/reliability.md 8: all nodes start at the same instant, repeatedly, and end
 * up with exactly one link per pair every time. Three long-lived children
 * each start a fresh switchboard (new incarnation, new ports) on the same
 * IPC broadcast, 20 rounds. Each round checks the links three ways: every
 * node's peers(), the TCP sockets each process holds, and the kernel's view
 * of established connections (`ss`), mapped back to (dialer, acceptor) pairs.
 */
const ROUNDS = 20;
const SIZE = 3;

const harness = new Harness();
let children: NodeProcess[] = [];
let haveSs = false;

beforeAll(async () => {
  haveSs = await available('ss', ['-V']);
  if (!haveSs) console.log('simultaneous.spec: `ss` not found; checking sockets per process only');
  children = Array.from({ length: SIZE }, (_, id) => harness.spawn(`node${id}`, {}));
  await Promise.all(children.map((c) => c.ready(15_000)));
});
afterAll(() => harness.cleanup());

/** The pairs [dialer, acceptor] of every established connection among `ports`. */
async function kernelLinks(ports: readonly number[], pids: readonly number[]): Promise<string[]> {
  const ends = await establishedSockets(ports);
  const pairs: string[] = [];
  for (const end of ends) {
    const node = end.pid === undefined ? -1 : pids.indexOf(end.pid);
    const acceptor = ports.indexOf(end.localPort);
    if (acceptor >= 0) {
      // The accepting end: it must belong to the process listening on that port.
      pairs.push(`accepted ${acceptor}<-${node === acceptor ? 'ok' : `pid ${end.pid}`}`);
    } else {
      pairs.push(`dialed ${node}->${ports.indexOf(end.peerPort)}`);
    }
  }
  return pairs.sort();
}

it(`links every pair exactly once when ${SIZE} nodes start at the same instant, ${ROUNDS} times`, async () => {
  const expectedKernel = [
    'accepted 1<-ok',
    'accepted 2<-ok',
    'accepted 2<-ok',
    'dialed 0->1',
    'dialed 0->2',
    'dialed 1->2',
  ];
  for (let round = 0; round < ROUNDS; round++) {
    const ports = await freePorts(SIZE);
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    const from = children.map((c) => c.mark());
    // No await between the sends: the three starts go out in the same tick.
    const started = children.map((c, id) =>
      c.request<{ incarnation: string }>(
        {
          cmd: 'start',
          options: clusterOptions(nodes, id, { reconnectMinMs: 5, reconnectMaxMs: 50 }),
        },
        10_000,
      ),
    );
    const incarnations = (await Promise.all(started)).map((s) => s.incarnation);
    await rendezvousAll(children, 5_000);

    for (const [id, c] of children.entries()) {
      const { peers, tcpSockets } = await c.peers();
      const where = `round ${round}, node ${id}`;
      expect({ where, peers: peers.map((p) => [p.node, p.state, p.incarnation]) }).toEqual({
        where,
        peers: incarnations.flatMap((inc, peer) => (peer === id ? [] : [[peer, 'up', inc]])),
      });
      expect({ where, tcpSockets }).toEqual({ where, tcpSockets: SIZE - 1 });
      const events = c.events(from[id]).map((e) => e.event);
      expect({ where, events: events.map((e) => `${e.type} ${e.node}`).sort() }).toEqual({
        where,
        events: incarnations.flatMap((_, peer) => (peer === id ? [] : [`peer-up ${peer}`])),
      });
    }
    if (haveSs) {
      const pairs = await kernelLinks(
        ports,
        children.map((c) => c.pid),
      );
      expect({ round, pairs }).toEqual({ round, pairs: expectedKernel });
    }
    await Promise.all(children.map((c) => c.request({ cmd: 'close' })));
  }
  // After twenty switchboards each, the processes still leave by themselves.
  const exits = await Promise.all(children.map((c) => c.closeAndExit()));
  expect(exits).toEqual(children.map(() => ({ code: 0, signal: null })));
}, 60_000);
