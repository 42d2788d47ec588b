//! `recv_async` and `send_async` across processes, on three executors (tokio
//! `current_thread`, tokio `multi_thread`, `pollster`), for every family and mode, with
//! sequence checks; cancellation by `select!` against a timer; the `Stream`.
//!
//! Producers and sync receivers are child processes using `Wait::Block`; every wait
//! has a timeout, and children are killed when a test fails (`common::Peer`). The
//! whole file runs a second time with the waker threads forced onto the plain
//! `FUTEX_WAIT` fallback (`fallback_runs_the_same_suite`).

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use common::{role, spawn, unique_name, var, Cleanup, Peer, Rec};
use shmchan::{Channel, Mode, Overflow, RecvError, Route, Wait};

const ENTRY: &str = "child";
const LONG: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);
/// The variable that forces the fallback (read by the library under `test-hooks`).
const NO_WAITV: &str = "SHMCHAN_TEST_NO_FUTEX_WAITV";

/// Record `i` of producer `p`.
fn seq_of(p: u64, i: u64) -> u64 {
    p << 40 | i
}

fn split(seq: u64) -> (u64, u64) {
    (seq >> 40, seq & ((1 << 40) - 1))
}

/// A family and mode, as the children are told it.
#[derive(Debug, Clone, Copy)]
struct Config {
    channel: bool,
    mode: Mode,
    overflow: Overflow,
}

impl Config {
    const ALL: [Config; 6] = [
        Config::new(false, Mode::Broadcast, Overflow::Block),
        Config::new(false, Mode::Broadcast, Overflow::Overwrite),
        Config::new(false, Mode::Unicast, Overflow::Block),
        Config::new(true, Mode::Broadcast, Overflow::Block),
        Config::new(true, Mode::Broadcast, Overflow::Overwrite),
        Config::new(true, Mode::Unicast, Overflow::Block),
    ];

    const fn new(channel: bool, mode: Mode, overflow: Overflow) -> Config {
        Config {
            channel,
            mode,
            overflow,
        }
    }

    fn encode(&self) -> String {
        format!(
            "{}-{}-{}",
            if self.channel { "channel" } else { "route" },
            if self.mode == Mode::Unicast {
                "unicast"
            } else {
                "broadcast"
            },
            if self.overflow == Overflow::Block {
                "block"
            } else {
                "overwrite"
            },
        )
    }

    fn decode(s: &str) -> Config {
        *Config::ALL
            .iter()
            .find(|c| c.encode() == s)
            .unwrap_or_else(|| panic!("unknown config {s}"))
    }

    fn lossless(&self) -> bool {
        self.mode == Mode::Unicast || self.overflow == Overflow::Block
    }

    fn producers(&self) -> u64 {
        if self.channel {
            2
        } else {
            1
        }
    }

    fn builder(&self, name: &str) -> shmchan::Builder<Rec> {
        let b = if self.channel {
            Channel::<Rec>::builder(name)
        } else {
            Route::<Rec>::builder(name)
        };
        b.capacity(64)
            .mode(self.mode)
            .overflow(self.overflow)
            .wait(Wait::Block)
    }
}

/// The executors the futures run on.
#[derive(Debug, Clone, Copy)]
enum Exec {
    TokioCurrent,
    TokioMulti,
    Pollster,
}

impl Exec {
    const ALL: [Exec; 3] = [Exec::TokioCurrent, Exec::TokioMulti, Exec::Pollster];

    /// Runs `f` to completion (as a spawned task on tokio).
    fn run<F>(self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Exec::TokioCurrent => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async { tokio::spawn(f).await.expect("task") })
            }
            Exec::TokioMulti => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async { tokio::spawn(f).await.expect("task") })
            }
            Exec::Pollster => pollster::block_on(f),
        }
    }
}

