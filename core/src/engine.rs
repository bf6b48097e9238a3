//! One open channel handle: a participant that sends, receives, waits and recovers.
//!
//! Senders take a FREE slot from the pool (capacity), write it, and publish it on their own lane:
//! a ring of 32 slot indices with a `tail` only the sender writes and a `head` any receiver may
//! advance. Receivers claim the message at a lane's head with one CAS on the slot's state word,
//! which is what makes delivery exactly-once and FIFO per sender. Nothing is ordered across
//! senders, so no shared ticket exists whose holder could die and block everyone.
//!
//! A participant is alive while it holds the OFD lock on its byte. Whoever finds a participant
//! dead takes that lock itself, which makes it the only one undoing the dead one's states.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicBool};
use std::sync::Mutex;
use std::time::Duration;

use crate::fault;
use crate::layout::*;
use crate::segment::{self, participant_lock_byte, OpenError, OpenRequest, Policy, Segment};
use crate::state::*;
use crate::status::*;
use crate::sys;

/// `me` of a handle that only inspects (stat) and never takes part.
pub const OBSERVER: u32 = u32::MAX;

/// How long one futex sleep lasts before the sleeper re-checks liveness of its peers.
const PARK_SLICE_MS: u64 = 20;
/// At most one liveness sweep per this many ms across all processes of a channel.
const SWEEP_EVERY_MS: u64 = 20;
/// Busy re-checks before a blocking wait yields the core, then yields before it sleeps. About
/// 10 us of spinning: longer than a round trip, shorter than a context switch's worth of work
/// stolen from a peer when the cores are oversubscribed.
const SPIN_CHECKS: u32 = 100;
const YIELD_CHECKS: u32 = 20;
/// A blocked sender reads all its in-flight slots on every this-many-th retry (see `reap`).
const FULL_REAP_EVERY: u32 = 32;

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
/// the compiler derives `Sync` here without an `unsafe impl`. Deno's blocking-pool thread parks on
/// this part (`ferry_park_wait`) while the JS thread keeps using the `Handle`.
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
/// shared_between_threads::<ferry_core::engine::Handle>();
/// ```
///
/// Its shared part may be:
///
/// ```
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<ferry_core::engine::Shared>();
/// ```
pub struct Handle {
    shared: Shared,
    pid: u32,
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
    pub mode: u32,
    pub slot_limit: u32,
    pub observer: bool,
}

fn bit(i: u32) -> u64 {
    1u64 << (i & 63)
}

impl Shared {
    pub fn capacity(&self) -> u32 {
        self.seg.layout.capacity
    }

    pub fn max_message(&self) -> u32 {
        self.seg.layout.max_message
    }

    fn wait_line(&self, side: Side) -> &WaitLine {
        let h = self.seg.header();
        match side {
            Side::Recv => &h.recv_wait,
            Side::Send => &h.send_wait,
        }
    }

    /// Wakes sleepers on `side`, paying for the syscall only when one is registered.
    fn wake(&self, side: Side) {
        let line = self.wait_line(side);
        // SYNC POINT: orders our publish/release (earlier stores) before reading the sleeper
        // mask; pairs with the fence in `park_prepare`, so either we see the sleeper's bit or
        // the sleeper's re-check sees our store.
        fence(SeqCst);
        // Taking the whole mask means one wake per sleep: until a woken sleeper runs again and
        // clears its bit, every later publish or release would otherwise pay a FUTEX_WAKE
        // syscall. A sleeper that sets its bit after the swap re-checks its condition after
        // setting it, and sees what we stored before the fence.
        // SYNC POINT: the swap and the Release increment of `word` hand the sleeper everything
        // stored before the fence: its Acquire load of `word` in park_wait sees a new epoch only
        // with it.
        if line.sleepers.load(Relaxed) != 0 && line.sleepers.swap(0, AcqRel) != 0 {
            line.word.fetch_add(1, Release);
            sys::futex_wake_all(&line.word);
        }
    }

