/**
 * Child side of the multi-process specs: what every program a spec spawns
 * with {@link ChildProcessHandle} (spec/support/children.ts) shares. It
 * reports to the parent over IPC, answers its commands, reports a fatal error
 * before dying, and exits 2 when the parent goes away, so no orphan outlives
 * a spec.
 *
 * Nothing here runs on import: the parent side imports its types only.
 */
import { SwitchboardError } from '../../lib/errors.js';

/** `Omit` over each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A command from the parent; `re` correlates the reply. */
export interface CommandBase {
  readonly re: number;
  readonly cmd: string;
}

/** A command without its correlation id. */
export type CommandBody<C extends CommandBase> = DistributiveOmit<C, 're'>;

/** The answer to a command. */
export type ReplyMessage =
  | { readonly type: 'reply'; readonly re: number; readonly ok: true; readonly value: unknown }
  | {
      readonly type: 'reply';
      readonly re: number;
      readonly ok: false;
      readonly code: string | undefined;
      readonly message: string;
    };

/** The child is about to die of an uncaught error. */
export interface FatalMessage {
  readonly type: 'fatal';
  readonly message: string;
}

/** A switchboard started in the child. */
export interface StartedMessage {
  readonly type: 'started';
  readonly id: number;
  readonly incarnation: string;
}

/** Sends `message` to the parent if it is still connected; `sent` runs once it is written. */
export function sendToParent(message: unknown, sent?: () => void): void {
  if (process.connected) process.send!(message, undefined, {}, sent);
}

/** The `code` of an error, when it has a string one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

let exiting = false;

/** Marks the coming disconnect from the parent as wanted (not the parent dying). */
export function leaving(): void {
  exiting = true;
}

/**
 * Reports uncaught errors as `fatal` and dies of them, and exits 2 when the
 * parent dies or drops this process (unless {@link leaving} was called).
 * Returns the fatal handler, for promises the program does not await.
 */
export function supervise(label: string): (err: unknown) => void {
  const fatal = (err: unknown): void => {
    const message =
      err instanceof SwitchboardError
        ? `${err.code}: ${err.stack ?? err.message}`
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    console.error(`[${label}] fatal: ${message}`);
    sendToParent({ type: 'fatal', message } satisfies FatalMessage);
    process.exitCode = 1;
    setImmediate(() => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  // The parent died or dropped us: never linger as an orphan holding ports.
  process.on('disconnect', () => {
    if (!exiting) process.exit(2);
  });
  return fatal;
}

/**
 * Answers every command from the parent with a `reply`: the value `handle`
 * resolves with, or the error it rejects with. `afterReply(c)` may return a
 * callback to run once a successful reply is written.
 */
export function serveCommands<C extends CommandBase>(
  handle: (c: C) => Promise<unknown>,
  afterReply: (c: C) => (() => void) | undefined = () => undefined,
): void {
  process.on('message', (c: C) => {
    handle(c).then(
      (value) =>
        sendToParent(
          { type: 'reply', re: c.re, ok: true, value: value ?? null } satisfies ReplyMessage,
          afterReply(c),
        ),
      (err: unknown) =>
        sendToParent({
          type: 'reply',
          re: c.re,
          ok: false,
          code: errorCode(err),
          message: err instanceof Error ? err.message : String(err),
        } satisfies ReplyMessage),
    );
  });
}
