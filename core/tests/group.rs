//! The group table: memberships, refresh without duplicates, expiry, a full table, writers that die
//! mid-add, duplicates left by a dead adder, memberships held by a handle that end with it, and
//! many handles racing on one table. Handles in one process stand in for processes: each has its
//! own fd, so its own OFD entry locks, and dropping one is what the kernel does at a death.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::group::*;
use ferry_core::status::*;

fn name(tag: &str) -> String {
    format!("/ferrytest.{}-{}-{}~groups", tag, std::process::id(), ferry_core::sys::monotonic_ns())
}

fn open(name: &str, memory: u64) -> GroupTable {
    GroupTable::open(&GroupOpen { name, memory, mode: 0o600, create: true }).expect("open group table")
}

/// Table memory for exactly `entries` entries.
fn memory_for(entries: u64) -> u64 {
    HEADER_SIZE + entries * ENTRY_SIZE
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = ferry_core::sys::shm_remove(&self.0);
    }
}

fn members(t: &GroupTable, group: &str) -> Vec<String> {
    t.members(group.as_bytes()).unwrap().into_iter().map(|n| String::from_utf8(n).unwrap()).collect()
}

/// Nothing torn, nothing twice, nobody writing: what every test ends with.
fn assert_settled(t: &GroupTable, live: u32) {
    let c = t.check();
    assert_eq!(
        (c.writing_alive, c.writing_abandoned, c.duplicates, c.corrupt, c.expired, c.held_abandoned, c.live),
        (0, 0, 0, 0, 0, 0, live),
        "{c:?}"
    );
    assert_eq!(c.free + c.live, c.entries, "{c:?}");
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn add_members_and_discard() {
    let n = name("basic");
    let _u = Unlink(n.clone());
    let t = open(&n, DEFAULT_MEMORY);
    assert_eq!(t.add(b"workers", b"w2", 0), Ok(ADDED));
    assert_eq!(t.add(b"workers", b"w1", 0), Ok(ADDED));
    assert_eq!(t.add(b"audit", b"w1", 0), Ok(ADDED));
    assert_eq!(members(&t, "workers"), ["w1", "w2"]);
    assert_eq!(members(&t, "audit"), ["w1"]);
    assert!(members(&t, "nobody").is_empty());

    assert_eq!(t.discard(b"workers", b"w1"), Ok(true));
    assert_eq!(t.discard(b"workers", b"w1"), Ok(false));
    assert_eq!(members(&t, "workers"), ["w2"]);
    assert_eq!(members(&t, "audit"), ["w1"], "a discard touches only its own group");
    assert_settled(&t, 2);

    let s = t.stat();
    assert_eq!((u64::from(s.entries), s.live, s.added, s.discarded), (4095, 2, 3, 1));
}

#[test]
fn names_follow_the_channel_rule() {
    let n = name("names");
    let _u = Unlink(n.clone());
    let t = open(&n, DEFAULT_MEMORY);
    let long = "x".repeat(100);
    assert_eq!(t.add(long.as_bytes(), long.as_bytes(), 0), Ok(ADDED));
    assert_eq!(members(&t, &long), std::slice::from_ref(&long));
    for bad in [&b""[..], b"a b", b"a/b", b"a~groups", &[b'y'; 101]] {
        assert_eq!(t.add(bad, b"ok", 0), Err(ERR_INVALID_NAME));
        assert_eq!(t.add(b"ok", bad, 0), Err(ERR_INVALID_NAME));
        assert_eq!(t.discard(bad, b"ok"), Err(ERR_INVALID_NAME));
        assert_eq!(t.members(bad), Err(ERR_INVALID_NAME));
    }
}

#[test]
fn re_adding_refreshes_one_entry_and_never_shortens_it() {
    let n = name("refresh");
    let _u = Unlink(n.clone());
    let t = open(&n, DEFAULT_MEMORY);
    assert_eq!(t.add(b"g", b"a", 60_000), Ok(ADDED));
    assert_eq!(t.add(b"g", b"a", 5), Ok(REFRESHED));
    assert_eq!(t.add(b"g", b"a", 60_000), Ok(REFRESHED));
    assert_settled(&t, 1);
    spin_for(Duration::from_millis(30));
    assert_eq!(members(&t, "g"), ["a"], "a shorter re-add cut the membership short");

    // A short membership refreshed with a longer expiry outlives the short one.
    assert_eq!(t.add(b"g", b"b", 5), Ok(ADDED));
    assert_eq!(t.add(b"g", b"b", 60_000), Ok(REFRESHED));
    spin_for(Duration::from_millis(30));
    assert_eq!(members(&t, "g"), ["a", "b"]);
    assert_eq!(t.stat().refreshed, 3, "refreshed");
}

#[test]
fn expired_memberships_are_gone_and_their_entries_freed() {
    let n = name("expiry");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(2));
    assert_eq!(t.add(b"g", b"short", 5), Ok(ADDED));
    assert_eq!(t.add(b"g", b"forever", 0), Ok(ADDED));
    assert_eq!(members(&t, "g"), ["forever", "short"]);
    spin_for(Duration::from_millis(30));
    assert_eq!(t.check().expired, 1, "expired but not freed yet");
    assert_eq!(members(&t, "g"), ["forever"]);
    assert_settled(&t, 1);
    assert_eq!(t.stat().expired, 1, "expired counter");
    assert_eq!(t.discard(b"g", b"short"), Ok(false));
    // Its entry is free again: the two-entry table takes a new membership.
    assert_eq!(t.add(b"g", b"again", 0), Ok(ADDED));
}

