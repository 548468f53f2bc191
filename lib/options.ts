import { OptionError } from './errors.js';

/**
 * Option-name checking, shared by every layer: a misspelt option name is
 * otherwise accepted silently and its default used, which is the hardest
 * kind of configuration mistake to find.
 */

/**
 * Throws {@link OptionError} if `options` has an own enumerable string key
 * not in `known`. The error names every unknown key; `option` and
 * `suggestion` are the first one's. For each unknown key it proposes the
 * nearest known name (see {@link nearestName}).
 *
 * ```ts
 * checkOptionNames({ deadPeerMS: 10 }, ['deadPeerMs', 'heartbeatMs'], '');
 * // OptionError: invalid option deadPeerMS: unknown option (did you mean deadPeerMs?)
 * ```
 *
 * Only names are checked, not values, and only at this level: check a
 * nested object with its own call. Symbol keys are ignored. A key counts
 * even when its value is `undefined`, since a misspelling is one whatever
 * its value.
 *
 * @param options the object the caller received (anything not a non-null
 *   object has no names and passes).
 * @param known every name the caller understands.
 * @param where the path of `options` inside the caller's options, prefixed
 *   to the names reported: `''` at the top level, `'tls'` for a nested
 *   object (`tls.kye`, did you mean `tls.key`?).
 * @throws OptionError (`ERR_SB_INVALID_OPTION`) naming the unknown keys.
 */
export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  if (typeof options !== 'object' || options === null) return;
  // The common case, every name known, allocates nothing (options of a
  // call are checked once per call).
  let clean = true;
  for (const key in options) {
    if (Object.hasOwn(options, key) && !known.includes(key)) {
      clean = false;
      break;
    }
  }
  if (clean) return;
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length === 0) return;
  const path = (name: string): string => (where === '' ? name : `${where}.${name}`);
  const describe = (key: string): { text: string; suggestion: string | undefined } => {
    const near = nearestName(key, known);
    const suggestion = near === undefined ? undefined : path(near);
    return {
      text: suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`,
      suggestion,
    };
  };
  const [first, ...rest] = unknown;
  const head = describe(first!);
  const also =
    rest.length === 0
      ? ''
      : `; also unknown: ${rest.map((key) => `${path(key)}${describe(key).text}`).join(', ')}`;
  throw new OptionError(path(first!), `unknown option${head.text}${also}`, {
    suggestion: head.suggestion,
  });
}

/**
 * The known name `name` most likely stands for, or `undefined` when none is
 * close. A name differing only in case wins outright (`deadPeerMS` ->
 * `deadPeerMs`); otherwise the nearest by edit distance, ignoring case and
 * counting a swap of two neighbouring letters as one edit, if it is within
 * a quarter of the name's length (at least 1, at most 3 edits). Ties go to
 * the name listed first in `known`.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameCase = known.find((k) => k.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 4)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
function editDistance(a: string, b: string): number {
  // Three rows suffice: a transposition looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      current.push(d);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}
