/**
 * The contract between the kit and the user's node module: what a node is
 * given once its switchboard has started, and what it may hand back for the
 * test to call (docs/testing.md, "The node module").
 */
import type { Switchboard } from '../index.js';

/** What the user's module gets in every node. */
export interface NodeContext<D = unknown> {
  /** This node's switchboard, started (not yet rendezvoused: peers may still be linking). */
  readonly sb: Switchboard;
  /** This node's index in the node list. */
  readonly id: number;
  /** What the test passed as `data` for this node. */
  readonly data: D;
  /**
   * Tells the test something (`node(i).reports`, `waitForReport`); `data`
   * crosses IPC by structured clone. A function, not a method: it may be
   * destructured (`({ sb, report }) => ...`).
   */
  readonly report: (kind: string, data?: unknown) => void;
}

/** Functions the test may call in a node: arguments and results cross IPC by structured clone. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any function shape may be exported
export type NodeFunctions = Readonly<Record<string, (...args: any[]) => unknown>>;

/** The default export of a node module. */
export type NodeMain<D = unknown, F extends NodeFunctions | void = NodeFunctions | void> = (
  ctx: NodeContext<D>,
) => F | Promise<F>;

/**
 * Types a node module's default export: `export default defineNode(async ({ sb }) => ({ ... }))`.
 * It returns `main` unchanged.
 */
export function defineNode<D = unknown, F extends NodeFunctions | void = NodeFunctions | void>(
  main: NodeMain<D, F>,
): NodeMain<D, F> {
  return main;
}

/** The main function of a loaded module (its default export), or an error saying what is wrong. */
export function mainOf(mod: unknown, where: string): NodeMain {
  const main = (mod as { default?: unknown } | null)?.default;
  if (typeof main !== 'function') {
    throw new TypeError(
      `${where} must export a default function (ctx) => functions; its default export is ${typeof main}`,
    );
  }
  return main as NodeMain;
}

/** The functions a main returned, checked. */
export function functionsOf(
  value: unknown,
  where: string,
): Map<string, (...args: unknown[]) => unknown> {
  const fns = new Map<string, (...args: unknown[]) => unknown>();
  if (value === undefined || value === null) return fns;
  if (typeof value !== 'object') {
    throw new TypeError(
      `${where}: the default export must return an object of functions or nothing`,
    );
  }
  for (const [name, fn] of Object.entries(value)) {
    if (typeof fn === 'function') fns.set(name, fn as (...args: unknown[]) => unknown);
  }
  return fns;
}
