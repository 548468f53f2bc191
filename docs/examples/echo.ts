/**
 * The classic TCP echo server and client, built on switchboard channels.
 *
 *   node --import tsx docs/examples/echo.ts
 *
 * Run without arguments, it starts a two-node cluster on 127.0.0.1: the
 * server (node 0) and the client (node 1), each in its own process. The
 * client sends lines, each with a Sender for the answer (a reply channel);
 * the server writes every line back through it. Exits 0 when every line
 * came back unchanged.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Switchboard } from '../../lib/index.js';
import type { Sender } from '../../lib/index.js';

interface EchoRequest {
  readonly line: string;
  readonly reply: Sender<string>;
}

const LINES = ['hello', 'echo, echo', 'ünïcödé ✓', '', 'bye'];

async function server(sb: Switchboard): Promise<void> {
  // Ends when the client, the only sender, hangs up.
  const requests = sb.receiver<EchoRequest>('echo', { expectSenders: 1 });
  for await (const { line, reply } of requests) {
    await reply.send(line);
    reply.close();
  }
  console.log('server: client hung up');
}

async function client(sb: Switchboard): Promise<void> {
  const echo = sb.sender<EchoRequest>('echo', { node: 0 });
  for (const line of LINES) {
    const [reply, answers] = sb.channel<string>();
    await echo.send({ line, reply });
    reply.close(); // our copy; the server's copy answers, then closes
    for await (const back of answers) {
      if (back !== line)
        throw new Error(`sent ${JSON.stringify(line)}, got ${JSON.stringify(back)}`);
      console.log(`client: echo ${JSON.stringify(back)}`);
    }
  }
  echo.close();
}

/** One node: `echo.ts <role> <nodes> <id>`, the secret in the environment. */
async function node(role: string, nodes: string[], id: number): Promise<void> {
  const sb = await Switchboard.start({ nodes, id, secret: process.env.ECHO_SECRET! });
  try {
    await sb.rendezvous({ timeoutMs: 10_000 });
    await (role === 'server' ? server(sb) : client(sb));
  } finally {
    await sb.close();
  }
}

/** Starts both processes and waits for them. */
async function main(): Promise<void> {
  const nodes = await Promise.all([freePort(), freePort()]).then((ps) =>
    ps.map((p) => `127.0.0.1:${p}`),
  );
  const env = { ...process.env, ECHO_SECRET: randomBytes(32).toString('hex') };
  const me = fileURLToPath(import.meta.url);
  const codes = await Promise.all(
    ['server', 'client'].map(
      (role, id) =>
        new Promise<number | null>((resolve) => {
          const args = [...process.execArgv, me, role, nodes.join(','), String(id)];
          spawn(process.execPath, args, { env, stdio: 'inherit' }).on('exit', resolve);
        }),
    ),
  );
  if (codes.some((c) => c !== 0)) throw new Error(`exit codes: ${codes.join(', ')}`);
  console.log('echo: ok');
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

const [role, nodes, id] = process.argv.slice(2);
const run = role === undefined ? main() : node(role, nodes!.split(','), Number(id));
run.catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
