/**
 * A client process: `startClient()` forks the kit's node program
 * (lib/testing/child.ts) in its client mode, which attaches to a running
 * cluster with `Switchboard.connect` instead of starting a member, then
 * runs the user's module as every node does (`ctx.sb` is the client). The
 * handle is a node's (calls, reports, events, waits, output, kill, stop,
 * pause). A connect that fails rejects the start with the
 * `ClientConnectError` the child saw, rebuilt in the test process, so a
 * test can assert on its reasons and codes.
 */
import { ClientConnectError } from '../index.js';
import type { ClientConnectOptions, MissingPeerReason } from '../index.js';
import { launchOf, moduleUrl } from './launch.js';
import type { ProcessOptions } from './launch.js';
import type { StartCommand } from './messages.js';
import { StartFailure } from './node-process.js';
import type { ClusterNode } from './node-process.js';
import { standalone } from './start-node.js';

/** `Switchboard.connect`'s options: the members' node list and the (client) secret included. */
export type ClientOptions = ClientConnectOptions;

/** Options of {@link startClient}. */
export interface StartClientOptions extends ProcessOptions {
  /** The user's module, as for `startCluster` (`ctx.sb` is the client, `ctx.id` its id). */
  readonly module: string | URL;
  /**
   * `Switchboard.connect`'s options: `nodes` (such as `cluster.addresses`)
   * and `clientSecret` or `secret`; the kit adds only its quick reconnects
   * and short linger unless they are set here. Crosses IPC by structured
   * clone (the secrets never on a command line or in the environment).
   */
  readonly options: ClientOptions;
  /** What the module gets as `ctx.data`. */
  readonly data?: unknown;
}

/** The handle's id: a client has no slot in the node list (`ctx.id` is what the members gave it). */
export const CLIENT_HANDLE_ID = -1;

let count = 0;

/**
 * Forks a client running `options.module`, and resolves with its handle
 * once `Switchboard.connect` resolved and the module returned. Rejects
 * with a `ClientConnectError` (its `reasons` each with the member's error
 * `code`) when no member accepted it, or with the start's
 * `ClusterWaitError` when it failed otherwise. End it with
 * `client.kill()`, `client.stop(timeoutMs)` or `closeAll()`; it dies with
 * the test process, and by itself if its IPC channel drops.
 */
export async function startClient(options: StartClientOptions): Promise<ClusterNode> {
  const { nodes, secret, ...rest } = options.options;
  const cwd = options.cwd ?? process.cwd();
  const url = moduleUrl(options.module, cwd);
  const launch = launchOf(options, url, cwd);
  const client = standalone(CLIENT_HANDLE_ID, launch, `client ${++count}`);
  const command: Omit<StartCommand, 't' | 'id'> = {
    nodes: nodes as StartCommand['nodes'],
    ...(secret === undefined ? {} : { secret }),
    bindHosts: [],
    options: rest,
    module: url,
    data: options.data,
    client: true,
  };
  try {
    await client.start(command);
  } catch (err) {
    await client.kill();
    throw rebuilt(err) ?? err;
  }
  return client;
}

/** The `ClientConnectError` behind a failed start, made again here; undefined for another failure. */
function rebuilt(err: unknown): ClientConnectError | undefined {
  const cause = (err as { cause?: unknown }).cause;
  if (!(cause instanceof StartFailure)) return undefined;
  const info = cause.info;
  if (info.name !== 'ClientConnectError' || info.reasons === undefined) return undefined;
  const reasons: MissingPeerReason[] = info.reasons.map((r) => ({
    node: r.node,
    address: r.address,
    reason: r.reason,
    error: r.code === undefined && r.message === undefined ? undefined : remoteError(r),
  }));
  // The message's first line: the reasons are listed again under it.
  const out = new ClientConnectError(info.message.split('\n')[0]!, reasons);
  if (info.stack !== undefined)
    out.stack = `${out.stack ?? ''}\nin the client process: ${info.stack}`;
  return out;
}

/** An error of a reason as it crossed IPC: its message and code. */
function remoteError(r: { code: string | undefined; message: string | undefined }): Error {
  const e = new Error(r.message ?? r.code) as Error & { code?: string };
  if (r.code !== undefined) e.code = r.code;
  return e;
}
