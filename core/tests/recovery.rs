//! Regressions from the protocol review: each test reproduced a defect before its fix.
//! Handles in one process stand in for processes (each has its own fd and OFD lock).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant};

use ferry_core::channel::{Handle, Side};
use ferry_core::state::{Kind, State};
use ferry_core::status::*;

mod common;
use common::{name, open, Unlink};

fn slot_state(h: &Handle, k: u32) -> State {
    State(h.seg.slot(k).state.load(Acquire))
}

/// A receiver claims an expired ack message while its sender gives up waiting (clearing ACK):
/// the receiver's expiry must still free the slot, not leave it READING forever.
#[test]
fn expiring_a_claimed_message_survives_the_sender_cancelling() {
    let n = name("exprace");
    let _u = Unlink(n.clone());
    let tx = open(&n, 1, 1);
    let rx = open(&n, 1, 1);
    let go = AtomicU32::new(0);
    let done = AtomicU32::new(0);
    let expired = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let mut failure = None;
    std::thread::scope(|s| {
        let (go, done, stop, expired) = (&go, &done, &stop, &expired);
        // The receiver's handle moves to its thread: a Handle is Send, not Sync.
        s.spawn(move || {
            let mut round = 0;
            while !stop.load(Relaxed) {
                round += 1;
                while go.load(Acquire) < round {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::hint::spin_loop();
                }
                // The 1 ms expiry is read on the 4 ms coarse clock, whose tick a VM can delay
                // past the sender's 6 ms wait: then the message is simply delivered, and held by
                // this live receiver, which hands it back so the round ends clean. The rounds that
                // did expire are counted; the test needs some.
                match rx.claim() {
                    Ok(r) => {
                        let _ = rx.release(r.slot, r.generation);
                    }
                    Err(_) => {
                        expired.fetch_add(1, Relaxed);
                    }
                }
                done.store(round, Release);
            }
        });
        for round in 1..=150u32 {
            let (k, g) = match tx.send(b"x", true, 1) {
                Ok((k, g, _)) => (k, g),
                Err(code) => {
                    failure = Some(format!("round {round}: the slot never came back (send: {code})"));
                    break;
                }
            };
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(6) {
                std::hint::spin_loop(); // past the 1 ms expiry on the coarse clock
            }
            go.store(round, Release);
            for _ in 0..(round % 64) {
                std::hint::spin_loop();
            }
            let _ = tx.ack_cancel(k, g);
            while done.load(Acquire) < round {
                std::hint::spin_loop();
            }
            if slot_state(&tx, k).kind() == Kind::Reading {
                failure = Some(format!("round {round}: slot {k} left READING with nobody holding it"));
                break;
            }
            let _ = tx.ack_status(k, g);
        }
        stop.store(true, Relaxed); // before any assertion, so the receiver thread always ends
    });
    assert_eq!(failure, None);
    assert!(expired.load(Relaxed) > 0, "no round found its message expired");
}

