//! Market-data demo: one publisher process streams quotes to several subscriber
//! processes over a `Route<Quote>` broadcast segment; every subscriber checks sequence
//! numbers and record contents and measures one-way latency from the timestamp in
//! each quote.
//!
//! ```text
//! cargo run --release --example market_data
//! cargo run --release --example market_data -- --subscribers 2 --quotes 2000000 \
//!     --rate 400000 --wait adaptive --overflow block
//! ```
//!
//! The program re-executes itself for each role (`--role publisher|subscriber`), so
//! the sides are real processes. It removes its segment when done, and on Ctrl-C.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmchan::{Overflow, RecvTimeoutError, Route, Wait};

/// One quote on the wire: 48 bytes, `#[repr(C)]`, plain old data.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Quote {
    /// Publisher's sequence number, from 0.
    seq: u64,
    /// CLOCK_MONOTONIC at publication, in nanoseconds (shared by all processes).
    ts_ns: u64,
    bid: f64,
    ask: f64,
    bid_qty: u32,
    ask_qty: u32,
    symbol: [u8; 8],
}

const SYMBOLS: [&[u8; 8]; 4] = [b"ACME\0\0\0\0", b"GLOBEX\0\0", b"INITECH\0", b"UMBRELLA"];

impl Quote {
    /// The quote the publisher sends as number `seq` (minus the timestamp), so that a
    /// subscriber can check every field.
    fn expected(seq: u64, ts_ns: u64) -> Quote {
        let tick = (seq % 1000) as f64 * 0.01;
        Quote {
            seq,
            ts_ns,
            bid: 100.0 + tick,
            ask: 100.01 + tick,
            bid_qty: (seq % 997) as u32 + 1,
            ask_qty: (seq % 991) as u32 + 1,
            symbol: *SYMBOLS[(seq % 4) as usize],
        }
    }

    fn is_valid(&self) -> bool {
        bytemuck::bytes_of(self) == bytemuck::bytes_of(&Quote::expected(self.seq, self.ts_ns))
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Clone)]
struct Options {
    name: String,
    subscribers: usize,
    quotes: u64,
    rate: u64,
    burst: u64,
    capacity: usize,
    wait: Wait,
    overflow: Overflow,
}

