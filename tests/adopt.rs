//! Opening adopts, creating decides: an option left unset takes an existing segment's
//! value (and the default when this side creates the segment); an option set
//! explicitly is checked against it; the record type is always checked. The rule is
//! documented on `shmchan::Builder`.

mod common;

use common::{unique_name, Cleanup, Rec};
use shmchan::raw::{self, RecordLayout};
use shmchan::{Channel, Mode, OpenError, Overflow, Route, TrySendError, Wait};

#[test]
fn a_receiver_with_no_options_opens_a_segment_created_with_65536_slots() {
    let name = unique_name("adopt-first-contact");
    let _cleanup = Cleanup(name.clone());
    let mut tx = Route::<Rec>::builder(&name)
        .capacity(1 << 16)
        .sender()
        .expect("sender");
    let rx = Route::<Rec>::receiver(&name);
    assert!(
        !matches!(rx, Err(OpenError::Mismatch { .. })),
        "a receiver that set no option was refused: {}",
        rx.err().map(|e| e.to_string()).unwrap_or_default()
    );
    let mut rx = rx.expect("receiver");
    tx.send(Rec::new(7)).expect("send");
    assert_eq!(rx.try_recv().expect("record").seq, 7);
}

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Other {
    words: [u64; 8],
}

fn mismatch_field<T>(result: Result<T, OpenError>) -> &'static str {
    match result {
        Err(OpenError::Mismatch { field, .. }) => field,
        Err(e) => panic!("expected a mismatch, got {e}"),
        Ok(_) => panic!("expected a mismatch, the open succeeded"),
    }
}

#[test]
fn a_receiver_adopts_every_option_a_sender_created_with() {
    let name = unique_name("adopt-rx");
    let _cleanup = Cleanup(name.clone());
    let mut tx = Route::<Rec>::builder(&name)
        .capacity(1 << 16)
        .mode(Mode::Unicast)
        .max_receivers(3)
        .sender()
        .expect("sender");
    let mut rx = Route::<Rec>::receiver(&name).expect("receiver");
    assert_eq!(rx.capacity(), 1 << 16);
    assert_eq!(rx.mode(), Mode::Unicast);
    assert_eq!(rx.overflow(), Overflow::Block);
    assert_eq!(rx.max_receivers(), 3);
    assert_eq!(
        (tx.capacity(), tx.mode(), tx.max_receivers()),
        (1 << 16, Mode::Unicast, 3)
    );
    // The adopted table size is the real one: two more receivers fill it.
    let _more: Vec<_> = (0..2)
        .map(|_| Route::<Rec>::receiver(&name).expect("room"))
        .collect();
    assert!(matches!(
        Route::<Rec>::receiver(&name),
        Err(OpenError::ReceiversFull { max: 3, .. })
    ));
    tx.send(Rec::new(1)).expect("send");
    assert_eq!(rx.try_recv().expect("record").seq, 1);

    // A Channel's producer table too.
    let chan = unique_name("adopt-rx-chan");
    let _cleanup = Cleanup(chan.clone());
    let _tx = Channel::<Rec>::builder(&chan)
        .capacity(64)
        .overflow(Overflow::Block)
        .max_producers(2)
        .sender()
        .expect("channel sender");
    let rx = Channel::<Rec>::receiver(&chan).expect("channel receiver");
    assert_eq!((rx.capacity(), rx.overflow()), (64, Overflow::Block));
    let _second = Channel::<Rec>::sender(&chan).expect("second producer");
    assert!(matches!(
        Channel::<Rec>::sender(&chan),
        Err(OpenError::ProducersFull { max: 2, .. })
    ));
}

#[test]
fn a_sender_adopts_every_option_a_receiver_created_with() {
    let name = unique_name("adopt-tx");
    let _cleanup = Cleanup(name.clone());
    let mut rx = Route::<Rec>::builder(&name)
        .capacity(4)
        .overflow(Overflow::Block)
        .max_receivers(2)
        .receiver()
        .expect("receiver");
    let mut tx = Route::<Rec>::sender(&name).expect("sender");
    assert_eq!(
        (tx.capacity(), tx.mode(), tx.overflow(), tx.max_receivers()),
        (4, Mode::Broadcast, Overflow::Block, 2)
    );
    // Lossless with 4 slots, as the receiver asked: the fifth record waits.
    for seq in 0..4 {
        tx.try_send(Rec::new(seq)).expect("room");
    }
    assert!(matches!(
        tx.try_send(Rec::new(4)),
        Err(TrySendError::Full(_))
    ));
    assert_eq!(rx.try_recv().expect("record").seq, 0);
    tx.try_send(Rec::new(4)).expect("room again");

    // Raw ends adopt the same way.
    let layout = RecordLayout::of::<Rec>();
    let raw_rx = raw::route(&name, layout).receiver().expect("raw receiver");
    assert_eq!((raw_rx.capacity(), raw_rx.overflow()), (4, Overflow::Block));
}

