//! The futex wait/wake protocol (`src/wait.rs`): the library's own `wait_for` with
//! `Wait::Block` against a producer's commit, on the loom-modelled futex, which sleeps
//! until woken (no timeout), so a lost wake-up is a loom deadlock.
//!
//! The receivers here call `wait_for` with the shipped `ring::recv::poll` as the
//! condition, which is exactly the body of `ring::recv::recv`, plus a count of the
//! polls: that count is what shows whether the receiver had registered as a waiter.
#![cfg(loom)]

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, rec, send_block, seq_of, Dead, Rec, ALL_ALIVE};
use shmchan::asynk::park::{ParkState, Step};
use shmchan::layout::PARKED_DATA;
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::{poll, RecvState};
use shmchan::ring::table::sweep_parked;
use shmchan::ring::{HeapRing, RingView};
use shmchan::wait::{wait_for, Parker, Tick, FENCED, FENCE_ASKED, WAITER_COUNT};
use shmchan::{TryRecvError, Wait};

const CAPACITY: u64 = 2;

/// Waits for one record with `strategy`; returns it and how many times `wait_for`
/// polled (a plain local count: no extra shared state for loom to explore).
fn recv_one(
    rx: &mut Reader,
    state: &mut RecvState,
    ring: &HeapRing,
    strategy: Wait,
) -> (Rec, usize) {
    let view = ring.view();
    let mut polls = 0;
    let got = wait_for(
        strategy,
        None,
        view.data_parker(),
        &mut Tick::default(),
        |idle| {
            polls += 1;
            match poll::<Rec>(&view, rx, state, idle, &ALL_ALIVE) {
                Err(TryRecvError::Empty) => None,
                other => Some(other),
            }
        },
    )
    .expect("no deadline");
    match got {
        Ok(r) => (r, polls),
        Err(e) => panic!("expected a record, got {e:?}"),
    }
}

/// One receiver (owner 100) waits for one record with `strategy` while the producer
/// (owner 1) publishes it: the record and the receiver's poll count.
fn one_record(ring: &Arc<HeapRing>, strategy: Wait) -> (Rec, usize) {
    let view = ring.view();
    let (mut rx, mut state) = join_reader(&view, 100);
    let mut tx = attach_route(&view, 1);
    let receiver = {
        let ring = Arc::clone(ring);
        thread::spawn(move || recv_one(&mut rx, &mut state, &ring, strategy))
    };
    send_block(&mut tx, &view, &rec(0));
    receiver.join().expect("receiver")
}

/// A receiver that finds the ring empty parks (`Wait::Block`) while the producer
/// publishes one record: whatever the interleaving, it wakes and gets the record
/// (F_w against F_p). The producer wakes only a registered waiter: if it made the
/// wake call (the futex word was bumped), the receiver had registered, which
/// `wait_for` does only after its first poll failed; and `waiters` is back to 0.
#[test]
fn parked_receiver_always_wakes() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        let (got, polls) = one_record(&ring, Wait::Block);
        assert_eq!(seq_of(got), 0);
        let data = &ring.view().ctl.data;
        let wakes = data.seq.load(Ordering::Relaxed);
        assert!(wakes <= 1);
        if wakes == 1 {
            assert!(polls >= 2, "woke a receiver that never registered");
        }
        assert_eq!(data.waiters.load(Ordering::Relaxed) & WAITER_COUNT, 0);
    });
}

/// Two receivers park for the same record: one `wake` wakes both.
#[test]
fn two_parked_receivers_both_wake() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 2, false));
        let view = ring.view();
        let mut tx = attach_route(&view, 1);
        let receivers: Vec<_> = (100..=101)
            .map(|owner| {
                let (mut rx, mut state) = join_reader(&view, owner);
                let ring = Arc::clone(&ring);
                thread::spawn(move || recv_one(&mut rx, &mut state, &ring, Wait::Block))
            })
            .collect();
        send_block(&mut tx, &view, &rec(0));
        for r in receivers {
            assert_eq!(seq_of(r.join().expect("receiver").0), 0);
        }
        assert_eq!(
            view.ctl.data.waiters.load(Ordering::Relaxed) & WAITER_COUNT,
            0
        );
    });
}

