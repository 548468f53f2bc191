import { firstValueFrom } from 'rxjs';
import type { Switchboard } from '../../../lib/facade.js';
import type { TaskContext, TaskError } from '../../../lib/index.js';
import { closeAll, PATHS, startCluster, until } from '../../support/cluster.js';
import type { Path } from '../../support/cluster.js';

/** Local: one switchboard runs the pusher and every worker. TCP: the pusher on node 0, workers on 1, 2 (and 0). */
async function cluster(path: Path): Promise<Switchboard[]> {
  return startCluster(path === 'local' ? 1 : 3);
}

function on(sbs: readonly Switchboard[], i: number): Switchboard {
  return sbs[i % sbs.length]!;
}

/** A handler whose tasks wait until released, recording what started. */
class Gate {
  readonly started: number[] = [];
  readonly attempts: number[] = [];
  private readonly waiting: Array<() => void> = [];

  readonly handler = (task: number, ctx: TaskContext): Promise<void> => {
    this.started.push(task);
    this.attempts.push(ctx.attempt);
    return new Promise((resolve) => this.waiting.push(resolve));
  };

  get held(): number {
    return this.waiting.length;
  }

  release(n = Number.POSITIVE_INFINITY): void {
    for (let i = 0; i < n && this.waiting.length > 0; i++) this.waiting.shift()!();
  }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe.each(PATHS)('push-pull over the %s path', (path) => {
  it('runs every task once across workers and settles', async () => {
    const sbs = await cluster(path);
    try {
      const done: number[][] = [[], [], []];
      const workers = [0, 1, 2].map((w) =>
        on(sbs, w + 1).worker<number>('jobs', (t) => void done[w]!.push(t), { concurrency: 4 }),
      );
      const pusher = sbs[0]!.pusher<number>('jobs');
      await until(() => pusher.stats().workers === 3, 5000, 'workers seen');
      const n = 600;
      await Promise.all(range(n).map((i) => pusher.push(i)));
      await pusher.settled();
      expect(done.flat().sort((a, b) => a - b)).toEqual(range(n));
      for (const list of done) expect(list.length).toBeGreaterThan(0);
      expect(pusher.stats()).toMatchObject({
        pushed: n,
        completed: n,
        failed: 0,
        inFlight: 0,
        waiting: 0,
      });
      expect(workers.reduce((sum, w) => sum + w.stats().completed, 0)).toBe(n);
      await pusher.close();
    } finally {
      await closeAll(sbs);
    }
  });

  it('hands each task to the least-loaded worker with credit, and waits when none has any', async () => {
    const sbs = await cluster(path);
    try {
      const gates = [new Gate(), new Gate(), new Gate()];
      gates.forEach((g, w) =>
        on(sbs, w + 1).worker('gated', g.handler, { concurrency: 1, prefetch: 1 }),
      );
      const pusher = sbs[0]!.pusher<number>('gated');
      await until(() => pusher.stats().workers === 3, 5000, 'workers seen');
      // Each worker holds at most two (one running, one prefetched): six fit, spread evenly.
      for (let i = 0; i < 6; i++) await pusher.push(i);
      await until(() => gates.every((g) => g.held === 1), 5000, 'one task running per worker');
      let seventh = false;
      const last = pusher.push(6).then(() => (seventh = true));
      await until(() => pusher.stats().waiting === 1, 5000, 'seventh push waiting');
      expect(seventh).toBe(false);
      expect(pusher.stats().inFlight).toBe(6);
      // Free one slot on worker 1: the waiting task goes there, the only one with credit.
      gates[1]!.release(1);
      await last;
      expect(seventh).toBe(true);
      gates[1]!.release(1);
      await until(() => gates[1]!.started.length === 3, 5000, 'worker 1 started the next task');
      expect(gates[1]!.started[2]).toBe(6);
      await until(
        () => {
          for (const g of gates) g.release();
          return pusher.stats().completed === 7;
        },
        5000,
        'all done',
      );
      await pusher.settled();
      expect(gates.map((g) => g.started.length).sort()).toEqual([2, 2, 3]);
    } finally {
      await closeAll(sbs);
    }
  });

  it('keeps a slow worker from being flooded', async () => {
    const sbs = await cluster(path);
    try {
      const slow = new Gate();
      const fast: number[] = [];
      const slowWorker = on(sbs, 1).worker('mixed', slow.handler, { concurrency: 1, prefetch: 1 });
      on(sbs, 2).worker<number>('mixed', (t) => void fast.push(t), { concurrency: 2 });
      on(sbs, 0).worker<number>('mixed', (t) => void fast.push(t), { concurrency: 2 });
      const pusher = sbs[0]!.pusher<number>('mixed');
      await until(() => pusher.stats().workers === 3, 5000, 'workers seen');
      const n = 300;
      await Promise.all(range(n).map((i) => pusher.push(i)));
      // The slow worker holds at most two (running plus prefetched); the others did the rest.
      const slowHolds = (): number => slow.held + slowWorker.stats().queued;
      await until(
        () => pusher.stats().completed + slowHolds() === n,
        5000,
        'fast workers did all the rest',
      );
      expect(slow.started).toHaveLength(1);
      expect(slowHolds()).toBeLessThanOrEqual(2);
      expect(fast).toHaveLength(n - slowHolds());
      await until(
        () => {
          slow.release();
          return pusher.stats().completed === n;
        },
        5000,
        'slow worker done',
      );
      await pusher.settled();
      expect([...fast, ...slow.started].sort((a, b) => a - b)).toEqual(range(n));
    } finally {
      await closeAll(sbs);
    }
  });

  it('reports a failing task as a TaskError, after retrying it when asked', async () => {
    const sbs = await cluster(path);
    try {
      const worker = on(sbs, 1).worker<{ n: number }>('flaky', (t, ctx) => {
        if (t.n === 0 || ctx.attempt === 1) {
          throw Object.assign(new RangeError(`bad ${t.n}`), { code: 'E_BAD' });
        }
      });
      const workerErrors: Error[] = [];
      worker.errors$.subscribe((e) => workerErrors.push(e));
      const pusher = sbs[0]!.pusher<{ n: number }>('flaky', { retries: 1 });
      await until(() => pusher.stats().workers === 1, 5000, 'worker seen');
      const failure = firstValueFrom(pusher.errors$);
      await pusher.push({ n: 0 });
      await pusher.push({ n: 1 });
      await pusher.settled();
      const err = (await failure) as TaskError<{ n: number }>;
      expect(err).toMatchObject({
        code: 'ERR_SB_REMOTE',
        remoteName: 'RangeError',
        remoteCode: 'E_BAD',
        message: 'bad 0',
        node: on(sbs, 1).id,
        task: { n: 0 },
        attempts: 2,
      });
      expect(pusher.stats()).toMatchObject({ completed: 1, failed: 1, retried: 2 });
      expect(workerErrors.map((e) => e.message).sort()).toEqual(['bad 0', 'bad 0', 'bad 1']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('a closing worker hands back what it had not started and finishes the rest', async () => {
    const sbs = await cluster(path);
    try {
      const gate = new Gate();
      const first = on(sbs, 1).worker('handover', gate.handler, { concurrency: 1, prefetch: 2 });
      const pusher = sbs[0]!.pusher<number>('handover');
      await until(() => pusher.stats().workers === 1, 5000, 'worker seen');
      for (let i = 0; i < 3; i++) await pusher.push(i);
      await until(() => gate.held === 1, 5000, 'first task running');
      const second: number[] = [];
      on(sbs, 2).worker<number>('handover', (t) => void second.push(t));
      await until(() => pusher.stats().workers === 2, 5000, 'second worker seen');
      const closed = first.close();
      await until(() => second.length === 2, 5000, 'buffered tasks handed over');
      expect(second.sort()).toEqual([1, 2]);
      gate.release();
      await closed;
      await pusher.settled();
      expect(gate.started).toEqual([0]);
      expect(pusher.stats()).toMatchObject({ completed: 3, redelivered: 2, failed: 0 });
    } finally {
      await closeAll(sbs);
    }
  });

  it('serves several pushers: an idle one does not starve a busy one', async () => {
    const sbs = await cluster(path);
    try {
      const got: number[] = [];
      on(sbs, 1).worker<number>('shared', (t) => void got.push(t), { concurrency: 1 });
      const idle = sbs[0]!.pusher<number>('shared');
      const busy = on(sbs, 2).pusher<number>('shared');
      await until(
        () => idle.stats().workers === 1 && busy.stats().workers === 1,
        5000,
        'worker seen by both',
      );
      await idle.push(-1);
      await idle.settled();
      await Promise.all(range(200).map((i) => busy.push(i)));
      await busy.settled();
      expect(got).toEqual([-1, ...range(200)]);
    } finally {
      await closeAll(sbs);
    }
  });

  it('push() waits for a worker, within its timeout, maxPending and signal', async () => {
    const sbs = await cluster(path);
    try {
      const pusher = sbs[0]!.pusher<number>('later', { timeoutMs: 50, maxPending: 2 });
      await expect(pusher.push(1)).rejects.toMatchObject({ code: 'ERR_SB_TIMEOUT' });
      const ac = new AbortController();
      const a = pusher.push(2, { timeoutMs: 10_000, signal: ac.signal });
      const b = pusher.push(3, { timeoutMs: 10_000 });
      await expect(pusher.push(4)).rejects.toMatchObject({ code: 'ERR_SB_OVERFLOW' });
      ac.abort();
      await expect(a).rejects.toMatchObject({ code: 'ERR_SB_ABORTED' });
      const got: number[] = [];
      on(sbs, 1).worker<number>('later', (t) => void got.push(t));
      await b;
      await pusher.settled();
      expect(got).toEqual([3]);
      // The switchboard's shared pusher, with the same queue.
      await sbs[0]!.push('later', 5);
      await until(() => got.length === 2, 5000, 'shared pusher delivered');
      expect(got).toEqual([3, 5]);
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('push-pull when a worker node dies', () => {
  it('hands the tasks its worker held to another worker: at least once, none lost', async () => {
    const sbs = await startCluster(3, { heartbeatMs: 50, deadPeerMs: 300 });
    try {
      const [pusherNode, doomedNode, survivorNode] = sbs as [Switchboard, Switchboard, Switchboard];
      const held = new Gate();
      const doomed = doomedNode.worker('durable', held.handler, { concurrency: 2, prefetch: 2 });
      const done = new Map<number, number[]>();
      survivorNode.worker<number>(
        'durable',
        (t, ctx) => {
          done.set(t, [...(done.get(t) ?? []), ctx.attempt]);
        },
        { concurrency: 4 },
      );
      const pusher = pusherNode.pusher<number>('durable');
      await until(() => pusher.stats().workers === 2, 5000, 'workers seen');
      const n = 100;
      await Promise.all(range(n).map((i) => pusher.push(i)));
      // The doomed worker holds up to four tasks (two running, two prefetched), never finishing them.
      const doomedHolds = (): number => held.held + doomed.stats().queued;
      await until(
        () => pusher.stats().completed + doomedHolds() === n,
        5000,
        'survivor did the rest',
      );
      const k = doomedHolds();
      expect(k).toBeGreaterThan(0);
      expect(k).toBeLessThanOrEqual(4);
      expect(pusher.stats().inFlight).toBe(k);
      await doomedNode.destroy();
      await pusher.settled();
      // Every task ran at least once; those the dead worker held ran again, as a later attempt.
      expect([...done.keys()].sort((a, b) => a - b)).toEqual(range(n));
      const redone = range(n).filter((t) => done.get(t)![0]! > 1);
      expect(redone).toHaveLength(k);
      expect(redone).toEqual(expect.arrayContaining(held.started));
      expect(pusher.stats()).toMatchObject({
        completed: n,
        redelivered: k,
        failed: 0,
        inFlight: 0,
      });
    } finally {
      await closeAll(sbs);
    }
  });
});
