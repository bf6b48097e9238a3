//! Channel groups: which channels belong to which named group, one table per namespace in its own
//! shared-memory segment. Every entry is owned through one atomic state word, so a process dying
//! at any instruction leaves only states that the next scan undoes.
//!
//! # Segment
//!
//! The object is `/<prefix>~groups`. Channel segments are `/<prefix>.<name>` with prefix and name
//! drawn from `[A-Za-z0-9._!-]`; `~` is outside that set, so no channel can ever have this name, and
//! `list`/`gc`, which look for `<prefix>.`, never see it.
//!
//! ```text
//! offset 0     GroupFixed     128 B: magic "FERRYGR1", layout version, init state, sizes
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

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicU32, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use crate::fault;
use crate::layout::INIT_READY;
use crate::segment::{
    io_error, open_segment, u32_at, u64_at, Found, OpenError, OpenSpec, Policy, SegmentKind,
    BUILDER_PID_BYTE, INIT_LOCK_BYTE,
};
use crate::status::*;
use crate::sys;

/// "FERRYGR1" as a little-endian u64: a group segment, not a channel ("FERRYCH1") or anything else.
pub const GROUP_MAGIC: u64 = u64::from_le_bytes(*b"FERRYGR1");
/// Bumped on every incompatible change to the structs in this file.
/// 2: kind 3 of the state word is a HELD membership (it was an invalid word), and the counters
/// gained missing, died and closed.
pub const GROUP_LAYOUT_VERSION: u32 = 2;
/// Longest group or channel name, as for channels.
pub const MAX_NAME: usize = 100;
const NAME_WORDS: usize = MAX_NAME.div_ceil(8);
pub const HEADER_SIZE: u64 = 256;
pub const ENTRY_SIZE: u64 = 256;
/// Smallest table: one entry.
pub const MIN_MEMORY: u64 = HEADER_SIZE + ENTRY_SIZE;
/// Largest table (about a million entries): every members() call scans the whole table.
pub const MAX_MEMORY: u64 = 256 << 20;
pub const DEFAULT_MEMORY: u64 = 1 << 20;
/// Entry `i`'s writer holds the OFD lock on byte `ENTRY_LOCK_BASE + i` (byte 0 is the init lock).
const ENTRY_LOCK_BASE: u64 = INIT_LOCK_BYTE + 1;
/// Times one entry is read again when it changes under a reader before the reader gives up on it
/// (it is being freed and reused that fast: leaving it out is a valid snapshot).
const READ_RETRIES: u32 = 16;

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

/// `add` outcomes and the group-only error (in `status.rs`, with every other code).
pub use crate::status::group::{ADDED, ERR_TABLE_FULL, REFRESHED};

/// Settings fixed at creation. `magic`, `version` and `init_state` sit at offsets 0, 8 and 12, as
/// in a channel's `Fixed`, so either kind of opener recognises the other as foreign.
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
const GEN_MASK: u64 = (1 << 22) - 1;
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


// --------------------------------------------------------------------------------- names

/// Group, channel and prefix names: 1 to 100 of letters, digits and `. _ - !` (the channel rule).
pub fn valid_name(b: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'!'))
}

/// The shm object of a namespace's group table, `/<prefix>~groups`; None for an invalid prefix.
pub fn segment_name(prefix: &[u8]) -> Option<String> {
    // All bytes are ASCII once valid, so the conversion is exact.
    valid_name(prefix).then(|| format!("/{}~groups", String::from_utf8_lossy(prefix)))
}

/// The inode of channel `name`'s segment in namespace `prefix`, `/dev/shm/<prefix>.<name>` (where
/// glibc's shm_open keeps `/<prefix>.<name>`); 0 if there is none, u64::MAX if it cannot be told
/// (then whoever asks opens it and lets the open decide). Not following a link, as shm_open does
/// not; relative to a descriptor of /dev/shm kept open, which halves the cost of a full path.
pub fn channel_id(prefix: &[u8], name: &[u8]) -> u64 {
    use std::os::fd::AsRawFd;
    use std::sync::OnceLock;
    static SHM_DIR: OnceLock<Option<std::fs::File>> = OnceLock::new();
    if !valid_name(prefix) || !valid_name(name) {
        return 0;
    }
    let Some(dir) = SHM_DIR.get_or_init(|| std::fs::File::open("/dev/shm").ok()) else {
        return u64::MAX;
    };
    let mut file = Vec::with_capacity(prefix.len() + 1 + name.len());
    file.extend_from_slice(prefix);
    file.push(b'.');
    file.extend_from_slice(name);
    match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), file.as_slice(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st.st_ino,
        Err(nix::errno::Errno::ENOENT) => 0,
        Err(_) => u64::MAX,
    }
}

fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| (h ^ u32::from(c)).wrapping_mul(0x0100_0193))
}

/// A name as the table stores it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Packed {
    len: u8,
    words: [u64; NAME_WORDS],
}

impl Packed {
    fn new(name: &[u8]) -> Option<Packed> {
        if !valid_name(name) {
            return None;
        }
        let mut bytes = [0u8; NAME_WORDS * 8];
        bytes[..name.len()].copy_from_slice(name);
        let mut words = [0u64; NAME_WORDS];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap());
        }
        Some(Packed { len: name.len() as u8, words })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.len as usize);
        out
    }

    /// A name read from shared memory is only trusted once it passes the same rule: a corrupt
    /// entry is freed, never reported.
    fn valid(&self) -> bool {
        let len = self.len as usize;
        if len == 0 || len > MAX_NAME {
            return false;
        }
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        valid_name(&bytes[..len]) && bytes[len..].iter().all(|&b| b == 0)
    }
}

fn meta_check(lens: u64, group_hash: u32) -> u64 {
    let h = fnv1a(&[&lens.to_le_bytes()[..2], &group_hash.to_le_bytes()[..]].concat());
    u64::from((h ^ (h >> 16)) & 0xffff)
}

fn meta_word(group: &Packed, channel: &Packed, group_hash: u32) -> u64 {
    let lens = u64::from(group.len) | (u64::from(channel.len) << 8);
    lens | (meta_check(lens, group_hash) << 16) | (u64::from(group_hash) << 32)
}

/// Whether `meta` is a word `meta_word` made: lengths in range and the check matching. Random
/// bytes pass with odds of about one in 400,000.
fn meta_valid(meta: u64) -> bool {
    let (glen, clen) = (meta & 0xff, (meta >> 8) & 0xff);
    (1..=MAX_NAME as u64).contains(&glen)
        && (1..=MAX_NAME as u64).contains(&clen)
        && (meta >> 16) & 0xffff == meta_check(meta & 0xffff, (meta >> 32) as u32)
}

/// What a scan is looking for; entries it rejects by their meta word are never read in full.
#[derive(Clone, Copy)]
enum Filter<'a> {
    Group(&'a Packed, u32),
    Pair(&'a Packed, u32, &'a Packed),
    All,
}

impl Filter<'_> {
    fn wants_meta(&self, meta: u64) -> bool {
        match *self {
            Filter::Group(g, hash) | Filter::Pair(g, hash, _) => {
                (meta & 0xff) as u8 == g.len && (meta >> 32) as u32 == hash
            }
            Filter::All => true,
        }
    }
    fn wants(&self, group: &Packed, channel: &Packed) -> bool {
        match *self {
            Filter::Group(g, _) => g == group,
            Filter::Pair(g, _, c) => g == group && c == channel,
            Filter::All => true,
        }
    }
}

/// What a consistent read of one entry found.
// Returned once per entry and moved straight into the scan's result: boxing `Seen` would only add
// an allocation per entry.
#[allow(clippy::large_enum_variant)]
enum Read {
    /// Not LIVE (or changing too fast to read: leaving it out is a valid snapshot).
    NotLive,
    /// LIVE, and its meta word says the filter does not want it.
    Unwanted,
    /// LIVE with a meta word or names no writer made: free it (CAS from this word).
    Corrupt(Word),
    Live(Seen),
}

/// A LIVE entry as read consistently.
struct Seen {
    word: Word,
    group: Packed,
    channel: Packed,
}

// --------------------------------------------------------------------------------- the table

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

/// A read-only account of the table (see `check`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub entries: u32,
    pub free: u32,
    /// WRITING with the entry lock held by another open file description: a writer at work.
    pub writing_alive: u32,
    /// WRITING with nobody holding the entry lock: a dead writer's entry, reclaimed by the next
    /// scan.
    pub writing_abandoned: u32,
    /// LIVE and not expired, or HELD by a live holder (`held` of them).
    pub live: u32,
    /// LIVE but past its expiry: freed by the next scan.
    pub expired: u32,
    /// LIVE entries whose (group, channel) pair another LIVE entry already has.
    pub duplicates: u32,
    /// Entries no ferry code writes: LIVE or HELD with a meta word or names no writer made, or a
    /// HELD word with a deadline.
    pub corrupt: u32,
    /// Of `live`, the HELD ones (their holder's lock is held).
    pub held: u32,
    /// HELD with nobody holding the entry lock: the holder died; freed by the next scan of its
    /// group (or a sweep of a full table).
    pub held_abandoned: u32,
}

