//! Unit tests of the ring algorithms and loops on heap memory, one thread (the loom
//! models in `loom-tests/` explore the concurrent interleavings of the same code).

use std::time::{Duration, Instant};

use super::broadcast::{Batch, Consumer, Read};
use super::multi::{resolve_stall, Begin};
use super::observe::observe;
use super::producer::Producer;
use super::reader::Reader;
use super::recv::{poll, poll_many, RecvState};
use super::send::{send, send_many, try_send, try_send_many, SendFail};
use super::seqlock::write_record;
use super::single::Single;
use super::table::{claim_sender, live_receivers, reap_dead_producers, release_sender};
use super::unicast::Worker;
use super::{HeapRing, RingView};
use crate::error::TryRecvError;
use crate::layout::{stamp_done, stamp_settled, Stamp};
use crate::process::Liveness;
use crate::sync::Ordering;
use crate::wait::Wait;

/// A liveness oracle under which exactly owner `.0` is dead (`Dead(0)`: all alive).
struct Dead(u64);

impl Liveness for Dead {
    fn is_alive(&self, owner: u64) -> bool {
        owner != self.0
    }
}

const ALIVE: Dead = Dead(0);
const ROUTE_OWNER: u64 = 999;

fn route(view: &RingView<'_>) -> Producer {
    Producer::attach_route(view, ROUTE_OWNER, &ALIVE).expect("sender claim")
}

fn channel(view: &RingView<'_>, owner: u64) -> Producer {
    Producer::join_channel(view, owner, &ALIVE).expect("producer entry")
}

fn push<T: bytemuck::Pod>(p: &mut Producer, view: &RingView<'_>, value: T) {
    try_send(p, view, &value, &ALIVE, false).expect("room");
}

fn stamp(view: &RingView<'_>, seq: u64) -> Stamp {
    Stamp::decode(view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed))
}

#[test]
fn lapped_receiver_gets_the_exact_lag_then_the_oldest_records() {
    let ring = HeapRing::new::<[u64; 3]>(8, 4, false);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 7).expect("join");
    for i in 0..20u64 {
        push(&mut tx, &view, [i, !i, i * 3]);
    }
    assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Lagged(12));
    for i in 12..20u64 {
        assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Record([i, !i, i * 3]));
    }
    assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Empty);
    assert_eq!(view.receivers[0].lagged.load(Ordering::Relaxed), 12);
}

