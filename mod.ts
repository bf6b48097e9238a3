/**
 * ferry: message passing between processes on one machine through shared memory.
 * No broker, no socket. See README.md.
 * @module
 */

export {
  Channel,
  type ChannelStat,
  type OpenOptions,
  type RecvOptions,
  type SendMode,
  type SendOptions,
} from "./src/channel.ts";
export { Message } from "./src/message.ts";
export type { CodecOption } from "./src/codec.ts";
export {
  ChannelClosedError,
  ChannelFullError,
  ChannelNotFoundError,
  DecodeError,
  EncodeError,
  ExpiredError,
  FerryError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  MessageTooLargeError,
  NoSpaceError,
  PeerDiedError,
  PermissionDeniedError,
  SystemError,
  TimeoutError,
  TooManyParticipantsError,
} from "./src/errors.ts";
export {
  type ChannelScan,
  gc,
  type GcOptions,
  isAbandoned,
  listChannels,
  scanChannels,
  type SkippedSegment,
} from "./src/admin.ts";
// ---- groups ----
export {
  type GroupAddOptions,
  type GroupSendOptions,
  type GroupSendResult,
  type GroupStat,
  GroupTableFullError,
  Namespace,
  type NamespaceOptions,
} from "./src/namespace.ts";
// ---- groups ----
// ---- patterns ----
/**
 * Message headers: the routing fields the patterns use (kind, correlation id, reply-to, subject,
 * stream key, content type) and your own string headers, read without decoding the payload.
 */
export {
  Frame,
  type FrameHeader,
  FrameKind,
  FrameWriter,
  RAW_CONTENT_TYPE,
  readFrame,
} from "./src/patterns/headers.ts";
/** Request/response and streamed replies: `serve` a service, `connect` to call it. */
export {
  type CallContext,
  type CallOptions,
  Client,
  connect,
  type ConnectOptions,
  type Handler,
  RemoteError,
  requestChannelName,
  serve,
  type ServeOptions,
  Server,
  type StreamOptions,
} from "./src/patterns/rpc.ts";
/** Publish/subscribe over groups: `publish(topic, value)`, `for await (const m of subscribe(topic))`. */
export {
  publish,
  Publisher,
  publisher,
  type PublisherOptions,
  type PublishOptions,
  type PublishResult,
  subscribe,
  type SubscribeOptions,
  Subscription,
  type TopicMessage,
  type WhenFull,
} from "./src/patterns/pubsub.ts";
/** Demultiplexed streams: many keyed streams over one channel, a consumer per key. */
export { Demux, demux, type DemuxOptions, type KeyedMessage, type KeyHandler } from "./src/patterns/demux.ts";
/** Receiving from several channels at once: `select` the first message, `merge` them all. */
export { merge, select, type Selected, type SelectOptions } from "./src/patterns/select.ts";
/** Work queues with an end of input, and pools of worker processes that restart and drain. */
export {
  type Job,
  Pool,
  type PoolOptions,
  startPool,
  type WorkerExit,
  WorkQueue,
  workQueue,
  type WorkQueueOptions,
} from "./src/patterns/pool.ts";
