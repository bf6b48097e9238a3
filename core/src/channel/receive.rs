//! Receiving: a receiver claims the message at a lane's head (READY -> READING by it, one CAS:
//! exactly-once delivery, FIFO per sender), copies or lends it, and releases it (async: FREE; ack:
//! ACKED, for its sender to collect). Redelivered messages are looked for first.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::{Handle, Local, Received, Shared, Side, OBSERVER};
use crate::fault;
use crate::layout::*;
use crate::state::*;
use crate::status::*;
use crate::sys;

impl Handle {
    /// Claims the next message (READY -> READING by us), dropping expired ones on the way.
    pub fn claim(&self) -> Result<Received, i32> {
        self.claim_in(&mut self.local.borrow_mut())
    }

    pub(super) fn claim_in(&self, l: &mut Local) -> Result<Received, i32> {
        if self.me == OBSERVER {
            return Err(ERR_INVALID_ARGUMENT);
        }
        if self.closed.load(Relaxed) {
            return Err(CLOSED);
        }
        loop {
            let (k, cur) = self.claim_next(l).ok_or(EMPTY)?;
            let s = self.seg.slot(k);
            if cur.redelivered() {
                Shared::uncount_redelivery(&self.seg.header().shared);
            }
            if Self::expired(s, sys::coarse_ms()) {
                self.expire(k, cur);
                continue;
            }
            let Ok(len) = self.trusted_len(k) else {
                // An overwritten length: drop the message (its bytes cannot be trusted) and say
                // the segment is damaged, rather than copy past the slot or touch a page its
                // sender did not allocate (a hole, which on a full /dev/shm would be SIGBUS).
                // SYNC POINT: freeing publishes the slot to the next claimer's Acquire CAS in
                // try_claim_free.
                let _ = self.seg.slot(k).state.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed);
                self.wake(Side::Send);
                return Err(ERR_INCOMPATIBLE);
            };
            l.received += 1;
            self.seg.participant(self.me).owner.received.store(l.received, Relaxed);
            return Ok(Received {
                slot: k,
                generation: cur.generation(),
                len,
                pid: s.pid.load(Relaxed),
                seq: s.seq.load(Relaxed),
                redelivered: cur.redelivered(),
                ack: cur.ack(),
            });
        }
    }

    pub(super) fn claim_next(&self, l: &mut Local) -> Option<(u32, State)> {
        let shared = &self.seg.header().shared;
        if shared.redeliver_pending.load(Relaxed) > 0 {
            if let Some(x) = self.claim_redelivered() {
                return Some(x);
            }
        }
        // SYNC POINT: pairs with join's AcqRel fetch_max, as in `sweep`.
        let lanes = shared.lanes_used.load(Acquire).min(MAX_PARTICIPANTS as u32);
        for step in 0..lanes {
            let mut j = l.recv_cursor + step;
            if j >= lanes {
                j -= lanes;
            }
            if let Some(x) = self.claim_from_lane(j, &mut l.cached_tails[j as usize]) {
                // Start the next search at the following lane: senders take turns.
                l.recv_cursor = (j + 1) % lanes;
                return Some(x);
            }
        }
        None
    }

    pub(super) fn claim_from_lane(&self, j: u32, cached_tail: &mut u64) -> Option<(u32, State)> {
        let p = self.seg.participant(j);
        loop {
            // SYNC POINT: pairs with other receivers' AcqRel head CAS: the entry at head is the
            // next unread one.
            let h = p.head.head.load(Acquire);
            if h >= *cached_tail {
                // SYNC POINT: pairs with the sender's Release store of tail: the ring entries
                // below it are visible. Tails only grow, so a cached one below the real one
                // still covers only published entries.
                *cached_tail = p.owner.tail.load(Acquire);
                if h >= *cached_tail {
                    return None;
                }
            }
            if *cached_tail - h > LANE_RING as u64 {
                // Senders never publish past head + LANE_RING: this lane was overwritten. Skip
                // it rather than walk its head towards a tail that may be 2^40 away.
                return None;
            }
            let k = p.ring.slot[(h % LANE_RING as u64) as usize].load(Relaxed);
            if k < self.seg.layout.capacity {
                if let Some(cur) = self.queued_at(k, j, h) {
                    let reading = cur.with_kind(Kind::Reading).with_receiver(self.me);
                    // SYNC POINT (Acquire): the payload the sender published with READY.
                    if self.seg.slot(k).state.compare_exchange(cur.0, reading.0, Acquire, Relaxed).is_ok() {
                        fault::point("recv.claimed");
                        let _ = p.head.head.compare_exchange(h, h + 1, AcqRel, Relaxed);
                        return Some((k, reading));
                    }
                    continue;
                }
            }
            // Message h was taken, withdrawn or expired already: help the head past it.
            // SYNC POINT: publishes the new head to senders (their window) and other receivers.
            let _ = p.head.head.compare_exchange(h, h + 1, AcqRel, Relaxed);
        }
    }

    pub(super) fn claim_redelivered(&self) -> Option<(u32, State)> {
        for k in 0..self.seg.layout.capacity {
            let st = &self.seg.slot(k).state;
            // SYNC POINT: pairs with recovery's AcqRel CAS that made it READY again; the claim CAS
            // below is Acquire for the payload.
            let cur = State(st.load(Acquire));
            if cur.kind() == Kind::Ready && cur.redelivered() {
                let reading = cur.with_kind(Kind::Reading).with_receiver(self.me);
                if st.compare_exchange(cur.0, reading.0, Acquire, Relaxed).is_ok() {
                    return Some((k, reading));
                }
            }
        }
        None
    }

    /// Receives up to `max` messages into `dst` end to end, releasing each when `auto_release`;
    /// one wake for the batch. `record(m, at)` is told of each message in order: `at` is where its
    /// payload starts in `dst`, or None when it did not fit what was left of `dst` (then it stays
    /// held, for `read`, and ends the batch). Returns the count, or EMPTY.
    pub fn recv_batch(
        &self,
        dst: &mut [u8],
        max: u32,
        auto_release: bool,
        mut record: impl FnMut(&Received, Option<u32>),
    ) -> Result<u32, i32> {
        let l = &mut *self.local.borrow_mut();
        let mut at = 0usize;
        let mut n = 0u32;
        let mut released_any = false;
        while n < max {
            let m = match self.claim_in(l) {
                Ok(m) => m,
                Err(EMPTY) => break,
                Err(code) if n == 0 => return Err(code),
                Err(_) => break,
            };
            let len = m.len as usize;
            let fits = dst.len() - at >= len;
            if fits {
                self.read(m.slot, m.generation, &mut dst[at..at + len])?;
                if auto_release && self.release_in(l, m.slot, m.generation) == OK {
                    released_any = true;
                }
            }
            record(&m, fits.then_some(at as u32));
            n += 1;
            if !fits {
                break;
            }
            at += len;
        }
        if released_any {
            self.wake(Side::Send);
        }
        if n == 0 {
            Err(EMPTY)
        } else {
            Ok(n)
        }
    }

    /// Slot `k`'s message length if it can be trusted: within `maxMessageSize`, and within the
    /// pages its sender allocated when it is not inline. Anything else was overwritten: copying it
    /// would read past the slot or touch a page hole (SIGBUS on a full /dev/shm). The one check
    /// for a claim and for every read of what was claimed.
    pub(crate) fn trusted_len(&self, k: u32) -> Result<u32, i32> {
        let len = self.seg.slot(k).len.load(Relaxed);
        if len > self.seg.layout.max_message
            || (len as usize > INLINE_BYTES && u64::from(len) > self.allocated(k))
        {
            return Err(ERR_INCOMPATIBLE);
        }
        Ok(len)
    }

    /// The length of the message in slot `k` if this handle holds it (generation `g`), loaded
    /// again and checked (`trusted_len`): a same-user process may write it any time.
    fn held_len(&self, k: u32, g: u32) -> Result<u32, i32> {
        if k >= self.seg.layout.capacity {
            return Err(ERR_INVALID_ARGUMENT);
        }
        // SYNC POINT: Acquire: our claim (READING by us) was itself an Acquire CAS; re-checked
        // before anyone copies the payload.
        let cur = State(self.seg.slot(k).state.load(Acquire));
        if cur.kind() != Kind::Reading || cur.receiver() != self.me || cur.generation() != g {
            return Err(ERR_NOT_HELD);
        }
        self.trusted_len(k)
    }

    /// Where a message this handle holds lies: its offset from the mapping's start and its
    /// length, for a copy made outside the core (the binding's `copyOut`). The bytes stay put
    /// until we release the message.
    pub fn held_at(&self, k: u32, g: u32) -> Result<(u64, u32), i32> {
        let len = self.held_len(k, g)?;
        Ok((self.payload_offset(k, len as usize), len))
    }

    /// Copies a message this handle holds into `dst` (which must be large enough).
    pub fn read(&self, k: u32, g: u32, dst: &mut [u8]) -> Result<u32, i32> {
        let len = self.held_len(k, g)?;
        if len as usize > dst.len() {
            return Err(NEED_BUFFER);
        }
        // SAFETY: we hold slot k (READING by us), so its sender will not write it until we
        // release; the payload lies where `payload_ptr` says for its length, and dst holds len
        // bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.payload_ptr(k, len as usize), dst.as_mut_ptr(), len as usize)
        };
        Ok(len)
    }

    /// Releases a message this handle holds: async ones free their slot, ack ones report ACKED to
    /// their sender.
    pub fn release(&self, k: u32, g: u32) -> i32 {
        let r = self.release_quietly(k, g);
        if r == OK {
            self.wake(Side::Send);
        }
        r
    }

    /// `release` without waking sleepers: a batch wakes once.
    pub fn release_quietly(&self, k: u32, g: u32) -> i32 {
        self.release_in(&mut self.local.borrow_mut(), k, g)
    }

    pub(super) fn release_in(&self, l: &mut Local, k: u32, g: u32) -> i32 {
        if k >= self.seg.layout.capacity {
            return ERR_INVALID_ARGUMENT;
        }
        let st = &self.seg.slot(k).state;
        loop {
            let cur = State(st.load(Acquire));
            if cur.kind() != Kind::Reading || cur.receiver() != self.me || cur.generation() != g {
                return ERR_NOT_HELD;
            }
            let next = if cur.ack() { cur.with_kind(Kind::Acked) } else { cur.freed() };
            fault::point("release.before");
            // SYNC POINT (Release): our reads of the payload happen before the slot is reused.
            if st.compare_exchange(cur.0, next.0, Release, Relaxed).is_ok() {
                l.released += 1;
                self.seg.participant(self.me).owner.released.store(l.released, Relaxed);
                return OK;
            }
            // The sender cleared ACK (it stopped waiting): retry with the new word.
        }
    }
}
