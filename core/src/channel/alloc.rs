//! The payload allocator: a slot's data pages are allocated when a message first needs them, stay
//! with the slot for the messages after it, and their sum is bounded by the channel's `memory`.
//! Only the sender holding a slot (WRITING) grows or shrinks it, so no page is ever given back
//! while a receiver may read it, and no page is touched before it is allocated.
//!
//! # What is reserved when
//!
//! - A send (or loan) of `len > INLINE_BYTES` bytes needs `round_up(len, PAGE)` bytes of its slot's
//!   region. If the slot has fewer, its owner charges the difference (checked against the bound,
//!   under the allocator lock, when the bound can bind), then `fallocate`s it, then marks it
//!   allocated. ENOSPC gives the charge back and the slot too: `ERR_NO_SPACE`, nothing written.
//! - Over the bound, the grower first trims FREE slots (claims them, punches their pages, frees
//!   them); if that is not enough the send is `FULL_MEMORY`, nothing written, the slot given back.
//! - While the channel holds more than its low-water mark (`low_water`), every send also shrinks
//!   its own slot and trims one other free slot, when they hold more than twice what is worth
//!   keeping (`worth_keeping`: varying sizes do not churn). Worth keeping is the larger of the
//!   message's need and the largest need any send had in the last `KEEP_MS` (the `recent_need`
//!   hint on the channel's memory line): so 64 B messages between 1 MiB ones leave their slots'
//!   pages for the next 1 MiB one instead of punching them and faulting them in again (before:
//!   ~184 faults and 9-12x the time per 1 MiB message, bench/alloc_churn.ts). In a channel whose
//!   `memory` bound can bind, a message's own slot still shrinks to its need (kept pages in a slot
//!   that is in flight could refuse a send the bound has room for); free slots are a cache that a
//!   growth over the bound empties anyway.
//! - Once no send needed the large size for `KEEP_MS`, the pages go back to the mark: small sends
//!   trim as above, and since an idle channel gets no sends, `trim_idle` empties free slots down
//!   to the mark. It runs in the liveness sweep (at most every 20 ms channel-wide, by any
//!   participant waiting on the channel, as an idle receiver is), and at open and close. A
//!   channel no participant waits on keeps its pages until someone sends, opens or closes (or
//!   `gc` removes it).
//!
//! # Crashes
//!
//! `Reserve` packs `allocated` (safe to touch) and `charged` (counted against the bound) in one
//! word. Growing raises `charged` first and `allocated` after the pages exist; shrinking lowers
//! `allocated` first and `charged` after the punch. So a death at any point leaves
//! `allocated <= pages present <= charged`: nothing can touch a hole, and the bound still counts
//! every page that may exist. Recovery of a dead sender's WRITING slot (`settle`), before it frees
//! the slot, punches `[allocated, charged)` and lowers `charged` to `allocated`. The channel-wide
//! sum in the header is a hint (for the low-water test): a bounded growth recomputes it from the
//! slots under the lock, and a sweep that recovered someone recomputes it.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::{Handle, Local, Shared, Side, OBSERVER};
use crate::fault;
use crate::layout::*;
use crate::segment::participant_lock_byte;
use crate::state::*;
use crate::status::*;
use crate::sys;

/// Held (OFD lock) by a sender while it sums the slots' charges and charges its own growth, so
/// that two growths cannot both pass the bound. Outside the participants' bytes (`USERS`); the
/// kernel drops it when its holder dies.
pub const ALLOC_LOCK_BYTE: u64 = participant_lock_byte(MAX_PARTICIPANTS as u32);

/// What a channel keeps reserved without trimming: 1 MiB, or one message of the largest size if
/// more. Below it slots keep their pages (no allocation churn for a steady stream); above it
/// sends trim.
pub const LOW_WATER: u64 = 1 << 20;

/// How long slots keep pages for a size after the last send that needed it (the `recent_need`
/// hint): long enough that sizes mixing in one stream reuse pages, short enough that a channel
/// whose large messages stopped is back at its low-water mark about a second later.
pub const KEEP_MS: u64 = 1_000;

/// A send needing the remembered size refreshes the hint's time once it is this old: the shared
/// line is written a few times a second, not on every send.
const KEEP_REFRESH_MS: u64 = 100;

/// Reserve entries a send looks at for one slot to trim: one cache line of the table.
const TRIM_SCAN: u32 = 8;

