//! Memberships held by a process (see the module doc of `group`): a HELD entry lasts while its
//! holder keeps the entry lock. Freeing the entries of holders that died, and a handle ending its
//! own (on drop) or letting go of those another process discarded.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::MutexGuard;

use super::layout::{entry_lock_byte, EntryKind, Word};
use super::{GroupTable, Holds};
use crate::fault;
use crate::sys;

impl GroupTable {
    /// Serialises this handle's operations; first lets go of the locks of HELD entries that are
    /// no longer ours (see `settle_holds`).
    pub(super) fn lock_ops(&self) -> MutexGuard<'_, Holds> {
        let mut holds = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        self.settle_holds(&mut holds);
        holds
    }

    /// For a HELD entry `w` that another handle published: true if its holder is gone, in which
    /// case the entry is freed (or was freed meanwhile by a discard); false while the holder holds
    /// the lock (or another scanner, freeing it right now, does: then it counts as alive once more).
    pub(super) fn free_if_holder_gone(&self, i: u32, w: Word) -> bool {
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
            self.bump_members_version();
            self.header().counters.died.fetch_add(1, Relaxed);
        }
        true
    }

    /// Frees every HELD entry (of any group) whose holder is gone; returns how many. Costs a
    /// syscall per HELD entry, so only an add that found no free entry calls it.
    pub(super) fn sweep_dead_holders(&self, holds: &Holds) -> u32 {
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
    pub(super) fn held_by_other(&self, i: u32) -> bool {
        sys::byte_locked_by_other(&self.fd, entry_lock_byte(i))
    }

    /// Lets go of the locks of entries we held whose word moved on (another process discarded
    /// the membership, or a scan freed a word no writer made): they are free for others again.
    pub(super) fn settle_holds(&self, holds: &mut Holds) {
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
    pub(super) fn end_holds(&self, holds: &mut Holds) {
        for (i, w) in holds.drain() {
            // SYNC POINT (Release): our accesses to the entry happen before its reuse.
            let ended = self.entry(i).state.compare_exchange(w.0, w.freed().0, AcqRel, Relaxed).is_ok();
            if ended {
                self.bump_members_version();
                self.header().counters.closed.fetch_add(1, Relaxed);
            }
            fault::point("group.closing");
            sys::unlock_byte(&self.fd, entry_lock_byte(i));
        }
    }
}

impl Drop for GroupTable {
    fn drop(&mut self) {
        let mut holds = std::mem::take(self.ops.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.end_holds(&mut holds);
    }
}
