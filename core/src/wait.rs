//! Waiting for another process without burning a core and without missing its wake: the
//! eventcount on a shared `WaitLine`, and the one policy every blocking wait of ferry follows
//! (spin briefly, then park on the futex in slices). Nothing here knows about slots or channels.
//!
//! # The policy
//!
//! A wait first retries its condition for about `SPIN_BUDGET_NS` before it is asleep: longer than
//! a round trip to a peer on another core (0.2-0.3 us), so a reply that is on its way is caught
//! without a sleep, and short enough not to steal much from that peer when the cores are
//! oversubscribed. Then it parks on the futex for at most `PARK_SLICE_MS` at a time, re-checking its
//! condition, its deadline and its peers' liveness after every slice.
//!
//! Two loops follow it, and what one retry costs differs between them, so their counts differ
//! (costs measured on this machine, 2 vCPUs; the constant assertions below keep each loop's time
//! before sleeping within the budget's half to one and a half):
//! - native waits (`wait_for`, below): `SPIN_CHECKS` busy checks (about 30 ns each), then
//!   `YIELD_CHECKS` checks that yield the core (about 400 ns each): about 11 us;
//! - the Deno binding (src/, with `ffi/abi.ts` `WaitPolicy`): `JS_SPIN_ATTEMPTS` attempts through
//!   the FFI fast path (about 25 ns each), then a nonblocking park, whose hop to a blocking-pool
//!   thread costs about 8 us before it sleeps: about 13 us.
//!
//! While messages flow, a promise wait that parks pays two thread hops when woken (the process's
//! waiter thread, then the event loop: 20-60 us), more than the peer's turnaround. The binding so
//! spins longer than the floor, in slices of at most `JS_SPIN_SLICE_US` with a turn of the event
//! loop (timers, I/O) and a `sched_yield` between them: the event loop is never held longer than
//! the floor or one slice, and on a busy machine the peer it waits for can have the core. How long:
//! - by default, adapted per handle and side: a wait answered while spinning spins up to twice that
//!   long next time (at most `JS_ADAPTIVE_MAX_US`); a wait that had to park halves it, and one
//!   answered late (idle) drops it. Spins grow only by paying.
//! - `JS_WOKEN_SPIN_US` when the peer side had a sleeper woken since this side's last wait began
//!   (its line's wake count, `WaitLine::epoch`, moved): that peer is on its way back through the two
//!   hops, and a spin that outlasts them is what keeps both sides from parking in turn, each wake
//!   then costing two hops (measured: 0.1-0.2 M msg/s instead of 1.7 M on this machine). A woken
//!   spin that misses (the peer was slow, not in its hops) makes the next 1, 3, 7 ... 63 woken
//!   peers go unheeded, so a peer woken and then slow costs at most one such spin in 64 wakes.
//!
//! Parked promise waits of a JS realm all sleep in one `futex_waitv` on one blocking-pool thread
//! (`crate::waiter`), which sweeps the channels it waits for after every return.
//!
//! # The `spin` option (`Spin`)
//!
//! The policy above is `Spin::Polite`, the default. A user who dedicates cores may ask for
//! `Spin::For(us)`: spin (busy checks, no yield) that long before parking, or `Spin::Busy`: spin
//! until the deadline, never park. Both cost a whole core for as long as they spin, which is what
//! buys the tail: a peer preempted for a few microseconds is waited for, not slept through. A busy
//! sync wait still sweeps for dead peers every `PARK_SLICE_MS`. A busy promise wait spins at most
//! one `PARK_SLICE_MS`, then parks like a polite one: spinning blocks the event loop (timers, I/O),
//! so it is bounded there (measured: an idle busy `recvSync` uses 1000 ms of CPU a second, an idle
//! busy `recv` about 40 ms in its first second, a polite one 3-16 ms).
//!
//! `ffi/abi.ts` is the copy of the binding's numbers: tests/abi.test.ts fails when they drift from
//! the constants here, which are the source.

use std::sync::atomic::fence;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::time::Duration;

use crate::layout::WaitLine;
use crate::status::TIMEOUT;
use crate::sys;

/// Time a wait spends retrying before it is asleep, in nanoseconds (see "The policy").
pub const SPIN_BUDGET_NS: u32 = 12_000;
/// Longest single futex sleep: a parked waiter re-checks deadlines and liveness this often.
pub const PARK_SLICE_MS: u32 = 20;

/// Whether a loop's estimated time before sleeping keeps to the budget.
const fn within_budget(ns: u32) -> bool {
    ns >= SPIN_BUDGET_NS / 2 && ns <= SPIN_BUDGET_NS / 2 * 3
}

