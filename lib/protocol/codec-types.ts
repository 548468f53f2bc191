/**
 * The codec's public types and limits, and the small checks of them that
 * several codec files share. lib/protocol/codec.ts re-exports the public
 * ones: the rest of the library imports them from there.
 *
 * A file of its own because it sits below every other codec file: the
 * payload rule (payload-rule.ts) needs `PortableHandle` at run time, the
 * pre-scan (cbor-scan.ts) needs the limits and {@link HANDLE_TAG}, and
 * codec.ts imports both, so these cannot live in codec.ts without an import
 * cycle. It holds no state.
 */
import { OptionError } from '../errors.js';

/** What a channel handle (e.g. a `Sender`) looks like on the wire. */
export interface HandleRef {
  /** Handle type, e.g. `"sender"`; interpreted by {@link CodecContext.reviveHandle}. */
  readonly kind: string;
  /** Node index that owns the handle's other end (a non-negative integer). */
  readonly node: number;
  /** Identifier of the handle on that node (a non-negative integer). */
  readonly id: number;
  /** Optional name (named channels). */
  readonly name?: string;
}

/** True for a non-negative safe integer: what a {@link HandleRef}'s `node` and `id` must be. */
export function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Base class for values that travel as handles (the channel layer's `Sender`
 * extends it). Any instance of a subclass, wherever it sits in a value
 * (object property, array element, `Map` value...), is written as tag
 * {@link HANDLE_TAG} around `[kind, node, id]` or `[kind, node, id, name]`.
 */
export abstract class PortableHandle {
  /**
   * The wire form of this handle. Called synchronously in the middle of
   * {@link encodeValue} (and by {@link checkEncodable}; again, when encoding
   * fails, to find what failed): it must be pure and must not call
   * `encodeValue` itself (cbor-x's encoder is not re-entrant). `node` and `id` must be
   * non-negative safe integers, `kind` and `name` strings, or encoding fails
   * with an `ERR_SB_ENCODE` error.
   */
  abstract toHandleRef(): HandleRef;
}

/** Turns a decoded HandleRef back into a live object bound to the local side. */
export interface CodecContext {
  /**
   * Called synchronously during {@link decodeValue} once per handle in the
   * payload, with a frozen, validated ref; its result replaces the handle in
   * the decoded value. If it throws, the decode fails with a `DecodeError`
   * whose `cause` is the thrown error.
   */
  reviveHandle(ref: HandleRef): unknown;
}

/**
 * CBOR tag number of a {@link PortableHandle}. 40100 lies in IANA's
 * first-come-first-served range (32768 and up) and is encoded in 3 bytes
 * (`d9 9c a4`).
 */
export const HANDLE_TAG: number = 40100;

/** Limits applied to every decoded payload. */
export interface CodecLimits {
  /**
   * Deepest allowed nesting of arrays and maps (the top-level container is
   * depth 1; tags do not count, and the scan never lets a tag wrap another
   * tag). Default 64; an integer from 0 to {@link MAX_CODEC_DEPTH}.
   */
  maxDepth: number;
  /**
   * Largest accepted payload, in bytes. Default 64 MiB (docs/guide.md section 2);
   * an integer from 1 to 2^31 - 1.
   */
  maxMessageSize: number;
}

/**
 * Upper bound for {@link CodecLimits.maxDepth}. cbor-x decodes recursively
 * and a tagged container costs it two stack frames; from a fresh stack it
 * overflows near 1,100 nested `Set`s, so 256 keeps a wide margin for callers
 * that decode from deep inside their own call stack.
 */
export const MAX_CODEC_DEPTH = 256;

/** Default limits: depth 64, 64 MiB. */
export const DEFAULT_CODEC_LIMITS: Readonly<CodecLimits> = Object.freeze({
  maxDepth: 64,
  maxMessageSize: 64 * 1024 * 1024,
});

// The scan keeps per-level counters in Int32Arrays, so sizes must fit in 31 bits.
export const MAX_MESSAGE_SIZE_LIMIT = 0x7fffffff;

/** Throws an `OptionError` for limits out of the ranges {@link CodecLimits} states. */
export function validateLimits(limits: CodecLimits): void {
  const { maxDepth, maxMessageSize } = limits;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_CODEC_DEPTH) {
    throw new OptionError(
      'maxDepth',
      `must be an integer from 0 to ${MAX_CODEC_DEPTH}, got ${String(maxDepth)}`,
    );
  }
  if (
    !Number.isInteger(maxMessageSize) ||
    maxMessageSize < 1 ||
    maxMessageSize > MAX_MESSAGE_SIZE_LIMIT
  ) {
    throw new OptionError(
      'maxMessageSize',
      `must be an integer from 1 to ${MAX_MESSAGE_SIZE_LIMIT} bytes, got ${String(maxMessageSize)}`,
    );
  }
}

/** The message of a thrown value, for the codec's own error messages. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
