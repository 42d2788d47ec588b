//! `shmchan`: look inside live shmchan segments without stopping or slowing anyone.
//!
//! ```text
//! shmchan ls                      every segment in /dev/shm: mode, type, sender, receivers, stale or live
//! shmchan stat NAME [--json] [--watch]   the stats of one segment, refreshed in place with --watch
//! shmchan tail NAME [-n N] [-f] [--layout SPEC]   print records as a read-only observer
//! shmchan rm NAME... [--force]    remove segments no process has open
//! shmchan gc [--dry-run]          remove every segment no process has open
//! ```
//!
//! Built with the `cli` feature: `cargo install shmchan --features cli`, or
//! `cargo run --release --features cli --bin shmchan -- ls`. Everything it shows comes
//! from the library's [`shmchan::stats`] API.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use shmchan::stats::{self, Family, Observer, Removal, SegmentInfo, Stats, TailRead};
use shmchan::{Mode, OpenError, Overflow};

/// Exit status: success.
const EXIT_OK: u8 = 0;
/// Exit status: an error (no such segment, corrupt, permission, I/O).
const EXIT_ERROR: u8 = 1;
/// Exit status: `rm` refused a segment that a live process has open.
const EXIT_LIVE: u8 = 3;

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (no such segment, not a segment, corrupt, permission \
denied); 2 usage error; 3 `rm` refused a segment a live process has open (use --force).";