/// A receiver dies holding an ack message while other traffic wakes every parked waiter: the
/// sender must still learn PEER_DIED long before its timeout.
#[test]
fn a_dead_receiver_is_found_under_steady_traffic() {
    let n = name("starve");
    let _u = Unlink(n.clone());
    let sender = open(&n, 64, 1);
    let background = open(&n, 64, 16);
    let worker = open(&n, 64, 16);
    let doomed = open(&n, 64, 1);
    let (k, g, _) = sender.send(b"ack-me", true, 0).unwrap();
    assert_eq!(doomed.claim().unwrap().slot, k);
    drop(doomed);
    let stop = AtomicBool::new(false);
    let outcome = std::thread::scope(|sc| {
        let stop = &stop;
        // Each handle moves to the thread that uses it: a Handle is Send, not Sync.
        sc.spawn(move || {
            while !stop.load(Relaxed) {
                let _ = background.send(b"bg", false, 0);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        sc.spawn(move || {
            while !stop.load(Relaxed) {
                worker.wait_for(Side::Recv, 100, || {
                    worker.claim().ok().map(|m| worker.release(m.slot, m.generation))
                });
            }
        });
        let outcome =
            sender.wait_for(Side::Send, 3000, || Some(sender.ack_status(k, g)).filter(|&s| s != PENDING));
        stop.store(true, Relaxed);
        outcome
    });
    assert_eq!(outcome, PEER_DIED);
}

/// A builder that died after writing only the magic leaves a segment that is rebuilt, not one
/// that looks foreign forever.
#[test]
fn a_builder_that_died_mid_header_is_rebuilt() {
    let n = name("build");
    let _u = Unlink(n.clone());
    let layout = ferry_core::layout::Layout::new(4, 256, ferry_core::layout::MEMORY_DEFAULT).unwrap();
    // 0600, as ferry makes them: a segment granting more than the opener's permissions is refused.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .mode(0o600)
        .open(format!("/dev/shm{n}"))
        .unwrap();
    f.set_len(layout.total_size).unwrap();
    f.write_all(&ferry_core::layout::MAGIC.to_le_bytes()).unwrap();
    drop(f);
    let h = open(&n, 4, 1);
    h.send(b"works", false, 0).unwrap();
}

/// A redelivered message that expires must take its count out of the redelivery hint, or
/// every receive scans all slots from then on.
#[test]
fn an_expired_redelivery_leaves_no_hint_behind() {
    let n = name("pending");
    let _u = Unlink(n.clone());
    let tx = open(&n, 2, 4);
    let doomed = open(&n, 2, 4);
    tx.send(b"a", false, 1).unwrap();
    let _held = doomed.claim().unwrap();
    drop(doomed);
    assert_eq!(tx.sweep(), 1);
    std::thread::sleep(Duration::from_millis(30)); // let its 1 ms expiry pass on the coarse clock
    tx.send(b"b", false, 0).unwrap();
    tx.send(b"c", false, 0).unwrap(); // the pool is full: reclaim expires the redelivered one
    assert_eq!(tx.seg.header().shared.redeliver_pending.load(Relaxed), 0);
}

/// A receiver dies in the middle of a batch, holding a run it claimed before moving the lane's
/// head past it (fault point "recv.run"): every message of the run is delivered again, marked
/// redelivered, the rest once and in order, and an ack sender of one it held learns PEER_DIED.
#[test]
fn a_receiver_dying_mid_run_loses_nothing() {
    let n = name("midrun");
    let _u = Unlink(n.clone());
    let tx = open(&n, 16, 16);
    let acker = open(&n, 16, 1);
    let doomed = open(&n, 16, 16);
    let (k, g, _) = acker.send(b"ack", true, 0).unwrap();
    for i in 0..6u8 {
        tx.send(&[i], false, 0).unwrap();
    }
    let mut dst = [0u8; 64];
    let mut run = Vec::new();
    assert_eq!(doomed.recv_batch(&mut dst, 5, false, |m, _| run.push(*m)), Ok(5));
    // Put each lane's head back where the runs found it, as a death before the head update.
    for m in &run {
        let lane = slot_state(&doomed, m.slot).sender();
        let _ = doomed.seg.participant(lane).head.head.compare_exchange(
            m.seq + 1,
            run.iter().filter(|o| slot_state(&doomed, o.slot).sender() == lane).map(|o| o.seq).min().unwrap(),
            std::sync::atomic::Ordering::AcqRel,
            Relaxed,
        );
    }
    drop(doomed);
    let rx = open(&n, 16, 16);
    let mut seen = Vec::new();
    loop {
        let mut got = Vec::new();
        match rx.recv_batch(&mut dst, 16, true, |m, at| got.push((*m, at.unwrap()))) {
            Ok(_) => {}
            Err(EMPTY) => break,
            Err(e) => panic!("recv_batch: {e}"),
        }
        for (m, at) in got {
            seen.push((dst[at as usize..(at + m.len) as usize].to_vec(), m.redelivered));
        }
    }
    let async_seen: Vec<_> = seen.iter().filter(|(b, _)| b.len() == 1).collect();
    assert_eq!(async_seen.len(), 6, "each async message exactly once: {seen:?}");
    let held: Vec<u8> = run.iter().filter(|m| m.len == 1).map(|m| m.seq as u8).collect();
    for (b, redelivered) in &async_seen {
        assert_eq!(*redelivered, held.contains(&b[0]), "message {} redelivered={redelivered}", b[0]);
    }
    let fresh: Vec<u8> = async_seen.iter().filter(|(_, r)| !r).map(|(b, _)| b[0]).collect();
    assert!(fresh.windows(2).all(|w| w[0] < w[1]), "the rest in order: {fresh:?}");
    let ack_was_held = run.iter().any(|m| m.len == 3);
    assert_eq!(acker.ack_status(k, g), if ack_was_held { PEER_DIED } else { OK });
}
