//! Channel groups (`group`): one table per namespace. Not on the per-message path, so the expiry
//! travels as a u64.

use super::abi::*;
use super::{bytes, bytes_mut, lo_hi, open_report, trusted_owners, unlink_status, write_out};
use crate::group::{GroupOpen, GroupTable, Lifetime, Watch, UNCHANGED};
use crate::segment::{OpenError, Policy};
use crate::status::*;

/// `lifetime` of `ferry_group_add`: 0 until `expiry_ms` from now, 1 while the adding table handle
/// is open (its process alive).
pub(super) fn lifetime(kind: u32, expiry_ms: u64) -> Option<Lifetime> {
    match kind {
        LIFETIME_EXPIRY => Some(Lifetime::Expiry(expiry_ms)),
        LIFETIME_PROCESS => Some(Lifetime::Process),
        _ => None,
    }
}

pub(super) fn group_table<'a>(g: *const GroupTable) -> Option<&'a GroupTable> {
    // SAFETY: the binding passes only pointers it got from `ferry_group_open` and has not yet
    // passed to `ferry_group_free`; null is rejected here.
    unsafe { g.as_ref() }
}

/// Opens (creating if absent, with `memory` bytes) the group table of namespace `prefix`,
/// `/<prefix>~groups`, with the trust rule and timeout of `ferry_open`. On failure returns null
/// and writes the report of `open_report` to `err_out` (8 x i32).
#[no_mangle]
pub unsafe extern "C" fn ferry_group_open(
    prefix: *const u8,
    prefix_len: u32,
    memory: u32,
    mode: u32,
    timeout_ms: u32,
    trusted: *const u32,
    trusted_len: u32,
    err_out: *mut i32,
) -> *mut GroupTable {
    let Some(name) = crate::group::segment_name(bytes(prefix, prefix_len)) else {
        write_out(err_out, &open_report(&OpenError::new(ERR_INVALID_NAME, 0)));
        return std::ptr::null_mut();
    };
    let open = GroupOpen { name: &name, memory: u64::from(memory), mode, create: true };
    let policy = Policy { trusted_owners: trusted_owners(trusted, trusted_len), timeout_ms };
    match GroupTable::open_with(&open, policy) {
        Ok(g) => Box::into_raw(Box::new(g)),
        Err(e) => {
            write_out(err_out, &open_report(&e));
            std::ptr::null_mut()
        }
    }
}

/// Unmaps the table and closes its fd. Call once, after every other call on `g` returned.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_free(g: *mut GroupTable) {
    if !g.is_null() {
        // SAFETY: `g` came from Box::into_raw in ferry_group_open and the binding frees it once.
        drop(unsafe { Box::from_raw(g) });
    }
}

/// Removes the group table of namespace `prefix`. Open tables keep working on the old one.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_unlink(prefix: *const u8, prefix_len: u32) -> i32 {
    let Some(name) = crate::group::segment_name(bytes(prefix, prefix_len)) else {
        return ERR_INVALID_NAME;
    };
    unlink_status(&name)
}

/// Entries and total size of the open table into `out` (`group_info`; total_size <= 256 MiB).
#[no_mangle]
pub unsafe extern "C" fn ferry_group_info(g: *const GroupTable, out: *mut u32) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    let mut o = [0u32; group_info::LENGTH];
    o[group_info::ENTRIES] = g.entry_count();
    o[group_info::TOTAL_SIZE] = g.total_size() as u32;
    write_out(out, &o);
    OK
}

/// Adds `channel` to `group`: `lifetime` 0 for `expiry_ms` (0: never), 1 while this table handle
/// is open (`expiry_ms` ignored; ended by `ferry_group_free` or the process's death). Returns
/// ADDED (0), REFRESHED (1, it was a member: a deadline moved to the later one, or this handle
/// held it already), or ERR_INVALID_NAME / ERR_INVALID_ARGUMENT / ERR_TABLE_FULL (-100).
#[no_mangle]
pub unsafe extern "C" fn ferry_group_add(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    channel: *const u8,
    channel_len: u32,
    expiry_ms: u64,
    lifetime_kind: u32,
) -> i32 {
    let (Some(g), Some(lifetime)) = (group_table(g), lifetime(lifetime_kind, expiry_ms)) else {
        return ERR_INVALID_ARGUMENT;
    };
    let (group, channel) = (bytes(group, group_len), bytes(channel, channel_len));
    match lifetime {
        Lifetime::Expiry(ms) => g.add(group, channel, ms),
        Lifetime::Process => g.add_held(group, channel),
    }
    .unwrap_or_else(|code| code)
}

