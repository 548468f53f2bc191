/**
 * A listening socket that cannot be bound is a typed error naming the
 * address and the system's reason, not Node's bare EADDRINUSE.
 */
import net from 'node:net';
import { Cluster } from '../../lib/switchboard/cluster.js';
import { ErrorCode, ListenError, Switchboard } from '../../lib/index.js';
import type { SwitchboardEvent } from '../../lib/index.js';
import { SECRET } from '../support/cluster.js';
import { localNodes } from '../support/ports.js';

/** Where `start` failed: the rejection, which must be a ListenError. */
async function listenError(start: Promise<Switchboard | Cluster>): Promise<ListenError> {
  const sb = await start.then(
    (s) => s,
    (err: unknown) => err,
  );
  if (sb instanceof Switchboard || sb instanceof Cluster) {
    await sb.close();
    throw new Error('start succeeded');
  }
  if (!(sb instanceof ListenError)) throw sb;
  return sb;
}

describe('Switchboard.start when the socket cannot be bound', () => {
  it('a port already bound by another server: ERR_SB_LISTEN, EADDRINUSE, and the port works once free', async () => {
    const nodes = await localNodes(2);
    const [host, port] = [nodes[0]!.split(':')[0]!, Number(nodes[0]!.split(':')[1])];
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, host, resolve));
    let err: ListenError;
    try {
      err = await listenError(Switchboard.start({ nodes, id: 0, secret: SECRET }));
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    expect(err.code).toBe(ErrorCode.LISTEN);
    expect(err.code).toBe('ERR_SB_LISTEN');
    expect(err.name).toBe('ListenError');
    expect([err.address, err.systemCode]).toEqual([nodes[0], 'EADDRINUSE']);
    expect(err.cause).toMatchObject({ code: 'EADDRINUSE', syscall: 'listen' });
    expect(err.message).toBe(
      `cannot listen on ${nodes[0]}: listen EADDRINUSE: address already in use ${nodes[0]}; ` +
        'another process holds the port: an earlier run still alive, another program, or two nodes given the same port',
    );
    // Nothing of the failed start holds the port.
    const sb = await Switchboard.start({ nodes, id: 0, secret: SECRET });
    await sb.close();
  });

  it('a bind host that is not an address of this machine: EADDRNOTAVAIL', async () => {
    const nodes = await localNodes(2);
    // 192.0.2.0/24 is reserved for documentation: never a local address.
    const err = await listenError(
      Switchboard.start({ nodes, id: 0, secret: SECRET, bindHost: '192.0.2.1' }),
    );
    const port = nodes[0]!.split(':')[1]!;
    expect([err.code, err.address, err.systemCode]).toEqual([
      'ERR_SB_LISTEN',
      `192.0.2.1:${port}`,
      'EADDRNOTAVAIL',
    ]);
    expect(err.cause).toMatchObject({ code: 'EADDRNOTAVAIL' });
    expect(err.message).toBe(
      `cannot listen on 192.0.2.1:${port}: listen EADDRNOTAVAIL: address not available 192.0.2.1:${port}; ` +
        'the host is not an address of this machine: check nodes[id] and bindHost (0.0.0.0 listens on every interface)',
    );
  });

  it('an IPv6 bind host is bracketed in the address', async () => {
    const nodes = await localNodes(2);
    const err = await listenError(
      Switchboard.start({ nodes, id: 0, secret: SECRET, bindHost: '2001:db8::1' }),
    );
    expect(err.address).toBe(`[2001:db8::1]:${nodes[0]!.split(':')[1]}`);
    expect(err.code).toBe('ERR_SB_LISTEN');
    expect(err.systemCode).toMatch(/^E[A-Z]+$/);
  });

  it('a switchboard that failed to listen is destroyed: nothing keeps running', async () => {
    const nodes = await localNodes(2);
    const seen: SwitchboardEvent[] = [];
    let done = false;
    // The cluster layer underneath the facade: its events$ is the switchboard's.
    const cluster = new Cluster({ nodes, id: 0, secret: SECRET, bindHost: '192.0.2.1' });
    cluster.events$.subscribe({ next: (e) => seen.push(e), complete: () => (done = true) });
    await listenError(cluster.startCluster().then(() => cluster));
    expect(done).toBe(true);
    expect(seen).toEqual([]);
  });
});
