//! The shared-memory layout of one channel segment, described once here and mirrored by the
//! `#[repr(C)]` structs below. Everything in the segment is addressed by offsets from its start,
//! never by pointers, so every process can map it anywhere.
//!
//! ```text
//! offset 0            Header        4 lines of 128 B: fixed settings, receive wait word,
//!                                   send wait word, shared counters
//! participants_off    Participant   MAX_PARTICIPANTS x 384 B: owner line (pid, tail, counters),
//!                                   lane ring (32 slot indices), lane head (own line)
//! slots_off           Slot          capacity x 128 B: one state word, the message metadata and
//!                                   payloads of up to 96 B (inline)
//! data_off            data          capacity x slot_stride bytes, page aligned
//! ```
//!
//! Hot atomics that different processes write sit on separate 128-byte lines (the adjacent-line
//! prefetcher pairs 64-byte lines, so 64 would still share).

use std::sync::atomic::{AtomicU32, AtomicU64};

/// "FERRYCH1" as a little-endian u64: tells a ferry segment from anything else in /dev/shm.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FERRYCH1");
/// Bumped on every incompatible change to the structs in this file.
pub const LAYOUT_VERSION: u32 = 2;
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

#[repr(C)]
pub struct Header {
    pub fixed: Fixed,
    pub recv_wait: WaitLine,
    pub send_wait: WaitLine,
    pub shared: SharedLine,
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

/// Where each region starts, for a given capacity and message size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub capacity: u32,
    pub max_message: u32,
    pub slot_stride: u64,
    pub participants_off: u64,
    pub slots_off: u64,
    pub data_off: u64,
    pub total_size: u64,
}

const PAGE: u64 = 4096;

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

impl Layout {
    /// None when the sizes are out of range or overflow.
    pub fn new(capacity: u32, max_message: u32) -> Option<Layout> {
        if capacity == 0 || capacity > MAX_CAPACITY || max_message > MAX_MESSAGE_LIMIT {
            return None;
        }
        let slot_stride = round_up(u64::from(max_message).max(1), 64);
        let participants_off = round_up(std::mem::size_of::<Header>() as u64, 128);
        let slots_off = participants_off + (MAX_PARTICIPANTS * std::mem::size_of::<Participant>()) as u64;
        let data_off = round_up(slots_off + u64::from(capacity) * std::mem::size_of::<Slot>() as u64, PAGE);
        let total_size = round_up(data_off.checked_add(slot_stride.checked_mul(u64::from(capacity))?)?, PAGE);
        Some(Layout { capacity, max_message, slot_stride, participants_off, slots_off, data_off, total_size })
    }

    /// The layout a segment's header claims, if it is self-consistent.
    pub fn from_fixed(f: &Fixed) -> Option<Layout> {
        use std::sync::atomic::Ordering::Relaxed;
        let l = Layout::new(f.capacity.load(Relaxed), f.max_message.load(Relaxed))?;
        let same = l.slot_stride == f.slot_stride.load(Relaxed)
            && l.participants_off == f.participants_off.load(Relaxed)
            && l.slots_off == f.slots_off.load(Relaxed)
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
        assert_eq!(std::mem::size_of::<Header>(), 512);
        assert_eq!(std::mem::size_of::<Participant>(), 384);
        assert_eq!(std::mem::size_of::<Slot>(), 128);
    }

    #[test]
    fn layout_rejects_out_of_range_sizes() {
        assert!(Layout::new(0, 64).is_none());
        assert!(Layout::new(MAX_CAPACITY + 1, 64).is_none());
        assert!(Layout::new(1, MAX_MESSAGE_LIMIT + 1).is_none());
        let l = Layout::new(100, 1 << 20).unwrap();
        assert_eq!(l.data_off % 4096, 0);
        assert!(l.total_size >= l.data_off + 100 * (1 << 20));
    }
}
