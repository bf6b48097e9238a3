//! Status codes returned through the C ABI. Non-negative codes are outcomes of normal operation;
//! negative codes are errors. This file is the source: `ffi/status.ts` is its copy for the Deno
//! binding, and tests/abi.test.ts reads this file and fails when the copy drifts (so: only
//! `pub const NAME: i32 = literal;` lines, and `pub mod` blocks of them).

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
/// `ferry_unlink_incomplete`: the segment is finished (READY), so it was kept.
pub const BUILT: i32 = 10;
/// The slots' reservations would pass the channel's `memory` bound, even after trimming free
/// slots: room comes back as receivers release messages.
pub const FULL_MEMORY: i32 = 11;
/// The receiver holding an ack-mode message rejected it (`ferry_reject`): it was not processed.
pub const REJECTED: i32 = 12;

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
/// Another process holds the segment's init lock (it is building it, or is stopped mid-build)
/// and the open's timeout passed first. Detail: the builder's pid, 0 if unknown.
pub const ERR_BUILDING: i32 = -11;
/// The segment is not built and nobody is building it (its creator died mid-build); this open
/// may not build it (an observer, or `OPEN_EXISTING`). gc removes such segments.
pub const ERR_INCOMPLETE: i32 = -12;
/// The object at the name is not the caller's to use (see segment.rs, "Trust"); it was not
/// touched. Detail: a FOREIGN_ reason.
pub const ERR_FOREIGN: i32 = -13;

/// Sub-reasons for ERR_INCOMPATIBLE, reported next to the code.
pub const WHY_MAGIC: i32 = 1;
pub const WHY_VERSION: i32 = 2;
pub const WHY_SIZE: i32 = 3;
// 4 was WHY_STUCK, never reported since opens wait with a timeout (ERR_BUILDING); not reused.
/// Not built, yet live processes use it: its header was damaged under them. Never rebuilt.
pub const WHY_DAMAGED_IN_USE: i32 = 5;

/// Sub-reasons for ERR_FOREIGN.
pub const FOREIGN_NOT_REGULAR: i32 = 1;
pub const FOREIGN_SYMLINK: i32 = 2;
/// Owned by a user who is neither the caller, root, nor one of the caller's trusted owners.
pub const FOREIGN_OWNER: i32 = 3;
/// Grants access the caller's permissions do not (or has bits outside 0o777).
pub const FOREIGN_MODE: i32 = 4;

/// Outcomes and the one error of `ferry_group_add` (group.rs; `GroupStatus` in ffi/status.ts). The
/// error sits outside the range above so that it can never be mistaken for a channel's.
pub mod group {
    /// A new membership.
    pub const ADDED: i32 = 0;
    /// The pair was a member already: its deadline moved to the later one (or this handle held it).
    pub const REFRESHED: i32 = 1;
    /// `ferry_group_members_watched`: the members are those the watch was made with.
    pub const UNCHANGED: i32 = 2;
    /// Every entry holds a live membership or a live writer's claim: raise groupMemory or discard.
    pub const ERR_TABLE_FULL: i32 = -100;
}

/// Outcomes of a structure store's append (`structs`; `StructsStatus` in ffi/status.ts), outside
/// the ranges above. TIMEOUT, ERR_INVALID_ARGUMENT and ERR_IO keep their meaning there.
pub mod structs {
    /// Another writer appended first: read what it added, then try again.
    pub const CONFLICT: i32 = 200;
    /// No room for the entries (the store keeps what it has; new shapes travel whole).
    pub const ERR_STORE_FULL: i32 = -200;
    /// The store's nonce is not the one the caller read: it was removed and made again.
    pub const ERR_STALE: i32 = -201;
}
