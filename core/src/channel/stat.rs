//! Introspection: a snapshot of a channel's counters and participants, for `stat` and `list`.
//! Read-only and racy by nature: each number is exact when read, not all at one instant.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::Shared;
use crate::layout::*;
use crate::segment::participant_lock_byte;
use crate::state::*;
use crate::sys;

/// What `stat` reports about a channel. Counters are cumulative over the channel's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStat {
    pub capacity: u32,
    pub max_message: u32,
    /// Bytes of the segment (its file size; sparse: see `reserved`).
    pub total_size: u64,
    /// Bytes allocated in /dev/shm now: the part allocated at creation (header, participants, slot
    /// lines) and the pages the slots reserved for payloads.
    pub reserved: u64,
    /// The bound on the slots' pages (the `memory` option, as recorded at creation).
    pub memory: u64,
    /// Messages queued (READY).
    pub depth: u64,
    /// Messages a receiver holds (READING), or released in ack mode and not yet collected (ACKED).
    pub in_flight: u64,
    pub sent: u64,
    pub received: u64,
    pub released: u64,
    pub expired: u64,
    /// Sends that gave up on a full channel.
    pub full: u64,
    pub redelivered: u64,
    pub created_unix_ms: u64,
    /// Open handles (active participants).
    pub participants: u64,
    /// Bytes of the segment resident in memory now.
    pub resident: u64,
}

/// One active participant, as `participants` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub pid: u32,
    /// Its lock is held (by it: it has not died), or it is the asking handle.
    pub alive: bool,
    /// Slots it sent that are not yet free.
    pub in_flight: u32,
    pub has_sent: bool,
    pub has_received: bool,
}

impl Shared {
    /// A snapshot of the channel's sizes and counters.
    pub fn stat(&self) -> ChannelStat {
        let h = self.seg.header();
        let mut depth = 0;
        let mut in_flight = 0;
        for k in 0..self.seg.layout.capacity {
            // SYNC POINT: an observer's snapshot: Acquire so counters read next are no older than
            // the states.
            match State(self.seg.slot(k).state.load(Acquire)).kind() {
                Kind::Ready => depth += 1,
                Kind::Reading | Kind::Acked => in_flight += 1,
                _ => {}
            }
        }
        let (mut sent, mut received, mut released, mut full, mut active) = (0, 0, 0, 0, 0);
        for i in 0..MAX_PARTICIPANTS as u32 {
            let o = &self.seg.participant(i).owner;
            sent += o.sent.load(Relaxed);
            received += o.received.load(Relaxed);
            released += o.released.load(Relaxed);
            full += o.full.load(Relaxed);
            active += u64::from(o.state.load(Relaxed) == PARTICIPANT_ACTIVE);
        }
        ChannelStat {
            capacity: self.seg.layout.capacity,
            max_message: self.seg.layout.max_message,
            total_size: self.seg.layout.total_size,
            reserved: self.seg.layout.data_off + self.reserved_sum(),
            memory: self.seg.layout.memory,
            depth,
            in_flight,
            sent,
            received,
            released,
            expired: h.shared.expired.load(Relaxed),
            full,
            redelivered: h.shared.redelivered.load(Relaxed),
            created_unix_ms: h.fixed.created_unix_ms.load(Relaxed),
            participants: active,
            resident: sys::resident_bytes(self.seg.map.base, self.seg.map.len),
        }
    }

    /// The active participants, by index.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        let mut in_flight = [0u32; MAX_PARTICIPANTS];
        for k in 0..self.seg.layout.capacity {
            // SYNC POINT: an observer's snapshot, as in `stat`.
            let cur = State(self.seg.slot(k).state.load(Acquire));
            if cur.kind() != Kind::Free {
                in_flight[cur.sender() as usize % MAX_PARTICIPANTS] += 1;
            }
        }
        (0..MAX_PARTICIPANTS as u32)
            .filter(|&i| self.seg.participant(i).owner.state.load(Acquire) == PARTICIPANT_ACTIVE)
            .map(|i| {
                let o = &self.seg.participant(i).owner;
                let alive = i == self.me || sys::byte_locked_by_other(&self.seg.fd, participant_lock_byte(i));
                ParticipantInfo {
                    pid: o.pid.load(Relaxed),
                    alive,
                    in_flight: in_flight[i as usize],
                    has_sent: o.sent.load(Relaxed) > 0,
                    has_received: o.received.load(Relaxed) > 0,
                }
            })
            .collect()
    }
}