/// How long a grower tries for the allocator lock (held for a sum of the table, microseconds)
/// before it answers FULL_MEMORY (a blocking send then retries): only a stopped holder lasts this.
const LOCK_PATIENCE: Duration = Duration::from_millis(20);

/// One slot's reservation, read from its `Reserve` word and clamped to its region, so that a
/// damaged word can never send anyone past the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reserved {
    pub allocated: u64,
    pub charged: u64,
}

impl Reserved {
    fn read(r: &Reserve, stride: u64) -> Reserved {
        // SYNC POINT: Relaxed: the word's writers are the slot's successive owners, and each
        // handover goes through the state word (the freeing CAS is Release, the claim Acquire;
        // recovery's reset is AcqRel), which orders their stores before our load. Receivers read
        // it after their Acquire claim of READY, summers only for accounting.
        let w = r.word.load(Relaxed);
        let allocated = (w & 0xffff_ffff).min(stride);
        Reserved { allocated, charged: (w >> 32).min(stride).max(allocated) }
    }

    fn store(r: &Reserve, allocated: u64, charged: u64) {
        // SYNC POINT: Release: pairs with the orderings above; a summer that sees a lowered charge
        // sees it after the punch that preceded it.
        r.word.store(allocated | (charged << 32), Release);
    }
}

impl Shared {
    /// Bytes of slot `k`'s data region that are allocated: what a message in it may span.
    pub(crate) fn allocated(&self, k: u32) -> u64 {
        Reserved::read(self.seg.reserve(k), self.seg.layout.slot_stride).allocated
    }

    /// The slots' charges summed: the payload bytes the channel reserves now (never less).
    pub fn reserved_sum(&self) -> u64 {
        let stride = self.seg.layout.slot_stride;
        if stride == 0 {
            return 0;
        }
        (0..self.seg.layout.capacity).map(|k| Reserved::read(self.seg.reserve(k), stride).charged).sum()
    }

    /// Recomputes the header's hint from the slots (a sweep, after recovering someone).
    pub(super) fn refresh_reserved_hint(&self) {
        if self.seg.layout.slot_stride != 0 {
            // SYNC POINT: a hint; nothing is published through it.
            self.seg.header().memory.reserved_hint.store(self.reserved_sum(), Relaxed);
        }
    }

    /// Whether the `memory` bound can refuse a growth: it is less than every slot full.
    fn bound_binds(&self) -> bool {
        let layout = &self.seg.layout;
        layout.memory_bound() < layout.slot_stride * u64::from(layout.capacity)
    }

    /// Bytes a growth could get now: what the bound leaves, plus what free slots hold (a grower
    /// trims them). For a sender waiting after FULL_MEMORY (`has_room`).
    pub(super) fn memory_room(&self) -> u64 {
        let stride = self.seg.layout.slot_stride;
        let mut sum = 0;
        let mut free_held = 0;
        for k in 0..self.seg.layout.capacity {
            let charged = Reserved::read(self.seg.reserve(k), stride).charged;
            sum += charged;
            // SYNC POINT: a snapshot for a wait condition; the grow re-checks under the lock.
            if State(self.seg.slot(k).state.load(Relaxed)).kind() == Kind::Free {
                free_held += charged;
            }
        }
        self.seg.layout.memory_bound().saturating_sub(sum) + free_held
    }

    fn low_water(&self) -> u64 {
        LOW_WATER.max(self.seg.layout.slot_stride)
    }

    /// The largest need (bytes) a send had in the last KEEP_MS, as of `now` (`sys::coarse_ms`);
    /// 0 when none did.
    fn kept(&self, now: u64) -> u64 {
        // SYNC POINT: a hint, read Relaxed: it only decides which pages stay allocated; every
        // page's safety is in its slot's `Reserve` word.
        let (pages, age) = recent_need(self.seg.header().memory.recent_need.load(Relaxed), now);
        if age <= KEEP_MS {
            u64::from(pages) * PAGE
        } else {
            0
        }
    }