/// Ends a membership. Returns 1 if `channel` was a member of `group`, 0 if not, or an error.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_discard(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    channel: *const u8,
    channel_len: u32,
) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    match g.discard(bytes(group, group_len), bytes(channel, channel_len)) {
        Ok(removed) => i32::from(removed),
        Err(code) => code,
    }
}

/// The members of `group`, sorted, as [len: u8][name] records into `out` (`out_cap` bytes).
/// `info` (`members_info`) receives [count, bytes, watch words]. Returns OK, or NEED_BUFFER when
/// `bytes` > `out_cap` (nothing written: call again with a larger buffer), or an error.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_members(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    out: *mut u8,
    out_cap: u32,
    info: *mut u32,
) -> i32 {
    // SAFETY: the caller's pointers, as this function's own contract; no watch.
    unsafe { ferry_group_members_watched(g, group, group_len, std::ptr::null_mut(), 0, out, out_cap, info) }
}

/// `ferry_group_members` for a caller that reads one group again and again (a publisher before
/// each message): `watch` (`watch_cap` u32s, `group_watch`) keeps what the last call saw. While
/// those members are still the members (`GroupTable::unchanged`: one atomic load, and a syscall
/// per member held by another process), returns UNCHANGED and writes nothing. Otherwise reads them
/// as `ferry_group_members` does, and writes the new watch, or an empty one when it needs more
/// than `watch_cap` u32s (`info` says how many: a larger buffer watches next time). A zeroed
/// buffer is an empty watch.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_members_watched(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    watch: *mut u32,
    watch_cap: u32,
    out: *mut u8,
    out_cap: u32,
    info: *mut u32,
) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    let group = bytes(group, group_len);
    let kept = words_mut(watch, watch_cap);
    if let Some(w) = read_watch(kept) {
        if w.is_of(group) && g.unchanged(&w) {
            return UNCHANGED;
        }
    }
    let (names, w) = match g.members_watched(group) {
        Ok(read) => read,
        Err(code) => return code,
    };
    let needed = group_watch::HEADER + w.held.len() * group_watch::ENTRY;
    let status = write_members(&names, needed as u32, out, out_cap, info);
    // Kept only with the names it stands for: after NEED_BUFFER the next call must read them.
    write_watch(if status == OK { Some(&w) } else { None }, kept);
    status
}

/// Writes `names` as [len: u8][name] records into `out`, and [count, bytes, watch_words] into
/// `info`; NEED_BUFFER (records not written) when they do not fit.
fn write_members(names: &[Vec<u8>], watch_words: u32, out: *mut u8, out_cap: u32, info: *mut u32) -> i32 {
    let total: usize = names.iter().map(|n| 1 + n.len()).sum();
    let mut i = [0u32; members_info::LENGTH];
    i[members_info::COUNT] = names.len() as u32;
    i[members_info::BYTES] = total as u32;
    i[members_info::WATCH_WORDS] = watch_words;
    write_out(info, &i);
    let Some(dst) = bytes_mut(out, out_cap).get_mut(..total) else {
        return NEED_BUFFER;
    };
    let mut at = 0;
    for name in names {
        dst[at] = name.len() as u8; // names are at most 100 bytes
        dst[at + 1..at + 1 + name.len()].copy_from_slice(name);
        at += 1 + name.len();
    }
    OK
}

fn words_mut<'a>(p: *mut u32, len: u32) -> &'a mut [u32] {
    if p.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: the binding passes a Uint32Array of `len` u32s that lives for the call and is not
    // aliased during it.
    unsafe { std::slice::from_raw_parts_mut(p, len as usize) }
}

/// The watch in `buf`, if it holds one that parses (anything else is empty: the caller rescans).
fn read_watch(buf: &[u32]) -> Option<Watch> {
    use group_watch::*;
    if buf.get(VALID) != Some(&1) || buf.len() < HEADER {
        return None;
    }
    let held = buf[HELD] as usize;
    let entries = buf.get(HEADER..HEADER.checked_add(held.checked_mul(ENTRY)?)?)?;
    let u64_of = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Some(Watch {
        group_hash: buf[GROUP_HASH],
        version: u64_of(buf[VERSION_LO], buf[VERSION_HI]),
        earliest_expiry: u64_of(buf[EXPIRY_LO], buf[EXPIRY_HI]),
        held: entries.chunks_exact(ENTRY).map(|e| (e[0], u64_of(e[1], e[2]))).collect(),
    })
}

