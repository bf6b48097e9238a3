/**
 * ferry: message passing between processes on one machine through shared memory.
 * No broker, no socket. See README.md.
 * @module
 */

export {
  Channel,
  type ChannelStat,
  type ChannelState,
  type OpenOptions,
  type RecvOptions,
  type SendMode,
  type SendOptions,
  type StatOptions,
} from "./src/channel.ts";
export type { TrustOptions } from "./src/open.ts";
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
  ForeignSegmentError,
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
  type ScanOptions,
  type SkippedSegment,
} from "./src/admin.ts";
// ---- groups ----
export {
  type GroupAddOptions,
  type GroupFullPolicy,
  type GroupLifetime,
  type GroupSendOptions,
  type GroupSendResult,
  type GroupStat,
  GroupTableFullError,
  Namespace,
  type NamespaceOptions,
} from "./src/namespace.ts";
// ---- groups ----
// ---- bridge ----
/**
 * The NATS bridge: local channels forwarded to NATS subjects and back, so processes on different
 * machines keep the channel API (README, "Across machines").
 */
export { Bridge } from "./src/bridge/bridge.ts";
export type {
  BridgeOptions,
  InRoute,
  NatsOptions,
  OutRoute,
  RouteChannelOptions,
} from "./src/bridge/options.ts";
export type { BridgeStat, RouteStat } from "./src/bridge/stat.ts";
export type { Envelope } from "./src/bridge/wire.ts";
export { JetStreamError, NatsConnectionError } from "./src/bridge/errors.ts";
// ---- bridge ----
