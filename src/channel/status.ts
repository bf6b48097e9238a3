// What each status the core returns means on a channel, as the typed error the caller gets: one
// place for the wording of every failure of open, send, ack and receive.

import { IncompatibleReason, Status } from "../../ffi/status.ts";
import {
  ChannelClosedError,
  ChannelFullError,
  ChannelNotFoundError,
  ExpiredError,
  FerryError,
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
} from "../errors.ts";
import { buildingMessage, foreignError, type OpenReport, type Trust, trustOf } from "../open.ts";

/** What a failed open of a channel was trying to do, for its error message. */
export interface OpenContext {
  prefix: string;
  name: string;
  /** Bytes the channel would reserve. */
  bytes?: number;
  trust?: Trust;
  timeout?: number;
}

/** The channel a send or receive failed on: what its error messages name. */
export interface ChannelFacts {
  readonly name: string;
  readonly capacity: number;
  readonly slots: number;
  readonly maxMessageSize: number;
  readonly memory: number;
}

/** The error for a failed open (or unlink) of a channel. */
export function openError(report: OpenReport, o: OpenContext): FerryError {
  const { prefix, name } = o;
  const where = `/dev/shm/${prefix}.${name}`;
  switch (report.status) {
    case Status.ERR_INVALID_NAME:
      return new InvalidNameError(`channel name '${prefix}.${name}' is not valid`);
    case Status.ERR_INCOMPATIBLE:
      return new IncompatibleChannelError(
        `${where} cannot be used: ${IncompatibleReason[report.detail] ?? "unknown reason"}. ` +
          `Remove it with Channel.unlink("${name}", { prefix: "${prefix}" }) if it is stale.`,
      );
    case Status.ERR_NO_SPACE:
      return new NoSpaceError(
        `/dev/shm cannot hold channel '${name}'${o.bytes ? ` (${o.bytes} bytes)` : ""}: ` +
          "lower capacity or maxMessageSize, or free space in /dev/shm",
      );
    case Status.ERR_PERMISSION:
      return new PermissionDeniedError(`no permission to open ${where}: it belongs to another user or mode`);
    case Status.ERR_FOREIGN:
      return foreignError(report, where, o.trust ?? trustOf({}), "use another channel name or prefix");
    case Status.ERR_BUILDING:
      return new TimeoutError(buildingMessage(`channel '${name}' (${where})`, report.detail, o.timeout ?? 0));
    case Status.ERR_INCOMPLETE:
      return new ChannelNotFoundError(
        `channel '${name}' in namespace '${prefix}' was never finished: the process creating it died ` +
          "while building it. Opening it with create builds it again; gc or rm removes it.",
      );
    case Status.ERR_TOO_MANY_PARTICIPANTS:
      return new TooManyParticipantsError(
        `channel '${name}' already has 64 open handles (participants), the most a channel takes. ` +
          "A handle keeps its seat until close(): close handles when done (`using ch = Channel.open(...)`); " +
          "one that is dropped without close() keeps it until garbage collection or process exit",
      );
    case Status.ERR_NOT_FOUND:
      return new ChannelNotFoundError(`there is no channel '${name}' in namespace '${prefix}'`);
    case Status.ERR_INVALID_ARGUMENT:
      return new InvalidOptionError(`channel '${name}': capacity, maxMessageSize or slots out of range`);
    default:
      return new SystemError(`cannot open ${where}`, report.detail);
  }
}

/** Whether a send's status says "no room now": a waiting send tries again. */
export function isFull(st: number): boolean {
  return st === Status.FULL_CAPACITY || st === Status.FULL_SLOTS || st === Status.FULL_MEMORY;
}

/** The error for a send (or loan, commit) that returned `st`. */
export function sendError(ch: ChannelFacts, st: number): FerryError {
  switch (st) {
    case Status.FULL_CAPACITY:
      return new ChannelFullError(
        `channel '${ch.name}' is full (${ch.capacity}/${ch.capacity} messages held); ` +
          "raise capacity or receive faster",
      );
    case Status.FULL_MEMORY:
      return new ChannelFullError(
        `channel '${ch.name}' holds as much message memory as its bound allows (memory: ${ch.memory} ` +
          "bytes, for messages over 96 bytes); receive faster, send smaller messages, or create the " +
          "channel with a larger memory",
      );
    case Status.FULL_SLOTS:
      return new ChannelFullError(
        `this sender has ${ch.slots} unreleased messages on '${ch.name}' (slots: ${ch.slots}); ` +
          "wait for receivers to release them or raise slots",
      );
    case Status.ERR_TOO_LARGE:
      return new MessageTooLargeError(`message exceeds maxMessageSize ${ch.maxMessageSize}`);
    case Status.ERR_NO_SPACE:
      return new NoSpaceError(
        `/dev/shm has no room for this message on '${ch.name}' (it needs its size in 4 KiB pages); ` +
          "nothing was written. Free space in /dev/shm (remove unused channels: gc), or send smaller messages",
      );
    default:
      return statusError(ch, st);
  }
}

/** The error for an ack-mode send whose outcome was `st`, having waited up to `timeout` ms. */
export function ackError(ch: ChannelFacts, st: number, timeout: number): FerryError {
  switch (st) {
    case Status.PEER_DIED:
      return new PeerDiedError(
        `the receiver holding this message on '${ch.name}' died before releasing it; it may have been processed`,
      );
    case Status.EXPIRED:
      return new ExpiredError(`the message on '${ch.name}' expired before any receiver took it`);
    case Status.REJECTED:
      return new RejectedError(
        `the receiver holding this message on '${ch.name}' rejected it (msg.reject(); a bridge does so for a ` +
          "message it cannot forward, its stat's lastError says why): it was not processed",
      );
    case Status.TIMEOUT:
      return new TimeoutError(
        `no receiver released the message on '${ch.name}' within ${timeout} ms (ack mode); ` +
          "if none had taken it, it was withdrawn",
      );
    default:
      return statusError(ch, st);
  }
}

/** The error for any other status a call on an open channel returned. */
export function statusError(ch: ChannelFacts, st: number): FerryError {
  if (st === Status.CLOSED) return closedError(ch);
  if (st === Status.ERR_NOT_HELD) {
    return new FerryError("NotHeld", `that message is no longer held by this handle on '${ch.name}'`);
  }
  if (st === Status.ERR_INCOMPATIBLE) {
    return new IncompatibleChannelError(
      `channel '${ch.name}' holds a damaged message (its segment was overwritten); it was dropped`,
    );
  }
  return new FerryError("Internal", `unexpected status ${st} from the ferry core on '${ch.name}'`);
}

/** A call on a handle after close(). */
export function closedError(ch: ChannelFacts): ChannelClosedError {
  return new ChannelClosedError(`channel '${ch.name}' is closed`);
}

/** A receive that waited `timeout` ms for nothing. */
export function nothingArrived(ch: ChannelFacts, timeout: number): TimeoutError {
  return new TimeoutError(`nothing arrived on '${ch.name}' within ${timeout} ms`);
}
