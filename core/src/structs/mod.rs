//! A namespace's structure store: the msgpack record shapes (lists of object keys) that every
//! process of the namespace agrees on, so that a message can name a shape by a one- or two-byte id
//! instead of carrying its keys. One append-only segment per namespace; the codec (src/codec.ts)
//! keeps a copy of what it has read and reads more only when it meets an id it does not know.
//!
//! # Segment
//!
//! The object is `/<prefix>~structures`: `~` is outside the channel name set, as for the group
//! table, so no channel can have this name and `list`/`gc` never see it.
//!
//! ```text
//! offset 0            StoreFixed  128 B: magic "FERRYST1", layout version, init state, sizes,
//!                                 capacity (entries), data bytes, nonce, creation time
//! 128                 StoreState  128 B: count (entries published)
//! 256                 ends        capacity x u32: end of entry i in the data area
//! 256 + 4 capacity    checks      capacity x u32: FNV-1a of entry i's bytes
//! 256 + 8 capacity    data        data_bytes: the entries, end to end (opaque to the core)
//! ```
//!
//! Creation and attachment follow `segment.rs` (trust checks, the init lock, the timeout). The
//! nonce is random, drawn by the builder: the codec writes it into every message that names a
//! shape, so a message is never read against another store (another namespace's, or a store
//! removed and made again) and decoded into wrong keys; it fails to decode instead.
//!
//! # Appending: one lock a dead process cannot keep
//!
//! A writer takes the OFD write lock on byte `APPEND_LOCK_BYTE` (tried, never waited for: a
//! stopped holder would block for ever; the caller's timeout bounds the tries), checks that the
//! store still has the count it expects (else another writer appended first: CONFLICT, the caller
//! reads the new entries and tries again), copies its entries past the last published end, writes
//! their ends and checks, and publishes them all with one Release store of `count`. A writer that
//! dies before that store published nothing: its bytes lie past the published end, where the next
//! writer overwrites them; the kernel drops its lock. One that dies after it published everything.
//! Entries are never changed once published, so readers take no lock: they load `count`
//! (Acquire) and read below it.
//!
//! # Users
//!
//! Every open handle holds a shared OFD lock on `USER_LOCK_BYTE` for as long as it maps the store,
//! so the store is never rebuilt (truncated) under a reader: a store damaged while in use is
//! refused (ERR_INCOMPATIBLE), and the codec falls back to encoding every message whole.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU32, AtomicU64};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fault;
use crate::layout::INIT_READY;
use crate::segment::{
    io_error, open_segment, ready_header, u32_at, u64_at, Found, OpenError, OpenSpec, Policy, SegmentKind,
    INIT_LOCK_BYTE,
};
use crate::status::*;
use crate::sys;

/// "FERRYST1" as a little-endian u64: a structure store, not a channel or a group table.
pub const STORE_MAGIC: u64 = u64::from_le_bytes(*b"FERRYST1");
/// Bumped on every incompatible change to the layout above.
pub const STORE_LAYOUT_VERSION: u32 = 1;
/// Entries a store holds at most (the codec's `maxSharedStructures`).
pub const CAPACITY: u32 = 1024;
pub const HEADER_SIZE: u64 = 256;
/// The whole segment: 64 KiB, allocated when built (a full /dev/shm is an open error, never SIGBUS).
pub const TOTAL_SIZE: u64 = 64 * 1024;
/// Bytes of the data area.
pub const DATA_BYTES: u32 = (TOTAL_SIZE - HEADER_SIZE - 8 * CAPACITY as u64) as u32;
/// A writer holds the write lock on this byte while it appends.
pub const APPEND_LOCK_BYTE: u64 = INIT_LOCK_BYTE + 1;
/// Every open handle holds a shared lock on this byte.
pub const USER_LOCK_BYTE: u64 = INIT_LOCK_BYTE + 2;

/// Kill points (`fault.rs`) in the order an append passes them.
pub const FAULT_POINTS: &[&str] = &["structs.locked", "structs.written", "structs.published"];

