/**
 * `hello(name)`: the smallest RPC.
 *
 *   node --import tsx docs/examples/hello.ts
 *
 * Two switchboards in one process (they still talk over authenticated TCP
 * on 127.0.0.1): node 0 serves `hello`, node 1 calls it. In a real cluster
 * each node is its own process, started with the same node list and its own
 * `id`.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Switchboard } from '../../lib/index.js';

const nodes = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
const secret = randomBytes(32);
const [server, client] = await Promise.all(
  nodes.map((_, id) => Switchboard.start({ nodes, id, secret })),
);
try {
  await Promise.all([server!.rendezvous(), client!.rendezvous()]);

  server!.serve<string, string>('hello', (name, ctx) => {
    console.log(`server: hello(${JSON.stringify(name)}) from node ${ctx.caller}`);
    return `Hello, ${name}!`;
  });

  for (const name of ['Ada', 'Grace']) {
    const greeting = await client!.call<string, string>('hello', name, { timeoutMs: 5_000 });
    console.log(greeting);
    if (greeting !== `Hello, ${name}!`) throw new Error(`unexpected reply ${greeting}`);
  }
  console.log('hello: ok');
} finally {
  await Promise.all([server!.close(), client!.close()]);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
