//! A namespace's msgpack structure store (`structs`): read rarely (when a codec meets a shape id
//! it does not know) and appended to once per new shape, so nothing here is on the per-message path.

use std::time::Duration;

use super::abi::*;
use super::{bytes, bytes_mut, open_report, trusted_owners, u32s, write_out};
use crate::segment::{OpenError, Policy};
use crate::status::*;
use crate::structs::StructStore;

fn store<'a>(s: *const StructStore) -> Option<&'a StructStore> {
    // SAFETY: the binding passes only pointers it got from `ferry_structs_open` and has not yet
    // passed to `ferry_structs_free`; null is rejected here.
    unsafe { s.as_ref() }
}

/// Opens the structure store of namespace `prefix`, `/<prefix>~structures`, creating it if absent
/// and `create` is 1, with the trust rule and timeout of `ferry_open`. On failure returns null and
/// writes the report of `open_report` to `err_out` (8 x i32).
#[no_mangle]
pub unsafe extern "C" fn ferry_structs_open(
    prefix: *const u8,
    prefix_len: u32,
    create: u32,
    mode: u32,
    timeout_ms: u32,
    trusted: *const u32,
    trusted_len: u32,
    err_out: *mut i32,
) -> *mut StructStore {
    let Some(name) = crate::structs::segment_name(bytes(prefix, prefix_len)) else {
        write_out(err_out, &open_report(&OpenError::new(ERR_INVALID_NAME, 0)));
        return std::ptr::null_mut();
    };
    let policy = Policy { trusted_owners: trusted_owners(trusted, trusted_len), timeout_ms };
    match StructStore::open(&name, mode, create == 1, policy) {
        Ok(s) => Box::into_raw(Box::new(s)),
        Err(e) => {
            write_out(err_out, &open_report(&e));
            std::ptr::null_mut()
        }
    }
}

/// Unmaps the store, drops its user lock and closes its fd. Call once, after every other call on `s`.
#[no_mangle]
pub unsafe extern "C" fn ferry_structs_free(s: *mut StructStore) {
    if !s.is_null() {
        // SAFETY: `s` came from Box::into_raw in ferry_structs_open and the binding frees it once.
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Copies entries `from..` into `data` (end to end) and their lengths into `lens`, as many as fit;
/// writes `structs_read` (nonce, count, copied) to `out`. OK, ERR_INCOMPATIBLE (a damaged store),
/// ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn ferry_structs_read(
    s: *const StructStore,
    from: u32,
    data: *mut u8,
    data_len: u32,
    lens: *mut u32,
    lens_max: u32,
    out: *mut u32,
) -> i32 {
    let Some(s) = store(s) else {
        return ERR_INVALID_ARGUMENT;
    };
    let lens = if lens.is_null() || lens_max == 0 {
        &mut [][..]
    } else {
        // SAFETY: the binding passes a Uint32Array of `lens_max` entries that lives for the call.
        unsafe { std::slice::from_raw_parts_mut(lens, lens_max as usize) }
    };
    match s.read(from, bytes_mut(data, data_len), lens) {
        Ok(r) => {
            let mut o = [0u32; structs_read::LENGTH];
            o[structs_read::NONCE] = s.nonce();
            o[structs_read::COUNT] = r.count;
            o[structs_read::COPIED] = r.copied;
            write_out(out, &o);
            OK
        }
        Err(code) => code,
    }
}

/// Appends `n` entries (their bytes end to end in `data`, their lengths in `lens`) if the store's
/// nonce is `nonce` and it holds `expected` entries, trying its append lock for up to
/// `timeout_ms`. OK, CONFLICT (200), ERR_STORE_FULL (-200), ERR_STALE (-201), TIMEOUT,
/// ERR_INVALID_ARGUMENT, ERR_IO.
#[no_mangle]
pub unsafe extern "C" fn ferry_structs_append(
    s: *const StructStore,
    nonce: u32,
    expected: u32,
    data: *const u8,
    data_len: u32,
    lens: *const u32,
    n: u32,
    timeout_ms: u32,
) -> i32 {
    let Some(s) = store(s) else {
        return ERR_INVALID_ARGUMENT;
    };
    let lens = u32s(lens, n);
    match s.append(nonce, expected, bytes(data, data_len), lens, Duration::from_millis(timeout_ms.into())) {
        Ok(_) => OK,
        Err(code) => code,
    }
}

/// Removes the structure store of namespace `prefix`: OK, ERR_NOT_FOUND, or an open error. Handles
/// open on it keep their mapping; later opens make a new store, with a new nonce, so bytes that name
/// the old one's shapes are a decode error, never a wrong value.
#[no_mangle]
pub unsafe extern "C" fn ferry_structs_unlink(prefix: *const u8, prefix_len: u32) -> i32 {
    let Some(name) = crate::structs::segment_name(bytes(prefix, prefix_len)) else {
        return ERR_INVALID_NAME;
    };
    super::unlink_status(&name)
}
