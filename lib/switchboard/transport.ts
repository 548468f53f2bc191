import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { ErrorCode, HandshakeError, ListenError } from '../errors.js';
import type { TlsOptions } from './options.js';

/** A connected byte stream: plain TCP or TLS. */
export type LinkSocket = net.Socket | tls.TLSSocket;

/** A listening server, plain or TLS. */
export type LinkServer = net.Server | tls.Server;

/** Limits and hooks of {@link listen}. */
export interface ListenOptions {
  /** Time a client has to finish the TLS handshake, ms. Default 5000. */
  readonly tlsHandshakeTimeoutMs?: number;
  /**
   * Clients allowed in the TLS handshake at once. When it is reached, the
   * oldest client that has been at it for more than 250 ms is closed to make
   * room (a real peer needs one round trip), else the newcomer is refused at
   * once. Default 64.
   */
  readonly maxTlsPending?: number;
  /**
   * A client failed the TLS handshake (plaintext, a certificate from another
   * CA, none at all); its socket is already destroyed. Not called for
   * network errors and timeouts, which say nothing about the client.
   */
  readonly onTlsRefused?: (error: HandshakeError, remoteAddress: string | undefined) => void;
}

/**
 * Binds a server. With TLS, clients must present a certificate signed by
 * the cluster CA (mutual TLS); `onSocket` receives only sockets whose TLS
 * handshake succeeded.
 * @throws ListenError (`ERR_SB_LISTEN`) naming the address and the system
 *   error when the socket cannot be bound.
 */
export async function listen(
  host: string,
  port: number,
  tlsOptions: TlsOptions | undefined,
  onSocket: (socket: LinkSocket) => void,
  options: ListenOptions = {},
): Promise<LinkServer> {
  const server: LinkServer =
    tlsOptions === undefined
      ? net.createServer({ noDelay: true }, onSocket)
      : tls.createServer(
          {
            key: tlsOptions.key,
            cert: tlsOptions.cert,
            ca: tlsOptions.ca as string | Buffer | Array<string | Buffer>,
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.3',
            handshakeTimeout: options.tlsHandshakeTimeoutMs ?? 5_000,
          },
          (socket) => {
            socket.setNoDelay(true);
            onSocket(socket);
          },
        );
  if (tlsOptions !== undefined) boundTlsHandshakes(server, options.maxTlsPending ?? 64);
  // A failed TLS handshake (plaintext client, wrong CA) never reaches onSocket.
  server.on('tlsClientError', (err: Error, socket: Duplex) => {
    const { remoteAddress } = socket as tls.TLSSocket;
    // A rejected client certificate surfaces as a hang-up; the verdict (a
    // string code at run time, typed as an Error) is on the socket.
    const verdict: unknown = (socket as tls.TLSSocket).authorizationError;
    socket.destroy();
    if (verdict !== undefined && verdict !== null) {
      const reason = typeof verdict === 'string' ? verdict : (verdict as Error).message;
      const cause = new Error(`client certificate rejected: ${reason}`, { cause: err });
      options.onTlsRefused?.(
        tlsFailure('TLS handshake from a client failed', cause),
        remoteAddress,
      );
    } else if (
      !isNetworkError(err) &&
      (err as NodeJS.ErrnoException).code !== 'ERR_TLS_HANDSHAKE_TIMEOUT'
    ) {
      options.onTlsRefused?.(tlsFailure('TLS handshake from a client failed', err), remoteAddress);
    }
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(listenFailure(host, port, err));
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return server;
}

/** What to check for each way binding fails; Node's own message names only the syscall. */
const LISTEN_HINTS: Readonly<Record<string, string>> = {
  EADDRINUSE:
    'another process holds the port: an earlier run still alive, another program, or two nodes given the same port',
  EACCES: 'no permission: ports below 1024 need privileges, choose a higher one',
  EADDRNOTAVAIL:
    'the host is not an address of this machine: check nodes[id] and bindHost (0.0.0.0 listens on every interface)',
  ENOTFOUND: 'the host name does not resolve: check nodes[id] and bindHost',
  EAI_AGAIN: 'the host name could not be resolved (a temporary DNS failure)',
};

function listenFailure(host: string, port: number, err: Error): ListenError {
  const code = (err as NodeJS.ErrnoException).code;
  const address = net.isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const hint = code === undefined ? undefined : LISTEN_HINTS[code];
  return new ListenError(
    address,
    code,
    hint === undefined ? err.message : `${err.message}; ${hint}`,
    { cause: err },
  );
}

/** A TLS client this long in the handshake may be closed to make room for another. */
const TLS_IDLE_MS = 250;

/**
 * Bounds the TCP connections still in the TLS handshake: without it, clients
 * that connect and never speak would each hold a socket and a TLS context
 * until the handshake timeout.
 */
function boundTlsHandshakes(server: LinkServer, max: number): void {
  // Keyed by the client's address and port, which the raw socket and the
  // TLS socket wrapped around it both report. A Map iterates oldest first.
  const pending = new Map<string, { socket: net.Socket; at: number }>();
  const key = (s: net.Socket): string => `${s.remoteAddress}:${s.remotePort}`;
  server.on('connection', (socket: net.Socket) => {
    if (pending.size >= max) {
      const [oldestKey, oldest] = pending.entries().next().value as [
        string,
        { socket: net.Socket; at: number },
      ];
      if (performance.now() - oldest.at <= TLS_IDLE_MS) {
        socket.destroy();
        return;
      }
      pending.delete(oldestKey);
      oldest.socket.destroy();
    }
    const k = key(socket);
    pending.set(k, { socket, at: performance.now() });
    socket.once('close', () => {
      if (pending.get(k)?.socket === socket) pending.delete(k);
    });
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => pending.delete(key(socket)));
}

/** Connects to `host:port`; resolves once the socket (and TLS) is ready. */
export function dial(
  host: string,
  port: number,
  tlsOptions: TlsOptions | undefined,
  signal: AbortSignal,
): Promise<LinkSocket> {
  return new Promise((resolve, reject) => {
    const socket: LinkSocket =
      tlsOptions === undefined
        ? net.connect({ host, port, noDelay: true })
        : tls.connect({
            host,
            port,
            key: tlsOptions.key,
            cert: tlsOptions.cert,
            ca: tlsOptions.ca as string | Buffer | Array<string | Buffer>,
            minVersion: 'TLSv1.3',
            // Nodes are named by address in the node list, not by DNS name:
            // trust comes from the cluster CA and the HMAC handshake on top.
            checkServerIdentity: () => undefined,
          });
    const ready = tlsOptions === undefined ? 'connect' : 'secureConnect';
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error('dial aborted'));
    };
    const onError = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      // A certificate the cluster CA did not sign is a refusal, not a network error.
      reject(
        tlsOptions !== undefined && !isNetworkError(err)
          ? tlsFailure(`TLS handshake with ${host}:${port} failed`, err)
          : err,
      );
    };
    socket.once('error', onError);
    socket.once(ready, () => {
      signal.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** True for errors of the network itself (ECONNRESET, ECONNREFUSED...), as opposed to TLS verdicts. */
function isNetworkError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

function tlsFailure(what: string, cause: Error): HandshakeError {
  return new HandshakeError(
    ErrorCode.AUTH_FAILED,
    `${what}: ${cause.message}`,
    { state: 'tls' },
    { cause },
  );
}
