//! The async waiter's half of the futex protocol (`src/asynk/park.rs`): register and
//! re-check against a producer's publish and check of the waiter count.
//!
//! In production an async receiver's poll ends where the sleep would begin and its
//! process's waker thread sleeps on the word for it. Here the model thread makes that
//! sleep itself, on the loom-modelled futex (no timeout, no spurious return), so a
//! wake-up lost between the first attempt and the registration is a loom deadlock. The
//! attempts are the shipped `ring::recv::poll`, the parker the receiver's own
//! registered pair, as `Receiver::recv_async` uses them.
#![cfg(loom)]

use loom::sync::atomic::Ordering;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, rec, send_block, seq_of, Rec, ALL_ALIVE};
use shmchan::asynk::park::{ParkState, Step};
use shmchan::layout::PARKED_DATA;
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::{poll, RecvState};
use shmchan::ring::{HeapRing, RingView};
use shmchan::wait::{futex_wait_model, Parker, FENCED, FENCE_ASKED, WAITER_COUNT};
use shmchan::TryRecvError;

const CAPACITY: u64 = 2;

/// What the receiver's polls borrow, as they borrow a `Receiver`: its ring, reader
/// and state.
struct Rx<'r> {
    view: RingView<'r>,
    reader: Reader,
    state: RecvState,
}

/// The receiver's registered pair (`Receiver::data_parker`).
fn parker<'a>(rx: &'a Rx<'_>) -> Parker<'a> {
    rx.view
        .data_parker()
        .registered(rx.reader.parked(&rx.view), PARKED_DATA)
}

/// One non-blocking receive (`Receiver::try_recv`): `None` while empty.
fn attempt(rx: &mut Rx<'_>) -> Option<Rec> {
    let view = rx.view;
    match poll::<Rec>(&view, &mut rx.reader, &mut rx.state, false, &ALL_ALIVE) {
        Err(TryRecvError::Empty) => None,
        Ok(r) => Some(r),
        Err(e) => panic!("expected a record, got {e:?}"),
    }
}

/// `recv_async` driven to completion: poll, and on `Sleep` do the waker thread's sleep.
/// Returns the record and how many times it slept.
fn recv_async(mut rx: Rx<'_>) -> (Rec, usize) {
    let view = rx.view;
    let mut park = ParkState::default();
    let mut sleeps = 0;
    loop {
        let step = park.poll(&mut rx, parker, attempt);
        match step {
            Step::Ready(r) => {
                assert!(!park.is_registered());
                return (r, sleeps);
            }
            Step::Sleep { expected, .. } => {
                sleeps += 1;
                futex_wait_model(&view.ctl.data.seq, expected);
            }
        }
    }
}

/// An async receiver that finds the ring empty registers and re-checks while the
/// producer publishes one record: whatever the interleaving, it gets the record (the
/// weakening `async_recheck`, without the re-check, deadlocks). The producer wakes only
/// a registered waiter, and the count is back to 0 at the end.
#[test]
fn async_receiver_always_wakes() {
    loom::model(|| receiver_always_wakes(false));
}

/// The same in fenced mode (`wait.rs`), with the flags set as an earlier park leaves
/// them: the waiter, registered across its polls, fences with `fence(SeqCst)` on each.
#[test]
fn async_fenced_receiver_always_wakes() {
    loom::model(|| receiver_always_wakes(true));
}

fn receiver_always_wakes(fenced: bool) {
    {
        let ring = HeapRing::new::<Rec>(CAPACITY, 1, false);
        let ring = Arc::new(if fenced { ring.fenced_mode(1) } else { ring });
        let view = ring.view();
        if fenced {
            view.ctl
                .data
                .waiters
                .store(FENCED | FENCE_ASKED, Ordering::Relaxed);
        }
        let (reader, state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                recv_async(Rx {
                    view,
                    reader,
                    state,
                })
            })
        };
        send_block(&mut tx, &view, &rec(0));
        let (got, _sleeps) = receiver.join().expect("receiver");
        assert_eq!(seq_of(got), 0);
        assert!(view.ctl.data.seq.load(Ordering::Relaxed) <= 1);
        assert_eq!(
            view.ctl.data.waiters.load(Ordering::Relaxed) & WAITER_COUNT,
            0
        );
    }
}

/// A future dropped while registered (after a poll that returned `Sleep`) unregisters:
/// the count is back to 0, and the producer's next send makes no wake call.
#[test]
fn cancelled_async_receiver_leaves_no_registration() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        let view = ring.view();
        let (reader, state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                let mut rx = Rx {
                    view,
                    reader,
                    state,
                };
                let mut park = ParkState::default();
                let step = park.poll(&mut rx, parker, attempt);
                // Dropped: whatever the poll came to, it unregisters.
                park.finish(&rx, &parker);
                matches!(step, Step::Ready(_))
            })
        };
        send_block(&mut tx, &view, &rec(0));
        receiver.join().expect("receiver");
        assert_eq!(
            view.ctl.data.waiters.load(Ordering::Relaxed) & WAITER_COUNT,
            0
        );
        let wakes = view.ctl.data.seq.load(Ordering::Relaxed);
        send_block(&mut tx, &view, &rec(1));
        assert_eq!(
            view.ctl.data.seq.load(Ordering::Relaxed),
            wakes,
            "a wake call with nobody registered"
        );
    });
}
