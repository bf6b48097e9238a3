//! The numbers the C ABI shares with the Deno binding, named once: flag bits of the calls and the
//! index of every field in the arrays the calls write. The binding's copies are `ffi/status.ts`
//! (flags) and `ffi/abi.ts` (indexes, one TS object per module here, `recv_meta` as `RecvMeta`);
//! tests/abi.test.ts reads this file and fails when a copy drifts. This file is the source.
//!
//! Only `pub const NAME: type = literal;` lines, so that the test can read them without a Rust
//! parser.

/// `flags` of `ferry_open`: inspect only, never take part (no participant seat, nothing created).
pub const OPEN_OBSERVER: u32 = 1;
/// `flags` of `ferry_open`: open only an existing channel: absent is ERR_NOT_FOUND.
pub const OPEN_EXISTING: u32 = 2;
/// `flags` of `ferry_send*`/`ferry_commit`: ack mode (the sender waits for the release).
pub const SEND_ACK: u32 = 1;
/// Count a FULL answer in the channel's `full` counter (a caller giving up, not one retrying).
pub const SEND_COUNT_FULL: u32 = 2;
/// The caller tries again after FULL: a cheaper look at its in-flight slots will do.
pub const SEND_RETRY: u32 = 4;
/// `flags` of `ferry_send*`/`ferry_commit`/`ferry_send_batch`: the message may repeat one sent
/// before (a relay, a retry after an unknown outcome); its receiver sees `meta_flag::REDELIVERED`.
pub const SEND_REPEAT: u32 = 8;
/// `flags` of `ferry_recv*`: release the message once it is copied.
pub const RECV_AUTO_RELEASE: u32 = 1;
/// Claim without copying: the caller reads the payload in place (`recv_meta::OFFSET_*`).
pub const RECV_NO_COPY: u32 = 2;
/// `side` of the park calls.
pub const SIDE_RECV: u32 = 0;
pub const SIDE_SEND: u32 = 1;
/// A timeout of "no limit" (u32::MAX).
pub const NO_TIMEOUT: u32 = 0xffff_ffff;
/// `memory_lo` and `memory_hi` of `ferry_open`, both: the default bound (layout::MEMORY_DEFAULT).
pub const MEMORY_DEFAULT: u32 = 0xffff_ffff;
/// `lifetime` of `ferry_group_add`: until `expiry_ms` from now.
pub const LIFETIME_EXPIRY: u32 = 0;
/// `lifetime` of `ferry_group_add`: while the adding table handle is open (its process alive).
pub const LIFETIME_PROCESS: u32 = 1;
/// i32 values an open that failed writes to its `err_out` (`open_report`).
pub const OPEN_REPORT_LEN: u32 = 8;

/// `ferry_recv`/`ferry_recv_wait` meta (LENGTH x u32).
pub mod recv_meta {
    pub const SLOT: usize = 0;
    pub const GENERATION: usize = 1;
    pub const LEN: usize = 2;
    pub const PID: usize = 3;
    pub const SEQ_LO: usize = 4;
    pub const SEQ_HI: usize = 5;
    /// `meta_flag` bits.
    pub const FLAGS: usize = 6;
    /// Where the payload lies in the segment (zero-copy receives).
    pub const OFFSET_LO: usize = 7;
    pub const OFFSET_HI: usize = 8;
    pub const LENGTH: usize = 9;
}

/// One entry of `ferry_recv_batch` meta (STRIDE x u32 per message).
pub mod batch_meta {
    pub const SLOT: usize = 0;
    pub const GENERATION: usize = 1;
    pub const LEN: usize = 2;
    pub const PID: usize = 3;
    pub const SEQ_LO: usize = 4;
    pub const SEQ_HI: usize = 5;
    pub const FLAGS: usize = 6;
    /// Where the payload starts in the destination buffer, from the offset passed in.
    pub const AT: usize = 7;
    pub const STRIDE: usize = 8;
}

/// Bits of `recv_meta::FLAGS` and `batch_meta::FLAGS`.
pub mod meta_flag {
    pub const REDELIVERED: u32 = 1;
    pub const ACK: u32 = 2;
    /// The message did not fit the buffer: it stays claimed, read it with `ferry_read`.
    pub const NEEDS_BUFFER: u32 = 4;
}

/// `ferry_send`/`ferry_commit` out, and `ferry_loan` out (LENGTH x u32).
pub mod send_out {
    pub const SLOT: usize = 0;
    pub const GENERATION: usize = 1;
    /// Sends: the message's lane sequence number.
    pub const SEQ_LO: usize = 2;
    pub const SEQ_HI: usize = 3;
    /// Loans: where the lent slot's bytes lie in the segment.
    pub const OFFSET_LO: usize = 2;
    pub const OFFSET_HI: usize = 3;
    pub const LENGTH: usize = 4;
}

/// `ferry_info` out (LENGTH x u32).
pub mod info_out {
    pub const CAPACITY: usize = 0;
    pub const MAX_MESSAGE: usize = 1;
    /// The `memory` bound in bytes, as recorded at creation.
    pub const MEMORY_LO: usize = 2;
    pub const MEMORY_HI: usize = 3;
    pub const LENGTH: usize = 4;
}

