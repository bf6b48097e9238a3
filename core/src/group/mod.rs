//! Channel groups: which channels belong to which named group, one table per namespace in its own
//! shared-memory segment. Every entry is owned through one atomic state word, so a process dying
//! at any instruction leaves only states that the next scan undoes. `layout` holds the table's
//! structs and state word, `names` the stored names, `ops` add/discard/members and their scan,
//! `held` the memberships that end with their process, `stat` what the table reports, `watch` the
//! cheap look that tells a reader its members are unchanged.
//!
//! # Segment
//!
//! The object is `/<prefix>~groups`. Channel segments are `/<prefix>.<name>` with prefix and name
//! drawn from `[A-Za-z0-9._!-]`; `~` is outside that set, so no channel can ever have this name, and
//! `list`/`gc`, which look for `<prefix>.`, never see it.
//!
//! ```text
//! offset 0     GroupFixed     128 B: magic "FERRYGR1", layout version, init state, sizes,
//!                             the membership version
//! 128          GroupCounters  128 B: added, refreshed, discarded, expired, reclaimed, merged,
//!                             fan-outs, skipped members, missing members, died, closed
//! 256          GroupEntry     entry_count x 256 B: state word, meta word (name lengths, a
//!                             check, group hash), group name, channel name
//! ```
//!
//! `entry_count` is `(groupMemory - 256) / 256`, fixed by whoever builds the segment and read
//! back by later openers, like a channel's capacity. Creation and attachment follow the channel
//! protocol of `segment.rs`: the builder holds the OFD lock on byte 0 while it builds, openers
//! read the header with `pread` and wait on that lock, never on a half-built mapping.
//!
//! # Entry state word
//!
//! ```text
//! bits  0..2   kind: FREE, WRITING, LIVE (a membership with a deadline), HELD (a membership that
//!              lasts while the table handle that added it is open, see below)
//! bits  2..24  generation: bumped on every return to FREE, so a stale CAS or read never passes
//! bits 24..64  expires_at: CLOCK_BOOTTIME ms (40 bits, 34 years of uptime); all ones = never.
//!              A HELD word always says never (any other value is a word no writer made)
//! ```
//!
//! Transitions, each one CAS on that word:
//! - add: FREE -> WRITING (claim), the names are written, WRITING -> LIVE or HELD (publish);
//! - refresh (re-adding a member): LIVE(g, e) -> LIVE(g, max(e, new));
//! - discard, expiry, duplicate merge: LIVE(g, e) -> FREE(g + 1); discard: HELD(g) -> FREE(g + 1);
//! - reclaim of an entry whose writer died: WRITING(g) -> FREE(g + 1);
//! - the end of a HELD membership (its holder closed the table, or died and a scan found it):
//!   HELD(g) -> FREE(g + 1).
//!
//! The expiry lives in the state word so that a refresh is one CAS that fails if the entry was
//! freed or reused meanwhile; stored beside the word, a late refresh could land on another
//! membership that reused the entry.
//!
//! # A writer that dies: the entry lock, not a lease
//!
//! A writer takes the OFD lock on byte `1 + index` before it claims an entry and drops it after
//! publishing. Whoever finds an entry WRITING tries that lock: held means the writer is alive
//! (maybe slow, maybe stopped) and the entry is left alone; obtained means the writer died (the
//! kernel dropped its lock) or finished, and the word is looked at again under the lock before it
//! is freed. This is the channels' liveness signal. A time lease was the alternative and was not
//! taken: a writer paused longer than the lease (SIGSTOP, swap, a debugger) would have its entry
//! reclaimed and reused while it can still store names into it, which no final CAS can undo.
//! With the lock nothing is reclaimed while its writer lives, so a slow writer's publish never
//! fails. Entry locks are only ever tried, never waited for: the table stays lock-free.
//!
//! # Memberships held by a process (layout version 2)
//!
//! A HELD entry is published like a LIVE one, but its writer keeps the entry lock after
//! publishing, for as long as its table handle is open. The kernel drops that lock when the
//! process dies, so the lock is the membership's liveness, as for a channel participant: a scan
//! that meets a HELD entry of the group it looks at tries the lock, and obtaining it means the
//! holder is gone (nobody else can hold it: claims and reclaims need it too); the word is freed
//! under the lock with one CAS, so a scanner dying there leaves a HELD word with no holder, which
//! the next scan frees. A holder ending its memberships (`Drop`, i.e. `close()`) frees each word,
//! then the lock; dying in between is the same case. A handle remembers the entries it holds
//! (`Holds`), both to skip its own locks (an OFD lock never conflicts with its own description)
//! and to drop locks of entries another process discarded. While such a lock is held the FREE
//! entry cannot be claimed by others; every operation of the holder releases it first.
//!
//! HELD entries are never merged: two handles holding one pair are two holders, and the pair stays
//! a member while either lives (`members` reports it once). Scans try the locks only of entries
//! whose group they read, so a dead holder's entry of another group stays until a scan of that
//! group, or until an add finds no free entry and sweeps every HELD entry first.
//!
//! # Duplicates
//!
//! Keeping exactly one entry per (group, channel) pair at every instant would make two adders of
//! the same pair wait for each other, and a waiter cannot tell a stopped process from a slow one.
//! So an add looks for the pair and refreshes it if present, else claims a free entry; two adds
//! of the same pair that overlap in time can both publish. After publishing, an adder issues a
//! SeqCst fence and scans for its pair again; of two overlapping adders at least one sees the
//! other's entry (the fences forbid both missing each other), and it merges the copies into the
//! lowest-index one (that one takes the later expiry, the others are freed). So once no add of a
//! pair is in flight, the pair has at most one entry; a copy left by an adder that died between
//! publishing and merging is merged by the next scan that meets it, and reads never report a
//! member twice.
//!
//! # Watching a group (layout version 3)
//!
//! A scan reads every entry (about 11 µs for the default 4095): too much to do per message, which
//! is what a publisher that looks up its topic's subscribers before each publish would do. So
//! `members_version` (in `GroupFixed`) is bumped, with a Release RMW, after every CAS that makes or
//! ends a membership: an add's publish, a discard, an expiry, the freeing of a dead holder's entry,
//! a holder's close. A reader loads it (Acquire) before its scan and keeps it in a `Watch`; while
//! the version is the same, no membership was made or ended since the scan began. Two things end
//! a membership without a CAS, so the watch carries them too: a deadline passing (the earliest
//! deadline among the members it saw) and a holder dying (the HELD members of other handles,
//! whose entry locks `unchanged` tries with F_OFD_GETLK, one syscall each; a lock found free is
//! freed there as a scan would, which bumps the version for every other watcher). Refreshes and
//! merges change no membership and bump nothing: a later deadline only makes the watch look
//! sooner than it needs to. The version is a u64; nothing wraps it.
//!
//! # Clock
//!
//! Expiry deadlines are CLOCK_BOOTTIME milliseconds: one clock for every process on the machine,
//! untouched by wall-clock changes (CLOCK_REALTIME would expire every membership when NTP steps
//! the clock forward a day), and counting time spent suspended (CLOCK_MONOTONIC does not, so a
//! laptop closed overnight would keep day-old memberships). It restarts at boot, and so does
//! /dev/shm, so no deadline outlives its clock.
//!
//! # Reading names
//!
//! Names are stored as `AtomicU64` words and read like a seqlock: load the word (LIVE, generation
//! g), read the names, fence, load the word again; the read counts only if kind and generation are
//! unchanged. A writer fences after its claim, so a reader that saw any byte of a new writer's
//! names also sees the word move on. Generations wrap after 2^22 reuses of one entry, far more
//! than can happen inside one read.
//!
//! A scan looks at the meta word of every LIVE entry (it shares the state word's cache line) and
//! reads the names only of entries whose group hash matches. The meta word carries a 16-bit check
//! of itself, and a full read checks the names against the rule and the group hash, so an entry
//! no writer made (a stray write, a corrupt table) is freed by the first scan that meets it
//! instead of holding a slot until its random deadline.

