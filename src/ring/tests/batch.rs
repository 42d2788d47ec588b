//! Batches: batch reads (settled stamps, a lap inside a batch, unblocking a lossless
//! producer), chunked `Route` sends and takeover inside a chunk, unicast batches.

use super::*;

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
        try_send_many(&mut tx, &view, &records[..], &ALIVE, false),
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
        send_many(&mut tx, &view, &records[..], Wait::Spin, deadline, &ALIVE),
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
        try_send_many(&mut tx, &view, &records[..], &ALIVE, false),
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
