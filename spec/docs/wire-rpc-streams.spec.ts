/**
 * Rows of the lifetimes table of docs/wire-protocol.md (10.14.2, "Lifetimes
 * of streaming calls") that no other spec pins down, on two switchboards
 * over TCP through the public API: when a streaming call settles on each
 * side, and what each side sees when the other ends its part early.
 * (Stopping a reply stream, a failing caller's source and stream errors
 * both ways are in spec/channel/patterns/rpc.spec.ts.)
 */
import { ErrorCode } from '../../lib/index.js';
import type { CallContext, Switchboard } from '../../lib/index.js';
import { closeAll, startCluster, until } from '../support/cluster.js';

/** A promise and the function that settles it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function idle(sb: Switchboard): boolean {
  const r = sb.stats().rpc;
  return r.pendingCalls + r.activeCalls + r.runningHandlers === 0;
}

describe('docs/wire-protocol.md 10.14.2, lifetimes of streaming calls', () => {
  let sbs: Switchboard[];
  let caller: Switchboard;
  let server: Switchboard;

  beforeAll(async () => {
    sbs = await startCluster(2);
    [caller, server] = sbs as [Switchboard, Switchboard];
  });
  afterAll(() => closeAll(sbs));
  afterEach(() => until(() => sbs.every(idle), 10_000, 'RPC to be idle'));

  it('a server-stream call stays pending until the caller reads the end item: its deadline covers the reading', async () => {
    let done = false;
    server.serveStream<null, number>('three', function* () {
      yield 1;
      yield 2;
      yield 3;
      done = true;
    });
    const stream = caller.callStream<null, number>('three', null, { timeoutMs: 1500 });
    const it = stream[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 1, done: false });
    // The server has sent everything, end item included; the caller has not read it.
    await until(() => done && server.stats().rpc.runningHandlers === 0, 5_000, 'the server');
    expect(caller.stats().rpc.pendingCalls).toBe(1);
    await until(() => caller.stats().rpc.pendingCalls === 0, 5_000, 'the deadline');
    await expect(it.next()).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
  });

  it('client-stream: a handler that returns before reading all its input settles the call with its reply', async () => {
    server.serveClientStream<number, number>('first', async (values) => {
      for await (const v of values) return v;
      return -1;
    });
    let produced = 0;
    let stopped = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (;;) {
          produced++;
          yield produced;
          if (produced % 16 === 0) await new Promise((r) => setImmediate(r));
        }
      } finally {
        stopped = true;
      }
    }
    await expect(caller.callClientStream<number, number>('first', endless())).resolves.toBe(1);
    // Its source is no longer read once the call is over.
    await until(() => stopped, 5_000, 'the caller’s source to stop');
  });

  it('bidi: the call ends with the down stream, and the caller’s source, still running, is stopped', async () => {
    server.serveBidi<number, number>('two-then-end', async function* (values) {
      let n = 0;
      for await (const v of values) {
        yield v;
        if (++n === 2) return;
      }
    });
    let stopped = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (let i = 0; ; i++) {
          yield i;
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        stopped = true;
      }
    }
    const got: number[] = [];
    for await (const v of caller.callBidi<number, number>('two-then-end', endless())) got.push(v);
    expect(got).toEqual([0, 1]);
    await until(() => stopped, 5_000, 'the caller’s source to stop');
  });

  it('bidi, the caller cancels: the handler’s signal aborts with ERR_SB_ABORTED and its input fails with it', async () => {
    let reason: unknown;
    let inputError: unknown;
    const started = gate();
    server.serveBidi<number, number>('hold', async function* (values, ctx: CallContext) {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
      });
      try {
        for await (const v of values) {
          yield v;
          started.open();
        }
      } catch (e) {
        inputError = e;
      }
    });
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<number> {
      yield 7;
      await new Promise<void>(() => undefined); // never more
    }
    const stream = caller.callBidi<number, number>('hold', slow(), { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 7, done: false });
    await started.promise;
    ac.abort();
    await expect(it.next()).rejects.toMatchObject({ code: ErrorCode.ABORTED });
    await until(() => inputError !== undefined, 5_000, 'the handler’s input to fail');
    expect(reason).toMatchObject({ code: ErrorCode.ABORTED });
    expect(inputError).toMatchObject({ code: ErrorCode.ABORTED });
  });
});