/// A spinning receiver (`Wait::Spin`) never registers, so the producer never makes the
/// wake call: the hot path stays free of system calls while nobody sleeps.
#[test]
fn no_wake_when_nobody_parks() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        assert_eq!(seq_of(one_record(&ring, Wait::Spin).0), 0);
        let view = ring.view();
        assert_eq!(view.ctl.data.seq.load(Ordering::Relaxed), 0, "a wake call");
        assert_eq!(
            view.ctl.data.waiters.load(Ordering::Relaxed) & WAITER_COUNT,
            0
        );
    });
}

/// Fenced mode (`wait.rs`): a pair whose flags say that notifiers fence lets a parking
/// receiver use `fence(SeqCst)` instead of the heavy fence. Started with the flags set
/// (as an earlier park leaves them), the receiver's park takes that path while the
/// producer publishes: it still always wakes, and a notify that finds nobody
/// registered may clear the flags (after one such notify here).
#[test]
fn fenced_receiver_always_wakes() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false).fenced_mode(1));
        let view = ring.view();
        view.ctl
            .data
            .waiters
            .store(FENCED | FENCE_ASKED, Ordering::Relaxed);
        assert_eq!(seq_of(one_record(&ring, Wait::Block).0), 0);
        let waiters = view.ctl.data.waiters.load(Ordering::Relaxed);
        assert_eq!(waiters & WAITER_COUNT, 0);
    });
}

/// One receiver parks for two records in a row: the first park asks for fenced mode
/// with the heavy fence, the second finds the flags set, or cleared again by a notify
/// that found nobody registered in between, and takes the matching path. Every record
/// arrives, in order, whatever the interleaving.
#[test]
fn receiver_parks_twice() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false).fenced_mode(1));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let a = recv_one(&mut rx, &mut state, &ring, Wait::Block).0;
                let b = recv_one(&mut rx, &mut state, &ring, Wait::Block).0;
                (seq_of(a), seq_of(b))
            })
        };
        send_block(&mut tx, &view, &rec(0));
        send_block(&mut tx, &view, &rec(1));
        assert_eq!(receiver.join().expect("receiver"), (0, 1));
        let waiters = view.ctl.data.waiters.load(Ordering::Relaxed);
        assert_eq!(waiters & WAITER_COUNT, 0);
    });
}

/// A receiver's registered pair, as `Receiver` builds it (`Reader::parked`).
fn registered<'a>((view, reader): &'a (RingView<'_>, &Reader)) -> Parker<'a> {
    view.data_parker()
        .registered(reader.parked(view), PARKED_DATA)
}

/// Registers `reader` as a sleeper on `data` through the shipped async park step (a
/// first look that finds nothing, the registration, the fence and the re-check) and
/// returns without sleeping: the registration stands until [`ParkState::finish`].
fn park_registered(view: RingView<'_>, reader: &Reader) -> ParkState {
    let mut park = ParkState::default();
    let step = park.poll(&mut (view, reader), registered, |_| None::<()>);
    assert!(matches!(step, Step::Sleep { .. }));
    park
}

/// "Sleepers that die" (`wait.rs`): receiver 100 died registered on `data`. A notifier's
/// sweep evicts it and takes its registration back while receiver 101 takes the freed
/// entry, registers on the same pair and unregisters. Whatever the interleaving, the
/// dead receiver's registration is taken back and the new owner's is left to it: the
/// count and the `parked` word end at 0. (Taken back after the entry was freed, a blind
/// take-back could take the new owner's registration, or find none, and leave the count
/// one too high with no tag for a sweep to find.)
#[test]
fn dead_sleeper_taken_back_while_its_entry_is_reused() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        let view = ring.view();
        let (dead, _) = join_reader(&view, 100);
        // Registered, then killed: never finished.
        std::mem::forget(park_registered(view, &dead));
        let sweeper = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || sweep_parked(&ring.view(), &Dead(100)))
        };
        let next = loop {
            if let Some(reader) = Reader::join(&view, 101, &ALL_ALIVE) {
                break reader;
            }
            thread::yield_now();
        };
        let mut park = park_registered(view, &next);
        park.finish(&(view, &next), &registered);
        sweeper.join().expect("sweeper");
        let data = &view.ctl.data;
        assert_eq!(
            data.waiters.load(Ordering::Relaxed) & WAITER_COUNT,
            0,
            "a registration left behind, or one taken twice"
        );
        assert_eq!(view.receivers[0].parked.load(Ordering::Relaxed), 0);
    });
}
