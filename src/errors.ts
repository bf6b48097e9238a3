// Every error ferry throws: a FerryError with a stable `code` and a message that says what to do.

export class FerryError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** No room: the channel holds `capacity` messages, or this sender has `slots` unreleased. */
export class ChannelFullError extends FerryError {
  constructor(message: string) {
    super("ChannelFull", message);
  }
}

/** A wait ran out; the message names what was waited for. */
export class TimeoutError extends FerryError {
  constructor(message: string) {
    super("Timeout", message);
  }
}

/** The receiver holding an ack-mode message died before releasing it. */
export class PeerDiedError extends FerryError {
  constructor(message: string) {
    super("PeerDied", message);
  }
}

/** The message expired before a receiver took it; it was never delivered. */
export class ExpiredError extends FerryError {
  constructor(message: string) {
    super("Expired", message);
  }
}

export class MessageTooLargeError extends FerryError {
  constructor(message: string) {
    super("MessageTooLarge", message);
  }
}

/** The segment is not a ferry channel of this version, or it is truncated or corrupt. */
export class IncompatibleChannelError extends FerryError {
  constructor(message: string) {
    super("IncompatibleChannel", message);
  }
}

export class ChannelClosedError extends FerryError {
  constructor(message: string) {
    super("ChannelClosed", message);
  }
}

export class InvalidNameError extends FerryError {
  constructor(message: string) {
    super("InvalidName", message);
  }
}

/** The value cannot be encoded by the channel's codec; nothing was written. */
export class EncodeError extends FerryError {
  constructor(message: string, options?: ErrorOptions) {
    super("Encode", message, options);
  }
}

/** The received bytes cannot be decoded by the channel's codec (the message was consumed). */
export class DecodeError extends FerryError {
  constructor(message: string, options?: ErrorOptions) {
    super("Decode", message, options);
  }
}

export class InvalidOptionError extends FerryError {
  constructor(message: string) {
    super("InvalidOption", message);
  }
}

export class PermissionDeniedError extends FerryError {
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
  constructor(message: string) {
    super("NoSpace", message);
  }
}

export class ChannelNotFoundError extends FerryError {
  constructor(message: string) {
    super("ChannelNotFound", message);
  }
}

export class TooManyParticipantsError extends FerryError {
  constructor(message: string) {
    super("TooManyParticipants", message);
  }
}
