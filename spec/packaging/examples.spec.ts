/**
 * The kit's example project (examples/testing: a node module and one test
 * file per runner) run as a user would run it, with switchboard installed
 * from the packed tarball alone (docs/testing.md, section 9): `npm pack`,
 * a fresh project in a temporary directory, `npm install` of the tarball
 * there (npm lays out the package and fetches its dependencies, from its
 * cache when it has them), then the examples copied in and each runner
 * started in its own process.
 *
 * The runners' own packages (jest, ts-jest, typescript, vitest and the
 * type packages) are linked from this repository's node_modules rather
 * than installed: they are what the example is run with, not what it
 * tests, and installing a few hundred packages again would cost a minute
 * and a dependency on the registry for nothing. Nothing of switchboard is
 * linked: the first test checks that `switchboard/testing` resolves into
 * the installed tarball.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { lstatSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ROOT, explain, runProgram } from '../docs/run-program.js';
import type { ProgramResult } from '../docs/run-program.js';
import { BUILD_MS, PACK_MS, expectOk, packInto } from './pack.js';

const INSTALL_MS = 120_000;
const RUNNER_MS = 90_000;
const RUNNERS = ['jest', 'ts-jest', 'typescript', 'vitest', '@types/jest', '@types/node'];

/** The tests every runner's example has, by name. */
const TESTS = [
  'a node calls another',
  'a killed node is seen down, and up again once restarted',
  'a blackholed link is seen down at both ends, and up after heal',
];

interface Outcome {
  readonly passed: readonly string[];
  readonly failed: readonly string[];
}

/** jest's and vitest's `--json` results: both follow jest's shape. */
function fromJson(file: string): Outcome {
  const r = JSON.parse(readFileSync(file, 'utf8')) as {
    testResults: Array<{ assertionResults: Array<{ title: string; status: string }> }>;
  };
  const all = r.testResults.flatMap((f) => f.assertionResults);
  return {
    passed: all.filter((a) => a.status === 'passed').map((a) => a.title),
    failed: all.filter((a) => a.status !== 'passed').map((a) => a.title),
  };
}

/** node:test's TAP: `ok 1 - title` and `not ok 2 - title` at the top level. */
function fromTap(out: string): Outcome {
  const lines = out.split('\n');
  const pick = (re: RegExp): string[] =>
    lines.flatMap((l) => {
      const m = re.exec(l);
      return m === null ? [] : [m[1]!];
    });
  return { passed: pick(/^ok \d+ - (.+)$/), failed: pick(/^not ok \d+ - (.+)$/) };
}

describe('the examples of switchboard/testing, from the packed package', () => {
  let tmp = '';
  let app = '';

  beforeAll(
    async () => {
      tmp = mkdtempSync(join(tmpdir(), 'switchboard-examples-'));
      const pack = await packInto(tmp);
      app = join(tmp, 'app');
      mkdirSync(app);
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({ name: 'kit-example', private: true, type: 'module' }),
      );
      const install = await runProgram(
        'npm',
        [
          'install',
          '--prefer-offline',
          '--ignore-scripts',
          '--no-audit',
          '--no-fund',
          '--no-save',
          join(tmp, pack.filename),
        ],
        INSTALL_MS,
        app,
      );
      expectOk('npm install of the tarball', install);
      for (const dep of RUNNERS) {
        const link = join(app, 'node_modules', dep);
        mkdirSync(dirname(link), { recursive: true });
        symlinkSync(join(ROOT, 'node_modules', dep), link, 'dir');
      }
      const examples = join(ROOT, 'examples', 'testing');
      // Not a vitest cache a local run may have left next to its config.
      cpSync(examples, app, {
        recursive: true,
        filter: (src) => basename(src) !== 'node_modules',
      });
    },
    BUILD_MS + PACK_MS + INSTALL_MS,
  );

  afterAll(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('resolves switchboard/testing into the installed tarball, not this repository', async () => {
    const r = await runProgram(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { fileURLToPath } from 'node:url';" +
          "console.log(fileURLToPath(import.meta.resolve('switchboard/testing')));",
      ],
      20_000,
      app,
    );
    expectOk('resolving switchboard/testing', r);
    const installed = join(app, 'node_modules', 'switchboard');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    const resolved = realpathSync(r.stdout.trim());
    expect(resolved).toBe(join(realpathSync(installed), 'dist/lib/testing/index.js'));
    expect(resolved.startsWith(ROOT)).toBe(false);
  });

  const check = (name: string, r: ProgramResult, outcome: () => Outcome): void => {
    if (r.code !== 0 || r.timedOut) throw new Error(`${name} failed: ${explain(r)}`);
    const o = outcome();
    expect(o.failed).toEqual([]);
    expect([...o.passed].sort()).toEqual([...TESTS].sort());
  };

  it(
    'jest (ESM, ts-jest): exits 0 with every test passed',
    async () => {
      const out = join(app, 'jest-results.json');
      const r = await runProgram(
        process.execPath,
        [
          '--experimental-vm-modules',
          'node_modules/jest/bin/jest.js',
          '-c',
          'jest/jest.config.js',
          '--ci',
          '--json',
          `--outputFile=${out}`,
        ],
        RUNNER_MS,
        app,
      );
      check('jest', r, () => fromJson(out));
    },
    RUNNER_MS + 5_000,
  );

  it(
    'vitest: exits 0 with every test passed',
    async () => {
      const out = join(app, 'vitest-results.json');
      const r = await runProgram(
        process.execPath,
        [
          'node_modules/vitest/vitest.mjs',
          'run',
          '--config',
          'vitest/vitest.config.ts',
          '--reporter=json',
          `--outputFile=${out}`,
        ],
        RUNNER_MS,
        app,
      );
      check('vitest', r, () => fromJson(out));
    },
    RUNNER_MS + 5_000,
  );

  it(
    'node:test: exits 0 with every test passed',
    async () => {
      const r = await runProgram(
        process.execPath,
        ['--test', '--test-reporter=tap', 'node-test/'],
        RUNNER_MS,
        app,
      );
      check('node --test', r, () => fromTap(r.stdout));
    },
    RUNNER_MS + 5_000,
  );
});
