//! Unicast (`Mode::Unicast`, a work queue): each record goes to exactly one `Worker`
//! (see `src/ring/unicast.rs`: "Taking record `r`", "Gating", "A receiver that dies
//! holding a record"). Producers are a `Route`'s `Producer` (gated by `has_space`,
//! i.e. `slot_free`) or a `Channel`'s `SharedProducer`s (gated in `try_claim`);
//! workers take records through the shared read cursor (R1, C1, C2, copy, C3) and an
//! idle worker rescues a record whose taker died between C2 and C3.
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Dead, ALL_ALIVE};
use shmchan::layout::stamp_done;
use shmchan::ring::broadcast::Producer;
use shmchan::ring::multi::SharedProducer;
use shmchan::ring::unicast::Worker;
use shmchan::ring::{HeapRing, RingView};
use shmchan::wait::wait_for;
use shmchan::Wait;

/// Records are single words, `seq + 1` for the `Route` models (0 is a never-written
/// slot): a unicast slot is never rewritten while a worker copies it, so tearing is
/// not the question here, loss and duplication are.
type Rec = u64;

/// A unicast ring of `capacity` records with `workers` receiver entries and
/// `producers` producer entries.
fn ring(capacity: u64, workers: usize, producers: usize) -> Arc<HeapRing> {
    Arc::new(HeapRing::with_producers::<Rec>(
        capacity, workers, producers, true, true,
    ))
}

/// Takes records until `finished` reaches `producers` (`Acquire`: every record they
/// published is then visible) and nothing is left to take. Returns what it took.
///
/// An idle worker sleeps on the `data` futex (`Wait::Block`): woken by a producer's
/// commit, or by [`finish`]. (Two workers polling with `yield_now` could starve the
/// producer for ever in loom's scheduler, which the model would report as exceeding
/// its branch limit.)
fn take_all(
    w: &mut Worker,
    view: &RingView<'_>,
    finished: &AtomicUsize,
    producers: usize,
) -> Vec<Rec> {
    let mut got = Vec::new();
    loop {
        let next = wait_for(Wait::Block, None, view.data_parker(), |_| {
            let done = finished.load(Ordering::Acquire) == producers;
            match w.try_take::<Rec>(view) {
                Some(v) => Some(Some(v)),
                None if done => Some(None),
                None => None,
            }
        })
        .expect("no deadline");
        match next {
            Some(v) => got.push(v),
            None => return got,
        }
    }
}

/// A producer is done: counts it in `finished` and, as for any progress, wakes the
/// workers parked on `data` (the notifier's half of the futex protocol).
fn finish(view: &RingView<'_>, finished: &AtomicUsize) {
    finished.fetch_add(1, Ordering::Release);
    fence(Ordering::SeqCst);
    view.data_parker().wake_if_parked();
}

/// Every value of `expected` delivered exactly once over all workers' lists.
fn exactly_once(lists: &[Vec<Rec>], expected: &[Rec]) {
    let mut all: Vec<Rec> = lists.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, expected, "lost or duplicated (per worker: {lists:?})");
}

/// `attempts` calls of `try_take`, each after a `yield_now` (so that the other threads
/// run in between without spending the preemption bound), never waiting: what it took.
fn take_some(w: &mut Worker, view: &RingView<'_>, attempts: usize) -> Vec<Rec> {
    (0..attempts)
        .filter_map(|_| {
            thread::yield_now();
            w.try_take::<Rec>(view)
        })
        .collect()
}

/// `Route` unicast: a ring of 2 holds records 0 and 1 (published before the threads
/// start, to keep the model small); the producer sends record 2, waiting on the
/// `space` futex (`Wait::Block`) while `has_space` is false, i.e. until record 0 is
/// settled, while two workers make two `try_take` attempts each (the first attempt of
/// either takes record 0). Afterwards one worker takes what is left. Every record is
/// delivered exactly once, in order per worker: a producer that overwrote an
/// unconsumed slot would lose a record (the workers step over the newer stamp), a
/// worker that copied before the record was published would return a zero, and a
/// missed wake-up on `space` is a deadlock.
#[test]
fn unicast_route_two_workers() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut a = Worker::join(&view, 1).expect("worker a");
        let mut b = Worker::join(&view, 2).expect("worker b");
        let mut tx = Producer::attach(&view);
        for v in [1, 2] {
            assert!(tx.has_space(&view));
            tx.push(&view, &v);
        }
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                wait_for(Wait::Block, None, view.space_parker(), |_| {
                    tx.has_space(&view).then_some(())
                })
                .expect("no deadline");
                tx.push(&view, &3);
            })
        };
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_some(&mut b, &ring.view(), 2))
        };
        let mut got_a = take_some(&mut a, &view, 2);
        let got_b = worker.join().expect("worker b");
        producer.join().expect("producer");
        got_a.extend(take_some(&mut a, &view, 2));
        for list in [&got_a, &got_b] {
            // Taking (no rescue here) follows the read cursor, which only goes forward.
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "out of order: {list:?}"
            );
        }
        exactly_once(&[got_a, got_b], &[1, 2, 3]);
        assert_eq!(Worker::read_cursor(&view), 3);
    });
}

