//! Crash safety: SIGKILL of any participant at random moments, a creator killed during
//! initialisation, stale segments, reused pids, and a peer that scribbles over a live
//! segment. Every wait has a timeout, so a hang fails the test instead of CI.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{role, spawn, unique_name, var, Cleanup, Rec, Rng};
use memmap2::MmapMut;
use shmchan::{
    Channel, Mode, OpenError, Overflow, RecvTimeoutError, Route, SendTimeoutError, Wait,
};

const ENTRY: &str = "child";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(20);

/// Offsets in the segment file (docs/design.md, "Memory layout").
const CONTROL: usize = 512;
const SENDER_CLAIM: usize = CONTROL + 3 * 128;
const RECEIVERS: usize = 1152;
const ENTRY_SIZE: usize = 128;
/// The creator's pid namespace in the header: device, then inode.
const PID_NS_DEV: usize = 256;
const PID_NS_INO: usize = 264;

fn lossless(name: &str) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder(name)
        .capacity(64)
        .max_receivers(2)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

/// The `Channel` of the tests of producers killed inside `join` or `leave`.
fn channel(name: &str) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name)
        .capacity(64)
        .max_receivers(2)
        .max_producers(4)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

/// Records each producer of those tests sends.
const CHANNEL_RECORDS: u64 = 200;

fn path_of(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmchan.{name}"))
}

/// The segment of the hostile-peer test, as its children open it (OVERFLOW).
fn hostile_builder(name: &str) -> shmchan::Builder<Rec> {
    let overflow = if var("OVERFLOW") == "block" {
        Overflow::Block
    } else {
        Overflow::Overwrite
    };
    Route::<Rec>::builder(name)
        .capacity(64)
        .overflow(overflow)
        .wait(Wait::Block)
}

/// How long the hostile-peer test's children run (DURATION_MS).
fn hostile_duration() -> Duration {
    Duration::from_millis(var("DURATION_MS").parse().expect("DURATION_MS"))
}

