/**
 * The phi-accrual failure detector (Hayashibara, Défago, Yared and Katayama,
 * "The phi accrual failure detector", 2004), as Akka's cluster uses it:
 * instead of a yes/no timeout it says how unlikely the present silence is,
 * given the intervals at which the peer's heartbeats have been arriving.
 *
 *     phi(t) = -log10(P(the next heartbeat comes later than t))
 *
 * where t is the time since the peer was last heard from and the intervals
 * are taken as normally distributed, with mean the observed mean plus an
 * acceptable pause (a GC or a busy event loop the peer is allowed without
 * being suspected) and standard deviation the observed one, never below a
 * floor. phi = 1 means a 10 % chance the peer is merely late, phi = 8 one
 * in 10^8. The normal tail uses the logistic approximation Akka uses,
 * 1 / (1 + exp(-y (1.5976 + 0.070566 y^2))) for y standard deviations past
 * the mean: within 1.4e-4 of the exact probability everywhere, so phi is
 * exact to two decimals up to y = 2; further out it overstates phi (8 is
 * reached at y = 5.2 rather than 5.6), as Akka's does.
 *
 * Pure: no clock, no timers. The cluster (cluster.ts) feeds it the peer's
 * heartbeat arrival times and asks for phi on its heartbeat tick.
 */
import { OptionError } from '../errors.js';
import { checkOptionNames } from '../options.js';

/** Settings of the phi-accrual detector (the `phi` option). Times in ms. */
export interface PhiOptions {
  /** phi at which a peer is declared down (never before `deadPeerMs` of silence). Default 8. */
  readonly threshold?: number;
  /** phi at which a peer turns suspect; below `threshold`. Default 1. */
  readonly suspectThreshold?: number;
  /** Floor of the standard deviation of heartbeat intervals. Default 100. */
  readonly minStdDevMs?: number;
  /** Silence allowed on top of the mean interval before phi rises. Default 3000. */
  readonly acceptablePauseMs?: number;
  /** Heartbeat intervals kept (the oldest go first). Default 1000. */
  readonly maxSamples?: number;
}

/** The resolved {@link PhiOptions}. */
export type PhiSettings = { readonly [K in keyof PhiOptions]-?: number };

/**
 * Akka's defaults (threshold 8, min std deviation 100 ms, acceptable
 * heartbeat pause 3 s, 1000 samples); suspicion at phi 1, a 10 % chance
 * that the peer is only late (docs/failure-detection.md).
 */
export const DEFAULT_PHI_OPTIONS: PhiSettings = Object.freeze({
  threshold: 8,
  suspectThreshold: 1,
  minStdDevMs: 100,
  acceptablePauseMs: 3_000,
  maxSamples: 1_000,
});

const PHI_OPTION_KEYS: { readonly [K in keyof PhiOptions]-?: true } = {
  threshold: true,
  suspectThreshold: true,
  minStdDevMs: true,
  acceptablePauseMs: true,
  maxSamples: true,
};

/** Every option name of {@link PhiOptions}. */
export const PHI_OPTION_NAMES: readonly string[] = Object.freeze(Object.keys(PHI_OPTION_KEYS));

/**
 * phi for a silence of `elapsedMs` when heartbeat intervals have mean
 * `meanMs` and standard deviation `stdDevMs` (> 0). Non-decreasing in
 * `elapsedMs`; `Infinity` once the tail probability underflows.
 */
export function phi(elapsedMs: number, meanMs: number, stdDevMs: number): number {
  const y = (elapsedMs - meanMs) / stdDevMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  // Two forms of the same value, each exact where the other loses digits:
  // the tail e / (1 + e) for a late heartbeat, 1 - 1 / (1 + e) for an early one.
  // Math.max also turns the -0 of -log10(1) into 0.
  return Math.max(0, elapsedMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e)));
}

/** The last `max` heartbeat intervals, with their running sum and sum of squares. */
export class IntervalHistory {
  private readonly samples: Float64Array;
  private next = 0;
  private count = 0;
  private sum = 0;
  private squares = 0;

  constructor(readonly max: number) {
    this.samples = new Float64Array(max);
  }

  get size(): number {
    return this.count;
  }

