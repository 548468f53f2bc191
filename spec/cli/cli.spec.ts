/**
 * The `switchboard` command against a live cluster (docs/cli.md): three
 * member processes started by switchboard/testing from
 * fixtures/member.ts, and the command run as a user runs it,
 * `node dist/bin/switchboard.js ...` in a child process, attaching as a
 * client through a cluster file. Every command; `--json` output parsed
 * and checked against what the members themselves saw; usage errors exit
 * 2; an unreachable cluster exits 3 naming each member's reason; a killed
 * member makes `ping` exit 1.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import { CliProcess, ensureBuilt, explainCli, runCli } from './run-cli.js';
import type { CliResult } from './run-cli.js';

const MEMBER = new URL('./fixtures/member.ts', import.meta.url);
/** What the members accept from clients besides the cluster secret. */
const CLIENT_SECRET = 'the operators client secret, handed out';

let cluster: ProcessCluster;
let dir: string;
let clusterFile: string;
/** The flags that attach to the live cluster. */
let attach: string[];

beforeAll(async () => {
  await ensureBuilt();
  cluster = await startCluster({
    module: MEMBER,
    nodes: 3,
    options: { heartbeatMs: 100, deadPeerMs: 600, clientSecret: CLIENT_SECRET },
    timeoutMs: 20_000,
  });
  await cluster.ready();
  dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
  // What an operator's editor leaves: the secret's bytes and a newline.
  writeFileSync(join(dir, 'secret'), `${cluster.secret}\n`, {
    mode: 0o600,
  });
  clusterFile = join(dir, 'cluster.json');
  writeFileSync(clusterFile, JSON.stringify({ nodes: cluster.addresses, secretFile: 'secret' }));
  attach = ['--cluster', clusterFile];
}, 150_000);

