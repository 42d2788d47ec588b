//! Batches across processes: `Sender::send_many` and `Receiver::recv_many` for every
//! family, mode and overflow, with batch sizes 1, the capacity and more than the
//! capacity, and records of 3 bytes, 64 bytes, 4 KiB and a 16-byte-aligned type.
//! The same matrix runs with raw ends (`shmchan::raw`, records as bytes) facing typed
//! ones, in both directions. Every waiting side uses `Wait::Block`, every wait has a
//! timeout, and children are killed when a test fails (`common::Peer`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use common::{role, spawn, unique_name, var, Peer, Rec};
use shmchan::raw::{self, RawError, RecordLayout};
use shmchan::{
    Channel, Mode, Overflow, RecvError, RecvTimeoutError, Route, SendTimeoutError, TryRecvError,
    Wait,
};

const ENTRY: &str = "child";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(20);
const CAPACITY: usize = 16;
const BATCHES: [usize; 3] = [1, CAPACITY, 3 * CAPACITY + 1];

/// Record `i` of producer `p`.
fn seq_of(p: u64, i: u64) -> u64 {
    p << 40 | i
}

fn split(seq: u64) -> (u64, u64) {
    (seq >> 40, seq & ((1 << 40) - 1))
}

/// A record that carries a sequence number and can tell whether it is intact.
trait Record: Pod {
    fn make(seq: u64) -> Self;
    /// The sequence number; panics if the record is torn or corrupt.
    fn seq(&self) -> u64;
}

/// 3 bytes: producer (1 bit) and index (15 bits), and a check byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
struct Tiny([u8; 3]);

impl Record for Tiny {
    fn make(seq: u64) -> Self {
        let (p, i) = split(seq);
        assert!(
            p < 2 && i < 1 << 15,
            "Tiny holds 2 producers x 2^15 records"
        );
        let v = (p << 15 | i) as u16;
        let [a, b] = v.to_le_bytes();
        Tiny([a, b, a ^ b ^ 0x5A])
    }

    fn seq(&self) -> u64 {
        let [a, b, c] = self.0;
        assert_eq!(c, a ^ b ^ 0x5A, "corrupt Tiny {self:?}");
        let v = u64::from(u16::from_le_bytes([a, b]));
        seq_of(v >> 15, v & 0x7FFF)
    }
}

impl Record for Rec {
    fn make(seq: u64) -> Self {
        Rec::new(seq)
    }

    fn seq(&self) -> u64 {
        assert!(self.is_intact(), "corrupt Rec {}", self.seq);
        self.seq
    }
}

/// 4 KiB, every word derived from the sequence number.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Page([u64; 512]);

fn word(seq: u64, k: usize) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(k as u32 % 64)
        ^ k as u64
}

impl Record for Page {
    fn make(seq: u64) -> Self {
        let mut w = [0u64; 512];
        w[0] = seq;
        for (k, x) in w.iter_mut().enumerate().skip(1) {
            *x = word(seq, k);
        }
        Page(w)
    }

    fn seq(&self) -> u64 {
        let seq = self.0[0];
        for (k, x) in self.0.iter().enumerate().skip(1) {
            assert_eq!(*x, word(seq, k), "corrupt Page {seq} at word {k}");
        }
        seq
    }
}

/// A 16-byte-aligned record.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
struct Aligned {
    seq: u64,
    check: u64,
}

impl Record for Aligned {
    fn make(seq: u64) -> Self {
        Aligned {
            seq,
            check: !seq.rotate_left(17),
        }
    }

    fn seq(&self) -> u64 {
        assert_eq!(self.check, !self.seq.rotate_left(17), "corrupt Aligned");
        self.seq
    }
}

/// One configuration of the matrix.
#[derive(Clone, Copy, Debug)]
struct Config {
    channel: bool,
    mode: Mode,
    overflow: Overflow,
}

