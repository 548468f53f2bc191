/**
 * `switchboard/testing`: the kit for testing code built on switchboard
 * across real processes, with real faults at the socket and the process
 * (docs/testing.md).
 */
export { closeAll, startCluster, ProcessCluster } from './cluster.js';
export type { ClusterOptions, NodeOptions, WaitOptions } from './cluster.js';
export { ClusterNode, NodeCallError } from './node-process.js';
export type { NodeReport, NodeStatus } from './node-process.js';
export { defineNode } from './node-module.js';
export type { NodeContext, NodeFunctions, NodeMain } from './node-module.js';
export { ClusterWaitError } from './waits.js';
export type { Direction } from './proxy.js';
export type { EventNote, PeerView } from './messages.js';
