//! The `Route` producer and broadcast reading: lag, lossless gating, joining, takeover,
//! the sender claim, torn records, the observer.

use super::*;

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
    let (mut cursor, mut extra) = (0u64, 0u64);
    let mut buf = [0u8; 16];
    assert_eq!(
        observe(&view, &mut cursor, &mut extra, &mut buf),
        Read::Empty
    );
    for i in 0..3u64 {
        push(&mut tx, &view, [i, !i]);
    }
    for i in 0..3u64 {
        assert_eq!(
            observe(&view, &mut cursor, &mut extra, &mut buf),
            Read::Record(())
        );
        assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [i, !i]);
    }
    assert_eq!(
        observe(&view, &mut cursor, &mut extra, &mut buf),
        Read::Empty
    );
    // The observer holds no entry: a lossless producer is not gated by it.
    for i in 3..20u64 {
        push(&mut tx, &view, [i, !i]);
    }
    assert!(view
        .receivers
        .iter()
        .all(|e| e.owner.load(Ordering::Relaxed) == 0));
    // Lapped: skips to the oldest record still present (20 - 4 = 16).
    assert_eq!(
        observe(&view, &mut cursor, &mut extra, &mut buf),
        Read::Lagged(13)
    );
    assert_eq!(cursor, 16);
    assert_eq!(
        observe(&view, &mut cursor, &mut extra, &mut buf),
        Read::Record(())
    );
    assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [16, !16]);
}
