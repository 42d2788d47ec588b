//! Two "hosts" on one machine: two temporary directories holding the segments (the
//! builder's `path`), and two zenoh peers on 127.0.0.1 (a free port, scouting off). The
//! exporter runs on host A, the importer on host B. Every test is bounded: its body
//! runs in a thread and the test fails if it does not end in time (the exporters and
//! importers it started are stopped when their handles drop).

// The bridge holds no unsafe code (the workspace lints cannot forbid it per member).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shmchan::{Channel, Overflow, RecvTimeoutError, Route};
use shmchan_bridge::{
    BridgeError, ExportConfig, Exporter, ImportConfig, ImportEnd, Importer, Network, SegmentRef,
};

/// One test at a time: they all start zenoh sessions and move records as fast as
/// they can, on a machine with few cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn bounded(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        body();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => worker.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: report its panic.
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A host: a directory for its segments.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        Host {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn seg(&self, name: &str) -> SegmentRef {
        SegmentRef::at(name, self.path(name))
    }
}

fn listen(port: u16) -> Network {
    Network {
        listen: vec![format!("tcp/127.0.0.1:{port}")],
        ..Network::default()
    }
}

fn connect(port: u16) -> Network {
    Network {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        connect_timeout: Duration::from_secs(3),
        ..Network::default()
    }
}

fn source(host: &Host, name: &str, capacity: usize, overflow: Overflow) -> shmchan::Sender<u64> {
    Route::<u64>::builder(name)
        .path(host.path(name))
        .capacity(capacity)
        .overflow(overflow)
        .sender()
        .expect("source sender")
}

/// What a far reader saw: records are consecutive values, a `Lagged(n)` skips n.
#[derive(Debug, Default, Clone)]
struct FarLog {
    first: Option<u64>,
    received: u64,
    lagged: Vec<u64>,
    /// The value before and after each gap.
    gaps_at: Vec<(u64, u64)>,
    disconnected: bool,
}

/// A far reader's progress: the value of the last record it got (`NONE` before).
#[derive(Debug, Clone, Default)]
struct Progress(Arc<AtomicU64>);

const NONE: u64 = u64::MAX;

impl Progress {
    fn new() -> Progress {
        Progress(Arc::new(AtomicU64::new(NONE)))
    }

    fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed) != NONE
    }

    /// Waits until the far reader got the value `v` or a later one.
    fn wait_for(&self, v: u64) {
        let start = Instant::now();
        while !self.seen() || self.0.load(Ordering::Relaxed) < v {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "value {v} did not arrive"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads the mirror at `path` until the value `last` arrives (or `Disconnected`),
/// checking that every record is the one expected after the records and gaps before
/// it, and reporting its progress in `seen`. Opens the mirror with no option and
/// checks that it adopted `capacity` and `overflow`.
fn far_reader(
    path: PathBuf,
    name: &str,
    last: Arc<AtomicU64>,
    seen: Progress,
    capacity: usize,
    overflow: Overflow,
) -> thread::JoinHandle<FarLog> {
    // No option restated: the mirror's, which the importer created from the source's
    // meta, are adopted (opening adopts, creating decides).
    let mut rx = Route::<u64>::builder(name)
        .path(path)
        .receiver()
        .expect("far receiver");
    assert_eq!(
        (rx.capacity(), rx.overflow()),
        (capacity, overflow),
        "the mirror's options, adopted"
    );
    thread::spawn(move || {
        let mut log = FarLog::default();
        let mut expected = None::<u64>;
        let mut prev = None::<u64>;
        let mut pending_gap = 0u64;
        let mut buf = vec![0u64; 4096];
        loop {
            match rx.recv_many_timeout(&mut buf, Duration::from_millis(100)) {
                Ok(n) => {
                    for &v in &buf[..n] {
                        if let Some(e) = expected {
                            assert_eq!(v, e, "record out of order (after {log:?})");
                        } else {
                            log.first = Some(v);
                        }
                        if pending_gap > 0 {
                            log.gaps_at.push((prev.unwrap_or(0), v));
                            pending_gap = 0;
                        }
                        log.received += 1;
                        prev = Some(v);
                        expected = Some(v + 1);
                        seen.0.store(v, Ordering::Relaxed);
                        if v >= last.load(Ordering::Relaxed) {
                            return log;
                        }
                    }
                }
                Err(RecvTimeoutError::Lagged(n)) => {
                    assert!(expected.is_some(), "a gap before the first record");
                    log.lagged.push(n);
                    pending_gap += n;
                    expected = expected.map(|e| e + n);
                    if expected.is_some_and(|e| e > last.load(Ordering::Relaxed)) {
                        return log;
                    }
                }
                // `last` may have been set after its record came.
                Err(RecvTimeoutError::Timeout) => {
                    if expected.is_some_and(|e| e > last.load(Ordering::Relaxed)) {
                        return log;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    log.disconnected = true;
                    return log;
                }
                Err(e) => panic!("far reader: {e}"),
            }
        }
    })
}

/// Sends consecutive values from `*next` until `seen` (the far side got one).
fn warm_up(tx: &mut shmchan::Sender<u64>, next: &mut u64, seen: &Progress) {
    let start = Instant::now();
    while !seen.seen() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no record crossed the bridge"
        );
        tx.send(*next).expect("send");
        *next += 1;
        thread::sleep(Duration::from_millis(5));
    }
}

struct Pair {
    a: Host,
    b: Host,
    port: u16,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            a: Host::new(),
            b: Host::new(),
            port: free_port(),
        }
    }

    fn export(&self, name: &str, lossless: bool) -> Exporter {
        let mut c = ExportConfig::new(self.a.seg(name), "test/bridge", listen(self.port));
        c.lossless = lossless;
        Exporter::start(c).expect("exporter")
    }

    fn import_config(&self, name: &str) -> ImportConfig {
        ImportConfig::new(self.b.seg(name), "test/bridge", connect(self.port))
    }
}

