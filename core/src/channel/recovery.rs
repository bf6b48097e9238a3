//! Recovery: whatever a participant that died (or closed) left in the shared states is undone by
//! whoever holds its lock, and expired messages are dropped. A participant is alive while it holds
//! the OFD lock on its byte; whoever finds it dead takes that lock itself, which makes it the only
//! one undoing the dead one's states.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::{Handle, Leaving, Shared, Side};
use crate::fault;
use crate::layout::*;
use crate::segment::participant_lock_byte;
use crate::state::*;
use crate::sys;

/// At most one liveness sweep per this many ms across all processes of a channel.
const SWEEP_EVERY_MS: u64 = 20;

impl Shared {
    /// Sweeps at most once per SWEEP_EVERY_MS across the channel's processes. The same turn gives
    /// back pages no send needed lately (`trim_idle`): an idle channel's participants are parked
    /// in waits that call this, while nobody sends.
    pub fn maybe_sweep(&self) -> u32 {
        let shared = &self.seg.header().shared;
        let now = sys::coarse_ms();
        let last = shared.last_sweep_ms.load(Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY_MS
            || shared.last_sweep_ms.compare_exchange(last, now, Relaxed, Relaxed).is_err()
        {
            return 0;
        }
        let recovered = self.sweep();
        self.trim_idle();
        recovered
    }

    /// Recovers every participant whose lock nobody holds. Returns how many it recovered.
    /// Observers may sweep too: recovery needs only the dead one's lock, not a seat of its own.
    pub fn sweep(&self) -> u32 {
        let _g = self.recovery.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Relaxed) {
            return 0;
        }
        // SYNC POINT: pairs with join's AcqRel fetch_max: every lane below it has an initialised
        // owner line.
        let lanes = self.seg.header().shared.lanes_used.load(Acquire).min(MAX_PARTICIPANTS as u32);
        let mut recovered = 0;
        for i in 0..lanes {
            let p = self.seg.participant(i);
            // SYNC POINT: pairs with join's Release store of ACTIVE: its pid and epoch are visible.
            if i == self.me || p.owner.state.load(Acquire) != PARTICIPANT_ACTIVE {
                continue;
            }
            if !matches!(sys::try_lock_byte(&self.seg.fd, participant_lock_byte(i)), Ok(true)) {
                continue;
            }
            // Holding its lock, we are the only one who can act for participant i.
            if p.owner.state.load(Acquire) == PARTICIPANT_ACTIVE {
                self.recover_locked(i, Leaving::Died);
                // SYNC POINT: our slot resets above happen before anyone sees EMPTY (and stops
                // treating `i` as recoverable).
                p.owner.state.store(PARTICIPANT_EMPTY, Release);
                recovered += 1;
            }
            sys::unlock_byte(&self.seg.fd, participant_lock_byte(i));
        }
        if recovered > 0 {
            // What the dead left half charged was settled: the hint is worth recomputing.
            self.refresh_reserved_hint();
            self.wake(Side::Recv);
            self.wake(Side::Send);
        }
        recovered
    }

