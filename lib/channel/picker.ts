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
 * Picking allocates nothing.
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
    // First pass: the best class present (healthy, or any).
    let anyHealthy = false;
    let any = false;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!serves(c)) continue;
      any = true;
      if (this.health.healthy(c.node)) {
        anyHealthy = true;
        break;
      }
    }
    if (!any) return undefined;
    // Those of the class with room, and how many share the best load.
    let best = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!this.counts(c, anyHealthy, serves, room)) continue;
      if (strategy !== 'least-loaded') {
        ties++;
        continue;
      }
      const l = load(c);
      if (l < best) {
        best = l;
        ties = 1;
      } else if (l === best) ties++;
    }
    if (ties === 0) return undefined;
    // Second pass: the k-th of the tied ones, k in turn (or at random).
    let k = strategy === 'random' ? Math.floor(Math.random() * ties) : this.turn++ % ties;
    if (this.turn >= 0x4000_0000) this.turn = 0;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!this.counts(c, anyHealthy, serves, room)) continue;
      if (strategy === 'least-loaded' && load(c) !== best) continue;
      if (k-- === 0) return c;
    }
    return undefined;
  }

  /** Whether `c` is picked from: it serves, is of the chosen class, and has room. */
  private counts<C extends Placed>(
    c: C,
    healthyOnly: boolean,
    serves: (c: C) => boolean,
    room: ((c: C) => boolean) | undefined,
  ): boolean {
    return (
      serves(c) && (!healthyOnly || this.health.healthy(c.node)) && (room === undefined || room(c))
    );
  }
}
