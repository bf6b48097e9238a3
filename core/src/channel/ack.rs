//! Ack-mode outcomes: the sender of an ack-mode message learns whether a receiver released it
//! (ACKED), died holding it (PEER_DIED), let it expire (EXPIRED) or rejected it (REJECTED), and
//! frees the slot; or it gives up waiting (`ack_cancel`). A receiver ends a held message with
//! `reject` instead of `release` to fail its sender's wait: REJECTED, or, for a forwarder such as
//! the NATS bridge, the PEER_DIED or EXPIRED that a receiver elsewhere met.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use super::{Handle, Local, Shared, Side};
use crate::fault;
use crate::layout::LANE_RING;
use crate::state::*;
use crate::status::*;
use crate::sys;

impl Handle {
    /// The outcome of an ack-mode message: PENDING, or a final status after which the slot is
    /// freed and forgotten.
    pub fn ack_status(&self, k: u32, g: u32) -> i32 {
        self.ack_status_in(&mut self.local.borrow_mut(), k, g)
    }

    pub(super) fn ack_status_in(&self, l: &mut Local, k: u32, g: u32) -> i32 {
        if k >= self.seg.layout.capacity {
            return ERR_INVALID_ARGUMENT;
        }
        let s = self.seg.slot(k);
        loop {
            // SYNC POINT: pairs with the receiver's Release in `release_in` (ACKED) or `reject`
            // (REJECTED, or a relayed PEER_DIED/EXPIRED), or recovery's AcqRel CAS (PEER_DIED).
            let cur = State(s.state.load(Acquire));
            if cur.generation() != g || cur.sender() != self.me {
                Self::forget_inflight(l, k, g);
                return ERR_NOT_HELD;
            }
            let outcome = match cur.kind() {
                Kind::Acked => OK,
                Kind::PeerDied => PEER_DIED,
                Kind::Expired => EXPIRED,
                Kind::Rejected => REJECTED,
                Kind::Ready if Self::expired(s, sys::coarse_ms()) => EXPIRED,
                Kind::Ready | Kind::Reading => return PENDING,
                Kind::Free | Kind::Writing => {
                    Self::forget_inflight(l, k, g);
                    return ERR_NOT_HELD;
                }
            };
            fault::point("ack.collect");
            // SYNC POINT: AcqRel: freeing publishes the slot to the next claimer's Acquire CAS in
            // try_claim_free.
            if s.state.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed).is_ok() {
                if cur.kind() == Kind::Ready {
                    let shared = &self.seg.header().shared;
                    shared.expired.fetch_add(1, Relaxed);
                    if cur.requeued() {
                        Shared::uncount_redelivery(shared); // a closed receiver handed it back
                    }
                }
                Self::forget_inflight(l, k, g);
                self.wake(Side::Send);
                return outcome;
            }
        }
    }

    /// Gives up waiting for an ack: a message still queued is withdrawn (never delivered), one a
    /// receiver holds continues as an async message. Returns TIMEOUT, or the outcome that came
    /// in first.
    pub fn ack_cancel(&self, k: u32, g: u32) -> i32 {
        if k >= self.seg.layout.capacity {
            return ERR_INVALID_ARGUMENT;
        }
        let l = &mut *self.local.borrow_mut();
        let s = self.seg.slot(k);
        loop {
            // SYNC POINT: as in `ack_status`.
            let cur = State(s.state.load(Acquire));
            if cur.generation() != g || cur.sender() != self.me {
                return ERR_NOT_HELD;
            }
            let next = match cur.kind() {
                Kind::Ready => cur.freed(),
                Kind::Reading if cur.ack() => cur.with_flag(FLAG_ACK, false),
                Kind::Reading => return TIMEOUT,
                _ => return self.ack_status_in(l, k, g),
            };
            // SYNC POINT: AcqRel: a withdrawn slot is FREE for the next claimer; a cleared ACK
            // tells the holder's release.
            if s.state.compare_exchange(cur.0, next.0, AcqRel, Relaxed).is_ok() {
                if cur.kind() == Kind::Ready {
                    if cur.requeued() {
                        // Withdrawn after a closed receiver handed it back: take its count out.
                        Shared::uncount_redelivery(&self.seg.header().shared);
                    }
                    Self::forget_inflight(l, k, g);
                    self.wake(Side::Send);
                }
                return TIMEOUT;
            }
        }
    }

    /// Ends a message this handle holds with a failure for its ack-mode sender: `outcome` is
    /// REJECTED, PEER_DIED or EXPIRED, and the sender's wait returns it. A message nobody waits for
    /// (async, or an ack sender that gave up) is freed, as `release` would. The slot is finished
    /// either way, so it counts as released in this receiver's counters.
    pub fn reject(&self, k: u32, g: u32, outcome: i32) -> i32 {
        let kind = match outcome {
            REJECTED => Kind::Rejected,
            PEER_DIED => Kind::PeerDied,
            EXPIRED => Kind::Expired,
            _ => return ERR_INVALID_ARGUMENT,
        };
        let r = self.finish_in(&mut self.local.borrow_mut(), k, g, kind);
        if r == OK {
            self.wake(Side::Send);
        }
        r
    }

    pub(super) fn forget_inflight(l: &mut Local, k: u32, g: u32) {
        if let Some(pos) = l.inflight.iter().position(|&e| e == (k, g)) {
            l.inflight.remove(pos); // keeps send order, which `reap` relies on
        }
        if l.spare.len() < LANE_RING {
            l.spare.push(k);
        }
    }
}
