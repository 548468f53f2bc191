/**
 * Service contracts (docs/guide.md, "Service contracts"): one object that
 * lists a service's methods, each with its kind and its request and
 * response types, optionally Standard Schema validators. Serving a contract
 * type-checks every handler against it; a typed client of it has one method
 * per contract method. Both are thin layers over the untyped RPC of this
 * folder: method `m` of service `s` is served and called as the RPC method
 * `s.m`, so untyped `call` and `serve` reach it too.
 *
 * Decisions worth knowing:
 * - With schemas, both ends validate (synchronously, as receivers do,
 *   lib/channel/schema.ts). A caller checks its request before it leaves
 *   and the reply when it arrives; the server checks the request before the
 *   handler runs and the reply before it leaves. What travels is the value
 *   as given (a schema's input type); the handler gets the schema's parsed
 *   output of the request, the caller the parsed output of the reply. A
 *   refusal on the server travels as a framework error, so the caller gets
 *   a ValidationError (ERR_SB_VALIDATION), never a RemoteError.
 * - The version hash covers the service name, each method's name and kind,
 *   and for its request and response whether it is absent, a type only or
 *   a schema, the schema's vendor and, when the schema library publishes
 *   one (Standard JSON Schema, `~standard.jsonSchema`), its JSON Schema.
 *   Types given with `type<T>()` do not exist at run time and are not
 *   covered.
 * - A node serving a contract announces it in the directory as
 *   (`'service'`, name, 0, `{ h: hash, m: [[method, kind], ...] }`), before
 *   its methods; a typed client's calls go only to nodes that announced the
 *   same hash, and carry the hash, so the server refuses a call of another
 *   version unrun (ERR_SB_CONTRACT_MISMATCH) even when the directory was
 *   behind.
 */
import { createHash } from 'node:crypto';
import type { Observable } from 'rxjs';
import { OptionError } from '../../../errors.js';
import { checkOptionNames } from '../../../options.js';
import { validateSync, ValidationError } from '../../schema.js';
import type { StandardSchemaV1 } from '../../schema.js';
import type { Rpc } from './rpc.js';
import type { Handler } from './server.js';
import { SERVICE_KIND } from './server.js';
import { iterableOf, pulled } from './streams.js';
import { CALL_OPTION_NAMES, RpcKind } from './types.js';
import type {
  BidiHandler,
  CallContext,
  CallOptions,
  ClientStreamHandler,
  RpcStream,
  ServeHandle,
  ServeOptions,
  ServerStreamHandler,
  StreamCallOptions,
  StreamSource,
  UnaryHandler,
} from './types.js';
import { frameworkRaised } from './wire.js';

// ---- declaring a contract ------------------------------------------------------

/**
 * A type with no validator behind it: `type<User>()`. Nothing is checked
 * at run time; the type ties the two ends together at compile time only.
 */
export interface TypeOnly<T> {
  readonly '~switchboard': 'type';
  /** Carries the type; `undefined` at run time, never read. */
  readonly '~type': T;
}

const TYPE_ONLY: TypeOnly<unknown> = Object.freeze({
  '~switchboard': 'type',
  '~type': undefined,
});

/** A request or response type without a validator (see {@link TypeOnly}). */
export function type<T>(): TypeOnly<T> {
  return TYPE_ONLY as TypeOnly<T>;
}

/** What a method's `request` or `response` may be: a Standard Schema validator, or {@link type}. */
export type TypeSpec = StandardSchemaV1 | TypeOnly<unknown>;

/** One method of a contract. */
export interface MethodSpec {
  readonly kind: RpcKind;
  /** The request (client-streaming, bidi: each item of the request stream). Absent: none (`undefined`). */
  readonly request?: TypeSpec | undefined;
  /** The reply (server-streaming, bidi: each item of the reply stream). Absent: none (`void`). */
  readonly response?: TypeSpec | undefined;
}

/** The methods of a contract, by name. */
export type MethodSpecs = { readonly [method: string]: MethodSpec };

/** A service contract, made by {@link defineService}. */
export interface ServiceContract<N extends string = string, M extends MethodSpecs = MethodSpecs> {
  /** The service's name; method `m` is the RPC method `name.m`. */
  readonly name: N;
  readonly methods: M;
  /**
   * The version hash (16 hex digits of a SHA-256): name, method names and
   * kinds, and the identity of each schema (see the file comment).
   */
  readonly hash: string;
}

/** The type a side of a method takes (`In`: what travels; `Out`: what a schema parses it into). */
type InOf<S> =
  S extends TypeOnly<infer T> ? T : S extends StandardSchemaV1<infer I, unknown> ? I : unknown;
