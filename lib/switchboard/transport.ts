import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { TlsOptions } from './options.js';

/** A connected byte stream: plain TCP or TLS. */
export type LinkSocket = net.Socket | tls.TLSSocket;

/** A listening server, plain or TLS. */
export type LinkServer = net.Server | tls.Server;

/**
 * Binds a server. With TLS, clients must present a certificate signed by
 * the cluster CA (mutual TLS); `onSocket` receives only sockets whose TLS
 * handshake succeeded.
 */
export async function listen(
  host: string,
  port: number,
  tlsOptions: TlsOptions | undefined,
  onSocket: (socket: LinkSocket) => void,
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
            handshakeTimeout: 5_000,
          },
          (socket) => {
            socket.setNoDelay(true);
            onSocket(socket);
          },
        );
  // A failed TLS handshake (plaintext client, wrong CA) never reaches onSocket.
  server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
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
      reject(err);
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
