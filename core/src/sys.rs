//! Thin POSIX wrappers: shared-memory objects, mappings, OFD byte locks, the futex and clocks.
//! No channel logic lives here; every function maps one or two system calls to `io::Result`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Opens (creating if absent) the POSIX shared-memory object `name` (which starts with '/').
pub fn shm_open_rw(name: &str, create: bool, mode: u32) -> io::Result<OwnedFd> {
    let mut flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
    if create {
        flags |= OFlag::O_CREAT;
    }
    shm_open(name, flags, Mode::from_bits_truncate(mode)).map_err(errno)
}

pub fn shm_remove(name: &str) -> io::Result<()> {
    shm_unlink(name).map_err(errno)
}

pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    nix::sys::stat::fstat(fd.as_raw_fd()).map_err(errno)
}

pub fn file_size(fd: &OwnedFd) -> io::Result<u64> {
    Ok(fstat(fd)?.st_size as u64)
}

/// (device, inode) of the object now at shm name `name` (which starts with '/'), without following
/// a symbolic link. glibc's shm_open puts every object in /dev/shm.
pub fn shm_identity(name: &str) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(format!("/dev/shm{name}"))?;
    Ok((m.dev(), m.ino()))
}

/// The effective uid: the one the kernel checks, and so the one whose segments are ours.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn read_at(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: pread writes at most buf.len() bytes into buf.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

pub fn set_size(fd: &OwnedFd, size: u64) -> io::Result<()> {
    nix::unistd::ftruncate(fd, size as i64).map_err(errno)
}

/// Reserves every page now, so a full /dev/shm is ENOSPC here and never SIGBUS on a later write.
pub fn reserve(fd: &OwnedFd, size: u64) -> io::Result<()> {
    nix::fcntl::fallocate(fd.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), 0, size as i64).map_err(errno)
}

pub fn set_mode(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(errno)
}

/// A shared read-write mapping of the whole object.
pub struct Mapping {
    pub base: *mut u8,
    pub len: usize,
    /// Set once the base address was handed to code that can keep pointers into the mapping which
    /// ferry cannot revoke (a JS ArrayBuffer moved away with `transfer()`): dropping the mapping
    /// then leaves harmless private memory at its addresses instead of unmapping them.
    exposed: std::sync::atomic::AtomicBool,
}

