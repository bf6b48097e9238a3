//! The channel surface: open and close a handle, send and receive one message, collect an ack-mode
//! outcome.

use super::abi::*;
use super::{
    bytes, bytes_mut, handle, lo_hi, open_report, send_marks, send_result, shm_name, trusted_owners,
    write_out,
};
use crate::channel::Received;
use crate::channel::{Handle, OpenOptions};
use crate::segment::{OpenError, Policy};
use crate::status::*;

/// `meta_flag` bits of a received message (NEEDS_BUFFER is the batch's to add).
pub(super) fn meta_flags(m: &Received) -> u32 {
    (if m.redelivered { meta_flag::REDELIVERED } else { 0 }) | (if m.ack { meta_flag::ACK } else { 0 })
}

/// Claims the next message, writes its `recv_meta`, and copies it into `dst` (unless RECV_NO_COPY).
pub(super) fn recv_into(h: &Handle, dst: &mut [u8], flags: u32, meta: *mut u32) -> i32 {
    let m = &match h.claim() {
        Ok(m) => m,
        Err(code) => return code,
    };
    let mut r = [0u32; recv_meta::LENGTH];
    r[recv_meta::SLOT] = m.slot;
    r[recv_meta::GENERATION] = m.generation;
    r[recv_meta::LEN] = m.len;
    r[recv_meta::PID] = m.pid;
    (r[recv_meta::SEQ_LO], r[recv_meta::SEQ_HI]) = lo_hi(m.seq);
    r[recv_meta::FLAGS] = meta_flags(m);
    (r[recv_meta::OFFSET_LO], r[recv_meta::OFFSET_HI]) = lo_hi(h.payload_offset(m.slot, m.len as usize));
    write_out(meta, &r);
    if flags & RECV_NO_COPY != 0 {
        return OK;
    }
    match h.read(m.slot, m.generation, dst) {
        Ok(_) if flags & RECV_AUTO_RELEASE != 0 => h.release(m.slot, m.generation),
        Ok(_) => OK,
        Err(code) => code,
    }
}

/// Opens `<prefix>.<name>` (given as bytes), waiting up to `timeout_ms` (u32::MAX: no limit) for
/// another process that is building it. An existing segment must be the caller's, root's or one of
/// the `trusted_len` uids at `trusted`, and grant no more than `mode` (segment.rs, "Trust"). On
/// failure returns null and writes the report of `open_report` to `err_out` (`open_report`).
///
/// `capacity`, `max_message` and `memory_lo`/`memory_hi` (the `memory` bound in bytes, both
/// 0xffffffff for the default, `layout::MEMORY_DEFAULT`) matter only when this call creates the
/// channel (never with
/// OPEN_OBSERVER or OPEN_EXISTING: an existing channel's come from its header, see `ferry_info`),
/// and `slot_limit` only for a participant (not an observer).
#[no_mangle]
pub unsafe extern "C" fn ferry_open(
    name: *const u8,
    name_len: u32,
    capacity: u32,
    max_message: u32,
    memory_lo: u32,
    memory_hi: u32,
    mode: u32,
    slot_limit: u32,
    flags: u32,
    timeout_ms: u32,
    trusted: *const u32,
    trusted_len: u32,
    err_out: *mut i32,
) -> *mut Handle {
    let Some(name) = shm_name(name, name_len) else {
        write_out(err_out, &open_report(&OpenError::new(ERR_INVALID_NAME, 0)));
        return std::ptr::null_mut();
    };
    let opts = OpenOptions {
        name: &name,
        capacity,
        max_message,
        memory: u64::from(memory_lo) | u64::from(memory_hi) << 32,
        mode,
        slot_limit,
        observer: flags & OPEN_OBSERVER != 0,
    };
    let policy = Policy { trusted_owners: trusted_owners(trusted, trusted_len), timeout_ms };
    match Handle::open_with_policy(&opts, flags & OPEN_EXISTING == 0, policy) {
        Ok(h) => Box::into_raw(Box::new(h)),
        Err(e) => {
            write_out(err_out, &open_report(&e));
            std::ptr::null_mut()
        }
    }
}

