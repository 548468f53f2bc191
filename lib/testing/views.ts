/**
 * What the nodes of a test cluster see of each other, and the conditions
 * the kit's system waits test on it: "every node sees every other up"
 * (with the incarnation each one really runs, so a restart is not mistaken
 * for the old process) and "node i is down for nodes ...". A process
 * cluster learns it from its nodes' reports, an in-process one asks the
 * switchboards; both answer through {@link Observed}.
 */
import type { PeerView } from './messages.js';

/** What a cluster knows of its nodes, for the waits. */
export interface Observed {
  readonly size: number;
  /** The incarnation node `i` runs now, if its switchboard is started. */
  incarnation(i: number): string | undefined;
  /** Why node `i` cannot come up by itself (killed, stopped, exited), if so. */
  gone(i: number): string | undefined;
  /** What node `by` last saw of node `of`. */
  seen(by: number, of: number): PeerView | undefined;
}

/** The nodes `0..size-1`, or `nodes` checked against the cluster. */
export function nodeList(o: Observed, nodes: readonly number[] | undefined): number[] {
  const list = nodes === undefined ? Array.from({ length: o.size }, (_, i) => i) : [...nodes];
  for (const i of list) {
    if (!Number.isInteger(i) || i < 0 || i >= o.size)
      throw new RangeError(`no node ${i} in a cluster of ${o.size}`);
  }
  return list;
}

/** True once every node of `nodes` sees every other up, as the incarnation it runs. */
export function allUp(o: Observed, nodes: readonly number[]): true | undefined {
  for (const i of nodes) {
    const why = o.gone(i);
    if (why !== undefined) throw new Error(`node ${i} ${why}`);
  }
  for (const by of nodes) {
    if (o.incarnation(by) === undefined) return undefined;
    for (const of of nodes) {
      if (of === by) continue;
      const v = o.seen(by, of);
      if (v?.state !== 'up' || v.incarnation !== o.incarnation(of)) return undefined;
    }
  }
  return true;
}

/**
 * True once every node of `by` sees `target` down. A node of `by` that is
 * gone cannot see it: the wait fails at once instead of at its deadline.
 */
export function downFor(o: Observed, target: number, by: readonly number[]): true | undefined {
  for (const i of by) {
    const why = o.gone(i);
    if (why !== undefined)
      throw new Error(`node ${i}, which was to see node ${target} down, ${why}`);
  }
  return by.every((i) => o.seen(i, target)?.state === 'down') ? true : undefined;
}

/** One line per node of `nodes`: how it sees each other node of the cluster. */
export function describeViews(o: Observed, nodes: readonly number[]): string {
  const short = (inc: string | undefined): string => (inc === undefined ? '-' : inc.slice(0, 8));
  return nodes
    .map((by) => {
      const inc = o.incarnation(by);
      if (inc === undefined) return `  node ${by}: ${o.gone(by) ?? 'not started'}`;
      const seen = Array.from({ length: o.size }, (_, of) => of)
        .filter((of) => of !== by)
        .map((of) => {
          const v = o.seen(by, of);
          return `${of} ${v?.state ?? '?'}${v?.incarnation === undefined ? '' : ` (${short(v.incarnation)})`}`;
        });
      return `  node ${by} (${short(inc)}) sees: ${seen.join(', ')}`;
    })
    .join('\n');
}
