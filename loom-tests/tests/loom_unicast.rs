//! Unicast (`Mode::Unicast`, a work queue): each record goes to exactly one worker
//! (see `src/ring/unicast.rs`: "Taking record `r`", "A receiver that dies holding a
//! record"; `src/ring/gate.rs`, "Unicast"). Producers are a `Route`'s or a `Channel`'s
//! `ring::producer::Producer`, sending through the shipped `ring::send::send` or
//! `try_send`; workers are unicast `Reader`s receiving through `ring::recv::recv` or
//! `ring::recv::poll` (with `check_liveness` to rescue a record whose taker died
//! between C2 and C3), or holding what they take as `Receiver::recv_ref` does
//! (`ring::recv::poll_hold`). A worker that must die at an exact point is written by
//! hand (`take_and_die`).
#![cfg(loom)]

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{
    attach_route, join_channel, join_reader, recv_block, send_block, try_send_now, Dead, ALL_ALIVE,
};
use shmchan::layout::{stamp_busy, stamp_done, stamp_settled};
use shmchan::process::Liveness;
use shmchan::ring::producer::{Begin, Producer};
use shmchan::ring::reader::Reader;
use shmchan::ring::record::GapMarker;
use shmchan::ring::recv::{poll, poll_hold, RecvState};
use shmchan::ring::send::SendFail;
use shmchan::ring::{HeapRing, RingView};
use shmchan::{RecvTimeoutError, TryRecvError};

/// Records are single words, `seq + 1` for the `Route` models (0 is a never-written
/// slot): a unicast slot is never rewritten while a worker copies it, so tearing is
/// not the question here, loss and duplication are.
type Rec = u64;

/// Owner word of the `Route` producer (workers are 1 and up).
const SENDER: u64 = 50;

/// A unicast ring of `capacity` records with `workers` receiver entries and
/// `producers` producer entries.
fn ring(capacity: u64, workers: usize, producers: usize) -> Arc<HeapRing> {
    Arc::new(HeapRing::with_producers::<Rec>(
        capacity, workers, producers, true, true,
    ))
}

/// Receives with `recv` until `Disconnected` (every producer left and nothing is left
/// to take). Returns what it took.
fn take_all(w: &mut Reader, state: &mut RecvState, view: &RingView<'_>) -> Vec<Rec> {
    let mut got = Vec::new();
    loop {
        match recv_block::<Rec>(view, w, state) {
            Ok(v) => got.push(v),
            Err(RecvTimeoutError::Disconnected) => return got,
            Err(e) => panic!("worker got {e:?}"),
        }
    }
}

/// Every value of `expected` delivered exactly once over all workers' lists.
fn exactly_once(lists: &[Vec<Rec>], expected: &[Rec]) {
    let mut all: Vec<Rec> = lists.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, expected, "lost or duplicated (per worker: {lists:?})");
}

/// `attempts` polls, each after a `yield_now` (so that the other threads run in
/// between without spending the preemption bound), never waiting: what it took.
fn take_some(
    w: &mut Reader,
    state: &mut RecvState,
    view: &RingView<'_>,
    attempts: usize,
) -> Vec<Rec> {
    (0..attempts)
        .filter_map(|_| {
            thread::yield_now();
            match poll::<Rec>(view, w, state, false, &ALL_ALIVE) {
                Ok(v) => Some(v),
                Err(TryRecvError::Empty) => None,
                Err(e) => panic!("worker got {e:?}"),
            }
        })
        .collect()
}

