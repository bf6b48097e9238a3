// What the numbers in the core's out-arrays mean: one name per index, in one place. The core writes
// these arrays with the same names (core/src/ffi/abi.rs, the source: one Rust module per object
// here, `recv_meta` for `RecvMeta`); everything in src/ reads them through these names.
// tests/abi.test.ts fails when an index here drifts from the Rust, and so does WaitPolicy from the
// policy of core/src/wait.rs.

/** `ferry_recv`/`ferry_recv_wait` meta (9 x u32). */
export const RecvMeta = {
  SLOT: 0,
  GENERATION: 1,
  LEN: 2,
  PID: 3,
  SEQ_LO: 4,
  SEQ_HI: 5,
  /** FLAG_REDELIVERED | FLAG_ACK | FLAG_NEEDS_BUFFER */
  FLAGS: 6,
  /** Where the payload lies in the segment (zero-copy receives). */
  OFFSET_LO: 7,
  OFFSET_HI: 8,
  LENGTH: 9,
} as const;

/** One entry of `ferry_recv_batch` meta (8 x u32 per message). */
export const BatchMeta = {
  SLOT: 0,
  GENERATION: 1,
  LEN: 2,
  PID: 3,
  SEQ_LO: 4,
  SEQ_HI: 5,
  FLAGS: 6,
  /** Where the payload starts in the destination buffer, from the offset passed in. */
  AT: 7,
  STRIDE: 8,
} as const;

/** Bits of RecvMeta.FLAGS and BatchMeta.FLAGS. */
export const MetaFlag = {
  REDELIVERED: 1,
  ACK: 2,
  /** The message did not fit the buffer: it stays claimed, read it with `ferry_read`. */
  NEEDS_BUFFER: 4,
} as const;

/** `ferry_send`/`ferry_loan`/`ferry_commit` out (4 x u32). */
export const SendOut = {
  SLOT: 0,
  GENERATION: 1,
  /** Sends: the message's lane sequence number. */
  SEQ_LO: 2,
  SEQ_HI: 3,
  /** Loans: where the lent slot's bytes lie in the segment. */
  OFFSET_LO: 2,
  OFFSET_HI: 3,
  LENGTH: 4,
} as const;

/** `ferry_stat` out (14 x u64). */
export const StatIndex = {
  CAPACITY: 0,
  MAX_MESSAGE: 1,
  TOTAL_SIZE: 2,
  DEPTH: 3,
  IN_FLIGHT: 4,
  SENT: 5,
  RECEIVED: 6,
  RELEASED: 7,
  EXPIRED: 8,
  FULL: 9,
  REDELIVERED: 10,
  CREATED_UNIX_MS: 11,
  PARTICIPANTS: 12,
  RESIDENT: 13,
  /** Bytes allocated in /dev/shm now: the fixed part and the slots' reserved pages. */
  RESERVED: 14,
  /** The `memory` bound on the slots' pages, as recorded at creation. */
  MEMORY: 15,
  LENGTH: 16,
} as const;

/** One row of `ferry_participants` (4 x u32). */
export const ParticipantRow = {
  PID: 0,
  ALIVE: 1,
  IN_FLIGHT: 2,
  /** 1: has sent, 2: has received (bits). */
  ROLE: 3,
  STRIDE: 4,
} as const;

/** `ferry_info` out (2 x u32). */
export const InfoOut = {
  CAPACITY: 0,
  MAX_MESSAGE: 1,
  /** The `memory` bound in bytes, as recorded at creation. */
  MEMORY_LO: 2,
  MEMORY_HI: 3,
  LENGTH: 4,
} as const;

/** What a failed open writes to its err_out (8 x i32, OPEN_REPORT_LEN). */
export const OpenReport = {
  STATUS: 0,
  /** By status: a WHY_ or FOREIGN_ reason, an errno, the builder's pid. */
  DETAIL: 1,
  /** 1 if an object was opened and the fields below describe it. */
  FOUND: 2,
  OWNER: 3,
  /** st_mode: file type and permission bits. */
  MODE: 4,
  SIZE_LO: 5,
  SIZE_HI: 6,
  /** Last modification, unix seconds. */
  MTIME: 7,
  LENGTH: 8,
} as const;

