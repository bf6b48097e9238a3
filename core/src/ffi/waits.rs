//! The calls that wait: blocking sends, receives and ack waits (on the calling thread, by the policy
//! of `crate::wait` and the handle's `spin` option), and the park calls the Deno binding builds its
//! promise waits from (they all sleep in one `crate::waiter::WaitSet` per JS realm, on one
//! blocking-pool thread).

use super::batches::ferry_recv_batch;
use super::channel::recv_into;
use super::{bytes, bytes_mut, handle, send_marks, send_result, wait_set};
use crate::channel::{Handle, Side};
use crate::status::*;
use crate::wait::Spin;
use crate::waiter::WaitSet;

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
    let r =
        h.wait(Side::Send, timeout_ms, || match h.send_with(payload, send_marks(flags), expiry_ms, true) {
            Err(code @ (FULL_CAPACITY | FULL_SLOTS | FULL_MEMORY)) => {
                last = code;
                None
            }
            r => Some(send_result(r, out)),
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
    h.wait(Side::Recv, timeout_ms, || match recv_into(h, dst, flags, meta) {
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
    h.wait(Side::Send, timeout_ms, || match h.ack_status(slot, generation) {
        PENDING => None,
        r => Some(r),
    })
}

/// Blocks the calling thread up to `timeout_ms` until this sender could send again (a slot of
/// its was released, or the channel has room): OK, or TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn ferry_send_room_wait(h: *const Handle, timeout_ms: u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    h.wait(Side::Send, timeout_ms, || h.has_room().then_some(OK))
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

/// How many times sleepers on `side` (0 receive, 1 send) were woken, wrapping: a promise wait
/// that sees its peer side's count move since its last wait spins through the peer's wake-up.
#[no_mangle]
pub unsafe extern "C" fn ferry_wake_epoch(h: *const Handle, side: u32) -> u32 {
    handle(h).map_or(0, |h| h.wake_epoch(Side::from_u32(side)))
}

/// Sets how handle `h`'s blocking waits spin before they park (`wait::Spin`, ABI word): OK, or
/// ERR_INVALID_ARGUMENT for a word that is not one.
#[no_mangle]
pub unsafe extern "C" fn ferry_set_spin(h: *const Handle, spin: u32) -> i32 {
    let (Some(h), Some(spin)) = (handle(h), Spin::from_abi(spin)) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.set_spin(spin);
    OK
}

/// A new set of parked waits for one JS realm. Never freed: a realm keeps one for its lifetime
/// (a worker that ends leaks one small, empty set).
#[no_mangle]
pub extern "C" fn ferry_waitset_new() -> *const WaitSet {
    Box::into_raw(Box::new(WaitSet::new()))
}

/// Parks handle `h`'s `side` in set `s` as wait `token`, after `ferry_park_prepare` gave `epoch`
/// and a re-check found nothing: 1, or 0 when the set is full (the caller uses another set).
#[no_mangle]
pub unsafe extern "C" fn ferry_waitset_add(
    s: *const WaitSet,
    h: *const Handle,
    side: u32,
    epoch: u32,
    token: u32,
) -> u32 {
    let (Some(s), Some(h)) = (wait_set(s), handle(h)) else { return 0 };
    u32::from(s.add(h.shared_arc(), Side::from_u32(side), epoch, token))
}

/// Takes wait `token` out of set `s` (a close, or a wait that no longer needs it).
#[no_mangle]
pub unsafe extern "C" fn ferry_waitset_remove(s: *const WaitSet, token: u32) {
    if let Some(s) = wait_set(s) {
        s.remove(token);
    }
}

/// Sleeps until a wait of set `s` fires or `timeout_ms` (one slice at most) passes; returns how
/// many fired. Bound as nonblocking in Deno: it runs on a blocking-pool thread, one per set.
#[no_mangle]
pub unsafe extern "C" fn ferry_waitset_wait(s: *const WaitSet, timeout_ms: u32) -> u32 {
    wait_set(s).map_or(0, |s| s.wait(timeout_ms))
}

/// Writes up to `cap` tokens of fired waits of set `s` into `out`; returns how many.
#[no_mangle]
pub unsafe extern "C" fn ferry_waitset_take(s: *const WaitSet, out: *mut u32, cap: u32) -> u32 {
    let Some(s) = wait_set(s) else { return 0 };
    if out.is_null() || cap == 0 {
        return 0;
    }
    // SAFETY: the binding passes a u32 array of `cap` elements, alive for this call.
    let out = unsafe { std::slice::from_raw_parts_mut(out, cap as usize) };
    s.take(out)
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
    hr.wait(Side::Recv, timeout_ms, || {
        // SAFETY: the same arguments the caller gave us, for the duration of this call.
        match unsafe { ferry_recv_batch(h, dst, dst_cap, dst_off, max, flags, meta, meta_len, count_out) } {
            EMPTY => None,
            r => Some(r),
        }
    })
}

/// Gives the core to another thread that wants it (`sched_yield`): a promise wait's spin calls it
/// between slices, so on a busy machine the peer it waits for is not kept off the core by it.
#[no_mangle]
pub extern "C" fn ferry_yield_cpu() {
    std::thread::yield_now();
}
