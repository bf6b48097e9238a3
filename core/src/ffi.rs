//! The C ABI Deno binds to (`ffi/symbols.ts` mirrors it). Thin on purpose: argument checks and
//! conversions only; the logic lives in `engine`. Every per-message entry point takes only
//! u32/i32/pointer/buffer parameters so that V8 calls it on its fast path.
//!
//! # Safety (every `unsafe extern "C"` function here)
//!
//! `h` is null or a pointer returned by `ferry_open` and not yet passed to `ferry_free`, and
//! calls taking `h` are made by one thread at a time (a `Handle` is `Send`, not `Sync`: Deno's JS
//! thread makes them all). `w` is null or a pointer returned by `ferry_waiter` whose handle is not
//! yet freed; any thread may use it (it reaches only the handle's `Sync` part). Every buffer
//! pointer is null or valid for the length passed with it (out arrays for the length each
//! function documents) for the duration of the call. The Deno binding upholds this.
#![allow(clippy::missing_safety_doc)] // stated once above rather than on each function

use std::slice;

use crate::channel::{Handle, OpenOptions, Shared, Side};
use crate::segment::{OpenError, Policy};
use crate::status::*;

/// `flags` bits of `ferry_open`.
pub const OPEN_OBSERVER: u32 = 1;
/// Open only an existing channel: absent is ERR_NOT_FOUND, nothing is created.
pub const OPEN_EXISTING: u32 = 2;
/// `flags` bits of `ferry_send*` and `ferry_recv*`.
pub const SEND_ACK: u32 = 1;
/// Count a FULL answer in the channel's `full` counter (a caller giving up, not one retrying).
pub const SEND_COUNT_FULL: u32 = 2;
/// The caller is retrying after FULL: a cheaper look at its in-flight slots will do.
pub const SEND_RETRY: u32 = 4;
pub const RECV_AUTO_RELEASE: u32 = 1;
/// Claim without copying: the caller reads the payload in place (meta[7..9] is its offset).
pub const RECV_NO_COPY: u32 = 2;

fn handle<'a>(h: *const Handle) -> Option<&'a Handle> {
    // SAFETY: the binding passes only pointers it got from `ferry_open` and has not yet passed
    // to `ferry_free`, from one thread at a time; null is rejected here.
    unsafe { h.as_ref() }
}

fn waiter<'a>(w: *const Shared) -> Option<&'a Shared> {
    // SAFETY: the binding passes only pointers it got from `ferry_waiter` whose handle it has not
    // yet freed (it frees a handle only after every parked wait returned); `Shared` is `Sync`,
    // so a reference on another thread than the handle's is sound.
    unsafe { w.as_ref() }
}

fn bytes<'a>(p: *const u8, len: u32) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the binding passes a JS buffer of at least `len` bytes that lives for the call.
    unsafe { slice::from_raw_parts(p, len as usize) }
}

fn bytes_mut<'a>(p: *mut u8, len: u32) -> &'a mut [u8] {
    if p.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: as `bytes`, and the buffer is not aliased during the call.
    unsafe { slice::from_raw_parts_mut(p, len as usize) }
}

fn write_out<T: Copy>(out: *mut T, values: &[T]) {
    if out.is_null() {
        return;
    }
    // SAFETY: the binding passes an out array at least as long as each entry point documents.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
}

/// Channel names: letters, digits and `. _ - !`, 1..=201 bytes (prefix, '.', name).
fn shm_name(p: *const u8, len: u32) -> Option<String> {
    let raw = bytes(p, len);
    let ok = !raw.is_empty()
        && raw.len() <= 201
        && raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'!'));
    // All bytes are ASCII, so the conversion cannot fail.
    ok.then(|| format!("/{}", String::from_utf8_lossy(raw)))
}

/// u32 values of `open_report` (`err_out` of the open calls).
pub const OPEN_REPORT_LEN: usize = 8;

