/**
 * The one envelope of the channel core: how a value becomes a message and
 * back, for every pattern. A `Uint8Array` travels as raw bytes (flag RAW,
 * no CBOR: the fastest path for binary payloads); anything else as CBOR
 * under the codec's one rule (docs/guide.md, "What a message can carry").
 * Between endpoints of one process a value is handed over as is, after the
 * same rule is checked (or through a real encode and decode with
 * `forceEncoding`), so the local path never accepts what the remote path
 * refuses.
 *
 * Patterns never see bytes: they send values and the outlets encode them.
 * A pattern's own fields (a topic, a task's ids) travel as a {@link Headed}
 * message: a small binary head beside the application's value (flag HEAD),
 * so that a raw body stays raw. A pattern that sends one value to many
 * places wraps it in an {@link Envelope}, so it is encoded once for all of
 * them.
 */
import { MessageTooLargeError } from '../errors.js';
import { checkEncodable, decodeValue, encodeValue } from '../protocol/codec.js';
import type { CodecContext, PortableHandle } from '../protocol/codec.js';
import { FrameFlag } from '../protocol/frame.js';
import {
  encodeHead,
  headEnd,
  headFields,
  headHeaders,
  headSize,
  joinHead,
} from '../protocol/head.js';
import type { HeadField, HeadHeaders } from '../protocol/head.js';

export type { HeadField, HeadHeaders };

/**
 * A message with a pattern's fields beside the application's value: what
 * a pattern sends, and what its receiver gets (locally, the very object).
 */
export class Headed<B = unknown> {
  constructor(
    /** The pattern's fields: numbers and strings. */
    readonly head: readonly HeadField[],
    /** The application's value. */
    readonly body: B,
    /** `head` already encoded (by encodeHead, with an empty body), when the pattern keeps it. */
    readonly prefix?: Buffer,
    /** The application's headers (docs/api.md, "Headers"), after the pattern's fields; never with `prefix`. */
    readonly headers?: HeadHeaders,
  ) {}
}

const NO_FIELDS: readonly HeadField[] = Object.freeze([]);

/** A plain channel message with headers: a head of no pattern field, then the headers. */
export function withHeaders(value: unknown, headers: HeadHeaders): Headed {
  return new Headed(NO_FIELDS, value, undefined, headers);
}

const NO_BODY = Buffer.alloc(0);

/** `head` encoded once, for a pattern that sends many messages with it ({@link Headed.prefix}). */
export function headPrefix(head: readonly HeadField[]): Buffer {
  return encodeHead(head, NO_BODY);
}

/** Frame flags of the bytes {@link wireOf} returned last (module state: one synchronous call, no result object per message). */
let wireFlags = 0;
/** Handles the last {@link Envelope.encode} collected (module state, as {@link wireFlags}). */
let collected: PortableHandle[] | undefined;
const collect = (h: PortableHandle): void => {
  (collected ??= []).push(h);
};

/** Wire bytes of any value; its frame flags are then in {@link wireFlags} (fresh bytes unless `value` is raw bytes). */
function wireOf(value: unknown, onHandle?: (h: PortableHandle) => void): Uint8Array {
  if (value instanceof Headed) {
    const body: unknown = value.body;
    if (body instanceof Uint8Array) {
      wireFlags = FrameFlag.HEAD | FrameFlag.RAW;
      return value.prefix === undefined
        ? encodeHead(value.head, body, value.headers)
        : joinHead(value.prefix, body);
    }
    wireFlags = FrameFlag.HEAD;
    const bytes = encodeValue(body, onHandle);
    return value.prefix === undefined
      ? encodeHead(value.head, bytes, value.headers)
      : joinHead(value.prefix, bytes);
  }
  if (value instanceof Uint8Array) {
    wireFlags = FrameFlag.RAW;
    return value;
  }
  const bytes = encodeValue(value, onHandle);
  wireFlags = 0;
  return bytes;
}

/** A value encoded at most once, whatever number of outlets it goes to. */
export class Envelope {
  /** @internal The wire form, once encoded. */
  bytes: Uint8Array | undefined;
  /** @internal Frame flags of the wire form (RAW or 0). */
  flags = 0;
  /** @internal Handles the value carries. */
  handles: PortableHandle[] | undefined;

  constructor(
    /** What a local receiver gets. */
    readonly value: unknown,
  ) {}

  /**
   * The wire form, encoded at the first call.
   * @throws the codec's ERR_SB_ENCODE for a value it cannot carry
   */
  encode(): Uint8Array {
    if (this.bytes !== undefined) return this.bytes;
    collected = undefined;
    const bytes = wireOf(this.value, collect);
    this.flags = wireFlags;
    this.handles = collected;
    collected = undefined;
    return (this.bytes = bytes);
  }
}

/**
 * Turns values into message bytes for remote outlets. One per switchboard,
 * used synchronously: the fields describe the last `encode()`.
 */