    /// Records that a send needed `need` bytes (whole pages) at `now`: the hint takes it when it
    /// is larger than what it holds or what it holds expired, and refreshes its time when it is
    /// the same size and the time is KEEP_REFRESH_MS old.
    fn note_need(&self, need: u64, now: u64) {
        let pages = need / PAGE;
        // SYNC POINT: a hint (see `kept`); the update loop only keeps the larger of two racing
        // sizes.
        let _ = self.seg.header().memory.recent_need.fetch_update(Relaxed, Relaxed, |w| {
            let (held, age) = recent_need(w, now);
            let held = u64::from(held);
            let take = pages > held || age > KEEP_MS || (pages == held && age >= KEEP_REFRESH_MS);
            take.then(|| recent_need_word(pages, now))
        });
    }

    /// Once no send needed pages for KEEP_MS, empties free slots until the channel holds no more
    /// than its low-water mark: how an idle channel, which gets no sends to trim it, gives its
    /// pages back. Called by the liveness sweep (`maybe_sweep`: at most every 20 ms channel-wide,
    /// by whichever participant waits on the channel), at open and at close. Slots are claimed as
    /// this participant's, so an observer leaves it to the others.
    pub(super) fn trim_idle(&self) {
        let _g = self.recovery.lock().unwrap_or_else(|e| e.into_inner());
        if !self.closed.load(Relaxed) {
            self.trim_idle_locked();
        }
    }

    /// `trim_idle`, for a caller that holds the recovery lock (close): the handle's threads trim
    /// one at a time, so a close never frees a slot another of its threads is trimming.
    pub(super) fn trim_idle_locked(&self) {
        if self.seg.layout.slot_stride == 0 || self.me == OBSERVER {
            return;
        }
        let low = self.low_water();
        // SYNC POINT: a hint (see `fit`); a stale value trims a little more or less, later.
        let hint = &self.seg.header().memory.reserved_hint;
        if hint.load(Relaxed) <= low || self.kept(sys::coarse_ms()) > 0 {
            return;
        }
        for j in 0..self.seg.layout.capacity {
            if hint.load(Relaxed) <= low {
                break;
            }
            self.trim(j, 0);
        }
    }

    fn hint_sub(&self, bytes: u64) {
        // SYNC POINT: a hint; saturating, since a sweep may have recomputed it meanwhile.
        let hint = &self.seg.header().memory.reserved_hint;
        let _ = hint.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
    }

    /// Recovery, for slot `k` WRITING by a participant that died (or by us, closing) and not yet
    /// freed: whatever a growth or shrink left half done is undone, so the next owner finds
    /// `allocated == charged`. Idempotent: a recoverer that dies here is followed by another.
    pub(super) fn settle(&self, k: u32) {
        let stride = self.seg.layout.slot_stride;
        if stride == 0 {
            return;
        }
        let r = self.seg.reserve(k);
        let cur = Reserved::read(r, stride);
        if cur.charged > cur.allocated {
            // Pages in [allocated, charged) may or may not exist: nobody may touch them, so they go.
            // Should the punch fail, they stay charged (overstated, never understated).
            let at = self.seg.data_offset(k) + cur.allocated;
            if sys::punch(&self.seg.fd, at, cur.charged - cur.allocated).is_ok() {
                Reserved::store(r, cur.allocated, cur.allocated);
                self.hint_sub(cur.charged - cur.allocated);
            }
        }
    }

    /// Gives back slot `k`'s pages past `need` (we hold it WRITING, so nobody reads them).
    fn shrink(&self, k: u32, have: Reserved, need: u64) {
        let r = self.seg.reserve(k);
        // Nobody may touch past `need` from here; still charged until the pages are gone.
        Reserved::store(r, need.min(have.allocated), have.charged);
        fault::point("alloc.punching");
        let at = self.seg.data_offset(k) + need;
        if sys::punch(&self.seg.fd, at, have.charged - need).is_err() {
            // Not supported or failed: the pages stay, allocated and charged as before.
            Reserved::store(r, have.allocated, have.charged);
            return;
        }
        fault::point("alloc.punched");
        Reserved::store(r, need, need);
        self.hint_sub(have.charged - need);
    }

