//! `shmchan stat`: one segment's stats as text or JSON, once or refreshed with `--watch`.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use shmchan::stats::{Family, Observer, SegmentInfo, Stats};
use shmchan::Mode;

use crate::exit::{Outcome, EXIT_OK};
use crate::format::{bytes, count_f, duration, group, plural, Table};
use crate::json::stats_json;
use crate::rates::{rates, Rates};
use crate::target::{failure, target, Target};
use crate::words::{alive_word, receivers_text};

pub(crate) fn stat(
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
                "{:?}, {:?}; {} slots, {} receiver entries, {}{}",
                info.mode,
                info.overflow,
                info.capacity,
                info.max_receivers,
                match info.family {
                    Family::Channel => format!("{} producer entries, ", info.max_producers),
                    Family::Route => String::new(),
                },
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
        (
            "asleep",
            format!(
                "{} waiting for records, {} waiting for room",
                st.data_waiters, st.space_waiters
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