/// `Route` unicast: a ring of 2 holds records 0 and 1 (published before the threads
/// start, to keep the model small); the producer sends record 2 with `send`, which
/// waits on the `space` futex until record 0 is settled, while two workers make two
/// polls each (the first of either takes record 0). Afterwards one worker polls for
/// what is left. Every record is delivered exactly once, in order per worker: a
/// producer that overwrote an unconsumed slot would lose a record (the workers step
/// over the newer stamp), a worker that copied before the record was published would
/// return a zero, and a missed wake-up on `space` is a deadlock.
#[test]
fn unicast_route_two_workers() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        let (mut a, mut sa) = join_reader(&view, 1);
        let (mut b, mut sb) = join_reader(&view, 2);
        for v in [1, 2] {
            try_send_now(&mut tx, &view, &v).expect("room");
        }
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || send_block(&mut tx, &ring.view(), &3u64))
        };
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_some(&mut b, &mut sb, &ring.view(), 2))
        };
        let mut got_a = take_some(&mut a, &mut sa, &view, 2);
        let got_b = worker.join().expect("worker b");
        producer.join().expect("producer");
        got_a.extend(take_some(&mut a, &mut sa, &view, 2));
        for list in [&got_a, &got_b] {
            // Taking (no rescue here) follows the read cursor, which only goes forward.
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "out of order: {list:?}"
            );
        }
        exactly_once(&[got_a, got_b], &[1, 2, 3]);
        assert_eq!(a.waiting_on(&view), 3);
    });
}

/// `Route` unicast, single-threaded: `try_send` says `Full` exactly while the slot of
/// the next record holds a record no worker has settled.
#[test]
fn unicast_route_full_until_consumed() {
    loom::model(|| {
        let ring = ring(2, 1, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        let (mut w, mut state) = join_reader(&view, 1);
        for v in [1, 2] {
            try_send_now(&mut tx, &view, &v).expect("room");
        }
        assert_eq!(try_send_now(&mut tx, &view, &3u64), Err(SendFail::Full));
        assert_eq!(
            poll::<Rec>(&view, &mut w, &mut state, false, &ALL_ALIVE),
            Ok(1)
        );
        try_send_now(&mut tx, &view, &3u64).expect("record 0 consumed");
        assert_eq!(try_send_now(&mut tx, &view, &4u64), Err(SendFail::Full));
    });
}

/// Value of record `i` of `Channel` producer `p`.
fn value(p: usize, i: u64) -> Rec {
    (p as u64 + 1) << 8 | (i + 1)
}

/// `Channel` unicast with `workers` worker threads (the main thread is one of them),
/// idle workers sleeping on `data` in `recv`: two producers send `counts[p]` records
/// each through a ring of 2 and leave. Every record is delivered exactly once, each
/// producer's records are taken in its order, and every worker ends with
/// `Disconnected` (the producers' `leave` wakes it).
fn channel_unicast(counts: [u64; 2], workers: usize) {
    loom::model(move || {
        let ring = ring(2, workers, 2);
        let view = ring.view();
        let txs: Vec<_> = (0..2).map(|p| join_channel(&view, p as u64 + 1)).collect();
        let mut readers: Vec<_> = (0..workers)
            .map(|k| join_reader(&view, 100 + k as u64))
            .collect();
        let producers: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(p, mut tx)| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..counts[p] {
                        send_block(&mut tx, &view, &value(p, i));
                    }
                    tx.leave(&view);
                })
            })
            .collect();
        let (mut main_worker, mut main_state) = readers.remove(0);
        let others: Vec<_> = readers
            .into_iter()
            .map(|(mut w, mut state)| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || take_all(&mut w, &mut state, &ring.view()))
            })
            .collect();
        let mut lists = vec![take_all(&mut main_worker, &mut main_state, &view)];
        lists.extend(others.into_iter().map(|t| t.join().expect("worker")));
        for producer in producers {
            producer.join().expect("producer");
        }
        let mut expected: Vec<Rec> = (0..2)
            .flat_map(|p| (0..counts[p]).map(move |i| value(p, i)))
            .collect();
        expected.sort_unstable();
        // Per producer, in order: a single worker's list is increasing per producer.
        for list in &lists {
            for p in 0..2u64 {
                let mine: Vec<_> = list.iter().filter(|v| *v >> 8 == p + 1).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "reordered: {list:?}");
            }
        }
        exactly_once(&lists, &expected);
    });
}

