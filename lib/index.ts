// The public API: values first, then types.

// ---- the switchboard ----
export { Switchboard } from './facade.js';
export { DEFAULT_CONNECT_OPTIONS, DEFAULT_SWITCHBOARD_OPTIONS } from './switchboard/options.js';
export { DEFAULT_PHI_OPTIONS } from './switchboard/phi.js';
export { clusterFingerprint, parseNodes } from './switchboard/nodes.js';

// ---- channels ----
export { DEFAULT_RECEIVER_OPTIONS, Receiver } from './channel/receiver.js';
export { DEFAULT_SENDER_OPTIONS, Sender } from './channel/sender.js';
export { ValidationError } from './channel/schema.js';

// ---- headers and tracing (docs/observability.md) ----
export { NO_HEADERS } from './channel/headers.js';
export { TRACING_CHANNELS } from './channel/tracing.js';

// ---- RPC ----
export {
  DEFAULT_CALL_OPTIONS,
  DEFAULT_SERVE_OPTIONS,
  RpcKind,
} from './channel/patterns/rpc/types.js';
export { defineService, type } from './channel/patterns/rpc/contract.js';

// ---- pub-sub, push-pull, fire-and-forget ----
export { isValidPattern, isValidTopic, topicMatches } from './channel/patterns/pubsub/topics.js';
export { DEFAULT_SUBSCRIBE_OPTIONS, Subscription } from './channel/patterns/pubsub/subscription.js';
export { DEFAULT_PUBLISHER_OPTIONS, Publisher } from './channel/patterns/pubsub/publisher.js';
export {
  DEFAULT_PUSHER_OPTIONS,
  DEFAULT_WORKER_OPTIONS,
  TaskError,
} from './channel/patterns/pushpull/task.js';
export { Pusher } from './channel/patterns/pushpull/pusher.js';
export { Worker } from './channel/patterns/pushpull/worker.js';

// ---- metrics ----
export { METRICS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';
export { LATENCY_BUCKETS } from './switchboard/metrics.js';

// ---- introspection (docs/api.md, "Introspection") ----
export { isSystemMethod, SYSTEM_METHODS, SYSTEM_PREFIX } from './switchboard/introspect.js';

// ---- errors ----
export {
  BatchSendError,
  ClientConnectError,
  ClientRoleError,
  ContractMismatchError,
  DecodeError,
  EncodeError,
  ErrorCode,
  HandshakeError,
  isErrorCode,
  MessageTooLargeError,
  ListenError,
  NotDeliveredError,
  OptionError,
  PeerLostError,
  ProtocolError,
  RefusedError,
  RemoteError,
  RendezvousTimeoutError,
  SwitchboardError,
} from './errors.js';

export type { ClientConnectOptions, StartOptions, SwitchboardStats } from './facade.js';
export type {
  MethodContract,
  MethodInfo,
  MethodsReply,
  PeersReply,
  PingReply,
  SideInfo,
} from './switchboard/introspect.js';
export type { RenderableStats, RenderOptions } from './prometheus.js';
export type {
  EndpointStats,
  HistogramSnapshot,
  MessageCount,
  MessagingLatency,
  MessagingOperation,
  MetricsStats,
  RpcLatency,
} from './switchboard/metrics.js';
export type { ContractServer, MissingPeerReason } from './errors.js';
export type { OverflowPolicy, ReceiverOptions, ReceiverStats } from './channel/receiver.js';
export type { ReceiveOptions } from './channel/queue.js';
export type { DeliveryMode, PostOptions, SendOptions, SenderOptions } from './channel/sender.js';
export type { Delivery, Headers } from './channel/headers.js';
export type {
  CallTraceContext,
  PublishTraceContext,
  PushTraceContext,
  ReceiveTraceContext,
  SendTraceContext,
  ServeTraceContext,
  TaskTraceContext,
  TraceContext,
} from './channel/tracing.js';
export type { WaitOptions } from './channel/waits.js';
export type {
  StandardFailureResult,
  StandardIssue,
  StandardPathSegment,
  StandardResult,
  StandardSchemaProps,
  StandardSchemaV1,
  StandardSuccessResult,
  StandardTypes,
  StandardValidateOptions,
} from './channel/schema.js';
export type { NodeInfo, NodeSpec } from './switchboard/nodes.js';
export type { ConnectOptions, SwitchboardOptions, TlsOptions } from './switchboard/options.js';
export type { FailureDetector } from './switchboard/options.js';
export type { PhiOptions } from './switchboard/phi.js';
export type { ClientInfo, PeerInfo, PeerState, SwitchboardEvent } from './switchboard/events.js';
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
} from './channel/patterns/rpc/types.js';
export type {
  ClientMethod,
  ClientOptions,
  HandlerFor,
  MethodSpec,
  MethodSpecs,
  RequestIn,
  RequestOut,
  ResponseIn,
  ResponseOut,
  ServiceClient,
  ServiceContract,
  ServiceHandle,
  ServiceHandlers,
  TypeOnly,
  TypeSpec,
} from './channel/patterns/rpc/contract.js';
export type {
  Publication,
  PublicationGap,
  SubscribeOptions,
  SubscriptionOverflow,
  SubscriptionStats,
} from './channel/patterns/pubsub/subscription.js';
export type {
  PublishOptions,
  PublisherOptions,
  PublisherStats,
} from './channel/patterns/pubsub/publisher.js';
export type {
  PushOptions,
  PusherOptions,
  PusherStats,
  TaskContext,
  TaskHandler,
  WorkerOptions,
  WorkerStats,
} from './channel/patterns/pushpull/task.js';
export type { PostTarget } from './channel/patterns/post/post.js';