#[test]
fn lossless_producer_stops_at_the_slowest_receiver_and_evicts_the_dead() {
    let ring = HeapRing::new::<u64>(4, 4, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut slow = Consumer::join(&view, 1).expect("join");
    let mut fast = Consumer::join(&view, 2).expect("join");
    for i in 0..4u64 {
        push(&mut tx, &view, i);
        assert_eq!(fast.try_read::<u64>(&view), Read::Record(i));
    }
    assert_eq!(
        try_send(&mut tx, &view, &9u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    assert_eq!(slow.try_read::<u64>(&view), Read::Record(0));
    push(&mut tx, &view, 4u64);
    assert_eq!(
        try_send(&mut tx, &view, &9u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    // The slow receiver's process dies: evicted only when judged dead.
    assert_eq!(try_send(&mut tx, &view, &5u64, &Dead(1), true), Ok(()));
    assert!(slow.is_evicted(&view));
    assert!(!fast.is_evicted(&view));
    assert_eq!(live_receivers(&view, &ALIVE), 1);
}

#[test]
fn a_receiver_that_joins_late_starts_at_head_and_entries_are_reused() {
    let ring = HeapRing::new::<u64>(4, 2, true);
    let view = ring.view();
    let mut tx = route(&view);
    for i in 0..3u64 {
        push(&mut tx, &view, i);
    }
    let mut rx = Consumer::join(&view, 1).expect("join");
    assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
    push(&mut tx, &view, 3u64);
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(3));
    let _other = Consumer::join(&view, 2).expect("second entry");
    assert!(Consumer::join(&view, 3).is_none(), "table of 2 is full");
    rx.leave(&view);
    assert!(Consumer::join(&view, 3).is_some(), "a left entry is reused");
}

/// The previous producer died after stamping record `seq` done, before storing head.
fn die_after_done_stamp(view: &RingView<'_>, tx: &mut Producer, value: u64) -> u64 {
    let seq = tx.next_seq(view);
    assert_eq!(tx.begin(view, &ALIVE, false), Begin::Ours);
    write_record(view, seq, &value);
    view.slots[view.geom.stamp_index(seq)].store(stamp_done(seq), Ordering::Release);
    seq
}

#[test]
fn a_new_producer_continues_after_a_dead_ones_last_record() {
    let ring = HeapRing::new::<u64>(4, 2, false);
    let view = ring.view();
    let mut rx = Consumer::join(&view, 1).expect("join");
    let mut tx = route(&view);
    push(&mut tx, &view, 10u64);
    die_after_done_stamp(&view, &mut tx, 11);
    assert_eq!(view.ctl.head.load(Ordering::Relaxed), 1);
    assert_eq!(Single::attach(&view, 5).next_seq(), 2);
    let mut next = Producer::attach_route(&view, 5, &Dead(ROUTE_OWNER)).expect("take over");
    assert_eq!(next.next_seq(&view), 2);
    push(&mut next, &view, 12u64);
    for want in [10u64, 11, 12] {
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(want));
    }
    // Died in the middle of writing: the slot stays busy and is rewritten.
    assert_eq!(next.begin(&view, &ALIVE, false), Begin::Ours);
    assert_eq!(
        Single::attach(&view, 6).next_seq(),
        3,
        "a busy slot is rewritten"
    );
}

#[test]
fn a_unicast_route_taken_over_after_a_consumed_record_does_not_rewrite_it() {
    let ring = HeapRing::with_producers::<u64>(4, 2, 0, true, true);
    let view = ring.view();
    let mut w = Worker::join(&view, 1).expect("worker");
    let mut tx = route(&view);
    die_after_done_stamp(&view, &mut tx, 40);
    // A taker consumes record 0 (stamp settled) before anyone attaches.
    assert_eq!(w.try_take::<u64>(&view), Some(40));
    assert_eq!(stamp(&view, 0), Stamp::Settled(0));
    let mut next = Producer::attach_route(&view, 5, &Dead(ROUTE_OWNER)).expect("take over");
    assert_eq!(
        next.next_seq(&view),
        1,
        "record 0 was published and consumed"
    );
    push(&mut next, &view, 41u64);
    assert_eq!(w.try_take::<u64>(&view), Some(41));
    assert_eq!(
        stamp(&view, 0),
        Stamp::Settled(0),
        "the stamp never went back"
    );
}

#[test]
fn the_sender_claim_is_exclusive_and_taken_from_the_dead() {
    let ring = HeapRing::new::<u64>(4, 2, false);
    let view = ring.view();
    assert_eq!(claim_sender(&view, 5, &ALIVE), Ok(()));
    assert_eq!(claim_sender(&view, 6, &ALIVE), Err(5));
    assert_eq!(claim_sender(&view, 6, &Dead(5)), Ok(()));
    release_sender(&view, 5); // not the holder any more: no effect
    assert_eq!(view.ctl.membership.sender.load(Ordering::Relaxed), 6);
    release_sender(&view, 6);
    assert_eq!(view.ctl.membership.sender.load(Ordering::Relaxed), 0);
    assert_eq!(
        view.ctl.membership.sender_attaches.load(Ordering::Relaxed),
        2
    );
}

#[test]
fn threads_never_see_a_torn_record() {
    // A stress complement to the loom models: a fast producer laps a reader that
    // validates every record it returns.
    let ring = std::sync::Arc::new(HeapRing::new::<[u64; 8]>(4, 1, false));
    let r2 = std::sync::Arc::clone(&ring);
    let total = 200_000u64;
    let mut rx = Consumer::join(&ring.view(), 1).expect("join");
    let producer = std::thread::spawn(move || {
        let view = r2.view();
        let mut tx = route(&view);
        for i in 0..total {
            push(&mut tx, &view, [i; 8]);
        }
    });
    let view = ring.view();
    let (mut got, mut skipped, mut last) = (0u64, 0u64, None);
    while got + skipped < total {
        match rx.try_read::<[u64; 8]>(&view) {
            Read::Record(r) => {
                assert!(r.iter().all(|w| *w == r[0]), "torn record {r:?}");
                assert!(last.is_none_or(|l| r[0] > l), "out of order");
                last = Some(r[0]);
                got += 1;
            }
            Read::Lagged(n) => skipped += n,
            Read::Empty => std::hint::spin_loop(),
        }
    }
    producer.join().expect("producer");
    assert_eq!(got + skipped, total);
}

#[test]
fn an_observer_reads_validated_records_without_touching_the_table() {
    let ring = HeapRing::new::<[u64; 2]>(4, 2, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut cursor = 0u64;
    let mut buf = [0u8; 16];
    assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Empty);
    for i in 0..3u64 {
        push(&mut tx, &view, [i, !i]);
    }
    for i in 0..3u64 {
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
        assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [i, !i]);
    }
    assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Empty);
    // The observer holds no entry: a lossless producer is not gated by it.
    for i in 3..20u64 {
        push(&mut tx, &view, [i, !i]);
    }
    assert!(view
        .receivers
        .iter()
        .all(|e| e.owner.load(Ordering::Relaxed) == 0));
    // Lapped: skips to the oldest record still present (20 - 4 = 16).
    assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Lagged(13));
    assert_eq!(cursor, 16);
    assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
    assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [16, !16]);
}

