/**
 * The API a hot loop needs (docs/guide.md "Hot loops"): `Sender.sendMany`
 * (one promise per batch), `Receiver.take(max)` and `Receiver.batches(max)`
 * (messages in batches), with `trySend` covered beside them. Run over the
 * local path (one switchboard) and over TCP (two switchboards in this
 * process, linked through the test kit's proxies).
 */
import { BatchSendError, ErrorCode, OptionError, SwitchboardError } from '../../lib/index.js';
import type { Sender, Switchboard } from '../../lib/index.js';
import { startLocalCluster } from '../../lib/testing/index.js';
import type { LocalCluster } from '../../lib/testing/index.js';

type Place = 'local' | 'tcp';
const PLACES: Place[] = ['local', 'tcp'];

let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await startLocalCluster({ nodes: 2, options: { heartbeatMs: 200, deadPeerMs: 2000 } });
});
afterAll(async () => {
  await cluster.close();
});

/** Where the receiver lives, and the switchboard the sender is made on. */
function ends(place: Place): { rx: Switchboard; tx: Switchboard; node: number } {
  const rx = cluster.node(0).switchboard;
  const tx = place === 'local' ? rx : cluster.node(1).switchboard;
  return { rx, tx, node: 0 };
}

let n = 0;
const fresh = (what: string): string => `${what}-${++n}`;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe.each(PLACES)('hot-loop API over the %s path', (place) => {
  it('sendMany sends in order and resolves once every value is within the window', async () => {
    const { rx, tx, node } = ends(place);
    const name = fresh('many');
    const r = rx.receiver<number>(name, { window: 8, capacity: 16 });
    const s = tx.sender<number>(name, { node });
    const values = Array.from({ length: 40 }, (_, i) => i);
    let resolved = false;
    const sending = s.sendMany(values).then(() => (resolved = true));
    // 40 values against a capacity of 16: nothing read yet, so the batch waits.
    await new Promise((res) => setTimeout(res, 50));
    expect(resolved).toBe(false);
    const got: number[] = [];
    while (got.length < 40) {
      const batch = await r.take(5, { timeoutMs: 5000 });
      expect(batch.length).toBeGreaterThanOrEqual(1);
      expect(batch.length).toBeLessThanOrEqual(5);
      got.push(...batch);
    }
    await sending;
    expect(resolved).toBe(true);
    expect(got).toEqual(values);
    s.close();
    r.close();
  });

  it('sendMany stops at a value that cannot be sent: BatchSendError with its code and how many went', async () => {
    const { rx, tx, node } = ends(place);
    const name = fresh('bad');
    const r = rx.receiver<unknown>(name);
    const s = tx.sender<unknown>(name, { node });
    const values: unknown[] = [{ a: 0 }, { a: 1 }, { a: 2 }, { a: 3, cb: () => 3 }, { a: 4 }];
    const err = await rejection(s.sendMany(values));
    expect(err).toBeInstanceOf(BatchSendError);
    expect(err).toBeInstanceOf(SwitchboardError);
    const e = err as BatchSendError;
    expect(e.code).toBe(ErrorCode.ENCODE);
    expect(e.sent).toBe(3);
    expect((e.cause as SwitchboardError).code).toBe(ErrorCode.ENCODE);
    expect(e.message).toMatch(/\.cb/);
    // Exactly the first three arrived; the sender still works.
    expect(await r.take(10, { timeoutMs: 2000 })).toEqual([{ a: 0 }, { a: 1 }, { a: 2 }]);
    await s.sendMany([{ a: 5 }]);
    expect(await r.take(10, { timeoutMs: 2000 })).toEqual([{ a: 5 }]);
    await expect(r.take(10, { timeoutMs: 50 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    s.close();
    r.close();
  });

  it('take hands out what is buffered up to max, waits when empty, and loses nothing on a deadline', async () => {
    const { rx, tx, node } = ends(place);
    const name = fresh('take');
    const r = rx.receiver<number>(name);
    const s = tx.sender<number>(name, { node });
    await expect(r.take(0)).rejects.toBeInstanceOf(OptionError);
    await expect(r.take(1.5)).rejects.toBeInstanceOf(OptionError);
    // Nothing there: the deadline passes with ERR_SB_TIMEOUT.
    await expect(r.take(4, { timeoutMs: 30 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    const ac = new AbortController();
    const aborted = r.take(4, { signal: ac.signal });
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: ErrorCode.ABORTED });
    // What arrives after those gave up goes to the next take.
    const waiting = r.take(3);
    await s.sendMany([1, 2, 3, 4, 5, 6, 7]);
    const first = await waiting;
    expect(first.length).toBeGreaterThanOrEqual(1);
    const rest: number[] = [];
    while (first.length + rest.length < 7) {
      const b = await r.take(3, { timeoutMs: 2000 });
      expect(b.length).toBeLessThanOrEqual(3);
      rest.push(...b);
    }
    expect([...first, ...rest]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    s.close();
    r.close();
  });

  it('batches iterates every message in order, in batches of at most max, and ends with the sender', async () => {
    const { rx, tx } = ends(place);
    // An anonymous receiver ends when its one sender closes.
    const [local, r] = rx.channel<number>();
    const s = tx === rx ? local : await shipSender(rx, tx, local);
    const total = 500;
    const sending = (async () => {
      for (let i = 0; i < total; i += 50)
        await s.sendMany(Array.from({ length: 50 }, (_, k) => i + k));
      s.close();
    })();
    const got: number[] = [];
    let batches = 0;
    for await (const batch of r.batches(64)) {
      expect(batch.length).toBeGreaterThanOrEqual(1);
      expect(batch.length).toBeLessThanOrEqual(64);
      batches++;
      got.push(...batch);
    }
    await sending;
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(batches).toBeLessThanOrEqual(total);
    // After the end, take says so with an empty batch.
    expect(await r.take(8)).toEqual([]);
  });

  it('leaving a batches loop early closes the receiver: its sender is told', async () => {
    const { rx, tx, node } = ends(place);
    const name = fresh('early');
    const r = rx.receiver<number>(name);
    const s = tx.sender<number>(name, { node, timeoutMs: 2000 });
    await s.sendMany([1, 2, 3]);
    for await (const batch of r.batches(2)) {
      expect(batch[0]).toBe(1);
      break;
    }
    expect(rx.stats().receivers.some((x) => x.name === name)).toBe(false);
    // The sender learns it once the close reached it (over TCP, a round trip later).
    let err: unknown;
    for (let i = 0; i < 200 && err === undefined; i++) {
      err = await rejection(s.send(i)).catch(() => undefined);
      if (err === undefined) await new Promise((res) => setTimeout(res, 10));
    }
    expect(err).toMatchObject({ code: ErrorCode.NO_RECEIVER });
  });

  it('trySend says false instead of waiting, and true again once the reader took', async () => {
    const { rx, tx, node } = ends(place);
    const name = fresh('try');
    const r = rx.receiver<number>(name, { window: 4, capacity: 4 });
    const s = tx.sender<number>(name, { node });
    await s.send(0); // connected and granted
    let sent = 1;
    for (let i = 0; i < 100 && s.trySend(sent); i++) sent++;
    expect(sent).toBeLessThan(100);
    expect(s.trySend(-1)).toBe(false);
    const got = [...(await r.take(100, { timeoutMs: 2000 }))];
    let more = false;
    for (let i = 0; i < 200 && !more; i++) {
      more = s.trySend(sent);
      if (!more) await new Promise((res) => setTimeout(res, 5));
    }
    expect(more).toBe(true);
    sent++;
    while (got.length < sent) got.push(...(await r.take(100, { timeoutMs: 2000 })));
    expect(got).toEqual(Array.from({ length: sent }, (_, i) => i));
    s.close();
    r.close();
  });
});

/** `s` (a sender made on `rx`) as `tx` gets it: shipped inside a message over the link. */
async function shipSender(
  rx: Switchboard,
  tx: Switchboard,
  s: Sender<number>,
): Promise<Sender<number>> {
  const name = fresh('ship');
  const inbox = tx.receiver<{ to: Sender<number> }>(name);
  const out = rx.sender<{ to: Sender<number> }>(name, { node: 1 });
  await out.send({ to: s });
  const { value } = await inbox.next({ timeoutMs: 5000 });
  out.close();
  inbox.close();
  return value!.to;
}
