/**
 * A rendezvous that times out says why each missing peer is missing: the
 * last failure of a link with it (refused, no answer, wrong secret, another
 * node list, insecure against secure), seen from the side that dials and
 * from the side that is dialed. Real sockets on 127.0.0.1, two switchboards
 * in this process.
 */
import { once } from 'node:events';
import net from 'node:net';
import { filter, firstValueFrom, timeout } from 'rxjs';
import {
  HandshakeError,
  RendezvousTimeoutError,
  SwitchboardError,
  Switchboard,
} from '../../lib/index.js';
import type { StartOptions, SwitchboardEvent } from '../../lib/index.js';
import { SECRET } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';

const OTHER_SECRET = 'another-secret-of-enough-length';
/** Short timeouts, so every failure happens well within a 1 s rendezvous. */
const FAST = {
  handshakeTimeoutMs: 300,
  heartbeatMs: 100,
  reconnectMinMs: 50,
  reconnectMaxMs: 100,
} as const;

const open: Switchboard[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sb) => sb.close()));
});

type Options = Pick<StartOptions, 'secret' | 'insecure'> & Partial<StartOptions>;

async function start(nodes: readonly string[], id: number, o: Options): Promise<Switchboard> {
  const sb = await Switchboard.start({ nodes, id, ...FAST, ...o });
  open.push(sb);
  return sb;
}

/**
 * The next event `pred` accepts. Subscribe before the cause can happen: a
 * switchboard just started has not yet done any I/O, so calling this right
 * after `await start(...)` sees all of its events.
 */
function nextEvent(sb: Switchboard, pred: (e: SwitchboardEvent) => boolean): Promise<unknown> {
  return firstValueFrom(sb.events$.pipe(filter(pred), timeout(5_000)));
}

function authFailure(sb: Switchboard, code: string): Promise<unknown> {
  return nextEvent(sb, (e) => e.type === 'auth-failure' && e.error.code === code);
}

async function rendezvousError(
  sb: Switchboard,
  timeoutMs = 1_000,
): Promise<RendezvousTimeoutError> {
  try {
    await sb.rendezvous({ timeoutMs });
  } catch (err) {
    if (err instanceof RendezvousTimeoutError) return err;
    throw err;
  }
  throw new Error('rendezvous succeeded');
}

/** Matches any instance of `cls` inside `toEqual` (typed, unlike `expect.any`). */
function anInstanceOf(cls: new (...args: never[]) => Error): unknown {
  return expect.any(cls) as unknown;
}

/** The message line of `reason`, as the error lists it. */
function line(node: number, address: string, reason: string): string {
  return `  node ${node} (${address}): ${reason}`;
}

