/**
 * Service contracts at run time (lib/channel/patterns/rpc/contract.ts,
 * docs/guide.md "Service contracts"): every kind of method served from a
 * contract and called through its typed client, on one node and between
 * two switchboards over TCP; validation at both ends; the announcement and
 * the version hash; a mismatch as a typed error. The same contract across
 * two processes is rpc-contract-process.spec.ts.
 */
import { z } from 'zod';
import {
  ContractMismatchError,
  defineService,
  ErrorCode,
  OptionError,
  RemoteError,
  type,
  ValidationError,
} from '../../../lib/index.js';
import type {
  ServiceHandlers,
  StandardSchemaV1,
  Switchboard,
  SwitchboardError,
} from '../../../lib/index.js';
import { closeAll, hubOf, pathCluster, PATHS, startCluster, until } from '../../support/cluster.js';

const Greeter = defineService('greeter', {
  hello: {
    kind: 'unary',
    request: z.object({ name: z.string().min(1) }),
    response: z.string(),
  },
  count: { kind: 'server-stream', request: z.number().int().min(0), response: z.number() },
  sum: { kind: 'client-stream', request: z.number(), response: z.number() },
  upper: { kind: 'bidi', request: z.string(), response: z.string().regex(/^[A-Z]*$/) },
});

/** The handlers, counting what reached them (a refused request never does). */
function greeter(seen: unknown[]): ServiceHandlers<typeof Greeter> {
  return {
    hello: ({ name }: { name: string }) => {
      seen.push(name);
      return name === 'bug' ? (42 as unknown as string) : `Hello, ${name}!`;
    },
    *count(n: number) {
      seen.push(n);
      for (let i = 0; i < n; i++) yield i === 3 && n === 7 ? ('three' as unknown as number) : i;
    },
    async sum(xs: AsyncIterable<number>) {
      let s = 0;
      for await (const x of xs) {
        seen.push(x);
        s += x;
      }
      return s;
    },
    async *upper(words: AsyncIterable<string>) {
      for await (const w of words) {
        seen.push(w);
        yield w === 'oops' ? w : w.toUpperCase();
      }
    },
  };
}

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

