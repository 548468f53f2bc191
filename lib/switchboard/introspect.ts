/**
 * Introspection: the system methods every member serves so that a tool
 * (the `switchboard` command, docs/cli.md) can ask a live cluster what it
 * is and does without any help from the application (docs/api.md,
 * "Introspection"). They are ordinary unary RPC methods under the reserved
 * prefix `$sb.`, so they travel, balance and fail as every call does, and
 * `call('$sb.peers', null, { node })` asks one member.
 *
 * Decisions worth knowing:
 * - The prefix is refused to the application's `serve*` and
 *   `serveService` (an OptionError): a tool must be able to trust that
 *   `$sb.stats` is the library's answer, not something an application
 *   made up.
 * - The figures an application reads (`stats().rpc.served`, the metrics,
 *   the Prometheus text) leave the system methods out: an operator's
 *   `switchboard stats` must not find its own earlier calls counted among
 *   the application's traffic.
 * - This file knows nothing of the channel layer (imports flow downward):
 *   the facade hands it a {@link IntrospectionHost} that serves, reads
 *   the directory and keeps the served contracts for their schemas.
 */
import { OptionError } from '../errors.js';
import type { ClientInfo, PeerInfo } from './events.js';
import type { MetricsStats } from './metrics.js';

/** The prefix of the system methods; the application cannot serve a method that starts with it. */
export const SYSTEM_PREFIX = '$sb.';

/** The system methods every member serves (each takes any request, `null` say). */
export const SYSTEM_METHODS = Object.freeze({
  /** {@link PingReply}: the cheapest round trip to one member. */
  ping: '$sb.ping',
  /** {@link PeersReply}: this member's view of its peers. */
  peers: '$sb.peers',
  /** This member's `stats()`, metrics included (its `SwitchboardStats`). */
  stats: '$sb.stats',
  /** {@link MethodsReply}: the methods this member serves. */
  methods: '$sb.methods',
});

/** True for a method name under {@link SYSTEM_PREFIX}. */
export function isSystemMethod(method: unknown): boolean {
  return typeof method === 'string' && method.startsWith(SYSTEM_PREFIX);
}

/**
 * Refuses a name the application may not serve under.
 * @param option the option the name came from (`method`, `contract.name`)
 * @throws OptionError when `name` starts with `$sb.` (or is `$sb` for a service)
 */
export function refuseSystemName(name: unknown, option: string): void {
  if (isSystemMethod(name) || name === SYSTEM_PREFIX.slice(0, -1))
    throw new OptionError(
      option,
      `names starting with "${SYSTEM_PREFIX}" are reserved for the switchboard's own methods`,
    );
}

/** What `$sb.ping` answers. */
export interface PingReply {
  readonly node: number;
  readonly incarnation: string;
  /** The member's clock when it answered, epoch ms. */
  readonly time: number;
}

/** What `$sb.peers` answers: one member's view. */
export interface PeersReply {
  readonly node: number;
  readonly incarnation: string;
  /** Its `peers()`: state (connecting, up, suspect, down), incarnation, round trip, traffic. */
  readonly peers: readonly PeerInfo[];
  /** Its `clients()`: the clients linked to it now. */
  readonly clients: readonly ClientInfo[];
}

/** A served method's service contract, as `$sb.methods` reports it. */
export interface MethodContract {
  /** The contract's name (the method is `<name>.<method>`). */
  readonly name: string;
  /** Its version hash (`ServiceContract.hash`). */
  readonly version: string;
  /**
   * The request's shape: `null` when the method takes none, `'type'` for a
   * type without a validator, else `{ vendor, jsonSchema }` where
   * `jsonSchema` is the input JSON Schema when the schema library publishes
   * one (Standard JSON Schema), `null` otherwise.
   */
  readonly request?: SideInfo;
  /** The response's shape, as {@link MethodContract.request}. */
  readonly response?: SideInfo;
}

/** One side of a contract method (see {@link MethodContract.request}). */
export type SideInfo = null | 'type' | { readonly vendor: string; readonly jsonSchema: unknown };

/** One method a member serves. */
export interface MethodInfo {
  readonly name: string;
  /** `unary`, `server-stream`, `client-stream` or `bidi`. */
  readonly kind: string;
  /** Present when it is served as part of a service contract. */
  readonly contract?: MethodContract;
}

/** What `$sb.methods` answers. */
export interface MethodsReply {
  readonly node: number;
  readonly incarnation: string;
  /** The application's methods this member serves (system methods left out), by name. */
  readonly methods: readonly MethodInfo[];
}

/** A contract as far as introspection reads it (structurally a `ServiceContract`). */
export interface ContractShape {
  readonly name: string;
  readonly hash: string;
  readonly methods: {
    readonly [m: string]: { readonly request?: unknown; readonly response?: unknown };
  };
}