/// Two producers (2 and 1 records), one worker, a ring of 2: the slot gate in
/// `try_claim` must keep a producer from claiming `seq + 2` while the claim of `seq`
/// is still unwritten, or it overwrites record `seq` before anyone took it.
#[test]
fn unicast_channel_two_producers_one_worker() {
    channel_unicast([2, 1], 1);
}

/// The sequence number a `Channel` producer's last claim took.
fn claimed(p: &Producer) -> u64 {
    match p {
        Producer::Shared { producer, .. } => producer.seq(),
        Producer::Single(_) => unreachable!("a Channel producer"),
    }
}

/// `Channel` unicast, one thread, the interleaving the model above finds: producer 0
/// claims 0 and is preempted before `begin`; producer 1 publishes 1. The slot of 2 is
/// that of 0, whose record is not even written yet: producer 1 must not claim 2 (the
/// gate is closed, `try_send` says `Full`), or its `begin` would later overwrite
/// record 0 right after producer 0 publishes it, before any worker took it.
#[test]
fn unicast_channel_no_claim_past_an_unwritten_one() {
    loom::model(|| {
        let ring = ring(2, 1, 2);
        let view = ring.view();
        let (mut w, mut state) = join_reader(&view, 100);
        let mut p0 = join_channel(&view, 1);
        let mut p1 = join_channel(&view, 2);
        assert!(p0.try_claim(&view));
        assert_eq!(claimed(&p0), 0);
        send_block(&mut p1, &view, &value(1, 0));
        assert_eq!(
            try_send_now(&mut p1, &view, &value(1, 1)),
            Err(SendFail::Full),
            "claimed 2 over the unwritten 0"
        );
        assert_eq!(p0.begin(&view, &ALL_ALIVE, false), Begin::Ours);
        p0.write(&view, &value(0, 0));
        assert!(p0.commit(&view, false));
        assert_eq!(
            try_send_now(&mut p1, &view, &value(1, 1)),
            Err(SendFail::Full),
            "claimed 2 over the unconsumed 0"
        );
        assert_eq!(
            poll::<Rec>(&view, &mut w, &mut state, false, &ALL_ALIVE),
            Ok(value(0, 0))
        );
        try_send_now(&mut p1, &view, &value(1, 1)).expect("record 0 consumed");
        assert_eq!(claimed(&p1), 2);
    });
}

/// `Channel` unicast: two producers send one record each into a ring of 2 while two
/// workers make one poll each; afterwards one worker polls for what is left. Both
/// records are delivered exactly once.
#[test]
fn unicast_channel_two_producers_two_workers() {
    loom::model(|| {
        let ring = ring(2, 2, 2);
        let view = ring.view();
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = join_channel(&view, p as u64 + 1);
                let ring = Arc::clone(&ring);
                thread::spawn(move || send_block(&mut tx, &ring.view(), &value(p, 0)))
            })
            .collect();
        let (mut a, mut sa) = join_reader(&view, 100);
        let (mut b, mut sb) = join_reader(&view, 101);
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_some(&mut b, &mut sb, &ring.view(), 1))
        };
        let mut got_a = take_some(&mut a, &mut sa, &view, 1);
        let got_b = worker.join().expect("worker b");
        for producer in producers {
            producer.join().expect("producer");
        }
        got_a.extend(take_some(&mut a, &mut sa, &view, 2));
        exactly_once(&[got_a, got_b], &[value(0, 0), value(1, 0)]);
    });
}

/// The steps of `try_take` up to C2 (R1, C1, C2) for the worker whose entry is owned
/// by `owner`, after which the process "dies": the record is taken and never settled.
/// Returns the sequence number taken, if it won C2.
fn take_and_die(view: &RingView<'_>, owner: u64) -> Option<u64> {
    let entry = view
        .receivers
        .iter()
        .find(|e| e.owner.load(Ordering::Relaxed) == owner)
        .expect("the doomed worker's entry");
    let r = view.ctl.read.load(Ordering::Acquire);
    if view.slots[view.geom.stamp_index(r)].load(Ordering::Acquire) != stamp_done(r) {
        return None;
    }
    entry.claim.store(r + 1, Ordering::Relaxed);
    view.ctl
        .read
        .compare_exchange(r, r + 1, Ordering::AcqRel, Ordering::Relaxed)
        .ok()
        .map(|_| r)
}

