/**
 * `add(a, b)`: a typed RPC with errors that travel.
 *
 *   node --import tsx docs/examples/add.ts
 *
 * Node 0 serves `add`; node 1 calls it. A handler that throws reaches the
 * caller as a `RemoteError` carrying the remote error's name, message and
 * code; a call that takes too long fails with ERR_SB_TIMEOUT, and the
 * handler sees its `ctx.signal` abort.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { ErrorCode, RemoteError, Switchboard, isErrorCode } from '../../lib/index.js';

interface AddRequest {
  readonly a: number;
  readonly b: number;
}

const nodes = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
const secret = randomBytes(32);
const [server, client] = await Promise.all(
  nodes.map((_, id) => Switchboard.start({ nodes, id, secret })),
);
try {
  await Promise.all([server!.rendezvous(), client!.rendezvous()]);

  server!.serve<AddRequest, number>('add', ({ a, b }) => {
    if (typeof a !== 'number' || typeof b !== 'number') {
      throw Object.assign(new TypeError('add takes two numbers'), { code: 'EBADARGS' });
    }
    return a + b;
  });
  // A handler that never answers unless cancelled.
  server!.serve<null, never>('stall', (_req, ctx) => {
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        console.log(`server: stall aborted (${(ctx.signal.reason as Error).message})`);
        reject(ctx.signal.reason as Error);
      });
    });
  });

  const sum = await client!.call<AddRequest, number>('add', { a: 2, b: 3 });
  console.log(`add(2, 3) = ${sum}`);
  if (sum !== 5) throw new Error(`add(2, 3) returned ${sum}`);

  try {
    await client!.call<unknown, number>('add', { a: 'two', b: 3 });
    throw new Error('add("two", 3) should have failed');
  } catch (err) {
    if (!(err instanceof RemoteError)) throw err;
    console.log(
      `add("two", 3) failed: ${err.name} from node ${err.node}: ` +
        `${err.remoteName}: ${err.message} (code ${err.remoteCode})`,
    );
  }

  try {
    await client!.call('stall', null, { timeoutMs: 200 });
    throw new Error('stall should have timed out');
  } catch (err) {
    if (!isErrorCode(err, ErrorCode.TIMEOUT)) throw err;
    console.log(`stall: ${err.code} after 200 ms`);
  }
  console.log('add: ok');
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
