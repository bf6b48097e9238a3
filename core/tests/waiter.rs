//! The process's waiter: one `WaitSet` sleeps on many channels' lines at once, hands back only the
//! waits that fired, and keeps a handle's mapping alive while it sleeps on it.

use std::time::{Duration, Instant};

use ferry_core::channel::Side;
use ferry_core::status::{OK, TIMEOUT};
use ferry_core::wait::{Spin, SPIN_BUSY, SPIN_MAX_US, SPIN_POLITE};
use ferry_core::waiter::{WaitSet, WAITSET_MAX};

mod common;
use common::{name, open, Unlink};

/// Parks every receiver in `set` (tokens 1..), then runs `wake` while another thread has the set
/// sleep; retried when the slice (20 ms) ended first (then every wait fired). The tokens that fired.
fn fired_on_wake(set: &WaitSet, receivers: &[&ferry_core::channel::Handle], wake: impl Fn()) -> Vec<u32> {
    for _ in 0..50 {
        for (i, rx) in receivers.iter().enumerate() {
            set.remove(i as u32 + 1);
            assert!(set.add(rx.shared_arc(), Side::Recv, rx.park_prepare(Side::Recv), i as u32 + 1));
        }
        let n = std::thread::scope(|s| {
            let waiting = s.spawn(|| set.wait(20));
            std::thread::sleep(Duration::from_millis(2)); // usually asleep by now; either way it must see the wake
            wake();
            waiting.join().unwrap()
        });
        let mut out = vec![0u32; 128];
        let taken = set.take(&mut out) as usize;
        out.truncate(taken);
        assert_eq!(out.len() as u32, n);
        // Had the slice ended first, every wait would have fired, token 1 among them.
        if !out.contains(&1) {
            return out;
        }
    }
    panic!("every slice ended before the wake");
}

#[test]
fn one_set_waits_for_many_channels_and_hands_back_the_one_that_fired() {
    let names: Vec<String> = (0..8).map(|i| name(&format!("ws{i}"))).collect();
    let _u: Vec<Unlink> = names.iter().map(|n| Unlink(n.clone())).collect();
    let receivers: Vec<_> = names.iter().map(|n| open(n, 64, 32)).collect();
    let sender = open(&names[5], 64, 32);
    let set = WaitSet::new();
    let fired = fired_on_wake(&set, &receivers.iter().collect::<Vec<_>>(), || {
        sender.send(b"wake", false, 0).unwrap();
    });
    assert_eq!(fired, vec![6], "the wait on channel 5 fired, and only it");
    assert!(receivers[5].claim().is_ok());
    for token in 1..=8 {
        set.remove(token);
    }
    assert_eq!(set.wait(1_000), 0, "an empty set returns at once");
}

#[test]
fn a_wait_added_while_the_set_sleeps_is_woken_too() {
    let (a, b) = (name("wsadd-a"), name("wsadd-b"));
    let _u = (Unlink(a.clone()), Unlink(b.clone()));
    let (rx_a, rx_b, tx_b) = (open(&a, 64, 32), open(&b, 64, 32), open(&b, 64, 32));
    let set = WaitSet::new();
    let fired = fired_on_wake(&set, &[&rx_a], || {
        assert!(set.add(rx_b.shared_arc(), Side::Recv, rx_b.park_prepare(Side::Recv), 2));
        tx_b.send(b"wake", false, 0).unwrap();
    });
    assert_eq!(fired, vec![2]);
}

#[test]
fn a_handle_dropped_while_the_set_sleeps_on_it_stays_mapped_until_the_set_lets_go() {
    let n = name("wsdrop");
    let _u = Unlink(n.clone());
    let rx = open(&n, 4, 4);
    let set = WaitSet::new();
    assert!(set.add(rx.shared_arc(), Side::Recv, rx.park_prepare(Side::Recv), 1));
    std::thread::scope(|s| {
        let waiting = s.spawn(|| set.wait(20));
        std::thread::sleep(Duration::from_millis(2));
        rx.close();
        set.remove(1);
        drop(rx); // a snapshot the set sleeps on still holds the mapping: no fault, and the wait returns
        assert_eq!(waiting.join().unwrap(), 0);
    });
}

#[test]
fn a_slice_that_ends_fires_every_wait_so_each_rechecks_its_deadline() {
    let n = name("wsslice");
    let _u = Unlink(n.clone());
    let rx = open(&n, 4, 4);
    let set = WaitSet::new();
    assert!(set.add(rx.shared_arc(), Side::Recv, rx.park_prepare(Side::Recv), 9));
    assert_eq!(set.wait(5), 1);
    let mut out = [0u32; 1];
    assert_eq!((set.take(&mut out), out[0]), (1, 9));
}

#[test]
fn a_set_is_full_at_its_limit() {
    let n = name("wsfull");
    let _u = Unlink(n.clone());
    let rx = open(&n, 4, 4);
    let set = WaitSet::new();
    for t in 0..WAITSET_MAX as u32 {
        assert!(set.add(rx.shared_arc(), Side::Recv, 0, t));
    }
    assert!(!set.add(rx.shared_arc(), Side::Recv, 0, 999));
}

#[test]
fn the_spin_option_takes_its_words_and_refuses_others() {
    assert_eq!(Spin::from_abi(SPIN_POLITE), Some(Spin::Polite));
    assert_eq!(Spin::from_abi(SPIN_BUSY), Some(Spin::Busy));
    assert_eq!(Spin::from_abi(0), Some(Spin::For(0)));
    assert_eq!(Spin::from_abi(SPIN_MAX_US), Some(Spin::For(SPIN_MAX_US)));
    assert_eq!(Spin::from_abi(SPIN_MAX_US + 1), None);
}

#[test]
fn busy_and_timed_spins_answer_and_keep_their_deadline() {
    let n = name("wsbusy");
    let _u = Unlink(n.clone());
    let rx = open(&n, 4, 4);
    for spin in [Spin::Busy, Spin::For(200), Spin::For(0)] {
        let start = Instant::now();
        assert_eq!(rx.wait_spinning(Side::Recv, 30, spin, || None), TIMEOUT, "{spin:?}");
        assert!(start.elapsed() >= Duration::from_millis(30), "{spin:?} returned before its deadline");
        let mut n = 0;
        assert_eq!(
            rx.wait_spinning(Side::Recv, 1000, spin, || (n == 3).then_some(OK).or_else(|| {
                n += 1;
                None
            })),
            OK
        );
    }
}
