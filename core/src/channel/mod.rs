//! One open channel handle: a participant that sends (`send`), receives (`receive`), collects
//! ack-mode outcomes (`ack`), waits (`crate::wait`), recovers what others left (`recovery`) and
//! reports (`stat`). This file holds the handle itself: its two parts, opening and closing.
//!
//! Senders take a FREE slot from the pool (capacity), write it, and publish it on their own lane:
//! a ring of 32 slot indices with a `tail` only the sender writes and a `head` any receiver may
//! advance. Receivers claim the message at a lane's head with one CAS on the slot's state word,
//! which is what makes delivery exactly-once and FIFO per sender. Nothing is ordered across
//! senders, so no shared ticket exists whose holder could die and block everyone.

mod ack;
mod alloc;
mod receive;
mod recovery;
mod send;
mod stat;

pub use alloc::{ALLOC_LOCK_BYTE, LOW_WATER};
pub use stat::{ChannelStat, ParticipantInfo};

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};

use crate::fault;
use crate::layout::*;
use crate::segment::{self, participant_lock_byte, OpenError, OpenRequest, Policy, Segment};
use crate::state::*;
use crate::status::*;
use crate::sys;
use crate::wait::{self, Park, Spin, PARK_SLICE_MS};

/// `me` of a handle that only inspects (stat) and never takes part.
pub const OBSERVER: u32 = u32::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Recv,
    Send,
}

impl Side {
    pub fn from_u32(v: u32) -> Side {
        if v == 0 {
            Side::Recv
        } else {
            Side::Send
        }
    }
}

/// How a send marks its message, besides its payload: the flags it publishes with READY.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    /// Ack mode: the sender waits for the release (state::FLAG_ACK).
    pub ack: bool,
    /// A possible repeat of a message sent before (a relay, a retry after an unknown outcome):
    /// receivers see it as redelivered (state::FLAG_REPEAT).
    pub repeat: bool,
}

impl Marks {
    /// An ack-mode (`ack`) or async message, not marked as a repeat.
    pub fn mode(ack: bool) -> Marks {
        Marks { ack, repeat: false }
    }
}

/// What a receive hands back besides the payload.
#[derive(Default, Clone, Copy)]
pub struct Received {
    pub slot: u32,
    pub generation: u32,
    pub len: u32,
    pub pid: u32,
    pub seq: u64,
    pub redelivered: bool,
    pub ack: bool,
}

/// State only the owning thread touches (the JS thread in Deno).
struct Local {
    /// Slots this handle sent and that are not released yet: (slot, generation).
    inflight: Vec<(u32, u32)>,
    /// Slots this handle saw released: tried first on the next send (their lines are warm).
    spare: Vec<u32>,
    scan_cursor: u32,
    recv_cursor: u32,
    /// Where the next trim looks in the reserve table (alloc.rs).
    trim_cursor: u32,
    /// Bytes the last send lacked under the memory bound (FULL_MEMORY); 0 when it got them.
    memory_short: u64,
    reap_tries: u32,
    tail: u64,
    /// This lane's head as last read: reloaded only when the window looks full, so a sender
    /// does not pull the receivers' line on every send.
    cached_head: u64,
    /// Each lane's tail as last read: reloaded only when this receiver has caught up with it.
    cached_tails: [u64; MAX_PARTICIPANTS],
    sent: u64,
    received: u64,
    released: u64,
    full: u64,
}

/// The part of a handle any thread may use: the mapping, this participant's index, and what
/// parking and recovery need. Every field is immutable after `open`, a mutex, or an atomic, and
/// the mapping is reached only through atomics (or payload bytes whose slot a `Handle` owns), so
/// the compiler derives `Sync` here without an `unsafe impl`. The process's waiter thread
/// (`crate::waiter`) parks on this part while the JS thread keeps using the `Handle`; it holds the
/// part by `Arc`, so the mapping outlives a handle freed while a wait still uses it.
pub struct Shared {
    pub seg: Segment,
    /// This handle's participant index (OBSERVER for a handle that only inspects).
    pub me: u32,
    /// Serialises recovery done by this handle's threads (they share one OFD, so the kernel lock
    /// does not exclude them from each other).
    recovery: Mutex<()>,
    closed: AtomicBool,
}

