//! `Channel<T>` broadcast: several producers share one ring (see `src/ring/multi.rs`:
//! "Claiming", "Writing", "Dead claims"). The producers are `ring::producer::Producer`s
//! sending through the shipped `ring::send::send`; receivers are broadcast `Reader`s
//! receiving through `ring::recv::recv` or `ring::recv::poll` (with `check_liveness`
//! where the model needs the once-a-tick recovery: reaping dead producers and
//! skipping their claims). A model that needs a producer to die at an exact point
//! calls the step methods (`try_claim`, `begin`) itself and then stops, or runs the
//! shipped `join`/`leave` up to the `Step` it dies at (`Shared::join_until`,
//! `Producer::leave_until`).
#![cfg(loom)]

use std::cell::Cell;

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{join_channel, join_reader, recv_block, send_block, Dead, ALL_ALIVE};
use shmchan::layout::stamp_done;
use shmchan::process::Liveness;
use shmchan::ring::multi::{resolve_stall, Shared, Step};
use shmchan::ring::producer::Begin;
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::poll;
use shmchan::ring::recv::RecvState;
use shmchan::ring::{HeapRing, RingView};
use shmchan::TryRecvError;

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
        p != 0 && p <= 3 && i != 0,
        "a value no producer sent: {v:#x}"
    );
    (p as usize - 1, i - 1)
}

/// The ring of the lossless models: capacity 2, one receiver, `producers` producers.
fn block_ring(producers: usize) -> Arc<HeapRing> {
    Arc::new(HeapRing::with_producers::<u64>(
        2, 1, producers, true, false,
    ))
}

/// Checks that record `v` is the next one of its producer (lossless: nothing lost,
/// duplicated or reordered per producer) and counts it.
fn accept(next: &mut [u64], v: u64) -> usize {
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
        let ring = block_ring(2);
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = join_channel(&view, owner(p));
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..COUNTS[p] {
                        send_block(&mut tx, &view, &value(p, i));
                    }
                })
            })
            .collect();
        let mut next = [0u64; 2];
        for _ in 0..COUNTS.iter().sum::<u64>() {
            match recv_block::<u64>(&view, &mut rx, &mut state) {
                Ok(v) => {
                    accept(&mut next, v);
                }
                Err(e) => panic!("lossless receiver got {e:?}"),
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        assert_eq!(next, COUNTS);
        assert_eq!(
            poll::<u64>(&view, &mut rx, &mut state, false, &ALL_ALIVE),
            Err(TryRecvError::Empty),
            "a record too many"
        );
        let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
        assert_eq!(dead, 0, "a claim was skipped with nobody dead");
    });
}

