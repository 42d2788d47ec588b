//! What a child process does: one side of one measurement. The orchestrator starts
//! it as `shm-bench __role <spec as JSON>`; it writes its figures to a result file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::sys;
use crate::transport::{self, Bench, Ctx, Got, Rx, Side, Transport};

/// A side of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Latency pinger (side A): times round trips.
    Ping,
    /// Latency echo (side B).
    Echo,
    /// Stream producer (throughput, fan-out).
    Producer,
    /// Stream receiver.
    Consumer,
}

/// Everything a child needs, passed on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleSpec {
    /// The side it plays.
    pub role: Role,
    /// Transport under test.
    pub transport: Transport,
    /// Measurement kind.
    pub bench: Bench,
    /// Payload size in bytes.
    pub payload: usize,
    /// Records (or round trips) before measuring.
    pub warmup: u64,
    /// Records (or round trips) measured.
    pub count: u64,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// Run directory.
    pub dir: PathBuf,
    /// Unique base name.
    pub name: String,
    /// Processes in the measurement.
    pub parties: u32,
    /// Stream receivers.
    pub receivers: usize,
    /// This receiver's index.
    pub index: usize,
    /// Ring capacity.
    pub capacity: usize,
    /// Fan-out pacing: nanoseconds between two sends.
    pub gap_ns: u64,
    /// Start-up timeout.
    pub timeout_ms: u64,
}

impl RoleSpec {
    /// Where this side writes its result.
    pub fn result_path(&self) -> PathBuf {
        self.dir
            .join(format!("result.{:?}.{}.json", self.role, self.index))
    }
}

/// A child's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleResult {
    /// Histogram as (value, count) pairs: round-trip ns (ping), receive latency ns
    /// (fan-out receivers), or send cost ns (fan-out producer).
    pub hist: Vec<(u64, u64)>,
    /// Records received and verified in the measured part.
    pub records: u64,
    /// Records skipped because the receiver was lapped.
    pub lagged: u64,
    /// Time of the measured part (first to last measured record), ns.
    pub elapsed_ns: u64,
    /// Ping only: the round-trip timer's own cost (two back-to-back readings), ns.
    #[serde(default)]
    pub timer_overhead_ns: u64,
    /// Ping only: the clock used for round trips.
    #[serde(default)]
    pub timer: String,
}

