//! Thin POSIX wrappers: shared-memory objects, mappings, OFD byte locks, the futex and clocks.
//! No channel logic lives here; every function maps one or two system calls to `io::Result`.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::mman::{self as mman, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};

fn errno(e: Errno) -> io::Error {
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
    nix::unistd::geteuid().as_raw()
}

pub fn read_at(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    nix::sys::uio::pread(fd, buf, offset as libc::off_t).map_err(errno)
}

pub fn set_size(fd: &OwnedFd, size: u64) -> io::Result<()> {
    nix::unistd::ftruncate(fd, size as i64).map_err(errno)
}

/// Allocates the pages of `[offset, offset + len)` now, so a full /dev/shm is ENOSPC here and
/// never SIGBUS on a later touch. On tmpfs a failed call leaves none of the pages it added.
pub fn allocate(fd: &OwnedFd, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    nix::fcntl::fallocate(fd.as_raw_fd(), nix::fcntl::FallocateFlags::empty(), offset as i64, len as i64)
        .map_err(errno)
}

/// Gives the pages of `[offset, offset + len)` back (they read as zeros again; the size stays).
/// Every mapping of them, in every process, loses them too: only for pages nobody touches now.
pub fn punch(fd: &OwnedFd, offset: u64, len: u64) -> io::Result<()> {
    use nix::fcntl::FallocateFlags as F;
    if len == 0 {
        return Ok(());
    }
    let flags = F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE;
    nix::fcntl::fallocate(fd.as_raw_fd(), flags, offset as i64, len as i64).map_err(errno)
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
        let len_nz = NonZeroUsize::new(len).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a fresh mapping chosen by the kernel (no address given) of an fd we own; no
        // existing memory is affected.
        let p = unsafe {
            mman::mmap(
                None,
                len_nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }
        .map_err(errno)?;
        Ok(Mapping { base: p.as_ptr().cast(), len, exposed: std::sync::atomic::AtomicBool::new(false) })
    }

    /// The base address, for views that outside code may keep beyond this mapping's life.
    pub fn expose(&self) -> *mut u8 {
        self.exposed.store(true, std::sync::atomic::Ordering::Relaxed); // read by drop, same thread
        self.base
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Both addresses come from a successful mmap of `len` > 0 bytes: never null, never zero.
        let (Some(base), Some(len)) = (NonNull::new(self.base.cast()), NonZeroUsize::new(self.len)) else {
            return;
        };
        if self.exposed.load(std::sync::atomic::Ordering::Relaxed) {
            // A stale view may still point here. Replace the shared pages with private anonymous
            // ones in one call: a stale read sees zeros and a stale write lands in memory nobody
            // shares, rather than SIGSEGV on an unmapped page or a write into a segment another
            // message now uses. Untouched pages cost no memory; only the address range stays.
            // SAFETY: base/len is our own mapping; MAP_FIXED replaces exactly that range, which no
            // Rust reference outlives (we are dropping its owner).
            let replaced = unsafe {
                mman::mmap_anonymous(
                    NonZeroUsize::new(base.as_ptr() as usize),
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED | MapFlags::MAP_NORESERVE,
                )
            };
            // If even that failed, leaving the shared mapping in place is still safe: it leaks.
            let _ = replaced;
            return;
        }
        // SAFETY: base/len came from a successful mmap and nothing refers to it after drop.
        let _ = unsafe { mman::munmap(base, self.len) };
    }
}

/// A lock request on `len` bytes from `start` (`len` 0: to the end of any file).
fn lock_request(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    // SAFETY: flock is plain data (integers, and padding on some targets); zeroed is a valid value
    // that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

fn ofd_lock(fd: &OwnedFd, byte: u64, kind: libc::c_int) -> io::Result<bool> {
    let fl = lock_request(kind, byte, 1);
    match fcntl(fd.as_raw_fd(), FcntlArg::F_OFD_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(false),
        Err(e) => Err(errno(e)),
    }
}

/// Takes the write lock on one byte of the object, without waiting. Open-file-description locks
/// belong to this fd, conflict with every other open of the object (also in this process) and
/// are dropped by the kernel when the process dies: that is ferry's liveness signal.
pub fn try_lock_byte(fd: &OwnedFd, byte: u64) -> io::Result<bool> {
    ofd_lock(fd, byte, libc::F_WRLCK)
}

/// Takes a shared (read) lock on one byte, without waiting: many descriptions may hold it at once,
/// and it conflicts only with a write lock. Dropped by the kernel when the process dies, like
/// `try_lock_byte`'s; `range_locked_by_other` sees it.
pub fn try_share_byte(fd: &OwnedFd, byte: u64) -> io::Result<bool> {
    ofd_lock(fd, byte, libc::F_RDLCK)
}

pub fn unlock_byte(fd: &OwnedFd, byte: u64) {
    let _ = ofd_lock(fd, byte, libc::F_UNLCK);
}

/// Whether some other open file description holds a lock on `byte`.
pub fn byte_locked_by_other(fd: &OwnedFd, byte: u64) -> bool {
    range_locked_by_other(fd, byte, 1)
}

/// Whether some other open file description (or process) holds a lock on any of `len` bytes from
/// `start` (`len` 0: to the end of any file). One F_OFD_GETLK, whatever the range.
pub fn range_locked_by_other(fd: &OwnedFd, start: u64, len: u64) -> bool {
    let mut fl = lock_request(libc::F_WRLCK, start, len);
    fcntl(fd.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut fl)).is_ok()
        && fl.l_type != libc::F_UNLCK as libc::c_short
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
        // Failure leaves no lock: only a name tag lost.
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETLK(&lock_request(libc::F_WRLCK, byte, 1)));
        PosixLock { fd, byte }
    }
}

