//! Opening a segment without ever using one that is not ours, reading one half-built, waiting past
//! the caller's timeout, or rebuilding one that live processes use. Channels and group tables share
//! this protocol (`open_segment`); each kind brings its header (`SegmentKind`). Whatever exists at a
//! name is checked first (`trust`: /dev/shm is world-writable).
//!
//! # Building
//!
//! Whoever builds a segment holds the OFD lock on byte `INIT_LOCK_BYTE` while doing so (and a
//! classic POSIX lock on `BUILDER_PID_BYTE`, only so that others can learn its pid). An opener
//! reads the header with `pread` (no mapping yet, so a rebuild cannot fault it); if the segment is
//! not READY it tries that lock again and again until its deadline (never a blocking
//! F_OFD_SETLKW: a stopped builder holds the lock for ever), then looks again and either attaches,
//! builds the segment itself (the builder died), or says why not: ERR_BUILDING (the lock is still
//! held when the deadline passes), ERR_INCOMPLETE (nobody builds it and this open may not),
//! ERR_INCOMPATIBLE (foreign, or damaged while in use). All-zero or empty objects count as "not
//! built yet"; anything else without our magic and version is foreign and left untouched.
//!
//! A segment is (re)built only when nobody uses it. Its users hold OFD locks on the bytes its kind
//! names (`SegmentKind::USERS`) for as long as they use it; a segment that is not READY while one
//! of those is held was damaged under them (its ready flag zeroed, say) and is refused, never
//! truncated under them (a mapping past the end of its file is SIGBUS for whoever touches it).
//! Removing an incomplete segment (`remove_incomplete`, for gc and rm) takes the init lock too,
//! and an opener that gets the lock after the name was removed (link count 0) starts again with a
//! fresh object, so nobody builds into a segment that nobody else can find.
//!
//! Trust checks live in `trust`, the channel segment (its header, its build, its accessors) in
//! `channel`.

mod channel;
mod trust;

pub use channel::{open, remove_incomplete_channel, Segment};
pub use trust::{check_ours, FileFacts};

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::fault;
use crate::layout::*;
use crate::status::*;
use crate::sys;

pub const INIT_LOCK_BYTE: u64 = 0;
/// The builder's classic POSIX lock, held while it builds: `F_GETLK` names its owner's pid (OFD
/// locks report -1), so an opener that gives up can say which process holds it up. Far past every
/// OFD lock byte (channels use 0..=65, group tables 0..=entries).
pub const BUILDER_PID_BYTE: u64 = u32::MAX as u64;

/// First and longest pause between two tries of a held init lock: short enough that an opener
/// sees a normal build (a few ms) finish almost at once, long enough not to spin a core.
const FIRST_PAUSE: Duration = Duration::from_micros(50);
const LONGEST_PAUSE: Duration = Duration::from_millis(5);

/// Participant `i` holds the lock on this byte for as long as its handle is open.
pub const fn participant_lock_byte(i: u32) -> u64 {
    1 + i as u64
}

/// Why an open failed: a status code, a detail (by code: a WHY_ or FOREIGN_ reason, an errno, the
/// builder's pid), and what was found at the name when something was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenError {
    pub code: i32,
    pub detail: i32,
    pub file: Option<FileFacts>,
}

impl OpenError {
    pub fn new(code: i32, detail: i32) -> OpenError {
        OpenError { code, detail, file: None }
    }

    fn about(self, file: FileFacts) -> OpenError {
        OpenError { file: self.file.or(Some(file)), ..self }
    }
}

/// How an open treats a segment that exists already, besides the permissions it was given.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Owners accepted besides the caller's effective uid and root.
    pub trusted_owners: &'a [u32],
    /// Longest wait for another process that is building the segment; u32::MAX: no limit.
    pub timeout_ms: u32,
}

impl Policy<'static> {
    /// Trusts only the caller and root and waits for a builder without limit: for Rust callers
    /// that open segments of their own (the FFI always passes the caller's choice).
    pub const DEFAULT: Policy<'static> = Policy { trusted_owners: &[], timeout_ms: u32::MAX };
}

pub struct OpenRequest<'a> {
    /// The shm object name, with its leading '/'.
    pub name: &'a str,
    /// Permission bits of a segment this call builds, and the most an existing one may grant.
    pub mode: u32,
    /// The layout to build the segment with if it is absent. None: open only an existing segment
    /// (absent is ERR_NOT_FOUND), whatever layout its header says; nothing is asked of the caller
    /// that only a creation needs.
    pub create: Option<Layout>,
    pub policy: Policy<'a>,
}

