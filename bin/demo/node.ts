/**
 * One node of the demo cluster, run as a child process by the demo's parent
 * (bin/demo/run.ts). It waits for its configuration over IPC (the secret
 * never appears on a command line), starts a Switchboard, reports events
 * and results back, and runs the scenarios it is told to run.
 */
import { Switchboard } from '../../lib/index.js';
import type { SwitchboardEvent } from '../../lib/index.js';
import type { Command, EventNote, NodeConfig, Report } from './ipc.js';
import { findScenario } from './scenarios.js';
import type { Work } from './scenarios.js';

const PROGRESS_MS = 100;

let sb: Switchboard | undefined;
const prepared = new Map<string, Work>();
let closing = false;

function report(r: Report): void {
  if (process.connected) process.send!(r);
}

function fatal(err: unknown): void {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  report({ type: 'fatal', message });
  process.exitCode = 1;
  // Give the IPC message a turn to leave before going.
  setImmediate(() => process.exit(1));
}

function note(e: SwitchboardEvent): EventNote | undefined {
  switch (e.type) {
    case 'peer-up':
    case 'peer-restarted':
      return { type: e.type, node: e.node, detail: e.incarnation.slice(0, 8) };
    case 'peer-suspect':
      return { type: e.type, node: e.node, detail: e.reason };
    case 'peer-reconnected':
      return { type: e.type, node: e.node };
    case 'peer-down':
      return { type: e.type, node: e.node, detail: e.error.message };
    case 'link-error':
      return {
        type: e.type,
        ...(e.node === undefined ? {} : { node: e.node }),
        detail: e.error.message,
      };
    case 'auth-failure':
      return { type: e.type, detail: e.error.message };
    case 'drop':
      // Counted by the scenarios themselves; one IPC message per drop would swamp the parent.
      return undefined;
    case 'error':
      return { type: e.type, detail: e.error.message };
  }
}

async function start(config: NodeConfig): Promise<void> {
  const began = performance.now();
  sb = await Switchboard.start({
    nodes: config.nodes,
    id: config.id,
    secret: config.secret,
    heartbeatMs: config.heartbeatMs,
    deadPeerMs: config.deadPeerMs,
    reconnectMinMs: 25,
    reconnectMaxMs: 250,
    lingerMs: 2_000,
  });
  sb.events$.subscribe((e) => {
    const n = note(e);
    if (n !== undefined) report({ type: 'event', event: n });
  });
  await sb.rendezvous({ timeoutMs: config.rendezvousTimeoutMs });
  report({
    type: 'ready',
    incarnation: sb.incarnation,
    rendezvousMs: Math.round(performance.now() - began),
  });
}

async function prepare(key: string, params: Extract<Command, { type: 'prepare' }>['params']) {
  const scenario = findScenario(key);
  if (scenario === undefined || sb === undefined) throw new Error(`unknown scenario ${key}`);
  let count = 0;
  let reported = 0;
  const work = await scenario.prepare({
    sb,
    id: sb.id,
    params,
    progress: (delta) => {
      count += delta;
    },
  });
  prepared.set(key, async () => {
    const timer = setInterval(() => {
      if (count !== reported)
        report({ type: 'progress', scenario: key, count: (reported = count) });
    }, PROGRESS_MS);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  });
  report({ type: 'prepared', scenario: key });
}

async function go(key: string): Promise<void> {
  const work = prepared.get(key);
  if (work === undefined) throw new Error(`scenario ${key} was not prepared`);
  prepared.delete(key);
  try {
    const outcome = await work();
    report({ type: 'done', scenario: key, outcome });
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    report({ type: 'done', scenario: key, outcome: { count: 0, problems: [message] } });
  }
}

async function close(): Promise<void> {
  closing = true;
  await sb?.close();
  // Leave without process.exit(): if the library left a handle open, the
  // parent sees this node hang instead of exiting, and says so.
  process.disconnect();
}

process.on('message', (c: Command) => {
  const run = (): Promise<void> => {
    switch (c.type) {
      case 'start':
        return start(c.config);
      case 'prepare':
        return prepare(c.scenario, c.params);
      case 'go':
        return go(c.scenario);
      case 'close':
        return close();
    }
  };
  run().catch(fatal);
});

// The parent went away: nobody to report to.
process.on('disconnect', () => {
  if (!closing) process.exit(2);
});

report({ type: 'booted', pid: process.pid });