#[test]
fn a_million_records_arrive_in_order_without_gap() {
    bounded(Duration::from_secs(180), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "src", 1 << 14, Overflow::Block);
        let exporter = p.export("src", true);
        let importer = Importer::start(p.import_config("src")).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("src"),
            "src",
            last.clone(),
            seen.clone(),
            1 << 14,
            Overflow::Block,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        let end = next + 1_000_000;
        last.store(end - 1, Ordering::Relaxed);
        let batch: Vec<u64> = (0..1024).collect();
        while next < end {
            let k = (end - next).min(1024) as usize;
            let chunk: Vec<u64> = batch[..k].iter().map(|i| next + i).collect();
            tx.send_many(&chunk).expect("send");
            next += k as u64;
        }
        let log = far.join().expect("far reader");
        assert!(log.lagged.is_empty(), "gaps in a lossless stream: {log:?}");
        assert!(log.received >= 1_000_000, "{log:?}");
        assert_eq!(exporter.stop().expect("exporter").lagged, 0);
        assert_eq!(importer.stop().expect("importer"), ImportEnd::Stopped);
    });
}

/// A `Channel` source whose producer table is not the default size: the exporter opens
/// it with the size its header gives, and the mirror (a `Route`) gets every record.
#[test]
fn a_channel_source_with_its_own_producer_table_size() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = Channel::<u64>::builder("chan")
            .path(p.a.path("chan"))
            .capacity(1 << 12)
            .overflow(Overflow::Block)
            .max_producers(5)
            .sender()
            .expect("channel source");
        let exporter = p.export("chan", true);
        let importer = Importer::start(p.import_config("chan")).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("chan"),
            "chan",
            last.clone(),
            seen.clone(),
            1 << 12,
            Overflow::Block,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        let end = next + 10_000;
        last.store(end - 1, Ordering::Relaxed);
        while next < end {
            tx.send(next).expect("send");
            next += 1;
        }
        let log = far.join().expect("far reader");
        assert!(log.lagged.is_empty(), "gaps in a lossless stream: {log:?}");
        assert_eq!(log.received, end - log.first.expect("first"));
        assert_eq!(exporter.stop().expect("exporter").lagged, 0);
        assert_eq!(importer.stop().expect("importer"), ImportEnd::Stopped);
    });
}

