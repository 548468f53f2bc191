/**
 * Bidirectional streams: `echo_stream` and `uppercase`.
 *
 *   node --import tsx docs/examples/bidi-streams.ts
 *
 * The handler reads the caller's stream and returns its own (an async
 * generator fits). Both directions have flow control: a slow reader on
 * either side slows the writer on the other. The caller gives any
 * iterable, async iterable or Observable, and reads the replies with
 * `for await` or as an Observable.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { firstValueFrom, from, toArray } from 'rxjs';
import { Switchboard } from '../../lib/index.js';

const nodes = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
const secret = randomBytes(32);
const [server, client] = await Promise.all(
  nodes.map((_, id) => Switchboard.start({ nodes, id, secret })),
);
try {
  await Promise.all([server!.rendezvous(), client!.rendezvous()]);

  server!.serveBidi<string, string>('echo_stream', async function* (words) {
    for await (const w of words) yield w;
  });
  server!.serveBidi<string, string>('uppercase', async function* (words) {
    for await (const w of words) yield w.toUpperCase();
  });

  const words = ['one', 'two', 'three'];

  // Replies read with for await; requests from a plain array.
  const echoed: string[] = [];
  for await (const w of client!.callBidi<string, string>('echo_stream', words)) echoed.push(w);
  console.log(`echo_stream: ${echoed.join(' ')}`);

  // Requests from an Observable, replies as an Observable.
  const upper = await firstValueFrom(
    client!.callBidi<string, string>('uppercase', from(words)).observable().pipe(toArray()),
  );
  console.log(`uppercase: ${upper.join(' ')}`);

  if (echoed.join() !== words.join() || upper.join() !== 'ONE,TWO,THREE')
    throw new Error('streams came back wrong');
  console.log('bidi-streams: ok');
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
