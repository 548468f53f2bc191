/**
 * The options of clients and the member options for them (docs/guide.md,
 * section 2: `Switchboard.connect(options)`, `maxClients`, `clientSecret`),
 * checked through the public API: each bad option is an OptionError naming it.
 */
import {
  DEFAULT_CONNECT_OPTIONS,
  DEFAULT_SWITCHBOARD_OPTIONS,
  ErrorCode,
  Switchboard,
} from '../../lib/index.js';
import type { ClientConnectOptions, StartOptions } from '../../lib/index.js';

const nodes = ['127.0.0.1:1', '127.0.0.1:2'];
const secret = 'a cluster secret, long enough';
const clientSecret = 'a client secret, long enough';

async function refusal(run: () => Promise<unknown>): Promise<{ code: unknown; option: unknown }> {
  try {
    await run();
  } catch (err) {
    const e = err as { code?: unknown; option?: unknown };
    return { code: e.code, option: e.option };
  }
  throw new Error('accepted');
}

const connect = (o: Partial<ClientConnectOptions> & Record<string, unknown>) =>
  refusal(() => Switchboard.connect({ nodes, ...o }));
const start = (o: Partial<StartOptions>) =>
  refusal(() => Switchboard.start({ nodes, id: 0, secret, ...o }));

describe('client options', () => {
  it('has its defaults where the guide says', () => {
    expect(DEFAULT_CONNECT_OPTIONS).toEqual({ timeoutMs: 10_000 });
    expect(DEFAULT_SWITCHBOARD_OPTIONS.maxClients).toBe(256);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a member-only option', { secret, id: 0 }, 'id'],
    ['bindHost', { secret, bindHost: '0.0.0.0' }, 'bindHost'],
    ['maxClients', { secret, maxClients: 3 }, 'maxClients'],
    ['no secret at all', {}, 'secret'],
    ['both secrets', { secret, clientSecret }, 'clientSecret'],
    ['a short client secret', { clientSecret: 'short' }, 'clientSecret'],
    ['members out of range', { secret, members: [2] }, 'members'],
    ['empty members', { secret, members: [] }, 'members'],
    ['a bad timeout', { secret, timeoutMs: 0 }, 'timeoutMs'],
    ['a misspelt timeout', { secret, timeoutMS: 5 }, 'timeoutMS'],
  ])('refuses %s with an OptionError naming it', async (_what, options, option) => {
    expect(await connect(options)).toEqual({ code: ErrorCode.INVALID_OPTION, option });
  });

  it.each<[string, Partial<StartOptions>, string]>([
    ['a negative maxClients', { maxClients: -1 }, 'maxClients'],
    ['a fractional maxClients', { maxClients: 1.5 }, 'maxClients'],
    ['a client secret equal to the secret', { clientSecret: secret }, 'clientSecret'],
    ['a short client secret', { clientSecret: 'short' }, 'clientSecret'],
  ])('a member refuses %s', async (_what, options, option) => {
    expect(await start(options)).toEqual({ code: ErrorCode.INVALID_OPTION, option });
  });

  it('a member refuses a client secret without a cluster secret', async () => {
    expect(
      await refusal(() => Switchboard.start({ nodes, id: 0, insecure: true, clientSecret })),
    ).toEqual({ code: ErrorCode.INVALID_OPTION, option: 'insecure' });
  });

  it('rejects with ERR_SB_CONNECT, naming each member, when none answers', async () => {
    try {
      await Switchboard.connect({ nodes, secret, timeoutMs: 300, reconnectMaxMs: 50 });
      throw new Error('connected');
    } catch (err) {
      const e = err as { code?: unknown; reasons?: Array<{ node: number; address: string }> };
      expect(e.code).toBe(ErrorCode.CONNECT);
      expect(e.reasons?.map((r) => [r.node, r.address])).toEqual([
        [0, '127.0.0.1:1'],
        [1, '127.0.0.1:2'],
      ]);
    }
  });
});
