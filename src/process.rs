//! Process identity and liveness: who holds a claim in the segment, and is it still alive?
//!
//! A claim (the sender slot, a receiver-table entry) stores an *owner word*: the pid in
//! the low 32 bits and the low 32 bits of the process start time (clock ticks since boot,
//! field 22 of `/proc/PID/stat`) in the high 32 bits. Comparing the start time means a
//! pid the kernel has reused for a new process is not mistaken for the old owner. The
//! word is never zero (pids are positive), so zero means "free".
//!
//! The word belongs to one process: a child forked after its parent computed the word
//! computes its own, so the claims it takes live and die with it, not with the parent.
//!
//! # Liveness
//!
//! A process is alive while `kill(pid, 0)` finds its pid, its start time is the recorded
//! one, and it has a thread left: `/proc/PID/stat` shows its *main* thread's state, which
//! is `Z` once that thread has exited, even while other threads of the process run
//! (`pthread_exit` in `main`); only then is the thread count of `/proc/PID/status`
//! read. A pid hidden by `hidepid` is alive while `kill` finds it ([`judge`]).
//!
//! # Fork
//!
//! A handle copied into a child by `fork` carries the owner word of the parent, which
//! still uses it: through it the child would act as the parent (write as the `Route`'s
//! one writer beside it, move the parent's receiver cursor, take back the parent's
//! sleeper registration). So every handle remembers who opened it ([`Opener`]): the
//! owner word, and this process's *fork generation*, a counter that a `pthread_atfork`
//! child handler bumps in every child. An entry point compares the two generations (one
//! `Relaxed` load and a branch, no system call: `getpid` is one) and refuses with a
//! `Forked` error in a child; a drop there releases nothing. The handler is installed
//! before the first handle records its generation, so every `fork` after that is
//! counted. A child made without the fork handlers (`_Fork`, a raw `clone`) is not
//! counted: its drops still release nothing (they also compare the pid), but its calls
//! are not refused.

use std::io;

/// The owner word of the calling process.
///
/// Cached per process: the cache is keyed by the pid the word holds, so a process forked
/// after the word was cached (its pid differs) computes its own instead of inheriting its
/// parent's. No lock and no `Once`, which a `fork` could leave held in the child.
#[cfg(not(loom))]
pub(crate) fn current_owner() -> u64 {
    use crate::sync::{AtomicU64, Ordering};

    /// The word last computed in this address space; zero before the first call.
    static CACHE: AtomicU64 = AtomicU64::new(0);

    let pid = std::process::id();
    // `Relaxed`: synchronises with nothing. The word is the only datum shared through
    // the cache, and threads of one process racing to fill it store the same value.
    let cached = CACHE.load(Ordering::Relaxed);
    if cached != 0 && owner_pid(cached) == pid {
        return cached;
    }
    let word = owner_of(pid);
    CACHE.store(word, Ordering::Relaxed);
    word
}

/// The owner word of the calling process. Not cached under loom, whose atomics cannot
/// live in a `static` (the models never call this: they supply their own owner words).
#[cfg(loom)]
pub(crate) fn current_owner() -> u64 {
    owner_of(std::process::id())
}

/// Bumped in the child of every `fork` (a `pthread_atfork` handler): see "Fork" in the
/// module doc.
#[cfg(not(loom))]
static FORKS: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);
/// Whether the fork handler is installed (0 no, 1 yes).
#[cfg(not(loom))]
static AT_FORK: crate::sync::AtomicU32 = crate::sync::AtomicU32::new(0);

#[cfg(not(loom))]
extern "C" fn after_fork_in_child() {
    // `Relaxed`: the child has one thread while the handler runs; the threads it starts
    // later see the bump through their creation.
    FORKS.fetch_add(1, crate::sync::Ordering::Relaxed);
}

/// This process's fork generation: how many `fork`s lie between it and the process
/// that first called this (0 there). Installs the fork handler on the first call, so a
/// generation read from it changes in every child forked afterwards.
#[cfg(not(loom))]
pub(crate) fn fork_generation() -> u64 {
    use crate::sync::Ordering;
    // `Relaxed`: a flag that only guards the installation (racing threads may both
    // see 0; the swap lets one of them install).
    if AT_FORK.load(Ordering::Relaxed) == 0 && AT_FORK.swap(1, Ordering::Relaxed) == 0 {
        // SAFETY: registers a handler with no arguments that only bumps a static
        // atomic, which is async-signal-safe as a fork child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    }
    // `Relaxed`: see `after_fork_in_child`.
    FORKS.load(Ordering::Relaxed)
}

/// Who opened a handle: the owner word its claims carry, and the fork generation of
/// the process then. See "Fork" in the module doc.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opener {
    word: u64,
    forks: u64,
}

#[cfg(not(loom))]
impl Opener {
    /// The calling process, opening a handle now.
    pub(crate) fn current() -> Opener {
        let forks = fork_generation();
        Opener {
            word: current_owner(),
            forks,
        }
    }

    /// The owner word of the opener.
    pub(crate) fn word(self) -> u64 {
        self.word
    }

    /// Whether the calling process is the opener, not a child it forked since: one
    /// `Relaxed` load and a compare, for every entry point.
    #[inline(always)]
    pub(crate) fn is_here(self) -> bool {
        // `Relaxed`: see `after_fork_in_child`.
        FORKS.load(crate::sync::Ordering::Relaxed) == self.forks
    }

    /// [`Opener::is_here`], and the pid too (one system call): for drops, which must
    /// not release the opener's claims even in a child made without the fork handlers.
    pub(crate) fn is_here_for_sure(self) -> bool {
        self.is_here() && is_current_process(self.word)
    }
}