/** `ferry_structs_read` out (3 x u32). */
export const StructsRead = {
  NONCE: 0,
  COUNT: 1,
  COPIED: 2,
  LENGTH: 3,
} as const;

/** `ferry_group_info` out (2 x u32). */
export const GroupInfo = {
  ENTRIES: 0,
  TOTAL_SIZE: 1,
  LENGTH: 2,
} as const;

/** `ferry_group_members` and `ferry_group_members_watched` info (3 x u32). */
export const MembersInfo = {
  COUNT: 0,
  BYTES: 1,
  /** u32s the watch of these members takes: a smaller watch buffer is left empty. */
  WATCH_WORDS: 2,
  LENGTH: 3,
} as const;

/** A watch as `ferry_group_members_watched` keeps it: HEADER u32s, then HELD entries of ENTRY u32s. */
export const GroupWatch = {
  VALID: 0,
  GROUP_HASH: 1,
  VERSION_LO: 2,
  VERSION_HI: 3,
  EXPIRY_LO: 4,
  EXPIRY_HI: 5,
  HELD: 6,
  HEADER: 7,
  ENTRY: 3,
} as const;

/** `ferry_group_stat` out (15 x u64). */
export const GroupStatIndex = {
  ENTRIES: 0,
  TOTAL_SIZE: 1,
  LIVE: 2,
  ADDED: 3,
  REFRESHED: 4,
  DISCARDED: 5,
  EXPIRED: 6,
  RECLAIMED: 7,
  MERGED: 8,
  FANOUTS: 9,
  SKIPPED: 10,
  CREATED_UNIX_MS: 11,
  MISSING: 12,
  DIED: 13,
  CLOSED: 14,
  LENGTH: 15,
} as const;

/** `ferry_group_check` out (10 x u32): the table's consistency report. */
export const GroupCheckIndex = {
  ENTRIES: 0,
  FREE: 1,
  WRITING_ALIVE: 2,
  WRITING_ABANDONED: 3,
  LIVE: 4,
  EXPIRED: 5,
  DUPLICATES: 6,
  CORRUPT: 7,
  HELD: 8,
  HELD_ABANDONED: 9,
  LENGTH: 10,
} as const;

/**
 * How the binding's waits spin before they park, and how long one park lasts: the policy of
 * core/src/wait.rs (documented there, with what one attempt and the park's thread hop cost), in the
 * binding's units: about 13 us of attempts and hop before a waiter sleeps.
 */
export const WaitPolicy = {
  /** Attempts before a wait parks (wait.rs JS_SPIN_ATTEMPTS). */
  SPIN_ATTEMPTS: 200,
  /** Longest single park (wait.rs PARK_SLICE_MS); waits re-check liveness and deadlines this often. */
  PARK_SLICE_MS: 20,
  /** Longest wait the adaptive spin tries to catch without parking (wait.rs JS_ADAPTIVE_MAX_US). */
  ADAPTIVE_MAX_US: 50,
  /** How long a wait spins when its peer side was woken since its last wait (wait.rs JS_WOKEN_SPIN_US). */
  WOKEN_SPIN_US: 200,
  /** Longest stretch a promise wait spins without giving the event loop a turn (wait.rs JS_SPIN_SLICE_US). */
  SPIN_SLICE_US: 5,
  /** The `spin` option's ABI word for "polite" and "busy"; otherwise microseconds up to SPIN_MAX_US. */
  SPIN_POLITE: 0xFFFF_FFFE,
  SPIN_BUSY: 0xFFFF_FFFF,
  SPIN_MAX_US: 1_000_000,
} as const;

/** The layout's numbers the binding needs (core/src/layout.rs, where each is documented). */
export const Layout = {
  /** The most participants (open handles) a channel takes. */
  MAX_PARTICIPANTS: 64,
  /** Payloads up to this size live in the slot's own line. */
  INLINE_BYTES: 96,
  /** The granule of the slots' data reservations. */
  PAGE: 4096,
} as const;
