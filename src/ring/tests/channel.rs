//! `Channel` producers: dead claims, void claims, a lap-older writer, the claim-time
//! join check and gated claims, disconnection with a dead claim outstanding.

use super::*;
use crate::ring::multi::{Shared, Step};
use crate::ring::table::producers_present;

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

/// The count is raised before a producer takes its entry and lowered after it is
/// freed (`multi.rs`, "Membership"): a producer stopped between two steps of `join`
/// or `leave` leaves it high, never low (it used to wrap below 0), and presence is
/// read from the table, whatever the count says.
#[test]
fn a_producer_stopped_inside_join_or_leave_never_leaves_the_count_below_the_table() {
    let ring = HeapRing::with_producers::<u64>(8, 1, 2, true, false);
    let view = ring.view();
    let count = || view.ctl.membership.producers.load(Ordering::Relaxed);
    // Stopped after taking its entry: the reaper lowers the count it raised.
    assert!(Shared::join_until(&view, 1, Some(Step::JoinEntered)).is_none());
    assert_eq!(count(), 1);
    assert!(producers_present(&view));
    assert_eq!(reap_dead_producers(&view, &Dead(1)), 1);
    assert_eq!(count(), 0);
    assert!(!producers_present(&view));
    // Stopped after raising the count: one too high, with no entry.
    assert!(Shared::join_until(&view, 2, Some(Step::JoinCounted)).is_none());
    assert_eq!(count(), 1);
    assert!(!producers_present(&view));
    // A join that finds the table full gives its increment back.
    let a = Shared::join(&view, 3).expect("entry");
    let b = Shared::join(&view, 4).expect("entry");
    assert!(Shared::join(&view, 5).is_none());
    assert_eq!(count(), 3);
    // Stopped after giving its entry back: the count stays, the table says gone.
    a.leave_until(&view, Some(Step::LeaveFreed));
    assert_eq!(count(), 3);
    b.leave_until(&view, None);
    assert_eq!(count(), 2);
    assert!(!producers_present(&view));
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
    assert!(a.commit(&view, false));
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
