// The public API: values first, then types.

// ---- the switchboard ----
export { Switchboard } from './facade.js';
export { DEFAULT_SWITCHBOARD_OPTIONS } from './switchboard/options.js';
export { clusterFingerprint, parseNodes } from './switchboard/nodes.js';

// ---- errors ----
export {
  DecodeError,
  ErrorCode,
  HandshakeError,
  isErrorCode,
  NotDeliveredError,
  OptionError,
  ProtocolError,
  RemoteError,
  RendezvousTimeoutError,
  SwitchboardError,
} from './errors.js';

export type { NodeInfo, NodeSpec } from './switchboard/nodes.js';
export type { SwitchboardOptions, TlsOptions } from './switchboard/options.js';
export type { PeerInfo, PeerState, SwitchboardEvent } from './switchboard/cluster.js';
