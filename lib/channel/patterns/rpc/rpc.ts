/**
 * RPC built on channels (docs/guide.md, "RPC"): unary, server-streaming,
 * client-streaming and bidirectional calls, with deadlines that travel with
 * the request, cancellation, typed remote errors and load balancing over
 * the nodes that serve a method. Nothing here touches a socket or the
 * codec: every message is an ordinary channel message, so RPC gets the
 * core's flow control, order, replay across reconnects and session-loss
 * reporting. This file joins the two halves ({@link Caller},
 * {@link Server}) and the peer events they need.
 *
 * Decisions worth knowing:
 * - No server yet: a call waits up to `waitForServerMs` (default 1 s) for
 *   the directory to list one, because entries travel right after a node
 *   links or serves and failing at once would race them; then
 *   ERR_SB_NO_SERVER.
 * - `ctx.deadline` is in epoch ms (`Date.now()` scale); the wire carries the
 *   time left, so clocks need not agree.
 * - A lost server fails its calls when its session ends, not when a link
 *   merely drops: a link that comes back replays both the request and the
 *   reply. While a server's node is suspect, new calls go to others.
 */
import { OptionError } from '../../../errors.js';
import type { PeerLostError, SwitchboardError } from '../../../errors.js';
import type { ChannelHub } from '../../hub.js';
import { Caller } from './client.js';
import type { ContractRef } from './client.js';
import { Server } from './server.js';
import type { Handler } from './server.js';
import { RpcKind } from './types.js';
import type {
  BidiHandler,
  CallOptions,
  ClientStreamHandler,
  RpcStats,
  RpcStream,
  ServeHandle,
  ServeOptions,
  ServerStreamHandler,
  StreamCallOptions,
  StreamSource,
  UnaryHandler,
} from './types.js';

/** The RPC of one switchboard; the switchboard's `serve*` and `call*` methods delegate here. */
export class Rpc {
  private readonly caller: Caller;
  private readonly server: Server;

  constructor(readonly hub: ChannelHub) {
    this.caller = new Caller(hub);
    this.server = new Server(hub);
    hub.watchPeers({
      sessionEnded: (node: number, error: PeerLostError) => {
        this.caller.serverLost(node, error);
        this.server.callerLost(node, error);
      },
    });
  }

  serve(
    method: string,
    kind: RpcKind,
    handler: Handler,
    options?: ServeOptions,
    hash?: string,
  ): ServeHandle {
    checkMethod(method);
    return this.server.serve(method, kind, handler, options, hash);
  }

  serveUnary<Req, Res>(method: string, h: UnaryHandler<Req, Res>, o?: ServeOptions): ServeHandle {
    return this.serve(method, RpcKind.UNARY, h as unknown as Handler, o);
  }

  serveStream<Req, Res>(
    method: string,
    h: ServerStreamHandler<Req, Res>,
    o?: ServeOptions,
  ): ServeHandle {
    return this.serve(method, RpcKind.SERVER_STREAM, h as unknown as Handler, o);
  }

  serveClientStream<Req, Res>(
    method: string,
    h: ClientStreamHandler<Req, Res>,
    o?: ServeOptions,
  ): ServeHandle {
    return this.serve(method, RpcKind.CLIENT_STREAM, h as unknown as Handler, o);
  }

  serveBidi<Req, Res>(method: string, h: BidiHandler<Req, Res>, o?: ServeOptions): ServeHandle {
    return this.serve(method, RpcKind.BIDI, h as unknown as Handler, o);
  }

  call(method: string, request: unknown, options?: CallOptions): Promise<unknown> {
    return this.caller.callUnary(method, RpcKind.UNARY, request, undefined, options);
  }

  callStream(method: string, request: unknown, options?: StreamCallOptions): RpcStream<unknown> {
    return this.caller.callStream(method, RpcKind.SERVER_STREAM, request, undefined, options);
  }

  callClientStream(
    method: string,
    requests: StreamSource<unknown>,
    options?: CallOptions,
  ): Promise<unknown> {
    return this.caller.callUnary(method, RpcKind.CLIENT_STREAM, undefined, requests, options);
  }

  callBidi(
    method: string,
    requests: StreamSource<unknown>,
    options?: StreamCallOptions,
  ): RpcStream<unknown> {
    return this.caller.callStream(method, RpcKind.BIDI, undefined, requests, options);
  }

  /** A call of any kind made by a typed client of a service contract. */
  callContract(
    method: string,
    kind: RpcKind,
    input: unknown,
    options: StreamCallOptions | undefined,
    contract: ContractRef,
  ): Promise<unknown> | RpcStream<unknown> {
    switch (kind) {
      case RpcKind.UNARY:
        return this.caller.callUnary(method, kind, input, undefined, options, contract);
      case RpcKind.SERVER_STREAM:
        return this.caller.callStream(method, kind, input, undefined, options, contract);
      case RpcKind.CLIENT_STREAM:
        return this.caller.callUnary(
          method,
          kind,
          undefined,
          input as StreamSource<unknown>,
          options,
          contract,
        );
      default:
        return this.caller.callStream(
          method,
          kind,
          undefined,
          input as StreamSource<unknown>,
          options,
          contract,
        );
    }
  }

  stats(): RpcStats {
    return {
      ...this.caller.counts(),
      ...this.server.counts(),
      calls: this.caller.calls,
      failures: this.caller.failures,
      lateReplies: this.caller.late,
    };
  }

  /** Graceful close: stop serving, let running handlers reply, at most until `deadline`. */
  drain(deadline: number): Promise<void> {
    return this.server.drain(deadline);
  }

  /** Every call fails, every handler still running is aborted, with `reason`. */
  shutdown(reason: SwitchboardError): void {
    this.caller.shutdown(reason);
    this.server.shutdown(reason);
  }
}

function checkMethod(method: unknown): void {
  if (typeof method !== 'string' || method.length === 0)
    throw new OptionError('method', 'must be a non-empty string');
}
