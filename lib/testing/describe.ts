/**
 * How a failure message shows one node: its state, what it sees of its
 * peers, its last events and reports, and the last lines it printed. The
 * same for a node in its own process and a switchboard of an in-process
 * cluster (which has no output of its own).
 */
import { inspect } from 'node:util';
import type { EventNote, PeerView } from './messages.js';
import { tail } from './waits.js';

/** Something a node's module told the test with `report(kind, data)`. */
export interface NodeReport {
  readonly kind: string;
  readonly data: unknown;
  /** `performance.now()` in the test process when it arrived. */
  readonly at: number;
}

/** Lines of each stream a failure message shows. */
const TAIL_LINES = 20;
/** Reports and events a failure message shows. */
const TAIL_REPORTS = 10;

const brief = (v: unknown): string =>
  inspect(v, { depth: 2, breakLength: Infinity, maxStringLength: 200, maxArrayLength: 10 });

/** What is known of a node when a wait fails. */
export interface NodeFacts {
  /** The first line: `node 1 (pid 4242, running, incarnation 0a1b2c3d)`. */
  readonly head: string;
  readonly fatal?: string | undefined;
  readonly peers: readonly PeerView[];
  readonly events: readonly EventNote[];
  readonly reports: readonly NodeReport[];
  readonly stdout?: readonly string[];
  readonly stderr?: readonly string[];
}

/** The node, as a failure message shows it. */
export function describeNode(f: NodeFacts): string {
  const lines = [`${f.head}:`];
  if (f.fatal !== undefined) lines.push(`  fatal: ${f.fatal}`);
  const peers = f.peers.map((p) => `${p.node} ${p.state}`).join(', ');
  lines.push(`  sees: ${peers === '' ? '(no report yet)' : peers}`);
  const events = f.events.slice(-TAIL_REPORTS).map((e) => brief(e));
  lines.push(`  events (last ${TAIL_REPORTS} of ${f.events.length}):`, tail(events, TAIL_REPORTS));
  const reports = f.reports.slice(-TAIL_REPORTS).map((r) => `${r.kind} ${brief(r.data)}`);
  lines.push(
    `  reports (last ${TAIL_REPORTS} of ${f.reports.length}):`,
    tail(reports, TAIL_REPORTS),
  );
  if (f.stdout !== undefined)
    lines.push(`  stdout (last ${TAIL_LINES} lines):`, tail(f.stdout, TAIL_LINES));
  if (f.stderr !== undefined)
    lines.push(`  stderr (last ${TAIL_LINES} lines):`, tail(f.stderr, TAIL_LINES));
  return lines.join('\n');
}