/// One open channel handle. `Send` but not `Sync` (its `Local` sits in a `RefCell`), the way
/// rtrb's Producer/Consumer are: one thread at a time sends, receives, loans and closes, so the
/// cursors and in-flight lists need no synchronisation, and the slot protocol's "only the holder
/// touches a slot's bytes" is kept by the type. Another thread may use `shared()` (parking,
/// sweeping, stat); `Handle` derefs to it so the owner uses both parts as one.
///
/// Sharing a handle between threads does not compile:
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<ferry_core::channel::Handle>();
/// ```
///
/// Its shared part may be:
///
/// ```
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<ferry_core::channel::Shared>();
/// ```
pub struct Handle {
    shared: Arc<Shared>,
    pid: u32,
    /// How this handle's blocking waits spin (`wait`'s "The `spin` option"); the owner sets it.
    spin: Cell<Spin>,
    slot_limit: u32,
    /// Borrowed once per entry point, then passed down as `&mut Local`: no helper borrows it
    /// again, so the borrow flag is set and cleared once a call and never seen taken.
    local: RefCell<Local>,
}

impl Deref for Handle {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// Why a participant's states are being undone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Its lock was found free: the process died (or dropped the handle without closing).
    Died,
    /// It called `close`: a clean exit, not a death.
    Closed,
}

pub struct OpenOptions<'a> {
    pub name: &'a str,
    pub capacity: u32,
    pub max_message: u32,
    /// Most bytes the slots' data regions may reserve together (layout::MEMORY_DEFAULT: as much as
    /// every slot holding a message of the largest size).
    pub memory: u64,
    pub mode: u32,
    pub slot_limit: u32,
    pub observer: bool,
}

impl Shared {
    pub fn capacity(&self) -> u32 {
        self.seg.layout.capacity
    }

    pub fn max_message(&self) -> u32 {
        self.seg.layout.max_message
    }

    pub(crate) fn wait_line(&self, side: Side) -> &WaitLine {
        let h = self.seg.header();
        match side {
            Side::Recv => &h.recv_wait,
            Side::Send => &h.send_wait,
        }
    }

    /// Wakes sleepers on `side`, paying for the syscall only when one is registered.
    pub(crate) fn wake(&self, side: Side) {
        self.wait_line(side).wake();
    }

    /// The state of slot `k` if it holds lane `j`'s message `seq`, still queued.
    pub(crate) fn queued_at(&self, k: u32, j: u32, seq: u64) -> Option<State> {
        let s = self.seg.slot(k);
        // SYNC POINT: pairs with the sender's Release store of READY: seq and payload are visible.
        let cur = State(s.state.load(Acquire));
        (cur.kind() == Kind::Ready && cur.sender() == j && s.seq.load(Relaxed) == seq).then_some(cur)
    }

    pub(crate) fn uncount_redelivery(shared: &SharedLine) {
        // SYNC POINT: the hint publishes no data; AcqRel keeps it ordered with the slot CAS it
        // accounts for (see recover_locked).
        let _ = shared.redeliver_pending.fetch_update(AcqRel, Relaxed, |v| v.checked_sub(1));
    }

    // ---------------------------------------------------------------- waiting (see `wait`)

    /// Registers this handle as a sleeper on `side` and returns the epoch to wait on. The
    /// caller re-checks its condition after this, then calls `park_wait` or `park_cancel`.
    pub fn park_prepare(&self, side: Side) -> u32 {
        self.wait_line(side).prepare(self.me)
    }

    /// `side`'s wake count (`WaitLine::epoch`).
    pub fn wake_epoch(&self, side: Side) -> u32 {
        self.wait_line(side).epoch()
    }

    pub fn park_cancel(&self, side: Side) {
        self.wait_line(side).cancel(self.me);
    }

    /// Sleeps until woken or `timeout_ms` (at most one slice) passes; on every return it sweeps for
    /// dead participants. OK if woken, TIMEOUT if not. Safe to call from another thread than the
    /// owner's.
    pub fn park_wait(&self, side: Side, epoch: u32, timeout_ms: u32) -> i32 {
        let line = self.wait_line(side);
        if !self.closed.load(Relaxed) {
            line.sleep(epoch, timeout_ms.min(PARK_SLICE_MS));
        }
        line.cancel(self.me);
        // On every return, not only quiet ones: under steady traffic every slice is woken, and
        // a dead receiver must still be found (one sweep per SWEEP_EVERY_MS channel-wide).
        self.maybe_sweep();
        if line.woken_since(epoch) {
            OK
        } else {
            TIMEOUT
        }
    }

