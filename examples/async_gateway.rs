//! Async order gateway: strategy processes send orders on a unicast `Channel`; the
//! gateway, a tokio service, awaits them with `recv_async` (no thread blocked in
//! `recv`, no polling), checks that every order of every strategy arrives exactly once
//! and in order, and answers each with a fill through `send_async` on a lossless
//! broadcast `Channel` that the strategies read. While it waits for orders, another
//! task of the same runtime keeps a heartbeat, which a blocking `recv` would starve.
//!
//! ```text
//! cargo run --release --example async_gateway
//! cargo run --release --example async_gateway -- --strategies 4 --orders 50000
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmchan::{Channel, Mode, Overflow, RecvError, RecvTimeoutError};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Order {
    strategy: u32,
    _pad: u32,
    /// Per-strategy sequence number, from 0.
    seq: u64,
    price: f64,
    qty: u64,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Fill {
    strategy: u32,
    _pad: u32,
    order_seq: u64,
    price: f64,
    qty: u64,
}

struct Options {
    tag: String,
    strategies: u32,
    orders: u64,
}

fn orders(o: &Options) -> shmchan::Builder<Order> {
    Channel::<Order>::builder(&format!("async-orders-{}", o.tag))
        .mode(Mode::Unicast)
        .capacity(1 << 12)
}

fn fills(o: &Options) -> shmchan::Builder<Fill> {
    Channel::<Fill>::builder(&format!("async-fills-{}", o.tag))
        .overflow(Overflow::Block)
        .capacity(1 << 12)
}

/// The gateway: one tokio runtime, one task receiving orders and sending fills, one
/// heartbeat task.
async fn gateway(o: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = orders(o).receiver()?;
    let mut tx = fills(o).sender()?;
    tx.wait_for_receivers(o.strategies as usize, Duration::from_secs(30))?;
    let heartbeat = tokio::spawn(async {
        let mut beats = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            beats += 1;
            if beats % 10 == 0 {
                println!("gateway: alive ({} s)", beats / 10);
            }
        }
    });
    let start = Instant::now();
    let mut next = vec![0u64; o.strategies as usize];
    let total = o.orders * u64::from(o.strategies);
    let mut received = 0u64;
    while received < total {
        let order = match rx.recv_async().await {
            Ok(order) => order,
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        };
        let want = next
            .get_mut(order.strategy as usize)
            .ok_or("order from an unknown strategy")?;
        if order.seq != *want {
            return Err(format!(
                "strategy {}: order {} where {} was due",
                order.strategy, order.seq, want
            )
            .into());
        }
        *want += 1;
        received += 1;
        let fill = Fill {
            strategy: order.strategy,
            _pad: 0,
            order_seq: order.seq,
            price: order.price,
            qty: order.qty,
        };
        // Lossless: waits (without blocking the runtime) while a strategy is behind.
        tx.send_async(fill).await?;
    }
    heartbeat.abort();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "gateway: {received} orders from {} strategies, each once and in order, in {secs:.2} s ({:.0} orders/s)",
        o.strategies,
        received as f64 / secs
    );
    Ok(())
}

/// A strategy: sends its orders (blocking API) while a thread reads the fills (every
/// strategy sees every fill; reading them apart from the sends keeps a full orders
/// ring from stalling the fills, and the other way round).
fn strategy(o: &Options, id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mut fills_rx = fills(o).receiver()?;
    let total = o.orders * u64::from(o.strategies);
    let reader = std::thread::spawn(move || -> Result<u64, RecvTimeoutError> {
        let mut filled = 0u64;
        while filled < total {
            match fills_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(_) => filled += 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    });
    let mut tx = orders(o).sender()?;
    for seq in 0..o.orders {
        tx.send(Order {
            strategy: id,
            _pad: 0,
            seq,
            price: 100.0 + (seq % 100) as f64 / 100.0,
            qty: 1 + seq % 10,
        })?;
    }
    let filled = reader.join().map_err(|_| "the fill reader panicked")??;
    if filled != total {
        return Err(format!("strategy {id}: {filled} fills of {total}").into());
    }
    Ok(())
}

fn spawn(o: &Options, id: u32) -> Result<Child, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    Ok(Command::new(exe)
        .args([
            "--tag",
            &o.tag,
            "--role",
            "strategy",
            "--id",
            &id.to_string(),
        ])
        .args(["--strategies", &o.strategies.to_string()])
        .args(["--orders", &o.orders.to_string()])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut o = Options {
        tag: std::process::id().to_string(),
        strategies: 3,
        orders: 20_000,
    };
    let (mut role, mut id) = (None, 0u32);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--strategies" => o.strategies = value.parse::<u32>()?.clamp(1, 32),
            "--orders" => o.orders = value.parse()?,
            "--tag" => o.tag = value.to_owned(),
            "--role" => role = Some(value.to_owned()),
            "--id" => id = value.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if role.as_deref() == Some("strategy") {
        return strategy(&o, id);
    }
    // The gateway opens both segments first, so that no strategy starts alone.
    let _orders = orders(&o).receiver()?;
    let mut children = (0..o.strategies)
        .map(|i| spawn(&o, i))
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(gateway(&o));
    for child in &mut children {
        if result.is_err() {
            let _ = child.kill();
        }
        let status = child.wait()?;
        if result.is_ok() && !status.success() {
            return Err(format!("a strategy failed: {status}").into());
        }
    }
    drop(_orders);
    let _ = Channel::<Order>::remove(&format!("async-orders-{}", o.tag));
    let _ = Channel::<Fill>::remove(&format!("async-fills-{}", o.tag));
    result
}
