//! Zero-copy: the segment's base address for views, where a held message lies (for views and
//! for the binding's own copies), and slots lent to the caller to write in place, then
//! committed (published) or given back.

use super::abi::*;
use super::{handle, lo_hi, send_marks, send_result, write_out};
use crate::channel::Handle;
use crate::status::*;

/// The segment's first byte in this process, for zero-copy views (offsets come with each loan
/// and each RECV_NO_COPY receive). The shared memory there is valid until `ferry_free`; after
/// it the addresses stay mapped to private memory (see `Mapping::expose`), so a view the
/// binding could not revoke never faults.
#[no_mangle]
pub unsafe extern "C" fn ferry_base(h: *const Handle) -> *mut u8 {
    handle(h).map_or(std::ptr::null_mut(), |h| h.seg.map.expose())
}

/// Where a message this handle holds lies in the segment, for a copy the binding makes itself:
/// `out[0..2]` its offset from `ferry_base` (low, high 32 bits). Returns its length, or
/// ERR_NOT_HELD when the handle does not hold slot `slot` at `generation`.
#[no_mangle]
pub unsafe extern "C" fn ferry_held_at(h: *const Handle, slot: u32, generation: u32, out: *mut u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    match h.held_at(slot, generation) {
        Ok((offset, len)) => {
            let (lo, hi) = lo_hi(offset);
            write_out(out, &[lo, hi]);
            len as i32
        }
        Err(code) => code,
    }
}

/// Lends a slot for `len` bytes. `out` (`send_out`): slot, generation, offset in the segment.
#[no_mangle]
pub unsafe extern "C" fn ferry_loan(h: *const Handle, len: u32, out: *mut u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    match h.loan(len) {
        Ok((slot, generation, offset)) => {
            let mut o = [0u32; send_out::LENGTH];
            o[send_out::SLOT] = slot;
            o[send_out::GENERATION] = generation;
            (o[send_out::OFFSET_LO], o[send_out::OFFSET_HI]) = lo_hi(offset);
            write_out(out, &o);
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
    send_result(h.commit(slot, generation, loaned, len, send_marks(flags), expiry_ms), out)
}

#[no_mangle]
pub unsafe extern "C" fn ferry_unloan(h: *const Handle, slot: u32, generation: u32) -> i32 {
    let Some(h) = handle(h) else { return ERR_INVALID_ARGUMENT };
    h.unloan(slot, generation)
}
