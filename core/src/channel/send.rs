//! Sending: a sender claims a FREE slot from the pool (FREE -> WRITING by it), writes the payload
//! (inline in the slot's line up to 96 bytes, else in the slot's data region) and publishes it on
//! its own lane (READY, then the lane's tail). Also the zero-copy loan of a slot, and batches.
//! Between the claim and the write, `fit` (alloc.rs) makes sure the slot's pages exist.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::{Handle, Local, Marks, Shared, Side, OBSERVER};
use crate::fault;
use crate::layout::*;
use crate::state::*;
use crate::status::*;
use crate::sys;

/// A blocked sender reads all its in-flight slots on every this-many-th retry (see `reap`).
const FULL_REAP_EVERY: u32 = 32;

impl Handle {
    /// Writes `payload` into a free slot and publishes it. Never waits.
    pub fn send(&self, payload: &[u8], ack: bool, expiry_ms: u32) -> Result<(u32, u32, u64), i32> {
        self.send_with(payload, Marks::mode(ack), expiry_ms, false)
    }

    /// As `send`, the message marked as `marks` says. `retry`: the caller tries again when this finds no room (a blocking send, a
    /// batch past its first message), so a look at its oldest in-flight slot is enough most times
    /// (see `reap`); a one-shot send looks at all of them.
    pub fn send_with(
        &self,
        payload: &[u8],
        marks: Marks,
        expiry_ms: u32,
        retry: bool,
    ) -> Result<(u32, u32, u64), i32> {
        if payload.len() > self.seg.layout.max_message as usize {
            return Err(ERR_TOO_LARGE);
        }
        let l = &mut *self.local.borrow_mut();
        let k = self.acquire_fitted(l, retry, payload.len())?;
        // SAFETY: slot k is WRITING with us as sender (claimed by CAS in acquire), so its inline
        // bytes and data region are ours alone; the payload fits the one chosen (INLINE_BYTES,
        // or the region's allocated bytes: `fit` made them cover it).
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), self.payload_ptr(k, payload.len()), payload.len())
        };
        Ok(self.publish(l, k, payload.len() as u32, marks, expiry_ms))
    }

    /// `acquire`, then `fit` for a message of `len` bytes; a slot that cannot be fitted (memory
    /// bound, full /dev/shm) is given back and nothing was written.
    pub(super) fn acquire_fitted(&self, l: &mut Local, retry: bool, len: usize) -> Result<u32, i32> {
        let k = self.acquire(l, retry)?;
        if let Err(code) = self.fit(l, k, len) {
            self.give_back(k);
            return Err(code);
        }
        Ok(k)
    }

    /// Claims a free slot for this sender (FREE -> WRITING by us), within its `slots` limit,
    /// its lane window and the channel's capacity.
    pub(super) fn acquire(&self, l: &mut Local, retry: bool) -> Result<u32, i32> {
        if self.me == OBSERVER {
            return Err(ERR_INVALID_ARGUMENT);
        }
        if self.closed.load(Relaxed) {
            return Err(CLOSED);
        }
        let limit = self.slot_limit as usize;
        if l.inflight.len() >= limit {
            self.reap(l, !retry);
            if l.inflight.len() >= limit {
                return Err(FULL_SLOTS);
            }
        }
        let lane = self.seg.participant(self.me);
        if l.tail - l.cached_head >= LANE_RING as u64 {
            let window_full = |l: &mut Local| {
                // SYNC POINT: pairs with receivers' AcqRel head CAS: ring entries below head are
                // read, ours to reuse.
                l.cached_head = lane.head.head.load(Acquire);
                l.tail - l.cached_head >= LANE_RING as u64
            };
            if window_full(l) {
                self.advance_head(self.me);
                if window_full(l) {
                    return Err(FULL_SLOTS);
                }
            }
        }
        let k = self.claim_free_slot(l).ok_or(FULL_CAPACITY)?;
        fault::point("send.claimed");
        Ok(k)
    }

    /// Publishes slot `k` (WRITING by us, payload in place) as the lane's next message.
    pub(super) fn publish(
        &self,
        l: &mut Local,
        k: u32,
        len: u32,
        marks: Marks,
        expiry_ms: u32,
    ) -> (u32, u32, u64) {
        let sent = self.publish_quietly(l, k, len, marks, expiry_ms);
        self.wake(Side::Recv);
        sent
    }

    /// `publish` without waking sleepers.
    pub(super) fn publish_quietly(
        &self,
        l: &mut Local,
        k: u32,
        len: u32,
        marks: Marks,
        expiry_ms: u32,
    ) -> (u32, u32, u64) {
        let deadline = if expiry_ms == 0 { 0 } else { sys::coarse_ms() + u64::from(expiry_ms) };
        let sent = self.mark_ready(l, k, len, marks, deadline);
        self.link(l);
        sent
    }

    /// Marks slot `k` READY as the lane's next message (ring entry `l.tail`) without making it
    /// reachable: receivers find messages through the lane's tail, which `link` publishes. A death
    /// between the two leaves READY slots past the tail, which recovery publishes in ring order
    /// (`recover_locked`): each such message is delivered once, as after a death at
    /// "send.ready" of a single send. `marks` become flags of the READY word, so marking costs
    /// nothing beyond the store that publishes the message.
    fn mark_ready(&self, l: &mut Local, k: u32, len: u32, marks: Marks, deadline_ms: u64) -> (u32, u32, u64) {
        let s = self.seg.slot(k);
        let lane = self.seg.participant(self.me);
        let seq = l.tail;
        s.len.store(len, Relaxed);
        s.seq.store(seq, Relaxed);
        s.pid.store(self.pid, Relaxed);
        s.deadline_ms.store(deadline_ms, Relaxed);
        lane.ring.slot[(seq % LANE_RING as u64) as usize].store(k, Relaxed);
        fault::point("send.written");
        let writing = State(s.state.load(Relaxed));
        let ready = writing
            .with_kind(Kind::Ready)
            .with_flag(FLAG_ACK, marks.ack)
            .with_flag(FLAG_REPEAT, marks.repeat);
        // SYNC POINT: the payload, the metadata and the ring entry are visible to whoever
        // observes READY (receivers' Acquire loads and claim CAS). Only we may change a slot we
        // are WRITING, so a store is the whole transition.
        s.state.store(ready.0, Release);
        fault::point("send.ready");
        l.tail = seq + 1;
        l.sent += 1;
        l.inflight.push((k, writing.generation()));
        (k, writing.generation(), seq)
    }

    /// Makes every message `mark_ready` staged reachable: one tail store (and one counter store)
    /// for however many there are, so a batch moves the line receivers poll once, not per message.
    fn link(&self, l: &Local) {
        let lane = self.seg.participant(self.me);
        // SYNC POINT: makes the ring entries below the tail reachable to receivers that load
        // tail with Acquire (their READY states were stored, Release, before this).
        lane.owner.tail.store(l.tail, Release);
        lane.owner.sent.store(l.sent, Relaxed);
    }

    /// Sends the messages laid end to end in `payloads` (lengths in `lens`) until one finds no
    /// room; one wake for the batch. Async mode; `repeat` marks every one (`Marks::repeat`).
    /// Returns how many were sent and why it stopped (OK when all were).
    pub fn send_batch(&self, payloads: &[u8], lens: &[u32], expiry_ms: u32, repeat: bool) -> (u32, i32) {
        let l = &mut *self.local.borrow_mut();
        let mut at = 0usize;
        let mut sent = 0u32;
        let mut why = OK;
        // The messages of one call share a send time, so one clock read serves them all.
        let deadline = if expiry_ms == 0 { 0 } else { sys::coarse_ms() + u64::from(expiry_ms) };
        for (i, &len) in lens.iter().enumerate() {
            let len = len as usize;
            let Some(payload) = payloads.get(at..at + len) else {
                why = ERR_INVALID_ARGUMENT;
                break;
            };
            if len > self.seg.layout.max_message as usize {
                why = ERR_TOO_LARGE;
                break;
            }
            // Only the first message looks at every in-flight slot; the rest are retries.
            let k = match self.acquire_fitted(l, i > 0, len) {
                Ok(k) => k,
                Err(code) => {
                    why = code;
                    break;
                }
            };
            // SAFETY: as in `send_with`: slot k is WRITING by us and the payload fits its place
            // (fitted above).
            unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), self.payload_ptr(k, len), len) };
            self.mark_ready(l, k, len as u32, Marks { ack: false, repeat }, deadline);
            at += len;
            sent += 1;
        }
        if sent > 0 {
            // One tail store and one wake for the batch.
            self.link(l);
            self.wake(Side::Recv);
        }
        (sent, why)
    }

    /// Lends the caller a slot to write `len` bytes into directly: returns (slot, generation,
    /// offset of the payload in the segment). `commit` publishes it, `unloan` gives it back.
    pub fn loan(&self, len: u32) -> Result<(u32, u32, u64), i32> {
        if len > self.seg.layout.max_message {
            return Err(ERR_TOO_LARGE);
        }
        // The loan's view spans `len` bytes: all of them allocated before the caller sees it.
        let k = self.acquire_fitted(&mut self.local.borrow_mut(), false, len as usize)?;
        let g = State(self.seg.slot(k).state.load(Relaxed)).generation();
        Ok((k, g, self.payload_offset(k, len as usize)))
    }

    pub(super) fn loaned(&self, k: u32, g: u32) -> bool {
        // SYNC POINT: our own WRITING claim (try_claim_free's Acquire CAS); Acquire for the
        // generation check.
        let cur = State(self.seg.slot(k).state.load(Acquire));
        cur.kind() == Kind::Writing && cur.sender() == self.me && cur.generation() == g
    }

    /// Publishes a loaned slot holding `len` of the `loaned` bytes it was lent for.
    pub fn commit(
        &self,
        k: u32,
        g: u32,
        loaned: u32,
        len: u32,
        marks: Marks,
        expiry_ms: u32,
    ) -> Result<(u32, u32, u64), i32> {
        if k >= self.seg.layout.capacity || len > loaned || loaned > self.seg.layout.max_message {
            return Err(ERR_INVALID_ARGUMENT);
        }
        if self.closed.load(Relaxed) {
            return Err(CLOSED);
        }
        if !self.loaned(k, g) {
            return Err(ERR_NOT_HELD);
        }
        if loaned as usize > INLINE_BYTES && u64::from(loaned) > self.allocated(k) {
            // `loan` fitted the size it was given; a larger `loaned` would read pages nobody
            // allocated (alloc.rs: no byte is touched before its page is reserved).
            return Err(ERR_INVALID_ARGUMENT);
        }
        let (from, to) = (self.payload_ptr(k, loaned as usize), self.payload_ptr(k, len as usize));
        if from != to {
            // Committed shorter than lent, across the inline limit: move it where readers look.
            // SAFETY: both regions belong to slot k, which we hold WRITING; ptr::copy allows overlap.
            unsafe { std::ptr::copy(from, to, len as usize) };
        }
        Ok(self.publish(&mut self.local.borrow_mut(), k, len, marks, expiry_ms))
    }

    /// Returns a loaned slot unpublished.
    pub fn unloan(&self, k: u32, g: u32) -> i32 {
        if k >= self.seg.layout.capacity || !self.loaned(k, g) {
            return ERR_NOT_HELD;
        }
        let st = &self.seg.slot(k).state;
        // SYNC POINT: as in `loaned`; the AcqRel CAS below publishes FREE (we wrote nothing others
        // read).
        let cur = State(st.load(Acquire));
        if st.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed).is_err() {
            return ERR_NOT_HELD;
        }
        self.wake(Side::Send);
        OK
    }

    /// Whether a send could find room now: a free in-flight entry (after a look at which of
    /// this sender's slots were released) and a free slot somewhere in the channel.
    pub fn has_room(&self) -> bool {
        let l = &mut *self.local.borrow_mut();
        if l.inflight.len() >= self.slot_limit as usize {
            self.reap(l, false);
            if l.inflight.len() >= self.slot_limit as usize {
                return false;
            }
        }
        // A slot this sender saw released is the likely one; scan the pool only without one.
        let free = |k: u32| State(self.seg.slot(k).state.load(Relaxed)).kind() == Kind::Free;
        let slot_free = l.spare.iter().any(|&k| free(k)) || (0..self.seg.layout.capacity).any(free);
        // After FULL_MEMORY a free slot is not enough: the bytes the message lacked must be there.
        slot_free && (l.memory_short == 0 || self.memory_room() >= l.memory_short)
    }

    /// Counts a send that gave up on a full channel (trySend, or a timed-out wait).
    pub fn note_full(&self) {
        if self.me == OBSERVER {
            return;
        }
        let l = &mut *self.local.borrow_mut();
        l.full += 1;
        self.seg.participant(self.me).owner.full.store(l.full, Relaxed);
    }

    /// Forgets in-flight slots whose message was released (their generation moved on).
    ///
    /// `inflight` is kept in send order and receivers mostly release in that order, so while the
    /// oldest is still held the others very likely are too: a sender retrying on a full window
    /// then reads one remote line instead of pulling all of them away from the receiver. Every
    /// FULL_REAP_EVERY-th retry reads them all, for messages released out of order.
    pub(super) fn reap(&self, l: &mut Local, thorough: bool) {
        l.reap_tries = l.reap_tries.wrapping_add(1);
        // SYNC POINT: pairs with the receiver's Release in `release_in`: its payload reads
        // happen before our reuse.
        let oldest_held = l
            .inflight
            .first()
            .is_some_and(|&(k, g)| State(self.seg.slot(k).state.load(Acquire)).generation() == g);
        if oldest_held && !thorough && !l.reap_tries.is_multiple_of(FULL_REAP_EVERY) {
            return;
        }
        let seg = &self.seg;
        let spare = &mut l.spare;
        l.inflight.retain(|&(k, g)| {
            // SYNC POINT: as above, for every in-flight slot.
            let released = State(seg.slot(k).state.load(Acquire)).generation() != g;
            if released && spare.len() < LANE_RING {
                spare.push(k);
            }
            !released
        });
    }

    pub(super) fn claim_free_slot(&self, l: &mut Local) -> Option<u32> {
        while let Some(k) = l.spare.pop() {
            if self.try_claim_free(k) {
                return Some(k);
            }
        }
        let cap = self.seg.layout.capacity;
        for round in 0..2 {
            for n in 0..cap {
                let k = (l.scan_cursor + n) % cap;
                if self.try_claim_free(k) {
                    l.scan_cursor = (k + 1) % cap;
                    return Some(k);
                }
            }
            if round == 0 && !self.reclaim() {
                break;
            }
        }
        None
    }

    /// Moves lane `j`'s head past entries that are no longer READY with that sequence
    /// (received, withdrawn or expired). Anyone may help; a failed CAS means someone else did.
    pub(super) fn advance_head(&self, j: u32) {
        let p = self.seg.participant(j);
        loop {
            // SYNC POINT: pairs with the AcqRel head CAS of other helpers and the sender's Release
            // store of tail.
            let h = p.head.head.load(Acquire);
            let t = p.owner.tail.load(Acquire);
            if h >= t || t - h > LANE_RING as u64 {
                return; // empty, or overwritten (see claim_from_lane)
            }
            let k = p.ring.slot[(h % LANE_RING as u64) as usize].load(Relaxed);
            if k < self.seg.layout.capacity && self.queued_at(k, j, h).is_some() {
                return;
            }
            // SYNC POINT: publishes the new head to senders' Acquire loads (their window check).
            let _ = p.head.head.compare_exchange(h, h + 1, AcqRel, Relaxed);
        }
    }
}

impl Shared {
    /// Claims free slot `k` for this participant (FREE -> WRITING by us); false if it was not free.
    pub(super) fn try_claim_free(&self, k: u32) -> bool {
        let st = &self.seg.slot(k).state;
        let cur = State(st.load(Relaxed));
        // SYNC POINT (Acquire): the previous holder's reads of the data region (its Release
        // when freeing) happen before our writes to it.
        cur.kind() == Kind::Free
            && st
                .compare_exchange(
                    cur.0,
                    cur.with_kind(Kind::Writing).with_sender(self.me).0,
                    Acquire,
                    Relaxed,
                )
                .is_ok()
    }
}