#[test]
fn a_full_table_is_an_error_until_a_membership_ends() {
    let n = name("full");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(3));
    assert_eq!(t.entry_count(), 3);
    for c in ["a", "b", "c"] {
        assert_eq!(t.add(b"g", c.as_bytes(), 0), Ok(ADDED));
    }
    assert_eq!(t.add(b"g", b"d", 0), Err(ERR_TABLE_FULL));
    assert_eq!(t.add(b"g", b"a", 0), Ok(REFRESHED), "a refresh needs no new entry");
    assert_eq!(t.discard(b"g", b"b"), Ok(true));
    assert_eq!(t.add(b"g", b"d", 0), Ok(ADDED));
    assert_eq!(members(&t, "g"), ["a", "c", "d"]);
    assert_settled(&t, 3);
}

#[test]
fn a_writer_that_died_mid_write_is_reclaimed_and_a_live_one_is_not() {
    let n = name("deadwriter");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(1));
    let writer = open(&n, memory_for(1));
    // The writer claims the only entry, writes half the names and stops: alive, holding its lock.
    assert_eq!(writer.add_stopping(b"g", b"torn", Lifetime::Expiry(0), AddStop::Claimed), Ok(ADDED));
    assert!(members(&t, "g").is_empty(), "a half-written entry was read");
    assert_eq!(t.check().writing_alive, 1);
    assert_eq!(t.add(b"g", b"other", 0), Err(ERR_TABLE_FULL), "a live writer's entry was taken");
    assert_eq!(t.check().writing_alive, 1, "a live (slow) writer's entry was reclaimed");

    // The writer "dies": closing its fd drops its OFD lock, as the kernel does at death.
    drop(writer);
    assert_eq!(t.check().writing_abandoned, 1);
    assert_eq!(t.add(b"g", b"other", 0), Ok(ADDED), "the dead writer's entry was not reclaimed");
    assert_eq!(members(&t, "g"), ["other"]);
    assert_settled(&t, 1);
    assert_eq!(t.stat().reclaimed, 1, "reclaimed counter");
}

#[test]
fn a_writer_that_died_right_after_its_claim_is_reclaimed_by_a_scan() {
    let n = name("claimonly");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(4));
    assert_eq!(t.add(b"g", b"a", 0), Ok(ADDED));
    // A WRITING word with nobody holding its lock: the writer died between its claim CAS and its
    // first name store (its lock went with it). Made by hand on a free entry.
    let i = (0..4).find(|&i| Word(t.entry(i).state.load(Acquire)).kind() == EntryKind::Free).unwrap();
    let free = Word(t.entry(i).state.load(Acquire));
    t.entry(i).state.store(free.with_kind(EntryKind::Writing).0, Relaxed);
    assert_eq!(t.check().writing_abandoned, 1);
    assert_eq!(members(&t, "g"), ["a"]);
    assert_settled(&t, 1);
    let reused = Word(t.entry(i).state.load(Acquire));
    assert_eq!(
        (reused.kind(), reused.generation()),
        (EntryKind::Free, free.generation() + 1),
        "a reclaimed entry must come back with a new generation"
    );
}

