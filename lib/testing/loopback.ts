/**
 * Where a node of a test cluster really listens: the port of its proxy
 * (lib/testing/proxy.ts), on a private loopback address. On Linux every
 * address of 127.0.0.0/8 is the loopback, so each node gets a random one
 * and two test files running at once cannot meet on the same address and
 * port; elsewhere (macOS has only 127.0.0.1 unless aliases are added) the
 * IPv6 loopback `::1` is used, which never clashes with the proxies on
 * 127.0.0.1. A node that still finds its address taken tries the next.
 */
import { randomInt } from 'node:crypto';
import net from 'node:net';

/** How many addresses a node is offered before it gives up. */
const CANDIDATES = 8;

let aliases: Promise<boolean> | undefined;

/** True if addresses of 127.0.0.0/8 other than 127.0.0.1 can be bound here. */
export function loopbackAliases(): Promise<boolean> {
  aliases ??= new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: randomAlias(), port: 0 }, () => s.close(() => resolve(true)));
  });
  return aliases;
}

/** A random address of 127.0.0.0/8 outside 127.0.0.0/16. */
function randomAlias(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}

/** The addresses a node may bind, in the order to try them. */
export async function bindCandidates(): Promise<string[]> {
  if (await loopbackAliases()) return Array.from({ length: CANDIDATES }, randomAlias);
  return ['::1'];
}