impl Check {
    pub fn to_array(self) -> [u32; 10] {
        [
            self.entries,
            self.free,
            self.writing_alive,
            self.writing_abandoned,
            self.live,
            self.expired,
            self.duplicates,
            self.corrupt,
            self.held,
            self.held_abandoned,
        ]
    }
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
type Holds = HashMap<u32, Word>;

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

fn entry_lock_byte(i: u32) -> u64 {
    ENTRY_LOCK_BASE + u64::from(i)
}

fn round_up(v: u64, to: u64) -> u64 {
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

fn size_for(entries: u32) -> u64 {
    round_up(HEADER_SIZE + u64::from(entries) * ENTRY_SIZE, 4096)
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
        let (entries, _) = table_size(o.memory).ok_or(OpenError::new(ERR_INVALID_ARGUMENT, 0))?;
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

    /// Serialises this handle's operations; first lets go of the locks of HELD entries that are
    /// no longer ours (see `settle_holds`).
    fn lock_ops(&self) -> MutexGuard<'_, Holds> {
        let mut holds = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        self.settle_holds(&mut holds);
        holds
    }

    // ----------------------------------------------------------------------------- operations

    /// Makes `channel` a member of `group` until `expiry_ms` from now (0: never). A pair already
    /// present keeps its entry and gets the later of its deadline and the new one (REFRESHED).
    pub fn add(&self, group: &[u8], channel: &[u8], expiry_ms: u64) -> Result<i32, i32> {
        self.add_stopping(group, channel, Lifetime::Expiry(expiry_ms), AddStop::Complete)
    }

    /// Makes `channel` a member of `group` while this handle is open (see "Memberships held by a
    /// process"). REFRESHED if the pair was a member already (of any kind); a pair this handle
    /// holds already is left as it is. The pair also stays a member while any other membership of
    /// it lasts.
    pub fn add_held(&self, group: &[u8], channel: &[u8]) -> Result<i32, i32> {
        self.add_stopping(group, channel, Lifetime::Process, AddStop::Complete)
    }

    /// `add`, stopping early for tests (see `AddStop`). A handle used with a stop other than
    /// `Complete` stands for a dead writer: do not add through it again.
    #[doc(hidden)]
    pub fn add_stopping(
        &self,
        group: &[u8],
        channel: &[u8],
        lifetime: Lifetime,
        stop: AddStop,
    ) -> Result<i32, i32> {
        let (g, c) =
            (Packed::new(group).ok_or(ERR_INVALID_NAME)?, Packed::new(channel).ok_or(ERR_INVALID_NAME)?);
        let hash = fnv1a(group);
        let filter = Filter::Pair(&g, hash, &c);
        let mut holds = self.lock_ops();
        let now = sys::boottime_ms();
        let (kind, expires) = match lifetime {
            Lifetime::Expiry(ms) => (EntryKind::Live, deadline(now, ms)),
            Lifetime::Process => (EntryKind::Held, EXPIRES_NEVER),
        };
        let counters = &self.header().counters;
        let mut was_member = false;
        if !matches!(stop, AddStop::PublishedUnmerged | AddStop::HeldForgotten) {
            loop {
                let found = self.scan(&holds, now, filter);
                was_member = !found.is_empty();
                if kind == EntryKind::Held {
                    if found.iter().any(|(i, _)| holds.contains_key(i)) {
                        counters.refreshed.fetch_add(1, Relaxed);
                        return Ok(REFRESHED);
                    }
                    break;
                }
                // Only a deadline can be refreshed: other processes' HELD copies end with them.
                let timed = timed_copies(found);
                if timed.is_empty() {
                    break;
                }
                if self.merge(&timed, expires) {
                    counters.refreshed.fetch_add(1, Relaxed);
                    return Ok(REFRESHED);
                }
                // A word changed under the merge (a concurrent refresh, discard or expiry): look again.
            }
        }
        let start = fnv1a(channel).wrapping_add(hash) % self.entry_count;
        let claimed = match self.claim_free(&mut holds, start) {
            Some(claimed) => Some(claimed),
            // Before calling the table full, free what dead holders of other groups left.
            None if self.sweep_dead_holders(&holds) > 0 => self.claim_free(&mut holds, start),
            None => None,
        };
        let (i, writing) = claimed.ok_or(ERR_TABLE_FULL)?;
        let e = self.entry(i);
        fault::point("group.claimed");
        for (k, w) in g.words.iter().enumerate() {
            e.group[k].store(*w, Relaxed);
        }
        if stop == AddStop::Claimed {
            // Half a channel name, then "death": the torn entry must never be seen as LIVE.
            e.channel[0].store(c.words[0], Relaxed);
            return Ok(ADDED);
        }
        for (k, w) in c.words.iter().enumerate() {
            e.channel[k].store(*w, Relaxed);
        }
        e.meta.store(meta_word(&g, &c, hash), Relaxed);
        fault::point("group.written");
        let live = writing.with_kind(kind).with_expiry(expires);
        // SYNC POINT: the names and meta stored above are visible to whoever observes this LIVE
        // or HELD word (readers' Acquire load in `read_live`). Only the holder of the entry lock
        // changes a WRITING word, so this CAS cannot fail; it is a CAS to catch a broken invariant.
        let published = e.state.compare_exchange(writing.0, live.0, Release, Relaxed).is_ok();
        fault::point("group.published");
        if kind == EntryKind::Held && published {
            // The lock now stands for the membership: kept until `end_holds` or death.
            if stop != AddStop::HeldForgotten {
                holds.insert(i, live);
            }
        } else {
            sys::unlock_byte(&self.fd, entry_lock_byte(i));
        }
        if !published {
            return Err(ERR_IO);
        }
        counters.added.fetch_add(1, Relaxed);
        let outcome = if was_member { REFRESHED } else { ADDED };
        if kind == EntryKind::Held || stop == AddStop::PublishedUnmerged {
            return Ok(outcome); // HELD entries are never merged (see "Memberships held by a process")
        }
        // SYNC POINT: our publish is ordered before the loads of the scan below, and so is every
        // concurrent adder's of this pair before its scan: of two adders at least one sees the
        // other's entry (store-buffering forbidden between SeqCst fences) and merges.
        fence(SeqCst);
        loop {
            let timed = timed_copies(self.scan(&holds, now, filter));
            if timed.len() <= 1 || self.merge(&timed, 0) {
                return Ok(outcome);
            }
        }
    }

    /// Ends `channel`'s membership of `group`, every kind of it (a HELD one of another process
    /// too: its holder lets go of the lock at its next operation). True if it was a member.
    pub fn discard(&self, group: &[u8], channel: &[u8]) -> Result<bool, i32> {
        let (g, c) =
            (Packed::new(group).ok_or(ERR_INVALID_NAME)?, Packed::new(channel).ok_or(ERR_INVALID_NAME)?);
        let filter = Filter::Pair(&g, fnv1a(group), &c);
        let mut holds = self.lock_ops();
        let counters = &self.header().counters;
        let mut removed = false;
        // Every copy of the pair (normally one). An add of the pair still in flight is not seen:
        // it completes after this discard, which is a valid order for two overlapping calls.
        for (i, seen) in self.scan(&holds, sys::boottime_ms(), filter) {
            let mut w = seen.word;
            loop {
                // SYNC POINT (Release): our reads of the entry happen before its reuse.
                match self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed) {
                    Ok(_) => {
                        counters.discarded.fetch_add(1, Relaxed);
                        removed = true;
                        break;
                    }
                    // Refreshed meanwhile: the same membership with a later deadline; free it still.
                    Err(now) if Word(now).same_holder(w) => w = Word(now),
                    // Freed (expired, merged, discarded by another process): gone either way.
                    Err(_) => break,
                }
            }
        }
        // Ours among them: their words moved on, so their locks go now.
        self.settle_holds(&mut holds);
        Ok(removed)
    }