// SAFETY: the mapping is plain shared memory; all cross-thread access goes through atomics or
// through regions owned by one party according to the slot state machine.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub fn new(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping chosen by the kernel (addr null) of an fd we own; no existing
        // memory is affected. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { base: p.cast(), len, exposed: std::sync::atomic::AtomicBool::new(false) })
    }

    /// The base address, for views that outside code may keep beyond this mapping's life.
    pub fn expose(&self) -> *mut u8 {
        self.exposed.store(true, std::sync::atomic::Ordering::Relaxed); // read by drop, same thread
        self.base
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.exposed.load(std::sync::atomic::Ordering::Relaxed) {
            // A stale view may still point here. Replace the shared pages with private anonymous
            // ones in one call: a stale read sees zeros and a stale write lands in memory nobody
            // shares, rather than SIGSEGV on an unmapped page or a write into a segment another
            // message now uses. Untouched pages cost no memory; only the address range stays.
            // SAFETY: base/len is our own mapping; MAP_FIXED replaces exactly that range, which no
            // Rust reference outlives (we are dropping its owner).
            let p = unsafe {
                libc::mmap(
                    self.base.cast(),
                    self.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            // If even that failed, leaving the shared mapping in place is still safe: it leaks.
            let _ = p;
            return;
        }
        // SAFETY: base/len came from a successful mmap and nothing refers to it after drop.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn ofd_lock(fd: &OwnedFd, byte: u64, kind: libc::c_short) -> io::Result<bool> {
    // SAFETY: flock is plain data; zeroed is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // SAFETY: fcntl with F_OFD_SETLK reads the flock we pass and nothing else.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Takes the write lock on one byte of the object, without waiting. Open-file-description locks
/// belong to this fd, conflict with every other open of the object (also in this process) and
/// are dropped by the kernel when the process dies: that is ferry's liveness signal.
pub fn try_lock_byte(fd: &OwnedFd, byte: u64) -> io::Result<bool> {
    ofd_lock(fd, byte, libc::F_WRLCK as libc::c_short)
}

pub fn unlock_byte(fd: &OwnedFd, byte: u64) {
    let _ = ofd_lock(fd, byte, libc::F_UNLCK as libc::c_short);
}

/// Whether some other open file description holds a lock on `byte`.
pub fn byte_locked_by_other(fd: &OwnedFd, byte: u64) -> bool {
    range_locked_by_other(fd, byte, 1)
}

fn lock_query(byte: u64, len: u64) -> libc::flock {
    // SAFETY: flock is plain data; zeroed is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

/// Whether some other open file description (or process) holds a lock on any of `len` bytes from
/// `start` (`len` 0: to the end of any file). One F_OFD_GETLK, whatever the range.
pub fn range_locked_by_other(fd: &OwnedFd, start: u64, len: u64) -> bool {
    let mut fl = lock_query(start, len);
    // SAFETY: F_OFD_GETLK reads and writes only the flock we pass.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short
}

/// A classic POSIX record lock on one byte, held until dropped. Unlike OFD locks these belong to
/// the process, so `F_GETLK` tells others its pid; they also vanish when the process closes any
/// descriptor of the file, so they serve as a name tag, never as exclusion.
pub struct PosixLock<'a> {
    fd: &'a OwnedFd,
    byte: u64,
}

impl<'a> PosixLock<'a> {
    pub fn take(fd: &'a OwnedFd, byte: u64) -> PosixLock<'a> {
        let fl = lock_query(byte, 1);
        // SAFETY: F_SETLK reads only the flock we pass. Failure leaves no lock: only a name tag lost.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLK, &fl) };
        PosixLock { fd, byte }
    }
}

impl Drop for PosixLock<'_> {
    fn drop(&mut self) {
        let mut fl = lock_query(self.byte, 1);
        fl.l_type = libc::F_UNLCK as libc::c_short;
        // SAFETY: F_SETLK reads only the flock we pass.
        unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETLK, &fl) };
    }
}

/// The pid of another process holding a classic POSIX lock on `byte`, if any.
pub fn posix_lock_owner(fd: &OwnedFd, byte: u64) -> Option<u32> {
    let mut fl = lock_query(byte, 1);
    // SAFETY: F_GETLK reads and writes only the flock we pass.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0).then_some(fl.l_pid as u32)
}

/// FUTEX_WAIT on a word in a shared mapping (no FUTEX_PRIVATE_FLAG: waiters are in other
/// processes). Returns when woken, when the word no longer equals `expected`, or on timeout.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the futex word is a live, aligned u32 in our mapping; the kernel only reads it and
    // the timespec for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: the futex word is a live, aligned u32 in our mapping.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32);
    }
}

fn clock_ms(clock: libc::clockid_t) -> u64 {
    // SAFETY: plain data, written by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes only the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Machine-wide monotonic milliseconds (the same clock in every process), cheap and coarse
/// (a few ms): good enough for expiry deadlines and sweep pacing.
pub fn coarse_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC_COARSE)
}

pub fn monotonic_ns() -> u64 {
    // SAFETY: plain data, written by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes only the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn monotonic_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC)
}

pub fn unix_ms() -> u64 {
    clock_ms(libc::CLOCK_REALTIME)
}

/// Bytes of `len` at `base` (a mapping) that are resident in memory now.
pub fn resident_bytes(base: *mut u8, len: usize) -> u64 {
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: base/len describe one live mapping of ours; mincore writes one byte per page into
    // vec, which holds `pages` bytes.
    let r = unsafe { libc::mincore(base.cast(), len, vec.as_mut_ptr()) };
    if r != 0 {
        return 0;
    }
    vec.iter().filter(|&&b| b & 1 != 0).count() as u64 * 4096
}

pub fn pid() -> u32 {
    std::process::id()
}

pub fn cstring(s: &str) -> Option<CString> {
    CString::new(s).ok()
}
