//! Process identity: a process forked after its parent opened a handle is a process of
//! its own. The handles it opens must carry its own pid and start time, so that they
//! stay alive when the parent exits; the handles it inherited stay the parent's, and
//! every use of them in the child is refused. A process whose main thread has exited
//! while other threads run is alive.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::{role, spawn, unique_name, var, Cleanup};
use shmchan::{
    OpenError, Overflow, Receiver, RecvError, RecvTimeoutError, Route, SendError, SendTimeoutError,
    TryRecvError, TrySendError, Wait,
};

const ENTRY: &str = "child";
const SHORT: Duration = Duration::from_secs(20);
/// How many records the test sends to the forked process.
const COUNT: u64 = 100;

fn route(name: &str) -> shmchan::Builder<u64> {
    Route::<u64>::builder(name).capacity(256).wait(Wait::Block)
}

/// [`lossless`] with records as bytes.
fn raw_lossless(name: &str) -> shmchan::Builder<shmchan::raw::Raw> {
    shmchan::raw::route(name, shmchan::raw::RecordLayout::of::<u64>())
        .capacity(16)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

/// A lossless route, small enough that a stream of [`COUNT`] records fills it.
fn lossless(name: &str) -> shmchan::Builder<u64> {
    Route::<u64>::builder(name)
        .capacity(16)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
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
        // Forks a process whose main thread exits while a thread of it keeps its
        // handles, and waits for that process to end.
        "headless" => {
            let other = var("OTHER");
            flush_stdout();
            // SAFETY: as for "forking-parent" above; the forked process never returns
            // into the harness (`headless` ends it with `_exit`).
            match unsafe { nix::unistd::fork() }.expect("fork") {
                nix::unistd::ForkResult::Child => headless(&name, &other),
                nix::unistd::ForkResult::Parent { child } => {
                    // Reported once the whole process has ended, not when its main
                    // thread did.
                    let status = nix::sys::wait::waitpid(child, None);
                    println!("HEADLESS-EXIT {status:?}");
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// The headless process: opens the sender of the lossless route `to_test` and a
/// receiver of the lossless route `from_test`, starts a thread that echoes [`COUNT`]
/// records from one to the other with them, and ends its main thread. Never returns.
fn headless(to_test: &str, from_test: &str) -> ! {
    let outcome = std::panic::catch_unwind(|| {
        let mut tx = lossless(to_test).sender().expect("headless sender");
        let mut rx = lossless(from_test).receiver().expect("headless receiver");
        println!("HEADLESS-READY {}", std::process::id());
        flush_stdout();
        std::thread::spawn(move || {
            let mut got = 0u64;
            let mut in_order = true;
            while got < COUNT {
                let echoed = rx
                    .recv_timeout(SHORT)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        tx.send_timeout(v, SHORT)
                            .map(|()| v)
                            .map_err(|e| e.to_string())
                    });
                match echoed {
                    Ok(v) => {
                        in_order &= v == got;
                        got += 1;
                    }
                    Err(e) => {
                        println!("HEADLESS-ERROR {e}");
                        break;
                    }
                }
            }
            println!("HEADLESS-DONE {got} {in_order}");
            flush_stdout();
            // SAFETY: ends the whole process without the harness's exit path.
            unsafe { libc::_exit(0) }
        });
    });
    if outcome.is_err() {
        flush_stdout();
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    // The main thread ends and the process lives on in the echo thread. This is how
    // `pthread_exit` ends a thread, once it has unwound its stack and freed its
    // thread-specific data: the `exit` system call of the calling thread alone (not
    // `exit_group`). `pthread_exit` itself cannot be called here: its forced unwind
    // would meet the test harness's `catch_unwind`, and Rust aborts the process there.
    // SAFETY: ends only the calling thread; it holds no lock (stdout was flushed and
    // released above) and nothing refers to its stack any more.
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("the exit system call returned")
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

/// The state letter of `/proc/PID/stat` (its thread group leader's), if readable.
fn state_of(pid: u32) -> Option<u8> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].trim_start().bytes().next()
}

#[test]
fn a_process_whose_main_thread_exited_is_alive() {
    let to_test = unique_name("headless-tx");
    let from_test = unique_name("headless-rx");
    let _cleanup = (Cleanup(to_test.clone()), Cleanup(from_test.clone()));
    let mut rx = lossless(&to_test).receiver().expect("open receiver");
    let mut peer = spawn(
        ENTRY,
        "headless",
        &[("NAME", to_test.clone()), ("OTHER", from_test.clone())],
    );
    let ready = peer.expect_line("HEADLESS-READY ", SHORT);
    let pid: u32 = ready["HEADLESS-READY ".len()..].parse().expect("pid");
    let _headless = Orphan::open(pid);
    // Its main thread has exited: the process shows as a zombie in /proc/PID/stat,
    // while its echo thread runs.
    let deadline = std::time::Instant::now() + SHORT;
    while state_of(pid) != Some(b'Z') {
        assert!(
            std::time::Instant::now() < deadline,
            "the main thread of {pid} did not exit"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    // Its Route sender is alive: a second one is refused.
    match lossless(&to_test).sender() {
        Err(OpenError::SenderExists { pid: holder, .. }) => assert_eq!(holder, pid),
        Ok(_) => {
            panic!("a second sender took over the Route of a live process whose main thread exited")
        }
        Err(e) => panic!("unexpected error opening a second sender: {e}"),
    }
    // Its lossless receiver is alive: not evicted, and it gets every record.
    let mut tx = lossless(&from_test).sender().expect("open sender");
    assert_eq!(
        tx.receiver_count(),
        1,
        "the receiver of a live process whose main thread exited was evicted"
    );
    let sender = std::thread::spawn(move || {
        // A lossless sender that waits on a full ring checks the liveness of the
        // receivers that hold it back: it must keep waiting for this one.
        for v in 0..COUNT {
            tx.send_timeout(v, SHORT)
                .expect("send to the headless process");
        }
        tx
    });
    for v in 0..COUNT {
        assert_eq!(rx.recv_timeout(SHORT), Ok(v), "echo of record {v}");
    }
    drop(sender.join().expect("sender thread"));
    // Not `receiver_count()` again here: once it has echoed the last record the
    // process exits, and its entry may already be gone. Its own report says it was
    // never evicted: an evicted receiver ends with `HEADLESS-ERROR`.
    assert_eq!(
        peer.expect_line("HEADLESS-", SHORT),
        format!("HEADLESS-DONE {COUNT} true")
    );
    assert!(peer.expect_line("HEADLESS-EXIT", SHORT).contains("Exited"));
    peer.expect_success(SHORT);
}

/// Runs `check` in a child forked from this test process and returns its exit code.
/// The child only uses the handles `check` captured, and reports through the code:
/// it must not print or assert (another test thread may hold a lock at the fork).
fn in_forked_child(check: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `check` (handle calls, allocation, which glibc makes safe
    // after fork) and leaves with `_exit`, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or(100);
        // SAFETY: ends the child without the harness's exit path.
        unsafe { libc::_exit(code) }
    }
    let deadline = std::time::Instant::now() + SHORT;
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int; `pid` is our child.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            break;
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(libc::WIFEXITED(status), "the forked child died: {status}");
    libc::WEXITSTATUS(status)
}

/// Runs `step(0)`, `step(1)`, ... up to `step(n - 1)`, stopping at the first that
/// returns `false`: its number counted from 1, or 0 if every step held.
fn first_failed(n: usize, mut step: impl FnMut(usize) -> bool) -> i32 {
    (0..n).find(|&i| !step(i)).map_or(0, |i| i as i32 + 1)
}

const SENDS: [&str; 10] = [
    "try_send",
    "try_send_many",
    "send_timeout",
    "send_many_timeout",
    "send",
    "send_many",
    "loan",
    "raw try_send_bytes",
    "raw send_bytes",
    "raw publish_gap",
];

#[test]
fn a_sender_used_in_a_forked_child_is_refused() {
    let name = unique_name("fork-tx");
    let _cleanup = Cleanup(name.clone());
    let raw_name = unique_name("fork-raw-tx");
    let _raw_cleanup = Cleanup(raw_name.clone());
    let mut tx = lossless(&name).sender().expect("open sender");
    let mut rx = lossless(&name).receiver().expect("open receiver");
    let mut raw = raw_lossless(&raw_name).sender().expect("open raw sender");
    tx.send(1).expect("send");
    let short = Duration::from_millis(1);
    let code = in_forked_child(|| {
        // Each entry point in turn; the first one that acts ends the child. The
        // non-blocking ones come first, so the check cannot wait on a full ring.
        let bytes = 7u64.to_ne_bytes();
        first_failed(SENDS.len(), |step| match step {
            0 => matches!(tx.try_send(7), Err(TrySendError::Forked(7))),
            1 => matches!(tx.try_send_many(&[7]), Err(SendError::Forked(0))),
            2 => matches!(tx.send_timeout(7, short), Err(SendTimeoutError::Forked(7))),
            3 => matches!(
                tx.send_many_timeout(&[7], short),
                Err(SendTimeoutError::Forked(0))
            ),
            4 => matches!(tx.send(7), Err(SendError::Forked(7))),
            5 => matches!(tx.send_many(&[7]), Err(SendError::Forked(0))),
            6 => matches!(tx.loan(), Err(SendError::Forked(()))),
            7 => raw
                .try_send_bytes(&bytes)
                .is_err_and(|e| e.channel() == Some(&TrySendError::Forked(()))),
            8 => raw
                .send_bytes(&bytes)
                .is_err_and(|e| e.channel() == Some(&SendError::Forked(()))),
            _ => raw.publish_gap(3) == Err(SendError::Forked(())),
        })
    });
    assert!(
        code == 0,
        "the child's {} acted with its parent's sender (exit code {code})",
        SENDS.get((code as usize).wrapping_sub(1)).unwrap_or(&"?")
    );
    // Nothing of the child's reached the ring: the parent is its only writer, and it
    // still holds the role.
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "a record of the child's"
    );
    tx.send(2).expect("the parent still sends");
    assert_eq!(rx.try_recv(), Ok(2));
    match lossless(&name).sender() {
        Err(OpenError::SenderExists { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("a second sender was not refused: {other:?}"),
    }
}

const RECVS: [&str; 12] = [
    "try_recv",
    "try_recv_many",
    "try_recv_ref",
    "raw try_recv_into",
    "try_iter",
    "recv_timeout",
    "recv_many_timeout",
    "recv_ref_timeout",
    "recv",
    "recv_many",
    "recv_ref",
    "iter",
];

#[test]
fn a_receiver_used_in_a_forked_child_is_refused() {
    let name = unique_name("fork-rx");
    let _cleanup = Cleanup(name.clone());
    let raw_name = unique_name("fork-raw-rx");
    let _raw_cleanup = Cleanup(raw_name.clone());
    let mut tx = lossless(&name).sender().expect("open sender");
    let mut rx = lossless(&name).receiver().expect("open receiver");
    let mut raw = raw_lossless(&raw_name)
        .receiver()
        .expect("open raw receiver");
    let mut raw_tx = lossless(&raw_name).sender().expect("open sender");
    tx.send_many(&[1, 2, 3]).expect("send");
    raw_tx.send(4).expect("send");
    let short = Duration::from_millis(1);
    let code = in_forked_child(|| {
        // Records are there: a receive that acted would take one from the parent.
        // The non-blocking ones come first, so the check cannot wait on an empty ring.
        let mut buf = [0u64; 4];
        let mut one = [0u8; 8];
        first_failed(RECVS.len(), |step| match step {
            0 => rx.try_recv() == Err(TryRecvError::Forked),
            1 => rx.try_recv_many(&mut buf) == Err(TryRecvError::Forked),
            2 => rx.try_recv_ref().err() == Some(TryRecvError::Forked),
            3 => raw
                .try_recv_into(&mut one)
                .is_err_and(|e| e.channel() == Some(&TryRecvError::Forked)),
            4 => rx.try_iter().next().is_none(),
            5 => rx.recv_timeout(short) == Err(RecvTimeoutError::Forked),
            6 => rx.recv_many_timeout(&mut buf, short) == Err(RecvTimeoutError::Forked),
            7 => rx.recv_ref_timeout(short).err() == Some(RecvTimeoutError::Forked),
            8 => rx.recv() == Err(RecvError::Forked),
            9 => rx.recv_many(&mut buf) == Err(RecvError::Forked),
            10 => rx.recv_ref().err() == Some(RecvError::Forked),
            _ => rx.iter().next().is_none(),
        })
    });
    assert!(
        code == 0,
        "the child's {} acted with its parent's receiver (exit code {code})",
        RECVS.get((code as usize).wrapping_sub(1)).unwrap_or(&"?")
    );
    // The child took nothing: the parent gets every record.
    let mut buf = [0u64; 4];
    assert_eq!(
        rx.try_recv_many(&mut buf),
        Ok(3),
        "records taken by the child"
    );
    assert_eq!(buf[..3], [1, 2, 3]);
    let mut one = [0u8; 8];
    raw.try_recv_into(&mut one)
        .expect("the record the child was refused");
    assert_eq!(u64::from_ne_bytes(one), 4);
}
