// What the numbers in the core's out-arrays mean: one name per index, in one place. The core
// (core/src/ffi.rs) writes these arrays; everything in src/ reads them through these names.

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
  LENGTH: 14,
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

/**
 * How a wait spins before it parks, and how long one park lasts: the same policy as the core's
 * own blocking waits (core/src/engine.rs).
 */
export const WaitPolicy = {
  /** Attempts before a wait parks (about 15 us): a peer's round trip, without a thread hop. */
  SPIN_ATTEMPTS: 200,
  /** Longest single park; waits re-check liveness and deadlines at least this often. */
  PARK_SLICE_MS: 20,
} as const;
