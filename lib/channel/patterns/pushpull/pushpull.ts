/**
 * Push-pull (work queues) for one switchboard (docs/guide.md, "Push-pull"):
 * its workers and pushers. Task ownership and redelivery are this
 * pattern's concern (./pusher.ts); streams, credit and peer loss are the
 * core's.
 */
import type { SwitchboardError } from '../../../errors.js';
import type { ChannelHub } from '../../hub.js';
import { Pusher } from './pusher.js';
import type { PushOptions, PusherOptions, TaskHandler, WorkerOptions } from './task.js';
import { Worker } from './worker.js';

export class PushPull {
  private readonly shared = new Map<string, Pusher<unknown>>();
  private readonly pushers = new Set<Pusher<unknown>>();
  private readonly workers = new Set<Worker<unknown>>();

  constructor(private readonly hub: ChannelHub) {}

  /** A worker of queue `name` running `handler`. */
  worker<T>(name: string, handler: TaskHandler<T>, options?: WorkerOptions<T>): Worker<T> {
    const w = new Worker<T>(this.hub, name, handler, options);
    this.workers.add(w as Worker<unknown>);
    return w;
  }

  /** A pusher to queue `name`. */
  pusher<T>(name: string, options?: PusherOptions<T>): Pusher<T> {
    const p = new Pusher<T>(this.hub, name, options, (x) =>
      this.pushers.delete(x as Pusher<unknown>),
    );
    this.pushers.add(p as Pusher<unknown>);
    return p;
  }

  /** Pushes with this switchboard's shared pusher of queue `name` (default options). */
  push<T>(name: string, task: T, options?: PushOptions): Promise<void> {
    let p = this.shared.get(name);
    if (p === undefined) {
      p = this.pusher<unknown>(name);
      this.shared.set(name, p);
    }
    return p.push(task, options);
  }

  /** The shared pusher of queue `name`, if {@link push} created one. */
  sharedPusher(name: string): Pusher<unknown> | undefined {
    return this.shared.get(name);
  }

  /**
   * Graceful close: workers stop taking tasks and finish the running ones,
   * pushers wait for their tasks' acknowledgements, at most until `deadline`.
   */
  async drain(deadline: number): Promise<void> {
    const left = deadline - performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>(
      (resolve) => (timer = setTimeout(resolve, Math.max(0, left))),
    );
    await Promise.race([
      Promise.all([
        ...[...this.workers].map((w) => w.close()),
        ...[...this.pushers].map((p) => p.drain(deadline)),
      ]),
      timeout,
    ]);
    clearTimeout(timer);
  }

  /** The switchboard closed: running tasks are aborted, pushers report what was not acknowledged. */
  shutdown(reason: SwitchboardError): void {
    for (const w of this.workers) w.abort(reason);
    for (const p of [...this.pushers]) p.shutdown();
  }
}