/// The mode this process's waker threads must be in.
fn check_mode() {
    let forced = std::env::var_os(NO_WAITV).is_some();
    if forced {
        assert!(!shmchan::uses_futex_waitv(), "the fallback was not forced");
    }
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    let config = Config::decode(&var("CONFIG"));
    let builder = config.builder(&name);
    let count: u64 = var("COUNT").parse().expect("COUNT");
    match role.as_str() {
        // Sends COUNT records as producer P after RECEIVERS receivers attached, pausing
        // now and then so that the receivers also park.
        "producer" => {
            let p: u64 = var("P").parse().expect("P");
            let receivers: usize = var("RECEIVERS").parse().expect("RECEIVERS");
            let mut tx = builder.sender().expect("open sender");
            tx.wait_for_receivers(receivers, SHORT)
                .expect("receivers attach");
            // Every producer attached before any sends (a receiver is disconnected
            // when the last attached one leaves).
            println!("ATTACHED");
            let go = std::path::PathBuf::from(var("GO"));
            let deadline = std::time::Instant::now() + SHORT;
            while !go.exists() {
                assert!(std::time::Instant::now() < deadline, "no GO");
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut rng = common::Rng((p * 7919 + count) | 1);
            let mut i = 0;
            while i < count {
                let burst = 1 + rng.below(200);
                for _ in 0..burst.min(count - i) {
                    tx.send_timeout(Rec::new(seq_of(p, i)), LONG).expect("send");
                    i += 1;
                }
                if rng.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(50 + rng.below(300)));
                }
            }
            println!("SENT {i}");
        }
        // Receives (blocking) until disconnected, checking each producer's records
        // arrive complete and in order; prints how many.
        "in-order" => {
            let mut rx = builder.receiver().expect("open receiver");
            println!("READY");
            let mut next: HashMap<u64, u64> = HashMap::new();
            loop {
                match rx.recv_timeout(LONG) {
                    Ok(rec) => {
                        assert!(rec.is_intact(), "corrupt record");
                        let (p, i) = split(rec.seq);
                        let want = next.entry(p).or_insert(0);
                        assert_eq!(i, *want, "producer {p}: lost, duplicated or reordered");
                        *want += 1;
                    }
                    Err(shmchan::RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("receiver: {e}"),
                }
            }
            println!("DONE {}", next.values().sum::<u64>());
        }
        other => panic!("unknown role {other}"),
    }
}

/// The producers of a run, and the file that lets them start (removed on drop).
struct Producers(Vec<Peer>, std::path::PathBuf);

impl Drop for Producers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
    }
}

impl Producers {
    fn expect_success(&mut self) {
        for peer in &mut self.0 {
            peer.expect_success(LONG);
        }
    }
}

fn producers(config: Config, name: &str, count: u64, receivers: usize) -> Producers {
    let go = std::env::temp_dir().join(format!("{name}.go"));
    let mut peers: Vec<Peer> = (0..config.producers())
        .map(|p| {
            spawn(
                ENTRY,
                "producer",
                &[
                    ("NAME", name.to_owned()),
                    ("CONFIG", config.encode()),
                    ("COUNT", count.to_string()),
                    ("P", p.to_string()),
                    ("RECEIVERS", receivers.to_string()),
                    ("GO", go.display().to_string()),
                ],
            )
        })
        .collect();
    for peer in &mut peers {
        peer.expect_line("ATTACHED", SHORT);
    }
    std::fs::write(&go, b"").expect("write GO");
    Producers(peers, go)
}

/// What one async receiver got: per producer, the indices in the order received, and
/// the records it was told it missed.
#[derive(Debug, Default)]
struct Got {
    per_producer: HashMap<u64, Vec<u64>>,
    lagged: u64,
}

/// Receives until disconnected with `recv_async` (or `recv_many_async` with batches
/// of `batch`), checking every record.
async fn receive(mut rx: shmchan::Receiver<Rec>, batch: usize) -> Got {
    let mut got = Got::default();
    let mut buf = vec![Rec::new(0); batch.max(1)];
    loop {
        let result = if batch == 0 {
            rx.recv_async().await.map(|r| {
                buf[0] = r;
                1
            })
        } else {
            rx.recv_many_async(&mut buf).await
        };
        match result {
            Ok(n) => {
                for rec in &buf[..n] {
                    assert!(rec.is_intact(), "corrupt record {}", rec.seq);
                    let (p, i) = split(rec.seq);
                    got.per_producer.entry(p).or_default().push(i);
                }
            }
            Err(RecvError::Lagged(n)) => got.lagged += n,
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("receiver: {e}"),
        }
    }
    got
}

/// Every record of every producer exactly once, in each producer's order (lossless),
/// or in increasing order without duplicates (Overwrite).
fn check_broadcast(config: Config, got: &Got, count: u64) {
    for p in 0..config.producers() {
        let seqs = got.per_producer.get(&p).map_or(&[][..], Vec::as_slice);
        if config.lossless() {
            assert_eq!(seqs.len() as u64, count, "producer {p}: records lost");
            assert!(
                seqs.iter().enumerate().all(|(k, &i)| k as u64 == i),
                "producer {p}: lost, duplicated or reordered"
            );
        } else {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "producer {p}: duplicated or reordered"
            );
        }
    }
    if !config.lossless() && !config.channel {
        let total: usize = got.per_producer.values().map(Vec::len).sum();
        assert_eq!(total as u64 + got.lagged, count, "Route: received + lagged");
    }
}

