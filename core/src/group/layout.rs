//! The group table's shared-memory layout (described in the module doc of `group`): header,
//! counters and entries as `#[repr(C)]` structs, the entry state word, and the segment kind that
//! lets `segment::open_segment` check, build and attach a table.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU32, AtomicU64};
use std::sync::Mutex;

use super::{
    GroupTable, ENTRY_LOCK_BASE, ENTRY_SIZE, GROUP_LAYOUT_VERSION, GROUP_MAGIC, HEADER_SIZE, MAX_MEMORY,
    MIN_MEMORY, NAME_WORDS,
};
use crate::layout::INIT_READY;
use crate::segment::{
    io_error, ready_header, u32_at, u64_at, Found, OpenError, SegmentKind, BUILDER_PID_BYTE,
};
use crate::status::*;
use crate::sys;

/// Settings fixed at creation, and the membership version. `magic`, `version` and `init_state` sit
/// at offsets 0, 8 and 12, as in a channel's `Fixed`, so either kind of opener recognises the other
/// as foreign.
#[repr(C, align(128))]
pub struct GroupFixed {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// INIT_READY (of `layout.rs`) once built: zero (or anything else) until then. Openers wait for READY.
    pub init_state: AtomicU32,
    pub total_size: AtomicU64,
    pub entry_count: AtomicU32,
    pub entry_size: AtomicU32,
    pub entries_off: AtomicU64,
    pub created_unix_ms: AtomicU64,
    /// Bumped (Release) after every change to which channels are members of which group (see
    /// "Watching a group" in the module doc). It shares this read-mostly line rather than the
    /// counters', which every sendGroup writes.
    pub members_version: AtomicU64,
}

/// Cumulative counters, written by any process (Relaxed: they publish nothing).
#[repr(C, align(128))]
pub struct GroupCounters {
    /// Memberships published as new entries.
    pub added: AtomicU64,
    /// Adds of a pair already present: its expiry was pushed out instead.
    pub refreshed: AtomicU64,
    pub discarded: AtomicU64,
    /// Memberships freed because their expiry passed.
    pub expired: AtomicU64,
    /// Entries freed because their writer died mid-add.
    pub reclaimed: AtomicU64,
    /// Duplicate entries of one pair merged away.
    pub merged: AtomicU64,
    /// sendGroup calls reported by senders.
    pub fanouts: AtomicU64,
    /// Members skipped by those calls because their channel was full.
    pub skipped: AtomicU64,
    /// Members those calls found without a channel (reported as failed, never created).
    pub missing: AtomicU64,
    /// HELD memberships freed by a scan because the process holding them died.
    pub died: AtomicU64,
    /// HELD memberships ended by their holder closing its table handle.
    pub closed: AtomicU64,
}

#[repr(C)]
pub struct GroupHeader {
    pub fixed: GroupFixed,
    pub counters: GroupCounters,
}

#[repr(C, align(128))]
pub struct GroupEntry {
    /// See `Word`.
    pub state: AtomicU64,
    /// Group name length (bits 0..8), channel name length (8..16), a check of this word (16..32),
    /// FNV-1a hash of the group name (32..64). Lets a scan skip other groups' entries without
    /// reading their names, and recognise a word no writer made (then the entry is freed).
    pub meta: AtomicU64,
    /// Names, zero-padded, 8 bytes a word (little endian).
    pub group: [AtomicU64; NAME_WORDS],
    pub channel: [AtomicU64; NAME_WORDS],
}

// --------------------------------------------------------------------------------- state word

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Free,
    Writing,
    Live,
    /// A membership that lasts while its holder keeps the entry lock (see "Memberships held by a
    /// process").
    Held,
}

const GEN_SHIFT: u32 = 2;
pub(super) const GEN_MASK: u64 = (1 << 22) - 1;
const EXP_SHIFT: u32 = 24;
/// `expires_at` of a membership that never expires (the largest 40-bit value).
pub const EXPIRES_NEVER: u64 = (1 << 40) - 1;

/// An entry's state word (see the module doc for the bit layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word(pub u64);

impl Word {
    pub fn kind(self) -> EntryKind {
        match self.0 & 3 {
            0 => EntryKind::Free,
            1 => EntryKind::Writing,
            2 => EntryKind::Live,
            _ => EntryKind::Held,
        }
    }
    pub fn generation(self) -> u32 {
        ((self.0 >> GEN_SHIFT) & GEN_MASK) as u32
    }
    pub fn expires_at(self) -> u64 {
        self.0 >> EXP_SHIFT
    }
    pub fn new(kind: EntryKind, generation: u32, expires_at: u64) -> Word {
        let k = match kind {
            EntryKind::Free => 0,
            EntryKind::Writing => 1,
            EntryKind::Live => 2,
            EntryKind::Held => 3,
        };
        Word(
            k | ((u64::from(generation) & GEN_MASK) << GEN_SHIFT)
                | (expires_at.min(EXPIRES_NEVER) << EXP_SHIFT),
        )
    }
    /// FREE with the next generation: what every return to FREE stores.
    pub fn freed(self) -> Word {
        Word::new(EntryKind::Free, self.generation().wrapping_add(1), 0)
    }
    pub fn with_kind(self, kind: EntryKind) -> Word {
        Word::new(kind, self.generation(), self.expires_at())
    }
    pub fn with_expiry(self, expires_at: u64) -> Word {
        Word::new(self.kind(), self.generation(), expires_at)
    }
    /// The same membership (kind and generation), whatever its expiry now says.
    pub fn same_holder(self, other: Word) -> bool {
        (self.0 ^ other.0) & ((1 << EXP_SHIFT) - 1) == 0
    }
    pub fn expired(self, now_ms: u64) -> bool {
        let e = self.expires_at();
        e != EXPIRES_NEVER && now_ms >= e
    }
}