/// Outcomes of `append` (in `status.rs`, with every other code).
pub use crate::status::structs::{CONFLICT, ERR_STALE, ERR_STORE_FULL};

/// Settings fixed at creation. `magic`, `version` and `init_state` sit at offsets 0, 8 and 12, as
/// in a channel's `Fixed`, so every kind of opener recognises the others as foreign.
#[repr(C, align(128))]
pub struct StoreFixed {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// INIT_READY once built; openers wait for it.
    pub init_state: AtomicU32,
    pub total_size: AtomicU64,
    pub capacity: AtomicU32,
    pub data_bytes: AtomicU32,
    pub nonce: AtomicU32,
    pub created_unix_ms: AtomicU64,
}

#[repr(C, align(128))]
pub struct StoreState {
    /// Entries published. Only a writer holding the append lock stores it.
    pub count: AtomicU32,
}

#[repr(C)]
struct StoreHeader {
    fixed: StoreFixed,
    state: StoreState,
}

const ENDS_OFF: usize = HEADER_SIZE as usize;
const CHECKS_OFF: usize = ENDS_OFF + 4 * CAPACITY as usize;
const DATA_OFF: usize = CHECKS_OFF + 4 * CAPACITY as usize;

/// The shm object of a namespace's structure store, `/<prefix>~structures`; None for an invalid prefix.
pub fn segment_name(prefix: &[u8]) -> Option<String> {
    crate::group::valid_name(prefix).then(|| format!("/{}~structures", String::from_utf8_lossy(prefix)))
}