#[test]
fn a_dead_claim_is_skipped_and_the_others_flow() {
    let ring = HeapRing::with_producers::<u64>(8, 2, 4, true, false);
    let view = ring.view();
    let mut rx = Consumer::join(&view, 100).expect("receiver");
    let mut a = channel(&view, 1);
    let mut b = channel(&view, 2);
    push(&mut a, &view, 10u64);
    // b claims 1, marks it busy, and dies before publishing.
    assert!(b.try_claim(&view));
    assert_eq!(b.begin(&view, &ALIVE, false), Begin::Ours);
    push(&mut a, &view, 11u64);
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(10));
    assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
    // While b lives, its claim is waited for; once dead, skipped.
    assert!(!resolve_stall(&view, 1, &ALIVE, true));
    assert!(resolve_stall(&view, 1, &Dead(2), false));
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(11));
    assert_eq!(view.ctl.membership.dead_claims.load(Ordering::Relaxed), 1);
    assert_eq!(reap_dead_producers(&view, &Dead(2)), 1);
    assert_eq!(view.ctl.membership.producers.load(Ordering::Relaxed), 1);
}

#[test]
fn a_claim_skipped_while_its_producer_was_preempted_is_sent_again() {
    let ring = HeapRing::with_producers::<u64>(8, 2, 4, false, false);
    let view = ring.view();
    let mut rx = Consumer::join(&view, 100).expect("receiver");
    let mut a = channel(&view, 1);
    assert!(a.try_claim(&view));
    // Receivers lose patience before `a` marks the slot busy.
    assert!(resolve_stall(&view, 0, &ALIVE, true));
    // The send loop finds the claim void and claims again.
    push(&mut a, &view, 7u64);
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(7));
    assert_eq!(rx.cursor(), 2);
}