    /// The channels of `group` whose membership lasts (unexpired, or held by a live process),
    /// sorted, each once.
    pub fn members(&self, group: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
        let g = Packed::new(group).ok_or(ERR_INVALID_NAME)?;
        let holds = self.lock_ops();
        let found = self.scan(&holds, sys::boottime_ms(), Filter::Group(&g, fnv1a(group)));
        let mut by_channel: HashMap<Packed, Vec<(u32, Seen)>> = HashMap::new();
        for (i, seen) in found {
            by_channel.entry(seen.channel).or_default().push((i, seen));
        }
        let mut names = Vec::with_capacity(by_channel.len());
        for (channel, copies) in by_channel {
            let timed = timed_copies(copies);
            if timed.len() > 1 {
                // Left by an adder that died before merging: merge now (a failure means another
                // process is changing the pair right now and will settle it).
                self.merge(&timed, 0);
            }
            names.push(channel.bytes());
        }
        names.sort();
        Ok(names)
    }

    /// Counts a sendGroup call, the members it skipped because they were full and those it found
    /// without a channel.
    pub fn note_fanout(&self, skipped: u32, missing: u32) {
        let c = &self.header().counters;
        c.fanouts.fetch_add(1, Relaxed);
        c.skipped.fetch_add(u64::from(skipped), Relaxed);
        c.missing.fetch_add(u64::from(missing), Relaxed);
    }