pub(crate) enum Found<R> {
    Ready(R),
    Unbuilt,
    Foreign(i32),
}

pub(crate) fn io_error(e: io::Error) -> OpenError {
    let (code, detail) = match e.raw_os_error() {
        Some(libc::ENOENT) => (ERR_NOT_FOUND, 0),
        Some(libc::EACCES) | Some(libc::EPERM) => (ERR_PERMISSION, 0),
        Some(libc::ENOSPC) | Some(libc::ENOMEM) | Some(libc::EFBIG) => (ERR_NO_SPACE, 0),
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => (ERR_INVALID_NAME, 0),
        // shm_open adds O_NOFOLLOW: a symbolic link at the name.
        Some(libc::ELOOP) => (ERR_FOREIGN, FOREIGN_SYMLINK),
        // A directory, or a socket: nothing we can open read-write as a file.
        Some(libc::EISDIR) | Some(libc::ENXIO) => (ERR_FOREIGN, FOREIGN_NOT_REGULAR),
        Some(n) => (ERR_IO, n),
        None => (ERR_IO, 0),
    };
    OpenError::new(code, detail)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

// ------------------------------------------------------------------------------------ kinds

/// The first 128 bytes of an object whose header says it is a READY segment of the kind with
/// `magic` and `version` (read with `pread`), or what was found instead: not built yet (empty,
/// zeroed, or ours and unfinished) or foreign. The part of `inspect` every kind shares; a kind
/// checks its own fields in what this returns.
pub(crate) fn ready_header<R>(
    fd: &OwnedFd,
    size: u64,
    magic: u64,
    version: u32,
) -> io::Result<Result<Vec<u8>, Found<R>>> {
    if size == 0 {
        return Ok(Err(Found::Unbuilt));
    }
    let mut head = vec![0u8; size.min(128) as usize];
    let n = sys::read_at(fd, &mut head, 0)?;
    head.truncate(n);
    if head.len() < 128 || u64_at(&head, 0) == 0 {
        let blank = head.iter().all(|&b| b == 0);
        return Ok(Err(if blank { Found::Unbuilt } else { Found::Foreign(WHY_MAGIC) }));
    }
    if u64_at(&head, 0) != magic {
        return Ok(Err(Found::Foreign(WHY_MAGIC)));
    }
    // Ours but unfinished: waited for, or rebuilt under the init lock if its builder died.
    if u32_at(&head, 12) != INIT_READY {
        return Ok(Err(Found::Unbuilt));
    }
    if u32_at(&head, 8) != version {
        return Ok(Err(Found::Foreign(WHY_VERSION)));
    }
    Ok(Ok(head))
}

/// What differs between a channel segment and a group table: the header, its checks, the build.
pub(crate) trait SegmentKind {
    /// What a READY header says (a channel's layout, a table's entry count).
    type Ready;
    /// The lock bytes a segment's users hold while they use it: (first, count); count 0 reaches
    /// to the end of any file.
    const USERS: (u64, u64);
    /// The kill point (fault.rs) a build passes after sizing the object, before its header.
    const BUILD_POINT: &'static str;
    /// Reads what the object (`size` bytes) holds now, with `pread`: no mapping.
    fn inspect(&self, fd: &OwnedFd, size: u64) -> io::Result<Found<Self::Ready>>;
    /// Bytes of the segment this call would build. This and `write_header` are called only by an
    /// open whose `OpenSpec` creates; a kind made for opening existing segments answers 0.
    fn build_size(&self) -> u64;
    /// Bytes from the start that the build allocates (`fallocate`), so that touching them can
    /// never fault on a full /dev/shm; the rest of the file stays a hole. All of it by default.
    fn allocate_size(&self) -> u64 {
        self.build_size()
    }
    /// Writes the header into a zeroed mapping of `build_size` bytes, its ready flag last.
    fn write_header(&self, map: &sys::Mapping);
}

/// The moment an open gives up waiting for another process's build.
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(timeout_ms: u32) -> Deadline {
        Deadline((timeout_ms != u32::MAX).then(|| Instant::now() + Duration::from_millis(timeout_ms.into())))
    }

    /// None: no limit.
    fn left(&self) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(Instant::now()))
    }
}

pub(crate) struct OpenSpec<'a> {
    pub name: &'a str,
    pub create: bool,
    pub mode: u32,
    pub policy: Policy<'a>,
}

