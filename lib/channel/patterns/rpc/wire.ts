/**
 * RPC's messages (docs/wire-protocol.md 10.14.2). Every one is an ordinary
 * channel message with a head (the core's `Headed`: RPC's fields in a
 * small binary head, the application's value as the body, so a request
 * or reply costs one encode of the value alone, and an error in the value
 * is named from the value's own root):
 *
 * - a request, on the method's request receiver: head `[op, callId,
 *   callerNode, replyReceiverId, remainingMs]`, plus `downReceiverId` when
 *   replies stream; `remainingMs` is -1 without a deadline; body the payload;
 * - a cancel, on the same receiver (so it never overtakes its request):
 *   head `[CANCEL, callId, callerNode, why]`, `why` 0 for the caller's
 *   abort, 1 for a passed deadline; body null;
 * - a reply, on the caller's reply receiver: head `[callId, status]`, body
 *   the value (an error info for status ERROR);
 * - a stream item: head `[VALUE]` with the value, `[END]`, or `[ERROR]`
 *   with an error info: an explicit end marker tells a finished stream from
 *   one whose sender vanished.
 */
import { ErrorCode, MessageTooLargeError, RemoteError, SwitchboardError } from '../../../errors.js';
import { Headed } from '../../envelope.js';
import { ValidationError } from '../../schema.js';
import type { StandardIssue } from '../../schema.js';
import type { RpcKind } from './types.js';

/** Messages on a request channel: a request (its op says its kind), or a cancel. */
export const Op = { UNARY: 0, CANCEL: 1, SERVER_STREAM: 2, CLIENT_STREAM: 3, BIDI: 4 } as const;
/** Why a call was cancelled. */
export const Why = { ABORTED: 0, DEADLINE: 1 } as const;
/** Statuses of a reply. */
export const Reply = { OK: 0, ERROR: 1, ACCEPT: 2 } as const;
/** Messages on a stream. */
export const Item = { VALUE: 0, ERROR: 1, END: 2 } as const;

/** The request op of each kind, and back. */
export const KIND_OP: Record<RpcKind, number> = {
  unary: Op.UNARY,
  'server-stream': Op.SERVER_STREAM,
  'client-stream': Op.CLIENT_STREAM,
  bidi: Op.BIDI,
};
export const OP_KIND: ReadonlyArray<RpcKind | undefined> = [
  'unary',
  undefined,
  'server-stream',
  'client-stream',
  'bidi',
];

/**
 * `[name, message, code | null, framework, details?]`: framework errors
 * arrive as the library's own error, others as a RemoteError. `details`
 * carries what a framework error's class needs (a size refusal's `size`,
 * `limit` and `node`; a contract's validation refusal its `where` and
 * `issues`; a contract mismatch the server's `hash`).
 */
export type ErrorInfo =
  | [string, string, string | null, 0 | 1]
  | [string, string, string | null, 1, Record<string, unknown>];

/**
 * Errors the library raises inside a handler it wraps (a service
 * contract's validation): they travel as framework errors, where any other
 * error a handler throws is the handler's own (a RemoteError).
 */
const raisedHere = new WeakSet<object>();

/** Marks `err` as raised by the library on the server (see {@link raisedHere}). */
export function frameworkRaised<E extends SwitchboardError>(err: E): E {
  raisedHere.add(err);
  return err;
}

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * What a handler's thrown value looks like on the wire: name, message and a
 * string `code` if it has one. It reaches the caller as a RemoteError, even
 * when it is one of the library's own errors (a handler's failed nested
 * call is not the caller's failure).
 */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof ValidationError && raisedHere.has(err))
    return [
      'ValidationError',
      err.message,
      err.code,
      1,
      { where: err.where, issues: err.issues.map(issueInfo) },
    ];
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return [err.name, err.message, typeof code === 'string' ? code : null, 0];
  }
  return ['Error', String(err), null, 0];
}

/** An error the library raised on the server (no such method, an unencodable reply...). */
export function frameworkInfo(
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
): ErrorInfo {
  return details === undefined
    ? ['SwitchboardError', message, code, 1]
    : ['SwitchboardError', message, code, 1, details];
}

/** An issue as it travels: `[message, path]`, the path's keys as text or numbers. */
function issueInfo(issue: StandardIssue): [string, Array<string | number>] {
  const path = (issue.path ?? []).map((p) => {
    const key = typeof p === 'object' ? p.key : p;
    return typeof key === 'number' ? key : String(key);
  });
  return [issue.message, path];
}

function issueFromInfo(raw: unknown): StandardIssue {
  const a = Array.isArray(raw) ? (raw as unknown[]) : [];
  const message = typeof a[0] === 'string' ? a[0] : 'invalid';
  const path = Array.isArray(a[1])
    ? (a[1] as unknown[]).filter((k) => typeof k === 'string' || typeof k === 'number')
    : [];
  return path.length === 0 ? { message } : { message, path };
}

/** The info of a library error raised on the server, with the fields its class carries. */
export function frameworkInfoOf(err: SwitchboardError, what: string): ErrorInfo {
  if (err instanceof MessageTooLargeError)
    return [
      'MessageTooLargeError',
      `${what}: ${err.message}`,
      err.code,
      1,
      { size: err.size, limit: err.limit, node: err.node },
    ];
  return frameworkInfo(err.code, `${what}: ${err.message}`);
}

/** Rebuilds an error sent by `node`: a RemoteError, or the library's own error when the framework raised it. */
export function errorFromInfo(node: number, raw: unknown): SwitchboardError {
  const info = Array.isArray(raw) ? (raw as unknown[]) : [];
  const name = typeof info[0] === 'string' ? info[0] : 'Error';
  const message = typeof info[1] === 'string' ? info[1] : 'remote error';
  const code = typeof info[2] === 'string' ? info[2] : undefined;
  if (info[3] === 1 && code !== undefined && ERROR_CODES.has(code)) {
    const d = info[4] as Record<string, unknown> | undefined;
    if (code === ErrorCode.VALIDATION && typeof d?.where === 'string' && Array.isArray(d.issues))
      return new ValidationError(`node ${node}: ${d.where}`, d.issues.map(issueFromInfo));
    if (
      code === ErrorCode.MESSAGE_TOO_LARGE &&
      typeof d?.size === 'number' &&
      typeof d.limit === 'number' &&
      typeof d.node === 'number'
    )
      return new MessageTooLargeError(d.node, d.size, d.limit, '', `node ${node}: ${message}`);
    return new SwitchboardError(code as ErrorCode, `node ${node}: ${message}`);
  }
  return new RemoteError(node, name, message, code);
}

/** The head of an RPC message, or undefined when it has none (a malformed message). */
export function headOf(m: unknown): Headed | undefined {
  return m instanceof Headed ? m : undefined;
}