type OutOf<S> =
  S extends TypeOnly<infer T> ? T : S extends StandardSchemaV1<unknown, infer O> ? O : unknown;

/** What a caller sends for method spec `S`. */
export type RequestIn<S extends MethodSpec> = S extends { readonly request: infer R }
  ? InOf<R>
  : undefined;
/** What the handler of method spec `S` receives. */
export type RequestOut<S extends MethodSpec> = S extends { readonly request: infer R }
  ? OutOf<R>
  : undefined;
/** What the handler of method spec `S` returns. */
export type ResponseIn<S extends MethodSpec> = S extends { readonly response: infer R }
  ? InOf<R>
  : void;
/** What a caller of method spec `S` gets. */
export type ResponseOut<S extends MethodSpec> = S extends { readonly response: infer R }
  ? OutOf<R>
  : void;

/** The handler a method spec needs, by its kind. */
export type HandlerFor<S extends MethodSpec> = S['kind'] extends 'unary'
  ? UnaryHandler<RequestOut<S>, ResponseIn<S>>
  : S['kind'] extends 'server-stream'
    ? ServerStreamHandler<RequestOut<S>, ResponseIn<S>>
    : S['kind'] extends 'client-stream'
      ? ClientStreamHandler<RequestOut<S>, ResponseIn<S>>
      : BidiHandler<RequestOut<S>, ResponseIn<S>>;

/** One handler per method of contract `C`. */
export type ServiceHandlers<C extends ServiceContract> = {
  readonly [K in keyof C['methods']]: HandlerFor<C['methods'][K]>;
};

/** A typed client's method for a method spec, by its kind. */
export type ClientMethod<S extends MethodSpec> = S['kind'] extends 'unary'
  ? undefined extends RequestIn<S>
    ? (request?: RequestIn<S>, options?: CallOptions) => Promise<ResponseOut<S>>
    : (request: RequestIn<S>, options?: CallOptions) => Promise<ResponseOut<S>>
  : S['kind'] extends 'server-stream'
    ? undefined extends RequestIn<S>
      ? (request?: RequestIn<S>, options?: StreamCallOptions) => RpcStream<ResponseOut<S>>
      : (request: RequestIn<S>, options?: StreamCallOptions) => RpcStream<ResponseOut<S>>
    : S['kind'] extends 'client-stream'
      ? (requests: StreamSource<RequestIn<S>>, options?: CallOptions) => Promise<ResponseOut<S>>
      : (
          requests: StreamSource<RequestIn<S>>,
          options?: StreamCallOptions,
        ) => RpcStream<ResponseOut<S>>;

/** A typed client of contract `C`: one method per contract method. */
export type ServiceClient<C extends ServiceContract> = {
  readonly [K in keyof C['methods']]: ClientMethod<C['methods'][K]>;
};

/** Options of a typed client: those of a call, used by each of its calls unless the call overrides them. */
export type ClientOptions = StreamCallOptions;

/** A served contract; `close()` stops serving every one of its methods. */
export interface ServiceHandle {
  readonly service: string;
  readonly hash: string;
  /** One handle per method, in the contract's order. */
  readonly methods: readonly ServeHandle[];
  /** True once closed, or replaced by another `serveService` of the same name on this node. */
  readonly closed: boolean;
  /** Withdraws the contract and stops serving its methods (as `ServeHandle.close()`). Idempotent. */
  close(): void;
}

const KINDS: readonly string[] = Object.values(RpcKind);

/**
 * Declares a service contract: its name and its methods, each with a kind
 * and optional `request` and `response` (a Standard Schema validator, or
 * `type<T>()` for a type without one).
 *
 * ```ts
 * const Greeter = defineService('greeter', {
 *   hello: { kind: 'unary', request: type<{ name: string }>(), response: type<string>() },
 * });
 * ```
 * @throws OptionError for an empty name, a method name that is empty or
 *   has a dot, an unknown kind, or a request/response that is neither.
 */
