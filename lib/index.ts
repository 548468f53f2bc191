// The public API: values first, then types.

// ---- the switchboard ----
export { Switchboard } from './facade.js';
export { DEFAULT_SWITCHBOARD_OPTIONS } from './switchboard/options.js';
export { clusterFingerprint, parseNodes } from './switchboard/nodes.js';

// ---- channels ----
export { DEFAULT_RECEIVER_OPTIONS, Receiver } from './channel/receiver.js';
export { DEFAULT_SENDER_OPTIONS, Sender } from './channel/sender.js';
export { ValidationError } from './channel/schema.js';

// ---- RPC ----
export {
  DEFAULT_CALL_OPTIONS,
  DEFAULT_SERVE_OPTIONS,
  Rpc,
  RpcKind,
} from './channel/patterns/rpc.js';

// ---- pub-sub, push-pull, fire-and-forget ----
export {
  DEFAULT_PUBLISHER_OPTIONS,
  DEFAULT_SUBSCRIBE_OPTIONS,
  isValidPattern,
  isValidTopic,
  Publisher,
  PubSub,
  Subscription,
  topicMatches,
} from './channel/patterns/pubsub.js';
export {
  DEFAULT_PUSHER_OPTIONS,
  DEFAULT_WORKER_OPTIONS,
  Pusher,
  PushPull,
  TaskError,
  Worker,
} from './channel/patterns/pushpull.js';

// ---- errors ----
export {
  DecodeError,
  EncodeError,
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

export type { StartOptions, SwitchboardStats } from './facade.js';
export type { OverflowPolicy, ReceiverOptions, ReceiverStats } from './channel/receiver.js';
export type { DeliveryMode, SendOptions, SenderOptions } from './channel/sender.js';
export type { StandardResult, StandardSchemaV1 } from './channel/schema.js';
export type { NodeInfo, NodeSpec } from './switchboard/nodes.js';
export type { SwitchboardOptions, TlsOptions } from './switchboard/options.js';
export type { PeerInfo, PeerState, SwitchboardEvent } from './switchboard/cluster.js';
export type {
  BidiHandler,
  CallContext,
  CallOptions,
  ClientStreamHandler,
  LoadBalancing,
  RpcStats,
  RpcStream,
  ServeHandle,
  ServeOptions,
  ServerStreamHandler,
  StreamCallOptions,
  StreamSource,
  UnaryHandler,
} from './channel/patterns/rpc.js';
export type {
  Publication,
  PublisherOptions,
  PublisherStats,
  SubscribeOptions,
  SubscriptionOverflow,
  SubscriptionStats,
} from './channel/patterns/pubsub.js';
export type {
  PushOptions,
  PusherOptions,
  PusherStats,
  TaskContext,
  TaskHandler,
  WorkerOptions,
  WorkerStats,
} from './channel/patterns/pushpull.js';
export type { PostTarget } from './channel/patterns/post.js';
