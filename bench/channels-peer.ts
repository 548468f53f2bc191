/**
 * The receiving process of bench/channels.ts: one switchboard node, a raw
 * node:net server and a zeromq PULL socket, each counting `{ seq, data }`
 * messages (or raw byte messages) and reporting over IPC when a round's
 * count is reached. Every variant checks order, so none can cheat.
 */
import net from 'node:net';
import { decode as cborDecode } from 'cbor-x';
import * as zmq from 'zeromq';
import { Switchboard } from '../lib/facade.js';
import { rawParser } from './raw.js';

interface Init {
  op: 'init';
  nodes: string[];
  secret: string;
}
interface Expect {
  op: 'expect';
  variant: string;
  count: number;
  binary: boolean;
}
type Command = Init | Expect | { op: 'exit' };

let expected = 0;
let got = 0;
let binary = false;
let variant = '';
let failed = false;
/** CPU time at the start of the round (armed), for the CPU per message. */
let cpuMark = process.cpuUsage();

function see(value: unknown): void {
  if (failed) return;
  if (binary) {
    if (!(value instanceof Uint8Array)) fail(`expected bytes, got ${typeof value}`);
  } else {
    const seq = (value as { seq: number }).seq;
    if (seq !== got) fail(`${variant}: expected seq ${got}, got ${seq}`);
  }
  got++;
  if (got === expected) {
    const cpu = process.cpuUsage(cpuMark);
    process.send!({ op: 'done', variant, count: got, cpuUs: cpu.user + cpu.system });
  }
}

function fail(message: string): void {
  failed = true;
  process.send!({ op: 'error', message });
}

let sb: Switchboard | undefined;
let rawServer: net.Server | undefined;
let pull: zmq.Pull | undefined;

process.on('message', (cmd: Command) => {
  void (async () => {
    if (cmd.op === 'init') {
      sb = await Switchboard.start({ nodes: cmd.nodes, id: 1, secret: cmd.secret });
      const r = sb.receiver<unknown>('bench');
      r.observable().subscribe((v) => see(v));
      rawServer = net.createServer({ noDelay: true }, (socket) => {
        socket.on(
          'data',
          rawParser((body) => see(binary ? body : cborDecode(body))),
        );
      });
      await new Promise<void>((resolve) => rawServer!.listen(0, '127.0.0.1', resolve));
      pull = new zmq.Pull();
      await pull.bind('tcp://127.0.0.1:*');
      void (async () => {
        for await (const [msg] of pull) see(binary ? msg : cborDecode(msg!));
      })();
      await sb.rendezvous({ timeoutMs: 10_000 });
      process.send!({
        op: 'ready',
        rawPort: (rawServer.address() as net.AddressInfo).port,
        zmqEndpoint: pull.lastEndpoint,
      });
    } else if (cmd.op === 'expect') {
      expected = cmd.count;
      got = 0;
      binary = cmd.binary;
      variant = cmd.variant;
      cpuMark = process.cpuUsage();
      process.send!({ op: 'armed' });
    } else {
      pull?.close();
      rawServer?.close();
      await sb?.close();
      process.exit(0);
    }
  })();
});

// IPC messages sent before this listener existed would be lost: say we are listening.
process.send!({ op: 'alive' });