/// `Overflow::Overwrite`: two producers send 2 and 1 records into a ring of 2 (so the
/// third claim laps the first: a slot is rewritten while the receiver may be copying
/// it, or while its first writer is still busy). The receiver makes 3 polls (each
/// after a `yield_now`) while they run, then reads what is left. Records are two
/// words, both the value, so a torn copy is visible. The receiver never returns a
/// torn, never-written or foreign record; each producer's records come in increasing
/// order (lag may skip some), never twice; records and lag add up to `head`.
#[test]
fn channel_overwrite_two_producers() {
    const COUNTS: [u64; 2] = [2, 1];
    loom::model(|| {
        let ring = Arc::new(HeapRing::with_producers::<[u64; 2]>(2, 1, 2, false, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = join_channel(&view, owner(p));
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    for i in 0..COUNTS[p] {
                        send_block(&mut tx, &view, &[value(p, i); 2]);
                    }
                })
            })
            .collect();
        let mut last: [Option<u64>; 2] = [None; 2];
        let mut check = |read: Result<[u64; 2], TryRecvError>| match read {
            Ok(r) => {
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
            Err(TryRecvError::Lagged(n)) => {
                assert!(n > 0, "Lagged(0)");
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(e) => panic!("receiver got {e:?}"),
        };
        for _ in 0..3 {
            // Yield first: the producers run while the receiver reads, without
            // spending the preemption bound on it.
            thread::yield_now();
            check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE));
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        while check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE)) {}
        // Records and lag account for every sequence number claimed (a void claim,
        // overwritten by a later lap, counts as lag).
        let head = view.ctl.head.load(Ordering::Relaxed);
        assert_eq!(
            rx.waiting_on(&view),
            head,
            "the receiver stopped short of head"
        );
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
/// for good) while producer 1 sends 2 records. The receiver calls `poll` with
/// `check_liveness` every time (each call is a liveness tick: it reaps dead producers
/// and skips the claim it waits on once that is due), under an oracle that calls
/// producer 0 dead. It must get both of producer 1's records, in order, exactly
/// once, never `Lagged`, even when the dead claim holds the gate closed for producer
/// 1's second record. (A patient receiver may also skip a claim of producer 1
/// preempted before `begin`; producer 1 re-sends it, which the exactly-once check
/// covers.)
fn dead_claim(death: Death) {
    loom::model(move || {
        let ring = block_ring(2);
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut doomed = join_channel(&view, owner(0));
        let mut live = join_channel(&view, owner(1));
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                // The gate may be closed already (producer 1 sent both): then it dies
                // holding nothing.
                if doomed.try_claim(&view) && death == Death::AfterBegin {
                    let begun = doomed.begin(&view, &ALL_ALIVE, false);
                    // Void: a patient receiver skipped the never-started claim first.
                    assert!(
                        matches!(begun, Begin::Ours | Begin::Void),
                        "begin said {begun:?}"
                    );
                }
                // Dies here: never writes, commits or leaves.
            })
        };
        let sender = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for i in 0..2 {
                    send_block(&mut live, &view, &value(1, i));
                }
            })
        };
        let oracle = Dead(owner(0));
        let mut next = [0u64; 2];
        while next[1] < 2 {
            match poll::<u64>(&view, &mut rx, &mut state, true, &oracle) {
                Ok(v) => {
                    assert_eq!(accept(&mut next, v), 1, "a record of the dead producer");
                }
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("lossless receiver got {e:?}"),
            }
        }
        dying.join().expect("dying producer");
        sender.join().expect("producer 1");
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