    /// Calls `attempt` until it gives an answer or `timeout_ms` passes (u32::MAX: no limit), by
    /// the policy of `wait`: spin, then yield, then sleep on `side`'s line in slices.
    pub fn wait_for(&self, side: Side, timeout_ms: u32, attempt: impl FnMut() -> Option<i32>) -> i32 {
        self.wait_spinning(side, timeout_ms, Spin::Polite, attempt)
    }

    /// As `wait_for`, spinning as `spin` says before it parks.
    pub fn wait_spinning(
        &self,
        side: Side,
        timeout_ms: u32,
        spin: Spin,
        attempt: impl FnMut() -> Option<i32>,
    ) -> i32 {
        wait::wait_for(&SideParker { shared: self, side }, timeout_ms, spin, attempt)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

/// A channel's wait line as `wait::wait_for` parks on it: a slice of sleep also sweeps.
struct SideParker<'a> {
    shared: &'a Shared,
    side: Side,
}

impl Park for SideParker<'_> {
    fn prepare(&self) -> u32 {
        self.shared.park_prepare(self.side)
    }
    fn cancel(&self) {
        self.shared.park_cancel(self.side);
    }
    fn sleep(&self, epoch: u32, ms: u32) {
        self.shared.park_wait(self.side, epoch, ms);
    }
    fn sweep(&self) {
        self.shared.maybe_sweep();
    }
}

impl Handle {
    pub fn open(o: &OpenOptions) -> Result<Handle, OpenError> {
        Self::open_with(o, true)
    }

    /// As `open`; with `create` false an absent channel is ERR_NOT_FOUND instead of created.
    pub fn open_with(o: &OpenOptions, create: bool) -> Result<Handle, OpenError> {
        Self::open_with_policy(o, create, Policy::DEFAULT)
    }

    /// As `open_with`, with the owners an existing segment may have besides the caller and root,
    /// and how long to wait for another process building it (segment.rs).
    /// Only a creating open looks at `capacity`, `max_message` and `memory`, and only a participant at
    /// `slot_limit`: an observer, or an open of an existing channel, may pass anything there.
    pub fn open_with_policy(o: &OpenOptions, create: bool, policy: Policy) -> Result<Handle, OpenError> {
        let invalid = OpenError::new(ERR_INVALID_ARGUMENT, 0);
        if !o.observer && (o.slot_limit == 0 || o.slot_limit as usize > LANE_RING) {
            return Err(invalid);
        }
        let create = match create && !o.observer {
            true => Some(Layout::new(o.capacity, o.max_message, o.memory).ok_or(invalid)?),
            false => None,
        };
        let seg = segment::open(&OpenRequest { name: o.name, mode: o.mode, create, policy })?;
        let mut h = Handle {
            shared: Arc::new(Shared {
                seg,
                me: OBSERVER,
                recovery: Mutex::new(()),
                closed: AtomicBool::new(false),
            }),
            pid: sys::pid(),
            spin: Cell::new(Spin::Polite),
            slot_limit: o.slot_limit,
            local: RefCell::new(Local {
                inflight: Vec::with_capacity(LANE_RING),
                spare: Vec::with_capacity(LANE_RING),
                scan_cursor: 0,
                recv_cursor: 0,
                trim_cursor: 0,
                memory_short: 0,
                reap_tries: 0,
                tail: 0,
                cached_head: 0,
                cached_tails: [0; MAX_PARTICIPANTS],
                sent: 0,
                received: 0,
                released: 0,
                full: 0,
            }),
        };
        if !o.observer {
            h.join()?;
            h.sweep();
            h.trim_idle();
        }
        Ok(h)
    }

