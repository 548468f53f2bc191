/**
 * What crosses between the demo's parent and its nodes, as arguments and
 * results of the calls the parent makes into each node (bin/demo/node.ts)
 * and as its progress reports.
 */

/** What a scenario is asked to do on every node. */
export interface ScenarioParams {
  /** Nodes in the cluster. */
  readonly n: number;
  /** The base message count (`--messages`); each scenario scales it. */
  readonly messages: number;
  /** The node that restarted, if any, for the rejoin check. */
  readonly victim: number;
}

/** What one node found in one scenario. */
export interface NodeOutcome {
  /** Messages this node received and checked (or calls it completed). */
  readonly count: number;
  /** Problems found; empty when everything checked out. */
  readonly problems: readonly string[];
  /** Scenario-specific facts the parent cross-checks (e.g. which sequence numbers arrived where). */
  readonly facts?: Readonly<Record<string, unknown>>;
}

/** A node's live count for one scenario (its `progress` report). */
export interface Progress {
  readonly scenario: string;
  readonly count: number;
}
