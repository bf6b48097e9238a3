//! Rules that keep safe Rust sound, checked where a test can see them. (That a `Handle` cannot be
//! shared between threads is a compile-time rule: see the `compile_fail` example on `Handle`.)

use ferry_core::channel::{Handle, Shared};

mod common;
use common::{name, open, Unlink};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn a_handle_moves_between_threads_and_its_shared_part_is_shared() {
    assert_send::<Handle>();
    assert_sync::<Shared>();
    // What Deno does: the owner keeps using the handle while another thread parks on its
    // shared part.
    let n = name("park");
    let _u = Unlink(n.clone());
    let h = open(&n, 4, 4);
    let tx = open(&n, 4, 4);
    let shared = h.shared();
    let epoch = shared.park_prepare(ferry_core::channel::Side::Recv);
    std::thread::scope(|s| {
        let parked = s.spawn(move || shared.park_wait(ferry_core::channel::Side::Recv, epoch, 5_000));
        tx.send(b"wake", false, 0).unwrap();
        assert_eq!(parked.join().unwrap(), ferry_core::status::OK);
    });
    assert!(h.claim().is_ok());
}

// In a release build (`cargo test --release`, as the suite runs) debug_assert!s are gone: these
// bounds checks must still stop an out-of-range index before it becomes an address.

#[test]
#[should_panic(expected = "slot index")]
fn a_slot_index_past_capacity_is_refused_in_release_builds() {
    let n = name("slotbound");
    let _u = Unlink(n.clone());
    let h = open(&n, 4, 1);
    let _ = h.seg.slot(4);
}

#[test]
#[should_panic(expected = "slot index")]
fn a_data_region_past_capacity_is_refused_in_release_builds() {
    let n = name("databound");
    let _u = Unlink(n.clone());
    let h = open(&n, 4, 1);
    let _ = h.seg.data(4);
}

#[test]
#[should_panic(expected = "participant index")]
fn a_participant_index_past_the_table_is_refused_in_release_builds() {
    let n = name("partbound");
    let _u = Unlink(n.clone());
    let h = open(&n, 4, 1);
    let _ = h.seg.participant(ferry_core::layout::MAX_PARTICIPANTS as u32);
}