export function defineService<const N extends string, const M extends MethodSpecs>(
  name: N,
  methods: M,
): ServiceContract<N, M> {
  if (typeof name !== 'string' || name.length === 0)
    throw new OptionError('name', 'a service name must be a non-empty string');
  if (typeof methods !== 'object' || methods === null)
    throw new OptionError('methods', 'must be an object of method specs');
  const names = Object.keys(methods);
  if (names.length === 0) throw new OptionError('methods', 'a service needs at least one method');
  for (const m of names) {
    if (m.length === 0 || m.includes('.'))
      throw new OptionError(`methods.${m}`, 'a method name must be non-empty and without a dot');
    const given: unknown = methods[m];
    if (typeof given !== 'object' || given === null)
      throw new OptionError(`methods.${m}`, 'must be a method spec ({ kind, request, response })');
    const spec = given as Partial<MethodSpec>;
    checkOptionNames(spec, ['kind', 'request', 'response'], `methods.${m}`);
    if (typeof spec.kind !== 'string' || !KINDS.includes(spec.kind))
      throw new OptionError(`methods.${m}.kind`, `must be one of ${KINDS.join(', ')}`);
    for (const side of ['request', 'response'] as const) {
      const t = spec[side];
      if (t !== undefined && !isTypeOnly(t) && !isSchema(t))
        throw new OptionError(
          `methods.${m}.${side}`,
          'must be a Standard Schema validator or type<T>()',
        );
    }
  }
  return Object.freeze({
    name,
    methods: Object.freeze({ ...methods }),
    hash: contractHash(name, methods),
  });
}

function isTypeOnly(t: unknown): t is TypeOnly<unknown> {
  return (
    typeof t === 'object' &&
    t !== null &&
    (t as { '~switchboard'?: unknown })['~switchboard'] === 'type'
  );
}

function isSchema(t: unknown): t is StandardSchemaV1 {
  if ((typeof t !== 'object' && typeof t !== 'function') || t === null) return false;
  const std = (t as { '~standard'?: { validate?: unknown } })['~standard'];
  return typeof std === 'object' && std !== null && typeof std.validate === 'function';
}

function schemaOf(t: TypeSpec | undefined): StandardSchemaV1 | undefined {
  return t !== undefined && isSchema(t) ? t : undefined;
}

// ---- the version hash ------------------------------------------------------------

/** The version hash of a contract: see {@link ServiceContract.hash}. */
function contractHash(name: string, methods: MethodSpecs): string {
  const described = Object.keys(methods)
    .sort()
    .map((m) => {
      const s = methods[m]!;
      return [m, s.kind, identity(s.request), identity(s.response)];
    });
  const text = JSON.stringify(['switchboard.service/1', name, described]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** What the hash knows of a request or response. */
function identity(t: TypeSpec | undefined): unknown {
  if (t === undefined) return null;
  if (isTypeOnly(t)) return 'type';
  const std = t['~standard'] as { vendor: unknown; jsonSchema?: unknown };
  return ['schema', String(std.vendor), jsonSchemaOf(std.jsonSchema)];
}

/** The schema's input and output JSON Schema, keys sorted, when its library offers them; null otherwise. */
function jsonSchemaOf(converter: unknown): unknown {
  if (typeof converter !== 'object' || converter === null) return null;
  const c = converter as { input?: unknown; output?: unknown };
  if (typeof c.input !== 'function' || typeof c.output !== 'function') return null;
  try {
    const options = { target: 'draft-2020-12' };
    return [
      sorted((c.input as (o: object) => unknown)(options)),
      sorted((c.output as (o: object) => unknown)(options)),
    ];
  } catch {
    // Not every schema has a JSON Schema (a transform, say): the vendor alone stands for it.
    return null;
  }
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (typeof v !== 'object' || v === null) return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, sorted(o[k])]),
  );
}

// ---- serving -----------------------------------------------------------------------

/** The services this node serves, by name: the handle that owns each announcement. */
const servicesOf = new WeakMap<Rpc, Map<string, ServiceHandleImpl>>();

class ServiceHandleImpl implements ServiceHandle {
  closed = false;

  constructor(
    private readonly rpc: Rpc,
    readonly service: string,
    readonly hash: string,
    readonly methods: readonly ServeHandle[],
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.methods) h.close();
    const own = servicesOf.get(this.rpc);
    if (own?.get(this.service) !== this) return;
    own.delete(this.service);
    this.rpc.hub.directory.withdraw(SERVICE_KIND, this.service, 0);
  }
}