/** The error `p` rejects with (fails if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe.each(PATHS)('service contracts over the %s path', (path) => {
  it('serves every kind of method from a contract and calls it through its typed client', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const seen: unknown[] = [];
      const handle = rx.serveService(Greeter, {
        hello: ({ name }) => `Hello, ${name}!`,
        *count(n) {
          for (let i = 0; i < n; i++) yield i;
        },
        async sum(xs) {
          let s = 0;
          for await (const x of xs) s += x;
          return s;
        },
        async *upper(words) {
          for await (const w of words) {
            seen.push(w);
            yield w.toUpperCase();
          }
        },
      });
      expect(handle.service).toBe('greeter');
      expect(handle.hash).toBe(Greeter.hash);
      expect(handle.methods.map((m) => [m.method, m.kind])).toEqual([
        ['greeter.hello', 'unary'],
        ['greeter.count', 'server-stream'],
        ['greeter.sum', 'client-stream'],
        ['greeter.upper', 'bidi'],
      ]);
      const g = tx.client(Greeter, { timeoutMs: 5_000 });
      expect(Object.keys(g)).toEqual(['hello', 'count', 'sum', 'upper']);
      expect(await g.hello({ name: 'Ada' })).toBe('Hello, Ada!');
      expect(await drain(g.count(5))).toEqual([0, 1, 2, 3, 4]);
      expect(await g.sum([1, 2, 3, 4])).toBe(10);
      expect(await drain(g.upper(['one', 'two']))).toEqual(['ONE', 'TWO']);
      expect(seen).toEqual(['one', 'two']);
      // Per-call options over the client's.
      expect(await g.hello({ name: 'Grace' }, { node: rx.id, timeoutMs: 1_000 })).toBe(
        'Hello, Grace!',
      );
      // Untyped calls reach a contract's methods under `service.method`.
      expect(await tx.call('greeter.hello', { name: 'Linus' })).toBe('Hello, Linus!');
      handle.close();
      expect(handle.closed).toBe(true);
      expect(handle.methods.every((m) => m.closed)).toBe(true);
      await until(
        () => hubOf(tx).directory.lookup('rpc', 'greeter.hello').length === 0,
        5_000,
        'the withdrawal',
      );
      const gone = await failure(g.hello({ name: 'x' }, { waitForServerMs: 0 }));
      expect((gone as SwitchboardError).code).toBe(ErrorCode.NO_SERVER);
    } finally {
      await closeAll(sbs);
    }
  });

  it('validates at both ends: a bad request never reaches the handler, a bad reply is refused', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const seen: unknown[] = [];
      rx.serveService(Greeter, greeter(seen));
      const g = tx.client(Greeter, { timeoutMs: 5_000 });

      // The caller's own check: refused before it leaves.
      const mine = await failure(g.hello({ name: '' }));
      expect(mine).toBeInstanceOf(ValidationError);
      expect((mine as ValidationError).code).toBe(ErrorCode.VALIDATION);
      expect((mine as ValidationError).where).toBe('the request of "greeter.hello"');
      expect((mine as ValidationError).issues[0]?.path).toEqual(['name']);

      // The server's check, for a caller without the contract: a typed error, not a RemoteError.
      const theirs = await failure(tx.call('greeter.hello', { name: '' }));
      expect(theirs).toBeInstanceOf(ValidationError);
      expect(theirs).not.toBeInstanceOf(RemoteError);
      expect(theirs.message).toMatch(/^node \d: the request of "greeter.hello": invalid message/);
      expect((theirs as ValidationError).issues[0]?.path).toEqual(['name']);
      const notANumber = await failure(drain(tx.callStream('greeter.count', 'five')));
      expect(notANumber).toBeInstanceOf(ValidationError);
      expect(seen).toEqual([]);

      // A handler's bad reply is refused on the server, before it leaves.
      const reply = await failure(g.hello({ name: 'bug' }));
      expect(reply).toBeInstanceOf(ValidationError);
      expect(reply.message).toMatch(/^node \d: the reply of "greeter.hello"/);
      expect(seen).toEqual(['bug']);

      // A bad item in a reply stream ends the stream with the refusal, after the good ones.
      const got: number[] = [];
      const midway = await failure(
        (async () => {
          for await (const i of g.count(7)) got.push(i);
        })(),
      );
      expect(midway).toBeInstanceOf(ValidationError);
      expect(midway.message).toMatch(/an item of the reply stream of "greeter.count"/);
      expect(got).toEqual([0, 1, 2]);

      // A bad item in the caller's request stream fails the call; the handler never sees it.
      seen.length = 0;
      const item = await failure(g.sum([1, 2, 'three' as unknown as number, 4]));
      expect(item).toBeInstanceOf(ValidationError);
      expect((item as ValidationError).where).toBe(
        'an item of the request stream of "greeter.sum"',
      );
      await until(() => rx.stats().rpc.runningHandlers === 0, 5_000, 'the handler to finish');
      expect(seen).toEqual([1, 2]);
      // The same from a caller without the contract: the server refuses it.
      seen.length = 0;
      const untyped = await failure(tx.callClientStream('greeter.sum', [1, 'two']));
      expect(untyped).toBeInstanceOf(ValidationError);
      expect(untyped.message).toMatch(/^node \d: an item of the request stream of "greeter.sum"/);
      expect(seen).toEqual([1]);
      const bidi = await failure(drain(tx.callBidi('greeter.upper', ['ok', 7])));
      expect(bidi).toBeInstanceOf(ValidationError);
      const badOut = await failure(drain(g.upper(['fine', 'oops'])));
      expect(badOut).toBeInstanceOf(ValidationError);
      expect(badOut.message).toMatch(/an item of the reply stream of "greeter.upper"/);

      // And the server still serves.
      expect(await g.hello({ name: 'Ada' })).toBe('Hello, Ada!');
      await until(() => rx.stats().rpc.runningHandlers === 0, 5_000, 'handlers to finish');
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('service contracts between two switchboards over TCP', () => {
  let sbs: Switchboard[];
  let server: Switchboard;
  let caller: Switchboard;

  beforeEach(async () => {
    sbs = await startCluster(2);
    [server, caller] = sbs as [Switchboard, Switchboard];
  });
  afterEach(() => closeAll(sbs));

  it('announces the contract: its name, methods and version hash', async () => {
    server.serveService(Greeter, greeter([]));
    await until(
      () => hubOf(caller).directory.lookup('service', 'greeter').length === 1,
      5_000,
      'the announcement',
    );
    const [entry] = hubOf(caller).directory.lookup('service', 'greeter');
    expect(entry).toEqual({
      node: 0,
      kind: 'service',
      name: 'greeter',
      id: 0,
      meta: {
        h: Greeter.hash,
        m: [
          ['hello', 'unary'],
          ['count', 'server-stream'],
          ['sum', 'client-stream'],
          ['upper', 'bidi'],
        ],
      },
    });
    // The methods are ordinary RPC entries.
    expect(hubOf(caller).directory.lookup('rpc', 'greeter.sum')[0]?.meta).toBe('client-stream');
  });

  it('a call against another version of the contract fails with ContractMismatchError', async () => {
    server.serveService(Greeter, greeter([]));
    const V2 = defineService('greeter', {
      hello: { kind: 'unary', request: z.object({ name: z.string() }), response: z.string() },
    });
    expect(V2.hash).not.toBe(Greeter.hash);
    const v2 = caller.client(V2, { waitForServerMs: 100 });
    const err = await failure(v2.hello({ name: 'Ada' }));
    expect(err).toBeInstanceOf(ContractMismatchError);
    const m = err as ContractMismatchError;
    expect(m.code).toBe(ErrorCode.CONTRACT_MISMATCH);
    expect(m).toMatchObject({
      service: 'greeter',
      method: 'greeter.hello',
      expected: V2.hash,
      found: [{ node: 0, hash: Greeter.hash }],
    });
    expect(m.message).toBe(
      `call "greeter.hello" expects contract greeter#${V2.hash}, but node 0 serves greeter#${Greeter.hash}`,
    );
    // Once the server moves to that version, the same client gets through.
    server.serveService(V2, { hello: ({ name }) => `v2 ${name}` });
    expect(await v2.hello({ name: 'Ada' }, { waitForServerMs: 2_000 })).toBe('v2 Ada');
  });

  it('a method served without a contract is a mismatch for a typed client, not a decode failure', async () => {
    server.serve('greeter.hello', () => 'plain');
    const err = await failure(
      caller.client(Greeter, { waitForServerMs: 100 }).hello({ name: 'x' }),
    );
    expect(err).toBeInstanceOf(ContractMismatchError);
    expect((err as ContractMismatchError).found).toEqual([{ node: 0, hash: undefined }]);
    expect(err.message).toMatch(/node 0 serves it without a contract/);
  });

  it('the server refuses a call of another version unrun when the directory was behind', async () => {
    const seen: unknown[] = [];
    server.serveService(Greeter, greeter(seen));
    const g = caller.client(Greeter, { node: 0 });
    expect(await g.hello({ name: 'Ada' })).toBe('Hello, Ada!');
    // A new version served now: the caller's directory still lists the old one.
    const V3 = defineService('greeter', {
      hello: { kind: 'unary', request: type<{ name: string }>(), response: type<string>() },
    });
    let ran = 0;
    server.serveService(V3, {
      hello: () => {
        ran++;
        return 'v3';
      },
    });
    const err = await failure(g.hello({ name: 'Ada' }));
    expect(err).toBeInstanceOf(ContractMismatchError);
    expect((err as ContractMismatchError).found).toEqual([{ node: 0, hash: V3.hash }]);
    expect(ran).toBe(0);
  });

  it('validates the reply on the caller too', async () => {
    // Two hand-written validators of one vendor, without a JSON Schema: one hash, and
    // only the caller's refuses odd numbers, so the refusal can only be the caller's.
    const anything: StandardSchemaV1<number> = {
      '~standard': {
        version: 1,
        vendor: 'spec',
        validate: (value) => ({ value: value as number }),
      },
    };
    const even: StandardSchemaV1<number> = {
      '~standard': {
        version: 1,
        vendor: 'spec',
        validate: (value) =>
          typeof value === 'number' && value % 2 === 0
            ? { value }
            : { issues: [{ message: 'not even' }] },
      },
    };
    const served = defineService('nums', {
      next: { kind: 'unary', request: anything, response: anything },
    });
    const called = defineService('nums', {
      next: { kind: 'unary', request: anything, response: even },
    });
    expect(called.hash).toBe(served.hash);
    server.serveService(served, { next: (n) => n + 1 });
    const nums = caller.client(called);
    expect(await nums.next(1)).toBe(2);
    const err = await failure(nums.next(2));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('the reply of "nums.next": invalid message: not even');
  });

  it('types without schemas: nothing is checked, the contract still ties the two ends', async () => {
    const Plain = defineService('plain', {
      echo: { kind: 'unary', request: type<{ s: string }>(), response: type<{ s: string }>() },
      none: { kind: 'unary' },
    });
    server.serveService(Plain, { echo: (r) => r, none: () => undefined });
    const p = caller.client(Plain);
    expect(await p.echo({ s: 'x' })).toEqual({ s: 'x' });
    expect(await p.none()).toBeUndefined();
  });

  it('closing a served contract withdraws it; serving it again replaces it', async () => {
    const first = server.serveService(Greeter, greeter([]));
    const g = caller.client(Greeter);
    expect(await g.hello({ name: 'a' })).toBe('Hello, a!');
    const second = server.serveService(Greeter, {
      hello: () => 'second',
      count: () => [],
      sum: () => 0,
      upper: () => [],
    });
    expect(first.closed).toBe(true);
    first.close(); // a no-op: the announcement is the second's
    expect(await g.hello({ name: 'a' })).toBe('second');
    second.close();
    await until(
      () => hubOf(caller).directory.lookup('service', 'greeter').length === 0,
      5_000,
      'the withdrawal',
    );
    expect(
      ((await failure(g.hello({ name: 'a' }, { waitForServerMs: 0 }))) as SwitchboardError).code,
    ).toBe(ErrorCode.NO_SERVER);
  });
});

describe('defineService', () => {
  it('hashes the name, methods, kinds and schema identity, nothing else', () => {
    const a = defineService('s', {
      m: { kind: 'unary', request: type<number>(), response: type<string>() },
      n: { kind: 'bidi' },
    });
    // Stable: the same text on every machine and every run (a changed hash is a wire change).
    expect(a.hash).toBe(
      defineService('s', {
        n: { kind: 'bidi' },
        m: { kind: 'unary', request: type(), response: type() },
      }).hash,
    );
    expect(a.hash).toMatch(/^[0-9a-f]{16}$/);
    const differs = [
      defineService('t', {
        m: { kind: 'unary', request: type(), response: type() },
        n: { kind: 'bidi' },
      }),
      defineService('s', {
        m2: { kind: 'unary', request: type(), response: type() },
        n: { kind: 'bidi' },
      }),
      defineService('s', {
        m: { kind: 'server-stream', request: type(), response: type() },
        n: { kind: 'bidi' },
      }),
      defineService('s', { m: { kind: 'unary', response: type() }, n: { kind: 'bidi' } }),
      defineService('s', {
        m: { kind: 'unary', request: z.number(), response: type() },
        n: { kind: 'bidi' },
      }),
    ];
    for (const d of differs) expect(d.hash).not.toBe(a.hash);
    // A schema is identified by its JSON Schema where its library publishes one.
    expect(defineService('z', { m: { kind: 'unary', request: z.number() } }).hash).toBe(
      defineService('z', { m: { kind: 'unary', request: z.number() } }).hash,
    );
    expect(defineService('z', { m: { kind: 'unary', request: z.number() } }).hash).not.toBe(
      defineService('z', { m: { kind: 'unary', request: z.string() } }).hash,
    );
    expect(defineService('pinned', { m: { kind: 'unary' } }).hash).toBe('cc24c877ac511abe');
  });

  it('refuses what is not a contract', () => {
    const bad = (f: () => unknown): OptionError => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(OptionError);
        return err as OptionError;
      }
      throw new Error('expected an OptionError');
    };
    expect(bad(() => defineService('', { m: { kind: 'unary' } })).option).toBe('name');
    expect(bad(() => defineService('s', {})).option).toBe('methods');
    expect(bad(() => defineService('s', { 'a.b': { kind: 'unary' } })).option).toBe('methods.a.b');
    expect(bad(() => defineService('s', { m: { kind: 'stream' as 'unary' } })).option).toBe(
      'methods.m.kind',
    );
    expect(
      bad(() => defineService('s', { m: { kind: 'unary', request: {} as never } })).option,
    ).toBe('methods.m.request');
    expect(
      bad(() => defineService('s', { m: { kind: 'unary', reponse: type() } as never })).suggestion,
    ).toBe('methods.m.response');
  });

  it('serveService and client check their arguments', async () => {
    const [sb] = await startCluster(1);
    try {
      const C = defineService('c', { m: { kind: 'unary' }, n: { kind: 'unary' } });
      expect(() => sb!.serveService(C, { m: () => undefined } as never)).toThrow(
        /invalid option handlers.n: every method of the contract needs a handler/,
      );
      expect(() =>
        sb!.serveService(C, { m: () => undefined, n: () => undefined, o: () => 1 } as never),
      ).toThrow(OptionError);
      expect(() => sb!.client(C, { timeOutMs: 5 } as never)).toThrow(/did you mean timeoutMs/);
      expect(() => sb!.client({} as never)).toThrow(OptionError);
      const c = sb!.client(C);
      await expect(c.m(undefined, { window: 3 } as never)).rejects.toThrow(OptionError);
    } finally {
      await sb!.close();
    }
  });
});
