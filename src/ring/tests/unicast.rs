//! Unicast: one receiver per record, gating on consumption, rescue, skipped claims,
//! takeover after a consumed record.

use super::*;

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
        crate::ring::gate::slot_free(&view, 4),
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