/// Writes `w` into `buf` if it fits, else leaves `buf` an empty watch (so does None).
fn write_watch(w: Option<&Watch>, buf: &mut [u32]) {
    use group_watch::*;
    if let Some(valid) = buf.get_mut(VALID) {
        *valid = 0;
    }
    let Some(w) = w.filter(|w| buf.len() >= HEADER + w.held.len() * ENTRY) else { return };
    buf[GROUP_HASH] = w.group_hash;
    (buf[VERSION_LO], buf[VERSION_HI]) = lo_hi(w.version);
    (buf[EXPIRY_LO], buf[EXPIRY_HI]) = lo_hi(w.earliest_expiry);
    buf[HELD] = w.held.len() as u32;
    for (k, &(i, word)) in w.held.iter().enumerate() {
        let at = HEADER + k * ENTRY;
        buf[at] = i;
        (buf[at + 1], buf[at + 2]) = lo_hi(word);
    }
    buf[VALID] = 1;
}

/// Counts one sendGroup call, the members it skipped as full and those it found without a
/// channel, in the namespace's counters.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_note_fanout(g: *const GroupTable, skipped: u32, missing: u32) {
    if let Some(g) = group_table(g) {
        g.note_fanout(skipped, missing);
    }
}

/// The identity (inode) of each channel named in `records` (`count` [len: u8][name] records, as
/// `ferry_group_members` writes them, `records_len` bytes) of namespace `prefix`, into `out`
/// (`count` x u64): 0 for a channel that does not exist. sendGroup compares them with the
/// identity of the handles it keeps, so a channel removed (or removed and created again) since
/// is never sent to through a stale handle. Returns OK, or ERR_INVALID_ARGUMENT for records that
/// do not parse.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_channel_ids(
    prefix: *const u8,
    prefix_len: u32,
    records: *const u8,
    records_len: u32,
    count: u32,
    out: *mut u64,
) -> i32 {
    let prefix = bytes(prefix, prefix_len);
    let records = bytes(records, records_len);
    let mut ids = Vec::with_capacity(count as usize);
    let mut at = 0;
    for _ in 0..count {
        let Some(&len) = records.get(at) else { return ERR_INVALID_ARGUMENT };
        let Some(name) = records.get(at + 1..at + 1 + len as usize) else { return ERR_INVALID_ARGUMENT };
        ids.push(crate::group::channel_id(prefix, name));
        at += 1 + len as usize;
    }
    write_out(out, &ids);
    OK
}

/// Sizes and counters into `out` (`group_stat_index`), see `GroupStat`.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_stat(g: *const GroupTable, out: *mut u64) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    let s = g.stat();
    let mut o = [0u64; group_stat_index::LENGTH];
    o[group_stat_index::ENTRIES] = u64::from(s.entries);
    o[group_stat_index::TOTAL_SIZE] = s.total_size;
    o[group_stat_index::LIVE] = s.live;
    o[group_stat_index::ADDED] = s.added;
    o[group_stat_index::REFRESHED] = s.refreshed;
    o[group_stat_index::DISCARDED] = s.discarded;
    o[group_stat_index::EXPIRED] = s.expired;
    o[group_stat_index::RECLAIMED] = s.reclaimed;
    o[group_stat_index::MERGED] = s.merged;
    o[group_stat_index::FANOUTS] = s.fanouts;
    o[group_stat_index::SKIPPED] = s.skipped;
    o[group_stat_index::CREATED_UNIX_MS] = s.created_unix_ms;
    o[group_stat_index::MISSING] = s.missing;
    o[group_stat_index::DIED] = s.died;
    o[group_stat_index::CLOSED] = s.closed;
    write_out(out, &o);
    OK
}

/// A read-only consistency report into `out` (`group_check_index`), see `group::Check`.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_check(g: *const GroupTable, out: *mut u32) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    let c = g.check();
    let mut o = [0u32; group_check_index::LENGTH];
    o[group_check_index::ENTRIES] = c.entries;
    o[group_check_index::FREE] = c.free;
    o[group_check_index::WRITING_ALIVE] = c.writing_alive;
    o[group_check_index::WRITING_ABANDONED] = c.writing_abandoned;
    o[group_check_index::LIVE] = c.live;
    o[group_check_index::EXPIRED] = c.expired;
    o[group_check_index::DUPLICATES] = c.duplicates;
    o[group_check_index::CORRUPT] = c.corrupt;
    o[group_check_index::HELD] = c.held;
    o[group_check_index::HELD_ABANDONED] = c.held_abandoned;
    write_out(out, &o);
    OK
}
