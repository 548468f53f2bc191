/**
 * Resetting a socket of the kit's proxy. `socket.resetAndDestroy()` asks
 * libuv for an abortive close (SO_LINGER 0), which libuv refuses (EINVAL)
 * while a shutdown of the socket is in flight: between `end()` (or the
 * automatic end a socket does when its peer's FIN arrives) and the moment
 * the FIN is actually handed to the kernel, in the next poll phase. Node
 * then marks the handle closing without closing it: no 'close' is ever
 * emitted, and at exit Node waits for that handle forever, at 100% CPU,
 * after everything else is done (docs/testing.md, section 8).
 * So a socket whose FIN is on its way is destroyed instead: its peer sees
 * that FIN and the close, which is as much as can still be said.
 */
import type net from 'node:net';

/** Resets `socket` if Node can; closes it plainly if its shutdown is in flight. */
export function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded && !socket.writableFinished) socket.destroy();
  else socket.resetAndDestroy();
}
