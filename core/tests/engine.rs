//! The engine between handles of one process. Each handle has its own fd and OFD lock, so
//! dropping a handle without `close` looks to the others exactly like a process death.

use ferry_core::channel::{Handle, Marks, Side};
use ferry_core::state::{State, FLAG_REPEAT};
use ferry_core::status::*;

mod common;
use common::{name, open, Unlink};

fn recv_bytes(h: &Handle) -> Result<(Vec<u8>, ferry_core::channel::Received), i32> {
    let m = h.claim()?;
    let mut buf = vec![0u8; m.len as usize];
    h.read(m.slot, m.generation, &mut buf)?;
    Ok((buf, m))
}

#[test]
fn async_messages_arrive_in_order_and_free_their_slots() {
    let n = name("order");
    let _u = Unlink(n.clone());
    let tx = open(&n, 8, 4);
    let rx = open(&n, 8, 4);
    for round in 0..10u8 {
        for i in 0..4u8 {
            tx.send(&[round, i], false, 0).unwrap();
        }
        assert_eq!(tx.send(&[9], false, 0), Err(FULL_SLOTS));
        for i in 0..4u8 {
            let (b, m) = recv_bytes(&rx).unwrap();
            assert_eq!(b, vec![round, i]);
            assert_eq!(rx.release(m.slot, m.generation), OK);
        }
        assert_eq!(rx.claim().err(), Some(EMPTY));
    }
    assert_eq!(rx.stat().sent, 40);
}

#[test]
fn capacity_is_shared_by_senders() {
    let n = name("cap");
    let _u = Unlink(n.clone());
    let a = open(&n, 5, 4);
    let b = open(&n, 5, 4);
    for _ in 0..4 {
        a.send(b"a", false, 0).unwrap();
    }
    b.send(b"b", false, 0).unwrap();
    assert_eq!(b.send(b"b", false, 0), Err(FULL_CAPACITY));
}

#[test]
fn ack_outcome_follows_release_and_receiver_death() {
    let n = name("ack");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 1);
    let rx = open(&n, 4, 1);
    let (k, g, _) = tx.send(b"x", true, 0).unwrap();
    assert_eq!(tx.ack_status(k, g), PENDING);
    let (_, m) = recv_bytes(&rx).unwrap();
    assert_eq!(tx.ack_status(k, g), PENDING);
    assert_eq!(rx.release(m.slot, m.generation), OK);
    assert_eq!(tx.ack_status(k, g), OK);

    let (k, g, _) = tx.send(b"y", true, 0).unwrap();
    let rx2 = open(&n, 4, 1);
    let _held = recv_bytes(&rx2).unwrap();
    drop(rx2); // dies holding it
    assert_eq!(tx.sweep(), 1);
    assert_eq!(tx.ack_status(k, g), PEER_DIED);
    drop(rx);
}

/// A receiver's reject hands its sender the outcome it names, frees nothing the sender still
/// collects, and releases a message nobody waits for; a bad outcome changes nothing.
#[test]
fn reject_fails_the_ack_sender_with_the_outcome_it_names() {
    let n = name("reject");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 1);
    let rx = open(&n, 4, 1);
    for outcome in [REJECTED, PEER_DIED, EXPIRED] {
        let (k, g, _) = tx.send(b"x", true, 0).unwrap();
        let (_, m) = recv_bytes(&rx).unwrap();
        assert_eq!(rx.reject(m.slot, m.generation, OK), ERR_INVALID_ARGUMENT);
        assert_eq!(rx.reject(m.slot, m.generation, TIMEOUT), ERR_INVALID_ARGUMENT);
        assert_eq!(tx.ack_status(k, g), PENDING, "a refused reject changed the message");
        assert_eq!(rx.reject(m.slot, m.generation, outcome), OK);
        assert_eq!(rx.reject(m.slot, m.generation, outcome), ERR_NOT_HELD);
        assert_eq!(rx.release(m.slot, m.generation), ERR_NOT_HELD);
        assert_eq!(tx.ack_status(k, g), outcome);
    }
    // Async: nobody waits, so the slot is simply freed.
    tx.send(b"a", false, 0).unwrap();
    let (_, m) = recv_bytes(&rx).unwrap();
    assert_eq!(rx.reject(m.slot, m.generation, REJECTED), OK);
    assert_eq!(tx.stat().in_flight, 0);
    // An ack sender that gave up (ACK cleared) leaves the holder a plain message: freed too.
    let (k, g, _) = tx.send(b"late", true, 0).unwrap();
    let (_, m) = recv_bytes(&rx).unwrap();
    assert_eq!(tx.ack_cancel(k, g), TIMEOUT);
    assert_eq!(rx.reject(m.slot, m.generation, REJECTED), OK);
    assert_eq!(tx.stat().in_flight, 0);
    assert_eq!(tx.send(b"room", true, 0).map(|_| ()), Ok(()), "the rejected slots came back");
}