#[test]
fn a_duplicate_left_by_a_dead_adder_is_merged_keeping_the_later_deadline() {
    let n = name("dup");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(8));
    assert_eq!(t.add(b"g", b"a", 60_000), Ok(ADDED));
    assert_eq!(t.add_stopping(b"g", b"a", Lifetime::Expiry(0), AddStop::PublishedUnmerged), Ok(ADDED));
    assert_eq!(t.check().duplicates, 1);
    assert_eq!(members(&t, "g"), ["a"], "a member was reported twice");
    assert_settled(&t, 1);
    let kept =
        (0..8).map(|i| Word(t.entry(i).state.load(Acquire))).find(|w| w.kind() == EntryKind::Live).unwrap();
    assert_eq!(kept.expires_at(), EXPIRES_NEVER, "the merge kept the earlier deadline");
    assert_eq!(t.stat().merged, 1, "merged counter");

    // Discard removes every copy, merged or not.
    assert_eq!(t.add_stopping(b"g", b"a", Lifetime::Expiry(0), AddStop::PublishedUnmerged), Ok(ADDED));
    assert_eq!(t.discard(b"g", b"a"), Ok(true));
    assert!(members(&t, "g").is_empty());
    assert_settled(&t, 0);
}

/// Threads released together by spinning, not by a futex: a sleeping barrier wakes them tens of
/// microseconds apart, longer than the window between an add's scan and its publish. `stop` ends
/// every wait, so a failing thread does not leave the others spinning.
struct SpinBarrier {
    arrived: AtomicUsize,
    parties: usize,
    stop: AtomicBool,
}

impl SpinBarrier {
    /// False once some thread stopped the run.
    fn wait(&self, round: usize) -> bool {
        self.arrived.fetch_add(1, AcqRel);
        let mut spins = 0u32;
        while self.arrived.load(Acquire) < self.parties * (round + 1) {
            if self.stop.load(Relaxed) {
                return false;
            }
            // Spins, then yields too: there may be fewer cores than threads.
            spins += 1;
            if spins.is_multiple_of(4096) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        !self.stop.load(Relaxed)
    }
}

#[test]
fn handles_racing_to_add_one_pair_leave_one_entry() {
    let n = name("race");
    let _u = Unlink(n.clone());
    // Two racers overlap in most rounds even on a two-core machine; more would mostly queue.
    const HANDLES: usize = 2;
    const ROUNDS: usize = 400;
    // A big table makes each add's scan long, so that the adds of a round overlap.
    let tables: Vec<GroupTable> = (0..HANDLES).map(|_| open(&n, DEFAULT_MEMORY)).collect();
    let barrier =
        SpinBarrier { arrived: AtomicUsize::new(0), parties: HANDLES, stop: AtomicBool::new(false) };
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for (k, t) in tables.iter().enumerate() {
            let (barrier, failure) = (&barrier, &failure);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    if !barrier.wait(2 * round) {
                        return;
                    }
                    t.add(b"g", b"same", 0).unwrap();
                    if !barrier.wait(2 * round + 1) {
                        return;
                    }
                    // Every add of the round returned: one entry, whoever merged it.
                    if k == 0 {
                        let c = t.check();
                        if (c.live, c.duplicates) != (1, 0) {
                            *failure.lock().unwrap() = Some(format!("round {round}: {c:?}"));
                            barrier.stop.store(true, Relaxed);
                            return;
                        }
                        assert_eq!(t.discard(b"g", b"same"), Ok(true));
                    }
                }
            });
        }
    });
    assert_eq!(failure.into_inner().unwrap(), None, "two adds of one pair left two entries");
    assert_settled(&tables[0], 0);
    let s = tables[0].stat();
    assert_eq!(
        s.added + s.refreshed,
        (HANDLES * ROUNDS) as u64,
        "every add was counted as added or refreshed"
    );
    // Not asserted (timing), but shown: how often both adds of a round published.
    println!("added {} refreshed {} merged {}", s.added, s.refreshed, s.merged);
}

