//! The Rust side of the Python package's cross-process tests and benchmark
//! (`python/tests/`, `python/bench/`): a producer or a receiver of 48-byte `Tick`
//! records on a Route or a Channel in any mode, checking every record.
//!
//! ```text
//! python_peer send NAME [options] --count N [--producer ID] [--receivers K] [--batch B] [--hold]
//! python_peer recv NAME [options] [--producers P]
//! options: --family route|channel --mode broadcast|unicast --overflow overwrite|block
//!          --capacity N --wait spin|adaptive|block
//! ```
//!
//! `send` waits for `--receivers` receivers (default 1), sends `--count` records
//! numbered from 0 (one at a time, or `send_many` batches of `--batch`), prints
//! `SENT n`, and with `--hold` stays attached until killed. `recv` receives until
//! `Disconnected`, checks each record's check word and that every producer's sequence
//! numbers rise by one except where `Lagged` says records were skipped, and prints
//! `RECEIVED records lagged gaps records_per_s` (the rate from the first record to the
//! last). It prints `READY` once its receiver is attached.

use std::io::Write;
use std::time::{Duration, Instant};

use bytemuck::Zeroable;
use shmchan::{Channel, Mode, Overflow, RecvError, Route, Wait};

/// The record both sides agree on; in numpy:
/// `np.dtype([("seq", "<u8"), ("producer", "<u8"), ("value", "<f8"), ("check", "<u8"),
/// ("ts_ns", "<u8"), ("pad", "<u8")], align=True)`, schema `"Tick"`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Tick {
    seq: u64,
    producer: u64,
    value: f64,
    check: u64,
    ts_ns: u64,
    pad: u64,
}

/// The check word of record `seq` of `producer` (the Python tests compute the same).
fn check_word(seq: u64, producer: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ producer
}

#[derive(Debug)]
struct Options {
    name: String,
    family: String,
    mode: Mode,
    overflow: Overflow,
    wait: Wait,
    capacity: usize,
    count: u64,
    producer: u64,
    producers: u64,
    receivers: usize,
    batch: usize,
    hold: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        name: args.first().cloned().ok_or("missing NAME")?,
        family: "route".into(),
        mode: Mode::Broadcast,
        overflow: Overflow::Overwrite,
        wait: Wait::Adaptive,
        capacity: 4096,
        count: 0,
        producer: 0,
        producers: 1,
        receivers: 1,
        batch: 1,
        hold: false,
    };
    let mut it = args.iter().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?}"));
        match flag.as_str() {
            "--family" => o.family = value()?,
            "--mode" => {
                o.mode = match value()?.as_str() {
                    "broadcast" => Mode::Broadcast,
                    "unicast" => Mode::Unicast,
                    v => return Err(format!("--mode {v:?}")),
                }
            }
            "--overflow" => {
                o.overflow = match value()?.as_str() {
                    "overwrite" => Overflow::Overwrite,
                    "block" => Overflow::Block,
                    v => return Err(format!("--overflow {v:?}")),
                }
            }
            "--wait" => {
                o.wait = match value()?.as_str() {
                    "spin" => Wait::Spin,
                    "adaptive" => Wait::Adaptive,
                    "block" => Wait::Block,
                    v => return Err(format!("--wait {v:?}")),
                }
            }
            "--capacity" => o.capacity = number(value()?)? as usize,
            "--count" => o.count = number(value()?)?,
            "--producer" => o.producer = number(value()?)?,
            "--producers" => o.producers = number(value()?)?,
            "--receivers" => o.receivers = number(value()?)? as usize,
            "--batch" => o.batch = number(value()?)?.max(1) as usize,
            "--hold" => o.hold = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn builder(o: &Options) -> Result<shmchan::Builder<Tick>, String> {
    let b = match o.family.as_str() {
        "route" => Route::<Tick>::builder(&o.name),
        "channel" => Channel::<Tick>::builder(&o.name),
        f => return Err(format!("--family {f:?}")),
    };
    Ok(b.capacity(o.capacity)
        .mode(o.mode)
        .overflow(o.overflow)
        .wait(o.wait))
}

fn send(o: &Options) -> Result<(), String> {
    let mut tx = builder(o)?.sender().map_err(|e| e.to_string())?;
    tx.wait_for_receivers(o.receivers, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let tick = |seq: u64| Tick {
        seq,
        producer: o.producer,
        value: seq as f64 * 0.5,
        check: check_word(seq, o.producer),
        ts_ns: 0,
        pad: 0,
    };
    let mut batch = Vec::with_capacity(o.batch);
    let mut seq = 0;
    while seq < o.count {
        if o.batch == 1 {
            tx.send(tick(seq)).map_err(|e| e.to_string())?;
            seq += 1;
        } else {
            batch.clear();
            let end = (seq + o.batch as u64).min(o.count);
            batch.extend((seq..end).map(tick));
            tx.send_many(&batch).map_err(|e| e.to_string())?;
            seq = end;
        }
    }
    println!("SENT {seq}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    if o.hold {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Ok(())
}

fn recv(o: &Options) -> Result<(), String> {
    let mut rx = builder(o)?.receiver().map_err(|e| e.to_string())?;
    println!("READY");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut next = vec![0u64; o.producers as usize];
    let (mut received, mut lagged, mut gaps) = (0u64, 0u64, 0u64);
    // Producers whose next record may jump ahead: a lag skips records of every producer
    // (a Channel's sequence numbers are shared).
    let mut may_jump = vec![false; next.len()];
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut buf = vec![Tick::zeroed(); 4096];
    loop {
        let n = match rx.recv_many(&mut buf) {
            Ok(n) => n,
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                may_jump.fill(true);
                continue;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.to_string()),
        };
        last = Instant::now();
        first.get_or_insert(last);
        for t in &buf[..n] {
            if t.check != check_word(t.seq, t.producer) {
                return Err(format!("corrupt record {t:?}"));
            }
            let Some(expected) = next.get_mut(t.producer as usize) else {
                return Err(format!("record of unknown producer {t:?}"));
            };
            // Unicast receivers share the stream: only order is checked there.
            let p = t.producer as usize;
            let in_order = if o.mode == Mode::Unicast || may_jump[p] {
                t.seq >= *expected
            } else {
                t.seq == *expected
            };
            if !in_order {
                gaps += 1;
            }
            may_jump[p] = false;
            *expected = t.seq + 1;
            received += 1;
        }
    }
    let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let rate = if secs > 0.0 {
        received as f64 / secs
    } else {
        0.0
    };
    println!("RECEIVED {received} {lagged} {gaps} {rate:.0}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("send") => parse(&args[1..]).and_then(|o| send(&o)),
        Some("recv") => parse(&args[1..]).and_then(|o| recv(&o)),
        _ => Err("usage: python_peer send|recv NAME [options] (see the source)".into()),
    };
    if let Err(e) = result {
        eprintln!("python_peer: {e}");
        std::process::exit(1);
    }
}
