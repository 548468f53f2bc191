/**
 * The switchboard options a test may give the nodes of a cluster, process
 * or in-process: everything but what the kit owns for every node (its own
 * module, so both clusters share it without importing each other).
 */
import type { StartOptions } from '../index.js';

/** Switchboard options a test may set; the kit owns the node list, id, secret and bind address. */
export type NodeOptions = Omit<
  Partial<StartOptions>,
  'nodes' | 'id' | 'secret' | 'insecure' | 'bindHost'
>;

/** The options {@link NodeOptions} leaves out. */
export const OWNED = ['nodes', 'id', 'secret', 'insecure', 'bindHost'] as const;
