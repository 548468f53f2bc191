import { once } from 'node:events';
import net from 'node:net';
import { Gate } from '../../lib/testing/gate.js';
import type { GateFaults } from '../../lib/testing/gate.js';
import { resetSocket } from '../../lib/testing/reset.js';

/**
 * The proxy's resets (docs/testing.md, section 8): a reset passed on to a
 * socket whose own shutdown is in flight must still close it. Node refuses
 * the reset there (libuv's EINVAL) and never closes the socket, which left
 * the test process spinning at exit after its tests had passed; these
 * specs wait for the socket's 'close', which then never came.
 */

/** Two connected sockets on 127.0.0.1: `local` (dialled) and `remote` (accepted). */
async function pair(): Promise<{ local: net.Socket; remote: net.Socket; server: net.Server }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const local = net.connect({ port, host: '127.0.0.1' });
  await once(local, 'connect');
  const [remote] = await accepted;
  for (const s of [local, remote]) s.on('error', () => undefined);
  return { local, remote, server };
}

/**
 * Resolves with `socket`'s 'close' event; rejects if it has not come within
 * `ms`. Called before the close is started: it comes from the handle's own
 * close callback, never in the same turn. (Not `socket.closed`: that is true
 * once the stream is destroyed, even when the handle never closes.)
 */
function closed(socket: net.Socket, ms = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no 'close' within ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe('resetting a proxied socket', () => {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];

  async function track(): Promise<{ local: net.Socket; remote: net.Socket }> {
    const p = await pair();
    servers.push(p.server);
    sockets.push(p.local, p.remote);
    return p;
  }

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('is a real reset on a socket that has not ended: the peer sees ECONNRESET', async () => {
    const { local, remote } = await track();
    const error = new Promise<string | undefined>((resolve) =>
      remote.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)),
    );
    remote.resume();
    resetSocket(local);
    await closed(local);
    expect(await error).toBe('ECONNRESET');
  });

  it('closes a socket whose FIN is in flight, and its peer sees the FIN and the close', async () => {
    const { local, remote } = await track();
    remote.resume();
    const remoteEnded = once(remote, 'end');
    local.end();
    expect(local.writableEnded && !local.writableFinished).toBe(true);
    resetSocket(local);
    await closed(local);
    await remoteEnded;
    remote.end();
    await closed(remote);
  });

  it('a gate passing on a held reset to a destination that has just ended closes it', async () => {
    // src's peer resets while the link is blackholed; the destination then
    // ends (as a socket does when its own peer's FIN arrives) and, in the
    // same turn, the blackhole is healed: the held reset is passed on to a
    // socket whose shutdown is in flight.
    const a = await track();
    const b = await track();
    const faults: { hold: boolean } & Omit<GateFaults, 'hold'> = {
      hold: true,
      delayMs: 0,
      bytesPerSecond: 0,
    };
    const gate = new Gate(a.remote, b.local, () => faults);
    gate.start(undefined);
    b.remote.resume();
    const srcClosed = closed(a.remote);
    a.local.resetAndDestroy();
    await srcClosed;
    expect(b.local.destroyed).toBe(false);

    const peerEnded = once(b.remote, 'end');
    b.local.end();
    faults.hold = false;
    gate.update();
    await closed(b.local);
    await peerEnded;
    gate.dispose();
  });
});
