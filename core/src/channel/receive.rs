//! Receiving: a receiver claims the message at a lane's head (READY -> READING by it, one CAS:
//! exactly-once delivery, FIFO per sender), copies or lends it, and releases it (async: FREE; ack:
//! ACKED, for its sender to collect). Redelivered messages are looked for first. A batch claims a
//! run of one lane's messages and moves the lane's head past the run once (`claim_run`).

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
        self.may_receive()?;
        let now = sys::coarse_ms();
        loop {
            let mut got = None;
            self.claim_queued(l, 1, |k, cur| {
                got = Some((k, cur));
                false
            });
            let (k, cur) = got.ok_or(EMPTY)?;
            if let Some(m) = self.admit(k, cur, now)? {
                l.received += 1;
                self.seg.participant(self.me).owner.received.store(l.received, Relaxed);
                return Ok(m);
            }
        }
    }

    /// Whether this handle may claim messages now: a participant's, and open.
    fn may_receive(&self) -> Result<(), i32> {
        if self.me == OBSERVER {
            return Err(ERR_INVALID_ARGUMENT);
        }
        if self.closed.load(Relaxed) {
            return Err(CLOSED);
        }
        Ok(())
    }

    /// What to do with a message just claimed (`cur`, READING by us) at `now`: Ok(Some) to deliver
    /// it; Ok(None) when it had expired (dropped, its sender told); ERR_INCOMPATIBLE when its
    /// length was overwritten (dropped: its bytes cannot be trusted, and copying them could read
    /// past the slot or touch a page its sender did not allocate, SIGBUS on a full /dev/shm).
    fn admit(&self, k: u32, cur: State, now: u64) -> Result<Option<Received>, i32> {
        let s = self.seg.slot(k);
        if cur.requeued() {
            Shared::uncount_redelivery(&self.seg.header().shared);
        }
        if Self::expired(s, now) {
            self.expire(k, cur);
            return Ok(None);
        }
        let Ok(len) = self.trusted_len(k) else {
            // SYNC POINT: freeing publishes the slot to the next claimer's Acquire CAS in
            // try_claim_free.
            let _ = s.state.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed);
            self.wake(Side::Send);
            return Err(ERR_INCOMPATIBLE);
        };
        Ok(Some(Received {
            slot: k,
            generation: cur.generation(),
            len,
            pid: s.pid.load(Relaxed),
            seq: s.seq.load(Relaxed),
            redelivered: cur.redelivered(),
            ack: cur.ack(),
        }))
    }

    /// Claims up to `max` queued messages: redelivered ones first, then a run from the next
    /// sender's lane that has any (senders take turns between calls). `claimed(k, cur)` takes
    /// each claim as it is made (READING by us) and says whether to go on. Returns how many were
    /// claimed.
    pub(super) fn claim_queued(
        &self,
        l: &mut Local,
        max: u32,
        mut claimed: impl FnMut(u32, State) -> bool,
    ) -> u32 {
        let shared = &self.seg.header().shared;
        let mut n = 0;
        while n < max && shared.redeliver_pending.load(Relaxed) > 0 {
            let Some((k, cur)) = self.claim_redelivered() else { break };
            n += 1;
            if !claimed(k, cur) {
                return n;
            }
        }
        if n == max {
            return n;
        }
        // SYNC POINT: pairs with join's AcqRel fetch_max, as in `sweep`.
        let lanes = shared.lanes_used.load(Acquire).min(MAX_PARTICIPANTS as u32);
        for step in 0..lanes {
            let mut j = l.recv_cursor + step;
            if j >= lanes {
                j -= lanes;
            }
            let got = self.claim_run(j, &mut l.cached_tails[j as usize], max - n, &mut claimed);
            if got > 0 {
                // Start the next search at the following lane: senders take turns.
                l.recv_cursor = if j + 1 == lanes { 0 } else { j + 1 };
                return n + got;
            }
        }
        n
    }

    /// Claims messages queued on lane `j` in order from its head, each with one CAS on its slot
    /// (READY -> READING by us: exactly-once, FIFO per sender), then moves the head past the whole
    /// run with one update instead of one per message: at most `max`, `claimed` as in
    /// `claim_queued`. Returns how many it claimed.
    ///
    /// A receiver that dies mid-run leaves the head behind messages it claimed: they are READING
    /// by it, which recovery turns back into READY (redelivered, found by `claim_redelivered`), and
    /// entries that are no longer queued are what any receiver moves the head past. So a death at
    /// any point of a run loses nothing and delivers nothing twice (fault point "recv.run").
    fn claim_run(
        &self,
        j: u32,
        cached_tail: &mut u64,
        max: u32,
        claimed: &mut impl FnMut(u32, State) -> bool,
    ) -> u32 {
        let p = self.seg.participant(j);
        // SYNC POINT: pairs with other receivers' AcqRel head updates: the entry at head is the
        // next unread one.
        let head = p.head.head.load(Acquire);
        let mut h = head;
        let mut n = 0;
        while n < max {
            if h >= *cached_tail {
                // SYNC POINT: pairs with the sender's Release store of tail: the ring entries
                // below it are visible. Tails only grow, so a cached one below the real one
                // still covers only published entries.
                *cached_tail = p.owner.tail.load(Acquire);
                if h >= *cached_tail {
                    break;
                }
            }
            if *cached_tail - h > LANE_RING as u64 {
                // Senders never publish past head + LANE_RING: this lane was overwritten. Skip
                // it rather than walk its head towards a tail that may be 2^40 away.
                break;
            }
            let k = p.ring.slot[(h % LANE_RING as u64) as usize].load(Relaxed);
            let queued = if k < self.seg.layout.capacity { self.queued_at(k, j, h) } else { None };
            let Some(cur) = queued else {
                // Message h was taken, withdrawn or expired already: the head goes past it.
                h += 1;
                continue;
            };
            let reading = cur.with_kind(Kind::Reading).with_receiver(self.me);
            // SYNC POINT (Acquire): the payload the sender published with READY.
            if self.seg.slot(k).state.compare_exchange(cur.0, reading.0, Acquire, Relaxed).is_err() {
                continue; // it changed under us: look at entry h again
            }
            fault::point("recv.claimed");
            h += 1;
            n += 1;
            if !claimed(k, reading) {
                break;
            }
            fault::point("recv.run");
        }
        if h > head {
            // Every entry in [head, h) is claimed by us or no longer queued: past them at once.
            // SYNC POINT: publishes the new head to senders (their window) and other receivers;
            // fetch_max, since helpers may have moved it past some of them already.
            p.head.head.fetch_max(h, AcqRel);
        }
        n
    }

    pub(super) fn claim_redelivered(&self) -> Option<(u32, State)> {
        for k in 0..self.seg.layout.capacity {
            let st = &self.seg.slot(k).state;
            // SYNC POINT: pairs with recovery's AcqRel CAS that made it READY again; the claim CAS
            // below is Acquire for the payload.
            let cur = State(st.load(Acquire));
            if cur.kind() == Kind::Ready && cur.requeued() {
                let reading = cur.with_kind(Kind::Reading).with_receiver(self.me);
                if st.compare_exchange(cur.0, reading.0, Acquire, Relaxed).is_ok() {
                    return Some((k, reading));
                }
            }
        }
        None
    }

    /// Receives up to `max` messages into `dst` end to end, releasing each when `auto_release`;
    /// one wake and one head update per run. `record(m, at)` is told of each message in order:
    /// `at` is where its payload starts in `dst`, or None when it did not fit what was left of
    /// `dst` (then it stays held, for `read`, and ends the batch). Returns the count, EMPTY, or
    /// the error of a damaged first message.
    pub fn recv_batch(
        &self,
        dst: &mut [u8],
        max: u32,
        auto_release: bool,
        mut record: impl FnMut(&Received, Option<u32>),
    ) -> Result<u32, i32> {
        self.may_receive()?;
        let l = &mut *self.local.borrow_mut();
        let now = sys::coarse_ms();
        let (mut at, mut n, mut released) = (0usize, 0u32, 0u64);
        let mut failed = None;
        loop {
            let mut go_on = true;
            let claimed = self.claim_queued(l, max - n, |k, cur| {
                let m = match self.admit(k, cur, now) {
                    Ok(Some(m)) => m,
                    Ok(None) => return true,
                    Err(code) => {
                        failed = Some(code);
                        go_on = false;
                        return false;
                    }
                };
                let len = m.len as usize;
                let fits = dst.len() - at >= len;
                if fits {
                    // SAFETY: we hold slot k (READING by us, just claimed), so its sender will
                    // not write it until we release; its payload lies where `payload_ptr`
                    // says for `len` bytes (trusted by `admit`), and dst has room for them.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            self.payload_ptr(k, len),
                            dst[at..at + len].as_mut_ptr(),
                            len,
                        )
                    };
                    if auto_release && self.release_held(k, cur) == OK {
                        released += 1;
                    }
                }
                record(&m, fits.then_some(at as u32));
                n += 1;
                at += if fits { len } else { 0 };
                go_on = fits;
                fits
            });
            if claimed == 0 || !go_on || n == max {
                break;
            }
        }
        if n > 0 || released > 0 {
            l.received += u64::from(n);
            l.released += released;
            let owner = &self.seg.participant(self.me).owner;
            owner.received.store(l.received, Relaxed);
            owner.released.store(l.released, Relaxed);
        }
        if released > 0 {
            self.wake(Side::Send);
        }
        match (n, failed) {
            (0, Some(code)) => Err(code),
            (0, None) => Err(EMPTY),
            _ => Ok(n),
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
        self.finish_in(l, k, g, Kind::Acked)
    }

    /// `release_in` with the outcome an ack sender collects: ACKED, or a failure (`reject`).
    pub(super) fn finish_in(&self, l: &mut Local, k: u32, g: u32, ack_outcome: Kind) -> i32 {
        if k >= self.seg.layout.capacity {
            return ERR_INVALID_ARGUMENT;
        }
        // SYNC POINT: Acquire: our claim's word (and any ACK change its sender made since).
        let cur = State(self.seg.slot(k).state.load(Acquire));
        if !self.holds(cur, g) {
            return ERR_NOT_HELD;
        }
        let r = self.finish_held(k, cur, ack_outcome);
        if r == OK {
            l.released += 1;
            self.seg.participant(self.me).owner.released.store(l.released, Relaxed);
        }
        r
    }

    /// Whether `cur` is a message this handle holds, of generation `g`.
    fn holds(&self, cur: State, g: u32) -> bool {
        cur.kind() == Kind::Reading && cur.receiver() == self.me && cur.generation() == g
    }

    /// Releases slot `k`, which this handle holds as `cur`: an async message's slot is freed, an
    /// ack message becomes ACKED for its sender to collect.
    ///
    /// Nobody else changes an async READING word while its holder lives (recovery acts only for
    /// a dead or closing holder, `ack_cancel` and a dead sender's recovery only clear ACK, expiry
    /// only drops READY), so an async release is one store, not a CAS; an ack release is a CAS,
    /// retried when the sender cleared ACK meanwhile (it stopped waiting: then it is async).
    pub(super) fn release_held(&self, k: u32, cur: State) -> i32 {
        self.finish_held(k, cur, Kind::Acked)
    }

    /// `release_held` with the outcome an ack sender collects: ACKED, or a failure (`reject`).
    fn finish_held(&self, k: u32, mut cur: State, ack_outcome: Kind) -> i32 {
        let st = &self.seg.slot(k).state;
        loop {
            fault::point("release.before");
            if !cur.ack() {
                // SYNC POINT (Release): our reads of the payload happen before the slot is reused
                // (the next claimer's Acquire CAS in try_claim_free).
                st.store(cur.freed().0, Release);
                return OK;
            }
            // SYNC POINT (Release): as above, for the sender's Acquire load of the outcome.
            match st.compare_exchange(cur.0, cur.with_kind(ack_outcome).0, Release, Relaxed) {
                Ok(_) => return OK,
                Err(now) if self.holds(State(now), cur.generation()) => cur = State(now),
                Err(_) => return ERR_NOT_HELD,
            }
        }
    }
}
