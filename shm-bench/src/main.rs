//! `shm-bench`: latency, throughput and fan-out of shmchan against the hardware floor
//! and peer IPC libraries. Every measured side runs in its own process (this binary,
//! re-executed with a hidden role), pinned to its own core where there are enough,
//! after a warm-up, and checks every byte of every record it receives.

#![warn(clippy::undocumented_unsafe_blocks)]

mod bench;
mod payload;
mod report;
mod role;
mod run;
mod shm;
mod sys;
mod transport;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use bench::{Config, Progress};
use report::Report;
use transport::Transport;

#[derive(Parser)]
#[command(
    name = "shm-bench",
    version,
    about = "Benchmarks shmchan against the shared-memory floor and peer IPC"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ping-pong round trips; reports one-way latency (RTT/2) percentiles.
    Latency(Common),
    /// One producer to one receiver, flat out: records/s and GB/s.
    Throughput(Common),
    /// One producer, N broadcast receivers: producer cost per record, receiver latency.
    /// Broadcast transports only: unicast ones (each record to one receiver) are refused.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fan: FanOpts,
    },
    /// Latency, throughput and fan-out, one after the other; writes the JSON and the plot
    /// (by default to target/shm-bench/all.json and target/shm-bench/latency.svg).
    /// Unicast transports named with --transports are left out of the fan-out.
    All {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fan: FanOpts,
        /// A few thousand records, one run, no peers: a data-correctness check that
        /// asserts nothing about timing.
        #[arg(long)]
        quick: bool,
    },
    /// CI smoke test: every built-in transport, every benchmark (the fan-out without the
    /// unicast ones, latency and fan-out without the batching ones), a few thousand
    /// records, every payload checked; asserts no timing.
    Smoke,
    /// Lists the transports: name, whether it spins or sleeps, what it is.
    ///
    /// shmchan names read `shmchan[-channel][-unicast]-WAIT[-lossless|-loan][-batchN|-ref]`:
    /// `-channel`
    /// a `Channel<T>` (else a `Route<T>`), `-unicast` `Mode::Unicast` (else broadcast),
    /// WAIT spin, adaptive or block, `-lossless` broadcast with `Overflow::Block` (else
    /// `Overflow::Overwrite`), `-loan` sending through `loan()` + `publish()` (lossless),
    /// `-batchN` `send_many` / `recv_many` of N records (throughput only), `-ref`
    /// receiving in place with `recv_ref` (lossless). Unicast is always lossless.
    List,
    #[command(name = "__role", hide = true)]
    Role { spec: String },
}

