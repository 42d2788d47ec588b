//! The system calls of the waker threads: `futex_waitv` (Linux 5.16+) on many words at
//! once, plain `FUTEX_WAIT` on one (the fallback, and the zero-timeout probe that tells
//! which word of a batch moved), and the private wake of a thread's control word.
//!
//! The segment words are shared futexes (no private flag: they live in memory mapped by
//! several processes); a thread's control word is private to this process. No function
//! here dereferences a segment word: its address goes to the kernel, which reads it
//! (and answers `EFAULT` if it is no longer mapped).

use std::time::{Duration, Instant};

use crate::sync::AtomicU32;

/// `futex_waitv`'s number: the same on every architecture with the generic table
/// (x86-64 and aarch64 among them).
const SYS_FUTEX_WAITV: libc::c_long = 449;
/// `FUTEX2_SIZE_U32`: a 32-bit futex word.
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX2_PRIVATE`: a word of this process only.
const FUTEX2_PRIVATE: u32 = 128;
/// The most words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
pub(super) const WAITV_MAX: usize = 128;

/// One word of a `futex_waitv` call (`struct futex_waitv` of `<linux/futex.h>`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct WaitV {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

impl WaitV {
    /// A shared (segment) word, expected to hold `expected`.
    pub(super) fn shared(word: usize, expected: u32) -> WaitV {
        WaitV {
            val: u64::from(expected),
            uaddr: word as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        }
    }

    /// A private (this process's) word.
    pub(super) fn private(word: &AtomicU32, expected: u32) -> WaitV {
        WaitV {
            val: u64::from(expected),
            uaddr: word.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            reserved: 0,
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woke {
    /// Woken: `futex_waitv` says which word (its index), `FUTEX_WAIT` says 0.
    Index(usize),
    /// A word did not hold its expected value (`EAGAIN`): which one is not said.
    Moved,
    /// The timeout passed.
    TimedOut,
    /// A signal, or a spurious return: look again.
    Interrupted,
    /// `EFAULT` (a word no longer mapped), or any other error.
    Failed(i32),
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ended(ret: libc::c_long) -> Woke {
    if ret >= 0 {
        return Woke::Index(ret as usize);
    }
    match errno() {
        libc::EAGAIN => Woke::Moved,
        libc::ETIMEDOUT => Woke::TimedOut,
        libc::EINTR => Woke::Interrupted,
        e => Woke::Failed(e),
    }
}

/// The absolute `CLOCK_MONOTONIC` time of `deadline` (`futex_waitv` takes an absolute
/// timeout; `Instant` is `CLOCK_MONOTONIC` on Linux, but does not expose it).
fn monotonic_at(deadline: Instant) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let left = deadline.saturating_duration_since(Instant::now());
    let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX))
            .saturating_add((nanos / 1_000_000_000) as libc::time_t),
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

/// Sleeps until one of `words` is woken or does not hold its value, or `deadline`
/// (`None`: no timeout).
pub(super) fn waitv(words: &[WaitV], deadline: Option<Instant>) -> Woke {
    debug_assert!(!words.is_empty() && words.len() <= WAITV_MAX);
    let ts = deadline.map(monotonic_at);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `words` is a live array of `words.len()` `struct futex_waitv`s (repr(C),
    // the kernel's layout), which the kernel only reads; `ts_ptr` is null or points at
    // a live timespec. The kernel reads the futex words at the addresses given, which
    // needs nothing of us: an unmapped one is `EFAULT`.
    let ret = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            words.as_ptr(),
            words.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    ended(ret)
}

/// Whether this process may use `futex_waitv`: `ENOSYS` (a kernel before 5.16) or
/// `EPERM` (a seccomp profile that denies it) say no. Asks the kernel with a word that
/// does not hold the value given, which returns at once.
pub(super) fn waitv_supported() -> bool {
    let word = AtomicU32::new(0);
    matches!(waitv(&[WaitV::private(&word, 1)], None), Woke::Moved)
}

/// `FUTEX_WAIT` on the shared word at `word` while it holds `expected`, at most
/// `timeout` (`None`: no timeout). A zero timeout is a probe: `Moved` if the word
/// does not hold `expected`, `TimedOut` if it does.
pub(super) fn wait_one(word: usize, expected: u32, timeout: Option<Duration>) -> Woke {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the kernel reads the futex word at `word` (an unmapped address is
    // `EFAULT`, nothing more) and the timespec `ts_ptr` points at, if any. FUTEX_WAIT
    // without FUTEX_PRIVATE_FLAG: the word is in shared memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const u32,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    ended(ret)
}

/// Wakes the thread sleeping on the private control `word`.
pub(super) fn wake_private(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned `u32`; FUTEX_WAKE does not access memory
    // through the other arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
