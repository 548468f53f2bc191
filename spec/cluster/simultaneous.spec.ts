import { randomBytes } from 'node:crypto';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import { freePorts } from '../support/ports.js';
import { available, establishedSockets } from './fixtures/system.js';

/**
 * docs/reliability.md 8: all nodes start at the same instant, repeatedly, and end
 * up with exactly one link per pair every time. Three long-lived processes
 * (a switchboard/testing cluster running fixtures/round-node.ts) each
 * start a fresh switchboard (new incarnation, new ports) on calls the test
 * sends in one tick, 20 rounds. Each round checks the links three ways:
 * every node's peers(), the TCP sockets each process holds (the kit's own
 * links, counted before the rounds, plus the round's), and the kernel's
 * view of established connections (`ss`) on the round's ports, mapped back
 * to (dialer, acceptor) pairs.
 */
const ROUNDS = 20;
const SIZE = 3;
const SECRET = randomBytes(16).toString('hex');

let cluster: ProcessCluster;
let haveSs = false;
/** TCP sockets each process holds for the kit's own switchboard. */
let kitSockets: number[] = [];

beforeAll(async () => {
  haveSs = await available('ss', ['-V']);
  if (!haveSs) console.log('simultaneous.spec: `ss` not found; checking sockets per process only');
  cluster = await startCluster({
    module: new URL('./fixtures/round-node.ts', import.meta.url),
    nodes: SIZE,
    timeoutMs: 15_000,
  });
  await cluster.ready();
  kitSockets = await Promise.all(cluster.nodes.map((c) => c.call<number>('tcpSockets')));
  // One link per peer for the kit's switchboard of each node.
  expect(kitSockets).toEqual(cluster.nodes.map(() => SIZE - 1));
}, 30_000);
afterAll(() => cluster.close());

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
  const children = cluster.nodes;
  for (let round = 0; round < ROUNDS; round++) {
    const ports = await freePorts(SIZE);
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    // No await between the calls: the three starts go out in the same tick.
    const started = children.map((c, id) =>
      c.call<string>('start', {
        nodes,
        id,
        secret: SECRET,
        handshakeTimeoutMs: 1_000,
        reconnectMinMs: 5,
        reconnectMaxMs: 50,
        lingerMs: 1_000,
      }),
    );
    const incarnations = await Promise.all(started);
    await Promise.all(children.map((c) => c.call('rendezvous', 5_000)));

    for (const [id, c] of children.entries()) {
      const seen = await c.call<{ peers: unknown[]; events: string[]; tcpSockets: number }>('seen');
      const where = `round ${round}, node ${id}`;
      expect({ where, peers: seen.peers }).toEqual({
        where,
        peers: incarnations.flatMap((inc, peer) => (peer === id ? [] : [[peer, 'up', inc]])),
      });
      expect({ where, tcpSockets: seen.tcpSockets }).toEqual({
        where,
        tcpSockets: kitSockets[id]! + SIZE - 1,
      });
      expect({ where, events: [...seen.events].sort() }).toEqual({
        where,
        events: incarnations.flatMap((_, peer) => (peer === id ? [] : [`peer-up ${peer}`])),
      });
    }
    if (haveSs) {
      const pairs = await kernelLinks(
        ports,
        children.map((c) => c.pid!),
      );
      expect({ round, pairs }).toEqual({ round, pairs: expectedKernel });
    }
    await Promise.all(children.map((c) => c.call('close')));
  }
  // After twenty switchboards each (and the kit's), the processes still leave by themselves.
  await Promise.all(children.map((c) => cluster.stop(c.id, { exitByItself: true })));
  expect(children.map((c) => c.exitStatus)).toEqual(
    children.map(() => ({ code: 0, signal: null })),
  );
}, 60_000);