    /// [entries, total_size, live, added, refreshed, discarded, expired, reclaimed, merged,
    ///  fanouts, skipped, created_unix_ms, missing, died, closed]. `live` counts unexpired LIVE
    ///  words (duplicates too) and HELD words whose holder holds its lock.
    pub fn stat(&self) -> [u64; 15] {
        let holds = self.lock_ops();
        let now = sys::boottime_ms();
        let live = (0..self.entry_count)
            .filter(|&i| {
                let w = Word(self.entry(i).state.load(Relaxed));
                match w.kind() {
                    EntryKind::Live => !w.expired(now),
                    EntryKind::Held => holds.contains_key(&i) || self.held_by_other(i),
                    _ => false,
                }
            })
            .count() as u64;
        let h = self.header();
        let c = &h.counters;
        [
            u64::from(self.entry_count),
            self.total_size,
            live,
            c.added.load(Relaxed),
            c.refreshed.load(Relaxed),
            c.discarded.load(Relaxed),
            c.expired.load(Relaxed),
            c.reclaimed.load(Relaxed),
            c.merged.load(Relaxed),
            c.fanouts.load(Relaxed),
            c.skipped.load(Relaxed),
            h.fixed.created_unix_ms.load(Relaxed),
            c.missing.load(Relaxed),
            c.died.load(Relaxed),
            c.closed.load(Relaxed),
        ]
    }

    /// Looks at every entry without changing any: what a consistency test asserts on.
    pub fn check(&self) -> Check {
        let holds = self.lock_ops();
        let now = sys::boottime_ms();
        let mut r = Check { entries: self.entry_count, ..Check::default() };
        let mut pairs = std::collections::HashSet::new();
        for i in 0..self.entry_count {
            let w = Word(self.entry(i).state.load(Acquire));
            match w.kind() {
                EntryKind::Free => r.free += 1,
                EntryKind::Writing if self.held_by_other(i) => r.writing_alive += 1,
                EntryKind::Writing => r.writing_abandoned += 1,
                EntryKind::Live | EntryKind::Held => match self.read_live(i, Filter::All) {
                    // Changed while being read: a live process is at work on it; count it as free.
                    Read::NotLive | Read::Unwanted => r.free += 1,
                    Read::Corrupt(_) => r.corrupt += 1,
                    Read::Live(s) if s.word.kind() == EntryKind::Held => {
                        if holds.contains_key(&i) || self.held_by_other(i) {
                            r.live += 1;
                            r.held += 1;
                        } else {
                            r.held_abandoned += 1;
                        }
                    }
                    Read::Live(s) => {
                        if s.word.expired(now) {
                            r.expired += 1;
                        } else {
                            r.live += 1;
                        }
                        if !pairs.insert((s.group, s.channel)) {
                            r.duplicates += 1;
                        }
                    }
                },
            }
        }
        r
    }

    // ----------------------------------------------------------------------------- internals

    /// One pass over every entry: frees expired memberships, reclaims dead writers' entries and
    /// corrupt words, frees the HELD entries of `filter`'s group whose holder died, and returns
    /// the LIVE and HELD entries `filter` wants, in index order.
    fn scan(&self, holds: &Holds, now: u64, filter: Filter) -> Vec<(u32, Seen)> {
        let mut found = Vec::new();
        for i in 0..self.entry_count {
            let w = Word(self.entry(i).state.load(Relaxed));
            match w.kind() {
                EntryKind::Free => {}
                EntryKind::Writing => {
                    self.reclaim_if_abandoned(i);
                }
                EntryKind::Live if w.expired(now) => {
                    self.free_if_unchanged(i, w, Some(&self.header().counters.expired))
                }
                EntryKind::Live | EntryKind::Held => match self.read_live(i, filter) {
                    Read::Live(seen) if filter.wants(&seen.group, &seen.channel) => {
                        let held_elsewhere = seen.word.kind() == EntryKind::Held && !holds.contains_key(&i);
                        // Only the lock says whether a HELD membership lasts: tried for the
                        // entries this scan reports, so a scan costs a syscall per member, not
                        // one per HELD entry of every group.
                        if !(held_elsewhere && self.free_if_holder_gone(i, seen.word)) {
                            found.push((i, seen));
                        }
                    }
                    Read::Corrupt(w) => self.free_if_unchanged(i, w, None),
                    _ => {}
                },
            }
        }
        found
    }

