//! The open path (segment.rs): whose segment it is, how long an open waits for a builder, what
//! happens to segments nobody finished. Descriptors of this process stand in for other processes:
//! OFD locks conflict between open file descriptions, even within one process.

mod common;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use common::{name, open, Unlink};
use ferry_core::layout::Layout;
use ferry_core::segment::{self, remove_incomplete_channel, OpenRequest, Policy, INIT_LOCK_BYTE};
use ferry_core::status::*;
use ferry_core::sys;

fn request(name: &str, create: bool, timeout_ms: u32, mode: u32) -> OpenRequest<'_> {
    OpenRequest {
        name,
        mode,
        create: create.then(|| Layout::new(4, 256, ferry_core::layout::MEMORY_DEFAULT).unwrap()),
        policy: Policy { trusted_owners: &[], timeout_ms },
    }
}

fn open_error(req: &OpenRequest) -> (i32, i32) {
    let e = segment::open(req).err().expect("the open should fail");
    (e.code, e.detail)
}

/// Descriptors of this process open on `path`.
fn descriptors_on(path: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == Path::new(path))
        .count()
}

#[test]
fn an_open_waits_for_a_held_init_lock_only_until_its_timeout() {
    let n = name("held");
    let _u = Unlink(n.clone());
    // An empty object whose init lock another open file description holds: a builder at work.
    let builder = sys::shm_open_rw(&n, true, 0o600).unwrap();
    assert!(sys::try_lock_byte(&builder, INIT_LOCK_BYTE).unwrap());
    assert_eq!(open_error(&request(&n, true, 30, 0o600)).0, ERR_BUILDING);
    assert_eq!(open_error(&request(&n, false, 30, 0o600)).0, ERR_BUILDING);
    assert_eq!(open_error(&request(&n, false, 0, 0o600)).0, ERR_BUILDING, "an observer never waits");
    assert_eq!(remove_incomplete_channel(&n, 0o600, &Policy::DEFAULT), ERR_BUILDING);
    assert_eq!(sys::file_size(&builder).unwrap(), 0, "a waiting opener touched the object");

    // The builder gone, nobody builds it: opens that may not build say so, one that may builds it.
    sys::unlock_byte(&builder, INIT_LOCK_BYTE);
    assert_eq!(open_error(&request(&n, false, 0, 0o600)).0, ERR_INCOMPLETE);
    let built = segment::open(&request(&n, true, 0, 0o600)).expect("rebuilt");
    assert_eq!(remove_incomplete_channel(&n, 0o600, &Policy::DEFAULT), BUILT);
    drop(built);
}

#[test]
fn an_incomplete_segment_is_removed_and_a_built_one_kept() {
    let n = name("incomplete");
    let _u = Unlink(n.clone());
    drop(sys::shm_open_rw(&n, true, 0o600).unwrap());
    assert_eq!(remove_incomplete_channel(&n, 0o600, &Policy::DEFAULT), OK);
    assert_eq!(remove_incomplete_channel(&n, 0o600, &Policy::DEFAULT), ERR_NOT_FOUND);
}

#[test]
fn an_opener_waiting_on_a_segment_that_is_removed_meanwhile_builds_a_fresh_one() {
    let n = name("removed");
    let _u = Unlink(n.clone());
    let old = sys::shm_open_rw(&n, true, 0o600).unwrap();
    assert!(sys::try_lock_byte(&old, INIT_LOCK_BYTE).unwrap());
    let opener = {
        let n = n.clone();
        std::thread::spawn(move || {
            segment::open(&request(&n, true, 20_000, 0o600)).map(|s| sys::fstat(&s.fd).unwrap())
        })
    };
    // Once the opener holds the old object (two descriptors on it), remove it the way gc does:
    // unlink under the init lock, then let go.
    let path = format!("/dev/shm{n}");
    while descriptors_on(&path) < 2 {
        std::thread::yield_now();
    }
    sys::shm_remove(&n).unwrap();
    sys::unlock_byte(&old, INIT_LOCK_BYTE);
    let st = opener.join().unwrap().expect("the opener should build a fresh segment");
    assert_eq!(st.st_nlink, 1, "the opener built into the removed object, which nobody else can find");
    assert_eq!(sys::shm_identity(&n).unwrap(), (st.st_dev, st.st_ino));
}

#[test]
fn a_segment_granting_more_than_the_permissions_is_refused_untouched() {
    let n = name("wide");
    let _u = Unlink(n.clone());
    let path = format!("/dev/shm{n}");
    let f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path).unwrap();
    f.set_permissions(std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(open_error(&request(&n, true, 0, 0o600)), (ERR_FOREIGN, FOREIGN_MODE));
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o7777), (0, 0o644), "the refused file changed");
    assert!(segment::open(&request(&n, true, 0, 0o644)).is_ok());

    f.set_permissions(std::fs::Permissions::from_mode(0o4600)).unwrap();
    assert_eq!(open_error(&request(&n, true, 0, 0o777)), (ERR_FOREIGN, FOREIGN_MODE));
}

#[test]
fn a_segment_damaged_while_in_use_is_refused_and_never_rebuilt_under_its_user() {
    let n = name("damaged");
    let _u = Unlink(n.clone());
    let user = open(&n, 4, 1);
    user.send(b"kept", false, 0).unwrap();
    // Zero the ready flag (`Fixed::init_state`, offset 12) through a descriptor of our own.
    let fd = sys::shm_open_rw(&n, false, 0).unwrap();
    // SAFETY: pwrite reads 4 bytes from the array for the duration of the call.
    assert_eq!(
        unsafe { libc::pwrite(std::os::fd::AsRawFd::as_raw_fd(&fd), [0u8; 4].as_ptr().cast(), 4, 12) },
        4
    );
    let size = sys::file_size(&fd).unwrap();
    for create in [true, false] {
        assert_eq!(open_error(&request(&n, create, 0, 0o600)), (ERR_INCOMPATIBLE, WHY_DAMAGED_IN_USE));
    }
    assert_eq!(remove_incomplete_channel(&n, 0o600, &Policy::DEFAULT), ERR_INCOMPATIBLE);
    assert_eq!(sys::file_size(&fd).unwrap(), size);
    let m = user.claim().expect("the queued message is still there");
    let mut buf = [0u8; 4];
    user.read(m.slot, m.generation, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");

    // Its last user gone, it is an unfinished segment like any other: rebuilt by the next opener.
    drop(user);
    assert!(segment::open(&request(&n, true, 0, 0o600)).is_ok());
}
