//! Promises of a lossless `Channel<T>` (many producers) held to the letter under
//! pressure: more producers than slots, receivers that join while the ring is full,
//! loans dropped without publishing, producer processes SIGKILLed mid-stream.
//!
//! Every scenario that could wedge inside the library runs in a child process (this
//! test binary, re-executed in a role) that the test kills when it has not finished in
//! time, so a hang fails the test instead of stalling the run. Waiting sides use
//! `Wait::Block`: the tests make nothing spin, so they do not starve each other on a
//! machine with as few as 2 cores (a hang inside the library may spin one thread until
//! its child process is killed).

// The tests' own stop flag between threads, not ring code: std atomics are fine here
// (clippy.toml bans them in the crate's code for the loom shim's sake).
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{role, spawn_entry, unique_name, var, Cleanup, Peer, Rec, Rng};
use shmchan::{Channel, Mode, Overflow, RecvTimeoutError, SendTimeoutError, Wait};

/// The test that re-executed children run (see [`child_process_entry`]).
const ENTRY: &str = "child_process_entry";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(20);
/// Marks the line with which a child scenario reports its outcome.
const PASS: &str = "SCENARIO-PASS: ";
const FAIL: &str = "SCENARIO-FAIL: ";

/// Record `i` of producer `p`.
fn seq_of(p: u64, i: u64) -> u64 {
    p << 40 | i
}

fn split(seq: u64) -> (u64, u64) {
    (seq >> 40, seq & ((1 << 40) - 1))
}

