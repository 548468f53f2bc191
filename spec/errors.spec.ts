/**
 * The error classes of lib/errors.ts, and docs/errors.md kept complete: every
 * ErrorCode has a row in its table (and no row names a code that does not
 * exist), and its GOAWAY table matches the code both ways.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BatchSendError,
  DecodeError,
  ErrorCode,
  HandshakeError,
  NotDeliveredError,
  OptionError,
  ProtocolError,
  RemoteError,
  RendezvousTimeoutError,
  SwitchboardError,
  isErrorCode,
  ListenError,
} from '../lib/errors.js';
import { GoAwayCode, errorCodeForGoAway, goAwayCodeFor } from '../lib/protocol/handshake.js';

const DOC = readFileSync(fileURLToPath(new URL('../docs/errors.md', import.meta.url)), 'utf8');

const CODES = Object.values(ErrorCode);

/** The first-column values of the rows of the "## Codes" table. */
function documentedCodes(): string[] {
  const section = DOC.slice(DOC.indexOf('## Codes'), DOC.indexOf('## GOAWAY codes'));
  return [...section.matchAll(/^\| `(ERR_SB_[A-Z_]+)` +\|/gm)].map((m) => m[1]!);
}

/** Rows of the GOAWAY table: number, name, error code. */
function documentedGoAways(): Array<[number, string, string]> {
  const section = DOC.slice(DOC.indexOf('## GOAWAY codes'));
  return [...section.matchAll(/^\| +(\d+) \| ([A-Z_]+) +\| `(ERR_SB_[A-Z_]+)` +\|$/gm)].map((m) => [
    Number(m[1]),
    m[2]!,
    m[3]!,
  ]);
}

describe('ErrorCode', () => {
  it('has unique, stable ERR_SB_ strings named after their keys', () => {
    expect(new Set(CODES).size).toBe(CODES.length);
    for (const [key, code] of Object.entries(ErrorCode)) expect(code).toBe(`ERR_SB_${key}`);
  });
});

describe('docs/errors.md', () => {
  it('has exactly one row per ErrorCode, in the table of codes', () => {
    const rows = documentedCodes();
    expect([...rows].sort()).toEqual([...CODES].sort());
    expect(new Set(rows).size).toBe(rows.length);
  });

  it.each(CODES)('documents %s', (code) => {
    expect(DOC).toContain(`\`${code}\``);
  });

  it('lists every GOAWAY code with the error code it maps to', () => {
    const rows = documentedGoAways();
    expect(rows.map(([n, name]) => [n, name])).toEqual(
      Object.entries(GoAwayCode).map(([name, n]) => [n, name]),
    );
    for (const [n, , code] of rows) expect(errorCodeForGoAway(n)).toBe(code);
  });

  it('describes the sending direction as the code does', () => {
    // "the first row whose error code matches", and PROTOCOL for the rest.
    for (const code of CODES) {
      const first = documentedGoAways().find(([, , c]) => c === code);
      expect(goAwayCodeFor(code)).toBe(first === undefined ? GoAwayCode.PROTOCOL : first[0]);
    }
    expect(goAwayCodeFor(ErrorCode.CLOSED)).toBe(GoAwayCode.NORMAL);
    expect(goAwayCodeFor(ErrorCode.LINK)).toBe(GoAwayCode.REPLACED);
    expect(goAwayCodeFor(ErrorCode.MESSAGE_TOO_LARGE)).toBe(GoAwayCode.PROTOCOL);
    expect(errorCodeForGoAway(0xffff)).toBe(ErrorCode.PROTOCOL);
  });

  it('names every exported error class', () => {
    for (const cls of [
      SwitchboardError,
      ProtocolError,
      HandshakeError,
      DecodeError,
      OptionError,
      ListenError,
      RendezvousTimeoutError,
      NotDeliveredError,
      RemoteError,
      BatchSendError,
    ]) {
      expect(DOC).toContain(`\`${cls.name}\``);
    }
  });
});

