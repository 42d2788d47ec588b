use super::*;

#[test]
fn parses_stat_with_parentheses_in_the_name() {
    let line = "1234 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20";
    let stat = parse_stat(line).expect("parses");
    assert_eq!(stat.state, b'S');
    assert_eq!(stat.start_ticks, 987654);
}

#[test]
fn self_is_alive_and_a_reused_pid_is_not() {
    let me = current_owner();
    assert!(is_alive(me));
    assert_eq!(owner_pid(me), std::process::id());
    // Same pid, a different start time: a different process.
    let other = pack(std::process::id(), (me >> 32) + 1);
    assert!(!is_alive(other));
    assert!(!is_alive(0));
    assert!(!is_alive(u64::from(u32::MAX)));
}

#[test]
fn zombie_is_dead() {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    // Wait until it has exited but do not reap it: it is a zombie.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_stat(pid).map(|s| s.state != b'Z').unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "child did not exit");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(!is_alive(pack(pid, 0)));
    child.wait().expect("reap");
}

/// Forks a child that starts a thread blocked on a pipe and then ends its main
/// thread alone (`headless`) or the whole process (`_exit`, every thread with it);
/// returns its pid, once its main thread shows as a zombie, and the pipe's write
/// end, whose closing ends the thread.
fn zombie_main_thread(headless: bool) -> (libc::pid_t, nix::unistd::Pid, std::fs::File) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child starts a thread and ends with a system call; it never
    // returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(w);
        let mut r = std::fs::File::from(r);
        let _ = std::thread::spawn(move || {
            let _ = std::io::Read::read(&mut r, &mut [0u8; 1]);
            // SAFETY: ends the whole process without the harness's exit path.
            unsafe { libc::_exit(0) }
        });
        // SAFETY: `SYS_exit` ends only the calling thread (as `pthread_exit` ends
        // it, without the unwinding that Rust aborts on); `_exit` ends them all.
        unsafe {
            if headless {
                libc::syscall(libc::SYS_exit, 0);
            }
            libc::_exit(0);
        }
    }
    drop(r);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read_stat(pid as u32)
        .map(|s| s.state != b'Z')
        .unwrap_or(true)
    {
        if std::time::Instant::now() >= deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            panic!("the main thread of the child did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    (pid, nix::unistd::Pid::from_raw(pid), std::fs::File::from(w))
}

#[test]
fn a_process_whose_main_thread_exited_is_alive_until_its_last_thread_exits() {
    let (pid, child, pipe) = zombie_main_thread(true);
    let owner = owner_of(pid as u32);
    let alive = is_alive(owner);
    let threads = read_threads(pid as u32);
    // Close the pipe: the thread ends the process, which is a zombie until reaped.
    drop(pipe);
    wait_exited(pid);
    let dead = !is_alive(owner);
    let reaped = nix::sys::wait::waitpid(child, None);
    assert!(
        alive,
        "judged dead while a thread runs ({threads:?} threads)"
    );
    assert!(dead, "judged alive after its last thread exited");
    assert!(matches!(
        reaped,
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
    ));
}

/// Waits until our child `pid` has exited, every thread of it, without reaping it.
fn wait_exited(pid: libc::pid_t) {
    // SAFETY: `info` is a valid, writable siginfo; `pid` is our child, and with
    // `WNOWAIT` it stays a zombie for the caller to look at and reap.
    let r = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid: {}", io::Error::last_os_error());
}

#[test]
fn a_multithreaded_zombie_is_dead() {
    let (pid, child, _pipe) = zombie_main_thread(false);
    // Its main thread is a zombie; its other thread may still be exiting (counted
    // alive meanwhile). Once the whole process has exited it is dead.
    wait_exited(pid);
    let dead = !is_alive(owner_of(pid as u32));
    let threads = read_threads(pid as u32);
    let _ = nix::sys::wait::waitpid(child, None);
    assert!(dead, "a zombie judged alive ({threads:?} threads)");
}

/// Runs `check` in a forked child and returns whether it held there. The child
/// reports through its exit status; `check` must not assert (the panic machinery
/// takes locks another test thread may have held at the fork).
fn in_forked_child(check: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child only runs `check` (system calls, `/proc` reads and
    // allocation, which glibc makes safe after fork) and ends with `_exit`, never
    // returning into the test harness.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
            // SAFETY: ends the forked child without running the harness's exit path.
            unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => matches!(
            nix::sys::wait::waitpid(child, None),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
        ),
    }
}

#[test]
fn a_forked_child_has_its_own_owner_word() {
    let parent = current_owner();
    assert!(in_forked_child(|| {
        let child = current_owner();
        let start = read_stat(std::process::id()).map(|s| s.start_ticks & 0xffff_ffff);
        owner_pid(child) == std::process::id()
            && child != parent
            && start.is_ok_and(|s| s == child >> 32)
    }));
    // The parent's word is unchanged.
    assert_eq!(current_owner(), parent);
}

#[test]
fn is_current_process_compares_the_pid() {
    let me = current_owner();
    assert!(is_current_process(me));
    // Only the pid counts (a cheap check): our pid with any start time is us.
    assert!(is_current_process(pack(std::process::id(), 12345)));
    let parent = std::os::unix::process::parent_id();
    assert!(!is_current_process(pack(parent, me >> 32)));
    assert!(!is_current_process(0));
    // A child forked after we computed our word sees our word as another process's.
    assert!(in_forked_child(
        || !is_current_process(me) && is_current_process(current_owner())
    ));
}

#[test]
fn an_opener_is_here_only_in_its_own_process() {
    let opener = Opener::current();
    assert!(opener.is_here() && opener.is_here_for_sure());
    assert_eq!(opener.word(), current_owner());
    // In a child forked since, neither; a handle opened there is.
    assert!(in_forked_child(|| {
        let child = Opener::current();
        !opener.is_here()
            && !opener.is_here_for_sure()
            && child.is_here()
            && child.word() != opener.word()
    }));
    assert!(opener.is_here());
}

fn stat(state: u8, start_ticks: u64) -> impl FnOnce() -> io::Result<Stat> {
    move || Ok(Stat { state, start_ticks })
}

fn read_error(kind: io::ErrorKind) -> impl FnOnce() -> io::Result<Stat> {
    move || Err(io::Error::from(kind))
}

fn unused<T>() -> impl FnOnce() -> T {
    || panic!("this step must not run")
}

fn threads(n: u64) -> impl FnOnce() -> Option<u64> {
    move || Some(n)
}

#[test]
fn judge_uses_the_stat_when_it_can_read_it() {
    let owner = pack(4321, 777);
    assert!(!judge(owner, Probe::Gone, unused(), unused(), unused()));
    assert!(judge(
        owner,
        Probe::Exists,
        stat(b'S', 777),
        unused(),
        unused()
    ));
    // Only the low 32 bits of the start time are recorded.
    assert!(judge(
        owner,
        Probe::Exists,
        stat(b'R', 777 | 1 << 32),
        unused(),
        unused()
    ));
    assert!(!judge(
        owner,
        Probe::Exists,
        stat(b'S', 778),
        unused(),
        unused()
    ));
    assert!(!judge(
        owner,
        Probe::Exists,
        stat(b'X', 777),
        unused(),
        unused()
    ));
    // Recorded without a start time: the pid is all there is to go by.
    assert!(judge(
        pack(4321, 0),
        Probe::Exists,
        stat(b'S', 5),
        unused(),
        unused()
    ));
}

#[test]
fn judge_counts_the_threads_of_a_zombie() {
    let owner = pack(4321, 777);
    // Exited, every thread gone: only the zombie main thread is counted.
    assert!(!judge(
        owner,
        Probe::Exists,
        stat(b'Z', 777),
        unused(),
        threads(1)
    ));
    // The main thread has exited, another runs: alive.
    assert!(judge(
        owner,
        Probe::Exists,
        stat(b'Z', 777),
        unused(),
        threads(2)
    ));
    assert!(judge(
        owner,
        Probe::Exists,
        stat(b'Z', 777),
        unused(),
        threads(40)
    ));
    // Reaped since the stat was read: the count cannot be read.
    assert!(!judge(
        owner,
        Probe::Exists,
        stat(b'Z', 777),
        unused(),
        || None
    ));
    // A reused pid whose main thread has exited is still not the recorded process,
    // and the count is not read.
    assert!(!judge(
        owner,
        Probe::Exists,
        stat(b'Z', 778),
        unused(),
        unused()
    ));
    // Recorded without a start time.
    assert!(judge(
        pack(4321, 0),
        Probe::Exists,
        stat(b'Z', 5),
        unused(),
        threads(3)
    ));
}

#[test]
fn parses_the_thread_count() {
    let status = "Name:\tx\nState:\tZ (zombie)\nTgid:\t7\nThreads:\t3\nSigQ:\t0/1\n";
    assert_eq!(parse_threads(status), Some(3));
    assert_eq!(parse_threads("Name:\tx\n"), None);
    assert_eq!(parse_threads("Threads:\tmany\n"), None);
    assert_eq!(read_threads(std::process::id()).map(|n| n >= 1), Some(true));
}

#[test]
fn a_live_process_is_judged_without_its_thread_count() {
    // (A whole process that exited: `zombie_is_dead` above.) Our own process, in
    // state R or S, is judged from its stat alone.
    let me = current_owner();
    assert!(judge(
        me,
        probe(std::process::id() as i32),
        || read_stat(std::process::id()),
        unused(),
        unused()
    ));
}

#[test]
fn judge_asks_the_pid_again_when_the_stat_cannot_be_read() {
    let owner = pack(4321, 777);
    // hidepid=2: the live process of another user has no /proc entry for us.
    assert!(judge(
        owner,
        Probe::Exists,
        read_error(io::ErrorKind::NotFound),
        || Probe::Exists,
        unused()
    ));
    // Reaped between the first probe and the read.
    assert!(!judge(
        owner,
        Probe::Exists,
        read_error(io::ErrorKind::NotFound),
        || Probe::Gone,
        unused()
    ));
    // hidepid=1: the entry is there but unreadable.
    assert!(judge(
        owner,
        Probe::Exists,
        read_error(io::ErrorKind::PermissionDenied),
        || Probe::Exists,
        unused()
    ));
    assert!(!judge(
        owner,
        Probe::Exists,
        read_error(io::ErrorKind::PermissionDenied),
        || Probe::Gone,
        unused()
    ));
    assert!(judge(
        owner,
        Probe::Exists,
        read_error(io::ErrorKind::InvalidData),
        || Probe::Exists,
        unused()
    ));
}

#[test]
fn probe_tells_a_live_pid_from_a_reaped_one() {
    assert_eq!(probe(std::process::id() as i32), Probe::Exists);
    // pid 1 exists; unless we are root, signalling it is refused (EPERM): it exists.
    assert_eq!(probe(1), Probe::Exists);
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap");
    // Reaped, and (barring a reuse of the pid within these few instructions) gone.
    assert!(probe(pid as i32) == Probe::Gone || read_stat(pid).is_ok());
}