/// Computes the owner word of the process `pid` (the caller's own).
fn owner_of(pid: u32) -> u64 {
    // If /proc is unavailable we fall back to the pid alone (start time 0): liveness
    // then degrades to `kill(pid, 0)`, which still detects dead processes.
    let start = read_stat(pid).map(|s| s.start_ticks).unwrap_or(0);
    pack(pid, start)
}

/// Whether `owner` is the calling process's owner word, judged by the pid alone (cheap:
/// no `/proc` read). A handle copied into a forked child carries the parent's word, so
/// the child gets `false` and must leave the handle's claim to the parent, which opened
/// it. While the caller runs no other process can have its pid, so a match is exact.
pub(crate) fn is_current_process(owner: u64) -> bool {
    owner_pid(owner) == std::process::id()
}

/// Packs a pid and a start time into an owner word.
pub(crate) fn pack(pid: u32, start_ticks: u64) -> u64 {
    (start_ticks & 0xffff_ffff) << 32 | u64::from(pid)
}

/// The pid of an owner word.
pub(crate) fn owner_pid(owner: u64) -> u32 {
    owner as u32
}

/// What `/proc/PID/stat` tells about a process.
struct Stat {
    /// The one-letter state (`R`, `S`, `Z`, ...).
    state: u8,
    /// Start time in clock ticks after boot.
    start_ticks: u64,
}

fn read_stat(pid: u32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat"))
}

/// Parses the fields after the command name, which may itself contain spaces and
/// parentheses: everything after the *last* `)` is space separated.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // `state` is field 3; `starttime` is field 22, i.e. 19 fields further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

/// How many threads the process `pid` has, from the `Threads:` line of
/// `/proc/PID/status`; `None` if it cannot be read.
///
/// A thread group leader that has exited stays in the count (as a zombie) until the
/// last of its threads exits, so a count above one means a thread is still running, or
/// exiting (a process being killed is counted alive until its threads are gone).
fn read_threads(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_threads(&text)
}

/// The number of the `Threads:` line of a `/proc/PID/status`.
fn parse_threads(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Threads:"))?;
    line["Threads:".len()..].trim().parse().ok()
}

/// Is the process that wrote `owner` still alive?
///
/// Dead means: no such pid, a zombie (killed but not yet reaped, which must not hold a
/// claim) with no thread left, or a pid whose start time differs from the recorded one
/// (reused). An unparseable owner word (zero pid, or a pid beyond `i32`) counts as dead,
/// so a corrupt word cannot pin a claim for ever. See [`judge`] for a `/proc` we cannot
/// read, and for a process whose main thread has exited while others run.
pub(crate) fn is_alive(owner: u64) -> bool {
    let pid = owner_pid(owner);
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    judge(
        owner,
        probe(raw),
        || read_stat(pid),
        || probe(raw),
        || read_threads(pid),
    )
}

/// What `kill(pid, 0)` says about a pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// A process has the pid: the signal could be sent, or `EPERM` (it belongs to
    /// another user, which does not make it any less alive).
    Exists,
    /// No process has it (`ESRCH`; any other failure is taken the same way).
    Gone,
}

/// Probes `pid` with the null signal.
fn probe(pid: i32) -> Probe {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => Probe::Exists,
        Err(_) => Probe::Gone,
    }
}

/// The liveness verdict on `owner`, from a first signal probe of its pid, then its
/// `/proc/PID/stat`, then (only if that read failed) a second signal probe, or (only if
/// the stat shows a zombie) its thread count. The later steps are passed in as calls,
/// so that they run only when needed (a live process costs one probe and one read) and
/// the decision can be tested without the processes and `/proc` mounts it is about.
///
/// The state in `/proc/PID/stat` is its main thread's (the thread group leader's). A
/// main thread that has exited (`pthread_exit` in `main`, a common C idiom, some
/// runtimes and embedders) shows as a zombie while the process's other threads run and
/// use its handles; the process is dead only when no thread is left: a zombie with a
/// thread count above one (`threads`, from `/proc/PID/status`) is alive. A count that
/// cannot be read (the process was reaped since the stat) leaves the verdict dead.
///
/// A failed read does not tell whether the process is gone: `/proc/PID` is missing both
/// when the process has been reaped since the first probe and when `/proc` hides other
/// users' processes (mounted with `hidepid=2`; `hidepid=1` makes the read fail with
/// `EACCES` instead). The second probe tells them apart: a pid that is gone is dead; one
/// that still exists is alive, and only the pid can be trusted (its start time and state
/// are out of our sight).
fn judge(
    owner: u64,
    first: Probe,
    stat: impl FnOnce() -> io::Result<Stat>,
    second: impl FnOnce() -> Probe,
    threads: impl FnOnce() -> Option<u64>,
) -> bool {
    if first == Probe::Gone {
        return false;
    }
    match stat() {
        Ok(stat) => {
            let recorded = owner >> 32;
            // A recorded start of 0 means the owner could not read /proc; trust the pid.
            let same = recorded == 0 || recorded == stat.start_ticks & 0xffff_ffff;
            same && match stat.state {
                // Exited (or being reaped): dead.
                b'X' | b'x' => false,
                // The main thread has exited: alive while another thread runs.
                b'Z' => threads().is_some_and(|n| n > 1),
                _ => true,
            }
        }
        Err(_) => second() == Probe::Exists,
    }
}

/// The liveness oracle the ring algorithms consult before evicting a claim. Production
/// uses [`ProcLiveness`]; the loom models supply their own.
pub trait Liveness {
    /// Whether the process that stored `owner` is alive.
    fn is_alive(&self, owner: u64) -> bool;
}

/// Liveness from `kill(pid, 0)` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcLiveness;

impl Liveness for ProcLiveness {
    fn is_alive(&self, owner: u64) -> bool {
        is_alive(owner)
    }
}

#[cfg(test)]
mod tests;
