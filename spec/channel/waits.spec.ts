import { Timeouts, Wait, WaitList } from '../../lib/channel/waits.js';

/** A wait that records how it ended. */
class Probe extends Wait {
  ended: string | undefined;
  reason: unknown;

  constructor(readonly name: string) {
    super();
  }

  expired(): void {
    this.ended = 'expired';
  }

  aborted(reason: unknown): void {
    this.ended = 'aborted';
    this.reason = reason;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Timeouts: deadlines without a timer per wait', () => {
  it('expires waits in deadline order, once each, across timeout values', async () => {
    const t = new Timeouts();
    const order: string[] = [];
    const mk = (name: string): Probe => {
      const p = new Probe(name);
      p.expired = () => order.push(name);
      return p;
    };
    t.arm(mk('c30'), 30, undefined);
    t.arm(mk('a10'), 10, undefined);
    t.arm(mk('b20'), 20, undefined);
    t.arm(mk('a10-2'), 10, undefined);
    expect(t.size).toBe(4);
    for (let i = 0; i < 100 && order.length < 4; i++) await sleep(5);
    expect(order).toEqual(['a10', 'a10-2', 'b20', 'c30']);
    expect(t.size).toBe(0);
    t.clear();
  });

  it('a disarmed wait never expires; disarming twice is harmless', async () => {
    const t = new Timeouts();
    const p = new Probe('p');
    const q = new Probe('q');
    t.arm(p, 10, undefined);
    t.arm(q, 10, undefined);
    t.disarm(p);
    t.disarm(p);
    for (let i = 0; i < 100 && q.ended === undefined; i++) await sleep(5);
    expect(p.ended).toBeUndefined();
    expect(q.ended).toBe('expired');
    t.clear();
  });

  it('an abort wins over the deadline and passes the reason; a signal already aborted arms nothing', () => {
    const t = new Timeouts();
    const ac = new AbortController();
    const p = new Probe('p');
    expect(t.arm(p, 1_000, ac.signal)).toBe(true);
    ac.abort('stop');
    expect(p.ended).toBe('aborted');
    expect(p.reason).toBe('stop');
    expect(t.size).toBe(0);
    const q = new Probe('q');
    expect(t.arm(q, 1_000, ac.signal)).toBe(false);
    expect(t.size).toBe(0);
    t.clear();
  });

  it('Infinity arms no deadline, and the timer never holds the process when nothing is armed', () => {
    const t = new Timeouts();
    const p = new Probe('p');
    t.arm(p, Number.POSITIVE_INFINITY, undefined);
    expect(t.size).toBe(0);
    expect(p.deadlineAt).toBe(Number.POSITIVE_INFINITY);
    t.clear();
  });
});

describe('WaitList: a FIFO linked through the waits', () => {
  it('pushes, shifts in order, and removes from the middle in O(1)', () => {
    const l = new WaitList<Probe>();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new Probe(n)) as [Probe, Probe, Probe];
    l.push(a);
    l.push(b);
    l.push(c);
    expect(l.size).toBe(3);
    expect(l.remove(b)).toBe(true);
    expect(l.remove(b)).toBe(false);
    expect(l.peek()).toBe(a);
    expect(l.drain().map((w) => w.name)).toEqual(['a', 'c']);
    expect(l.size).toBe(0);
    expect(l.shift()).toBeUndefined();
  });
});
