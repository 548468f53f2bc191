/**
 * Clients (docs/guide.md, "Clients"; docs/wire-protocol.md 5.8): processes
 * outside the node list that attach to a running cluster with
 * `Switchboard.connect`. Three members run under switchboard/testing
 * (fixtures/member.ts); each client is a process of its own started with
 * the kit's `startClient` (docs/testing.md, "Client processes") running
 * fixtures/client.ts, authenticated with the members' client secret. The
 * clients run the built package: the spec takes `startClient` from dist/,
 * whose client program connects with dist's `Switchboard`. The tests run
 * in order on one cluster: what the client may do, what it may not, the
 * member's limits, a client that goes quiet, and last a member killed
 * under the client.
 */
import { ErrorCode, Switchboard } from '../../lib/index.js';
import type * as Lib from '../../lib/index.js';
import { switchboardInternals } from '../../lib/facade.js';
import { startCluster } from '../../lib/testing/index.js';
import type { ClusterNode, ProcessCluster } from '../../lib/testing/index.js';
import type * as Kit from '../../lib/testing/index.js';
import { runProgram } from '../docs/run-program.js';
import { distIsFresh } from '../packaging/pack.js';
import type { Outcome } from './fixtures/client.js';

const MEMBER = new URL('./fixtures/member.ts', import.meta.url);
const CLIENT = new URL('./fixtures/client.ts', import.meta.url);
const DIST_KIT = new URL('../../dist/lib/testing/index.js', import.meta.url).href;
const DIST_LIB = new URL('../../dist/lib/index.js', import.meta.url).href;
const CLIENT_SECRET = 'the client secret, not the cluster one';
const TIMING = { heartbeatMs: 250, deadPeerMs: 1_500, reconnectMinMs: 20, reconnectMaxMs: 200 };
const WAIT = 10_000;

let cluster: ProcessCluster;
/** The built kit and package, loaded once dist/ is fresh. */
let kit: typeof Kit;
let lib: typeof Lib;
let main: ClusterNode;
let mainId: string;

/** A client process of the built kit, attached to the cluster's members. */
function spawn(extra: Partial<Lib.ClientConnectOptions> = {}): Promise<ClusterNode> {
  return kit.startClient({
    module: CLIENT,
    options: {
      nodes: cluster.addresses,
      clientSecret: CLIENT_SECRET,
      timeoutMs: WAIT,
      ...TIMING,
      ...extra,
    },
    timeoutMs: WAIT + 5_000,
  });
}

/** Resolves with the first publication on `topic` the client reported from the `from`-th report on. */
async function publication(c: ClusterNode, topic: string, from = 0): Promise<unknown> {
  const m = await c.waitForReport<{ topic: string; value: unknown }>('publication', {
    from,
    match: (p) => p.topic === topic,
    timeoutMs: WAIT,
  });
  return m.value;
}

