import { ClientConnectError, ErrorCode } from '../../lib/index.js';
import { NodeCallError, closeAll, startClient, startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';

/**
 * switchboard/testing's client processes (docs/testing.md, "Client
 * processes"): `startClient()` forks a process that attaches to a running
 * cluster with `Switchboard.connect` and runs the user's module
 * (spec/testing/fixtures/client.ts) with the client as `ctx.sb`; the
 * handle is a node's (calls, output, peers, stop, pause, kill), and a
 * refused connect rejects with the client's `ClientConnectError`.
 */
const MEMBER = new URL('./fixtures/node.ts', import.meta.url);
const CLIENT = new URL('./fixtures/client.ts', import.meta.url);
const CLIENT_SECRET = 'the members take clients with this';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await startCluster({
    module: MEMBER,
    nodes: 2,
    options: { clientSecret: CLIENT_SECRET, heartbeatMs: 100, deadPeerMs: 600 },
    timeoutMs: 15_000,
  });
  await cluster.ready({ timeoutMs: 10_000 });
}, 60_000);

afterAll(() => closeAll(), 30_000);

it('runs the module in a client process: calls, output, peers, errors, stop', async () => {
  const client = await startClient({
    module: CLIENT,
    options: { nodes: cluster.addresses, clientSecret: CLIENT_SECRET, timeoutMs: 5_000 },
    data: { label: 'c1' },
    timeoutMs: 10_000,
  });
  expect(client.functions).toEqual(expect.arrayContaining(['whoami', 'ask', 'fail']));
  const me = await client.call<{ id: number; role: string }>('whoami');
  // A client's id comes after the node list's.
  expect(me.role).toBe('client');
  expect(me.id).toBeGreaterThanOrEqual(2);
  expect(client.incarnation).toEqual(expect.any(String));
  await client.waitForOutput(`client ${me.id} attached, data {"label":"c1"}`, {
    stream: 'stdout',
  });
  // Its RPC goes through the members' links.
  for (const node of [0, 1])
    expect(await client.call('ask', node)).toEqual({
      id: node,
      incarnation: cluster.node(node).incarnation,
    });
  // What its switchboard sees of the members reaches the handle (its
  // events from the connect's resolving on: peer-up of a member linked
  // earlier came before the kit could listen).
  for (let k = 0; k < 100 && client.peers().filter((p) => p.state === 'up').length < 2; k++)
    await new Promise((resolve) => setTimeout(resolve, 50));
  expect(client.peers().map((p) => [p.node, p.state])).toEqual([
    [0, 'up'],
    [1, 'up'],
  ]);
  // A function that throws: a NodeCallError with the error's code.
  const failed = await client.call('fail', 'on purpose').then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(failed).toBeInstanceOf(NodeCallError);
  expect(failed).toMatchObject({ code: 'E_FIXTURE', fn: 'fail' });
  expect((failed as Error).message).toContain('on purpose');
  // The members list it while it is attached.
  await cluster.node(0).waitForEvent((e) => e.type === 'client-up', { timeoutMs: 5_000 });
  await client.stop(5_000);
  expect(client.exitStatus).toEqual({ code: 0, signal: null });
  expect(client.alive).toBe(false);
}, 60_000);

it('rejects the start with the ClientConnectError the client got when no member takes it', async () => {
  const refused = await startClient({
    module: CLIENT,
    options: { nodes: cluster.addresses, clientSecret: 'not the client secret', timeoutMs: 3_000 },
    timeoutMs: 10_000,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(refused).toBeInstanceOf(ClientConnectError);
  expect(refused).toMatchObject({
    code: ErrorCode.CONNECT,
    reasons: [
      { node: 0, error: { code: ErrorCode.AUTH_FAILED } },
      { node: 1, error: { code: ErrorCode.AUTH_FAILED } },
    ],
  });
  expect((refused as Error).stack).toContain('in the client process');
}, 30_000);

it('pauses and resumes a client, and closeAll() kills one still running', async () => {
  const client = await startClient({
    module: CLIENT,
    options: { nodes: cluster.addresses, clientSecret: CLIENT_SECRET, members: [1] },
    timeoutMs: 10_000,
  });
  client.pause();
  expect(client.status).toBe('paused');
  client.resume();
  expect(await client.call('ask', 1)).toMatchObject({ id: 1 });
  await closeAll();
  expect(client.alive).toBe(false);
  expect(client.exitStatus).toEqual({ code: null, signal: 'SIGKILL' });
}, 30_000);
