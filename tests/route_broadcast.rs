//! `Route<T>` in `Mode::Broadcast`, across real processes.
//!
//! Each multi-process test re-executes this test binary as children (the ignored test
//! `child` is their entry point). Children wait with `Wait::Block`, so no test has
//! more than two threads spinning at a time (the suite must pass on a 2-core machine),
//! and every wait has a timeout.

mod common;

use std::time::{Duration, Instant};

use common::{cpu_time, role, spawn, unique_name, var, Cleanup, Rec};
use shmchan::{OpenError, Overflow, RecvError, RecvTimeoutError, Route, TryRecvError, Wait};

const ENTRY: &str = "child";
const LONG: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(20);

/// The lossless segment the children share; `CAPACITY` (default 4096) sizes it.
fn lossless(name: &str) -> shmchan::Builder<Rec> {
    let capacity = std::env::var("CAPACITY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4096);
    Route::<Rec>::builder(name)
        .capacity(capacity)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    match role.as_str() {
        // Receives until disconnected, checking every record is the next in sequence.
        "lossless-receiver" => {
            let mut rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            let mut next = None::<u64>;
            let mut count = 0u64;
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record {rec:?}");
                        if let Some(want) = next {
                            assert_eq!(rec.seq, want, "lost, duplicated or reordered");
                        } else {
                            println!("FIRST {}", rec.seq);
                        }
                        next = Some(rec.seq + 1);
                        count += 1;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("receiver: {e}"),
                }
            }
            println!("DONE {count}");
        }
        "lossless-sender" => {
            let count: u64 = var("COUNT").parse().expect("COUNT");
            let receivers: usize = var("RECEIVERS").parse().expect("RECEIVERS");
            let mut tx = lossless(&name).sender().expect("open sender");
            tx.wait_for_receivers(receivers, SHORT)
                .expect("receivers attach");
            for seq in 0..count {
                tx.send_timeout(Rec::new(seq), LONG).expect("send");
            }
            println!("SENT {count}");
        }
        // Joins and never reads: holds a lossless producer back until killed.
        "stuck-receiver" => {
            let _rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            std::thread::sleep(LONG);
        }
        // Joins, then leaves at once.
        "leaving-receiver" => {
            let rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            drop(rx);
            println!("LEFT");
        }
        "overwrite-sender" => {
            let count: u64 = var("COUNT").parse().expect("COUNT");
            let mut tx = Route::<Rec>::builder(&name)
                .capacity(64)
                .sender()
                .expect("open sender");
            tx.wait_for_receivers(1, SHORT).expect("receiver attaches");
            for seq in 0..count {
                tx.send(Rec::new(seq)).expect("send");
            }
        }
        // Sends some records, then idles until killed.
        "hanging-sender" => {
            let mut tx = lossless(&name).sender().expect("open sender");
            tx.wait_for_receivers(1, SHORT).expect("receiver attaches");
            for seq in 0..10 {
                tx.send(Rec::new(seq)).expect("send");
            }
            println!("SENT");
            std::thread::sleep(LONG);
        }
        "idle-receiver" => {
            let wait = match var("WAIT").as_str() {
                "block" => Wait::Block,
                _ => Wait::Adaptive,
            };
            let mut rx = Route::<Rec>::builder(&name)
                .wait(wait)
                .receiver()
                .expect("open receiver");
            println!("READY");
            match rx.recv_timeout(LONG) {
                Err(RecvTimeoutError::Disconnected) => println!("DONE"),
                other => panic!("idle receiver: {:?}", other.map(|r| r.seq)),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn lossless_one_sender_three_receivers_a_million_records() {
    let name = unique_name("lossless3");
    let _cleanup = Cleanup(name.clone());
    let count = 1_000_000u64;
    let vars = [
        ("NAME", name.clone()),
        ("COUNT", count.to_string()),
        ("RECEIVERS", "3".into()),
    ];
    let mut receivers: Vec<_> = (0..3)
        .map(|_| spawn(ENTRY, "lossless-receiver", &vars))
        .collect();
    for rx in &mut receivers {
        rx.expect_line("READY", SHORT);
    }
    let mut sender = spawn(ENTRY, "lossless-sender", &vars);
    sender.expect_line(&format!("SENT {count}"), LONG);
    sender.expect_success(SHORT);
    for rx in &mut receivers {
        assert_eq!(rx.expect_line("FIRST", SHORT), "FIRST 0");
        assert_eq!(rx.expect_line("DONE", LONG), format!("DONE {count}"));
        rx.expect_success(SHORT);
    }
}

/// A process that may not call `membarrier` (a seccomp filter; simulated here with a
/// test-only variable) pairs full fences with its peers' light ones: nothing is lost,
/// duplicated or reordered and nothing hangs, whether the degraded side is a sleeping
/// receiver or a sender parked on a full ring. (Its 1 ms sleep cap is not shown here: a
/// wake-up missed without it costs a 50 ms tick, which no test may time.)
#[test]
fn a_process_without_membarrier_still_gets_every_record() {
    let count = 100_000u64;
    for degraded in ["receivers", "sender"] {
        let name = unique_name("degraded");
        let _cleanup = Cleanup(name.clone());
        let vars = [
            ("NAME", name.clone()),
            ("COUNT", count.to_string()),
            ("RECEIVERS", "2".into()),
        ];
        let mut with_flag = vars.to_vec();
        with_flag.push(("SHMCHAN_TEST_BARRIER_DEGRADED", "1".into()));
        let (rx_vars, tx_vars) = if degraded == "receivers" {
            (&with_flag[..], &vars[..])
        } else {
            (&vars[..], &with_flag[..])
        };
        let mut receivers: Vec<_> = (0..2)
            .map(|_| spawn(ENTRY, "lossless-receiver", rx_vars))
            .collect();
        for rx in &mut receivers {
            rx.expect_line("READY", SHORT);
        }
        let mut sender = spawn(ENTRY, "lossless-sender", tx_vars);
        sender.expect_line(&format!("SENT {count}"), LONG);
        sender.expect_success(SHORT);
        for rx in &mut receivers {
            assert_eq!(rx.expect_line("FIRST", SHORT), "FIRST 0", "{degraded}");
            assert_eq!(
                rx.expect_line("DONE", LONG),
                format!("DONE {count}"),
                "{degraded}"
            );
            rx.expect_success(SHORT);
        }
    }
}

#[test]
fn lapped_receiver_gets_the_exact_lag_then_valid_records() {
    let name = unique_name("lag");
    let _cleanup = Cleanup(name.clone());
    let mut tx = Route::<Rec>::builder(&name)
        .capacity(8)
        .sender()
        .expect("sender");
    let mut rx = Route::<Rec>::builder(&name)
        .capacity(8)
        .receiver()
        .expect("receiver");
    for seq in 0..20 {
        tx.send(Rec::new(seq)).expect("send");
    }
    // 20 published, 8 slots: records 0..12 are gone.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(12)));
    for seq in 12..20 {
        assert_eq!(rx.recv().expect("record").seq, seq);
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(rx.lagged_total(), 12);
    // Blocking receive reports lag the same way.
    for seq in 20..40 {
        tx.send(Rec::new(seq)).expect("send");
    }
    assert_eq!(rx.recv(), Err(RecvError::Lagged(12)));
    assert_eq!(rx.recv().expect("record").seq, 32);
}

#[test]
fn overwrite_across_processes_never_returns_a_torn_record() {
    let name = unique_name("torn");
    let _cleanup = Cleanup(name.clone());
    let count = 2_000_000u64;
    let mut rx = Route::<Rec>::builder(&name)
        .capacity(64)
        .wait(Wait::Block)
        .receiver()
        .expect("receiver");
    let mut sender = spawn(
        ENTRY,
        "overwrite-sender",
        &[("NAME", name.clone()), ("COUNT", count.to_string())],
    );
    let (mut received, mut lagged, mut last) = (0u64, 0u64, None::<u64>);
    let deadline = Instant::now() + LONG;
    loop {
        match rx.recv_timeout(LONG) {
            Ok(rec) => {
                assert!(rec.is_intact(), "torn record {rec:?}");
                if let Some(l) = last {
                    assert!(rec.seq > l, "out of order: {} after {l}", rec.seq);
                }
                last = Some(rec.seq);
                received += 1;
                // Be slow now and then, so the producer laps us.
                if received % 50_000 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Err(RecvTimeoutError::Lagged(n)) => lagged += n,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("receiver: {e}"),
        }
        assert!(Instant::now() < deadline, "test took too long");
    }
    sender.expect_success(SHORT);
    assert!(lagged > 0, "the producer never lapped the receiver");
    assert_eq!(
        received + lagged,
        count,
        "every record is either received or reported lagged"
    );
    assert_eq!(last, Some(count - 1));
}

#[test]
fn receiver_count_late_join_leave_and_sigkill() {
    let name = unique_name("count");
    let _cleanup = Cleanup(name.clone());
    let vars = [("NAME", name.clone()), ("CAPACITY", "16".to_owned())];
    let mut tx = lossless(&name).capacity(16).sender().expect("sender");
    assert_eq!(tx.receiver_count(), 0);

    let mut a = spawn(ENTRY, "lossless-receiver", &vars);
    a.expect_line("READY", SHORT);
    assert_eq!(tx.wait_for_receivers(1, SHORT), Ok(1));
    for seq in 0..5 {
        tx.send(Rec::new(seq)).expect("send");
    }
    assert_eq!(a.expect_line("FIRST", SHORT), "FIRST 0");

    // A receiver that joins late starts at the head.
    let mut b = spawn(ENTRY, "lossless-receiver", &vars);
    b.expect_line("READY", SHORT);
    assert_eq!(tx.receiver_count(), 2);
    for seq in 5..10 {
        tx.send(Rec::new(seq)).expect("send");
    }
    assert_eq!(b.expect_line("FIRST", SHORT), "FIRST 5");

    // One that leaves normally.
    let mut c = spawn(ENTRY, "leaving-receiver", &vars);
    c.expect_line("LEFT", SHORT);
    c.expect_success(SHORT);
    assert_eq!(tx.receiver_count(), 2);

    // One killed with SIGKILL.
    b.kill9();
    assert_eq!(tx.receiver_count(), 1);

    // One that stops reading holds the lossless producer back until it is killed; then
    // it is evicted and the producer continues.
    let mut stuck = spawn(ENTRY, "stuck-receiver", &vars);
    stuck.expect_line("READY", SHORT);
    assert_eq!(tx.receiver_count(), 2);
    for seq in 10..26 {
        tx.send_timeout(Rec::new(seq), SHORT)
            .expect("ring has room for 16");
    }
    assert!(matches!(
        tx.try_send(Rec::new(26)),
        Err(shmchan::TrySendError::Full(_))
    ));
    stuck.kill9();
    let started = Instant::now();
    for seq in 26..100 {
        tx.send_timeout(Rec::new(seq), SHORT)
            .expect("dead receiver is evicted");
    }
    eprintln!(
        "producer resumed {:?} after the stuck receiver was killed",
        started.elapsed()
    );
    assert_eq!(tx.receiver_count(), 1);
    drop(tx);
    assert_eq!(a.expect_line("DONE", SHORT), "DONE 100");
    a.expect_success(SHORT);
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
fn opening_with_different_options_or_type_fails_naming_the_field() {
    let name = unique_name("mismatch");
    let _cleanup = Cleanup(name.clone());
    let _tx = Route::<Rec>::sender(&name).expect("sender");
    assert_eq!(mismatch_field(Route::<Other>::receiver(&name)), "type name");
    assert_eq!(
        mismatch_field(Route::<[u64; 9]>::builder(&name).schema("Rec").receiver()),
        "record size"
    );
    assert_eq!(
        mismatch_field(Route::<[u32; 16]>::builder(&name).schema("Rec").receiver()),
        "record alignment"
    );
    assert_eq!(
        mismatch_field(Route::<Rec>::builder(&name).capacity(8).receiver()),
        "capacity"
    );
    assert_eq!(
        mismatch_field(
            Route::<Rec>::builder(&name)
                .overflow(Overflow::Block)
                .receiver()
        ),
        "overflow"
    );
    assert_eq!(
        mismatch_field(Route::<Rec>::builder(&name).max_receivers(65).receiver()),
        "max_receivers"
    );
    // The schema id stands in for the type name: another type of the same layout
    // talks to the segment when it claims the same schema.
    let mut rx = Route::<Other>::builder(&name)
        .schema("Rec")
        .receiver()
        .expect("same schema");
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let e = Route::<Rec>::receiver(&name).err();
    assert!(e.is_none(), "the same options open fine: {e:?}");
    let text = mismatch_field_text(Route::<Rec>::builder(&name).capacity(8).receiver());
    assert!(
        text.contains("capacity is 4096 there, this side expects 8"),
        "{text}"
    );
}

fn mismatch_field_text<T>(result: Result<T, OpenError>) -> String {
    result.err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn bad_names_and_options_are_refused() {
    for bad in ["", "a/b", "a\0b", ".x", &"n".repeat(300)] {
        assert!(
            matches!(
                Route::<Rec>::receiver(bad),
                Err(OpenError::InvalidName { .. })
            ),
            "{bad:?} accepted"
        );
    }
    let name = unique_name("opts");
    let _cleanup = Cleanup(name.clone());
    for cap in [0, 1, 3, 1000] {
        let r = Route::<Rec>::builder(&name).capacity(cap).receiver();
        assert!(
            matches!(
                r,
                Err(OpenError::InvalidOption {
                    option: "capacity",
                    ..
                })
            ),
            "{cap}"
        );
    }
    let r = Route::<Rec>::builder(&name).max_receivers(0).receiver();
    assert!(matches!(
        r,
        Err(OpenError::InvalidOption {
            option: "max_receivers",
            ..
        })
    ));
    let r = Route::<Rec>::builder(&name).permissions(0o1777).receiver();
    assert!(matches!(
        r,
        Err(OpenError::InvalidOption {
            option: "permissions",
            ..
        })
    ));
    let r = Route::<Rec>::builder(&name).max_producers(0).receiver();
    assert!(matches!(
        r,
        Err(OpenError::InvalidOption {
            option: "max_producers",
            ..
        })
    ));
    // Nothing was created by the refused opens.
    assert!(!Route::<Rec>::remove(&name).expect("remove"));
}

#[test]
fn a_route_has_one_sender_at_a_time() {
    let name = unique_name("onesender");
    let _cleanup = Cleanup(name.clone());
    let tx = Route::<Rec>::sender(&name).expect("first sender");
    match Route::<Rec>::sender(&name) {
        Err(OpenError::SenderExists { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("second sender: {:?}", other.map(|_| ())),
    }
    drop(tx);
    let _again = Route::<Rec>::sender(&name).expect("the role is free after drop");
}

#[test]
fn receivers_drain_then_see_disconnected() {
    let name = unique_name("disc");
    let _cleanup = Cleanup(name.clone());
    // A receiver that starts before any sender waits rather than reporting a disconnect.
    let mut early = Route::<Rec>::receiver(&name).expect("receiver");
    assert_eq!(
        early.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    let mut tx = Route::<Rec>::sender(&name).expect("sender");
    let mut rx = Route::<Rec>::receiver(&name).expect("receiver");
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    for seq in 0..3 {
        tx.send(Rec::new(seq)).expect("send");
    }
    drop(tx);
    for r in [&mut early, &mut rx] {
        let got: Vec<u64> = r.iter().map(|rec| rec.seq).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(r.recv(), Err(RecvError::Disconnected));
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    }
    // A new sender takes over and the receivers continue with it.
    let mut tx = Route::<Rec>::sender(&name).expect("new sender");
    tx.send(Rec::new(3)).expect("send");
    assert_eq!(rx.recv().expect("record").seq, 3);
    assert_eq!(rx.try_iter().count(), 0);
}

#[test]
fn a_killed_sender_shows_as_disconnected_after_the_drain() {
    let name = unique_name("killsender");
    let _cleanup = Cleanup(name.clone());
    let mut rx = lossless(&name).receiver().expect("receiver");
    let mut sender = spawn(ENTRY, "hanging-sender", &[("NAME", name.clone())]);
    sender.expect_line("SENT", SHORT);
    sender.kill9();
    let started = Instant::now();
    for seq in 0..10 {
        assert_eq!(rx.recv_timeout(SHORT).expect("drained").seq, seq);
    }
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
    eprintln!("disconnect seen {:?} after SIGKILL", started.elapsed());
    // Its claim is reclaimed: a new sender may attach.
    let _tx = lossless(&name)
        .sender()
        .expect("new sender after the dead one");
}

#[test]
fn idle_receivers_use_no_cpu() {
    let name = unique_name("idle");
    let _cleanup = Cleanup(name.clone());
    let tx = Route::<Rec>::sender(&name).expect("sender");
    let mut peers: Vec<_> = ["block", "adaptive"]
        .iter()
        .map(|w| {
            spawn(
                ENTRY,
                "idle-receiver",
                &[("NAME", name.clone()), ("WAIT", (*w).into())],
            )
        })
        .collect();
    for p in &mut peers {
        p.expect_line("READY", SHORT);
    }
    std::thread::sleep(Duration::from_millis(200));
    let before: Vec<_> = peers.iter().map(|p| cpu_time(p.pid())).collect();
    std::thread::sleep(Duration::from_secs(1));
    for (p, b) in peers.iter().zip(before) {
        let used = cpu_time(p.pid()) - b;
        eprintln!("{} receiver used {used:?} of CPU in 1 s idle", p.role);
        assert!(
            used < Duration::from_millis(100),
            "idle receiver burned {used:?} in 1 s"
        );
    }
    drop(tx);
    for p in &mut peers {
        p.expect_line("DONE", SHORT);
        p.expect_success(SHORT);
    }
}

#[test]
fn segments_are_private_by_default_and_the_mode_is_an_option() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique_name("perm");
    let _cleanup = Cleanup(name.clone());
    let _rx = Route::<Rec>::receiver(&name).expect("receiver");
    let path = format!("/dev/shm/shmchan.{name}");
    let mode = std::fs::metadata(&path)
        .expect("segment file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let shared = unique_name("perm");
    let _cleanup2 = Cleanup(shared.clone());
    let _rx2 = Route::<Rec>::builder(&shared)
        .permissions(0o660)
        .receiver()
        .expect("receiver");
    let path = format!("/dev/shm/shmchan.{shared}");
    let mode = std::fs::metadata(&path)
        .expect("segment file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn loaned_slots_are_published_in_both_policies() {
    for overflow in [Overflow::Overwrite, Overflow::Block] {
        let name = unique_name("loan");
        let _cleanup = Cleanup(name.clone());
        let mut tx = Route::<Rec>::builder(&name)
            .overflow(overflow)
            .sender()
            .expect("sender");
        let mut rx = Route::<Rec>::builder(&name)
            .overflow(overflow)
            .receiver()
            .expect("receiver");
        for seq in 0..10 {
            let mut slot = tx.loan().expect("loan");
            *slot = Rec::new(seq);
            slot.publish().expect("publish");
        }
        // An abandoned loan publishes nothing; the next send reuses its slot.
        {
            let _abandoned = tx.loan().expect("loan");
        }
        tx.send(Rec::new(10)).expect("send");
        let got: Vec<Rec> = rx.try_iter().collect();
        assert_eq!(got.len(), 11, "{overflow:?}");
        for (seq, rec) in got.iter().enumerate() {
            assert_eq!(*rec, Rec::new(seq as u64), "{overflow:?}");
        }
    }
}

#[test]
fn a_custom_path_holds_the_segment() {
    let dir = std::env::temp_dir().join(unique_name("dir"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("seg");
    let mut tx = Route::<u64>::builder("custom")
        .path(&file)
        .sender()
        .expect("sender");
    let mut rx = Route::<u64>::builder("custom")
        .path(&file)
        .receiver()
        .expect("receiver");
    tx.send(7).expect("send");
    assert_eq!(rx.recv(), Ok(7));
    assert!(file.exists());
    // A file that is not a segment is never overwritten.
    let foreign = dir.join("foreign");
    std::fs::write(&foreign, b"precious data").expect("write");
    let r = Route::<u64>::builder("custom").path(&foreign).receiver();
    assert!(matches!(r, Err(OpenError::Corrupt { .. })), "{:?}", r.err());
    assert_eq!(std::fs::read(&foreign).expect("read"), b"precious data");
    drop((tx, rx));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
