//! `Channel<T>` broadcast: several producers share one ring through
//! `SharedProducer` (see `src/ring/multi.rs`: "Claiming", "Writing", "Dead claims").
//! Each producer claims a sequence number (intent, then the `head` CAS), marks the slot
//! busy (W0), fences (W1), writes, publishes with a CAS (W2) and claims again if its
//! claim turned void; receivers are the broadcast `Consumer`s of `broadcast.rs`, and a
//! stalled receiver calls `resolve_stall` to skip a dead producer's claim.
#![cfg(loom)]

use bytemuck::Pod;
use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Dead, ALL_ALIVE};
use shmchan::ring::broadcast::{Consumer, Read};
use shmchan::ring::multi::{reap_dead_producers, resolve_stall, SharedProducer};
use shmchan::ring::{HeapRing, RingView};
use shmchan::wait::wait_for;
use shmchan::Wait;

/// Owner word of producer `p` (0-based); receivers are 100 and up.
fn owner(p: usize) -> u64 {
    p as u64 + 1
}

/// The value of record `i` of producer `p`: never 0, and it names its sender.
fn value(p: usize, i: u64) -> u64 {
    (p as u64 + 1) << 8 | (i + 1)
}

/// The producer and index of a value a receiver returned, checking it is one that a
/// producer sends (not a never-written slot, not a mix).
fn decode(v: u64) -> (usize, u64) {
    let (p, i) = (v >> 8, v & 0xff);
    assert!(
        p != 0 && p <= 2 && i != 0,
        "a value no producer sent: {v:#x}"
    );
    (p as usize - 1, i - 1)
}

/// Sends one record: claim (in lossless mode waiting on `space` while the gate is
/// closed), begin, write, commit; claims again whenever the claim turned void.
/// Returns the sequence number it was published at.
fn send<T: Pod>(p: &mut SharedProducer, view: &RingView<'_>, rec: &T) -> u64 {
    loop {
        let seq = wait_for(Wait::Block, None, view.space_parker(), |_| {
            p.try_claim(view)
        })
        .expect("no deadline");
        if p.begin(view, &ALL_ALIVE) {
            p.write(view, rec);
            if p.commit(view) {
                return seq;
            }
        }
    }
}

/// The ring of the lossless models: capacity 2, one receiver, two producers.
fn block_ring() -> Arc<HeapRing> {
    Arc::new(HeapRing::with_producers::<u64>(2, 1, 2, true, false))
}

/// Checks that record `v` is the next one of its producer (lossless: nothing lost,
/// duplicated or reordered per producer) and counts it.
fn accept(next: &mut [u64; 2], v: u64) -> usize {
    let (p, i) = decode(v);
    assert_eq!(i, next[p], "producer {p}: lost, duplicated or reordered");
    next[p] += 1;
    p
}

/// `Overflow::Block`: two producers send 2 and 1 records through a ring of 2 to one
/// receiver, all three sleeping on the futex when they cannot go on (the producers on
/// `space` while the gate is closed, the receiver on `data`). The receiver gets every
/// record exactly once, each producer's in its order, never `Lagged`; nobody sleeps
/// for ever; no claim is skipped.
#[test]
fn channel_block_two_producers() {
    const COUNTS: [u64; 2] = [2, 1];
    loom::model(|| {
        let ring = block_ring();
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = SharedProducer::join(&view, owner(p)).expect("producer");
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..COUNTS[p] {
                        send(&mut tx, &view, &value(p, i));
                    }
                })
            })
            .collect();
        let mut next = [0u64; 2];
        for _ in 0..COUNTS.iter().sum::<u64>() {
            let read = wait_for(Wait::Block, None, view.data_parker(), |_| {
                match rx.try_read::<u64>(&view) {
                    Read::Empty => None,
                    other => Some(other),
                }
            })
            .expect("no deadline");
            match read {
                Read::Record(v) => {
                    accept(&mut next, v);
                }
                other => panic!("lossless receiver got {other:?}"),
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        assert_eq!(next, COUNTS);
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty, "a record too many");
        let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
        assert_eq!(dead, 0, "a claim was skipped with nobody dead");
    });
}

/// `Overflow::Overwrite`: two producers send 2 and 1 records into a ring of 2 (so the
/// third claim laps the first: a slot is rewritten while the receiver may be copying
/// it, or while its first writer is still busy). The receiver makes 3 `try_read`
/// attempts (each after a `yield_now`) while they run, then reads what is left. Records are two words, both the
/// value, so a torn copy is visible. The receiver never returns a torn, never-written
/// or foreign record; each producer's records come in increasing order (lag may skip
/// some), never twice; records and lag add up to `head`.
#[test]
fn channel_overwrite_two_producers() {
    const COUNTS: [u64; 2] = [2, 1];
    loom::model(|| {
        let ring = Arc::new(HeapRing::with_producers::<[u64; 2]>(2, 1, 2, false, false));
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = SharedProducer::join(&view, owner(p)).expect("producer");
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..COUNTS[p] {
                        send(&mut tx, &view, &[value(p, i); 2]);
                    }
                })
            })
            .collect();
        let mut last: [Option<u64>; 2] = [None; 2];
        let mut check = |read: Read<[u64; 2]>| match read {
            Read::Record(r) => {
                assert_eq!(r[0], r[1], "torn record {r:x?}");
                let (p, i) = decode(r[0]);
                assert!(
                    last[p].is_none_or(|l| i > l),
                    "producer {p}: record {i} after {:?} (duplicated or reordered)",
                    last[p]
                );
                last[p] = Some(i);
                true
            }
            Read::Lagged(n) => {
                assert!(n > 0, "Lagged(0)");
                true
            }
            Read::Empty => false,
        };
        for _ in 0..3 {
            // Yield first: the producers run while the receiver reads, without
            // spending the preemption bound on it.
            thread::yield_now();
            check(rx.try_read::<[u64; 2]>(&view));
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        while check(rx.try_read::<[u64; 2]>(&view)) {}
        // Records and lag account for every sequence number claimed (a void claim,
        // overwritten by a later lap, counts as lag).
        let head = view.ctl.head.load(Ordering::Relaxed);
        assert_eq!(rx.cursor(), head, "the receiver stopped short of head");
        assert!(
            last.iter().any(Option::is_some),
            "not even the newest record"
        );
    });
}

