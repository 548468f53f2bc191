/**
 * `upload`: a client stream that returns a digest.
 *
 *   node --import tsx docs/examples/upload.ts
 *
 * The caller streams chunks (here from a generator; async iterables and
 * Observables work too); the server
 * hashes them as they come and answers once with the SHA-256 digest. Binary
 * chunks travel as raw bytes beside a small header (no CBOR), and the
 * server's credit window bounds what is in flight.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Switchboard } from '../../lib/index.js';

interface Receipt {
  readonly chunks: number;
  readonly bytes: number;
  readonly sha256: string;
}

const CHUNKS = 64;
const CHUNK_SIZE = 16 * 1024;

const nodes = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
const secret = randomBytes(32);
const [server, client] = await Promise.all(
  nodes.map((_, id) => Switchboard.start({ nodes, id, secret })),
);
try {
  await Promise.all([server!.rendezvous(), client!.rendezvous()]);

  server!.serveClientStream<Uint8Array, Receipt>('upload', async (chunks) => {
    const hash = createHash('sha256');
    let count = 0;
    let bytes = 0;
    for await (const chunk of chunks) {
      hash.update(chunk);
      count++;
      bytes += chunk.length;
    }
    return { chunks: count, bytes, sha256: hash.digest('hex') };
  });

  const local = createHash('sha256');
  function* file(): Generator<Uint8Array> {
    for (let i = 0; i < CHUNKS; i++) {
      const chunk = randomBytes(CHUNK_SIZE);
      local.update(chunk);
      yield chunk;
    }
  }
  const receipt = await client!.callClientStream<Uint8Array, Receipt>('upload', file());
  console.log(`upload: ${receipt.chunks} chunks, ${receipt.bytes} bytes, sha256 ${receipt.sha256}`);
  if (receipt.sha256 !== local.digest('hex') || receipt.bytes !== CHUNKS * CHUNK_SIZE)
    throw new Error('the digest does not match what was sent');
  console.log('upload: ok');
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
