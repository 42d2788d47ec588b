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

/// Owner word of the receiver that takes record 0 and dies between C2 and C3.
const DOOMED: u64 = 7;

/// A liveness oracle under which owner `dead` is dead, and which runs `race` the first
/// time it is asked about it: another receiver's whole rescue, run in the middle of
/// this one's scan, after it has found the dead taker's claim and before it claims the
/// record itself (the window of issue 25: each `is_alive` reads /proc, microseconds).
struct RaceOnce<F> {
    dead: u64,
    race: std::cell::RefCell<Option<F>>,
}

impl<F: FnOnce()> Liveness for RaceOnce<F> {
    fn is_alive(&self, owner: u64) -> bool {
        if owner == self.dead {
            let race = self.race.borrow_mut().take();
            if let Some(race) = race {
                race();
            }
        }
        owner != self.dead
    }
}

/// One poll with `check_liveness` by an idle unicast receiver: holding (`poll_hold`,
/// as `recv_ref`) or copying (`poll`, as `recv`). What it delivered (a holder's record
/// read through its hold, as the guard reads it) and the sequence number it holds.
fn rescue_poll(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    holds: bool,
    liveness: &impl Liveness,
) -> (Option<u64>, Option<u64>) {
    if holds {
        match crate::ring::recv::poll_hold(view, reader, state, true, liveness) {
            Ok(seq) => (Some(reader.read_held::<u64>(view, seq)), Some(seq)),
            Err(e) => {
                assert_eq!(e, TryRecvError::Empty);
                (None, None)
            }
        }
    } else {
        match poll::<u64>(view, reader, state, true, liveness) {
            Ok(value) => (Some(value), None),
            Err(e) => {
                assert_eq!(e, TryRecvError::Empty);
                (None, None)
            }
        }
    }
}

/// Record 0 (41) is taken (C1, C2) by a receiver that dies before C3. Two idle
/// receivers rescue it at the same time, each holding it (`recv_ref`) or copying it
/// (`recv`) as told: the second one's scan is interrupted, once it has seen the dead
/// taker's claim, by the first one's whole rescue. Exactly one of them delivers the
/// record, and what a holder holds stays record 0 while the sender rewrites every slot,
/// the rescued one's included.
fn two_rescuers_race(first_holds: bool, second_holds: bool) {
    let ring = HeapRing::with_producers::<u64>(4, 3, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    push(&mut tx, &view, 41u64);
    // Entries in this order, so that the second rescuer checks the dead taker's claim
    // after the first rescuer's entry (the first one's claim, stored in the race,
    // is then behind its scan).
    let mut s1 = RecvState::before_join(&view);
    let mut first = Reader::join(&view, 1, &ALIVE).expect("first");
    let _doomed = Worker::join(&view, DOOMED).expect("doomed");
    view.receivers[1].claim.store(1, Ordering::Relaxed);
    assert!(view
        .ctl
        .read
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok());
    let mut s2 = RecvState::before_join(&view);
    let mut second = Reader::join(&view, 3, &ALIVE).expect("second");
    let mut first_got = None;
    let second_got = {
        let race = RaceOnce {
            dead: DOOMED,
            race: std::cell::RefCell::new(Some(|| {
                first_got = Some(rescue_poll(
                    &view,
                    &mut first,
                    &mut s1,
                    first_holds,
                    &Dead(DOOMED),
                ));
            })),
        };
        rescue_poll(&view, &mut second, &mut s2, second_holds, &race)
    };
    let first_got = first_got.expect("the first rescue ran inside the second");
    let delivered: Vec<u64> = [first_got.0, second_got.0].into_iter().flatten().collect();
    assert_eq!(
        delivered,
        [41],
        "record 0 delivered once (first holds: {first_holds}, second holds: {second_holds})"
    );
    assert_eq!(view.ctl.membership.rescued.load(Ordering::Relaxed), 1);
    // The sender fills the ring, record 4 going into record 0's slot, while the hold
    // (if any) is outstanding: the holder still reads record 0.
    for v in 42..=45u64 {
        push(&mut tx, &view, v);
    }
    for (reader, got) in [(&mut first, first_got), (&mut second, second_got)] {
        if let Some(seq) = got.1 {
            assert_eq!(
                reader.read_held::<u64>(&view, seq),
                41,
                "overwritten while held"
            );
            reader.release(&view, seq);
        }
    }
    // Letting go of the rescued record does not touch the record now in its slot.
    assert_eq!(stamp(&view, 4), Stamp::Done(4));
    let rest: Vec<u64> =
        std::iter::from_fn(|| poll::<u64>(&view, &mut first, &mut s1, false, &ALIVE).ok())
            .collect();
    assert_eq!(rest, [42, 43, 44, 45]);
}

#[test]
fn a_hold_rescue_racing_a_copy_rescue_delivers_once() {
    two_rescuers_race(true, false);
}

#[test]
fn a_copy_rescue_racing_a_hold_rescue_delivers_once() {
    two_rescuers_race(false, true);
}

#[test]
fn two_hold_rescues_racing_deliver_once() {
    two_rescuers_race(true, true);
}

/// No race: an idle receiver in `recv_ref` (`poll_hold`) rescues the record of a taker
/// that died between C2 and C3, once; a second idle one finds nothing.
#[test]
fn a_hold_rescue_alone_delivers_once() {
    let ring = HeapRing::with_producers::<u64>(4, 3, 0, true, true);
    let view = ring.view();
    let mut tx = route(&view);
    push(&mut tx, &view, 41u64);
    let _doomed = Worker::join(&view, DOOMED).expect("doomed");
    view.receivers[0].claim.store(1, Ordering::Relaxed);
    view.ctl.read.store(1, Ordering::Relaxed);
    let mut sa = RecvState::before_join(&view);
    let mut a = Reader::join(&view, 1, &ALIVE).expect("a");
    let mut sb = RecvState::before_join(&view);
    let mut b = Reader::join(&view, 2, &ALIVE).expect("b");
    // Not while its taker lives.
    assert_eq!(
        rescue_poll(&view, &mut a, &mut sa, true, &ALIVE),
        (None, None)
    );
    let (got, seq) = rescue_poll(&view, &mut a, &mut sa, true, &Dead(DOOMED));
    assert_eq!((got, seq), (Some(41), Some(0)));
    assert_eq!(
        rescue_poll(&view, &mut b, &mut sb, true, &Dead(DOOMED)),
        (None, None)
    );
    assert_eq!(
        rescue_poll(&view, &mut b, &mut sb, false, &Dead(DOOMED)),
        (None, None)
    );
    a.release(&view, 0);
    assert_eq!(view.ctl.membership.rescued.load(Ordering::Relaxed), 1);
    assert!(
        crate::ring::gate::slot_free(&view, 4),
        "the rescued slot is free"
    );
}
