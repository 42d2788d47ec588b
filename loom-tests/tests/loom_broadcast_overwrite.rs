//! Route broadcast, `Overflow::Overwrite`: the seqlock read (see
//! `src/ring/broadcast.rs`, "Reading record `seq`" and "Lagging").
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{rec, seq_of, Rec};
use shmchan::ring::broadcast::{Consumer, Producer, Read};
use shmchan::ring::HeapRing;

const CAPACITY: u64 = 2;

/// A producer publishes `total` records into a ring of 2 while one receiver reads
/// without waiting. The receiver never returns a torn, overwritten or never-written
/// record; records come in order; `Lagged(n)` skips only records that the producer
/// has overwritten (or is overwriting); received + lagged == published; the
/// receiver's `lagged` counter in the table agrees.
fn lapped_reader(total: u64) {
    loom::model(move || {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, false));
        let mut rx = Consumer::join(&ring.view(), 1).expect("join");
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                let mut tx = Producer::attach(&view);
                for seq in 0..total {
                    assert!(tx.has_space(&view), "Overwrite never waits");
                    tx.push(&view, &rec(seq));
                }
            })
        };
        let view = ring.view();
        let (mut next, mut lagged) = (0, 0);
        while next < total {
            match rx.try_read::<Rec>(&view) {
                Read::Record(r) => {
                    assert_eq!(seq_of(r), next, "out of order or overwritten");
                    next += 1;
                }
                Read::Lagged(n) => {
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
                Read::Empty => thread::yield_now(),
            }
        }
        producer.join().expect("producer");
        assert_eq!(next, total, "received + lagged == published");
        assert_eq!(rx.cursor(), total);
        assert_eq!(rx.try_read::<Rec>(&view), Read::Empty);
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