#[test]
fn readers_never_see_torn_or_foreign_names_while_writers_churn() {
    let n = name("churn");
    let _u = Unlink(n.clone());
    // Few entries, so they are freed and reused by other pairs all the time; names of one length
    // that differ in every word, so a read overlapping a rewrite mixes two names into a third.
    let memory = memory_for(4);
    let names: Arc<Vec<Vec<u8>>> = Arc::new((b'a'..=b'f').map(|c| vec![c; MAX_NAME]).collect());
    let deadline = Instant::now() + Duration::from_millis(700);
    std::thread::scope(|s| {
        for w in 0..4u8 {
            let names = names.clone();
            let n = &n;
            s.spawn(move || {
                let t = open(n, memory);
                let group = [b'g', b'0' + w % 2];
                let mut i = w as usize;
                while Instant::now() < deadline {
                    let c = &names[i % names.len()];
                    let _ = t.add(&group, c, if i.is_multiple_of(3) { 1 } else { 0 });
                    if i.is_multiple_of(2) {
                        let _ = t.discard(&group, c);
                    }
                    i += 1;
                }
            });
        }
        for _ in 0..2 {
            let names = names.clone();
            let n = &n;
            s.spawn(move || {
                let t = open(n, memory);
                let mut reads = 0;
                while Instant::now() < deadline {
                    for group in [&b"g0"[..], b"g1"] {
                        let got = t.members(group).unwrap();
                        assert!(got.iter().all(|m| names.contains(m)), "foreign or torn member in {got:?}");
                        assert!(got.windows(2).all(|p| p[0] < p[1]), "not sorted or not unique");
                        reads += 1;
                    }
                }
                assert!(reads > 0);
            });
        }
    });
    let t = open(&n, memory);
    let c = t.check();
    assert_eq!((c.writing_alive, c.writing_abandoned, c.corrupt, c.duplicates), (0, 0, 0, 0), "{c:?}");
}

#[test]
fn openers_read_back_the_creators_size_and_refuse_foreign_objects() {
    let n = name("open");
    let _u = Unlink(n.clone());
    let first = open(&n, memory_for(10));
    let second = open(&n, DEFAULT_MEMORY);
    assert_eq!(second.entry_count(), 10, "a later opener's groupMemory must be ignored");
    assert_eq!(first.add(b"g", b"a", 0), Ok(ADDED));
    assert_eq!(members(&second, "g"), ["a"]);

    let open_err = |name: &str, memory: u64| {
        GroupTable::open(&GroupOpen { name, memory, mode: 0o600, create: true }).err().map(|e| e.code)
    };
    assert_eq!(open_err(&name("small"), MIN_MEMORY - 1), Some(ERR_INVALID_ARGUMENT));
    assert_eq!(open_err(&name("big"), MAX_MEMORY + 1), Some(ERR_INVALID_ARGUMENT));
    let absent = name("absent");
    assert_eq!(
        GroupTable::open(&GroupOpen { name: &absent, memory: DEFAULT_MEMORY, mode: 0o600, create: false })
            .err()
            .map(|e| e.code),
        Some(ERR_NOT_FOUND)
    );

    // A channel segment (or anything else) under that name is foreign, and left alone.
    let foreign = name("foreign");
    let _uf = Unlink(foreign.clone());
    let fd = ferry_core::sys::shm_open_rw(&foreign, true, 0o600).unwrap();
    ferry_core::sys::set_size(&fd, 4096).unwrap();
    let m = ferry_core::sys::Mapping::new(&fd, 4096).unwrap();
    // SAFETY: the mapping is 4096 bytes; we write its first 8.
    unsafe { std::ptr::copy_nonoverlapping(b"FERRYCH1".as_ptr(), m.base, 8) };
    assert_eq!(open_err(&foreign, DEFAULT_MEMORY), Some(ERR_INCOMPATIBLE));
    assert_eq!(ferry_core::sys::file_size(&fd).unwrap(), 4096);
}

#[test]
fn fan_outs_and_skips_are_counted_in_the_namespace() {
    let n = name("count");
    let _u = Unlink(n.clone());
    let t = open(&n, DEFAULT_MEMORY);
    t.note_fanout(0, 0);
    t.note_fanout(2, 1);
    let other = open(&n, DEFAULT_MEMORY);
    other.note_fanout(1, 0);
    let s = t.stat();
    assert_eq!((s.fanouts, s.skipped, s.missing), (3, 3, 1));
}

#[test]
fn random_bytes_in_the_entries_are_freed_never_reported_and_never_crash() {
    let n = name("garbage");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(512));
    // A header intact and every entry random: what a stray write over the table would leave.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..t.entry_count() {
        let e = t.entry(i);
        let words = std::iter::once(&e.state).chain([&e.meta]).chain(e.group.iter()).chain(e.channel.iter());
        for w in words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.store(x, Relaxed);
        }
    }
    let before = t.check();
    assert!(before.corrupt + before.writing_abandoned > 0, "{before:?}");
    assert!(members(&t, "g").is_empty());
    let after = t.check();
    assert_eq!((after.free, after.corrupt, after.writing_abandoned), (after.entries, 0, 0), "{after:?}");
    assert_eq!(t.add(b"g", b"a", 0), Ok(ADDED));
    assert_eq!(members(&t, "g"), ["a"]);
    assert_settled(&t, 1);
}

