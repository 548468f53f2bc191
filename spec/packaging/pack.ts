/**
 * What the packaging specs share: a dist/ as `npm run build` would make it
 * now (built only when stale), and the tarball `npm pack` makes of it, in a
 * directory of the caller's.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { ROOT, explain, runProgram } from '../docs/run-program.js';
import type { ProgramResult } from '../docs/run-program.js';

export const BUILD_MS = 120_000;
export const PACK_MS = 60_000;

/** Files under `dir`, as paths relative to it with `/` separators. */
export function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return walk(p, base);
    return [relative(base, p).split(sep).join('/')];
  });
}

/**
 * True when dist/ is what `npm run build` would make now: every source of
 * lib/ and bin/ has its .js, map and declaration map no older than itself,
 * no .js is left from a source that is gone, and neither tsconfig changed since.
 */
export function distIsFresh(): boolean {
  const dist = join(ROOT, 'dist');
  let outputs: string[];
  try {
    outputs = walk(dist);
  } catch {
    return false;
  }
  const sources = ['lib', 'bin'].flatMap((d) =>
    walk(join(ROOT, d))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .map((f) => `${d}/${f}`),
  );
  const have = new Set(outputs);
  const oldest = Math.min(...outputs.map((f) => statSync(join(dist, f)).mtimeMs));
  for (const config of ['tsconfig.json', 'tsconfig.build.json'])
    if (statSync(join(ROOT, config)).mtimeMs > oldest) return false;
  for (const s of sources) {
    const base = s.slice(0, -'.ts'.length);
    for (const out of [`${base}.js`, `${base}.js.map`, `${base}.d.ts.map`])
      if (!have.has(out)) return false;
    if (statSync(join(ROOT, s)).mtimeMs > statSync(join(dist, `${base}.js`)).mtimeMs) return false;
  }
  const sourceSet = new Set(sources);
  return outputs
    .filter((f) => f.endsWith('.js'))
    .every((f) => sourceSet.has(`${f.slice(0, -'.js'.length)}.ts`));
}

/** Throws with the program's output unless it exited 0 in time. */
export function expectOk(what: string, r: ProgramResult): void {
  if (r.code !== 0 || r.timedOut) throw new Error(`${what} failed: ${explain(r)}`);
}

/** What `npm pack --json` says of the tarball. */
export interface PackResult {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: ReadonlyArray<{ readonly path: string }>;
}

/** Builds dist/ if it is stale, then packs the package into `dir`. */
export async function packInto(dir: string): Promise<PackResult> {
  if (!distIsFresh())
    expectOk('npm run build', await runProgram('npm', ['run', 'build'], BUILD_MS));
  const r = await runProgram(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
    PACK_MS,
  );
  expectOk('npm pack', r);
  return (JSON.parse(r.stdout) as PackResult[])[0]!;
}
