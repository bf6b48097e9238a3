//! Watching a group (see "Watching a group" in the module doc of `group`): the membership version
//! every change bumps, what a members read saw of its group (`Watch`), and the cheap look that
//! tells whether those members still are the members, so a publisher scans only after a change.

use std::sync::atomic::Ordering::{Acquire, Release};

use super::layout::{EntryKind, Word, EXPIRES_NEVER};
use super::names::{fnv1a, Seen};
use super::GroupTable;
use crate::sys;

/// What a members read saw of one group: enough to tell later, without a scan, that nothing changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// FNV-1a of the group name: a watch is only ever compared for the group it was made for.
    pub group_hash: u32,
    /// `members_version` loaded before the scan.
    pub version: u64,
    /// The earliest deadline among the LIVE members (`EXPIRES_NEVER`: none).
    pub earliest_expiry: u64,
    /// The HELD members another handle holds, as (entry, state word): whether they last is their
    /// holder's entry lock, which no version can say (the kernel drops it at a death).
    pub held: Vec<(u32, u64)>,
}

impl Watch {
    /// A watch of `group` made before a scan that loaded `version`, filled by `note`.
    pub(super) fn new(group: &[u8], version: u64) -> Watch {
        Watch { group_hash: fnv1a(group), version, earliest_expiry: EXPIRES_NEVER, held: Vec::new() }
    }

    /// Records member entry `i` as the scan saw it; `ours`: this handle holds it (it lasts while
    /// the handle is open, and ends with a version bump).
    pub(super) fn note(&mut self, i: u32, seen: &Seen, ours: bool) {
        match seen.word.kind() {
            EntryKind::Live => self.earliest_expiry = self.earliest_expiry.min(seen.word.expires_at()),
            EntryKind::Held if !ours => self.held.push((i, seen.word.0)),
            _ => {}
        }
    }

    /// Whether this watch was made for `group`.
    pub fn is_of(&self, group: &[u8]) -> bool {
        self.group_hash == fnv1a(group)
    }
}

impl GroupTable {
    /// The membership version now. SYNC POINT (Acquire): pairs with the Release bump after each
    /// membership change: a reader that sees a version sees every change made before its bump.
    pub fn members_version(&self) -> u64 {
        self.header().fixed.members_version.load(Acquire)
    }

    /// Called after every state CAS that made or ended a membership (add's publish, discard,
    /// expiry, a dead holder's entry freed, a holder's close).
    pub(super) fn bump_members_version(&self) {
        // SYNC POINT (Release): the membership change just made (a CAS on an entry's state word)
        // happens before this bump; a watcher that loads the new version (Acquire) and scans sees it.
        self.header().fixed.members_version.fetch_add(1, Release);
    }

    /// True while the members reported with `watch` are still the members of its group: no
    /// membership changed anywhere in the table, no LIVE one expired, and every holder of a HELD one
    /// lives. One atomic load, a clock read if a member has a deadline, and one F_OFD_GETLK per HELD
    /// member of another handle. A dead holder's membership is ended here, as a scan would.
    pub fn unchanged(&self, watch: &Watch) -> bool {
        if self.members_version() != watch.version {
            return false;
        }
        if watch.earliest_expiry != EXPIRES_NEVER && sys::boottime_ms() >= watch.earliest_expiry {
            return false;
        }
        for &(i, word) in &watch.held {
            if i >= self.entry_count() {
                return false; // not a watch of this table
            }
            if !self.held_by_other(i) {
                // Its holder died, or this handle (another thread) holds the lock since the entry
                // was freed and claimed again, which bumped the version: look under the handle's
                // mutex, where no claim of ours is in progress, before freeing anything.
                let _holds = self.lock_ops();
                if self.members_version() == watch.version {
                    self.free_if_holder_gone(i, Word(word));
                }
                return false;
            }
        }
        true
    }
}