/// A clean close is not a death: an ack-mode message the closing receiver held goes to another
/// receiver, marked redelivered and still ack-mode, and its sender's wait goes on to OK.
#[test]
fn close_hands_a_held_ack_message_to_another_receiver() {
    let n = name("closeack");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 1);
    let (k, g, _) = tx.send(b"job", true, 0).unwrap();
    let leaving = open(&n, 4, 1);
    let (b, m) = recv_bytes(&leaving).unwrap();
    assert_eq!((b.as_slice(), m.redelivered, m.ack), (&b"job"[..], false, true));
    leaving.close(); // alive, holding it, and closing
    assert_eq!(tx.ack_status(k, g), PENDING, "a close was reported as a death");
    let rx = open(&n, 4, 1);
    let (b, m) = recv_bytes(&rx).unwrap();
    assert_eq!((b.as_slice(), m.redelivered, m.ack), (&b"job"[..], true, true));
    assert_eq!(tx.ack_status(k, g), PENDING);
    assert_eq!(rx.release(m.slot, m.generation), OK);
    assert_eq!(tx.ack_status(k, g), OK);
    assert_eq!(tx.stat().redelivered, 1, "a handed-back message counts as a redelivery");
    assert_eq!(rx.claim().err(), Some(EMPTY));
    drop(leaving);
}

/// close() frees the seat itself. A child that another thread forks holds every open file
/// description of the process until it execs (a dup here stands in for it): closing the fd alone
/// left the seat's lock held, and the next open of a full channel failed with TOO_MANY_PARTICIPANTS.
#[test]
fn close_frees_the_seat_even_while_another_reference_holds_the_fd() {
    let n = name("seat");
    let _u = Unlink(n.clone());
    let mut all: Vec<Handle> = (0..ferry_core::layout::MAX_PARTICIPANTS).map(|_| open(&n, 4, 1)).collect();
    let forked_child = all[17].seg.fd.try_clone().expect("dup");
    let leaving = all.remove(17);
    leaving.close();
    drop(leaving);
    let again = open(&n, 4, 1);
    again.send(b"in", false, 0).unwrap();
    let (b, _) = recv_bytes(&all[0]).unwrap();
    assert_eq!(b, b"in");
    drop(forked_child);
}

/// A sender that gives up on a message a closed receiver handed back withdraws it, and leaves no
/// redelivery hint behind (else every receive would scan all slots from then on).
#[test]
fn withdrawing_a_handed_back_ack_message_clears_the_redelivery_hint() {
    let n = name("closecancel");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 1);
    let (k, g, _) = tx.send(b"job", true, 0).unwrap();
    let leaving = open(&n, 4, 1);
    recv_bytes(&leaving).unwrap();
    leaving.close();
    assert_eq!(tx.seg.header().shared.redeliver_pending.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(tx.ack_cancel(k, g), TIMEOUT);
    assert_eq!(tx.seg.header().shared.redeliver_pending.load(std::sync::atomic::Ordering::Relaxed), 0);
    let rx = open(&n, 4, 1);
    assert_eq!(rx.claim().err(), Some(EMPTY), "a withdrawn message was delivered");
}

#[test]
fn async_message_held_by_a_dead_receiver_is_redelivered() {
    let n = name("redeliver");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 4);
    let rx = open(&n, 4, 4);
    tx.send(b"one", false, 0).unwrap();
    let doomed = open(&n, 4, 4);
    let (b, _) = recv_bytes(&doomed).unwrap();
    assert_eq!(b, b"one");
    drop(doomed);
    assert_eq!(rx.claim().err(), Some(EMPTY));
    assert_eq!(tx.sweep(), 1);
    let (b, m) = recv_bytes(&rx).unwrap();
    assert_eq!(b, b"one");
    assert!(m.redelivered);
}

#[test]
fn a_dead_writer_never_exposes_its_slot_and_the_slot_comes_back() {
    let n = name("writer");
    let _u = Unlink(n.clone());
    let rx = open(&n, 1, 1);
    {
        let tx = open(&n, 1, 1);
        tx.send(b"kept", false, 0).unwrap(); // queued messages outlive their sender
    }
    let (b, m) = recv_bytes(&rx).unwrap();
    assert_eq!(b, b"kept");
    rx.release(m.slot, m.generation);
    let tx = open(&n, 1, 1);
    tx.send(b"again", false, 0).unwrap();
    assert_eq!(recv_bytes(&rx).unwrap().0, b"again");
}

