/**
 * Attaching to a live cluster: the one module that knows how the command
 * gets its switchboard. By default it attaches as a client
 * (`Switchboard.connect`, docs/guide.md, "Clients"); `--as-member <id>`
 * starts a member in a free slot of the node list instead, for clusters
 * that keep one for operators. Every command sees only {@link Attached}.
 *
 * When attaching fails, the error names each member's reason (exit 3):
 * what the library reported for it, or else what a plain TCP connection
 * to its address found (refused, no answer...).
 */
import net from 'node:net';
import { OptionError, Switchboard } from '../../lib/index.js';
import { UsageError } from '../demo/options.js';
import type {
  CallOptions,
  MissingPeerReason,
  PeerInfo,
  PushOptions,
  RpcStream,
  SenderOptions,
  Sender,
  StreamCallOptions,
  SubscribeOptions,
  StreamSource,
  Subscription,
} from '../../lib/index.js';
import { UnreachableError } from './exit.js';
import type { MemberReason } from './exit.js';
import type { ClusterTarget } from './target.js';

/** What the commands use of a client (or of a member, with --as-member). */
export interface Attached {
  call<Req = unknown, Res = unknown>(
    method: string,
    request: Req,
    options?: CallOptions,
  ): Promise<Res>;
  callStream<Req = unknown, Res = unknown>(
    method: string,
    request: Req,
    options?: StreamCallOptions,
  ): RpcStream<Res>;
  callClientStream<Req = unknown, Res = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: CallOptions,
  ): Promise<Res>;
  callBidi<Req = unknown, Res = unknown>(
    method: string,
    requests: StreamSource<Req>,
    options?: StreamCallOptions,
  ): RpcStream<Res>;
  publish<T = unknown>(topic: string, value: T): boolean;
  drained(): Promise<void>;
  subscribers(topic: string): number;
  subscribe<T = unknown>(pattern: string, options?: SubscribeOptions<T>): Subscription<T>;
  push<T = unknown>(name: string, task: T, options?: PushOptions): Promise<void>;
  sender<T>(name: string, options: SenderOptions<T> & { readonly node: number }): Sender<T>;
  mpmcSender<T>(
    name: string,
    options: SenderOptions<T> & { readonly mode: 'one' | 'all' },
  ): Sender<T>;
  peers(): PeerInfo[];
  close(): Promise<void>;
  destroy(err?: Error): Promise<void>;
}

/** An attached session. */
export interface Session {
  readonly sb: Attached;
  /** How it attached. */
  readonly role: 'client' | 'member';
  /** Its own slot with --as-member; undefined for a client. */
  readonly self: number | undefined;
  /** The members of the cluster (every node but `self`), by id. */
  readonly members: readonly number[];
  readonly addresses: readonly string[];
}

/** Attaches to the cluster of `target`. */
export async function attach(target: ClusterTarget): Promise<Session> {
  const members = target.addresses.map((_, i) => i).filter((i) => i !== target.asMember);
  if (target.asMember !== undefined) {
    const sb = await asMember(target);
    return { sb, role: 'member', self: target.asMember, members, addresses: target.addresses };
  }
  let sb: Switchboard;
  try {
    sb = await Switchboard.connect({
      nodes: target.nodes,
      timeoutMs: target.connectTimeoutMs,
      // Quick to see a lost member: a command is short-lived.
      lingerMs: 1_000,
      ...(target.clientSecret !== undefined
        ? { clientSecret: target.clientSecret }
        : target.secret !== undefined
          ? { secret: target.secret }
          : {}),
      ...(target.clusterName === undefined ? {} : { clusterName: target.clusterName }),
      ...(target.insecure ? { insecure: true } : {}),
    });
  } catch (err) {
    if (err instanceof OptionError) throw new UsageError(err.message);
    throw await unreachable(err, target, members);
  }
  // `connect` resolves once one member accepted; give the others a moment
  // (bounded: a member that is down is reported by the command itself).
  await sb
    .rendezvous({ timeoutMs: Math.min(2_000, target.connectTimeoutMs) })
    .catch(() => undefined);
  return { sb, role: 'client', self: undefined, members, addresses: target.addresses };
}

async function asMember(target: ClusterTarget): Promise<Attached> {
  const id = target.asMember!;
  const others = target.addresses.map((_, i) => i).filter((i) => i !== id);
  let sb: Switchboard;
  try {
    sb = await Switchboard.start({
      nodes: target.nodes,
      id,
      ...(target.secret === undefined ? { insecure: true } : { secret: target.secret }),
      ...(target.clusterName === undefined ? {} : { clusterName: target.clusterName }),
      lingerMs: 1_000,
    });
  } catch (err) {
    if (err instanceof OptionError) throw new UsageError(`--as-member ${id}: ${err.message}`);
    throw new UnreachableError(
      `cannot take slot ${id} (${target.addresses[id]}) of the node list: ${(err as Error).message}`,
      [],
    );
  }
  try {
    await sb.rendezvous({ timeoutMs: target.connectTimeoutMs });
  } catch (err) {
    // Some members are enough: the commands report the others.
    if (sb.peers().some((p) => p.state === 'up')) return sb;
    await sb.destroy();
    throw await unreachable(err, target, others);
  }
  return sb;
}

/** The error of a failed attach, with a reason for every member. */
async function unreachable(
  err: unknown,
  target: ClusterTarget,
  members: readonly number[],
): Promise<UnreachableError> {
  const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  const known = new Map<number, string>();
  const given = (err as { reasons?: readonly MissingPeerReason[] } | undefined)?.reasons;
  if (Array.isArray(given))
    for (const r of given as readonly MissingPeerReason[]) known.set(r.node, r.reason);
  const probeMs = Math.min(2_000, target.connectTimeoutMs);
  const reasons: MemberReason[] = await Promise.all(
    members.map(async (node) => {
      const address = target.addresses[node]!;
      const reason = known.get(node) ?? (await probe(address, probeMs, message));
      return { node, address, reason };
    }),
  );
  return new UnreachableError(`could not attach to the cluster: ${message}`, reasons);
}

/** What a TCP connection to `address` finds; `fallback` when it connects fine. */
function probe(address: string, timeoutMs: number, fallback: string): Promise<string> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((done) => {
    const socket = net.connect({ host, port });
    const finish = (reason: string): void => {
      socket.destroy();
      clearTimeout(timer);
      done(reason);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => finish(`accepts connections, but: ${fallback}`));
    socket.once('error', (e: NodeJS.ErrnoException) =>
      finish(
        e.code === 'ECONNREFUSED'
          ? 'connection refused (ECONNREFUSED): nothing listens there'
          : `${e.code ?? 'error'}: ${e.message}`,
      ),
    );
  });
}
