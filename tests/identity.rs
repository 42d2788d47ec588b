//! Process identity: a process forked after its parent opened a handle is a process of
//! its own. The handles it opens must carry its own pid and start time, so that they
//! stay alive when the parent exits.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::{role, spawn, unique_name, var, Cleanup};
use shmchan::{Receiver, RecvTimeoutError, Route, Wait};

const ENTRY: &str = "child";
const SHORT: Duration = Duration::from_secs(20);
/// How many records the test sends to the forked process.
const COUNT: u64 = 100;

fn route(name: &str) -> shmchan::Builder<u64> {
    Route::<u64>::builder(name).capacity(256).wait(Wait::Block)
}

/// A process that is not our child (so `Child::kill` cannot reach it), SIGKILLed when
/// dropped. Held through a pidfd, so the signal can only ever reach that process, even
/// if it has exited and its pid been reused.
struct Orphan(OwnedFd);

impl Orphan {
    fn open(pid: u32) -> Orphan {
        // SAFETY: pidfd_open takes a pid and flags, no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(
            fd >= 0,
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the call above returned a new file descriptor that nothing else owns.
        Orphan(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        // SAFETY: sends a signal through a pidfd we own; the info pointer may be null.
        // Fails harmlessly (ESRCH) if the process has exited already.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            );
        }
    }
}

fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

#[test]
#[ignore = "entry point of the child processes the other tests start"]
fn child() {
    let Some(role) = role() else { return };
    let name = var("NAME");
    match role.as_str() {
        // Opens a receiver, forks, and exits once the forked process has opened its own.
        "forking-parent" => {
            let rx = route(&name).receiver().expect("open receiver");
            let (ready_r, ready_w) = nix::unistd::pipe().expect("pipe");
            flush_stdout();
            // SAFETY: besides this thread the process has only the test harness's main
            // thread, blocked waiting for this test's result and holding no lock the
            // forked process takes (stdout was flushed and released above; glibc resets
            // its allocator's locks in the child). The child never returns into the
            // harness: it ends with `_exit`.
            match unsafe { nix::unistd::fork() }.expect("fork") {
                nix::unistd::ForkResult::Child => {
                    drop(ready_r);
                    forked(&name, rx, File::from(ready_w))
                }
                nix::unistd::ForkResult::Parent { .. } => {
                    drop(ready_w);
                    let mut byte = [0u8; 1];
                    // EOF (the forked process died) instead of the byte fails here.
                    File::from(ready_r)
                        .read_exact(&mut byte)
                        .expect("forked process opens its receiver");
                    drop(rx);
                    println!("PARENT-EXITS");
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// The forked process: opens its own receiver, reports, receives [`COUNT`] records and
/// reports what it got. Never returns.
fn forked(name: &str, inherited: Receiver<u64>, mut ready: File) -> ! {
    // The inherited handle belongs to the parent: leave its entry alone.
    std::mem::forget(inherited);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut rx = route(name)
            .receiver()
            .expect("forked process opens receiver");
        println!("FORKED-READY {}", std::process::id());
        flush_stdout();
        ready.write_all(b"r").expect("signal the parent");
        drop(ready);
        let mut got = 0u64;
        let mut in_order = true;
        while got < COUNT {
            match rx.recv_timeout(SHORT) {
                Ok(v) => {
                    in_order &= v == got;
                    got += 1;
                }
                Err(RecvTimeoutError::Lagged(_)) => in_order = false,
                Err(e) => {
                    println!("FORKED-ERROR {e}");
                    break;
                }
            }
        }
        println!("FORKED-DONE {got} {in_order}");
    }));
    flush_stdout();
    // SAFETY: ends this forked process without running the harness or exit handlers
    // inherited from the parent.
    unsafe { libc::_exit(i32::from(outcome.is_err())) }
}

#[test]
fn receiver_opened_after_fork_outlives_the_parent() {
    let name = unique_name("fork");
    let _cleanup = Cleanup(name.clone());
    let mut parent = spawn(ENTRY, "forking-parent", &[("NAME", name.clone())]);
    let ready = parent.expect_line("FORKED-READY ", SHORT);
    let pid: u32 = ready["FORKED-READY ".len()..].parse().expect("pid");
    let _forked = Orphan::open(pid);
    parent.expect_line("PARENT-EXITS", SHORT);
    parent.expect_success(SHORT);

    // The parent has exited (and been reaped): only the forked process's receiver is left,
    // and it must count as alive.
    let mut tx = route(&name).sender().expect("open sender");
    assert_eq!(
        tx.receiver_count(),
        1,
        "the receiver of the forked process was judged dead with its parent"
    );
    for v in 0..COUNT {
        tx.send_timeout(v, SHORT).expect("send");
    }
    let done = parent.expect_line("FORKED-DONE ", SHORT);
    assert_eq!(done, format!("FORKED-DONE {COUNT} true"));
    // Its stdout (shared with the parent's) closes when it exits.
    parent.lines_until_eof(SHORT);
}
