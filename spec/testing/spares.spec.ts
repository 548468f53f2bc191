import { execFileSync, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { closeAll, startCluster } from '../../lib/testing/index.js';

/**
 * switchboard/testing's spare processes (docs/testing.md, "Spare
 * processes"): with `spares: 1`, a booted node process waits ahead; a
 * restart takes it (its pid was already there) and another is booted; the
 * spares die with `closeAll()`, never keep the test process alive, and die
 * with it.
 */
const NODE = new URL('./fixtures/node.ts', import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Node processes of this process that other spec files of the same jest worker left. */
let before: number[] = [];

/** The pids of this process's children running the kit's node program (but those `before`). */
function nodeChildren(): number[] {
  return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((l) => /testing\/child\.[jt]s/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((p) => !before.includes(p));
}

/** Waits until `cond()` holds, at most `ms`. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!cond() && performance.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 25));
  return cond();
}

/** True if a process with this pid exists. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  // A jest worker runs other spec files before this one: none of their processes is counted here.
  await closeAll();
  before = nodeChildren();
});
afterAll(() => closeAll());

it('a restart takes the spare booted ahead, and another is booted', async () => {
  const cluster = await startCluster({ module: NODE, nodes: 2, spares: 1, timeoutMs: 10_000 });
  await cluster.ready();
  const nodes = (): number[] => cluster.nodes.map((n) => n.pid!);
  expect(await until(() => nodeChildren().length === 3, 10_000)).toBe(true);
  const [spare] = nodeChildren().filter((p) => !nodes().includes(p));
  await cluster.restart(1);
  await cluster.waitUntilAllUp();
  // The restarted node is the process that was waiting.
  expect(cluster.node(1).pid).toBe(spare);
  expect(await cluster.node(0).call('ask', 1)).toEqual({
    id: 1,
    incarnation: cluster.node(1).incarnation,
  });
  // And a new spare is there, neither node.
  expect(await until(() => nodeChildren().length === 3, 10_000)).toBe(true);
  const [next] = nodeChildren().filter((p) => !nodes().includes(p));
  expect(next).not.toBe(spare);
  await cluster.close();
  expect(nodeChildren()).toEqual([next]);
  await closeAll();
  expect(await until(() => !exists(next!), 5_000)).toBe(true);
}, 30_000);

it('a spare never keeps the test process alive, and dies with it', async () => {
  const runner = spawn(
    process.execPath,
    ['--import', 'tsx', 'spec/testing/fixtures/spare-runner.ts'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  let out = '';
  runner.stdout.on('data', (c: Buffer) => (out += c.toString()));
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    new Promise<number | null>((resolve) => runner.on('exit', (c) => resolve(c))),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running'), 15_000))),
  ]);
  clearTimeout(timer);
  if (code === 'still running') runner.kill('SIGKILL');
  expect({ code, out }).toMatchObject({ code: 0 });
  const { spares } = JSON.parse(/\{"spares".*\}/.exec(out)![0]) as { spares: number[] };
  expect(spares).toHaveLength(1);
  expect(await until(() => !spares.some(exists), 5_000)).toBe(true);
}, 30_000);
