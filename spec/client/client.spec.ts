/**
 * Clients (docs/guide.md, "Clients"; docs/wire-protocol.md 5.8): processes
 * outside the node list that attach to a running cluster with
 * `Switchboard.connect`. Three members run under switchboard/testing
 * (fixtures/member.ts); each client is a process of its own
 * (fixtures/client.ts) using the built package, authenticated with the
 * members' client secret. The tests run in order on one cluster: what the
 * client may do, what it may not, the member's limits, a client that goes
 * quiet, and last a member killed under the client.
 */
import { ErrorCode, Switchboard } from '../../lib/index.js';
import { switchboardInternals } from '../../lib/facade.js';
import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';
import { ChildPool, ChildProcessHandle, within } from '../support/children.js';
import type { FatalMessage, ReplyMessage } from '../support/child-runtime.js';
import { runProgram } from '../docs/run-program.js';
import { distIsFresh } from '../packaging/pack.js';
import type { ClientConfig, Command, Outcome } from './fixtures/client.js';

const MEMBER = new URL('./fixtures/member.ts', import.meta.url);
const CLIENT_SECRET = 'the client secret, not the cluster one';
const TIMING = { heartbeatMs: 250, deadPeerMs: 1_500, reconnectMinMs: 20, reconnectMaxMs: 200 };
const WAIT = 10_000;

type Message =
  | { readonly type: 'ready' }
  | { readonly type: 'publication'; readonly topic: string; readonly value: unknown }
  | ReplyMessage
  | FatalMessage;

class ClientProcess extends ChildProcessHandle<Message, Command> {
  /** Resolves with the first publication on `topic` reported from `from` on. */
  publication(topic: string, from = 0): Promise<unknown> {
    return this.waitFor(
      (r) =>
        r.message.type === 'publication' && r.message.topic === topic ? r.message.value : undefined,
      `a publication on ${topic}`,
      WAIT,
      from,
    );
  }
}

class Clients extends ChildPool<ClientProcess> {
  async spawn(label: string, extra: Partial<ClientConfig> = {}): Promise<ClientProcess> {
    const config: ClientConfig = {
      nodes: cluster.addresses,
      clientSecret: CLIENT_SECRET,
      timeoutMs: WAIT,
      ...TIMING,
      ...extra,
    };
    const c = this.adopt(new ClientProcess(label, 'spec/client/fixtures/client.ts', config));
    await c.waitFor((r) => (r.message.type === 'ready' ? true : undefined), 'ready', WAIT);
    return c;
  }
}

let cluster: ProcessCluster;
const clients = new Clients();
let main: ClientProcess;
let mainId: string;

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
  cluster = await startCluster({
    module: MEMBER,
    nodes: 3,
    // Node 2 holds one client: the second one it is offered is refused.
    options: (id) => ({ ...TIMING, clientSecret: CLIENT_SECRET, maxClients: id === 2 ? 1 : 8 }),
    timeoutMs: 20_000,
  });
  await cluster.ready({ timeoutMs: WAIT });
  main = await clients.spawn('main client');
}, 180_000);

afterAll(async () => {
  await clients.cleanup();
  await cluster?.close();
}, 30_000);

