//! The process's waiting thread: one `WaitSet` holds every parked promise wait of a JS realm (a
//! channel handle and side, and the epoch it parked at), and one call, `wait`, sleeps on all of
//! them at once with `futex_waitv`, so a process parked on 50 channels holds one thread, not 50.
//!
//! The Deno binding keeps one `wait` outstanding as a nonblocking FFI call (it runs on a
//! blocking-pool thread) whenever anything is parked. `wait` returns when a parked wait's line was
//! woken (or its slice ended): the event loop then hears of all that fired in one turn (`take`),
//! instead of one thread hop per channel. Adding or removing a wait while `wait` sleeps kicks a
//! private control word, so the sleeper re-reads the set without returning to JS.
//!
//! Each entry keeps its handle's `Shared` by `Arc`, and `wait` sleeps on clones of those: a handle
//! closed and freed while the waiter sleeps on its line leaves the mapping alive until the waiter
//! lets go, so the kernel never reads a word that was unmapped.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::channel::{Shared, Side};
use crate::sys::{self, FutexWaitv, WaitvEnd, FUTEX_WAITV_MAX};
use crate::wait::PARK_SLICE_MS;

/// Waits one set holds at most: a `futex_waitv` takes 128 words, one is the control word.
pub const WAITSET_MAX: usize = FUTEX_WAITV_MAX - 1;

/// How often a kernel without `futex_waitv` (before Linux 5.16) has the waiter poll its lines.
const POLL_WITHOUT_WAITV: Duration = Duration::from_millis(1);

struct Entry {
    shared: Arc<Shared>,
    side: Side,
    epoch: u32,
    token: u32,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    /// Tokens of waits that fired (woken, or their slice ended), until `take` hands them out.
    fired: Vec<u32>,
    /// Whether `wait` is asleep on a snapshot of `entries`: a change must then kick it.
    sleeping: bool,
}

/// The parked waits of one JS realm (see the module's doc).
#[derive(Default)]
pub struct WaitSet {
    inner: Mutex<Inner>,
    /// Bumped to make a sleeping `wait` re-read the set. Private to this process.
    control: AtomicU32,
}

impl WaitSet {
    pub fn new() -> WaitSet {
        WaitSet::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing in the set is left half-changed by a panic: keep going with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the wait `token` on `shared`'s `side` line, already registered there as a sleeper at
    /// `epoch` (`Shared::park_prepare`). False when the set is full.
    pub fn add(&self, shared: Arc<Shared>, side: Side, epoch: u32, token: u32) -> bool {
        let mut g = self.lock();
        if g.entries.len() >= WAITSET_MAX {
            return false;
        }
        g.entries.push(Entry { shared, side, epoch, token });
        let sleeping = g.sleeping;
        drop(g);
        if sleeping {
            self.kick();
        }
        true
    }

    /// Takes the wait `token` out, fired or not, and cancels its sleeper registration.
    pub fn remove(&self, token: u32) {
        let mut g = self.lock();
        g.fired.retain(|&t| t != token);
        if let Some(i) = g.entries.iter().position(|e| e.token == token) {
            let e = g.entries.swap_remove(i);
            e.shared.park_cancel(e.side);
            let sleeping = g.sleeping;
            drop(g);
            // Kicked even when entries remain: the sleeper's snapshot holds the removed handle's
            // mapping until it re-reads the set.
            if sleeping {
                self.kick();
            }
        }
    }

    fn kick(&self) {
        // SYNC POINT: the entries changed under the mutex before this; the sleeper re-reads them
        // under the same mutex, so the counter itself publishes nothing.
        self.control.fetch_add(1, AcqRel);
        sys::futex_wake_private(&self.control);
    }

    /// Moves every entry whose line was woken since its epoch to `fired`; with `all`, every entry
    /// (the slice ended: each wait re-checks its condition, deadline and peers).
    fn collect(g: &mut Inner, all: bool) {
        let Inner { entries, fired, .. } = g;
        entries.retain(|e| {
            let line = e.shared.wait_line(e.side);
            if all || line.woken_since(e.epoch) {
                e.shared.park_cancel(e.side);
                fired.push(e.token);
                false
            } else {
                true
            }
        });
    }

    /// Sleeps until a wait of the set fires or `timeout_ms` passes (then they all fire): returns
    /// how many fired, for `take`. Sweeps each channel waited on for dead participants on every
    /// return, as a parked wait of one channel does. Returns at once when the set is empty.
    pub fn wait(&self, timeout_ms: u32) -> u32 {
        let timeout_ms = timeout_ms.min(PARK_SLICE_MS);
        let deadline = sys::monotonic_ns() + u64::from(timeout_ms) * 1_000_000;
        loop {
            let (snapshot, control) = {
                let mut g = self.lock();
                Self::collect(&mut g, false);
                if !g.fired.is_empty() || g.entries.is_empty() {
                    return g.fired.len() as u32;
                }
                g.sleeping = true;
                let snapshot: Vec<(Arc<Shared>, Side, u32)> =
                    g.entries.iter().map(|e| (Arc::clone(&e.shared), e.side, e.epoch)).collect();
                // SYNC POINT: pairs with `kick`; read under the mutex, so a change made after this
                // snapshot bumps the word past this value and the sleep below returns at once.
                (snapshot, self.control.load(Acquire))
            };
            let mut words = Vec::with_capacity(snapshot.len() + 1);
            words.push(FutexWaitv::new(&self.control, control, true));
            for (shared, side, epoch) in &snapshot {
                words.push(FutexWaitv::new(shared.wait_line(*side).futex_word(), *epoch, false));
            }
            if sys::futex_waitv(&words, deadline) == WaitvEnd::Unsupported {
                let left = deadline.saturating_sub(sys::monotonic_ns());
                std::thread::sleep(POLL_WITHOUT_WAITV.min(Duration::from_nanos(left)));
            }
            drop(words);
            for (shared, _, _) in &snapshot {
                // A dead peer's ack-mode message becomes PeerDied here, which wakes its sender's line.
                shared.maybe_sweep();
            }
            drop(snapshot);
            let mut g = self.lock();
            g.sleeping = false;
            let slice_over = sys::monotonic_ns() >= deadline;
            Self::collect(&mut g, slice_over);
            if !g.fired.is_empty() || g.entries.is_empty() {
                return g.fired.len() as u32;
            }
        }
    }

    /// Hands out the tokens of fired waits, as many as `out` holds; returns how many.
    pub fn take(&self, out: &mut [u32]) -> u32 {
        let mut g = self.lock();
        let n = g.fired.len().min(out.len());
        for (o, t) in out.iter_mut().zip(g.fired.drain(..n)) {
            *o = t;
        }
        n as u32
    }
}
