/**
 * The phi-accrual detector (lib/switchboard/phi.ts): phi against the normal
 * distribution it approximates, its shape, the history it keeps, and the
 * validation of the `failureDetector` and `phi` options.
 */
import fc from 'fast-check';
import { OptionError } from '../../lib/errors.js';
import { resolveOptions } from '../../lib/switchboard/options.js';
import {
  DEFAULT_PHI_OPTIONS,
  IntervalHistory,
  phi,
  PhiAccrual,
  resolvePhiOptions,
} from '../../lib/switchboard/phi.js';

const OK = { nodes: ['127.0.0.1:1', '127.0.0.1:2'], id: 0, secret: 'an-adequately-long-secret' };

/** -log10 of the upper tail of the standard normal at y, for |y| <= 2 (tables). */
const NORMAL_TAIL: Array<[number, number]> = [
  [-1, 0.841345],
  [0, 0.5],
  [0.5, 0.308538],
  [1, 0.158655],
  [1.5, 0.0668072],
  [2, 0.0227501],
];

function optionError(fn: () => unknown): OptionError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OptionError) return err;
    throw err;
  }
  throw new Error('expected an OptionError');
}

describe('phi', () => {
  it.each(NORMAL_TAIL)(
    'y = %d standard deviations past the mean: -log10 of the normal tail',
    (y, tail) => {
      expect(phi(1_000 + 100 * y, 1_000, 100)).toBeCloseTo(-Math.log10(tail), 2);
    },
  );

  it('is log10(2) at the mean, whatever the scale', () => {
    expect(phi(1_000, 1_000, 100)).toBeCloseTo(Math.log10(2), 12);
    expect(phi(7, 7, 0.5)).toBeCloseTo(Math.log10(2), 12);
  });

  it('gives the values of the logistic approximation in the tail (as Akka does)', () => {
    // 3, 4 and 5 standard deviations: 2.909, 4.737, 7.300 (exact: 2.870, 4.499, 6.543).
    expect(phi(1_300, 1_000, 100)).toBeCloseTo(2.9095, 3);
    expect(phi(1_400, 1_000, 100)).toBeCloseTo(4.7367, 3);
    expect(phi(1_500, 1_000, 100)).toBeCloseTo(7.3, 3);
  });

  it('is near 0 long before the mean and Infinity far past it, never NaN', () => {
    expect(phi(0, 4_000, 100)).toBe(0);
    expect(phi(100_000, 1_000, 100)).toBe(Infinity);
    expect(phi(-1e12, 1_000, 1)).toBe(0);
  });

  it('is non-decreasing in the elapsed time', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 60_000, noNaN: true }),
        fc.double({ min: 0, max: 60_000, noNaN: true }),
        fc.double({ min: 1, max: 10_000, noNaN: true }),
        fc.double({ min: 1, max: 5_000, noNaN: true }),
        (a, b, mean, sd) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const p = phi(lo, mean, sd);
          const q = phi(hi, mean, sd);
          expect(Number.isNaN(p) || Number.isNaN(q)).toBe(false);
          expect(q).toBeGreaterThanOrEqual(p - 1e-12);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe('IntervalHistory', () => {
  it('keeps mean and standard deviation of the last max samples', () => {
    const h = new IntervalHistory(3);
    for (const x of [100, 200, 300]) h.add(x);
    expect(h.mean).toBe(200);
    expect(h.stdDev).toBeCloseTo(Math.sqrt(20_000 / 3), 9);
    h.add(400); // 100 goes
    expect(h.size).toBe(3);
    expect(h.mean).toBe(300);
    h.add(400);
    h.add(400);
    expect(h.mean).toBe(400);
    expect(h.stdDev).toBe(0);
  });
});

describe('PhiAccrual', () => {
  const settings = DEFAULT_PHI_OPTIONS;

  it('starts from two seeds a quarter either side of the expected interval', () => {
    const d = new PhiAccrual(settings, 1_000);
    expect(d.samples).toBe(2);
    expect(d.meanMs).toBe(1_000);
    expect(d.stdDevMs).toBe(250);
    // Mean plus the acceptable pause: phi is log10(2) at 4 s of silence.
    expect(d.phi(4_000)).toBeCloseTo(Math.log10(2), 12);
  });

  it('learns from heartbeats and floors the standard deviation at minStdDevMs', () => {
    const d = new PhiAccrual({ ...settings, maxSamples: 10 }, 1_000);
    for (let i = 0; i <= 20; i++) d.heartbeat(10_000 + i * 1_000);
    expect(d.samples).toBe(10);
    expect(d.meanMs).toBe(1_000);
    expect(d.stdDevMs).toBe(100);
    expect(d.phi(4_100)).toBeCloseTo(0.7995, 3);
    const wide = new PhiAccrual({ ...settings, minStdDevMs: 400, maxSamples: 10 }, 1_000);
    for (let i = 0; i <= 20; i++) wide.heartbeat(i * 1_000);
    expect(wide.stdDevMs).toBe(400);
    // The same silence is less alarming with the wider floor.
    expect(wide.phi(5_000)).toBeLessThan(d.phi(5_000));
  });

  it('rates the same silence lower after irregular heartbeats', () => {
    const steady = new PhiAccrual(settings, 1_000);
    const jittery = new PhiAccrual(settings, 1_000);
    let t = 0;
    for (let i = 0; i < 200; i++) {
      steady.heartbeat(i * 1_000);
      t += i % 10 === 9 ? 2_000 : 900; // a 1 s pause every 10 beats
      jittery.heartbeat(t);
    }
    expect(jittery.stdDevMs).toBeGreaterThan(300);
    // 5 s of silence: about 3 standard deviations past 1 s + the 3 s pause for
    // the jittery peer, beyond 8 for the steady one (floored at 100 ms).
    expect(jittery.phi(5_000)).toBeLessThan(3);
    expect(steady.phi(5_000)).toBeGreaterThan(8);
  });

  it('takes no sample from an arrival under half an interval, nor across a restart', () => {
    const d = new PhiAccrual({ ...settings, maxSamples: 100 }, 1_000);
    d.heartbeat(0);
    d.heartbeat(100); // an extra PING: ignored
    d.heartbeat(1_000);
    expect(d.samples).toBe(3);
    d.restart();
    d.heartbeat(60_000); // after a reconnect: no 59 s interval
    d.heartbeat(61_000);
    expect(d.samples).toBe(4);
    expect(d.meanMs).toBe(1_000);
  });
});

describe('failure detector options', () => {
  it("defaults to the timeout, with Akka's phi settings resolved", () => {
    const o = resolveOptions(OK);
    expect(o.failureDetector).toBe('timeout');
    expect(o.phi).toEqual({
      threshold: 8,
      suspectThreshold: 1,
      minStdDevMs: 100,
      acceptablePauseMs: 3_000,
      maxSamples: 1_000,
    });
  });

  it('takes phi settings field by field over the defaults', () => {
    const o = resolveOptions({ ...OK, failureDetector: 'phi', phi: { threshold: 10 } });
    expect(o.failureDetector).toBe('phi');
    expect(o.phi).toEqual({ ...DEFAULT_PHI_OPTIONS, threshold: 10 });
  });

  it.each([
    [{ failureDetector: 'gossip' }, 'failureDetector', /'timeout' or 'phi'/],
    [{ phi: {} }, 'phi', /only with failureDetector: 'phi'/],
    [{ failureDetector: 'phi', phi: 8 }, 'phi', /must be an object/],
    [{ failureDetector: 'phi', phi: { threshold: 0 } }, 'phi.threshold', /> 0/],
    [{ failureDetector: 'phi', phi: { threshold: NaN } }, 'phi.threshold', /> 0/],
    [{ failureDetector: 'phi', phi: { suspectThreshold: 8 } }, 'phi.suspectThreshold', /below/],
    [{ failureDetector: 'phi', phi: { minStdDevMs: 0 } }, 'phi.minStdDevMs', />= 1/],
    [{ failureDetector: 'phi', phi: { acceptablePauseMs: -1 } }, 'phi.acceptablePauseMs', />= 0/],
    [{ failureDetector: 'phi', phi: { maxSamples: 1.5 } }, 'phi.maxSamples', /integer >= 2/],
  ])('refuses %j (%s)', (change, option, message) => {
    const err = optionError(() => resolveOptions({ ...OK, ...change } as typeof OK));
    expect(err.option).toBe(option);
    expect(err.message).toMatch(message);
  });

  it('refuses an unknown phi field, naming the nearest', () => {
    const err = optionError(() => resolvePhiOptions({ treshold: 9 } as never));
    expect(err.option).toBe('phi.treshold');
    expect(err.suggestion).toBe('phi.threshold');
    const top = optionError(() => resolveOptions({ ...OK, failureDetecter: 'phi' } as never));
    expect(top.suggestion).toBe('failureDetector');
  });
});