#[test]
fn overwrite_source_with_a_slow_exporter_counts_every_loss() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "small", 64, Overflow::Overwrite);
        let mut c = ExportConfig::new(p.a.seg("small"), "test/bridge", listen(p.port));
        c.max_batch = Some(16);
        c.pace = Duration::from_millis(2);
        let exporter = Exporter::start(c).expect("exporter");
        let importer = Importer::start(p.import_config("small")).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("small"),
            "small",
            last.clone(),
            seen.clone(),
            64,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        let end = next + 50_000;
        last.store(end - 1, Ordering::Relaxed);
        while next < end {
            tx.send(next).expect("send");
            next += 1;
            if next % 64 == 0 {
                thread::sleep(Duration::from_micros(200));
            }
        }
        let log = far.join().expect("far reader");
        let first = log.first.expect("a first record");
        let lagged: u64 = log.lagged.iter().sum();
        assert_eq!(log.received + lagged, end - first, "{log:?}");
        assert!(
            lagged > 0,
            "the throttled exporter should have lagged: {log:?}"
        );
        let s = exporter.stop().expect("exporter");
        assert!(s.lagged > 0);
        let i = importer.stop();
        assert_eq!(i.expect("importer"), ImportEnd::Stopped);
    });
}

/// A TCP forwarder between the importer and the exporter that the test can cut.
struct Link {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    quit: Arc<AtomicBool>,
}

impl Link {
    fn new(target: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("link listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let quit = Arc::new(AtomicBool::new(false));
        let (u, c, q) = (up.clone(), conns.clone(), quit.clone());
        thread::spawn(move || {
            while !q.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        if !u.load(Ordering::Relaxed) {
                            drop(inbound); // cut: refuse
                            continue;
                        }
                        let _ = inbound.set_nonblocking(false);
                        let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let mut guard = c.lock().unwrap_or_else(|e| e.into_inner());
                        for (from, to) in [(&inbound, &outbound), (&outbound, &inbound)] {
                            let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone())
                            else {
                                continue;
                            };
                            thread::spawn(move || {
                                let mut buf = vec![0u8; 64 * 1024];
                                while let Ok(n) = from.read(&mut buf) {
                                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                let _ = to.shutdown(Shutdown::Both);
                                let _ = from.shutdown(Shutdown::Both);
                            });
                        }
                        guard.push(inbound);
                        guard.push(outbound);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Link {
            port,
            up,
            conns,
            quit,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        for s in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// Sends consecutive values at about `per_ms` records a millisecond for `dur`.
fn stream_for(tx: &mut shmchan::Sender<u64>, next: &mut u64, dur: Duration) {
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..10 {
            tx.send(*next).expect("send");
            *next += 1;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_link_outage_is_one_gap_of_its_size() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "cut", 1 << 12, Overflow::Overwrite);
        let exporter = p.export("cut", false);
        let link = Link::new(p.port);
        let mut c = ImportConfig::new(p.b.seg("cut"), "test/bridge", connect(link.port));
        c.linger = Duration::from_secs(30);
        let importer = Importer::start(c).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("cut"),
            "cut",
            last.clone(),
            seen.clone(),
            1 << 12,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        stream_for(&mut tx, &mut next, Duration::from_millis(300));
        link.cut();
        stream_for(&mut tx, &mut next, Duration::from_millis(1000));
        link.restore();
        // Until records flow again through the restored link.
        let start = Instant::now();
        let mut records = importer.stats().records;
        loop {
            stream_for(&mut tx, &mut next, Duration::from_millis(50));
            let now = importer.stats().records;
            if importer.stats().gaps > 0 && now > records {
                break;
            }
            records = now;
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the link did not come back"
            );
        }
        stream_for(&mut tx, &mut next, Duration::from_millis(200));
        last.store(next - 1, Ordering::Relaxed);
        let log = far.join().expect("far reader");
        assert_eq!(log.lagged.len(), 1, "one gap for one outage: {log:?}");
        let (before, after) = log.gaps_at[0];
        assert_eq!(after - before - 1, log.lagged[0], "{log:?}");
        let first = log.first.expect("first");
        assert_eq!(log.received + log.lagged[0], next - first, "{log:?}");
        assert_eq!(
            exporter.stop().expect("exporter").lagged,
            0,
            "no loss at the source"
        );
        let stats = importer.stats();
        assert_eq!((stats.gaps, stats.missing), (1, log.lagged[0]));
        importer.stop().expect("importer");
    });
}

#[test]
fn exporter_restart_on_the_same_source_is_one_gap_of_what_no_exporter_read() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "rs", 1 << 12, Overflow::Overwrite);
        let exporter = p.export("rs", false);
        let mut c = p.import_config("rs");
        c.linger = Duration::from_secs(30);
        let importer = Importer::start(c).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("rs"),
            "rs",
            last.clone(),
            seen.clone(),
            1 << 12,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        stream_for(&mut tx, &mut next, Duration::from_millis(200));
        // Let the far side catch up, so the gap is exactly the downtime's records.
        seen.wait_for(next - 1);
        let epoch = exporter.epoch();
        exporter.stop().expect("exporter");
        let down_from = next;
        for _ in 0..500 {
            tx.send(next).expect("send");
            next += 1;
        }
        let down = next - down_from;
        let exporter = p.export("rs", false);
        assert_ne!(exporter.epoch(), epoch);
        // Records the new exporter publishes before the importer's subscription reaches
        // it are lost too (and counted): wait for the route, for an exact figure.
        assert!(exporter.wait_for_importers(Duration::from_secs(30)));
        let start = Instant::now();
        while importer.stats().epochs < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the importer did not see the new exporter"
            );
            stream_for(&mut tx, &mut next, Duration::from_millis(20));
        }
        stream_for(&mut tx, &mut next, Duration::from_millis(100));
        last.store(next - 1, Ordering::Relaxed);
        let log = far.join().expect("far reader");
        assert_eq!(log.lagged, [down], "{log:?}");
        assert_eq!(log.gaps_at[0], (down_from - 1, down_from + down), "{log:?}");
        exporter.stop().expect("exporter");
        importer.stop().expect("importer");
    });
}

