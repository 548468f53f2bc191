/**
 * A single node process outside any cluster's management: `startNode()`
 * runs the user's module in a child exactly as a cluster's node does
 * (lib/testing/child.ts, the same handle, waits and calls), but the test
 * gives the switchboard's options in full, node list, id and secret
 * included, and the kit puts no proxy in front of it. For a process that
 * joins a cluster against the rules (an intruder with the wrong secret, a
 * taken id, another node list), a node on addresses of the test's own (in
 * a network namespace), or a node under a wrapper command.
 */
import type { StartOptions } from '../index.js';
import { launchOf, moduleUrl } from './launch.js';
import type { Launch, ProcessOptions } from './launch.js';
import type { StartCommand } from './messages.js';
import { ClusterNode } from './node-process.js';
import { Changes } from './waits.js';

/** A switchboard's options in full: the node list and the id are the test's. */
export type FullNodeOptions = Partial<StartOptions> & Pick<StartOptions, 'nodes' | 'id'>;

/** Options of {@link startNode}. */
export interface StartNodeOptions extends ProcessOptions {
  /** The user's node module, as for `startCluster`. */
  readonly module: string | URL;
  /**
   * The switchboard's options, all of them: `nodes`, `id`, and `secret` (or
   * `insecure`) included; the kit adds only its quick reconnects and short
   * linger unless they are set here. Crosses IPC by structured clone.
   */
  readonly options: FullNodeOptions;
  /** What the module gets as `ctx.data`. */
  readonly data?: unknown;
  /**
   * A wrapper command in front of the node's own command line, such as
   * `['ip', 'netns', 'exec', 'ns1']`. It must end by exec'ing the rest of
   * its arguments (as `ip netns exec`, `nice` or `taskset` do), so that the
   * node's pid is the process the kit signals.
   */
  readonly prefix?: readonly string[];
}

/** Every node of {@link startNode} still running: the test process's exit kills them. */
const running = new Set<ClusterNode>();
let exitHook = false;

/**
 * @internal A handle for a process outside any cluster (a node of
 * {@link startNode}, a client of `startClient`), killed by `closeAll()`
 * and by the test process's exit.
 */
export function standalone(id: number, launch: Launch, name?: string): ClusterNode {
  const node = new ClusterNode(
    id,
    launch,
    new Changes(),
    () => undefined,
    () => running.delete(node),
    name,
  );
  running.add(node);
  if (!exitHook) {
    exitHook = true;
    // Synchronous, last resort: whatever a test forgot to kill dies with it.
    process.once('exit', () => {
      for (const n of running) n.signal('SIGKILL');
    });
  }
  return node;
}

/**
 * Forks one node running `options.module` with exactly the switchboard
 * options given, and resolves with its handle once its switchboard has
 * started and its module returned. End it with `node.kill()`,
 * `node.stop(timeoutMs)`, or `closeAll()`; it dies with the test process
 * too, and by itself if its IPC channel to the test drops.
 */
export async function startNode(options: StartNodeOptions): Promise<ClusterNode> {
  const { nodes, id, secret, bindHost, ...rest } = options.options;
  if (!Number.isInteger(id) || id < 0)
    throw new RangeError(`options.id must be an index, got ${id}`);
  const cwd = options.cwd ?? process.cwd();
  const url = moduleUrl(options.module, cwd);
  const launch = launchOf(options, url, cwd, options.prefix);
  const node = standalone(id, launch);
  const command: Omit<StartCommand, 't' | 'id'> = {
    nodes: nodes as StartCommand['nodes'],
    ...(secret === undefined ? {} : { secret }),
    bindHosts: bindHost === undefined ? [] : [bindHost],
    options: rest,
    module: url,
    data: options.data,
  };
  try {
    await node.start(command);
  } catch (err) {
    await node.kill();
    throw err;
  }
  return node;
}

/** @internal Kills every node of {@link startNode} still running (for `closeAll()`). */
export async function closeStandalone(): Promise<void> {
  await Promise.all([...running].map((n) => n.kill()));
}
