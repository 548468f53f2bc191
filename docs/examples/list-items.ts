/**
 * `list_items`: a server stream.
 *
 *   node --import tsx docs/examples/list-items.ts
 *
 * One request, a stream of replies, pulled by the caller: the server's
 * generator only runs as fast as the caller reads (credit-based flow
 * control). Stopping early (`break`) cancels the call, and the handler sees
 * its `ctx.signal` abort.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Switchboard } from '../../lib/index.js';

interface Item {
  readonly id: number;
  readonly name: string;
}

const nodes = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
const secret = randomBytes(32);
const [server, client] = await Promise.all(
  nodes.map((_, id) => Switchboard.start({ nodes, id, secret })),
);
try {
  await Promise.all([server!.rendezvous(), client!.rendezvous()]);

  let cancelled: Promise<void> | undefined;
  server!.serveStream<{ count: number }, Item>('list_items', function* ({ count }, ctx) {
    cancelled = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
    for (let id = 0; id < count && !ctx.signal.aborted; id++) {
      yield { id, name: `item-${id}` };
    }
  });

  const items: Item[] = [];
  for await (const item of client!.callStream<{ count: number }, Item>('list_items', { count: 25 }))
    items.push(item);
  console.log(`list_items: ${items.length} items, ${items[0]?.id}..${items.at(-1)?.id}`);
  if (items.length !== 25 || items.some((it, i) => it.id !== i)) throw new Error('wrong items');

  // Read 3 of a million, then stop: the server stops producing.
  const first: number[] = [];
  for await (const item of client!.callStream<{ count: number }, Item>('list_items', {
    count: 1_000_000,
  })) {
    first.push(item.id);
    if (first.length === 3) break;
  }
  await cancelled;
  console.log(`list_items: stopped after ${first.join(', ')}; the server saw the cancel`);
  console.log('list-items: ok');
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
