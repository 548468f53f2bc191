/**
 * README.md must work exactly as written. Every ```ts block is a complete
 * program: it is written to a temporary file under .tmp/ with its
 * `from 'switchboard'` imports rewritten to the library's source
 * (`lib/index.js`, which is what the package exports once built), run with
 * `node --import tsx`, and must exit 0.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, explain, runProgram } from './run-program.js';

const BOUND_MS = 30_000;
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const TMP = join(ROOT, '.tmp', `readme-spec-${process.pid}`);

/** The ```ts blocks of a markdown text, with the line each starts on. */
export function tsBlocks(markdown: string): Array<{ line: number; code: string }> {
  const blocks: Array<{ line: number; code: string }> = [];
  const re = /^```(?:ts|typescript)\s*\n([\s\S]*?)^```\s*$/gm;
  for (let m = re.exec(markdown); m !== null; m = re.exec(markdown)) {
    blocks.push({ line: markdown.slice(0, m.index).split('\n').length, code: m[1]! });
  }
  return blocks;
}

/** Points `'switchboard'` imports at the library source, relative to `dir`. */
export function rewriteImports(code: string, dir: string): string {
  const lib = relative(dir, join(ROOT, 'lib/index.js')).split('\\').join('/');
  return code.replace(/(from\s+|import\s*\(\s*)(['"])switchboard\2/g, `$1$2${lib}$2`);
}

/** The output a block promises in `console.log(...); // <output>` comments, in order. */
export function promisedOutput(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n')) {
    const m = /console\.log\(.*\);\s*\/\/\s*(.+)$/.exec(line);
    if (m !== null) out.push(m[1]!.trim());
  }
  return out;
}

const BLOCKS = tsBlocks(README);

describe('README.md', () => {
  beforeAll(() => mkdirSync(TMP, { recursive: true }));
  afterAll(() => rmSync(TMP, { recursive: true, force: true }));

  it('starts with the two commands that must work on a fresh machine', () => {
    const sh = /```sh\n([\s\S]*?)```/.exec(README);
    expect(sh?.[1]?.split('\n').filter(Boolean)).toEqual(['npm ci && npm run demo', 'npm test']);
    // The first code block of the file is that one.
    expect(README.indexOf('```sh')).toBe(README.indexOf('```'));
  });

  it('has a complete example under 30 lines', () => {
    expect(BLOCKS.length).toBeGreaterThan(0);
    const lines = BLOCKS[0]!.code.trimEnd().split('\n').length;
    expect(lines).toBeLessThan(30);
    expect(BLOCKS[0]!.code).toMatch(/from 'switchboard'/);
  });

  it('rewrites imports of the package to the library source', () => {
    expect(rewriteImports("import { Switchboard } from 'switchboard';", join(ROOT, '.tmp/x'))).toBe(
      "import { Switchboard } from '../../lib/index.js';",
    );
  });

  it.each(BLOCKS.map((b, i) => ({ ...b, i })))(
    'runs the ts block at line $line and exits 0',
    async ({ code, i }) => {
      const file = join(TMP, `block-${i}.ts`);
      writeFileSync(file, rewriteImports(code, TMP));
      const r = await runProgram(process.execPath, ['--import', 'tsx', file], BOUND_MS);
      if (r.code !== 0 || r.timedOut)
        throw new Error(`README block ${i} failed: ${explain(r)}\n--- code ---\n${code}`);
      // `console.log(...); // 5` promises that line of output: hold the README to it.
      expect(r.stdout.trimEnd().split('\n')).toEqual(promisedOutput(code));
    },
    BOUND_MS + 5_000,
  );
});
