//! Property tests of the slot state machine: random interleavings of sends, receives, releases,
//! ack outcomes and deaths, checked against the guarantees ferry makes.
//!
//! Handles stand in for processes: each has its own fd and OFD lock, so dropping one without
//! `close` is, to the others, exactly a process death (the kernel drops its locks), and
//! `Handle::sweep` (or opening a new handle) recovers it. Deaths in the middle of an operation are
//! staged by leaving the shared state exactly as the engine's kill points would (see `Op`).
//!
//! Two properties:
//! - `sequential_interleavings_keep_every_guarantee`: one thread performs a generated sequence of
//!   operations on several handles, and a model of every message says after each step what the
//!   engine may answer. Deterministic, so proptest shrinks a failure to a short reproduction.
//! - `concurrent_processes_keep_every_guarantee`: threads with a handle each send and receive at
//!   once, dying at generated points; the outcomes are checked afterwards from their logs.
//!
//! Both end the same way: a fresh handle recovers the dead and drains the channel, every slot must
//! be FREE, nobody dead may be listed, and the channel must take `capacity` new messages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};
use std::sync::Mutex;

use ferry_core::channel::{Handle, OpenOptions, Received, Side};
use ferry_core::state::{Kind, State};
use ferry_core::status::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const MAX_MESSAGE: u32 = 512;
/// Longest generated payload: crosses the 96-byte inline limit, stays under MAX_MESSAGE.
const MAX_LEN: usize = 300;

static SEGMENTS: AtomicU32 = AtomicU32::new(0);

fn segment_name(tag: &str) -> String {
    format!("/ferryprop.{}-{}-{}", tag, std::process::id(), SEGMENTS.fetch_add(1, Relaxed))
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = ferry_core::sys::shm_remove(&self.0);
    }
}

fn open(name: &str, capacity: u32, slots: u32) -> Handle {
    Handle::open(&OpenOptions {
        name,
        capacity,
        max_message: MAX_MESSAGE,
        memory: ferry_core::layout::MEMORY_DEFAULT,
        mode: 0o600,
        slot_limit: slots,
        observer: false,
    })
    .expect("open")
}

// ------------------------------------------------------------------ self-describing payloads

fn mix(id: u32, i: u32) -> u32 {
    let x = id.wrapping_add(1).wrapping_mul(0x9e37_79b1) ^ i.wrapping_add(1).wrapping_mul(0x85eb_ca6b);
    x ^ (x >> 15)
}

fn checksum(id: u32, len: u32) -> u32 {
    mix(id ^ 0x5eed, len)
}

/// `len` (>= 12) bytes: [id, len, checksum(id, len)] then a body every byte of which depends on
/// (id, position), so a torn, mixed or truncated payload never passes `check`.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&(len as u32).to_le_bytes());
    p.extend_from_slice(&checksum(id, len as u32).to_le_bytes());
    for i in 12..len {
        p.push((mix(id, i as u32 / 4) >> (8 * (i % 4))) as u8);
    }
    p
}

/// The message id a payload carries, or why it is damaged.
fn check(bytes: &[u8]) -> Result<u32, String> {
    if bytes.len() < 12 {
        return Err(format!("torn: {} bytes", bytes.len()));
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (id, len) = (word(0), word(4));
    if len as usize != bytes.len() || word(8) != checksum(id, len) {
        return Err(format!("torn: header says id {id} len {len}, got {} bytes", bytes.len()));
    }
    if payload(id, bytes.len()) != bytes {
        return Err(format!("torn: body of message {id} differs"));
    }
    Ok(id)
}

fn receive(h: &Handle) -> Result<(u32, Received), i32> {
    let m = h.claim()?;
    let mut buf = vec![0u8; m.len as usize];
    h.read(m.slot, m.generation, &mut buf)?;
    match check(&buf) {
        Ok(id) => Ok((id, m)),
        Err(why) => panic!("{why}"), // surfaced as a failing case with the op sequence
    }
}

// ------------------------------------------------------------------ sequential model

#[derive(Clone, Debug)]
enum Op {
    Send {
        actor: usize,
        len: usize,
        ack: bool,
    },
    Claim {
        actor: usize,
    },
    Release {
        actor: usize,
        pick: usize,
    },
    AckStatus {
        actor: usize,
        pick: usize,
    },
    AckCancel {
        actor: usize,
        pick: usize,
    },
    /// Drop the handle without closing: a process death.
    Kill {
        actor: usize,
    },
    Close {
        actor: usize,
    },
    /// A new process in a dead actor's place (opening sweeps).
    Open {
        actor: usize,
    },
    Sweep {
        actor: usize,
    },
    /// Death at `send.claimed`/`send.written`: a slot WRITING, half a payload in it.
    DieMidWrite {
        actor: usize,
    },
    /// Death at `send.ready`: the slot READY, the lane tail not yet advanced.
    DieBeforeTail {
        actor: usize,
        len: usize,
        ack: bool,
    },
    /// Death at `recv.claimed`: the slot READING, the lane head not yet advanced.
    DieAfterClaim {
        actor: usize,
    },
    /// `recv_batch` of up to `max` into a buffer of `room` bytes, releasing each when `auto`.
    RecvBatch {
        actor: usize,
        max: u32,
        room: usize,
        auto: bool,
    },
    /// Death at `recv.run`: a batch claimed a run of messages (READING), the lane head not yet
    /// moved past them.
    DieMidRun {
        actor: usize,
        max: u32,
    },
}

/// What we know of a slot's ACK bit.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ack {
    /// Set, and a live sender waits for the outcome.
    Set,
    Clear,
    /// Set when its sender died; cleared once someone recovers the sender, which may have happened.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    /// READY at a published lane position or marked redelivered.
    Queued {
        redelivered: bool,
    },
    /// READY, but its dead sender never advanced the tail: visible once recovered.
    Unpublished,
    /// READING by a live incarnation.
    Held {
        by: u32,
    },
    /// READING by a dead incarnation not known to be recovered.
    Orphan,
    /// Its holder and its sender both died: recovery redelivers it or drops it, by their order.
    MaybeQueued,
    /// ACKED: the sender's next ack_status is OK.
    Acked,
    /// PEER_DIED: the sender's next ack_status is PEER_DIED.
    PeerDied,
    Done,
    Withdrawn,
}

