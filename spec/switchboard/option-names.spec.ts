/**
 * Unknown option names are refused, naming each one and the known name it
 * was probably meant to be, instead of being ignored while the default
 * silently applies.
 */
import { OptionError } from '../../lib/errors.js';
import { Switchboard } from '../../lib/facade.js';
import type { StartOptions } from '../../lib/facade.js';
import { checkOptionNames, nearestName } from '../../lib/options.js';
import {
  resolveOptions,
  SWITCHBOARD_OPTION_NAMES,
  TLS_OPTION_NAMES,
} from '../../lib/switchboard/options.js';
import type { SwitchboardOptions } from '../../lib/switchboard/options.js';

const SECRET = 'an-adequately-long-secret';
const OK = { nodes: ['127.0.0.1:1', '127.0.0.1:2'], id: 0, secret: SECRET };

/** The OptionError `fn` throws. */
function optionError(fn: () => unknown): OptionError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OptionError) return err;
    throw err;
  }
  throw new Error('expected an OptionError');
}

function resolve(change: Record<string, unknown>, extra?: readonly string[]): OptionError {
  return optionError(() => resolveOptions({ ...OK, ...change }, extra));
}

describe('nearestName', () => {
  const known = SWITCHBOARD_OPTION_NAMES;
  it.each([
    ['deadPeerMS', 'deadPeerMs'],
    ['heartbeatMS', 'heartbeatMs'],
    ['lingerMS', 'lingerMs'],
    ['maxMesageSize', 'maxMessageSize'],
    ['hearbeatMs', 'heartbeatMs'],
    ['linegrMs', 'lingerMs'],
    ['secert', 'secret'],
    ['NODES', 'nodes'],
    ['bindhost', 'bindHost'],
    ['reconnectMinMS', 'reconnectMinMs'],
  ])('%s -> %s', (name, expected) => {
    expect(nearestName(name, known)).toBe(expected);
  });

  it.each(['colour', 'timeout', 'x', 'port', 'handshakeMs'])('%s: nothing close', (name) => {
    expect(nearestName(name, known)).toBeUndefined();
  });

  it('prefers a match in another case over a closer edit', () => {
    expect(nearestName('ab', ['ac', 'AB'])).toBe('AB');
  });

  it('breaks ties by the order of the known names', () => {
    expect(nearestName('abcx', ['abcy', 'abcz'])).toBe('abcy');
    expect(nearestName('abcx', ['abcz', 'abcy'])).toBe('abcz');
  });
});

describe('checkOptionNames', () => {
  it('passes known names, objects without keys, and non-objects', () => {
    expect(() => checkOptionNames({ a: 1, b: undefined }, ['a', 'b', 'c'], '')).not.toThrow();
    expect(() => checkOptionNames({}, [], '')).not.toThrow();
    expect(() => checkOptionNames(null as unknown as object, ['a'], '')).not.toThrow();
  });

  it('names an unknown key and the known name it is close to', () => {
    const err = optionError(() => checkOptionNames({ deadPeerMS: 1 }, ['deadPeerMs'], ''));
    expect(err.message).toBe(
      'invalid option deadPeerMS: unknown option (did you mean deadPeerMs?)',
    );
    expect([err.code, err.option, err.suggestion]).toEqual([
      'ERR_SB_INVALID_OPTION',
      'deadPeerMS',
      'deadPeerMs',
    ]);
  });

  it('names an unknown key with nothing close, without a suggestion', () => {
    const err = optionError(() => checkOptionNames({ colour: 'red' }, ['deadPeerMs'], ''));
    expect(err.message).toBe('invalid option colour: unknown option');
    expect([err.option, err.suggestion]).toEqual(['colour', undefined]);
  });

  it('names every unknown key, each with its suggestion', () => {
    const err = optionError(() =>
      checkOptionNames(
        { lingerMS: 1, ok: 2, colour: 3, maxMesageSize: 4 },
        ['ok', 'lingerMs', 'maxMessageSize'],
        '',
      ),
    );
    expect(err.message).toBe(
      'invalid option lingerMS: unknown option (did you mean lingerMs?); ' +
        'also unknown: colour, maxMesageSize (did you mean maxMessageSize?)',
    );
    expect([err.option, err.suggestion]).toEqual(['lingerMS', 'lingerMs']);
  });

  it('prefixes nested names with where', () => {
    const err = optionError(() => checkOptionNames({ kye: 'k' }, ['key', 'cert'], 'tls'));
    expect(err.message).toBe('invalid option tls.kye: unknown option (did you mean tls.key?)');
    expect([err.option, err.suggestion]).toEqual(['tls.kye', 'tls.key']);
  });

  it('counts a key whose value is undefined, and ignores symbol keys', () => {
    expect(() => checkOptionNames({ deadPeerMS: undefined }, ['deadPeerMs'], '')).toThrow(
      'did you mean deadPeerMs?',
    );
    expect(() => checkOptionNames({ [Symbol('x')]: 1 }, [], '')).not.toThrow();
  });
});