#[test]
fn exporter_restart_on_a_recreated_source_ends_the_mirror_stream() {
    bounded(Duration::from_secs(60), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "re", 1 << 10, Overflow::Overwrite);
        let exporter = p.export("re", false);
        let mut c = p.import_config("re");
        c.linger = Duration::from_secs(30);
        let importer = Importer::start(c).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("re"),
            "re",
            last,
            seen.clone(),
            1 << 10,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        exporter.stop().expect("exporter");
        drop(tx);
        std::fs::remove_file(p.a.path("re")).expect("remove source");
        let mut tx = source(&p.a, "re", 1 << 10, Overflow::Overwrite);
        let exporter = p.export("re", false);
        let start = Instant::now();
        while !importer.is_finished() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the importer went on"
            );
            tx.send(0).expect("send");
            thread::sleep(Duration::from_millis(5));
        }
        let err = importer.wait().expect_err("source changed");
        assert!(matches!(err, BridgeError::SourceChanged { .. }), "{err}");
        assert!(err.to_string().contains("another source segment"), "{err}");
        let log = far.join().expect("far reader");
        assert!(log.disconnected, "far readers see the end: {log:?}");
        exporter.stop().expect("exporter");
    });
}

#[test]
fn exporter_gone_for_the_linger_time_disconnects_far_readers() {
    bounded(Duration::from_secs(60), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "gone", 1 << 10, Overflow::Overwrite);
        let exporter = p.export("gone", false);
        let mut c = p.import_config("gone");
        c.linger = Duration::from_millis(500);
        let importer = Importer::start(c).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("gone"),
            "gone",
            last,
            seen.clone(),
            1 << 10,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        exporter.stop().expect("exporter");
        let log = far.join().expect("far reader");
        assert!(log.disconnected, "{log:?}");
        assert_eq!(importer.wait().expect("importer"), ImportEnd::SourceGone);
    });
}

