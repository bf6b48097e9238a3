/**
 * ferry: message passing between processes on one machine through POSIX shared memory, with no
 * broker and no socket. Processes open the same named {@linkcode Channel} and send to it and
 * receive from it; each message goes to exactly one receiver. A {@linkcode Namespace} adds groups
 * that one value is sent to as a copy per member channel. See README.md.
 *
 * @example Send and receive
 * ```ts
 * import { Channel } from "@ferry/ferry";
 *
 * using ch = Channel.open<{ id: number }>("jobs", { mode: "async" });
 * await ch.send({ id: 1 });
 * const msg = await ch.recv();
 * console.log(msg.data.id);
 * ```
 *
 * @module
 */

// Channels: open, send, receive, batches, zero-copy (src/channel/).
export { Channel } from "./src/channel/channel.ts";
export type {
  OpenOptions,
  RecvOneOptions,
  RecvOptions,
  SendManyOptions,
  SendMode,
  SendOptions,
  Spin,
} from "./src/channel/options.ts";
export type { ChannelStat, ChannelState, StatOptions } from "./src/channel/observe.ts";
export type { CapacityPatterns } from "./src/capacity.ts";
export type { CodecOption } from "./src/codec.ts";
export type { TrustOptions } from "./src/open.ts";
export { Message, type RejectOutcome } from "./src/message.ts";

// Namespaces: groups and fan-out, listing and cleanup (src/namespace/).
export { Namespace } from "./src/namespace/namespace.ts";
export { GroupWatch } from "./src/namespace/watch.ts";
export type {
  GroupAddOptions,
  GroupFullPolicy,
  GroupLifetime,
  GroupSendOptions,
  GroupSendResult,
  GroupStat,
  NamespaceOptions,
} from "./src/namespace/options.ts";
export {
  type ChannelScan,
  gc,
  type GcOptions,
  isAbandoned,
  listChannels,
  scanChannels,
  type ScanOptions,
  type SkippedSegment,
} from "./src/namespace/listing.ts";

// Errors: each a FerryError with a stable `code` (src/errors.ts).
export {
  ChannelClosedError,
  ChannelFullError,
  ChannelNotFoundError,
  DecodeError,
  EncodeError,
  ExpiredError,
  FerryError,
  ForeignSegmentError,
  GroupTableFullError,
  IncompatibleChannelError,
  InvalidNameError,
  InvalidOptionError,
  MessageTooLargeError,
  NoSpaceError,
  PeerDiedError,
  PermissionDeniedError,
  RejectedError,
  SystemError,
  TimeoutError,
  TooManyParticipantsError,
} from "./src/errors.ts";

// Across machines: local channels forwarded to NATS subjects and back (README, "Across machines").
export { Bridge } from "./src/bridge/bridge.ts";
export type {
  BridgeOptions,
  InRoute,
  NatsOptions,
  OutRoute,
  RouteChannelOptions,
  ServiceRoute,
  TopicRoute,
} from "./src/bridge/options.ts";
export type { BridgeStat, RouteStat } from "./src/bridge/stat.ts";
export type { Envelope } from "./src/bridge/wire.ts";
export { JetStreamError, NatsConnectionError } from "./src/bridge/errors.ts";

// Patterns on top of channels (src/patterns/, README "Patterns").
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
export { serve, Server } from "./src/patterns/rpc/server.ts";
export { Client, connect } from "./src/patterns/rpc/client.ts";
export { RemoteError, requestChannelName } from "./src/patterns/rpc/wire.ts";
export type {
  CallContext,
  CallOptions,
  ConnectOptions,
  Handler,
  ServeOptions,
  StreamOptions,
} from "./src/patterns/rpc/options.ts";
/** Publish/subscribe over groups: `publish(topic, value)`, `for await (const m of subscribe(topic))`. */
export { publish, Publisher, publisher } from "./src/patterns/pubsub/publisher.ts";
export { subscribe, Subscription } from "./src/patterns/pubsub/subscription.ts";
export type {
  PublisherOptions,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  TopicMessage,
  WhenFull,
} from "./src/patterns/pubsub/options.ts";
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
