//! The shared-memory layout of one channel segment, described once here and mirrored by the
//! `#[repr(C)]` structs below. Everything in the segment is addressed by offsets from its start,
//! never by pointers, so every process can map it anywhere.
//!
//! ```text
//! offset 0            Header        5 lines of 128 B: fixed settings, receive wait word,
//!                                   send wait word, shared counters, memory hint
//! participants_off    Participant   MAX_PARTICIPANTS x 384 B: owner line (pid, tail, counters),
//!                                   lane ring (32 slot indices), lane head (own line)
//! slots_off           Slot          capacity x 128 B: one state word, the message metadata and
//!                                   payloads of up to 96 B (inline)
//! reserve_off         Reserve       capacity x 8 B: what each slot's data region has reserved
//! data_off            data          capacity x slot_stride bytes, page aligned; slot_stride is 0
//!                                   when max_message fits inline, else max_message in whole pages
//! ```
//!
//! Hot atomics that different processes write sit on separate 128-byte lines (the adjacent-line
//! prefetcher pairs 64-byte lines, so 64 would still share).
//!
//! # Memory
//!
//! The file has its full size (`total_size`, sparse), but only `[0, data_off)` is allocated when
//! the segment is built: an idle channel costs its header, participants, slot lines and reserve
//! table (about 40 KiB at capacity 100). A slot's data pages are allocated (`fallocate`) by the
//! sender that owns the slot when a message needs them, and stay with the slot for the next
//! message; `Reserve` records how far, and `Fixed::memory` bounds the sum over all slots. Nobody
//! touches a data page its slot's `Reserve` does not cover (see channel/alloc.rs): a page of a
//! hole touched on a full /dev/shm would be SIGBUS, a page reserved first is never.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// "FERRYCH1" as a little-endian u64: tells a ferry segment from anything else in /dev/shm.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FERRYCH1");
/// Bumped on every incompatible change to the structs in this file.
/// 3: sparse data regions with per-slot reservations (`Reserve`, `Fixed::memory`, `MemoryLine`).
pub const LAYOUT_VERSION: u32 = 3;
/// Participants (open handles) per channel. One bit each in the sleeper masks (a u64).
pub const MAX_PARTICIPANTS: usize = 64;
/// Entries in a sender's lane ring; also the largest per-sender `slots` limit.
pub const LANE_RING: usize = 32;
/// Capacity bounds, so that slot indices fit the state word and sizes stay sane.
pub const MAX_CAPACITY: u32 = 1 << 16;
/// Largest message (1 GiB): lengths travel as u32 through the FFI.
pub const MAX_MESSAGE_LIMIT: u32 = 1 << 30;

/// `init_state` of a finished segment (channel or group table). A builder writes it last; any other
/// value (zero while the builder works, or what a dead builder left) means "not built".
pub const INIT_READY: u32 = 2;

pub const PARTICIPANT_EMPTY: u32 = 0;
pub const PARTICIPANT_ACTIVE: u32 = 1;

/// Settings fixed at creation; read back by every later opener. `magic`, `version` and
/// `init_state` keep their offsets (0, 8, 12) in every layout version: openers read them first.
#[repr(C, align(128))]
pub struct Fixed {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// INIT_READY once the builder finished (see `INIT_READY`). Openers wait for it.
    pub init_state: AtomicU32,
    pub total_size: AtomicU64,
    pub capacity: AtomicU32,
    pub max_message: AtomicU32,
    pub slot_stride: AtomicU64,
    pub participants_off: AtomicU64,
    pub slots_off: AtomicU64,
    pub data_off: AtomicU64,
    pub created_unix_ms: AtomicU64,
    /// Most bytes the slots' data regions may reserve together (the `memory` option), as asked
    /// at creation; what binds is the smaller of this and `capacity x slot_stride`.
    pub memory: AtomicU64,
    pub reserve_off: AtomicU64,
}

/// An eventcount: sleepers set their bit, then wait on `word`; a waker bumps `word` and calls
/// FUTEX_WAKE only when some bit is set, so the common case costs one load.
#[repr(C, align(128))]
pub struct WaitLine {
    pub word: AtomicU32,
    pub _pad: u32,
    pub sleepers: AtomicU64,
}

/// Counters and hints written rarely (recovery, expiry), by any process.
#[repr(C, align(128))]
pub struct SharedLine {
    /// One past the highest participant index ever claimed: receivers scan lanes below it.
    pub lanes_used: AtomicU32,
    /// Messages made READY again by recovery and not yet claimed (a hint: receivers scan slots
    /// for them while it is non-zero).
    pub redeliver_pending: AtomicU32,
    /// CLOCK_MONOTONIC_COARSE ms (`sys::coarse_ms`) of the last liveness sweep, so parked processes
    /// do not all sweep.
    pub last_sweep_ms: AtomicU64,
    pub expired: AtomicU64,
    pub redelivered: AtomicU64,
}

