//! The async waiters measured from inside one process, through the test-only counters
//! (`shmchan::test_hooks`, feature `test-hooks`): dropped futures leave no registration,
//! a producer makes no wake call while nobody is parked, 200 waiting receivers start a
//! second waker thread, and an idle async receiver uses (almost) no CPU.
//!
//! The counters are per process, so everything runs in one test, one step after the
//! other (a test binary runs its tests on parallel threads of one process); then again
//! in a child with the waker threads forced onto the `FUTEX_WAIT` fallback.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{unique_name, Cleanup, Rec};
use shmchan::stats::Observer;
use shmchan::test_hooks::{async_entries, wake_calls};
use shmchan::{Mode, Overflow, RecvError, Route, Wait};

const NO_WAITV: &str = "SHMCHAN_TEST_NO_FUTEX_WAITV";

fn builder(name: &str) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder(name)
        .capacity(64)
        .overflow(Overflow::Block)
        .wait(Wait::Block)
}

fn data_waiters(name: &str) -> u32 {
    Observer::open(name)
        .expect("observer")
        .stats()
        .expect("stats")
        .data_waiters
}

fn space_waiters(name: &str) -> u32 {
    Observer::open(name)
        .expect("observer")
        .stats()
        .expect("stats")
        .space_waiters
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// The threads of this process named `shmchan-waker`.
fn waker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "shmchan-waker")
        })
        .count()
}

/// CPU time (user + system) of this whole process, from `getrusage`.
fn process_cpu() -> Duration {
    // SAFETY: `usage` is a valid, writable rusage; zeroed is a valid initial value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Dropped futures, pending and registered or not, leave no registration: the
/// segment's waiter counts and this process's registry entries are back to zero.
fn dropped_futures_leave_no_registration() {
    let name = unique_name("hooks-drop");
    let _cleanup = Cleanup(name.clone());
    let mut tx = builder(&name).sender().expect("sender");
    let mut rx = builder(&name).receiver().expect("receiver");
    for _ in 0..1000 {
        let mut f = pin!(rx.recv_async());
        assert!(poll_once(f.as_mut()).is_pending());
        assert_eq!(data_waiters(&name), 1, "a pending receive is registered");
        // A second poll while armed re-registers nothing.
        assert!(poll_once(f.as_mut()).is_pending());
        assert_eq!(data_waiters(&name), 1);
    }
    assert_eq!(
        data_waiters(&name),
        0,
        "dropped receives left registrations"
    );
    assert_eq!(async_entries(), 0, "dropped receives left registry entries");
    // Fill the ring, then drop pending sends.
    while tx.try_send(Rec::new(0)).is_ok() {}
    for _ in 0..1000 {
        let mut f = pin!(tx.send_async(Rec::new(1)));
        assert!(poll_once(f.as_mut()).is_pending());
        assert_eq!(space_waiters(&name), 1, "a pending send is registered");
    }
    assert_eq!(space_waiters(&name), 0, "dropped sends left registrations");
    assert_eq!(async_entries(), 0, "dropped sends left registry entries");
    // A future that completes leaves nothing either.
    let got = pollster::block_on(rx.recv_async()).expect("a record");
    assert_eq!(got, Rec::new(0));
    assert_eq!(data_waiters(&name) + space_waiters(&name), 0);
    assert_eq!(async_entries(), 0);
}

/// A future given a spin budget spends it, then sleeps, and is woken by the record
/// that comes later; one dropped before its first poll, or after spinning and
/// registering, leaves nothing behind.
fn a_spin_budget_that_runs_out_then_sleeps() {
    let name = unique_name("hooks-spin");
    let _cleanup = Cleanup(name.clone());
    let mut tx = builder(&name).sender().expect("sender");
    let mut rx = builder(&name).receiver().expect("receiver");
    drop(rx.recv_async().spin(Duration::from_micros(10)));
    assert_eq!(async_entries(), 0, "an unpolled future left an entry");
    {
        let mut f = pin!(rx.recv_async().spin(Duration::from_micros(200)));
        assert!(poll_once(f.as_mut()).is_pending(), "nothing was sent");
        assert_eq!(data_waiters(&name), 1, "spent its budget, then registered");
    }
    assert_eq!(
        data_waiters(&name),
        0,
        "a dropped spinner left its registration"
    );
    assert_eq!(async_entries(), 0, "a dropped spinner left its entry");
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(Rec::new(5)).expect("send");
        tx
    });
    let got = pollster::block_on(rx.recv_async().spin(Duration::from_micros(50)));
    assert_eq!(got.expect("the record sent after the spin"), Rec::new(5));
    drop(sender.join().expect("sender thread"));
    assert_eq!(data_waiters(&name), 0);
    assert_eq!(async_entries(), 0);
}