/// Both producers alive, one record each. The receiver polls, and whenever it finds
/// nothing it first checks that an impatient `resolve_stall` (one tick) never skips
/// anything while every producer is alive (in particular never the `busy` claim of a
/// live producer, whose intent it must see through the claim CAS), then, if
/// `patience` allows, loses patience once (`patient = true`) and may skip a claim
/// whose producer was merely preempted before `begin`. That producer finds its claim
/// void and `send` claims again: every record still arrives exactly once, per
/// producer in order, and each producer's `records` counter counts only the
/// publication that counted.
fn preempted_claim(lossless: bool, patience: u32) {
    loom::model(move || {
        let ring = Arc::new(HeapRing::with_producers::<u64>(2, 1, 2, lossless, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let mut tx = join_channel(&view, owner(p));
                let ring = Arc::clone(&ring);
                thread::spawn(move || send_block(&mut tx, &ring.view(), &value(p, 0)))
            })
            .collect();
        let mut next = [0u64; 2];
        let mut patience = patience;
        let mut skipped = 0;
        while next != [1, 1] {
            match poll::<u64>(&view, &mut rx, &mut state, false, &ALL_ALIVE) {
                Ok(v) => {
                    accept(&mut next, v);
                }
                Err(TryRecvError::Empty) => {
                    let seq = rx.waiting_on(&view);
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
                Err(e) => panic!("lossless receiver got {e:?}"),
            }
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        assert_eq!(
            poll::<u64>(&view, &mut rx, &mut state, false, &ALL_ALIVE),
            Err(TryRecvError::Empty),
            "a record too many"
        );
        let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
        assert_eq!(dead, skipped, "dead_claims counts the skips");
        for entry in view.producers.iter() {
            assert_eq!(entry.records.load(Ordering::Relaxed), 1, "records counter");
            assert_eq!(entry.claim.load(Ordering::Relaxed), 0, "claim left behind");
        }
    });
}

/// `Overflow::Block`, with one patient skip.
#[test]
fn channel_preempted_claim_is_resent() {
    preempted_claim(true, 1);
}

/// `Overflow::Overwrite`, no patient skip. Lossless claims are followed by the fence
/// F_c, which (a `SeqCst` fence under loom) also publishes the intent to a receiver
/// that reads the busy stamp; an Overwrite claim has no such fence, so here only the
/// claim CAS's `Release` makes the intent visible (the `mp_claim` weakening).
#[test]
fn channel_overwrite_live_claim_not_skipped() {
    preempted_claim(false, 0);
}

/// `Overflow::Block`, capacity 2, three producers: each sends one record while no
/// receiver exists, so each one's cached gate admits everything. Then a receiver
/// joins while one thread claims one more sequence number for each producer in turn
/// and then writes the three records (as three processes preempted after their claims
/// would). The
/// receiver reads from its start up to the final head with `recv`: it never gets
/// `Lagged`, and gets every record from its start on exactly once, in order.
///
/// What this checks is the claim-time join check (`multi.rs`, "Claiming": F_c
/// after the claim CAS, then `joins`): a `Route` producer may let one record pass
/// unchecked after a join, but here three producers with stale gates could each let
/// one pass, and with three records through a ring of 2 one of them would overwrite
/// a record the joiner has not read.
#[test]
fn channel_join_more_producers_than_capacity() {
    const PRODUCERS: usize = 3;
    const TOTAL: u64 = 2 * PRODUCERS as u64;
    /// Record `seq` is the `seq / 3`-th record of producer `seq % 3`.
    fn at(seq: u64) -> u64 {
        value((seq % PRODUCERS as u64) as usize, seq / PRODUCERS as u64)
    }
    loom::model(|| {
        let ring = block_ring(PRODUCERS);
        let view = ring.view();
        let mut txs: Vec<_> = (0..PRODUCERS)
            .map(|p| join_channel(&view, owner(p)))
            .collect();
        for (p, tx) in txs.iter_mut().enumerate() {
            send_block(tx, &view, &value(p, 0));
        }
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                let (mut rx, mut state) = join_reader(&view, 100);
                let start = rx.waiting_on(&view);
                assert!((PRODUCERS as u64..=TOTAL).contains(&start), "start {start}");
                for seq in start..TOTAL {
                    match recv_block::<u64>(&view, &mut rx, &mut state) {
                        Ok(v) => assert_eq!(v, at(seq), "lost, duplicated or reordered"),
                        Err(e) => panic!("lossless receiver got {e:?} waiting for {seq}"),
                    }
                }
            })
        };
        // The three claims first, then the three writes: each claim stays pending in
        // its producer and `send` takes it. (Sent one after the other instead, each
        // send's commit fence F_p would order the next claim after the join anyway.)
        for tx in txs.iter_mut() {
            assert!(tx.try_claim(&view), "the cached gate admits every claim");
        }
        for (p, tx) in txs.iter_mut().enumerate() {
            send_block(tx, &view, &value(p, 1));
        }
        receiver.join().expect("receiver");
    });
}

