//! The calls that wait: blocking sends, receives and ack waits (on the calling thread, by the policy
//! of `crate::wait`), and the park calls the Deno binding builds its own waits from (the sleep
//! runs on a blocking-pool thread through `ferry_waiter`).

use super::abi::*;
use super::batches::ferry_recv_batch;
use super::channel::recv_into;
use super::{bytes, bytes_mut, handle, send_result, waiter};
use crate::channel::{Handle, Shared, Side};
use crate::status::*;

/// Sends, blocking the calling thread for room up to `timeout_ms` (u32::MAX: no limit).
#[no_mangle]
pub unsafe extern "C" fn ferry_send_wait(
    h: *const Handle,
    buf: *const u8,
    len: u32,
    flags: u32,
    expiry_ms: u32,
    timeout_ms: u32,
    out: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let payload = bytes(buf, len);
    let mut last = TIMEOUT;
    let r = h.wait_for(Side::Send, timeout_ms, || {
        match h.send_with(payload, flags & SEND_ACK != 0, expiry_ms, true) {
            Err(code @ (FULL_CAPACITY | FULL_SLOTS | FULL_MEMORY)) => {
                last = code;
                None
            }
            r => Some(send_result(r, out)),
        }
    });
    if r == TIMEOUT {
        h.note_full();
        return last;
    }
    r
}

/// As `ferry_recv`, blocking the calling thread up to `timeout_ms`.
#[no_mangle]
pub unsafe extern "C" fn ferry_recv_wait(
    h: *const Handle,
    dst: *mut u8,
    dst_cap: u32,
    dst_off: u32,
    flags: u32,
    meta: *mut u32,
    timeout_ms: u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let Some(dst) = bytes_mut(dst, dst_cap).get_mut(dst_off as usize..) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.wait_for(Side::Recv, timeout_ms, || match recv_into(h, dst, flags, meta) {
        EMPTY => None,
        r => Some(r),
    })
}

/// Blocks until the ack-mode message has an outcome or `timeout_ms` passes (TIMEOUT; the
/// caller then decides whether to `ferry_ack_cancel`).
#[no_mangle]
pub unsafe extern "C" fn ferry_ack_wait(
    h: *const Handle,
    slot: u32,
    generation: u32,
    timeout_ms: u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.wait_for(Side::Send, timeout_ms, || match h.ack_status(slot, generation) {
        PENDING => None,
        r => Some(r),
    })
}

/// Blocks the calling thread up to `timeout_ms` until this sender could send again (a slot of
/// its was released, or the channel has room): OK, or TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn ferry_send_room_wait(h: *const Handle, timeout_ms: u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    h.wait_for(Side::Send, timeout_ms, || h.has_room().then_some(OK))
}

/// side: 0 receive, 1 send. Returns the epoch for `ferry_park_wait`.
#[no_mangle]
pub unsafe extern "C" fn ferry_park_prepare(h: *const Handle, side: u32) -> u32 {
    handle(h).map_or(0, |h| h.park_prepare(Side::from_u32(side)))
}

#[no_mangle]
pub unsafe extern "C" fn ferry_park_cancel(h: *const Handle, side: u32) {
    if let Some(h) = handle(h) {
        h.park_cancel(Side::from_u32(side));
    }
}

/// The part of handle `h` another thread may use (`ferry_park_wait`), valid until `ferry_free(h)`.
#[no_mangle]
pub unsafe extern "C" fn ferry_waiter(h: *const Handle) -> *const Shared {
    handle(h).map_or(std::ptr::null(), |h| h.shared() as *const Shared)
}

/// Sleeps up to `timeout_ms` (one slice at most) unless woken; bound as nonblocking in Deno, so it
/// runs on a blocking-pool thread while the JS thread goes on using the handle: it takes the
/// `ferry_waiter` pointer, never the handle itself.
#[no_mangle]
pub unsafe extern "C" fn ferry_park_wait(w: *const Shared, side: u32, epoch: u32, timeout_ms: u32) -> i32 {
    let Some(w) = waiter(w) else {
        return ERR_INVALID_ARGUMENT;
    };
    w.park_wait(Side::from_u32(side), epoch, timeout_ms)
}

/// As `ferry_recv_batch`, blocking the calling thread up to `timeout_ms` for the first message.
#[no_mangle]
pub unsafe extern "C" fn ferry_recv_batch_wait(
    h: *const Handle,
    dst: *mut u8,
    dst_cap: u32,
    dst_off: u32,
    max: u32,
    flags: u32,
    meta: *mut u32,
    meta_len: u32,
    count_out: *mut u32,
    timeout_ms: u32,
) -> i32 {
    let Some(hr) = handle(h) else { return ERR_INVALID_ARGUMENT };
    hr.wait_for(Side::Recv, timeout_ms, || {
        // SAFETY: the same arguments the caller gave us, for the duration of this call.
        match unsafe { ferry_recv_batch(h, dst, dst_cap, dst_off, max, flags, meta, meta_len, count_out) } {
            EMPTY => None,
            r => Some(r),
        }
    })
}