    /// Reads entry `i` consistently if it is LIVE or HELD (see "Reading names"); reads the names
    /// only when the meta word is valid and `filter` may want them.
    fn read_live(&self, i: u32, filter: Filter) -> Read {
        let e = self.entry(i);
        for _ in 0..READ_RETRIES {
            // SYNC POINT: pairs with the publishing CAS (Release) in `add_stopping`: the meta and
            // names written before it are visible.
            let before = Word(e.state.load(Acquire));
            match before.kind() {
                EntryKind::Live => {}
                // Every HELD word a writer publishes says "never": any other is no writer's.
                EntryKind::Held if before.expires_at() != EXPIRES_NEVER => return Read::Corrupt(before),
                EntryKind::Held => {}
                _ => return Read::NotLive,
            }
            let meta = e.meta.load(Relaxed);
            let valid = meta_valid(meta);
            let wanted = valid && filter.wants_meta(meta);
            let mut group = Packed { len: meta as u8, words: [0; NAME_WORDS] };
            let mut channel = Packed { len: (meta >> 8) as u8, words: [0; NAME_WORDS] };
            if wanted {
                for k in 0..NAME_WORDS {
                    group.words[k] = e.group[k].load(Relaxed);
                    channel.words[k] = e.channel[k].load(Relaxed);
                    #[cfg(test)]
                    if k == NAME_WORDS / 2 {
                        tests::mid_read();
                    }
                }
            }
            // SYNC POINT: pairs with the writer's Release fence after its claim: if any load
            // above saw a later writer's store, the load below sees that writer's claim.
            fence(Acquire);
            let after = Word(e.state.load(Relaxed));
            if !after.same_holder(before) {
                continue;
            }
            // Unchanged since before the Acquire load, so what was read is what its writer wrote
            // (or what no writer wrote).
            if !valid {
                return Read::Corrupt(after);
            }
            if !wanted {
                return Read::Unwanted;
            }
            let consistent = group.valid() && channel.valid() && fnv1a(&group.bytes()) == (meta >> 32) as u32;
            return if consistent {
                Read::Live(Seen { word: after, group, channel })
            } else {
                Read::Corrupt(after)
            };
        }
        Read::NotLive
    }

    /// FREE -> WRITING on the first free entry from `start` whose lock we get. Returns the entry
    /// index and its WRITING word, with the entry lock held.
    fn claim_free(&self, holds: &mut Holds, start: u32) -> Option<(u32, Word)> {
        let n = self.entry_count;
        for step in 0..n {
            let i = (start + step) % n;
            let e = self.entry(i);
            if Word(e.state.load(Relaxed)).kind() != EntryKind::Free {
                continue;
            }
            // Succeeds on an entry whose lock this handle still holds for a HELD membership that
            // another process discarded since our last `settle_holds`: it is ours to reuse.
            if !matches!(sys::try_lock_byte(&self.fd, entry_lock_byte(i)), Ok(true)) {
                continue; // someone is claiming or reclaiming it, or holds it after a discard
            }
            let cur = Word(e.state.load(Relaxed));
            let writing = cur.with_kind(EntryKind::Writing).with_expiry(0);
            // SYNC POINT (Acquire): the previous holder's accesses to the entry (its Release when
            // freeing) happen before our writes to it.
            if cur.kind() == EntryKind::Free
                && e.state.compare_exchange(cur.0, writing.0, Acquire, Relaxed).is_ok()
            {
                // SYNC POINT: a reader whose Relaxed name loads see any of our stores below also
                // sees this claim when it re-loads the word (its Acquire fence in `read_live`).
                fence(Release);
                holds.remove(&i); // the lock now stands for this claim
                return Some((i, writing));
            }
            if !holds.contains_key(&i) {
                sys::unlock_byte(&self.fd, entry_lock_byte(i));
            }
        }
        None
    }

