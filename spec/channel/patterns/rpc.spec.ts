import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { from, range, toArray, firstValueFrom } from 'rxjs';
import { NotDeliveredError, RemoteError, SwitchboardError } from '../../../lib/errors.js';
import { Switchboard } from '../../../lib/facade.js';
import type { CallContext } from '../../../lib/index.js';
import { closeAll, pathCluster, PATHS, SECRET, until, hubOf } from '../../support/cluster.js';
import { freePorts } from '../../support/ports.js';

/** A promise and the function that settles it, for handlers the test releases. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Yields to the event loop `n` times (a slow reader, without fixed sleeps). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/** RPC state a spec expects to be back to nothing once its calls are over. */
function expectIdle(...sbs: Switchboard[]): void {
  for (const sb of sbs) {
    expect(sb.stats().rpc).toMatchObject({
      pendingCalls: 0,
      waitingForServer: 0,
      activeCalls: 0,
      runningHandlers: 0,
    });
  }
}

/**
 * As {@link expectIdle}, for streams: the caller's iteration ends with the
 * end marker, and the handler's side finishes a few event-loop steps later.
 */
async function expectIdleSoon(...sbs: Switchboard[]): Promise<void> {
  const idle = (sb: Switchboard): boolean => {
    const r = sb.stats().rpc;
    return r.pendingCalls + r.waitingForServer + r.activeCalls + r.runningHandlers === 0;
  };
  await until(() => sbs.every(idle), 5_000, 'RPC to be idle');
  for (const sb of sbs) {
    expect(sb.stats().rpc).toMatchObject({
      pendingCalls: 0,
      waitingForServer: 0,
      activeCalls: 0,
      runningHandlers: 0,
    });
  }
}

class QuotaError extends Error {
  readonly code = 'E_QUOTA';

  constructor(message: string) {
    super(message);
    this.name = 'QuotaError';
  }
}