    /// Claims a participant index: the first whose lock nobody holds.
    fn join(&mut self) -> Result<(), OpenError> {
        for i in 0..MAX_PARTICIPANTS as u32 {
            match sys::try_lock_byte(&self.seg.fd, participant_lock_byte(i)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(OpenError::new(ERR_IO, e.raw_os_error().unwrap_or(0))),
            }
            fault::point("join.locked");
            let p = self.seg.participant(i);
            // SYNC POINT: pairs with the previous owner's Release store of ACTIVE: seeing it, its
            // slots may name `i`.
            let inherited_dead = p.owner.state.load(Acquire) == PARTICIPANT_ACTIVE;
            if inherited_dead {
                // Its previous owner died and nobody swept it yet: undo its states first.
                self.recover_locked(i, Leaving::Died);
            }
            p.owner.pid.store(self.pid, Relaxed);
            p.owner.epoch.fetch_add(1, Relaxed);
            // SYNC POINT: pid and epoch are visible to whoever sees ACTIVE (stat, sweeps).
            p.owner.state.store(PARTICIPANT_ACTIVE, Release);
            self.seg.header().shared.lanes_used.fetch_max(i + 1, AcqRel);
            let (tail, sent, received, released, full) = (
                p.owner.tail.load(Acquire),
                p.owner.sent.load(Relaxed),
                p.owner.received.load(Relaxed),
                p.owner.released.load(Relaxed),
                p.owner.full.load(Relaxed),
            );
            let capacity = self.seg.layout.capacity;
            // Nobody else holds the Arc before `open` returns.
            Arc::get_mut(&mut self.shared).expect("a handle being opened is not shared yet").me = i;
            let l = self.local.get_mut();
            (l.tail, l.sent, l.received, l.released, l.full) = (tail, sent, received, released, full);
            l.scan_cursor = (i * 7919) % capacity;
            if inherited_dead {
                self.wake(Side::Recv);
                self.wake(Side::Send);
            }
            return Ok(());
        }
        Err(OpenError::new(ERR_TOO_MANY_PARTICIPANTS, 0))
    }

    /// The part another thread may use while this one owns the handle (see `Shared`).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The shared part, to keep: what the process's waiter holds while it waits on this handle.
    pub fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Sets how this handle's blocking waits spin before they park.
    pub fn set_spin(&self, spin: Spin) {
        self.spin.set(spin);
    }

    /// As `Shared::wait_for`, spinning as this handle's `spin` option says.
    pub fn wait(&self, side: Side, timeout_ms: u32, attempt: impl FnMut() -> Option<i32>) -> i32 {
        self.shared.wait_spinning(side, timeout_ms, self.spin.get(), attempt)
    }

    /// Offset from the segment's start of slot `k`'s payload of `len` bytes.
    pub fn payload_offset(&self, k: u32, len: usize) -> u64 {
        (self.payload_ptr(k, len) as usize - self.seg.map.base as usize) as u64
    }

    /// Where slot `k` keeps a payload of `len` bytes: inline in its line when it fits.
    pub(crate) fn payload_ptr(&self, k: u32, len: usize) -> *mut u8 {
        if len <= INLINE_BYTES {
            self.seg.slot(k).inline.get().cast()
        } else {
            self.seg.data(k)
        }
    }

    /// Leaves the channel: what we hold is redelivered (ack-mode messages too: their senders
    /// keep waiting for another receiver, since a clean close is not a death), what we sent
    /// stays queued, and our index is free for others. The mapping and fd stay until the handle
    /// is dropped. On `Handle`, not `Shared`: undoing our own WRITING slots while this thread
    /// writes one would free a slot under its writer, so only the owning thread may close.
    pub fn close(&self) {
        // SYNC POINT: the flag alone; AcqRel so a second close sees the first one's effects done or
        // in progress.
        if self.closed.swap(true, AcqRel) || self.me == OBSERVER {
            return;
        }
        {
            let _g = self.recovery.lock().unwrap_or_else(|e| e.into_inner());
            // The last call many idle channels get: pages nobody needed lately go back now.
            self.trim_idle_locked();
            self.recover_locked(self.me, Leaving::Closed);
            // SYNC POINT: our resets happen before anyone sees EMPTY (a joiner then need not
            // recover us).
            self.seg.participant(self.me).owner.state.store(PARTICIPANT_EMPTY, Release);
            // The seat is free now, not when the fd is closed: a child forked by another thread
            // of this process holds our open file description (and with it the lock) until it
            // execs, so closing the fd alone can leave the seat taken for a while.
            sys::unlock_byte(&self.seg.fd, participant_lock_byte(self.me));
        }
        self.wake(Side::Recv);
        self.wake(Side::Send);
    }
}
