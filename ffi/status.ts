// Status codes (core/src/status.rs) and call flags (core/src/ffi/abi.rs): copies of the core's
// numbers, which are the source. tests/abi.test.ts fails when one here drifts from the Rust.

export const Status = {
  OK: 0,
  EMPTY: 1,
  FULL_CAPACITY: 2,
  FULL_SLOTS: 3,
  PENDING: 4,
  PEER_DIED: 5,
  EXPIRED: 6,
  TIMEOUT: 7,
  NEED_BUFFER: 8,
  CLOSED: 9,
  BUILT: 10,
  FULL_MEMORY: 11,
  REJECTED: 12,
  ERR_TOO_LARGE: -1,
  ERR_INVALID_NAME: -2,
  ERR_INCOMPATIBLE: -3,
  ERR_NO_SPACE: -4,
  ERR_PERMISSION: -5,
  ERR_TOO_MANY_PARTICIPANTS: -6,
  ERR_INVALID_ARGUMENT: -7,
  ERR_NOT_HELD: -8,
  ERR_NOT_FOUND: -9,
  ERR_IO: -10,
  ERR_BUILDING: -11,
  ERR_INCOMPLETE: -12,
  ERR_FOREIGN: -13,
} as const;

/** Sub-reasons reported with ERR_INCOMPATIBLE. */
export const IncompatibleReason: Record<number, string> = {
  1: "it is not a ferry channel (wrong magic)",
  2: "it was made by another ferry layout version",
  3: "its size does not match its header (truncated or corrupt)",
  5: "it was damaged while in use (its header says it is not built, yet live processes have it open)",
};

/** Outcomes and the one error of `ferry_group_add` (core/src/status.rs, `mod group`). */
export const GroupStatus = { ADDED: 0, REFRESHED: 1, UNCHANGED: 2, ERR_TABLE_FULL: -100 } as const;

/** Outcomes of `ferry_structs_append` besides the shared codes (core/src/status.rs, `mod structs`). */
export const StructsStatus = { CONFLICT: 200, ERR_STORE_FULL: -200, ERR_STALE: -201 } as const;

/** Sub-reasons reported with ERR_FOREIGN. */
export const ForeignReason = {
  NOT_REGULAR: 1,
  SYMLINK: 2,
  OWNER: 3,
  MODE: 4,
} as const;

/** i32 values an open writes to its err_out when it fails (`OpenReport` in ./abi.ts names them). */
export const OPEN_REPORT_LEN = 8;

export const OPEN_OBSERVER = 1;
/** Open only an existing channel (absent: ERR_NOT_FOUND). */
export const OPEN_EXISTING = 2;
export const SEND_ACK = 1;
export const SEND_COUNT_FULL = 2;
/** A retry after FULL: the core may look only at the oldest in-flight slot most times. */
export const SEND_RETRY = 4;
/** The message may repeat one sent before: its receiver sees REDELIVERED (the `redelivered` send option). */
export const SEND_REPEAT = 8;
export const RECV_AUTO_RELEASE = 1;
/** Claim without copying; the payload is read in place through a zero-copy view. */
export const RECV_NO_COPY = 2;
export const SIDE_RECV = 0;
export const SIDE_SEND = 1;
/** A timeout of "no limit" through the u32 ABI. */
export const NO_TIMEOUT = 0xffff_ffff;
/** `ferry_open`'s memory_lo and memory_hi, both: the default bound. */
export const MEMORY_DEFAULT = 0xffff_ffff;
/** `lifetime` of `ferry_group_add`: until its expiry. */
export const LIFETIME_EXPIRY = 0;
/** `lifetime` of `ferry_group_add`: while the adding table handle is open (its process alive). */
export const LIFETIME_PROCESS = 1;
