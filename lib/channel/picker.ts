/**
 * The one picker of the channel core: which of several places gets the
 * next message, call or task. MPMC `one` senders, RPC callers and pushers
 * all choose through it, so they share its rules:
 *
 * - only candidates the caller says serve (tags, kind, an open stream)
 *   count;
 * - a candidate on a peer that is **suspect** (connected but silent, or
 *   reconnecting) is skipped while any serving candidate on a healthy node
 *   (or this node) remains; only when every serving one is suspect does the
 *   picker fall back to them, so work waits on a peer that may come back
 *   rather than fail (docs/guide.md, "Load balancing");
 * - among the class chosen (healthy, or all), only those with **room** now
 *   (credit, a free slot) are picked; when none has room the picker picks
 *   nothing and the work waits for room there: it never spills onto a
 *   suspect peer because the healthy ones are busy;
 * - `least-loaded` takes the smallest load, ties in turn; `round-robin` each
 *   in turn; `random` uniformly at random.
 *
 * Picking allocates nothing (its scratch arrays grow to the largest
 * candidate list once).
 */

/** How a pick spreads load. */
export type PickStrategy = 'least-loaded' | 'round-robin' | 'random';

/** Anything picked lives on a node. */
export interface Placed {
  readonly node: number;
}

/** What a picker asks about nodes. */
export interface Health {
  /** False while `node` is suspect; this node is always healthy. */
  healthy(node: number): boolean;
}

/** Picks among candidates; keeps its turn between picks. */
export class Picker {
  private turn = 0;
  /** Scratch of one pick: the candidates with room, their load and health. */
  private readonly index: number[] = [];
  private readonly loads: number[] = [];
  private readonly healthy: boolean[] = [];

  constructor(private readonly health: Health) {}

  /**
   * One of `candidates`, or undefined when none serves or none of the
   * chosen class has room. `load` is only read by `least-loaded`; `room`
   * defaults to "serves". Turns are taken among the candidates picked
   * from, so the others skew nothing.
   */
  pick<C extends Placed>(
    candidates: readonly C[],
    strategy: PickStrategy,
    serves: (c: C) => boolean,
    load: (c: C) => number,
    room?: (c: C) => boolean,
  ): C | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    // One pass: whether any serving candidate is healthy (room aside), and
    // which have room, with their health and load, kept in scratch arrays
    // (overwritten, never reallocated).
    const least = strategy === 'least-loaded';
    const index = this.index;
    const loads = this.loads;
    const healthy = this.healthy;
    let anyHealthy = false;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!serves(c)) continue;
      const h = this.health.healthy(c.node);
      if (h) anyHealthy = true;
      if (room !== undefined && !room(c)) continue;
      index[kept] = i;
      loads[kept] = least ? load(c) : 0;
      healthy[kept] = h;
      kept++;
    }
    // Those of the best class present (healthy, or any), and how many share the best load.
    let best = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (let j = 0; j < kept; j++) {
      if (anyHealthy && !healthy[j]) continue;
      const l = loads[j]!;
      if (l < best) {
        best = l;
        ties = 1;
      } else if (l === best) ties++;
    }
    if (ties === 0) return undefined;
    // The k-th of the tied ones, k in turn (or at random).
    let k = strategy === 'random' ? Math.floor(Math.random() * ties) : this.turn++ % ties;
    if (this.turn >= 0x4000_0000) this.turn = 0;
    for (let j = 0; j < kept; j++) {
      if ((anyHealthy && !healthy[j]) || loads[j] !== best) continue;
      if (k-- === 0) return candidates[index[j]!];
    }
    return undefined;
  }
}
