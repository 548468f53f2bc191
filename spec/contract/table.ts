/**
 * The table of the delivery-contract suite: every check, the variants it
 * runs, and on which patterns and placements. The spec files generate their
 * tests from it (one jest test per case), so this is the one place that
 * says how big the suite is: {@link CASES}.length.
 *
 * A combination that is not listed does not apply, and `notRun` says why.
 * `CONTRACT_PATTERNS` (comma-separated pattern ids) in the environment
 * narrows every check to those patterns, to reproduce one failure alone.
 */
import {
  BAD_KINDS,
  CHANNEL_PATTERNS,
  PATTERN_IDS,
  RECEIVING_PATTERNS,
  RPC_PATTERNS,
} from './protocol.js';
import type { PatternId } from './protocol.js';

export type Placement = 'same' | 'tcp' | 'child';
export const PLACEMENTS: readonly Placement[] = ['same', 'tcp', 'child'];

/** `-`: the check is about the switchboard, not one pattern (or not one placement). */
export type PatternCell = PatternId | '-';
export type PlacementCell = Placement | '-';

export type CheckId =
  | 'close-inflight'
  | 'close-exit'
  | 'deadline'
  | 'peer-lost'
  | 'encode'
  | 'handles'
  | 'codes'
  | 'receive'
  | 'picker'
  | 'pubsub-gap'
  | 'size';

export interface Row {
  readonly check: CheckId;
  /** The item of the contract (1-10) the check states. */
  readonly promise: number;
  readonly variants: readonly string[];
  readonly patterns: readonly PatternCell[];
  readonly placements: readonly PlacementCell[];
}

/** One jest test. */
export interface Case {
  readonly check: CheckId;
  readonly promise: number;
  readonly variant: string;
  readonly pattern: PatternCell;
  readonly placement: PlacementCell;
}

const ALL: readonly PatternId[] = PATTERN_IDS;
const BUT_PUBSUB = ALL.filter((p) => p !== 'pubsub');
const PICKED = ['mpmc-one', ...RPC_PATTERNS, 'push-pull'] as const;

export const ROWS: readonly Row[] = [
  // 1. Closing with work in flight.
  {
    check: 'close-inflight',
    promise: 1,
    variants: ['close@self', 'destroy@self'],
    patterns: ALL,
    placements: ['same'],
  },
  {
    check: 'close-inflight',
    promise: 1,
    variants: ['close@producer', 'close@consumer', 'destroy@producer', 'destroy@consumer'],
    patterns: ALL,
    placements: ['tcp', 'child'],
  },
  {
    check: 'close-exit',
    promise: 1,
    variants: ['close@producer', 'close@consumer', 'destroy@producer', 'destroy@consumer'],
    patterns: ['-'],
    placements: ['child'],
  },
  // 2. Deadlines (and 6: the code at both ends, see `codes`).
  {
    check: 'deadline',
    promise: 2,
    variants: ['ignore', 'honour', 'throw', 'late', 'abort'],
    patterns: RPC_PATTERNS,
    placements: PLACEMENTS,
  },
  // 3. Peers lost.
  {
    check: 'peer-lost',
    promise: 3,
    variants: ['kill', 'restart', 'stall-consumer'],
    patterns: BUT_PUBSUB,
    placements: ['child'],
  },
  {
    check: 'peer-lost',
    promise: 3,
    variants: ['stall-producer'],
    patterns: [...CHANNEL_PATTERNS, 'post'],
    placements: ['child'],
  },
  // 4. Values the codec cannot carry.
  { check: 'encode', promise: 4, variants: BAD_KINDS, patterns: ALL, placements: PLACEMENTS },
  // 5. Handles.
  {
    check: 'handles',
    promise: 5,
    variants: ['killed-before-use', 'killed-while-open'],
    patterns: ['mpsc-anon'],
    placements: ['child'],
  },
  {
    check: 'handles',
    promise: 5,
    variants: ['closed-cleanly'],
    patterns: ['mpsc-anon'],
    placements: PLACEMENTS,
  },
  // 6. Codes agree.
  {
    check: 'codes',
    promise: 6,
    variants: ['deadline-both-ends'],
    patterns: RPC_PATTERNS,
    placements: PLACEMENTS,
  },
  {
    check: 'codes',
    promise: 6,
    variants: ['no-receiver-closed'],
    patterns: ['mpsc-named', 'mpsc-anon'],
    placements: PLACEMENTS,
  },
  {
    check: 'codes',
    promise: 6,
    variants: ['no-receiver-never-existed'],
    patterns: ['mpsc-named'],
    placements: PLACEMENTS,
  },
  {
    check: 'codes',
    promise: 6,
    variants: ['peer-down-close', 'peer-down-destroy'],
    patterns: ['-'],
    placements: ['tcp', 'child'],
  },
  {
    check: 'codes',
    promise: 6,
    variants: ['peer-down-kill'],
    patterns: ['-'],
    placements: ['child'],
  },
  { check: 'codes', promise: 6, variants: ['docs'], patterns: ['-'], placements: ['-'] },
  // 7. Receives with a deadline or a signal.
  {
    check: 'receive',
    promise: 7,
    variants: ['timeoutMs', 'signal'],
    patterns: RECEIVING_PATTERNS,
    placements: PLACEMENTS,
  },
  // 8. Pickers skip suspect peers.
  {
    check: 'picker',
    promise: 8,
    variants: ['this-node-serves', 'healthy-peer-serves', 'only-suspect'],
    patterns: PICKED,
    placements: ['child'],
  },
  // 9. Pub-sub at a session end.
  {
    check: 'pubsub-gap',
    promise: 9,
    variants: ['stall-subscriber', 'stall-publisher', 'sigstop-subscriber', 'sigstop-publisher'],
    patterns: ['pubsub'],
    placements: ['child'],
  },
  // 10. Sizes.
  {
    check: 'size',
    promise: 10,
    variants: ['request'],
    patterns: ALL,
    placements: ['tcp', 'child'],
  },
  {
    check: 'size',
    promise: 10,
    variants: ['reply'],
    patterns: RPC_PATTERNS,
    placements: ['tcp', 'child'],
  },
];

