import { startCluster } from '../../lib/testing/index.js';
import type { ProcessCluster } from '../../lib/testing/index.js';

/**
 * Headers and W3C trace context (docs/api.md, "Headers";
 * docs/observability.md) across two real processes running
 * spec/channel/fixtures/headers-node.ts. Node 0 makes the traffic; the
 * target is node 0 itself (the local path) or node 1 (the remote path),
 * and both must behave the same. The diagnostics_channel events are
 * recorded inside the nodes and read back.
 */
const NODE = new URL('./fixtures/headers-node.ts', import.meta.url);
/** Every node's maxMessageSize: headers alone over it must be refused, typed. */
const MAX = 32 * 1024;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACESTATE = 'vendor=opaque';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await startCluster({
    module: NODE,
    nodes: 2,
    options: { maxMessageSize: MAX },
    timeoutMs: 10_000,
  });
  await cluster.ready();
}, 30_000);
afterAll(() => cluster.close());

const from = () => cluster.node(0);

describe.each([
  ['local', 0],
  ['remote', 1],
])('headers on the %s path (node 0 to node %d)', (_path, target) => {
  const headers = { traceparent: TRACEPARENT, tracestate: TRACESTATE, 'x-tenant': 'acme' };

  it('a unary call carries them to the handler, traceparent and tracestate included', async () => {
    expect(await from().call('call', target, headers)).toEqual(headers);
    // Without headers the handler sees an empty object, not the last call's.
    expect(await from().call('call', target)).toEqual({});
  });

  it('streaming calls carry them too (server-stream, bidi, client-stream)', async () => {
    expect(await from().call('callStream', target, headers)).toEqual([headers]);
    expect(await from().call('callBidi', target, headers)).toEqual([
      { r: 1, headers },
      { r: 2, headers },
    ]);
    expect(await from().call('callClient', target, headers)).toEqual({ n: 3, headers });
  });

  it('a receiver made withHeaders gets { value, headers }; another gets the value alone', async () => {
    await from().call('send', target, { n: 1 }, headers);
    expect(await cluster.node(target).call('received')).toEqual({ value: { n: 1 }, headers });
    await from().call('send', target, 'bare');
    expect(await cluster.node(target).call('received')).toEqual({ value: 'bare', headers: {} });
    await from().call('sendPlain', target, Buffer.from('raw'), headers);
    expect(await cluster.node(target).call('receivedPlain')).toEqual(Buffer.from('raw'));
  });

  it('a post carries them', async () => {
    await from().call('post', target, 'posted', { traceparent: TRACEPARENT });
    expect(await cluster.node(target).call('received')).toEqual({
      value: 'posted',
      headers: { traceparent: TRACEPARENT },
    });
  });

  it('a publication carries them to the subscriber; one without has no headers field', async () => {
    const topic = `hdr.t${target}`;
    for (let i = 0; i < 200 && (await from().call('subscribers', topic)) !== 2; i++)
      await new Promise((resolve) => setTimeout(resolve, 25));
    expect(await from().call('subscribers', topic)).toBe(2);
    await from().call('publish', topic, 7, headers);
    await from().call('publish', topic, 8);
    // Both nodes subscribe: the other node's copies arrive the same way.
    const other = cluster.node(1 - target);
    expect(await other.call('publication')).toEqual({ topic, value: 7, headers });
    expect(await other.call('publication')).toEqual({ topic, value: 8 });
    expect(await cluster.node(target).call('publication')).toEqual({ topic, value: 7, headers });
    expect(await cluster.node(target).call('publication')).toEqual({ topic, value: 8 });
  });

  it('a task carries them to the worker', async () => {
    await from().call('push', target, { job: 1 }, headers);
    expect(await cluster.node(target).call('task')).toEqual({
      task: { job: 1 },
      headers,
      attempt: 1,
    });
  });

  it('bad headers fail typed at the sender; headers over maxMessageSize are too large', async () => {
    const invalid = expect.objectContaining({
      code: 'ERR_SB_INVALID_OPTION',
      message: expect.stringMatching(/headers/) as unknown,
    }) as unknown;
    const tooLarge = expect.objectContaining({ code: 'ERR_SB_MESSAGE_TOO_LARGE' }) as unknown;
    expect(await from().call('refusals', target, MAX + 100)).toEqual({
      sendBad: invalid,
      sendHuge: tooLarge,
      callBad: invalid,
      callHuge: tooLarge,
      pushBad: invalid,
      publishBad: invalid,
      postBad: invalid,
    });
    // Over the wire's 65535 bytes for one value: refused as invalid before any size check.
    expect(await from().call('refusals', target, 70_000)).toMatchObject({
      sendHuge: { code: 'ERR_SB_INVALID_OPTION' },
      callHuge: { code: 'ERR_SB_INVALID_OPTION' },
    });
  });
});