impl Drop for PosixLock<'_> {
    fn drop(&mut self) {
        let _ = fcntl(self.fd.as_raw_fd(), FcntlArg::F_SETLK(&lock_request(libc::F_UNLCK, self.byte, 1)));
    }
}

/// The pid of another process holding a classic POSIX lock on `byte`, if any.
pub fn posix_lock_owner(fd: &OwnedFd, byte: u64) -> Option<u32> {
    let mut fl = lock_request(libc::F_WRLCK, byte, 1);
    let r = fcntl(fd.as_raw_fd(), FcntlArg::F_GETLK(&mut fl));
    (r.is_ok() && fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0).then_some(fl.l_pid as u32)
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

/// Wakes threads of this process sleeping on `word` (a word no other process maps).
pub fn futex_wake_private(word: &AtomicU32) {
    // SAFETY: the futex word is a live, aligned u32 of this process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

/// One word of a `futex_waitv` (the kernel's `struct futex_waitv`).
#[repr(C)]
pub struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// The futex_waitv syscall number: the same on every architecture (asm-generic numbering).
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `FUTEX2_SIZE_U32`: a 32-bit futex word.
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`: a word only this process maps (cheaper key).
const FUTEX2_PRIVATE: u32 = 128;
/// Most words one `futex_waitv` call takes (the kernel's FUTEX_WAITV_MAX).
pub const FUTEX_WAITV_MAX: usize = 128;

impl FutexWaitv {
    /// Sleep while `word` holds `expected`; `private` for a word no other process maps.
    pub fn new(word: &AtomicU32, expected: u32, private: bool) -> FutexWaitv {
        let flags = FUTEX2_SIZE_U32 | if private { FUTEX2_PRIVATE } else { 0 };
        FutexWaitv { val: u64::from(expected), uaddr: word.as_ptr() as u64, flags, reserved: 0 }
    }
}

/// How a `futex_waitv` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitvEnd {
    /// Woken on (or found changed) the word at this index, or interrupted: re-check them all.
    Woken,
    TimedOut,
    /// The kernel has no futex_waitv (before 5.16): the caller must poll.
    Unsupported,
}

/// Sleeps until one of `words` is woken or no longer holds its expected value, or CLOCK_MONOTONIC
/// passes `deadline_ns`. Every word must stay mapped until this returns: the caller holds what
/// keeps each mapping alive.
pub fn futex_waitv(words: &[FutexWaitv], deadline_ns: u64) -> WaitvEnd {
    debug_assert!(words.len() <= FUTEX_WAITV_MAX);
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `words` is a live array of `words.len()` kernel-layout entries whose addresses the
    // caller keeps mapped for the call; the kernel reads it and the timespec only during the call.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            words.as_ptr(),
            words.len() as libc::c_uint,
            0u32,
            &ts as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitvEnd::Woken;
    }
    match Errno::last() {
        Errno::ETIMEDOUT => WaitvEnd::TimedOut,
        Errno::ENOSYS => WaitvEnd::Unsupported,
        // EAGAIN: a word had already changed; EINTR: a signal. Both: look again.
        _ => WaitvEnd::Woken,
    }
}

fn clock_ns(clock: ClockId) -> u64 {
    // These clocks exist on every Linux ferry runs on; clock_gettime fails only for unknown ids.
    let ts = clock_gettime(clock).unwrap_or_else(|_| TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

fn clock_ms(clock: ClockId) -> u64 {
    clock_ns(clock) / 1_000_000
}

/// Machine-wide monotonic milliseconds (the same clock in every process), cheap and coarse
/// (a few ms): the clock of message expiry deadlines and sweep pacing.
pub fn coarse_ms() -> u64 {
    clock_ms(ClockId::CLOCK_MONOTONIC_COARSE)
}

/// CLOCK_MONOTONIC nanoseconds: the benchmarks' clock, the same in every process.
pub fn monotonic_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_MONOTONIC milliseconds: the clock of a blocking call's timeout (one process's own wait).
pub fn monotonic_ms() -> u64 {
    clock_ms(ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_BOOTTIME milliseconds: the clock of group membership deadlines (see group's "Clock").
pub fn boottime_ms() -> u64 {
    clock_ms(ClockId::CLOCK_BOOTTIME)
}

/// Wall-clock milliseconds since the Unix epoch: only for "created at" in reports.
pub fn unix_ms() -> u64 {
    clock_ms(ClockId::CLOCK_REALTIME)
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