/// What an open that failed writes to its `err_out` (8 x i32): [status, detail, found (1 if an
/// object was opened and the rest describes it), owner uid, st_mode, size lo, size hi, mtime
/// (unix seconds)].
fn open_report(e: &OpenError) -> [i32; OPEN_REPORT_LEN] {
    let f = e.file;
    let size = f.map_or(0, |f| f.size);
    [
        e.code,
        e.detail,
        i32::from(f.is_some()),
        f.map_or(-1, |f| f.owner as i32),
        f.map_or(0, |f| f.mode as i32),
        size as u32 as i32,
        (size >> 32) as u32 as i32,
        f.map_or(0, |f| f.modified_unix_s.min(u64::from(u32::MAX)) as u32 as i32),
    ]
}

/// The uids a caller trusts besides itself and root (`trusted`, `trusted_len` u32).
fn trusted_owners<'a>(trusted: *const u32, trusted_len: u32) -> &'a [u32] {
    if trusted.is_null() || trusted_len == 0 {
        return &[];
    }
    // SAFETY: the binding passes a Uint32Array of `trusted_len` uids that lives for the call.
    unsafe { slice::from_raw_parts(trusted, trusted_len as usize) }
}

/// Opens `<prefix>.<name>` (given as bytes), waiting up to `timeout_ms` (u32::MAX: no limit) for
/// another process that is building it. An existing segment must be the caller's, root's or one of
/// the `trusted_len` uids at `trusted`, and grant no more than `mode` (segment.rs, "Trust"). On
/// failure returns null and writes the report of `open_report` to `err_out` (8 x i32).
#[no_mangle]
pub unsafe extern "C" fn ferry_open(
    name: *const u8,
    name_len: u32,
    capacity: u32,
    max_message: u32,
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

#[no_mangle]
pub unsafe extern "C" fn ferry_unlink(name: *const u8, name_len: u32) -> i32 {
    let Some(name) = shm_name(name, name_len) else {
        return ERR_INVALID_NAME;
    };
    match crate::sys::shm_remove(&name) {
        Ok(()) => OK,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => ERR_NOT_FOUND,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => ERR_PERMISSION,
        Err(_) => ERR_IO,
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

/// [capacity, max_message] of the open segment into `out` (2 x u32).
#[no_mangle]
pub unsafe extern "C" fn ferry_info(h: *const Handle, out: *mut u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    write_out(out, &[h.capacity(), h.max_message()]);
    OK
}

/// The segment's first byte in this process, for zero-copy views (offsets come with each loan
/// and each RECV_NO_COPY receive). The shared memory there is valid until `ferry_free`; after
/// it the addresses stay mapped to private memory (see `Mapping::expose`), so a view the
/// binding could not revoke never faults.
#[no_mangle]
pub unsafe extern "C" fn ferry_base(h: *const Handle) -> *mut u8 {
    handle(h).map_or(std::ptr::null_mut(), |h| h.seg.map.expose())
}

/// Lends a slot for `len` bytes. `out` (4 x u32): [slot, generation, offset lo, offset hi].
#[no_mangle]
pub unsafe extern "C" fn ferry_loan(h: *const Handle, len: u32, out: *mut u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    match h.loan(len) {
        Ok((slot, generation, offset)) => {
            write_out(out, &[slot, generation, offset as u32, (offset >> 32) as u32]);
            OK
        }
        Err(code) => code,
    }
}

/// Publishes `len` bytes of a slot lent for `loaned` bytes. `out` as `ferry_send`.
#[no_mangle]
pub unsafe extern "C" fn ferry_commit(
    h: *const Handle,
    slot: u32,
    generation: u32,
    loaned: u32,
    len: u32,
    flags: u32,
    expiry_ms: u32,
    out: *mut u32,
) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    send_result(h.commit(slot, generation, loaned, len, flags & SEND_ACK != 0, expiry_ms), out)
}

#[no_mangle]
pub unsafe extern "C" fn ferry_unloan(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    h.unloan(slot, generation)
}

fn send_result(r: Result<(u32, u32, u64), i32>, out: *mut u32) -> i32 {
    match r {
        Ok((slot, generation, seq)) => {
            write_out(out, &[slot, generation, seq as u32, (seq >> 32) as u32]);
            OK
        }
        Err(code) => code,
    }
}

/// Sends without waiting (flags: SEND_ACK, SEND_COUNT_FULL). `out` (4 x u32) receives [slot, generation, seq_lo, seq_hi].
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
    let r = h.send_with(bytes(buf, len), flags & SEND_ACK != 0, expiry_ms, flags & SEND_RETRY != 0);
    if flags & SEND_COUNT_FULL != 0 && matches!(r, Err(FULL_CAPACITY) | Err(FULL_SLOTS)) {
        h.note_full();
    }
    send_result(r, out)
}

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
            Err(code @ (FULL_CAPACITY | FULL_SLOTS)) => {
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

fn recv_into(h: &Handle, dst: &mut [u8], flags: u32, meta: *mut u32) -> i32 {
    let m = match h.claim() {
        Ok(m) => m,
        Err(code) => return code,
    };
    let flag_bits = u32::from(m.redelivered) | (u32::from(m.ack) << 1);
    let offset = h.payload_offset(m.slot, m.len as usize);
    let lo_hi = |v: u64| [v as u32, (v >> 32) as u32];
    let [seq_lo, seq_hi] = lo_hi(m.seq);
    let [off_lo, off_hi] = lo_hi(offset);
    write_out(meta, &[m.slot, m.generation, m.len, m.pid, seq_lo, seq_hi, flag_bits, off_lo, off_hi]);
    if flags & RECV_NO_COPY != 0 {
        return OK;
    }
    match h.read(m.slot, m.generation, dst) {
        Ok(_) if flags & RECV_AUTO_RELEASE != 0 => h.release(m.slot, m.generation),
        Ok(_) => OK,
        Err(code) => code,
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

#[no_mangle]
pub unsafe extern "C" fn ferry_ack_status(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.ack_status(slot, generation)
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

#[no_mangle]
pub unsafe extern "C" fn ferry_ack_cancel(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    h.ack_cancel(slot, generation)
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

/// Recovers dead participants now; returns how many.
#[no_mangle]
pub unsafe extern "C" fn ferry_sweep(h: *const Handle) -> u32 {
    handle(h).map_or(0, |h| h.sweep())
}

/// Counters into `out` (14 x u64), see `Handle::stat`.
#[no_mangle]
pub unsafe extern "C" fn ferry_stat(h: *const Handle, out: *mut u64) -> i32 {
    let Some(h) = handle(h) else {
        return ERR_INVALID_ARGUMENT;
    };
    let s = h.stat();
    write_out(
        out,
        &[
            u64::from(s.capacity),
            u64::from(s.max_message),
            s.total_size,
            s.depth,
            s.in_flight,
            s.sent,
            s.received,
            s.released,
            s.expired,
            s.full,
            s.redelivered,
            s.created_unix_ms,
            s.participants,
            s.resident,
        ],
    );
    OK
}

/// Up to `max` participants as [pid, alive, slots in flight as sender, role (1 sent, 2 received)]
/// into `out` (4*max x u32); returns the count.
#[no_mangle]
pub unsafe extern "C" fn ferry_participants(h: *const Handle, out: *mut u32, max: u32) -> u32 {
    let Some(h) = handle(h) else { return 0 };
    let flat: Vec<u32> = h
        .participants()
        .into_iter()
        .take(max as usize)
        .flat_map(|p| [p.pid, u32::from(p.alive), p.in_flight, u32::from(p.has_sent) | (u32::from(p.has_received) << 1)])
        .collect();
    write_out(out, &flat);
    (flat.len() / 4) as u32
}

/// CLOCK_MONOTONIC nanoseconds, low 32 bits: a timer cheap enough to wrap every message in a
/// benchmark (differences are exact while under 4.29 s).
#[no_mangle]
pub extern "C" fn ferry_clock_ns32() -> u32 {
    crate::sys::monotonic_ns() as u32
}

/// Counts one send that gave up on a full channel (a batch's, or a timed-out wait's).
#[no_mangle]
pub unsafe extern "C" fn ferry_note_full(h: *const Handle) {
    if let Some(h) = handle(h) {
        h.note_full();
    }
}

/// Sends `count` messages laid end to end in `buf` (their lengths in `lens`), in async mode,
/// until one finds no room. `out[0]` = how many were sent; returns why it stopped (OK: all).
#[no_mangle]
pub unsafe extern "C" fn ferry_send_batch(
    h: *const Handle,
    buf: *const u8,
    buf_len: u32,
    lens: *const u32,
    count: u32,
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
    let (sent, why) = h.send_batch(bytes(buf, buf_len), lens, expiry_ms);
    write_out(out, &[sent]);
    why
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

/// Blocks the calling thread up to `timeout_ms` until this sender could send again (a slot of
/// its was released, or the channel has room): OK, or TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn ferry_send_room_wait(h: *const Handle, timeout_ms: u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    h.wait_for(Side::Send, timeout_ms, || h.has_room().then_some(OK))
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
    match h.recv_batch(dst, max, flags & RECV_AUTO_RELEASE != 0, meta) {
        Ok(n) => {
            write_out(count_out, &[n]);
            OK
        }
        Err(code) => code,
    }
}

// ---- groups ----
// Channel groups (`group.rs`): one table per namespace. Not on the per-message path, so the
// expiry travels as a u64. `g` is null or a pointer from `ferry_group_open` not yet passed to
// `ferry_group_free` (the module's safety contract, with `g` in the place of `h`).

use crate::group::{AddStop, GroupOpen, GroupTable, Lifetime};

/// `lifetime` of `ferry_group_add`: 0 until `expiry_ms` from now, 1 while the adding table handle
/// is open (its process alive).
fn lifetime(kind: u32, expiry_ms: u64) -> Option<Lifetime> {
    match kind {
        0 => Some(Lifetime::Expiry(expiry_ms)),
        1 => Some(Lifetime::Process),
        _ => None,
    }
}

fn group_table<'a>(g: *const GroupTable) -> Option<&'a GroupTable> {
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
    match crate::sys::shm_remove(&name) {
        Ok(()) => OK,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => ERR_NOT_FOUND,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => ERR_PERMISSION,
        Err(_) => ERR_IO,
    }
}

/// [entries, total_size] of the open table into `out` (2 x u32; total_size <= 256 MiB).
#[no_mangle]
pub unsafe extern "C" fn ferry_group_info(g: *const GroupTable, out: *mut u32) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    write_out(out, &[g.entry_count(), g.total_size() as u32]);
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
    g.add_stopping(bytes(group, group_len), bytes(channel, channel_len), lifetime, AddStop::Complete)
        .unwrap_or_else(|code| code)
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
/// `info` (2 x u32) receives [count, bytes]. Returns OK, or NEED_BUFFER when `bytes` > `out_cap`
/// (nothing written: call again with a larger buffer), or an error.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_members(
    g: *const GroupTable,
    group: *const u8,
    group_len: u32,
    out: *mut u8,
    out_cap: u32,
    info: *mut u32,
) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    let names = match g.members(bytes(group, group_len)) {
        Ok(names) => names,
        Err(code) => return code,
    };
    let total: usize = names.iter().map(|n| 1 + n.len()).sum();
    write_out(info, &[names.len() as u32, total as u32]);
    let Some(dst) = bytes_mut(out, out_cap).get_mut(..total) else {
        return NEED_BUFFER;
    };
    let mut at = 0;
    for name in &names {
        dst[at] = name.len() as u8; // names are at most 100 bytes
        dst[at + 1..at + 1 + name.len()].copy_from_slice(name);
        at += 1 + name.len();
    }
    OK
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

/// Sizes and counters into `out` (15 x u64), see `GroupTable::stat`.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_stat(g: *const GroupTable, out: *mut u64) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    write_out(out, &g.stat());
    OK
}

/// A read-only consistency report into `out` (10 x u32), see `group::Check`.
#[no_mangle]
pub unsafe extern "C" fn ferry_group_check(g: *const GroupTable, out: *mut u32) -> i32 {
    let Some(g) = group_table(g) else {
        return ERR_INVALID_ARGUMENT;
    };
    write_out(out, &g.check().to_array());
    OK
}
// ---- groups ----
