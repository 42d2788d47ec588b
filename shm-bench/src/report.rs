//! Output: aligned tables on stdout, the JSON file, the SVG plot.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::bench::{FanoutRow, LatencyRow, ThroughputRow};
use crate::sys::Machine;

/// Everything one invocation measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// shm-bench version.
    pub tool: String,
    /// Versions of the crates compared (from Cargo.lock at build time).
    pub versions: BTreeMap<String, String>,
    /// Where it ran.
    pub machine: Machine,
    /// Options.
    pub config: BTreeMap<String, String>,
    /// Notes that belong next to the figures.
    pub notes: Vec<String>,
    /// Per payload size: latency rows.
    pub latency: Vec<(usize, Vec<LatencyRow>)>,
    /// Per payload size: throughput rows.
    pub throughput: Vec<(usize, Vec<ThroughputRow>)>,
    /// Per payload size: fan-out rows.
    pub fanout: Vec<(usize, Vec<FanoutRow>)>,
}

/// Crate versions baked in by build.rs.
pub fn versions() -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = env!("SHM_BENCH_VERSIONS")
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !cfg!(feature = "peers") {
        m.remove("iceoryx2");
        m.remove("ringfire");
    }
    m
}

/// Renders rows as aligned columns: the first left-aligned, the rest right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(
        width
            .iter()
            .map(|&w| "-".repeat(w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn ns(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "-".into()
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

/// The latency table.
pub fn latency_table(rows: &[LatencyRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match &r.median {
            Some(p) => vec![
                r.transport.clone(),
                ns(p.p50),
                ns(p.p90),
                ns(p.p99),
                ns(p.p999),
                ns(p.p9999),
                ns(p.max),
                format!("{}-{}", ns(r.p50_range.0), ns(r.p50_range.1)),
                ratio(r.vs_floor_p50),
                ratio(r.vs_floor_p999),
                ratio(r.vs_block_floor_p50),
                ratio(r.vs_block_floor_p999),
                format!("{}/{}", r.runs.iter().flatten().count(), r.runs.len()),
            ],
            None => vec![r.transport.clone(), "failed".into()],
        })
        .map(|mut v| {
            v.resize(13, String::new());
            v
        })
        .collect();
    table(
        &[
            "transport",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "p99.99",
            "max",
            "p50 range",
            "/floor p50",
            "/floor p99.9",
            "/blk-floor p50",
            "/blk-floor p99.9",
            "runs",
        ],
        &body,
    )
}

/// The throughput table.
pub fn throughput_table(rows: &[ThroughputRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match r.rate {
            Some(rate) => vec![
                r.transport.clone(),
                format!("{:.2}", rate / 1e6),
                format!("{:.2}", r.gbps.unwrap_or(f64::NAN)),
                format!("{:.2}-{:.2}", r.rate_range.0 / 1e6, r.rate_range.1 / 1e6),
                ratio(r.vs_floor),
                r.lagged.to_string(),
                format!("{}/{}", r.runs.iter().flatten().count(), r.runs.len()),
            ],
            None => {
                let mut v = vec![r.transport.clone(), "failed".into()];
                v.resize(7, String::new());
                v
            }
        })
        .collect();
    table(
        &[
            "transport",
            "Mrec/s",
            "GB/s",
            "Mrec/s range",
            "/floor",
            "lost",
            "runs",
        ],
        &body,
    )
}

/// The fan-out table.
pub fn fanout_table(rows: &[FanoutRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match (&r.cost, &r.latency) {
            (Some(c), Some(l)) => vec![
                r.transport.clone(),
                r.receivers.to_string(),
                ns(c.p50),
                ns(c.mean),
                ns(c.p99),
                ratio(r.cost_vs_one),
                ratio(r.mean_cost_vs_one),
                ns(l.p50),
                ns(l.p99),
                ns(l.p999),
                r.lagged.to_string(),
                format!("{}/{}", r.runs.iter().flatten().count(), r.runs.len()),
            ],
            _ => {
                let mut v = vec![
                    r.transport.clone(),
                    r.receivers.to_string(),
                    "failed".into(),
                ];
                v.resize(12, String::new());
                v
            }
        })
        .collect();
    table(
        &[
            "transport",
            "rx",
            "send p50",
            "send mean",
            "send p99",
            "p50 /1rx",
            "mean /1rx",
            "rx lat p50",
            "rx lat p99",
            "rx lat p99.9",
            "lost",
            "runs",
        ],
        &body,
    )
}

/// Writes the JSON report.
pub fn write_json(path: &Path, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// Distinct line colours (Tableau 10 and darker companions).
const COLORS: [(u8, u8, u8); 16] = [
    (0, 0, 0),
    (127, 127, 127),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (0, 60, 120),
    (160, 70, 0),
    (20, 90, 20),
    (120, 0, 0),
    (80, 40, 120),
];

/// Percentile curves (one-way latency against percentile, both log scaled) of every
/// transport with a result.
pub fn plot(path: &Path, rows: &[LatencyRow], payload: usize, subtitle: &str) -> Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| !r.merged.is_empty())
        .map(|r| {
            let pts = (0..=100)
                .map(|k| {
                    let q = 1.0 - 10f64.powf(-(k as f64) / 20.0);
                    let q = q.min(0.99999);
                    let x = 1.0 / (1.0 - q);
                    let y = (r.merged.value_at_quantile(q) as f64 / 2.0).max(1.0);
                    (x, y)
                })
                .collect();
            (r.transport.as_str(), pts)
        })
        .collect();
    if curves.is_empty() {
        return Err(anyhow!("no latency results to plot"));
    }
    let (ymin, ymax) = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .fold((f64::INFINITY, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("one-way latency (RTT/2), {payload}-byte records; {subtitle}"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1f64..1e5f64).log_scale(),
            ((ymin * 0.8)..(ymax * 1.25)).log_scale(),
        )
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("one-way latency")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            if p < 1.0 {
                "0%".into()
            } else {
                let s = format!("{p:.3}");
                format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
            }
        })
        .y_label_formatter(&|y| {
            if *y < 1e3 {
                format!("{y:.0} ns")
            } else if *y < 1e6 {
                format!("{:.0} us", y / 1e3)
            } else {
                format!("{:.0} ms", y / 1e6)
            }
        })
        .draw()
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    for (i, (name, pts)) in curves.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow!("plot: {e:?}"))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    root.present().map_err(|e| anyhow!("plot: {e:?}"))?;
    Ok(())
}
