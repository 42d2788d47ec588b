//! Route broadcast, `Overflow::Overwrite`: the seqlock read (see
//! `src/ring/seqlock.rs` and `src/ring/broadcast.rs`, "Lagging"), through the shipped
//! `ring::send::send` and `ring::recv::poll`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, rec, send_block, seq_of, Rec, ALL_ALIVE};
use shmchan::ring::recv::poll;
use shmchan::ring::HeapRing;
use shmchan::TryRecvError;

const CAPACITY: u64 = 2;

/// A producer publishes `total` records into a ring of 2 while one receiver polls
/// without waiting. The receiver never returns a torn, overwritten or never-written
/// record; records come in order; `Lagged(n)` skips only records that the producer
/// has overwritten (or is overwriting); received + lagged == published; the
/// receiver's `lagged` counter in the table agrees.
fn lapped_reader(total: u64) {
    loom::model(move || {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for seq in 0..total {
                    send_block(&mut tx, &view, &rec(seq));
                }
            })
        };
        let (mut next, mut lagged) = (0, 0);
        while next < total {
            match poll::<Rec>(&view, &mut rx, &mut state, false, &ALL_ALIVE) {
                Ok(r) => {
                    assert_eq!(seq_of(r), next, "out of order or overwritten");
                    next += 1;
                }
                Err(TryRecvError::Lagged(n)) => {
                    assert!(n > 0, "Lagged(0)");
                    // The last skipped record, next + n - 1, must have been lapped: the
                    // producer started record next + n - 1 + CAPACITY.
                    assert!(
                        next + n - 1 + CAPACITY < total,
                        "skipped records {next}..{} that were never overwritten",
                        next + n
                    );
                    next += n;
                    lagged += n;
                }
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(other) => panic!("receiver got {other:?}"),
            }
        }
        producer.join().expect("producer");
        assert_eq!(next, total, "received + lagged == published");
        assert_eq!(rx.waiting_on(&view), total);
        assert_eq!(
            poll::<Rec>(&view, &mut rx, &mut state, false, &ALL_ALIVE),
            Err(TryRecvError::Empty)
        );
        let counted = view.receivers[0]
            .lagged
            .load(loom::sync::atomic::Ordering::Relaxed);
        assert_eq!(counted, lagged, "the table's lag counter");
    });
}

#[test]
fn overwrite_three_records() {
    lapped_reader(3);
}

#[test]
fn overwrite_four_records() {
    lapped_reader(4);
}