/// Polls with `check_liveness` (each poll a liveness tick: take, else rescue) until a
/// poll finds nothing.
fn take_or_rescue(
    w: &mut Reader,
    state: &mut RecvState,
    view: &RingView<'_>,
    oracle: &impl Liveness,
) -> Vec<Rec> {
    let mut got = Vec::new();
    loop {
        match poll::<Rec>(view, w, state, true, oracle) {
            Ok(v) => got.push(v),
            Err(TryRecvError::Empty) => return got,
            Err(e) => panic!("worker got {e:?}"),
        }
    }
}

/// Records 0 and 1 are published; worker 1 takes record 0 (C1, C2) and dies before
/// settling it. Workers 2 and 3 then race, each polling with `check_liveness` (an
/// oracle that calls worker 1 dead) until they find nothing: record 1 is taken once,
/// record 0 is rescued exactly once, whoever wins C3, and `rescued` counts it once.
#[test]
fn unicast_rescue_two_rescuers() {
    loom::model(|| {
        let ring = ring(2, 3, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        try_send_now(&mut tx, &view, &1u64).expect("room");
        try_send_now(&mut tx, &view, &2u64).expect("room");
        let _doomed = join_reader(&view, 1);
        assert_eq!(take_and_die(&view, 1), Some(0));
        let rescuers: Vec<_> = [2, 3]
            .into_iter()
            .map(|owner| {
                let (mut w, mut state) = join_reader(&view, owner);
                let ring = Arc::clone(&ring);
                thread::spawn(move || take_or_rescue(&mut w, &mut state, &ring.view(), &Dead(1)))
            })
            .collect();
        let lists: Vec<_> = rescuers
            .into_iter()
            .map(|t| t.join().expect("rescuer"))
            .collect();
        exactly_once(&lists, &[1, 2]);
        let rescued = view.ctl.membership.rescued.load(Ordering::Relaxed);
        assert_eq!(rescued, 1, "rescued counter");
    });
}

/// Record 0 is published; worker 1 (doomed) and worker 2 race to take it, worker 1
/// dying right after its C2 if it wins. Afterwards worker 2, idle, polls with
/// `check_liveness` (an oracle calling worker 1 dead): record 0 is delivered exactly
/// once in total, whoever won C2. (A taker that loses C2 must not leave its C1 claim
/// behind: a live worker's stale claim on record 0 would make every rescuer leave it
/// alone.)
#[test]
fn unicast_taker_dies_racing_a_live_taker() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        try_send_now(&mut tx, &view, &1u64).expect("room");
        let _doomed = join_reader(&view, 1);
        let (mut live, mut state) = join_reader(&view, 2);
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                take_and_die(&ring.view(), 1);
            })
        };
        let mut got: Vec<Rec> = poll::<Rec>(&view, &mut live, &mut state, false, &ALL_ALIVE)
            .into_iter()
            .collect();
        dying.join().expect("dying worker");
        got.extend(take_or_rescue(&mut live, &mut state, &view, &Dead(1)));
        assert_eq!(got, [1], "record 0 lost or duplicated");
    });
}

/// One poll with `check_liveness` (an oracle calling worker 1 dead) by an idle worker,
/// holding what it takes as `recv_ref` does (`poll_hold`) or copying it as `recv`
/// does (`poll`). What it delivered (a holder's record read through its hold, as the
/// guard reads it) and the sequence number it holds.
fn rescue_poll(
    w: &mut Reader,
    state: &mut RecvState,
    view: &RingView<'_>,
    holds: bool,
) -> (Option<Rec>, Option<u64>) {
    let result = if holds {
        poll_hold(view, w, state, true, &Dead(1))
            .map(|seq| (w.read_held::<Rec>(view, seq), Some(seq)))
    } else {
        poll::<Rec>(view, w, state, true, &Dead(1)).map(|v| (v, None))
    };
    match result {
        Ok((v, seq)) => (Some(v), seq),
        Err(TryRecvError::Empty) => (None, None),
        Err(e) => panic!("rescuer got {e:?}"),
    }
}