/** Polls `read` until `ok` holds of its value (the members' views change as frames arrive). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const member = (i: number) => cluster.node(i);
const clientIds = async (i: number): Promise<string[]> =>
  (await member(i).call<Array<{ client: string }>>('clients')).map((c) => c.client);

beforeAll(async () => {
  // The clients run the built package: build it if a source is newer.
  if (!distIsFresh()) {
    const r = await runProgram('npm', ['run', 'build'], 120_000);
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
  }
  kit = (await import(DIST_KIT)) as typeof Kit;
  lib = (await import(DIST_LIB)) as typeof Lib;
  cluster = await startCluster({
    module: MEMBER,
    nodes: 3,
    // Node 2 holds one client: the second one it is offered is refused.
    options: (id) => ({ ...TIMING, clientSecret: CLIENT_SECRET, maxClients: id === 2 ? 1 : 8 }),
    timeoutMs: 20_000,
  });
  await cluster.ready({ timeoutMs: WAIT });
  main = await spawn();
}, 180_000);

afterAll(async () => {
  await kit?.closeAll();
  await cluster?.close();
}, 30_000);

describe('a client outside the node list', () => {
  it('attaches to every member, which list it apart from their peers', async () => {
    const joined = await main.call<{ role: string; id: number; incarnation: string }>('identity');
    expect(joined).toMatchObject({ role: 'client', id: 3 });
    mainId = joined.incarnation;
    // The kit's handle knows the same incarnation.
    expect(main.incarnation).toBe(mainId);
    await main.invoke('rendezvous', [], { timeoutMs: WAIT + 1_000 });
    expect(await main.call('view')).toEqual({
      role: 'client',
      peers: [0, 1, 2].map((node) => ({ node, state: 'up' })),
      clients: 0,
    });
    for (const i of [0, 1, 2]) {
      await until(
        () => clientIds(i),
        (ids) => ids.includes(mainId),
        `member ${i} to list it`,
      );
      // peers() is the node list only; a member never waits for a client.
      expect(await member(i).call('peers')).toEqual([0, 1, 2].filter((n) => n !== i));
      expect(await member(i).call('stats')).toEqual({
        role: 'member',
        clients: [mainId],
        peers: 2,
      });
    }
  });

  it('calls a method served on two members, and both serve some calls', async () => {
    const served = new Map<number, number>();
    for (let i = 0; i < 24; i++) {
      const r = await main.call<Outcome>('call', 'echo', i);
      expect(r.ok).toBe(true);
      const { node, x } = r.value as { node: number; x: number };
      expect(x).toBe(i);
      served.set(node, (served.get(node) ?? 0) + 1);
    }
    expect([...served.keys()].sort()).toEqual([1, 2]);
  });

  it('subscribes and receives what a member publishes, and publishes to members', async () => {
    await main.call('subscribe', 'news.>');
    await until(
      () => member(1).call<number>('subscribers', 'news.today'),
      (n) => n === 1,
      "member 1 to see the client's subscription",
    );
    const from = main.reports.length;
    await member(1).call('publish', 'news.today', { headline: 'from member 1' });
    expect(await publication(main, 'news.today', from)).toEqual({ headline: 'from member 1' });

    const marks = [0, 1, 2].map((i) => member(i).reports.length);
    await main.call('publish', 'from-client.hello', 'hi');
    for (const i of [0, 1, 2]) {
      const got = await member(i).waitForReport('publication', {
        from: marks[i]!,
        timeoutMs: WAIT,
      });
      expect(got).toEqual({ topic: 'from-client.hello', value: 'hi' });
    }
  });

  it("pushes tasks that the members' workers process", async () => {
    const marks = [1, 2].map((i) => member(i).reports.length);
    for (let n = 0; n < 6; n++)
      expect(await main.call<Outcome>('push', 'jobs', { n })).toMatchObject({ ok: true });
    const done = (): Promise<number[]> =>
      Promise.resolve(
        [1, 2]
          .flatMap((i, k) => member(i).reports.slice(marks[k]))
          .filter((r) => r.kind === 'task')
          .map((r) => (r.data as { task: { n: number } }).task.n)
          .sort((a, b) => a - b),
      );
    expect(await until(done, (ns) => ns.length >= 6, 'six tasks processed')).toEqual([
      0, 1, 2, 3, 4, 5,
    ]);
  });

  it('calls streaming methods of every kind', async () => {
    const r = await main.call<Outcome>('streams');
    expect(r.ok).toBe(true);
    const { counted, doubled, sum } = r.value as {
      counted: Array<{ node: number; k: number }>;
      doubled: number[];
      sum: number;
    };
    expect(counted.map((c) => c.k)).toEqual([0, 1, 2]);
    expect(new Set(counted.map((c) => c.node)).size).toBe(1);
    expect([1, 2]).toContain(counted[0]!.node);
    expect(doubled).toEqual([2, 4, 6]);
    expect(sum).toBe(15);
  });

  it("sends to a member's named receiver", async () => {
    const mark = member(0).reports.length;
    expect(await main.call<Outcome>('send', 'inbox', 0, { hi: 0 })).toMatchObject({ ok: true });
    expect(await member(0).waitForReport('inbox', { from: mark, timeoutMs: WAIT })).toEqual({
      hi: 0,
    });
  });

  it('gets a reply through a Sender it sent to a member', async () => {
    expect(await main.call('replyThroughSender', 'reply')).toEqual({
      ok: true,
      value: { answer: 'sent', first: { from: 0, via: 'a sender the client sent' } },
    });
  });

  it('cannot serve, work or own named and MPMC receivers: ClientRoleError', async () => {
    const tried = await main.call<Record<string, Outcome>>('memberOnly');
    for (const name of ['serve', 'serveStream', 'worker', 'mpmcReceiver', 'namedReceiver'])
      expect({ operation: name, ...tried[name] }).toMatchObject({
        operation: name,
        name: 'ClientRoleError',
        ok: false,
        code: ErrorCode.CLIENT_ROLE,
      });
  });

  it('is refused by the members when it forges an offer on the wire', async () => {
    // A client in this process, so that its directory can be driven below
    // the API: it announces an RPC method as a member would.
    const forger = await Switchboard.connect({
      nodes: cluster.addresses,
      clientSecret: CLIENT_SECRET,
      members: [0, 1],
      timeoutMs: WAIT,
      ...TIMING,
    });
    try {
      await forger.rendezvous({ timeoutMs: WAIT });
      const marks = [0, 1].map((i) => member(i).events.length);
      const sub = forger.subscribe('forger.>');
      switchboardInternals(forger).hub.directory.announce('rpc', 'forged', 1, 'unary');
      for (const i of [0, 1]) {
        await member(i).waitForEvent(
          (e) => e.type === 'error' && (e.detail ?? '').includes('ClientRoleError'),
          { from: marks[i]!, timeoutMs: WAIT, what: 'the refusal of the forged offer' },
        );
        // The same client's subscription went through; the method did not.
        const subs = await until(
          () => member(i).call<number[]>('offers', 'pubsub', 'forger.>'),
          (nodes) => nodes.length === 1,
          `member ${i} to list the forger's subscription`,
        );
        expect(subs[0]).toBeGreaterThanOrEqual(3);
        expect(await member(i).call('offers', 'rpc', 'forged')).toEqual([]);
      }
      sub.close();
    } finally {
      await forger.close();
    }
  });

  it('is refused with ERR_SB_CLIENT_LIMIT by a member that holds its maxClients', async () => {
    // The kit reports the failed connect as the ClientConnectError the client got.
    const refused = await spawn({ members: [2] }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(lib.ClientConnectError);
    expect(refused).toMatchObject({
      name: 'ClientConnectError',
      code: ErrorCode.CONNECT,
      reasons: [{ node: 2, error: { code: ErrorCode.CLIENT_LIMIT } }],
    });
    const wrong = await spawn({ members: [0], clientSecret: 'not the client secret at all' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(wrong).toBeInstanceOf(lib.ClientConnectError);
    expect(wrong).toMatchObject({
      code: ErrorCode.CONNECT,
      reasons: [{ node: 0, error: { code: ErrorCode.AUTH_FAILED } }],
    });
    // Neither refused client is left running.
    expect(await clientIds(2)).toEqual([mainId]);
  });

  it('is dropped by the members, with its subscriptions, once quiet past deadPeerMs', async () => {
    const quiet = await spawn({ members: [0, 1] });
    const id = (await quiet.call<{ incarnation: string }>('identity')).incarnation;
    await quiet.invoke('rendezvous', [], { timeoutMs: WAIT + 1_000 });
    await quiet.call('subscribe', 'quiet.>');
    for (const i of [0, 1]) {
      await until(
        () => member(i).call<number>('subscribers', 'quiet.x'),
        (n) => n === 1,
        `member ${i} to see the quiet client's subscription`,
      );
      expect(await clientIds(i)).toEqual(expect.arrayContaining([mainId, id]));
    }
    const marks = [0, 1].map((i) => member(i).events.length);
    quiet.pause();
    for (const i of [0, 1]) {
      const down = await member(i).waitForEvent(
        (e) => e.type === 'client-down' && (e.detail ?? '').includes(id),
        { from: marks[i]!, timeoutMs: WAIT, what: 'client-down of the quiet client' },
      );
      expect(down.code).toBe(ErrorCode.PEER_LOST);
      expect(await member(i).call('subscribers', 'quiet.x')).toBe(0);
      expect(await clientIds(i)).toEqual([mainId]);
    }
    await quiet.kill();
    expect(quiet.exitStatus).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('reconnects to a member that reset its connection, and the session resumes', async () => {
    await main.call('subscribe', 'resume.>');
    await until(
      () => member(1).call<number>('subscribers', 'resume.0'),
      (n) => n === 1,
      "member 1 to see the client's subscription",
    );
    const from = main.reports.length;
    const mark = member(1).events.length;
    expect(await member(1).call('publishAcrossDrop', 40)).toBe(1);
    const got = (): number[] =>
      main.reports
        .slice(from)
        .filter((r) => r.kind === 'publication')
        .map((r) => r.data as { topic: string; value: number })
        .filter((m) => m.topic.startsWith('resume.'))
        .map((m) => m.value);
    await until(
      () => Promise.resolve(got()),
      (v) => v.length >= 40,
      'forty publications',
    );
    // The peer-reconnected of its relink reaches the client within a heartbeat or two.
    await new Promise((resolve) => setTimeout(resolve, 2 * TIMING.heartbeatMs));
    expect(got()).toEqual(Array.from({ length: 40 }, (_, k) => k));
    // The same session: member 1 never saw the client go.
    expect(
      member(1)
        .events.slice(mark)
        .filter((e) => e.type === 'client-down'),
    ).toEqual([]);
    expect(await clientIds(1)).toEqual([mainId]);
  });

  it('fails the calls in flight to a member killed under it, typed, and calls the other', async () => {
    await main.call('startCall', 'hang', 1);
    await cluster.kill(1);
    const lost = await main.invoke<Outcome>('settleCall', [], { timeoutMs: WAIT });
    expect(lost).toMatchObject({ ok: false, code: ErrorCode.NOT_DELIVERED });
    for (let i = 0; i < 8; i++) {
      const r = await main.call<Outcome>('call', 'echo', i);
      expect(r).toMatchObject({ ok: true, value: { node: 2, x: i } });
    }
    const pinned = await main.call<Outcome>('call', 'echo', 0, 1);
    expect(pinned.ok).toBe(false);
    expect([ErrorCode.NO_SERVER, ErrorCode.NOT_DELIVERED]).toContain(pinned.code);
  });
});