/// One native check of a wait's condition plus a spin-loop hint.
pub const NATIVE_CHECK_NS: u32 = 30;
/// One native check followed by `sched_yield` when no other thread wants the core.
pub const NATIVE_YIELD_NS: u32 = 400;
/// Native busy checks, then checks that yield the core.
pub const SPIN_CHECKS: u32 = 100;
pub const YIELD_CHECKS: u32 = 20;
const _: () = assert!(within_budget(SPIN_CHECKS * NATIVE_CHECK_NS + YIELD_CHECKS * NATIVE_YIELD_NS));

/// One attempt of the Deno binding's loop: a fast-path FFI call that finds nothing.
pub const JS_ATTEMPT_NS: u32 = 25;
/// A nonblocking FFI call's hop to a blocking-pool thread, before the park there sleeps.
pub const JS_PARK_HOP_NS: u32 = 8_000;
/// Attempts the Deno binding makes before it parks (`ffi/abi.ts` `WaitPolicy.SPIN_ATTEMPTS`).
pub const JS_SPIN_ATTEMPTS: u32 = 200;
const _: () = assert!(within_budget(JS_SPIN_ATTEMPTS * JS_ATTEMPT_NS + JS_PARK_HOP_NS));
/// Longest wait the binding's adaptive spin tries to catch without parking (`WaitPolicy`): twice
/// the cost of the two thread hops a parked promise wait pays when it is woken.
pub const JS_ADAPTIVE_MAX_US: u32 = 50;
/// How long a promise wait spins when its peer side was woken since its last wait: the peer is on
/// its way back through two thread hops (20-60 us measured here, longer on a loaded machine).
pub const JS_WOKEN_SPIN_US: u32 = 200;
/// Longest stretch a promise wait's spin holds the event loop before it lets timers and I/O run.
pub const JS_SPIN_SLICE_US: u32 = 5;

/// The `spin` option at the C ABI, one u32: microseconds (at most `SPIN_MAX_US`), or one of these.
pub const SPIN_POLITE: u32 = 0xFFFF_FFFE;
pub const SPIN_BUSY: u32 = 0xFFFF_FFFF;
/// Longest spin the option takes in microseconds (one second: beyond it, "busy" says it better).
pub const SPIN_MAX_US: u32 = 1_000_000;

/// How long a wait spins before it parks (see "The `spin` option").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Spin {
    Polite,
    /// Microseconds of busy checks, then park.
    For(u32),
    /// Busy checks until the deadline.
    Busy,
}

impl Spin {
    /// The option from its ABI word; None for a number past `SPIN_MAX_US`.
    pub fn from_abi(v: u32) -> Option<Spin> {
        match v {
            SPIN_POLITE => Some(Spin::Polite),
            SPIN_BUSY => Some(Spin::Busy),
            us if us <= SPIN_MAX_US => Some(Spin::For(us)),
            _ => None,
        }
    }
}

/// Busy checks between two clock reads of a timed spin (a clock read costs about as much as 30).
const CHECKS_PER_CLOCK: u32 = 32;

/// The sleeper bit of participant `i` in a `WaitLine`'s mask.
fn bit(i: u32) -> u64 {
    1u64 << (i & 63)
}

/// The eventcount (see `layout::WaitLine`): sleepers set their bit, then wait on `word`; a waker
/// bumps `word` and calls FUTEX_WAKE only when some bit is set, so the common case costs one load.
impl WaitLine {
    /// Wakes every sleeper, paying for the syscall only when one is registered.
    pub fn wake(&self) {
        // SYNC POINT: orders our publish/release (earlier stores) before reading the sleeper
        // mask; pairs with the fence in `prepare`, so either we see the sleeper's bit or the
        // sleeper's re-check sees our store.
        fence(SeqCst);
        // Taking the whole mask means one wake per sleep: until a woken sleeper runs again and
        // clears its bit, every later publish or release would otherwise pay a FUTEX_WAKE
        // syscall. A sleeper that sets its bit after the swap re-checks its condition after
        // setting it, and sees what we stored before the fence.
        // SYNC POINT: the swap and the Release increment of `word` hand the sleeper everything
        // stored before the fence: its Acquire load of `word` in `sleep` sees a new epoch only
        // with it.
        if self.sleepers.load(Relaxed) != 0 && self.sleepers.swap(0, AcqRel) != 0 {
            self.word.fetch_add(1, Release);
            sys::futex_wake_all(&self.word);
        }
    }

