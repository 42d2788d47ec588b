//! Helpers for the tool's tests: re-executing the test binary as a child in a given role
//! (killed when dropped, so a failing test never leaves processes behind) and records
//! whose every byte is checkable. The part of the core's `tests/common/` these tests use.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
}

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
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
/// `role` and `vars` in its environment; its stdout is read line by line.
pub fn spawn(entry: &str, role: &str, vars: &[(&str, String)]) -> Peer {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        entry,
        "--nocapture",
        "--test-threads",
        "1",
    ])
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
