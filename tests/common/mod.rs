//! Helpers for the multi-process tests: re-executing the test binary as a child in a
//! given role, killing children on failure, and records whose every byte is checkable.
#![allow(dead_code)]
// A counter of the tests' own, not ring code: std atomics are fine here (clippy.toml bans
// them in the crate's code for the loom shim's sake).
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// The tests that steer the library through test-only environment variables (a pause
// during initialisation, a process without membarrier) need them compiled in: the
// `test-hooks` feature, which the self dev-dependency in Cargo.toml enables.
const _: () = assert!(
    cfg!(feature = "test-hooks"),
    "build the tests with the `test-hooks` feature (the dev-dependency on shmchan enables it)"
);

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE_VAR: &str = "SHMCHAN_TEST_ROLE";

/// A segment name unique to this process and call.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A 64-byte record whose bytes are all derived from its sequence number, so a torn or
/// corrupted record is detected byte by byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Rec {
    pub seq: u64,
    pub pattern: [u64; 7],
}

impl Rec {
    pub fn new(seq: u64) -> Rec {
        let mut pattern = [0u64; 7];
        for (i, w) in pattern.iter_mut().enumerate() {
            *w = seq
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(i as u32 * 9)
                ^ i as u64;
        }
        Rec { seq, pattern }
    }

    /// Whether every byte matches the pattern of `self.seq`.
    pub fn is_intact(&self) -> bool {
        *self == Rec::new(self.seq)
    }
}

/// A child process that is killed (and reaped) when dropped, so a failing test never
/// leaves processes behind.
pub struct Peer {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub role: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `#[ignore]`d test `entry` of this test binary in a child process, with
/// `role` and `vars` in its environment.
pub fn spawn(entry: &str, role: &str, vars: &[(&str, String)]) -> Peer {
    spawn_entry(entry, true, role, vars)
}

/// Runs the test `entry` of this test binary (`ignored`: an `#[ignore]`d one) in a
/// child process, with `role` and `vars` in its environment; its stdout is read line
/// by line.
pub fn spawn_entry(entry: &str, ignored: bool, role: &str, vars: &[(&str, String)]) -> Peer {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    if ignored {
        cmd.arg("--ignored");
    }
    cmd.args(["--exact", entry, "--nocapture", "--test-threads", "1"])
        .env(ROLE_VAR, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Peer {
        child,
        lines: rx,
        role: role.to_owned(),
    }
}

impl Peer {
    /// Waits for a line the child printed containing `prefix` and returns it from
    /// `prefix` on (the test harness may print `test child ... ` before it); panics
    /// after `timeout`.
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(prefix) => {
                    return line[line.find(prefix).unwrap_or(0)..].to_owned()
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {timeout:?}",
                    self.role
                ),
            }
        }
    }

    /// Waits for the child to exit successfully; panics after `timeout` or on failure.
    pub fn expect_success(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{} exited with {status}", self.role);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {timeout:?}",
                self.role
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line the child prints from now until its stdout closes (it exited or was
    /// killed); panics if that takes longer than `timeout`.
    pub fn lines_until_eof(&mut self, timeout: Duration) -> Vec<String> {
        self.try_lines_until_eof(timeout)
            .unwrap_or_else(|_| panic!("{}: stdout still open after {timeout:?}", self.role))
    }

    /// Every line the child prints from now until its stdout closes: `Ok` if it closed
    /// within `timeout`, else `Err` with what it printed so far (it is still running).
    pub fn try_lines_until_eof(&mut self, timeout: Duration) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(lines),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(lines),
            }
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The role this process was started in, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A required environment variable of a child.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// A small deterministic generator (xorshift); the seed is printed so a failure can be
/// replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Removes a test segment when dropped.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmchan::Route::<Rec>::remove(&self.0);
    }
}