/// Inspect shmchan shared-memory segments: who is connected, who is behind, is anything
/// dropping. Reads the segments without taking part in them: never slows a producer,
/// never makes a dead segment look alive.
#[derive(Debug, Parser)]
#[command(name = "shmchan", version, after_help = EXIT_CODES)]
struct Cli {
    /// Directory holding the segments (files named shmchan.NAME). A NAME containing
    /// '/' is taken as the path of a segment file instead.
    #[arg(long, global = true, value_name = "DIR", default_value = stats::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every segment: mode, record type, sender, receivers alive/dead, stale or live
    Ls {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a segment's stats: fingerprint, sender, each receiver's cursor and lag, records/s
    Stat {
        /// Segment name (or path of a segment file)
        name: String,
        /// JSON instead of text (one object per line with --watch)
        #[arg(long)]
        json: bool,
        /// Refresh in place every --interval until interrupted (or --count refreshes)
        #[arg(short, long)]
        watch: bool,
        /// Time between refreshes with --watch; without it, the window over which
        /// records/s is measured
        #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many refreshes (with --watch)
        #[arg(short, long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print records as a read-only observer: takes no receiver entry, never gates the producer
    Tail {
        /// Segment name (or path of a segment file)
        name: String,
        /// Start this many records before the newest
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
        lines: u64,
        /// Keep printing new records until interrupted
        #[arg(short, long)]
        follow: bool,
        /// Print fields instead of hex: comma-separated C-layout types, optionally
        /// named, e.g. `ts:u64,bid:f64,ask:f64,u32,u32,sym:[u8;8]`. Types: u8..u64,
        /// i8..i64, f32, f64, bool, [T;N]; a name starting with `_` hides the field; a
        /// final `..` ignores the rest of the record
        #[arg(long, value_name = "SPEC")]
        layout: Option<String>,
    },
    /// Remove segments; refuses one that a live process has open unless --force
    Rm {
        /// Segment names (or paths of segment files)
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove even if processes have it open (they keep their mapping; the next
        /// process to open the name gets a new segment)
        #[arg(long)]
        force: bool,
    },
    /// Remove every segment that no process has open (all its participants died)
    Gc {
        /// Only say what would be removed
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .or_else(|_| s.parse::<f64>().map_err(|e| e.to_string()).and_then(secs))
        .map_err(|e| format!("{s:?} is not a duration (e.g. 500ms, 2s): {e}"))?;
    if d.is_zero() {
        return Err("the interval must be more than 0".into());
    }
    Ok(d)
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    let result = match &cli.command {
        Command::Ls { json } => ls(&mut out, &cli.dir, *json),
        Command::Stat {
            name,
            json,
            watch,
            interval,
            count,
        } => stat(&mut out, &cli.dir, name, *json, *watch, *interval, *count),
        Command::Tail {
            name,
            lines,
            follow,
            layout,
        } => tail(&mut out, &cli.dir, name, *lines, *follow, layout.as_deref()),
        Command::Rm { names, force } => rm(&mut out, &cli.dir, names, *force),
        Command::Gc { dry_run } => gc(&mut out, &cli.dir, *dry_run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // `shmchan tail -f x | head`: the reader left; not an error.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("shmchan: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    /// Writing the output failed.
    Output(io::Error),
    /// A message naming the segment and what is wrong.
    Message(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Output(e) => write!(f, "writing the output: {e}"),
            Failure::Message(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

type Outcome = Result<u8, Failure>;

/// A segment as named on the command line.
struct Target {
    /// How to call it in messages: the name, or the path as given.
    label: String,
    path: PathBuf,
}

fn target(dir: &Path, name: &str) -> Result<Target, Failure> {
    if name.contains('/') {
        return Ok(Target {
            label: name.to_owned(),
            path: PathBuf::from(name),
        });
    }
    let path = stats::segment_path_in(dir, name)
        .map_err(|e| Failure::Message(format!("segment '{name}': {}", describe(&e))))?;
    Ok(Target {
        label: name.to_owned(),
        path,
    })
}

/// The name of a segment file, without directory and prefix.
fn label_of(path: &Path) -> String {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match file {
        Some(n) => n
            .strip_prefix(stats::FILE_PREFIX)
            .map(str::to_owned)
            .unwrap_or(n),
        None => path.display().to_string(),
    }
}

/// What went wrong, without repeating the path (the caller names the segment).
fn describe(e: &OpenError) -> String {
    match e {
        OpenError::Io { op, source, .. } => {
            if source.kind() == io::ErrorKind::NotFound {
                "no such segment".into()
            } else {
                format!("{op} failed: {source}")
            }
        }
        OpenError::PermissionDenied { .. } => "permission denied".into(),
        OpenError::Corrupt { reason, .. } => reason.clone(),
        OpenError::Mismatch {
            field,
            expected,
            found,
            ..
        } => format!("{field} is {found}, this tool reads {expected}"),
        OpenError::InvalidName { reason, .. } => format!("invalid name: {reason}"),
        OpenError::Timeout { waited, .. } => {
            format!("still being initialised by another process after {waited:?}")
        }
        other => other.to_string(),
    }
}

fn failure(t: &Target, e: &OpenError) -> Failure {
    Failure::Message(format!(
        "segment '{}' ({}): {}",
        t.label,
        t.path.display(),
        describe(e)
    ))
}

// ---------------------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------------------

/// What `ls` learned about one file.
struct Listed {
    label: String,
    path: PathBuf,
    /// From the lock probe; `None` if even that failed.
    stale: Option<bool>,
    /// The header and a snapshot, or why not.
    seen: Result<(SegmentInfo, Stats), String>,
}

fn inspect(path: &Path) -> Listed {
    let seen = Observer::open_path(path)
        .and_then(|o| Ok((o.info().clone(), o.stats()?)))
        .map_err(|e| describe(&e));
    let stale = match &seen {
        Ok((_, s)) => Some(s.stale),
        Err(_) => stats::is_stale(path).ok(),
    };
    Listed {
        label: label_of(path),
        path: path.to_owned(),
        stale,
        seen,
    }
}

fn state_word(stale: Option<bool>) -> &'static str {
    match stale {
        Some(true) => "stale",
        Some(false) => "live",
        None => "unknown",
    }
}

fn ls(out: &mut impl Write, dir: &Path, json: bool) -> Outcome {
    let files = stats::list(dir)
        .map_err(|e| Failure::Message(format!("cannot list {}: {e}", dir.display())))?;
    let listed: Vec<Listed> = files.iter().map(|p| inspect(p)).collect();
    if json {
        let all: Vec<Value> = listed.iter().map(listed_json).collect();
        writeln!(out, "{}", Value::Array(all))?;
        return Ok(EXIT_OK);
    }
    if listed.is_empty() {
        writeln!(out, "no segments in {}", dir.display())?;
        return Ok(EXIT_OK);
    }
    let mut table = Table::new(&[
        "NAME",
        "TYPE",
        "MODE",
        "RECORD",
        "SLOTS",
        "SIZE",
        "SENDER",
        "RECEIVERS",
        "PUBLISHED",
        "STATE",
    ]);
    table.right(&[3, 4, 5, 8]);
    for l in &listed {
        match &l.seen {
            Ok((info, st)) => table.row(vec![
                l.label.clone(),
                format!("{}<{}>", info.family, info.type_name),
                mode_text(info),
                bytes(info.record_size as u64),
                info.capacity.to_string(),
                bytes(info.file_len),
                sender_text(st),
                receivers_text(st),
                count(st.published),
                state_word(Some(st.stale)).to_owned(),
            ]),
            Err(reason) => {
                let mut row = vec![l.label.clone()];
                row.extend(std::iter::repeat_n("-".to_owned(), 8));
                row.push(format!("{}, unreadable: {reason}", state_word(l.stale)));
                table.row(row);
            }
        }
    }
    table.print(out)?;
    Ok(EXIT_OK)
}

fn listed_json(l: &Listed) -> Value {
    let mut v = json!({
        "name": l.label,
        "path": l.path,
        "stale": l.stale,
    });
    match &l.seen {
        Ok((info, st)) => merge(&mut v, stats_json(info, st, None, None)),
        Err(reason) => merge(&mut v, json!({ "error": reason })),
    }
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn mode_text(info: &SegmentInfo) -> String {
    let mode = match info.mode {
        Mode::Broadcast => "broadcast",
        Mode::Unicast => "unicast",
    };
    match (info.mode, info.overflow) {
        (Mode::Broadcast, Overflow::Overwrite) => format!("{mode}/overwrite"),
        (Mode::Broadcast, Overflow::Block) => format!("{mode}/block"),
        _ => mode.to_owned(),
    }
}

fn sender_text(st: &Stats) -> String {
    match st.producers.as_slice() {
        [] => "-".into(),
        [p] if p.alive => p.pid.to_string(),
        [p] => format!("{} dead", p.pid),
        many => format!(
            "{} live, {} dead",
            many.iter().filter(|p| p.alive).count(),
            many.iter().filter(|p| !p.alive).count()
        ),
    }
}

fn receivers_text(st: &Stats) -> String {
    let (live, dead) = (st.live_receivers(), st.dead_receivers());
    if dead == 0 {
        format!("{live} live")
    } else {
        format!("{live} live, {dead} dead")
    }
}

// ---------------------------------------------------------------------------------------
// stat
// ---------------------------------------------------------------------------------------

/// Rates between two snapshots of the same segment.
struct Rates {
    total: Option<f64>,
    /// Per receiver entry index, for entries held by the same pid in both snapshots.
    receivers: Vec<(usize, f64)>,
    /// Per producer entry index (`Channel`), likewise.
    producers: Vec<(usize, f64)>,
}

fn rates(now: &Stats, before: Option<&Stats>) -> Rates {
    let Some(before) = before else {
        return Rates {
            total: None,
            receivers: Vec::new(),
            producers: Vec::new(),
        };
    };
    let secs = now
        .taken_at
        .saturating_duration_since(before.taken_at)
        .as_secs_f64();
    let receivers = now
        .receivers
        .iter()
        .filter_map(|r| {
            let b = before
                .receivers
                .iter()
                .find(|b| b.index == r.index && b.pid == r.pid)?;
            let read = r.cursor.checked_sub(b.cursor)?;
            (secs > 0.0).then(|| (r.index, read as f64 / secs))
        })
        .collect();
    let producers = now
        .producers
        .iter()
        .filter_map(|p| {
            let index = p.index?;
            let b = before
                .producers
                .iter()
                .find(|b| b.index == p.index && b.pid == p.pid)?;
            let sent = p.records?.checked_sub(b.records?)?;
            (secs > 0.0).then(|| (index, sent as f64 / secs))
        })
        .collect();
    Rates {
        total: now.rate_since(before),
        receivers,
        producers,
    }
}

fn stat(
    out: &mut impl Write,
    dir: &Path,
    name: &str,
    json: bool,
    watch: bool,
    interval: Duration,
    count: Option<u64>,
) -> Outcome {
    let t = target(dir, name)?;
    let mut observer = Observer::open_path(&t.path).map_err(|e| failure(&t, &e))?;
    let tty = io::stdout().is_terminal();
    let mut previous: Option<(SystemTime, Stats)> = None;
    if !watch {
        // One snapshot, and a second one `interval` later for the rates.
        let first = observer.stats().map_err(|e| failure(&t, &e))?;
        std::thread::sleep(interval);
        previous = Some((observer.info().created_at, first));
    }
    let mut shown = 0u64;
    loop {
        let st = match observer.stats() {
            Ok(st) => st,
            Err(e) if watch => {
                // Re-created or removed under us: open it again, or report and wait.
                match Observer::open_path(&t.path) {
                    Ok(o) => {
                        observer = o;
                        previous = None;
                        continue;
                    }
                    Err(_) => {
                        if tty {
                            write!(out, "\x1b[H\x1b[2J")?;
                        }
                        writeln!(out, "{}", failure(&t, &e))?;
                        out.flush()?;
                        std::thread::sleep(interval);
                        continue;
                    }
                }
            }
            Err(e) => return Err(failure(&t, &e)),
        };
        let info = observer.info();
        let before = previous
            .as_ref()
            .filter(|(created, _)| *created == info.created_at)
            .map(|(_, s)| s);
        let r = rates(&st, before);
        if json {
            let v = stats_json(info, &st, Some(&t.label), Some(&r));
            writeln!(out, "{v}")?;
        } else {
            let mut text = String::new();
            stat_text(&mut text, &t, info, &st, &r);
            if watch && tty {
                // Home, draw, clear what is left of the previous frame.
                write!(out, "\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"))?;
            } else {
                if watch && shown > 0 {
                    writeln!(out)?;
                }
                write!(out, "{text}")?;
            }
        }
        out.flush()?;
        shown += 1;
        if !watch || count.is_some_and(|c| shown >= c) {
            return Ok(EXIT_OK);
        }
        previous = Some((info.created_at, st));
        std::thread::sleep(interval);
    }
}

fn stat_text(s: &mut String, t: &Target, info: &SegmentInfo, st: &Stats, r: &Rates) {
    let age = SystemTime::now()
        .duration_since(info.created_at)
        .map(|d| format!(" ({} ago)", duration(d)))
        .unwrap_or_default();
    let rate = r
        .total
        .map(|x| format!(", {}/s", count_f(x)))
        .unwrap_or_default();
    let producers = match (info.family, st.producers.as_slice()) {
        (_, []) => "none attached".to_owned(),
        (Family::Route, ps) => ps
            .iter()
            .map(|p| format!("pid {} {}", p.pid, alive_word(p.alive)))
            .collect::<Vec<_>>()
            .join(", "),
        (Family::Channel, ps) => {
            let live = ps.iter().filter(|p| p.alive).count();
            format!("{live} live, {} dead", ps.len() - live)
        }
    };
    let producers = match info.family {
        Family::Route => format!(
            "{producers}; senders attached {} time{}",
            st.sender_attaches,
            plural(usize::try_from(st.sender_attaches).unwrap_or(usize::MAX))
        ),
        Family::Channel => format!("{producers}; {} dead claims skipped", st.dead_claims),
    };
    let backlog = st
        .backlog
        .map(|b| format!("; {} waiting to be taken", group(b)))
        .unwrap_or_default();
    let rescued = if info.mode == Mode::Unicast {
        format!(", {} records rescued from dead receivers", st.rescued)
    } else {
        String::new()
    };
    let state = if st.stale {
        "stale: no process has it open (`shmchan gc` removes it; the next opener re-creates it)"
    } else {
        "live"
    };
    let lines = [
        ("segment", format!("{} ({})", t.label, info.path.display())),
        (
            "type",
            format!(
                "{}<{}>, {}-byte records (align {})",
                info.family, info.type_name, info.record_size, info.record_align
            ),
        ),
        (
            "mode",
            format!(
                "{:?}, {:?}; {} slots, {} receiver entries, {}",
                info.mode,
                info.overflow,
                info.capacity,
                info.max_receivers,
                bytes(info.file_len)
            ),
        ),
        (
            "created",
            format!(
                "{} by pid {}{age}",
                humantime::format_rfc3339_seconds(info.created_at),
                info.creator_pid
            ),
        ),
        ("state", state.to_owned()),
        (
            match info.family {
                Family::Route => "sender",
                Family::Channel => "producers",
            },
            producers,
        ),
        (
            "published",
            format!(
                "{} records (head {}){rate}{backlog}",
                group(st.published),
                st.head
            ),
        ),
        (
            "receivers",
            format!(
                "{}; {} joins, {} evicted{rescued}",
                receivers_text(st),
                st.joins,
                st.evictions
            ),
        ),
    ];
    for (k, v) in lines {
        let _ = writeln!(s, "{k:<10} {v}");
    }
    if info.family == Family::Channel && !st.producers.is_empty() {
        let _ = writeln!(s);
        let mut table = Table::new(&["PRODUCER", "PID", "STATE", "RECORDS", "RATE"]);
        table.right(&[0, 1, 3, 4]);
        for p in &st.producers {
            let rate = r
                .producers
                .iter()
                .find(|(i, _)| Some(*i) == p.index)
                .map_or("-".to_owned(), |(_, x)| format!("{}/s", count_f(*x)));
            table.row(vec![
                p.index.map_or("-".into(), |i| i.to_string()),
                p.pid.to_string(),
                alive_word(p.alive).to_owned(),
                p.records.map_or("-".into(), group),
                rate,
            ]);
        }
        let mut buf = Vec::new();
        let _ = table.print(&mut buf);
        s.push_str(&String::from_utf8_lossy(&buf));
    }
    if st.receivers.is_empty() {
        return;
    }
    let _ = writeln!(s);
    let mut table = Table::new(&[
        "RECEIVER", "PID", "STATE", "CURSOR", "LAG", "LAGGED", "RATE",
    ]);
    table.right(&[0, 1, 3, 4, 5, 6]);
    for rx in &st.receivers {
        let rate = r
            .receivers
            .iter()
            .find(|(i, _)| *i == rx.index)
            .map_or("-".to_owned(), |(_, x)| format!("{}/s", count_f(*x)));
        table.row(vec![
            rx.index.to_string(),
            rx.pid.to_string(),
            alive_word(rx.alive).to_owned(),
            group(rx.cursor),
            group(rx.lag),
            group(rx.lagged),
            rate,
        ]);
    }
    let mut buf = Vec::new();
    let _ = table.print(&mut buf);
    s.push_str(&String::from_utf8_lossy(&buf));
}

fn alive_word(alive: bool) -> &'static str {
    if alive {
        "alive"
    } else {
        "dead"
    }
}

fn stats_json(info: &SegmentInfo, st: &Stats, name: Option<&str>, r: Option<&Rates>) -> Value {
    let rx_rate = |index: usize| {
        r.and_then(|r| r.receivers.iter().find(|(i, _)| *i == index))
            .map(|(_, x)| *x)
    };
    let mut v = json!({
        "path": info.path,
        "family": info.family.to_string(),
        "mode": format!("{:?}", info.mode),
        "overflow": format!("{:?}", info.overflow),
        "type_name": info.type_name,
        "record_size": info.record_size,
        "record_align": info.record_align,
        "capacity": info.capacity,
        "max_receivers": info.max_receivers,
        "file_len": info.file_len,
        "created_at": humantime::format_rfc3339_seconds(info.created_at).to_string(),
        "created_at_unix_ns": info
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        "creator_pid": info.creator_pid,
        "stale": st.stale,
        "head": st.head,
        "published": st.published,
        "records_per_sec": r.and_then(|r| r.total),
        "sender_attaches": st.sender_attaches,
        "joins": st.joins,
        "evictions": st.evictions,
        "receivers_alive": st.live_receivers(),
        "receivers_dead": st.dead_receivers(),
        "backlog": st.backlog,
        "dead_claims": st.dead_claims,
        "rescued": st.rescued,
        "producers": st.producers.iter().map(|p| json!({
            "records_per_sec": p.index.and_then(|i| r.and_then(|r| r.producers.iter().find(|(j, _)| *j == i)).map(|(_, x)| *x)),
            "index": p.index,
            "pid": p.pid,
            "alive": p.alive,
            "records": p.records,
        })).collect::<Vec<_>>(),
        "receivers": st.receivers.iter().map(|rx| json!({
            "index": rx.index,
            "pid": rx.pid,
            "alive": rx.alive,
            "cursor": rx.cursor,
            "lag": rx.lag,
            "lagged": rx.lagged,
            "records_per_sec": rx_rate(rx.index),
        })).collect::<Vec<_>>(),
    });
    if let Some(name) = name {
        merge(&mut v, json!({ "name": name }));
    }
    v
}

// ---------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------

fn tail(
    out: &mut impl Write,
    dir: &Path,
    name: &str,
    lines: u64,
    follow: bool,
    layout: Option<&str>,
) -> Outcome {
    let t = target(dir, name)?;
    let observer = Observer::open_path(&t.path).map_err(|e| failure(&t, &e))?;
    let size = observer.info().record_size;
    let layout = layout
        .map(|spec| {
            Layout::parse(spec, size).map_err(|e| {
                Failure::Message(format!(
                    "--layout {spec:?} does not fit segment '{}' ({}-byte records of type {}): {e}",
                    t.label,
                    size,
                    observer.info().type_name
                ))
            })
        })
        .transpose()?;
    let mut tail = observer.tail(lines).map_err(|e| failure(&t, &e))?;
    let mut printer = Printer::new(layout);
    let mut buf = vec![0u8; size];
    // Without --follow: up to the head of now. An empty slot below it (a producer that
    // died mid-write, or a corrupt segment) ends the wait after a second.
    let end = tail.head();
    let mut empty_since: Option<Instant> = None;
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    loop {
        if !follow && tail.next_seq() >= end {
            break;
        }
        match tail.try_next(&mut buf) {
            TailRead::Record(seq) => {
                empty_since = None;
                batch.push((seq, buf.clone()));
                if batch.len() >= 256 {
                    printer.print(out, &batch)?;
                    batch.clear();
                }
            }
            TailRead::Lagged(n) => {
                printer.print(out, &batch)?;
                batch.clear();
                out.flush()?;
                eprintln!(
                    "shmchan: tail of '{}' was lapped by the producer: skipped {n} records",
                    t.label
                );
            }
            TailRead::Empty => {
                printer.print(out, &batch)?;
                batch.clear();
                out.flush()?;
                let since = *empty_since.get_or_insert_with(Instant::now);
                if !follow && since.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "shmchan: segment '{}': record {} below the head {end} was never completed",
                        t.label,
                        tail.next_seq()
                    );
                    break;
                }
                // A human reads this: poll gently.
                std::thread::sleep(Duration::from_millis(
                    if since.elapsed() < Duration::from_millis(10) {
                        0
                    } else {
                        2
                    },
                ));
            }
        }
    }
    printer.print(out, &batch)?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// A primitive field type of a `--layout`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Prim {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
}

impl Prim {
    fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "u8" => Prim::U8,
            "u16" => Prim::U16,
            "u32" => Prim::U32,
            "u64" => Prim::U64,
            "i8" => Prim::I8,
            "i16" => Prim::I16,
            "i32" => Prim::I32,
            "i64" => Prim::I64,
            "f32" => Prim::F32,
            "f64" => Prim::F64,
            "bool" => Prim::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Prim::U8 | Prim::I8 | Prim::Bool => 1,
            Prim::U16 | Prim::I16 => 2,
            Prim::U32 | Prim::I32 | Prim::F32 => 4,
            Prim::U64 | Prim::I64 | Prim::F64 => 8,
        }
    }

    /// Formats the value at the start of `b` (at least `size()` bytes, native endian).
    fn format(self, b: &[u8]) -> String {
        fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
            let mut a = [0u8; N];
            a.copy_from_slice(&b[..N]);
            a
        }
        match self {
            Prim::U8 => b[0].to_string(),
            Prim::I8 => i8::from_ne_bytes(arr(b)).to_string(),
            Prim::Bool => match b[0] {
                0 => "false".into(),
                1 => "true".into(),
                x => format!("bool({x})"),
            },
            Prim::U16 => u16::from_ne_bytes(arr(b)).to_string(),
            Prim::I16 => i16::from_ne_bytes(arr(b)).to_string(),
            Prim::U32 => u32::from_ne_bytes(arr(b)).to_string(),
            Prim::I32 => i32::from_ne_bytes(arr(b)).to_string(),
            Prim::F32 => f32::from_ne_bytes(arr(b)).to_string(),
            Prim::U64 => u64::from_ne_bytes(arr(b)).to_string(),
            Prim::I64 => i64::from_ne_bytes(arr(b)).to_string(),
            Prim::F64 => f64::from_ne_bytes(arr(b)).to_string(),
        }
    }
}

/// One field of a `--layout`: a primitive or an array of them.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: Option<String>,
    prim: Prim,
    /// `Some(n)` for `[prim; n]`.
    len: Option<usize>,
    offset: usize,
    /// The spelling, for the column header.
    spelled: String,
}

impl Field {
    fn size(&self) -> usize {
        self.prim.size() * self.len.unwrap_or(1)
    }

