//! Thin wrappers over the Linux calls the benchmark needs: CPU affinity, the monotonic
//! clock, shared (non-private) futexes, parent-death signal, machine description.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::{bail, Result};

/// CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE and `set` is initialised.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pins the calling process to `cpu`.
pub fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: all-zero is a valid empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("cpu {cpu} out of range");
    }
    // SAFETY: `cpu` was checked against CPU_SETSIZE; `set` is a valid set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is this process.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "sched_setaffinity(cpu {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Asks the kernel to SIGKILL this process when its parent dies, so a crashed or killed
/// orchestrator never leaves spinning children behind.
pub fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable across processes on one host.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps on a futex word in shared memory while it holds `expected`, at most `timeout`.
/// The shared kind (no `FUTEX_PRIVATE_FLAG`): the word is mapped by several processes.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call, and
    // `ts` a valid relative timeout; FUTEX_WAIT only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
}

/// Wakes every process sleeping on `word`.
#[inline]
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not touch memory.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// A one-line description of the CPU, the kernel and the core count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs this process may use.
    pub cpus: usize,
    /// `flags` relevant to timing (constant_tsc, hypervisor).
    pub hypervisor: bool,
    /// `uname -srvm`.
    pub kernel: String,
    /// Host name.
    pub host: String,
    /// /proc/loadavg when the run started: other work on the machine skews figures.
    pub loadavg: String,
}

/// The 1-minute load average, if readable.
pub fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the machine description.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let hypervisor = field("flags").split_whitespace().any(|f| f == "hypervisor");
    // SAFETY: `utsname` is plain data; all-zero is valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    let rc = unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (kernel, host) = if rc == 0 {
        (
            format!(
                "{} {} {} {}",
                s(&u.sysname),
                s(&u.release),
                s(&u.version),
                s(&u.machine)
            ),
            s(&u.nodename),
        )
    } else {
        (String::from("unknown"), String::from("unknown"))
    };
    Machine {
        cpu_model: field("model name"),
        cpus: allowed_cpus().len(),
        hypervisor,
        kernel,
        host,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A cheap interval timer for round trips: the TSC (read with `rdtscp`, which waits for
/// earlier instructions) where the CPU has an invariant one, calibrated against
/// `CLOCK_MONOTONIC`; the monotonic clock itself elsewhere.
pub struct Timer {
    /// Nanoseconds per TSC tick, if the TSC is used.
    ns_per_tick: Option<f64>,
}

impl Timer {
    /// Calibrates over ~20 ms.
    pub fn new() -> Timer {
        Timer {
            ns_per_tick: calibrate(),
        }
    }

    /// Current reading, in ticks of this timer.
    #[inline]
    pub fn now(&self) -> u64 {
        match self.ns_per_tick {
            Some(_) => tsc(),
            None => now_ns(),
        }
    }

    /// Converts a difference of readings to nanoseconds.
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        match self.ns_per_tick {
            Some(k) => (ticks as f64 * k) as u64,
            None => ticks,
        }
    }

    /// The smallest interval two back-to-back readings report, in ns (the timer's own
    /// cost, included in every round trip).
    pub fn overhead_ns(&self) -> u64 {
        (0..10_000)
            .map(|_| {
                let a = self.now();
                let b = self.now();
                self.ns(b.wrapping_sub(a))
            })
            .min()
            .unwrap_or(0)
    }

    /// Which clock is used.
    pub fn source(&self) -> &'static str {
        if self.ns_per_tick.is_some() {
            "tsc"
        } else {
            "clock_gettime"
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tsc() -> u64 {
    let mut aux = 0u32;
    // SAFETY: only called when /proc/cpuinfo lists `rdtscp` (checked in `calibrate`).
    unsafe { core::arch::x86_64::__rdtscp(&mut aux) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn tsc() -> u64 {
    now_ns()
}

fn calibrate() -> Option<f64> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    if !(has("rdtscp") && has("constant_tsc") && has("nonstop_tsc")) {
        return None;
    }
    let (t0, c0) = (now_ns(), tsc());
    std::thread::sleep(Duration::from_millis(20));
    let (t1, c1) = (now_ns(), tsc());
    let ticks = c1.checked_sub(c0)?;
    (ticks > 0).then(|| (t1 - t0) as f64 / ticks as f64)
}