    /// Registers participant `me` as a sleeper and returns the epoch to sleep on. The caller
    /// re-checks its condition after this, then calls `sleep` or `cancel`.
    pub fn prepare(&self, me: u32) -> u32 {
        self.sleepers.fetch_or(bit(me), SeqCst);
        // SYNC POINT: pairs with the fence in `wake` (see there).
        fence(SeqCst);
        self.word.load(Acquire)
    }

    /// Takes participant `me` off the sleepers.
    pub fn cancel(&self, me: u32) {
        self.sleepers.fetch_and(!bit(me), Release);
    }

    /// Forgets participant `i` as a sleeper, for good (it left the channel).
    pub fn forget(&self, i: u32) {
        // SYNC POINT: publishes nothing (a departed sleeper's bit); AcqRel keeps it after the
        // recovery stores that precede it.
        self.sleepers.fetch_and(!bit(i), AcqRel);
    }

    /// Sleeps while the line is still at `epoch`, for up to `ms` or until woken. The caller then
    /// cancels its registration and asks `woken_since`.
    pub fn sleep(&self, epoch: u32, ms: u32) {
        sys::futex_wait(&self.word, epoch, Duration::from_millis(u64::from(ms)));
    }

    /// The futex word sleepers wait on (the process's waiter waits on many at once).
    pub fn futex_word(&self) -> &std::sync::atomic::AtomicU32 {
        &self.word
    }

    /// How many times sleepers were woken on this line (wrapping): a waiter that sees it move knows
    /// a sleeper of this line is on its way back (see "The policy").
    pub fn epoch(&self) -> u32 {
        // SYNC POINT: none: a hint for how long to spin, it publishes nothing and orders nothing.
        self.word.load(Relaxed)
    }

    /// Whether someone woke the line since `epoch` was read.
    pub fn woken_since(&self, epoch: u32) -> bool {
        // SYNC POINT: pairs with `wake`'s Release increment: a new epoch comes with what the waker
        // published.
        self.word.load(Acquire) != epoch
    }
}

/// What a blocking wait parks on: its `WaitLine` and whatever else a slice of sleep must do
/// (a channel sweeps for dead participants after each).
pub trait Park {
    /// As `WaitLine::prepare`.
    fn prepare(&self) -> u32;
    /// As `WaitLine::cancel`.
    fn cancel(&self);
    /// Sleeps up to `ms` (at most one slice) on `epoch`; sweeps for dead peers after.
    fn sleep(&self, epoch: u32, ms: u32);
    /// What a slice of sleep does besides sleeping (a sweep for dead peers): a busy wait that
    /// never sleeps calls it once a slice.
    fn sweep(&self);
}

/// Calls `attempt` until it gives an answer or `timeout_ms` passes (u32::MAX: no limit), by the
/// policy of this module: spin as `spin` says, then park on `park` in slices.
pub fn wait_for(
    park: &impl Park,
    timeout_ms: u32,
    spin: Spin,
    mut attempt: impl FnMut() -> Option<i32>,
) -> i32 {
    // One process's own deadline: CLOCK_MONOTONIC, exact to the millisecond.
    let start = sys::monotonic_ns();
    let deadline = (timeout_ms != u32::MAX).then(|| start + u64::from(timeout_ms) * 1_000_000);
    match spin {
        Spin::Polite => {
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
        }
        Spin::For(_) | Spin::Busy => {
            let spin_end = match spin {
                Spin::For(us) => Some(start + u64::from(us) * 1_000),
                _ => deadline,
            };
            let mut next_sweep = start + u64::from(PARK_SLICE_MS) * 1_000_000;
            loop {
                for _ in 0..CHECKS_PER_CLOCK {
                    if let Some(r) = attempt() {
                        return r;
                    }
                    std::hint::spin_loop();
                }
                let now = sys::monotonic_ns();
                if deadline.is_some_and(|d| now >= d) {
                    return TIMEOUT;
                }
                if spin_end.is_some_and(|e| now >= e) {
                    break;
                }
                if now >= next_sweep {
                    park.sweep();
                    next_sweep = now + u64::from(PARK_SLICE_MS) * 1_000_000;
                }
            }
        }
    }
    let deadline_ms = deadline.map(|d| d.div_ceil(1_000_000));
    loop {
        let epoch = park.prepare();
        if let Some(r) = attempt() {
            park.cancel();
            return r;
        }
        let remaining = match deadline_ms {
            None => u64::from(PARK_SLICE_MS),
            Some(d) => d.saturating_sub(sys::monotonic_ms()),
        };
        if remaining == 0 {
            park.cancel();
            return TIMEOUT;
        }
        park.sleep(epoch, remaining.min(u64::from(PARK_SLICE_MS)) as u32);
    }
}