/// `Route` unicast, single-threaded: `has_space` (what `try_send` asks) is false
/// exactly while the slot of the next record holds a record no worker has settled.
#[test]
fn unicast_route_full_until_consumed() {
    loom::model(|| {
        let ring = ring(2, 1, 0);
        let view = ring.view();
        let mut w = Worker::join(&view, 1).expect("worker");
        let mut tx = Producer::attach(&view);
        for v in [1, 2] {
            assert!(tx.has_space(&view));
            tx.push(&view, &v);
        }
        assert!(!tx.has_space(&view), "full: try_send must say Full");
        assert_eq!(w.try_take::<Rec>(&view), Some(1));
        assert!(tx.has_space(&view), "record 0 consumed");
        tx.push(&view, &3);
        assert!(!tx.has_space(&view), "full again");
    });
}

/// Value of record `i` of `Channel` producer `p`.
fn value(p: usize, i: u64) -> Rec {
    (p as u64 + 1) << 8 | (i + 1)
}

/// A `Channel` producer's send: claim (waiting on `space` while the slot of `head`
/// is not free), begin, write, commit; again if the claim turned void.
fn channel_send(p: &mut SharedProducer, view: &RingView<'_>, v: Rec) {
    loop {
        wait_for(Wait::Block, None, view.space_parker(), |_| {
            p.try_claim(view)
        })
        .expect("no deadline");
        if p.begin(view, &ALL_ALIVE) {
            p.write(view, &v);
            if p.commit(view) {
                return;
            }
        }
    }
}

/// `Channel` unicast with `workers` worker threads (the main thread is one of them),
/// idle workers sleeping on `data`: two producers send `counts[p]` records each
/// through a ring of 2. Every record is delivered exactly once and each producer's
/// records are taken in its order.
fn channel_unicast(counts: [u64; 2], workers: usize) {
    loom::model(move || {
        let ring = ring(2, workers, 2);
        let view = ring.view();
        let finished = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = SharedProducer::join(&view, p as u64 + 1).expect("producer");
                let ring = Arc::clone(&ring);
                let finished = Arc::clone(&finished);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..counts[p] {
                        channel_send(&mut tx, &view, value(p, i));
                    }
                    finish(&view, &finished);
                })
            })
            .collect();
        let mut main_worker = Worker::join(&view, 100).expect("worker");
        let others: Vec<_> = (1..workers)
            .map(|k| {
                let mut w = Worker::join(&view, 100 + k as u64).expect("worker");
                let ring = Arc::clone(&ring);
                let finished = Arc::clone(&finished);
                thread::spawn(move || take_all(&mut w, &ring.view(), &finished, 2))
            })
            .collect();
        let mut lists = vec![take_all(&mut main_worker, &view, &finished, 2)];
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
        let mut w = Worker::join(&view, 100).expect("worker");
        let mut p0 = SharedProducer::join(&view, 1).expect("producer 0");
        let mut p1 = SharedProducer::join(&view, 2).expect("producer 1");
        assert_eq!(p0.try_claim(&view), Some(0));
        channel_send(&mut p1, &view, value(1, 0));
        assert_eq!(p1.try_claim(&view), None, "claimed 2 over the unwritten 0");
        assert!(p0.begin(&view, &ALL_ALIVE));
        p0.write(&view, &value(0, 0));
        assert!(p0.commit(&view));
        assert_eq!(p1.try_claim(&view), None, "claimed 2 over the unconsumed 0");
        assert_eq!(w.try_take::<Rec>(&view), Some(value(0, 0)));
        assert_eq!(p1.try_claim(&view), Some(2), "record 0 consumed");
    });
}