/** Serves every method of `contract` with its handler; see `Switchboard.serveService`. */
export function serveService(
  rpc: Rpc,
  contract: ServiceContract,
  handlers: Record<string, unknown>,
  options?: ServeOptions,
): ServiceHandle {
  if (!isContract(contract))
    throw new OptionError('contract', 'must be a service contract made by defineService()');
  if (typeof handlers !== 'object' || handlers === null)
    throw new OptionError('handlers', 'must be an object with one handler per method');
  const names = Object.keys(contract.methods);
  checkOptionNames(handlers, names, 'handlers');
  for (const m of names)
    if (typeof handlers[m] !== 'function')
      throw new OptionError(`handlers.${m}`, 'every method of the contract needs a handler');
  let own = servicesOf.get(rpc);
  if (own === undefined) servicesOf.set(rpc, (own = new Map<string, ServiceHandleImpl>()));
  // The contract first, then its methods: a peer learns of the version before the methods.
  rpc.hub.directory.announce(SERVICE_KIND, contract.name, 0, {
    h: contract.hash,
    m: names.map((m) => [m, contract.methods[m]!.kind]),
  });
  const served: ServeHandle[] = [];
  try {
    for (const m of names) {
      const spec = contract.methods[m]!;
      const method = `${contract.name}.${m}`;
      served.push(
        rpc.serve(
          method,
          spec.kind,
          checkedHandler(method, spec, handlers[m] as Handler),
          options,
          contract.hash,
        ),
      );
    }
  } catch (err) {
    for (const h of served) h.close();
    if (own.get(contract.name) === undefined)
      rpc.hub.directory.withdraw(SERVICE_KIND, contract.name, 0);
    throw err;
  }
  const previous = own.get(contract.name);
  if (previous !== undefined) {
    // Methods the new version no longer has stop; the others were replaced above.
    for (const h of previous.methods) h.close();
    previous.closed = true;
  }
  const handle = new ServiceHandleImpl(rpc, contract.name, contract.hash, served);
  own.set(contract.name, handle);
  return handle;
}

function isContract(c: unknown): c is ServiceContract {
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof (c as ServiceContract).name === 'string' &&
    typeof (c as ServiceContract).hash === 'string' &&
    typeof (c as ServiceContract).methods === 'object'
  );
}

/** Validates on the server; a refusal travels as the library's own error. */
function serverCheck(schema: StandardSchemaV1, value: unknown, where: string): unknown {
  try {
    return validateSync(schema, value, where);
  } catch (err) {
    throw err instanceof ValidationError ? frameworkRaised(err) : err;
  }
}

/** A refusal of a request stream's item, kept so the handler's own outcome cannot hide it. */
interface Refusal {
  error: ValidationError | undefined;
}

/** The handler as served: the request validated before it runs, the reply before it leaves. */
function checkedHandler(method: string, spec: MethodSpec, handler: Handler): Handler {
  const req = schemaOf(spec.request);
  const res = schemaOf(spec.response);
  if (req === undefined && res === undefined) return handler;
  const reqWhere = `the request of "${method}"`;
  const itemWhere = `an item of the request stream of "${method}"`;
  const resWhere = `the reply of "${method}"`;
  const outWhere = `an item of the reply stream of "${method}"`;
  const checkReply = (v: unknown): unknown => {
    if (res !== undefined) serverCheck(res, v, resWhere);
    return v;
  };
  switch (spec.kind) {
    case RpcKind.UNARY:
      return (input: unknown, ctx: CallContext) => {
        const out = handler(req === undefined ? input : serverCheck(req, input, reqWhere), ctx);
        return isThenable(out) ? Promise.resolve(out).then(checkReply) : checkReply(out);
      };
    case RpcKind.SERVER_STREAM:
      return (input: unknown, ctx: CallContext) => {
        const out = handler(req === undefined ? input : serverCheck(req, input, reqWhere), ctx);
        return res === undefined ? out : checkedOutput(out, res, outWhere, undefined);
      };
    case RpcKind.CLIENT_STREAM:
      return (input: unknown, ctx: CallContext) => {
        const refusal: Refusal = { error: undefined };
        const requests =
          req === undefined
            ? input
            : checkedInput(input as AsyncIterable<unknown>, req, itemWhere, refusal);
        const done = (v: unknown): unknown => {
          if (refusal.error !== undefined) throw refusal.error;
          return checkReply(v);
        };
        const failed = (err: unknown): never => {
          throw refusal.error ?? err;
        };
        let out: unknown;
        try {
          out = handler(requests, ctx);
        } catch (err) {
          return failed(err);
        }
        return isThenable(out) ? Promise.resolve(out).then(done, failed) : done(out);
      };
    default:
      return (input: unknown, ctx: CallContext) => {
        const refusal: Refusal = { error: undefined };
        const requests =
          req === undefined
            ? input
            : checkedInput(input as AsyncIterable<unknown>, req, itemWhere, refusal);
        let out: unknown;
        try {
          out = handler(requests, ctx);
        } catch (err) {
          throw refusal.error ?? err;
        }
        return checkedOutput(out, res, outWhere, refusal);
      };
  }
}

/** The request stream as the handler reads it: each item validated; a bad one ends it with the refusal. */
async function* checkedInput(
  input: AsyncIterable<unknown>,
  schema: StandardSchemaV1,
  where: string,
  refusal: Refusal,
): AsyncGenerator<unknown, void, undefined> {
  for await (const item of input) {
    let value: unknown;
    try {
      value = serverCheck(schema, item, where);
    } catch (err) {
      if (err instanceof ValidationError) refusal.error ??= err;
      throw err;
    }
    yield value;
  }
}

