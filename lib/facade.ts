import { Cluster } from './switchboard/cluster.js';
import type { SwitchboardOptions } from './switchboard/options.js';

/**
 * The public entry point: one per process. It composes the cluster layer
 * (links, rendezvous, failure detection) with the channel layer and the
 * patterns. It lives above both folders so imports keep flowing one way:
 * channel -> switchboard -> protocol.
 */
export class Switchboard extends Cluster {
  /**
   * Validates `options`, binds `nodes[id]` and starts linking with every
   * peer. Resolves once listening; call {@link Cluster.rendezvous} to wait
   * for the peers.
   * @throws OptionError naming the bad option; a listen error (EADDRINUSE...)
   */
  static async start(options: SwitchboardOptions): Promise<Switchboard> {
    const sb = new Switchboard(options);
    await sb.startCluster();
    return sb;
  }
}