/// The sum of the slots' reservations as last known, and the largest size sends needed lately:
/// hints, on their own line because senders write them when they grow or shrink a slot (and
/// refresh the second a few times a second), and read them on sends that could shrink one.
#[repr(C, align(128))]
pub struct MemoryLine {
    /// Close to the sum of `Reserve::charged` over the slots: exact after a bounded growth (which
    /// sums under the allocator lock), off by what a process that died mid-change left.
    pub reserved_hint: AtomicU64,
    /// bits 0..24: the largest slot need (in pages) a send had lately; bits 24..64: when
    /// (`sys::coarse_ms`). Slots keep pages for that size until it is older than
    /// `channel::KEEP_MS` (channel/alloc.rs). Zero in a segment built before it existed, which
    /// reads as "nothing needed lately": the layout before it stays compatible.
    pub recent_need: AtomicU64,
}

#[repr(C)]
pub struct Header {
    pub fixed: Fixed,
    pub recv_wait: WaitLine,
    pub send_wait: WaitLine,
    pub shared: SharedLine,
    pub memory: MemoryLine,
}

/// The line a participant writes: its identity, its lane tail and its counters. Counters are
/// cumulative per entry (a later owner of the index continues them), so sums over entries count
/// everything the channel ever did.
#[repr(C, align(128))]
pub struct OwnerLine {
    pub state: AtomicU32,
    pub pid: AtomicU32,
    pub epoch: AtomicU32,
    pub _pad: u32,
    /// Next sequence number this lane will publish. Continues across owners, so messages a dead
    /// sender left queued are still delivered first and (lane, seq) stays unique.
    pub tail: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub released: AtomicU64,
    pub full: AtomicU64,
}

#[repr(C, align(128))]
pub struct LaneRing {
    pub slot: [AtomicU32; LANE_RING],
}

#[repr(C, align(128))]
pub struct LaneHead {
    /// Next sequence number to deliver from this lane; any receiver (or the sender) may advance
    /// it past an entry that is no longer READY with that sequence.
    pub head: AtomicU64,
}

#[repr(C)]
pub struct Participant {
    pub owner: OwnerLine,
    pub ring: LaneRing,
    pub head: LaneHead,
}

#[repr(C, align(128))]
pub struct Slot {
    /// See `state.rs`: state, flags, sender, receiver and generation in one word.
    pub state: AtomicU64,
    /// Lane sequence number of the message.
    pub seq: AtomicU64,
    /// CLOCK_MONOTONIC_COARSE ms after which the message is never delivered; 0 = never.
    pub deadline_ms: AtomicU64,
    pub len: AtomicU32,
    pub pid: AtomicU32,
    /// Payloads of up to INLINE_BYTES live here, in the state word's own line: a small message
    /// then moves between cores as one cache line, not two.
    pub inline: std::cell::UnsafeCell<[u8; INLINE_BYTES]>,
}

/// Payload bytes that fit in a slot's line after its fields.
pub const INLINE_BYTES: usize = 96;

/// What slot k's data region has reserved, in one word so that its two halves change together:
/// bits 0..32 `allocated` (bytes from the region's start that are allocated: safe to touch),
/// bits 32..64 `charged` (bytes counted against `Fixed::memory`). `allocated <= charged`; they
/// differ only while the slot's owner grows or shrinks it, or after it died doing so. Both are
/// whole pages and at most `slot_stride` (1 GiB at most, so u32 holds them). Only the sender
/// holding the slot (WRITING) changes it, or recovery for a dead one.
#[repr(C)]
pub struct Reserve {
    pub word: AtomicU64,
}

/// The granule of reservations: tmpfs allocates and punches whole pages.
pub const PAGE: u64 = 4096;

/// Where each region starts, for a given capacity and message size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub capacity: u32,
    pub max_message: u32,
    pub slot_stride: u64,
    pub participants_off: u64,
    pub slots_off: u64,
    pub reserve_off: u64,
    pub data_off: u64,
    pub total_size: u64,
    /// The `memory` option as recorded (see `Fixed::memory`).
    pub memory: u64,
}

/// `memory` of a creating open that leaves it out: every slot may hold a message of the largest
/// size (`capacity x slot_stride`), the most the channel could ever use.
pub const MEMORY_DEFAULT: u64 = u64::MAX;

pub fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

