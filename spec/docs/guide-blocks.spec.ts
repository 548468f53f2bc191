/**
 * The complete programs of docs/guide.md: every ```ts block right after a
 * `<!-- runnable -->` line runs as written, as README.md's blocks do
 * (spec/docs/readme.spec.ts): written under .tmp/ with its `'switchboard'`
 * imports pointed at the library's source, run with `node --import tsx`,
 * exit 0 and print exactly what its `console.log(...); // <output>`
 * comments promise. The guide's other blocks are excerpts.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, explain, runProgram } from './run-program.js';

const BOUND_MS = 30_000;
const GUIDE = readFileSync(join(ROOT, 'docs/guide.md'), 'utf8');
const TMP = join(ROOT, '.tmp', `guide-spec-${process.pid}`);

/** The runnable blocks, with the line each starts on. */
function runnableBlocks(markdown: string): Array<{ line: number; code: string }> {
  const blocks: Array<{ line: number; code: string }> = [];
  const re = /^<!-- runnable -->\n\n?```ts\n([\s\S]*?)^```\s*$/gm;
  for (let m = re.exec(markdown); m !== null; m = re.exec(markdown))
    blocks.push({ line: markdown.slice(0, m.index).split('\n').length + 2, code: m[1]! });
  return blocks;
}

function pointAtSource(code: string, dir: string): string {
  const lib = relative(dir, join(ROOT, 'lib/index.js')).split('\\').join('/');
  return code.replace(/(from\s+)(['"])switchboard\2/g, `$1$2${lib}$2`);
}

function promised(code: string): string[] {
  const out: string[] = [];
  for (const line of code.split('\n')) {
    const m = /console\.log\(.*\);\s*\/\/\s*(.+)$/.exec(line);
    if (m !== null) out.push(m[1]!.trim());
  }
  return out;
}

const BLOCKS = runnableBlocks(GUIDE);

describe('docs/guide.md runnable blocks', () => {
  beforeAll(() => mkdirSync(TMP, { recursive: true }));
  afterAll(() => rmSync(TMP, { recursive: true, force: true }));

  it('has the service contract example among them', () => {
    expect(BLOCKS.some((b) => b.code.includes('defineService('))).toBe(true);
  });

  it.each(BLOCKS.map((b, i) => ({ ...b, i })))(
    'runs the block at line $line and exits 0',
    async ({ code, i }) => {
      const file = join(TMP, `block-${i}.ts`);
      writeFileSync(file, pointAtSource(code, TMP));
      const r = await runProgram(process.execPath, ['--import', 'tsx', file], BOUND_MS);
      if (r.code !== 0 || r.timedOut)
        throw new Error(`guide block ${i} failed: ${explain(r)}\n--- code ---\n${code}`);
      expect(r.stdout.trimEnd().split('\n')).toEqual(promised(code));
    },
    BOUND_MS + 5_000,
  );
});
