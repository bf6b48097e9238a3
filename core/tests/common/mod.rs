//! What the integration tests share: unique channel names, a handle opener, and cleanup.

#![allow(dead_code)] // each test file uses its own subset

use ferry_core::channel::{Handle, OpenOptions};

/// A channel name no other test (or earlier run) uses.
pub fn name(tag: &str) -> String {
    format!("/ferrytest.{}-{}-{}", tag, std::process::id(), ferry_core::sys::monotonic_ns())
}

/// A participant on `name` with 256-byte messages.
pub fn open(name: &str, capacity: u32, slots: u32) -> Handle {
    Handle::open(&OpenOptions {
        name,
        capacity,
        max_message: 256,
        memory: ferry_core::layout::MEMORY_DEFAULT,
        mode: 0o600,
        slot_limit: slots,
        observer: false,
    })
    .expect("open")
}

/// Removes the segment when the test ends, however it ends.
pub struct Unlink(pub String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = ferry_core::sys::shm_remove(&self.0);
    }
}
