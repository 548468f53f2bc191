/**
 * The three-process ping-pong, from the `comm` crate this library descends
 * from.
 *
 *   node --import tsx docs/examples/pingpong.ts
 *
 * Run without arguments, it starts three processes: a leader (node 0) and
 * two followers. Each round, the leader broadcasts a number together with a
 * Sender to reply through (an MPMC channel in `all` mode: every follower
 * gets every message); each follower answers the number plus its own id
 * through that Sender. After the last round everyone closes and exits 0.
 *
 * In your own code, import from 'switchboard' instead of the relative path.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Switchboard } from '../../lib/index.js';
import type { Sender } from '../../lib/index.js';

const NODES = 3;
const ROUNDS = 5;

interface Ping {
  readonly n: number;
  readonly reply: Sender<{ from: number; n: number }>;
}

async function leader(sb: Switchboard): Promise<void> {
  // Followers say hello once their broadcast receiver exists.
  const hello = sb.receiver<number>('hello', { expectSenders: NODES - 1 });
  for await (const follower of hello) console.log(`leader: node ${follower} is listening`);
  const pings = sb.mpmcSender<Ping>('pings', { mode: 'all' });
  for (let round = 0; round < ROUNDS; round++) {
    const n = round * 100;
    const [reply, answers] = sb.channel<{ from: number; n: number }>({
      expectSenders: NODES - 1,
    });
    await pings.send({ n, reply });
    reply.close();
    const got: string[] = [];
    for await (const a of answers) {
      if (a.n !== n + a.from) throw new Error(`node ${a.from} answered ${a.n} to ${n}`);
      got.push(`${a.from}:${a.n}`);
    }
    if (got.length !== NODES - 1) throw new Error(`round ${round}: ${got.length} answers`);
    console.log(`leader: round ${round} sent ${n}, got ${got.sort().join(' ')}`);
  }
  pings.close(); // ends the followers' receivers
}

async function follower(sb: Switchboard): Promise<void> {
  const pings = sb.mpmcReceiver<Ping>('pings', { expectSenders: 1 });
  const hello = sb.sender<number>('hello', { node: 0 });
  await hello.send(sb.id);
  hello.close();
  let rounds = 0;
  for await (const { n, reply } of pings) {
    await reply.send({ from: sb.id, n: n + sb.id });
    reply.close();
    rounds++;
  }
  if (rounds !== ROUNDS) throw new Error(`node ${sb.id}: ${rounds} of ${ROUNDS} rounds`);
  console.log(`follower ${sb.id}: answered ${rounds} pings`);
}

async function node(nodes: string[], id: number): Promise<void> {
  const sb = await Switchboard.start({ nodes, id, secret: process.env.PINGPONG_SECRET! });
  try {
    await sb.rendezvous({ timeoutMs: 10_000 });
    await (id === 0 ? leader(sb) : follower(sb));
  } finally {
    await sb.close();
  }
}

async function main(): Promise<void> {
  const ports = await Promise.all(Array.from({ length: NODES }, freePort));
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const env = { ...process.env, PINGPONG_SECRET: randomBytes(32).toString('hex') };
  const me = fileURLToPath(import.meta.url);
  const codes = await Promise.all(
    nodes.map(
      (_, id) =>
        new Promise<number | null>((resolve) => {
          const args = [...process.execArgv, me, nodes.join(','), String(id)];
          spawn(process.execPath, args, { env, stdio: 'inherit' }).on('exit', resolve);
        }),
    ),
  );
  if (codes.some((c) => c !== 0)) throw new Error(`exit codes: ${codes.join(', ')}`);
  console.log('pingpong: all 3 processes exited 0');
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

const [nodes, id] = process.argv.slice(2);
const run = nodes === undefined ? main() : node(nodes.split(','), Number(id));
run.catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
