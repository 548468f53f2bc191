import net from 'node:net';

/** Finds `n` distinct free TCP ports on 127.0.0.1 (bound briefly, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.createServer();
      return new Promise<net.Server>((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** A node list on 127.0.0.1 with free ports. */
export async function localNodes(n: number): Promise<string[]> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
}