/// A lossless `Channel` of `capacity` slots whose handles sleep while they wait.
fn lossless(name: &str, mode: Mode, capacity: usize) -> shmchan::Builder<Rec> {
    Channel::<Rec>::builder(name)
        .capacity(capacity)
        .mode(mode)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

fn mode_named(mode: &str) -> Mode {
    match mode {
        "broadcast" => Mode::Broadcast,
        "unicast" => Mode::Unicast,
        other => panic!("unknown mode {other}"),
    }
}

// ---------------------------------------------------------------------------------
// Child processes

/// Starts this test binary as a child running [`ENTRY`] in `role`, with `vars` in its
/// environment.
fn spawn(role: &str, vars: &[(&str, String)]) -> Peer {
    spawn_entry(ENTRY, false, role, vars)
}

/// The last `n` lines, for a failure message.
fn last_lines(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

/// Runs the scenario `role` in a child and returns the summary it reported. Panics
/// with the child's reason if the scenario failed, and kills the child and panics if
/// it has not finished within `timeout` (something inside the library hung).
fn run_scenario(role: &str, vars: &[(&str, String)], timeout: Duration) -> String {
    let started = Instant::now();
    let mut child = spawn(role, vars);
    let lines = match child.try_lines_until_eof(timeout) {
        Ok(lines) => lines,
        Err(lines) => {
            child.kill9();
            panic!(
                "{role}: HUNG, not finished after {timeout:?} (killed; the last step it \
                 printed is where it hangs); its last lines:\n    {}",
                last_lines(&lines, 12)
            );
        }
    };
    let status = child.child.wait().expect("wait");
    let outcome = |marker: &str| {
        lines
            .iter()
            .find_map(|l| l.find(marker).map(|at| l[at + marker.len()..].to_owned()))
    };
    if let Some(reason) = outcome(FAIL) {
        panic!("{role}: {reason}");
    }
    match outcome(PASS) {
        Some(summary) => {
            eprintln!("{role}: {summary} ({:?})", started.elapsed());
            summary
        }
        None => panic!(
            "{role}: exited ({status}) without reporting an outcome; its last lines:\n    {}",
            last_lines(&lines, 12)
        ),
    }
}

/// Reports a scenario's outcome to the test that started this child and exits at
/// once: threads that may be stuck inside the library are not waited for.
fn report(outcome: Result<String, String>) -> ! {
    match outcome {
        Ok(summary) => println!("{PASS}{summary}"),
        Err(reason) => println!("{FAIL}{reason}"),
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

/// Entry point of the child processes the tests start (the environment names the
/// role); run without a role, as part of the suite, it does nothing.
#[test]
fn child_process_entry() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    match role.as_str() {
        "join-race" => report(join_race(&name, var("READ") == "iter")),
        "abandoned-loan" => report(abandoned_loan(
            &name,
            mode_named(&var("MODE")),
            var("ORDER") == "receiver-first",
        )),
        "producer" => crash_producer(&name),
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------------------
// 1. Receivers that join while more producers than slots are sending

const RACE_PRODUCERS: u64 = 6;
const RACE_JOINS: usize = 40;
const RACE_RECORDS_PER_JOIN: usize = 2000;

/// What a receiver saw over all its joins, per producer since each join.
#[derive(Default)]
struct Tally {
    received: u64,
    lagged_events: u64,
    lagged_records: u64,
    gaps: u64,
    gap_records: u64,
    out_of_order: u64,
    /// The first few violations, for the failure message.
    first: Vec<String>,
}

impl Tally {
    fn violation(&mut self, what: String) {
        if self.first.len() < 8 {
            self.first.push(what);
        }
    }

    /// Counts record `rec`, the `k`th receive after join `join`; `last` holds each
    /// producer's last record number seen since the join.
    fn check(&mut self, rec: Rec, last: &mut HashMap<u64, u64>, join: usize, k: usize) {
        self.received += 1;
        if !rec.is_intact() {
            self.out_of_order += 1;
            self.violation(format!("join {join}, receive {k}: a corrupt record"));
            return;
        }
        let (p, i) = split(rec.seq);
        if let Some(l) = last.insert(p, i) {
            if i > l + 1 {
                self.gaps += 1;
                self.gap_records += i - l - 1;
                self.violation(format!(
                    "join {join}, receive {k}: producer {p} record {i} after {l} ({} missing)",
                    i - l - 1
                ));
            } else if i <= l {
                self.out_of_order += 1;
                self.violation(format!(
                    "join {join}, receive {k}: producer {p} record {i} after {l} \
                     (duplicated or reordered)"
                ));
            }
        }
    }

    fn clean(&self) -> bool {
        self.lagged_events == 0 && self.gaps == 0 && self.out_of_order == 0
    }
}

/// Six producer threads send their own consecutive records on a 2-slot lossless
/// broadcast `Channel`; a receiver joins, reads 2,000 records, leaves and joins again,
/// 40 times. Each receive must be a record, and each producer's records must follow
/// one another without a gap from the first one seen after the join.
fn join_race(name: &str, use_iter: bool) -> Result<String, String> {
    let builder = || lossless(name, Mode::Broadcast, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    for p in 0..RACE_PRODUCERS {
        let mut tx = builder()
            .sender()
            .map_err(|e| format!("producer {p}: {e}"))?;
        let (stop, done_tx) = (Arc::clone(&stop), done_tx.clone());
        thread::spawn(move || {
            let (mut i, mut timeouts) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match tx.send_timeout(Rec::new(seq_of(p, i)), Duration::from_secs(5)) {
                    Ok(()) => i += 1,
                    // The same record again: a producer's sequence has no holes.
                    Err(SendTimeoutError::Timeout(_)) => timeouts += 1,
                    Err(_) => break,
                }
            }
            let _ = done_tx.send((p, i, timeouts));
        });
    }
    let mut tally = Tally::default();
    let read = (|| -> Result<(), String> {
        for join in 0..RACE_JOINS {
            let mut rx = builder()
                .receiver()
                .map_err(|e| format!("join {join}: {e}"))?;
            let mut last: HashMap<u64, u64> = HashMap::new();
            if use_iter {
                let mut n = 0;
                for rec in rx.iter().take(RACE_RECORDS_PER_JOIN) {
                    tally.check(rec, &mut last, join, n);
                    n += 1;
                }
                if n < RACE_RECORDS_PER_JOIN {
                    return Err(format!("join {join}: the iterator ended after {n} records"));
                }
            } else {
                for k in 0..RACE_RECORDS_PER_JOIN {
                    match rx.recv_timeout(Duration::from_secs(5)) {
                        Ok(rec) => tally.check(rec, &mut last, join, k),
                        Err(RecvTimeoutError::Lagged(n)) => {
                            tally.lagged_events += 1;
                            tally.lagged_records += n;
                            tally.violation(format!("join {join}, receive {k}: Lagged({n})"));
                            // Lag already counted: do not count it again as gaps.
                            last.clear();
                        }
                        Err(e) => return Err(format!("join {join}, receive {k}: {e:?}")),
                    }
                }
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0u64;
    let mut timeouts = 0u64;
    for _ in 0..RACE_PRODUCERS {
        match done_rx.recv_timeout(SHORT) {
            Ok((_, n, t)) => {
                sent += n;
                timeouts += t;
            }
            Err(_) => {
                return Err(format!(
                    "a producer did not stop within {SHORT:?} of the stop flag (stuck in send)"
                ))
            }
        }
    }
    read?;
    let summary = format!(
        "{} joins, {} records received ({sent} sent, {timeouts} send timeouts); Lagged {} \
         times ({} records), {} gaps ({} records missing), {} duplicated/reordered",
        RACE_JOINS,
        tally.received,
        tally.lagged_events,
        tally.lagged_records,
        tally.gaps,
        tally.gap_records,
        tally.out_of_order
    );
    if tally.clean() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary}; first violations: {}",
            tally.first.join("; ")
        ))
    }
}

/// A lossless broadcast `Channel` delivers every record published after a receiver
/// joined, once and in each producer's order, also to a receiver that joins while more
/// producers than slots are sending: six producers on two slots, a receiver that
/// joins, reads 2,000 records and leaves, 40 times, never gets `Lagged` and never
/// sees a gap, duplicate or reorder in any producer's sequence.
#[test]
fn lossless_broadcast_receiver_joining_while_more_producers_than_slots_send_loses_nothing() {
    let name = unique_name("joinrace");
    let _cleanup = Cleanup(name.clone());
    let vars = [("NAME", name.clone()), ("READ", "recv".into())];
    run_scenario("join-race", &vars, Duration::from_secs(120));
}

/// The same with `Receiver::iter`, which passes over `Lagged`: a record lost at a join
/// shows as a gap in a producer's sequence, and there must be none.
#[test]
fn lossless_broadcast_iter_after_joining_while_more_producers_than_slots_send_has_no_gap() {
    let name = unique_name("joinraceit");
    let _cleanup = Cleanup(name.clone());
    let vars = [("NAME", name.clone()), ("READ", "iter".into())];
    run_scenario("join-race", &vars, Duration::from_secs(120));
}

// ---------------------------------------------------------------------------------
// 2. A loan dropped without publishing

const LOAN_RECORDS: u64 = 20;
const LOAN_WAIT: Duration = Duration::from_secs(2);

/// Producer A takes a loan and drops it unpublished, keeping its sender; producer B
/// then sends 20 records with `send_timeout(.., 2 s)` while a receiver (joined before
/// the loan, or after it) reads with `recv_timeout(2 s)`. B's sends must all succeed
/// and the receiver must get exactly B's 20 records, in order.
fn abandoned_loan(name: &str, mode: Mode, receiver_first: bool) -> Result<String, String> {
    let builder = || lossless(name, mode, 4);
    let mut tx_a = builder().sender().map_err(|e| format!("sender A: {e}"))?;
    // The reader thread opens its receiver when told, and reads when told.
    let (open_tx, open_rx) = mpsc::channel::<()>();
    let (opened_tx, opened_rx) = mpsc::channel::<Result<(), String>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (got_tx, got_rx) = mpsc::channel::<Result<Rec, RecvTimeoutError>>();
    let reader_name = name.to_owned();
    thread::spawn(move || {
        if open_rx.recv().is_err() {
            return;
        }
        let mut rx = match lossless(&reader_name, mode, 4).receiver() {
            Ok(rx) => {
                let _ = opened_tx.send(Ok(()));
                rx
            }
            Err(e) => {
                let _ = opened_tx.send(Err(format!("receiver: {e}")));
                return;
            }
        };
        if go_rx.recv().is_err() {
            return;
        }
        for k in 0..LOAN_RECORDS {
            let got = rx.recv_timeout(LOAN_WAIT);
            match &got {
                Ok(rec) => println!("received {k}: seq {:#x}", rec.seq),
                Err(e) => println!("receive {k}: {e:?}"),
            }
            let failed = got.is_err();
            if got_tx.send(got).is_err() || failed {
                return;
            }
        }
    });
    let open_receiver = || -> Result<(), String> {
        open_tx
            .send(())
            .map_err(|_| "reader thread gone".to_owned())?;
        opened_rx
            .recv_timeout(SHORT)
            .map_err(|_| "the receiver did not open".to_owned())?
    };
    if receiver_first {
        open_receiver()?;
    }
    {
        // Taken, never filled nor published, dropped at the end of this block.
        let _loan = tx_a.loan().map_err(|_| "A's loan failed".to_owned())?;
    }
    println!("A dropped its loan unpublished");
    if !receiver_first {
        open_receiver()?;
    }
    let mut tx_b = builder().sender().map_err(|e| format!("sender B: {e}"))?;
    go_tx
        .send(())
        .map_err(|_| "reader thread gone".to_owned())?;
    let mut send_failure = None;
    for i in 0..LOAN_RECORDS {
        println!("B sending {i}");
        match tx_b.send_timeout(Rec::new(seq_of(1, i)), LOAN_WAIT) {
            Ok(()) => {}
            Err(e) => {
                let what = if e.is_timeout() { "Timeout" } else { "Evicted" };
                send_failure = Some(format!(
                    "B's send_timeout of record {i} failed with {what} ({i} of {LOAN_RECORDS} sent)"
                ));
                break;
            }
        }
    }
    println!("B done");
    // The reader stops at its first error, so it ends at most LOAN_WAIT after the
    // last record it could get.
    let mut received = Vec::new();
    let mut recv_failure = None;
    while (received.len() as u64) < LOAN_RECORDS {
        match got_rx.recv_timeout(SHORT) {
            Ok(Ok(rec)) => received.push(rec),
            Ok(Err(e)) => {
                recv_failure = Some(format!(
                    "receive {} got {e:?} ({} of B's {LOAN_RECORDS} records received)",
                    received.len(),
                    received.len()
                ));
                break;
            }
            Err(_) => {
                recv_failure = Some("the reader thread stopped answering".to_owned());
                break;
            }
        }
    }
    drop(tx_a);
    let wanted: Vec<Rec> = (0..LOAN_RECORDS).map(|i| Rec::new(seq_of(1, i))).collect();
    let order_failure = (recv_failure.is_none() && received != wanted).then(|| {
        let seqs: Vec<String> = received.iter().map(|r| format!("{:#x}", r.seq)).collect();
        format!(
            "received [{}], not B's records 0..{LOAN_RECORDS} in order",
            seqs.join(", ")
        )
    });
    let failures: Vec<String> = [send_failure, recv_failure, order_failure]
        .into_iter()
        .flatten()
        .collect();
    if failures.is_empty() {
        Ok(format!(
            "B sent {LOAN_RECORDS} records past A's dropped loan; all received in order"
        ))
    } else {
        Err(failures.join("; "))
    }
}

fn abandoned_loan_test(mode: &str, order: &str) {
    let name = unique_name("loan");
    let _cleanup = Cleanup(name.clone());
    let vars = [
        ("NAME", name.clone()),
        ("MODE", mode.to_owned()),
        ("ORDER", order.to_owned()),
    ];
    run_scenario("abandoned-loan", &vars, SHORT);
}

/// `Sender::loan` promises that "a loan dropped without publishing is abandoned and
/// the slot is reused by the next send". On a 4-slot lossless broadcast `Channel` with
/// a receiver attached, a loan dropped by a producer that stays alive must not freeze
/// the channel: another producer's 20 `send_timeout(.., 2 s)` calls all return and
/// succeed, and the receiver gets those 20 records, in order.
#[test]
fn an_abandoned_loan_does_not_freeze_a_lossless_broadcast_channel() {
    abandoned_loan_test("broadcast", "receiver-first");
}

/// The same with the receiver joining after the loan was dropped: its cursor starts
/// past the abandoned slot, so nothing holds the producers back until they come round
/// to that slot again.
#[test]
fn an_abandoned_loan_does_not_freeze_a_lossless_broadcast_channel_joined_later() {
    abandoned_loan_test("broadcast", "receiver-later");
}

/// The same on a unicast `Channel` (always lossless): a dropped loan does not stop
/// another producer's sends or the receiver's takes.
#[test]
fn an_abandoned_loan_does_not_freeze_a_unicast_channel() {
    abandoned_loan_test("unicast", "receiver-first");
}

/// The same on a unicast `Channel` whose receiver joins after the loan was dropped.
#[test]
fn an_abandoned_loan_does_not_freeze_a_unicast_channel_joined_later() {
    abandoned_loan_test("unicast", "receiver-later");
}

// ---------------------------------------------------------------------------------
// 3. Producer processes, more than slots, SIGKILLed mid-stream

const CRASH_CAPACITY: usize = 4;
const CRASH_RECEIVERS: usize = 2;
const CRASH_SURVIVORS: u64 = 2;
/// Victims alive at any moment: with the survivors, six producers on four slots.
const CRASH_VICTIMS: usize = 4;
const CRASH_KILLS: u64 = 24;

/// A producer process of the crash tests: producer P sends its consecutive records;
/// a survivor (STOP set) until the STOP file appears, then reports how many it sent;
/// a victim, every other record through a loan, until it is killed.
fn crash_producer(name: &str) {
    let p: u64 = var("P").parse().expect("P");
    let mode = mode_named(&var("MODE"));
    let stop = std::env::var("STOP").ok().map(PathBuf::from);
    let mut tx = lossless(name, mode, CRASH_CAPACITY)
        .sender()
        .expect("open sender");
    tx.wait_for_receivers(CRASH_RECEIVERS, SHORT)
        .expect("receivers attach");
    println!("SENDING");
    let mut i = 0u64;
    loop {
        if i % 64 == 0 && stop.as_ref().is_some_and(|s| s.exists()) {
            break;
        }
        let rec = Rec::new(seq_of(p, i));
        if stop.is_none() && i % 2 == 1 {
            // A victim fills every other record in place and yields the processor
            // before publishing it, so that kills often land between a claim and its
            // publication.
            let mut slot = tx
                .loan()
                .unwrap_or_else(|_| panic!("producer {p}: loan of record {i} failed"));
            *slot = rec;
            thread::yield_now();
            slot.publish().expect("publish");
        } else {
            tx.send_timeout(rec, LONG)
                .unwrap_or_else(|_| panic!("producer {p}: send of record {i} failed"));
        }
        i += 1;
    }
    println!("SENT {i}");
}

/// What one receiver thread of a crash test got: each producer's record numbers in
/// the order received, or why it stopped early.
type Received = Result<HashMap<u64, Vec<u64>>, String>;

/// Receives until every producer is gone, keeping each producer's record numbers.
fn collect(mut rx: shmchan::Receiver<Rec>, who: usize) -> Received {
    let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
    loop {
        match rx.recv_timeout(SHORT) {
            Ok(rec) => {
                if !rec.is_intact() {
                    return Err(format!("receiver {who}: a corrupt record"));
                }
                let (p, i) = split(rec.seq);
                got.entry(p).or_default().push(i);
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(got),
            Err(e) => {
                let total: usize = got.values().map(Vec::len).sum();
                return Err(format!("receiver {who}, after {total} records: {e:?}"));
            }
        }
    }
}

/// Two receivers (threads of this process) on a 4-slot lossless `Channel`; two
/// survivor producer processes and four victims, each victim SIGKILLed at a random
/// moment mid-stream and replaced, 24 times; then the survivors stop. Returns what
/// each survivor sent and what each receiver got.
fn crash_run(mode: &str) -> (Vec<u64>, Vec<HashMap<u64, Vec<u64>>>) {
    let name = unique_name(&format!("crash{mode}"));
    let _cleanup = Cleanup(name.clone());
    let stop = std::env::temp_dir().join(format!("{name}.stop"));
    let m = mode_named(mode);
    let (got_tx, got_rx) = mpsc::channel::<Received>();
    for who in 0..CRASH_RECEIVERS {
        let rx = lossless(&name, m, CRASH_CAPACITY)
            .receiver()
            .expect("receiver");
        let got_tx = got_tx.clone();
        thread::spawn(move || {
            let _ = got_tx.send(collect(rx, who));
        });
    }
    let producer_vars = |p: u64, survivor: bool| {
        let mut v = vec![
            ("NAME", name.clone()),
            ("MODE", mode.to_owned()),
            ("P", p.to_string()),
        ];
        if survivor {
            v.push(("STOP", stop.display().to_string()));
        }
        v
    };
    let mut survivors: Vec<Peer> = (0..CRASH_SURVIVORS)
        .map(|p| spawn("producer", &producer_vars(p, true)))
        .collect();
    let mut next_victim = CRASH_SURVIVORS;
    let mut new_victim = || {
        let mut v = spawn("producer", &producer_vars(next_victim, false));
        next_victim += 1;
        v.expect_line("SENDING", SHORT);
        v
    };
    let mut victims: Vec<Peer> = (0..CRASH_VICTIMS).map(|_| new_victim()).collect();
    let mut rng = Rng::from_time();
    let started = Instant::now();
    for _ in 0..CRASH_KILLS {
        thread::sleep(Duration::from_millis(2 + rng.below(30)));
        let k = rng.below(CRASH_VICTIMS as u64) as usize;
        victims[k].kill9();
        victims[k] = new_victim();
    }
    for v in &mut victims {
        v.kill9();
    }
    std::fs::write(&stop, b"").expect("stop file");
    let sent: Vec<u64> = survivors
        .iter_mut()
        .map(|s| {
            let n = s.expect_line("SENT", LONG)[5..]
                .parse::<u64>()
                .expect("count");
            s.expect_success(SHORT);
            n
        })
        .collect();
    let _ = std::fs::remove_file(&stop);
    let got: Vec<HashMap<u64, Vec<u64>>> = (0..CRASH_RECEIVERS)
        .map(|_| {
            got_rx
                .recv_timeout(LONG)
                .expect("a receiver did not see the end within a minute")
                .unwrap_or_else(|e| panic!("{mode}: {e}"))
        })
        .collect();
    let dead_claims = shmchan::stats::Observer::open(&name)
        .and_then(|o| o.stats())
        .map(|s| s.dead_claims.to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let from_victims: usize = got
        .iter()
        .flat_map(|g| g.iter())
        .filter(|(&p, _)| p >= CRASH_SURVIVORS)
        .map(|(_, seqs)| seqs.len())
        .sum();
    eprintln!(
        "{mode}: {CRASH_KILLS} producers killed in {:?}; survivors sent {sent:?}; \
         {from_victims} records of victims received; {dead_claims} dead claims skipped",
        started.elapsed()
    );
    (sent, got)
}

/// Whether `seqs` increases strictly; the first offence if not.
fn strictly_increasing(seqs: &[u64]) -> Result<(), (u64, u64)> {
    match seqs.windows(2).find(|w| w[1] <= w[0]) {
        Some(w) => Err((w[0], w[1])),
        None => Ok(()),
    }
}

/// A lossless broadcast `Channel` with more producer processes than slots (six on
/// four), victims among them SIGKILLed mid-stream 24 times: both receivers get every
/// record of each surviving producer exactly once and in its order, never `Lagged`,
/// and no killed producer's record twice or out of order.
#[test]
fn lossless_broadcast_more_producer_processes_than_slots_killed_mid_stream() {
    let (sent, got) = crash_run("broadcast");
    for (who, per_producer) in got.iter().enumerate() {
        for (&p, seqs) in per_producer {
            if let Err((a, b)) = strictly_increasing(seqs) {
                panic!("receiver {who}: producer {p} record {b} after {a}");
            }
            if p < CRASH_SURVIVORS {
                let want: Vec<u64> = (0..sent[p as usize]).collect();
                assert!(
                    *seqs == want,
                    "receiver {who}: survivor {p} sent {} records, {} received, not each \
                     exactly once in order",
                    sent[p as usize],
                    seqs.len()
                );
            }
        }
        for (p, &n) in sent.iter().enumerate() {
            assert!(
                n == 0 || per_producer.contains_key(&(p as u64)),
                "receiver {who}: nothing from survivor {p}"
            );
        }
    }
}

/// The same on a unicast `Channel`: the two receivers share the records, each gets
/// each producer's records in order, and together they get every record of each
/// surviving producer exactly once and no killed producer's record twice.
#[test]
fn unicast_more_producer_processes_than_slots_killed_mid_stream() {
    let (sent, got) = crash_run("unicast");
    let mut all: HashMap<u64, Vec<u64>> = HashMap::new();
    for (who, per_producer) in got.iter().enumerate() {
        for (&p, seqs) in per_producer {
            if let Err((a, b)) = strictly_increasing(seqs) {
                panic!("receiver {who}: producer {p} record {b} after {a}");
            }
            all.entry(p).or_default().extend_from_slice(seqs);
        }
    }
    for (&p, seqs) in &mut all {
        seqs.sort_unstable();
        if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
            panic!("producer {p}: record {} delivered twice", w[0]);
        }
    }
    for (p, &n) in sent.iter().enumerate() {
        let want: Vec<u64> = (0..n).collect();
        let seqs = all.get(&(p as u64)).cloned().unwrap_or_default();
        assert!(
            seqs == want,
            "survivor {p} sent {n} records, {} delivered, not each exactly once",
            seqs.len()
        );
    }
}