#[test]
fn two_importers_fan_out() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let c_host = Host::new();
        let mut tx = source(&p.a, "fan", 1 << 12, Overflow::Block);
        let exporter = p.export("fan", true);
        let ib = Importer::start(p.import_config("fan")).expect("importer B");
        let ic = Importer::start(ImportConfig::new(
            c_host.seg("fan"),
            "test/bridge",
            connect(p.port),
        ))
        .expect("importer C");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let (seen_b, seen_c) = (Progress::new(), Progress::new());
        let far_b = far_reader(
            p.b.path("fan"),
            "fan",
            last.clone(),
            seen_b.clone(),
            1 << 12,
            Overflow::Block,
        );
        let far_c = far_reader(
            c_host.path("fan"),
            "fan",
            last.clone(),
            seen_c.clone(),
            1 << 12,
            Overflow::Block,
        );
        let mut next = 0;
        let start = Instant::now();
        while !(seen_b.seen() && seen_c.seen()) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no record crossed both bridges"
            );
            tx.send(next).expect("send");
            next += 1;
            thread::sleep(Duration::from_millis(5));
        }
        let end = next + 100_000;
        last.store(end - 1, Ordering::Relaxed);
        while next < end {
            tx.send(next).expect("send");
            next += 1;
        }
        for far in [far_b, far_c] {
            let log = far.join().expect("far reader");
            assert!(log.lagged.is_empty(), "{log:?}");
            assert_eq!(log.received, end - log.first.expect("first"));
        }
        exporter.stop().expect("exporter");
        ib.stop().expect("importer B");
        ic.stop().expect("importer C");
    });
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, BridgeError>) -> BridgeError {
    r.expect_err("an error")
}