/// FNV-1a over `bytes`: recognises an entry no writer made (a stray write, a damaged store).
fn check_of(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A nonce that is never 0 (0 would look like an unbuilt field).
fn new_nonce() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`, which lives for the call.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    let drawn = if n == 4 { u32::from_le_bytes(b) } else { 0 };
    // Without getrandom (never on Linux >= 3.17): the clock and the pid, mixed.
    let fallback = (sys::monotonic_ns() ^ (u64::from(sys::pid()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match drawn {
        0 => ((fallback >> 32) as u32).max(1),
        v => v,
    }
}

/// The store's segment kind for `segment::open_segment`: its header, its checks, its build.
struct StoreKind;

impl SegmentKind for StoreKind {
    type Ready = u32;
    const USERS: (u64, u64) = (APPEND_LOCK_BYTE, 2);
    const BUILD_POINT: &'static str = "structs.building";

    /// Field offsets follow `StoreFixed`. Ready: the nonce.
    fn inspect(&self, fd: &OwnedFd, size: u64) -> io::Result<Found<u32>> {
        let head = match ready_header(fd, size, STORE_MAGIC, STORE_LAYOUT_VERSION)? {
            Ok(head) => head,
            Err(found) => return Ok(found),
        };
        let consistent = u64_at(&head, 16) == TOTAL_SIZE
            && size == TOTAL_SIZE
            && u32_at(&head, 24) == CAPACITY
            && u32_at(&head, 28) == DATA_BYTES
            && u32_at(&head, 32) != 0;
        Ok(if consistent { Found::Ready(u32_at(&head, 32)) } else { Found::Foreign(WHY_SIZE) })
    }

    fn build_size(&self) -> u64 {
        TOTAL_SIZE
    }

    /// Every entry is absent (count 0): the mapping is zeroed.
    fn write_header(&self, map: &sys::Mapping) {
        // SAFETY: the mapping is TOTAL_SIZE >= HEADER_SIZE bytes, page aligned; StoreHeader is
        // plain atomics, valid for any (here: zero) bytes.
        let h = unsafe { &*(map.base as *const StoreHeader) };
        let f = &h.fixed;
        f.magic.store(STORE_MAGIC, Relaxed);
        // The magic lands before any other field, so no reader sees fields without it (which would
        // look foreign rather than being built).
        fence(Release);
        f.version.store(STORE_LAYOUT_VERSION, Relaxed);
        f.total_size.store(TOTAL_SIZE, Relaxed);
        f.capacity.store(CAPACITY, Relaxed);
        f.data_bytes.store(DATA_BYTES, Relaxed);
        f.nonce.store(new_nonce(), Relaxed);
        f.created_unix_ms.store(sys::unix_ms(), Relaxed);
        // SYNC POINT: every field above is visible to whoever sees INIT_READY (Acquire in `attach`).
        f.init_state.store(INIT_READY, Release);
    }
}

/// An open structure store. Appends are serialised per handle by a mutex: the append lock is per
/// open file description, so it tells processes apart but not threads sharing this handle.
pub struct StructStore {
    fd: OwnedFd,
    map: sys::Mapping,
    nonce: u32,
    appends: Mutex<()>,
}

/// What `read` copied: the store's count then, and how many entries from `from` it copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub count: u32,
    pub copied: u32,
}

impl StructStore {
    /// Opens the store `name` (see `segment_name`), creating and building it when absent if
    /// `create`, with the trust rule and timeout of `policy`.
    pub fn open(name: &str, mode: u32, create: bool, policy: Policy) -> Result<StructStore, OpenError> {
        let spec = OpenSpec { name, create, mode, policy };
        let (fd, nonce) = open_segment(&spec, &StoreKind)?;
        attach(fd, nonce)
    }

    /// The builder's random nonce: the store's identity.
    pub fn nonce(&self) -> u32 {
        self.nonce
    }

    fn header(&self) -> &StoreHeader {
        // SAFETY: `attach` checked that the mapping holds a READY header at offset 0;
        // StoreHeader is plain atomics.
        unsafe { &*(self.map.base as *const StoreHeader) }
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at.is_multiple_of(4) && at + 4 <= DATA_OFF);
        // SAFETY: `at` is a 4-aligned offset inside the ends or checks array, within the mapping
        // (TOTAL_SIZE bytes); AtomicU32 is valid for any bytes.
        unsafe { &*(self.map.base.add(at) as *const AtomicU32) }
    }

    fn end(&self, i: u32) -> u32 {
        if i == 0 {
            0
        } else {
            self.word(ENDS_OFF + 4 * (i as usize - 1)).load(Relaxed)
        }
    }

    /// Entries published now.
    pub fn count(&self) -> u32 {
        // SYNC POINT: pairs with the Release store of `count` in `append`: entries below it are
        // complete (bytes, ends and checks).
        self.header().state.count.load(Acquire)
    }

    /// Copies entries `from..` into `data` (their bytes end to end) and their lengths into `lens`,
    /// as many as both hold. ERR_INCOMPATIBLE when the store's ends or checks are not ones a
    /// writer made (a damaged store: nothing it says can be trusted).
    pub fn read(&self, from: u32, data: &mut [u8], lens: &mut [u32]) -> Result<Read, i32> {
        let count = self.count();
        if count > CAPACITY {
            return Err(ERR_INCOMPATIBLE);
        }
        let mut copied = 0u32;
        let mut at = 0usize;
        for i in from..count {
            let (start, end) = (self.end(i), self.end(i + 1));
            if start > end || end > DATA_BYTES {
                return Err(ERR_INCOMPATIBLE);
            }
            let len = (end - start) as usize;
            if copied as usize >= lens.len() || at + len > data.len() {
                break;
            }
            // SAFETY: start..end lies inside the data area (checked against DATA_BYTES above);
            // published bytes are never written again, so nothing writes them during the copy.
            let entry =
                unsafe { std::slice::from_raw_parts(self.map.base.add(DATA_OFF + start as usize), len) };
            if check_of(entry) != self.word(CHECKS_OFF + 4 * i as usize).load(Relaxed) {
                return Err(ERR_INCOMPATIBLE);
            }
            data[at..at + len].copy_from_slice(entry);
            lens[copied as usize] = len as u32;
            at += len;
            copied += 1;
        }
        Ok(Read { count, copied })
    }

    /// Appends the entries `lens` cut `data` into, if the store's nonce is `nonce` and its count
    /// `expected`, trying the append lock until `timeout`. Ok: the new count. Err: CONFLICT
    /// (another writer appended first: read and try again), ERR_STORE_FULL (no room for them),
    /// ERR_STALE (the nonce differs), TIMEOUT (another writer held the lock throughout),
    /// ERR_INVALID_ARGUMENT (lens do not cut data exactly), or ERR_IO.
    pub fn append(
        &self,
        nonce: u32,
        expected: u32,
        data: &[u8],
        lens: &[u32],
        timeout: Duration,
    ) -> Result<u32, i32> {
        if lens.iter().map(|&l| l as usize).sum::<usize>() != data.len() || lens.is_empty() {
            return Err(ERR_INVALID_ARGUMENT);
        }
        if nonce != self.nonce {
            return Err(ERR_STALE);
        }
        let _serial = self.appends.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + timeout;
        loop {
            match sys::try_lock_byte(&self.fd, APPEND_LOCK_BYTE) {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(50)),
                Ok(false) => return Err(TIMEOUT),
                Err(_) => return Err(ERR_IO),
            }
        }
        let outcome = self.append_locked(expected, data, lens);
        sys::unlock_byte(&self.fd, APPEND_LOCK_BYTE);
        outcome
    }

    fn append_locked(&self, expected: u32, data: &[u8], lens: &[u32]) -> Result<u32, i32> {
        fault::point("structs.locked");
        let count = self.count();
        if count != expected {
            return Err(CONFLICT);
        }
        let start = self.end(count);
        let n = lens.len() as u32;
        if u64::from(count) + u64::from(n) > u64::from(CAPACITY)
            || u64::from(start) + data.len() as u64 > u64::from(DATA_BYTES)
        {
            return Err(ERR_STORE_FULL);
        }
        // SAFETY: start..start + data.len() lies inside the data area (checked above), past every
        // published entry: no reader reads it before the count below publishes it, and the append
        // lock keeps other writers out.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.base.add(DATA_OFF + start as usize),
                data.len(),
            )
        };
        fault::point("structs.written");
        let mut at = 0usize;
        for (k, &len) in lens.iter().enumerate() {
            let i = count as usize + k;
            let entry = &data[at..at + len as usize];
            at += len as usize;
            self.word(ENDS_OFF + 4 * i).store(start + at as u32, Relaxed);
            self.word(CHECKS_OFF + 4 * i).store(check_of(entry), Relaxed);
        }
        // SYNC POINT: publishes the entries' bytes, ends and checks written above to every reader
        // that loads `count` with Acquire (`count()`).
        self.header().state.count.store(count + n, Release);
        fault::point("structs.published");
        Ok(count + n)
    }
}

fn attach(fd: OwnedFd, nonce: u32) -> Result<StructStore, OpenError> {
    // The user lock first, then a second look: once it is held nobody rebuilds the store, so the
    // header read now is the one the mapping will show.
    match sys::try_share_byte(&fd, USER_LOCK_BYTE) {
        Ok(true) => {}
        Ok(false) => return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_DAMAGED_IN_USE)),
        Err(e) => return Err(io_error(e)),
    }
    let size = sys::file_size(&fd).map_err(io_error)?;
    match StoreKind.inspect(&fd, size).map_err(io_error)? {
        Found::Ready(n) if n == nonce => {}
        _ => return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_SIZE)),
    }
    let map = sys::Mapping::new(&fd, TOTAL_SIZE as usize).map_err(io_error)?;
    // SAFETY: the mapping covers the whole segment, whose size `inspect` checked; StoreHeader is
    // plain atomics.
    let h = unsafe { &*(map.base as *const StoreHeader) };
    // SYNC POINT: pairs with the builder's Release store of INIT_READY.
    if h.fixed.init_state.load(Acquire) != INIT_READY || h.fixed.nonce.load(Relaxed) != nonce {
        return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_SIZE));
    }
    Ok(StructStore { fd, map, nonce, appends: Mutex::new(()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> String {
        format!("/tst{}_{}~structures", std::process::id(), sys::monotonic_ns() % 1_000_000_007)
    }

    fn open(name: &str) -> StructStore {
        StructStore::open(name, 0o600, true, Policy::DEFAULT).unwrap()
    }

    fn all(s: &StructStore) -> Vec<Vec<u8>> {
        let mut data = vec![0u8; DATA_BYTES as usize];
        let mut lens = vec![0u32; CAPACITY as usize];
        let r = s.read(0, &mut data, &mut lens).unwrap();
        let mut at = 0;
        lens[..r.copied as usize]
            .iter()
            .map(|&l| {
                at += l as usize;
                data[at - l as usize..at].to_vec()
            })
            .collect()
    }

    #[test]
    fn structs_have_the_sizes_the_layout_assumes() {
        assert_eq!(std::mem::size_of::<StoreFixed>(), 128);
        assert_eq!(std::mem::size_of::<StoreHeader>() as u64, HEADER_SIZE);
        assert_eq!(DATA_OFF as u64 + u64::from(DATA_BYTES), TOTAL_SIZE);
    }

    #[test]
    fn entries_appended_by_one_handle_are_read_by_another_and_conflicts_are_reported() {
        let n = name();
        let (a, b) = (open(&n), open(&n));
        assert_eq!(a.nonce(), b.nonce());
        let t = Duration::from_millis(100);
        assert_eq!(a.append(a.nonce(), 0, b"abcde", &[2, 3], t), Ok(2));
        assert_eq!(all(&b), vec![b"ab".to_vec(), b"cde".to_vec()]);
        assert_eq!(b.append(b.nonce(), 1, b"x", &[1], t), Err(CONFLICT));
        assert_eq!(b.append(b.nonce() ^ 1, 2, b"x", &[1], t), Err(ERR_STALE));
        assert_eq!(b.append(b.nonce(), 2, b"xy", &[1], t), Err(ERR_INVALID_ARGUMENT));
        assert_eq!(b.append(b.nonce(), 2, b"x", &[1], t), Ok(3));
        let mut data = [0u8; 8];
        let mut lens = [0u32; 8];
        assert_eq!(a.read(1, &mut data, &mut lens), Ok(Read { count: 3, copied: 2 }));
        assert_eq!(&data[..4], b"cdex");
        let _ = sys::shm_remove(&n);
    }

    #[test]
    fn a_full_store_refuses_what_does_not_fit_and_keeps_what_it_has() {
        let n = name();
        let s = open(&n);
        let t = Duration::from_millis(100);
        let big = vec![7u8; DATA_BYTES as usize - 1];
        assert_eq!(s.append(s.nonce(), 0, &big, &[big.len() as u32], t), Ok(1));
        assert_eq!(s.append(s.nonce(), 1, b"xy", &[2], t), Err(ERR_STORE_FULL));
        assert_eq!(s.append(s.nonce(), 1, b"x", &[1], t), Ok(2));
        assert_eq!(all(&s).len(), 2);
        let _ = sys::shm_remove(&n);
    }

    #[test]
    fn a_damaged_entry_is_an_incompatible_store_not_wrong_keys() {
        let n = name();
        let s = open(&n);
        assert_eq!(s.append(s.nonce(), 0, b"keys", &[4], Duration::from_millis(100)), Ok(1));
        // SAFETY: the data area is inside the mapping; a stray write of another process, simulated.
        unsafe { *s.map.base.add(DATA_OFF) = b'K' };
        let mut data = [0u8; 8];
        let mut lens = [0u32; 1];
        assert_eq!(s.read(0, &mut data, &mut lens), Err(ERR_INCOMPATIBLE));
        let _ = sys::shm_remove(&n);
    }

    #[test]
    fn a_writer_holding_the_append_lock_makes_others_time_out_not_block() {
        let n = name();
        let (a, b) = (open(&n), open(&n));
        assert!(sys::try_lock_byte(&a.fd, APPEND_LOCK_BYTE).unwrap());
        assert_eq!(b.append(b.nonce(), 0, b"x", &[1], Duration::from_millis(5)), Err(TIMEOUT));
        sys::unlock_byte(&a.fd, APPEND_LOCK_BYTE);
        assert_eq!(b.append(b.nonce(), 0, b"x", &[1], Duration::from_millis(5)), Ok(1));
        let _ = sys::shm_remove(&n);
    }
}