impl Layout {
    /// None when the sizes are out of range or overflow, or `memory` cannot hold one message of
    /// the largest size (`memory_floor`). `memory`: MEMORY_DEFAULT for the default.
    pub fn new(capacity: u32, max_message: u32, memory: u64) -> Option<Layout> {
        if capacity == 0 || capacity > MAX_CAPACITY || max_message > MAX_MESSAGE_LIMIT {
            return None;
        }
        // Whole pages per slot, so that no page is shared by two slots: each slot's owner may
        // allocate and punch its own pages without touching a neighbour's.
        let slot_stride = Self::slot_need(max_message, max_message);
        let participants_off = round_up(std::mem::size_of::<Header>() as u64, 128);
        let slots_off = participants_off + (MAX_PARTICIPANTS * std::mem::size_of::<Participant>()) as u64;
        let reserve_off = slots_off + u64::from(capacity) * std::mem::size_of::<Slot>() as u64;
        let data_off =
            round_up(reserve_off + u64::from(capacity) * std::mem::size_of::<Reserve>() as u64, PAGE);
        let all_slots = slot_stride.checked_mul(u64::from(capacity))?;
        let total_size = round_up(data_off.checked_add(all_slots)?, PAGE);
        let memory = if memory == MEMORY_DEFAULT { all_slots } else { memory };
        if memory < slot_stride {
            return None;
        }
        Some(Layout {
            capacity,
            max_message,
            slot_stride,
            participants_off,
            slots_off,
            reserve_off,
            data_off,
            total_size,
            memory,
        })
    }

    /// Bytes of a slot's data region a message of `len` bytes needs reserved: none inline, else
    /// whole pages. `max_message`: the channel's, so that `slot_need(max, max)` is the stride.
    pub fn slot_need(len: u32, max_message: u32) -> u64 {
        if max_message as usize <= INLINE_BYTES || len as usize <= INLINE_BYTES {
            0
        } else {
            round_up(u64::from(len), PAGE)
        }
    }

    /// The smallest `memory` a channel with this `max_message` takes: one message of that size.
    pub fn memory_floor(max_message: u32) -> u64 {
        Self::slot_need(max_message, max_message)
    }

    /// What binds the slots' reservations: `memory`, or what every slot full could use if less.
    pub fn memory_bound(&self) -> u64 {
        self.memory.min(self.slot_stride * u64::from(self.capacity))
    }

    /// The layout a segment's header claims, if it is self-consistent.
    pub fn from_fixed(f: &Fixed) -> Option<Layout> {
        use std::sync::atomic::Ordering::Relaxed;
        let l = Layout::new(f.capacity.load(Relaxed), f.max_message.load(Relaxed), f.memory.load(Relaxed))?;
        let same = l.slot_stride == f.slot_stride.load(Relaxed)
            && l.participants_off == f.participants_off.load(Relaxed)
            && l.slots_off == f.slots_off.load(Relaxed)
            && l.reserve_off == f.reserve_off.load(Relaxed)
            && l.data_off == f.data_off.load(Relaxed)
            && l.total_size == f.total_size.load(Relaxed);
        same.then_some(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_sizes_the_layout_assumes() {
        assert_eq!(std::mem::size_of::<Fixed>(), 128);
        assert_eq!(std::mem::size_of::<WaitLine>(), 128);
        assert_eq!(std::mem::size_of::<Header>(), 640);
        assert_eq!(std::mem::size_of::<Reserve>(), 8);
        assert_eq!(std::mem::size_of::<Participant>(), 384);
        assert_eq!(std::mem::size_of::<Slot>(), 128);
    }

    #[test]
    fn layout_rejects_out_of_range_sizes() {
        assert!(Layout::new(0, 64, MEMORY_DEFAULT).is_none());
        assert!(Layout::new(MAX_CAPACITY + 1, 64, MEMORY_DEFAULT).is_none());
        assert!(Layout::new(1, MAX_MESSAGE_LIMIT + 1, MEMORY_DEFAULT).is_none());
        let l = Layout::new(100, 1 << 20, MEMORY_DEFAULT).unwrap();
        assert_eq!(l.data_off % 4096, 0);
        assert!(l.total_size >= l.data_off + 100 * (1 << 20));
        assert_eq!(l.memory, 100 << 20);
        // Below one message of the largest size: that message could never be sent.
        assert!(Layout::new(100, 1 << 20, (1 << 20) - 1).is_none());
        assert!(Layout::new(100, 1 << 20, 1 << 20).is_some());
    }

    #[test]
    fn slots_get_whole_pages_and_inline_channels_no_data_at_all() {
        let l = Layout::new(100, 1000, MEMORY_DEFAULT).unwrap();
        assert_eq!(l.slot_stride, 4096);
        let small = Layout::new(100, INLINE_BYTES as u32, 0).unwrap();
        assert_eq!((small.slot_stride, small.total_size), (0, small.data_off));
        assert_eq!(Layout::slot_need(96, 1 << 20), 0);
        assert_eq!(Layout::slot_need(97, 1 << 20), 4096);
        assert_eq!(Layout::slot_need(4097, 1 << 20), 8192);
        // The part allocated at creation of a default channel: well under 1 MiB.
        assert!(Layout::new(100, 1 << 20, MEMORY_DEFAULT).unwrap().data_off < 64 * 1024);
    }
}
