//! Creating and attaching a channel segment without ever reading it half-built.
//!
//! Whoever builds a segment holds the OFD lock on byte `INIT_LOCK_BYTE` while doing so. An opener
//! reads the header with `pread` (no mapping yet, so a rebuild cannot fault it); if the segment is
//! not READY it blocks on that lock, which the kernel hands over when the builder finishes or
//! dies, then looks again and either attaches, builds it itself (the builder died), or reports a
//! foreign segment. All-zero or empty objects count as "not built yet"; anything else without our
//! magic and version is foreign and left untouched.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::layout::*;
use crate::status::*;
use crate::sys;

pub const INIT_LOCK_BYTE: u64 = 0;

/// Participant `i` holds the lock on this byte for as long as its handle is open.
pub fn participant_lock_byte(i: u32) -> u64 {
    1 + u64::from(i)
}

pub struct Segment {
    pub fd: OwnedFd,
    pub map: sys::Mapping,
    pub layout: Layout,
}

/// Why an open failed: a status code and, for ERR_INCOMPATIBLE / ERR_IO, a detail (reason or
/// errno).
pub type OpenError = (i32, i32);

pub struct OpenRequest<'a> {
    /// The shm object name, with its leading '/'.
    pub name: &'a str,
    pub capacity: u32,
    pub max_message: u32,
    pub mode: u32,
    /// Create and build the segment if it is absent (false for read-only inspection).
    pub create: bool,
}

enum Found {
    Ready(Layout),
    Unbuilt,
    Foreign(i32),
}

pub(crate) fn io_error(e: io::Error) -> OpenError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => (ERR_NOT_FOUND, 0),
        Some(libc::EACCES) | Some(libc::EPERM) => (ERR_PERMISSION, 0),
        Some(libc::ENOSPC) | Some(libc::ENOMEM) | Some(libc::EFBIG) => (ERR_NO_SPACE, 0),
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => (ERR_INVALID_NAME, 0),
        Some(n) => (ERR_IO, n),
        None => (ERR_IO, 0),
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads what the object holds now. Field offsets follow `Fixed`.
fn inspect(fd: &OwnedFd) -> io::Result<Found> {
    let size = sys::file_size(fd)?;
    if size == 0 {
        return Ok(Found::Unbuilt);
    }
    let mut head = vec![0u8; size.min(4096) as usize];
    let n = sys::read_at(fd, &mut head, 0)?;
    head.truncate(n);
    if head.len() < 128 || u64_at(&head, 0) == 0 {
        let blank = head.iter().all(|&b| b == 0);
        return Ok(if blank { Found::Unbuilt } else { Found::Foreign(WHY_MAGIC) });
    }
    if u64_at(&head, 0) != MAGIC {
        return Ok(Found::Foreign(WHY_MAGIC));
    }
    // Ours but not finished: a builder is at work or died mid-way, so fields after the magic
    // (the version among them) may be missing. Waited for, or rebuilt under the init lock.
    if u32_at(&head, 12) != INIT_READY {
        return Ok(Found::Unbuilt);
    }
    if u32_at(&head, 8) != LAYOUT_VERSION {
        return Ok(Found::Foreign(WHY_VERSION));
    }
    let claimed = Layout::new(u32_at(&head, 24), u32_at(&head, 28));
    match claimed {
        Some(l)
            if l.total_size == u64_at(&head, 16)
                && l.total_size == size
                && l.slot_stride == u64_at(&head, 32)
                && l.participants_off == u64_at(&head, 40)
                && l.slots_off == u64_at(&head, 48)
                && l.data_off == u64_at(&head, 56) =>
        {
            Ok(Found::Ready(l))
        }
        _ => Ok(Found::Foreign(WHY_SIZE)),
    }
}

