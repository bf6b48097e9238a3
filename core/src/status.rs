//! Status codes returned through the C ABI. Non-negative codes are outcomes of normal operation;
//! negative codes are errors. `ffi/status.ts` mirrors this table: keep them in step.

pub const OK: i32 = 0;
/// Nothing to receive right now.
pub const EMPTY: i32 = 1;
/// Every slot of the channel holds a message (capacity reached).
pub const FULL_CAPACITY: i32 = 2;
/// This sender already has `slots` messages written and not yet released.
pub const FULL_SLOTS: i32 = 3;
/// An ack-mode message is not released yet.
pub const PENDING: i32 = 4;
/// The receiver holding an ack-mode message died.
pub const PEER_DIED: i32 = 5;
/// The message expired before a receiver took it.
pub const EXPIRED: i32 = 6;
pub const TIMEOUT: i32 = 7;
/// The received message does not fit the destination buffer; it stays claimed, read it with
/// `ferry_read` into a larger one.
pub const NEED_BUFFER: i32 = 8;
pub const CLOSED: i32 = 9;

pub const ERR_TOO_LARGE: i32 = -1;
pub const ERR_INVALID_NAME: i32 = -2;
pub const ERR_INCOMPATIBLE: i32 = -3;
pub const ERR_NO_SPACE: i32 = -4;
pub const ERR_PERMISSION: i32 = -5;
pub const ERR_TOO_MANY_PARTICIPANTS: i32 = -6;
pub const ERR_INVALID_ARGUMENT: i32 = -7;
/// Release or read of a message this handle does not hold (already released, or reclaimed).
pub const ERR_NOT_HELD: i32 = -8;
pub const ERR_NOT_FOUND: i32 = -9;
pub const ERR_IO: i32 = -10;

/// Sub-reasons for ERR_INCOMPATIBLE, reported next to the code.
pub const WHY_MAGIC: i32 = 1;
pub const WHY_VERSION: i32 = 2;
pub const WHY_SIZE: i32 = 3;
pub const WHY_STUCK: i32 = 4;
