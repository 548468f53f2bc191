/**
 * One node of the demo cluster: the node module the demo's parent
 * (bin/demo/run.ts) hands to `switchboard/testing`, which forks a process
 * per node, passes it the secret over IPC, starts its switchboard and then
 * runs this. The parent calls the functions returned here to run the
 * scenarios; the node reports its live progress.
 */
import { defineNode } from '../../lib/testing/index.js';
import type { NodeOutcome, ScenarioParams } from './ipc.js';
import { findScenario } from './scenarios.js';
import type { Work } from './scenarios.js';

const PROGRESS_MS = 100;

export default defineNode(({ sb, report }) => {
  const began = performance.now();
  const prepared = new Map<string, Work>();
  return {
    /** This node's `stats().metrics` (docs/metrics.md). */
    metrics: () => sb.stats().metrics,

    /** This node's metrics in the Prometheus text format. */
    metricsText: () => sb.metrics(),

    /** Waits until every peer is linked; resolves with the ms since this node started. */
    async rendezvous(timeoutMs: number): Promise<number> {
      await sb.rendezvous({ timeoutMs });
      return Math.round(performance.now() - began);
    },

    /** Creates this node's endpoints for `key`; the work runs on {@link go}. */
    async prepare(key: string, params: ScenarioParams): Promise<void> {
      const scenario = findScenario(key);
      if (scenario === undefined) throw new Error(`unknown scenario ${key}`);
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
          if (count !== reported) report('progress', { scenario: key, count: (reported = count) });
        }, PROGRESS_MS);
        try {
          return await work();
        } finally {
          clearInterval(timer);
        }
      });
    },

    /** Runs the work prepared for `key`; what went wrong is in the outcome, not thrown. */
    async go(key: string): Promise<NodeOutcome> {
      const work = prepared.get(key);
      if (work === undefined) throw new Error(`scenario ${key} was not prepared`);
      prepared.delete(key);
      try {
        return await work();
      } catch (err) {
        const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        return { count: 0, problems: [message] };
      }
    },
  };
});