afterAll(async () => {
  await cluster?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Runs the command attached to the cluster; expects exit `code`. */
async function sb(
  args: readonly string[],
  code = 0,
  env: Record<string, string> = {},
  input?: string,
): Promise<CliResult> {
  const r = await runCli([...args, ...attach], env, 30_000, input);
  if (r.code !== code)
    throw new Error(`switchboard ${args.join(' ')}: expected exit ${code}, ${explainCli(r)}`);
  return r;
}

const json = <T>(r: CliResult): T => JSON.parse(r.stdout) as T;

/** Waits (bounded) until `check()` holds. */
async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('switchboard against a live cluster', () => {
  it('ping: every member answers, with its incarnation', async () => {
    const r = json<{
      members: Array<{
        node: number;
        address: string;
        ok: boolean;
        incarnation: string;
        rttMs: { min: number; avg: number; max: number };
        samples: number;
      }>;
    }>(await sb(['ping', '--json', '--count', '2']));
    expect(r.members.map((m) => m.node)).toEqual([0, 1, 2]);
    for (const m of r.members) {
      expect(m).toMatchObject({ ok: true, address: cluster.addresses[m.node], samples: 2 });
      expect(m.incarnation).toBe(cluster.node(m.node).incarnation);
      expect(m.rttMs.min).toBeGreaterThan(0);
      expect(m.rttMs.min).toBeLessThanOrEqual(m.rttMs.max);
    }
    const text = await sb(['ping']);
    for (let i = 0; i < 3; i++)
      expect(text.stdout).toMatch(
        new RegExp(
          `node ${i} +${cluster.addresses[i]!.replace(/\./g, '\\.')} +incarnation [0-9a-f]{8} +rtt`,
        ),
      );
  });

  it("peers: each member's view, every other member up with its incarnation", async () => {
    const r = json<{
      members: Array<{
        node: number;
        ok: boolean;
        value: {
          node: number;
          peers: Array<{ node: number; state: string; incarnation: string }>;
          clients: Array<{ state: string }>;
        };
      }>;
    }>(await sb(['peers', '--json']));
    // The command itself is a client of every member.
    for (const m of r.members) expect(m.value.clients.length).toBeGreaterThanOrEqual(1);
    expect(r.members).toHaveLength(3);
    for (const m of r.members) {
      expect(m.ok).toBe(true);
      const others = m.value.peers.filter((p) => [0, 1, 2].includes(p.node) && p.node !== m.node);
      expect(others.map((p) => p.node).sort()).toEqual([0, 1, 2].filter((n) => n !== m.node));
      for (const p of others) {
        expect(p.state).toBe('up');
        expect(p.incarnation).toBe(cluster.node(p.node).incarnation);
      }
    }
    expect((await sb(['peers'])).stdout).toMatch(/^ {2}\d+ client\(s\) linked: /m);
    expect((await sb(['peers'])).stdout).toMatch(
      /node 0 \(.*\), incarnation [0-9a-f]{8}, sees:\n {2}node 1 +up/,
    );
  });

  it('methods: every method once, with its kind, nodes and contract', async () => {
    const r = json<{
      methods: Array<{
        name: string;
        kinds: string[];
        nodes: number[];
        contracts: Array<{ name: string; version: string; request?: unknown }>;
      }>;
    }>(await sb(['methods', '--json']));
    expect(r.methods.map((m) => [m.name, m.kinds, [...m.nodes].sort()])).toEqual([
      ['add', ['unary'], [1, 2]],
      ['calc.double', ['unary'], [0]],
      ['count', ['server-stream'], [0]],
      ['doubles', ['bidi'], [0]],
      ['echo', ['unary'], [0, 1, 2]],
      ['sum', ['client-stream'], [0]],
    ]);
    expect(r.methods[1]!.contracts).toEqual([
      expect.objectContaining({
        name: 'calc',
        version: expect.stringMatching(/^[0-9a-f]{16}$/) as unknown,
      }),
    ]);
    const text = (await sb(['methods', '--schemas'])).stdout;
    expect(text).toMatch(/^METHOD +KIND +NODES +CONTRACT$/m);
    expect(text).toMatch(/^add +unary +[12],[12]$/m);
    expect(text).toMatch(/^calc\.double +unary +0 +calc [0-9a-f]{16}$/m);
    expect(text).toContain('"type":"number"');
    expect(text).not.toContain('$sb.');
  });

  it('call: a unary reply as JSON, a stream line by line, a failure exits 1', async () => {
    expect(json(await sb(['call', 'add', '[2,3]']))).toBe(5);
    expect(json(await sb(['call', 'echo', '{"a":[1,"x"]}', '--node', '2']))).toEqual({
      node: 2,
      value: { a: [1, 'x'] },
    });
    expect(json(await sb(['call', 'calc.double', '21']))).toBe(42);
    const stream = await sb(['call', 'count', '4', '--stream']);
    expect(
      stream.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([0, 1, 2, 3]);
    const missing = await sb(['call', 'no.such.method', 'null', '--json'], 1);
    expect(json<{ ok: boolean; error: { code: string } }>(missing)).toMatchObject({
      ok: false,
      error: { code: 'ERR_SB_NO_SERVER' },
    });
    expect(missing.stderr).toMatch(/call "no\.such\.method" failed: .*ERR_SB_NO_SERVER/);
    // The server's schema refuses a string: a typed error, exit 1.
    expect((await sb(['call', 'calc.double', '"x"'], 1)).stderr).toContain('ERR_SB_VALIDATION');
  });

  it('call --up: a client-streaming call from --item or stdin lines, a bidi call with --stream', async () => {
    expect(json(await sb(['call', 'sum', '--up', '--item', '4', '--item', '5']))).toBe(9);
    // Blank lines are skipped; stdin's end ends the up stream.
    expect(json(await sb(['call', 'sum', '--up'], 0, {}, '1\n2\n\n3\n'))).toBe(6);
    expect(json(await sb(['call', 'sum', '--up'], 0, {}, ''))).toBe(0);
    const lines = (r: CliResult): unknown[] =>
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown);
    expect(
      lines(await sb(['call', 'doubles', '--up', '--stream'], 0, {}, '1\n{"n":2}\n3\n')),
    ).toEqual([2, { n: 4 }, 6]);
    expect(lines(await sb(['call', 'doubles', '--up', '--stream', '--item', '7']))).toEqual([14]);
    // A line that is not JSON cancels the call: exit 2 naming the line, no reply printed.
    const bad = await sb(['call', 'sum', '--up'], 2, {}, '1\nnot json\n3\n');
    expect(bad.stderr).toContain('stdin line 2 is not JSON');
    expect(bad.stdout).toBe('');
    // Misuse is refused before attaching.
    expect((await sb(['call', 'sum', '1', '--up'], 2)).stderr).toContain('--up takes');
    expect((await sb(['call', 'sum', '--item', '1'], 2)).stderr).toContain('--item needs --up');
    expect((await sb(['call', 'sum', '--up', '--item', 'x'], 2)).stderr).toContain(
      '--item 1 must be JSON',
    );
  }, 120_000);

  it('push: tasks reach the queue’s worker', async () => {
    const from = cluster.node(1).reports.length;
    const r = json<{ ok: boolean; pushed: number }>(
      await sb(['push', 'jobs', '{"job":7}', '--count', '3', '--json']),
    );
    expect(r).toEqual({ ok: true, queue: 'jobs', pushed: 3 });
    await until(
      () =>
        Promise.resolve(
          cluster
            .node(1)
            .reports.slice(from)
            .filter((x) => x.kind === 'task').length >= 3,
        ),
      'three tasks on node 1',
    );
    expect(
      cluster
        .node(1)
        .reports.slice(from)
        .filter((x) => x.kind === 'task')
        .map((x) => x.data),
    ).toEqual([{ job: 7 }, { job: 7 }, { job: 7 }]);
    expect((await sb(['push', 'jobs', '1'])).stdout).toBe('pushed 1 task(s) to jobs\n');
  });

  it('pub: a publication reaches the members’ subscriptions', async () => {
    const from = cluster.node(2).reports.length;
    const r = json<{ published: number; subscriptions: number }>(
      await sb(['pub', 'events.cli', '{"hello":"world"}', '--count', '2', '--json']),
    );
    expect(r).toMatchObject({ ok: true, topic: 'events.cli', published: 2, subscriptions: 1 });
    await until(
      () =>
        Promise.resolve(
          cluster
            .node(2)
            .reports.slice(from)
            .filter((x) => x.kind === 'event').length >= 2,
        ),
      'two publications on node 2',
    );
    expect(
      cluster
        .node(2)
        .reports.slice(from)
        .filter((x) => x.kind === 'event')
        .map((x) => x.data),
    ).toEqual([
      { topic: 'events.cli', value: { hello: 'world' } },
      { topic: 'events.cli', value: { hello: 'world' } },
    ]);
  });

  it('sub: prints what members publish until --count, then exits 0', async () => {
    const sub = new CliProcess(['sub', 'news.*', '--count', '3', '--json', ...attach], {}, 30_000);
    await sub.waitFor(/subscribed to news\.\*/);
    // The members learn of the subscription through the directory: wait until node 0 reaches it.
    await until(
      async () => (await cluster.node(0).call<number>('subscribers', 'news.a')) >= 1,
      'the subscription on node 0',
    );
    await cluster.node(0).call('publish', 'news.a', { n: 1 }, 2);
    await cluster.node(0).call('publish', 'news.b', 'two', 1);
    const r = await sub.result();
    if (r.code !== 0) throw new Error(explainCli(r));
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([
      { topic: 'news.a', value: { n: 1 } },
      { topic: 'news.a', value: { n: 1 } },
      { topic: 'news.b', value: 'two' },
    ]);
  });

  it('sub: --timeout ends a quiet subscription; short of --count it exits 1', async () => {
    const quiet = await sb(['sub', 'nobody.>', '--timeout', '0.5']);
    expect(quiet.stdout).toBe('');
    const short = await sb(['sub', 'nobody.>', '--timeout', '0.5', '--count', '1'], 1);
    expect(short.stderr).toMatch(/0 of 1 publications arrived before timeout/);
  });

  it('sub: Ctrl-C (SIGINT) ends it with exit 0', async () => {
    const sub = new CliProcess(['sub', 'quiet.>', ...attach], {}, 30_000);
    await sub.waitFor(/subscribed to quiet\.>/);
    sub.kill('SIGINT');
    const r = await sub.result();
    expect(r.code).toBe(0);
  });

  it('stats: every member, printed from its metrics', async () => {
    // Known traffic on node 1: calls of add pinned there, and the tasks pushed above.
    for (let i = 0; i < 3; i++) await sb(['call', 'add', '[1,1]', '--node', '1']);
    const r = json<{
      members: Array<{
        node: number;
        ok: boolean;
        value: {
          node: number;
          metrics: {
            endpoints: Array<{ name: string; num_requests: number }>;
            consumed: Array<{ operation: string; destination: string; count: number }>;
          };
        };
      }>;
    }>(await sb(['stats', '--json']));
    expect(r.members.map((m) => m.ok)).toEqual([true, true, true]);
    const n1 = r.members[1]!.value;
    expect(n1.node).toBe(1);
    expect(n1.metrics.endpoints.find((e) => e.name === 'add')!.num_requests).toBeGreaterThanOrEqual(
      3,
    );
    expect(n1.metrics.endpoints.map((e) => e.name)).not.toContain('$sb.stats');
    const processed = n1.metrics.consumed.find(
      (c) => c.operation === 'process' && c.destination === 'jobs',
    );
    expect(processed?.count).toBe(4);
    const text = (await sb(['stats'])).stdout;
    expect(text).toMatch(/^node 1 \(.*\), incarnation [0-9a-f]{8}: 2\/2 peers up/m);
    expect(text).toMatch(/^ {2}rpc served add +\d+ requests {2}0 errors/m);
    expect(text).toMatch(/^ {2}queue +jobs +0 sent {2}4 processed$/m);
    expect(text).toMatch(/^cluster \(3 members\):$/m);
    const prom = (await sb(['stats', '--prometheus'])).stdout;
    expect(prom).toMatch(/^# node 1 \(/m);
    expect(prom).toMatch(
      /^switchboard_endpoint_num_requests_total\{rpc_service="",rpc_method="add"\} \d+$/m,
    );
  });

  it('bench rpc: 1 s of calls; the JSON counts add up', async () => {
    const r = json<{
      kind: string;
      ops: number;
      errors: number;
      durationS: number;
      latencyMs: { count: number; p50: number; p99: number; min: number; max: number };
      perNode: Record<string, number>;
    }>(await sb(['bench', 'rpc', '--duration', '1', '--concurrency', '4', '--json']));
    expect(r.kind).toBe('rpc');
    expect(r.errors).toBe(0);
    expect(r.ops).toBeGreaterThan(0);
    expect(r.latencyMs.count).toBe(r.ops);
    expect(r.latencyMs.min).toBeLessThanOrEqual(r.latencyMs.p50);
    expect(r.latencyMs.p50).toBeLessThanOrEqual(r.latencyMs.p99);
    expect(r.latencyMs.p99).toBeLessThanOrEqual(r.latencyMs.max);
    // $sb.ping names the member that answered: the calls spread over all three, and add up.
    expect(Object.keys(r.perNode).sort()).toEqual(['0', '1', '2']);
    expect(Object.values(r.perNode).reduce((a, b) => a + b, 0)).toBe(r.ops);
    const text = (
      await sb(['bench', 'rpc', '--duration', '1', '--method', 'add', '--payload', '[1,2]'])
    ).stdout;
    expect(text).toMatch(/^rpc bench: add, 16 in flight, /m);
    expect(text).toMatch(/^ {2}call +min .* p50 .* p99 .* max /m);
  });

  it('bench channel: every message sent is delivered to the receiver', async () => {
    const before = await cluster.node(0).call<number>('inboxCount');
    const r = json<{ ops: number; errors: number; delivered: number }>(
      await sb([
        'bench',
        'channel',
        '--receiver',
        'inbox',
        '--node',
        '0',
        '--duration',
        '1',
        '--size',
        '64',
        '--json',
      ]),
    );
    expect(r.errors).toBe(0);
    expect(r.ops).toBeGreaterThan(0);
    expect(r.delivered).toBe(r.ops);
    await until(
      async () => (await cluster.node(0).call<number>('inboxCount')) - before >= r.ops,
      'the inbox to count every message',
    );
    expect((await cluster.node(0).call<number>('inboxCount')) - before).toBe(r.ops);
  });

  it('bench pubsub: the members’ metrics count what their subscription handed out', async () => {
    const before = await cluster.node(1).call<number>('benchCount');
    const r = json<{ ops: number; errors: number; subscriptions: number; delivered: number }>(
      await sb(['bench', 'pubsub', '--topic', 'bench.x', '--duration', '1', '--json']),
    );
    expect(r.errors).toBe(0);
    expect(r.ops).toBeGreaterThan(0);
    expect(r.subscriptions).toBe(1);
    expect(r.delivered).toBeGreaterThan(0);
    expect(r.delivered).toBeLessThanOrEqual(r.ops);
    // What the subscription's own loop counted is what the metrics said it handed out, at least.
    expect((await cluster.node(1).call<number>('benchCount')) - before).toBeGreaterThanOrEqual(
      r.delivered,
    );
  });
});

describe('switchboard without a cluster to reach', () => {
  /** Ports nothing listens on: bound, then closed. */
  async function closedPorts(n: number): Promise<number[]> {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      ports.push((s.address() as net.AddressInfo).port);
      await new Promise<void>((r) => s.close(() => r()));
    }
    return ports;
  }

  it('exits 3 and names each member’s reason', async () => {
    const ports = await closedPorts(2);
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    const r = await runCli(['ping', '--nodes', nodes.join(','), '--connect-timeout', '1'], {
      SWITCHBOARD_SECRET: 'a secret of sixteen bytes or more',
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/could not attach to the cluster/);
    for (const [i, a] of nodes.entries())
      expect(r.stderr).toMatch(new RegExp(`node ${i} \\(${a.replace(/\./g, '\\.')}\\): .+`));
  });

  it('exits 3 when the secret is wrong, naming each member', async () => {
    const r = await runCli(
      ['ping', '--nodes', cluster.addresses.join(','), '--connect-timeout', '2'],
      {
        SWITCHBOARD_SECRET: 'base64:' + Buffer.alloc(32, 7).toString('base64'),
      },
    );
    expect(r.code).toBe(3);
    for (const [i, a] of cluster.addresses.entries())
      expect(r.stderr).toContain(`node ${i} (${a}): `);
  });
});

describe('attaching in the other ways', () => {
  it('--nodes and the secret from SWITCHBOARD_SECRET', async () => {
    const r = await runCli(
      ['ping', '--nodes', cluster.addresses.join(','), '--json', '--count', '1'],
      {
        SWITCHBOARD_SECRET: cluster.secret,
      },
    );
    if (r.code !== 0) throw new Error(explainCli(r));
    expect(JSON.parse(r.stdout)).toMatchObject({
      members: [
        { node: 0, ok: true },
        { node: 1, ok: true },
        { node: 2, ok: true },
      ],
    });
  });

  it('the secret in base64 from the variable the cluster file names', async () => {
    const file = join(dir, 'env.json');
    writeFileSync(
      file,
      JSON.stringify({ nodes: cluster.addresses, secretEnv: 'MY_CLUSTER_SECRET' }),
    );
    const r = await runCli(['call', 'echo', '1', '--node', '1', '--cluster', file], {
      MY_CLUSTER_SECRET: 'base64:' + Buffer.from(cluster.secret).toString('base64'),
      SWITCHBOARD_SECRET: '',
    });
    if (r.code !== 0) throw new Error(explainCli(r));
    expect(JSON.parse(r.stdout)).toEqual({ node: 1, value: 1 });
  });

  it('a client secret from --client-secret-file', async () => {
    const file = join(dir, 'client-secret');
    writeFileSync(file, CLIENT_SECRET, { mode: 0o600 });
    const r = await runCli(
      [
        'call',
        'add',
        '[40,2]',
        '--nodes',
        cluster.addresses.join(','),
        '--client-secret-file',
        file,
      ],
      { SWITCHBOARD_SECRET: '' },
    );
    if (r.code !== 0) throw new Error(explainCli(r));
    expect(JSON.parse(r.stdout)).toBe(42);
  });

  it('--as-member on a slot a running member holds exits 3, saying so', async () => {
    const r = await runCli(['ping', '--as-member', '0', '--connect-timeout', '1', ...attach]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /cannot take slot 0 \(127\.0\.0\.1:\d+\) of the node list: .*(EADDRINUSE|in use)/,
    );
  });
});

describe('usage', () => {
  const COMMANDS = [
    'ping',
    'peers',
    'methods',
    'call',
    'pub',
    'sub',
    'push',
    'stats',
    'bench',
    'demo',
  ];

  it('--help on every command exits 0 and documents it', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toMatch(new RegExp(`^ {2}${c}\\b`, 'm'));
    for (const c of COMMANDS) {
      const r = await runCli([c, '--help']);
      expect([c, r.code]).toEqual([c, 0]);
      expect(r.stdout).toMatch(new RegExp(`^Usage: switchboard ${c}`));
      if (c !== 'demo')
        expect(r.stdout).toMatch(/Exit status: 0 done; 1 .*\n2 .*; 3 could not attach/);
    }
    expect((await runCli(['help', 'bench'])).stdout).toMatch(
      /^Usage: switchboard bench <rpc\|channel\|pubsub>/,
    );
  });

  it.each([
    [['nope'], /unknown command "nope"/],
    [['ping', '--bogus', '--nodes', '127.0.0.1:1'], /ping: Unknown option '--bogus'/],
    [
      ['ping', '--nodes', '127.0.0.1:1', '--secret', 'hunter2hunter2hunter2'],
      /--secret is refused: .*--secret-file/,
    ],
    [['ping', '--nodes', '127.0.0.1:1', '--client-secret=x'], /--client-secret is refused/],
    [['ping'], /which cluster\?/],
    [['ping', '--nodes', 'not-an-address'], /bad node list/],
    [['ping', '--nodes', '127.0.0.1:1', '--cluster', '/x.json'], /either --cluster or --nodes/],
    [['call', '--nodes', '127.0.0.1:1'], /call: usage: switchboard call <method>/],
    [['call', 'add', '{oops', '--nodes', '127.0.0.1:1'], /the request must be JSON/],
    [['bench', 'disk', '--nodes', '127.0.0.1:1'], /bench takes one of rpc, channel, pubsub/],
    [['bench', 'rpc', '--duration', '0', '--nodes', '127.0.0.1:1'], /--duration takes seconds/],
    [['ping', '--count', '0', '--nodes', '127.0.0.1:1'], /--count must be an integer/],
    [['ping', '--cluster', '/nonexistent/cluster.json'], /cannot read the cluster file/],
  ])('%j exits 2', async (args, message) => {
    const r = await runCli(args, { SWITCHBOARD_SECRET: 'a secret of sixteen bytes or more' });
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(message)]);
  });

  it('no secret at all is a usage error that says where to put one', async () => {
    const r = await runCli(['ping', '--nodes', '127.0.0.1:1'], { SWITCHBOARD_SECRET: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no secret: give --secret-file <file>, set SWITCHBOARD_SECRET/);
  });

  it('a cluster file with an unknown field is refused', async () => {
    const file = join(dir, 'typo.json');
    writeFileSync(file, JSON.stringify({ nodes: cluster.addresses, secretfile: 'secret' }));
    const r = await runCli(['ping', '--cluster', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /unknown field\(s\) secretfile; known: nodes, clusterName, secretFile/,
    );
  });
});

describe('a member killed under the command', () => {
  it('ping exits 1 and names the member that did not answer', async () => {
    await cluster.kill(2);
    await cluster.waitUntilDown(2);
    const r = await sb(['ping', '--json', '--timeout', '1', '--connect-timeout', '2'], 1);
    const members = json<{ members: Array<{ node: number; ok: boolean; error?: string }> }>(
      r,
    ).members;
    expect(members.map((m) => [m.node, m.ok])).toEqual([
      [0, true],
      [1, true],
      [2, false],
    ]);
    expect(members[2]!.error).toMatch(/ERR_SB_/);
  });
});
