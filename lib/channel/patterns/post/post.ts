/**
 * Fire-and-forget: `post(name, value, target)` without managing a sender.
 *
 * Each target gets one cached `Sender` used only with `post()`, so its
 * messages stay in order and share one stream. `post()` never throws and
 * never waits: a message that cannot go out at once waits in the sender's
 * bounded queue (`maxPending`, default 1024) for credit or for its peer; a
 * message that cannot be delivered (queue full, receiver gone, its node's
 * session ended while the message was in flight, invalid target or value)
 * is counted in the switchboard's `stats().drops` and reported as a `drop`
 * event on `events$`.
 */
import type { ChannelHub } from '../../hub.js';
import type { PostOptions, Sender } from '../../sender.js';

/** Where a post goes: the named receiver on `node`, or the MPMC channel `name` (`one` receiver or `all`). */
export type PostTarget = { readonly node: number } | { readonly mode: 'one' | 'all' };

/** Cached senders at most; the least recently created is closed beyond (its queued posts still go out). */
const MAX_CACHED = 1024;

/** The switchboard's fire-and-forget posts. */
export class Poster {
  private readonly senders = new Map<string, Sender<unknown>>();

  constructor(private readonly hub: ChannelHub) {}

  /** Posts `value` to `name` on `target`; see the module comment. Never throws. */
  post(name: string, value: unknown, target: PostTarget, options?: PostOptions): void {
    const byNode = typeof target === 'object' && target !== null && 'node' in target;
    const key = byNode ? `n:${target.node}:${name}` : `${String(target?.mode)}:${name}`;
    let s = this.senders.get(key);
    if (s === undefined || s.closed) {
      try {
        s = byNode
          ? this.hub.sender<unknown>({ node: target.node, name })
          : this.hub.mpmcSender<unknown>(name, (target as { mode: 'one' | 'all' }).mode);
      } catch (err) {
        this.hub.reportDrop(String(name), 1, `cannot post: ${(err as Error).message}`);
        return;
      }
      s.user = true;
      this.senders.delete(key);
      this.senders.set(key, s);
      if (this.senders.size > MAX_CACHED) {
        const [oldest, old] = this.senders.entries().next().value as [string, Sender<unknown>];
        this.senders.delete(oldest);
        old.close();
      }
    }
    s.post(value, options);
  }
}