fn seq_of(generation: u64, i: u64) -> u64 {
    generation << 32 | i
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    match role.as_str() {
        // Streams consecutive records until the STOP file appears.
        "stream-sender" => {
            let stop = PathBuf::from(var("STOP"));
            let mut tx = lossless(&name).sender().expect("open sender");
            tx.wait_for_receivers(1, SHORT).expect("survivor attaches");
            let mut seq = 0u64;
            while !(seq % 1024 == 0 && stop.exists()) {
                tx.send_timeout(Rec::new(seq), LONG).expect("send");
                seq += 1;
            }
            println!("SENT {seq}");
        }
        // Receives until disconnected; every record must be the next one.
        "survivor" => {
            let mut rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            let mut next = 0u64;
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record");
                        assert_eq!(rec.seq, next, "lost, duplicated or reordered");
                        next += 1;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("survivor: {e}"),
                }
            }
            println!("DONE {next}");
        }
        // Reads (slowly now and then) until killed.
        "victim" => {
            let mut rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            let mut n = 0u64;
            while rx.recv_timeout(LONG).is_ok() {
                n += 1;
                if n % 256 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        // Unicast: sends consecutive records, paced, until the STOP file appears.
        "unicast-sender" => {
            let stop = PathBuf::from(var("STOP"));
            let mut tx = unicast(&name).sender().expect("open sender");
            tx.wait_for_receivers(1, SHORT).expect("a taker attaches");
            let mut seq = 0u64;
            while !(seq % 64 == 0 && stop.exists()) {
                tx.send_timeout(Rec::new(seq), LONG)
                    .expect("send (a record stranded by a dead taker and never rescued?)");
                seq += 1;
                if seq % 1024 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            println!("SENT {seq}");
        }
        // Unicast: prints every record it takes the moment it has it, until
        // disconnected (or killed).
        "unicast-taker" => {
            let mut rx = unicast(&name).receiver().expect("open receiver");
            println!("READY");
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record");
                        println!("R {}", rec.seq);
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("taker: {e}"),
                }
            }
            println!("DONE");
        }
        // Sends generation GEN's records until killed.
        "generation-sender" => {
            let generation: u64 = var("GEN").parse().expect("GEN");
            let mut tx = lossless(&name).sender().expect("open sender");
            println!("SENDING");
            for i in 0.. {
                tx.send_timeout(Rec::new(seq_of(generation, i)), LONG)
                    .expect("send");
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
        // Opens a receiver; with the init pause set, hangs in initialisation.
        "creator" => {
            let _rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            std::thread::sleep(LONG);
        }
        "idle-sender" => {
            let _tx = lossless(&name).sender().expect("open sender");
            println!("READY");
            std::thread::sleep(LONG);
        }
        // Tries to open a segment it may not access.
        "unprivileged" => {
            // SAFETY: plain syscalls; this process is single-threaded at this point of
            // the test harness child (one test, --test-threads 1).
            unsafe {
                if libc::geteuid() == 0 {
                    assert_eq!(libc::setgid(65534), 0, "setgid");
                    assert_eq!(libc::setuid(65534), 0, "setuid");
                }
            }
            match lossless(&name).receiver() {
                Err(OpenError::PermissionDenied { .. }) => println!("DENIED"),
                other => panic!("expected PermissionDenied, got {:?}", other.err()),
            }
        }
        // Sends for DURATION_MS while a hostile peer scribbles on the segment; any
        // error is acceptable, a panic or a hang is not.
        "hostile-sender" => {
            let (builder, duration) = (|| hostile_builder(&name), hostile_duration());
            let mut tx = builder().sender().expect("open sender");
            println!("READY");
            let end = Instant::now() + duration;
            let (mut sent, mut errors) = (0u64, 0u64);
            while Instant::now() < end {
                match tx.send_timeout(Rec::new(sent), Duration::from_millis(20)) {
                    Ok(()) => sent += 1,
                    Err(SendTimeoutError::Timeout(_)) => errors += 1,
                    Err(SendTimeoutError::Evicted(_)) => {
                        errors += 1;
                        // Our claim was overwritten: try to take the role back.
                        if let Ok(again) = builder().sender() {
                            tx = again;
                        }
                    }
                    Err(e) => panic!("hostile sender: {e}"),
                }
            }
            println!("SENDER sent={sent} errors={errors}");
        }
        // `Channel`: joins (with SHMCHAN_TEST_DIE_AT, may die in `join` or `leave`),
        // waits for the GO file, sends generation GEN's records paced, and leaves.
        "paced-producer" => {
            let generation: u64 = var("GEN").parse().expect("GEN");
            let go = PathBuf::from(var("GO"));
            let mut tx = channel(&name).sender().expect("open sender");
            println!("READY");
            let deadline = Instant::now() + SHORT;
            while !go.exists() {
                assert!(Instant::now() < deadline, "no GO file");
                std::thread::sleep(Duration::from_millis(1));
            }
            for i in 0..CHANNEL_RECORDS {
                tx.send_timeout(Rec::new(seq_of(generation, i)), SHORT)
                    .expect("send");
                if i % 16 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            println!("SENT");
        }
        // `Channel`: joins, with SHMCHAN_TEST_DIE_AT set to a step of `join`.
        "dying-joiner" => {
            let _tx = channel(&name).sender();
            println!("JOINED");
        }
        // Sleeps in `recv` on an Overwrite segment until killed.
        // Opens a lossless sender, sends one record, and idles until killed.
        "one-record-sender" => {
            let mut tx = lossless(&name).sender().expect("open sender");
            tx.wait_for_receivers(1, SHORT).expect("receiver attaches");
            tx.send(Rec::new(0)).expect("send");
            println!("READY");
            std::thread::sleep(LONG);
        }
        // Joins a lossless segment and never reads, until killed.
        "unread-receiver" => {
            let _rx = lossless(&name).receiver().expect("open receiver");
            println!("READY");
            std::thread::sleep(LONG);
        }
        "sleeping-receiver" => {
            let mut rx = Route::<Rec>::builder(&name)
                .wait(Wait::Block)
                .receiver()
                .expect("open receiver");
            println!("READY");
            let _ = rx.recv();
        }
        "hostile-receiver" => {
            let (builder, duration) = (|| hostile_builder(&name), hostile_duration());
            let mut rx = builder().receiver().expect("open receiver");
            println!("READY");
            let end = Instant::now() + duration;
            let (mut received, mut garbage, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < end {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(rec) => {
                        received += 1;
                        garbage += u64::from(!rec.is_intact());
                    }
                    Err(RecvTimeoutError::Evicted) => {
                        errors += 1;
                        if let Ok(again) = builder().receiver() {
                            rx = again;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            println!("RECEIVER received={received} garbage={garbage} errors={errors}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn receivers_killed_at_random_moments_never_stop_a_lossless_stream() {
    let name = unique_name("killrx");
    let _cleanup = Cleanup(name.clone());
    let stop = std::env::temp_dir().join(format!("{name}.stop"));
    let vars = [("NAME", name.clone()), ("STOP", stop.display().to_string())];
    let mut survivor = spawn(ENTRY, "survivor", &vars);
    survivor.expect_line("READY", SHORT);
    let mut sender = spawn(ENTRY, "stream-sender", &vars);
    let mut rng = Rng::from_time();
    let kills = 25;
    let started = Instant::now();
    for _ in 0..kills {
        // The table has two entries: the survivor's and one more. Every victim reuses
        // the entry of the one killed before it.
        let mut victim = spawn(ENTRY, "victim", &vars);
        victim.expect_line("READY", SHORT);
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        victim.kill9();
    }
    std::fs::write(&stop, b"").expect("stop file");
    let sent: u64 = sender.expect_line("SENT", LONG)[5..]
        .parse()
        .expect("count");
    sender.expect_success(SHORT);
    let done: u64 = survivor.expect_line("DONE", LONG)[5..]
        .parse()
        .expect("count");
    survivor.expect_success(SHORT);
    let _ = std::fs::remove_file(&stop);
    eprintln!(
        "{kills} receivers killed in {:?}; {sent} records, all received in order",
        started.elapsed()
    );
    assert_eq!(done, sent);
    assert!(sent > 0);
}

/// The unicast segment of the taker tests. Small: a record stranded by a taker that
/// died before settling it holds the producer back within 64 records, so a broken
/// rescue shows as a stalled stream (the sender's `send` times out).
fn unicast(name: &str) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder(name)
        .mode(Mode::Unicast)
        .capacity(64)
        .max_receivers(4)
        .wait(Wait::Block)
}

/// Unicast takers SIGKILLed at random moments while a survivor takes records too.
/// Every taker prints each record the moment `recv` returns it. A victim, being one
/// thread, can die in one of two windows at most once: after settling a record and
/// before printing it (the record is then missing from what the test sees), or after
/// taking it and before settling it (a live taker then rescues it, and it is printed
/// and counted in `rescued`). So no record may be seen twice, and missing plus rescued
/// records are at most one per victim. Rescues are rare here (that window is a record
/// copy long); loom and the unit tests drive them directly.
#[test]
fn unicast_takers_killed_at_random_moments_lose_nothing_and_duplicate_nothing() {
    let name = unique_name("killtaker");
    let _cleanup = Cleanup(name.clone());
    let stop = std::env::temp_dir().join(format!("{name}.stop"));
    let vars = [("NAME", name.clone()), ("STOP", stop.display().to_string())];
    let mut survivor = spawn(ENTRY, "unicast-taker", &vars);
    survivor.expect_line("READY", SHORT);
    let mut sender = spawn(ENTRY, "unicast-sender", &vars);
    let mut rng = Rng::from_time();
    let kills = 20u64;
    let mut delivered: Vec<u64> = Vec::new();
    let parse = |lines: Vec<String>, into: &mut Vec<u64>| {
        for line in lines {
            if let Some(rest) = line.split("R ").nth(1) {
                into.push(rest.trim().parse().expect("a sequence number"));
            }
        }
    };
    for _ in 0..kills {
        let mut victim = spawn(ENTRY, "unicast-taker", &vars);
        victim.expect_line("READY", SHORT);
        std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
        victim.kill9();
        parse(victim.lines_until_eof(SHORT), &mut delivered);
    }
    std::fs::write(&stop, b"").expect("stop file");
    let sent: u64 = sender.expect_line("SENT", LONG)[5..]
        .parse()
        .expect("count");
    sender.expect_success(SHORT);
    let survivor_lines = survivor.lines_until_eof(LONG);
    assert!(
        survivor_lines.iter().any(|l| l.contains("DONE")),
        "the survivor did not see the end"
    );
    survivor.expect_success(SHORT);
    parse(survivor_lines, &mut delivered);
    let _ = std::fs::remove_file(&stop);
    let rescued = shmchan::stats::Observer::open(&name)
        .and_then(|o| o.stats())
        .expect("stats of the segment")
        .rescued;

    let mut seen = vec![false; sent as usize];
    for &seq in &delivered {
        assert!(seq < sent, "record {seq} was never sent ({sent} were)");
        assert!(!seen[seq as usize], "record {seq} delivered twice");
        seen[seq as usize] = true;
    }
    let missing = sent - delivered.len() as u64;
    eprintln!(
        "{kills} takers killed; {sent} records, {} seen delivered, {missing} returned to a \
         victim that died before printing, {rescued} rescued from dead takers",
        delivered.len()
    );
    assert!(
        missing + rescued <= kills,
        "{missing} records missing and {rescued} rescued: more than one per killed taker"
    );
    assert!(sent > 0);
}

#[test]
fn senders_killed_at_random_moments_hand_over_to_the_next() {
    let name = unique_name("killtx");
    let _cleanup = Cleanup(name.clone());
    let mut rx = lossless(&name).receiver().expect("receiver");
    let mut rng = Rng::from_time();
    let generations = 20u64;
    let mut recoveries = Vec::new();
    let mut total = 0u64;
    for generation in 0..generations {
        let vars = [("NAME", name.clone()), ("GEN", generation.to_string())];
        let mut sender = spawn(ENTRY, "generation-sender", &vars);
        sender.expect_line("SENDING", SHORT);
        let until = Instant::now() + Duration::from_millis(5 + rng.below(40));
        let mut next = 0u64;
        let check = |rec: Rec, next: &mut u64| {
            assert!(rec.is_intact(), "corrupt record");
            assert_eq!(
                rec.seq,
                seq_of(generation, *next),
                "generation {generation}"
            );
            *next += 1;
        };
        while Instant::now() < until {
            check(rx.recv_timeout(SHORT).expect("record"), &mut next);
        }
        sender.kill9();
        let killed = Instant::now();
        loop {
            match rx.recv_timeout(SHORT) {
                Ok(rec) => check(rec, &mut next),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("after the kill: {e}"),
            }
        }
        recoveries.push(killed.elapsed());
        total += next;
    }
    recoveries.sort();
    eprintln!(
        "{generations} senders killed, {total} records checked; disconnect seen after median {:?}, max {:?}",
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1]
    );
}

#[test]
fn a_creator_killed_during_initialisation_does_not_wedge_the_name() {
    let name = unique_name("initkill");
    let _cleanup = Cleanup(name.clone());
    let path = path_of(&name);
    let mut creator = spawn(
        ENTRY,
        "creator",
        &[
            ("NAME", name.clone()),
            ("SHMCHAN_TEST_INIT_PAUSE_MS", "60000".into()),
        ],
    );
    // Wait until the header is half written: magic present, state "initialising".
    let deadline = Instant::now() + SHORT;
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.len() >= 16 && &bytes[0..7] == b"SHMCHAN" && bytes[12] == 1 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "creator never started initialising"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // While the creator lives, an opener waits for it and then gives up cleanly.
    let r = lossless(&name)
        .open_timeout(Duration::from_millis(100))
        .sender();
    assert!(matches!(r, Err(OpenError::Timeout { .. })), "{:?}", r.err());
    creator.kill9();
    let started = Instant::now();
    let mut tx = lossless(&name)
        .sender()
        .expect("the next opener re-initialises");
    eprintln!(
        "re-initialised {:?} after the creator was killed",
        started.elapsed()
    );
    let mut rx = lossless(&name).receiver().expect("receiver");
    tx.send(Rec::new(1)).expect("send");
    assert_eq!(rx.recv_timeout(SHORT).expect("record").seq, 1);
}

#[test]
fn a_segment_whose_participants_all_died_is_reclaimed() {
    let name = unique_name("stale");
    let _cleanup = Cleanup(name.clone());
    let vars = [("NAME", name.clone())];
    let mut tx = spawn(ENTRY, "idle-sender", &vars);
    tx.expect_line("READY", SHORT);
    let mut rx = spawn(ENTRY, "creator", &vars);
    rx.expect_line("READY", SHORT);
    // While they live, other options are refused.
    let r = Route::<Rec>::builder(&name).capacity(8).receiver();
    assert!(
        matches!(
            r,
            Err(OpenError::Mismatch {
                field: "capacity",
                ..
            })
        ),
        "{:?}",
        r.err()
    );
    tx.kill9();
    rx.kill9();
    assert!(path_of(&name).exists(), "the dead leave the file behind");
    // No live participant: the next opener re-creates it, with its own options.
    let mut small = Route::<Rec>::builder(&name)
        .capacity(8)
        .sender()
        .expect("reclaimed");
    let mut reader = Route::<Rec>::builder(&name)
        .capacity(8)
        .receiver()
        .expect("receiver");
    small.send(Rec::new(3)).expect("send");
    assert_eq!(reader.try_recv().expect("record").seq, 3);
    drop((small, reader));
    assert!(Route::<Rec>::remove(&name).expect("remove"));
    assert!(!path_of(&name).exists());
}

/// Maps a segment file for raw writes, as a hostile peer would.
fn map_raw(name: &str) -> MmapMut {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path_of(name))
        .expect("open");
    // SAFETY: the test owns the segment; it only writes aligned u64 words through
    // volatile stores (see `poke`), which is what a foreign process would do.
    unsafe { MmapMut::map_mut(&file).expect("mmap") }
}

fn poke(map: &mut MmapMut, offset: usize, value: u64) {
    assert!(offset % 8 == 0 && offset + 8 <= map.len());
    // SAFETY: in bounds and aligned (checked above); the other processes access this
    // memory only atomically, and a volatile aligned store is a single store.
    unsafe { std::ptr::write_volatile(map.as_mut_ptr().add(offset).cast::<u64>(), value) };
}

fn my_start_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(19)
        .expect("starttime")
        .parse()
        .expect("number")
}

#[test]
fn a_reused_pid_is_not_taken_for_the_recorded_process() {
    let name = unique_name("pidreuse");
    let _cleanup = Cleanup(name.clone());
    let tx = lossless(&name).sender().expect("sender");
    let me = u64::from(std::process::id());
    let wrong_start = ((my_start_ticks() + 1) & 0xffff_ffff) << 32;
    let mut map = map_raw(&name);
    // A receiver entry and... claiming to be this very pid, started at another time.
    poke(&mut map, RECEIVERS, me | wrong_start);
    assert_eq!(
        tx.receiver_count(),
        0,
        "the forged entry is dead and evicted"
    );
    // The same for the sender claim: a new sender takes it over.
    drop(tx);
    poke(&mut map, SENDER_CLAIM, me | wrong_start);
    let _tx = lossless(&name)
        .sender()
        .expect("a claim by a reused pid is free");
    // The real owner word (right start time) is alive.
    poke(
        &mut map,
        RECEIVERS + ENTRY_SIZE,
        me | (my_start_ticks() & 0xffff_ffff) << 32,
    );
    assert_eq!(_tx.receiver_count(), 1);
}

#[test]
fn a_segment_created_in_another_pid_namespace_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let name = unique_name("pidns");
    let _cleanup = Cleanup(name.clone());
    // A live participant, so that the next opener validates the header instead of
    // reclaiming the segment.
    let _rx = lossless(&name).receiver().expect("receiver");
    let ns = std::fs::metadata("/proc/self/ns/pid").expect("this test needs /proc");
    let word = |offset: usize| {
        let bytes = std::fs::read(path_of(&name)).expect("read");
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
    };
    assert_eq!(
        (word(PID_NS_DEV), word(PID_NS_INO)),
        (ns.dev(), ns.ino()),
        "the creator records its pid namespace"
    );
    // As if a process in another pid namespace (another container) had created it.
    let mut map = map_raw(&name);
    poke(&mut map, PID_NS_INO, ns.ino() + 1);
    for r in [
        lossless(&name).sender().err(),
        lossless(&name).receiver().err(),
    ] {
        let e = r.expect("refused");
        assert!(
            matches!(e, OpenError::PidNamespace { creator_ns, own_ns, .. }
                if (creator_ns, own_ns) == (ns.ino() + 1, ns.ino())),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("pid namespace") && text.contains("--pid=host"),
            "{text}"
        );
    }
    // An observer still reads the header (and says whose it is), but gives no stats:
    // it cannot judge the liveness of pids from another namespace.
    let observer = shmchan::stats::Observer::open(&name).expect("observe");
    assert_eq!(observer.info().creator_pid_ns, Some(ns.ino() + 1));
    assert!(matches!(
        observer.stats(),
        Err(OpenError::PidNamespace { .. })
    ));
    assert!(!observer.is_stale().expect("probe"));
    // Another device is another namespace too.
    poke(&mut map, PID_NS_INO, ns.ino());
    poke(&mut map, PID_NS_DEV, ns.dev() + 1);
    assert!(matches!(
        lossless(&name).sender(),
        Err(OpenError::PidNamespace { .. })
    ));
    // A creator that could not read its namespace (0) is not refused.
    poke(&mut map, PID_NS_DEV, 0);
    poke(&mut map, PID_NS_INO, 0);
    let _tx = lossless(&name)
        .sender()
        .expect("unknown namespace accepted");
    let observer = shmchan::stats::Observer::open(&name).expect("observe");
    assert_eq!(observer.info().creator_pid_ns, None);
    assert_eq!(observer.stats().expect("stats").receivers.len(), 1);
}

fn hostile_run(overflow: &str) {
    let name = unique_name("hostile");
    let _cleanup = Cleanup(name.clone());
    let duration_ms = 1500u64;
    let vars = [
        ("NAME", name.clone()),
        ("OVERFLOW", overflow.to_owned()),
        ("DURATION_MS", duration_ms.to_string()),
    ];
    let mut sender = spawn(ENTRY, "hostile-sender", &vars);
    sender.expect_line("READY", SHORT);
    let mut receiver = spawn(ENTRY, "hostile-receiver", &vars);
    receiver.expect_line("READY", SHORT);
    let mut map = map_raw(&name);
    let len = map.len();
    let mut rng = Rng::from_time();
    let end = Instant::now() + Duration::from_millis(duration_ms - 300);
    let mut writes = 0u64;
    while Instant::now() < end {
        // Mostly the shared state the algorithms read (control, table, stamps), now and
        // then the header; adversarial values: extremes, near-wraps, pids, small counts.
        let word = |rng: &mut Rng, n: usize| rng.below((n / 8) as u64) as usize * 8;
        let offset = match rng.below(10) {
            0 => word(&mut rng, 512),
            1..=3 => CONTROL + word(&mut rng, RECEIVERS - CONTROL),
            4..=5 => RECEIVERS + word(&mut rng, 2 * ENTRY_SIZE),
            _ => word(&mut rng, len),
        };
        let value = match rng.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::MAX - rng.below(1000),
            3 => rng.below(1 << 20),
            4 => u64::from(std::process::id()),
            _ => rng.next(),
        };
        poke(&mut map, offset, value);
        writes += 1;
        if writes % 64 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let report_s = sender.expect_line("SENDER", SHORT);
    let report_r = receiver.expect_line("RECEIVER", SHORT);
    sender.expect_success(SHORT);
    receiver.expect_success(SHORT);
    eprintln!("{overflow}: {writes} hostile writes; {report_s}; {report_r}");
}

#[test]
fn hostile_writes_to_a_live_overwrite_segment_cause_errors_not_crashes() {
    hostile_run("overwrite");
}

#[test]
fn hostile_writes_to_a_live_lossless_segment_cause_errors_not_crashes() {
    hostile_run("block");
}

#[test]
fn a_segment_this_process_may_not_open_gives_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique_name("perm");
    let _cleanup = Cleanup(name.clone());
    let _rx = lossless(&name).receiver().expect("receiver");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Not root: deny ourselves. (Root ignores mode bits; the child drops to
        // `nobody` instead.)
        std::fs::set_permissions(path_of(&name), std::fs::Permissions::from_mode(0o000))
            .expect("chmod");
    }
    let mut child = spawn(ENTRY, "unprivileged", &[("NAME", name.clone())]);
    child.expect_line("DENIED", SHORT);
    child.expect_success(SHORT);
}

#[test]
fn a_full_receiver_table_is_an_error_not_a_wait() {
    let name = unique_name("full");
    let _cleanup = Cleanup(name.clone());
    let _a = lossless(&name).receiver().expect("first");
    let _b = lossless(&name).receiver().expect("second");
    match lossless(&name).receiver() {
        Err(OpenError::ReceiversFull { max, .. }) => assert_eq!(max, 2),
        other => panic!("expected ReceiversFull, got {:?}", other.err()),
    }
}

#[test]
fn a_segment_larger_than_its_file_system_fails_at_creation() {
    let name = unique_name("huge");
    let _cleanup = Cleanup(name.clone());
    // 2^24 slots of 4 KiB: 64 GiB, more than /dev/shm holds unless the host has 128 GiB
    // of memory or more (tmpfs defaults to half of it); on such a host this test fails.
    let r = Route::<[u8; 4096]>::builder(&name)
        .capacity(1 << 24)
        .receiver();
    match r {
        Err(e @ OpenError::NoSpace { .. }) => eprintln!("{e}"),
        other => panic!("expected NoSpace, got {:?}", other.err()),
    }
    assert!(
        !path_of(&name).exists(),
        "no half-made segment is left behind"
    );
}

/// Waits (bounded) until `pred` holds for the segment's stats, sending a record
/// between looks if `tx` is given. Returns whether it held in time.
fn stats_until(
    name: &str,
    mut tx: Option<&mut shmchan::Sender<Rec>>,
    pred: impl Fn(&shmchan::stats::Stats) -> bool,
) -> bool {
    let observer = shmchan::stats::Observer::open(name).expect("observer");
    let deadline = Instant::now() + SHORT;
    let mut seq = 0u64;
    while Instant::now() < deadline {
        if pred(&observer.stats().expect("stats")) {
            return true;
        }
        match tx.as_deref_mut() {
            Some(tx) => {
                for _ in 0..256 {
                    tx.send(Rec::new(seq)).expect("send");
                    seq += 1;
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    false
}

/// A receiver SIGKILLed while asleep in `recv` leaves its registration in the data
/// waiter count; every later send would then make a futex system call for nobody. The
/// producer's wake calls that find nobody asleep lead it to the dead entry, which is
/// evicted and its registration taken back.
#[test]
fn a_receiver_killed_asleep_does_not_leave_the_waiter_count_high() {
    let name = unique_name("parked");
    let _cleanup = Cleanup(name.clone());
    let mut tx = Route::<Rec>::sender(&name).expect("sender");
    let mut sleeper = spawn(ENTRY, "sleeping-receiver", &[("NAME", name.clone())]);
    sleeper.expect_line("READY", SHORT);
    assert!(
        stats_until(&name, None, |s| s.data_waiters == 1),
        "the receiver never went to sleep"
    );
    sleeper.kill9();
    assert!(
        stats_until(&name, Some(&mut tx), |s| s.data_waiters == 0
            && s.receivers.is_empty()),
        "the dead sleeper's registration stayed"
    );
}

/// A loan published after its sender lost its role (a peer overwrote the sender
/// claim) is refused with the record given back, and so is every later send.
#[test]
fn a_loan_published_after_the_sender_lost_its_role_gives_the_record_back() {
    let name = unique_name("lostrole");
    let _cleanup = Cleanup(name.clone());
    let mut tx = Route::<Rec>::sender(&name).expect("sender");
    let mut rx = Route::<Rec>::receiver(&name).expect("receiver");
    let mut slot = tx.loan().expect("loan");
    *slot = Rec::new(7);
    let mut map = map_raw(&name);
    poke(&mut map, SENDER_CLAIM, 12345);
    match slot.publish() {
        Err(e) => {
            assert!(e.is_evicted());
            assert_eq!(e.into_inner(), Rec::new(7), "the record comes back");
        }
        Ok(()) => panic!("published without the sender role"),
    }
    assert!(tx.send(Rec::new(8)).is_err_and(|e| e.is_evicted()));
    assert!(tx.loan().is_err());
    assert!(rx.try_recv().is_err(), "nothing was published");
    poke(&mut map, SENDER_CLAIM, 0);
}

/// A receiver that waits in slices shorter than the liveness tick (as the Python
/// binding does, to look for signals) still notices a killed sender: the tick is kept
/// across its waits, not restarted by each.
#[test]
fn a_receiver_waiting_in_short_slices_sees_a_killed_sender() {
    let name = unique_name("slices-rx");
    let _cleanup = Cleanup(name.clone());
    let mut rx = lossless(&name).receiver().expect("receiver");
    let mut sender = spawn(ENTRY, "one-record-sender", &[("NAME", name.clone())]);
    sender.expect_line("READY", SHORT);
    assert_eq!(rx.recv_timeout(SHORT).map(|r| r.seq), Ok(0));
    sender.kill9();
    let deadline = Instant::now() + SHORT;
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Err(RecvTimeoutError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "the dead sender was never noticed"
                );
            }
            Err(RecvTimeoutError::Disconnected) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A lossless sender that waits for room in slices shorter than the liveness tick
/// still evicts a killed receiver that holds the ring.
#[test]
fn a_sender_waiting_in_short_slices_evicts_a_killed_receiver() {
    let name = unique_name("slices-tx");
    let _cleanup = Cleanup(name.clone());
    let mut idle = spawn(ENTRY, "unread-receiver", &[("NAME", name.clone())]);
    idle.expect_line("READY", SHORT);
    let mut tx = lossless(&name).sender().expect("sender");
    let mut seq = 0;
    while tx.try_send(Rec::new(seq)).is_ok() {
        seq += 1;
    }
    assert_eq!(seq, 64, "the idle receiver holds the ring at its capacity");
    idle.kill9();
    let deadline = Instant::now() + SHORT;
    loop {
        match tx.send_timeout(Rec::new(seq), Duration::from_millis(5)) {
            Ok(()) => break,
            Err(SendTimeoutError::Timeout(_)) => {
                assert!(
                    Instant::now() < deadline,
                    "the dead receiver was never evicted"
                );
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Waits for a child that must kill itself (`SHMCHAN_TEST_DIE_AT`): it ends by
/// `SIGKILL`, or the hook did not fire and the test proves nothing.
fn expect_self_killed(peer: &mut common::Peer) {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + SHORT;
    loop {
        if let Some(status) = peer.child.try_wait().expect("try_wait") {
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{} was not killed at its step: {status}",
                peer.role
            );
            return;
        }
        assert!(Instant::now() < deadline, "{} did not die", peer.role);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Receives generation `generation`'s records, every one in order, none skipped;
/// `Disconnected` before the last is a live producer taken for gone.
fn receive_generation(rx: &mut shmchan::Receiver<Rec>, generation: u64) {
    for i in 0..CHANNEL_RECORDS {
        match rx.recv_timeout(SHORT) {
            Ok(rec) => {
                assert!(rec.is_intact(), "corrupt record");
                assert_eq!(
                    rec.seq,
                    seq_of(generation, i),
                    "generation {generation}: record lost, skipped or reordered"
                );
            }
            Err(e) => {
                panic!("generation {generation}, record {i}: {e} while its producer is attached")
            }
        }
    }
}

/// After its producers are gone: one `recv_timeout` must end in `Disconnected`, not
/// wait out its timeout.
fn expect_disconnected(rx: &mut shmchan::Receiver<Rec>, after: &str) {
    match rx.recv_timeout(SHORT) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("after {after}: expected Disconnected, got {other:?}"),
    }
}

/// A `Channel` producer killed at `step` of `join` or `leave` (`multi.rs`, `Step`):
/// the producer table is half updated. A producer A is attached throughout; with a
/// `join-*` step a second one dies while joining, and the receiver reaps it on a
/// liveness tick while A waits (it must not take A for gone meanwhile). A then sends
/// its records and leaves (with a `leave-*` step it dies leaving). The receiver gets
/// every record and then `Disconnected`, within one `recv_timeout`. Then a new
/// producer B joins: the receiver gets all of its records (never `Disconnected`
/// while B is attached), and `Disconnected` again when B leaves.
fn producer_killed_at(step: &str) {
    let name = unique_name("pkill");
    let _cleanup = Cleanup(name.clone());
    let go = std::env::temp_dir().join(format!("{name}.go"));
    let go_b = std::env::temp_dir().join(format!("{name}.go-b"));
    let mut rx = channel(&name).receiver().expect("receiver");
    let vars = |generation: u64, go: &PathBuf, die_at: Option<&str>| {
        let mut vars = vec![
            ("NAME", name.clone()),
            ("GEN", generation.to_string()),
            ("GO", go.display().to_string()),
        ];
        vars.extend(die_at.map(|at| ("SHMCHAN_TEST_DIE_AT", at.to_owned())));
        vars
    };
    let leaving = step.starts_with("leave");
    let mut a = spawn(
        ENTRY,
        "paced-producer",
        &vars(0, &go, leaving.then_some(step)),
    );
    a.expect_line("READY", SHORT);
    if !leaving {
        let mut dying = spawn(ENTRY, "dying-joiner", &vars(9, &go, Some(step)));
        expect_self_killed(&mut dying);
        // Until the dead joiner's entry is reaped (by our liveness ticks), only A
        // is attached: nothing to read, and certainly not `Disconnected`.
        let observer = shmchan::stats::Observer::open(&name).expect("observer");
        let deadline = Instant::now() + SHORT;
        while observer.stats().expect("stats").producers.len() > 1 {
            assert!(
                Instant::now() < deadline,
                "the dead joiner was never reaped"
            );
            match rx.recv_timeout(Duration::from_millis(10)) {
                Err(RecvTimeoutError::Timeout) => {}
                other => panic!("A attached, nothing sent: got {other:?}"),
            }
        }
        // One more tick after the reap, which is when a wrong count shows.
        match rx.recv_timeout(Duration::from_millis(120)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("A attached, nothing sent, dead joiner reaped: got {other:?}"),
        }
    }
    std::fs::write(&go, b"").expect("GO file");
    receive_generation(&mut rx, 0);
    if leaving {
        expect_self_killed(&mut a);
    } else {
        a.expect_success(SHORT);
    }
    expect_disconnected(&mut rx, &format!("A left ({step})"));
    let mut b = spawn(ENTRY, "paced-producer", &vars(1, &go_b, None));
    b.expect_line("READY", SHORT);
    std::fs::write(&go_b, b"").expect("GO file");
    receive_generation(&mut rx, 1);
    b.expect_success(SHORT);
    expect_disconnected(&mut rx, "B left");
    let _ = std::fs::remove_file(&go);
    let _ = std::fs::remove_file(&go_b);
}

#[test]
fn a_producer_killed_inside_join_after_raising_the_count() {
    producer_killed_at("join-counted");
}

#[test]
fn a_producer_killed_inside_join_after_taking_its_entry() {
    producer_killed_at("join-entered");
}

#[test]
fn a_producer_killed_inside_leave_after_giving_its_entry_back() {
    producer_killed_at("leave-freed");
}