impl Config {
    fn from_env() -> Config {
        Config {
            channel: var("FAMILY") == "channel",
            mode: if var("MODE") == "unicast" {
                Mode::Unicast
            } else {
                Mode::Broadcast
            },
            overflow: if var("OVERFLOW") == "block" {
                Overflow::Block
            } else {
                Overflow::Overwrite
            },
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "FAMILY",
                if self.channel { "channel" } else { "route" }.into(),
            ),
            (
                "MODE",
                if self.mode == Mode::Unicast {
                    "unicast"
                } else {
                    "broadcast"
                }
                .into(),
            ),
            (
                "OVERFLOW",
                if self.overflow == Overflow::Block {
                    "block"
                } else {
                    "overwrite"
                }
                .into(),
            ),
        ]
    }

    fn builder<R: Record>(&self, name: &str) -> shmchan::Builder<R> {
        let b = if self.channel {
            Channel::<R>::builder(name)
        } else {
            Route::<R>::builder(name)
        };
        let b = b.capacity(CAPACITY).wait(Wait::Block);
        if self.mode == Mode::Unicast {
            b.mode(Mode::Unicast)
        } else {
            b.overflow(self.overflow)
        }
    }

    /// The same options for a raw end with records of `layout`.
    fn raw_builder(&self, name: &str, layout: RecordLayout) -> shmchan::Builder<raw::Raw> {
        let b = if self.channel {
            raw::channel(name, layout)
        } else {
            raw::route(name, layout)
        };
        let b = b.capacity(CAPACITY).wait(Wait::Block);
        if self.mode == Mode::Unicast {
            b.mode(Mode::Unicast)
        } else {
            b.overflow(self.overflow)
        }
    }

    fn producers(&self) -> u64 {
        if self.channel {
            2
        } else {
            1
        }
    }

    fn receivers(&self) -> usize {
        2
    }

    /// Route broadcast Overwrite: sequence numbers are the records' indices, so lags
    /// are accounted exactly.
    fn exact_lag(&self) -> bool {
        !self.channel && self.mode == Mode::Broadcast && self.overflow == Overflow::Overwrite
    }

    fn lossless(&self) -> bool {
        self.mode == Mode::Unicast || self.overflow == Overflow::Block
    }
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    match var("TYPE").as_str() {
        "tiny" => run_child::<Tiny>(&role),
        "rec" => run_child::<Rec>(&role),
        "page" => run_child::<Page>(&role),
        "aligned" => run_child::<Aligned>(&role),
        other => panic!("unknown type {other}"),
    }
}

