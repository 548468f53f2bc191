/**
 * The node module of the delivery-contract suite's child ends (run in each
 * child process by switchboard/testing; spec/contract/scene.ts starts the
 * cluster): an {@link Agent} on the node's switchboard, driven by the test
 * with `call('do', command)`.
 *
 * Observations reach the test as `obs` reports, one per event-loop turn,
 * stamped when they happened, and always before the answer to the command
 * that made them. Takes are also appended to `data.journal` synchronously,
 * so what the node took is known even when a SIGKILL loses its last
 * reports in the pipe. An unhandled rejection is an observation (a check
 * asserts there are none; the kit then fails the node, which fails the
 * test too).
 */
import { defineNode } from '../../lib/testing/index.js';
import { Agent } from './agent.js';
import { errorInfo } from './protocol.js';
import type { AgentCommand, Obs } from './protocol.js';

/** What each child end is given as `ctx.data`. */
export interface AgentNodeData {
  /** The file its takes are journaled to. */
  readonly journal: string;
}

export default defineNode<AgentNodeData>(({ sb, data, report }) => {
  let queue: Obs[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    report('obs', batch);
  };
  const agent = new Agent((o) => {
    queue.push(o);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  process.on('unhandledRejection', (reason: unknown) => {
    agent.emit({ t: 'unhandled', error: errorInfo(reason) });
    flush();
  });
  agent.attach(sb, data.journal);
  return {
    /** Runs one agent command; resolves with its result (null for none). */
    do: async (c: AgentCommand): Promise<unknown> => {
      try {
        return (await agent.handle(c)) ?? null;
      } finally {
        flush();
      }
    },
  };
});
