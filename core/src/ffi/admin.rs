//! Administration: a channel's counters and participants, a recovery sweep on demand, and removal
//! of a channel (also one whose creator died before finishing it).

use super::abi::*;
use super::{handle, shm_name, trusted_owners, unlink_status, write_out};
use crate::channel::Handle;
use crate::segment::Policy;
use crate::status::*;

/// Sizes and counters into `out` (`stat_index`), see `ChannelStat`.
#[no_mangle]
pub unsafe extern "C" fn ferry_stat(h: *const Handle, out: *mut u64) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let s = h.stat();
    let mut o = [0u64; stat_index::LENGTH];
    o[stat_index::CAPACITY] = u64::from(s.capacity);
    o[stat_index::MAX_MESSAGE] = u64::from(s.max_message);
    o[stat_index::TOTAL_SIZE] = s.total_size;
    o[stat_index::RESERVED] = s.reserved;
    o[stat_index::MEMORY] = s.memory;
    o[stat_index::DEPTH] = s.depth;
    o[stat_index::IN_FLIGHT] = s.in_flight;
    o[stat_index::SENT] = s.sent;
    o[stat_index::RECEIVED] = s.received;
    o[stat_index::RELEASED] = s.released;
    o[stat_index::EXPIRED] = s.expired;
    o[stat_index::FULL] = s.full;
    o[stat_index::REDELIVERED] = s.redelivered;
    o[stat_index::CREATED_UNIX_MS] = s.created_unix_ms;
    o[stat_index::PARTICIPANTS] = s.participants;
    o[stat_index::RESIDENT] = s.resident;
    write_out(out, &o);
    OK
}

/// Up to `max` participants as `participant_row`s into `out` (STRIDE * max x u32); returns the
/// count.
#[no_mangle]
pub unsafe extern "C" fn ferry_participants(h: *const Handle, out: *mut u32, max: u32) -> u32 {
    let Some(h) = handle(h) else { return 0 };
    let flat: Vec<u32> = h
        .participants()
        .into_iter()
        .take(max as usize)
        .flat_map(|p| {
            let mut row = [0u32; participant_row::STRIDE];
            row[participant_row::PID] = p.pid;
            row[participant_row::ALIVE] = u32::from(p.alive);
            row[participant_row::IN_FLIGHT] = p.in_flight;
            row[participant_row::ROLE] = u32::from(p.has_sent) | (u32::from(p.has_received) << 1);
            row
        })
        .collect();
    write_out(out, &flat);
    (flat.len() / participant_row::STRIDE) as u32
}

/// Recovers dead participants now; returns how many.
#[no_mangle]
pub unsafe extern "C" fn ferry_sweep(h: *const Handle) -> u32 {
    handle(h).map_or(0, |h| h.sweep())
}

#[no_mangle]
pub unsafe extern "C" fn ferry_unlink(name: *const u8, name_len: u32) -> i32 {
    let Some(name) = shm_name(name, name_len) else {
        return ERR_INVALID_NAME;
    };
    unlink_status(&name)
}

/// Removes `<prefix>.<name>` if its creator died before finishing it: not built, nobody building
/// it, nobody using it. OK (removed), ERR_NOT_FOUND, BUILT (a finished channel: kept),
/// ERR_BUILDING (its builder lives: kept), ERR_INCOMPATIBLE, ERR_FOREIGN (as `ferry_open` with
/// `mode` and the trusted uids) or another open error.
#[no_mangle]
pub unsafe extern "C" fn ferry_unlink_incomplete(
    name: *const u8,
    name_len: u32,
    mode: u32,
    trusted: *const u32,
    trusted_len: u32,
) -> i32 {
    let Some(name) = shm_name(name, name_len) else {
        return ERR_INVALID_NAME;
    };
    let policy = Policy { trusted_owners: trusted_owners(trusted, trusted_len), timeout_ms: 0 };
    crate::segment::remove_incomplete_channel(&name, mode, &policy)
}
