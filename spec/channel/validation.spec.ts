import type { StandardResult, StandardSchemaV1 } from '../../lib/channel/schema.js';
import type { Sender } from '../../lib/channel/sender.js';
import type { SwitchboardError } from '../../lib/errors.js';
import type { SwitchboardEvent } from '../../lib/switchboard/events.js';
import { closeAll, pathCluster, PATHS, clusterOf } from '../support/cluster.js';
import type { Path } from '../support/cluster.js';
import { receive as take } from './fixtures/receive.js';

/**
 * Validators (Standard Schema) and undecodable payloads: a bad message is an
 * error of that channel (the receiver's `errors$`, or the sender's rejected
 * promise), never a crash, and the channel keeps working.
 */

interface Order {
  readonly id: number;
  readonly qty: number;
}

/** A hand-written Standard Schema: `{ id: integer, qty: positive number }`. */
function schema<O = Order>(
  validate: (v: unknown) => StandardResult<O> | Promise<StandardResult<O>> = (v) =>
    checkOrder(v) as StandardResult<O>,
): StandardSchemaV1<unknown, O> {
  return { '~standard': { version: 1, vendor: 'spec', validate } };
}

function checkOrder(v: unknown): StandardResult<Order> {
  const o = v as Partial<Order> | null;
  const issues: Array<{ message: string; path?: string[] }> = [];
  if (typeof o !== 'object' || o === null) return { issues: [{ message: 'not an object' }] };
  if (!Number.isInteger(o.id)) issues.push({ message: 'id must be an integer', path: ['id'] });
  if (typeof o.qty !== 'number' || !(o.qty > 0))
    issues.push({ message: 'qty must be positive', path: ['qty'] });
  return issues.length > 0 ? { issues } : { value: { id: o.id!, qty: o.qty! } };
}

describe.each(PATHS)('validators over the %s path', (path: Path) => {
  it('a message the receiver refuses is an error on its errors$; the next good one arrives', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<Order>('orders', { schema: schema(), window: 8, capacity: 16 });
      const errors: SwitchboardError[] = [];
      r.errors$.subscribe((e) => errors.push(e));
      // The sender has no validator: anything goes out.
      const s = tx.sender<unknown>('orders', { node: rx.id });
      await s.send({ id: 1, qty: 2 });
      await s.send({ id: 'x', qty: -1 });
      await s.send('not even an object');
      // More refused messages than the credit window: refusals must return credit too.
      for (let i = 0; i < 40; i++) await s.send({ id: i, qty: 0 });
      await s.send({ id: 2, qty: 5 });
      expect(await take(r, 2)).toEqual([
        { id: 1, qty: 2 },
        { id: 2, qty: 5 },
      ]);
      expect(errors).toHaveLength(42);
      expect(errors.every((e) => e.code === 'ERR_SB_VALIDATION')).toBe(true);
      expect(errors[0]!.message).toContain('id must be an integer');
      expect(errors[0]!.message).toContain('qty must be positive');
      expect(r.stats()).toMatchObject({ invalid: 42, delivered: 2, queued: 0 });
      expect(r.closed).toBe(false);
    } finally {
      await closeAll(sbs);
    }
  });

  it("the receiver gets the validator's output (a transforming schema)", async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const upper = schema<string>((v) =>
        typeof v === 'string' ? { value: v.toUpperCase() } : { issues: [{ message: 'string' }] },
      );
      const r = rx.receiver<string>('shout', { schema: upper });
      const s = tx.sender<string>('shout', { node: rx.id });
      await s.send('hello');
      expect(await take(r, 1)).toEqual(['HELLO']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('a validator that throws or is asynchronous refuses that message with a typed error', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const odd = schema<unknown>((v) => {
        if (v === 'throw') throw new TypeError('bug in the validator');
        if (v === 'async') return Promise.reject(new Error('async and failing'));
        return { value: v };
      });
      const r = rx.receiver<unknown>('odd', { schema: odd });
      const errors: SwitchboardError[] = [];
      r.errors$.subscribe((e) => errors.push(e));
      const s = tx.sender<unknown>('odd', { node: rx.id });
      for (const v of ['throw', 'async', 'fine']) await s.send(v);
      expect(await take(r, 1)).toEqual(['fine']);
      expect(errors.map((e) => e.code)).toEqual(['ERR_SB_VALIDATION', 'ERR_SB_VALIDATION']);
      expect(errors[0]!.cause).toBeInstanceOf(TypeError);
      expect(errors[1]!.message).toContain('asynchronous validators are not supported');

      // The same validator on a sender: send() rejects, post() counts a drop.
      const checked = tx.sender<unknown>('odd', { node: rx.id, schema: odd });
      await expect(checked.send('throw')).rejects.toMatchObject({ code: 'ERR_SB_VALIDATION' });
      await expect(checked.send('async')).rejects.toMatchObject({ code: 'ERR_SB_VALIDATION' });
      await checked.send('still fine');
      expect(await take(r, 1)).toEqual(['still fine']);
    } finally {
      await closeAll(sbs);
    }
  });

  it('a sender-side validator rejects with ERR_SB_VALIDATION and nothing is sent', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const r = rx.receiver<Order>('checked');
      const s: Sender<Order> = tx.sender<Order>('checked', { node: rx.id, schema: schema() });
      await expect(s.send({ id: 1.5, qty: 1 })).rejects.toMatchObject({
        code: 'ERR_SB_VALIDATION',
        issues: [{ message: 'id must be an integer' }],
      });
      s.post({ id: 1, qty: -3 });
      expect(s.dropped).toBe(1);
      expect(s.closed).toBe(false);
      await s.send({ id: 7, qty: 1 });
      expect(await take(r, 1)).toEqual([{ id: 7, qty: 1 }]);
      expect(r.stats()).toMatchObject({ received: 1, invalid: 0 });
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('undecodable payloads (TCP path)', () => {
  it('are errors on that channel only: the link, other channels and the next message are fine', async () => {
    const { sbs, rx, tx } = await pathCluster('tcp');
    try {
      const events: SwitchboardEvent[] = [];
      for (const sb of sbs) sb.events$.subscribe((e) => events.push(e));
      const r = rx.receiver<unknown>('fragile');
      const other = rx.receiver<number>('other');
      const errors: SwitchboardError[] = [];
      r.errors$.subscribe((e) => errors.push(e));
      const s = tx.sender<unknown>('fragile', { node: rx.id });
      const o = tx.sender<number>('other', { node: rx.id });
      await s.send('first');
      expect(await take(r, 1)).toEqual(['first']);

      // 1. Encodable, but nested deeper than the decoder accepts (CBOR depth limit).
      let deep: unknown = 'bottom';
      for (let i = 0; i < 200; i++) deep = [deep];
      await s.send(deep);
      // 2. Raw garbage injected into the sender's own stream, under the channel layer.
      const stream = (s.outlets[0] as unknown as { stream: number }).stream;
      clusterOf(tx).sendMessage(rx.id, stream, 0, Buffer.from([0xff, 0xfe, 0x1c, 0x00]));
      await o.send(1);
      await s.send('after');

      expect(await take(r, 1)).toEqual(['after']);
      expect(await take(other, 1)).toEqual([1]);
      expect(errors.map((e) => e.code)).toEqual(['ERR_SB_DECODE', 'ERR_SB_DECODE']);
      expect(r.stats()).toMatchObject({ invalid: 2 });
      // The link was never dropped over it.
      expect(events.filter((e) => e.type !== 'drop').map((e) => e.type)).toEqual([]);
      expect(tx.peers()[0]!.state).toBe('up');
    } finally {
      await closeAll(sbs);
    }
  });
});
