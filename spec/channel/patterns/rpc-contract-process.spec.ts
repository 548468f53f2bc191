/**
 * A service contract served in one process and called from another
 * (issue 15, item 1, "done when"): two real node processes started by
 * switchboard/testing from spec/channel/fixtures/contract-node.ts, both
 * importing the contract of spec/channel/fixtures/greeter-contract.ts.
 * Every kind of method; validation at both ends; a client of another
 * version of the contract gets ERR_SB_CONTRACT_MISMATCH.
 */
import { startCluster } from '../../../lib/testing/index.js';
import type { ProcessCluster } from '../../../lib/testing/index.js';

const NODE = new URL('../fixtures/contract-node.ts', import.meta.url);

describe('a service contract across two processes', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await startCluster({ module: NODE, nodes: 2, timeoutMs: 20_000 });
    await cluster.ready();
  }, 30_000);
  afterAll(() => cluster.close());

  const caller = () => cluster.node(1);
  const server = () => cluster.node(0);

  it('both processes built the same version hash', async () => {
    const hashes = await Promise.all([server().call('hash'), caller().call('hash')]);
    expect(hashes[0]).toMatch(/^[0-9a-f]{16}$/);
    expect(hashes[1]).toBe(hashes[0]);
  });

  it('calls every kind of method through the typed client', async () => {
    expect(await caller().call('hello', 'Ada')).toEqual({ ok: 'Hello, Ada, from node 0!' });
    expect(await caller().call('count', 4)).toEqual({ ok: [0, 1, 2, 3] });
    expect(await caller().call('sum', [1, 2, 3])).toEqual({ ok: 6 });
    expect(await caller().call('upper', ['a', 'b'])).toEqual({ ok: ['A', 'B'] });
  });

  it('validates at both ends', async () => {
    const before = (await server().call<unknown[]>('seen')).length;
    // The caller's own check.
    expect(await caller().call('hello', '')).toMatchObject({
      error: 'ValidationError',
      code: 'ERR_SB_VALIDATION',
      where: 'the request of "greeter.hello"',
      issues: [{ path: ['name'] }],
    });
    // The server's check, for a caller without the contract: never a RemoteError.
    expect(await caller().call('untypedHello', { name: '' })).toMatchObject({
      error: 'ValidationError',
      code: 'ERR_SB_VALIDATION',
      where: 'node 0: the request of "greeter.hello"',
      issues: [{ path: ['name'] }],
    });
    expect(await caller().call('untypedSum', [1, 'two'])).toMatchObject({
      error: 'ValidationError',
      where: 'node 0: an item of the request stream of "greeter.sum"',
    });
    // A bad reply, refused on the server before it left.
    expect(await caller().call('hello', 'bug')).toMatchObject({
      error: 'ValidationError',
      where: 'node 0: the reply of "greeter.hello"',
    });
    expect(await caller().call('upper', ['fine', 'oops'])).toMatchObject({
      error: 'ValidationError',
      where: 'node 0: an item of the reply stream of "greeter.upper"',
    });
    const seen = (await server().call<unknown[]>('seen')).slice(before);
    expect(seen).not.toContain('');
    expect(seen).not.toContain('two');
    expect(seen).toEqual(expect.arrayContaining(['bug', 'fine', 'oops', 1]));
  });

  it('a client of another version gets ERR_SB_CONTRACT_MISMATCH', async () => {
    const v1 = await server().call<string>('hash');
    const r = await caller().call<{
      error: string;
      code: string;
      message: string;
    }>('v2Hello', 'Ada');
    expect(r).toMatchObject({ error: 'ContractMismatchError', code: 'ERR_SB_CONTRACT_MISMATCH' });
    expect(r.message).toContain(`node 0 serves greeter#${v1}`);
  });
});