#[test]
fn an_option_set_explicitly_is_checked_naming_the_field() {
    let name = unique_name("adopt-explicit");
    let _cleanup = Cleanup(name.clone());
    let _tx = Channel::<Rec>::builder(&name)
        .capacity(64)
        .max_receivers(8)
        .max_producers(4)
        .sender()
        .expect("sender");
    let b = || Channel::<Rec>::builder(&name);
    assert_eq!(mismatch_field(b().capacity(128).receiver()), "capacity");
    assert_eq!(mismatch_field(b().mode(Mode::Unicast).receiver()), "mode");
    assert_eq!(
        mismatch_field(b().overflow(Overflow::Block).receiver()),
        "overflow"
    );
    assert_eq!(
        mismatch_field(b().max_receivers(64).receiver()),
        "max_receivers"
    );
    assert_eq!(
        mismatch_field(b().max_producers(64).sender()),
        "max_producers"
    );
    // The same values, stated, are accepted; so is any wait strategy.
    let rx = b()
        .capacity(64)
        .mode(Mode::Broadcast)
        .overflow(Overflow::Overwrite)
        .max_receivers(8)
        .max_producers(4)
        .wait(Wait::Block)
        .receiver()
        .expect("same options");
    assert_eq!(rx.capacity(), 64);
    let raw_capacity = raw::channel(&name, RecordLayout::of::<Rec>())
        .capacity(32)
        .receiver();
    assert_eq!(mismatch_field(raw_capacity), "capacity");
}

#[test]
fn the_record_type_and_family_are_checked_with_every_option_unset() {
    let name = unique_name("adopt-type");
    let _cleanup = Cleanup(name.clone());
    let _tx = Route::<Rec>::builder(&name)
        .capacity(1 << 16)
        .sender()
        .expect("sender");
    assert_eq!(mismatch_field(Route::<Other>::receiver(&name)), "type name");
    assert_eq!(
        mismatch_field(Route::<[u64; 9]>::builder(&name).schema("Rec").receiver()),
        "record size"
    );
    assert_eq!(
        mismatch_field(Route::<[u32; 16]>::builder(&name).schema("Rec").receiver()),
        "record alignment"
    );
    assert_eq!(mismatch_field(Channel::<Rec>::receiver(&name)), "family");
    let bigger = RecordLayout::new(size_of::<Rec>() + 8, 8, "Rec").expect("layout");
    assert_eq!(
        mismatch_field(raw::route(&name, bigger).receiver()),
        "record size"
    );
}

#[test]
fn an_explicit_overflow_is_not_compared_with_a_unicast_segment() {
    // Unicast is lossless whatever the overflow option says (`Builder::mode`).
    let name = unique_name("adopt-unicast");
    let _cleanup = Cleanup(name.clone());
    let _tx = Route::<Rec>::builder(&name)
        .mode(Mode::Unicast)
        .sender()
        .expect("sender");
    let rx = Route::<Rec>::builder(&name)
        .overflow(Overflow::Overwrite)
        .receiver()
        .expect("receiver");
    assert_eq!((rx.mode(), rx.overflow()), (Mode::Unicast, Overflow::Block));
}

