/**
 * The child program of the delivery-contract suite: an {@link Agent} in its
 * own process, driven over IPC by the parent (ends.ts):
 *
 *   node --import tsx/esm spec/contract/child-agent.ts '{"label":"..."}'
 *
 * It boots without a switchboard (so a spare can be spawned ahead of the
 * check that needs it) and says `ready`; `start` gives it its node list and
 * id. Observations go to the parent in one IPC message per event-loop turn,
 * stamped when they happened. Unhandled rejections are observations (a
 * check asserts there are none); an uncaught exception is fatal. A `close`
 * command with `exit` disconnects from the parent once it has answered and
 * then does nothing more: the process must then exit by itself.
 */
import { Agent } from './agent.js';
import { errorInfo } from './protocol.js';
import type { ChildCommand, ChildMessage, Obs } from './protocol.js';
import { errorCode, sendToParent } from '../support/child-runtime.js';

const config = JSON.parse(process.argv[2] ?? '{}') as { readonly label?: string };
const label = config.label ?? 'contract-child';
const send: (m: ChildMessage, sent?: () => void) => void = sendToParent;

let queue: Obs[] = [];
let scheduled = false;
function flush(): void {
  scheduled = false;
  if (queue.length === 0) return;
  const batch = queue;
  queue = [];
  send({ type: 'obs', obs: batch });
}
const agent = new Agent((o) => {
  queue.push(o);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});

let leaving = false;
process.on('unhandledRejection', (reason: unknown) => {
  agent.emit({ t: 'unhandled', error: errorInfo(reason) });
});
process.on('uncaughtException', (err: Error) => {
  const message = `${errorCode(err) ?? ''} ${err.stack ?? err.message}`;
  console.error(`[${label}] fatal: ${message}`);
  flush();
  send({ type: 'fatal', message });
  process.exitCode = 1;
  setImmediate(() => process.exit(1));
});
// The parent died or dropped us: never linger as an orphan holding ports.
process.on('disconnect', () => {
  if (!leaving) process.exit(2);
});

process.on('message', (c: ChildCommand) => {
  agent.handle(c).then(
    (value) => {
      flush();
      const exit = c.cmd === 'close' && c.exit === true;
      send({ type: 'reply', re: c.re, ok: true, value: value ?? null }, () => {
        if (!exit) return;
        leaving = true;
        // From here on the program does nothing: the process must exit by itself.
        process.disconnect();
      });
    },
    (err: unknown) => {
      flush();
      send({
        type: 'reply',
        re: c.re,
        ok: false,
        code: errorCode(err),
        message: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
    },
  );
});

send({ type: 'ready' });
