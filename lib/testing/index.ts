/**
 * `switchboard/testing`: the kit for testing code built on switchboard
 * across real processes, with real faults at the socket and the process
 * (docs/testing.md).
 */
export { closeAll, startCluster, ProcessCluster } from './cluster.js';
export type { ClusterOptions, NodeOptions } from './cluster.js';
export type { ProcessOptions } from './launch.js';
export { startNode } from './start-node.js';
export type { FullNodeOptions, StartNodeOptions } from './start-node.js';
export { CLIENT_HANDLE_ID, startClient } from './start-client.js';
export type { ClientOptions, StartClientOptions } from './start-client.js';
export type { ThrottleOptions, WaitOptions } from './base.js';
export { LinkedCluster } from './base.js';
export { ClusterNode } from './node-process.js';
export { NodeCallError } from './calls.js';
export type { NodeStatus } from './node-process.js';
export type { NodeReport } from './describe.js';
export { defineNode } from './node-module.js';
export type { NodeContext, NodeFunctions, NodeMain } from './node-module.js';
export { ClusterWaitError } from './waits.js';
export type { Direction } from './proxy.js';
export type { EventNote, PeerView } from './messages.js';
export { LocalCluster, LocalNode, startLocalCluster } from './local.js';
export type { LocalClusterOptions } from './local.js';
export { FAULT_KINDS, Prng, ScheduleError, planSchedule } from './schedule.js';
export type {
  FaultKind,
  ScheduleLogEntry,
  ScheduleOptions,
  SchedulePlan,
  ScheduleReport,
  ScheduleStep,
} from './schedule.js';
