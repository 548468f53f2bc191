import { Switchboard, switchboardInternals } from '../../lib/facade.js';
import type { ChannelHub } from '../../lib/channel/hub.js';
import type { Cluster } from '../../lib/switchboard/cluster.js';
import type { StartOptions } from '../../lib/facade.js';
import { localNodes } from './ports.js';

export const SECRET = 'switchboard-spec-secret-0123456789';

/** Starts `n` in-process switchboards on 127.0.0.1 and waits for rendezvous. */
export async function startCluster(
  n: number,
  extra: Partial<StartOptions> = {},
): Promise<Switchboard[]> {
  const nodes = await localNodes(n);
  const sbs = await Promise.all(
    nodes.map((_, id) => Switchboard.start({ nodes, id, secret: SECRET, ...extra })),
  );
  await Promise.all(sbs.map((sb) => sb.rendezvous({ timeoutMs: 10_000 })));
  return sbs;
}

export async function closeAll(sbs: readonly Switchboard[]): Promise<void> {
  await Promise.all(sbs.map((sb) => sb.close()));
}

/** The two paths every channel spec runs over. */
export type Path = 'local' | 'tcp';
export const PATHS: Path[] = ['local', 'tcp'];

/** For a path: the switchboards, where receivers live, and where senders live. */
export async function pathCluster(
  path: Path,
  extra: Partial<StartOptions> = {},
): Promise<{
  sbs: Switchboard[];
  rx: Switchboard;
  tx: Switchboard;
}> {
  if (path === 'local') {
    const sbs = await startCluster(1, extra);
    return { sbs, rx: sbs[0]!, tx: sbs[0]! };
  }
  const sbs = await startCluster(2, extra);
  return { sbs, rx: sbs[0]!, tx: sbs[1]! };
}

/** Collects `n` messages from an async iterable. */
export async function take<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  if (n === 0) return out;
  for await (const v of it) {
    out.push(v);
    if (out.length >= n) break;
  }
  return out;
}

/** Waits until `cond()` holds, polling once per event-loop turn; fails after `timeoutMs`. */
export async function until(
  cond: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

/** The channel core under a switchboard, for specs of the layers below the public API. */
export function hubOf(sb: Switchboard): ChannelHub {
  return switchboardInternals(sb).hub;
}

/** The cluster layer under a switchboard, for specs of the layers below the public API. */
export function clusterOf(sb: Switchboard): Cluster {
  return switchboardInternals(sb).cluster;
}