#[test]
fn bad_inputs_give_clear_errors() {
    bounded(Duration::from_secs(60), || {
        let p = Pair::new();
        // A wildcard key, on either side.
        for key in ["md/*", "md/**", "a/$*"] {
            let e = expect_err(Exporter::start(ExportConfig::new(
                p.a.seg("x"),
                key,
                listen(p.port),
            )));
            assert!(
                matches!(e, BridgeError::InvalidKey { .. }) && e.to_string().contains("wildcard"),
                "{e}"
            );
            let e = expect_err(Importer::start(ImportConfig::new(
                p.b.seg("x"),
                key,
                connect(p.port),
            )));
            assert!(matches!(e, BridgeError::InvalidKey { .. }), "{e}");
        }
        // The source segment absent.
        let e = expect_err(Exporter::start(ExportConfig::new(
            p.a.seg("absent"),
            "t/k",
            listen(p.port),
        )));
        assert!(matches!(e, BridgeError::SourceNotFound { .. }), "{e}");
        assert!(e.to_string().contains("absent"), "{e}");
        // A Block source without `--lossless`.
        let _blk = source(&p.a, "blk", 64, Overflow::Block);
        let e = expect_err(Exporter::start(ExportConfig::new(
            p.a.seg("blk"),
            "t/k",
            listen(p.port),
        )));
        assert!(matches!(e, BridgeError::LosslessSource { .. }), "{e}");
        assert!(e.to_string().contains("--lossless"), "{e}");
        // An unreachable peer: an error after the connect timeout, no hang.
        let mut net = connect(free_port());
        net.connect_timeout = Duration::from_millis(500);
        let started = Instant::now();
        let e = expect_err(Importer::start(ImportConfig::new(p.b.seg("x"), "t/k", net)));
        assert!(matches!(e, BridgeError::Zenoh { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
        // No exporter on the key: an error after the meta timeout.
        let _tx = source(&p.a, "src", 64, Overflow::Overwrite);
        let exporter = p.export("src", false);
        let mut c = ImportConfig::new(p.b.seg("x"), "other/key", connect(p.port));
        c.meta_timeout = Duration::from_millis(500);
        let e = expect_err(Importer::start(c));
        assert!(matches!(e, BridgeError::NoExporter { .. }), "{e}");
        // A second exporter on the same key.
        let mut c = ExportConfig::new(p.a.seg("src"), "test/bridge", connect(p.port));
        c.network.listen.clear();
        let e = expect_err(Exporter::start(c));
        assert!(matches!(e, BridgeError::KeyTaken { .. }), "{e}");
        // A mirror with another layout: the error names both.
        let _mirror = Route::<u32>::builder("src")
            .path(p.b.path("src"))
            .capacity(64)
            .receiver()
            .expect("mirror of another type");
        let e = expect_err(Importer::start(p.import_config("src")));
        let text = e.to_string();
        assert!(matches!(e, BridgeError::MirrorMismatch { .. }), "{e}");
        assert!(
            text.contains(&p.b.path("src").display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("test/bridge") && text.contains("u64") && text.contains("u32"),
            "{text}"
        );
        drop(_mirror);
        std::fs::remove_file(p.b.path("src")).expect("remove");
        // A second sender on the mirror: a local producer, or a second importer.
        let local = Route::<u64>::builder("src")
            .path(p.b.path("src"))
            .capacity(64)
            .sender()
            .expect("local sender");
        let e = expect_err(Importer::start(p.import_config("src")));
        assert!(matches!(e, BridgeError::MirrorBusy { .. }), "{e}");
        drop(local);
        let first = Importer::start(p.import_config("src")).expect("importer");
        let e = expect_err(Importer::start(p.import_config("src")));
        assert!(matches!(e, BridgeError::MirrorBusy { .. }), "{e}");
        first.stop().expect("importer");
        exporter.stop().expect("exporter");
    });
}

/// The source's producer leaves: far readers drain and get `Disconnected`, as local
/// ones do; a new producer attaches: far readers receive again.
#[test]
fn far_readers_see_the_source_producer_leave_and_a_new_one_attach() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "prod", 1 << 10, Overflow::Overwrite);
        let exporter = p.export("prod", false);
        let mut c = p.import_config("prod");
        c.linger = Duration::from_secs(60);
        let importer = Importer::start(c).expect("importer");
        let mut far = Route::<u64>::builder("prod")
            .path(p.b.path("prod"))
            .capacity(1 << 10)
            .overflow(Overflow::Overwrite)
            .receiver()
            .expect("far receiver");
        // Until a record crosses.
        let mut next = 0u64;
        let start = Instant::now();
        let mut got = loop {
            tx.send(next).expect("send");
            next += 1;
            if let Ok(v) = far.recv_timeout(Duration::from_millis(20)) {
                break v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no record crossed the bridge"
            );
        };
        for _ in 0..100 {
            tx.send(next).expect("send");
            next += 1;
        }
        drop(tx); // the producer leaves
        let start = Instant::now();
        loop {
            match far.recv_timeout(Duration::from_millis(100)) {
                Ok(v) => {
                    assert_eq!(v, got + 1, "in order, without gap");
                    got = v;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("far reader: {e}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the far reader did not see the producer leave (got up to {got})"
            );
        }
        assert_eq!(got, next - 1, "every record before Disconnected");
        // A new producer attaches to the source: the far reader goes on.
        let mut tx = source(&p.a, "prod", 1 << 10, Overflow::Overwrite);
        let start = Instant::now();
        let back = loop {
            tx.send(next).expect("send");
            next += 1;
            match far.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => break v,
                // Returns at once until the mirror has a sender again: pace the sends,
                // so that the exporter keeps up with the source (no gap).
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(5)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => panic!(
                    "far reader: {e} (got {got}, sent up to {next}; {:?}, {:?})",
                    importer.stats(),
                    exporter.stats()
                ),
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the far reader did not see the new producer"
            );
        };
        assert!(back > got, "{back} after {got}");
        assert!(!importer.is_finished());
        drop(tx);
        exporter.stop().expect("exporter");
        importer.stop().expect("importer");
    });
}

/// Any publisher can put on the key: what is not a frame of the stream is skipped,
/// and the import goes on.
#[test]
fn a_stray_publisher_on_the_key_does_not_end_the_import() {
    bounded(Duration::from_secs(120), || {
        use zenoh::Wait;
        let p = Pair::new();
        let stray_port = free_port();
        let stray = zenoh::open(listen(stray_port).config().expect("config"))
            .wait()
            .expect("stray session");
        let mut tx = source(&p.a, "stray", 1 << 10, Overflow::Overwrite);
        let exporter = p.export("stray", false);
        let mut c = p.import_config("stray");
        c.network
            .connect
            .push(format!("tcp/127.0.0.1:{stray_port}"));
        let importer = Importer::start(c).expect("importer");
        let last = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Progress::new();
        let far = far_reader(
            p.b.path("stray"),
            "stray",
            last.clone(),
            seen.clone(),
            1 << 10,
            Overflow::Overwrite,
        );
        let mut next = 0;
        warm_up(&mut tx, &mut next, &seen);
        for junk in [&b"garbage"[..], &[0u8; 100][..], b"SCB1\x08\0\0\0"] {
            stray
                .put("test/bridge/data", junk.to_vec())
                .wait()
                .expect("stray put");
        }
        // Longer than any frame: the importer's session refuses it (not even counted).
        stray
            .put(
                "test/bridge/data",
                vec![0u8; shmchan_bridge::MAX_MESSAGE_LEN + 1],
            )
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .wait()
            .expect("stray put");
        stream_for(&mut tx, &mut next, Duration::from_millis(300));
        last.store(next - 1, Ordering::Relaxed);
        let log = far.join().expect("far reader");
        assert!(!log.disconnected, "{log:?}");
        assert!(log.lagged.is_empty(), "{log:?}");
        assert!(!importer.is_finished(), "the import ended");
        let stats = importer.stats();
        assert_eq!((stats.corrupt, stats.gaps), (3, 0), "{stats:?}");
        assert!(importer.last_corrupt().is_some());
        exporter.stop().expect("exporter");
        importer.stop().expect("importer");
        let _ = stray.close().wait();
    });
}

/// A meta from the network that asks for a mirror no frame could fill is refused at
/// start, before any mirror is created.
#[test]
fn a_hostile_meta_is_refused_at_start() {
    bounded(Duration::from_secs(60), || {
        use zenoh::Wait;
        let p = Pair::new();
        let fake = zenoh::open(listen(p.port).config().expect("config"))
            .wait()
            .expect("fake exporter session");
        let json = shmchan_bridge::Meta {
            family: shmchan::stats::Family::Route,
            mode: shmchan::Mode::Broadcast,
            overflow: Overflow::Overwrite,
            capacity: 2,
            max_receivers: 4,
            record_size: 64 << 20,
            record_align: 8,
            type_name: "Huge".into(),
            epoch: 1,
            source_id: 2,
        }
        .to_json();
        let _queryable = fake
            .declare_queryable("test/bridge/meta")
            .callback(move |q| {
                let _ = q.reply(q.key_expr().clone(), json.clone()).wait();
            })
            .wait()
            .expect("queryable");
        let e = expect_err(Importer::start(p.import_config("huge")));
        assert!(matches!(e, BridgeError::BadMeta { .. }), "{e}");
        assert!(!p.b.path("huge").exists(), "a mirror was created");
        let _ = fake.close().wait();
    });
}

/// The source's producer left before the exporter started: the exporter's receiver
/// joined without a producer and will not say `Disconnected`, yet far readers that
/// were there get it, and then the records of a new producer.
#[test]
fn an_exporter_started_after_the_producer_left_tells_far_readers() {
    bounded(Duration::from_secs(120), || {
        let p = Pair::new();
        let mut tx = source(&p.a, "late", 1 << 10, Overflow::Overwrite);
        // A local reader of the source, there all along: it gets `Disconnected`.
        let mut local = Route::<u64>::builder("late")
            .path(p.a.path("late"))
            .capacity(1 << 10)
            .overflow(Overflow::Overwrite)
            .receiver()
            .expect("local receiver");
        for v in 0..10 {
            tx.send(v).expect("send");
        }
        drop(tx);
        for v in 0..10 {
            assert_eq!(local.recv_timeout(Duration::from_secs(5)), Ok(v));
        }
        assert_eq!(
            local.recv_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        );
        // The far reader is there first (it creates the mirror), as one that read the
        // mirror since before the producer left would be.
        let mut far = Route::<u64>::builder("late")
            .path(p.b.path("late"))
            .capacity(1 << 10)
            .overflow(Overflow::Overwrite)
            .receiver()
            .expect("far receiver");
        let exporter = p.export("late", false);
        let mut c = p.import_config("late");
        c.linger = Duration::from_secs(60);
        let importer = Importer::start(c).expect("importer");
        let start = Instant::now();
        loop {
            match far.recv_timeout(Duration::from_millis(100)) {
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
                other => panic!("far reader: {other:?}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the far reader was not told that the source has no producer ({:?}, {:?})",
                importer.stats(),
                exporter.stats()
            );
        }
        let mut tx = source(&p.a, "late", 1 << 10, Overflow::Overwrite);
        let start = Instant::now();
        let mut next = 10;
        let got = loop {
            tx.send(next).expect("send");
            next += 1;
            match far.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => break v,
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(5)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("far reader: {e}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the far reader did not see the new producer"
            );
        };
        assert!(got >= 10, "{got}");
        drop(tx);
        exporter.stop().expect("exporter");
        importer.stop().expect("importer");
    });
}
