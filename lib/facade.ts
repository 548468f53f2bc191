import { ErrorCode, SwitchboardError } from './errors.js';
import { ChannelHub } from './channel/hub.js';
import type { Receiver, ReceiverOptions, ReceiverStats } from './channel/receiver.js';
import type { Sender, SenderOptions } from './channel/sender.js';
import { Cluster } from './switchboard/cluster.js';
import type { PeerInfo } from './switchboard/cluster.js';
import type { SwitchboardOptions } from './switchboard/options.js';

/** Options of {@link Switchboard.start}: the cluster's, plus the channel layer's. */
export interface StartOptions extends SwitchboardOptions {
  /**
   * Encode and decode messages even between endpoints of this process, so a
   * local receiver gets a copy exactly as a remote one would (tests).
   * Default false: a local receiver gets the very object that was sent.
   */
  readonly forceEncoding?: boolean;
}

/** A snapshot of the switchboard's counters. */
export interface SwitchboardStats {
  readonly node: number;
  readonly incarnation: string;
  readonly peers: PeerInfo[];
  readonly receivers: ReceiverStats[];
  /** Messages dropped per channel (lossy receivers, `post()` failures). */
  readonly drops: Record<string, number>;
}

/**
 * The public entry point: one per process. It composes the cluster layer
 * (links, rendezvous, failure detection) with the channel layer and the
 * patterns. It lives above both folders so imports keep flowing one way:
 * channel -> switchboard -> protocol.
 */
export class Switchboard extends Cluster {
  /** The channel layer (endpoints, streams, directory); used by the patterns. */
  readonly hub: ChannelHub;

  protected constructor(options: StartOptions) {
    super(options);
    this.hub = new ChannelHub(this, { forceEncoding: options.forceEncoding === true });
    this.setHandler(this.hub);
  }

  /**
   * Validates `options`, binds `nodes[id]` and starts linking with every
   * peer. Resolves once listening; call `rendezvous()` to wait for the peers.
   * @throws OptionError naming the bad option; a listen error (EADDRINUSE...)
   */
  static async start(options: StartOptions): Promise<Switchboard> {
    const sb = new Switchboard(options);
    await sb.startCluster();
    return sb;
  }

  /**
   * A receiver on this node. Named receivers (`"jobs"`) are unique per node
   * and reachable from every node with `sender(name, { node })`.
   */
  receiver<T>(name?: string, options?: ReceiverOptions<T>): Receiver<T> {
    return this.hub.receiver<T>(name, options);
  }

  /**
   * A sender to the receiver `name` on `node`. Sends made before that
   * receiver exists, or while its node is unreachable, wait (bounded by
   * `maxPending`, up to `timeoutMs`).
   */
  sender<T>(name: string, options: SenderOptions<T> & { readonly node: number }): Sender<T> {
    return this.hub.sender<T>({ node: options.node, name }, options);
  }

  /**
   * An anonymous channel: a receiver on this node and a sender to it. The
   * sender can be sent to any node inside a message. The receiver ends when
   * every sender that connected has closed.
   */
  channel<T>(options?: ReceiverOptions<T> & SenderOptions<T>): [Sender<T>, Receiver<T>] {
    const r = this.hub.receiver<T>(undefined, options, options?.expectSenders ?? 1);
    const s = this.hub.sender<T>({ node: this.id, id: r.id }, options);
    return [s, r];
  }

  /** A receiver of the cluster-wide MPMC channel `name`. */
  mpmcReceiver<T>(name: string, options?: ReceiverOptions<T>): Receiver<T> {
    return this.hub.mpmcReceiver<T>(name, options);
  }

  /**
   * A sender to the MPMC channel `name`: each message goes to exactly one
   * receiver (`one`, the least loaded) or to every receiver (`all`). Sends
   * wait while the channel has no receiver.
   */
  mpmcSender<T>(
    name: string,
    options: SenderOptions<T> & { readonly mode: 'one' | 'all' },
  ): Sender<T> {
    return this.hub.mpmcSender<T>(name, options.mode, options);
  }

  /** Per-peer and per-channel counters and queue depths. */
  stats(): SwitchboardStats {
    return {
      node: this.id,
      incarnation: this.incarnation,
      peers: this.peers(),
      receivers: this.hub.receiverStats(),
      drops: Object.fromEntries(this.hub.drops),
    };
  }

  override async close(): Promise<void> {
    await super.close();
    this.hub.shutdown(new SwitchboardError(ErrorCode.CLOSED, 'switchboard closed'));
  }

  override async destroy(err?: Error): Promise<void> {
    await super.destroy(err);
    this.hub.shutdown(
      err instanceof SwitchboardError
        ? err
        : new SwitchboardError(ErrorCode.CLOSED, 'switchboard destroyed', { cause: err }),
    );
  }
}
