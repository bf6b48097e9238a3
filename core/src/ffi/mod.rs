//! The C ABI Deno binds to (`ffi/symbols.ts` mirrors it), one file per surface: `channel`
//! (open, send, receive, ack outcomes), `loans` (zero-copy), `batches`, `waits` (the calls that
//! block or park), `admin` (stat, sweep, unlink), `groups`, `structs` (the namespace's msgpack structure store), and `testing` (hooks that only tests and
//! the benchmark call, compiled only with the `testing` feature). `abi` names every number the
//! binding shares with them. Thin on purpose: argument checks and conversions only; the logic lives
//! in `channel` and `group`. Every per-message entry point takes only u32/i32/pointer/buffer
//! parameters so that V8 calls it on its fast path.
//!
//! # Safety (every `unsafe extern "C"` function in these files)
//!
//! `h` is null or a pointer returned by `ferry_open` and not yet passed to `ferry_free`, and
//! calls taking `h` are made by one thread at a time (a `Handle` is `Send`, not `Sync`: Deno's JS
//! thread makes them all). `s` is null or a pointer returned by `ferry_waitset_new` (never freed);
//! any thread may use it (a `WaitSet` is `Sync`). `g` is null or a
//! pointer from `ferry_group_open` not yet passed to `ferry_group_free`, the store pointer of the `structs`
//! calls is null or one from `ferry_structs_open` not yet passed to `ferry_structs_free`. Every buffer pointer is
//! null or valid for the length passed with it (out arrays for the length each function documents,
//! as `abi` names them) for the duration of the call. The Deno binding upholds this.
#![allow(clippy::missing_safety_doc)] // stated once above rather than on each function

pub mod abi;
mod admin;
mod batches;
mod channel;
mod groups;
mod loans;
mod structs;
#[cfg(feature = "testing")]
mod testing;
mod waits;

use std::slice;

use crate::channel::{Handle, Marks};
use crate::segment::OpenError;
use crate::status::*;
use crate::waiter::WaitSet;
use abi::*;

/// A u64 as the two u32 halves the out-arrays carry it in (low, high).
pub(crate) fn lo_hi(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

pub(crate) fn handle<'a>(h: *const Handle) -> Option<&'a Handle> {
    // SAFETY: the binding passes only pointers it got from `ferry_open` and has not yet passed
    // to `ferry_free`, from one thread at a time; null is rejected here.
    unsafe { h.as_ref() }
}

pub(crate) fn wait_set<'a>(s: *const WaitSet) -> Option<&'a WaitSet> {
    // SAFETY: the binding passes only pointers it got from `ferry_waitset_new`, which are never
    // freed; `WaitSet` is `Sync`, so a reference on any thread is sound.
    unsafe { s.as_ref() }
}

pub(crate) fn bytes<'a>(p: *const u8, len: u32) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the binding passes a JS buffer of at least `len` bytes that lives for the call.
    unsafe { slice::from_raw_parts(p, len as usize) }
}

pub(crate) fn bytes_mut<'a>(p: *mut u8, len: u32) -> &'a mut [u8] {
    if p.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: as `bytes`, and the buffer is not aliased during the call.
    unsafe { slice::from_raw_parts_mut(p, len as usize) }
}

pub(crate) fn write_out<T: Copy>(out: *mut T, values: &[T]) {
    if out.is_null() {
        return;
    }
    // SAFETY: the binding passes an out array at least as long as each entry point documents.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
}

/// Channel names: letters, digits and `. _ - !`, 1..=201 bytes (prefix, '.', name).
pub(crate) fn shm_name(p: *const u8, len: u32) -> Option<String> {
    let raw = bytes(p, len);
    let ok = !raw.is_empty()
        && raw.len() <= 201
        && raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'!'));
    // All bytes are ASCII, so the conversion cannot fail.
    ok.then(|| format!("/{}", String::from_utf8_lossy(raw)))
}

/// The uids a caller trusts besides itself and root (`trusted`, `trusted_len` u32).
pub(crate) fn trusted_owners<'a>(trusted: *const u32, trusted_len: u32) -> &'a [u32] {
    u32s(trusted, trusted_len)
}

/// A u32 array the binding passes with its length (a Uint32Array that lives for the call).
pub(crate) fn u32s<'a>(p: *const u32, len: u32) -> &'a [u32] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the binding passes a Uint32Array of `len` entries that lives for the call.
    unsafe { slice::from_raw_parts(p, len as usize) }
}

/// What an open that failed writes to its `err_out` (`open_report::LENGTH` x i32).
pub(crate) fn open_report(e: &OpenError) -> [i32; open_report::LENGTH] {
    let f = e.file;
    let (size_lo, size_hi) = lo_hi(f.map_or(0, |f| f.size));
    let mut r = [0i32; open_report::LENGTH];
    r[open_report::STATUS] = e.code;
    r[open_report::DETAIL] = e.detail;
    r[open_report::FOUND] = i32::from(f.is_some());
    r[open_report::OWNER] = f.map_or(-1, |f| f.owner as i32);
    r[open_report::MODE] = f.map_or(0, |f| f.mode as i32);
    r[open_report::SIZE_LO] = size_lo as i32;
    r[open_report::SIZE_HI] = size_hi as i32;
    r[open_report::MTIME] = f.map_or(0, |f| f.modified_unix_s.min(u64::from(u32::MAX)) as u32 as i32);
    r
}

/// How the `flags` of a send or commit mark its message (SEND_ACK, SEND_REPEAT).
pub(crate) fn send_marks(flags: u32) -> Marks {
    Marks { ack: flags & SEND_ACK != 0, repeat: flags & SEND_REPEAT != 0 }
}

pub(crate) fn send_result(r: Result<(u32, u32, u64), i32>, out: *mut u32) -> i32 {
    match r {
        Ok((slot, generation, seq)) => {
            let mut o = [0u32; send_out::LENGTH];
            o[send_out::SLOT] = slot;
            o[send_out::GENERATION] = generation;
            (o[send_out::SEQ_LO], o[send_out::SEQ_HI]) = lo_hi(seq);
            write_out(out, &o);
            OK
        }
        Err(code) => code,
    }
}

/// The status of removing the shm object `name` (a channel or a group table) by name.
pub(crate) fn unlink_status(name: &str) -> i32 {
    match crate::sys::shm_remove(name) {
        Ok(()) => OK,
        // The one errno mapping of the open path (EPERM, a sticky /dev/shm, is a permission error).
        Err(e) => crate::segment::io_error(e).code,
    }
}

const _: () = assert!(open_report::LENGTH == OPEN_REPORT_LEN as usize);