#[test]
fn a_segment_recreated_with_other_options_between_two_opens_is_adopted_afresh() {
    let name = unique_name("adopt-recreated");
    let _cleanup = Cleanup(name.clone());
    // First life: 64 slots, broadcast, lossless.
    let tx = Route::<Rec>::builder(&name)
        .capacity(64)
        .overflow(Overflow::Block)
        .sender()
        .expect("first sender");
    let rx = Route::<Rec>::receiver(&name).expect("first receiver");
    assert_eq!((rx.capacity(), rx.overflow()), (64, Overflow::Block));
    // Everyone leaves; the next opener re-creates it with its own options.
    drop((tx, rx));
    let mut tx = Route::<Rec>::builder(&name)
        .capacity(256)
        .mode(Mode::Unicast)
        .sender()
        .expect("second sender");
    let mut rx = Route::<Rec>::receiver(&name).expect("second receiver");
    assert_eq!((rx.capacity(), rx.mode()), (256, Mode::Unicast));
    tx.send(Rec::new(9)).expect("send");
    assert_eq!(rx.try_recv().expect("record").seq, 9);

    // Removed and re-created while an old receiver still holds the first file: the
    // old handle keeps the segment it validated, a new open adopts the new one.
    assert!(Route::<Rec>::remove(&name).expect("remove"));
    let _third = Route::<Rec>::builder(&name)
        .capacity(8)
        .max_receivers(5)
        .sender()
        .expect("third sender");
    let fresh = Route::<Rec>::receiver(&name).expect("third receiver");
    assert_eq!(
        (fresh.capacity(), fresh.mode(), fresh.max_receivers()),
        (8, Mode::Broadcast, 5)
    );
    assert_eq!((rx.capacity(), rx.mode()), (256, Mode::Unicast));
    drop(tx);
}

#[test]
fn a_segment_nobody_has_open_is_re_created_with_the_defaults_for_unset_options() {
    let name = unique_name("adopt-stale");
    let _cleanup = Cleanup(name.clone());
    drop(
        Route::<Rec>::builder(&name)
            .capacity(64)
            .sender()
            .expect("first sender"),
    );
    // The file is left behind, with no participant: it does not count as existing.
    let rx = Route::<Rec>::receiver(&name).expect("receiver");
    assert_eq!(rx.capacity(), shmchan::DEFAULT_CAPACITY);
}

#[test]
fn openers_racing_to_create_all_end_up_with_the_segment_s_options() {
    // Three threads open the same fresh name at once, two with no option and one
    // sender with 64 slots. Whoever creates decides: every handle that opened reports
    // the options of the one segment, and the sender either created it (64) or was
    // refused naming the capacity.
    for round in 0..20 {
        let name = unique_name(&format!("adopt-race-{round}"));
        let _cleanup = Cleanup(name.clone());
        let barrier = std::sync::Barrier::new(3);
        let (tx, rxs) = std::thread::scope(|s| {
            let rxs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Route::<Rec>::receiver(&name).expect("receiver")
                    })
                })
                .collect();
            let tx = s.spawn(|| {
                barrier.wait();
                Route::<Rec>::builder(&name).capacity(64).sender()
            });
            let tx = tx.join().expect("sender thread");
            let rxs: Vec<_> = rxs
                .into_iter()
                .map(|h| h.join().expect("receiver thread"))
                .collect();
            (tx, rxs)
        });
        let capacity = rxs[0].capacity();
        assert!(rxs.iter().all(|rx| rx.capacity() == capacity));
        match tx {
            Ok(tx) => assert_eq!((tx.capacity(), capacity), (64, 64)),
            Err(e) => {
                assert_eq!(capacity, shmchan::DEFAULT_CAPACITY);
                assert_eq!(mismatch_field::<()>(Err(e)), "capacity");
            }
        }
    }
}

#[test]
fn an_adopted_capacity_is_validated_against_the_stored_layout_and_file() {
    // A peer rewrites the capacity in the header of a live segment: an opener that
    // adopts it must not map by it. The stored offsets and the file length no longer
    // match the layout recomputed from it, so the open is refused.
    let name = unique_name("adopt-forged");
    let _cleanup = Cleanup(name.clone());
    let _tx = Route::<Rec>::builder(&name)
        .capacity(8)
        .sender()
        .expect("sender");
    let path = std::path::Path::new("/dev/shm").join(format!("shmchan.{name}"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the segment file");
    // The header's capacity word (see src/segment/header.rs).
    const CAPACITY_OFFSET: u64 = 56;
    std::os::unix::fs::FileExt::write_all_at(&file, &(1u64 << 20).to_le_bytes(), CAPACITY_OFFSET)
        .expect("forge the capacity");
    match Route::<Rec>::receiver(&name) {
        Err(OpenError::Corrupt { reason, .. }) => {
            assert!(reason.contains("offsets"), "{reason}")
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(rx) => panic!("opened with the forged capacity {}", rx.capacity()),
    }
}
