//! The three suites (latency, throughput, fan-out): which measurements to run, in what
//! order (transports interleaved and rotated between runs), and how the runs are
//! summarised (medians, spread, ratios taken within one run).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::role::{new_hist, unpack};
use crate::run::{measure, Measurement};
use crate::transport::{Bench, Transport};

/// Options shared by the suites.
#[derive(Debug, Clone)]
pub struct Config {
    /// Payload bytes.
    pub payload: usize,
    /// Runs per transport.
    pub runs: usize,
    /// Measured records (None: per-suite default).
    pub count: Option<u64>,
    /// Warm-up records (None: a tenth of the count).
    pub warmup: Option<u64>,
    /// Ring capacity.
    pub capacity: usize,
    /// Fan-out receiver counts.
    pub receivers: Vec<usize>,
    /// Fan-out pacing.
    pub gap_ns: u64,
    /// Deadline per measurement.
    pub timeout: Duration,
    /// CPUs available.
    pub cpus: Vec<usize>,
}

/// Percentiles of one distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Pcts {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// 99.99th.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Samples.
    pub samples: u64,
}

impl Pcts {
    /// Percentiles of `h`, every value multiplied by `scale`.
    pub fn of(h: &Histogram<u64>, scale: f64) -> Pcts {
        let q = |x: f64| h.value_at_quantile(x) as f64 * scale;
        Pcts {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max() as f64 * scale,
            mean: h.mean() * scale,
            samples: h.len(),
        }
    }

    fn median_of(runs: &[Pcts]) -> Pcts {
        let m = |f: fn(&Pcts) -> f64| median(runs.iter().map(f).collect());
        Pcts {
            p50: m(|p| p.p50),
            p90: m(|p| p.p90),
            p99: m(|p| p.p99),
            p999: m(|p| p.p999),
            p9999: m(|p| p.p9999),
            max: m(|p| p.max),
            mean: m(|p| p.mean),
            samples: runs.iter().map(|p| p.samples).sum(),
        }
    }
}

/// Median of a list (mean of the middle two for even lengths); NaN if empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

/// Prints progress on stderr once a suite has run for a few seconds.
pub struct Progress {
    start: Instant,
    total: usize,
    done: usize,
    tty: bool,
    shown: bool,
}

