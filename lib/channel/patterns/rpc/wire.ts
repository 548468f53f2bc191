/**
 * RPC's messages (docs/wire-protocol.md 10.14.2). Every one is an ordinary
 * channel message, an array whose first field says what it is:
 *
 * - a request, on the method's request receiver:
 *   `[op, callId, callerNode, replyReceiverId, remainingMs, payload]`, plus
 *   `downReceiverId` when replies stream; `remainingMs` is -1 without a
 *   deadline;
 * - a cancel, on the same receiver (so it never overtakes its request):
 *   `[CANCEL, callId, callerNode, why]`, `why` 0 for the caller's abort, 1
 *   for a passed deadline;
 * - a reply, on the caller's reply receiver: `[callId, status, value]`;
 * - a stream item: `[VALUE, x]`, `[END]` or `[ERROR, ...info]`: an explicit
 *   end marker tells a finished stream from one whose sender vanished.
 */
import { ErrorCode, RemoteError, SwitchboardError } from '../../../errors.js';
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

/** `[name, message, code | null, framework]`: framework errors arrive as a SwitchboardError, others as a RemoteError. */
export type ErrorInfo = [string, string, string | null, 0 | 1];

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * What a handler's thrown value looks like on the wire: name, message and a
 * string `code` if it has one. It reaches the caller as a RemoteError, even
 * when it is one of the library's own errors (a handler's failed nested
 * call is not the caller's failure).
 */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return [err.name, err.message, typeof code === 'string' ? code : null, 0];
  }
  return ['Error', String(err), null, 0];
}

/** An error the library raised on the server (no such method, an unencodable reply...). */
export function frameworkInfo(code: ErrorCode, message: string): ErrorInfo {
  return ['SwitchboardError', message, code, 1];
}

/** Rebuilds an error sent by `node`: a RemoteError, or the library's own error when the framework raised it. */
export function errorFromInfo(node: number, raw: unknown): SwitchboardError {
  const info = Array.isArray(raw) ? (raw as unknown[]) : [];
  const name = typeof info[0] === 'string' ? info[0] : 'Error';
  const message = typeof info[1] === 'string' ? info[1] : 'remote error';
  const code = typeof info[2] === 'string' ? info[2] : undefined;
  if (info[3] === 1 && code !== undefined && ERROR_CODES.has(code))
    return new SwitchboardError(code as ErrorCode, `node ${node}: ${message}`);
  return new RemoteError(node, name, message, code);
}