fn run_child<R: Record>(role: &str) {
    let config = Config::from_env();
    let name = var("NAME");
    let batch: usize = var("BATCH").parse().expect("BATCH");
    let count: u64 = var("COUNT").parse().expect("COUNT");
    let builder = config.builder::<R>(&name);
    let raw_side = var("RAW") == role;
    match role {
        // Sends COUNT records as producer P in batches of BATCH.
        "producer" => {
            let p: u64 = var("P").parse().expect("P");
            let mut tx = if raw_side {
                // A raw producer learns the layout from the segment the receivers made.
                let layout = raw::inspect(&name).expect("inspect").layout();
                assert_eq!(layout.size(), size_of::<R>());
                End::Raw(
                    config
                        .raw_builder(&name, layout)
                        .sender()
                        .expect("open raw sender"),
                )
            } else {
                End::Typed(builder.sender().expect("open sender"))
            };
            tx.wait_for_receivers(config.receivers());
            // Every producer is attached before any sends: one that finished and left
            // before another attached would disconnect the receivers early.
            println!("OPEN");
            let go = PathBuf::from(var("GO"));
            let deadline = std::time::Instant::now() + SHORT;
            while !go.exists() {
                assert!(std::time::Instant::now() < deadline, "no GO");
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut i = 0u64;
            let mut buf = Vec::with_capacity(batch);
            while i < count {
                buf.clear();
                let n = (count - i).min(batch as u64);
                buf.extend((i..i + n).map(|j| R::make(seq_of(p, j))));
                let sent = tx.send_many(&buf).expect("send_many");
                assert_eq!(sent, buf.len());
                i += n;
            }
            println!("SENT {i}");
        }
        // Receives in batches of BATCH until disconnected: each producer's records in
        // order; lossless, none missing; Route Overwrite, every gap reported exactly.
        // Writes every sequence number it got to OUT.
        "receiver" => {
            let out = PathBuf::from(var("OUT"));
            let mut rx = if raw_side {
                let layout = RecordLayout::new(size_of::<R>(), align_of::<R>(), &type_name::<R>())
                    .expect("layout");
                End::Raw(
                    config
                        .raw_builder(&name, layout)
                        .receiver()
                        .expect("open raw receiver"),
                )
            } else {
                End::Typed(builder.receiver().expect("open receiver"))
            };
            println!("READY");
            let mut buf = vec![R::zeroed(); batch];
            let mut next: HashMap<u64, u64> = HashMap::new();
            let mut got = Vec::new();
            let mut lagged = 0u64;
            loop {
                match rx.recv_many(&mut buf) {
                    Ok(n) => {
                        assert!((1..=batch).contains(&n), "recv_many returned {n}");
                        for r in &buf[..n] {
                            let seq = r.seq();
                            let (p, i) = split(seq);
                            let want = next.entry(p).or_insert(0);
                            if config.lossless() && config.mode == Mode::Broadcast {
                                assert_eq!(i, *want, "producer {p}: lost, duplicated or reordered");
                            } else if config.exact_lag() {
                                assert_eq!(i, *want, "a gap that was not reported as a lag");
                            } else {
                                assert!(i >= *want, "producer {p}: duplicated or reordered");
                            }
                            *want = i + 1;
                            got.extend_from_slice(&seq.to_le_bytes());
                        }
                    }
                    Err(RecvTimeoutError::Lagged(n)) => {
                        assert!(!config.lossless(), "lossless receiver lagged");
                        lagged += n;
                        if config.exact_lag() {
                            *next.entry(0).or_insert(0) += n;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(e) => panic!("receiver: {e}"),
                }
            }
            assert_eq!(rx.lagged_total(), lagged);
            if config.exact_lag() {
                assert_eq!(got.len() as u64 / 8 + lagged, count, "received + lagged");
            }
            std::fs::write(&out, &got).expect("write OUT");
            println!("DONE {} {lagged}", got.len() / 8);
        }
        other => panic!("unknown role {other}"),
    }
}

/// The short name a typed end puts in the header for `R` (what a raw end must match).
fn type_name<R>() -> String {
    let full = std::any::type_name::<R>();
    full.rsplit("::").next().unwrap_or(full).to_owned()
}

/// A typed end or a raw one, driven alike by the children.
enum End<S, T> {
    Typed(S),
    Raw(T),
}

impl<R: Record> End<shmchan::Sender<R>, shmchan::raw::RawSender> {
    fn wait_for_receivers(&self, n: usize) {
        match self {
            End::Typed(tx) => tx.wait_for_receivers(n, SHORT),
            End::Raw(tx) => tx.wait_for_receivers(n, SHORT),
        }
        .expect("receivers attach");
    }

    fn send_many(&mut self, records: &[R]) -> Result<usize, SendTimeoutError<usize>> {
        match self {
            End::Typed(tx) => tx.send_many_timeout(records, LONG),
            End::Raw(tx) => match tx.send_many_bytes_timeout(bytemuck::cast_slice(records), LONG) {
                Ok(n) => Ok(n),
                Err(RawError::Channel(e)) => Err(e),
                Err(e) => panic!("raw send: {e}"),
            },
        }
    }
}

impl<R: Record> End<shmchan::Receiver<R>, shmchan::raw::RawReceiver> {
    /// `Receiver::recv_many_timeout`; the raw end receives bytes and decodes them.
    fn recv_many(&mut self, out: &mut [R]) -> Result<usize, RecvTimeoutError> {
        match self {
            End::Typed(rx) => rx.recv_many_timeout(out, LONG),
            End::Raw(rx) => {
                let size = size_of::<R>();
                let mut bytes = vec![0u8; std::mem::size_of_val(out)];
                let n = match rx.recv_many_into_timeout(&mut bytes, LONG) {
                    Ok(n) => n,
                    Err(RawError::Channel(e)) => return Err(e),
                    Err(e) => panic!("raw receive: {e}"),
                };
                for (r, chunk) in out.iter_mut().zip(bytes.chunks_exact(size)).take(n) {
                    *r = bytemuck::pod_read_unaligned(chunk);
                }
                Ok(n)
            }
        }
    }

    fn lagged_total(&self) -> u64 {
        match self {
            End::Typed(rx) => rx.lagged_total(),
            End::Raw(rx) => rx.lagged_total(),
        }
    }
}

/// Runs one configuration for one record type and batch size: producers and receivers
/// in their own processes; checks what the receivers got as a whole.
fn run(config: Config, ty: &str, batch: usize, count: u64) {
    run_with(config, ty, batch, count, "");
}

/// [`run`], with the children of `raw_role` ("producer" or "receiver") using raw ends.
fn run_with(config: Config, ty: &str, batch: usize, count: u64, raw_role: &str) {
    let name = unique_name(&format!("batch-{ty}-{batch}"));
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut base = config.vars();
    base.extend([
        ("NAME", name.clone()),
        ("TYPE", ty.to_owned()),
        ("BATCH", batch.to_string()),
        ("COUNT", count.to_string()),
        ("GO", dir.join("go").display().to_string()),
        ("RAW", raw_role.to_owned()),
    ]);
    let mut receivers: Vec<(Peer, PathBuf)> = (0..config.receivers())
        .map(|r| {
            let out = dir.join(format!("r{r}"));
            let mut v = base.clone();
            v.push(("OUT", out.display().to_string()));
            (spawn(ENTRY, "receiver", &v), out)
        })
        .collect();
    for (r, _) in &mut receivers {
        r.expect_line("READY", SHORT);
    }
    let mut producers: Vec<Peer> = (0..config.producers())
        .map(|p| {
            let mut v = base.clone();
            v.push(("P", p.to_string()));
            spawn(ENTRY, "producer", &v)
        })
        .collect();
    for p in &mut producers {
        p.expect_line("OPEN", SHORT);
    }
    std::fs::write(dir.join("go"), b"").expect("write GO");
    for p in &mut producers {
        assert_eq!(p.expect_line("SENT", LONG), format!("SENT {count}"));
        p.expect_success(SHORT);
    }
    let total = count * config.producers();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for (r, out) in &mut receivers {
        let done = r.expect_line("DONE", LONG);
        r.expect_success(SHORT);
        eprintln!("{config:?} {ty} batch {batch} raw {raw_role:?}: {done} (received, lagged)");
        let bytes = std::fs::read(&*out).expect("read OUT");
        for chunk in bytes.chunks_exact(8) {
            *seen
                .entry(u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
                .or_insert(0) += 1;
        }
        if config.lossless() && config.mode == Mode::Broadcast {
            assert_eq!(done, format!("DONE {total} 0"));
        }
    }
    if config.mode == Mode::Unicast {
        assert_eq!(seen.len() as u64, total, "a record was lost");
        assert!(
            seen.values().all(|&n| n == 1),
            "a record was delivered twice"
        );
    }
    let _ = Route::<Tiny>::remove(&name);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every record type and batch size through one configuration, typed ends only; then
/// raw producers to typed receivers and typed producers to raw receivers.
fn matrix(config: Config) {
    for batch in BATCHES {
        run(config, "tiny", batch, 3000);
        run(config, "rec", batch, 3000);
        run(config, "page", batch, 400);
        run(config, "aligned", batch, 3000);
    }
    for raw_role in ["producer", "receiver"] {
        for batch in BATCHES {
            run_with(config, "tiny", batch, 1000, raw_role);
            run_with(config, "page", batch, 200, raw_role);
            run_with(config, "aligned", batch, 1000, raw_role);
        }
    }
}

#[test]
fn route_broadcast_overwrite_batches() {
    matrix(Config {
        channel: false,
        mode: Mode::Broadcast,
        overflow: Overflow::Overwrite,
    });
}

#[test]
fn route_broadcast_block_batches() {
    matrix(Config {
        channel: false,
        mode: Mode::Broadcast,
        overflow: Overflow::Block,
    });
}

#[test]
fn route_unicast_batches_exactly_once() {
    matrix(Config {
        channel: false,
        mode: Mode::Unicast,
        overflow: Overflow::Block,
    });
}

#[test]
fn channel_broadcast_overwrite_batches() {
    matrix(Config {
        channel: true,
        mode: Mode::Broadcast,
        overflow: Overflow::Overwrite,
    });
}

#[test]
fn channel_broadcast_block_batches() {
    matrix(Config {
        channel: true,
        mode: Mode::Broadcast,
        overflow: Overflow::Block,
    });
}

#[test]
fn channel_unicast_two_producers_two_receivers_batches_exactly_once() {
    matrix(Config {
        channel: true,
        mode: Mode::Unicast,
        overflow: Overflow::Block,
    });
}

/// Overwrite, one process: a batch ends before a lap, the next call reports exactly
/// the records skipped, and received + lagged adds up to everything sent.
#[test]
fn overwrite_batches_account_for_every_lag_exactly() {
    let name = unique_name("batch-lag");
    let builder = Route::<Rec>::builder(&name).capacity(8).wait(Wait::Block);
    let mut tx = builder.clone().sender().expect("sender");
    let mut rx = builder.receiver().expect("receiver");
    let records: Vec<Rec> = (0..100).map(Rec::new).collect();
    let mut buf = [Rec::zeroed(); 5];
    assert_eq!(rx.try_recv_many(&mut buf), Err(TryRecvError::Empty));
    assert_eq!(tx.send_many(&records[..30]), Ok(30));
    assert_eq!(rx.recv_many(&mut buf), Err(RecvError::Lagged(22)));
    assert_eq!(rx.recv_many(&mut buf), Ok(5));
    assert_eq!(buf.map(|r| r.seq), [22, 23, 24, 25, 26]);
    assert_eq!(tx.send_many(&records[30..]), Ok(70));
    let mut got = 5u64;
    let mut want = 27u64;
    loop {
        match rx.try_recv_many(&mut buf) {
            Ok(n) => {
                for r in &buf[..n] {
                    assert!(r.is_intact());
                    assert_eq!(r.seq, want, "a gap that was not reported");
                    want += 1;
                }
                got += n as u64;
            }
            Err(TryRecvError::Lagged(n)) => want += n,
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(want, 100);
    assert_eq!(got + rx.lagged_total(), 100);
    assert_eq!(rx.lagged_total(), 22 + 65);
    assert_eq!(rx.try_recv_many(&mut []), Ok(0));
    drop(tx);
    assert_eq!(rx.try_recv_many(&mut buf), Err(TryRecvError::Disconnected));
    drop(rx);
    let _ = Route::<Rec>::remove(&name);
}