    /// The state of slot `k` if it holds lane `j`'s message `seq`, still queued.
    fn queued_at(&self, k: u32, j: u32, seq: u64) -> Option<State> {
        let s = self.seg.slot(k);
        // SYNC POINT: pairs with the sender's Release store of READY: seq and payload are visible.
        let cur = State(s.state.load(Acquire));
        (cur.kind() == Kind::Ready && cur.sender() == j && s.seq.load(Relaxed) == seq).then_some(cur)
    }

    fn uncount_redelivery(shared: &SharedLine) {
        // SYNC POINT: the hint publishes no data; AcqRel keeps it ordered with the slot CAS it
        // accounts for (see recover_locked).
        let _ = shared.redeliver_pending.fetch_update(AcqRel, Relaxed, |v| v.checked_sub(1));
    }

    // ---------------------------------------------------------------- waiting

    /// Registers this handle as a sleeper on `side` and returns the epoch to wait on. The
    /// caller re-checks its condition after this, then calls `park_wait` or `park_cancel`.
    pub fn park_prepare(&self, side: Side) -> u32 {
        let line = self.wait_line(side);
        line.sleepers.fetch_or(bit(self.me), SeqCst);
        // SYNC POINT: pairs with the fence in `wake` (see there).
        fence(SeqCst);
        line.word.load(Acquire)
    }

    pub fn park_cancel(&self, side: Side) {
        self.wait_line(side).sleepers.fetch_and(!bit(self.me), Release);
    }

    /// Sleeps until woken or `timeout_ms` (at most one slice) passes; on a quiet slice it sweeps
    /// for dead participants. Safe to call from another thread than the owner's.
    pub fn park_wait(&self, side: Side, epoch: u32, timeout_ms: u32) -> i32 {
        let line = self.wait_line(side);
        let ms = u64::from(timeout_ms).min(PARK_SLICE_MS);
        if !self.closed.load(Relaxed) {
            sys::futex_wait(&line.word, epoch, Duration::from_millis(ms));
        }
        self.park_cancel(side);
        // On every return, not only quiet ones: under steady traffic every slice is woken, and
        // a dead receiver must still be found (one sweep per SWEEP_EVERY_MS channel-wide).
        self.maybe_sweep();
        // SYNC POINT: pairs with `wake`'s Release increment: a new epoch comes with what the waker
        // published.
        if line.word.load(Acquire) == epoch {
            TIMEOUT
        } else {
            OK
        }
    }

