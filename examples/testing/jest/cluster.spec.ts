import { startCluster } from 'switchboard/testing';
import type { ProcessCluster } from 'switchboard/testing';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await startCluster({
    module: new URL('../node.mjs', import.meta.url),
    nodes: 3,
    // Short heartbeats: a dead or unreachable peer is declared down in 0.6 s.
    options: { heartbeatMs: 100, deadPeerMs: 600 },
  });
  await cluster.ready();
});
afterAll(() => cluster?.close());

test('a node calls another', async () => {
  expect(await cluster.node(0).call('greet', 1, 'ada')).toBe('hello ada, from node 1');
});

test('a killed node is seen down, and up again once restarted', async () => {
  await cluster.kill(2);
  await cluster.waitUntilDown(2);
  await cluster.restart(2);
  await cluster.waitUntilAllUp();
  expect(await cluster.node(0).call('greet', 2, 'bob')).toBe('hello bob, from node 2');
});

test('a blackholed link is seen down at both ends, and up after heal', async () => {
  cluster.blackhole(0, 1);
  await cluster.waitUntilDown(1, { by: [0] });
  await cluster.waitUntilDown(0, { by: [1] });
  cluster.heal(0, 1);
  await cluster.waitUntilAllUp();
  expect(await cluster.node(1).call('greet', 0, 'cy')).toBe('hello cy, from node 0');
});