describe('error classes', () => {
  it('SwitchboardError: code, message, name, no cause unless given', () => {
    const err = new SwitchboardError(ErrorCode.CLOSED, 'closed');
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ERR_SB_CLOSED');
    expect(err.message).toBe('closed');
    expect(err.name).toBe('SwitchboardError');
    expect('cause' in err).toBe(false);
    expect(String(err)).toBe('SwitchboardError: closed');
    expect(err.stack).toContain('SwitchboardError: closed');
  });

  it('keeps the cause, whatever it is', () => {
    const root = new Error('ECONNRESET');
    expect(new SwitchboardError(ErrorCode.LINK, 'socket', { cause: root }).cause).toBe(root);
    expect(new SwitchboardError(ErrorCode.LINK, 'socket', { cause: 'text' }).cause).toBe('text');
    expect(new DecodeError('bad', { cause: root }).cause).toBe(root);
    expect(new OptionError('x', 'bad', { cause: root }).cause).toBe(root);
    expect(new NotDeliveredError(1, 'gone', { cause: root }).cause).toBe(root);
    expect(new ProtocolError(ErrorCode.PROTOCOL, 'bad', {}, { cause: root }).cause).toBe(root);
    expect(new HandshakeError(ErrorCode.INTERNAL, 'bug', {}, { cause: root }).cause).toBe(root);
  });

  it('ProtocolError: state and offset, both optional', () => {
    const err = new ProtocolError(ErrorCode.FRAME_TOO_LARGE, 'too big', {
      state: 'header',
      offset: 42,
    });
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.name).toBe('ProtocolError');
    expect([err.code, err.state, err.offset]).toEqual(['ERR_SB_FRAME_TOO_LARGE', 'header', 42]);
    const bare = new ProtocolError(ErrorCode.PROTOCOL, 'bad');
    expect([bare.state, bare.offset]).toEqual([undefined, undefined]);
  });

  it('HandshakeError: a ProtocolError with any code', () => {
    const err = new HandshakeError(ErrorCode.AUTH_FAILED, 'wrong secret', { state: 'await-auth' });
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.name).toBe('HandshakeError');
    expect([err.code, err.state]).toEqual(['ERR_SB_AUTH_FAILED', 'await-auth']);
  });

  it('DecodeError: always ERR_SB_DECODE', () => {
    const err = new DecodeError('truncated CBOR');
    expect([err.name, err.code, err.message]).toEqual([
      'DecodeError',
      'ERR_SB_DECODE',
      'truncated CBOR',
    ]);
  });

  it('OptionError: names the option in a field and in the message', () => {
    const err = new OptionError('heartbeatMs', 'must be a number >= 1, got -1');
    expect([err.name, err.code, err.option]).toEqual([
      'OptionError',
      'ERR_SB_INVALID_OPTION',
      'heartbeatMs',
    ]);
    expect(err.message).toBe('invalid option heartbeatMs: must be a number >= 1, got -1');
    expect(err.suggestion).toBeUndefined();
  });

  it('OptionError: an optional suggestion, with the cause', () => {
    const root = new Error('x');
    const err = new OptionError('lingerMS', 'unknown option', {
      suggestion: 'lingerMs',
      cause: root,
    });
    expect([err.option, err.suggestion, err.cause]).toEqual(['lingerMS', 'lingerMs', root]);
  });

  it('ListenError: the address, the system code and the cause', () => {
    const root = Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:80'), {
      code: 'EACCES',
    });
    const err = new ListenError('0.0.0.0:80', 'EACCES', 'permission denied', { cause: root });
    expect(err).toBeInstanceOf(SwitchboardError);
    expect([err.name, err.code, err.address, err.systemCode, err.cause]).toEqual([
      'ListenError',
      'ERR_SB_LISTEN',
      '0.0.0.0:80',
      'EACCES',
      root,
    ]);
    expect(err.message).toBe('cannot listen on 0.0.0.0:80: permission denied');
  });

  it('RendezvousTimeoutError: lists the missing peers', () => {
    const err = new RendezvousTimeoutError([2, 5], 1500);
    expect([err.name, err.code]).toEqual(['RendezvousTimeoutError', 'ERR_SB_RENDEZVOUS_TIMEOUT']);
    expect(err.missing).toEqual([2, 5]);
    expect(err.message).toBe('rendezvous timed out after 1500 ms; missing peers: 2, 5');
    expect(err.reasons).toEqual([]);
    expect('cause' in err).toBe(false);
  });

  it('RendezvousTimeoutError: a line per reason; the one error as cause', () => {
    const refused = new SwitchboardError(ErrorCode.LINK, 'connect ECONNREFUSED');
    const err = new RendezvousTimeoutError([2, 5], 1000, [
      { node: 2, address: 'a:1', reason: 'connection refused', error: refused },
      { node: 5, address: 'b:2', reason: 'never connected', error: undefined },
    ]);
    expect(err.message).toBe(
      'rendezvous timed out after 1000 ms; missing peers: 2, 5\n' +
        '  node 2 (a:1): connection refused\n' +
        '  node 5 (b:2): never connected',
    );
    expect(err.reasons.map((r) => r.node)).toEqual([2, 5]);
    expect(err.cause).toBe(refused);
  });

  it('RendezvousTimeoutError: several errors as an AggregateError cause', () => {
    const one = new SwitchboardError(ErrorCode.LINK, 'refused');
    const two = new HandshakeError(ErrorCode.AUTH_FAILED, 'wrong secret');
    const err = new RendezvousTimeoutError([1, 2], 1000, [
      { node: 1, address: 'a:1', reason: 'refused', error: one },
      { node: 2, address: 'a:2', reason: 'wrong secret', error: two },
    ]);
    expect(err.cause).toBeInstanceOf(AggregateError);
    expect((err.cause as AggregateError).errors).toEqual([one, two]);
  });

  it('RendezvousTimeoutError: an error behind several reasons is its cause once', () => {
    const shared = new HandshakeError(ErrorCode.FINGERPRINT_MISMATCH, 'another node list');
    const err = new RendezvousTimeoutError([1, 2], 1000, [
      { node: 1, address: 'a:1', reason: 'never connected', error: shared },
      { node: 2, address: 'a:2', reason: 'never connected', error: shared },
    ]);
    expect(err.cause).toBe(shared);
  });

  it('NotDeliveredError: names the node', () => {
    const err = new NotDeliveredError(3, 'node 3 restarted');
    expect([err.name, err.code, err.node, err.message]).toEqual([
      'NotDeliveredError',
      'ERR_SB_NOT_DELIVERED',
      3,
      'node 3 restarted',
    ]);
  });

  it('RemoteError: carries the remote name, message and code', () => {
    const err = new RemoteError(4, 'TypeError', 'x is not a function', 'E_APP');
    expect([err.name, err.code, err.node, err.remoteName, err.remoteCode, err.message]).toEqual([
      'RemoteError',
      'ERR_SB_REMOTE',
      4,
      'TypeError',
      'E_APP',
      'x is not a function',
    ]);
    expect(new RemoteError(4, 'Error', 'boom').remoteCode).toBeUndefined();
  });

  it('reports the name of a subclass defined elsewhere', () => {
    class ChannelClosedError extends SwitchboardError {}
    expect(new ChannelClosedError(ErrorCode.CLOSED, 'x').name).toBe('ChannelClosedError');
  });
});