    /// Calls `attempt` until it gives an answer or `timeout_ms` passes (u32::MAX: no limit):
    /// spin, then yield, then sleep on the futex in slices.
    pub fn wait_for(&self, side: Side, timeout_ms: u32, mut attempt: impl FnMut() -> Option<i32>) -> i32 {
        for i in 0..SPIN_CHECKS + YIELD_CHECKS {
            if let Some(r) = attempt() {
                return r;
            }
            if i < SPIN_CHECKS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let deadline = (timeout_ms != u32::MAX).then(|| sys::monotonic_ms() + u64::from(timeout_ms));
        loop {
            let epoch = self.park_prepare(side);
            if let Some(r) = attempt() {
                self.park_cancel(side);
                return r;
            }
            let remaining = match deadline {
                None => PARK_SLICE_MS,
                Some(d) => d.saturating_sub(sys::monotonic_ms()),
            };
            if remaining == 0 {
                self.park_cancel(side);
                return TIMEOUT;
            }
            self.park_wait(side, epoch, remaining.min(PARK_SLICE_MS) as u32);
        }
    }

    // ---------------------------------------------------------------- recovery

    /// Sweeps at most once per SWEEP_EVERY_MS across the channel's processes.
    pub fn maybe_sweep(&self) -> u32 {
        let shared = &self.seg.header().shared;
        let now = sys::coarse_ms();
        let last = shared.last_sweep_ms.load(Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY_MS
            || shared.last_sweep_ms.compare_exchange(last, now, Relaxed, Relaxed).is_err()
        {
            return 0;
        }
        self.sweep()
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
            self.wake(Side::Recv);
            self.wake(Side::Send);
        }
        recovered
    }

    /// Undoes every state participant `i` left. The caller holds `i`'s lock (it is us closing,
    /// or `i` is dead), so no state naming `i` can appear while this runs. How `i` left decides
    /// only the fate of an ack-mode message it held: a death may have half-processed it, so its
    /// sender learns PEER_DIED; a close hands it back, and its sender keeps waiting.
    fn recover_locked(&self, i: u32, how: Leaving) {
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
                    Kind::Acked | Kind::PeerDied | Kind::Expired if as_sender => cur.freed(),
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
        // SYNC POINT: publishes nothing (a departed sleeper's bits); AcqRel keeps it after the
        // resets above.
        h.recv_wait.sleepers.fetch_and(!bit(i), AcqRel);
        h.send_wait.sleepers.fetch_and(!bit(i), AcqRel);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    // ---------------------------------------------------------------- introspection

    /// [capacity, max_message, total_size, depth, in_flight, sent, received, released, expired,
    ///  full, redelivered, created_unix_ms, participants, resident bytes]
    pub fn stat(&self) -> [u64; 14] {
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
        [
            u64::from(self.seg.layout.capacity),
            u64::from(self.seg.layout.max_message),
            self.seg.layout.total_size,
            depth,
            in_flight,
            sent,
            received,
            released,
            h.shared.expired.load(Relaxed),
            full,
            h.shared.redelivered.load(Relaxed),
            h.fixed.created_unix_ms.load(Relaxed),
            active,
            sys::resident_bytes(self.seg.map.base, self.seg.map.len),
        ]
    }

    /// Active participants: (pid, alive, slots in flight as a sender, role: 1 sent, 2 received).
    pub fn participants(&self) -> Vec<(u32, bool, u32, u32)> {
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
                let role =
                    u32::from(o.sent.load(Relaxed) > 0) | (u32::from(o.received.load(Relaxed) > 0) << 1);
                (o.pid.load(Relaxed), alive, in_flight[i as usize], role)
            })
            .collect()
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
    pub fn open_with_policy(o: &OpenOptions, create: bool, policy: Policy) -> Result<Handle, OpenError> {
        if o.slot_limit == 0 || o.slot_limit as usize > LANE_RING {
            return Err(OpenError::new(ERR_INVALID_ARGUMENT, 0));
        }
        let seg = segment::open(&OpenRequest {
            name: o.name,
            capacity: o.capacity,
            max_message: o.max_message,
            mode: o.mode,
            create: create && !o.observer,
            policy,
        })?;
        let mut h = Handle {
            shared: Shared { seg, me: OBSERVER, recovery: Mutex::new(()), closed: AtomicBool::new(false) },
            pid: sys::pid(),
            slot_limit: o.slot_limit,
            local: RefCell::new(Local {
                inflight: Vec::with_capacity(LANE_RING),
                spare: Vec::with_capacity(LANE_RING),
                scan_cursor: 0,
                recv_cursor: 0,
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
            self.shared.me = i;
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

    // ---------------------------------------------------------------- sending

    /// Writes `payload` into a free slot and publishes it. Never waits.
    pub fn send(&self, payload: &[u8], ack: bool, expiry_ms: u32) -> Result<(u32, u32, u64), i32> {
        self.send_with(payload, ack, expiry_ms, false)
    }

    /// As `send`. `retry`: the caller tries again when this finds no room (a blocking send, a
    /// batch past its first message), so a look at its oldest in-flight slot is enough most times
    /// (see `reap`); a one-shot send looks at all of them.
    pub fn send_with(
        &self,
        payload: &[u8],
        ack: bool,
        expiry_ms: u32,
        retry: bool,
    ) -> Result<(u32, u32, u64), i32> {
        if payload.len() > self.seg.layout.max_message as usize {
            return Err(ERR_TOO_LARGE);
        }
        let l = &mut *self.local.borrow_mut();
        let k = self.acquire(l, retry)?;
        // SAFETY: slot k is WRITING with us as sender (claimed by CAS in acquire), so its inline
        // bytes and data region are ours alone; the payload fits the one chosen (INLINE_BYTES,
        // or max_message <= slot_stride).
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), self.payload_ptr(k, payload.len()), payload.len())
        };
        Ok(self.publish(l, k, payload.len() as u32, ack, expiry_ms))
    }

    /// Claims a free slot for this sender (FREE -> WRITING by us), within its `slots` limit,
    /// its lane window and the channel's capacity.
    fn acquire(&self, l: &mut Local, retry: bool) -> Result<u32, i32> {
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
    fn publish(&self, l: &mut Local, k: u32, len: u32, ack: bool, expiry_ms: u32) -> (u32, u32, u64) {
        let sent = self.publish_quietly(l, k, len, ack, expiry_ms);
        self.wake(Side::Recv);
        sent
    }

    /// `publish` without waking sleepers: a batch wakes once after its last message.
    fn publish_quietly(&self, l: &mut Local, k: u32, len: u32, ack: bool, expiry_ms: u32) -> (u32, u32, u64) {
        let s = self.seg.slot(k);
        let lane = self.seg.participant(self.me);
        let seq = l.tail;
        s.len.store(len, Relaxed);
        s.seq.store(seq, Relaxed);
        s.pid.store(self.pid, Relaxed);
        s.deadline_ms
            .store(if expiry_ms == 0 { 0 } else { sys::coarse_ms() + u64::from(expiry_ms) }, Relaxed);
        lane.ring.slot[(seq % LANE_RING as u64) as usize].store(k, Relaxed);
        fault::point("send.written");
        let writing = State(s.state.load(Relaxed));
        // SYNC POINT: the payload, the metadata and the ring entry are visible to whoever
        // observes READY (receivers' Acquire loads and claim CAS). Only we may change a slot we
        // are WRITING, so a store is the whole transition.
        s.state.store(writing.with_kind(Kind::Ready).with_flag(FLAG_ACK, ack).0, Release);
        fault::point("send.ready");
        // SYNC POINT: makes the ring entry reachable to receivers that load tail with Acquire.
        lane.owner.tail.store(seq + 1, Release);
        l.tail = seq + 1;
        l.sent += 1;
        lane.owner.sent.store(l.sent, Relaxed);
        l.inflight.push((k, writing.generation()));
        (k, writing.generation(), seq)
    }

    /// Sends the messages laid end to end in `payloads` (lengths in `lens`) until one finds no
    /// room; one wake for the batch. Returns how many were sent and why it stopped (OK when all
    /// were).
    pub fn send_batch(&self, payloads: &[u8], lens: &[u32], expiry_ms: u32) -> (u32, i32) {
        let l = &mut *self.local.borrow_mut();
        let mut at = 0usize;
        let mut sent = 0u32;
        let mut why = OK;
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
            let k = match self.acquire(l, i > 0) {
                Ok(k) => k,
                Err(code) => {
                    why = code;
                    break;
                }
            };
            // SAFETY: as in `send_with`: slot k is WRITING by us and the payload fits its place.
            unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), self.payload_ptr(k, len), len) };
            self.publish_quietly(l, k, len as u32, false, expiry_ms);
            at += len;
            sent += 1;
        }
        if sent > 0 {
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
        let k = self.acquire(&mut self.local.borrow_mut(), false)?;
        let g = State(self.seg.slot(k).state.load(Relaxed)).generation();
        Ok((k, g, self.payload_offset(k, len as usize)))
    }