/// Record 0 is published; worker 1 takes it (C1, C2) and dies before settling it.
/// Workers 2 and 3, idle, rescue it at the same time, one poll each with
/// `check_liveness`, holding it (`recv_ref`) or copying it (`recv`) as `holds` says.
/// Afterwards the sender sends records 1 and 2, record 2 going into record 0's slot if
/// that was freed, and a worker that holds record 0 reads it again before letting go.
/// Record 0 is delivered exactly once (`rescued` counts it once), and a held record
/// still reads as record 0: the hold is not settled or rewritten under its holder.
/// (A rescuer that held the slot in place without C3, weakened at `uc_hold_copy`,
/// delivers it twice; so does a C3 that is a plain store, weakened at `uc_c3`.)
fn rescue_race(holds: [bool; 2]) {
    loom::model(move || {
        let ring = ring(2, 3, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        try_send_now(&mut tx, &view, &1u64).expect("room");
        let _doomed = join_reader(&view, 1);
        assert_eq!(take_and_die(&view, 1), Some(0));
        let (mut a, mut sa) = join_reader(&view, 2);
        let (mut b, mut sb) = join_reader(&view, 3);
        let other = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let got = rescue_poll(&mut b, &mut sb, &ring.view(), holds[1]);
                (b, got)
            })
        };
        let got_a = rescue_poll(&mut a, &mut sa, &view, holds[0]);
        let (mut b, got_b) = other.join().expect("rescuer");
        try_send_now(&mut tx, &view, &2u64).expect("room");
        // Succeeds only if record 0's slot was freed (settled).
        let _ = try_send_now(&mut tx, &view, &3u64);
        for (w, seq) in [(&mut a, got_a.1), (&mut b, got_b.1)] {
            if let Some(seq) = seq {
                assert_eq!(
                    w.read_held::<Rec>(&view, seq),
                    1,
                    "held record overwritten under its holder"
                );
                w.release(&view, seq);
            }
        }
        let lists: Vec<Vec<Rec>> = [got_a.0, got_b.0]
            .into_iter()
            .map(|v| v.into_iter().collect())
            .collect();
        exactly_once(&lists, &[1]);
        let rescued = view.ctl.membership.rescued.load(Ordering::Relaxed);
        assert_eq!(rescued, 1, "rescued counter");
    });
}

/// `rescue_race`: one rescuer holding (`recv_ref`), one copying (`recv`).
#[test]
fn unicast_rescue_copier_and_holder() {
    rescue_race([true, false]);
}

/// `rescue_race`: both rescuers holding (`recv_ref`).
#[test]
fn unicast_rescue_two_holders() {
    rescue_race([true, true]);
}

/// Everyone alive: worker 1 takes record 0 while worker 2, idle, runs its rescue step
/// (`Reader::rescue`). A rescuer that reads `read` past record 0 sees worker 1's
/// claim (C1 before the `Release` of C2) and leaves the record to it: the rescue
/// finds nothing, and worker 1 delivers it.
#[test]
fn unicast_rescue_leaves_a_live_taker_alone() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        try_send_now(&mut tx, &view, &1u64).expect("room");
        let (mut taker, mut state) = join_reader(&view, 1);
        let (mut idle, _) = join_reader(&view, 2);
        let t = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                poll::<Rec>(&ring.view(), &mut taker, &mut state, false, &ALL_ALIVE)
            })
        };
        let stolen = idle.rescue::<Rec>(&view, &ALL_ALIVE);
        assert_eq!(stolen, None, "rescued a record its live taker was copying");
        assert_eq!(t.join().expect("taker"), Ok(1));
    });
}

