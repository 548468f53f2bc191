/**
 * The program every node of a process cluster runs (lib/testing/cluster.ts
 * forks it). It waits for its configuration over IPC (the secret never on
 * a command line or in the environment), starts a switchboard on a private
 * loopback address behind its proxy, runs the user's module, reports what
 * its switchboard sees, and answers the test's calls.
 *
 * It never outlives the test: when the IPC channel to the test process
 * drops (the runner crashed, was interrupted or killed) it exits at once.
 */
import { Switchboard, ListenError } from '../index.js';
import type { ClientConnectOptions, StartOptions } from '../index.js';
import { errorInfo, note } from './messages.js';
import type { Command, NodeMessage, PeerView, StartCommand } from './messages.js';
import { functionsOf, mainOf } from './node-module.js';

/** How often the peers are looked at for a change no event announced. */
const PEERS_POLL_MS = 50;

let sb: Switchboard | undefined;
let fns = new Map<string, (...args: unknown[]) => unknown>();
let stopping = false;

function send(m: NodeMessage): void {
  if (process.connected) process.send!(m);
}

let lastPeers = '';

/** Reports the peers when they changed since last time. */
function reportPeers(): void {
  if (sb === undefined) return;
  const peers: PeerView[] = sb
    .peers()
    .map((p) => ({ node: p.node, state: p.state, incarnation: p.incarnation }));
  const key = JSON.stringify(peers);
  if (key === lastPeers) return;
  lastPeers = key;
  send({ t: 'peers', peers });
}

/** The host of a node list entry. */
function hostOf(entry: StartCommand['nodes'][number] | undefined): string {
  if (entry === undefined) return '';
  return typeof entry === 'string' ? entry.slice(0, entry.lastIndexOf(':')) : entry.host;
}

/** Starts the switchboard on the first free address of `c.bindHosts`. */
async function startSwitchboard(c: StartCommand): Promise<{ sb: Switchboard; host: string }> {
  let last: unknown;
  // A node of startNode() without a bindHost listens where its node list says.
  const hosts = c.bindHosts.length === 0 ? [undefined] : c.bindHosts;
  const secret =
    typeof c.secret === 'string' || c.secret === undefined ? c.secret : Buffer.from(c.secret);
  for (const bindHost of hosts) {
    try {
      const started = await Switchboard.start({
        reconnectMinMs: 20,
        reconnectMaxMs: 250,
        lingerMs: 1_000,
        ...(c.options as Partial<StartOptions>),
        nodes: c.nodes,
        id: c.id,
        ...(secret === undefined ? {} : { secret }),
        ...(bindHost === undefined ? {} : { bindHost }),
      });
      return { sb: started, host: bindHost ?? hostOf(c.nodes[c.id]) };
    } catch (err) {
      if (!(err instanceof ListenError && err.systemCode === 'EADDRINUSE')) throw err;
      last = err;
    }
  }
  throw last;
}

/** Attaches as a client (`startClient`): no listener, the members' node list as given. */
async function connectClient(c: StartCommand): Promise<{ sb: Switchboard; host: string }> {
  const secret =
    typeof c.secret === 'string' || c.secret === undefined ? c.secret : Buffer.from(c.secret);
  const started = await Switchboard.connect({
    reconnectMinMs: 20,
    reconnectMaxMs: 250,
    lingerMs: 1_000,
    ...(c.options as Partial<ClientConnectOptions>),
    nodes: c.nodes,
    ...(secret === undefined ? {} : { secret }),
  });
  return { sb: started, host: '' };
}

async function start(c: StartCommand): Promise<void> {
  const { sb: started, host } = await (c.client === true ? connectClient(c) : startSwitchboard(c));
  sb = started;
  started.events$.subscribe((e) => {
    const n = note(e);
    if (n !== undefined) send({ t: 'event', event: n });
    reportPeers();
  });
  setInterval(reportPeers, PEERS_POLL_MS).unref();
  send({ t: 'listening', host, incarnation: started.incarnation });
  reportPeers();
  const where = `node module ${c.module}`;
  const main = mainOf(await import(c.module), where);
  fns = functionsOf(
    await main({
      sb: started,
      // A client's id is the one the members gave it.
      id: c.client === true ? started.id : c.id,
      data: c.data,
      report: (kind, data) => send({ t: 'report', kind, data }),
    }),
    where,
  );
  send({ t: 'ready', fns: [...fns.keys()] });
}

async function call(fn: string, args: unknown[]): Promise<unknown> {
  const f = fns.get(fn);
  if (f === undefined) {
    const known = [...fns.keys()];
    throw new TypeError(
      `no function ${JSON.stringify(fn)} in this node (it has ${known.length === 0 ? 'none' : known.join(', ')})`,
    );
  }
  return await f(...args);
}

/** How long a node told to exit by itself waits before saying what still holds it. */
const HELD_NOTE_MS = 500;

async function stop(exitByItself: boolean): Promise<void> {
  stopping = true;
  await sb?.close();
  send({ t: 'stopped' });
  process.disconnect();
  if (!exitByItself) {
    // Whatever the user's module left running, a stopped node is gone.
    setImmediate(() => process.exit(0));
    return;
  }
  // Nothing here may hold the process: the test wants to see it end alone.
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    console.error(
      `[switchboard/testing] still running ${HELD_NOTE_MS} ms after close(), held by: ${held.join(', ') || 'nothing reported'}`,
    );
  }, HELD_NOTE_MS).unref();
}

function fatal(err: unknown): void {
  const info = errorInfo(err);
  console.error(`[switchboard/testing] node failed: ${info.stack ?? info.message}`);
  send({ t: 'fatal', error: info });
  process.exitCode = 1;
  // Give the IPC message a turn to leave before going.
  setTimeout(() => process.exit(1), 20);
}

process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
// The test process went away (or dropped us): never linger as an orphan holding ports.
process.on('disconnect', () => {
  if (!stopping) process.exit(2);
});

process.on('message', (c: Command) => {
  switch (c.t) {
    case 'start':
      start(c).catch(fatal);
      return;
    case 'call':
      call(c.fn, c.args).then(
        (value) => send({ t: 'reply', re: c.re, ok: true, value }),
        (err: unknown) => send({ t: 'reply', re: c.re, ok: false, error: errorInfo(err) }),
      );
      return;
    case 'stop':
      stop(c.exitByItself === true).catch(fatal);
      return;
    case 'preload':
      // A failure shows again, and is reported, when the start imports it.
      import(c.module).catch(() => undefined);
      return;
  }
});

send({ t: 'booted', pid: process.pid });
