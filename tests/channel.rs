//! `Channel<T>` (many producers) in both modes, and `Route<T>` in unicast mode, across
//! real processes. Children wait with `Wait::Block` (or pace themselves), so no test
//! has more than two threads spinning at a time (the suite must pass on a 2-core
//! machine); every wait has a timeout.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{role, spawn, unique_name, var, Cleanup, Peer, Rec};
use shmchan::{
    Channel, Mode, OpenError, Overflow, RecvTimeoutError, Route, SendTimeoutError, TrySendError,
    Wait,
};

const ENTRY: &str = "child";
const LONG: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(20);

/// Record `i` of producer `p`.
fn seq_of(p: u64, i: u64) -> u64 {
    p << 40 | i
}

fn split(seq: u64) -> (u64, u64) {
    (seq >> 40, seq & ((1 << 40) - 1))
}

fn unicast(name: &str) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name)
        .mode(Mode::Unicast)
        .wait(Wait::Block)
}

fn lossless_broadcast(name: &str) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

fn overwrite_broadcast(name: &str) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name).capacity(64).wait(Wait::Block)
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    let builder = match var("KIND").as_str() {
        "unicast" => unicast(&name),
        "lossless" => lossless_broadcast(&name),
        "overwrite" => overwrite_broadcast(&name),
        other => panic!("unknown kind {other}"),
    };
    match role.as_str() {
        // Sends COUNT records as producer P (forever if COUNT is 0), after waiting for
        // RECEIVERS receivers, pausing now and then if PACE is set.
        "producer" => {
            let p: u64 = var("P").parse().expect("P");
            let count: u64 = var("COUNT").parse().expect("COUNT");
            let receivers: usize = var("RECEIVERS").parse().expect("RECEIVERS");
            let pace = std::env::var("PACE").is_ok();
            let stop = std::env::var("STOP").ok().map(PathBuf::from);
            let mut tx = builder.sender().expect("open sender");
            tx.wait_for_receivers(receivers, SHORT)
                .expect("receivers attach");
            println!("SENDING");
            let mut i = 0u64;
            while count == 0 || i < count {
                tx.send_timeout(Rec::new(seq_of(p, i)), LONG).expect("send");
                i += 1;
                if pace && i % 256 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                    if stop.as_ref().is_some_and(|s| s.exists()) {
                        break;
                    }
                }
            }
            println!("SENT {i}");
        }
        // Receives until disconnected, writing every sequence number it got to OUT.
        "collector" => {
            let out = PathBuf::from(var("OUT"));
            let mut rx = builder.receiver().expect("open receiver");
            println!("READY");
            let mut got = Vec::new();
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record");
                        got.extend_from_slice(&rec.seq.to_le_bytes());
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("collector: {e}"),
                }
            }
            std::fs::write(&out, &got).expect("write OUT");
            println!("DONE {}", got.len() / 8);
        }
        // Receives until disconnected, checking each producer's records arrive in
        // order and complete.
        "in-order" => {
            let mut rx = builder.receiver().expect("open receiver");
            println!("READY");
            let mut next: HashMap<u64, u64> = HashMap::new();
            let mut total = 0u64;
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record");
                        let (p, i) = split(rec.seq);
                        let want = next.entry(p).or_insert(0);
                        assert_eq!(i, *want, "producer {p}: lost, duplicated or reordered");
                        *want += 1;
                        total += 1;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("receiver: {e}"),
                }
            }
            println!("DONE {total}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn vars(name: &str, kind: &str, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![("NAME", name.to_owned()), ("KIND", kind.to_owned())];
    v.extend_from_slice(extra);
    v
}

fn producer(name: &str, kind: &str, p: u64, count: u64, receivers: usize) -> Peer {
    let v = vars(
        name,
        kind,
        &[
            ("P", p.to_string()),
            ("COUNT", count.to_string()),
            ("RECEIVERS", receivers.to_string()),
        ],
    );
    spawn(ENTRY, "producer", &v)
}