/** What the facade lends introspection. */
export interface IntrospectionHost<S> {
  readonly id: number;
  readonly incarnation: string;
  peers(): PeerInfo[];
  clients(): ClientInfo[];
  stats(): S;
  /** This member's own directory entries of kind `rpc` (name, kind) and `service` (name, meta). */
  ownEntries(
    kind: 'rpc' | 'service',
  ): ReadonlyArray<{ readonly name: string; readonly meta: unknown }>;
  /** Serves a unary system method (bypassing the reserved-prefix check). */
  serve(method: string, handler: () => unknown): void;
}

/** The introspection of one member: serves the system methods and keeps the contracts it serves. */
export class Introspection<S> {
  /** Contracts served by this member, by name: the last one served of each name. */
  private readonly contracts = new Map<string, ContractShape>();

  constructor(private readonly host: IntrospectionHost<S>) {}

  /** Serves every system method; called once, as the member starts. */
  serveAll(): void {
    const h = this.host;
    h.serve(SYSTEM_METHODS.ping, (): PingReply => ({
      node: h.id,
      incarnation: h.incarnation,
      time: Date.now(),
    }));
    h.serve(SYSTEM_METHODS.peers, (): PeersReply => ({
      node: h.id,
      incarnation: h.incarnation,
      peers: h.peers(),
      clients: h.clients(),
    }));
    h.serve(SYSTEM_METHODS.stats, () => h.stats());
    h.serve(SYSTEM_METHODS.methods, (): MethodsReply => this.methods());
  }

  /** A contract was served: keep it for its schemas. */
  contractServed(contract: ContractShape): void {
    this.contracts.set(contract.name, contract);
  }

  /** What `$sb.methods` answers. */
  methods(): MethodsReply {
    const h = this.host;
    // Which contract (and version) each method is served under, from what this member announced.
    const under = new Map<string, { service: string; hash: string; method: string }>();
    for (const e of h.ownEntries('service')) {
      const meta = e.meta as { h?: unknown; m?: unknown };
      if (typeof meta?.h !== 'string' || !Array.isArray(meta.m)) continue;
      for (const pair of meta.m as unknown[]) {
        if (!Array.isArray(pair) || typeof pair[0] !== 'string') continue;
        under.set(`${e.name}.${pair[0]}`, { service: e.name, hash: meta.h, method: pair[0] });
      }
    }
    const methods: MethodInfo[] = [];
    for (const e of h.ownEntries('rpc')) {
      if (isSystemMethod(e.name)) continue;
      const kind = typeof e.meta === 'string' ? e.meta : 'unary';
      const c = under.get(e.name);
      if (c === undefined) {
        methods.push({ name: e.name, kind });
        continue;
      }
      const contract = this.contracts.get(c.service);
      const spec = contract?.hash === c.hash ? contract.methods[c.method] : undefined;
      methods.push({
        name: e.name,
        kind,
        // The shapes only when this is the very contract served (same version).
        contract:
          spec === undefined
            ? { name: c.service, version: c.hash }
            : {
                name: c.service,
                version: c.hash,
                request: sideInfo(spec.request, 'input'),
                response: sideInfo(spec.response, 'output'),
              },
      });
    }
    methods.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { node: h.id, incarnation: h.incarnation, methods };
  }
}

/** The `rpc.served` and metrics of a stats snapshot without the system methods. */
export function withoutSystemMethods<
  S extends {
    readonly rpc: { readonly served: readonly string[] };
    readonly metrics: MetricsStats;
  },
>(stats: S): S {
  const m = stats.metrics;
  const system = SYSTEM_PREFIX.slice(0, -1);
  const app = (r: { readonly service: string }): boolean => r.service !== system;
  return {
    ...stats,
    rpc: { ...stats.rpc, served: stats.rpc.served.filter((n) => !isSystemMethod(n)) },
    metrics: {
      ...m,
      rpcClient: m.rpcClient.filter(app),
      rpcServer: m.rpcServer.filter(app),
      endpoints: m.endpoints.filter(app),
    },
  };
}

/** A contract method's request or response as {@link SideInfo}. */
function sideInfo(t: unknown, side: 'input' | 'output'): SideInfo {
  if (t === undefined || t === null) return null;
  const std = (t as { '~standard'?: { vendor?: unknown; jsonSchema?: unknown } })['~standard'];
  if (typeof std !== 'object' || std === null) return 'type';
  let jsonSchema: unknown = null;
  const conv = std.jsonSchema as { input?: unknown; output?: unknown } | undefined;
  const fn = conv?.[side];
  if (typeof fn === 'function') {
    try {
      jsonSchema = (fn as (o: object) => unknown).call(conv, { target: 'draft-2020-12' });
    } catch {
      // Not every schema has a JSON Schema (a transform, say): the vendor is all there is.
    }
  }
  return { vendor: String(std.vendor), jsonSchema };
}