#[test]
fn blocking_receive_wakes_for_a_message_from_another_thread() {
    let n = name("wake");
    let _u = Unlink(n.clone());
    let rx = open(&n, 4, 4);
    let n2 = n.clone();
    let t = std::thread::spawn(move || {
        let tx = open(&n2, 4, 4);
        let epoch_seen = tx.park_prepare(Side::Send);
        tx.park_cancel(Side::Send);
        tx.send(b"late", false, 0).unwrap();
        epoch_seen
    });
    let got = rx.wait_for(Side::Recv, 5000, || rx.claim().ok().map(|_| OK));
    t.join().unwrap();
    assert_eq!(got, OK);
}

#[test]
fn a_one_shot_send_finds_a_slot_released_out_of_order() {
    let n = name("outoforder");
    let _u = Unlink(n.clone());
    let tx = open(&n, 8, 2);
    let rx = open(&n, 8, 2);
    tx.send(b"first", false, 0).unwrap();
    tx.send(b"second", false, 0).unwrap();
    let (_, held) = recv_bytes(&rx).unwrap(); // the oldest stays held
    let (_, done) = recv_bytes(&rx).unwrap();
    assert_eq!(rx.release(done.slot, done.generation), OK);
    assert!(tx.send(b"third", false, 0).is_ok(), "a free slot was not seen");
    assert_eq!(tx.send(b"fourth", false, 0), Err(FULL_SLOTS));
    rx.release(held.slot, held.generation);
}

/// Opens that create nothing (an observer, or an open of an existing channel only) read the
/// channel's settings from its header: they ask nothing of the caller that only a creation needs.
#[test]
fn an_open_that_creates_nothing_needs_no_creation_settings() {
    use ferry_core::channel::OpenOptions;
    let n = name("observer-open");
    let _u = Unlink(n.clone());
    let unusable = |observer| OpenOptions {
        name: &n,
        capacity: 0,
        max_message: u32::MAX,
        memory: ferry_core::layout::MEMORY_DEFAULT,
        mode: 0o600,
        slot_limit: 0,
        observer,
    };
    assert_eq!(
        Handle::open(&unusable(true)).err().map(|e| e.code),
        Some(ERR_NOT_FOUND),
        "an observer never creates"
    );
    assert_eq!(Handle::open(&unusable(false)).err().map(|e| e.code), Some(ERR_INVALID_ARGUMENT));

    let tx = open(&n, 8, 4);
    tx.send(b"hello", false, 0).unwrap();
    let observer = Handle::open(&unusable(true)).expect("an observer of an existing channel");
    assert_eq!((observer.capacity(), observer.max_message(), observer.stat().depth), (8, 256, 1));
    let existing = OpenOptions { slot_limit: 1, ..unusable(false) };
    let rx = Handle::open_with(&existing, false).expect("an open of an existing channel only");
    assert_eq!(recv_bytes(&rx).unwrap().0, b"hello");
}

/// Receives a batch of up to `max` into a buffer with room for all of them, not releasing.
fn recv_run(h: &Handle, max: u32) -> Vec<(Vec<u8>, ferry_core::channel::Received)> {
    let mut dst = vec![0u8; 256 * max as usize];
    let mut got = Vec::new();
    let n = h.recv_batch(&mut dst, max, false, |m, at| got.push((*m, at.expect("room for all")))).unwrap();
    assert_eq!(n as usize, got.len());
    got.into_iter().map(|(m, at)| (dst[at as usize..(at + m.len) as usize].to_vec(), m)).collect()
}

#[test]
fn a_batch_claims_a_run_in_order_and_moves_the_head_once_past_it() {
    let n = name("run");
    let _u = Unlink(n.clone());
    let tx = open(&n, 16, 16);
    let rx = open(&n, 16, 16);
    for i in 0..8u8 {
        tx.send(&[i; 3], false, 0).unwrap();
    }
    let head = &rx.seg.participant(tx.me).head.head;
    let first = recv_run(&rx, 5);
    assert_eq!(
        first.iter().map(|(b, m)| (b[0], m.seq)).collect::<Vec<_>>(),
        (0..5).map(|i| (i, u64::from(i))).collect::<Vec<_>>()
    );
    assert_eq!(
        head.load(std::sync::atomic::Ordering::Acquire),
        5,
        "the head moves past the run, not past what is left"
    );
    let rest = recv_run(&rx, 64);
    assert_eq!(rest.iter().map(|(b, _)| b[0]).collect::<Vec<_>>(), vec![5, 6, 7]);
    assert_eq!(rx.claim().err(), Some(EMPTY));
    for (_, m) in first.iter().chain(&rest) {
        assert_eq!(rx.release(m.slot, m.generation), OK);
    }
    // Every slot came back: the channel takes its whole capacity again.
    let again = open(&n, 16, 16);
    for _ in 0..16 {
        again.send(b"y", false, 0).unwrap();
    }
}