/** The reply stream as it leaves: each item validated; a refused request item ends it with that refusal. */
async function* checkedOutput(
  out: unknown,
  schema: StandardSchemaV1 | undefined,
  where: string,
  refusal: Refusal | undefined,
): AsyncGenerator<unknown, void, undefined> {
  try {
    const source = iterableOf((await out) as StreamSource<unknown>);
    for await (const item of source) {
      if (refusal?.error !== undefined) throw refusal.error;
      if (schema !== undefined) serverCheck(schema, item, where);
      yield item;
    }
  } catch (err) {
    throw refusal?.error ?? err;
  }
  if (refusal?.error !== undefined) throw refusal.error;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

// ---- calling -----------------------------------------------------------------------

const UNARY_OPTION_NAMES = CALL_OPTION_NAMES.filter((n) => n !== 'window');

/** A typed client of `contract`; see `Switchboard.client`. */
export function serviceClient(
  rpc: Rpc,
  contract: ServiceContract,
  defaults: ClientOptions = {},
): Record<string, unknown> {
  if (!isContract(contract))
    throw new OptionError('contract', 'must be a service contract made by defineService()');
  checkOptionNames(defaults, CALL_OPTION_NAMES, '');
  const ref = { service: contract.name, hash: contract.hash };
  const client: Record<string, unknown> = {};
  for (const m of Object.keys(contract.methods)) {
    const spec = contract.methods[m]!;
    const method = `${contract.name}.${m}`;
    const req = schemaOf(spec.request);
    const res = schemaOf(spec.response);
    const reqWhere = `the request of "${method}"`;
    const itemWhere = `an item of the request stream of "${method}"`;
    const resWhere = `the reply of "${method}"`;
    const outWhere = `an item of the reply stream of "${method}"`;
    const streamsIn = spec.kind === RpcKind.CLIENT_STREAM || spec.kind === RpcKind.BIDI;
    const streamsOut = spec.kind === RpcKind.SERVER_STREAM || spec.kind === RpcKind.BIDI;
    const names = streamsOut ? CALL_OPTION_NAMES : UNARY_OPTION_NAMES;
    client[m] = (input: unknown, options?: StreamCallOptions): unknown => {
      let o: StreamCallOptions = defaults;
      let payload = input;
      try {
        if (options !== undefined) {
          checkOptionNames(options, names, '');
          o = { ...defaults, ...options };
        }
        if (req !== undefined) {
          if (streamsIn) payload = checkedSource(input as StreamSource<unknown>, req, itemWhere);
          else validateSync(req, input, reqWhere);
        }
      } catch (err) {
        if (streamsOut) throw err;
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      const call = rpc.callContract(method, spec.kind, payload, o, ref);
      if (res === undefined) return call;
      if (streamsOut) return new CheckedStream(call as RpcStream<unknown>, res, outWhere);
      return (call as Promise<unknown>).then((v) => validateSync(res, v, resWhere));
    };
  }
  return Object.freeze(client);
}

/** The caller's request stream: each item validated before it leaves. */
async function* checkedSource(
  source: StreamSource<unknown>,
  schema: StandardSchemaV1,
  where: string,
): AsyncGenerator<unknown, void, undefined> {
  for await (const item of iterableOf(source)) {
    validateSync(schema, item, where);
    yield item;
  }
}

/** A reply stream whose items are validated as they are read; a bad one cancels the call. */
class CheckedStream<T> implements RpcStream<T> {
  private failure: Error | undefined;

  constructor(
    private readonly inner: RpcStream<unknown>,
    private readonly schema: StandardSchemaV1,
    private readonly where: string,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.inner.next().then((r) => {
      if (this.failure !== undefined) throw this.failure;
      if (r.done === true) return r as IteratorResult<T>;
      try {
        return { value: validateSync(this.schema, r.value, this.where) as T, done: false };
      } catch (err) {
        this.failure = err as Error;
        this.inner.cancel(err);
        throw err;
      }
    });
  }

  return(): Promise<IteratorResult<T>> {
    return this.inner.return!() as Promise<IteratorResult<T>>;
  }

  cancel(reason?: unknown): void {
    this.inner.cancel(reason);
  }

  get closed(): boolean {
    return this.failure !== undefined || this.inner.closed;
  }

  observable(): Observable<T> {
    return pulled(
      () => this.next(),
      () => this.cancel(),
    );
  }
}