describe('isErrorCode', () => {
  it('is true for a switchboard error with that code, at any depth of the class tree', () => {
    expect(isErrorCode(new SwitchboardError(ErrorCode.TIMEOUT, 't'), ErrorCode.TIMEOUT)).toBe(true);
    expect(
      isErrorCode(new HandshakeError(ErrorCode.UNKNOWN_NODE, 'u'), ErrorCode.UNKNOWN_NODE),
    ).toBe(true);
    expect(isErrorCode(new DecodeError('d'), ErrorCode.DECODE)).toBe(true);
  });

  it('is false for another code, a plain Error, a look-alike object or a non-error', () => {
    expect(isErrorCode(new SwitchboardError(ErrorCode.TIMEOUT, 't'), ErrorCode.ABORTED)).toBe(
      false,
    );
    const lookAlike = Object.assign(new Error('x'), { code: ErrorCode.TIMEOUT });
    expect(isErrorCode(lookAlike, ErrorCode.TIMEOUT)).toBe(false);
    expect(isErrorCode({ code: ErrorCode.TIMEOUT }, ErrorCode.TIMEOUT)).toBe(false);
    for (const v of [undefined, null, 'ERR_SB_TIMEOUT', 42]) {
      expect(isErrorCode(v, ErrorCode.TIMEOUT)).toBe(false);
    }
  });

  it('narrows the type', () => {
    const err: unknown = new NotDeliveredError(1, 'gone');
    if (!isErrorCode(err, ErrorCode.NOT_DELIVERED)) throw new Error('expected a match');
    // Compiles only because `err` is now a SwitchboardError.
    expect(err.code).toBe(ErrorCode.NOT_DELIVERED);
  });
});