#[test]
fn a_dead_writer_a_lap_behind_is_taken_over() {
    let ring = HeapRing::with_producers::<u64>(2, 1, 4, false, false);
    let view = ring.view();
    let mut a = channel(&view, 1);
    let mut b = channel(&view, 2);
    assert!(a.try_claim(&view));
    assert_eq!(a.begin(&view, &ALIVE, false), Begin::Ours); // a dies writing 0
    push(&mut b, &view, 1u64);
    // b's next claim (2) shares slot 0 with a's busy claim: while a lives, b waits
    // (and a full try_send says so); once a is judged dead, b takes the slot over.
    assert_eq!(
        try_send(&mut b, &view, &2u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    assert_eq!(try_send(&mut b, &view, &2u64, &Dead(1), true), Ok(()));
    assert_eq!(stamp(&view, 2), Stamp::Done(2));
}

#[test]
fn a_send_waiting_for_a_live_lap_older_writer_honours_its_deadline() {
    // Overwrite, capacity 2: `a` holds slot 0 busy (a slow writer, alive).
    let ring = HeapRing::with_producers::<u64>(2, 1, 4, false, false);
    let view = ring.view();
    let mut rx = Consumer::join(&view, 100).expect("receiver");
    let mut a = channel(&view, 1);
    let mut b = channel(&view, 2);
    assert!(a.try_claim(&view));
    assert_eq!(a.begin(&view, &ALIVE, false), Begin::Ours);
    push(&mut b, &view, 1u64);
    let deadline = Instant::now() + Duration::from_millis(30);
    let sent = send(&mut b, &view, &2u64, Wait::Block, Some(deadline), &ALIVE);
    assert_eq!(sent, Err(SendFail::Full), "a timeout, not a hang");
    assert!(Instant::now() >= deadline);
    // `a` finishes; b's pending claim (2) goes to b's next record.
    a.write(&view, &0u64);
    assert!(a.commit(&view));
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(0));
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(1));
    push(&mut b, &view, 3u64);
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(3));
    assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
}

#[test]
fn channel_claims_after_a_join_are_gated_even_with_more_producers_than_slots() {
    // Lossless broadcast, capacity 2, three producers whose cached gates admit
    // everything (they last looked when nobody was attached).
    let ring = HeapRing::with_producers::<u64>(2, 2, 3, true, false);
    let view = ring.view();
    let mut ps: Vec<Producer> = (1..=3).map(|o| channel(&view, o)).collect();
    for (i, p) in ps.iter_mut().enumerate() {
        push(p, &view, i as u64);
    }
    let mut rx = Consumer::join(&view, 100).expect("receiver");
    assert_eq!(rx.cursor(), 3);
    // Each producer sends once more: the third claim (5) would overwrite record 3
    // before the receiver read it, so it must wait (the claim stays pending).
    push(&mut ps[0], &view, 3u64);
    push(&mut ps[1], &view, 4u64);
    assert_eq!(
        try_send(&mut ps[2], &view, &5u64, &ALIVE, false),
        Err(SendFail::Full)
    );
    // A patient receiver does not skip the gated claim either.
    assert!(!resolve_stall(&view, 5, &ALIVE, true));
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(3));
    push(&mut ps[2], &view, 5u64);
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(4));
    assert_eq!(rx.try_read::<u64>(&view), Read::Record(5));
    assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
}

