/**
 * Type-level specs of service contracts (lib/channel/patterns/rpc/contract.ts):
 * the mistakes users make must not compile. Never run, only type-checked:
 * `npm run lint` compiles it (tsc --noEmit -p tsconfig.json), and so does
 * spec/channel/patterns/rpc-contract-types.spec.ts under `npm test`. Each
 * `@ts-expect-error` fails the compile as soon as the line under it starts
 * to compile; each line without one must compile as it is.
 */
import { z } from 'zod';
import { defineService, type } from '../../../lib/index.js';
import type { CallContext, RpcStream, Switchboard } from '../../../lib/index.js';

interface User {
  readonly id: number;
  readonly name: string;
}

export const Users = defineService('users', {
  get: { kind: 'unary', request: type<{ id: number }>(), response: type<User>() },
  list: { kind: 'server-stream', request: type<{ limit: number }>(), response: type<User>() },
  upload: { kind: 'client-stream', request: type<User>(), response: type<number>() },
  sync: { kind: 'bidi', request: type<number>(), response: type<User>() },
  ping: { kind: 'unary' },
});

/** A schema whose input and output differ: the handler gets the output, the caller sends the input. */
export const Parsed = defineService('parsed', {
  double: {
    kind: 'unary',
    request: z.object({ n: z.string().transform((s) => Number(s)) }),
    response: z.number(),
  },
});

/** Equal types, both ways (a tsd-style `expectType`). */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T>(_value: T): <U>(...check: Equal<T, U> extends true ? [] : [never]) => void {
  return () => undefined;
}

export function servingChecks(sb: Switchboard): void {
  // Every handler of the right kind, request and response compiles.
  sb.serveService(Users, {
    get: ({ id }, ctx: CallContext) => ({ id, name: `user ${id} for node ${ctx.caller}` }),
    *list({ limit }) {
      for (let id = 0; id < limit; id++) yield { id, name: 'x' };
    },
    async upload(users) {
      let n = 0;
      for await (const u of users) n += u.id;
      return n;
    },
    async *sync(ids) {
      for await (const id of ids) yield { id, name: 'y' };
    },
    ping: () => undefined,
  });

  sb.serveService(Users, {
    // @ts-expect-error wrong handler return type: a unary `get` must return a User
    get: ({ id }) => `user ${id}`,
    list: () => [],
    upload: () => 0,
    sync: () => [],
    ping: () => undefined,
  });

  sb.serveService(Users, {
    // @ts-expect-error wrong request shape: `get` takes { id: number }, not { name }
    get: ({ name }: { name: string }) => ({ id: 1, name }),
    list: () => [],
    upload: () => 0,
    sync: () => [],
    ping: () => undefined,
  });

  sb.serveService(Users, {
    get: () => ({ id: 1, name: 'a' }),
    // @ts-expect-error wrong kind of handler: a server-stream handler returns a stream, not one User
    list: () => ({ id: 1, name: 'a' }),
    upload: () => 0,
    sync: () => [],
    ping: () => undefined,
  });

  sb.serveService(Users, {
    get: () => ({ id: 1, name: 'a' }),
    list: () => [],
    // @ts-expect-error wrong kind of handler: a client-stream handler reads a stream, not one User
    upload: (user: User) => user.id,
    sync: () => [],
    ping: () => undefined,
  });

  sb.serveService(Users, {
    get: () => ({ id: 1, name: 'a' }),
    list: () => [],
    upload: () => 0,
    // @ts-expect-error wrong stream item type: `sync` streams Users back, not strings
    sync: async function* (ids) {
      for await (const id of ids) yield String(id);
    },
    ping: () => undefined,
  });

  // @ts-expect-error a method of the contract without a handler (`ping` is missing)
  sb.serveService(Users, {
    get: () => ({ id: 1, name: 'a' }),
    list: () => [],
    upload: () => 0,
    sync: () => [],
  });

  sb.serveService(Users, {
    get: () => ({ id: 1, name: 'a' }),
    list: () => [],
    upload: () => 0,
    sync: () => [],
    ping: () => undefined,
    // @ts-expect-error a handler for a method the contract does not have (a misspelt name)
    pong: () => undefined,
  });

  // The handler gets the schema's output: `n` was a string on the wire, a number here.
  sb.serveService(Parsed, { double: ({ n }) => n * 2 });
  // @ts-expect-error the handler's request is the schema's output, where `n` is a number
  sb.serveService(Parsed, { double: ({ n }: { n: string }) => Number(n) * 2 });
}

export async function callingChecks(sb: Switchboard): Promise<void> {
  const users = sb.client(Users, { timeoutMs: 1_000, tags: ['db'] });

  // One properly typed method per contract method.
  expectType(await users.get({ id: 1 }))<User>();
  expectType(users.list({ limit: 10 }, { window: 8 }))<RpcStream<User>>();
  expectType(await users.upload([{ id: 1, name: 'a' }]))<number>();
  expectType(users.sync([1, 2, 3]))<RpcStream<User>>();
  expectType(await users.ping())<void>();
  await users.get({ id: 1 }, { node: 0, timeoutMs: 50 });
  // @ts-expect-error the check itself bites: `get` resolves to a User, not a number
  expectType(await users.get({ id: 1 }))<number>();

  // @ts-expect-error wrong method name
  await users.gett({ id: 1 }); // eslint-disable-line @typescript-eslint/no-unsafe-call

  // @ts-expect-error wrong request shape
  await users.get({ name: 'ada' });

  // @ts-expect-error wrong request type: `id` is a number
  await users.get({ id: '1' });

  // @ts-expect-error the request is required
  await users.get();

  // @ts-expect-error wrong reply type assumed: `get` resolves to a User
  const name: string = await users.get({ id: 1 });

  // @ts-expect-error a client-stream method takes a stream of requests, not one
  await users.upload({ id: 1, name: 'a' });

  // @ts-expect-error wrong item type in the request stream
  users.sync(['1', '2']);

  // @ts-expect-error unary calls take no `window` (it is a stream option)
  await users.get({ id: 1 }, { window: 4 });

  // The caller sends the schema's input (a string) and gets its output.
  const parsed = sb.client(Parsed);
  expectType(await parsed.double({ n: '21' }))<number>();
  // @ts-expect-error the request is the schema's input, where `n` is a string
  await parsed.double({ n: 21 });
  void name;
}

export function definingChecks(): void {
  // @ts-expect-error an unknown kind
  defineService('bad', { m: { kind: 'stream' } });
  // @ts-expect-error a request that is neither a schema nor type<T>()
  defineService('bad', { m: { kind: 'unary', request: { id: 1 } } });
}

export async function untypedChecks(sb: Switchboard): Promise<void> {
  // Request first, as serve: call<Req, Res>.
  sb.serve<{ a: number }, number>('inc', ({ a }) => a + 1);
  expectType(await sb.call<{ a: number }, number>('inc', { a: 1 }))<number>();
  // @ts-expect-error call's first type parameter is the request
  await sb.call<{ a: number }, number>('inc', 1);
  expectType(sb.callStream<number, string>('s', 1))<RpcStream<string>>();
  expectType(await sb.callClientStream<number, string>('c', [1, 2]))<string>();
  expectType(sb.callBidi<number, string>('b', [1]))<RpcStream<string>>();
}
