//! The orchestrator's half of one measurement: prepare shared resources, start each
//! side as a child process (this binary, re-executed), watch them with a deadline, kill
//! them all if one fails or time runs out, collect their result files, clean up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::role::{Role, RoleResult, RoleSpec};
use crate::transport::{self, Bench, Transport};

/// One measurement to run.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Transport under test.
    pub transport: Transport,
    /// Kind.
    pub bench: Bench,
    /// Payload bytes.
    pub payload: usize,
    /// Records before measuring.
    pub warmup: u64,
    /// Records measured.
    pub count: u64,
    /// Stream receivers (fan-out).
    pub receivers: usize,
    /// Ring capacity.
    pub capacity: usize,
    /// Fan-out pacing.
    pub gap_ns: u64,
    /// Deadline for the whole measurement.
    pub timeout: Duration,
}

/// Results of the sides: index 0 is the pinger or producer, then the echo or receivers.
#[derive(Debug)]
pub struct Outcome {
    /// Per-side results.
    pub sides: Vec<RoleResult>,
}

/// Kills every child still running when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                // Best effort: the child may exit between the check and the kill.
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Removes the run directory and named resources when dropped.
struct Cleanup {
    dir: PathBuf,
    transport: Transport,
    name: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Best effort: nothing useful to do if removal fails.
        let _ = std::fs::remove_dir_all(&self.dir);
        transport::cleanup(self.transport, &self.name);
    }
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// CPUs for the sides: the first side on `cpus[0]`, the others spread over the rest.
fn placement(cpus: &[usize], sides: usize) -> Vec<Option<usize>> {
    if cpus.len() < 2 {
        return vec![None; sides];
    }
    (0..sides)
        .map(|i| {
            if i == 0 {
                Some(cpus[0])
            } else {
                Some(cpus[1 + (i - 1) % (cpus.len() - 1)])
            }
        })
        .collect()
}

/// Runs one measurement.
pub fn measure(m: &Measurement, cpus: &[usize]) -> Result<Outcome> {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let name = format!("shmbench-{pid}-{serial}");
    let dir = PathBuf::from(format!("/dev/shm/shm-bench.{pid}.{serial}"));
    let _cleanup = Cleanup {
        dir: dir.clone(),
        transport: m.transport,
        name: name.clone(),
    };
    transport::prepare(
        m.transport,
        &dir,
        m.bench,
        m.payload,
        m.receivers,
        m.capacity,
    )
    .context("prepare shared resources")?;

    let roles: Vec<(Role, usize)> = match m.bench {
        Bench::Latency => vec![(Role::Ping, 0), (Role::Echo, 0)],
        Bench::Throughput => vec![(Role::Producer, 0), (Role::Consumer, 0)],
        Bench::Fanout => std::iter::once((Role::Producer, 0))
            .chain((0..m.receivers).map(|i| (Role::Consumer, i)))
            .collect(),
    };
    let cpu_of = placement(cpus, roles.len());
    let exe = std::env::current_exe().context("locate own executable")?;
    let specs: Vec<RoleSpec> = roles
        .iter()
        .zip(&cpu_of)
        .map(|(&(role, index), &cpu)| RoleSpec {
            role,
            transport: m.transport,
            bench: m.bench,
            payload: m.payload,
            warmup: m.warmup,
            count: m.count,
            cpu,
            dir: dir.clone(),
            name: name.clone(),
            parties: roles.len() as u32,
            receivers: if m.bench == Bench::Fanout {
                m.receivers
            } else {
                1
            },
            index,
            capacity: m.capacity,
            gap_ns: m.gap_ns,
            timeout_ms: m.timeout.as_millis() as u64,
        })
        .collect();

    let mut children = Children(Vec::new());
    for spec in &specs {
        let child = Command::new(&exe)
            .arg("__role")
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn benchmark process")?;
        children.0.push(child);
    }

    let deadline = Instant::now() + m.timeout;
    let mut done = vec![false; specs.len()];
    loop {
        let mut failed = None;
        for (i, c) in children.0.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            if let Some(status) = c.try_wait()? {
                done[i] = true;
                if !status.success() {
                    failed = Some((i, status));
                }
            }
        }
        if let Some((i, status)) = failed {
            bail!(
                "{} {:?} side failed ({status}); the other sides were killed",
                m.transport.name(),
                specs[i].role
            );
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} {:?} timed out after {:?}; its processes were killed",
                m.transport.name(),
                m.bench,
                m.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    let sides = specs
        .iter()
        .map(|s| {
            let path = s.result_path();
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            serde_json::from_slice(&bytes).context("parse side result")
        })
        .collect::<Result<Vec<RoleResult>>>()?;
    Ok(Outcome { sides })
}