/// Leaves the channel; the handle stays valid (calls answer CLOSED) until `ferry_free`.
#[no_mangle]
pub unsafe extern "C" fn ferry_close(h: *const Handle) {
    if let Some(h) = handle(h) {
        h.close();
    }
}

/// Frees the handle: unmaps the segment and closes the fd. Call once, after every call that
/// uses the handle (including a parked wait) has returned.
#[no_mangle]
pub unsafe extern "C" fn ferry_free(h: *mut Handle) {
    if !h.is_null() {
        // SAFETY: `h` came from Box::into_raw in ferry_open and the binding frees it once.
        drop(unsafe { Box::from_raw(h) });
    }
}

/// Capacity, largest message and memory bound (as recorded) of the open segment into `out`
/// (`info_out`).
#[no_mangle]
pub unsafe extern "C" fn ferry_info(h: *const Handle, out: *mut u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let mut o = [0u32; info_out::LENGTH];
    o[info_out::CAPACITY] = h.capacity();
    o[info_out::MAX_MESSAGE] = h.max_message();
    (o[info_out::MEMORY_LO], o[info_out::MEMORY_HI]) = lo_hi(h.seg.layout.memory);
    write_out(out, &o);
    OK
}

/// Sends without waiting (flags: SEND_ACK, SEND_COUNT_FULL, SEND_RETRY, SEND_REPEAT). `out` (4 x u32) receives [slot, generation, seq_lo, seq_hi].
#[no_mangle]
pub unsafe extern "C" fn ferry_send(
    h: *const Handle,
    buf: *const u8,
    len: u32,
    flags: u32,
    expiry_ms: u32,
    out: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let r = h.send_with(bytes(buf, len), send_marks(flags), expiry_ms, flags & SEND_RETRY != 0);
    if flags & SEND_COUNT_FULL != 0 && matches!(r, Err(FULL_CAPACITY | FULL_SLOTS | FULL_MEMORY)) {
        h.note_full();
    }
    send_result(r, out)
}

/// Counts one send that gave up on a full channel (a batch's, or a timed-out wait's).
#[no_mangle]
pub unsafe extern "C" fn ferry_note_full(h: *const Handle) {
    if let Some(h) = handle(h) {
        h.note_full();
    }
}

/// Receives without waiting: claims the next message and copies it into `dst` (unless
/// RECV_NO_COPY). `meta` (9 x u32): [slot, generation, len, sender pid, seq_lo, seq_hi,
/// flags(1 redelivered, 2 ack), payload offset lo, hi].
/// NEED_BUFFER: the message (meta[2] bytes) is held but not copied; `ferry_read` it.
#[no_mangle]
pub unsafe extern "C" fn ferry_recv(
    h: *const Handle,
    dst: *mut u8,
    dst_cap: u32,
    dst_off: u32,
    flags: u32,
    meta: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let Some(dst) = bytes_mut(dst, dst_cap).get_mut(dst_off as usize..) else {
        return ERR_INVALID_ARGUMENT;
    };
    recv_into(h, dst, flags, meta)
}

/// Copies a held message into `dst`; returns its length or a negative status.
#[no_mangle]
pub unsafe extern "C" fn ferry_read(
    h: *const Handle,
    slot: u32,
    generation: u32,
    dst: *mut u8,
    dst_cap: u32,
    dst_off: u32,
) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let Some(dst) = bytes_mut(dst, dst_cap).get_mut(dst_off as usize..) else {
        return ERR_INVALID_ARGUMENT;
    };
    match h.read(slot, generation, dst) {
        Ok(len) => len as i32,
        Err(code) => code,
    }
}

#[no_mangle]
pub unsafe extern "C" fn ferry_release(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.release(slot, generation)
}

/// Ends a held message with a failure for its ack-mode sender (`outcome`: REJECTED, PEER_DIED or
/// EXPIRED); an async one is released.
#[no_mangle]
pub unsafe extern "C" fn ferry_reject(h: *const Handle, slot: u32, generation: u32, outcome: i32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.reject(slot, generation, outcome)
}

#[no_mangle]
pub unsafe extern "C" fn ferry_ack_status(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.ack_status(slot, generation)
}

#[no_mangle]
pub unsafe extern "C" fn ferry_ack_cancel(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.ack_cancel(slot, generation)
}
