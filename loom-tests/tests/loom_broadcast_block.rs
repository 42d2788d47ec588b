//! Route broadcast, `Overflow::Block` (lossless): gating on the slowest receiver, the
//! join protocol and leaving (see `src/ring/broadcast.rs`, invariants 3 and 4,
//! "Joining", "Leaving and eviction"). Both sides run the shipped loops,
//! `ring::send::send` and `ring::recv::recv` with `Wait::Block`, on the modelled
//! futex, so a missed wake-up is a deadlock.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{attach_route, join_reader, recv_block, send_block};
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::RecvState;
use shmchan::ring::HeapRing;

const CAPACITY: u64 = 2;

/// Records are single words, `seq + 1` (0 is a never-written slot): the seqlock copy
/// is the Overwrite model's business, and every word adds interleavings.
type Rec = u64;

fn rec(seq: u64) -> Rec {
    seq + 1
}

/// Receives records `from..to` with `recv`, asserting each arrives, in order, exactly
/// once, never lapped.
fn read_all(rx: &mut Reader, state: &mut RecvState, ring: &HeapRing, from: u64, to: u64) {
    let view = ring.view();
    for want in from..to {
        match recv_block::<Rec>(&view, rx, state) {
            Ok(r) => assert_eq!(r, rec(want), "lost, duplicated or reordered"),
            Err(e) => panic!("lossless receiver got {e:?} waiting for record {want}"),
        }
    }
}

/// Two receivers, joined before the producer starts, each read all 3 records through a
/// ring of 2: no loss, no duplicate, no reordering, and the producer never overwrites
/// a record a receiver has not read (the receiver would see it lapped). The producer
/// sleeps on `space` when full; the receivers sleep on `data` when empty.
#[test]
fn block_two_receivers_no_loss() {
    const TOTAL: u64 = 3;
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 2, true));
        let view = ring.view();
        let (mut a, mut sa) = join_reader(&view, 100);
        let (mut b, mut sb) = join_reader(&view, 101);
        let mut tx = attach_route(&view, 1);
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let view = ring.view();
                for seq in 0..TOTAL {
                    send_block(&mut tx, &view, &rec(seq));
                }
            })
        };
        let reader = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || read_all(&mut a, &mut sa, &ring, 0, TOTAL))
        };
        read_all(&mut b, &mut sb, &ring, 0, TOTAL);
        reader.join().expect("reader");
        producer.join().expect("producer");
    });
}

/// A receiver joins while the producer publishes 4 records into a ring of 2 with no
/// other receiver (so until it sees the join the producer does not gate at all). The
/// receiver starts at some `start <= 4` and must get every record from `start` on:
/// the join protocol (F_r against F_p) makes the producer gate on it in time.
#[test]
fn block_join_while_producer_runs() {
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
        for seq in 0..TOTAL {
            send_block(&mut tx, &view, &rec(seq));
        }
        receiver.join().expect("receiver");
    });
}

/// The only receiver reads one record and leaves while the producer, publishing 4
/// records into a ring of 2, is (or is about to be) asleep waiting for it: record 3
/// needs the receiver's cursor at 2, which only leaving gives. Leaving must wake the
/// producer, which then finishes with no receiver to gate on.
#[test]
fn block_leave_while_producer_blocked() {
    const TOTAL: u64 = 4;
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, true));
        let view = ring.view();
        let (mut rx, mut state) = join_reader(&view, 100);
        let mut tx = attach_route(&view, 1);
        let receiver = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                read_all(&mut rx, &mut state, &ring, 0, 1);
                rx.leave(&ring.view());
            })
        };
        for seq in 0..TOTAL {
            send_block(&mut tx, &view, &rec(seq));
        }
        receiver.join().expect("receiver");
        assert_eq!(tx.next_seq(&view), TOTAL);
    });
}

/// Reading in place (`Receiver::recv_ref`): the receiver holds record 0
/// (`ring::recv::poll_hold`) and reads its slot's word twice, as a reference into the
/// ring would, while the producer sends record 2 into that very slot (capacity 2). The
/// producer must wait until the receiver lets go (`Reader::release`): both reads see
/// record 0, and the receiver then gets records 1 and 2. A release that moved the
/// cursor early, or a gate that ignored the held cursor, shows as a changed word.
#[test]
fn block_held_record_is_not_overwritten_until_released() {
    loom::model(|| {
        let ring = Arc::new(HeapRing::new::<Rec>(CAPACITY, 1, true));
        let view = ring.view();
        let mut tx = attach_route(&view, 100);
        let (mut rx, mut state) = join_reader(&view, 1);
        for seq in 0..2 {
            send_block(&mut tx, &view, &rec(seq));
        }
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || send_block(&mut tx, &ring.view(), &rec(2)))
        };
        let seq = shmchan::ring::recv::poll_hold(
            &view,
            &mut rx,
            &mut state,
            false,
            &loom_tests::ALL_ALIVE,
        )
        .expect("record 0 is there");
        assert_eq!(seq, 0);
        let word = |view: &shmchan::ring::RingView<'_>| {
            view.slots[view.geom.data_range(seq)][0].load(loom::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(word(&view), rec(0), "held record overwritten");
        thread::yield_now();
        assert_eq!(word(&view), rec(0), "held record overwritten");
        rx.release(&view, seq);
        read_all(&mut rx, &mut state, &ring, 1, 3);
        producer.join().expect("producer");
    });
}