describe.each(PATHS)('RPC over the %s path', (path) => {
  it('answers unary calls: hello(name) and add(a, b)', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serve<string, string>('hello', (name) => `Hello, ${name}!`);
      rx.serve<{ a: number; b: number }, number>('add', async ({ a, b }) => {
        await turns(1);
        return a + b;
      });
      expect(await tx.call<string, string>('hello', 'Ada')).toBe('Hello, Ada!');
      expect(await tx.call<{ a: number; b: number }, number>('add', { a: 21, b: 21 })).toBe(42);
      // Many at once, and one long call among them: every reply finds its own call.
      const slow = gate<number>();
      rx.serve('slow', () => slow.promise);
      const long = tx.call<null, number>('slow', null);
      // One after another, then all at once: ids wrap past the long call's slot.
      for (let i = 0; i < 300; i++) expect(await tx.call('add', { a: i, b: i })).toBe(2 * i);
      const sums = await Promise.all(
        Array.from({ length: 2000 }, (_, i) =>
          tx.call<{ a: number; b: number }, number>('add', { a: i, b: 1 }),
        ),
      );
      expect(sums).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      slow.open(7);
      expect(await long).toBe(7);
      expect([...rx.stats().rpc.served].sort()).toEqual(['add', 'hello', 'slow']);
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('turns a thrown error into a RemoteError with the remote name, message and code', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serve('quota', () => {
        throw new QuotaError('over quota for tenant 7');
      });
      rx.serve('reject', () => Promise.reject(new TypeError('bad input')));
      rx.serve('throw-string', () => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw 'plain string';
      });
      const err = await tx.call('quota', null).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RemoteError);
      expect(err).toMatchObject({
        code: 'ERR_SB_REMOTE',
        remoteName: 'QuotaError',
        remoteCode: 'E_QUOTA',
        message: 'over quota for tenant 7',
        node: rx.id,
      });
      await expect(tx.call('reject', null)).rejects.toMatchObject({
        code: 'ERR_SB_REMOTE',
        remoteName: 'TypeError',
        remoteCode: undefined,
        message: 'bad input',
      });
      await expect(tx.call('throw-string', null)).rejects.toMatchObject({
        remoteName: 'Error',
        message: 'plain string',
      });
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('fails a call nobody answers with ERR_SB_TIMEOUT on time, drops the late reply, keeps nothing (docs/reliability.md item 17)', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const release = gate();
      const started = gate();
      rx.serve('never', async () => {
        started.open();
        await release.promise;
        return 'too late';
      });
      const t0 = performance.now();
      const err = await tx.call('never', null, { timeoutMs: 200 }).catch((e: unknown) => e);
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(SwitchboardError);
      expect(err).toMatchObject({ code: 'ERR_SB_TIMEOUT' });
      expect(elapsed).toBeGreaterThanOrEqual(195);
      expect(elapsed).toBeLessThan(200 + 500);
      await started.promise;
      expect(tx.stats().rpc.pendingCalls).toBe(0);
      // The handler finishes after the deadline: its reply arrives and is dropped.
      release.open();
      await until(() => tx.stats().rpc.lateReplies === 1, 5_000, 'the late reply');
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it("aborts the handler's ctx.signal when the caller aborts", async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const started = gate<CallContext>();
      let reason: unknown;
      rx.serve(
        'wait',
        (_: null, ctx) =>
          new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => {
              reason = ctx.signal.reason;
              reject(ctx.signal.reason as Error);
            });
            started.open(ctx);
          }),
      );
      const ac = new AbortController();
      const before = Date.now();
      const call = tx.call('wait', null, { signal: ac.signal, timeoutMs: 5_000 });
      const ctx = await started.promise;
      expect(ctx.caller).toBe(tx.id);
      expect(ctx.method).toBe('wait');
      expect(ctx.deadline).toBeGreaterThanOrEqual(before + 4_000);
      expect(ctx.deadline).toBeLessThanOrEqual(Date.now() + 5_000);
      ac.abort(new Error('user gave up'));
      await expect(call).rejects.toMatchObject({ code: 'ERR_SB_ABORTED' });
      await until(() => reason !== undefined, 5_000, 'the handler to see the abort');
      expect(reason).toMatchObject({ code: 'ERR_SB_ABORTED' });
      // An already-aborted signal fails at once, without a request.
      await expect(tx.call('wait', null, { signal: ac.signal })).rejects.toMatchObject({
        code: 'ERR_SB_ABORTED',
      });
      await until(() => tx.stats().rpc.lateReplies === 1, 5_000, 'the handler to reply');
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('fails a pending call at once with a typed error when its server goes away', async () => {
    // A short dead-peer timeout: destroy() leaves no GOAWAY, so loss is detected by silence.
    const { sbs, rx, tx } = await pathCluster(path, { heartbeatMs: 50, deadPeerMs: 300 });
    try {
      const started = gate();
      rx.serve('hang', () => {
        started.open();
        return new Promise(() => undefined);
      });
      const call = tx.call('hang', null, { timeoutMs: 20_000 });
      await started.promise;
      const t0 = performance.now();
      void rx.destroy();
      const err = await call.catch((e: unknown) => e);
      const elapsed = performance.now() - t0;
      if (path === 'tcp') {
        expect(err).toBeInstanceOf(NotDeliveredError);
        expect(err).toMatchObject({ code: 'ERR_SB_NOT_DELIVERED', node: rx.id });
        // Within the dead-peer bound, nowhere near the call's 20 s deadline.
        expect(elapsed).toBeLessThan(300 + 2_000);
      } else {
        // In-process the server is this very switchboard: destroying it fails the call.
        expect(err).toMatchObject({ code: 'ERR_SB_CLOSED' });
      }
      expect(tx.stats().rpc.pendingCalls).toBe(0);
    } finally {
      await closeAll(sbs);
    }
  });

  it('runs at most maxConcurrent handlers; the other requests wait, none is lost', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      let running = 0;
      let peak = 0;
      rx.serve(
        'limited',
        async (n: number) => {
          running++;
          peak = Math.max(peak, running);
          await turns(2);
          running--;
          return n * 2;
        },
        { maxConcurrent: 3 },
      );
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => tx.call<number, number>('limited', i)),
      );
      expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
      expect(peak).toBe(3);
      // Closing lets running handlers finish and reply.
      const release = gate();
      const started = gate();
      const handle = rx.serve('closing', async () => {
        started.open();
        await release.promise;
        return 'finished';
      });
      const running1 = tx.call('closing', null);
      await started.promise;
      handle.close();
      release.open();
      expect(await running1).toBe('finished');
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('replaces a handler served again; closing the old handle keeps the new one', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const h1 = rx.serve('version', () => 1);
      expect(await tx.call('version', null)).toBe(1);
      const h2 = rx.serve('version', () => 2);
      expect(h1.closed).toBe(true);
      expect(await tx.call('version', null)).toBe(2);
      h1.close();
      expect(await tx.call('version', null)).toBe(2);
      h2.close();
      expect(h2.closed).toBe(true);
      await until(
        () => hubOf(tx).directory.lookup('rpc', 'version').length === 0,
        5_000,
        'the withdrawal',
      );
      await expect(tx.call('version', null, { waitForServerMs: 0 })).rejects.toMatchObject({
        code: 'ERR_SB_NO_SERVER',
      });
      expect(rx.stats().rpc.served).toEqual([]);
    } finally {
      await closeAll(sbs);
    }
  });

  it('waits briefly for a server to appear, then fails with ERR_SB_NO_SERVER', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const early = tx.call<string, string>('late-server', 'x', { waitForServerMs: 5_000 });
      expect(tx.stats().rpc.waitingForServer).toBe(1);
      rx.serve<string, string>('late-server', (s) => `${s}!`);
      expect(await early).toBe('x!');
      await expect(tx.call('nobody', null, { waitForServerMs: 0 })).rejects.toMatchObject({
        code: 'ERR_SB_NO_SERVER',
        message: expect.stringContaining('no node serves it') as unknown,
      });
      const t0 = performance.now();
      await expect(tx.call('nobody', null, { waitForServerMs: 100 })).rejects.toMatchObject({
        code: 'ERR_SB_NO_SERVER',
      });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
      // A method served as another kind is no server for this call.
      rx.serveStream('streamy', () => [1]);
      await until(
        () => hubOf(tx).directory.lookup('rpc', 'streamy').length === 1,
        5_000,
        'the directory',
      );
      await expect(tx.call('streamy', null, { waitForServerMs: 0 })).rejects.toMatchObject({
        code: 'ERR_SB_NO_SERVER',
        message: expect.stringContaining('server-stream') as unknown,
      });
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('streams replies: list_items, also as an Observable', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serveStream<{ count: number }, { id: number; name: string }>(
        'list_items',
        async function* ({ count }) {
          for (let id = 0; id < count; id++) {
            if (id % 10 === 0) await turns(1);
            yield { id, name: `item-${id}` };
          }
        },
      );
      rx.serveStream<number, number>('range', (n) => range(0, n));
      const items: Array<{ id: number; name: string }> = [];
      const stream = tx.callStream<{ count: number }, { id: number; name: string }>('list_items', {
        count: 100,
      });
      for await (const item of stream) items.push(item);
      expect(items).toEqual(Array.from({ length: 100 }, (_, id) => ({ id, name: `item-${id}` })));
      expect(stream.closed).toBe(true);
      const viaObservable = await firstValueFrom(
        tx.callStream<number, number>('range', 50).observable().pipe(toArray()),
      );
      expect(viaObservable).toEqual(Array.from({ length: 50 }, (_, i) => i));
      const empty: number[] = [];
      for await (const v of tx.callStream<number, number>('range', 0)) empty.push(v);
      expect(empty).toEqual([]);
      await expectIdleSoon(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('streams requests: upload returns a digest of the chunks', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serveClientStream<Uint8Array, { chunks: number; sha256: string }>(
        'upload',
        async (chunks) => {
          const hash = createHash('sha256');
          let n = 0;
          for await (const chunk of chunks) {
            hash.update(chunk);
            n++;
          }
          return { chunks: n, sha256: hash.digest('hex') };
        },
      );
      const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1000 + i, i));
      const expected = createHash('sha256');
      for (const c of chunks) expected.update(c);
      async function* source(): AsyncGenerator<Buffer> {
        for (const c of chunks) {
          await turns(1);
          yield c;
        }
      }
      expect(await tx.callClientStream('upload', source())).toEqual({
        chunks: 40,
        sha256: expected.digest('hex'),
      });
      // Plain iterables and Observables are sources too.
      expect(await tx.callClientStream('upload', [])).toMatchObject({ chunks: 0 });
      expect(await tx.callClientStream('upload', from(chunks.slice(0, 3)))).toMatchObject({
        chunks: 3,
      });
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('streams both ways: uppercase and echo_stream', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serveBidi<string, string>('uppercase', async function* (words) {
        for await (const w of words) yield w.toUpperCase();
      });
      rx.serveBidi<Uint8Array, Uint8Array>('echo_stream', (payloads) => payloads);
      const words = ['hello', 'switchboard', 'rpc'];
      const upper: string[] = [];
      for await (const w of tx.callBidi<string, string>('uppercase', words)) upper.push(w);
      expect(upper).toEqual(['HELLO', 'SWITCHBOARD', 'RPC']);
      // Replies flow while requests are still being sent: each request waits for the previous echo.
      const echoed: string[] = [];
      const next = gate();
      let waiting = next;
      const payloads = async function* (): AsyncGenerator<Buffer> {
        for (let i = 0; i < 20; i++) {
          yield Buffer.from(`payload-${i}`);
          await waiting.promise;
        }
      };
      for await (const p of tx.callBidi<Uint8Array, Uint8Array>('echo_stream', payloads())) {
        echoed.push(Buffer.from(p).toString());
        const w = waiting;
        waiting = gate();
        w.open();
      }
      expect(echoed).toEqual(Array.from({ length: 20 }, (_, i) => `payload-${i}`));
      await expectIdleSoon(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('carries stream errors both ways', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serveStream('fails-midway', async function* () {
        yield 1;
        yield 2;
        await turns(1);
        throw new QuotaError('disk quota exceeded');
      });
      const got: number[] = [];
      const err = await (async () => {
        for await (const v of tx.callStream<null, number>('fails-midway', null)) got.push(v);
      })().catch((e: unknown) => e);
      expect(got).toEqual([1, 2]);
      expect(err).toBeInstanceOf(RemoteError);
      expect(err).toMatchObject({ remoteName: 'QuotaError', remoteCode: 'E_QUOTA' });

      let seen: unknown;
      rx.serveClientStream('sum', async (values: AsyncIterable<number>) => {
        let total = 0;
        try {
          for await (const v of values) total += v;
        } catch (e) {
          seen = e;
          throw e;
        }
        return total;
      });
      const broken = new Error('source broke');
      async function* source(): AsyncGenerator<number> {
        yield 1;
        await turns(2);
        throw broken;
      }
      await expect(tx.callClientStream('sum', source())).rejects.toBe(broken);
      await until(() => seen !== undefined, 5_000, 'the handler to see the error');
      expect(seen).toBeInstanceOf(RemoteError);
      expect(seen).toMatchObject({ message: 'source broke', node: tx.id });
      await until(() => rx.stats().rpc.runningHandlers === 0, 5_000, 'the handler to end');
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('cancels the server stream when the caller stops reading', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      let reason: unknown;
      let finalized = false;
      rx.serveStream('ticks', async function* (_: null, ctx) {
        ctx.signal.addEventListener('abort', () => {
          reason = ctx.signal.reason;
        });
        try {
          for (let i = 0; ; i++) {
            if (i % 8 === 0) await turns(1);
            yield i;
          }
        } finally {
          finalized = true;
        }
      });
      const got: number[] = [];
      for await (const v of tx.callStream<null, number>('ticks', null, { window: 4 })) {
        got.push(v);
        if (v === 3) break;
      }
      expect(got).toEqual([0, 1, 2, 3]);
      await until(() => finalized && reason !== undefined, 5_000, 'the stream to stop');
      expect(reason).toMatchObject({ code: 'ERR_SB_ABORTED' });
      await until(() => rx.stats().rpc.runningHandlers === 0, 5_000, 'the handler to end');
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('applies backpressure: a slow reader keeps the writer at most one window ahead', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      const window = 8;
      let produced = 0;
      let consumed = 0;
      let maxAhead = 0;
      // A generator with no awaits of its own: only credit can hold it back.
      rx.serveStream('list_items', function* (count: number) {
        for (let i = 0; i < count; i++) {
          produced++;
          maxAhead = Math.max(maxAhead, produced - consumed);
          yield i;
        }
      });
      for await (const i of tx.callStream<number, number>('list_items', 200, { window })) {
        expect(i).toBe(consumed);
        consumed++;
        await turns(3);
      }
      expect(consumed).toBe(200);
      // Ahead by the reply window, plus the one item waiting for credit.
      expect(maxAhead).toBeLessThanOrEqual(window + 2);
      expect(maxAhead).toBeGreaterThanOrEqual(window / 2);

      // The same upstream: a slow handler holds back the caller's source.
      produced = consumed = maxAhead = 0;
      rx.serveClientStream(
        'slow-sink',
        async (values: AsyncIterable<number>) => {
          for await (const _ of values) {
            consumed++;
            await turns(3);
          }
          return consumed;
        },
        { streamWindow: 4 },
      );
      function* source(): Generator<number> {
        for (let i = 0; i < 100; i++) {
          produced++;
          maxAhead = Math.max(maxAhead, produced - consumed);
          yield i;
        }
      }
      expect(await tx.callClientStream('slow-sink', source())).toBe(100);
      expect(maxAhead).toBeLessThanOrEqual(4 + 2);
      expectIdle(rx, tx);
    } finally {
      await closeAll(sbs);
    }
  });

  it('keeps its latency while a channel receiver on the same link stalls (docs/reliability.md item 11)', async () => {
    const { sbs, rx, tx } = await pathCluster(path);
    try {
      rx.serve<number, number>('ping', (n) => n);
      const latency = async (calls: number): Promise<number> => {
        const samples: number[] = [];
        for (let i = 0; i < calls; i++) {
          const t = performance.now();
          expect(await tx.call('ping', i)).toBe(i);
          samples.push(performance.now() - t);
        }
        return median(samples);
      };
      await latency(100);
      const baseline = await latency(300);
      // A receiver nobody reads, flooded with 16 KiB messages: its window fills,
      // then its sender waits for credit that never comes.
      const stalled = rx.receiver<Buffer>('stalled', { capacity: 32, window: 32 });
      const flood = tx.sender<Buffer>('stalled', { node: rx.id, maxPending: 256 });
      const payload = Buffer.alloc(16 * 1024, 1);
      for (let i = 0; i < 256; i++) flood.post(payload);
      await until(() => stalled.queued === 32, 5_000, 'the stalled receiver to fill');
      expect(flood.waiting).toBeGreaterThan(0);
      const during = await latency(300);
      expect(stalled.queued).toBe(32);
      expect(during).toBeLessThan(baseline * 3);
    } finally {
      await closeAll(sbs);
    }
  });
});

describe('RPC load balancing over 3 servers (tcp)', () => {
  let sbs: Switchboard[] = [];
  let caller: Switchboard;

  beforeAll(async () => {
    const ports = await freePorts(4);
    const tags = [[], ['gpu', 'zone=a'], ['gpu'], ['cpu']];
    const nodes = ports.map((port, i) => ({ host: '127.0.0.1', port, tags: tags[i]! }));
    sbs = await Promise.all(nodes.map((_, id) => Switchboard.start({ nodes, id, secret: SECRET })));
    await Promise.all(sbs.map((sb) => sb.rendezvous({ timeoutMs: 10_000 })));
    caller = sbs[0]!;
    for (const sb of sbs.slice(1)) sb.serve('who', () => sb.id);
    await until(
      () => hubOf(caller).directory.lookup('rpc', 'who').length === 3,
      5_000,
      'three servers',
    );
  });

  afterAll(async () => {
    await closeAll(sbs);
  });

  const tally = async (
    calls: number,
    options: Parameters<Switchboard['call']>[2],
  ): Promise<Record<number, number>> => {
    const counts: Record<number, number> = {};
    for (let i = 0; i < calls; i++) {
      const node = await caller.call<null, number>('who', null, options);
      counts[node] = (counts[node] ?? 0) + 1;
    }
    return counts;
  };

  it('round-robin spreads calls evenly', async () => {
    expect(await tally(30, { strategy: 'round-robin' })).toEqual({ 1: 10, 2: 10, 3: 10 });
  });

  it('random reaches every server', async () => {
    const counts = await tally(90, { strategy: 'random' });
    expect(Object.keys(counts).sort()).toEqual(['1', '2', '3']);
  });

  it('least-outstanding (the default) prefers idle servers', async () => {
    const busy = gate();
    const started = gate();
    for (const sb of sbs.slice(1)) {
      sb.serve('work', async () => {
        if (sb.id === 1) {
          started.open();
          await busy.promise;
        }
        return sb.id;
      });
    }
    await until(
      () => hubOf(caller).directory.lookup('rpc', 'work').length === 3,
      5_000,
      'three servers',
    );
    const held = caller.call<null, number>('work', null, { node: 1 });
    await started.promise;
    const counts: Record<number, number> = {};
    for (let i = 0; i < 20; i++) {
      const node = await caller.call<null, number>('work', null);
      counts[node] = (counts[node] ?? 0) + 1;
    }
    expect(counts).toEqual({ 2: 10, 3: 10 });
    busy.open();
    expect(await held).toBe(1);
    // Many at once: the busy count decides, so the load evens out.
    const spread: Record<number, number> = {};
    for (const node of await Promise.all(
      Array.from({ length: 60 }, () => caller.call<null, number>('work', null)),
    ))
      spread[node] = (spread[node] ?? 0) + 1;
    expect(spread).toEqual({ 1: 20, 2: 20, 3: 20 });
  });

  it('a server that stops serving refuses its queued calls unrun; they go to another server', async () => {
    const release = gate();
    const started = gate();
    const handles = sbs.slice(1, 3).map((sb) =>
      sb.serve(
        'drain',
        async (n: number) => {
          if (sb.id === 1) {
            started.open();
            await release.promise;
          }
          return { node: sb.id, n };
        },
        { maxConcurrent: 1 },
      ),
    );
    await until(
      () => hubOf(caller).directory.lookup('rpc', 'drain').length === 2,
      5_000,
      'two servers',
    );
    // Node 1 runs one call and queues the others behind maxConcurrent.
    const named = Array.from({ length: 3 }, (_, i) =>
      caller.call<number, { node: number; n: number }>('drain', 100 + i, { node: 1 }),
    );
    const free = Array.from({ length: 8 }, (_, i) =>
      caller.call<number, { node: number; n: number }>('drain', i, { strategy: 'round-robin' }),
    );
    await started.promise;
    await until(() => sbs[1]!.stats().rpc.runningHandlers === 1, 5_000, 'the running call');
    handles[0]!.close();
    // The calls that named node 1 cannot go elsewhere: refused unrun, but the running one finishes.
    const namedOutcomes = named.map((p) =>
      p.then(
        (v) => ({ ok: v.n }),
        (e: SwitchboardError) => ({ code: e.code }),
      ),
    );
    release.open();
    expect(await Promise.all(namedOutcomes)).toEqual([
      { ok: 100 },
      { code: 'ERR_SB_NO_SERVER' },
      { code: 'ERR_SB_NO_SERVER' },
    ]);
    // Every other call succeeds, each run once: on node 2, or on node 1 before it stopped.
    const results = await Promise.all(free);
    expect(results.map((r) => r.n)).toEqual(Array.from({ length: 8 }, (_, i) => i));
    expect(results.every((r) => r.node === 2)).toBe(true);
    handles[1]!.close();
    expectIdle(...sbs);
  });

  it('calls still in flight when their server stops serving are refused unrun too', async () => {
    const runs: number[] = [];
    const handles = sbs.slice(1, 3).map((sb) =>
      sb.serve('flight', (n: number) => {
        runs.push(n);
        return { node: sb.id, n };
      }),
    );
    await until(
      () => hubOf(caller).directory.lookup('rpc', 'flight').length === 2,
      5_000,
      'two servers',
    );
    // Sent, and node 1 stops serving in the same turn: none of them has arrived.
    const named = Array.from({ length: 4 }, (_, i) =>
      caller.call<number, { node: number; n: number }>('flight', 100 + i, { node: 1 }).then(
        (v) => ({ ok: v.n }),
        (e: SwitchboardError) => ({ code: e.code }),
      ),
    );
    const free = Array.from({ length: 6 }, (_, i) =>
      caller.call<number, { node: number; n: number }>('flight', i, { strategy: 'round-robin' }),
    );
    handles[0]!.close();
    expect(await Promise.all(named)).toEqual(
      Array.from({ length: 4 }, () => ({ code: 'ERR_SB_NO_SERVER' })),
    );
    const results = await Promise.all(free);
    expect(results.map((r) => r.n)).toEqual(Array.from({ length: 6 }, (_, i) => i));
    expect(results.every((r) => r.node === 2)).toBe(true);
    // Each unnamed call ran once, on node 2; no named one ran.
    expect([...runs].sort((a, b) => a - b)).toEqual(Array.from({ length: 6 }, (_, i) => i));
    handles[1]!.close();
    expectIdle(...sbs);
  });

  it('picks among the servers carrying the tags, or the given node', async () => {
    expect(Object.keys(await tally(12, { tags: ['gpu'] })).sort()).toEqual(['1', '2']);
    expect(await tally(4, { tags: ['gpu', 'zone=a'] })).toEqual({ 1: 4 });
    expect(await tally(4, { tags: ['cpu'] })).toEqual({ 3: 4 });
    expect(await tally(4, { node: 2 })).toEqual({ 2: 4 });
    await expect(
      caller.call('who', null, { tags: ['tpu'], waitForServerMs: 0 }),
    ).rejects.toMatchObject({
      code: 'ERR_SB_NO_SERVER',
      message: expect.stringContaining('tagged tpu') as unknown,
    });
    await expect(caller.call('who', null, { node: 0, waitForServerMs: 0 })).rejects.toMatchObject({
      code: 'ERR_SB_NO_SERVER',
    });
    await expect(caller.call('who', null, { node: 9 })).rejects.toMatchObject({
      code: 'ERR_SB_INVALID_OPTION',
    });
    expectIdle(...sbs);
  });
});