mod held;
mod layout;
mod names;
mod ops;
mod stat;
mod watch;

pub use layout::{
    deadline, table_size, EntryKind, GroupCounters, GroupEntry, GroupFixed, GroupHeader, Word, EXPIRES_NEVER,
};
pub use names::{channel_id, segment_name, valid_name};
pub use stat::{Check, GroupStat};
pub use watch::Watch;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use crate::segment::{open_segment, OpenError, OpenSpec, Policy, INIT_LOCK_BYTE};
use crate::status::*;
use crate::sys;
use layout::{attach, TableKind};

/// "FERRYGR1" as a little-endian u64: a group segment, not a channel ("FERRYCH1") or anything else.
pub const GROUP_MAGIC: u64 = u64::from_le_bytes(*b"FERRYGR1");
/// Bumped on every incompatible change to the structs in this file.
/// 2: kind 3 of the state word is a HELD membership (it was an invalid word), and the counters
/// gained missing, died and closed. 3: `members_version`, which a version-2 writer would not bump.
pub const GROUP_LAYOUT_VERSION: u32 = 3;
/// Longest group or channel name, as for channels.
pub const MAX_NAME: usize = 100;
pub(crate) const NAME_WORDS: usize = MAX_NAME.div_ceil(8);
pub const HEADER_SIZE: u64 = 256;
pub const ENTRY_SIZE: u64 = 256;
/// Smallest table: one entry.
pub const MIN_MEMORY: u64 = HEADER_SIZE + ENTRY_SIZE;
/// Largest table (about a million entries): every members() call scans the whole table.
pub const MAX_MEMORY: u64 = 256 << 20;
pub const DEFAULT_MEMORY: u64 = 1 << 20;
/// Entry `i`'s writer holds the OFD lock on byte `ENTRY_LOCK_BASE + i` (byte 0 is the init lock).
pub(crate) const ENTRY_LOCK_BASE: u64 = INIT_LOCK_BYTE + 1;
/// Times one entry is read again when it changes under a reader before the reader gives up on it
/// (it is being freed and reused that fast: leaving it out is a valid snapshot).
pub(crate) const READ_RETRIES: u32 = 16;