/// `Overflow::Overwrite`, capacity 2: producer A claims sequence 0 and makes its slot
/// its own (`try_claim`, `begin` == `Ours`), then (in its own thread) yields, writes
/// and commits. Meanwhile producer B sends two records; its second, sequence 2, laps
/// onto A's slot. While A still holds the slot, B's `begin` says `Busy` and `send`
/// sleeps on `data` until A's commit wakes it: a lost wake-up is a deadlock, and B
/// must never write the slot while A does. The receiver, polling meanwhile and after,
/// never gets a torn or foreign record; at the end the slot holds B's record 2.
#[test]
fn channel_busy_lap_older_writer() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::with_producers::<[u64; 2]>(2, 1, 2, false, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut a = join_channel(&view, owner(0));
        let mut b = join_channel(&view, owner(1));
        assert!(a.try_claim(&view), "Overwrite always claims");
        assert_eq!(a.begin(&view, &ALL_ALIVE, false), Begin::Ours);
        let older = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                thread::yield_now();
                a.write(&view, &[value(0, 0); 2]);
                assert!(
                    a.commit(&view, false),
                    "nobody voids an Overwrite claim here"
                );
            })
        };
        let newer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for i in 0..2 {
                    send_block(&mut b, &view, &[value(1, i); 2]);
                }
            })
        };
        let check = |read: Result<[u64; 2], TryRecvError>| match read {
            Ok(r) => {
                assert_eq!(r[0], r[1], "torn record {r:x?}");
                decode(r[0]);
                true
            }
            Err(TryRecvError::Lagged(_)) => true,
            Err(TryRecvError::Empty) => false,
            Err(e) => panic!("receiver got {e:?}"),
        };
        for _ in 0..2 {
            thread::yield_now();
            check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE));
        }
        older.join().expect("producer A");
        newer.join().expect("producer B");
        while check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE)) {}
        assert_eq!(view.ctl.head.load(Ordering::Relaxed), 3);
        let slot0 = view.slots[view.geom.stamp_index(2)].load(Ordering::Relaxed);
        assert_eq!(slot0, stamp_done(2), "record 2 published over A's slot");
    });
}

/// `Overflow::Block`: producer A claims a sequence number and dies before `begin`;
/// producer B sends one record and leaves. The receiver polls with `check_liveness`
/// (an oracle calling A dead), yielding in between: it gets B's record, and only then
/// `Disconnected`, never `Disconnected` first (with no producer left, the drain steps
/// over A's never-published claim instead of stopping at it).
#[test]
fn channel_disconnect_drains_after_a_dead_claim() {
    loom::model(|| {
        let ring = block_ring(2);
        let view = ring.view();
        let mut doomed = join_channel(&view, owner(0));
        let mut live = join_channel(&view, owner(1));
        let (mut rx, mut state) = join_reader(&view, 100);
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                // Claims and dies. (The gate may be closed: if the receiver skipped a
                // claim of B's that B had not begun, B re-sent under a new number, and
                // a stale cursor may hold A back; A then dies holding nothing.)
                doomed.try_claim(&ring.view());
            })
        };
        let sender = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                send_block(&mut live, &view, &value(1, 0));
                live.leave(&view);
            })
        };
        let oracle = Dead(owner(0));
        let mut got = Vec::new();
        loop {
            match poll::<u64>(&view, &mut rx, &mut state, true, &oracle) {
                Ok(v) => got.push(v),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
                Err(e) => panic!("lossless receiver got {e:?}"),
            }
        }
        assert_eq!(got, [value(1, 0)], "Disconnected before B's record");
        dying.join().expect("dying producer");
        sender.join().expect("producer B");
    });
}

/// `Overflow::Block`, two receivers: producer A claims sequence number 0 and dies
/// before `begin`; producer B sends one record (1) and leaves; both before the
/// receivers start. Both receivers then drain at once, polling with `check_liveness`
/// (an oracle calling A dead): each must get B's record, and only then
/// `Disconnected`. The race: one receiver finds slot 0 unwritten, the other skips it
/// first, and the first one's own skip then fails; it must read again, not conclude
/// that it is disconnected.
#[test]
fn channel_disconnect_drain_two_receivers() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::with_producers::<u64>(2, 2, 2, true, false));
        let view = ring.view();
        let mut doomed = join_channel(&view, owner(0));
        let mut live = join_channel(&view, owner(1));
        let receivers: Vec<_> = [100, 101].map(|o| join_reader(&view, o)).into();
        assert!(doomed.try_claim(&view), "A claims 0");
        send_block(&mut live, &view, &value(1, 0));
        live.leave(&view);
        let threads: Vec<_> = receivers
            .into_iter()
            .map(|(mut rx, mut state)| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let view = ring.view();
                    let oracle = Dead(owner(0));
                    let mut got = Vec::new();
                    loop {
                        match poll::<u64>(&view, &mut rx, &mut state, true, &oracle) {
                            Ok(v) => got.push(v),
                            Err(TryRecvError::Empty) => thread::yield_now(),
                            Err(TryRecvError::Disconnected) => return got,
                            Err(e) => panic!("lossless receiver got {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            let got = t.join().expect("receiver");
            assert_eq!(got, [value(1, 0)], "Disconnected before B's record");
        }
    });
}

