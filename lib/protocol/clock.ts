/**
 * The monotonic clock of the hot paths: milliseconds on the scale of
 * `performance.now()` (the two may be mixed), read through
 * `process.hrtime()`, which costs about half as much per call on Node 20
 * (`performance.now()` first checks its receiver, then reads the same
 * clock). The stale-session fence reads it once per message handed to an
 * application (docs/guide.md, "Guarantees"), so the difference shows in
 * every receive loop (docs/benchmarks.md). The two scales agree to within
 * a microsecond or so; code that compares its own readings (the links'
 * PING stamps) reads this clock only.
 */
const hrtime = process.hrtime;

function hrMs(): number {
  const t = hrtime();
  return t[0] * 1e3 + t[1] / 1e6;
}

/**
 * hrtime's origin minus performance.now()'s: fixed for the process. Taken
 * from the tightest of a few bracketed readings, after both clocks are warm
 * (the first performance.now() can take milliseconds).
 */
const OFFSET = ((): number => {
  let best = Number.POSITIVE_INFINITY;
  let offset = 0;
  for (let i = 0; i < 8; i++) {
    const before = hrMs();
    const p = performance.now();
    const after = hrMs();
    if (i >= 2 && after - before < best) {
      best = after - before;
      offset = (before + after) / 2 - p;
    }
  }
  return offset;
})();

/** Now, in ms, on `performance.now()`'s scale. */
export function clockMs(): number {
  const t = hrtime();
  return t[0] * 1e3 + t[1] / 1e6 - OFFSET;
}
