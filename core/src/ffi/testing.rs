//! Hooks only tests and the benchmark call, compiled only with the `testing` feature (a release
//! build does not export them; `ffi/testing.ts` is their symbol table, loaded from a build that
//! has them).

use super::bytes;
use super::groups::{group_table, lifetime};
use crate::group::{AddStop, GroupTable};
use crate::status::*;

/// CLOCK_MONOTONIC nanoseconds, low 32 bits: a timer cheap enough to wrap every message in a
/// benchmark (differences are exact while under 4.29 s).
#[no_mangle]
pub extern "C" fn ferry_clock_ns32() -> u32 {
    crate::sys::monotonic_ns() as u32
}

/// For tests only: an add that stops early (`stop`: 1 after claiming, half-written; 2 published
/// without the duplicate checks; 3 published HELD and forgotten, a holder that will "die" when
/// `g` is freed). See `group::AddStop`.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_debug_add(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    channel: *const u8,
    channel_len: u32,
    expiry_ms: u64,
    lifetime_kind: u32,
    stop: u32,
) -> i32 {
    let (Some(g), Some(lifetime)) = (group_table(g), lifetime(lifetime_kind, expiry_ms)) else {
        return ERR_INVALID_ARGUMENT;
    };
    let stop = match stop {
        1 => AddStop::Claimed,
        2 => AddStop::PublishedUnmerged,
        3 => AddStop::HeldForgotten,
        _ => AddStop::Complete,
    };
    g.add_stopping(bytes(group, group_len), bytes(channel, channel_len), lifetime, stop)
        .unwrap_or_else(|code| code)
}