/// Kill points (`fault.rs`, with the `fault-injection` feature) in the order an add passes them,
/// then the merge and the reclaim: each one a place where a dying process must leave the table
/// consistent.
pub const FAULT_POINTS: &[&str] = &[
    "group.claimed",
    "group.written",
    "group.published",
    "group.merging",
    "group.reclaiming",
    // HELD memberships: a scan freeing a dead holder's entry, and a holder ending its memberships.
    "group.freeing-dead",
    "group.closing",
];

/// `add` outcomes, `ferry_group_members_watched`'s, and the group-only error (in `status.rs`, with every other code).
pub use crate::status::group::{ADDED, ERR_TABLE_FULL, REFRESHED, UNCHANGED};

/// Which step an add stops after. Everything but `Complete` exists for tests that need a writer
/// to "die" at a precise point; see `GroupTable::add_stopping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddStop {
    Complete,
    /// Claimed an entry and wrote part of the names, then stopped: the entry stays WRITING and
    /// its lock stays held by this handle's file description until the handle is dropped (or the
    /// process dies). Models a writer killed mid-write.
    Claimed,
    /// Published without looking for the pair first and without the merge scan after: models an
    /// adder that raced another adder of the pair and died right after publishing (a duplicate).
    PublishedUnmerged,
    /// Published a HELD membership and forgot it: the entry lock stays with this handle's file
    /// description but the handle does not end the membership when dropped. Dropping the handle
    /// then models a holder that died (the kernel drops the lock, the word stays HELD).
    HeldForgotten,
}

/// How long a membership lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Until this many milliseconds from now (0: never), or a discard.
    Expiry(u64),
    /// While the adding table handle is open (its process alive), or until a discard.
    Process,
}

pub struct GroupOpen<'a> {
    /// The shm object name, with its leading '/' (see `segment_name`).
    pub name: &'a str,
    /// Bytes for the table if this call creates it (MIN_MEMORY..=MAX_MEMORY); ignored otherwise.
    pub memory: u64,
    pub mode: u32,
    /// Create and build the segment if absent.
    pub create: bool,
}

/// The HELD entries this handle published and still holds the lock of, with the word it
/// published: an entry whose word moved on (another process discarded it) is no longer ours.
pub(crate) type Holds = HashMap<u32, Word>;

/// An open group table. Operations are serialised per handle by a mutex: the entry locks are
/// per open file description, so they tell processes apart but not threads sharing this handle.
/// The mutex also guards the handle's `Holds`. Dropping the handle ends its HELD memberships.
pub struct GroupTable {
    fd: OwnedFd,
    map: sys::Mapping,
    entry_count: u32,
    total_size: u64,
    ops: Mutex<Holds>,
}

impl GroupTable {
    /// Opens the table `o.name`, creating and building it when absent (and `o.create`); trusts only
    /// the caller and root and waits for another builder without limit (`open_with` says otherwise).
    pub fn open(o: &GroupOpen) -> Result<GroupTable, OpenError> {
        Self::open_with(o, Policy::DEFAULT)
    }

    /// As `open`, with the owners it trusts besides the caller and root and its timeout for a
    /// table another process is building (segment.rs: the same rules as a channel's segment).
    pub fn open_with(o: &GroupOpen, policy: Policy) -> Result<GroupTable, OpenError> {
        let entries = match o.create {
            true => Some(table_size(o.memory).ok_or(OpenError::new(ERR_INVALID_ARGUMENT, 0))?.0),
            false => None,
        };
        let spec = OpenSpec { name: o.name, create: o.create, mode: o.mode, policy };
        let (fd, entries) = open_segment(&spec, &TableKind { entries })?;
        attach(fd, entries)
    }