#[derive(Debug)]
struct Msg {
    sender: u32,
    ack_sent: bool,
    ack: Ack,
    st: St,
    deliveries: u32,
    died_holding: u32,
    outcome: Option<i32>,
}

struct Live {
    h: Handle,
    inc: u32,
    held: Vec<(u32, u32, u32)>,
    waiting: Vec<(u32, u32, u32)>,
}

struct Model {
    name: String,
    capacity: u32,
    slots: Vec<u32>,
    actors: Vec<Option<Live>>,
    msgs: HashMap<u32, Msg>,
    next_id: u32,
    next_inc: u32,
    deaths: u32,
    log: Vec<String>,
}

type Check = Result<(), TestCaseError>;

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

impl Model {
    fn new(name: String, capacity: u32, slots: Vec<u32>) -> Model {
        let mut m = Model {
            name,
            capacity,
            actors: slots.iter().map(|_| None).collect(),
            slots,
            msgs: HashMap::new(),
            next_id: 1,
            next_inc: 1,
            deaths: 0,
            log: Vec::new(),
        };
        for a in 0..m.actors.len() {
            m.spawn(a);
        }
        m
    }

    fn spawn(&mut self, a: usize) {
        let h = open(&self.name, self.capacity, self.slots[a]);
        // Opening joins (recovering an inherited dead index) and sweeps: every dead is recovered.
        self.recovered_all();
        self.actors[a] = Some(Live { h, inc: self.next_inc, held: Vec::new(), waiting: Vec::new() });
        self.next_inc += 1;
    }

    fn live_incs(&self) -> HashSet<u32> {
        self.actors.iter().flatten().map(|l| l.inc).collect()
    }

    /// Every dead incarnation has been recovered (by a sweep or an open, in index order).
    fn recovered_all(&mut self) {
        for m in self.msgs.values_mut() {
            m.st = match (m.st, m.ack) {
                (St::Orphan, Ack::Set) => St::PeerDied,
                (St::Orphan, Ack::Clear) => St::Queued { redelivered: true },
                (St::Orphan, Ack::Unknown) => St::MaybeQueued,
                (St::Unpublished, _) => St::Queued { redelivered: false },
                (st, _) => st,
            };
            if m.ack == Ack::Unknown {
                m.ack = Ack::Clear;
            }
        }
    }

    /// Incarnation `inc` died, holding `held`.
    fn died(&mut self, inc: u32, held: &[(u32, u32, u32)]) {
        self.deaths += 1;
        for &(id, _, _) in held {
            let m = self.msgs.get_mut(&id).unwrap();
            m.st = St::Orphan;
            m.died_holding += 1;
        }
        for m in self.msgs.values_mut() {
            if m.sender == inc {
                if m.ack == Ack::Set {
                    m.ack = Ack::Unknown;
                }
                // Outcomes nobody will collect are freed by its recovery.
                if matches!(m.st, St::Acked | St::PeerDied) {
                    m.st = St::Done;
                }
            }
        }
    }