    /// Undoes every state participant `i` left. The caller holds `i`'s lock (it is us closing,
    /// or `i` is dead), so no state naming `i` can appear while this runs. How `i` left decides
    /// only the fate of an ack-mode message it held: a death may have half-processed it, so its
    /// sender learns PEER_DIED; a close hands it back, and its sender keeps waiting.
    pub(super) fn recover_locked(&self, i: u32, how: Leaving) {
        let p = self.seg.participant(i);
        let shared = &self.seg.header().shared;
        // A sender that died between marking a slot READY and advancing its tail: publish it.
        loop {
            // SYNC POINT: pairs with the sender's Release store of tail: ring entries below it are
            // visible.
            let t = p.owner.tail.load(Acquire);
            let k = p.ring.slot[(t % LANE_RING as u64) as usize].load(Relaxed);
            if k >= self.seg.layout.capacity || self.queued_at(k, i, t).is_none() {
                break;
            }
            // SYNC POINT: publishes the recovered tail (and the READY slot behind it) to receivers'
            // Acquire loads.
            let _ = p.owner.tail.compare_exchange(t, t + 1, AcqRel, Relaxed);
        }
        for k in 0..self.seg.layout.capacity {
            fault::point("recover.slot");
            let st = &self.seg.slot(k).state;
            loop {
                // SYNC POINT: Acquire sees the dead holder's last published state; the AcqRel CAS
                // below publishes the reset.
                let cur = State(st.load(Acquire));
                let as_sender = cur.sender() == i;
                let next = match cur.kind() {
                    // Never published: nothing torn is ever seen.
                    Kind::Writing if as_sender => cur.freed(),
                    // Outcomes nobody will collect.
                    Kind::Acked | Kind::PeerDied | Kind::Expired | Kind::Rejected if as_sender => cur.freed(),
                    // Nobody waits for this outcome any more: deliver it as an async message.
                    Kind::Ready | Kind::Reading if as_sender && cur.ack() => cur.with_flag(FLAG_ACK, false),
                    Kind::Reading if cur.receiver() == i && cur.ack() && how == Leaving::Died => {
                        cur.with_kind(Kind::PeerDied).with_receiver(0)
                    }
                    // Async, or ack from a clean close (ACK kept: its sender still waits).
                    Kind::Reading if cur.receiver() == i => {
                        cur.with_kind(Kind::Ready).with_receiver(0).with_flag(FLAG_REDELIVERED, true)
                    }
                    _ => break,
                };
                // Count a redelivery before it becomes visible: a receiver that claims it at once
                // finds the count to take it from, and a crash here leaves the hint high (a
                // wasted scan), never low (an unreachable message).
                if cur.kind() == Kind::Writing {
                    // Before it is freed, while nobody else can own it: undo a half-done growth or
                    // shrink of its pages (alloc.rs).
                    self.settle(k);
                }
                let redelivery = next.kind() == Kind::Ready && cur.kind() == Kind::Reading;
                if redelivery {
                    // SYNC POINT: counted before the CAS makes the message visible (AcqRel keeps
                    // that order).
                    shared.redeliver_pending.fetch_add(1, AcqRel);
                }
                if st.compare_exchange(cur.0, next.0, AcqRel, Relaxed).is_ok() {
                    if redelivery {
                        shared.redelivered.fetch_add(1, Relaxed);
                    }
                } else if redelivery {
                    Shared::uncount_redelivery(shared);
                }
            }
        }
        let h = self.seg.header();
        h.recv_wait.forget(i);
        h.send_wait.forget(i);
    }
}

impl Handle {
    /// Frees expired queued messages and sweeps dead participants; true when anything was freed.
    pub(super) fn reclaim(&self) -> bool {
        let now = sys::coarse_ms();
        let mut freed = false;
        for k in 0..self.seg.layout.capacity {
            let s = self.seg.slot(k);
            // SYNC POINT: pairs with the sender's Release store of READY (its deadline is
            // visible); expire's AcqRel CAS then publishes the drop.
            let cur = State(s.state.load(Acquire));
            if cur.kind() == Kind::Ready && Self::expired(s, now) && self.expire(k, cur) {
                freed = true;
            }
        }
        self.maybe_sweep() > 0 || freed
    }

    pub(super) fn expired(s: &Slot, now: u64) -> bool {
        let d = s.deadline_ms.load(Relaxed);
        d != 0 && now > d
    }

    /// Drops an expired message that is READY or that we just claimed: async messages are
    /// freed, ack messages go back to their sender as EXPIRED.
    pub(super) fn expire(&self, k: u32, mut cur: State) -> bool {
        let st = &self.seg.slot(k).state;
        loop {
            let next = if cur.ack() { cur.with_kind(Kind::Expired) } else { cur.freed() };
            match st.compare_exchange(cur.0, next.0, AcqRel, Relaxed) {
                Ok(_) => break,
                // Only a flag changed (the sender stopped waiting, or was recovered): the same
                // message with the same holder, so expire it as it is now.
                Err(now) if Self::same_message(State(now), cur) => cur = State(now),
                Err(_) => return false,
            }
        }
        let shared = &self.seg.header().shared;
        if cur.kind() == Kind::Ready && cur.requeued() {
            Shared::uncount_redelivery(shared);
        }
        shared.expired.fetch_add(1, Relaxed);
        self.wake(Side::Send);
        true
    }

    pub(super) fn same_message(a: State, b: State) -> bool {
        a.kind() == b.kind() && a.generation() == b.generation() && a.receiver() == b.receiver()
    }
}
