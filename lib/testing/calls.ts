/**
 * The calls a test makes into one node (`node(i).call(fn, ...args)`): each
 * gets a correlation number, a timeout, and an answer: the function's
 * result, a {@link NodeCallError} rebuilt from what it threw, or a failure
 * describing the node when it does not answer.
 */
import type { Command, ErrorInfo, NodeMessage } from './messages.js';

/** An error thrown by a function called in a node, rebuilt in the test process. */
export class NodeCallError extends Error {
  /** The error's `code` in the node, if it had a string one. */
  readonly code: string | undefined;
  /** The stack in the node. */
  readonly remoteStack: string | undefined;

  constructor(
    readonly node: number,
    readonly fn: string,
    info: ErrorInfo,
  ) {
    super(`node ${node}: ${fn}() threw ${info.name}: ${info.message}`);
    this.code = info.code;
    this.remoteStack = info.stack;
  }

  override get name(): string {
    return 'NodeCallError';
  }
}

interface Pending {
  readonly fn: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
}

/** The calls in flight to one node. */
export class Calls {
  private nextRe = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly node: number,
    private readonly send: (c: Command) => void,
    /** The error for a call that got no answer, once the node's last output is in. */
    private readonly failure: (what: string) => Promise<Error>,
  ) {}

  /** Calls `fn(...args)`; `state()` says what the node was doing if it times out. */
  call<T>(
    fn: string,
    args: readonly unknown[],
    timeoutMs: number,
    state: () => string,
  ): Promise<T> {
    const re = this.nextRe++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(re);
        void this.failure(`${fn}() did not answer within ${timeoutMs} ms (node ${state()})`).then(
          reject,
        );
      }, timeoutMs);
      this.pending.set(re, {
        fn,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.send({ t: 'call', re, fn, args: [...args] });
    });
  }

  /** A reply from the node. */
  answered(m: Extract<NodeMessage, { t: 'reply' }>): void {
    const c = this.pending.get(m.re);
    if (c === undefined) return;
    this.pending.delete(m.re);
    if (m.ok) c.resolve(m.value);
    else c.reject(new NodeCallError(this.node, c.fn, m.error));
  }

  /** The node is gone: every call in flight fails with `why`. */
  abandon(why: string): void {
    for (const [re, c] of this.pending) {
      this.pending.delete(re);
      void this.failure(`${c.fn}() got no answer: the node ${why}`).then(c.reject);
    }
  }
}