/** Why the combinations the table leaves out do not apply. */
export const NOT_RUN: Readonly<Record<CheckId, string>> = {
  'close-inflight':
    'on `same` both ends are one switchboard, so "either side" is one variant (`@self`)',
  'close-exit': 'only a child is a process of its own that can be watched exiting',
  deadline: 'RPC only: the other patterns have no deadline of a call',
  'peer-lost':
    'a killed, restarted or stalled peer needs a process (child); pub-sub is checked by pubsub-gap; a stalled producer only for channels and post, whose sends carry the messages',
  encode: 'runs everywhere',
  handles: 'killing the holder needs a process (child)',
  codes:
    'deadline codes: RPC; ERR_SB_NO_RECEIVER: MPSC (MPMC and pub-sub sends wait for a receiver); peer-down needs a peer (tcp, child) and a kill needs a process',
  receive: 'only patterns whose application calls `next()` on a receiver or a subscription',
  picker: 'only patterns that pick a node; making a peer suspect (SIGSTOP) needs a process',
  'pubsub-gap': 'a session that ends while both processes live needs a process to stall or stop',
  size: "the limit is the receiving node's, announced on a link: nothing is encoded on `same`; a reply only in RPC",
};

function narrowed(): ReadonlySet<string> | undefined {
  const env = process.env.CONTRACT_PATTERNS;
  if (env === undefined || env.trim() === '') return undefined;
  return new Set(env.split(',').map((s) => s.trim()));
}

/** Every case of the table, in table order. */
export const CASES: readonly Case[] = ROWS.flatMap((row) =>
  row.variants.flatMap((variant) =>
    row.patterns.flatMap((pattern) =>
      row.placements.map((placement) => ({
        check: row.check,
        promise: row.promise,
        variant,
        pattern,
        placement,
      })),
    ),
  ),
);

/** The cases of `check` (narrowed by `CONTRACT_PATTERNS`), optionally of one variant and placement. */
export function casesOf(
  check: CheckId,
  where: { readonly variant?: string; readonly placement?: PlacementCell } = {},
): Case[] {
  const only = narrowed();
  return CASES.filter(
    (c) =>
      c.check === check &&
      (where.variant === undefined || c.variant === where.variant) &&
      (where.placement === undefined || c.placement === where.placement) &&
      (only === undefined || c.pattern === '-' || only.has(c.pattern)),
  );
}

/** The patterns of `check` for one variant and placement. */
export function patternsOf(check: CheckId, variant: string, placement: PlacementCell): PatternId[] {
  return casesOf(check, { variant, placement })
    .map((c) => c.pattern)
    .filter((p): p is PatternId => p !== '-');
}
