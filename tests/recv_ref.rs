//! `Receiver::recv_ref`: records read in place in lossless modes (the slot is held
//! while the guard lives), a copy in Overwrite mode, and a process killed while holding
//! a record: evicted (broadcast) or its record delivered to another receiver (unicast).
//! Large records (1 KiB, 64 KiB) from another process, every word checked.

mod common;

use std::time::Duration;

use common::{role, spawn, unique_name, var, Rec};
use shmchan::{
    Channel, Mode, Overflow, RecvError, RecvTimeoutError, Route, TryRecvError, TrySendError, Wait,
};

const ENTRY: &str = "child";
const SHORT: Duration = Duration::from_secs(20);
const TICK_WAIT: Duration = Duration::from_secs(10);

fn block(name: &str) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder(name)
        .capacity(2)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

fn unicast(name: &str) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name)
        .capacity(2)
        .mode(Mode::Unicast)
        .wait(Wait::Block)
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    let builder = if var("MODE") == "unicast" {
        unicast(&name)
    } else {
        block(&name)
    };
    match role.as_str() {
        // Streams COUNT large records of SIZE words (every word derived from the
        // record's number) into a segment of MODE, then leaves.
        "large-sender" => {
            let count: u64 = var("COUNT").parse().expect("COUNT");
            match var("SIZE").as_str() {
                "128" => send_large::<128>(&name, count),
                "8192" => send_large::<8192>(&name, count),
                other => panic!("size {other}"),
            }
        }
        // Holds the first record it receives in place, says which, and waits to be
        // killed.
        "holder" => {
            let mut rx = builder.receiver().expect("open receiver");
            println!("READY");
            let held = rx.recv_ref_timeout(SHORT).expect("a record");
            assert!(held.is_in_place());
            println!("HOLDING {}", held.seq);
            std::thread::sleep(Duration::from_secs(60));
            drop(held);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_held_broadcast_record_stays_put_and_holds_the_sender_back_until_dropped() {
    let name = unique_name("ref-block");
    let mut tx = block(&name).sender().expect("sender");
    let mut rx = block(&name).receiver().expect("receiver");
    tx.send(Rec::new(0)).expect("send");
    tx.send(Rec::new(1)).expect("send");
    {
        let held = rx.try_recv_ref().expect("record 0");
        assert!(held.is_in_place());
        assert_eq!(held.seq, 0);
        // Its slot is the next one the sender would write: not while it is held.
        assert!(matches!(
            tx.try_send(Rec::new(2)),
            Err(TrySendError::Full(_))
        ));
        assert!(held.is_intact() && held.seq == 0, "unchanged while held");
    }
    tx.try_send(Rec::new(2)).expect("room once let go");
    let mut got = Vec::new();
    while let Ok(r) = rx.try_recv_ref() {
        assert!(r.is_intact());
        got.push(r.seq);
    }
    assert_eq!(got, [1, 2]);
    assert_eq!(rx.try_recv_ref().map(|r| r.seq), Err(TryRecvError::Empty));
    assert!(matches!(
        rx.recv_ref_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    ));
    drop(tx);
    assert!(matches!(rx.recv_ref(), Err(RecvError::Disconnected)));
    drop(rx);
    let _ = Route::<Rec>::remove(&name);
}

#[test]
fn unicast_records_held_by_two_receivers_are_each_taken_once() {
    let name = unique_name("ref-unicast");
    let mut tx = unicast(&name).sender().expect("sender");
    let mut a = unicast(&name).receiver().expect("a");
    let mut b = unicast(&name).receiver().expect("b");
    tx.send(Rec::new(0)).expect("send");
    tx.send(Rec::new(1)).expect("send");
    let ha = a.try_recv_ref().expect("a takes 0");
    let hb = b.try_recv_ref().expect("b takes 1");
    assert_eq!((ha.seq, hb.seq), (0, 1));
    assert!(ha.is_in_place() && hb.is_in_place());
    assert!(matches!(
        tx.try_send(Rec::new(2)),
        Err(TrySendError::Full(_))
    ));
    drop(ha);
    tx.try_send(Rec::new(2)).expect("0's slot settled");
    drop(hb);
    assert_eq!(a.recv_ref().map(|r| r.seq), Ok(2));
    assert_eq!(b.try_recv_ref().map(|r| r.seq), Err(TryRecvError::Empty));
    drop((tx, a, b));
    let _ = Route::<Rec>::remove(&name);
}

#[test]
fn overwrite_mode_gives_a_copy_and_reports_lags() {
    let name = unique_name("ref-overwrite");
    let builder = Route::<Rec>::builder(&name).capacity(2);
    let mut tx = builder.clone().sender().expect("sender");
    let mut rx = builder.receiver().expect("receiver");
    for i in 0..5 {
        tx.send(Rec::new(i)).expect("send");
    }
    assert!(matches!(rx.recv_ref(), Err(RecvError::Lagged(3))));
    let r = rx.recv_ref().expect("record 3");
    assert!(!r.is_in_place());
    assert_eq!(r.seq, 3);
    drop(r);
    // A copy holds nothing: the sender laps freely.
    let kept = rx.recv_ref().expect("record 4");
    drop(kept);
    drop((tx, rx));
    let _ = Route::<Rec>::remove(&name);
}

#[test]
fn a_gap_reaches_recv_ref_as_a_lag() {
    use shmchan::raw::{self, RecordLayout};
    let name = unique_name("ref-gap");
    let mut rx = block(&name).receiver().expect("receiver");
    let mut tx = raw::route(&name, RecordLayout::of::<Rec>())
        .capacity(2)
        .overflow(Overflow::Block)
        .sender()
        .expect("raw sender");
    tx.publish_gap(12).expect("gap");
    tx.send_bytes(bytemuck::bytes_of(&Rec::new(13)))
        .expect("send");
    assert!(matches!(rx.recv_ref(), Err(RecvError::Lagged(12))));
    assert_eq!(rx.recv_ref().map(|r| r.seq), Ok(13));
    drop((tx, rx));
    let _ = Route::<Rec>::remove(&name);
}

/// A receiver process killed while holding a record in place: the lossless sender
/// evicts it (within liveness ticks) and goes on; the other receiver loses nothing.
#[test]
fn a_broadcast_holder_killed_is_evicted_and_the_sender_goes_on() {
    let name = unique_name("ref-kill-b");
    let vars = [("NAME", name.clone()), ("MODE", "broadcast".to_owned())];
    let mut holder = spawn(ENTRY, "holder", &vars);
    holder.expect_line("READY", SHORT);
    let mut tx = block(&name).sender().expect("sender");
    let mut rx = block(&name).receiver().expect("receiver");
    tx.send(Rec::new(0)).expect("send");
    assert_eq!(holder.expect_line("HOLDING", SHORT), "HOLDING 0");
    tx.send(Rec::new(1)).expect("send");
    // Full: the holder's cursor is at 0.
    assert!(matches!(
        tx.try_send(Rec::new(2)),
        Err(TrySendError::Full(_))
    ));
    assert_eq!(rx.recv().map(|r| r.seq), Ok(0));
    holder.kill9();
    tx.send_timeout(Rec::new(2), TICK_WAIT)
        .expect("the dead holder is evicted");
    assert_eq!(rx.recv().map(|r| r.seq), Ok(1));
    assert_eq!(rx.recv().map(|r| r.seq), Ok(2));
    drop((tx, rx));
    let _ = Route::<Rec>::remove(&name);
}

/// A unicast receiver process killed while holding a record: the record is delivered
/// to another receiver (rescued), exactly once, and its slot is freed.
#[test]
fn a_unicast_holder_killed_has_its_record_rescued_once() {
    let name = unique_name("ref-kill-u");
    let vars = [("NAME", name.clone()), ("MODE", "unicast".to_owned())];
    let mut holder = spawn(ENTRY, "holder", &vars);
    holder.expect_line("READY", SHORT);
    let mut tx = unicast(&name).sender().expect("sender");
    tx.send(Rec::new(0)).expect("send");
    assert_eq!(holder.expect_line("HOLDING", SHORT), "HOLDING 0");
    let mut rx = unicast(&name).receiver().expect("receiver");
    tx.send(Rec::new(1)).expect("send");
    assert_eq!(rx.recv().map(|r| r.seq), Ok(1));
    holder.kill9();
    let rescued = rx.recv_timeout(TICK_WAIT).expect("rescued");
    assert_eq!(rescued.seq, 0);
    tx.send_timeout(Rec::new(2), TICK_WAIT)
        .expect("the rescued slot is free");
    assert_eq!(rx.recv().map(|r| r.seq), Ok(2));
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    drop((tx, rx));
    let _ = Route::<Rec>::remove(&name);
}

/// A unicast receiver process killed while holding a record in place (between C2 and
/// C3), rescued by a receiver waiting in `recv_ref`: the rescuer gets the record as a
/// private copy, settled at once (a hold in place would not be exclusive: another
/// rescuer could copy and settle it, and the sender rewrite it under the reference),
/// so the sender reuses its slot while the guard lives and the guard still reads
/// record 0, intact.
#[test]
fn a_unicast_holder_killed_has_its_record_rescued_by_recv_ref_as_a_copy() {
    let name = unique_name("ref-kill-uref");
    let vars = [("NAME", name.clone()), ("MODE", "unicast".to_owned())];
    let mut holder = spawn(ENTRY, "holder", &vars);
    holder.expect_line("READY", SHORT);
    let mut tx = unicast(&name).sender().expect("sender");
    tx.send(Rec::new(0)).expect("send");
    assert_eq!(holder.expect_line("HOLDING", SHORT), "HOLDING 0");
    let mut rx = unicast(&name).receiver().expect("receiver");
    holder.kill9();
    {
        let rescued = rx.recv_ref_timeout(TICK_WAIT).expect("rescued");
        assert_eq!(rescued.seq, 0);
        assert!(!rescued.is_in_place(), "a rescued record is held as a copy");
        tx.send(Rec::new(1)).expect("send");
        tx.try_send(Rec::new(2))
            .expect("record 0's slot is free while its copy is held");
        assert!(
            rescued.is_intact() && rescued.seq == 0,
            "unchanged while held"
        );
    }
    let mut got = Vec::new();
    while let Ok(r) = rx.try_recv_ref() {
        assert!(r.is_intact() && r.is_in_place());
        got.push(r.seq);
    }
    assert_eq!(got, [1, 2]);
    drop((tx, rx));
    let _ = Route::<Rec>::remove(&name);
}

/// Word `k` of large record `i`.
fn large_word(i: u64, k: usize) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k as u64
}

fn large_builder<const W: usize>(name: &str, mode: &str) -> shmchan::Builder<[u64; W]> {
    let b = Route::<[u64; W]>::builder(name)
        .capacity(8)
        .wait(Wait::Block);
    match mode {
        "unicast" => b.mode(Mode::Unicast),
        "block" => b.overflow(Overflow::Block),
        _ => b.overflow(Overflow::Overwrite),
    }
}

fn send_large<const W: usize>(name: &str, count: u64) {
    let mut tx = large_builder::<W>(name, &var("MODE"))
        .sender()
        .expect("open sender");
    tx.wait_for_receivers(1, SHORT).expect("receiver attaches");
    let mut record = Box::new([0u64; W]);
    for i in 0..count {
        for (k, w) in record.iter_mut().enumerate() {
            *w = large_word(i, k);
        }
        tx.send_timeout(*record, SHORT).expect("send");
    }
    println!("SENT {count}");
}

/// Large records from another process, read in place with `recv_ref` (a copy in
/// Overwrite mode), every word checked: nothing torn, in order; lossless modes lose
/// nothing, Overwrite accounts for every record it missed as a lag.
fn large_records_across_processes<const W: usize>(mode: &str, count: u64) {
    let name = unique_name(&format!("ref-large-{W}-{mode}"));
    let mut rx = large_builder::<W>(&name, mode)
        .receiver()
        .expect("receiver");
    let vars = [
        ("NAME", name.clone()),
        ("MODE", mode.to_owned()),
        ("SIZE", W.to_string()),
        ("COUNT", count.to_string()),
    ];
    let mut sender = spawn(ENTRY, "large-sender", &vars);
    let (mut next, mut lagged) = (0u64, 0u64);
    loop {
        match rx.recv_ref_timeout(SHORT) {
            Ok(r) => {
                assert_eq!(r.is_in_place(), mode != "overwrite", "{mode}");
                assert_eq!(
                    r[0],
                    large_word(next, 0),
                    "{mode} {W}: lost, duplicated or reordered at {next}"
                );
                assert!(
                    r.iter().enumerate().all(|(k, &w)| w == large_word(next, k)),
                    "{mode} {W}: torn record {next}"
                );
                next += 1;
            }
            Err(RecvTimeoutError::Lagged(n)) => {
                assert_eq!(mode, "overwrite", "a lossless receiver lagged");
                lagged += n;
                next += n;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{mode} {W}: {e}"),
        }
    }
    assert_eq!(next, count, "{mode} {W}: received + lagged");
    assert_eq!(rx.lagged_total(), lagged);
    sender.expect_line("SENT", SHORT);
    sender.expect_success(SHORT);
    drop(rx);
    let _ = Route::<[u64; W]>::remove(&name);
}

#[test]
fn one_kib_records_across_processes_in_every_mode() {
    for mode in ["block", "unicast", "overwrite"] {
        large_records_across_processes::<128>(mode, 2000);
    }
}

#[test]
fn sixty_four_kib_records_across_processes_in_every_mode() {
    for mode in ["block", "unicast", "overwrite"] {
        large_records_across_processes::<8192>(mode, 200);
    }
}
