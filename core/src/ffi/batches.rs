//! Batches: many messages per call, one wake per batch.

use std::slice;

use super::abi::*;
use super::channel::meta_flags;
use super::{bytes, bytes_mut, handle, lo_hi, write_out};
use crate::channel::{Handle, Received};
use crate::status::*;

/// Sends `count` messages laid end to end in `buf` (their lengths in `lens`), in async mode,
/// until one finds no room (flags: SEND_REPEAT marks every one; SEND_ACK is not taken).
/// `out[0]` = how many were sent; returns why it stopped (OK: all).
#[no_mangle]
pub unsafe extern "C" fn ferry_send_batch(
    h: *const Handle,
    buf: *const u8,
    buf_len: u32,
    lens: *const u32,
    count: u32,
    flags: u32,
    expiry_ms: u32,
    out: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    let lens: &[u32] = if lens.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: the binding passes a Uint32Array of at least `count` lengths.
        unsafe { slice::from_raw_parts(lens, count as usize) }
    };
    let (sent, why) = h.send_batch(bytes(buf, buf_len), lens, expiry_ms, flags & SEND_REPEAT != 0);
    write_out(out, &[sent]);
    why
}

/// Receives up to `max` messages into `dst` from `dst_off` on (see `Handle::recv_batch` for the
/// 8 x u32 per message in `meta`, which holds `meta_len` u32). `count_out[0]` = how many;
/// returns OK, EMPTY or an error.
#[no_mangle]
pub unsafe extern "C" fn ferry_recv_batch(
    h: *const Handle,
    dst: *mut u8,
    dst_cap: u32,
    dst_off: u32,
    max: u32,
    flags: u32,
    meta: *mut u32,
    meta_len: u32,
    count_out: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    let Some(dst) = bytes_mut(dst, dst_cap).get_mut(dst_off as usize..) else {
        return ERR_INVALID_ARGUMENT;
    };
    let meta: &mut [u32] = if meta.is_null() || meta_len == 0 {
        &mut []
    } else {
        // SAFETY: the binding passes a Uint32Array of `meta_len` entries, not aliased.
        unsafe { slice::from_raw_parts_mut(meta, meta_len as usize) }
    };
    let max = max.min((meta.len() / batch_meta::STRIDE) as u32);
    let mut entries = meta.chunks_exact_mut(batch_meta::STRIDE);
    let record = |m: &Received, at: Option<u32>| {
        // `max` is at most the number of entries, and the engine records at most `max` messages.
        let Some(e) = entries.next() else { return };
        e[batch_meta::SLOT] = m.slot;
        e[batch_meta::GENERATION] = m.generation;
        e[batch_meta::LEN] = m.len;
        e[batch_meta::PID] = m.pid;
        (e[batch_meta::SEQ_LO], e[batch_meta::SEQ_HI]) = lo_hi(m.seq);
        e[batch_meta::FLAGS] = meta_flags(m) | if at.is_none() { meta_flag::NEEDS_BUFFER } else { 0 };
        e[batch_meta::AT] = at.unwrap_or(0);
    };
    match h.recv_batch(dst, max, flags & RECV_AUTO_RELEASE != 0, record) {
        Ok(n) => {
            write_out(count_out, &[n]);
            OK
        }
        Err(code) => code,
    }
}