    fn hidden(&self) -> bool {
        self.name.as_deref().is_some_and(|n| n.starts_with('_'))
    }

    fn format(&self, record: &[u8]) -> String {
        let b = &record[self.offset..self.offset + self.size()];
        match self.len {
            None => self.prim.format(b),
            Some(_) if self.prim == Prim::U8 => bytes_text(b),
            Some(_) => {
                let items: Vec<String> = b
                    .chunks(self.prim.size())
                    .map(|c| self.prim.format(c))
                    .collect();
                format!("[{}]", items.join(","))
            }
        }
    }
}

/// A byte array as text if it is printable ASCII followed by NULs, else as hex.
fn bytes_text(b: &[u8]) -> String {
    let text_len = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let (text, pad) = b.split_at(text_len);
    if text.iter().all(|c| c.is_ascii_graphic() || *c == b' ') && pad.iter().all(|c| *c == 0) {
        format!("{:?}", String::from_utf8_lossy(text))
    } else {
        let mut s = String::from("0x");
        for c in b {
            let _ = write!(s, "{c:02x}");
        }
        s
    }
}

/// A `--layout`: fields at their C (`#[repr(C)]`) offsets.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    fields: Vec<Field>,
}

impl Layout {
    /// Parses `spec` and checks it against records of `record_size` bytes.
    fn parse(spec: &str, record_size: usize) -> Result<Layout, String> {
        let mut fields = Vec::new();
        let mut offset = 0usize;
        let mut align = 1usize;
        let mut open_ended = false;
        let parts = split_top(spec);
        for (i, part) in parts.iter().enumerate() {
            let part = part.trim();
            if part == ".." {
                if i + 1 != parts.len() {
                    return Err("`..` must be the last field".into());
                }
                open_ended = true;
                continue;
            }
            let (name, ty) = match part.split_once(':') {
                Some((n, t)) => (Some(n.trim().to_owned()), t.trim()),
                None => (None, part),
            };
            let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
            let (prim, len) =
                if let Some(inner) = compact.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    let (t, n) = inner
                        .split_once(';')
                        .ok_or_else(|| format!("{ty:?}: an array is [TYPE; N]"))?;
                    let n: usize = n
                        .parse()
                        .map_err(|_| format!("{ty:?}: {n:?} is not a length"))?;
                    (Prim::parse(t).ok_or_else(|| unknown(t))?, Some(n))
                } else {
                    (
                        Prim::parse(&compact).ok_or_else(|| unknown(&compact))?,
                        None,
                    )
                };
            let a = prim.size();
            offset = offset.next_multiple_of(a);
            align = align.max(a);
            let field = Field {
                name,
                prim,
                len,
                offset,
                spelled: compact,
            };
            offset = offset
                .checked_add(field.size())
                .filter(|end| *end <= record_size)
                .ok_or_else(|| {
                    format!("the fields up to {part:?} take more than {record_size} bytes")
                })?;
            fields.push(field);
        }
        if fields.is_empty() {
            return Err("no fields".into());
        }
        let size = offset.next_multiple_of(align);
        if !open_ended && size != record_size {
            return Err(format!(
                "the layout is {size} bytes (end a shorter layout with `..`)"
            ));
        }
        Ok(Layout { fields })
    }
}

