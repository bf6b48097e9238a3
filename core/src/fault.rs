//! Deterministic kill points for the fault-injection suite. Compiled in only with the
//! `fault-injection` feature (the chaos suite builds a separate library with it); in normal
//! builds `point` is an empty inline function.
//!
//! `FERRY_FAULT=<name>` aborts the process the first time it passes the point `<name>`;
//! `FERRY_FAULT=<name>:<n>` aborts on the n-th pass. Abort (SIGABRT) is as abrupt as SIGKILL
//! for the other processes: no destructor, no unlock, the kernel drops the OFD locks.
//! With `FERRY_FAULT_ACTION=stop` the process stops itself there instead (SIGSTOP), holding
//! whatever it holds until a SIGCONT lets it carry on: a process frozen at a chosen instruction.

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static STOP: OnceLock<bool> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn target() -> &'static Option<(String, u64)> {
        TARGET.get_or_init(|| {
            let spec = std::env::var("FERRY_FAULT").ok()?;
            match spec.split_once(':') {
                Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1).max(1))),
                None => Some((spec, 1)),
            }
        })
    }

    pub fn point(name: &str) {
        if let Some((wanted, nth)) = target() {
            if wanted == name && HITS.fetch_add(1, Relaxed) + 1 == *nth {
                if *STOP.get_or_init(|| std::env::var("FERRY_FAULT_ACTION").is_ok_and(|a| a == "stop")) {
                    // SAFETY: raise only sends a signal to this process.
                    unsafe { libc::raise(libc::SIGSTOP) };
                    return;
                }
                std::process::abort();
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
pub use enabled::point;

/// A named kill point; does nothing unless built with `fault-injection`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// The kill points the engine passes, for tests to iterate over.
pub const POINTS: &[&str] = &[
    "open.building",
    "groups.building",
    "join.locked",
    "send.claimed",
    // channel/alloc.rs, a growth (charged, then pages allocated) and a shrink (punching, punched):
    "alloc.charged",
    "alloc.reserved",
    "alloc.punching",
    "alloc.punched",
    "send.written",
    "send.ready",
    "recv.claimed",
    "recv.run",
    "release.before",
    "ack.collect",
    "recover.slot",
    // group/ (group::FAULT_POINTS, in the order an add passes them):
    "group.claimed",
    "group.written",
    "group.published",
    "group.merging",
    "group.reclaiming",
    "group.freeing-dead",
    "group.closing",
    // structs/ (structs::FAULT_POINTS, in the order an append passes them):
    "structs.building",
    "structs.locked",
    "structs.written",
    "structs.published",
];