#[test]
fn a_gated_claim_held_back_by_a_dead_receiver_is_freed_by_try_send() {
    let ring = HeapRing::with_producers::<u64>(2, 2, 3, true, false);
    let view = ring.view();
    let mut ps: Vec<Producer> = (1..=3).map(|o| channel(&view, o)).collect();
    for (i, p) in ps.iter_mut().enumerate() {
        push(p, &view, i as u64);
    }
    let _rx = Consumer::join(&view, 100).expect("receiver");
    push(&mut ps[0], &view, 3u64);
    push(&mut ps[1], &view, 4u64);
    // The claim of 5 is gated by the receiver, which then dies without reading.
    assert_eq!(
        try_send(&mut ps[2], &view, &5u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    assert_eq!(try_send(&mut ps[2], &view, &5u64, &Dead(100), true), Ok(()));
    assert_eq!(
        live_receivers(&view, &ALIVE),
        0,
        "the dead receiver was evicted"
    );
}

#[test]
fn a_dead_claim_does_not_disconnect_early_when_the_others_have_left() {
    let ring = HeapRing::with_producers::<u64>(4, 2, 2, true, false);
    let view = ring.view();
    let mut state = RecvState::before_join(&view);
    let mut reader = Reader::join(&view, 100, &ALIVE).expect("receiver");
    let mut a = channel(&view, 1);
    let mut b = channel(&view, 2);
    // a claims 0 and is killed before its first stamp store; b sends two and leaves.
    assert!(a.try_claim(&view));
    push(&mut b, &view, 1u64);
    push(&mut b, &view, 2u64);
    b.leave(&view);
    let dead = Dead(1);
    let mut got = Vec::new();
    for _ in 0..4 {
        match poll::<u64>(&view, &mut reader, &mut state, true, &dead) {
            Ok(v) => got.push(v),
            Err(TryRecvError::Empty) => {}
            Err(e) => {
                assert_eq!(e, TryRecvError::Disconnected);
                break;
            }
        }
    }
    assert_eq!(got, [1, 2], "every record published before Disconnected");
    assert_eq!(
        poll::<u64>(&view, &mut reader, &mut state, true, &dead),
        Err(TryRecvError::Disconnected)
    );
}

#[test]
fn unicast_each_record_goes_to_one_receiver_and_the_producer_waits_for_consumption() {
    let ring = HeapRing::with_producers::<u64>(4, 2, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut a = Worker::join(&view, 1).expect("a");
    let mut b = Worker::join(&view, 2).expect("b");
    for i in 0..4u64 {
        push(&mut tx, &view, i);
    }
    assert_eq!(
        try_send(&mut tx, &view, &9u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    assert_eq!(a.try_take::<u64>(&view), Some(0));
    assert_eq!(b.try_take::<u64>(&view), Some(1));
    push(&mut tx, &view, 4u64);
    let rest: Vec<u64> = std::iter::from_fn(|| a.try_take::<u64>(&view)).collect();
    assert_eq!(rest, [2, 3, 4]);
    assert_eq!(b.try_take::<u64>(&view), None);
}

#[test]
fn a_unicast_record_taken_by_a_receiver_that_died_is_rescued_once() {
    let ring = HeapRing::with_producers::<u64>(4, 3, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    push(&mut tx, &view, 41u64);
    push(&mut tx, &view, 42u64);
    // Receiver 1 claims record 0 (C1, C2) and dies before settling it.
    let entry = &view.receivers[0];
    let _dead = Worker::join(&view, 1).expect("dead");
    entry.claim.store(1, Ordering::Relaxed);
    assert!(view
        .ctl
        .read
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok());
    let mut b = Worker::join(&view, 2).expect("b");
    let mut c = Worker::join(&view, 3).expect("c");
    assert_eq!(b.try_take::<u64>(&view), Some(42));
    // Not while its taker is alive...
    assert_eq!(b.rescue::<u64>(&view, &ALIVE), None);
    // ...but once it is dead, exactly one rescuer delivers it.
    assert_eq!(b.rescue::<u64>(&view, &Dead(1)), Some(41));
    assert_eq!(c.rescue::<u64>(&view, &Dead(1)), None);
    assert_eq!(view.ctl.membership.rescued.load(Ordering::Relaxed), 1);
    assert!(
        super::gate::slot_free(&view, 4),
        "the rescued slot is free again"
    );
}

#[test]
fn skipped_unicast_claims_are_stepped_over() {
    let ring = HeapRing::with_producers::<u64>(4, 1, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    push(&mut tx, &view, 1u64);
    view.slots[view.geom.stamp_index(0)].store(stamp_settled(0), Ordering::Relaxed);
    push(&mut tx, &view, 2u64);
    let mut a = Worker::join(&view, 1).expect("a");
    assert_eq!(a.try_take::<u64>(&view), Some(2));
    assert_eq!(Worker::read_cursor(&view), 2);
}

// Batches.

#[test]
fn a_batch_read_steps_over_settled_stamps_and_publishes_the_cursor_once_at_the_end() {
    let ring = HeapRing::with_producers::<u64>(8, 2, 4, false, false);
    let view = ring.view();
    let mut rx = Consumer::join(&view, 100).expect("receiver");
    let mut a = channel(&view, 1);
    let mut b = channel(&view, 2);
    push(&mut a, &view, 10u64);
    // b claims 1 and dies before marking it busy; the claim is skipped (settled).
    assert!(b.try_claim(&view));
    push(&mut a, &view, 11u64);
    push(&mut a, &view, 12u64);
    assert!(resolve_stall(&view, 1, &Dead(2), true));
    assert_eq!(stamp(&view, 1), Stamp::Settled(1));
    let mut out = [0u64; 8];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(3));
    assert_eq!(out[..3], [10, 11, 12]);
    assert_eq!(rx.cursor(), 4);
    assert_eq!(view.receivers[0].cursor.load(Ordering::Relaxed), 4);
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Empty);
    assert_eq!(rx.try_read_many(&view, &mut out[..0]), Batch::Empty);
}

#[test]
fn a_lap_in_the_middle_of_a_batch_returns_the_records_before_it_then_the_exact_lag() {
    let ring = HeapRing::new::<[u64; 3]>(8, 4, false);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 7).expect("join");
    for i in 0..8u64 {
        push(&mut tx, &view, [i, !i, i * 3]);
    }
    // A writer a lap ahead has stamped the slot of record 2 (as record 10 would).
    view.slots[view.geom.stamp_index(2)].store(stamp_done(10), Ordering::Relaxed);
    let mut out = [[0u64; 3]; 8];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(2));
    assert_eq!(out[..2], [[0, !0, 0], [1, !1, 3]]);
    assert_eq!(rx.cursor(), 2);
    // Nothing is skipped silently: the next batch reports the lap, then goes on.
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Lagged(1));
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(5));
    assert_eq!(out[0], [3, !3, 9]);
    assert_eq!(view.receivers[0].lagged.load(Ordering::Relaxed), 1);
    // Records plus lag add up to the cursor's progress.
    assert_eq!(2 + 1 + 5, rx.cursor());
    // Lapped on the first record: reported at once, like `try_read`.
    for i in 8..30u64 {
        push(&mut tx, &view, [i, !i, i * 3]);
    }
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Lagged(14));
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(8));
    assert_eq!(out[7], [29, !29, 87]);
    assert_eq!(view.receivers[0].lagged.load(Ordering::Relaxed), 15);
}