describe('a client outside the node list', () => {
  it('attaches to every member, which list it apart from their peers', async () => {
    const joined = await main.request<Outcome>({ cmd: 'connect' });
    expect(joined).toMatchObject({ ok: true, value: { role: 'client', id: 3 } });
    mainId = (joined.value as { incarnation: string }).incarnation;
    await main.request({ cmd: 'rendezvous' }, WAIT + 1_000);
    expect(await main.request({ cmd: 'view' })).toEqual({
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
      const r = await main.request<Outcome>({ cmd: 'call', method: 'echo', value: i });
      expect(r.ok).toBe(true);
      const { node, x } = r.value as { node: number; x: number };
      expect(x).toBe(i);
      served.set(node, (served.get(node) ?? 0) + 1);
    }
    expect([...served.keys()].sort()).toEqual([1, 2]);
  });

  it('subscribes and receives what a member publishes, and publishes to members', async () => {
    await main.request({ cmd: 'subscribe', pattern: 'news.>' });
    await until(
      () => member(1).call<number>('subscribers', 'news.today'),
      (n) => n === 1,
      "member 1 to see the client's subscription",
    );
    const from = main.log.length;
    await member(1).call('publish', 'news.today', { headline: 'from member 1' });
    expect(await main.publication('news.today', from)).toEqual({ headline: 'from member 1' });

    const marks = [0, 1, 2].map((i) => member(i).reports.length);
    await main.request({ cmd: 'publish', topic: 'from-client.hello', value: 'hi' });
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
      expect(
        await main.request<Outcome>({ cmd: 'push', queue: 'jobs', task: { n } }),
      ).toMatchObject({ ok: true });
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
    const r = await main.request<Outcome>({ cmd: 'streams' });
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
    expect(
      await main.request<Outcome>({ cmd: 'send', name: 'inbox', node: 0, value: { hi: 0 } }),
    ).toMatchObject({ ok: true });
    expect(await member(0).waitForReport('inbox', { from: mark, timeoutMs: WAIT })).toEqual({
      hi: 0,
    });
  });

  it('gets a reply through a Sender it sent to a member', async () => {
    expect(await main.request({ cmd: 'reply-through-sender', method: 'reply' })).toEqual({
      ok: true,
      value: { answer: 'sent', first: { from: 0, via: 'a sender the client sent' } },
    });
  });

  it('cannot serve, work or own named and MPMC receivers: ClientRoleError', async () => {
    const tried = await main.request<Record<string, Outcome>>({ cmd: 'member-only' });
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
    const extra = await clients.spawn('one too many', { members: [2] });
    const refused = await extra.request<Outcome>({ cmd: 'connect' }, WAIT + 2_000);
    expect(refused).toMatchObject({
      ok: false,
      name: 'ClientConnectError',
      code: ErrorCode.CONNECT,
      reasons: [{ node: 2, code: ErrorCode.CLIENT_LIMIT }],
    });
    const wrong = await clients.spawn('wrong client secret', {
      members: [0],
      clientSecret: 'not the client secret at all',
    });
    expect(await wrong.request<Outcome>({ cmd: 'connect' }, WAIT + 2_000)).toMatchObject({
      ok: false,
      code: ErrorCode.CONNECT,
      reasons: [{ node: 0, code: ErrorCode.AUTH_FAILED }],
    });
  });

  it('is dropped by the members, with its subscriptions, once quiet past deadPeerMs', async () => {
    const quiet = await clients.spawn('quiet client', { members: [0, 1] });
    const joined = await quiet.request<Outcome>({ cmd: 'connect' });
    const id = (joined.value as { incarnation: string }).incarnation;
    await quiet.request({ cmd: 'rendezvous' }, WAIT + 1_000);
    await quiet.request({ cmd: 'subscribe', pattern: 'quiet.>' });
    for (const i of [0, 1]) {
      await until(
        () => member(i).call<number>('subscribers', 'quiet.x'),
        (n) => n === 1,
        `member ${i} to see the quiet client's subscription`,
      );
      expect(await clientIds(i)).toEqual(expect.arrayContaining([mainId, id]));
    }
    const marks = [0, 1].map((i) => member(i).events.length);
    quiet.kill('SIGSTOP');
    for (const i of [0, 1]) {
      const down = await member(i).waitForEvent(
        (e) => e.type === 'client-down' && (e.detail ?? '').includes(id),
        { from: marks[i]!, timeoutMs: WAIT, what: 'client-down of the quiet client' },
      );
      expect(down.code).toBe(ErrorCode.PEER_LOST);
      expect(await member(i).call('subscribers', 'quiet.x')).toBe(0);
      expect(await clientIds(i)).toEqual([mainId]);
    }
    quiet.kill('SIGKILL');
    await within(quiet.exited, WAIT, 'the quiet client to die');
  });

  it('reconnects to a member that reset its connection, and the session resumes', async () => {
    await main.request({ cmd: 'subscribe', pattern: 'resume.>' });
    await until(
      () => member(1).call<number>('subscribers', 'resume.0'),
      (n) => n === 1,
      "member 1 to see the client's subscription",
    );
    const from = main.log.length;
    const mark = member(1).events.length;
    expect(await member(1).call('publishAcrossDrop', 40)).toBe(1);
    const got = (): number[] =>
      main.log
        .slice(from)
        .map((r) => r.message)
        .filter((m) => m.type === 'publication' && m.topic.startsWith('resume.'))
        .map((m) => (m as { value: number }).value);
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
    await main.request({ cmd: 'start-call', method: 'hang', node: 1 });
    await cluster.kill(1);
    const lost = await main.request<Outcome>({ cmd: 'settle-call' }, WAIT);
    expect(lost).toMatchObject({ ok: false, code: ErrorCode.NOT_DELIVERED });
    for (let i = 0; i < 8; i++) {
      const r = await main.request<Outcome>({ cmd: 'call', method: 'echo', value: i });
      expect(r).toMatchObject({ ok: true, value: { node: 2, x: i } });
    }
    const pinned = await main.request<Outcome>({ cmd: 'call', method: 'echo', value: 0, node: 1 });
    expect(pinned.ok).toBe(false);
    expect([ErrorCode.NO_SERVER, ErrorCode.NOT_DELIVERED]).toContain(pinned.code);
  });
});
