/**
 * Keeps the service-contract dumps of docs/wire-protocol.md (section 13.7,
 * the `wire-contract` blocks) honest: two switchboards over TCP, node 1
 * serving the contract `calc` and node 0 calling it through its typed
 * client. What node 0's directory learnt is the entry the announcement
 * carried, and what node 1's server took is the request's head; the
 * blocks must hold exactly those, encoded as the directory (a CBOR `add`
 * map, lib/channel/directory.ts) and the channel core (a HEAD message,
 * lib/protocol/head.ts) encode them.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Headed } from '../../lib/channel/envelope.js';
import type { Rpc } from '../../lib/channel/patterns/rpc/rpc.js';
import { defineService, type } from '../../lib/index.js';
import type { Switchboard } from '../../lib/index.js';
import { encodeValue } from '../../lib/protocol/codec.js';
import { encodeHead } from '../../lib/protocol/head.js';
import { closeAll, hubOf, startCluster, until } from '../support/cluster.js';
import { docBlocks, parseHex, toHex } from '../support/doc-blocks.js';

const DOC = readFileSync(
  fileURLToPath(new URL('../../docs/wire-protocol.md', import.meta.url)),
  'utf8',
);

const Calc = defineService('calc', {
  add: { kind: 'unary', request: type<[number, number]>(), response: type<number>() },
});

describe('docs/wire-protocol.md, the service contract blocks', () => {
  let sbs: Switchboard[];
  let entry: unknown;
  let head: readonly unknown[] | undefined;
  let body: unknown;

  beforeAll(async () => {
    sbs = await startCluster(2);
    const [caller, server] = sbs as [Switchboard, Switchboard];
    server.serveService(Calc, { add: ([x, y]) => x + y });
    // What the server takes, as it takes it.
    const rpc = (server as unknown as { rpcEngine: Rpc }).rpcEngine;
    const s = (rpc as unknown as { server: { onRequest(served: unknown, raw: unknown): void } })
      .server;
    const take = s.onRequest.bind(s);
    s.onRequest = (served, raw) => {
      if (raw instanceof Headed && head === undefined) {
        head = raw.head;
        body = raw.body;
      }
      take(served, raw);
    };
    await until(
      () => hubOf(caller).directory.lookup('service', 'calc').length === 1,
      5_000,
      'the announcement',
    );
    const e = hubOf(caller).directory.lookup('service', 'calc')[0]!;
    entry = [e.kind, e.name, e.id, e.meta];
    expect(await caller.client(Calc).add([2, 3], { timeoutMs: 5000 })).toBe(5);
  });
  afterAll(() => closeAll(sbs));

  const block = (name: string): Buffer => {
    const b = docBlocks(DOC, 'wire-contract').find((x) => x.name === name);
    if (b === undefined) throw new Error(`no wire-contract block ${name}`);
    return parseHex(name, b.body);
  };

  it('has exactly the blocks this spec checks', () => {
    expect(docBlocks(DOC, 'wire-contract').map((b) => b.name)).toEqual([
      'service-add',
      'contract-request',
    ]);
  });

  it('service-add: the CONTROL payload that announces the contract', () => {
    expect(entry).toEqual(['service', 'calc', 0, { h: Calc.hash, m: [['add', 'unary']] }]);
    expect(toHex(block('service-add'))).toBe(toHex(encodeValue({ op: 'add', e: entry })));
  });

  it('contract-request: the typed client request, its head ending with the hash', () => {
    expect(head).toEqual([0, 1, 0, expect.any(Number), 5000, 0, Calc.hash]);
    // The reply receiver's id varies with what the caller made before; the document shows 1.
    const shown = [...head!.slice(0, 3), 1, ...head!.slice(4)] as Array<number | string>;
    expect(toHex(block('contract-request'))).toBe(toHex(encodeHead(shown, encodeValue(body))));
  });
});