/// Unicast `Route`: the producer (owner `SENDER`) publishes record 0 (its done stamp)
/// and dies before storing `head`. A worker thread receives while another thread
/// attaches a new producer (taking the sender claim from the dead one) and sends
/// record 1, then leaves. The new producer must start after record 0 whether the
/// worker has taken it yet (`settled(0)`) or not (`done(0)`): every record is
/// delivered exactly once, in order, and no slot's stamp goes backwards (both slots
/// end settled at their own sequence numbers).
#[test]
fn route_takeover_after_a_consumed_record() {
    loom::model(|| {
        let ring = ring(2, 1, 0);
        let view = ring.view();
        let mut old = attach_route(&view, SENDER);
        let (mut w, mut state) = join_reader(&view, 1);
        // Record 0 by hand: busy stamp and W1 (`begin`), the words, the done stamp;
        // the process dies before `commit` would store `head`.
        assert!(old.try_claim(&view));
        assert_eq!(old.begin(&view, &ALL_ALIVE, false), Begin::Ours);
        old.write(&view, &1u64);
        view.slots[view.geom.stamp_index(0)].store(stamp_done(0), Ordering::Release);
        assert_eq!(view.ctl.head.load(Ordering::Relaxed), 0);
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_all(&mut w, &mut state, &ring.view()))
        };
        let successor = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                let mut tx = Producer::attach_route(&view, SENDER + 1, &Dead(SENDER))
                    .expect("the dead sender's claim is taken over");
                assert_eq!(tx.next_seq(&view), 1, "restarted at the dead one's record");
                send_block(&mut tx, &view, &2u64);
                tx.leave(&view);
            })
        };
        successor.join().expect("successor");
        let got = worker.join().expect("worker");
        assert_eq!(got, [1, 2], "lost, duplicated or reordered");
        for seq in 0..2 {
            let stamp = view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed);
            assert_eq!(stamp, stamp_settled(seq), "slot of {seq}");
            assert!(stamp > stamp_busy(seq));
        }
    });
}

/// A gap marker (`RawSender::publish_gap`) and a record, two workers polling while the
/// producer sends a second record into the gap's slot once it is freed: the gap is reported
/// (`Lagged(5)`) by exactly one worker, and each record is taken exactly once. A
/// gap taken twice, or stepped over, or a producer overwriting an untaken gap, fails.
#[test]
fn unicast_gap_goes_to_exactly_one_worker() {
    /// What a worker got: records, and a lag as `u64::MAX - n`.
    fn take_or_lag(w: &mut Reader, state: &mut RecvState, view: &RingView<'_>) -> Vec<Rec> {
        (0..2)
            .filter_map(|_| {
                thread::yield_now();
                match poll::<Rec>(view, w, state, false, &ALL_ALIVE) {
                    Ok(v) => Some(v),
                    Err(TryRecvError::Lagged(n)) => Some(u64::MAX - n),
                    Err(TryRecvError::Empty) => None,
                    Err(e) => panic!("worker got {e:?}"),
                }
            })
            .collect()
    }
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = attach_route(&view, SENDER);
        let (mut a, mut sa) = join_reader(&view, 1);
        let (mut b, mut sb) = join_reader(&view, 2);
        // The gap first: the third record goes into its slot once it is taken.
        shmchan::ring::send::try_send(&mut tx, &view, &GapMarker::new(5), &ALL_ALIVE, false)
            .expect("room for the gap");
        try_send_now(&mut tx, &view, &1u64).expect("room");
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || send_block(&mut tx, &ring.view(), &3u64))
        };
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_or_lag(&mut b, &mut sb, &ring.view()))
        };
        let mut got_a = take_or_lag(&mut a, &mut sa, &view);
        let got_b = worker.join().expect("worker b");
        producer.join().expect("producer");
        got_a.extend(take_or_lag(&mut a, &mut sa, &view));
        got_a.extend(take_or_lag(&mut a, &mut sa, &view));
        exactly_once(&[got_a, got_b], &[1, 3, u64::MAX - 5]);
    });
}
