//! Loopback benchmark of the bridge beside local shm, in one run.
//!
//! * Ping-pong: a 64-byte record goes A → B and back, one at a time; the round trip is
//!   timed. Through two bridges (segment `ping` exported from A and imported on B, an
//!   echo on B, segment `pong` exported from B and imported on A) and, as the local
//!   figure, through the same two segments on one host without bridges.
//! * Throughput: 64-byte records from a lossless source to one far reader through one
//!   bridge (source, exporter, zenoh over TCP, importer, mirror, reader), beside the
//!   same source read directly.
//!
//! `cargo run --release -p shmchan-bridge --example bench -- [ROUNDS] [RECORDS]`

// The bridge holds no unsafe code (the workspace lints cannot forbid it per member).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmchan::{Overflow, Receiver, Route, Sender};
use shmchan_bridge::{ExportConfig, Exporter, ImportConfig, Importer, Network, SegmentRef};

type Rec = [u64; 8];
const CAP: usize = 1 << 12;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn tx(dir: &std::path::Path, name: &str) -> Sender<Rec> {
    Route::<Rec>::builder(name)
        .path(dir.join(name))
        .capacity(CAP)
        .overflow(Overflow::Block)
        .sender()
        .expect("sender")
}

fn rx(dir: &std::path::Path, name: &str) -> Receiver<Rec> {
    Route::<Rec>::builder(name)
        .path(dir.join(name))
        .capacity(CAP)
        .overflow(Overflow::Block)
        .receiver()
        .expect("receiver")
}

/// Exports `name` from `from` and imports it into `to`.
fn bridge(from: &std::path::Path, to: &std::path::Path, name: &str) -> (Exporter, Importer) {
    let port = free_port();
    let key = format!("bench/{name}");
    let mut e = ExportConfig::new(
        SegmentRef::at(name, from.join(name)),
        &key,
        Network {
            listen: vec![format!("tcp/127.0.0.1:{port}")],
            ..Network::default()
        },
    );
    e.lossless = true;
    let exporter = Exporter::start(e).expect("exporter");
    let i = ImportConfig::new(
        SegmentRef::at(name, to.join(name)),
        &key,
        Network {
            connect: vec![format!("tcp/127.0.0.1:{port}")],
            ..Network::default()
        },
    );
    (exporter, Importer::start(i).expect("importer"))
}

/// Times `rounds` round trips: `ping` out, the echo's record back on `pong`.
fn ping_pong(ping: &mut Sender<Rec>, pong: &mut Receiver<Rec>, rounds: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    // Warm-up: until a record makes the round trip (the bridges' routes are set up).
    let mut tag = u64::MAX / 2;
    loop {
        ping.send([tag; 8]).expect("ping");
        match pong.recv_timeout(Duration::from_millis(50)) {
            Ok(r) if r[0] == tag => break,
            _ => tag += 1,
        }
    }
    // Drain the late echoes of the warm-up.
    while pong.recv_timeout(Duration::from_millis(200)).is_ok() {}
    for i in 0..rounds {
        let t = Instant::now();
        ping.send([i; 8]).expect("ping");
        loop {
            let r = pong.recv().expect("pong");
            if r[0] == i {
                break;
            }
        }
        h.record(t.elapsed().as_nanos() as u64).expect("record");
    }
    h
}

fn echo(
    mut rx: Receiver<Rec>,
    mut tx: Sender<Rec>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(50)) {
                if tx.send(r).is_err() {
                    return;
                }
            }
        }
    })
}

/// Records a second from `src` to `dst` (`dst` reads until it has `n` records).
fn throughput(mut src: Sender<Rec>, mut dst: Receiver<Rec>, n: u64) -> f64 {
    let reader = thread::spawn(move || {
        let mut buf = vec![[0u64; 8]; 1024];
        let mut got = 0u64;
        let mut start = None;
        while got < n {
            let k = dst.recv_many(&mut buf).expect("recv");
            start.get_or_insert_with(Instant::now);
            got += k as u64;
        }
        (got, start.map(|s| s.elapsed()).unwrap_or_default())
    });
    let batch: Vec<Rec> = (0..256).map(|i| [i; 8]).collect();
    // Until the reader has its `n` (records sent before a bridge's routes were up
    // never reach it).
    while !reader.is_finished() {
        src.send_many(&batch).expect("send");
    }
    let (got, took) = reader.join().expect("reader");
    got as f64 / took.as_secs_f64()
}

fn report(what: &str, h: &Histogram<u64>) {
    println!(
        "{what:<32} p50 {:>9.1} us  p99 {:>9.1} us  p99.9 {:>9.1} us  ({} rounds)",
        h.value_at_quantile(0.50) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let records: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let (a, b) = (a.path(), b.path());

    // Local ping-pong: A's `ping` and `pong` segments, the echo on one host.
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut ping, ping_rx) = (tx(a, "lping"), rx(a, "lping"));
        let (pong_tx, mut pong) = (tx(a, "lpong"), rx(a, "lpong"));
        let e = echo(ping_rx, pong_tx, stop.clone());
        report(
            "local shm ping-pong",
            &ping_pong(&mut ping, &mut pong, rounds),
        );
        stop.store(true, Ordering::Relaxed);
        drop(ping);
        e.join().expect("echo");
    }
    // Through two bridges: ping A → B, pong B → A.
    {
        let stop = Arc::new(AtomicBool::new(false));
        let mut ping = tx(a, "ping");
        let pong_b = tx(b, "pong");
        let bridges = [bridge(a, b, "ping"), bridge(b, a, "pong")];
        let e = echo(rx(b, "ping"), pong_b, stop.clone());
        let mut pong = rx(a, "pong");
        report(
            "bridge ping-pong (2 bridges)",
            &ping_pong(&mut ping, &mut pong, rounds),
        );
        stop.store(true, Ordering::Relaxed);
        e.join().expect("echo");
        drop(bridges);
    }
    // Throughput.
    {
        let local = throughput(tx(a, "lthr"), rx(a, "lthr"), records);
        println!(
            "{:<32} {:>9.2} M records/s (64-byte records)",
            "local shm throughput",
            local / 1e6
        );
        let src = tx(a, "thr");
        let bridge = bridge(a, b, "thr");
        let far = rx(b, "thr");
        let far_rate = throughput(src, far, records);
        println!(
            "{:<32} {:>9.2} M records/s ({:.0} MB/s of records)",
            "bridge throughput",
            far_rate / 1e6,
            far_rate * 64.0 / 1e6
        );
        drop(bridge);
    }
}
