/**
 * Every observation of a delivery-contract scenario, from every end (this
 * process and the children), with waits on them that always end and that
 * fail with the recent observations and what the scene adds (its cluster).
 */
import type { Obs, ObsOf } from './protocol.js';

/** Every observation of a scenario, with waits on them that always end. */
export class Recorder {
  readonly all: Obs[] = [];
  private readonly listeners = new Set<() => void>();
  /** Extra context for a failed wait (the children's output). */
  private readonly context: Array<() => string> = [];

  push(o: Obs): void {
    this.all.push(o);
    for (const l of [...this.listeners]) l();
  }

  /** Adds what a failed wait should print. */
  describeWith(f: () => string): void {
    this.context.push(f);
  }

  of<K extends Obs['t']>(t: K, pred: (o: ObsOf<K>) => boolean = () => true): Array<ObsOf<K>> {
    return this.all.filter((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>));
  }

  /**
   * Resolves once `cond()` holds, checked now, at each new observation and
   * every 5 ms;
   * rejects after `ms` with `what`, the recent observations and the
   * children's output.
   */
  until(cond: () => boolean, what: string, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok: boolean;
        try {
          ok = cond();
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (!ok) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${this.describe()}`));
      }, ms);
      // Also polled: a condition may read state that no observation announces (peers()).
      const poll = setInterval(check, 5);
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Resolves with the first observation of kind `t` matching `pred` (seen already, or to come). */
  async first<K extends Obs['t']>(
    t: K,
    pred: (o: ObsOf<K>) => boolean,
    what: string,
    ms: number,
  ): Promise<ObsOf<K>> {
    let found: ObsOf<K> | undefined;
    await this.until(
      () =>
        (found = this.all.find((o): o is ObsOf<K> => o.t === t && pred(o as ObsOf<K>))) !==
        undefined,
      what,
      ms,
    );
    return found!;
  }

  describe(): string {
    const counts = new Map<string, number>();
    for (const o of this.all) counts.set(o.t, (counts.get(o.t) ?? 0) + 1);
    const tail = this.all
      .filter((o) => o.t !== 'take' && o.t !== 'issue' && o.t !== 'settle')
      .slice(-12)
      .map((o) => `  ${JSON.stringify(o).slice(0, 300)}`);
    return [
      `observations: ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')}`,
      ...tail,
      ...this.context.map((f) => f()),
    ].join('\n');
  }
}