impl Options {
    fn parse(args: &[String]) -> Result<(Options, Option<String>), String> {
        let mut o = Options {
            name: format!("md-demo-{}", std::process::id()),
            subscribers: 3,
            quotes: 1_000_000,
            rate: 250_000,
            burst: 50,
            capacity: 1 << 16,
            wait: Wait::Adaptive,
            overflow: Overflow::Overwrite,
        };
        let mut role = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
            let number = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{flag}: {v:?} is not a number"))
            };
            match flag.as_str() {
                "--role" => role = Some(value()?),
                "--name" => o.name = value()?,
                "--subscribers" => o.subscribers = number(value()?)? as usize,
                "--quotes" => o.quotes = number(value()?)?,
                "--rate" => o.rate = number(value()?)?.max(1),
                "--burst" => o.burst = number(value()?)?.max(1),
                "--capacity" => o.capacity = number(value()?)? as usize,
                "--wait" => {
                    o.wait = match value()?.as_str() {
                        "spin" => Wait::Spin,
                        "adaptive" => Wait::Adaptive,
                        "block" => Wait::Block,
                        other => {
                            return Err(format!("--wait: {other:?} is not spin|adaptive|block"))
                        }
                    }
                }
                "--overflow" => {
                    o.overflow = match value()?.as_str() {
                        "overwrite" => Overflow::Overwrite,
                        "block" => Overflow::Block,
                        other => {
                            return Err(format!("--overflow: {other:?} is not overwrite|block"))
                        }
                    }
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok((o, role))
    }

    fn to_args(&self) -> Vec<String> {
        let wait = match self.wait {
            Wait::Spin => "spin",
            Wait::Adaptive => "adaptive",
            Wait::Block => "block",
        };
        let overflow = match self.overflow {
            Overflow::Overwrite => "overwrite",
            Overflow::Block => "block",
        };
        [
            ("--name", self.name.clone()),
            ("--subscribers", self.subscribers.to_string()),
            ("--quotes", self.quotes.to_string()),
            ("--rate", self.rate.to_string()),
            ("--burst", self.burst.to_string()),
            ("--capacity", self.capacity.to_string()),
            ("--wait", wait.into()),
            ("--overflow", overflow.into()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }

    fn builder(&self) -> shmchan::Builder<Quote> {
        Route::<Quote>::builder(&self.name)
            .capacity(self.capacity)
            .overflow(self.overflow)
            .wait(self.wait)
            .max_receivers(self.subscribers.max(1))
    }
}

const USAGE: &str = "usage: market_data [--subscribers N] [--quotes N] [--rate QUOTES_PER_S] \
[--burst N] [--capacity POW2] [--wait spin|adaptive|block] [--overflow overwrite|block]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (options, role) = match Options::parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match role.as_deref() {
        None => orchestrate(&options),
        Some("publisher") => publish(&options),
        Some("subscriber") => subscribe(&options),
        Some(other) => Err(format!("unknown role {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Children to kill (and the segment to remove) if the user presses Ctrl-C.
type Running = Arc<Mutex<Vec<Child>>>;

fn orchestrate(o: &Options) -> Result<(), String> {
    if o.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let running: Running = Arc::new(Mutex::new(Vec::new()));
    {
        let running = Arc::clone(&running);
        let name = o.name.clone();
        ctrlc::set_handler(move || {
            if let Ok(mut children) = running.lock() {
                for child in children.iter_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            let _ = Route::<Quote>::remove(&name);
            eprintln!("\ninterrupted: children stopped, segment {name} removed");
            std::process::exit(130);
        })
        .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    }
    let result = run_children(o, &exe, &running);
    if let Ok(mut children) = running.lock() {
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = Route::<Quote>::remove(&o.name);
    result
}

fn spawn(
    exe: &std::path::Path,
    o: &Options,
    role: &str,
    extra: &[String],
) -> Result<Child, String> {
    Command::new(exe)
        .args(o.to_args())
        .args(["--role", role])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the {role}: {e}"))
}

fn run_children(o: &Options, exe: &std::path::Path, running: &Running) -> Result<(), String> {
    println!(
        "shmchan market-data demo: 1 publisher -> {} subscriber processes, {} quotes of {} bytes",
        o.subscribers,
        o.quotes,
        size_of::<Quote>()
    );
    println!(
        "segment /dev/shm/shmchan.{} ({} slots, {:?}, {:?}), {} quotes/s in bursts of {}",
        o.name, o.capacity, o.overflow, o.wait, o.rate, o.burst
    );
    for _ in 0..o.subscribers {
        let child = spawn(exe, o, "subscriber", &[])?;
        running.lock().map_err(|_| "lock")?.push(child);
    }
    let publisher = spawn(exe, o, "publisher", &[])?;
    running.lock().map_err(|_| "lock")?.push(publisher);

    // Collect every child's report line, with a deadline.
    let budget =
        Duration::from_secs(30) + Duration::from_secs_f64(o.quotes as f64 / o.rate as f64 * 3.0);
    let deadline = Instant::now() + budget;
    let mut outputs = Vec::new();
    let children: Vec<Child> = std::mem::take(&mut *running.lock().map_err(|_| "lock")?);
    let mut pending = Vec::new();
    for mut child in children {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { stdout }, &mut text);
            let _ = tx.send(text);
        });
        pending.push((child, rx));
    }
    for (mut child, rx) in pending {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = match rx.recv_timeout(left) {
            Ok(text) => text,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("a child did not finish within {budget:?}"));
            }
        };
        let status = child.wait().map_err(|e| format!("wait: {e}"))?;
        if !status.success() {
            return Err(format!("a child failed ({status}): {}", text.trim()));
        }
        outputs.push(text);
    }

    let mut failed = false;
    for text in &outputs {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("PUBLISHER ") {
                println!("publisher: {rest}");
            }
        }
    }
    println!();
    println!(
        "{:<11}{:>10}{:>9}{:>7}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}",
        "subscriber", "received", "lagged", "gaps", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    for text in &outputs {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("SUBSCRIBER ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() != 10 {
                    return Err(format!("malformed report {rest:?}"));
                }
                println!(
                    "{:<11}{:>10}{:>9}{:>7}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}",
                    f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
                );
                failed |= f[3] != "0";
            }
        }
    }
    println!(
        "(one-way latency publisher -> subscriber in microseconds, from CLOCK_MONOTONIC stamps)"
    );
    if failed {
        return Err("a subscriber saw a gap that lag does not explain".into());
    }
    Ok(())
}

fn publish(o: &Options) -> Result<(), String> {
    let mut tx = o.builder().sender().map_err(|e| e.to_string())?;
    tx.wait_for_receivers(o.subscribers, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    let burst_period = Duration::from_secs_f64(o.burst as f64 / o.rate as f64);
    let start = Instant::now();
    let mut seq = 0;
    while seq < o.quotes {
        let end = (seq + o.burst).min(o.quotes);
        while seq < end {
            tx.send(Quote::expected(seq, monotonic_ns()))
                .map_err(|e| e.to_string())?;
            seq += 1;
        }
        // Pace: sleep until this burst's slot in the schedule is over.
        let due = burst_period.mul_f64((seq / o.burst) as f64);
        if let Some(pause) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(pause);
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "PUBLISHER {} quotes in {took:.2} s ({:.0} quotes/s)",
        o.quotes,
        o.quotes as f64 / took
    );
    Ok(())
}

fn subscribe(o: &Options) -> Result<(), String> {
    let mut rx = o.builder().receiver().map_err(|e| e.to_string())?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    let (mut received, mut lagged, mut gaps) = (0u64, 0u64, 0u64);
    let mut expected_seq = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(q) => {
                let now = monotonic_ns();
                if !q.is_valid() {
                    return Err(format!("quote {} is corrupt", q.seq));
                }
                if q.seq != expected_seq {
                    gaps += 1;
                }
                expected_seq = q.seq + 1;
                received += 1;
                hist.saturating_record(now.saturating_sub(q.ts_ns).max(1));
            }
            Err(RecvTimeoutError::Lagged(n)) => {
                lagged += n;
                expected_seq += n;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("subscriber: {e}")),
        }
    }
    if received + lagged != o.quotes {
        gaps += 1;
    }
    let us = |q: f64| format!("{:.1}", hist.value_at_quantile(q) as f64 / 1000.0);
    println!(
        "SUBSCRIBER {} {received} {lagged} {gaps} {} {} {} {} {} {:.1}",
        std::process::id(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        us(0.9999),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