/// A histogram for nanosecond values up to 100 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Flattens a histogram for transfer.
pub fn pack(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Rebuilds a packed histogram.
pub fn unpack(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_hist();
    for &(v, c) in pairs {
        h.saturating_record_n(v.max(1), c);
    }
    h
}

/// Entry point of `shm-bench __role`.
pub fn run_child(spec_json: &str) -> Result<()> {
    sys::die_with_parent();
    let spec: RoleSpec = serde_json::from_str(spec_json).context("parse role spec")?;
    if let Some(cpu) = spec.cpu {
        sys::pin_to(cpu)?;
    }
    let mut ctx = Ctx::new(
        spec.dir.clone(),
        spec.name.clone(),
        spec.bench,
        spec.receivers,
        spec.index,
        spec.capacity,
        spec.parties,
        Duration::from_millis(spec.timeout_ms),
    )?;
    let outcome = crate::with_payload!(spec.payload, P => run_role::<P>(&spec, &mut ctx));
    match outcome {
        Ok(result) => {
            let path = spec.result_path();
            std::fs::write(&path, serde_json::to_vec(&result)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(())
        }
        Err(e) => {
            ctx.fail();
            Err(e.context(format!(
                "{:?} of {} ({:?}, {} bytes)",
                spec.role,
                spec.transport.name(),
                spec.bench,
                spec.payload
            )))
        }
    }
}

fn run_role<P: Payload>(spec: &RoleSpec, ctx: &mut Ctx) -> Result<RoleResult> {
    let t = spec.transport;
    match spec.role {
        Role::Ping => ping::<P>(spec, ctx, t),
        Role::Echo => echo::<P>(spec, ctx, t),
        Role::Producer => produce::<P>(spec, ctx, t),
        Role::Consumer => consume::<P>(spec, ctx, t),
    }
}

fn check<P: Payload>(rx: &dyn Rx<P>, msg: &P, seq: u64, ts_is_time: bool) -> Result<()> {
    if rx.seq_only() {
        if msg.seq() != seq {
            bail!("corrupt record: seq {} where {seq} was expected", msg.seq());
        }
        return Ok(());
    }
    msg.verify(seq, ts_is_time)
}

fn ping<P: Payload>(spec: &RoleSpec, ctx: &mut Ctx, t: Transport) -> Result<RoleResult> {
    let (mut tx, mut rx) = transport::duplex::<P>(t, ctx, Side::A)?;
    ctx.sync()?;
    let timer = sys::Timer::new();
    let timer_overhead_ns = timer.overhead_ns();
    let mut hist = new_hist();
    let mut buf = P::zeroed();
    let total = spec.warmup + spec.count;
    let start = Instant::now();
    for seq in 0..total {
        let msg = P::pattern(seq);
        let t0 = timer.now();
        tx.send(&msg)?;
        if let Got::Lagged(n) = rx.recv(&mut buf)? {
            bail!("ping-pong reply lagged by {n}");
        }
        let rtt = timer.ns(timer.now().wrapping_sub(t0));
        if seq >= spec.warmup {
            hist.saturating_record(rtt.max(1));
        }
        check(&*rx, &buf, seq, false)?;
    }
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    ctx.sync()?;
    Ok(RoleResult {
        hist: pack(&hist),
        records: spec.count,
        lagged: 0,
        elapsed_ns,
        timer_overhead_ns,
        timer: timer.source().into(),
    })
}

fn echo<P: Payload>(spec: &RoleSpec, ctx: &mut Ctx, t: Transport) -> Result<RoleResult> {
    let (mut tx, mut rx) = transport::duplex::<P>(t, ctx, Side::B)?;
    ctx.sync()?;
    let mut buf = P::zeroed();
    let total = spec.warmup + spec.count;
    for seq in 0..total {
        if let Got::Lagged(n) = rx.recv(&mut buf)? {
            bail!("ping lagged by {n}");
        }
        tx.send(&buf)?;
        // Checked after the reply left, off the timed path.
        check(&*rx, &buf, seq, false)?;
    }
    ctx.sync()?;
    Ok(RoleResult {
        records: total,
        ..RoleResult::default()
    })
}

fn produce<P: Payload>(spec: &RoleSpec, ctx: &mut Ctx, t: Transport) -> Result<RoleResult> {
    let mut tx = transport::producer::<P>(t, ctx)?;
    ctx.sync()?;
    let total = spec.warmup + spec.count;
    let mut hist = new_hist();
    let start = sys::now_ns();
    if spec.bench == Bench::Fanout {
        let mut next = sys::now_ns();
        for seq in 0..total {
            let mut msg = P::stamped(seq, 0);
            loop {
                let now = sys::now_ns();
                if now >= next {
                    break;
                }
                std::hint::spin_loop();
            }
            let t0 = sys::now_ns();
            if P::HAS_TS {
                bytemuck::bytes_of_mut(&mut msg)[8..16].copy_from_slice(&t0.to_ne_bytes());
            }
            tx.send(&msg)?;
            let t1 = sys::now_ns();
            if seq >= spec.warmup {
                hist.saturating_record((t1 - t0).max(1));
            }
            next = t0 + spec.gap_ns;
        }
    } else {
        for seq in 0..total {
            tx.send(&P::pattern(seq))?;
        }
    }
    tx.flush()?;
    let elapsed_ns = sys::now_ns() - start;
    ctx.sync()?;
    Ok(RoleResult {
        hist: pack(&hist),
        records: total,
        lagged: 0,
        elapsed_ns,
        ..RoleResult::default()
    })
}

fn consume<P: Payload>(spec: &RoleSpec, ctx: &mut Ctx, t: Transport) -> Result<RoleResult> {
    let mut rx = transport::consumer::<P>(t, ctx)?;
    ctx.sync()?;
    let fanout = spec.bench == Bench::Fanout;
    let total = spec.warmup + spec.count;
    let mut hist = new_hist();
    let mut buf = P::zeroed();
    let mut expected = 0u64;
    let (mut received, mut lagged) = (0u64, 0u64);
    let (mut first, mut last) = (0u64, 0u64);
    loop {
        match rx.recv(&mut buf)? {
            Got::Lagged(n) => {
                expected += n;
                lagged += n;
                continue;
            }
            Got::Msg => {}
        }
        // The clock is read per record only where per-record latency is measured; a
        // throughput receiver reads it at the first and last measured record.
        let s = buf.seq();
        let now = if fanout || (received == 0 && s >= spec.warmup) || s + 1 == total {
            sys::now_ns()
        } else {
            0
        };
        if s != expected {
            if rx.silent_gaps() && s > expected && s < total {
                lagged += s - expected;
            } else {
                bail!("order: received seq {s} where {expected} was expected");
            }
        }
        check(&*rx, &buf, s, fanout)?;
        if fanout && P::HAS_TS && buf.ts() > now {
            bail!("record {s}: send time lies in the future");
        }
        if s >= spec.warmup {
            if received == 0 {
                first = now;
            }
            last = now;
            received += 1;
            if fanout && P::HAS_TS {
                hist.saturating_record((now - buf.ts()).max(1));
            }
        }
        expected = s + 1;
        if s + 1 == total {
            break;
        }
    }
    ctx.sync()?;
    Ok(RoleResult {
        hist: pack(&hist),
        records: received,
        lagged,
        elapsed_ns: last - first,
        ..RoleResult::default()
    })
}