/// A liveness oracle that calls everyone dead the first time it is asked, then tells
/// the truth (everyone alive). Used by one thread only.
struct LiesOnce {
    lied: Cell<bool>,
}

impl Liveness for LiesOnce {
    fn is_alive(&self, _owner: u64) -> bool {
        self.lied.replace(true)
    }
}

/// `Overflow::Block`, capacity 2: a live producer sends 2 records. The receiver polls,
/// and whenever it finds nothing it runs the tick's stall check, `resolve_stall`
/// without patience, against an oracle that lies once: the first time it is asked,
/// it calls the producer dead. The only question `resolve_stall` asks without
/// patience is about the writer of a `busy` slot, so the lie, if it is asked at all,
/// makes the receiver skip (settle) the live producer's claim in the middle of its
/// write. The producer's commit CAS then fails, `send` finds the claim void and sends
/// the record again under a new sequence number.
///
/// What a lie can break: it costs a re-send and leaves a hole in the sequence (a
/// `dead_claims` count), and (not modelled here: `poll`'s reaping step, a different
/// question) a lie to `reap_dead_producers` takes a live producer's entry, whose next
/// send then fails with `Evicted`, a visible error. What it cannot break, checked
/// here: the receiver gets every record exactly once and in order, never `Lagged`, and
/// never a record published from a voided claim.
#[test]
fn a_liveness_verdict_that_lies_once() {
    loom::model(|| {
        let ring = block_ring(1);
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = join_channel(&view, owner(0));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for i in 0..2 {
                    send_block(&mut tx, &view, &value(0, i));
                }
            })
        };
        let liar = LiesOnce {
            lied: Cell::new(false),
        };
        let mut next = [0u64; 1];
        while next[0] < 2 {
            match poll::<u64>(&view, &mut rx, &mut state, false, &ALL_ALIVE) {
                Ok(v) => {
                    accept(&mut next, v);
                }
                Err(TryRecvError::Empty) => {
                    resolve_stall(&view, rx.waiting_on(&view), &liar, false);
                    thread::yield_now();
                }
                Err(e) => panic!("lossless receiver got {e:?}"),
            }
        }
        producer.join().expect("producer");
        assert_eq!(
            poll::<u64>(&view, &mut rx, &mut state, false, &ALL_ALIVE),
            Err(TryRecvError::Empty),
            "a record too many"
        );
        let dead = view.ctl.membership.dead_claims.load(Ordering::Relaxed);
        assert!(dead <= 1, "{dead} claims skipped on one lie");
        assert_eq!(view.producers[0].records.load(Ordering::Relaxed), 2);
    });
}

/// Polls (with the liveness tick every time, under `oracle`) until `Disconnected`,
/// yielding on `Empty`; returns what it received.
fn drain_to_disconnect(
    view: &RingView<'_>,
    rx: &mut Reader,
    state: &mut RecvState,
    oracle: &impl Liveness,
) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match poll::<u64>(view, rx, state, true, oracle) {
            Ok(v) => got.push(v),
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(TryRecvError::Disconnected) => return got,
            Err(e) => panic!("lossless receiver got {e:?}"),
        }
    }
}

