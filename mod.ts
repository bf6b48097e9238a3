/**
 * ferry: message passing between processes on one machine through shared memory.
 * No broker, no socket. See README.md.
 * @module
 */

export { Channel } from "./src/channel/channel.ts";
export type { OpenOptions, RecvOptions, SendMode, SendOptions } from "./src/channel/options.ts";
export type { ChannelStat, ChannelState, StatOptions } from "./src/channel/observe.ts";
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
