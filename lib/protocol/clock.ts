/**
 * The monotonic clock of the hot paths: milliseconds on the scale of
 * `performance.now()` (the two may be mixed), read through
 * `process.hrtime()`, which costs about half as much per call on Node 20
 * (`performance.now()` first checks its receiver, then reads the same
 * clock). The stale-session fence reads it once per message handed to an
 * application (docs/guide.md, "Guarantees"), so the difference shows in
 * every receive loop (docs/benchmarks.md).
 */
const hrtime = process.hrtime;

function hrMs(): number {
  const t = hrtime();
  return t[0] * 1e3 + t[1] / 1e6;
}

/** hrtime's origin minus performance.now()'s: fixed for the process. */
const OFFSET = hrMs() - performance.now();

/** Now, in ms, on `performance.now()`'s scale. */
export function clockMs(): number {
  const t = hrtime();
  return t[0] * 1e3 + t[1] / 1e6 - OFFSET;
}
