/**
 * The monotonic clock of the hot paths: milliseconds, `performance.now()`.
 * The stale-session fence reads it once per message handed to an
 * application (docs/guide.md, "Guarantees"), so its cost shows in every
 * receive loop (docs/benchmarks.md). `process.hrtime()` costs the same per
 * call on Node 20 but allocates an array each time: in a fan-out
 * subscriber that was garbage on every message. One function, so every
 * hot path reads the same clock and stamps compare.
 */
const perf = performance;

/** Now, in ms, on `performance.now()`'s scale. */
export function clockMs(): number {
  return perf.now();
}