/// After a producer died inside `join` or `leave`: a new producer (owner 2) joins,
/// sends one record and stays. The receiver gets it, then `Empty` (never
/// `Disconnected` while that producer is attached), and `Disconnected` once it left.
/// Sequential: whatever the dead producer left in the table must not fool it.
fn next_producer_is_delivered(view: &RingView<'_>, rx: &mut Reader, state: &mut RecvState) {
    let oracle = Dead(owner(0));
    let mut next = join_channel(view, owner(2));
    send_block(&mut next, view, &value(2, 0));
    assert_eq!(
        poll::<u64>(view, rx, state, true, &oracle),
        Ok(value(2, 0)),
        "the next producer's record"
    );
    for _ in 0..2 {
        assert_eq!(
            poll::<u64>(view, rx, state, true, &oracle),
            Err(TryRecvError::Empty),
            "Disconnected on a live channel"
        );
    }
    next.leave(view);
    assert_eq!(
        poll::<u64>(view, rx, state, true, &oracle),
        Err(TryRecvError::Disconnected),
        "the next producer left"
    );
}

/// `Overflow::Block`: producer 0 dies inside `join` at `step` (`multi.rs`, `Step`),
/// leaving the producer table half updated, while producer 1 (attached) sends one
/// record and leaves. The receiver polls with the liveness tick (reaping producer 0
/// on the way): it gets producer 1's record, and only then `Disconnected`, never
/// before (producer 1 taken for gone) and never not at all (the receiver spins for
/// ever: loom reports the model too long). Then the next producer is delivered.
fn producer_dies_inside_join(step: Step) {
    loom::model(move || {
        let ring = block_ring(3);
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut live = join_channel(&view, owner(1));
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let joined = Shared::join_until(&ring.view(), owner(0), Some(step));
                assert!(joined.is_none(), "stopped at {step:?}");
            })
        };
        let sender = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                send_block(&mut live, &view, &value(1, 0));
                live.leave(&view);
            })
        };
        let got = drain_to_disconnect(&view, &mut rx, &mut state, &Dead(owner(0)));
        assert_eq!(
            got,
            [value(1, 0)],
            "Disconnected before producer 1's record"
        );
        dying.join().expect("dying producer");
        sender.join().expect("producer 1");
        next_producer_is_delivered(&view, &mut rx, &mut state);
    });
}

#[test]
fn channel_producer_dies_inside_join_after_raising_the_count() {
    producer_dies_inside_join(Step::JoinCounted);
}

#[test]
fn channel_producer_dies_inside_join_after_taking_its_entry() {
    producer_dies_inside_join(Step::JoinEntered);
}

/// `Overflow::Block`: producer 0 sends one record and dies inside `leave` at `step`,
/// leaving the producer table half updated. The receiver, polling with the liveness
/// tick, gets the record and then `Disconnected`: never before the record (seeing
/// the entry free, it sees everything the producer published: its `Release`), and
/// never not at all (spinning for ever on a count left high: loom reports the model
/// too long). Then the next producer is delivered.
///
/// The receiver runs in a thread of its own that has read nothing before its first
/// poll: loom lets a thread read a value it saw before its last yield only while
/// nothing newer exists, so a receiver that had read `head` in the main thread could
/// never read it stale, and the missing `Acquire` (`mp_present`) would go unseen.
fn producer_dies_inside_leave(step: Step) {
    loom::model(move || {
        let ring = block_ring(3);
        let view = ring.view();
        let (rx, state) = join_reader(&view, 100);
        let mut doomed = join_channel(&view, owner(0));
        let dying = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                send_block(&mut doomed, &view, &value(0, 0));
                doomed.leave_until(&view, Some(step));
            })
        };
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let (mut rx, mut state) = (rx, state);
                // Everyone alive: the dying producer gave its entry back, there is
                // nothing to reap, and a live producer is never judged dead.
                let got = drain_to_disconnect(&ring.view(), &mut rx, &mut state, &ALL_ALIVE);
                (got, rx, state)
            })
        };
        let (got, mut rx, mut state) = receiver.join().expect("receiver");
        assert_eq!(got, [value(0, 0)], "Disconnected before the record");
        dying.join().expect("dying producer");
        next_producer_is_delivered(&view, &mut rx, &mut state);
    });
}

#[test]
fn channel_producer_dies_inside_leave_after_giving_its_entry_back() {
    producer_dies_inside_leave(Step::LeaveFreed);
}
