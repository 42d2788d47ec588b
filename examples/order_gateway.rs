//! Order-gateway demo: several strategy processes send orders on a unicast `Channel`
//! (many producers, one consumer) to a gateway process, which checks that it received
//! every order of every strategy exactly once and in each strategy's order, and
//! answers each with a fill on a broadcast `Channel` that every strategy reads. Each
//! strategy measures the order -> fill round trip.
//!
//! ```text
//! cargo run --release --example order_gateway
//! cargo run --release --example order_gateway -- --strategies 4 --orders 100000
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmchan::{Channel, Mode, Overflow, RecvTimeoutError};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Order {
    strategy: u32,
    side: u32,
    /// Per-strategy sequence number, from 0.
    seq: u64,
    ts_ns: u64,
    price: f64,
    qty: u64,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Fill {
    strategy: u32,
    _pad: u32,
    order_seq: u64,
    order_ts_ns: u64,
    price: f64,
    qty: u64,
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

struct Options {
    tag: String,
    strategies: u32,
    orders: u64,
    rate: u64,
}

fn orders_channel(o: &Options) -> shmchan::Builder<Order> {
    Channel::<Order>::builder(&format!("orders-{}", o.tag))
        .mode(Mode::Unicast)
        .capacity(1 << 14)
}

fn fills_channel(o: &Options) -> shmchan::Builder<Fill> {
    Channel::<Fill>::builder(&format!("fills-{}", o.tag))
        .overflow(Overflow::Block)
        .capacity(1 << 14)
}

fn main() {
    let mut o = Options {
        tag: std::process::id().to_string(),
        strategies: 3,
        orders: 100_000,
        rate: 50_000,
    };
    let mut role = None;
    let mut id = 0u32;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().map(String::as_str).unwrap_or("");
        let number = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag} {value:?}")))
        };
        match flag.as_str() {
            "--strategies" => o.strategies = number().clamp(1, 32) as u32,
            "--orders" => o.orders = number(),
            "--rate" => o.rate = number().max(1),
            "--tag" => o.tag = value.to_owned(),
            "--role" => role = Some(value.to_owned()),
            "--id" => id = number() as u32,
            other => usage(other),
        }
    }
    let result = match role.as_deref() {
        None => orchestrate(&o),
        Some("gateway") => gateway(&o),
        Some("strategy") => strategy(&o, id),
        Some(other) => Err(format!("unknown role {other}")),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn usage(bad: &str) -> ! {
    eprintln!("bad argument {bad}\nusage: order_gateway [--strategies N] [--orders PER_STRATEGY] [--rate ORDERS_PER_S_PER_STRATEGY]");
    std::process::exit(2)
}

fn spawn(o: &Options, role: &str, id: u32) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["--tag", &o.tag, "--role", role, "--id", &id.to_string()])
        .args([
            "--strategies",
            &o.strategies.to_string(),
            "--orders",
            &o.orders.to_string(),
        ])
        .args(["--rate", &o.rate.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the {role}: {e}"))
}

/// Reads a child's stdout lines into a channel, so the orchestrator can wait with a
/// timeout.
fn lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

fn orchestrate(o: &Options) -> Result<(), String> {
    println!(
        "shmchan order-gateway demo: {} strategy processes x {} orders -> 1 gateway (unicast Channel), fills back on a broadcast Channel",
        o.strategies, o.orders
    );
    let mut children = Vec::new();
    let result = (|| {
        let mut gw = spawn(o, "gateway", 0)?;
        let gw_lines = lines(&mut gw);
        children.push(gw);
        let timeout = Duration::from_secs(30) + Duration::from_secs(3 * o.orders / o.rate);
        let wait_line = |rx: &std::sync::mpsc::Receiver<String>, prefix: &str| loop {
            match rx.recv_timeout(timeout) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no {prefix} line within {timeout:?}")),
            }
        };
        wait_line(&gw_lines, "READY")?;
        let mut strategy_lines = Vec::new();
        for id in 0..o.strategies {
            let mut child = spawn(o, "strategy", id)?;
            strategy_lines.push(lines(&mut child));
            children.push(child);
        }
        let report = wait_line(&gw_lines, "GATEWAY")?;
        println!("gateway: {}", &report["GATEWAY ".len()..]);
        println!();
        println!(
            "{:<9}{:>8}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "strategy", "orders", "fills", "p50", "p90", "p99", "p99.9", "max"
        );
        for rx in &strategy_lines {
            let line = wait_line(rx, "STRATEGY")?;
            let f: Vec<&str> = line.split_whitespace().skip(1).collect();
            if f.len() != 8 {
                return Err(format!("malformed report {line:?}"));
            }
            println!(
                "{:<9}{:>8}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
                f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
            );
        }
        println!("(order -> fill round trip in microseconds, through two shared-memory channels)");
        for child in &mut children {
            let status = child.wait().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("a child failed: {status}"));
            }
        }
        Ok(())
    })();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = Channel::<Order>::remove(&format!("orders-{}", o.tag));
    let _ = Channel::<Fill>::remove(&format!("fills-{}", o.tag));
    result
}