    pub fn entry_count(&self) -> u32 {
        self.entry_count
    }

    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    pub fn header(&self) -> &GroupHeader {
        // SAFETY: `attach` checked that the mapping holds a READY header at offset 0;
        // GroupHeader is plain atomics.
        unsafe { &*(self.map.base as *const GroupHeader) }
    }

    pub fn entry(&self, i: u32) -> &GroupEntry {
        assert!(i < self.entry_count);
        let off = HEADER_SIZE as usize + i as usize * ENTRY_SIZE as usize;
        // SAFETY: i < entry_count and `attach` checked the mapping holds entry_count entries after
        // the header; GroupEntry is plain atomics, valid for any bytes.
        unsafe { &*(self.map.base.add(off) as *const GroupEntry) }
    }
}

#[cfg(test)]
mod tests {
    use super::layout::GEN_MASK;
    use super::names::Packed;
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Run once by `read_live` halfway through reading the names, on this thread.
        static MID_READ: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    pub(super) fn mid_read() {
        if let Some(hook) = MID_READ.with(|h| h.borrow_mut().take()) {
            hook();
        }
    }

    /// The interleaving the seqlock exists for, made deterministic: while a reader is halfway
    /// through an entry's names, another process discards that membership and a new one reuses
    /// the entry. The reader must report the new member, never a mix of the two names (nor the
    /// old one).
    #[test]
    fn a_read_overlapping_the_reuse_of_its_entry_is_retried() {
        let name = format!("/ferrytest.seqlock-{}-{}~groups", std::process::id(), sys::monotonic_ns());
        let open = || {
            GroupTable::open(&GroupOpen { name: &name, memory: MIN_MEMORY, mode: 0o600, create: true })
                .unwrap()
        };
        let (reader, other) = (open(), open());
        let (old, new) = ([b'a'; MAX_NAME], [b'b'; MAX_NAME]);
        assert_eq!(other.add(b"g", &old, 0), Ok(ADDED));
        MID_READ.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                assert_eq!(other.discard(b"g", &old), Ok(true));
                assert_eq!(other.add(b"g", &new, 0), Ok(ADDED)); // the table's only entry
            }))
        });
        let got = reader.members(b"g");
        let _ = sys::shm_remove(&name);
        assert_eq!(got, Ok(vec![new.to_vec()]));
    }

    #[test]
    fn structs_have_the_sizes_the_layout_assumes() {
        assert_eq!(std::mem::size_of::<GroupFixed>(), 128);
        assert_eq!(std::mem::size_of::<GroupCounters>(), 128);
        assert_eq!(std::mem::size_of::<GroupHeader>() as u64, HEADER_SIZE);
        assert_eq!(std::mem::size_of::<GroupEntry>() as u64, ENTRY_SIZE);
    }

    #[test]
    fn state_word_fields_round_trip() {
        let w = Word::new(EntryKind::Live, GEN_MASK as u32, EXPIRES_NEVER);
        assert_eq!(
            (w.kind(), w.generation(), w.expires_at()),
            (EntryKind::Live, GEN_MASK as u32, EXPIRES_NEVER)
        );
        let f = w.freed();
        assert_eq!((f.kind(), f.generation(), f.expires_at()), (EntryKind::Free, 0, 0));
        let r = Word::new(EntryKind::Live, 5, 1000).with_expiry(2000);
        assert!(r.same_holder(Word::new(EntryKind::Live, 5, 1000)));
        assert!(!r.same_holder(Word::new(EntryKind::Live, 6, 2000)));
        assert!(r.expired(2000) && !r.expired(1999));
        assert!(!w.expired(u64::MAX));
        assert_eq!(Word(3).kind(), EntryKind::Held);
    }

    #[test]
    fn names_follow_the_channel_rule_and_the_segment_name_is_outside_it() {
        assert!(valid_name(b"a.b_c-d!9"));
        assert!(!valid_name(b""));
        assert!(!valid_name(&[b'a'; 101]));
        assert!(!valid_name(b"a~b") && !valid_name(b"a/b"));
        assert_eq!(segment_name(b"ferry").as_deref(), Some("/ferry~groups"));
        assert!(segment_name(b"bad/prefix").is_none());
        let p = Packed::new(&[b'x'; 100]).unwrap();
        assert!(p.valid());
        assert_eq!(p.bytes(), vec![b'x'; 100]);
    }

    #[test]
    fn table_sizes() {
        assert_eq!(table_size(MIN_MEMORY), Some((1, 4096)));
        assert_eq!(table_size(DEFAULT_MEMORY), Some((4095, 1 << 20)));
        assert!(table_size(MIN_MEMORY - 1).is_none() && table_size(MAX_MEMORY + 1).is_none());
    }
}
