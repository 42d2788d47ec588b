//! Gap markers (`RawSender::publish_gap`): every receiver kind reports one as a lag,
//! exactly once, and continues with the next record.

use super::*;
use crate::ring::record::GapMarker;
use crate::ring::unicast::Take;

fn gap(p: &mut Producer, view: &RingView<'_>, missing: u64) {
    try_send(p, view, &GapMarker::new(missing), &ALIVE, false).expect("room");
}

#[test]
fn a_broadcast_receiver_reports_a_gap_once_in_both_overflows() {
    for lossless in [false, true] {
        let ring = HeapRing::new::<u64>(8, 2, lossless);
        let view = ring.view();
        let mut tx = route(&view);
        let mut rx = Consumer::join(&view, 1).expect("receiver");
        push(&mut tx, &view, 10u64);
        gap(&mut tx, &view, 1_000);
        push(&mut tx, &view, 11u64);
        assert_eq!(stamp(&view, 1), Stamp::Gap(1));
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(10));
        assert_eq!(rx.try_read::<u64>(&view), Read::Lagged(1_000));
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(11));
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
        assert_eq!(
            view.receivers[0].lagged.load(Ordering::Relaxed),
            1_000,
            "counted like a lag"
        );
        // The observer sees it the same way.
        let (mut cursor, mut buf) = (0, [0u8; 8]);
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Lagged(1_000));
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
    }
}

#[test]
fn a_batch_ends_before_a_gap_and_the_next_batch_reports_it() {
    let ring = HeapRing::new::<u64>(8, 1, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut rx = Consumer::join(&view, 1).expect("receiver");
    push(&mut tx, &view, 1u64);
    push(&mut tx, &view, 2u64);
    gap(&mut tx, &view, 3);
    push(&mut tx, &view, 6u64);
    let mut out = [0u64; 8];
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(2));
    assert_eq!(out[..2], [1, 2]);
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Lagged(3));
    assert_eq!(rx.try_read_many(&view, &mut out), Batch::Records(1));
    assert_eq!(out[0], 6);
    // The gap's slot is free for the producer once read past.
    assert_eq!(rx.cursor(), 4);
}

#[test]
fn a_unicast_gap_goes_to_exactly_one_receiver_and_frees_its_slot() {
    let ring = HeapRing::with_producers::<u64>(2, 2, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    let mut a = Worker::join(&view, 1).expect("a");
    let mut b = Worker::join(&view, 2).expect("b");
    gap(&mut tx, &view, 7);
    push(&mut tx, &view, 5u64);
    // Full (capacity 2) until the gap is taken.
    assert_eq!(
        try_send(&mut tx, &view, &6u64, &ALIVE, false),
        Err(SendFail::Full)
    );
    let mut value = 0u64;
    // The fast path leaves a gap to the full read.
    assert_eq!(a.try_take_into(&view, &mut value, false), Take::Nothing);
    assert_eq!(a.try_take_into(&view, &mut value, true), Take::Gap(7));
    assert_eq!(stamp(&view, 0), Stamp::Settled(0));
    assert_eq!(b.try_take_into(&view, &mut value, true), Take::Record);
    assert_eq!(value, 5);
    assert_eq!(a.try_take_into(&view, &mut value, true), Take::Nothing);
    push(&mut tx, &view, 6u64);
    assert_eq!(view.receivers[0].lagged.load(Ordering::Relaxed), 7);
}

#[test]
fn a_unicast_gap_taken_by_a_receiver_that_died_is_rescued_as_a_lag() {
    let ring = HeapRing::with_producers::<u64>(4, 3, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    gap(&mut tx, &view, 9);
    // Receiver 1 claims the gap (C1, C2) and dies before settling it.
    let _dead = Worker::join(&view, 1).expect("dead");
    view.receivers[0].claim.store(1, Ordering::Relaxed);
    assert!(view
        .ctl
        .read
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok());
    let reader = Worker::join(&view, 2).expect("b");
    let mut reader = Reader::Unicast(reader);
    let mut value = 0u64;
    assert_eq!(reader.rescue_into(&view, &ALIVE, &mut value), None);
    assert_eq!(
        reader.rescue_into(&view, &Dead(1), &mut value),
        Some(Err(TryRecvError::Lagged(9)))
    );
    assert_eq!(stamp(&view, 0), Stamp::Settled(0));
}

#[test]
fn the_receive_loop_reports_a_gap_in_every_mode_and_batch_reads_stop_before_it() {
    for (lossless, unicast) in [(false, false), (true, false), (true, true)] {
        let ring = HeapRing::with_producers::<u64>(8, 1, 2, lossless, unicast);
        let view = ring.view();
        let mut tx = channel(&view, 1);
        let (mut state, mut reader) = (
            RecvState::before_join(&view),
            Reader::join(&view, 7, &ALIVE).expect("reader"),
        );
        push(&mut tx, &view, 1u64);
        gap(&mut tx, &view, 4);
        push(&mut tx, &view, 2u64);
        let mut out = [0u64; 4];
        let mode = (lossless, unicast);
        assert_eq!(
            poll_many(&view, &mut reader, &mut state, false, &ALIVE, &mut out),
            Ok(1),
            "{mode:?}"
        );
        assert_eq!(
            poll::<u64>(&view, &mut reader, &mut state, false, &ALIVE),
            Err(TryRecvError::Lagged(4)),
            "{mode:?}"
        );
        assert_eq!(
            poll::<u64>(&view, &mut reader, &mut state, false, &ALIVE),
            Ok(2),
            "{mode:?}"
        );
        // Gaps behind the last record do not look like a producer stall.
        assert!(!resolve_stall(&view, 1, &ALIVE, true));
    }
}
