//! The trust rule: whether an object found at a segment's name is ours to use.
//!
//! /dev/shm is world-writable: whatever sits at a segment's name may have been put there by anyone.
//! An existing object (the exclusive create failed with EEXIST, or the call only opens) is checked
//! with `fstat` on the descriptor we opened, never the path, before anything is written, resized or
//! chmodded (`check_ours`): it is a regular file; its owner is the caller's effective uid, root, or
//! a uid the caller trusts; its mode has no bits outside 0o777 and none outside the caller's
//! permissions. Anything else is ERR_FOREIGN and the file is left as it was. `shm_open` opens with
//! O_NOFOLLOW, so a symbolic link fails with ELOOP, reported as ERR_FOREIGN too.

use std::os::fd::OwnedFd;

use super::{io_error, OpenError, Policy};
use crate::status::*;
use crate::sys;

/// What was found at a segment's name: `fstat` of the opened descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileFacts {
    pub owner: u32,
    /// `st_mode`: the file type and the permission bits.
    pub mode: u32,
    pub size: u64,
    /// Hard links: 0 once the name was removed.
    pub links: u64,
    pub modified_unix_s: u64,
    /// (device, inode): which object this is, whatever name it has now.
    pub identity: (u64, u64),
}

impl FileFacts {
    pub(super) fn of(st: &libc::stat) -> FileFacts {
        FileFacts {
            owner: st.st_uid,
            mode: st.st_mode,
            size: st.st_size.max(0) as u64,
            links: st.st_nlink,
            modified_unix_s: st.st_mtime.max(0) as u64,
            identity: (st.st_dev, st.st_ino),
        }
    }
}

/// The trust rule (see the module doc), on an opened descriptor: what was found, or ERR_FOREIGN
/// with the reason. Reads only; `permissions` are the caller's (0..=0o777).
pub fn check_ours(fd: &OwnedFd, permissions: u32, policy: &Policy) -> Result<FileFacts, OpenError> {
    let st = sys::fstat(fd).map_err(io_error)?;
    let file = FileFacts::of(&st);
    let refuse = |why| Err(OpenError { code: ERR_FOREIGN, detail: why, file: Some(file) });
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return refuse(FOREIGN_NOT_REGULAR);
    }
    let owner = st.st_uid;
    // Root can read and write any segment anyway; trusting its files costs nothing.
    if owner != sys::euid() && owner != 0 && !policy.trusted_owners.contains(&owner) {
        return refuse(FOREIGN_OWNER);
    }
    let bits = st.st_mode & 0o7777;
    if bits & !0o777 != 0 || bits & !(permissions & 0o777) != 0 {
        return refuse(FOREIGN_MODE);
    }
    Ok(file)
}