#[test]
fn unicast_three_producers_three_receivers_every_record_exactly_once() {
    let name = unique_name("uni3x3");
    let _cleanup = Cleanup(name.clone());
    let per_producer = 333_334u64;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut collectors: Vec<(Peer, PathBuf)> = (0..3)
        .map(|c| {
            let out = dir.join(format!("c{c}"));
            let v = vars(&name, "unicast", &[("OUT", out.display().to_string())]);
            (spawn(ENTRY, "collector", &v), out)
        })
        .collect();
    for (c, _) in &mut collectors {
        c.expect_line("READY", SHORT);
    }
    let mut producers: Vec<Peer> = (0..3)
        .map(|p| producer(&name, "unicast", p, per_producer, 3))
        .collect();
    for p in &mut producers {
        p.expect_line("SENT", LONG);
        p.expect_success(SHORT);
    }
    let mut seen = vec![vec![false; per_producer as usize]; 3];
    let mut total = 0u64;
    for (c, out) in &mut collectors {
        let done: u64 = c.expect_line("DONE", LONG)[5..].parse().expect("count");
        c.expect_success(SHORT);
        let bytes = std::fs::read(&*out).expect("read OUT");
        assert_eq!(bytes.len() as u64, done * 8);
        for chunk in bytes.chunks_exact(8) {
            let (p, i) = split(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            let slot = &mut seen[p as usize][i as usize];
            assert!(!*slot, "record ({p}, {i}) delivered twice");
            *slot = true;
        }
        eprintln!("collector took {done} records");
        assert!(done > 0, "every receiver takes part");
        total += done;
    }
    assert_eq!(total, 3 * per_producer);
    assert!(seen.iter().flatten().all(|s| *s), "a record was lost");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lossless_broadcast_three_producers_two_receivers_in_order() {
    let name = unique_name("bc3x2");
    let _cleanup = Cleanup(name.clone());
    let per_producer = 100_000u64;
    let mut receivers: Vec<Peer> = (0..2)
        .map(|_| spawn(ENTRY, "in-order", &vars(&name, "lossless", &[])))
        .collect();
    for r in &mut receivers {
        r.expect_line("READY", SHORT);
    }
    let mut producers: Vec<Peer> = (0..3)
        .map(|p| producer(&name, "lossless", p, per_producer, 2))
        .collect();
    for p in &mut producers {
        p.expect_line("SENT", LONG);
        p.expect_success(SHORT);
    }
    for r in &mut receivers {
        assert_eq!(
            r.expect_line("DONE", LONG),
            format!("DONE {}", 3 * per_producer)
        );
        r.expect_success(SHORT);
    }
}

#[test]
fn overwrite_broadcast_reports_lag_and_never_tears() {
    let name = unique_name("bcover");
    let _cleanup = Cleanup(name.clone());
    let per_producer = 300_000u64;
    let mut rx = overwrite_broadcast(&name).receiver().expect("receiver");
    let mut producers: Vec<Peer> = (0..2)
        .map(|p| {
            let v = vars(
                &name,
                "overwrite",
                &[
                    ("P", p.to_string()),
                    ("COUNT", per_producer.to_string()),
                    ("RECEIVERS", "1".into()),
                    ("PACE", "1".into()),
                ],
            );
            spawn(ENTRY, "producer", &v)
        })
        .collect();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let (mut received, mut lagged) = (0u64, 0u64);
    let deadline = Instant::now() + LONG;
    loop {
        match rx.recv_timeout(LONG) {
            Ok(rec) => {
                assert!(rec.is_intact(), "torn record");
                let (p, i) = split(rec.seq);
                if let Some(l) = last.insert(p, i) {
                    assert!(i > l, "producer {p}: {i} after {l}");
                }
                received += 1;
                if received % 20_000 == 0 {
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
            Err(RecvTimeoutError::Lagged(n)) => lagged += n,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("receiver: {e}"),
        }
        assert!(Instant::now() < deadline, "took too long");
    }
    for p in &mut producers {
        p.expect_success(SHORT);
    }
    eprintln!("received {received}, lagged {lagged}");
    assert!(lagged > 0, "the producers never lapped the receiver");
    // Lag counts sequence numbers. With several producers a few of those are claims
    // that were voided (a producer lapped while it waited for its slot) and whose
    // record was sent again at a later number, so the sum may exceed the records.
    assert!(
        received + lagged >= 2 * per_producer,
        "{received} + {lagged}"
    );
    assert!(
        received + lagged <= 2 * per_producer + 2 * per_producer / 100,
        "{received} + {lagged}"
    );
}

#[test]
fn producers_killed_at_random_moments_never_stall_the_receivers() {
    let name = unique_name("killprod");
    let _cleanup = Cleanup(name.clone());
    let stop = std::env::temp_dir().join(format!("{name}.stop"));
    let mut rx = lossless_broadcast(&name).receiver().expect("receiver");
    let survivor_vars = |p: u64| {
        vars(
            &name,
            "lossless",
            &[
                ("P", p.to_string()),
                ("COUNT", "0".into()),
                ("RECEIVERS", "1".into()),
                ("PACE", "1".into()),
                ("STOP", stop.display().to_string()),
            ],
        )
    };
    let mut survivors: Vec<Peer> = (0..2)
        .map(|p| spawn(ENTRY, "producer", &survivor_vars(p)))
        .collect();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let check = |rec: Rec, next: &mut HashMap<u64, u64>| {
        assert!(rec.is_intact(), "corrupt record");
        let (p, i) = split(rec.seq);
        let want = next.entry(p).or_insert(0);
        if p < 2 {
            assert_eq!(i, *want, "survivor {p}: lost, duplicated or reordered");
        } else {
            assert!(i >= *want, "victim {p}: reordered");
        }
        *want = i + 1;
    };
    let mut seed = std::process::id() as u64 | 1;
    let kills = 20u64;
    let mut longest_gap = Duration::ZERO;
    for k in 0..kills {
        let mut victim = spawn(ENTRY, "producer", &survivor_vars(2 + k));
        victim.expect_line("SENDING", SHORT);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let until = Instant::now() + Duration::from_millis(2 + seed % 25);
        while Instant::now() < until {
            check(rx.recv_timeout(SHORT).expect("record"), &mut next);
        }
        victim.kill9();
        // The survivors' records keep coming, whatever the victim left behind.
        let killed = Instant::now();
        let mut last_record = Instant::now();
        while killed.elapsed() < Duration::from_millis(150) {
            check(
                rx.recv_timeout(SHORT).expect("record after the kill"),
                &mut next,
            );
            longest_gap = longest_gap.max(last_record.elapsed());
            last_record = Instant::now();
        }
    }
    // Stop the survivors and drain: they leave when they see the file, and the
    // receiver then sees every sender gone.
    std::fs::write(&stop, b"").expect("stop file");
    loop {
        match rx.recv_timeout(SHORT) {
            Ok(rec) => check(rec, &mut next),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("draining: {e}"),
        }
    }
    let mut sent = 0u64;
    for s in &mut survivors {
        sent += s.expect_line("SENT", LONG)[5..]
            .parse::<u64>()
            .expect("count");
        s.expect_success(SHORT);
    }
    let _ = std::fs::remove_file(&stop);
    let from_survivors = next.get(&0).copied().unwrap_or(0) + next.get(&1).copied().unwrap_or(0);
    eprintln!("{kills} producers killed; survivors' {sent} records all received; longest gap {longest_gap:?}");
    assert_eq!(from_survivors, sent);
}

#[test]
fn a_route_has_one_sender_and_a_channel_many() {
    let name = unique_name("senders");
    let _cleanup = Cleanup(name.clone());
    let _a = Route::<Rec>::builder(&name)
        .mode(Mode::Unicast)
        .sender()
        .expect("first");
    assert!(matches!(
        Route::<Rec>::builder(&name).mode(Mode::Unicast).sender(),
        Err(OpenError::SenderExists { .. })
    ));
    let other = unique_name("senders");
    let _cleanup2 = Cleanup(other.clone());
    let senders: Vec<_> = (0..5)
        .map(|_| {
            Channel::<Rec>::builder(&other)
                .max_producers(5)
                .sender()
                .expect("many")
        })
        .collect();
    assert!(matches!(
        Channel::<Rec>::builder(&other).max_producers(5).sender(),
        Err(OpenError::ProducersFull { max: 5, .. })
    ));
    drop(senders);
    let _again = Channel::<Rec>::builder(&other)
        .max_producers(5)
        .sender()
        .expect("freed");
    // The family is part of the segment's identity.
    assert!(matches!(
        Route::<Rec>::builder(&other).max_producers(5).receiver(),
        Err(OpenError::Mismatch {
            field: "family",
            ..
        })
    ));
}

#[test]
fn a_full_unicast_ring_gives_the_value_back_and_times_out() {
    for family in ["route", "channel"] {
        let name = unique_name("full");
        let _cleanup = Cleanup(name.clone());
        let builder = || match family {
            "route" => Route::<Rec>::builder(&name).mode(Mode::Unicast).capacity(4),
            _ => Channel::<Rec>::builder(&name)
                .mode(Mode::Unicast)
                .capacity(4),
        };
        let mut tx = builder().sender().expect("sender");
        let mut rx = builder().receiver().expect("receiver");
        for i in 0..4 {
            tx.try_send(Rec::new(i)).expect("room");
        }
        match tx.try_send(Rec::new(4)) {
            Err(TrySendError::Full(v)) => assert_eq!(v, Rec::new(4), "{family}"),
            other => panic!("{family}: expected Full, got {other:?}"),
        }
        let started = Instant::now();
        match tx.send_timeout(Rec::new(4), Duration::from_millis(30)) {
            Err(SendTimeoutError::Timeout(v)) => assert_eq!(v, Rec::new(4)),
            other => panic!("{family}: expected Timeout, got {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(rx.recv().expect("record"), Rec::new(0));
        tx.try_send(Rec::new(4)).expect("room after one was taken");
        let rest: Vec<u64> = rx.try_iter().map(|r| r.seq).collect();
        assert_eq!(rest, [1, 2, 3, 4], "{family}");
    }
}

#[test]
fn route_unicast_shares_the_work_between_receivers() {
    let name = unique_name("routeuni");
    let _cleanup = Cleanup(name.clone());
    let builder = || {
        Route::<Rec>::builder(&name)
            .mode(Mode::Unicast)
            .capacity(64)
    };
    let mut a = builder().receiver().expect("a");
    let mut b = builder().receiver().expect("b");
    let mut tx = builder().sender().expect("sender");
    for i in 0..10 {
        tx.send(Rec::new(i)).expect("send");
    }
    let mut got: Vec<u64> = Vec::new();
    for i in 0..10 {
        let r = if i % 2 == 0 { &mut a } else { &mut b };
        got.push(r.recv_timeout(SHORT).expect("record").seq);
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    drop(tx);
    assert_eq!(a.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
    assert_eq!(b.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
}
