import { firstValueFrom, toArray } from 'rxjs';
import { Queue } from '../../lib/channel/queue.js';
import type { QueueOwner } from '../../lib/channel/queue.js';
import { Timeouts } from '../../lib/channel/waits.js';

/** A queue whose owner records what left, and holds the items of sources in `held`. */
function makeQueue(): {
  q: Queue<number, string>;
  o: { readonly taken: string[]; readonly held: Set<string> };
  t: Timeouts;
} {
  const o = { taken: [] as string[], held: new Set<string>() };
  const owner: QueueOwner<string> = {
    taken: (s) => void o.taken.push(s),
    ready: (s) => !o.held.has(s),
    returned: () => undefined,
  };
  const t = new Timeouts();
  return { q: new Queue<number, string>('test queue', owner, t), o, t };
}

describe('Queue', () => {
  it('hands items out in order, to waiting consumers first, and ends after the buffer', async () => {
    const { q, o, t } = makeQueue();
    const waiting = q.next();
    q.push(1, 'a', 10, true);
    q.push(2, 'a', 20, true);
    expect(q.queuedBytes).toBe(20);
    q.end();
    expect(await waiting).toEqual({ value: 1, done: false });
    expect(await q.next()).toEqual({ value: 2, done: false });
    expect(await q.next()).toEqual({ value: undefined, done: true });
    expect(o.taken).toEqual(['a', 'a']);
    t.clear();
  });

  it('a receive with a deadline times out with ERR_SB_TIMEOUT and loses nothing', async () => {
    const { q, t } = makeQueue();
    await expect(q.next({ timeoutMs: 20 })).rejects.toMatchObject({ code: 'ERR_SB_TIMEOUT' });
    q.push(7, 'a', 0, true);
    expect(await q.next()).toEqual({ value: 7, done: false });
    t.clear();
  });

  it('a receive aborted by its signal rejects with ERR_SB_ABORTED and loses nothing', async () => {
    const { q, t } = makeQueue();
    const ac = new AbortController();
    const pending = q.next({ signal: ac.signal });
    const later = q.next();
    ac.abort(new Error('enough'));
    await expect(pending).rejects.toMatchObject({ code: 'ERR_SB_ABORTED' });
    q.push(8, 'a', 0, true);
    expect(await later).toEqual({ value: 8, done: false });
    await expect(q.next({ signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_SB_ABORTED' });
    t.clear();
  });

  it('holds the items of a source that is not ready, and lets the others go first', async () => {
    const { q, o, t } = makeQueue();
    o.held.add('stale');
    q.push(1, 'stale', 0, false);
    q.push(2, 'fresh', 0, true);
    expect(await q.next()).toEqual({ value: 2, done: false });
    const waiting = q.next();
    o.held.delete('stale');
    q.release();
    expect(await waiting).toEqual({ value: 1, done: false });
    t.clear();
  });

  it('removes the items of one source (what a lost session left behind)', async () => {
    const { q, t } = makeQueue();
    q.push(1, 'a', 1, true);
    q.push(2, 'b', 2, true);
    q.push(3, 'a', 3, true);
    expect(q.remove((s) => s === 'a').map((e) => e.value)).toEqual([1, 3]);
    expect(q.length).toBe(1);
    expect(q.queuedBytes).toBe(2);
    expect(await q.next()).toEqual({ value: 2, done: false });
    t.clear();
  });

  it('an Observable gets the buffered items, then the rest, and completes at the end', async () => {
    const { q, t } = makeQueue();
    q.push(1, 'a', 0, true);
    const all = firstValueFrom(q.observable().pipe(toArray()));
    q.push(2, 'a', 0, true);
    q.end();
    expect(await all).toEqual([1, 2]);
    t.clear();
  });

  it('fails its consumers with the failure once the buffer is empty, or at once with drop', async () => {
    const { q, t } = makeQueue();
    q.push(1, 'a', 0, true);
    q.fail(Object.assign(new Error('x'), { code: 'ERR_SB_CLOSED' }) as never);
    expect(await q.next()).toEqual({ value: 1, done: false });
    await expect(q.next()).rejects.toMatchObject({ code: 'ERR_SB_CLOSED' });
    t.clear();
  });

  it('refuses an Observable and next() at once', async () => {
    const { q, t } = makeQueue();
    const sub = q.observable().subscribe(() => undefined);
    await expect(q.next()).rejects.toMatchObject({ code: 'ERR_SB_INTERNAL' });
    sub.unsubscribe();
    t.clear();
  });
});