fn unknown(t: &str) -> String {
    format!("unknown type {t:?} (u8..u64, i8..i64, f32, f64, bool, [T; N])")
}

/// Splits at commas outside brackets.
fn split_top(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in spec.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

/// Prints records as hex, or as the fields of a layout in columns that only widen.
struct Printer {
    layout: Option<Layout>,
    widths: Vec<usize>,
    header_done: bool,
}

impl Printer {
    fn new(layout: Option<Layout>) -> Printer {
        Printer {
            layout,
            widths: Vec::new(),
            header_done: false,
        }
    }

    fn print(&mut self, out: &mut impl Write, batch: &[(u64, Vec<u8>)]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let Some(layout) = &self.layout else {
            for (seq, record) in batch {
                write_hex(out, *seq, record)?;
            }
            return Ok(());
        };
        let visible: Vec<&Field> = layout.fields.iter().filter(|f| !f.hidden()).collect();
        let header: Vec<String> = std::iter::once("SEQ".to_owned())
            .chain(
                visible
                    .iter()
                    .map(|f| f.name.clone().unwrap_or_else(|| f.spelled.clone())),
            )
            .collect();
        let rows: Vec<Vec<String>> = batch
            .iter()
            .map(|(seq, record)| {
                std::iter::once(seq.to_string())
                    .chain(visible.iter().map(|f| f.format(record)))
                    .collect()
            })
            .collect();
        self.widths.resize(header.len(), 0);
        for row in rows.iter().chain(std::iter::once(&header)) {
            for (w, cell) in self.widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        if !self.header_done {
            self.header_done = true;
            write_row(out, &header, &self.widths)?;
        }
        for row in &rows {
            write_row(out, row, &self.widths)?;
        }
        Ok(())
    }
}

fn write_row(out: &mut impl Write, row: &[String], widths: &[usize]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let _ = write!(line, "{cell:>w$}");
    }
    writeln!(out, "{}", line.trim_end())
}

/// `SEQ  0011223344556677 8899aabbccddeeff ...`, 32 bytes a line, continuation lines
/// marked with the byte offset.
fn write_hex(out: &mut impl Write, seq: u64, record: &[u8]) -> io::Result<()> {
    for (i, line) in record.chunks(32).enumerate() {
        let mut s = if i == 0 {
            format!("{seq:>10} ")
        } else {
            format!("{:>10} ", format!("+{}", i * 32))
        };
        for word in line.chunks(8) {
            s.push(' ');
            for b in word {
                let _ = write!(s, "{b:02x}");
            }
        }
        writeln!(out, "{s}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rm, gc
// ---------------------------------------------------------------------------------------

fn rm(out: &mut impl Write, dir: &Path, names: &[String], force: bool) -> Outcome {
    let mut code = EXIT_OK;
    for name in names {
        let t = match target(dir, name) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shmchan: {e}");
                code = code.max(EXIT_ERROR);
                continue;
            }
        };
        let where_ = format!("segment '{}' ({})", t.label, t.path.display());
        match stats::remove(&t.path, force) {
            Ok(Removal::Removed) => writeln!(out, "removed {}", t.label)?,
            Ok(Removal::RemovedLive) => writeln!(
                out,
                "removed {} (forced: the processes that have it open keep using their mapping)",
                t.label
            )?,
            Ok(Removal::Live) => {
                eprintln!(
                    "shmchan: {where_}: a live process has it open; not removed (use --force)"
                );
                code = code.max(EXIT_LIVE);
            }
            Ok(Removal::NotFound) => {
                eprintln!("shmchan: {where_}: no such segment");
                code = code.max(EXIT_ERROR);
            }
            Ok(Removal::NotASegment) => {
                eprintln!("shmchan: {where_}: not a shmchan segment; not removed");
                code = code.max(EXIT_ERROR);
            }
            Ok(other) => {
                eprintln!("shmchan: {where_}: {other:?}");
                code = code.max(EXIT_ERROR);
            }
            Err(e) => {
                eprintln!("shmchan: {}", failure(&t, &e));
                code = code.max(EXIT_ERROR);
            }
        }
    }
    Ok(code)
}

fn gc(out: &mut impl Write, dir: &Path, dry_run: bool) -> Outcome {
    let files = stats::list(dir)
        .map_err(|e| Failure::Message(format!("cannot list {}: {e}", dir.display())))?;
    let (mut removed, mut kept, mut code) = (0usize, 0usize, EXIT_OK);
    for path in &files {
        let label = label_of(path);
        let outcome = if dry_run {
            stats::is_stale(path).map(|stale| {
                if stale {
                    Removal::Removed
                } else {
                    Removal::Live
                }
            })
        } else {
            stats::remove(path, false)
        };
        match outcome {
            Ok(Removal::Removed) => {
                removed += 1;
                let verb = if dry_run { "would remove" } else { "removed" };
                writeln!(out, "{verb} {label} (no process has it open)")?;
            }
            Ok(Removal::Live) => kept += 1,
            Ok(Removal::NotFound) => {}
            Ok(_) => writeln!(out, "skipped {label}: not a shmchan segment")?,
            Err(e) => {
                eprintln!(
                    "shmchan: segment '{label}' ({}): {}",
                    path.display(),
                    describe(&e)
                );
                code = EXIT_ERROR;
            }
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "{verb} {removed} stale segment{}, kept {kept} in use, in {}",
        plural(removed),
        dir.display()
    )?;
    Ok(code)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

// ---------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------

/// Columns padded to their widest cell, two spaces apart.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            right: Vec::new(),
        }
    }

    /// Right-aligns these columns (numbers).
    fn right(&mut self, columns: &[usize]) {
        self.right = columns.to_vec();
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths = vec![0usize; self.header.len()];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right.contains(&i) {
                    let _ = write!(line, "{cell:>w$}");
                } else {
                    let _ = write!(line, "{cell:<w$}");
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `324 KiB`, `1.5 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// `950`, `12.3k`, `1.23M`.
fn count(n: u64) -> String {
    count_f(n as f64)
}

fn count_f(v: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, suffix) in UNITS {
        if v >= scale {
            let x = v / scale;
            return if x < 10.0 {
                format!("{x:.2}{suffix}")
            } else if x < 100.0 {
                format!("{x:.1}{suffix}")
            } else {
                format!("{x:.0}{suffix}")
            };
        }
    }
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// `3m 12s`, `2h 5m`, `4d 3h`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_c_rules() {
        let l = Layout::parse("ts:u64,bid:f64,ask:f64,u32,u32,sym:[u8;8]", 40).expect("fits");
        let offsets: Vec<usize> = l.fields.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 8, 16, 24, 28, 32]);
        // u8 then u64: 7 bytes of padding, 16 in all.
        let l = Layout::parse("u8, u64", 16).expect("fits");
        assert_eq!(l.fields[1].offset, 8);
        assert!(Layout::parse("u8,u64", 9).is_err());
        assert!(Layout::parse("u32", 8).is_err());
        assert!(Layout::parse("u32,..", 8).is_ok());
        assert!(Layout::parse("..,u32", 8).is_err());
        assert!(Layout::parse("u24", 3).is_err());
        assert!(Layout::parse("[u8;x]", 3).is_err());
    }

    #[test]
    fn fields_print_as_numbers_and_text() {
        let l = Layout::parse("a:u32,b:f32,s:[u8;8],_pad:u64,v:[u16;2]", 32).expect("fits");
        let mut rec = vec![0u8; 32];
        rec[..4].copy_from_slice(&7u32.to_ne_bytes());
        rec[4..8].copy_from_slice(&1.5f32.to_ne_bytes());
        rec[8..12].copy_from_slice(b"ACME");
        rec[24..26].copy_from_slice(&1u16.to_ne_bytes());
        rec[26..28].copy_from_slice(&2u16.to_ne_bytes());
        let cells: Vec<String> = l
            .fields
            .iter()
            .filter(|f| !f.hidden())
            .map(|f| f.format(&rec))
            .collect();
        assert_eq!(cells, ["7", "1.5", "\"ACME\"", "[1,2]"]);
        assert_eq!(bytes_text(&[1, 2]), "0x0102");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(331_776), "324 KiB");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(count(950), "950");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(1_234_567), "1.23M");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(duration(Duration::from_secs(192)), "3m 12s");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d 1h");
        assert!(parse_duration("250ms").is_ok());
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").is_err());
    }
}
