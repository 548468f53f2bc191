/**
 * Every program in docs/examples runs as a user would run it
 * (`node --import tsx docs/examples/<name>.ts`), exits 0 and prints what it
 * promises. Examples start their own processes or switchboards; each run is
 * bounded in time and killed with everything it spawned when the bound
 * expires.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, explain, runProgram } from './run-program.js';

const BOUND_MS = 45_000;

interface Example {
  readonly file: string;
  /** Lines or patterns the output must contain. */
  readonly prints: ReadonlyArray<string | RegExp>;
}

const EXAMPLES: readonly Example[] = [
  {
    file: 'echo.ts',
    prints: [
      'client: echo "hello"',
      'client: echo "ünïcödé ✓"',
      'server: client hung up',
      'echo: ok',
    ],
  },
  { file: 'hello.ts', prints: ['Hello, Ada!', 'Hello, Grace!', 'hello: ok'] },
  { file: 'add.ts', prints: ['add(2, 3) = 5', 'RemoteError', 'add: ok'] },
  {
    file: 'bidi-streams.ts',
    prints: ['echo_stream: one two three', 'uppercase: ONE TWO THREE', 'bidi-streams: ok'],
  },
  { file: 'list-items.ts', prints: [/list_items: 25 items, 0\.\.24/, 'list-items: ok'] },
  {
    file: 'upload.ts',
    prints: [/upload: \d+ chunks, \d+ bytes, sha256 [0-9a-f]{64}/, 'upload: ok'],
  },
  {
    file: 'worker-pool.ts',
    prints: [/least-outstanding/, /only workers tagged gpu/, 'worker-pool: ok'],
  },
  {
    file: 'pingpong.ts',
    prints: [
      'leader: round 0 sent 0, got 1:1 2:2',
      'leader: round 4 sent 400, got 1:401 2:402',
      'follower 1: answered 5 pings',
      'follower 2: answered 5 pings',
      'pingpong: all 3 processes exited 0',
    ],
  },
];

const DIR = join(ROOT, 'docs/examples');

describe('docs/examples', () => {
  it('has a spec entry for every example program', () => {
    const programs = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
    expect(programs.sort()).toEqual(EXAMPLES.map((e) => e.file).sort());
  });

  it.each(EXAMPLES)(
    '$file runs and exits 0',
    async ({ file, prints }) => {
      const path = join(DIR, file);
      if (!existsSync(path)) throw new Error(`docs/examples/${file} is missing`);
      const r = await runProgram(
        process.execPath,
        ['--import', 'tsx', `docs/examples/${file}`],
        BOUND_MS,
      );
      if (r.code !== 0 || r.timedOut) throw new Error(`${file} failed: ${explain(r)}`);
      for (const p of prints) {
        if (typeof p === 'string') expect(r.stdout).toContain(p);
        else expect(r.stdout).toMatch(p);
      }
    },
    BOUND_MS + 5_000,
  );
});