#[test]
fn every_group_kill_point_is_listed_with_the_engine_ones() {
    for point in ferry_core::group::FAULT_POINTS {
        assert!(ferry_core::fault::POINTS.contains(point), "{point} missing from fault::POINTS");
    }
}

#[test]
fn a_held_membership_lasts_while_its_handle_is_open_and_ends_when_it_is_dropped() {
    let n = name("held");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(4));
    let holder = open(&n, memory_for(4));
    assert_eq!(holder.add_held(b"g", b"inbox"), Ok(ADDED));
    assert_eq!(holder.add_held(b"g", b"inbox"), Ok(REFRESHED), "one holder holds a pair once");
    assert_eq!(members(&t, "g"), ["inbox"], "another handle sees it (and its scan keeps it)");
    assert_eq!(members(&holder, "g"), ["inbox"], "its own scan keeps it too");
    let c = t.check();
    assert_eq!((c.live, c.held, c.held_abandoned), (1, 1, 0), "{c:?}");
    assert_eq!(t.stat().live, 1, "live");

    drop(holder); // close(): the membership ends with the handle
    assert!(members(&t, "g").is_empty());
    assert_settled(&t, 0);
    let s = t.stat();
    assert_eq!((s.added, s.died, s.closed), (1, 0, 1));
}

#[test]
fn a_dead_holders_membership_is_freed_by_the_next_scan_of_its_group() {
    let n = name("helddead");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(4));
    let holder = open(&n, memory_for(4));
    assert_eq!(holder.add_stopping(b"g", b"inbox", Lifetime::Process, AddStop::HeldForgotten), Ok(ADDED));
    assert_eq!(members(&t, "g"), ["inbox"], "a live holder's membership was freed");
    drop(holder); // its lock goes, its word stays HELD: a process killed
    let c = t.check();
    assert_eq!((c.live, c.held_abandoned), (0, 1), "{c:?}");
    assert_eq!(t.stat().live, 0, "a dead holder's membership counted as live");
    assert!(members(&t, "g").is_empty(), "a dead holder's membership was reported");
    assert_settled(&t, 0);
    assert_eq!(t.stat().died, 1, "died counter");
}

#[test]
fn expiring_and_held_memberships_of_one_pair_are_independent_and_discard_ends_both() {
    let n = name("heldmix");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(4));
    let holder = open(&n, memory_for(4));
    assert_eq!(t.add(b"g", b"inbox", 0), Ok(ADDED));
    assert_eq!(holder.add_held(b"g", b"inbox"), Ok(REFRESHED), "it was a member already");
    assert_eq!(members(&t, "g"), ["inbox"], "reported once");
    drop(holder);
    assert_eq!(members(&t, "g"), ["inbox"], "the expiring membership outlives the holder");

    let holder = open(&n, memory_for(4));
    assert_eq!(holder.add_held(b"g", b"inbox"), Ok(REFRESHED));
    assert_eq!(t.discard(b"g", b"inbox"), Ok(true));
    assert!(members(&t, "g").is_empty(), "discard must end the held membership too");
    // The holder lets go of the discarded entry's lock at its next call: the entry is reusable.
    assert!(members(&holder, "g").is_empty());
    for c in [b"a", b"b", b"c", b"d"] {
        assert_eq!(t.add(b"g", c, 0), Ok(ADDED), "an entry stayed locked by the holder");
    }
    drop(holder);
    assert_settled(&t, 4);
}

#[test]
fn a_full_table_sweeps_dead_holders_of_other_groups_before_giving_up() {
    let n = name("heldsweep");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(2));
    let live = open(&n, memory_for(2));
    let dead = open(&n, memory_for(2));
    assert_eq!(live.add_held(b"other", b"x"), Ok(ADDED));
    assert_eq!(dead.add_stopping(b"other", b"y", Lifetime::Process, AddStop::HeldForgotten), Ok(ADDED));
    drop(dead);
    assert_eq!(t.add(b"g", b"a", 0), Ok(ADDED), "the dead holder's entry was not swept");
    assert_eq!(t.add(b"g", b"b", 0), Err(ERR_TABLE_FULL), "a live holder's entry was taken");
    assert_eq!(members(&t, "other"), ["x"]);
    drop(live);
    assert_eq!(t.add(b"g", b"b", 0), Ok(ADDED));
    assert_settled(&t, 2);
}