#[test]
fn a_lossless_producer_is_unblocked_by_a_batch_read() {
    let ring = HeapRing::new::<u64>(4, 4, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 1).expect("join");
    assert_eq!(
        try_send_many(&mut tx, &view, &[0u64, 1, 2, 3, 4], &ALIVE, false),
        Ok(4)
    );
    assert_eq!(
        try_send(&mut tx, &view, &4u64, &ALIVE, true),
        Err(SendFail::Full)
    );
    let mut out = [0u64; 3];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(3));
    assert_eq!(out, [0, 1, 2]);
    assert_eq!(
        try_send_many(&mut tx, &view, &[4u64, 5, 6, 7], &ALIVE, false),
        Ok(3)
    );
    assert_eq!(rx.try_read_many(&view, &mut [0u64; 8]), Batch::Records(4));
}

#[test]
fn a_route_sends_more_records_than_the_capacity_in_chunks() {
    // Overwrite: never waits; the receiver lags by exactly the surplus.
    let ring = HeapRing::new::<u64>(4, 4, false);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 1).expect("join");
    let records: Vec<u64> = (0..10).collect();
    assert_eq!(
        try_send_many(&mut tx, &view, &records, &ALIVE, false),
        Ok(10)
    );
    assert_eq!(view.ctl.head.load(Ordering::Relaxed), 10);
    let mut out = [0u64; 16];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Lagged(6));
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(4));
    assert_eq!(out[..4], [6, 7, 8, 9]);

    // Lossless: the send loop waits for room chunk after chunk (a deadline only
    // because nobody reads here: it must stop at the capacity).
    let ring = HeapRing::new::<u64>(4, 4, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 1).expect("join");
    let deadline = Some(Instant::now() + Duration::from_millis(20));
    assert_eq!(
        send_many(&mut tx, &view, &records, Wait::Spin, deadline, &ALIVE),
        Err((4, SendFail::Full))
    );
    let mut got = Vec::new();
    let mut sent = 4;
    while got.len() < records.len() {
        match rx.try_read_many(&view, &mut out[..3]) {
            Batch::Records(n) => got.extend_from_slice(&out[..n]),
            other => panic!("lossless batch read got {other:?}"),
        }
        sent += try_send_many(&mut tx, &view, &records[sent..], &ALIVE, false).expect("role");
    }
    assert_eq!(got, records);
}

