//! The `shmchan` command-line tool, run as a process against segments these tests
//! create: in-process handles for live participants, and re-executed children of this
//! test binary (entry `child`) for participants that are killed.
//!
//! `cargo test` at the workspace root builds the tool (this crate is a default member)
//! and runs these tests against it. Every test works in a directory of its own under
//! /dev/shm (`--dir`), so it sees only its own segments; one also checks the default
//! directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{role, spawn, unique_name, var, Rec};
use serde_json::Value;
use shmchan::{Overflow, Route, Wait};

const ENTRY: &str = "child";
const SHORT: Duration = Duration::from_secs(20);

/// A directory of segments, removed (with whatever is left in it) when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = PathBuf::from(format!(
            "/dev/shm/shmchan-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create test directory");
        Dir(path)
    }

    /// The file of segment `name`.
    fn seg(&self, name: &str) -> PathBuf {
        self.0.join(format!("shmchan.{name}"))
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The record of the segments the children open: default Overwrite, or Block with
/// `BLOCK` set; `CAPACITY` slots (default 1024).
fn builder(path: &Path) -> shmchan::Builder<Rec> {
    let capacity = std::env::var("CAPACITY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1024);
    let overflow = if std::env::var("BLOCK").is_ok() {
        Overflow::Block
    } else {
        Overflow::Overwrite
    };
    Route::<Rec>::builder("cli")
        .path(path)
        .capacity(capacity)
        .overflow(overflow)
        .wait(Wait::Block)
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let path = PathBuf::from(var("SEGMENT"));
    match role.as_str() {
        // Joins and never reads: its lag grows with every record sent.
        "receiver" => {
            let _rx = builder(&path).receiver().expect("open receiver");
            println!("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        // Holds both ends, as a process that is then killed.
        "both" => {
            let mut tx = builder(&path).sender().expect("open sender");
            let _rx = builder(&path).receiver().expect("open receiver");
            for i in 0..10 {
                tx.send(Rec::new(i)).expect("send");
            }
            println!("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

fn child_vars(segment: &Path, block: bool) -> Vec<(&'static str, String)> {
    let mut vars = vec![("SEGMENT", segment.display().to_string())];
    if block {
        vars.push(("BLOCK", "1".into()));
    }
    vars
}

/// Runs the tool to completion.
fn shmchan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmchan"))
        .args(args)
        .output()
        .expect("run shmchan")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the tool, expects exit status 0, and returns its output.
fn ok(args: &[&str]) -> String {
    let o = shmchan(args);
    assert!(
        o.status.success(),
        "shmchan {args:?} failed with {}:\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The receiver of a `stat --json` object with this pid.
fn receiver_of(stat: &Value, pid: u32) -> &Value {
    stat["receivers"]
        .as_array()
        .expect("receivers array")
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("no receiver with pid {pid} in {stat}"))
}

#[test]
fn ls_lists_segments_with_mode_type_and_receivers() {
    let dir = Dir::new("ls");
    let quotes = dir.seg("quotes");
    let _tx = builder(&quotes).sender().expect("sender");
    let _rx1 = builder(&quotes).receiver().expect("receiver 1");
    let _rx2 = builder(&quotes).receiver().expect("receiver 2");
    let _orders = Route::<[u64; 2]>::builder("orders")
        .path(dir.seg("orders"))
        .capacity(64)
        .overflow(Overflow::Block)
        .receiver()
        .expect("orders");

    let text = ok(&["ls", "--dir", &dir.arg()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "header and two segments:\n{text}");
    assert!(lines[0].starts_with("NAME"), "{text}");
    let orders = lines[1];
    let quotes_line = lines[2];
    for want in [
        "orders",
        "Route<[u64; 2]>",
        "broadcast/block",
        "16 B",
        "64",
        "1 live",
        "live",
    ] {
        assert!(orders.contains(want), "{want:?} missing in {orders:?}");
    }
    let pid = std::process::id().to_string();
    for want in [
        "quotes",
        "Route<Rec>",
        "broadcast/overwrite",
        "64 B",
        "1024",
        &pid,
        "2 live",
    ] {
        assert!(
            quotes_line.contains(want),
            "{want:?} missing in {quotes_line:?}"
        );
    }
    assert!(quotes_line.ends_with("live"), "{quotes_line:?}");

    let listed = json(&ok(&["ls", "--dir", &dir.arg(), "--json"]));
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 2);
    let q = listed
        .iter()
        .find(|s| s["name"] == "quotes")
        .expect("quotes");
    assert_eq!(q["type_name"], "Rec");
    assert_eq!(q["record_size"], 64);
    assert_eq!(q["capacity"], 1024);
    assert_eq!(q["max_producers"], 0, "a Route has no producer table");
    assert_eq!(q["mode"], "Broadcast");
    assert_eq!(q["overflow"], "Overwrite");
    assert_eq!(q["receivers_alive"], 2);
    assert_eq!(q["stale"], false);

    // Without --dir: /dev/shm, where named segments live.
    let name = unique_name("cli-ls");
    let _named = Route::<u32>::receiver(&name).expect("named segment");
    let text = ok(&["ls"]);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
    assert!(line.contains("Route<u32>"), "{line}");
    drop(_named);
    Route::<u32>::remove(&name).expect("remove");
}

#[test]
fn stat_json_reports_receivers_lag_and_dead_ones() {
    let dir = Dir::new("stat");
    let seg = dir.seg("md");
    let vars = child_vars(&seg, true);
    let mut slow = spawn(ENTRY, "receiver", &vars);
    slow.expect_line("READY", SHORT);
    let mut doomed = spawn(ENTRY, "receiver", &vars);
    doomed.expect_line("READY", SHORT);
    let doomed_pid = doomed.pid();
    doomed.kill9();

    let mut tx = builder(&seg)
        .overflow(Overflow::Block)
        .sender()
        .expect("sender");
    let mut fast = builder(&seg)
        .overflow(Overflow::Block)
        .receiver()
        .expect("receiver");
    for i in 0..100 {
        tx.send(Rec::new(i)).expect("send");
    }
    for _ in 0..60 {
        fast.recv().expect("recv");
    }

    let stat = json(&ok(&[
        "stat",
        "--dir",
        &dir.arg(),
        "md",
        "--json",
        "--interval",
        "50ms",
    ]));
    assert_eq!(stat["name"], "md");
    assert_eq!(stat["overflow"], "Block");
    assert_eq!(stat["head"], 100);
    assert_eq!(stat["published"], 100);
    assert_eq!(stat["stale"], false);
    assert_eq!(stat["receivers"].as_array().map(Vec::len), Some(3));
    assert_eq!(stat["receivers_alive"], 2);
    assert_eq!(stat["receivers_dead"], 1);
    let me = std::process::id();
    assert_eq!(stat["producers"][0]["pid"], me);
    assert_eq!(stat["producers"][0]["alive"], true);
    assert!(stat["records_per_sec"].is_number(), "{stat}");

    let fast_rx = receiver_of(&stat, me);
    assert_eq!(
        (fast_rx["cursor"].as_u64(), fast_rx["lag"].as_u64()),
        (Some(60), Some(40))
    );
    assert_eq!(fast_rx["alive"], true);
    let slow_rx = receiver_of(&stat, slow.pid());
    assert_eq!(
        (slow_rx["lag"].as_u64(), slow_rx["alive"].as_bool()),
        (Some(100), Some(true))
    );
    let dead_rx = receiver_of(&stat, doomed_pid);
    assert_eq!(
        (dead_rx["lag"].as_u64(), dead_rx["alive"].as_bool()),
        (Some(100), Some(false))
    );

    // The same as text: aligned columns, the dead receiver marked.
    let text = ok(&["stat", "--dir", &dir.arg(), "md", "--interval", "10ms"]);
    assert!(text.contains("Route<Rec>, 64-byte records"), "{text}");
    assert!(text.contains("2 live, 1 dead"), "{text}");
    let dead_line = text
        .lines()
        .find(|l| l.contains(&doomed_pid.to_string()) && l.contains("dead"))
        .unwrap_or_else(|| panic!("no line for the dead receiver:\n{text}"));
    assert!(dead_line.contains("100"), "{dead_line}");
}

#[test]
fn stat_watch_refreshes_with_records_per_second() {
    let dir = Dir::new("watch");
    let seg = dir.seg("feed");
    let tx = builder(&seg).sender().expect("sender");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = {
        let stop = std::sync::Arc::clone(&stop);
        let mut tx = tx;
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                tx.send(Rec::new(i)).expect("send");
                i += 1;
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let out = ok(&[
        "stat",
        "--dir",
        &dir.arg(),
        "feed",
        "--watch",
        "--json",
        "--interval",
        "100ms",
        "--count",
        "3",
    ]);
    stop.store(true, Ordering::Relaxed);
    sending.join().expect("sender thread");
    let frames: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(frames.len(), 3, "{out}");
    assert!(
        frames[0]["records_per_sec"].is_null(),
        "no rate before two frames"
    );
    for f in &frames[1..] {
        let rate = f["records_per_sec"].as_f64().expect("rate");
        assert!(rate > 0.0, "{f}");
    }
    let heads: Vec<u64> = frames.iter().filter_map(|f| f["head"].as_u64()).collect();
    assert!(heads.windows(2).all(|w| w[0] < w[1]), "{heads:?}");
}

#[test]
fn gc_removes_segments_of_killed_processes_and_keeps_live_ones() {
    let dir = Dir::new("gc");
    let (dead, live_child, live_here) =
        (dir.seg("dead"), dir.seg("live-child"), dir.seg("live-here"));
    let mut victim = spawn(ENTRY, "both", &child_vars(&dead, false));
    victim.expect_line("READY", SHORT);
    let victim_pid = victim.pid();
    let mut holder = spawn(ENTRY, "receiver", &child_vars(&live_child, false));
    holder.expect_line("READY", SHORT);
    let here = builder(&live_here).receiver().expect("receiver");
    let junk = dir.seg("junk");
    std::fs::write(&junk, b"not a segment, keep me").expect("write junk");
    victim.kill9();

    // The killed process's segment: stale, its sender and receiver dead.
    let stat = json(&ok(&[
        "stat",
        "--dir",
        &dir.arg(),
        "dead",
        "--json",
        "--interval",
        "10ms",
    ]));
    assert_eq!(stat["stale"], true);
    assert_eq!(stat["head"], 10);
    assert_eq!(stat["producers"][0]["pid"], victim_pid);
    assert_eq!(stat["producers"][0]["alive"], false);
    assert_eq!(
        (
            stat["receivers_alive"].as_u64(),
            stat["receivers_dead"].as_u64()
        ),
        (Some(0), Some(1))
    );
    let text = ok(&["ls", "--dir", &dir.arg()]);
    let line = text
        .lines()
        .find(|l| l.starts_with("dead "))
        .expect("dead listed");
    assert!(line.contains(&format!("{victim_pid} dead")), "{line}");
    assert!(
        line.contains("0 live, 1 dead") && line.ends_with("stale"),
        "{line}"
    );
    // Looking did not make it look alive.
    assert_eq!(shmchan::stats::is_stale(&dead).ok(), Some(true));

    let dry = ok(&["gc", "--dir", &dir.arg(), "--dry-run"]);
    assert!(dry.contains("would remove dead"), "{dry}");
    assert!(dead.exists(), "--dry-run removed it");

    let out = ok(&["gc", "--dir", &dir.arg()]);
    assert!(out.contains("removed dead"), "{out}");
    assert!(out.contains("skipped junk"), "{out}");
    assert!(
        out.contains("removed 1 stale segment, kept 2 in use"),
        "{out}"
    );
    assert!(
        !dead.exists(),
        "the killed process's segment is still there"
    );
    assert!(live_child.exists() && live_here.exists() && junk.exists());

    // rm refuses a live segment (exit 3) unless forced.
    let o = shmchan(&["rm", "--dir", &dir.arg(), "live-here"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("segment 'live-here'") && stderr(&o).contains("--force"));
    assert!(live_here.exists());
    let out = ok(&["rm", "--dir", &dir.arg(), "--force", "live-here"]);
    assert!(out.contains("removed live-here"), "{out}");
    assert!(!live_here.exists());
    drop(here);

    // The child dies: its segment becomes removable.
    holder.kill9();
    assert!(ok(&["rm", "--dir", &dir.arg(), "live-child"]).contains("removed live-child"));

    // Errors name the segment and what is wrong; scripts can test the status.
    let o = shmchan(&["rm", "--dir", &dir.arg(), "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("segment 'nosuch'") && stderr(&o).contains("no such segment"));
    let o = shmchan(&["stat", "--dir", &dir.arg(), "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such segment"), "{}", stderr(&o));
    let o = shmchan(&["stat", "--dir", &dir.arg(), "junk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a shmchan segment"),
        "{}",
        stderr(&o)
    );
    let o = shmchan(&["rm", "--dir", &dir.arg(), "junk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(junk.exists());
    let o = shmchan(&["stat", "bad/../name"]);
    assert_eq!(o.status.code(), Some(1));
    let o = shmchan(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit with 2");
}

/// The record of the `tail` test: 40 bytes in C layout.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Quote {
    ts: u64,
    bid: f64,
    ask: f64,
    bid_qty: u32,
    ask_qty: u32,
    sym: [u8; 8],
}

fn quote(i: u64) -> Quote {
    Quote {
        ts: 1000 + i,
        bid: 99.5 + i as f64,
        ask: 100.25 + i as f64,
        bid_qty: 10 * i as u32,
        ask_qty: 7,
        sym: *b"ACME\0\0\0\0",
    }
}

#[test]
fn tail_prints_records_as_fields_and_hex() {
    let dir = Dir::new("tail");
    let seg = dir.seg("q");
    let mut tx = Route::<Quote>::builder("q")
        .path(&seg)
        .capacity(16)
        .sender()
        .expect("sender");
    for i in 0..20 {
        tx.send(quote(i)).expect("send");
    }
    let layout = "ts:u64,bid:f64,ask:f64,bid_qty:u32,ask_qty:u32,sym:[u8;8]";
    let out = ok(&[
        "tail",
        "--dir",
        &dir.arg(),
        "q",
        "-n",
        "3",
        "--layout",
        layout,
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["SEQ", "ts", "bid", "ask", "bid_qty", "ask_qty", "sym"],
        "{out}"
    );
    assert_eq!(
        rows[1..],
        [
            ["17", "1017", "116.5", "117.25", "170", "7", "\"ACME\""],
            ["18", "1018", "117.5", "118.25", "180", "7", "\"ACME\""],
            ["19", "1019", "118.5", "119.25", "190", "7", "\"ACME\""],
        ],
        "{out}"
    );

    // Hex: 32 bytes a line, 8-byte words in memory order.
    let out = ok(&["tail", "--dir", &dir.arg(), "q", "-n", "1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(first.len(), 5, "{out}");
    assert_eq!(first[0], "19");
    assert_eq!(first[1], hex(&1019u64.to_ne_bytes()));
    assert_eq!(first[4], hex(&[190, 0, 0, 0, 7, 0, 0, 0]));
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["+32", "41434d4500000000"]
    );

    // A layout that does not fit the record is refused, naming the segment.
    let o = shmchan(&["tail", "--dir", &dir.arg(), "q", "--layout", "u64,f64"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("segment 'q'") && stderr(&o).contains("40-byte"),
        "{}",
        stderr(&o)
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tail_follows_without_gating_a_lossless_producer() {
    let dir = Dir::new("follow");
    let seg = dir.seg("lossless");
    let mut tx = Route::<u64>::builder("lossless")
        .path(&seg)
        .capacity(8)
        .overflow(Overflow::Block)
        .sender()
        .expect("sender");
    let mut tail = Running(
        Command::new(env!("CARGO_BIN_EXE_shmchan"))
            .args([
                "tail",
                "--dir",
                &dir.arg(),
                "lossless",
                "-n",
                "0",
                "-f",
                "--layout",
                "v:u64",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tail -f"),
    );
    // A read-only observer holds no receiver entry: a lossless ring with no receiver
    // never fills, however far ahead of the tail the producer runs.
    std::thread::sleep(Duration::from_millis(300));
    let stat = json(&ok(&[
        "stat",
        "--dir",
        &dir.arg(),
        "lossless",
        "--json",
        "--interval",
        "10ms",
    ]));
    assert_eq!(
        stat["receivers"].as_array().map(Vec::len),
        Some(0),
        "{stat}"
    );
    assert_eq!(stat["stale"], false, "the tail holds the segment open");
    for i in 0..100u64 {
        tx.try_send(i).expect("never full");
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut stdout = tail.0.stdout.take().expect("piped stdout");
    let _ = tail.0.kill();
    let _ = tail.0.wait();
    let mut output = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut output).expect("read tail output");
    let rows: Vec<&str> = output.lines().skip(1).collect();
    assert!(!rows.is_empty(), "tail -f printed nothing:\n{output}");
    // Every row it printed is a real record: value == sequence number, in order.
    let mut last = None;
    for row in rows {
        let cells: Vec<u64> = row
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        assert_eq!(cells.len(), 2, "{row}");
        assert_eq!(cells[0], cells[1], "{row}");
        assert!(last.is_none_or(|l| cells[0] > l), "out of order: {row}");
        last = Some(cells[0]);
    }
}