/// `Channel` unicast: two producers send one record each into a ring of 2 while two
/// workers make one `try_take` attempt each; afterwards one worker takes what is
/// left. Both records are delivered exactly once.
#[test]
fn unicast_channel_two_producers_two_workers() {
    loom::model(|| {
        let ring = ring(2, 2, 2);
        let view = ring.view();
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = SharedProducer::join(&view, p as u64 + 1).expect("producer");
                let ring = Arc::clone(&ring);
                thread::spawn(move || channel_send(&mut tx, &ring.view(), value(p, 0)))
            })
            .collect();
        let mut a = Worker::join(&view, 100).expect("worker a");
        let mut b = Worker::join(&view, 101).expect("worker b");
        let worker = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || take_some(&mut b, &ring.view(), 1))
        };
        let mut got_a = take_some(&mut a, &view, 1);
        let got_b = worker.join().expect("worker b");
        for producer in producers {
            producer.join().expect("producer");
        }
        got_a.extend(take_some(&mut a, &view, 2));
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

/// Takes and rescues (as `Receiver` does when idle) until neither finds anything.
fn take_or_rescue(w: &mut Worker, view: &RingView<'_>, oracle: &Dead) -> Vec<Rec> {
    let mut got = Vec::new();
    loop {
        if let Some(v) = w.try_take::<Rec>(view) {
            got.push(v);
        } else if let Some(v) = w.rescue::<Rec>(view, oracle) {
            got.push(v);
        } else {
            return got;
        }
    }
}

/// Records 0 and 1 are published; worker 1 takes record 0 (C1, C2) and dies before
/// settling it. Workers 2 and 3 then race, each taking and rescuing (with an oracle
/// that calls worker 1 dead) until they find nothing: record 1 is taken once, record 0
/// is rescued exactly once, whoever wins C3, and `rescued` counts it once.
#[test]
fn unicast_rescue_two_rescuers() {
    loom::model(|| {
        let ring = ring(2, 3, 0);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        tx.push(&view, &1);
        tx.push(&view, &2);
        let _doomed = Worker::join(&view, 1).expect("doomed worker");
        assert_eq!(take_and_die(&view, 1), Some(0));
        let rescuers: Vec<_> = [2, 3]
            .into_iter()
            .map(|owner| {
                let mut w = Worker::join(&view, owner).expect("worker");
                let ring = Arc::clone(&ring);
                thread::spawn(move || take_or_rescue(&mut w, &ring.view(), &Dead(1)))
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
/// dying right after its C2 if it wins. Afterwards worker 2, idle, rescues with an
/// oracle calling worker 1 dead: record 0 is delivered exactly once in total, whoever
/// won C2. (A taker that loses C2 must not leave its C1 claim behind: a live worker's
/// stale claim on record 0 would make every rescuer leave it alone.)
#[test]
fn unicast_taker_dies_racing_a_live_taker() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        tx.push(&view, &1);
        let _doomed = Worker::join(&view, 1).expect("doomed worker");
        let mut live = Worker::join(&view, 2).expect("live worker");
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                take_and_die(&ring.view(), 1);
            })
        };
        let mut got: Vec<Rec> = live.try_take::<Rec>(&view).into_iter().collect();
        dying.join().expect("dying worker");
        got.extend(take_or_rescue(&mut live, &view, &Dead(1)));
        assert_eq!(got, [1], "record 0 lost or duplicated");
    });
}

/// Everyone alive: worker 1 takes record 0 while worker 2, idle, runs `rescue`. A
/// rescuer that reads `read` past record 0 sees worker 1's claim (C1 before the
/// `Release` of C2) and leaves the record to it: `rescue` finds nothing, and worker 1
/// delivers it.
#[test]
fn unicast_rescue_leaves_a_live_taker_alone() {
    loom::model(|| {
        let ring = ring(2, 2, 0);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        tx.push(&view, &1);
        let mut taker = Worker::join(&view, 1).expect("taker");
        let mut idle = Worker::join(&view, 2).expect("idle worker");
        let t = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || taker.try_take::<Rec>(&ring.view()))
        };
        let stolen = idle.rescue::<Rec>(&view, &ALL_ALIVE);
        assert_eq!(stolen, None, "rescued a record its live taker was copying");
        assert_eq!(t.join().expect("taker"), Some(1));
    });
}
