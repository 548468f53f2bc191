/**
 * What the test process and a node of its cluster say to each other over
 * the IPC channel (Node's `advanced` serialization: structured clone, so
 * Buffers, Maps, Dates and bigints cross as they are). The secret travels
 * here, never in argv or the environment.
 */
import type { PeerState, SwitchboardEvent } from '../index.js';

/** An error as it crosses IPC: what a test needs to see of it. */
export interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  readonly code: string | undefined;
  /** A `ClientConnectError`'s (or a rendezvous timeout's) reasons, one per member. */
  readonly reasons?: readonly ReasonInfo[];
}

/** One entry of an error's `reasons`, as it crosses IPC. */
export interface ReasonInfo {
  readonly node: number;
  readonly address: string;
  readonly reason: string;
  /** The code of the error behind the reason, when there is one. */
  readonly code: string | undefined;
  readonly message: string | undefined;
}

/** One peer as a node sees it. */
export interface PeerView {
  readonly node: number;
  readonly state: PeerState;
  readonly incarnation: string | undefined;
}

/** A switchboard event, flattened. */
export interface EventNote {
  readonly type: string;
  readonly node?: number;
  readonly incarnation?: string;
  /** The error message or the reason, when the event has one. */
  readonly detail?: string;
  readonly code?: string;
}

/** Test -> node: start the switchboard and the user's module. */
export interface StartCommand {
  readonly t: 'start';
  readonly id: number;
  readonly nodes: ReadonlyArray<string | { host: string; port: number; tags: string[] }>;
  /** Absent for a node of `startNode` started `insecure`. */
  readonly secret?: string | Uint8Array;
  /** Addresses to try for `bindHost`, in order, while they are taken; none: as the options say. */
  readonly bindHosts: readonly string[];
  readonly options: Readonly<Record<string, unknown>>;
  /** The user's module, as a URL `import()` takes. */
  readonly module: string;
  readonly data: unknown;
  /**
   * A client of `startClient`: attach with `Switchboard.connect` (the
   * options, node list and secret as given) instead of starting a member.
   */
  readonly client?: boolean;
}

/** Test -> node. */
export type Command =
  | StartCommand
  | { readonly t: 'call'; readonly re: number; readonly fn: string; readonly args: unknown[] }
  /** `exitByItself`: close, then let the process end on its own (no `process.exit()`). */
  | { readonly t: 'stop'; readonly exitByItself?: boolean }
  /** A spare (lib/testing/spares.ts): import the module ahead of its start. */
  | { readonly t: 'preload'; readonly module: string };

/** Node -> test. */
export type NodeMessage =
  | { readonly t: 'booted'; readonly pid: number }
  | { readonly t: 'listening'; readonly host: string; readonly incarnation: string }
  | { readonly t: 'ready'; readonly fns: readonly string[] }
  | { readonly t: 'peers'; readonly peers: readonly PeerView[] }
  | { readonly t: 'event'; readonly event: EventNote }
  | { readonly t: 'report'; readonly kind: string; readonly data: unknown }
  | { readonly t: 'reply'; readonly re: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'reply'; readonly re: number; readonly ok: false; readonly error: ErrorInfo }
  | { readonly t: 'fatal'; readonly error: ErrorInfo }
  | { readonly t: 'stopped' };

/** `err` as it crosses IPC. */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const reasons = (err as { reasons?: unknown }).reasons;
    return {
      name: err.name,
      message: err.message,
      stack: err.stack,
      code: codeOf(err),
      ...(Array.isArray(reasons) ? { reasons: reasons.map(reasonInfo) } : {}),
    };
  }
  return { name: 'Error', message: String(err), stack: undefined, code: undefined };
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function reasonInfo(r: {
  node: number;
  address?: string;
  reason?: string;
  error?: unknown;
}): ReasonInfo {
  return {
    node: r.node,
    address: r.address ?? '',
    reason: r.reason ?? '',
    code: codeOf(r.error),
    message: r.error instanceof Error ? r.error.message : undefined,
  };
}

/** A switchboard event as the kit keeps it (drops and errors summed up in `detail`). */
export function note(e: SwitchboardEvent): EventNote | undefined {
  switch (e.type) {
    case 'peer-up':
    case 'peer-restarted':
      return { type: e.type, node: e.node, incarnation: e.incarnation };
    case 'peer-suspect':
      return { type: e.type, node: e.node, detail: e.reason };
    case 'peer-reconnected':
      return { type: e.type, node: e.node };
    case 'peer-down':
      return { type: e.type, node: e.node, detail: e.error.message, code: e.error.code };
    case 'link-error':
    case 'auth-failure':
      return {
        type: e.type,
        ...(e.node === undefined ? {} : { node: e.node }),
        detail: e.error.message,
        code: e.error.code,
      };
    case 'drop':
      return { type: e.type, detail: `${e.count} on ${e.channel}: ${e.reason}` };
    case 'client-up':
      return { type: e.type, detail: `client ${e.client} from ${e.address ?? 'unknown'}` };
    case 'client-down':
      return { type: e.type, detail: `client ${e.client}: ${e.error.message}`, code: e.error.code };
    case 'error':
      return { type: e.type, detail: e.error.stack ?? e.error.message };
  }
}