    fn loaned(&self, k: u32, g: u32) -> bool {
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
        ack: bool,
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
        let (from, to) = (self.payload_ptr(k, loaned as usize), self.payload_ptr(k, len as usize));
        if from != to {
            // Committed shorter than lent, across the inline limit: move it where readers look.
            // SAFETY: both regions belong to slot k, which we hold WRITING; ptr::copy allows overlap.
            unsafe { std::ptr::copy(from, to, len as usize) };
        }
        Ok(self.publish(&mut self.local.borrow_mut(), k, len, ack, expiry_ms))
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

    /// Offset from the segment's start of slot `k`'s payload of `len` bytes.
    pub fn payload_offset(&self, k: u32, len: usize) -> u64 {
        (self.payload_ptr(k, len) as usize - self.seg.map.base as usize) as u64
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
        l.spare.iter().any(|&k| free(k)) || (0..self.seg.layout.capacity).any(free)
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
    fn reap(&self, l: &mut Local, thorough: bool) {
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

    /// Where slot `k` keeps a payload of `len` bytes: inline in its line when it fits.
    fn payload_ptr(&self, k: u32, len: usize) -> *mut u8 {
        if len <= INLINE_BYTES {
            self.seg.slot(k).inline.get().cast()
        } else {
            self.seg.data(k)
        }
    }

    fn forget_inflight(l: &mut Local, k: u32, g: u32) {
        if let Some(pos) = l.inflight.iter().position(|&e| e == (k, g)) {
            l.inflight.remove(pos); // keeps send order, which `reap` relies on
        }
        if l.spare.len() < LANE_RING {
            l.spare.push(k);
        }
    }

    fn try_claim_free(&self, k: u32) -> bool {
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

    fn claim_free_slot(&self, l: &mut Local) -> Option<u32> {
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

    /// Frees expired queued messages and sweeps dead participants; true when anything was freed.
    fn reclaim(&self) -> bool {
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

    fn expired(s: &Slot, now: u64) -> bool {
        let d = s.deadline_ms.load(Relaxed);
        d != 0 && now > d
    }

    /// Drops an expired message that is READY or that we just claimed: async messages are
    /// freed, ack messages go back to their sender as EXPIRED.
    fn expire(&self, k: u32, mut cur: State) -> bool {
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
        if cur.kind() == Kind::Ready && cur.redelivered() {
            Shared::uncount_redelivery(shared);
        }
        shared.expired.fetch_add(1, Relaxed);
        self.wake(Side::Send);
        true
    }

    fn same_message(a: State, b: State) -> bool {
        a.kind() == b.kind() && a.generation() == b.generation() && a.receiver() == b.receiver()
    }

    /// Moves lane `j`'s head past entries that are no longer READY with that sequence
    /// (received, withdrawn or expired). Anyone may help; a failed CAS means someone else did.
    fn advance_head(&self, j: u32) {
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

    // ---------------------------------------------------------------- ack outcomes

    /// The outcome of an ack-mode message: PENDING, or a final status after which the slot is
    /// freed and forgotten.
    pub fn ack_status(&self, k: u32, g: u32) -> i32 {
        self.ack_status_in(&mut self.local.borrow_mut(), k, g)
    }

    fn ack_status_in(&self, l: &mut Local, k: u32, g: u32) -> i32 {
        if k >= self.seg.layout.capacity {
            return ERR_INVALID_ARGUMENT;
        }
        let s = self.seg.slot(k);
        loop {
            // SYNC POINT: pairs with the receiver's Release in `release_in` (ACKED) or recovery's
            // AcqRel CAS (PEER_DIED).
            let cur = State(s.state.load(Acquire));
            if cur.generation() != g || cur.sender() != self.me {
                Self::forget_inflight(l, k, g);
                return ERR_NOT_HELD;
            }
            let outcome = match cur.kind() {
                Kind::Acked => OK,
                Kind::PeerDied => PEER_DIED,
                Kind::Expired => EXPIRED,
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
                    if cur.redelivered() {
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
                    if cur.redelivered() {
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

    // ---------------------------------------------------------------- receiving

    /// Claims the next message (READY -> READING by us), dropping expired ones on the way.
    pub fn claim(&self) -> Result<Received, i32> {
        self.claim_in(&mut self.local.borrow_mut())
    }

    fn claim_in(&self, l: &mut Local) -> Result<Received, i32> {
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
            if s.len.load(Relaxed) > self.seg.layout.max_message {
                // An overwritten length: drop the message (its bytes cannot be trusted) and say
                // the segment is damaged, rather than copy past the slot.
                // SYNC POINT: freeing publishes the slot to the next claimer's Acquire CAS in
                // try_claim_free.
                let _ = self.seg.slot(k).state.compare_exchange(cur.0, cur.freed().0, AcqRel, Relaxed);
                self.wake(Side::Send);
                return Err(ERR_INCOMPATIBLE);
            }
            l.received += 1;
            self.seg.participant(self.me).owner.received.store(l.received, Relaxed);
            return Ok(Received {
                slot: k,
                generation: cur.generation(),
                len: s.len.load(Relaxed),
                pid: s.pid.load(Relaxed),
                seq: s.seq.load(Relaxed),
                redelivered: cur.redelivered(),
                ack: cur.ack(),
            });
        }
    }

    fn claim_next(&self, l: &mut Local) -> Option<(u32, State)> {
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

    fn claim_from_lane(&self, j: u32, cached_tail: &mut u64) -> Option<(u32, State)> {
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

    fn claim_redelivered(&self) -> Option<(u32, State)> {
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
    /// one wake for the batch. `meta` takes 8 u32 per message: [slot, generation, len, pid,
    /// seq_lo, seq_hi, flags (1 redelivered, 2 ack, 4 not copied: too big for what was left of
    /// dst, held, read it with `read`), offset in dst]. Returns the count (the last one may be
    /// "not copied").
    pub fn recv_batch(
        &self,
        dst: &mut [u8],
        max: u32,
        auto_release: bool,
        meta: &mut [u32],
    ) -> Result<u32, i32> {
        let l = &mut *self.local.borrow_mut();
        let max = max.min((meta.len() / 8) as u32);
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
            let mut flags = u32::from(m.redelivered) | (u32::from(m.ack) << 1);
            if fits {
                self.read(m.slot, m.generation, &mut dst[at..at + len])?;
                if auto_release && self.release_in(l, m.slot, m.generation) == OK {
                    released_any = true;
                }
            } else {
                flags |= 4;
            }
            let e = &mut meta[n as usize * 8..n as usize * 8 + 8];
            e.copy_from_slice(&[
                m.slot,
                m.generation,
                m.len,
                m.pid,
                m.seq as u32,
                (m.seq >> 32) as u32,
                flags,
                at as u32,
            ]);
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

    /// Copies a message this handle holds into `dst` (which must be large enough).
    pub fn read(&self, k: u32, g: u32, dst: &mut [u8]) -> Result<u32, i32> {
        if k >= self.seg.layout.capacity {
            return Err(ERR_INVALID_ARGUMENT);
        }
        let s = self.seg.slot(k);
        // SYNC POINT: Acquire: our claim (READING by us) was itself an Acquire CAS; re-checked
        // before copying.
        let cur = State(s.state.load(Acquire));
        if cur.kind() != Kind::Reading || cur.receiver() != self.me || cur.generation() != g {
            return Err(ERR_NOT_HELD);
        }
        let len = s.len.load(Relaxed);
        if len > self.seg.layout.max_message {
            return Err(ERR_INCOMPATIBLE); // overwritten: never copy past the slot
        }
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

    fn release_in(&self, l: &mut Local, k: u32, g: u32) -> i32 {
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
            self.recover_locked(self.me, Leaving::Closed);
            // SYNC POINT: our resets happen before anyone sees EMPTY (a joiner then need not
            // recover us).
            self.seg.participant(self.me).owner.state.store(PARTICIPANT_EMPTY, Release);
        }
        self.wake(Side::Recv);
        self.wake(Side::Send);
    }
}