  add(interval: number): void {
    if (this.count === this.max) {
      const old = this.samples[this.next]!;
      this.sum -= old;
      this.squares -= old * old;
    } else {
      this.count++;
    }
    this.samples[this.next] = interval;
    this.next = (this.next + 1) % this.max;
    this.sum += interval;
    this.squares += interval * interval;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Population standard deviation (0 with fewer than two samples). */
  get stdDev(): number {
    if (this.count < 2) return 0;
    const mean = this.mean;
    // The running sums can leave a tiny negative variance behind: clamp.
    return Math.sqrt(Math.max(0, this.squares / this.count - mean * mean));
  }
}

/**
 * One peer's detector. `heartbeat(at)` records an arrival; `phi(elapsed)`
 * rates a silence. Seeded, as Akka does, with two intervals one quarter
 * either side of the expected heartbeat interval, so phi means something
 * from the first heartbeat on.
 */
export class PhiAccrual {
  private readonly history: IntervalHistory;
  private last: number | undefined;

  constructor(
    readonly settings: PhiSettings,
    /** The interval heartbeats are expected at (the peer's `heartbeatMs`). */
    readonly expectedMs: number,
  ) {
    this.history = new IntervalHistory(Math.max(2, settings.maxSamples));
    const spread = expectedMs / 4;
    this.history.add(expectedMs - spread);
    this.history.add(expectedMs + spread);
  }

  /** Heartbeat intervals recorded, the two seeds included (at most `maxSamples`). */
  get samples(): number {
    return this.history.size;
  }

  /** Mean of the recorded intervals, ms. */
  get meanMs(): number {
    return this.history.mean;
  }

  /** Standard deviation phi uses: the recorded one, never below `minStdDevMs`. */
  get stdDevMs(): number {
    return Math.max(this.history.stdDev, this.settings.minStdDevMs);
  }

  /**
   * A heartbeat arrived at `at` (ms, any monotonic clock). An arrival sooner
   * than half the expected interval after the last one is not a sample (the
   * extra PINGs a link sends to ask for an acknowledgement or a
   * confirmation), so a busy link does not shrink the mean.
   */
  heartbeat(at: number): void {
    const last = this.last;
    if (last !== undefined) {
      const interval = at - last;
      if (interval < this.expectedMs / 2) return;
      this.history.add(interval);
    }
    this.last = at;
  }

  /** The link was down: the gap until the next heartbeat is no interval. */
  restart(): void {
    this.last = undefined;
  }

  /** phi after `elapsedMs` of silence. */
  phi(elapsedMs: number): number {
    return phi(elapsedMs, this.history.mean + this.settings.acceptablePauseMs, this.stdDevMs);
  }
}

/**
 * Validates the `phi` option (its names first, as every option's are),
 * filling in {@link DEFAULT_PHI_OPTIONS}.
 * @throws OptionError (`ERR_SB_INVALID_OPTION`) naming the bad field as `phi.<name>`.
 */
export function resolvePhiOptions(options: PhiOptions | undefined): PhiSettings {
  if (options === undefined) return DEFAULT_PHI_OPTIONS;
  if (typeof options !== 'object' || options === null)
    throw new OptionError('phi', 'must be an object { threshold, suspectThreshold, ... }');
  checkOptionNames(options, PHI_OPTION_NAMES, 'phi');
  /** `positive`: above `min`; otherwise at least `min` (and whole for `integer`). */
  const num = (key: keyof PhiOptions, min: number, kind: 'positive' | 'at-least' | 'integer') => {
    const value = options[key] ?? DEFAULT_PHI_OPTIONS[key];
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (kind === 'positive' ? value > min : value >= min) &&
      (kind !== 'integer' || Number.isInteger(value));
    if (!ok) {
      const what = kind === 'integer' ? 'an integer' : 'a number';
      const bound = kind === 'positive' ? `> ${min}` : `>= ${min}`;
      throw new OptionError(`phi.${key}`, `must be ${what} ${bound}, got ${String(value)}`);
    }
    return value;
  };
  const settings: PhiSettings = {
    threshold: num('threshold', 0, 'positive'),
    suspectThreshold: num('suspectThreshold', 0, 'positive'),
    minStdDevMs: num('minStdDevMs', 1, 'at-least'),
    acceptablePauseMs: num('acceptablePauseMs', 0, 'at-least'),
    maxSamples: num('maxSamples', 2, 'integer'),
  };
  if (settings.suspectThreshold >= settings.threshold) {
    throw new OptionError(
      'phi.suspectThreshold',
      `must be below phi.threshold (${settings.threshold}), got ${settings.suspectThreshold}`,
    );
  }
  return Object.freeze(settings);
}
