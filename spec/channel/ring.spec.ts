import fc from 'fast-check';
import { Ring } from '../../lib/channel/ring.js';

type Op = { op: 'push'; v: number } | { op: 'shift' } | { op: 'discard'; n: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.integer().map((v) => ({ op: 'push' as const, v })) },
  { weight: 3, arbitrary: fc.constant({ op: 'shift' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: -2, max: 40 }).map((n) => ({ op: 'discard' as const, n })),
  },
);

describe('Ring', () => {
  it('behaves as an array queue under any mix of push, shift and discard, across growth and wrap-around', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(opArb, { maxLength: 400 }),
        (cap, ops) => {
          const ring = new Ring<number>(cap);
          const model: number[] = [];
          for (const o of ops) {
            if (o.op === 'push') {
              ring.push(o.v);
              model.push(o.v);
            } else if (o.op === 'shift') {
              expect(ring.shift()).toBe(model.shift());
            } else {
              ring.discard(o.n);
              model.splice(0, Math.max(0, o.n));
            }
            expect(ring.length).toBe(model.length);
            expect(ring.peek()).toBe(model[0]);
          }
          expect(ring.drain()).toEqual(model);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('discard lets go of what it removes (no value stays reachable from the ring)', () => {
    const ring = new Ring<object>(4);
    for (let i = 0; i < 20; i++) ring.push({ i });
    for (let i = 0; i < 10; i++) ring.shift();
    for (let i = 0; i < 10; i++) ring.push({ i }); // wraps around the end
    ring.discard(15);
    const items = (ring as unknown as { items: Array<object | undefined> }).items;
    expect(items.filter((x) => x !== undefined)).toHaveLength(ring.length);
    expect(ring.length).toBe(5);
  });
});
