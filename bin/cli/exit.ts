/**
 * What the `switchboard` command's exit status says (docs/cli.md, "Exit
 * status"), and the errors that carry each status up to bin/switchboard.ts.
 */

/** The exit statuses of every command. */
export const EXIT = Object.freeze({
  /** The command did what it was asked. */
  OK: 0,
  /** The cluster was reached, but the operation failed (or some member did not answer). */
  FAILED: 1,
  /** A bad command line, cluster file or secret. */
  USAGE: 2,
  /** Could not attach to the cluster: no member reachable, authentication refused... */
  UNREACHABLE: 3,
});

/** Why one member could not be reached. */
export interface MemberReason {
  readonly node: number;
  readonly address: string;
  readonly reason: string;
}

/** Could not attach to the cluster (exit 3); the message names each member's reason. */
export class UnreachableError extends Error {
  constructor(
    summary: string,
    readonly reasons: readonly MemberReason[],
  ) {
    super(
      [summary, ...reasons.map((r) => `  node ${r.node} (${r.address}): ${r.reason}`)].join('\n'),
    );
  }
}

/** The operation failed (exit 1); what failed is already printed, or in the message. */
export class FailedError extends Error {}