/// While the async receiver finds records ready, the producer makes no wake call; once
/// it is parked, the producer wakes it.
fn no_wake_call_when_nobody_is_parked() {
    let name = unique_name("hooks-wake");
    let _cleanup = Cleanup(name.clone());
    let mut tx = builder(&name).sender().expect("sender");
    let mut rx = builder(&name).receiver().expect("receiver");
    let before = wake_calls();
    for round in 0..1000u64 {
        for i in 0..32 {
            tx.send(Rec::new(round * 32 + i)).expect("send");
        }
        for i in 0..32 {
            let got = pollster::block_on(rx.recv_async()).expect("ready");
            assert_eq!(got.seq, round * 32 + i);
        }
    }
    assert_eq!(wake_calls() - before, 0, "a wake call with nobody parked");
    // Parked: the next send wakes.
    let mut f = pin!(rx.recv_async());
    assert!(poll_once(f.as_mut()).is_pending());
    tx.send(Rec::new(7)).expect("send");
    assert!(wake_calls() > before, "a parked receiver was not woken");
    assert!(matches!(poll_once(f.as_mut()), Poll::Ready(Ok(r)) if r.seq == 7));
}

/// 200 async receivers on 200 segments, all waiting in one process: more words than
/// one `futex_waitv` call takes, so a second waker thread starts; every receiver is
/// then woken by its own sender.
fn two_hundred_receivers_start_a_second_waker_thread() {
    const N: usize = 200;
    let names: Vec<String> = (0..N).map(|_| unique_name("hooks-200")).collect();
    let _cleanup: Vec<Cleanup> = names.iter().cloned().map(Cleanup).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut senders = Vec::new();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let b = Route::<Rec>::builder(name).capacity(4).mode(Mode::Unicast);
            let mut rx = b.clone().receiver().expect("receiver");
            senders.push(b.sender().expect("sender"));
            rt.spawn(async move { rx.recv_async().await.expect("a record").seq })
        })
        .collect();
    rt.block_on(async {
        // Every receiver parked.
        while async_entries() < N {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // A thread names itself when it starts running: give the new ones a moment.
    let want = if shmchan::uses_futex_waitv() { 2 } else { N };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while waker_threads() < want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let threads = waker_threads();
    if shmchan::uses_futex_waitv() {
        assert!(
            threads >= 2,
            "{N} waiters on {threads} futex_waitv thread(s)"
        );
    } else {
        assert!(threads >= N, "{N} words on {threads} fallback thread(s)");
    }
    for (i, tx) in senders.iter_mut().enumerate() {
        tx.send(Rec::new(i as u64)).expect("send");
    }
    let got: Vec<u64> = rt.block_on(async {
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.expect("task"));
        }
        got
    });
    assert_eq!(got, (0..N as u64).collect::<Vec<_>>());
    assert_eq!(async_entries(), 0);
}

/// An idle async receiver on tokio uses at most 1% of a CPU over 2 s (CPU time of the
/// whole process, from `getrusage`, not wall time).
fn idle_receiver_uses_no_cpu() {
    let name = unique_name("hooks-idle");
    let _cleanup = Cleanup(name.clone());
    let _tx = builder(&name).sender().expect("sender");
    let mut rx = builder(&name).receiver().expect("receiver");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let window = Duration::from_secs(2);
    let (used, timed_out) = rt.block_on(async {
        let before = process_cpu();
        let r = tokio::time::timeout(window, rx.recv_async()).await;
        (process_cpu() - before, r.is_err())
    });
    assert!(timed_out, "nothing was sent");
    eprintln!("idle async receiver: {used:?} of CPU in {window:?}");
    assert!(
        used <= window / 100,
        "an idle async receiver used {used:?} of CPU in {window:?}"
    );
}

