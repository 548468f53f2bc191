import { Picker } from '../../lib/channel/picker.js';

interface C {
  readonly node: number;
  readonly load: number;
  readonly ok: boolean;
}

const all = (c: C): boolean => c.ok;
const loadOf = (c: C): number => c.load;

function counts(
  p: Picker,
  cs: C[],
  strategy: 'least-loaded' | 'round-robin' | 'random',
  n: number,
) {
  const out: Record<number, number> = {};
  for (let i = 0; i < n; i++) {
    const c = p.pick(cs, strategy, all, loadOf);
    if (c !== undefined) out[c.node] = (out[c.node] ?? 0) + 1;
  }
  return out;
}

describe('Picker', () => {
  const healthyAll = { healthy: () => true };

  it('round-robin takes turns among the eligible only (ineligible ones skew nothing)', () => {
    const cs: C[] = [
      { node: 1, load: 0, ok: true },
      { node: 2, load: 0, ok: true },
      { node: 3, load: 0, ok: false },
    ];
    expect(counts(new Picker(healthyAll), cs, 'round-robin', 60)).toEqual({ 1: 30, 2: 30 });
  });

  it('least-loaded takes the smallest load, ties in turn', () => {
    const cs: C[] = [
      { node: 1, load: 2, ok: true },
      { node: 2, load: 1, ok: true },
      { node: 3, load: 1, ok: true },
      { node: 4, load: 0, ok: false },
    ];
    expect(counts(new Picker(healthyAll), cs, 'least-loaded', 40)).toEqual({ 2: 20, 3: 20 });
  });

  it('random reaches every eligible candidate and nothing else', () => {
    const cs: C[] = [
      { node: 1, load: 0, ok: true },
      { node: 2, load: 0, ok: true },
      { node: 3, load: 0, ok: false },
    ];
    const got = counts(new Picker(healthyAll), cs, 'random', 400);
    expect(Object.keys(got).sort()).toEqual(['1', '2']);
  });

  it.each(['least-loaded', 'round-robin', 'random'] as const)(
    '%s skips suspect nodes while a healthy one is eligible, and falls back to them only then',
    (strategy) => {
      const suspect = new Set([2]);
      const p = new Picker({ healthy: (n) => !suspect.has(n) });
      const cs: C[] = [
        { node: 1, load: 5, ok: true },
        { node: 2, load: 0, ok: true },
      ];
      expect(counts(p, cs, strategy, 20)).toEqual({ 1: 20 });
      cs[0] = { node: 1, load: 5, ok: false };
      expect(counts(p, cs, strategy, 5)).toEqual({ 2: 5 });
    },
  );

  it('returns undefined when nothing is eligible', () => {
    const p = new Picker(healthyAll);
    expect(p.pick([], 'least-loaded', all, loadOf)).toBeUndefined();
    expect(p.pick([{ node: 1, load: 0, ok: false }], 'round-robin', all, loadOf)).toBeUndefined();
  });
});