    /// Shrinks free slot `j` to `to` bytes if it holds more: claims it (FREE -> WRITING by us),
    /// shrinks it, frees it. Returns the bytes given back (0 if it was busy or small already).
    fn trim(&self, j: u32, to: u64) -> u64 {
        let have = Reserved::read(self.seg.reserve(j), self.seg.layout.slot_stride);
        if have.charged <= worth_keeping(to) || !self.try_claim_free(j) {
            return 0;
        }
        // Read again now that it is ours: its last owner may have changed it before freeing it.
        let have = Reserved::read(self.seg.reserve(j), self.seg.layout.slot_stride);
        let before = have.charged;
        if have.charged > to {
            self.shrink(j, have, to.min(have.allocated));
        }
        let after = Reserved::read(self.seg.reserve(j), self.seg.layout.slot_stride).charged;
        self.give_back(j);
        before.saturating_sub(after)
    }

    /// Empties free slots (other than `k`) of their pages until `want` bytes came back or none
    /// is left; returns the bytes that came back. For a growth that found no room.
    fn trim_free(&self, k: u32, want: u64) -> u64 {
        let mut freed = 0;
        for j in (0..self.seg.layout.capacity).filter(|&j| j != k) {
            if freed >= want {
                break;
            }
            freed += self.trim(j, 0);
        }
        freed
    }

    /// Returns slot `k`, WRITING by us and never published, to FREE.
    pub(super) fn give_back(&self, k: u32) {
        let st = &self.seg.slot(k).state;
        // SYNC POINT: Acquire sees our own claim; the AcqRel CAS publishes FREE (and our reserve
        // stores before it) to the next claimer's Acquire CAS.
        let cur = State(st.load(Acquire));
        if cur.kind() == Kind::Writing && cur.sender() == self.me {
            let _ = st.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed);
            self.wake(Side::Send);
        }
    }
}

impl Handle {
    /// Makes slot `k` (WRITING by us) ready for a message of `len` bytes: grows its allocated
    /// pages to cover it, and shrinks or trims when the channel is over its low-water mark.
    /// On an error the slot is still ours: the caller gives it back.
    #[inline]
    pub(super) fn fit(&self, l: &mut Local, k: u32, len: usize) -> Result<(), i32> {
        let stride = self.seg.layout.slot_stride;
        if stride == 0 {
            return Ok(()); // every message is inline
        }
        let need = Layout::slot_need(len as u32, self.seg.layout.max_message);
        // SYNC POINT: a hint, read Relaxed: a stale value only delays a trim.
        let over = self.seg.header().memory.reserved_hint.load(Relaxed) > self.low_water();
        if need == 0 && !over {
            return Ok(()); // an inline message touches no page: not even the reserve table's line
        }
        let have = Reserved::read(self.seg.reserve(k), stride);
        if have.allocated >= need && !over {
            return Ok(()); // the steady state: one load of the table, one of the hint
        }
        // Pages get allocated or given back from here: what sends needed lately decides which.
        let now = sys::coarse_ms();
        if need > 0 {
            self.note_need(need, now);
        }
        let keep = need.max(self.kept(now));
        if have.allocated < need {
            let grown = self.grow(k, have, need);
            // What a FULL_MEMORY sender waits for (`memory_room`), 0 once it got it.
            l.memory_short = if grown == Err(FULL_MEMORY) { need - have.charged.min(need) } else { 0 };
            grown?;
        } else {
            // Where the bound can bind, pages kept in a slot that goes in flight could refuse a
            // send it has room for: the slot keeps only what its message needs.
            let own = if self.bound_binds() { need } else { keep };
            if have.charged > worth_keeping(own) {
                self.shrink(k, have, own.min(have.allocated));
            }
        }
        if over {
            self.trim_one(l, k, keep);
        }
        Ok(())
    }