    /// Frees entry `i` if it is WRITING and nobody holds its lock (its writer died).
    fn reclaim_if_abandoned(&self, i: u32) -> bool {
        if !matches!(sys::try_lock_byte(&self.fd, entry_lock_byte(i)), Ok(true)) {
            return false; // its writer is alive (or another process is reclaiming it)
        }
        // Under the lock no one else can change a WRITING word, so what we see now is final.
        let cur = Word(self.entry(i).state.load(Acquire));
        fault::point("group.reclaiming");
        let freed = cur.kind() == EntryKind::Writing
            // SYNC POINT (Release): publishes the FREE word; a later claimer's Acquire pairs.
            && self.entry(i).state.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed).is_ok();
        sys::unlock_byte(&self.fd, entry_lock_byte(i));
        if freed {
            self.header().counters.reclaimed.fetch_add(1, Relaxed);
        }
        freed
    }

    /// For a HELD entry `w` that another handle published: true if its holder is gone, in which
    /// case the entry is freed (or was freed meanwhile by a discard); false while the holder holds
    /// the lock (or another scanner, freeing it right now, does: then it counts as alive once more).
    fn free_if_holder_gone(&self, i: u32, w: Word) -> bool {
        if !matches!(sys::try_lock_byte(&self.fd, entry_lock_byte(i)), Ok(true)) {
            return false;
        }
        // Nobody can claim the entry while we hold its lock, so the word can only still be `w`
        // or have been freed by a discard: the CAS below frees it, or finds it free already.
        fault::point("group.freeing-dead");
        // SYNC POINT (Release): our reads of the entry happen before its reuse.
        let freed = self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed).is_ok();
        sys::unlock_byte(&self.fd, entry_lock_byte(i));
        if freed {
            self.header().counters.died.fetch_add(1, Relaxed);
        }
        true
    }

    /// Frees every HELD entry (of any group) whose holder is gone; returns how many. Costs a
    /// syscall per HELD entry, so only an add that found no free entry calls it.
    fn sweep_dead_holders(&self, holds: &Holds) -> u32 {
        let mut freed = 0;
        for i in 0..self.entry_count {
            let w = Word(self.entry(i).state.load(Acquire));
            if w.kind() == EntryKind::Held && !holds.contains_key(&i) && self.free_if_holder_gone(i, w) {
                freed += 1;
            }
        }
        freed
    }

    /// Whether another open file description holds entry `i`'s lock (a writer or a holder).
    fn held_by_other(&self, i: u32) -> bool {
        sys::byte_locked_by_other(&self.fd, entry_lock_byte(i))
    }

    /// Lets go of the locks of entries we held whose word moved on (another process discarded
    /// the membership, or a scan freed a word no writer made): they are free for others again.
    fn settle_holds(&self, holds: &mut Holds) {
        holds.retain(|&i, w| {
            let ours = self.entry(i).state.load(Relaxed) == w.0;
            if !ours {
                sys::unlock_byte(&self.fd, entry_lock_byte(i));
            }
            ours
        });
    }

    /// Ends every HELD membership of this handle: each word is freed, then its lock is dropped
    /// (a death in between leaves a HELD word nobody holds, which the next scan frees).
    fn end_holds(&self, holds: &mut Holds) {
        for (i, w) in holds.drain() {
            // SYNC POINT (Release): our accesses to the entry happen before its reuse.
            let ended = self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed).is_ok();
            if ended {
                self.header().counters.closed.fetch_add(1, Relaxed);
            }
            fault::point("group.closing");
            sys::unlock_byte(&self.fd, entry_lock_byte(i));
        }
    }

    /// LIVE (or corrupt) `w` -> FREE, unless the word changed meanwhile (then whoever changed it
    /// decides). Counts into `counter` on success.
    fn free_if_unchanged(&self, i: u32, w: Word, counter: Option<&AtomicU64>) {
        // SYNC POINT (Release): our reads of the entry happen before its reuse.
        if self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed).is_ok() {
            if let Some(c) = counter {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Merges copies of one pair (index order, LIVE only) into the first: it takes the latest
    /// deadline of all of them and of `at_least`, the others are freed. False if a word changed
    /// under it.
    fn merge(&self, copies: &[(u32, Seen)], at_least: u64) -> bool {
        let Some(((keep, keeper), rest)) = copies.split_first() else { return true };
        let target = rest.iter().map(|(_, s)| s.word.expires_at()).fold(at_least, u64::max);
        let kw = keeper.word;
        if target > kw.expires_at() {
            // SYNC POINT: none needed beyond the CAS itself: the names are unchanged.
            if self
                .entry(*keep)
                .state
                .compare_exchange(kw.0, kw.with_expiry(target).0, AcqRel, Relaxed)
                .is_err()
            {
                return false;
            }
        }
        fault::point("group.merging");
        let mut settled = true;
        for (i, s) in rest {
            // The keeper holds the latest deadline now, so freeing a copy loses nothing.
            if self.entry(*i).state.compare_exchange(s.word.0, s.word.freed().0, AcqRel, Relaxed).is_ok() {
                self.header().counters.merged.fetch_add(1, Relaxed);
            } else {
                settled = false;
            }
        }
        settled
    }
}

impl Drop for GroupTable {
    fn drop(&mut self) {
        let mut holds = std::mem::take(self.ops.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.end_holds(&mut holds);
    }
}

/// The LIVE (deadline) copies among `found`: the only ones refreshed and merged.
fn timed_copies(found: Vec<(u32, Seen)>) -> Vec<(u32, Seen)> {
    found.into_iter().filter(|(_, s)| s.word.kind() == EntryKind::Live).collect()
}

// --------------------------------------------------------------------------------- open/build
//
// The protocol of `segment.rs` (trust check, init lock, timeout, never rebuilding under users);
// only the header, its checks and its contents differ.

/// A group table: its header is `GroupFixed`. Writers hold entry locks (bytes 1..) only while they
/// add, so "in use" can only be seen mid-add: a damaged table whose users are idle is rebuilt.
struct TableKind {
    entries: u32,
}

impl SegmentKind for TableKind {
    type Ready = u32;
    // Every entry's lock byte, up to (not into) the builder's name tag.
    const USERS: (u64, u64) = (ENTRY_LOCK_BASE, BUILDER_PID_BYTE - ENTRY_LOCK_BASE);
    const BUILD_POINT: &'static str = "groups.building";

    /// Field offsets follow `GroupFixed`.
    fn inspect(&self, fd: &OwnedFd, size: u64) -> io::Result<Found<u32>> {
        if size == 0 {
            return Ok(Found::Unbuilt);
        }
        let mut head = vec![0u8; size.min(128) as usize];
        let n = sys::read_at(fd, &mut head, 0)?;
        head.truncate(n);
        if head.len() < 128 || u64_at(&head, 0) == 0 {
            let blank = head.iter().all(|&b| b == 0);
            return Ok(if blank { Found::Unbuilt } else { Found::Foreign(WHY_MAGIC) });
        }
        if u64_at(&head, 0) != GROUP_MAGIC {
            return Ok(Found::Foreign(WHY_MAGIC));
        }
        // Ours but unfinished: waited for, or rebuilt under the init lock if its builder died.
        if u32_at(&head, 12) != INIT_READY {
            return Ok(Found::Unbuilt);
        }
        if u32_at(&head, 8) != GROUP_LAYOUT_VERSION {
            return Ok(Found::Foreign(WHY_VERSION));
        }
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
        size_for(self.entries)
    }

    /// Every entry starts FREE: the mapping is zeroed.
    fn write_header(&self, map: &sys::Mapping) {
        // SAFETY: the mapping is `size_for(entries)` >= HEADER_SIZE bytes, page aligned;
        // GroupHeader is plain atomics, valid for any (here: zero) bytes.
        let h = unsafe { &*(map.base as *const GroupHeader) };
        let f = &h.fixed;
        f.magic.store(GROUP_MAGIC, Relaxed);
        // The magic lands before any other field, so no reader sees fields without it (which would
        // look foreign rather than being built).
        fence(Release);
        f.version.store(GROUP_LAYOUT_VERSION, Relaxed);
        f.total_size.store(size_for(self.entries), Relaxed);
        f.entry_count.store(self.entries, Relaxed);
        f.entry_size.store(ENTRY_SIZE as u32, Relaxed);
        f.entries_off.store(HEADER_SIZE, Relaxed);
        f.created_unix_ms.store(sys::unix_ms(), Relaxed);
        // SYNC POINT: every field above is visible to whoever sees INIT_READY (Acquire in `attach`).
        f.init_state.store(INIT_READY, Release);
    }
}

fn attach(fd: OwnedFd, entries: u32) -> Result<GroupTable, OpenError> {
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

#[cfg(test)]
mod tests {
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
