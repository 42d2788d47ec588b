//! Broadcast, `Overflow::Overwrite`, gap markers (`RawSender::publish_gap`): a
//! receiver lapped over a gap marker, or while one is being published, is told what it
//! missed in the producer's numbers (`src/ring/broadcast.rs`, "Gap markers and laps";
//! `src/ring/gaps.rs`), through the shipped `ring::send::send` and `ring::recv::{recv,
//! poll}`, on a `Route` and on a `Channel`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, recv_block, send_block, ALL_ALIVE};
use shmchan::ring::record::GapMarker;
use shmchan::ring::send::send;
use shmchan::ring::HeapRing;
use shmchan::{RecvTimeoutError, Wait};

/// What the producer publishes, in order: `Some(n)` a gap of `n` records, `None` one
/// record carrying its producer number.
const SCRIPT: [Option<u64>; 4] = [None, Some(3), None, Some(2)];

/// A producer runs `SCRIPT` into a ring of 2 (the receiver is lapped over the first gap
/// or while either is in flight) while one receiver blocks on `recv`. Every event is
/// counted in the producer's numbers: after `Lagged(k)`, the next record is the last
/// one plus `k + 1`, and at the end records plus lags are all the numbers.
#[test]
fn lapped_over_a_gap_marker() {
    let total: u64 = SCRIPT.iter().map(|g| g.unwrap_or(1)).sum();
    loom::model(move || {
        let ring = Arc::new(HeapRing::new::<u64>(2, 1, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                let mut number = 0u64;
                for step in SCRIPT {
                    match step {
                        Some(n) => {
                            send(
                                &mut tx,
                                &view,
                                &GapMarker::new(n),
                                Wait::Block,
                                None,
                                &ALL_ALIVE,
                            )
                            .expect("gap");
                            number += n;
                        }
                        None => {
                            send_block(&mut tx, &view, &number);
                            number += 1;
                        }
                    }
                }
                // Keep the sender attached until the receiver is done: a disconnection
                // is not what this model is about.
                tx
            })
        };
        // The number after the last record, and the lags reported since.
        let (mut expected, mut told) = (0u64, 0u64);
        while expected + told < total {
            match recv_block::<u64>(&view, &mut rx, &mut state) {
                Ok(number) => {
                    assert_eq!(
                        number,
                        expected + told,
                        "told {told} missing since the number before {expected}"
                    );
                    expected = number + 1;
                    told = 0;
                }
                Err(RecvTimeoutError::Lagged(k)) => {
                    assert!(k > 0, "Lagged(0)");
                    told += k;
                }
                Err(other) => panic!("receiver got {other:?}"),
            }
        }
        assert_eq!(
            expected + told,
            total,
            "records + lags == the producer's numbers"
        );
        drop(producer.join().expect("producer"));
    });
}

/// `Channel`, Overwrite, capacity 2: producer A publishes a gap of 3 while producer B
/// sends 2 records, and one receiver polls while they run, then reads what is left.
/// Records and lags add up to the producers' records exactly: 3 + 2, plus one slot per
/// void claim (a claim a lap-newer writer took before its producer began, re-sent
/// under a new number: `head - 3` of them), never a gap counted as one slot.
#[test]
fn channel_lapped_over_a_gap_marker() {
    use loom_tests::join_channel;
    use shmchan::ring::recv::poll;
    use shmchan::TryRecvError;
    loom::model(|| {
        let ring = Arc::new(HeapRing::with_producers::<u64>(2, 1, 2, false, false));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut a = join_channel(&view, 1);
        let mut b = join_channel(&view, 2);
        let gapper = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                send(
                    &mut a,
                    &view,
                    &GapMarker::new(3),
                    Wait::Block,
                    None,
                    &ALL_ALIVE,
                )
                .expect("gap");
                a
            })
        };
        let sender = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for v in [10u64, 11] {
                    send_block(&mut b, &view, &v);
                }
                b
            })
        };
        let (mut received, mut lagged) = (0u64, 0u64);
        let mut check = |read: Result<u64, TryRecvError>| match read {
            Ok(v) => {
                assert!(v == 10 || v == 11, "foreign record {v}");
                received += 1;
                true
            }
            Err(TryRecvError::Lagged(n)) => {
                assert!(n > 0, "Lagged(0)");
                lagged += n;
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(e) => panic!("receiver got {e:?}"),
        };
        for _ in 0..2 {
            thread::yield_now();
            check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE));
        }
        let producers = (
            gapper.join().expect("gapper"),
            sender.join().expect("sender"),
        );
        while check(poll(&view, &mut rx, &mut state, false, &ALL_ALIVE)) {}
        let head = view.ctl.head.load(loom::sync::atomic::Ordering::Relaxed);
        assert_eq!(rx.waiting_on(&view), head, "stopped short of head");
        assert_eq!(
            received + lagged,
            5 + (head - 3),
            "records + lags: {received} + {lagged}, head {head}"
        );
        drop(producers);
    });
}
