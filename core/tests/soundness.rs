//! Rules that keep safe Rust sound, checked where a test can see them.

mod common;
use common::{name, open, Unlink};

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