/// A child forked after this process started its waker threads has none of them: its
/// first async wait creates a registry and threads of its own, and is woken.
fn a_forked_child_gets_its_own_waker_thread() {
    // This process has a waker thread by now (the earlier steps).
    assert!(waker_threads() >= 1);
    let name = unique_name("hooks-fork");
    let _cleanup = Cleanup(name.clone());
    // SAFETY: the child only opens a segment, starts a thread, runs a future to
    // completion and leaves with `_exit`; the library re-creates its waker registry in
    // the child (its fork handler), which is what this checks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            let mut rx = builder(&name).receiver().expect("receiver");
            let mut tx = builder(&name).sender().expect("sender");
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(Rec::new(5)).expect("send");
            });
            let got = pollster::block_on(rx.recv_async()).expect("a record");
            sender.join().expect("sender");
            got.seq == 5 && waker_threads() >= 1
        })
        .unwrap_or(false);
        // SAFETY: leaves the child at once, without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let status = reap(pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child's async receive failed (status {status})"
    );
}

/// Waits for our forked child `pid` and returns its wait status; kills it and fails
/// if it takes more than 30 s.
fn reap(pid: libc::pid_t) -> libc::c_int {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A future that registered in this process, dropped in a child forked meanwhile: the
/// registration is this process's, and the child's drop leaves it alone (the segment's
/// waiter count and the entry's tag); a poll of it in the child is refused.
fn a_future_dropped_in_a_forked_child_leaves_the_registration() {
    let name = unique_name("hooks-fork-drop");
    let _cleanup = Cleanup(name.clone());
    let mut tx = builder(&name).sender().expect("sender");
    let mut rx = builder(&name).receiver().expect("receiver");
    let mut f = Box::pin(rx.recv_async());
    assert!(poll_once(f.as_mut()).is_pending());
    assert_eq!(data_waiters(&name), 1, "a pending receive is registered");
    // SAFETY: the child polls and drops the future (no lock of the library's is held
    // across a fork: the registry is re-created in the child) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let refused = matches!(poll_once(f.as_mut()), Poll::Ready(Err(RecvError::Forked)));
            drop(f);
            refused
        }))
        .unwrap_or(false);
        // SAFETY: leaves the child at once, without running the parent's exit handlers.
        unsafe { libc::_exit(if refused { 0 } else { 1 }) };
    }
    let status = reap(pid);
    assert_eq!(
        data_waiters(&name),
        1,
        "the child's drop took this process's registration"
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's poll of this process's future was not refused (status {status})"
    );
    // The registration is intact: the future is woken by the next record.
    tx.send(Rec::new(9)).expect("send");
    let got = pollster::block_on(f).expect("a record");
    assert_eq!(got, Rec::new(9));
    assert_eq!(data_waiters(&name), 0);
}

#[test]
fn counters_of_one_process() {
    if let Some(forced) = std::env::var_os(NO_WAITV) {
        assert!(!forced.is_empty());
        assert!(!shmchan::uses_futex_waitv(), "the fallback was not forced");
    }
    // First, while this process has no waker thread besides the idle receiver's own
    // (the fallback's threads for the 200 segments take a second to exit).
    idle_receiver_uses_no_cpu();
    dropped_futures_leave_no_registration();
    a_spin_budget_that_runs_out_then_sleeps();
    no_wake_call_when_nobody_is_parked();
    two_hundred_receivers_start_a_second_waker_thread();
    a_forked_child_gets_its_own_waker_thread();
    a_future_dropped_in_a_forked_child_leaves_the_registration();
}

/// The same steps with the waker threads forced onto the `FUTEX_WAIT` fallback.
#[test]
fn fallback_counters() {
    if std::env::var_os(NO_WAITV).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "counters_of_one_process", "--nocapture"])
        .env(NO_WAITV, "1")
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "the fallback run failed: {status}");
            return;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the fallback run did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