#[test]
fn a_route_taken_over_after_a_producer_died_inside_a_chunk_continues_after_it() {
    let ring = HeapRing::new::<u64>(8, 4, false);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 1).expect("join");
    assert_eq!(
        try_send_many(&mut tx, &view, &[0u64, 1], &ALIVE, false),
        Ok(2)
    );
    assert_eq!(
        try_send_many(&mut tx, &view, &[2u64, 3, 4], &ALIVE, false),
        Ok(3)
    );
    // As if the producer died after the chunk's stamps but before its `head` store.
    view.ctl.head.store(2, Ordering::Relaxed);
    release_sender(&view, ROUTE_OWNER);
    let mut next = route(&view);
    assert_eq!(next.next_seq(&view), 5);
    push(&mut next, &view, 5u64);
    let mut out = [0u64; 8];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(6));
    assert_eq!(out[..6], [0, 1, 2, 3, 4, 5]);
}

#[test]
fn unicast_batches_take_each_record_once() {
    let ring = HeapRing::with_producers::<u64>(4, 2, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut a = Reader::join(&view, 1, &ALIVE).expect("a");
    let mut b = Reader::join(&view, 2, &ALIVE).expect("b");
    let mut sa = RecvState::before_join(&view);
    let mut sb = RecvState::before_join(&view);
    let records: Vec<u64> = (0..9).collect();
    assert_eq!(
        try_send_many(&mut tx, &view, &records, &ALIVE, false),
        Ok(4)
    );
    let mut got = Vec::new();
    let mut out = [0u64; 3];
    assert_eq!(
        poll_many(&view, &mut a, &mut sa, false, &ALIVE, &mut out),
        Ok(3)
    );
    got.extend_from_slice(&out);
    assert_eq!(
        poll_many(&view, &mut b, &mut sb, false, &ALIVE, &mut out),
        Ok(1)
    );
    got.extend_from_slice(&out[..1]);
    assert_eq!(
        poll_many(&view, &mut b, &mut sb, false, &ALIVE, &mut out),
        Err(TryRecvError::Empty)
    );
    assert_eq!(
        poll_many(&view, &mut b, &mut sb, false, &ALIVE, &mut out[..0]),
        Ok(0)
    );
    assert_eq!(
        try_send_many(&mut tx, &view, &records[4..], &ALIVE, false),
        Ok(4)
    );
    assert_eq!(
        poll_many(&view, &mut b, &mut sb, false, &ALIVE, &mut out),
        Ok(3)
    );
    got.extend_from_slice(&out);
    assert_eq!(
        try_send_many(&mut tx, &view, &records[8..], &ALIVE, false),
        Ok(1)
    );
    assert_eq!(
        poll_many(&view, &mut a, &mut sa, false, &ALIVE, &mut out),
        Ok(2)
    );
    got.extend_from_slice(&out[..2]);
    assert_eq!(got, records);
    // The sender leaves: drained, then disconnected.
    tx.leave(&view);
    assert_eq!(
        poll_many(&view, &mut a, &mut sa, false, &ALIVE, &mut out),
        Err(TryRecvError::Disconnected)
    );
}