pub(crate) fn lock_wait(fd: &OwnedFd, byte: u64) -> io::Result<()> {
    // SAFETY: plain data, filled in below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    loop {
        // SAFETY: F_OFD_SETLKW reads only the flock we pass; it blocks until the lock is ours.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLKW, &fl) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Builds the segment from nothing. Called with the init lock held.
fn build(fd: &OwnedFd, layout: Layout, mode: u32) -> io::Result<()> {
    // Truncating to zero first clears whatever a dead builder left.
    sys::set_size(fd, 0)?;
    sys::set_size(fd, layout.total_size)?;
    if let Err(e) = sys::reserve(fd, layout.total_size) {
        let _ = sys::set_size(fd, 0);
        return Err(e);
    }
    sys::set_mode(fd, mode)?;
    crate::fault::point("open.building");
    let map = sys::Mapping::new(fd, layout.total_size as usize)?;
    // SAFETY: the mapping is at least size_of::<Header>() long (Layout puts the participants
    // after it) and page aligned; Header is plain atomics, valid for any (here: zero) bytes.
    let h = unsafe { &*(map.base as *const Header) };
    let f = &h.fixed;
    f.magic.store(MAGIC, Relaxed);
    // SYNC POINT: the magic lands before any other field, so no reader sees fields without it
    // (which would look like a foreign segment rather than one being built).
    std::sync::atomic::fence(Release);
    f.version.store(LAYOUT_VERSION, Relaxed);
    f.total_size.store(layout.total_size, Relaxed);
    f.capacity.store(layout.capacity, Relaxed);
    f.max_message.store(layout.max_message, Relaxed);
    f.slot_stride.store(layout.slot_stride, Relaxed);
    f.participants_off.store(layout.participants_off, Relaxed);
    f.slots_off.store(layout.slots_off, Relaxed);
    f.data_off.store(layout.data_off, Relaxed);
    f.created_unix_ms.store(sys::unix_ms(), Relaxed);
    // SYNC POINT: every field above is visible to whoever sees INIT_READY (Acquire in `attach`).
    f.init_state.store(INIT_READY, Release);
    Ok(())
}

fn attach(fd: OwnedFd, layout: Layout) -> Result<Segment, OpenError> {
    let map = sys::Mapping::new(&fd, layout.total_size as usize).map_err(io_error)?;
    // SAFETY: the mapping covers the whole segment, whose size `inspect` checked against the
    // header; Header is plain atomics.
    let h = unsafe { &*(map.base as *const Header) };
    // SYNC POINT: pairs with the builder's Release store of INIT_READY.
    if h.fixed.init_state.load(Acquire) != INIT_READY || Layout::from_fixed(&h.fixed) != Some(layout) {
        return Err((ERR_INCOMPATIBLE, WHY_SIZE));
    }
    Ok(Segment { fd, map, layout })
}

/// Opens the segment `req.name`, creating and building it when absent and `req.create` is set.
pub fn open(req: &OpenRequest) -> Result<Segment, OpenError> {
    let wanted = Layout::new(req.capacity, req.max_message).ok_or((ERR_INVALID_ARGUMENT, 0))?;
    // Try an exclusive create first so that a failed build can remove what this call created.
    let (fd, created) = if req.create {
        match exclusive_create(req.name, req.mode) {
            Ok(fd) => (fd, true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                (sys::shm_open_rw(req.name, false, req.mode).map_err(io_error)?, false)
            }
            Err(e) => return Err(io_error(e)),
        }
    } else {
        (sys::shm_open_rw(req.name, false, req.mode).map_err(io_error)?, false)
    };
    loop {
        match inspect(&fd).map_err(io_error)? {
            Found::Ready(l) => return attach(fd, l),
            Found::Foreign(why) => return Err((ERR_INCOMPATIBLE, why)),
            Found::Unbuilt => {}
        }
        lock_wait(&fd, INIT_LOCK_BYTE).map_err(io_error)?;
        let found = inspect(&fd).map_err(io_error);
        let outcome = match found {
            Ok(Found::Unbuilt) if req.create => build(&fd, wanted, req.mode).map_err(io_error),
            Ok(Found::Unbuilt) => Err((ERR_NOT_FOUND, 0)),
            Ok(Found::Foreign(why)) => Err((ERR_INCOMPATIBLE, why)),
            Ok(Found::Ready(_)) => Ok(()),
            Err(e) => Err(e),
        };
        sys::unlock_byte(&fd, INIT_LOCK_BYTE);
        if let Err(e) = outcome {
            if created {
                let _ = sys::shm_remove(req.name);
            }
            return Err(e);
        }
    }
}

pub(crate) fn exclusive_create(name: &str, mode: u32) -> io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    nix::sys::mman::shm_open(name, flags, Mode::from_bits_truncate(mode))
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

impl Segment {
    pub fn header(&self) -> &Header {
        // SAFETY: `attach` checked the mapping holds a READY header at offset 0.
        unsafe { &*(self.map.base as *const Header) }
    }

    // The three accessors below turn an index into a reference or pointer into the mapping. Their
    // bounds checks are real `assert!`s, not `debug_assert!`s: they are what keeps an index bug
    // from reading or writing past the array in a release build, they cost one predictable
    // branch, and a panic aborts at the C ABI boundary (a clear crash) instead of corrupting
    // another slot or another process's message. Every index the engine takes from shared memory
    // (ring entries, state-word fields) is range-checked before it gets here, so another process
    // cannot trigger them.

    pub fn participant(&self, i: u32) -> &Participant {
        assert!((i as usize) < MAX_PARTICIPANTS, "participant index {i} out of range");
        let off = self.layout.participants_off as usize + i as usize * std::mem::size_of::<Participant>();
        // SAFETY: i < MAX_PARTICIPANTS (asserted above) and `Layout` places the whole participant
        // array inside the mapping; Participant is plain atomics, valid for any bytes.
        unsafe { &*(self.map.base.add(off) as *const Participant) }
    }

    pub fn slot(&self, k: u32) -> &Slot {
        assert!(k < self.layout.capacity, "slot index {k} out of range (capacity {})", self.layout.capacity);
        let off = self.layout.slots_off as usize + k as usize * std::mem::size_of::<Slot>();
        // SAFETY: k < capacity (asserted above) and `Layout` places the whole slot array inside
        // the mapping; Slot is atomics plus inline bytes only its owner writes.
        unsafe { &*(self.map.base.add(off) as *const Slot) }
    }

    /// Start of slot `k`'s data region (`slot_stride` bytes).
    pub fn data(&self, k: u32) -> *mut u8 {
        assert!(k < self.layout.capacity, "slot index {k} out of range (capacity {})", self.layout.capacity);
        let off = self.layout.data_off as usize + k as usize * self.layout.slot_stride as usize;
        // SAFETY: k < capacity (asserted above), so the region lies inside the mapping.
        unsafe { self.map.base.add(off) }
    }
}