#[test]
fn a_watch_stays_unchanged_until_a_member_joins_leaves_or_its_holder_dies() {
    let n = name("watch");
    let _u = Unlink(n.clone());
    let reader = open(&n, memory_for(8));
    let (a, b) = (open(&n, memory_for(8)), open(&n, memory_for(8)));
    assert_eq!(a.add_held(b"g", b"a"), Ok(ADDED));
    let (names, w) = reader.members_watched(b"g").unwrap();
    assert_eq!(names, [b"a".to_vec()]);
    assert!(reader.unchanged(&w), "nothing changed");
    assert!(w.is_of(b"g") && !w.is_of(b"other"));

    // Another group's change moves the version too: the watch looks again and finds the same.
    assert_eq!(b.add(b"other", b"x", 0), Ok(ADDED));
    assert!(!reader.unchanged(&w), "a change anywhere in the table is a change");
    let (names, w) = reader.members_watched(b"g").unwrap();
    assert_eq!(names, [b"a".to_vec()]);

    assert_eq!(b.add_held(b"g", b"b"), Ok(ADDED));
    assert!(!reader.unchanged(&w), "a join was not seen");
    let (names, w) = reader.members_watched(b"g").unwrap();
    assert_eq!(names, [b"a".to_vec(), b"b".to_vec()]);
    assert!(reader.unchanged(&w));

    assert_eq!(b.discard(b"g", b"b"), Ok(true));
    assert!(!reader.unchanged(&w), "a discard was not seen");
    let (_, w) = reader.members_watched(b"g").unwrap();

    drop(a); // a close ends the holder's memberships
    assert!(!reader.unchanged(&w), "a holder's close was not seen");
    let (names, _) = reader.members_watched(b"g").unwrap();
    assert!(names.is_empty());
    assert_settled(&reader, 1);
}

#[test]
fn a_watch_sees_a_dead_holder_and_ends_its_membership_for_every_watcher() {
    let n = name("watchdead");
    let _u = Unlink(n.clone());
    let (reader, other) = (open(&n, memory_for(4)), open(&n, memory_for(4)));
    let dead = open(&n, memory_for(4));
    assert_eq!(dead.add_stopping(b"g", b"inbox", Lifetime::Process, AddStop::HeldForgotten), Ok(ADDED));
    let (names, w) = reader.members_watched(b"g").unwrap();
    let (_, w_other) = other.members_watched(b"g").unwrap();
    assert_eq!(names, [b"inbox".to_vec()]);
    assert!(reader.unchanged(&w) && other.unchanged(&w_other));
    let version = reader.members_version();
    drop(dead); // its lock goes, its word stays HELD: a process killed, nothing bumped

    assert_eq!(reader.members_version(), version);
    assert!(!reader.unchanged(&w), "a dead holder's membership was taken as unchanged");
    assert_eq!(reader.stat().died, 1, "the watch that saw the death ended the membership");
    assert_ne!(reader.members_version(), version, "ending it must bump the version");
    assert!(!other.unchanged(&w_other), "another watcher must see the death through the version");
    assert!(reader.members_watched(b"g").unwrap().0.is_empty());
    assert_settled(&reader, 0);
}

#[test]
fn a_watch_sees_a_deadline_pass_and_keeps_its_own_holds_without_a_syscall() {
    let n = name("watchexp");
    let _u = Unlink(n.clone());
    let t = open(&n, memory_for(4));
    assert_eq!(t.add_held(b"g", b"mine"), Ok(ADDED));
    let (_, w) = t.members_watched(b"g").unwrap();
    assert!(w.held.is_empty(), "this handle's own holds need no lock check");
    assert!(t.unchanged(&w));

    assert_eq!(t.add(b"g", b"brief", 30), Ok(ADDED));
    let (names, w) = t.members_watched(b"g").unwrap();
    assert_eq!(names, [b"brief".to_vec(), b"mine".to_vec()]);
    assert!(w.earliest_expiry != EXPIRES_NEVER);
    spin_for(Duration::from_millis(40)); // the deadline passes: no CAS, no bump
    assert!(!t.unchanged(&w), "an expired member was taken as unchanged");
    assert_eq!(members(&t, "g"), ["mine"]);
}