/// Unicast: the receivers' records together are every record exactly once, and each
/// receiver got each producer's records in order.
fn check_unicast(config: Config, gots: &[Got], count: u64) {
    for p in 0..config.producers() {
        let mut all: Vec<u64> = Vec::new();
        for got in gots {
            let seqs = got.per_producer.get(&p).map_or(&[][..], Vec::as_slice);
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "producer {p}: reordered within a receiver"
            );
            all.extend_from_slice(seqs);
        }
        all.sort_unstable();
        assert_eq!(all.len() as u64, count, "producer {p}: lost or duplicated");
        assert!(all.iter().enumerate().all(|(k, &i)| k as u64 == i));
    }
}

/// One run: `receivers` async receivers in this process (tasks of one executor run),
/// the producers in children.
fn run_config(exec: Exec, config: Config, count: u64, receivers: usize, batch: usize) {
    check_mode();
    let name = unique_name("async");
    let _cleanup = Cleanup(name.clone());
    let builder = config.builder(&name);
    let rxs: Vec<_> = (0..receivers)
        .map(|_| builder.clone().receiver().expect("receiver"))
        .collect();
    let mut peers = producers(config, &name, count, receivers);
    let gots = exec.run(async move {
        let tasks: Vec<_> = rxs
            .into_iter()
            .map(|rx| Box::pin(receive(rx, batch)))
            .collect();
        join_all(tasks).await
    });
    peers.expect_success();
    if config.mode == Mode::Unicast {
        check_unicast(config, &gots, count);
    } else {
        for got in &gots {
            check_broadcast(config, got, count);
        }
    }
}

