//! What a group table reports: its counters (`stat`) and a read-only consistency account
//! (`check`) that tests assert on.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::layout::{EntryKind, Word};
use super::names::{Filter, Read};
use super::GroupTable;
use crate::sys;

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

/// What `stat` reports about a group table. Counters are cumulative over the table's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStat {
    pub entries: u32,
    pub total_size: u64,
    /// Unexpired LIVE words (duplicates too) and HELD words whose holder holds its lock.
    pub live: u64,
    pub added: u64,
    pub refreshed: u64,
    pub discarded: u64,
    pub expired: u64,
    pub reclaimed: u64,
    pub merged: u64,
    pub fanouts: u64,
    pub skipped: u64,
    pub created_unix_ms: u64,
    pub missing: u64,
    pub died: u64,
    pub closed: u64,
}

impl GroupTable {
    /// A snapshot of the table's size, live memberships and counters.
    pub fn stat(&self) -> GroupStat {
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
        GroupStat {
            entries: self.entry_count,
            total_size: self.total_size,
            live,
            added: c.added.load(Relaxed),
            refreshed: c.refreshed.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
            expired: c.expired.load(Relaxed),
            reclaimed: c.reclaimed.load(Relaxed),
            merged: c.merged.load(Relaxed),
            fanouts: c.fanouts.load(Relaxed),
            skipped: c.skipped.load(Relaxed),
            created_unix_ms: h.fixed.created_unix_ms.load(Relaxed),
            missing: c.missing.load(Relaxed),
            died: c.died.load(Relaxed),
            closed: c.closed.load(Relaxed),
        }
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
}