#[test]
fn a_batch_with_auto_release_frees_each_slot_and_acks_ack_messages() {
    let n = name("runrel");
    let _u = Unlink(n.clone());
    let tx = open(&n, 4, 4);
    let rx = open(&n, 4, 4);
    let (k, g, _) = tx.send(b"ack", true, 0).unwrap();
    for _ in 0..3 {
        tx.send(b"async", false, 0).unwrap();
    }
    let mut dst = [0u8; 64];
    assert_eq!(rx.recv_batch(&mut dst, 8, true, |_, _| {}), Ok(4));
    assert_eq!(&dst[..8], b"ackasync");
    assert_eq!(tx.ack_status(k, g), OK);
    for _ in 0..4 {
        tx.send(b"again", false, 0).unwrap();
    }
    assert_eq!(rx.stat().released, 4);
}

/// A sender may mark a message as a possible repeat (a relay, a retry after an unknown outcome):
/// its receiver is told `redelivered`, through a single receive, a batch, a commit and ack mode
/// alike, and the mark is no recovery's: the message keeps its place in its sender's order and the
/// redelivery hint stays untouched. A receiver dying with it hands it on still marked.
#[test]
fn a_message_its_sender_marked_as_a_repeat_arrives_redelivered() {
    let n = name("repeat");
    let _u = Unlink(n.clone());
    let tx = open(&n, 8, 8);
    let rx = open(&n, 8, 8);
    let repeat = Marks { ack: false, repeat: true };
    tx.send_with(b"plain", Marks::default(), 0, false).unwrap();
    tx.send_with(b"again", repeat, 0, false).unwrap();
    let (k, g, _) = tx.loan(0).unwrap();
    tx.commit(k, g, 0, 0, repeat, 0).unwrap();
    assert_eq!(tx.send_batch(b"b1b2", &[2, 2], 0, true), (2, OK));
    assert_eq!(tx.send_batch(b"b3", &[2], 0, false), (1, OK));
    let (ak, ag, _) = tx.send_with(b"ack", Marks { ack: true, repeat: true }, 0, false).unwrap();
    let hint = || tx.seg.header().shared.redeliver_pending.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(hint(), 0, "a sender's mark is not a recovery's redelivery");

    let (b, m) = recv_bytes(&rx).unwrap();
    assert_eq!((b.as_slice(), m.redelivered), (&b"plain"[..], false));
    assert_eq!(rx.release(m.slot, m.generation), OK);
    let run = recv_run(&rx, 8);
    assert_eq!(
        run.iter().map(|(b, m)| (b.as_slice(), m.redelivered, m.ack)).collect::<Vec<_>>(),
        vec![
            (&b"again"[..], true, false),
            (&b""[..], true, false),
            (&b"b1"[..], true, false),
            (&b"b2"[..], true, false),
            (&b"b3"[..], false, false),
            (&b"ack"[..], true, true),
        ],
        "marked where sent so, in send order"
    );
    for (_, m) in &run {
        assert_eq!(rx.release(m.slot, m.generation), OK);
    }
    assert_eq!(tx.ack_status(ak, ag), OK);
    assert_eq!(tx.stat().redelivered, 0, "no recovery redelivered anything");

    tx.send_with(b"held", repeat, 0, false).unwrap();
    let doomed = open(&n, 8, 8);
    let (b, m) = recv_bytes(&doomed).unwrap();
    assert_eq!((b.as_slice(), m.redelivered), (&b"held"[..], true));
    drop(doomed);
    assert_eq!(tx.sweep(), 1);
    let requeued = State(tx.seg.slot(m.slot).state.load(std::sync::atomic::Ordering::Acquire));
    assert_eq!((requeued.requeued(), requeued.0 & FLAG_REPEAT != 0), (true, true), "recovery keeps the mark");
    let (b, m) = recv_bytes(&rx).unwrap();
    assert_eq!((b.as_slice(), m.redelivered), (&b"held"[..], true));
    assert_eq!(rx.release(m.slot, m.generation), OK);
    assert_eq!(hint(), 0);
}