/// Polls all the futures concurrently until each is done (a minimal `join_all`, so
/// that the receivers of one run share an executor on every runtime).
async fn join_all<F: Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let mut outs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outs.iter_mut()) {
            if let Some(fut) = f {
                match std::pin::Pin::new(fut).poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(|o| o.expect("done")).collect()
}

fn records() -> u64 {
    std::env::var("SHMCHAN_ASYNC_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Every family and mode, on every executor: one receiver, then (unicast and
/// broadcast Block) two receivers sharing the executor, and batches.
#[test]
fn every_family_and_mode_on_every_executor() {
    if role().is_some() {
        return;
    }
    let count = records();
    for exec in Exec::ALL {
        for config in Config::ALL {
            eprintln!("{exec:?} {}", config.encode());
            run_config(exec, config, count, 1, 0);
            if config.lossless() {
                let receivers = if config.mode == Mode::Unicast { 2 } else { 1 };
                run_config(exec, config, count, receivers, 16);
            }
        }
    }
}

/// A million records from another process to each executor (broadcast lossless and
/// unicast), with sequence checks.
#[test]
fn a_million_records_to_each_executor() {
    if role().is_some() {
        return;
    }
    let count = std::env::var("SHMCHAN_ASYNC_MILLION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    for exec in Exec::ALL {
        run_config(exec, Config::ALL[0], count, 1, 0);
        run_config(exec, Config::ALL[5], count / 4, 2, 0);
    }
}

/// `send_async` to a receiver in another process, on every executor, lossless modes:
/// everything arrives in order.
#[test]
fn send_async_to_another_process() {
    if role().is_some() {
        return;
    }
    check_mode();
    let count = records();
    for exec in Exec::ALL {
        for config in Config::ALL.into_iter().filter(Config::lossless) {
            eprintln!("{exec:?} {}", config.encode());
            let name = unique_name("async-send");
            let _cleanup = Cleanup(name.clone());
            let builder = config.builder(&name);
            let mut peer = spawn(
                ENTRY,
                "in-order",
                &[
                    ("NAME", name.clone()),
                    ("CONFIG", config.encode()),
                    ("COUNT", count.to_string()),
                ],
            );
            peer.expect_line("READY", SHORT);
            let senders: Vec<_> = (0..config.producers())
                .map(|_| builder.clone().sender().expect("sender"))
                .collect();
            exec.run(async move {
                let tasks: Vec<_> = senders
                    .into_iter()
                    .enumerate()
                    .map(|(p, mut tx)| {
                        Box::pin(async move {
                            for i in 0..count {
                                tx.send_async(Rec::new(seq_of(p as u64, i)))
                                    .await
                                    .expect("send_async");
                            }
                        })
                    })
                    .collect();
                join_all(tasks).await;
            });
            let done = peer.expect_line("DONE", LONG);
            assert_eq!(done, format!("DONE {}", count * config.producers()));
            peer.expect_success(SHORT);
        }
    }
}

/// `select!` of `recv_async` against a timer, 100k times: the losing receive is
/// dropped (often while registered), and nothing is lost or duplicated.
#[test]
fn select_against_a_timer_loses_and_duplicates_nothing() {
    if role().is_some() {
        return;
    }
    check_mode();
    for config in [Config::ALL[0], Config::ALL[5]] {
        let count = 100_000;
        let name = unique_name("async-select");
        let _cleanup = Cleanup(name.clone());
        let rx = config.builder(&name).receiver().expect("receiver");
        let mut peers = producers(config, &name, count, 1);
        let (got, rounds, timer_wins) = Exec::TokioCurrent.run(async move {
            let mut rx = rx;
            let mut got = Got::default();
            let (mut rounds, mut timer_wins) = (0u64, 0u64);
            loop {
                rounds += 1;
                // Mostly a timer that is due at its second poll (a receive that found
                // the ring empty is registered by then, and is dropped registered);
                // now and then a tokio timer.
                let nap = async {
                    if rounds % 64 == 0 {
                        tokio::time::sleep(Duration::from_micros(100)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                };
                tokio::select! {
                    r = rx.recv_async() => match r {
                        Ok(rec) => {
                            assert!(rec.is_intact());
                            let (p, i) = split(rec.seq);
                            got.per_producer.entry(p).or_default().push(i);
                        }
                        Err(RecvError::Disconnected) => break,
                        Err(e) => panic!("receiver: {e}"),
                    },
                    () = nap => timer_wins += 1,
                }
            }
            (got, rounds, timer_wins)
        });
        peers.expect_success();
        eprintln!(
            "{}: {rounds} rounds, the timer won {timer_wins}",
            config.encode()
        );
        assert!(rounds >= count);
        assert!(timer_wins > 0, "no receive was cancelled");
        if config.mode == Mode::Unicast {
            check_unicast(config, &[got], count);
        } else {
            check_broadcast(config, &got, count);
        }
    }
}

/// `select!` of `send_async` against a timer, 100k times, lossless modes: a dropped
/// send has published nothing (the record is sent again), so the receiver in another
/// process gets every record exactly once, in order.
#[test]
fn select_send_against_a_timer_never_half_publishes() {
    if role().is_some() {
        return;
    }
    check_mode();
    for config in [Config::ALL[0], Config::ALL[2]] {
        let count = 100_000u64;
        let name = unique_name("async-select-send");
        let _cleanup = Cleanup(name.clone());
        let builder = config.builder(&name);
        let mut peer = spawn(
            ENTRY,
            "in-order",
            &[
                ("NAME", name.clone()),
                ("CONFIG", config.encode()),
                ("COUNT", count.to_string()),
            ],
        );
        peer.expect_line("READY", SHORT);
        let tx = builder.sender().expect("sender");
        tx.wait_for_receivers(1, SHORT).expect("receiver");
        let cancelled = Exec::TokioCurrent.run(async move {
            let mut tx = tx;
            let (mut i, mut cancelled) = (0u64, 0u64);
            while i < count {
                tokio::select! {
                    r = tx.send_async(Rec::new(seq_of(0, i))) => {
                        r.expect("send_async");
                        i += 1;
                    }
                    () = tokio::task::yield_now() => cancelled += 1,
                }
            }
            cancelled
        });
        let done = peer.expect_line("DONE", LONG);
        assert_eq!(done, format!("DONE {count}"));
        peer.expect_success(SHORT);
        eprintln!("{}: {cancelled} sends cancelled", config.encode());
    }
}

/// The `Stream`: every record in order, then the end.
#[test]
fn stream_yields_every_record_then_ends() {
    if role().is_some() {
        return;
    }
    check_mode();
    let config = Config::ALL[3];
    let count = records();
    let name = unique_name("async-stream");
    let _cleanup = Cleanup(name.clone());
    let stream = config
        .builder(&name)
        .receiver()
        .expect("receiver")
        .into_stream();
    let mut peers = producers(config, &name, count, 1);
    let got = Exec::TokioMulti.run(async move {
        let mut stream = stream;
        let mut got = Got::default();
        while let Some(item) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
        {
            let rec = item.expect("no lag in a lossless mode");
            let (p, i) = split(rec.seq);
            got.per_producer.entry(p).or_default().push(i);
        }
        got
    });
    peers.expect_success();
    check_broadcast(config, &got, count);
}

use futures_core::Stream as _;

/// The same suite with the waker threads forced onto the `FUTEX_WAIT` fallback: this
/// test binary again, in a child with the variable set.
#[test]
fn fallback_runs_the_same_suite() {
    if role().is_some() || std::env::var_os(NO_WAITV).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args([
            "--skip",
            "fallback_runs_the_same_suite",
            "--skip",
            "a_million",
        ])
        .args(["--test-threads", "1"])
        .env(NO_WAITV, "1")
        .spawn()
        .expect("spawn the suite");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "the fallback suite failed: {status}");
            return;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the fallback suite did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