describe('resolveOptions refuses unknown option names', () => {
  it('lists every SwitchboardOptions name and every TlsOptions name', () => {
    expect(SWITCHBOARD_OPTION_NAMES).toContain('deadPeerMs');
    expect(SWITCHBOARD_OPTION_NAMES).toHaveLength(23);
    expect([...TLS_OPTION_NAMES]).toEqual(['key', 'cert', 'ca']);
  });

  it.each([
    ['deadPeerMS', 'deadPeerMs'],
    ['heartbeatMS', 'heartbeatMs'],
    ['lingerMS', 'lingerMs'],
    ['maxMesageSize', 'maxMessageSize'],
  ])('%s: did you mean %s?', (typo, meant) => {
    const err = resolve({ [typo]: 1000 });
    expect(err.message).toBe(`invalid option ${typo}: unknown option (did you mean ${meant}?)`);
    expect(err.suggestion).toBe(meant);
  });

  it('reports a misspelt secret as such, not as a missing secret', () => {
    const err = resolve({ secret: undefined, secert: SECRET });
    expect([err.option, err.suggestion]).toEqual(['secert', 'secret']);
  });

  it('checks the names inside tls', () => {
    const err = resolve({ tls: { key: 'k', cert: 'c', ca: 'a', rejectUnauthorised: false } });
    expect(err.option).toBe('tls.rejectUnauthorised');
    expect(err.message).toBe('invalid option tls.rejectUnauthorised: unknown option');
    expect(resolve({ tls: { key: 'k', cert: 'c', cq: 'a' } }).suggestion).toBe('tls.ca');
  });

  it('refuses a tls that is not an object', () => {
    expect(resolve({ tls: null }).message).toBe(
      'invalid option tls: must be an object { key, cert, ca }',
    );
    expect(resolve({ tls: true }).option).toBe('tls');
  });

  it("accepts the caller's extra names, and suggests them too", () => {
    expect(() =>
      resolveOptions({ ...OK, forceEncoding: true } as SwitchboardOptions, ['forceEncoding']),
    ).not.toThrow();
    expect(resolve({ forceEncoding: true }).option).toBe('forceEncoding');
    expect(resolve({ forceEncodng: true }, ['forceEncoding']).suggestion).toBe('forceEncoding');
  });

  it('Switchboard.start accepts forceEncoding and refuses a misspelt option before binding', async () => {
    const started = Switchboard.start({ ...OK, deadPeerMS: 100 } as unknown as StartOptions);
    await expect(started).rejects.toBeInstanceOf(OptionError);
    await expect(started).rejects.toMatchObject({
      code: 'ERR_SB_INVALID_OPTION',
      option: 'deadPeerMS',
      suggestion: 'deadPeerMs',
      message: 'invalid option deadPeerMS: unknown option (did you mean deadPeerMs?)',
    });
    await expect(
      Switchboard.start({ ...OK, forceEncodig: true } as unknown as StartOptions),
    ).rejects.toMatchObject({ option: 'forceEncodig', suggestion: 'forceEncoding' });
  });
});