/// How a producer dies holding a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// After its `head` CAS, before `begin`: the slot is never marked busy, so only a
    /// patient receiver (two liveness ticks) skips it.
    AfterClaim,
    /// After `begin`: the slot is `busy` for a producer the oracle calls dead.
    AfterBegin,
}

/// `Overflow::Block`, capacity 2: producer 0 claims a sequence number and dies (stops
/// for good) while producer 1 sends 2 records. The receiver polls; whenever it finds
/// nothing it does what `Receiver` does on a liveness tick: reaps dead producers and
/// calls `resolve_stall` on its cursor (patiently for `AfterClaim`). It must get both
/// of producer 1's records, in order, exactly once, never `Lagged`, even when the dead
/// claim holds the gate closed for producer 1's second record; an impatient receiver
/// (`AfterBegin`) counts at most one claim dead.
fn dead_claim(death: Death) {
    loom::model(move || {
        let ring = block_ring();
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let mut doomed = SharedProducer::join(&view, owner(0)).expect("producer 0");
        let mut live = SharedProducer::join(&view, owner(1)).expect("producer 1");
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                // The gate may be closed already (producer 1 sent both): then it dies
                // holding nothing.
                if doomed.try_claim(&view).is_some() && death == Death::AfterBegin {
                    assert!(doomed.begin(&view, &ALL_ALIVE), "nobody skips a busy claim");
                }
                // Dies here: never writes, commits or leaves.
            })
        };
        let sender = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for i in 0..2 {
                    send(&mut live, &view, &value(1, i));
                }
            })
        };
        let oracle = Dead(owner(0));
        let mut next = [0u64; 2];
        while next[1] < 2 {
            match rx.try_read::<u64>(&view) {
                Read::Record(v) => {
                    assert_eq!(accept(&mut next, v), 1, "a record of the dead producer");
                }
                Read::Lagged(n) => panic!("lossless receiver got Lagged({n})"),
                Read::Empty => {
                    reap_dead_producers(&view, &oracle);
                    resolve_stall(&view, rx.cursor(), &oracle, death == Death::AfterClaim);
                    thread::yield_now();
                }
            }
        }
        dying.join().expect("dying producer");
        sender.join().expect("producer 1");
        if death == Death::AfterBegin {
            // One tick (`patient = false`) skips only a busy claim of a dead producer.
            let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
            assert!(dead <= 1, "{dead} claims skipped, one producer died");
        }
        // (A patient receiver may also skip claims of producer 1 preempted before
        // `begin`; it re-sends them, which the exactly-once check above covers.)
    });
}

#[test]
fn channel_dead_claim_after_claim() {
    dead_claim(Death::AfterClaim);
}

#[test]
fn channel_dead_claim_after_begin() {
    dead_claim(Death::AfterBegin);
}

/// `Overflow::Block`: both producers alive, one record each. The receiver, whenever
/// it finds nothing, first checks that an impatient `resolve_stall` (one tick) never
/// skips anything while every producer is alive (in particular never the `busy` claim
/// of a live producer, whose intent it must see), then once loses patience
/// (`patient = true`) and may skip a claim whose producer was merely preempted before
/// `begin`. That producer finds its claim void and sends again: every record still
/// arrives exactly once, per producer in order, and each producer's `records` counter
/// counts only the publication that counted.
#[test]
fn channel_preempted_claim_is_resent() {
    loom::model(|| {
        let ring = block_ring();
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = SharedProducer::join(&view, owner(p)).expect("producer");
                let ring = Arc::clone(&ring);
                thread::spawn(move || send(&mut tx, &ring.view(), &value(p, 0)))
            })
            .collect();
        let mut next = [0u64; 2];
        let mut patience = 1;
        let mut skipped = 0;
        while next != [1, 1] {
            match rx.try_read::<u64>(&view) {
                Read::Record(v) => {
                    accept(&mut next, v);
                }
                Read::Lagged(n) => panic!("lossless receiver got Lagged({n})"),
                Read::Empty => {
                    let seq = rx.cursor();
                    assert!(
                        !resolve_stall(&view, seq, &ALL_ALIVE, false),
                        "skipped claim {seq} of a live producer after one tick"
                    );
                    if patience > 0 && resolve_stall(&view, seq, &ALL_ALIVE, true) {
                        patience -= 1;
                        skipped += 1;
                    }
                    thread::yield_now();
                }
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty, "a record too many");
        let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
        assert_eq!(dead, skipped, "dead_claims counts the skips");
        for entry in view.producers.iter() {
            assert_eq!(entry.records.load(Ordering::Relaxed), 1, "records counter");
            assert_eq!(entry.claim.load(Ordering::Relaxed), 0, "claim left behind");
        }
    });
}
