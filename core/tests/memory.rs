//! The payload allocator (channel/alloc.rs) at the engine's level: what a death mid-allocation
//! leaves and how recovery settles it, and receivers never touching pages their sender did not
//! allocate. Handles in one process stand in for processes (each has its own fd and OFD lock);
//! dropping one without `close` is its death (the kernel drops its lock).

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering::Relaxed;

use ferry_core::channel::{Handle, OpenOptions};
use ferry_core::layout::{MEMORY_DEFAULT, PAGE};
use ferry_core::status::*;

mod common;
use common::{name, Unlink};

fn open(name: &str, memory: u64) -> Handle {
    Handle::open(&OpenOptions {
        name,
        capacity: 4,
        max_message: 64 * 1024,
        memory,
        mode: 0o600,
        slot_limit: 4,
        observer: false,
    })
    .expect("open")
}

/// (allocated, charged) of slot `k`.
fn reserve(h: &Handle, k: u32) -> (u64, u64) {
    let w = h.seg.reserve(k).word.load(Relaxed);
    (w & 0xffff_ffff, w >> 32)
}

/// Bytes tmpfs holds for the segment.
fn file_bytes(name: &str) -> u64 {
    std::fs::metadata(format!("/dev/shm{name}")).unwrap().blocks() * 512
}

#[test]
fn an_idle_channel_allocates_only_its_fixed_part() {
    let n = name("memidle");
    let _u = Unlink(n.clone());
    let h = open(&n, MEMORY_DEFAULT);
    assert_eq!(file_bytes(&n), h.seg.layout.data_off);
    assert_eq!(h.stat().reserved, h.seg.layout.data_off);
    // Inline messages need no page.
    h.send(&[7; 96], false, 0).unwrap();
    assert_eq!(h.stat().reserved, h.seg.layout.data_off);
    let (k, _, _) = h.send(&[7; 97], false, 0).unwrap();
    assert_eq!(reserve(&h, k), (PAGE, PAGE));
    assert_eq!(file_bytes(&n), h.seg.layout.data_off + PAGE);
}

/// A sender that died after charging its growth and allocating part of it (`alloc.charged`, or
/// inside fallocate): its slot says more is charged than allocated. Recovery gives the difference
/// back before freeing the slot, so the counts and the file agree again.
#[test]
fn a_sender_dead_mid_growth_is_settled_by_recovery() {
    let n = name("memgrow");
    let _u = Unlink(n.clone());
    let tx = open(&n, 2 * 64 * 1024);
    let rx = open(&n, 2 * 64 * 1024);
    let (k, _, _) = tx.loan(10_000).unwrap();
    assert_eq!(reserve(&tx, k), (3 * PAGE, 3 * PAGE));
    // What a death between the charge and the end of fallocate leaves: charged 16 pages, two more
    // pages really allocated, the slot still WRITING.
    tx.seg.reserve(k).word.store((3 * PAGE) | ((16 * PAGE) << 32), Relaxed);
    ferry_core::sys::allocate(&tx.seg.fd, tx.seg.data_offset(k) + 3 * PAGE, 2 * PAGE).unwrap();
    assert_eq!(rx.stat().reserved, rx.seg.layout.data_off + 16 * PAGE, "overstated, never under");
    drop(tx);
    assert_eq!(rx.sweep(), 1);
    assert_eq!(reserve(&rx, k), (3 * PAGE, 3 * PAGE));
    assert_eq!(file_bytes(&n), rx.seg.layout.data_off + 3 * PAGE);
    assert_eq!(rx.stat().reserved, file_bytes(&n));
    // The bound counts what is charged: two 64 KiB messages fit again, a third does not.
    let tx = open(&n, 2 * 64 * 1024);
    tx.send(&[1; 64 * 1024], false, 0).unwrap();
    tx.send(&[2; 64 * 1024], false, 0).unwrap();
    assert_eq!(tx.send(&[3; 64 * 1024], false, 0), Err(FULL_MEMORY));
    assert_eq!(tx.stat().depth, 2, "the refused message was not written");
}

/// A sender that died mid-shrink (`alloc.punching`: allocated lowered, the punch not done) leaves
/// pages past `allocated` that are still charged; recovery punches them and lowers the charge.
#[test]
fn a_sender_dead_mid_shrink_is_settled_by_recovery() {
    let n = name("memshrink");
    let _u = Unlink(n.clone());
    let tx = open(&n, MEMORY_DEFAULT);
    let rx = open(&n, MEMORY_DEFAULT);
    let (k, _, _) = tx.loan(64 * 1024).unwrap();
    tx.seg.reserve(k).word.store(PAGE | ((16 * PAGE) << 32), Relaxed);
    drop(tx);
    assert_eq!(rx.sweep(), 1);
    assert_eq!(reserve(&rx, k), (PAGE, PAGE));
    assert_eq!(file_bytes(&n), rx.seg.layout.data_off + PAGE);
}

/// A length past the pages its sender allocated is damage: the message is dropped, never read
/// (reading a hole allocates a page, and on a full /dev/shm that is SIGBUS).
#[test]
fn a_length_past_the_allocated_pages_is_never_read() {
    let n = name("memlen");
    let _u = Unlink(n.clone());
    let tx = open(&n, MEMORY_DEFAULT);
    let rx = open(&n, MEMORY_DEFAULT);
    let (k, _, _) = tx.send(&[5; 200], false, 0).unwrap();
    tx.seg.slot(k).len.store(PAGE as u32 + 1, Relaxed);
    assert_eq!(rx.claim().err(), Some(ERR_INCOMPATIBLE));
    // The channel goes on.
    tx.send(&[6; 5000], false, 0).unwrap();
    let m = rx.claim().unwrap();
    let mut buf = vec![0; 5000];
    assert_eq!(rx.read(m.slot, m.generation, &mut buf), Ok(5000));
    assert!(buf.iter().all(|&b| b == 6));
}

/// Under a `memory` bound that binds, a small message keeps only what it needs of its slot's
/// pages, even while larger messages were sent lately: pages kept in a slot that is in flight
/// could otherwise refuse a large message the bound has room for.
#[test]
fn under_a_binding_bound_small_messages_in_flight_hold_no_kept_pages() {
    let n = name("memkeep");
    let _u = Unlink(n.clone());
    let mib = 1 << 20;
    // A sender with three slots in flight takes the slots it saw released first.
    let open = |slot_limit| {
        Handle::open(&OpenOptions {
            name: &n,
            capacity: 4,
            max_message: mib as u32,
            memory: 3 * mib,
            mode: 0o600,
            slot_limit,
            observer: false,
        })
        .expect("open")
    };
    let (tx, rx, tx2) = (open(3), open(4), open(4));
    let big = vec![1u8; mib as usize];
    for _ in 0..3 {
        tx.send(&big, false, 0).unwrap();
    }
    for _ in 0..3 {
        let m = rx.claim().unwrap();
        assert_eq!(rx.release(m.slot, m.generation), OK);
    }
    // Two small messages land in two of the slots holding 1 MiB each, and stay queued.
    let small: Vec<u32> = (0..2).map(|_| tx.send(&[2; 64], false, 0).unwrap().0).collect();
    for &k in &small {
        assert_eq!(reserve(&tx, k), (0, 0), "slot {k} kept pages its 64 B message does not need");
    }
    // So two 1 MiB messages (from another sender: these two fill this one's window) still fit
    // the 3 MiB bound beside them.
    tx2.send(&big, false, 0).unwrap();
    tx2.send(&big, false, 0).unwrap();
}
