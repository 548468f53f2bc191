import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { OptionError } from '../errors.js';

/** A node as given in the options: `"host:port"` or an object with optional tags. */
export type NodeSpec =
  string | { readonly host: string; readonly port: number; readonly tags?: readonly string[] };

/** A node of the cluster after validation. */
export interface NodeInfo {
  /** Index in the node list. */
  readonly id: number;
  readonly host: string;
  readonly port: number;
  /** Tags such as `gpu` or `role=worker`, used to pick RPC servers and workers. */
  readonly tags: readonly string[];
}

/**
 * Handles to a client's receivers carry this plus 48 bits of the client's
 * incarnation as their node (docs/wire-protocol.md 5.8): above every node
 * id and every number a process gives its clients, the same on every node.
 */
export const CLIENT_HANDLE_BASE = 0x1_0000;

/** The most nodes a cluster may have (node ids are u16 on the wire). */
export const MAX_NODES = 1024;

/** Validates and normalises a node list; throws {@link OptionError} naming the bad entry. */
export function parseNodes(specs: unknown): NodeInfo[] {
  if (!Array.isArray(specs) || specs.length === 0) {
    throw new OptionError(
      'nodes',
      'must be a non-empty array of "host:port" strings or { host, port, tags } objects',
    );
  }
  if (specs.length > MAX_NODES)
    throw new OptionError('nodes', `at most ${MAX_NODES} nodes are supported`);
  const seen = new Set<string>();
  return specs.map((spec: unknown, id) => {
    const info = parseNode(spec, id);
    const key = `${info.host}:${info.port}`;
    if (seen.has(key))
      throw new OptionError(`nodes[${id}]`, `${key} appears twice in the node list`);
    seen.add(key);
    return info;
  });
}

function parseNode(spec: unknown, id: number): NodeInfo {
  const where = `nodes[${id}]`;
  let host: unknown;
  let port: unknown;
  let tags: unknown = [];
  if (typeof spec === 'string') {
    const at = spec.lastIndexOf(':');
    if (at <= 0) throw new OptionError(where, `"${spec}" is not "host:port"`);
    host = spec.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    port = Number(spec.slice(at + 1));
  } else if (typeof spec === 'object' && spec !== null) {
    ({ host, port } = spec as { host: unknown; port: unknown });
    tags = (spec as { tags?: unknown }).tags ?? [];
  } else {
    throw new OptionError(where, 'must be "host:port" or { host, port, tags }');
  }
  if (typeof host !== 'string' || host.length === 0)
    throw new OptionError(where, 'host must be a non-empty string');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new OptionError(where, `port must be an integer in 1..65535, got ${String(port)}`);
  }
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new OptionError(`${where}.tags`, 'must be an array of non-empty strings');
  }
  return { id, host: host.toLowerCase(), port, tags: [...(tags as string[])].sort() };
}

/**
 * The cluster fingerprint: SHA-256 of the canonical node list and the
 * optional cluster name. Peers whose fingerprint differs are refused, so a
 * misconfigured node fails loudly instead of joining the wrong cluster.
 */
export function clusterFingerprint(nodes: readonly NodeInfo[], clusterName = ''): Buffer {
  const canonical = JSON.stringify({
    v: 1,
    name: clusterName,
    nodes: nodes.map((n) => [n.host, n.port, n.tags]),
  });
  return createHash('sha256').update(canonical).digest();
}

/** True if `tags` includes every tag of `required`. */
export function hasTags(node: NodeInfo, required: readonly string[] | undefined): boolean {
  if (required === undefined || required.length === 0) return true;
  return required.every((t) => node.tags.includes(t));
}

/** `host:port`, bracketing IPv6 literals. */
export function formatAddress(node: NodeInfo): string {
  return isIP(node.host) === 6 ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`;
}

/** The deterministic dial rule: the lower id dials the higher, so two links never race. */
export function dials(from: number, to: number): boolean {
  return from < to;
}