fn gateway(o: &Options) -> Result<(), String> {
    let mut orders = orders_channel(o).receiver().map_err(|e| e.to_string())?;
    let mut fills = fills_channel(o).sender().map_err(|e| e.to_string())?;
    println!("READY");
    fills
        .wait_for_receivers(o.strategies as usize, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    let mut next = vec![0u64; o.strategies as usize];
    let mut received = 0u64;
    let mut start = None;
    loop {
        match orders.recv_timeout(Duration::from_secs(30)) {
            Ok(order) => {
                start.get_or_insert_with(Instant::now);
                let s = order.strategy as usize;
                let want = next
                    .get_mut(s)
                    .ok_or(format!("order from unknown strategy {s}"))?;
                if order.seq != *want {
                    return Err(format!(
                        "strategy {s}: got order {} where {} was due (lost, duplicated or reordered)",
                        order.seq, *want
                    ));
                }
                *want += 1;
                received += 1;
                let fill = Fill {
                    strategy: order.strategy,
                    _pad: 0,
                    order_seq: order.seq,
                    order_ts_ns: order.ts_ns,
                    price: order.price,
                    qty: order.qty,
                };
                fills.send(fill).map_err(|e| e.to_string())?;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("gateway: {e}")),
        }
    }
    let took = start.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    if next.iter().any(|n| *n != o.orders) {
        return Err(format!(
            "orders per strategy {next:?}, expected {} each",
            o.orders
        ));
    }
    println!(
        "GATEWAY {received} orders from {} strategies, each exactly once and in order, in {took:.2} s ({:.0} orders/s)",
        o.strategies,
        received as f64 / took
    );
    Ok(())
}

fn strategy(o: &Options, id: u32) -> Result<(), String> {
    let mut fills = fills_channel(o).receiver().map_err(|e| e.to_string())?;
    let mut orders = orders_channel(o).sender().map_err(|e| e.to_string())?;
    let count = o.orders;
    let period = Duration::from_secs_f64(64.0 / o.rate as f64);
    let sender = std::thread::spawn(move || -> Result<(), String> {
        let start = Instant::now();
        for seq in 0..count {
            let order = Order {
                strategy: id,
                side: (seq % 2) as u32,
                seq,
                ts_ns: monotonic_ns(),
                price: 100.0 + (seq % 100) as f64 * 0.01,
                qty: 1 + seq % 10,
            };
            orders.send(order).map_err(|e| e.to_string())?;
            if seq % 64 == 63 {
                let due = period.mul_f64(((seq + 1) / 64) as f64);
                if let Some(pause) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(pause);
                }
            }
        }
        Ok(())
    });
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut mine = 0u64;
    while mine < count {
        match fills.recv_timeout(Duration::from_secs(30)) {
            Ok(fill) if fill.strategy == id => {
                if fill.order_seq != mine {
                    return Err(format!(
                        "strategy {id}: fill {} where {mine} was due",
                        fill.order_seq
                    ));
                }
                hist.saturating_record(monotonic_ns().saturating_sub(fill.order_ts_ns).max(1));
                mine += 1;
            }
            Ok(_) => {}
            Err(e) => return Err(format!("strategy {id}: {e}")),
        }
    }
    sender.join().map_err(|_| "order thread panicked")??;
    let us = |q: f64| format!("{:.1}", hist.value_at_quantile(q) as f64 / 1000.0);
    println!(
        "STRATEGY {id} {count} {mine} {} {} {} {} {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