impl Progress {
    /// A progress line for `total` measurements.
    pub fn new(total: usize) -> Progress {
        Progress {
            start: Instant::now(),
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Announces the next measurement.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        let secs = self.start.elapsed().as_secs_f64();
        if secs < 3.0 {
            return;
        }
        self.shown = true;
        let line = format!("[{:>3}/{}] {:>5.0}s {what}", self.done, self.total, secs);
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the line.
    pub fn finish(&mut self) {
        if self.shown && self.tty {
            eprintln!();
        }
    }
}

fn counts(cfg: &Config, bench: Bench, t: Transport) -> (u64, u64) {
    let base = cfg.count.unwrap_or(match bench {
        Bench::Latency => 100_000,
        Bench::Throughput => 1_000_000,
        Bench::Fanout => 10_000,
    });
    // Sleeping transports take 10-100x longer per record: measure fewer unless told.
    let count = if cfg.count.is_none() && t.blocking() && bench != Bench::Fanout {
        base / 5
    } else {
        base
    };
    let warmup = cfg.warmup.unwrap_or((count / 10).max(100));
    (warmup, count)
}

fn measurement(cfg: &Config, bench: Bench, t: Transport, receivers: usize) -> Measurement {
    let (warmup, count) = counts(cfg, bench, t);
    Measurement {
        transport: t,
        bench,
        payload: cfg.payload,
        warmup,
        count,
        receivers,
        capacity: cfg.capacity,
        gap_ns: cfg.gap_ns,
        timeout: cfg.timeout,
    }
}

/// Order of the transports in run `run`: rotated so that no transport always follows
/// the same neighbour or always runs first.
fn rotated(ts: &[Transport], run: usize) -> Vec<Transport> {
    let mut v = ts.to_vec();
    if !v.is_empty() {
        let k = run % v.len();
        v.rotate_left(k);
    }
    v
}

/// Per transport while measuring: runs, errors, merged histogram.
type LatAcc = (
    Transport,
    Vec<Option<Pcts>>,
    Vec<String>,
    Histogram<u64>,
    Vec<u64>,
    String,
);

/// One transport's latency figures.
#[derive(Debug, Serialize)]
pub struct LatencyRow {
    /// Transport name.
    pub transport: String,
    /// Sleeps while waiting.
    pub blocking: bool,
    /// Round trips measured per run.
    pub round_trips: u64,
    /// One-way (RTT/2) percentiles of each run (None where the run failed).
    pub runs: Vec<Option<Pcts>>,
    /// Failures.
    pub errors: Vec<String>,
    /// Median over runs of each percentile.
    pub median: Option<Pcts>,
    /// Smallest and largest p50 over runs.
    pub p50_range: (f64, f64),
    /// Smallest and largest p99.9 over runs.
    pub p999_range: (f64, f64),
    /// Median over runs of p50 / the spinning floor's p50 in the same run.
    pub vs_floor_p50: Option<f64>,
    /// The same for p99.9.
    pub vs_floor_p999: Option<f64>,
    /// Median over runs of p50 / the blocking floor's p50 in the same run.
    pub vs_block_floor_p50: Option<f64>,
    /// The same for p99.9.
    pub vs_block_floor_p999: Option<f64>,
    /// Median cost of the round-trip timer (two readings), ns; part of every round trip.
    pub timer_overhead_ns: u64,
    /// Clock used.
    pub timer: String,
    /// All runs merged (for the plot), one-way nanoseconds doubled (RTT).
    #[serde(skip)]
    pub merged: Histogram<u64>,
}

fn ratio_median(
    rows: &[(Transport, Vec<Option<Pcts>>)],
    mine: &[Option<Pcts>],
    floor: Transport,
    f: fn(&Pcts) -> f64,
) -> Option<f64> {
    let floor_runs = &rows.iter().find(|(t, _)| *t == floor)?.1;
    let ratios: Vec<f64> = mine
        .iter()
        .zip(floor_runs)
        .filter_map(|(a, b)| Some(f(a.as_ref()?) / f(b.as_ref()?)))
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// Ping-pong latency of every transport, `cfg.runs` times, interleaved.
pub fn latency(cfg: &Config, transports: &[Transport], progress: &mut Progress) -> Vec<LatencyRow> {
    let mut per: Vec<LatAcc> = transports
        .iter()
        .map(|&t| {
            (
                t,
                vec![None; cfg.runs],
                Vec::new(),
                new_hist(),
                Vec::new(),
                String::new(),
            )
        })
        .collect();
    for run in 0..cfg.runs {
        for t in rotated(transports, run) {
            progress.step(&format!(
                "latency {} run {}/{}",
                t.name(),
                run + 1,
                cfg.runs
            ));
            let m = measurement(cfg, Bench::Latency, t, 1);
            let slot = per.iter_mut().find(|p| p.0 == t).expect("transport listed");
            match measure(&m, &cfg.cpus) {
                Ok(o) => {
                    let h = unpack(&o.sides[0].hist);
                    slot.1[run] = Some(Pcts::of(&h, 0.5));
                    // Cannot fail: both histograms share bounds.
                    let _ = slot.3.add(&h);
                    slot.4.push(o.sides[0].timer_overhead_ns);
                    slot.5 = o.sides[0].timer.clone();
                }
                Err(e) => {
                    eprintln!("\nlatency {} run {}: {e:#}", t.name(), run + 1);
                    slot.2.push(format!("run {}: {e:#}", run + 1));
                }
            }
        }
    }
    let runs_by_t: Vec<(Transport, Vec<Option<Pcts>>)> =
        per.iter().map(|p| (p.0, p.1.clone())).collect();
    per.into_iter()
        .map(|(t, runs, errors, merged, overheads, timer)| {
            let ok: Vec<Pcts> = runs.iter().flatten().copied().collect();
            LatencyRow {
                transport: t.name().into(),
                blocking: t.blocking(),
                round_trips: counts(cfg, Bench::Latency, t).1,
                median: (!ok.is_empty()).then(|| Pcts::median_of(&ok)),
                p50_range: range(ok.iter().map(|p| p.p50)),
                p999_range: range(ok.iter().map(|p| p.p999)),
                vs_floor_p50: ratio_median(&runs_by_t, &runs, Transport::Floor, |p| p.p50),
                vs_floor_p999: ratio_median(&runs_by_t, &runs, Transport::Floor, |p| p.p999),
                vs_block_floor_p50: ratio_median(&runs_by_t, &runs, Transport::FloorBlock, |p| {
                    p.p50
                }),
                vs_block_floor_p999: ratio_median(&runs_by_t, &runs, Transport::FloorBlock, |p| {
                    p.p999
                }),
                runs,
                errors,
                timer_overhead_ns: median(overheads.iter().map(|&x| x as f64).collect()) as u64,
                timer,
                merged,
            }
        })
        .collect()
}

/// One throughput measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TpRun {
    /// Records per second received.
    pub rate: f64,
    /// Records received in the measured part.
    pub records: u64,
    /// Records skipped by a lapped receiver (lossy transports).
    pub lagged: u64,
}

/// One transport's throughput figures.
#[derive(Debug, Serialize)]
pub struct ThroughputRow {
    /// Transport name.
    pub transport: String,
    /// Records sent per run.
    pub count: u64,
    /// Each run.
    pub runs: Vec<Option<TpRun>>,
    /// Failures.
    pub errors: Vec<String>,
    /// Median records/s.
    pub rate: Option<f64>,
    /// Median GB/s (payload bytes only).
    pub gbps: Option<f64>,
    /// Smallest and largest rate.
    pub rate_range: (f64, f64),
    /// Median of rate / the raw ring's rate in the same run.
    pub vs_floor: Option<f64>,
    /// Records skipped, all runs.
    pub lagged: u64,
}

/// SPSC throughput of every transport.
pub fn throughput(
    cfg: &Config,
    transports: &[Transport],
    progress: &mut Progress,
) -> Vec<ThroughputRow> {
    let mut per: Vec<(Transport, Vec<Option<TpRun>>, Vec<String>)> = transports
        .iter()
        .map(|&t| (t, vec![None; cfg.runs], Vec::new()))
        .collect();
    for run in 0..cfg.runs {
        for t in rotated(transports, run) {
            progress.step(&format!(
                "throughput {} run {}/{}",
                t.name(),
                run + 1,
                cfg.runs
            ));
            let m = measurement(cfg, Bench::Throughput, t, 1);
            let slot = per.iter_mut().find(|p| p.0 == t).expect("transport listed");
            match measure(&m, &cfg.cpus) {
                Ok(o) => {
                    let c = &o.sides[1];
                    let secs = c.elapsed_ns.max(1) as f64 / 1e9;
                    slot.1[run] = Some(TpRun {
                        rate: c.records.saturating_sub(1) as f64 / secs,
                        records: c.records,
                        lagged: c.lagged,
                    });
                }
                Err(e) => {
                    eprintln!("\nthroughput {} run {}: {e:#}", t.name(), run + 1);
                    slot.2.push(format!("run {}: {e:#}", run + 1));
                }
            }
        }
    }
    let floor_runs = per
        .iter()
        .find(|p| p.0 == Transport::Floor)
        .map(|p| p.1.clone());
    per.into_iter()
        .map(|(t, runs, errors)| {
            let rates: Vec<f64> = runs.iter().flatten().map(|r| r.rate).collect();
            let rate = (!rates.is_empty()).then(|| median(rates.clone()));
            let vs_floor = floor_runs.as_ref().and_then(|f| {
                let r: Vec<f64> = runs
                    .iter()
                    .zip(f)
                    .filter_map(|(a, b)| Some(a.as_ref()?.rate / b.as_ref()?.rate))
                    .collect();
                (!r.is_empty()).then(|| median(r))
            });
            ThroughputRow {
                transport: t.name().into(),
                count: counts(cfg, Bench::Throughput, t).1,
                rate,
                gbps: rate.map(|r| r * cfg.payload as f64 / 1e9),
                rate_range: range(rates.into_iter()),
                vs_floor,
                lagged: runs.iter().flatten().map(|r| r.lagged).sum(),
                runs,
                errors,
            }
        })
        .collect()
}

/// Per (transport, receivers) while measuring: runs, errors.
type FanAcc = ((Transport, usize), Vec<Option<FanRun>>, Vec<String>);

/// One fan-out measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FanRun {
    /// Producer's time inside `send`, per record.
    pub cost: Pcts,
    /// Send-to-receive latency, all receivers pooled.
    pub latency: Pcts,
    /// Records skipped by lapped receivers.
    pub lagged: u64,
}

/// One (transport, receiver count) fan-out row.
#[derive(Debug, Serialize)]
pub struct FanoutRow {
    /// Transport name.
    pub transport: String,
    /// Receivers.
    pub receivers: usize,
    /// Each run.
    pub runs: Vec<Option<FanRun>>,
    /// Failures.
    pub errors: Vec<String>,
    /// Median over runs.
    pub cost: Option<Pcts>,
    /// Median over runs.
    pub latency: Option<Pcts>,
    /// Median producer cost (p50) relative to the same transport with one receiver, in
    /// the same run.
    pub cost_vs_one: Option<f64>,
    /// Mean producer cost relative to one receiver, same run.
    pub mean_cost_vs_one: Option<f64>,
    /// Records skipped, all runs.
    pub lagged: u64,
}

/// The fan-out plan: spinning transports only where every spinning process (producer
/// included) has a core; beyond that their sleeping twins stand in. Transports that
/// do not broadcast (unicast) have no place in it: the caller reports them.
pub fn fanout_plan(cfg: &Config, transports: &[Transport]) -> Vec<(Transport, usize)> {
    let mut plan = Vec::new();
    for &n in &cfg.receivers {
        for &t in transports.iter().filter(|t| t.broadcasts()) {
            let t = if t.spins() && n + 1 > cfg.cpus.len().max(1) {
                t.blocking_twin()
            } else {
                t
            };
            if !plan.contains(&(t, n)) {
                plan.push((t, n));
            }
        }
    }
    plan
}

/// Producer cost and receiver latency against the number of receivers.
pub fn fanout(cfg: &Config, transports: &[Transport], progress: &mut Progress) -> Vec<FanoutRow> {
    let plan = fanout_plan(cfg, transports);
    let mut per: Vec<FanAcc> = plan
        .iter()
        .map(|&k| (k, vec![None; cfg.runs], Vec::new()))
        .collect();
    for run in 0..cfg.runs {
        let mut order = plan.clone();
        if !order.is_empty() {
            let k = run % order.len();
            order.rotate_left(k);
        }
        for (t, n) in order {
            progress.step(&format!(
                "fanout {} x{n} run {}/{}",
                t.name(),
                run + 1,
                cfg.runs
            ));
            let m = measurement(cfg, Bench::Fanout, t, n);
            let slot = per.iter_mut().find(|p| p.0 == (t, n)).expect("planned");
            match measure(&m, &cfg.cpus) {
                Ok(o) => {
                    let cost = Pcts::of(&unpack(&o.sides[0].hist), 1.0);
                    let mut lat = new_hist();
                    for s in &o.sides[1..] {
                        // Cannot fail: same bounds.
                        let _ = lat.add(unpack(&s.hist));
                    }
                    slot.1[run] = Some(FanRun {
                        cost,
                        latency: Pcts::of(&lat, 1.0),
                        lagged: o.sides[1..].iter().map(|s| s.lagged).sum(),
                    });
                }
                Err(e) => {
                    eprintln!("\nfanout {} x{n} run {}: {e:#}", t.name(), run + 1);
                    slot.2.push(format!("run {}: {e:#}", run + 1));
                }
            }
        }
    }
    let first_n = cfg.receivers.first().copied().unwrap_or(1);
    let base: Vec<(Transport, Vec<Option<FanRun>>)> = per
        .iter()
        .filter(|p| p.0 .1 == first_n)
        .map(|p| (p.0 .0, p.1.clone()))
        .collect();
    per.into_iter()
        .map(|((t, n), runs, errors)| {
            let costs: Vec<Pcts> = runs.iter().flatten().map(|r| r.cost).collect();
            let lats: Vec<Pcts> = runs.iter().flatten().map(|r| r.latency).collect();
            let vs = |f: fn(&Pcts) -> f64| {
                let b = &base.iter().find(|b| b.0 == t)?.1;
                let r: Vec<f64> = runs
                    .iter()
                    .zip(b)
                    .filter_map(|(a, b)| Some(f(&a.as_ref()?.cost) / f(&b.as_ref()?.cost)))
                    .collect();
                (!r.is_empty()).then(|| median(r))
            };
            FanoutRow {
                transport: t.name().into(),
                receivers: n,
                cost: (!costs.is_empty()).then(|| Pcts::median_of(&costs)),
                latency: (!lats.is_empty()).then(|| Pcts::median_of(&lats)),
                cost_vs_one: vs(|p| p.p50),
                mean_cost_vs_one: vs(|p| p.mean),
                lagged: runs.iter().flatten().map(|r| r.lagged).sum(),
                runs,
                errors,
            }
        })
        .collect()
}
