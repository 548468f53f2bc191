/**
 * Headers: text names to text values beside a message, a call, a
 * publication or a task (docs/api.md, "Headers"). They travel in the
 * message's head (docs/wire-protocol.md 10.6, field `04`), count in its
 * size, and are checked here, at the sender, the same on the local and the
 * remote path: a bad header is an OptionError (ERR_SB_INVALID_OPTION,
 * option `headers`), never a message sent without it.
 */
import { OptionError } from '../errors.js';
import type { HeadHeaders } from '../protocol/head.js';

/** A message's headers: text names to text values. W3C trace context uses `traceparent` and `tracestate`. */
export type Headers = Readonly<Record<string, string>>;

/** What a receiver, handler or worker sees when a message came without headers. */
export const NO_HEADERS: Headers = Object.freeze(Object.create(null) as Record<string, string>);

/** Bytes of UTF-8 a header name or value may take (the wire's u16 lengths). */
const MAX_PART = 0xffff;
/** Headers on one message at most (the wire's u16 count). */
const MAX_COUNT = 0xffff;

/**
 * `headers` checked and copied (so a later change by the caller does not
 * reach what was sent), frozen; undefined when empty (nothing travels).
 * @throws {OptionError} (`headers`) for anything but an object of
 *   non-empty names to text values, each at most 65535 bytes of UTF-8
 */
export function checkHeaders(headers: unknown): HeadHeaders | undefined {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers))
    throw new OptionError('headers', 'must be an object of text names to text values');
  const out = Object.create(null) as Record<string, string>;
  let n = 0;
  for (const k of Object.keys(headers)) {
    const v = (headers as Record<string, unknown>)[k];
    if (typeof v !== 'string')
      throw new OptionError('headers', `header "${k.slice(0, 64)}" must be text, got ${typeof v}`);
    if (k.length === 0) throw new OptionError('headers', 'a header name must not be empty');
    if (Buffer.byteLength(k) > MAX_PART || Buffer.byteLength(v) > MAX_PART)
      throw new OptionError(
        'headers',
        `header "${k.slice(0, 64)}": names and values are at most ${MAX_PART} bytes of UTF-8`,
      );
    out[k] = v;
    n++;
  }
  if (n > MAX_COUNT) throw new OptionError('headers', `at most ${MAX_COUNT} headers`);
  return n === 0 ? undefined : Object.freeze(out);
}

/** A message with its headers, as a receiver made with `withHeaders: true` delivers it. */
export interface Delivery<T> {
  readonly value: T;
  /** The headers it was sent with ({@link NO_HEADERS} when none). */
  readonly headers: Headers;
}