describe('diagnostics_channel across two processes', () => {
  afterEach(async () => {
    await from().call('trace', false);
    await cluster.node(1).call('trace', false);
  });

  it('a call publishes start, end, asyncStart, asyncEnd on the caller and start, end on the server', async () => {
    await from().call('trace', true);
    await cluster.node(1).call('trace', true);
    await from().call('call', 1, { traceparent: TRACEPARENT });
    const h = { traceparent: TRACEPARENT };
    expect(await from().call('seen')).toEqual([
      { event: 'call:start', method: 'hdr.echo', node: 1, headers: h },
      { event: 'call:end', method: 'hdr.echo', node: 1, headers: h },
      { event: 'call:asyncStart', method: 'hdr.echo', node: 1, headers: h },
      { event: 'call:asyncEnd', method: 'hdr.echo', node: 1, headers: h },
    ]);
    // A handler that returns at once has no asynchronous part.
    expect(await cluster.node(1).call('seen')).toEqual([
      { event: 'serve:start', method: 'hdr.echo', node: 1, caller: 0, headers: h },
      { event: 'serve:end', method: 'hdr.echo', node: 1, caller: 0, headers: h },
    ]);
  });

  it('send, receive, publish, push and task publish their events, and headers added on a start event travel', async () => {
    await from().call('traceMessaging', true);
    await cluster.node(1).call('traceMessaging', true);
    try {
      const h = { traceparent: TRACEPARENT };
      await from().call('send', 1, 'traced', h);
      expect(await cluster.node(1).call('received')).toEqual({
        value: 'traced',
        headers: { ...h, 'x-injected': 'send' },
      });
      const topic = 'hdr.t1';
      for (let i = 0; i < 200 && (await from().call('subscribers', topic)) !== 2; i++)
        await new Promise((resolve) => setTimeout(resolve, 25));
      await from().call('publish', topic, 9, h);
      const published = { topic, value: 9, headers: { ...h, 'x-injected': 'publish' } };
      expect(await cluster.node(1).call('publication')).toEqual(published);
      expect(await from().call('publication')).toEqual(published);
      await from().call('push', 1, { job: 2 }, h);
      expect(await cluster.node(1).call('task')).toEqual({
        task: { job: 2 },
        headers: { ...h, 'x-injected': 'push' },
        attempt: 1,
      });
      const sent = { ...h, 'x-injected': 'send' };
      const pushed = { ...h, 'x-injected': 'push' };
      expect(await from().call('moved')).toEqual([
        { event: 'send:start', channel: 'hdr.in', node: 1, operation: 'send', headers: sent },
        { event: 'send:end', channel: 'hdr.in', node: 1, operation: 'send', headers: sent },
        { event: 'send:asyncStart', channel: 'hdr.in', node: 1, operation: 'send', headers: sent },
        { event: 'send:asyncEnd', channel: 'hdr.in', node: 1, operation: 'send', headers: sent },
        { event: 'publish:start', topic, headers: published.headers },
        { event: 'publish:end', topic, headers: published.headers },
        { event: 'push:start', queue: 'hdr.q1', headers: pushed },
        { event: 'push:end', queue: 'hdr.q1', headers: pushed },
        { event: 'push:asyncStart', queue: 'hdr.q1', headers: pushed },
        { event: 'push:asyncEnd', queue: 'hdr.q1', headers: pushed },
      ]);
      const arrived = await cluster.node(1).call<Array<{ event: string }>>('moved');
      expect(arrived.filter((e) => e.event.startsWith('receive:'))).toEqual([
        { event: 'receive:start', channel: 'hdr.in', node: 0, headers: sent },
        { event: 'receive:end', channel: 'hdr.in', node: 0, headers: sent },
      ]);
      expect(arrived.filter((e) => e.event.startsWith('task:')).map((e) => e.event)).toEqual([
        'task:start',
        'task:end',
      ]);
      expect(arrived.find((e) => e.event === 'task:start')).toMatchObject({
        queue: 'hdr.q1',
        from: 0,
        attempt: 1,
        headers: pushed,
      });
    } finally {
      await from().call('traceMessaging', false);
      await cluster.node(1).call('traceMessaging', false);
    }
  });

  it('a failing call publishes error on both sides', async () => {
    await from().call('trace', true);
    await cluster.node(1).call('trace', true);
    expect(await from().call('callFail', 1)).toMatchObject({ code: 'ERR_SB_REMOTE' });
    expect(await from().call('seen')).toEqual([
      { event: 'call:start', method: 'hdr.fail', node: 1, headers: {} },
      { event: 'call:end', method: 'hdr.fail', node: 1, headers: {} },
      { event: 'call:error', method: 'hdr.fail', node: 1, headers: {}, error: 'ERR_SB_REMOTE' },
      {
        event: 'call:asyncStart',
        method: 'hdr.fail',
        node: 1,
        headers: {},
        error: 'ERR_SB_REMOTE',
      },
      { event: 'call:asyncEnd', method: 'hdr.fail', node: 1, headers: {}, error: 'ERR_SB_REMOTE' },
    ]);
    const server = { method: 'hdr.fail', node: 1, caller: 0, headers: {} };
    expect(await cluster.node(1).call('seen')).toEqual([
      { event: 'serve:start', ...server },
      { event: 'serve:error', ...server, error: 'Error: on purpose' },
      { event: 'serve:end', ...server, error: 'Error: on purpose' },
    ]);
  });

  it('a traceparent injected on the call start event reaches the handler', async () => {
    await from().call('trace', true, TRACEPARENT);
    expect(await from().call('call', 1)).toEqual({ traceparent: TRACEPARENT });
    // Added to the caller's own headers, not in place of them.
    expect(await from().call('call', 1, { 'x-tenant': 'acme' })).toEqual({
      'x-tenant': 'acme',
      traceparent: TRACEPARENT,
    });
  });

  it('a handler that calls on passes the context itself: nothing is inherited by magic', async () => {
    // Node 1's handler passes on the traceparent it got, to node 0.
    expect(await from().call('hop', 1, 0, { traceparent: TRACEPARENT, other: 'x' })).toEqual({
      traceparent: TRACEPARENT,
    });
  });
});