#[derive(Args, Clone)]
struct Common {
    /// Payload sizes in bytes (8, 32, 48, 64, 256, 1024, 4096), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    payload: Vec<usize>,
    /// Records (round trips for latency) measured per run. Default: 100000 for latency
    /// (a fifth of that for sleeping transports), 1000000 for throughput (idem), 10000
    /// for fan-out.
    #[arg(long)]
    count: Option<u64>,
    /// Records before measuring (default: a tenth of the count, at least 100).
    #[arg(long)]
    warmup: Option<u64>,
    /// Transports, comma-separated (see `shm-bench list`). Default: a selection per
    /// suite.
    #[arg(long, value_delimiter = ',')]
    transports: Option<Vec<String>>,
    /// Runs per transport; runs are interleaved and medians reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Ring capacity in records (shmchan, raw ring, ringfire, iceoryx2 stream buffers).
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Write every figure, the machine and crate versions as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plot latency percentile curves to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Deadline per measurement, seconds; its processes are killed after it.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

#[derive(Args, Clone)]
struct FanOpts {
    /// Receiver counts for the fan-out, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    receivers: Vec<usize>,
    /// Fan-out pacing: microseconds between two sends.
    #[arg(long, default_value_t = 50)]
    gap_us: u64,
}

fn names(list: &[&str]) -> Vec<Transport> {
    list.iter()
        .filter_map(|n| Transport::parse(n).ok())
        .collect()
}

fn default_transports(bench: transport::Bench, peers: bool) -> Vec<Transport> {
    use transport::Bench::*;
    let mut v: Vec<&str> = match bench {
        Latency => vec![
            "floor",
            "floor-block",
            "shmchan-spin",
            "shmchan-adaptive",
            "shmchan-block",
            "shmchan-spin-lossless",
            "shmchan-spin-loan",
            "shmchan-channel-spin",
            "shmchan-unicast-spin",
            "shmchan-channel-unicast-spin",
            "shmchan-async-tokio",
            "uds",
            "pipe",
        ],
        Throughput => vec![
            "floor",
            "floor-block",
            "shmchan-spin-lossless",
            "shmchan-adaptive-lossless",
            "shmchan-block-lossless",
            "shmchan-spin-loan",
            "shmchan-channel-spin-lossless",
            "shmchan-unicast-spin",
            "shmchan-channel-unicast-spin",
            "shmchan-async-tokio-lossless",
            "uds",
            "pipe",
        ],
        // Broadcast transports only: unicast does not fan out.
        Fanout => vec![
            "floor",
            "floor-block",
            "shmchan-spin",
            "shmchan-adaptive",
            "shmchan-block",
            "shmchan-channel-spin",
            "shmchan-channel-block",
            "uds",
            "pipe",
        ],
    };
    if peers && cfg!(feature = "peers") {
        v.extend(match bench {
            Latency => &[
                "iceoryx2-spin",
                "iceoryx2-event",
                "ringfire-spin",
                "ringfire-adaptive",
                "ringfire-block",
            ][..],
            Throughput => &["iceoryx2-spin", "ringfire-spin"][..],
            Fanout => &[
                "iceoryx2-spin",
                "iceoryx2-event",
                "ringfire-spin",
                "ringfire-block",
            ][..],
        });
    }
    names(&v)
}

fn chosen(common: &Common, bench: transport::Bench, peers: bool) -> Result<Vec<Transport>> {
    match &common.transports {
        None => Ok(default_transports(bench, peers)),
        Some(list) => list.iter().map(|n| Transport::parse(n.trim())).collect(),
    }
}

fn config(common: &Common, fan: Option<&FanOpts>) -> Result<Config> {
    for &p in &common.payload {
        if !payload::SIZES.contains(&p) {
            bail!("payload {p} is not one of {:?}", payload::SIZES);
        }
    }
    if common.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !common.capacity.is_power_of_two() || common.capacity < 2 {
        bail!("--capacity must be a power of two >= 2");
    }
    let fan = fan.cloned().unwrap_or(FanOpts {
        receivers: vec![1, 2, 4],
        gap_us: 50,
    });
    if fan.receivers.iter().any(|&n| n == 0 || n > 64) {
        bail!("--receivers must be from 1 to 64");
    }
    Ok(Config {
        payload: common.payload[0],
        runs: common.runs,
        count: common.count,
        warmup: common.warmup,
        capacity: common.capacity,
        receivers: fan.receivers,
        gap_ns: fan.gap_us * 1000,
        timeout: Duration::from_secs(common.timeout_s),
        cpus: sys::allowed_cpus(),
    })
}

/// Which suites an invocation runs.
#[derive(Clone, Copy)]
struct Suites {
    latency: bool,
    throughput: bool,
    fanout: bool,
}

fn with_suffix(path: &Path, payload: usize, many: bool) -> PathBuf {
    if !many {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    path.with_file_name(format!("{stem}-{payload}{ext}"))
}

/// Runs the chosen suites; returns (measurements, failed measurements).
fn execute(
    common: &Common,
    fan: Option<&FanOpts>,
    suites: Suites,
    peers: bool,
) -> Result<(usize, usize)> {
    let base = config(common, fan)?;
    let (lat_t, no_lat): (Vec<Transport>, Vec<Transport>) =
        chosen(common, transport::Bench::Latency, peers)?
            .into_iter()
            .partition(|t| !t.throughput_only());
    let no_lat: Vec<&str> = no_lat.iter().map(|t| t.name()).collect();
    let tp_t = chosen(common, transport::Bench::Throughput, peers)?;
    let (fan_t, no_fan): (Vec<Transport>, Vec<Transport>) =
        chosen(common, transport::Bench::Fanout, peers)?
            .into_iter()
            .filter(|t| !t.throughput_only())
            .partition(|t| t.broadcasts());
    let no_fan: Vec<&str> = no_fan.iter().map(|t| t.name()).collect();
    if suites.fanout && !no_fan.is_empty() && !suites.latency && !suites.throughput {
        bail!(
            "fan-out needs transports whose every receiver gets every record; {} {} unicast \
             (each record goes to exactly one receiver)",
            no_fan.join(", "),
            if no_fan.len() == 1 { "is" } else { "are" }
        );
    }
    if (suites.latency || suites.fanout) && !suites.throughput && !no_lat.is_empty() {
        bail!(
            "{} {} records in batches: throughput only",
            no_lat.join(", "),
            if no_lat.len() == 1 { "moves" } else { "move" }
        );
    }
    let machine = sys::machine();
    println!(
        "# shm-bench {} on {} ({} CPUs{}), {}",
        env!("CARGO_PKG_VERSION"),
        machine.cpu_model,
        machine.cpus,
        if machine.hypervisor {
            ", virtualised"
        } else {
            ""
        },
        machine.kernel
    );
    if let Some(load) = sys::load1() {
        if load > 0.7 {
            println!(
                "# WARNING: 1-minute load average is {load:.2}: other processes share the CPUs, figures will be skewed"
            );
        }
    }
    println!(
        "# versions: {}",
        report::versions()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let notes = vec![
        "Latency is one-way = round-trip / 2, in ns, from an HDR histogram of every round trip (not total time / 2n as iceoryx2's own benchmark reports).".to_string(),
        "Each figure is the median over runs; transports are interleaved and rotated between runs; ratios are taken within one run, then their median is reported.".to_string(),
        "The floor ping-pong carries only the sequence number in one cache line; every other transport carries the full payload, checked byte for byte off the timed path.".to_string(),
        "Blocking figures (floor-block, *-block, uds, pipe, iceoryx2-event) include a futex wake-up: a bare futex wake costs ~25 us one-way on these VMs.".to_string(),
        "Fan-out: sends are paced; spinning transports appear only where every spinning process has a core of its own, beyond that their sleeping twins stand in.".to_string(),
        "Fan-out receiver latency is measured against the paced send times, so a receiver stall (a vCPU descheduled for ~10 ms) delays every record sent meanwhile: its p99 and beyond measure such stalls more than the transport.".to_string(),
    ];
    let mut report = Report {
        tool: env!("CARGO_PKG_VERSION").into(),
        versions: report::versions(),
        machine,
        config: BTreeMap::from([
            ("payloads".into(), format!("{:?}", common.payload)),
            ("runs".into(), base.runs.to_string()),
            ("count".into(), format!("{:?}", base.count)),
            ("capacity".into(), base.capacity.to_string()),
            ("receivers".into(), format!("{:?}", base.receivers)),
            ("gap_ns".into(), base.gap_ns.to_string()),
            ("cpus".into(), format!("{:?}", base.cpus)),
        ]),
        notes,
        latency: Vec::new(),
        throughput: Vec::new(),
        fanout: Vec::new(),
    };
    if (suites.latency || suites.fanout) && !no_lat.is_empty() {
        println!(
            "# latency and fan-out leave out {} (batches: throughput only)",
            no_lat.join(", ")
        );
    }
    if suites.fanout && !no_fan.is_empty() {
        println!(
            "# fan-out leaves out {} (unicast: each record goes to exactly one receiver)",
            no_fan.join(", ")
        );
    }
    let mut total = 0;
    for _ in &common.payload {
        if suites.latency {
            total += lat_t.len() * base.runs;
        }
        if suites.throughput {
            total += tp_t.len() * base.runs;
        }
        if suites.fanout {
            total += bench::fanout_plan(&base, &fan_t).len() * base.runs;
        }
    }
    let mut progress = Progress::new(total);
    let many = common.payload.len() > 1;
    let mut errors = 0;
    for &payload in &common.payload {
        let cfg = Config {
            payload,
            ..base.clone()
        };
        if suites.latency {
            let rows = bench::latency(&cfg, &lat_t, &mut progress);
            progress.finish();
            println!(
                "\n## latency: {payload}-byte records, one-way (RTT/2) ns, median of {} runs",
                cfg.runs
            );
            print!("{}", report::latency_table(&rows));
            if let Some(r) = rows.iter().find(|r| !r.timer.is_empty()) {
                println!(
                    "(round trips timed with {}; two back-to-back readings cost {} ns, included in each RTT)",
                    r.timer, r.timer_overhead_ns
                );
            }
            errors += rows.iter().map(|r| r.errors.len()).sum::<usize>();
            if let Some(path) = &common.plot {
                let p = with_suffix(path, payload, many);
                let sub = format!("{} runs merged, {}", cfg.runs, report.machine.cpu_model);
                match report::plot(&p, &rows, payload, &sub) {
                    Ok(()) => println!("plot written to {}", p.display()),
                    Err(e) => eprintln!("plot: {e:#}"),
                }
            }
            report.latency.push((payload, rows));
        }
        if suites.throughput {
            let rows = bench::throughput(&cfg, &tp_t, &mut progress);
            progress.finish();
            println!(
                "\n## throughput: {payload}-byte records, one producer to one receiver, median of {} runs",
                cfg.runs
            );
            print!("{}", report::throughput_table(&rows));
            errors += rows.iter().map(|r| r.errors.len()).sum::<usize>();
            report.throughput.push((payload, rows));
        }
        if suites.fanout {
            if payload < 16 {
                println!(
                    "\n## fan-out: skipped for {payload}-byte records (no room for a send time)"
                );
            } else {
                let rows = bench::fanout(&cfg, &fan_t, &mut progress);
                progress.finish();
                println!(
                    "\n## fan-out: {payload}-byte records every {} us; producer send cost and receiver latency in ns, median of {} runs",
                    cfg.gap_ns / 1000,
                    cfg.runs
                );
                print!("{}", report::fanout_table(&rows));
                errors += rows.iter().map(|r| r.errors.len()).sum::<usize>();
                report.fanout.push((payload, rows));
            }
        }
    }
    println!();
    for n in &report.notes {
        println!("note: {n}");
    }
    report.config.insert(
        "loadavg_at_end".into(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    );
    if let Some(path) = &common.json {
        report::write_json(path, &report)?;
        println!("JSON written to {}", path.display());
    }
    Ok((total, errors))
}

fn smoke() -> Result<(usize, usize)> {
    let all_builtin: Vec<String> = transport::ALL
        .iter()
        .filter(|(_, t)| !t.is_peer())
        .map(|(n, _)| n.to_string())
        .collect();
    let common = Common {
        payload: vec![64],
        count: Some(2000),
        warmup: Some(200),
        transports: Some(all_builtin),
        runs: 1,
        capacity: 256,
        json: None,
        plot: None,
        timeout_s: 60,
    };
    let fan = FanOpts {
        receivers: vec![1, 2],
        gap_us: 20,
    };
    let every = Suites {
        latency: true,
        throughput: true,
        fanout: true,
    };
    let (mut total, mut errors) = execute(&common, Some(&fan), every, false)?;
    // The smallest and largest records through a few transports.
    let edge = Common {
        payload: vec![8, 4096],
        transports: Some(vec![
            "floor".into(),
            "shmchan-spin".into(),
            "shmchan-block-lossless".into(),
            "shmchan-channel-spin-lossless".into(),
            "shmchan-channel-unicast-block".into(),
            "shmchan-spin-lossless-batch256".into(),
            "uds".into(),
        ]),
        ..common
    };
    let no_fan = Suites {
        fanout: false,
        ..every
    };
    let (t, e) = execute(&edge, None, no_fan, false)?;
    total += t;
    errors += e;
    Ok((total, errors))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let all = Suites {
        latency: true,
        throughput: true,
        fanout: true,
    };
    let none = Suites {
        latency: false,
        throughput: false,
        fanout: false,
    };
    let outcome = match cli.cmd {
        Cmd::Role { spec } => role::run_child(&spec).map(|()| 0),
        Cmd::List => {
            for (name, t) in transport::ALL {
                let built = !t.is_peer() || cfg!(feature = "peers");
                println!(
                    "{name:<38} {}  {}{}",
                    if t.blocking() { "sleeps" } else { "spins " },
                    t.describe(),
                    if built {
                        ""
                    } else {
                        "  (needs --features peers)"
                    }
                );
            }
            println!(
                "\nshmchan names: shmchan[-channel][-unicast]-WAIT[-lossless|-loan][-batchN|-ref]\n  \
                 -channel   Channel<T> (many producers; one attached here), else Route<T>\n  \
                 -unicast   Mode::Unicast: each record to one receiver, always lossless; no fan-out\n  \
                 WAIT       spin, adaptive (spins, then sleeps; listed as spinning) or block\n  \
                 -lossless  broadcast with Overflow::Block, else Overflow::Overwrite\n  \
                 -loan      send through loan() + publish(); lossless\n  \
                 -batchN    send_many / recv_many of N records at a time; throughput only\n  \
                 -ref       receive in place with recv_ref() (no copy out of the slot); lossless"
            );
            Ok(0)
        }
        Cmd::Latency(c) => execute(
            &c,
            None,
            Suites {
                latency: true,
                ..none
            },
            true,
        )
        .map(|r| r.1),
        Cmd::Throughput(c) => execute(
            &c,
            None,
            Suites {
                throughput: true,
                ..none
            },
            true,
        )
        .map(|r| r.1),
        Cmd::Fanout { common, fan } => execute(
            &common,
            Some(&fan),
            Suites {
                fanout: true,
                ..none
            },
            true,
        )
        .map(|r| r.1),
        Cmd::All {
            mut common,
            fan,
            quick,
        } => {
            if quick {
                common.count.get_or_insert(2000);
                common.runs = 1;
            } else {
                // The full comparison always leaves its figures and plot behind.
                common
                    .json
                    .get_or_insert_with(|| PathBuf::from("target/shm-bench/all.json"));
                common
                    .plot
                    .get_or_insert_with(|| PathBuf::from("target/shm-bench/latency.svg"));
            }
            for p in [&common.json, &common.plot].into_iter().flatten() {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Err(e) = std::fs::create_dir_all(dir) {
                        eprintln!("shm-bench: create {}: {e}", dir.display());
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
            execute(&common, Some(&fan), all, !quick).map(|r| r.1)
        }
        Cmd::Smoke => smoke().map(|(total, errors)| {
            // Each measurement checked every record it moved; timing is not judged.
            println!("smoke: {} passed, {errors} failed", total - errors);
            errors
        }),
    };
    match outcome {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("shm-bench: {n} measurement(s) failed");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("shm-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