/// Opens the segment `spec.name` of kind `K`: READY when this returns Ok.
pub(crate) fn open_segment<K: SegmentKind>(
    spec: &OpenSpec,
    kind: &K,
) -> Result<(OwnedFd, K::Ready), OpenError> {
    let deadline = Deadline::after(spec.policy.timeout_ms);
    loop {
        // None (from either step): the name was removed while we held the object; open again.
        let Some((fd, created)) = open_object(spec)? else { continue };
        if let Some(ready) = settle(&fd, created, spec, kind, &deadline)? {
            return Ok((fd, ready));
        }
    }
}

/// The object at `spec.name`: created exclusively if `spec.create` (then true), else the existing
/// one. None: it vanished between the failed create and the open.
fn open_object(spec: &OpenSpec) -> Result<Option<(OwnedFd, bool)>, OpenError> {
    if spec.create {
        // Exclusive first, so that this call knows whether it made the object (and may remove
        // it again if it cannot build it).
        match exclusive_create(spec.name, spec.mode) {
            Ok(fd) => return Ok(Some((fd, true))),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    match open_existing(spec.name) {
        Ok(fd) => Ok(Some((fd, false))),
        Err(e) if spec.create && e.code == ERR_NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the existing object `name` read-write (never creating, never following a link).
fn open_existing(name: &str) -> Result<OwnedFd, OpenError> {
    sys::shm_open_rw(name, false, 0).map_err(|e| match e.raw_os_error() {
        // glibc's shm_open reports a directory as EINVAL; the name itself was checked already.
        Some(libc::EINVAL) => OpenError::new(ERR_FOREIGN, FOREIGN_NOT_REGULAR),
        _ => io_error(e),
    })
}

/// Brings one opened object to READY (waiting for its builder, or building it) or says why not.
/// Ok(None): the name was removed meanwhile; the caller opens it again.
fn settle<K: SegmentKind>(
    fd: &OwnedFd,
    created: bool,
    spec: &OpenSpec,
    kind: &K,
    deadline: &Deadline,
) -> Result<Option<K::Ready>, OpenError> {
    let mut pause = FIRST_PAUSE;
    loop {
        // Checked on every look: the object may have changed hands or mode while we waited.
        let file = check_ours(fd, spec.mode, &spec.policy)?;
        if file.links == 0 {
            return if spec.create { Ok(None) } else { Err(OpenError::new(ERR_NOT_FOUND, 0).about(file)) };
        }
        match kind.inspect(fd, file.size).map_err(|e| io_error(e).about(file))? {
            Found::Ready(r) => return Ok(Some(r)),
            Found::Foreign(why) => return Err(OpenError::new(ERR_INCOMPATIBLE, why).about(file)),
            Found::Unbuilt => {}
        }
        if spec.create {
            if sys::try_lock_byte(fd, INIT_LOCK_BYTE).map_err(|e| io_error(e).about(file))? {
                let built = build_locked(fd, created, spec, kind);
                sys::unlock_byte(fd, INIT_LOCK_BYTE);
                match built.map_err(|e| e.about(file))? {
                    // Built (by us, or by the process we waited for): look again, attach.
                    true => continue,
                    false => return Ok(None),
                }
            }
        } else if !sys::range_locked_by_other(fd, INIT_LOCK_BYTE, 1) {
            // Not built, nobody building it, and this open may not build.
            let why = if in_use::<K>(fd) {
                OpenError::new(ERR_INCOMPATIBLE, WHY_DAMAGED_IN_USE)
            } else {
                OpenError::new(ERR_INCOMPLETE, 0)
            };
            return Err(why.about(file));
        }
        // Another process holds the init lock: it is building. Wait for it, up to the deadline.
        let wait = match deadline.left() {
            Some(left) if left.is_zero() => {
                let builder = sys::posix_lock_owner(fd, BUILDER_PID_BYTE).unwrap_or(0);
                return Err(OpenError::new(ERR_BUILDING, builder as i32).about(file));
            }
            Some(left) => left.min(pause),
            None => pause,
        };
        std::thread::sleep(wait);
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Whether a live process holds one of the lock bytes of a segment's users.
fn in_use<K: SegmentKind>(fd: &OwnedFd) -> bool {
    sys::range_locked_by_other(fd, K::USERS.0, K::USERS.1)
}

/// With the init lock held: builds the object if it is still linked, unbuilt and unused.
/// Ok(true): built now or found built; Ok(false): the name was removed (start again).
fn build_locked<K: SegmentKind>(
    fd: &OwnedFd,
    created: bool,
    spec: &OpenSpec,
    kind: &K,
) -> Result<bool, OpenError> {
    // Looked at again under the lock: the builder we waited for may have finished, a remover may
    // have unlinked it, its owner may have changed its mode.
    let file = check_ours(fd, spec.mode, &spec.policy)?;
    if file.links == 0 {
        return Ok(false);
    }
    match kind.inspect(fd, file.size).map_err(io_error)? {
        Found::Ready(_) => return Ok(true),
        Found::Foreign(why) => return Err(OpenError::new(ERR_INCOMPATIBLE, why)),
        Found::Unbuilt => {}
    }
    if in_use::<K>(fd) {
        return Err(OpenError::new(ERR_INCOMPATIBLE, WHY_DAMAGED_IN_USE));
    }
    if let Err(e) = build(fd, &file, spec.mode, kind) {
        // What this call made and cannot build goes, so no empty object stays behind. Removed
        // under the init lock: an opener waiting for it sees the link count drop and starts again.
        if created {
            let _ = sys::shm_remove(spec.name);
        }
        return Err(io_error(e));
    }
    Ok(true)
}

/// Builds the object from nothing. Called with the init lock held, after `in_use` said nobody
/// uses it: only then may it be truncated.
fn build<K: SegmentKind>(fd: &OwnedFd, file: &FileFacts, mode: u32, kind: &K) -> io::Result<()> {
    // The mode first, so that a failure here changed nothing. Only the owner may change it: an
    // object of a trusted owner keeps its mode (which grants no more than `mode`: checked).
    if file.owner == sys::euid() && file.mode & 0o7777 != mode & 0o777 {
        sys::set_mode(fd, mode & 0o777)?;
    }
    let _named = sys::PosixLock::take(fd, BUILDER_PID_BYTE);
    let size = kind.build_size();
    // Truncating to zero first clears whatever a dead builder left.
    sys::set_size(fd, 0)?;
    sys::set_size(fd, size)?;
    if let Err(e) = sys::allocate(fd, 0, kind.allocate_size()) {
        let _ = sys::set_size(fd, 0);
        return Err(e);
    }
    fault::point(K::BUILD_POINT);
    let map = sys::Mapping::new(fd, size as usize)?;
    kind.write_header(&map);
    Ok(())
}

/// Removes `name` if it is an incomplete segment of kind `K`: not READY, nobody building it,
/// nobody using it (gc and rm; a segment whose builder died). Returns OK (removed),
/// ERR_NOT_FOUND, BUILT (a finished segment: kept), ERR_BUILDING (its builder lives: kept),
/// ERR_INCOMPATIBLE (foreign or damaged while in use: kept), ERR_FOREIGN, or an open error.
pub(crate) fn remove_incomplete<K: SegmentKind>(name: &str, mode: u32, policy: &Policy, kind: &K) -> i32 {
    let fd = match open_existing(name) {
        Ok(fd) => fd,
        Err(e) => return e.code,
    };
    if let Err(e) = check_ours(&fd, mode, policy) {
        return e.code;
    }
    match sys::try_lock_byte(&fd, INIT_LOCK_BYTE) {
        Ok(true) => {}
        Ok(false) => return ERR_BUILDING,
        Err(e) => return io_error(e).code,
    }
    // Under the init lock no opener can start building it, so what we judge is what we remove.
    let outcome = remove_locked(&fd, name, kind);
    sys::unlock_byte(&fd, INIT_LOCK_BYTE);
    outcome
}

fn remove_locked<K: SegmentKind>(fd: &OwnedFd, name: &str, kind: &K) -> i32 {
    let file = match sys::fstat(fd) {
        Ok(st) => FileFacts::of(&st),
        Err(e) => return io_error(e).code,
    };
    if file.links == 0 {
        return ERR_NOT_FOUND;
    }
    match kind.inspect(fd, file.size) {
        Ok(Found::Unbuilt) => {}
        Ok(Found::Ready(_)) => return BUILT,
        Ok(Found::Foreign(_)) => return ERR_INCOMPATIBLE,
        Err(e) => return io_error(e).code,
    }
    if in_use::<K>(fd) {
        return ERR_INCOMPATIBLE;
    }
    // shm_unlink goes by name: make sure the name is still this object (a remove and a new create
    // in between would otherwise lose the new one). A narrow race remains between this look and
    // the unlink, the same as any unlink by name.
    if sys::shm_identity(name).ok() != Some(file.identity) {
        return ERR_NOT_FOUND;
    }
    match sys::shm_remove(name) {
        Ok(()) => OK,
        Err(e) => io_error(e).code,
    }
}

pub(crate) fn exclusive_create(name: &str, mode: u32) -> io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    nix::sys::mman::shm_open(name, flags, Mode::from_bits_truncate(mode))
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}
