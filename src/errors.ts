// Every error ferry throws: a FerryError with a stable `code` and a message that says what to do.

/**
 * The base of every error ferry throws. `code` is stable (match on it, or on the subclass); the
 * message says what happened and what to do.
 *
 * @example
 * ```ts
 * import { Channel, FerryError } from "@ferry/ferry";
 *
 * try {
 *   Channel.open("no such/name");
 * } catch (e) {
 *   if (e instanceof FerryError) console.log(e.code); // "InvalidName"
 * }
 * ```
 */
export class FerryError extends Error {
  /** What went wrong, as a stable identifier: "ChannelFull", "Timeout", "PeerDied", ... */
  readonly code: string;
  /** An error with `code`; `options.cause` carries the error it comes from. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** No room: the channel holds `capacity` messages, or this sender has `slots` unreleased. */
export class ChannelFullError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("ChannelFull", message);
  }
}

/** A wait ran out; the message names what was waited for. */
export class TimeoutError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("Timeout", message);
  }
}

/** The receiver holding an ack-mode message died before releasing it. */
export class PeerDiedError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("PeerDied", message);
  }
}

/**
 * The receiver holding an ack-mode message rejected it (`msg.reject()`): it took the message and
 * says it did not process it. Across a bridge: the remote side could not deliver it (its channel
 * was full or refused it), or a remote receiver rejected it.
 */
export class RejectedError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("Rejected", message);
  }
}

/** The message expired before a receiver took it; it was never delivered. */
export class ExpiredError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("Expired", message);
  }
}

/** The encoded message is larger than the channel's maxMessageSize; nothing was written. */
export class MessageTooLargeError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("MessageTooLarge", message);
  }
}

/** The segment is not a ferry channel of this version, or it is truncated or corrupt. */
export class IncompatibleChannelError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("IncompatibleChannel", message);
  }
}

/** The handle was closed: by `close()` before or during the call. */
export class ChannelClosedError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("ChannelClosed", message);
  }
}

/** A channel name, group name or prefix breaks the naming rule (letters, digits, `. _ - !`, 1 to 100). */
export class InvalidNameError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("InvalidName", message);
  }
}

/** The value cannot be encoded by the channel's codec; nothing was written. */
export class EncodeError extends FerryError {
  /** `options.cause`: the codec's own error. */
  constructor(message: string, options?: ErrorOptions) {
    super("Encode", message, options);
  }
}

/** The received bytes cannot be decoded by the channel's codec (the message was consumed). */
export class DecodeError extends FerryError {
  /** `options.cause`: the codec's own error. */
  constructor(message: string, options?: ErrorOptions) {
    super("Decode", message, options);
  }
}

/** An option is out of its range or of the wrong type; the message names it and what it takes. */
export class InvalidOptionError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("InvalidOption", message);
  }
}

/** The system refused access to a segment (code "PermissionDenied"); see also ForeignSegmentError. */
export class PermissionDeniedError extends FerryError {
  /** `code` is for ForeignSegmentError, which is a kind of this error. */
  constructor(message: string, code = "PermissionDenied") {
    super(code, message);
  }
}

/**
 * What sits at a segment's name in /dev/shm is not the caller's to use: another user's file (not
 * root's, not in `trustedOwners`), a file granting more access than the caller's `permissions`, a
 * symbolic link, or not a regular file. /dev/shm is world-writable, so anyone can put a file where
 * a channel will be; ferry refuses it and leaves it exactly as it was.
 */
export class ForeignSegmentError extends PermissionDeniedError {
  /** The message says what was found (path, owner uid, mode) and what to do. */
  constructor(message: string) {
    super(message, "ForeignSegment");
  }
}

/** /dev/shm cannot hold the segment. */
export class NoSpaceError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("NoSpace", message);
  }
}

/**
 * There is no such channel: opened with `create: false`, a group member without a channel, or a
 * channel whose creator died before finishing it.
 */
export class ChannelNotFoundError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("ChannelNotFound", message);
  }
}

/** The channel already has 64 open handles, the most one takes; close handles you no longer use. */
export class TooManyParticipantsError extends FerryError {
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("TooManyParticipants", message);
  }
}

/** What the common system errors mean for a ferry call, by errno (Linux numbers). */
const ERRNO: Record<number, [string, string]> = {
  1: ["EPERM", "operation not permitted"],
  4: ["EINTR", "interrupted by a signal"],
  5: ["EIO", "input/output error"],
  11: ["EAGAIN", "resource temporarily unavailable; try again"],
  12: ["ENOMEM", "out of memory"],
  13: ["EACCES", "permission denied"],
  16: ["EBUSY", "resource busy"],
  19: ["ENODEV", "/dev/shm is not a shared-memory file system here"],
  20: ["ENOTDIR", "a path component is not a directory"],
  23: ["ENFILE", "the system's open-file table is full: close files or raise fs.file-max"],
  24: [
    "EMFILE",
    "this process has too many open files: close channels you no longer use (`using`), or raise " +
    "the limit (ulimit -n)",
  ],
  27: ["EFBIG", "file too large"],
  28: ["ENOSPC", "no space left on /dev/shm"],
  30: ["EROFS", "/dev/shm is read-only"],
  37: ["ENOLCK", "no locks available: the system's lock table is full"],
  40: ["ELOOP", "the segment's path is a symbolic link, which ferry refuses"],
};

/**
 * A system call failed for a reason ferry has no more specific error for (code "Io"): `errno`
 * is the number, `errnoName` its name (EMFILE, ENFILE, ...), and the message says what to do.
 */
export class SystemError extends FerryError {
  /** The system's error number (Linux). */
  readonly errno: number;
  /** Its name: EMFILE, ENFILE, ... */
  readonly errnoName: string;
  /** The error for `what` failing with `errno`. */
  constructor(what: string, errno: number) {
    const [name, meaning] = ERRNO[errno] ?? [`errno ${errno}`, "system error"];
    super("Io", `${what}: ${name} (${meaning})`);
    this.errno = errno;
    this.errnoName = name;
  }
}

/** Every membership slot of a namespace's group table holds a live membership. */
export class GroupTableFullError extends FerryError {
  /** The message says how full the table is and how to make room. */
  /** The message says what happened and what to do. */
  constructor(message: string) {
    super("GroupTableFull", message);
  }
}