describe('a rendezvous timeout says why each peer is missing', () => {
  it('wrong secret: the dialer failed the peer, the acceptor was refused by it', async () => {
    const nodes = await localNodes(2);
    const acceptor = await start(nodes, 1, { secret: SECRET });
    const refusedSeen = authFailure(acceptor, 'ERR_SB_AUTH_FAILED');
    const dialer = await start(nodes, 0, { secret: OTHER_SECRET });
    const failedSeen = authFailure(dialer, 'ERR_SB_AUTH_FAILED');
    await Promise.all([refusedSeen, failedSeen]);
    const [fromDialer, fromAcceptor] = await Promise.all([
      rendezvousError(dialer),
      rendezvousError(acceptor),
    ]);

    const dialerReason =
      'handshake failed: peer failed authentication (wrong secret or forged proof); check that every node has the same secret';
    expect(fromDialer.code).toBe('ERR_SB_RENDEZVOUS_TIMEOUT');
    expect(fromDialer.missing).toEqual([1]);
    expect(fromDialer.reasons).toEqual([
      { node: 1, address: nodes[1], reason: dialerReason, error: anInstanceOf(HandshakeError) },
    ]);
    expect(fromDialer.reasons[0]!.error).toMatchObject({ code: 'ERR_SB_AUTH_FAILED' });
    expect(fromDialer.cause).toBe(fromDialer.reasons[0]!.error);
    expect(fromDialer.message).toBe(
      `rendezvous timed out after 1000 ms; missing peers: 1\n${line(1, nodes[1]!, dialerReason)}`,
    );

    const acceptorReason =
      'dials this node and refused the handshake: "peer failed authentication (wrong secret or forged proof)"; check that every node has the same secret';
    expect(fromAcceptor.missing).toEqual([0]);
    expect(fromAcceptor.reasons).toEqual([
      { node: 0, address: nodes[0], reason: acceptorReason, error: anInstanceOf(HandshakeError) },
    ]);
    expect(fromAcceptor.cause).toMatchObject({ code: 'ERR_SB_AUTH_FAILED' });
    expect(fromAcceptor.message).toContain(line(0, nodes[0]!, acceptorReason));
  });

  it('another node list: the dialer is refused for its fingerprint; the acceptor saw an unnamed connection fail', async () => {
    const nodes = await localNodes(3);
    // Node 1 knows a third node that is not running; node 0 knows only two.
    const acceptor = await start(nodes, 1, { secret: SECRET });
    const anonymousSeen = nextEvent(
      acceptor,
      (e) =>
        e.type === 'auth-failure' &&
        e.node === undefined &&
        e.error.code === 'ERR_SB_FINGERPRINT_MISMATCH',
    );
    const dialer = await start(nodes.slice(0, 2), 0, { secret: SECRET });
    const refusedSeen = authFailure(dialer, 'ERR_SB_FINGERPRINT_MISMATCH');
    await Promise.all([anonymousSeen, refusedSeen]);
    const [fromDialer, fromAcceptor] = await Promise.all([
      rendezvousError(dialer),
      rendezvousError(acceptor),
    ]);

    expect(fromDialer.reasons).toEqual([
      {
        node: 1,
        address: nodes[1],
        reason:
          'refused the handshake: "peer was configured with a different node list or cluster name (fingerprint mismatch)"; give every node the identical nodes list (order, hosts, ports, tags) and clusterName',
        error: anInstanceOf(HandshakeError),
      },
    ]);
    expect(fromDialer.cause).toMatchObject({ code: 'ERR_SB_FINGERPRINT_MISMATCH' });

    // The acceptor cannot tell who sent a HELLO it refused before reading the
    // node id: it says so, and what the connection failed with.
    expect(fromAcceptor.missing).toEqual([0, 2]);
    const [zero, two] = fromAcceptor.reasons;
    expect(zero).toMatchObject({ node: 0, address: nodes[0] });
    expect(zero!.reason).toBe(
      `never connected: node 0 is to dial this node at ${nodes[1]}; ` +
        'a connection from 127.0.0.1 (node 0?) failed its handshake before naming its node: ' +
        'peer was configured with a different node list or cluster name (fingerprint mismatch); ' +
        'give every node the identical nodes list (order, hosts, ports, tags) and clusterName',
    );
    expect(zero!.error).toMatchObject({ code: 'ERR_SB_FINGERPRINT_MISMATCH' });
    expect(two).toMatchObject({
      node: 2,
      address: nodes[2],
      reason: 'connection refused; is node 2 started, and listening on that address?',
    });
    expect(fromAcceptor.cause).toBeInstanceOf(AggregateError);
    expect((fromAcceptor.cause as AggregateError).errors).toEqual([zero!.error, two!.error]);
  });

  it('nobody listening: connection refused, the cause a typed link error around ECONNREFUSED', async () => {
    const nodes = await localNodes(2);
    const sb = await start(nodes, 0, { secret: SECRET });
    const err = await rendezvousError(sb);
    const reason = 'connection refused; is node 1 started, and listening on that address?';
    expect(err.reasons).toEqual([
      { node: 1, address: nodes[1], reason, error: anInstanceOf(SwitchboardError) },
    ]);
    const cause = err.cause as SwitchboardError;
    expect(cause).toBe(err.reasons[0]!.error);
    expect(cause.code).toBe('ERR_SB_LINK');
    expect(cause.message).toBe(
      `connect to node 1 at ${nodes[1]} failed: connect ECONNREFUSED ${nodes[1]}`,
    );
    expect(cause.cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(err.message).toBe(
      `rendezvous timed out after 1000 ms; missing peers: 1\n${line(1, nodes[1]!, reason)}`,
    );
  });

  it('a port that accepts TCP but never speaks: no answer, the cause a handshake timeout', async () => {
    const nodes = await localNodes(2);
    const sockets: net.Socket[] = [];
    // It never reads either, so it never even sees the switchboard hang up.
    const silent = net.createServer((socket) => sockets.push(socket));
    silent.listen(Number(nodes[1]!.split(':')[1]), '127.0.0.1');
    await once(silent, 'listening');
    try {
      const sb = await start(nodes, 0, { secret: SECRET });
      // A second connection means the switchboard gave up on the first, at its
      // handshake timeout, and redials.
      while (sockets.length < 2) {
        await once(silent, 'connection', { signal: AbortSignal.timeout(5_000) });
      }
      const err = await rendezvousError(sb, 300);
      expect(err.reasons).toEqual([
        {
          node: 1,
          address: nodes[1],
          reason:
            'no answer: connected, but no HELLO came back within 300 ms; is that port a switchboard node, or another program?',
          error: anInstanceOf(HandshakeError),
        },
      ]);
      expect(err.cause).toMatchObject({
        code: 'ERR_SB_HANDSHAKE_TIMEOUT',
        state: 'await-hello',
        message: 'handshake not finished within 300 ms',
      });
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it.each([
    [
      'an insecure dialer against a secure acceptor',
      { insecure: true },
      { secret: SECRET },
      'peer runs without a secret (insecure) and this node requires one',
    ],
    [
      'a secure dialer against an insecure acceptor',
      { secret: SECRET },
      { insecure: true },
      'peer requires a secret and this node runs insecure',
    ],
  ] as const)('%s: security mismatch on both sides', async (_, dialing, accepting, words) => {
    const nodes = await localNodes(2);
    const acceptor = await start(nodes, 1, accepting);
    const acceptorSeen = authFailure(acceptor, 'ERR_SB_SECURITY_MISMATCH');
    const dialer = await start(nodes, 0, dialing);
    const dialerSeen = authFailure(dialer, 'ERR_SB_SECURITY_MISMATCH');
    await Promise.all([acceptorSeen, dialerSeen]);
    const [fromDialer, fromAcceptor] = await Promise.all([
      rendezvousError(dialer),
      rendezvousError(acceptor),
    ]);
    const advice = 'give every node a secret, or run every node insecure';
    expect(fromDialer.reasons[0]!.reason).toBe(`refused the handshake: "${words}"; ${advice}`);
    expect(fromDialer.cause).toMatchObject({ code: 'ERR_SB_SECURITY_MISMATCH' });
    expect(fromAcceptor.reasons[0]!.reason).toBe(
      `never connected: node 0 is to dial this node at ${nodes[1]}; ` +
        `a connection from 127.0.0.1 (node 0?) failed its handshake before naming its node: ${words}; ${advice}`,
    );
    expect(fromAcceptor.cause).toMatchObject({ code: 'ERR_SB_SECURITY_MISMATCH' });
  });

  it('a peer that never dialed: the reason says what this node waits for', async () => {
    const nodes = await localNodes(2);
    const acceptor = await start(nodes, 1, { secret: SECRET });
    const never = await rendezvousError(acceptor, 200);
    expect(never.reasons).toEqual([
      {
        node: 0,
        address: nodes[0],
        reason: `never connected: node 0 is to dial this node at ${nodes[1]}; is node 0 started, and can it reach that address?`,
        error: undefined,
      },
    ]);
    expect(never.cause).toBeUndefined();
  });

  it("clears a peer's reason once it links", async () => {
    const nodes = await localNodes(2);
    const acceptor = await start(nodes, 1, { secret: SECRET });
    const refused = authFailure(acceptor, 'ERR_SB_AUTH_FAILED');
    const wrong = await start(nodes, 0, { secret: OTHER_SECRET });
    await refused;
    expect((await rendezvousError(acceptor, 100)).reasons[0]!.error).toMatchObject({
      code: 'ERR_SB_AUTH_FAILED',
    });
    await wrong.close();

    const right = await start(nodes, 0, { secret: SECRET });
    await Promise.all([
      right.rendezvous({ timeoutMs: 5_000 }),
      acceptor.rendezvous({ timeoutMs: 5_000 }),
    ]);
    const down = nextEvent(acceptor, (e) => e.type === 'peer-down' && e.node === 0);
    await right.close();
    await down;
    const err = await rendezvousError(acceptor, 100);
    expect(err.reasons).toEqual([
      {
        node: 0,
        address: nodes[0],
        reason: `link lost; waiting for node 0 to dial this node again at ${nodes[1]}; is node 0 started, and can it reach that address?`,
        error: undefined,
      },
    ]);
    expect(err.cause).toBeUndefined();
  });
});