    /// `inc` closed: it recovered itself at once, before anyone else, and a close is not a death.
    /// Per slot, recovery handles the sender side first (nobody will collect `inc`'s outcomes, so
    /// ACK is cleared and finished outcomes are freed), then hands back every message `inc` held,
    /// ack-mode ones too: redelivered, their senders still waiting. Nothing counts as died holding.
    fn closed(&mut self, inc: u32, held: &[(u32, u32, u32)]) {
        for m in self.msgs.values_mut() {
            if m.sender != inc {
                continue;
            }
            if matches!(m.st, St::Acked | St::PeerDied) {
                m.st = St::Done;
            }
            if m.ack == Ack::Set {
                m.ack = Ack::Clear;
                // Its dead holder may have been recovered already (PEER_DIED, which this close
                // frees), or not (redelivered once it is).
                if m.st == St::Orphan {
                    m.st = St::MaybeQueued;
                }
            }
        }
        for &(id, _, _) in held {
            self.msgs.get_mut(&id).unwrap().st = St::Queued { redelivered: true };
        }
    }

    /// A claim returned message `id`: is that allowed, and with these flags?
    fn delivered(&mut self, a: usize, id: u32, r: &Received) -> Check {
        let inc = self.actors[a].as_ref().unwrap().inc;
        let m = self.msgs.get_mut(&id).ok_or_else(|| fail(format!("phantom message {id}")))?;
        let ok = match m.st {
            St::Queued { redelivered } => r.redelivered == redelivered,
            St::Unpublished => !r.redelivered,
            St::Orphan | St::MaybeQueued => r.redelivered && m.ack != Ack::Set,
            _ => false,
        };
        if !ok {
            return Err(fail(format!(
                "message {id} delivered (redelivered={}) while it was {:?} (ack {:?}, delivered {} times)",
                r.redelivered, m.st, m.ack, m.deliveries
            )));
        }
        match (m.ack, r.ack) {
            (Ack::Set, false) => return Err(fail(format!("message {id}: ACK lost while its sender waits"))),
            (Ack::Clear, true) => {
                return Err(fail(format!("message {id}: ACK set on a message nobody waits for")))
            }
            _ => {}
        }
        m.st = St::Held { by: inc };
        m.deliveries += 1;
        self.actors[a].as_mut().unwrap().held.push((id, r.slot, r.generation));
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Check {
        self.log.push(format!("{op:?}"));
        match *op {
            Op::Send { actor, len, ack } => {
                let Some(l) = self.actors[actor].as_mut() else { return Ok(()) };
                let id = self.next_id;
                match l.h.send(&payload(id, len), ack, 0) {
                    Ok((k, g, _)) => {
                        self.next_id += 1;
                        if ack {
                            l.waiting.push((id, k, g));
                        }
                        let m = Msg {
                            sender: l.inc,
                            ack_sent: ack,
                            ack: if ack { Ack::Set } else { Ack::Clear },
                            st: St::Queued { redelivered: false },
                            deliveries: 0,
                            died_holding: 0,
                            outcome: None,
                        };
                        self.msgs.insert(id, m);
                    }
                    Err(FULL_SLOTS | FULL_CAPACITY) => {}
                    Err(e) => return Err(fail(format!("send failed with {e}"))),
                }
            }
            Op::Claim { actor } => {
                let Some(l) = self.actors[actor].as_ref() else { return Ok(()) };
                match receive(&l.h) {
                    Ok((id, r)) => self.delivered(actor, id, &r)?,
                    Err(EMPTY) => {
                        if let Some((id, m)) =
                            self.msgs.iter().find(|(_, m)| matches!(m.st, St::Queued { .. }))
                        {
                            return Err(fail(format!(
                                "receive found nothing while message {id} is {:?}",
                                m.st
                            )));
                        }
                    }
                    Err(e) => return Err(fail(format!("claim failed with {e}"))),
                }
            }
            Op::Release { actor, pick } => {
                let Some(l) = self.actors[actor].as_mut() else { return Ok(()) };
                if l.held.is_empty() {
                    return Ok(());
                }
                let (id, k, g) = l.held.remove(pick % l.held.len());
                let r = l.h.release(k, g);
                if r != OK {
                    return Err(fail(format!("release of held message {id} gave {r}")));
                }
                let m = self.msgs.get_mut(&id).unwrap();
                m.st = if m.ack == Ack::Set { St::Acked } else { St::Done };
            }
            Op::AckStatus { actor, pick } | Op::AckCancel { actor, pick } => {
                let cancel = matches!(op, Op::AckCancel { .. });
                let Some(l) = self.actors[actor].as_mut() else { return Ok(()) };
                if l.waiting.is_empty() {
                    return Ok(());
                }
                let at = pick % l.waiting.len();
                let (id, k, g) = l.waiting[at];
                let got = if cancel { l.h.ack_cancel(k, g) } else { l.h.ack_status(k, g) };
                let m = self.msgs.get_mut(&id).unwrap();
                let pending = if cancel { TIMEOUT } else { PENDING };
                let allowed: &[i32] = match m.st {
                    St::Queued { .. } | St::Held { .. } => &[pending],
                    St::Orphan => &[pending, PEER_DIED],
                    St::Acked => &[OK],
                    St::PeerDied => &[PEER_DIED],
                    st => return Err(fail(format!("sender waits for message {id} in state {st:?}"))),
                };
                if !allowed.contains(&got) {
                    return Err(fail(format!(
                        "{} of message {id} ({:?}) gave {got}, expected one of {allowed:?}",
                        if cancel { "ack_cancel" } else { "ack_status" },
                        m.st
                    )));
                }
                if got != pending {
                    m.outcome = Some(got);
                    m.st = St::Done;
                    l.waiting.remove(at);
                } else if cancel {
                    m.outcome = Some(TIMEOUT);
                    m.ack = Ack::Clear;
                    if matches!(m.st, St::Queued { .. }) {
                        m.st = St::Withdrawn;
                    }
                    l.waiting.remove(at);
                }
            }
            Op::Kill { actor } => {
                if let Some(l) = self.actors[actor].take() {
                    drop(l.h);
                    self.died(l.inc, &l.held);
                }
            }
            Op::Close { actor } => {
                if let Some(l) = self.actors[actor].take() {
                    l.h.close();
                    drop(l.h);
                    self.closed(l.inc, &l.held);
                }
            }
            Op::Open { actor } => {
                if self.actors[actor].is_none() {
                    self.spawn(actor);
                }
            }
            Op::Sweep { actor } => {
                if let Some(l) = self.actors[actor].as_ref() {
                    l.h.sweep();
                    self.recovered_all();
                    self.no_slot_names_the_dead()?;
                }
            }
            Op::DieMidWrite { actor } => {
                let Some(l) = self.actors[actor].take() else { return Ok(()) };
                for k in 0..self.capacity {
                    let s = l.h.seg.slot(k);
                    let cur = State(s.state.load(Acquire));
                    let writing = cur.with_kind(Kind::Writing).with_sender(l.h.me);
                    if cur.kind() == Kind::Free
                        && s.state.compare_exchange(cur.0, writing.0, Acquire, Relaxed).is_ok()
                    {
                        // Half a plausible payload, as a copy cut short would leave.
                        let half = payload(u32::MAX, 80);
                        // SAFETY: slot k is WRITING with this handle as sender: its bytes are ours.
                        unsafe {
                            std::ptr::copy_nonoverlapping(half.as_ptr(), s.inline.get().cast::<u8>(), 40)
                        };
                        s.len.store(80, Relaxed);
                        break;
                    }
                }
                drop(l.h);
                self.died(l.inc, &l.held);
            }
            Op::DieBeforeTail { actor, len, ack } => {
                let Some(l) = self.actors[actor].take() else { return Ok(()) };
                let id = self.next_id;
                if let Ok((_, _, seq)) = l.h.send(&payload(id, len), ack, 0) {
                    self.next_id += 1;
                    l.h.seg.participant(l.h.me).owner.tail.store(seq, Release);
                    let m = Msg {
                        sender: l.inc,
                        ack_sent: ack,
                        ack: if ack { Ack::Set } else { Ack::Clear },
                        st: St::Unpublished,
                        deliveries: 0,
                        died_holding: 0,
                        outcome: None,
                    };
                    self.msgs.insert(id, m);
                }
                drop(l.h);
                self.died(l.inc, &l.held);
            }
            Op::RecvBatch { actor, max, room, auto } => {
                self.recv_batch(actor, max, room, auto)?;
            }
            Op::DieMidRun { actor, max } => {
                let Some(l) = self.actors[actor].as_ref() else { return Ok(()) };
                let before = l.held.len();
                let runs = self.recv_batch(actor, max, MAX_LEN * max as usize, false)?;
                let l = self.actors[actor].take().unwrap();
                // Put each lane's head back where the run found it: the state a death after the
                // run's last claim, before its one head update, leaves.
                for (lane, (first, last)) in runs {
                    let head = &l.h.seg.participant(lane).head.head;
                    let _ = head.compare_exchange(last + 1, first, AcqRel, Relaxed);
                }
                debug_assert!(l.held.len() >= before);
                drop(l.h);
                self.died(l.inc, &l.held);
            }
            Op::DieAfterClaim { actor } => {
                let Some(l) = self.actors[actor].as_ref() else { return Ok(()) };
                match receive(&l.h) {
                    Ok((id, r)) => {
                        self.delivered(actor, id, &r)?;
                        let l = self.actors[actor].as_ref().unwrap();
                        if !r.redelivered {
                            let lane = State(l.h.seg.slot(r.slot).state.load(Acquire)).sender();
                            let _ = l.h.seg.participant(lane).head.head.compare_exchange(
                                r.seq + 1,
                                r.seq,
                                AcqRel,
                                Relaxed,
                            );
                        }
                    }
                    Err(EMPTY) => {}
                    Err(e) => return Err(fail(format!("claim failed with {e}"))),
                }
                let l = self.actors[actor].take().unwrap();
                drop(l.h);
                self.died(l.inc, &l.held);
            }
        }
        Ok(())
    }

    /// A batch receive by `actor`: every message it returns must be allowed, and its bytes whole.
    /// Returns, per lane, the first and last lane position of the messages it took from lanes
    /// (not redelivered ones).
    fn recv_batch(
        &mut self,
        actor: usize,
        max: u32,
        room: usize,
        auto: bool,
    ) -> Result<HashMap<u32, (u64, u64)>, TestCaseError> {
        let mut runs: HashMap<u32, (u64, u64)> = HashMap::new();
        let Some(l) = self.actors[actor].as_ref() else { return Ok(runs) };
        let mut dst = vec![0u8; room];
        let mut got = Vec::new();
        match l.h.recv_batch(&mut dst, max, auto, |m, at| got.push((*m, at))) {
            Ok(n) if n as usize == got.len() && n <= max => {}
            Ok(n) => return Err(fail(format!("recv_batch said {n} and recorded {}", got.len()))),
            Err(EMPTY) => {
                if let Some((id, m)) = self.msgs.iter().find(|(_, m)| matches!(m.st, St::Queued { .. })) {
                    return Err(fail(format!("recv_batch found nothing while message {id} is {:?}", m.st)));
                }
                return Ok(runs);
            }
            Err(e) => return Err(fail(format!("recv_batch failed with {e}"))),
        }
        for (i, (m, at)) in got.iter().enumerate() {
            let bytes = match at {
                Some(at) => dst[*at as usize..*at as usize + m.len as usize].to_vec(),
                None => {
                    if i + 1 != got.len() {
                        return Err(fail("a message that did not fit did not end the batch".into()));
                    }
                    let mut own = vec![0u8; m.len as usize];
                    let read = self.actors[actor].as_ref().unwrap().h.read(m.slot, m.generation, &mut own);
                    read.map_err(|e| fail(format!("read of a held batch message gave {e}")))?;
                    own
                }
            };
            let id = check(&bytes).map_err(fail)?;
            self.delivered(actor, id, m)?;
            if !m.redelivered {
                let lane = State(self.actors[actor].as_ref().unwrap().h.seg.slot(m.slot).state.load(Acquire))
                    .sender();
                let run = runs.entry(lane).or_insert((m.seq, m.seq));
                *run = (run.0.min(m.seq), run.1.max(m.seq));
            }
            if auto && at.is_some() {
                // Released by the batch itself.
                let l = self.actors[actor].as_mut().unwrap();
                l.held.pop();
                let msg = self.msgs.get_mut(&id).unwrap();
                msg.st = if msg.ack == Ack::Set { St::Acked } else { St::Done };
            }
        }
        Ok(runs)
    }

    /// After a sweep no slot may be owned by a participant index that no live handle holds.
    fn no_slot_names_the_dead(&self) -> Check {
        let live: HashSet<u32> = self.actors.iter().flatten().map(|l| l.h.me).collect();
        let Some(any) = self.actors.iter().flatten().next() else { return Ok(()) };
        for k in 0..self.capacity {
            let s = State(any.h.seg.slot(k).state.load(Acquire));
            let dead_owner = match s.kind() {
                Kind::Writing => !live.contains(&s.sender()),
                Kind::Reading => !live.contains(&s.receiver()) || (s.ack() && !live.contains(&s.sender())),
                Kind::Ready => s.ack() && !live.contains(&s.sender()),
                Kind::Acked | Kind::PeerDied | Kind::Expired | Kind::Rejected => !live.contains(&s.sender()),
                Kind::Free => false,
            };
            if dead_owner {
                return Err(fail(format!(
                    "after a sweep slot {k} is {s:?} ({:?}), owned by a dead participant",
                    s.kind()
                )));
            }
        }
        Ok(())
    }

    /// Everyone releases, a fresh handle recovers and drains, then the channel must be whole.
    fn finish(&mut self) -> Check {
        for a in 0..self.actors.len() {
            while self.actors[a].as_ref().is_some_and(|l| !l.held.is_empty()) {
                self.step(&Op::Release { actor: a, pick: 0 })?;
            }
        }
        let checker = self.actors.len();
        self.slots.push(32);
        self.actors.push(None);
        self.step(&Op::Open { actor: checker })?;
        self.no_slot_names_the_dead()?;
        loop {
            let before = self.msgs.values().map(|m| m.deliveries).sum::<u32>();
            self.step(&Op::Claim { actor: checker })?;
            if self.msgs.values().map(|m| m.deliveries).sum::<u32>() == before {
                break;
            }
            self.step(&Op::Release { actor: checker, pick: 0 })?;
        }
        for a in 0..self.actors.len() {
            while self.actors[a].as_ref().is_some_and(|l| !l.waiting.is_empty()) {
                let n = self.actors[a].as_ref().unwrap().waiting.len();
                self.step(&Op::AckStatus { actor: a, pick: 0 })?;
                if self.actors[a].as_ref().unwrap().waiting.len() == n {
                    let (id, _, _) = self.actors[a].as_ref().unwrap().waiting[0];
                    return Err(fail(format!(
                        "ack of message {id} still pending after the channel was drained"
                    )));
                }
            }
        }
        for (id, m) in &self.msgs {
            let lost_allowed = m.st == St::MaybeQueued || m.st == St::Withdrawn;
            if m.deliveries == 0 && !m.ack_sent && !lost_allowed {
                return Err(fail(format!("async message {id} was never delivered ({:?})", m.st)));
            }
            if m.outcome == Some(OK) && m.deliveries == 0 {
                return Err(fail(format!("ack message {id} acknowledged but never delivered")));
            }
            if m.outcome == Some(PEER_DIED) && m.died_holding == 0 {
                return Err(fail(format!("ack message {id} got PEER_DIED though no holder died")));
            }
            if !matches!(m.st, St::Done | St::Withdrawn | St::MaybeQueued) {
                return Err(fail(format!("message {id} left in state {:?}", m.st)));
            }
        }
        let h = &self.actors[checker].as_ref().unwrap().h;
        whole(h, self.capacity, self.live_incs().len())
    }
}

/// The drained channel: every slot FREE, no depth or in-flight, only live participants, and
/// `capacity` new messages go in and come back out.
fn whole(h: &Handle, capacity: u32, live: usize) -> Check {
    for k in 0..capacity {
        let s = State(h.seg.slot(k).state.load(Acquire));
        if s.kind() != Kind::Free {
            return Err(fail(format!("slot {k} is {:?} after recovery and drain ({s:?})", s.kind())));
        }
    }
    let st = h.stat();
    if st.depth != 0 || st.in_flight != 0 {
        return Err(fail(format!("depth {} in-flight {} after drain", st.depth, st.in_flight)));
    }
    let parts = h.participants();
    if parts.len() != live || parts.iter().any(|p| !p.alive) {
        return Err(fail(format!("participants {parts:?}, expected {live} live ones")));
    }
    for i in 0..capacity {
        if let Err(e) = h.send(&payload(0x8000_0000 + i, 64), false, 0) {
            return Err(fail(format!("the recovered channel refused new message {i} of {capacity}: {e}")));
        }
    }
    for i in 0..capacity {
        let (id, m) = receive(h).map_err(|e| fail(format!("new message {i} did not come back: {e}")))?;
        if id != 0x8000_0000 + i || m.redelivered {
            return Err(fail(format!("new message {i} came back as {id} (redelivered {})", m.redelivered)));
        }
        h.release(m.slot, m.generation);
    }
    if h.claim().err() != Some(EMPTY) {
        return Err(fail("a message appeared after the last new one".into()));
    }
    Ok(())
}

fn op_strategy(actors: usize) -> impl Strategy<Value = Op> {
    let a = 0..actors;
    let len = 12..=MAX_LEN;
    prop_oneof![
        6 => (a.clone(), len.clone(), any::<bool>()).prop_map(|(actor, len, ack)| Op::Send { actor, len, ack }),
        5 => a.clone().prop_map(|actor| Op::Claim { actor }),
        3 => (a.clone(), 0..8usize).prop_map(|(actor, pick)| Op::Release { actor, pick }),
        3 => (a.clone(), 0..8usize).prop_map(|(actor, pick)| Op::AckStatus { actor, pick }),
        1 => (a.clone(), 0..8usize).prop_map(|(actor, pick)| Op::AckCancel { actor, pick }),
        2 => a.clone().prop_map(|actor| Op::Kill { actor }),
        1 => a.clone().prop_map(|actor| Op::Close { actor }),
        3 => a.clone().prop_map(|actor| Op::Open { actor }),
        2 => a.clone().prop_map(|actor| Op::Sweep { actor }),
        1 => a.clone().prop_map(|actor| Op::DieMidWrite { actor }),
        1 => (a.clone(), len, any::<bool>()).prop_map(|(actor, len, ack)| Op::DieBeforeTail { actor, len, ack }),
        1 => a.clone().prop_map(|actor| Op::DieAfterClaim { actor }),
        3 => (a.clone(), 1..=8u32, 0..=4 * MAX_LEN, any::<bool>())
            .prop_map(|(actor, max, room, auto)| Op::RecvBatch { actor, max, room, auto }),
        1 => (a, 1..=8u32).prop_map(|(actor, max)| Op::DieMidRun { actor, max }),
    ]
}

fn scenario() -> impl Strategy<Value = (u32, Vec<u32>, Vec<Op>)> {
    (2..=4usize).prop_flat_map(|actors| {
        (
            1..=12u32,
            prop::collection::vec(1..=4u32, actors),
            prop::collection::vec(op_strategy(actors), 1..120),
        )
    })
}

fn cases(default: u32) -> u32 {
    std::env::var("FERRY_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), max_shrink_iters: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sequential_interleavings_keep_every_guarantee((capacity, slots, ops) in scenario()) {
        let name = segment_name("seq");
        let _u = Unlink(name.clone());
        let mut model = Model::new(name, capacity, slots);
        for op in &ops {
            model.step(op)?;
        }
        model.finish()?;
    }
}

// ------------------------------------------------------------------ concurrent threads

#[derive(Clone, Debug)]
struct SenderScript {
    /// (payload length, ack) per message.
    sends: Vec<(usize, bool)>,
    /// Die (drop the handle, ack outcomes uncollected) after these many sends, then reopen.
    die_after: Vec<usize>,
    slots: u32,
}

#[derive(Clone, Debug)]
struct ReceiverScript {
    /// How many messages to hold before releasing them all, per batch.
    hold: Vec<usize>,
    /// Die holding what it holds after these many receives, then reopen.
    die_after: Vec<usize>,
}

#[derive(Debug)]
enum Event {
    Sent { id: u32, ack: bool },
    Outcome { id: u32, status: i32 },
    Delivered { id: u32, redelivered: bool },
    DiedHolding { id: u32 },
}

struct Shared {
    name: String,
    capacity: u32,
    events: Mutex<Vec<Event>>,
    next_id: AtomicU32,
    senders_left: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn log(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }
}

fn run_sender(sh: &Shared, script: &SenderScript) {
    let mut h = open(&sh.name, sh.capacity, script.slots);
    let mut waiting: Vec<(u32, u32, u32)> = Vec::new();
    let collect = |h: &Handle, waiting: &mut Vec<(u32, u32, u32)>, all: bool| {
        waiting.retain(|&(id, k, g)| {
            let status = if all {
                h.wait_for(Side::Send, 10_000, || Some(h.ack_status(k, g)).filter(|&s| s != PENDING))
            } else {
                h.ack_status(k, g)
            };
            if status == PENDING {
                return true;
            }
            sh.log(Event::Outcome { id, status });
            false
        });
    };
    for (n, &(len, ack)) in script.sends.iter().enumerate() {
        if script.die_after.contains(&n) {
            drop(std::mem::replace(&mut h, open(&sh.name, sh.capacity, script.slots)));
            waiting.clear(); // that process is gone: nobody collects these outcomes
        }
        let id = sh.next_id.fetch_add(1, Relaxed);
        let bytes = payload(id, len);
        let mut result = None;
        let waited = h.wait_for(Side::Send, 10_000, || match h.send(&bytes, ack, 0) {
            Err(FULL_SLOTS | FULL_CAPACITY) => {
                collect(&h, &mut waiting, false);
                None
            }
            r => {
                result = Some(r);
                Some(OK)
            }
        });
        match result {
            Some(Ok((k, g, _))) => {
                sh.log(Event::Sent { id, ack });
                if ack {
                    waiting.push((id, k, g));
                }
            }
            Some(Err(e)) => panic!("send failed with {e}"),
            None => panic!("send of message {id} found no room for 10 s (wait gave {waited})"),
        }
        collect(&h, &mut waiting, false);
    }
    collect(&h, &mut waiting, true);
    sh.senders_left.fetch_sub(1, Release);
    h.close();
}

fn run_receiver(sh: &Shared, script: &ReceiverScript) {
    let mut h = open(&sh.name, sh.capacity, 4);
    let mut held: Vec<(u32, u32, u32)> = Vec::new();
    let mut received = 0usize;
    let mut batch = 0usize;
    loop {
        if script.die_after.contains(&received) && !held.is_empty() {
            for &(id, _, _) in &held {
                sh.log(Event::DiedHolding { id });
            }
            held.clear();
            drop(std::mem::replace(&mut h, open(&sh.name, sh.capacity, 4)));
        }
        let got = h.wait_for(Side::Recv, 20, || match h.claim() {
            Err(EMPTY) => None,
            Err(e) => panic!("claim failed with {e}"),
            Ok(m) => {
                let mut buf = vec![0u8; m.len as usize];
                h.read(m.slot, m.generation, &mut buf).expect("read a held message");
                let id = check(&buf).unwrap_or_else(|why| panic!("{why}"));
                sh.log(Event::Delivered { id, redelivered: m.redelivered });
                held.push((id, m.slot, m.generation));
                Some(OK)
            }
        });
        if got == OK {
            received += 1;
        }
        let limit = script.hold[batch % script.hold.len()];
        if held.len() >= limit || (got != OK && !held.is_empty()) {
            for (_, k, g) in held.drain(..) {
                assert_eq!(h.release(k, g), OK, "release of a held message");
            }
            batch += 1;
        }
        if got != OK && sh.senders_left.load(Acquire) == 0 && sh.stop.load(Acquire) {
            break;
        }
        if got != OK && sh.senders_left.load(Acquire) == 0 {
            sh.stop.store(true, Release); // one more empty round for everyone, then leave
        }
    }
    h.close();
}

fn check_events(events: &[Event]) -> Check {
    let mut sent: HashMap<u32, bool> = HashMap::new();
    let mut outcome: HashMap<u32, i32> = HashMap::new();
    let mut first: HashMap<u32, u32> = HashMap::new();
    let mut again: HashMap<u32, u32> = HashMap::new();
    let mut died: HashMap<u32, u32> = HashMap::new();
    for e in events {
        match *e {
            Event::Sent { id, ack } => {
                sent.insert(id, ack);
            }
            Event::Outcome { id, status } => {
                if outcome.insert(id, status).is_some() {
                    return Err(fail(format!("message {id} got two ack outcomes")));
                }
            }
            Event::Delivered { id, redelivered: false } => *first.entry(id).or_default() += 1,
            Event::Delivered { id, redelivered: true } => *again.entry(id).or_default() += 1,
            Event::DiedHolding { id } => *died.entry(id).or_default() += 1,
        }
    }
    for (&id, &n) in first.iter() {
        if n > 1 {
            return Err(fail(format!("message {id} delivered {n} times unmarked")));
        }
    }
    for (&id, &n) in again.iter() {
        if n > died.get(&id).copied().unwrap_or(0) {
            return Err(fail(format!("message {id} redelivered {n} times but its holders died fewer times")));
        }
    }
    for (&id, &ack) in &sent {
        let delivered = first.get(&id).copied().unwrap_or(0) + again.get(&id).copied().unwrap_or(0);
        match (ack, outcome.get(&id)) {
            (false, _) if delivered == 0 => return Err(fail(format!("async message {id} never delivered"))),
            (true, Some(&OK)) if delivered == 0 => {
                return Err(fail(format!("ack message {id} acked, never delivered")))
            }
            (true, Some(&PEER_DIED)) if !died.contains_key(&id) => {
                return Err(fail(format!("ack message {id}: PEER_DIED but no holder died")))
            }
            (true, Some(&status)) if status != OK && status != PEER_DIED => {
                return Err(fail(format!(
                    "ack message {id} ended with status {status} (hang or wrong outcome)"
                )))
            }
            (true, Some(&OK)) if died.contains_key(&id) => {
                return Err(fail(format!("ack message {id}: its holder died, yet the sender got OK")))
            }
            _ => {}
        }
    }
    Ok(())
}

fn sender_script() -> impl Strategy<Value = SenderScript> {
    (
        prop::collection::vec((12..=MAX_LEN, any::<bool>()), 10..80),
        prop::collection::vec(0..80usize, 0..3),
        1..=8u32,
    )
        .prop_map(|(sends, die_after, slots)| SenderScript { sends, die_after, slots })
}

fn receiver_script() -> impl Strategy<Value = ReceiverScript> {
    (prop::collection::vec(1..=4usize, 1..4), prop::collection::vec(1..60usize, 0..3))
        .prop_map(|(hold, die_after)| ReceiverScript { hold, die_after })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), max_shrink_iters: 50, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_processes_keep_every_guarantee(
        capacity in 2..=16u32,
        senders in prop::collection::vec(sender_script(), 1..=2),
        receivers in prop::collection::vec(receiver_script(), 1..=2),
    ) {
        let name = segment_name("conc");
        let _u = Unlink(name.clone());
        let sh = Shared {
            name: name.clone(),
            capacity,
            events: Mutex::new(Vec::new()),
            next_id: AtomicU32::new(1),
            senders_left: AtomicUsize::new(senders.len()),
            stop: AtomicBool::new(false),
        };
        // Holds an index for the whole run, so recovery always has a live participant to do it.
        let anchor = open(&name, capacity, 1);
        std::thread::scope(|s| {
            for script in &senders {
                let sh = &sh;
                s.spawn(move || run_sender(sh, script));
            }
            for script in &receivers {
                let sh = &sh;
                s.spawn(move || run_receiver(sh, script));
            }
        });
        drop(anchor);
        let checker = open(&name, capacity, 32);
        // Whatever was still queued (a receiver died just before the end) is drained here.
        while let Ok((id, m)) = receive(&checker) {
            sh.log(Event::Delivered { id, redelivered: m.redelivered });
            checker.release(m.slot, m.generation);
        }
        check_events(&sh.events.lock().unwrap())?;
        whole(&checker, capacity, 1)?;
    }
}
