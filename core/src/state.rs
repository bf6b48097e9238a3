//! The slot state word: one u64 that says what a slot holds and who owns it, so that every
//! transition is a single atomic step (a CAS; a store where only the word's owner can change it,
//! as in an async release) and a crash leaves a state that names the dead participant.
//!
//! ```text
//! bits  0..3   kind: FREE, WRITING, READY, READING, ACKED, PEER_DIED, EXPIRED, REJECTED
//! bit   4      ACK: the sender waits for the outcome (ack mode)
//! bit   5      REDELIVERED: a receiver died holding it and it was queued again (recovery sets it;
//!              receivers find such a message by a scan, counted in `redeliver_pending`)
//! bit   6      REPEAT: its sender marked it as a possible repeat of one sent before (a relay, a
//!              retry after an unknown outcome); set with READY, kept until the slot is freed
//! bits  8..16  sender participant index
//! bits 16..24  receiver participant index (meaningful in READING)
//! bits 32..64  generation: bumped on every return to FREE, so a stale CAS never succeeds
//! ```
//!
//! Transitions: FREE -> WRITING (sender claims) -> READY (published) -> READING (receiver claims)
//! -> FREE (async release) or ACKED (ack release) -> FREE (the sender collects the outcome).
//! PEER_DIED, EXPIRED and REJECTED are outcomes handed back to an ack sender, which frees them
//! (REJECTED, or PEER_DIED/EXPIRED relayed from afar, by a receiver's `reject`: ack.rs).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Free = 0,
    Writing = 1,
    Ready = 2,
    Reading = 3,
    Acked = 4,
    PeerDied = 5,
    Expired = 6,
    Rejected = 7,
}

pub const FLAG_ACK: u64 = 1 << 4;
pub const FLAG_REDELIVERED: u64 = 1 << 5;
/// Set by the sender, never by recovery: a message queued in its lane like any other, so it is no
/// business of `claim_redelivered` or the `redeliver_pending` hint; receivers are told only.
pub const FLAG_REPEAT: u64 = 1 << 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State(pub u64);

impl State {
    pub fn kind(self) -> Kind {
        match self.0 & 0xf {
            0 => Kind::Free,
            1 => Kind::Writing,
            2 => Kind::Ready,
            3 => Kind::Reading,
            4 => Kind::Acked,
            5 => Kind::PeerDied,
            7 => Kind::Rejected,
            // 6 and anything a corrupt word might hold: treat as an outcome the sender frees.
            _ => Kind::Expired,
        }
    }
    pub fn ack(self) -> bool {
        self.0 & FLAG_ACK != 0
    }
    /// Queued again by recovery (FLAG_REDELIVERED): found by `claim_redelivered`'s scan and
    /// counted in the `redeliver_pending` hint.
    pub fn requeued(self) -> bool {
        self.0 & FLAG_REDELIVERED != 0
    }
    /// What a receiver is told as `redelivered`: queued again by recovery, or marked a possible
    /// repeat by its sender.
    pub fn redelivered(self) -> bool {
        self.0 & (FLAG_REDELIVERED | FLAG_REPEAT) != 0
    }
    pub fn sender(self) -> u32 {
        ((self.0 >> 8) & 0xff) as u32
    }
    pub fn receiver(self) -> u32 {
        ((self.0 >> 16) & 0xff) as u32
    }
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// FREE with the next generation: what every return to FREE stores.
    pub fn freed(self) -> State {
        State(u64::from(self.generation().wrapping_add(1)) << 32)
    }
    /// The same generation, a new kind, sender kept.
    pub fn with_kind(self, kind: Kind) -> State {
        State((self.0 & !0xf) | kind as u64)
    }
    pub fn with_sender(self, sender: u32) -> State {
        State((self.0 & !(0xff << 8)) | (u64::from(sender & 0xff) << 8))
    }
    pub fn with_receiver(self, receiver: u32) -> State {
        State((self.0 & !(0xff << 16)) | (u64::from(receiver & 0xff) << 16))
    }
    pub fn with_flag(self, flag: u64, on: bool) -> State {
        State(if on { self.0 | flag } else { self.0 & !flag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_freeing_bumps_the_generation() {
        let s = State(7u64 << 32).with_kind(Kind::Writing).with_sender(63).with_flag(FLAG_ACK, true);
        assert_eq!(s.kind(), Kind::Writing);
        assert_eq!(s.sender(), 63);
        assert!(s.ack());
        let r = s.with_kind(Kind::Reading).with_receiver(5);
        assert_eq!((r.kind(), r.sender(), r.receiver(), r.generation()), (Kind::Reading, 63, 5, 7));
        let f = r.freed();
        assert_eq!((f.kind(), f.generation(), f.ack(), f.sender()), (Kind::Free, 8, false, 0));
        assert_eq!(State(u64::MAX << 32).freed().generation(), 0);
    }

    #[test]
    fn receivers_are_told_of_either_mark_and_only_recovery_s_is_found_by_scan() {
        let ready = State(3u64 << 32).with_kind(Kind::Ready);
        let repeat = ready.with_flag(FLAG_REPEAT, true);
        assert_eq!((repeat.redelivered(), repeat.requeued()), (true, false));
        let requeued =
            repeat.with_kind(Kind::Reading).with_kind(Kind::Ready).with_flag(FLAG_REDELIVERED, true);
        assert_eq!((requeued.redelivered(), requeued.requeued()), (true, true));
        assert!(!ready.redelivered());
        assert!(!requeued.freed().redelivered(), "a freed slot forgets both marks");
    }
}
