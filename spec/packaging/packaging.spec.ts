/**
 * The package as a user meets it (docs/packaging.md): `npm pack` makes the
 * tarball, which is unpacked into `node_modules/switchboard` of a fresh
 * project in a temporary directory, the way npm installs it. The package's
 * dependencies, and the zod and @types/node a user would add, are linked
 * there from this repository's node_modules (which CI's `npm ci` filled), so
 * the spec needs no network. That project then imports the package, requires
 * it from CommonJS, and type-checks a file using it with strict settings.
 * Every step runs in a child process bounded in time.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, sep } from 'node:path';
import { freePorts } from '../support/ports.js';
import { ROOT, runProgram } from '../docs/run-program.js';
import { BUILD_MS, PACK_MS, expectOk, packInto, walk } from './pack.js';
import type { PackResult } from './pack.js';

const RUN_MS = 20_000;
const TSC_MS = 60_000;
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** Where a shipped path may be: the build output, the sources its maps point at, and npm's own files. */
const SHIPPED_DIRS = ['dist/lib/', 'dist/bin/', 'lib/', 'bin/'];
const SHIPPED_FILES = ['LICENSE', 'README.md', 'package.json'];

/** The consumer's type-level use of the public API, compiled as ESM. */
const CONSUMER_TS = `import { Switchboard, ValidationError } from 'switchboard';
import type { StandardIssue, SwitchboardOptions } from 'switchboard';
import { z } from 'zod';

const Order = z.object({ id: z.string(), qty: z.number().int() });

export async function use(options: SwitchboardOptions): Promise<string> {
  const sb = await Switchboard.start(options);
  await sb.rendezvous();
  const orders = sb.receiver('orders', { schema: Order });
  await sb.sender('orders', { node: 0, schema: Order }).send({ id: 'a1', qty: 2 });
  const m = await orders.next();
  if (m.done === true) return '';
  const id: string = m.value.id;
  // @ts-expect-error the schema's output type reaches the receiver: qty is a number.
  const qty: string = m.value.qty;
  sb.serve('add', ({ x, y }: { x: number; y: number }) => x + y);
  const sum: number = await sb.call<{ x: number; y: number }, number>('add', { x: 2, y: 3 });
  const issues: ReadonlyArray<StandardIssue> = new ValidationError('here', []).issues;
  await sb.close();
  return \`\${id} \${qty} \${sum} \${issues.length}\`;
}
`;

/** The same package from a CommonJS TypeScript file. */
const CONSUMER_CTS = `import switchboard = require('switchboard');

export const start: typeof switchboard.Switchboard.start = switchboard.Switchboard.start;
export const isValidation = (e: unknown): boolean => e instanceof switchboard.ValidationError;
`;

const STRICT = {
  target: 'ES2022',
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  noEmit: true,
  types: ['node'],
};

/** A real one-node cluster from the installed package, with a zod schema refusing a message. */
const USE_MJS = `import { Switchboard, ValidationError } from 'switchboard';
import { z } from 'zod';

const sb = await Switchboard.start({
  nodes: [process.argv[2]],
  id: 0,
  secret: 'the packaging spec secret, 16 bytes or more',
});
await sb.rendezvous();
const orders = sb.receiver('orders', { schema: z.object({ id: z.string(), qty: z.number() }) });
const refused = new Promise((resolve) => orders.errors$.subscribe(resolve));
const to = sb.sender('orders', { node: 0 });
await to.send({ id: 'x', qty: 'two' });
await to.send({ id: 'a1', qty: 2 });
const m = await orders.next();
const e = await refused;
console.log(JSON.stringify({
  value: m.value,
  refused: e instanceof ValidationError,
  path: e instanceof ValidationError ? e.issues[0]?.path : undefined,
}));
await sb.close();
`;

/** require() from CommonJS, compared with import() of the same package in the same process. */
const USE_CJS = `const required = require('switchboard');
import('switchboard').then((imported) => {
  const names = Object.keys(imported).filter((k) => k !== 'module.exports');
  console.log(JSON.stringify({
    names: names.length,
    requiredNames: Object.keys(required).filter((k) => k !== 'module.exports').length,
    same: names.every((k) => required[k] === imported[k]),
    start: typeof required.Switchboard.start,
  }));
});
`;

