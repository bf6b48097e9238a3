//! Membership operations: add (and refresh), discard, members, and the one scan they share, which
//! also frees what expired, what dead writers left and words no writer made. See "Entry state word",
//! "Duplicates" and "Reading names" in the module doc of `group`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicU64};

use super::layout::{deadline, entry_lock_byte, EntryKind, Word, EXPIRES_NEVER};
use super::names::{fnv1a, meta_valid, meta_word, Filter, Packed, Read, Seen};
use super::watch::Watch;
use super::{
    AddStop, GroupTable, Holds, Lifetime, ADDED, ERR_TABLE_FULL, NAME_WORDS, READ_RETRIES, REFRESHED,
};
use crate::fault;
use crate::status::*;
use crate::sys;

impl GroupTable {
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
        self.bump_members_version();
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
                        self.bump_members_version();
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
        self.members_watched(group).map(|(names, _)| names)
    }

    /// `members`, and a `Watch` of them: while `unchanged(&watch)` says so, they are still the
    /// members, and a caller that keeps them need not scan again.
    pub fn members_watched(&self, group: &[u8]) -> Result<(Vec<Vec<u8>>, Watch), i32> {
        let g = Packed::new(group).ok_or(ERR_INVALID_NAME)?;
        let holds = self.lock_ops();
        // Loaded before the scan: a change the scan misses bumps the version after this load.
        let mut watch = Watch::new(group, self.members_version());
        let found = self.scan(&holds, sys::boottime_ms(), Filter::Group(&g, fnv1a(group)));
        let mut by_channel: HashMap<Packed, Vec<(u32, Seen)>> = HashMap::new();
        for (i, seen) in found {
            watch.note(i, &seen, holds.contains_key(&i));
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
        Ok((names, watch))
    }

    /// Counts a sendGroup call, the members it skipped because they were full and those it found
    /// without a channel.
    pub fn note_fanout(&self, skipped: u32, missing: u32) {
        let c = &self.header().counters;
        c.fanouts.fetch_add(1, Relaxed);
        c.skipped.fetch_add(u64::from(skipped), Relaxed);
        c.missing.fetch_add(u64::from(missing), Relaxed);
    }

    /// One pass over every entry: frees expired memberships, reclaims dead writers' entries and
    /// corrupt words, frees the HELD entries of `filter`'s group whose holder died, and returns
    /// the LIVE and HELD entries `filter` wants, in index order.
    pub(super) fn scan(&self, holds: &Holds, now: u64, filter: Filter) -> Vec<(u32, Seen)> {
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
    pub(super) fn read_live(&self, i: u32, filter: Filter) -> Read {
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
                        super::tests::mid_read();
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
    pub(super) fn claim_free(&self, holds: &mut Holds, start: u32) -> Option<(u32, Word)> {
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
    pub(super) fn reclaim_if_abandoned(&self, i: u32) -> bool {
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

    /// LIVE (or corrupt) `w` -> FREE, unless the word changed meanwhile (then whoever changed it
    /// decides). Counts into `counter` on success.
    pub(super) fn free_if_unchanged(&self, i: u32, w: Word, counter: Option<&AtomicU64>) {
        // SYNC POINT (Release): our reads of the entry happen before its reuse.
        if self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed).is_ok() {
            self.bump_members_version();
            if let Some(c) = counter {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Merges copies of one pair (index order, LIVE only) into the first: it takes the latest
    /// deadline of all of them and of `at_least`, the others are freed. False if a word changed
    /// under it.
    pub(super) fn merge(&self, copies: &[(u32, Seen)], at_least: u64) -> bool {
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

/// The LIVE (deadline) copies among `found`: the only ones refreshed and merged.
pub(super) fn timed_copies(found: Vec<(u32, Seen)>) -> Vec<(u32, Seen)> {
    found.into_iter().filter(|(_, s)| s.word.kind() == EntryKind::Live).collect()
}