    /// Charges and allocates slot `k`'s region up to `need`. Err(FULL_MEMORY) over the bound,
    /// Err(ERR_NO_SPACE) when /dev/shm is full; either way the slot's reservation is as it was.
    fn grow(&self, k: u32, have: Reserved, need: u64) -> Result<(), i32> {
        let r = self.seg.reserve(k);
        let extra = need.saturating_sub(have.charged);
        let hint = &self.seg.header().memory.reserved_hint;
        if extra > 0 {
            if !self.bound_binds() {
                // The bound can never bind (every slot full fits it): no lock, no sum.
                Reserved::store(r, have.allocated, need);
                // SYNC POINT: a hint.
                hint.fetch_add(extra, Relaxed);
            } else {
                self.charge_bounded(k, have, need)?;
            }
        }
        fault::point("alloc.charged");
        let at = self.seg.data_offset(k) + have.allocated;
        let mut allocated = sys::allocate(&self.seg.fd, at, need - have.allocated);
        if allocated.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::ENOSPC))
            && self.trim_free(k, need - have.allocated) > 0
        {
            // /dev/shm is full, but free slots of ours held pages: they are back, try again.
            allocated = sys::allocate(&self.seg.fd, at, need - have.allocated);
        }
        if let Err(e) = allocated {
            // tmpfs keeps none of a failed call's pages; punched anyway, so that nothing
            // uncharged can be left behind whatever the file system.
            let _ = sys::punch(&self.seg.fd, at, need - have.allocated);
            Reserved::store(r, have.allocated, have.allocated);
            self.hint_sub(need - have.allocated);
            return Err(match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::ENOMEM) | Some(libc::EFBIG) => ERR_NO_SPACE,
                _ => ERR_IO,
            });
        }
        fault::point("alloc.reserved");
        Reserved::store(r, need, need);
        Ok(())
    }

    /// Under the allocator lock: sums the charges, trims free slots if the growth would pass the
    /// bound, and charges slot `k` up to `need`, or says FULL_MEMORY.
    fn charge_bounded(&self, k: u32, have: Reserved, need: u64) -> Result<(), i32> {
        if !self.lock_allocator() {
            return Err(FULL_MEMORY);
        }
        let bound = self.seg.layout.memory_bound();
        let extra = need - have.charged;
        let mut sum = self.reserved_sum();
        if sum + extra > bound {
            // Pages of free slots are a cache: give them back before refusing a message.
            sum = sum.saturating_sub(self.trim_free(k, sum + extra - bound));
        }
        let fits = sum + extra <= bound;
        if fits {
            Reserved::store(self.seg.reserve(k), have.allocated, need);
            // SYNC POINT: a hint, exact here (every growth that could bind sums under this lock).
            self.seg.header().memory.reserved_hint.store(sum + extra, Relaxed);
        }
        sys::unlock_byte(&self.seg.fd, ALLOC_LOCK_BYTE);
        if fits {
            Ok(())
        } else {
            Err(FULL_MEMORY)
        }
    }

    fn lock_allocator(&self) -> bool {
        let start = Instant::now();
        let mut tries = 0u32;
        loop {
            match sys::try_lock_byte(&self.seg.fd, ALLOC_LOCK_BYTE) {
                Ok(true) => return true,
                Ok(false) if start.elapsed() < LOCK_PATIENCE => {}
                _ => return false,
            }
            tries += 1;
            if tries < 16 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Over the low-water mark: trims one free slot (other than `k`) holding more than `need`,
    /// among the next TRIM_SCAN entries of the table.
    fn trim_one(&self, l: &mut Local, k: u32, need: u64) {
        let cap = self.seg.layout.capacity;
        for _ in 0..TRIM_SCAN.min(cap) {
            let j = l.trim_cursor % cap;
            l.trim_cursor = (j + 1) % cap;
            if j != k && self.trim(j, need) > 0 {
                return;
            }
        }
    }
}

/// The most a slot may hold for messages needing `need` before a trim takes the rest: twice
/// as much, so that messages of varying large sizes do not punch and reallocate pages on
/// every send (a slot with none needed keeps none).
fn worth_keeping(need: u64) -> u64 {
    need.saturating_mul(2)
}

/// The `recent_need` word (layout.rs) as (pages, age in ms at `now`). A time ahead of `now`
/// (another process stored it after we read the clock) is age 0.
fn recent_need(word: u64, now: u64) -> (u32, u64) {
    ((word & NEED_PAGES_MASK) as u32, now.saturating_sub(word >> NEED_PAGES_BITS))
}

/// `recent_need` for `pages` needed at `now`.
fn recent_need_word(pages: u64, now: u64) -> u64 {
    pages.min(NEED_PAGES_MASK) | (now << NEED_PAGES_BITS)
}

/// `recent_need` holds pages in its low 24 bits (a 1 GiB message is 2^18 pages) and the time
/// above them (40 bits of milliseconds since boot: 34 years).
const NEED_PAGES_BITS: u32 = 24;
const NEED_PAGES_MASK: u64 = (1 << NEED_PAGES_BITS) - 1;
const _: () = assert!(((MAX_MESSAGE_LIMIT as u64).div_ceil(PAGE)) <= NEED_PAGES_MASK);