describe('the packed package, installed in a fresh project', () => {
  let tmp = '';
  let app = '';
  let installed = '';
  let pack: PackResult;

  beforeAll(
    async () => {
      tmp = mkdtempSync(join(tmpdir(), 'switchboard-pack-'));
      pack = await packInto(tmp);

      app = join(tmp, 'app');
      installed = join(app, 'node_modules', 'switchboard');
      mkdirSync(installed, { recursive: true });
      const tar = await runProgram(
        'tar',
        ['-xzf', join(tmp, pack.filename), '-C', installed, '--strip-components=1'],
        PACK_MS,
      );
      expectOk('unpacking the tarball', tar);
      const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
        dependencies?: Record<string, string>;
      };
      for (const dep of [...Object.keys(manifest.dependencies ?? {}), 'zod', '@types/node']) {
        const link = join(app, 'node_modules', dep);
        mkdirSync(dirname(link), { recursive: true });
        symlinkSync(join(ROOT, 'node_modules', dep), link, 'dir');
      }
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({ name: 'switchboard-consumer', private: true, type: 'module' }),
      );
    },
    BUILD_MS + 2 * PACK_MS,
  );

  afterAll(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  it('ships the build, the sources its maps point at, README, LICENSE and package.json, nothing else', () => {
    const paths = pack.files.map((f) => f.path);
    expect(walk(installed).sort()).toEqual([...paths].sort());
    const stray = paths.filter(
      (p) => !SHIPPED_FILES.includes(p) && !SHIPPED_DIRS.some((d) => p.startsWith(d)),
    );
    expect(stray).toEqual([]);
    expect(paths.filter((p) => /(^|\/)(spec|bench|\.tmp|node_modules)\/|\.spec\./.test(p))).toEqual(
      [],
    );
    expect(paths).toEqual(expect.arrayContaining(['dist/lib/index.js', 'dist/lib/index.d.ts']));
    expect(readFileSync(join(installed, 'dist/bin/switchboard.js'), 'utf8')).toMatch(
      /^#!\/usr\/bin\/env node\n/,
    );
  });

  it('carries the MIT licence and says where the project lives', () => {
    const licence = readFileSync(join(installed, 'LICENSE'), 'utf8');
    expect(licence).toMatch(/^MIT License\n/);
    expect(licence).toContain('Copyright (c) 2026 the switchboard authors');
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      name: string;
      license: string;
      repository: { type: string; url: string };
      homepage: string;
      bugs: { url: string };
    };
    expect([manifest.name, manifest.license]).toEqual(['switchboard', 'MIT']);
    const home = 'https://github.com/switchboard-js/switchboard';
    expect(manifest.repository).toEqual({ type: 'git', url: `git+${home}.git` });
    expect(manifest.homepage).toBe(`${home}#readme`);
    expect(manifest.bugs).toEqual({ url: `${home}/issues` });
  });

  it('has no source map pointing at a file the tarball lacks', () => {
    const paths = new Set(pack.files.map((f) => f.path));
    const maps = [...paths].filter((p) => p.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const map of maps) {
      const m = JSON.parse(readFileSync(join(installed, map), 'utf8')) as {
        sourceRoot?: string;
        sources: string[];
      };
      expect(m.sources.length).toBeGreaterThan(0);
      for (const s of m.sources) {
        const target = normalize(join(dirname(map), m.sourceRoot ?? '', s))
          .split(sep)
          .join('/');
        if (!paths.has(target)) missing.push(`${map} -> ${s}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('works through import: a one-node cluster whose zod schema refuses a bad message', async () => {
    writeFileSync(join(app, 'use.mjs'), USE_MJS);
    const [port] = await freePorts(1);
    const r = await runProgram(process.execPath, ['use.mjs', `127.0.0.1:${port}`], RUN_MS, app);
    expectOk('the ESM program', r);
    expect(JSON.parse(r.stdout)).toEqual({
      value: { id: 'a1', qty: 2 },
      refused: true,
      path: ['qty'],
    });
  });

  it('works through require from CommonJS, giving the same exports as import', async () => {
    writeFileSync(join(app, 'use.cjs'), USE_CJS);
    const r = await runProgram(process.execPath, ['use.cjs'], RUN_MS, app);
    expectOk('the CommonJS program', r);
    expect(r.stderr).not.toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED|ERR_REQUIRE_ESM/);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ same: true, start: 'function' });
    expect(out.requiredNames).toBe(out.names);
    expect(out.names).toBeGreaterThan(20);
  });

  it.each([
    [
      'NodeNext',
      { module: 'NodeNext', moduleResolution: 'NodeNext' },
      ['consumer.ts', 'consumer.cts'],
    ],
    ['bundler', { module: 'preserve', moduleResolution: 'bundler' }, ['consumer.ts']],
  ])(
    'type-checks under strict, exactOptionalPropertyTypes and %s resolution with a zod schema',
    async (name, resolution, files) => {
      writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
      writeFileSync(join(app, 'consumer.cts'), CONSUMER_CTS);
      const config = `tsconfig.${name}.json`;
      writeFileSync(
        join(app, config),
        JSON.stringify({ compilerOptions: { ...STRICT, ...resolution }, files }),
      );
      const r = await runProgram(process.execPath, [TSC, '-p', config], TSC_MS, app);
      expectOk(`tsc -p ${config}`, r);
    },
    TSC_MS + 5_000,
  );
});
