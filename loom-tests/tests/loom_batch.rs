//! Batches on a lossless `Route` (`src/ring/broadcast.rs`, "Reading a batch";
//! `src/ring/single.rs`, "Sending a batch"): the shipped `ring::recv::recv_many` and
//! `ring::send::send_many` with `Wait::Block` on the modelled futex, so a missed
//! wake-up is a deadlock and a record overwritten before the batch's cursor store is
//! seen as a lap (`Lagged`) or a wrong record.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, recv_many_block, send_many_block};
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::RecvState;
use shmchan::ring::HeapRing;

const CAPACITY: u64 = 2;

/// Single words, `seq + 1` (0 is a never-written slot), as in the Block models.
type Rec = u64;

fn rec(seq: u64) -> Rec {
    seq + 1
}

/// Receives records `from..to` with `recv_many` into a buffer of `CAPACITY`, asserting
/// each arrives, in order, exactly once, never lapped.
fn read_all(rx: &mut Reader, state: &mut RecvState, ring: &HeapRing, from: u64, to: u64) {
    let view = ring.view();
    let mut want = from;
    let mut buf = [0 as Rec; CAPACITY as usize];
    while want < to {
        match recv_many_block::<Rec>(&view, rx, state, &mut buf) {
            Ok(n) => {
                assert!(n >= 1, "recv_many returned no record");
                for &r in &buf[..n] {
                    assert_eq!(r, rec(want), "lost, duplicated or reordered");
                    want += 1;
                }
            }
            Err(e) => panic!("lossless receiver got {e:?} waiting for record {want}"),
        }
    }
}

/// One receiver reads 3 records in batches while the producer sends them as one
/// `send_many` through a ring of 2: the producer's first chunk fills the ring and it
/// blocks on the gate (asleep on `space`) until a batch read publishes its cursor. No
/// record is overwritten before that store (the receiver would see a lap or a wrong
/// record) and the batch's single wake is never lost (a deadlock).
#[test]
fn batch_recv_unblocks_a_gated_producer() {
    const TOTAL: u64 = 3;
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, true));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let records: Vec<Rec> = (0..TOTAL).map(rec).collect();
                send_many_block(&mut tx, &ring.view(), &records);
            })
        };
        read_all(&mut rx, &mut state, &ring, 0, TOTAL);
        producer.join().expect("producer");
    });
}

/// A receiver joins while the producer sends 4 records into a ring of 2 as one
/// `send_many` with no other receiver (so it writes chunks of `capacity` records
/// without gating until it sees the join). The receiver starts at some `start <= 4`
/// and must get every record from `start` on: one unchecked chunk of at most
/// `capacity` records overwrites nothing at or above `start` (single.rs).
#[test]
fn batch_join_while_producer_sends_chunks() {
    const TOTAL: u64 = 4;
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, true));
        let view = ring.view();
        let mut tx = attach_route(&view, 1);
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let (mut rx, mut state) = join_reader(&ring.view(), 100);
                let start = rx.waiting_on(&ring.view());
                assert!(start <= TOTAL);
                read_all(&mut rx, &mut state, &ring, start, TOTAL);
            })
        };
        let records: Vec<Rec> = (0..TOTAL).map(rec).collect();
        send_many_block(&mut tx, &view, &records);
        receiver.join().expect("receiver");
    });
}
