/**
 * The cluster commands of `switchboard` (docs/cli.md), by name. `demo`
 * stays in bin/demo: it starts its own cluster instead of attaching.
 */
import { bench } from './commands/bench.js';
import { methods, peers, ping, stats } from './commands/inspect.js';
import { call, pub, push, sub } from './commands/messaging.js';
import type { Command } from './command.js';

export { helpOf, runCommand } from './command.js';
export type { Command } from './command.js';
export { EXIT, FailedError, UnreachableError } from './exit.js';

/** Every cluster command, in the order the help lists them. */
export const COMMANDS: readonly Command[] = [
  ping,
  peers,
  methods,
  call,
  pub,
  sub,
  push,
  stats,
  bench,
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
