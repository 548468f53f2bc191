/**
 * The one picker of the channel core: which of several places gets the
 * next message, call or task. MPMC `one` senders, RPC callers and pushers
 * all choose through it, so they share its rules:
 *
 * - only candidates the caller calls eligible (tags, kind, room) count;
 * - a candidate on a peer that is **suspect** (connected but silent, or
 *   reconnecting) is skipped while any eligible candidate on a healthy node
 *   (or this node) remains; only when every eligible one is suspect does the
 *   picker fall back to them, so work waits on a peer that may come back
 *   rather than fail (docs/guide.md, "Load balancing");
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
   * One of `candidates`, or undefined when none is eligible. `load` is only
   * read by `least-loaded`. Turns are taken among the eligible candidates
   * (and the healthy ones among them), so ineligible ones skew nothing.
   */
  pick<C extends Placed>(
    candidates: readonly C[],
    strategy: PickStrategy,
    eligible: (c: C) => boolean,
    load: (c: C) => number,
  ): C | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    // First pass: the best class present (healthy, or any), and how many share the best.
    let anyHealthy = false;
    let any = false;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!eligible(c)) continue;
      any = true;
      if (this.health.healthy(c.node)) {
        anyHealthy = true;
        break;
      }
    }
    if (!any) return undefined;
    let best = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!eligible(c) || (anyHealthy && !this.health.healthy(c.node))) continue;
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
    // Second pass: the k-th of the tied ones, k in turn (or at random).
    let k = strategy === 'random' ? Math.floor(Math.random() * ties) : this.turn++ % ties;
    if (this.turn >= 0x4000_0000) this.turn = 0;
    for (let i = 0; i < n; i++) {
      const c = candidates[i]!;
      if (!eligible(c) || (anyHealthy && !this.health.healthy(c.node))) continue;
      if (strategy === 'least-loaded' && load(c) !== best) continue;
      if (k-- === 0) return c;
    }
    return undefined;
  }
}