/// `ferry_stat` out (LENGTH x u64), `channel::ChannelStat` field by field.
pub mod stat_index {
    pub const CAPACITY: usize = 0;
    pub const MAX_MESSAGE: usize = 1;
    pub const TOTAL_SIZE: usize = 2;
    pub const DEPTH: usize = 3;
    pub const IN_FLIGHT: usize = 4;
    pub const SENT: usize = 5;
    pub const RECEIVED: usize = 6;
    pub const RELEASED: usize = 7;
    pub const EXPIRED: usize = 8;
    pub const FULL: usize = 9;
    pub const REDELIVERED: usize = 10;
    pub const CREATED_UNIX_MS: usize = 11;
    pub const PARTICIPANTS: usize = 12;
    pub const RESIDENT: usize = 13;
    /// Bytes allocated in /dev/shm now: the fixed part and the slots' reserved pages.
    pub const RESERVED: usize = 14;
    /// The `memory` bound on the slots' pages, as recorded at creation.
    pub const MEMORY: usize = 15;
    pub const LENGTH: usize = 16;
}

/// One row of `ferry_participants` (STRIDE x u32).
pub mod participant_row {
    pub const PID: usize = 0;
    pub const ALIVE: usize = 1;
    pub const IN_FLIGHT: usize = 2;
    /// 1: has sent, 2: has received (bits).
    pub const ROLE: usize = 3;
    pub const STRIDE: usize = 4;
}

/// What a failed open writes to its `err_out` (LENGTH x i32, `OPEN_REPORT_LEN`).
pub mod open_report {
    /// The status code.
    pub const STATUS: usize = 0;
    /// By status: a WHY_ or FOREIGN_ reason, an errno, the builder's pid.
    pub const DETAIL: usize = 1;
    /// 1 if an object was opened and the fields below describe it.
    pub const FOUND: usize = 2;
    pub const OWNER: usize = 3;
    /// `st_mode`: file type and permission bits.
    pub const MODE: usize = 4;
    pub const SIZE_LO: usize = 5;
    pub const SIZE_HI: usize = 6;
    /// Last modification, unix seconds.
    pub const MTIME: usize = 7;
    pub const LENGTH: usize = 8;
}

/// `ferry_group_info` out (LENGTH x u32).
pub mod group_info {
    pub const ENTRIES: usize = 0;
    pub const TOTAL_SIZE: usize = 1;
    pub const LENGTH: usize = 2;
}

/// `ferry_structs_read` out (LENGTH x u32).
pub mod structs_read {
    pub const NONCE: usize = 0;
    pub const COUNT: usize = 1;
    pub const COPIED: usize = 2;
    pub const LENGTH: usize = 3;
}

/// `ferry_group_members` and `ferry_group_members_watched` info (LENGTH x u32).
pub mod members_info {
    pub const COUNT: usize = 0;
    pub const BYTES: usize = 1;
    /// u32s the watch of these members takes (`group_watch`): a smaller watch buffer is left empty.
    pub const WATCH_WORDS: usize = 2;
    pub const LENGTH: usize = 3;
}

/// A watch as `ferry_group_members_watched` keeps it in the caller's buffer (`group::Watch`):
/// a header of HEADER u32s, then `HELD` entries of ENTRY u32s (entry index, state word lo, hi).
pub mod group_watch {
    /// 1: the rest is a watch; 0: empty (the next call scans).
    pub const VALID: usize = 0;
    pub const GROUP_HASH: usize = 1;
    pub const VERSION_LO: usize = 2;
    pub const VERSION_HI: usize = 3;
    pub const EXPIRY_LO: usize = 4;
    pub const EXPIRY_HI: usize = 5;
    pub const HELD: usize = 6;
    pub const HEADER: usize = 7;
    pub const ENTRY: usize = 3;
}

/// `ferry_group_stat` out (LENGTH x u64), `group::GroupStat` field by field.
pub mod group_stat_index {
    pub const ENTRIES: usize = 0;
    pub const TOTAL_SIZE: usize = 1;
    pub const LIVE: usize = 2;
    pub const ADDED: usize = 3;
    pub const REFRESHED: usize = 4;
    pub const DISCARDED: usize = 5;
    pub const EXPIRED: usize = 6;
    pub const RECLAIMED: usize = 7;
    pub const MERGED: usize = 8;
    pub const FANOUTS: usize = 9;
    pub const SKIPPED: usize = 10;
    pub const CREATED_UNIX_MS: usize = 11;
    pub const MISSING: usize = 12;
    pub const DIED: usize = 13;
    pub const CLOSED: usize = 14;
    pub const LENGTH: usize = 15;
}

/// `ferry_group_check` out (LENGTH x u32), `group::Check` field by field.
pub mod group_check_index {
    pub const ENTRIES: usize = 0;
    pub const FREE: usize = 1;
    pub const WRITING_ALIVE: usize = 2;
    pub const WRITING_ABANDONED: usize = 3;
    pub const LIVE: usize = 4;
    pub const EXPIRED: usize = 5;
    pub const DUPLICATES: usize = 6;
    pub const CORRUPT: usize = 7;
    pub const HELD: usize = 8;
    pub const HELD_ABANDONED: usize = 9;
    pub const LENGTH: usize = 10;
}