/// The deadline of a membership made now for `expiry_ms` (0: never).
pub fn deadline(now_ms: u64, expiry_ms: u64) -> u64 {
    if expiry_ms == 0 {
        EXPIRES_NEVER
    } else {
        now_ms.saturating_add(expiry_ms).min(EXPIRES_NEVER - 1)
    }
}

pub(super) fn entry_lock_byte(i: u32) -> u64 {
    ENTRY_LOCK_BASE + u64::from(i)
}

pub(super) fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Entries and total size for `memory` bytes.
pub fn table_size(memory: u64) -> Option<(u32, u64)> {
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory) {
        return None;
    }
    let entries = (memory - HEADER_SIZE) / ENTRY_SIZE;
    Some((entries as u32, size_for(entries as u32)))
}

pub(super) fn size_for(entries: u32) -> u64 {
    round_up(HEADER_SIZE + u64::from(entries) * ENTRY_SIZE, 4096)
}

// --------------------------------------------------------------------------------- open/build
//
// The protocol of `segment.rs` (trust check, init lock, timeout, never rebuilding under users);
// only the header, its checks and its contents differ.

/// A group table: its header is `GroupFixed`. Writers hold entry locks (bytes 1..) only while they
/// add, so "in use" can only be seen mid-add: a damaged table whose users are idle is rebuilt.
/// `entries`: the table a creating open builds (None when the open only attaches).
pub(super) struct TableKind {
    pub(super) entries: Option<u32>,
}

impl SegmentKind for TableKind {
    type Ready = u32;
    // Every entry's lock byte, up to (not into) the builder's name tag.
    const USERS: (u64, u64) = (ENTRY_LOCK_BASE, BUILDER_PID_BYTE - ENTRY_LOCK_BASE);
    const BUILD_POINT: &'static str = "groups.building";

    /// Field offsets follow `GroupFixed`.
    fn inspect(&self, fd: &OwnedFd, size: u64) -> io::Result<Found<u32>> {
        let head = match ready_header(fd, size, GROUP_MAGIC, GROUP_LAYOUT_VERSION)? {
            Ok(head) => head,
            Err(found) => return Ok(found),
        };
        let entries = u32_at(&head, 24);
        let total = size_for(entries);
        let consistent = entries >= 1
            && u64::from(entries) <= (MAX_MEMORY - HEADER_SIZE) / ENTRY_SIZE
            && u64::from(u32_at(&head, 28)) == ENTRY_SIZE
            && u64_at(&head, 32) == HEADER_SIZE
            && u64_at(&head, 16) == total
            && size == total;
        Ok(if consistent { Found::Ready(entries) } else { Found::Foreign(WHY_SIZE) })
    }

    fn build_size(&self) -> u64 {
        self.entries.map_or(0, size_for)
    }

    /// Every entry starts FREE: the mapping is zeroed.
    fn write_header(&self, map: &sys::Mapping) {
        let Some(entries) = self.entries else { return }; // only creating opens build
                                                          // SAFETY: the mapping is `size_for(entries)` >= HEADER_SIZE bytes, page aligned;
                                                          // GroupHeader is plain atomics, valid for any (here: zero) bytes.
        let h = unsafe { &*(map.base as *const GroupHeader) };
        let f = &h.fixed;
        f.magic.store(GROUP_MAGIC, Relaxed);
        // The magic lands before any other field, so no reader sees fields without it (which would
        // look foreign rather than being built).
        fence(Release);
        f.version.store(GROUP_LAYOUT_VERSION, Relaxed);
        f.total_size.store(size_for(entries), Relaxed);
        f.entry_count.store(entries, Relaxed);
        f.entry_size.store(ENTRY_SIZE as u32, Relaxed);
        f.entries_off.store(HEADER_SIZE, Relaxed);
        f.created_unix_ms.store(sys::unix_ms(), Relaxed);
        // SYNC POINT: every field above is visible to whoever sees INIT_READY (Acquire in `attach`).
        f.init_state.store(INIT_READY, Release);
    }
}

pub(super) fn attach(fd: OwnedFd, entries: u32) -> Result<GroupTable, OpenError> {
    let total = size_for(entries);
    let map = sys::Mapping::new(&fd, total as usize).map_err(io_error)?;
    // SAFETY: the mapping covers the whole segment, whose size `inspect` checked against the
    // header; GroupHeader is plain atomics.
    let h = unsafe { &*(map.base as *const GroupHeader) };
    // SYNC POINT: pairs with the builder's Release store of INIT_READY.
    if h.fixed.init_state.load(Acquire) != INIT_READY || h.fixed.entry_count.load(Relaxed) != entries {
        return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_SIZE));
    }
    Ok(GroupTable { fd, map, entry_count: entries, total_size: total, ops: Mutex::default() })
}
