import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * docs/guide.md, "Layers": imports flow one way, channel -> switchboard ->
 * protocol, with lib/errors.ts shared by all and the public entry points
 * (lib/index.ts, lib/facade.ts) above them. lib/options.ts (option-name
 * checking) sits between errors and protocol, so every layer may use it and
 * it may use nothing but errors. No import cycles anywhere in lib.
 */
const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../lib');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s+'(\.[^']+)'/g)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

/** The layer of a lib file: higher may import lower, never the reverse. */
function layer(file: string): number {
  const rel = relative(LIB, file);
  if (rel === 'errors.ts') return 0;
  if (rel === 'options.ts') return 1;
  if (rel.startsWith('protocol/')) return 2;
  if (rel.startsWith('switchboard/')) return 3;
  if (rel.startsWith('channel/')) return 4;
  return 5; // index.ts, facade.ts
}

const graph = new Map(files(LIB).map((f) => [f, importsOf(f)]));

describe('lib import structure', () => {
  it('finds the library files and their imports', () => {
    expect(graph.size).toBeGreaterThan(20);
    // Every layer is reached: the parser really sees the import lines.
    const edges = [...graph.values()].flat();
    expect(edges.length).toBeGreaterThan(50);
    const reached = new Set(edges.map(layer));
    for (const l of [0, 1, 2, 3, 4]) expect(reached.has(l)).toBe(true);
    for (const deps of graph.values()) for (const d of deps) expect(graph.has(d)).toBe(true);
  });

  it('imports only downward: channel -> switchboard -> protocol -> options -> errors', () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      for (const d of deps) {
        if (layer(d) > layer(file)) upward.push(`${relative(LIB, file)} -> ${relative(LIB, d)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(LIB, p)).join(' -> '));
        return;
      }
      state.set(f, 'visiting');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of graph.keys()) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