export class MessageEncoder {
  /** Frame flags of the last message (RAW or 0). */
  flags = 0;
  /** True when the last bytes are fresh CBOR that a link may keep without copying. */
  owned = false;
  /** Handles the last message carried (cleared by the next encode). */
  readonly handles: PortableHandle[] = [];
  /** The head the last bytes go behind (the link writes it), if any. */
  head: readonly HeadField[] | undefined;
  /** Size of the last message: its head and the bytes returned. */
  size = 0;
  private readonly onHandle = (h: PortableHandle): void => {
    this.handles.push(h);
  };

  /**
   * The bytes of `value` (an {@link Envelope} is encoded once for all); for
   * a {@link Headed} value, its body's bytes, with `head` set to go in front.
   * @throws the codec's ERR_SB_ENCODE
   */
  encode(value: unknown): Uint8Array {
    if (this.handles.length > 0) this.handles.length = 0;
    if (value instanceof Envelope) {
      const bytes = value.encode();
      this.head = undefined;
      this.size = bytes.length;
      this.flags = value.flags;
      // Its encoding never changes; raw bytes alone are the caller's memory.
      this.owned = value.flags !== FrameFlag.RAW;
      if (value.handles !== undefined) this.handles.push(...value.handles);
      return bytes;
    }
    if (value instanceof Headed && value.prefix === undefined && value.headers === undefined) {
      // The body alone: the link writes the head in front of it.
      const head = value.head;
      const headLength = headSize(head);
      const body: unknown = value.body;
      let bytes: Uint8Array;
      if (body instanceof Uint8Array) {
        this.flags = FrameFlag.HEAD | FrameFlag.RAW;
        this.owned = false;
        bytes = body;
      } else {
        this.flags = FrameFlag.HEAD;
        this.owned = true;
        bytes = encodeValue(body, this.onHandle);
      }
      this.head = head;
      this.size = headLength + bytes.length;
      return bytes;
    }
    this.head = undefined;
    if (value instanceof Headed) {
      // A kept prefix, or headers: the whole message encoded here (the link's own head writer stays for the common case).
      const bytes = wireOf(value, this.onHandle);
      this.flags = wireFlags;
      this.owned = true;
      this.size = bytes.length;
      return bytes;
    }
    if (value instanceof Uint8Array) {
      this.flags = FrameFlag.RAW;
      this.owned = false;
      this.size = value.length;
      return value;
    }
    this.flags = 0;
    this.owned = true;
    const bytes = encodeValue(value, this.onHandle);
    this.size = bytes.length;
    return bytes;
  }
}

/** How values cross between endpoints of this process. */
export interface LocalRule {
  /** Encode and decode as a remote receiver would (a copy). */
  readonly forceEncoding: boolean;
  /** Check the encoding rule without encoding (the value itself is handed over). */
  readonly check: boolean;
  /** This node's `maxMessageSize`: headers alone over it are refused locally as remotely. */
  readonly maxMessageSize: number;
  /** This node's index, for the error. */
  readonly self: number;
}

/**
 * What a local receiver gets for `value`: the value itself (checked against
 * the encoding rule unless checks are off), or with `forceEncoding` what a
 * remote receiver would get.
 * @throws the codec's ERR_SB_ENCODE
 */
export function localValue(value: unknown, rule: LocalRule, ctx: CodecContext): unknown {
  const v = value instanceof Envelope ? value.value : value;
  if (rule.forceEncoding) {
    const bytes = wireOf(v);
    return decodeMessage(wireFlags, Buffer.from(bytes), ctx);
  }
  if (v instanceof Headed) {
    if (v.headers !== undefined) checkLocalHeaders(v, rule);
    localValue(v.body, rule, ctx);
    return v;
  }
  // Primitives other than symbols always pass: skip the call for them.
  if (
    rule.check &&
    ((typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) ||
      typeof v === 'function' ||
      typeof v === 'symbol')
  )
    checkEncodable(v);
  return v;
}

/**
 * Headers on the local path: encodable as the wire carries them, and not
 * alone over this node's message limit (the body is not measured locally,
 * docs/guide.md "What a local receiver gets").
 */
function checkLocalHeaders(v: Headed, rule: LocalRule): void {
  const size = headSize(v.head, v.headers);
  if (size > rule.maxMessageSize)
    throw new MessageTooLargeError(rule.self, size, rule.maxMessageSize, 'headers');
}

/** Decodes a message's bytes: raw bytes as a view, CBOR through the codec. */
export function decodeMessage(flags: number, bytes: Buffer, ctx: CodecContext): unknown {
  if ((flags & FrameFlag.HEAD) !== 0) {
    const fields = headFields(bytes);
    const body = headEnd;
    const rest = bytes.subarray(body);
    const headers = headHeaders;
    return new Headed(
      fields,
      (flags & FrameFlag.RAW) !== 0 ? rest : decodeValue(rest, ctx),
      undefined,
      headers,
    );
  }
  // Zero-copy, like byte strings inside CBOR: a view into the read chunk.
  // An application keeping many small ones copies them.
  if ((flags & FrameFlag.RAW) !== 0) return bytes;
  return decodeValue(bytes, ctx);
}
