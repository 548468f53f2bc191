/**
 * Mutual TLS between nodes (docs/reliability.md item 20). Certificates are made
 * at run time with the openssl CLI: a cluster CA with a certificate per
 * node, and a second, unrelated CA with a certificate of its own.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { filter, firstValueFrom } from 'rxjs';
import { RendezvousTimeoutError } from '../../lib/errors.js';
import { encodeFrame, FrameType } from '../../lib/protocol/frame.js';
import { encodeHello, PROTOCOL_MAGIC, PROTOCOL_VERSION } from '../../lib/protocol/handshake.js';
import { Cluster } from '../../lib/switchboard/cluster.js';
import type { ClusterHandler, SwitchboardEvent } from '../../lib/switchboard/events.js';
import { clusterFingerprint, parseNodes } from '../../lib/switchboard/nodes.js';
import type { SwitchboardOptions, TlsOptions } from '../../lib/switchboard/options.js';
import { localNodes } from '../support/ports.js';

const SECRET = 'an-adequately-long-secret';

class TestCluster extends Cluster implements ClusterHandler {
  readonly got: Array<{ peer: number; bytes: Buffer }> = [];
  readonly seen: SwitchboardEvent[] = [];

  static async start(o: SwitchboardOptions): Promise<TestCluster> {
    const c = new TestCluster(o);
    c.setHandler(c);
    c.events$.subscribe((e) => c.seen.push(e));
    await c.startCluster();
    return c;
  }

  /** The first event of `type` matching `pred`, already seen or still to come. */
  event<T extends SwitchboardEvent['type']>(
    type: T,
    pred: (e: Extract<SwitchboardEvent, { type: T }>) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<Extract<SwitchboardEvent, { type: T }>> {
    type E = Extract<SwitchboardEvent, { type: T }>;
    const match = (e: SwitchboardEvent): e is E => e.type === type && pred(e as E);
    const past = this.seen.find(match);
    if (past !== undefined) return Promise.resolve(past);
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      firstValueFrom(this.events$.pipe(filter(match))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no ${type} event in ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The socket of the link to `peer` (white-box: to check it really is TLS). */
  socketTo(peer: number): TLSSocket | undefined {
    const links = (this as unknown as { links: Array<{ conn?: { socket: TLSSocket } }> }).links;
    return links[peer]?.conn?.socket;
  }

  onMessage(peer: number, _stream: number, _flags: number, message: Buffer): void {
    this.got.push({ peer, bytes: Buffer.from(message) });
  }
  onControl(): void {}
  onWritable(): void {}
  onSessionStart(): void {}
  onSessionEnd(): void {}
}

/** Runs openssl; fails with a clear message when it is missing. */
function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: 10_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('tls.spec needs the openssl command-line tool on PATH to make certificates', {
        cause: err,
      });
    }
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr}`, { cause: err });
  }
}

interface Pki {
  dir: string;
  /** Cluster CA certificate (PEM). */
  ca: Buffer;
  /** Certificate and key per name, signed by the cluster CA or, for `rogue`, by the other CA. */
  certs: Record<string, { key: Buffer; cert: Buffer }>;
  /** The unrelated CA's certificate. */
  rogueCa: Buffer;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string, cn: string): void =>
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
  writeFileSync(
    join(dir, 'leaf.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n',
  );
  const makeLeaf = (name: string, ca: string): void => {
    openssl(
      ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`],
      dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${ca}.crt`,
        '-CAkey',
        `${ca}.key`,
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-extfile',
        'leaf.ext',
      ],
      dir,
    );
  };
  try {
    openssl(['version'], dir);
    makeCa('ca', 'switchboard test cluster CA');
    makeCa('rogue-ca', 'some other CA');
    for (const name of ['node0', 'node1', 'node2']) makeLeaf(name, 'ca');
    makeLeaf('rogue', 'rogue-ca');
    const read = (f: string): Buffer => readFileSync(join(dir, f));
    const certs: Pki['certs'] = {};
    for (const name of ['node0', 'node1', 'node2', 'rogue'])
      certs[name] = { key: read(`${name}.key`), cert: read(`${name}.crt`) };
    return { dir, ca: read('ca.crt'), rogueCa: read('rogue-ca.crt'), certs };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs)
      throw new Error(`${what} not met in ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('mutual TLS (docs/reliability.md item 20)', () => {
  let pki: Pki;
  const open: TestCluster[] = [];

  beforeAll(() => {
    pki = makePki();
  });

  afterAll(() => {
    if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });

  function tlsFor(name: string, ca: Buffer = pki.ca): TlsOptions {
    return { ...pki.certs[name]!, ca };
  }

  async function node(
    nodes: readonly string[],
    id: number,
    tls: TlsOptions,
    extra: Partial<SwitchboardOptions> = {},
  ): Promise<TestCluster> {
    const c = await TestCluster.start({
      nodes,
      id,
      secret: SECRET,
      tls,
      reconnectMinMs: 20,
      reconnectMaxMs: 100,
      ...extra,
    });
    open.push(c);
    return c;
  }

  it('two nodes with certificates from the cluster CA link over TLS 1.3 and exchange messages', async () => {
    const nodes = await localNodes(2);
    const a = await node(nodes, 0, tlsFor('node0'));
    const b = await node(nodes, 1, tlsFor('node1'));
    await Promise.all([a.rendezvous({ timeoutMs: 5000 }), b.rendezvous({ timeoutMs: 5000 })]);
    for (const [c, peer] of [
      [a, 1],
      [b, 0],
    ] as const) {
      const socket = c.socketTo(peer)!;
      expect(socket.encrypted).toBe(true);
      expect(socket.getProtocol()).toBe('TLSv1.3');
    }
    const big = randomBytes(300_000);
    a.sendMessage(1, 1, 0, Buffer.from('over tls'));
    a.sendMessage(1, 2, 0, big);
    b.sendMessage(0, 1, 0, Buffer.from('and back'));
    await waitFor(() => b.got.length === 2 && a.got.length === 1, 5000, 'messages');
    expect(b.got[0]!.bytes.toString()).toBe('over tls');
    expect(b.got[1]!.bytes.equals(big)).toBe(true);
    expect(a.got[0]!.bytes.toString()).toBe('and back');
  });

  it('a dialer whose certificate comes from another CA is refused before any frame', async () => {
    const nodes = await localNodes(2);
    const good = await node(nodes, 1, tlsFor('node1'));
    // The rogue trusts the cluster CA, so only the acceptor's check can stop it.
    const rogue = await node(nodes, 0, tlsFor('rogue'));
    const refusal = await good.event('auth-failure');
    expect(refusal.error.code).toBe('ERR_SB_AUTH_FAILED');
    expect(refusal.error.message).toMatch(/TLS/);
    // The rogue keeps retrying and keeps being refused.
    await waitFor(
      () => good.seen.filter((e) => e.type === 'auth-failure').length >= 2,
      5000,
      'a second refusal',
    );
    for (const c of [good, rogue]) {
      expect(c.seen.some((e) => e.type === 'peer-up')).toBe(false);
      expect(c.got).toEqual([]);
    }
    expect(rogue.seen.filter((e) => e.type === 'error')).toEqual([]);
    expect(good.peers()[0]!.framesIn).toBe(0);
  });

  it('an acceptor whose certificate comes from another CA is refused by the dialer', async () => {
    const nodes = await localNodes(2);
    const rogue = await node(nodes, 1, tlsFor('rogue'));
    const good = await node(nodes, 0, tlsFor('node0'));
    const refusal = await good.event('auth-failure', (e) => e.node === 1);
    expect(refusal.error.code).toBe('ERR_SB_AUTH_FAILED');
    expect(refusal.error.message).toMatch(/TLS/);
    for (const c of [good, rogue]) {
      expect(c.seen.some((e) => e.type === 'peer-up')).toBe(false);
      expect(c.got).toEqual([]);
    }
    // A certificate problem is a refusal, not a bug in the dial path.
    expect(good.seen.filter((e) => e.type === 'error')).toEqual([]);
  });

  it('a rendezvous names the TLS refusal: the dialer refusing a certificate, the acceptor refusing one', async () => {
    const fast = { handshakeTimeoutMs: 300, heartbeatMs: 100 };
    const advice = 'check that every node uses tls, with a certificate from the cluster ca';
    // The dialer refuses the acceptor's certificate.
    const nodes = await localNodes(2);
    await node(nodes, 1, tlsFor('rogue'), fast);
    const good = await node(nodes, 0, tlsFor('node0'), fast);
    await good.event('auth-failure', (e) => e.node === 1);
    const fromDialer = await good.rendezvous({ timeoutMs: 300 }).then(
      () => undefined,
      (err: unknown) => err as RendezvousTimeoutError,
    );
    expect(fromDialer).toBeInstanceOf(RendezvousTimeoutError);
    const [reason] = fromDialer!.reasons;
    expect(reason!.reason).toMatch(
      new RegExp(`^TLS handshake with ${nodes[1]} failed: .+; ${advice}$`),
    );
    expect(fromDialer!.cause).toMatchObject({ code: 'ERR_SB_AUTH_FAILED', state: 'tls' });

    // The acceptor refuses the dialer's certificate, before any HELLO names it
    // (and, the socket gone, without its address).
    const others = await localNodes(2);
    const acceptor = await node(others, 1, tlsFor('node1'), fast);
    await node(others, 0, tlsFor('rogue'), fast);
    await acceptor.event('auth-failure');
    const fromAcceptor = await acceptor.rendezvous({ timeoutMs: 300 }).then(
      () => undefined,
      (err: unknown) => err as RendezvousTimeoutError,
    );
    expect(fromAcceptor!.reasons[0]!.reason).toMatch(
      new RegExp(
        `^never connected: node 0 is to dial this node at ${others[1]}; a connection from an unknown address \\(node 0\\?\\) failed its handshake before naming its node: TLS handshake from a client failed: .+; ${advice}$`,
      ),
    );
    expect(fromAcceptor!.cause).toMatchObject({ code: 'ERR_SB_AUTH_FAILED', state: 'tls' });
  });

  it('a plaintext client sending a HELLO is refused, and never gets a switchboard frame', async () => {
    const nodes = await localNodes(2);
    const server = await node(nodes, 1, tlsFor('node1'));
    const hello = encodeFrame(
      FrameType.HELLO,
      0,
      0,
      encodeHello({
        version: PROTOCOL_VERSION,
        insecure: false,
        role: 'dialer',
        fingerprint: clusterFingerprint(parseNodes(nodes)),
        from: 0,
        to: 1,
        incarnation: randomBytes(16),
        nonce: randomBytes(32),
        resume: undefined,
      }),
    );
    const socket = net.connect({ host: '127.0.0.1', port: Number(nodes[1]!.split(':')[1]) });
    const received: Buffer[] = [];
    socket.on('data', (b: Buffer) => received.push(b));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.once('connect', () => socket.write(hello));
    await closed;
    const bytes = Buffer.concat(received);
    // At most a TLS alert record comes back (content type 0x15), never a frame.
    expect(bytes.includes(PROTOCOL_MAGIC)).toBe(false);
    if (bytes.length > 0) expect(bytes[0]).toBe(0x15);
    const refusal = await server.event('auth-failure');
    expect(refusal.error.message).toMatch(/TLS/);
    expect(server.got).toEqual([]);
    expect(server.seen.some((e) => e.type === 'peer-up')).toBe(false);
  });

  it('connections that never start TLS are bounded: the excess is closed at once, a real peer still links (docs/reliability.md item 3)', async () => {
    const nodes = await localNodes(2);
    const server = await node(nodes, 1, tlsFor('node1'), { maxPendingHandshakes: 8 });
    const port = Number(nodes[1]!.split(':')[1]);
    const silent: net.Socket[] = [];
    let closed = 0;
    try {
      await Promise.all(
        Array.from(
          { length: 100 },
          () =>
            new Promise<void>((resolve) => {
              const s = net.connect({ host: '127.0.0.1', port });
              s.on('error', () => {});
              s.once('close', () => {
                closed++;
                resolve();
              });
              s.once('connect', () => resolve());
              silent.push(s);
            }),
        ),
      );
      // Without the bound each would be held until the TLS handshake timeout (5 s).
      await waitFor(() => closed >= 100 - 8, 2000, 'the excess closed');
      expect(closed).toBe(100 - 8);
      // The ones held give way to a real peer once idle: its dialer retries until then.
      const a = await node(nodes, 0, tlsFor('node0'));
      await Promise.all([
        a.rendezvous({ timeoutMs: 5000 }),
        server.rendezvous({ timeoutMs: 5000 }),
      ]);
      a.sendMessage(1, 1, 0, Buffer.from('still served'));
      await waitFor(() => server.got.length === 1, 5000, 'message');
      expect(server.got[0]!.bytes.toString()).toBe('still served');
    } finally {
      for (const s of silent) s.destroy();
    }
  });
});
