//! Asymmetric fences: a free one for the hot path, an expensive one for the rare side.
//!
//! Several protocols in this crate are Dekker-style: one side stores X then loads Y,
//! the other stores Y then loads X, and at least one of them must see the other's
//! store. The producer's `F_p` against a parking receiver's `F_w` is one (wait.rs);
//! the producer's `F_p` against a joining receiver's `F_r` another (broadcast.rs). Both
//! sides need a full `fence(SeqCst)` for that, which on x86 is an `mfence` that drains
//! the store buffer: paid once per record on the hot path, it was the largest single
//! cost of a send.
//!
//! The sides are not equally frequent: a record is sent millions of times a second; a
//! receiver parks or joins rarely. (A receiver that parks once per record would make
//! the heavy fence frequent too: its futex pair then switches to `fence(SeqCst)` on both
//! sides, "fenced mode" in `wait.rs`.) So the frequent side executes [`light`], which
//! costs nothing at run time (a compiler fence), and the rare side executes [`heavy`],
//! the `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` system call. The kernel runs a
//! full memory barrier on every CPU that is running a thread of a process registered
//! for it (an inter-processor interrupt), and a thread that is not running has passed
//! a context switch, which is a full barrier too. Hence, for a `light` fence `L` and a
//! `heavy` fence `H`: either everything before `L` is visible after `H`, or everything
//! before `H` is visible after `L`. That is exactly what two `SeqCst` fences give a
//! Dekker pair, and why the loom models (`--cfg loom`) check the protocols with both
//! functions as `fence(SeqCst)`. It is the scheme of Linux's `sys_membarrier`, of
//! folly's `asymmetricLightBarrier`, and of the C++ proposal P1202
//! (`asymmetric_thread_fence_light`/`_heavy`).
//!
//! # Who may use the light fence
//!
//! Only a process registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` is
//! interrupted by a peer's `heavy`, so [`light`] is a compiler fence only once this
//! process has registered ([`init`], called when a segment is opened); before that, or
//! if registration fails, it is a real `fence(SeqCst)`, which pairs with anything.
//!
//! A process whose kernel lacks the command (`MEMBARRIER_CMD_QUERY` succeeds and does
//! not list it) knows that no peer can register either, so its `heavy` is a
//! `fence(SeqCst)` and everything stays symmetric. A process for which the call fails
//! (a seccomp filter, which often answers `ENOSYS`; or a kernel older than 4.3) cannot
//! tell whether peers are light, nor order itself against them: [`heavy`] then
//! returns `false`, and the waiter caps each sleep at [`DEGRADED_TICK`], so a wake-up it
//! missed costs at most that long, never a hang.
//!
//! After `fork` the child is a new process whose registration is not relied on: a
//! `pthread_atfork` handler resets the state, and the child registers again when it next
//! opens a segment (until then its light fences are full ones).

use std::time::Duration;

/// How long a waiter that cannot issue the heavy fence sleeps at most before it looks
/// again (see the module doc).
pub(crate) const DEGRADED_TICK: Duration = Duration::from_millis(1);

/// The light half: a compiler fence once this process is registered, else
/// `fence(SeqCst)`. Pairs with a [`heavy`] fence in another thread or process.
#[inline]
pub(crate) fn light() {
    imp::light();
}

/// The heavy half: pairs with [`light`] in every thread of every process. Returns
/// `false` if this process cannot issue it while peers may be using light fences (the
/// caller must then not sleep for long).
#[inline]
pub(crate) fn heavy() -> bool {
    imp::heavy()
}

/// Registers this process so that it may use light fences. Idempotent and cheap after
/// the first call.
pub(crate) fn init() {
    imp::init();
}

/// Whether [`light`] is a compiler fence only in this process (unit tests: the
/// hardware stress test of `wait.rs` needs it so).
#[cfg(all(test, not(loom)))]
pub(crate) fn light_is_free() -> bool {
    imp::light_is_free()
}

#[cfg(loom)]
mod imp {
    use crate::sync::{fence, Ordering};

    // The model: both halves are `SeqCst` fences (see the module doc).
    pub(super) fn light() {
        fence(Ordering::SeqCst);
    }

    pub(super) fn heavy() -> bool {
        fence(Ordering::SeqCst);
        true
    }

    pub(super) fn init() {}
}

#[cfg(not(loom))]
mod imp {
    use crate::sync::{compiler_fence, fence, AtomicU32, Ordering};

    // From <linux/membarrier.h>.
    const CMD_QUERY: libc::c_int = 0;
    const CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
    const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

    /// Not yet decided: light fences are full ones; `heavy` decides.
    const UNKNOWN: u32 = 0;
    /// Registered: light fences are compiler fences, heavy ones the system call.
    const ASYMMETRIC: u32 = 1;
    /// The kernel lacks the command, so nobody is asymmetric: both are `SeqCst` fences.
    const SYMMETRIC: u32 = 2;
    /// The kernel has it but this process cannot use it: full fences here, and peers
    /// may be light, so `heavy` reports that it does not cover them.
    const DEGRADED: u32 = 3;

    /// This process's state. `Relaxed` everywhere: it only selects which fence to run,
    /// and a thread that sees `ASYMMETRIC` sees it because `decide` stored it after the
    /// registration system call returned (registration is per process, not per thread).
    static STATE: AtomicU32 = AtomicU32::new(UNKNOWN);
    /// Whether the fork handler is installed (0 no, 1 yes).
    static AT_FORK: AtomicU32 = AtomicU32::new(0);

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integers and no pointers; it cannot touch our
        // memory. An unknown command fails with EINVAL, which callers handle.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    extern "C" fn after_fork_in_child() {
        // The child is a new process: do not rely on the parent's registration (Linux
        // keeps it until `exec`, but that is not documented as a guarantee); the child
        // decides again when it next opens a segment, with full fences until then.
        STATE.store(UNKNOWN, Ordering::Relaxed);
    }

    /// No `Once` and no lock: a `fork` while another thread held one would leave the
    /// child stuck on it. Threads racing through `decide` are harmless: registering is
    /// idempotent and they all store the same outcome, and until one of them has
    /// stored it every light fence is a full one.
    pub(super) fn init() {
        if STATE.load(Ordering::Relaxed) != UNKNOWN {
            return;
        }
        if AT_FORK.swap(1, Ordering::Relaxed) == 0 {
            // SAFETY: registers a handler with no arguments that only stores to a
            // static atomic, which is async-signal-safe as a fork child handler must be.
            unsafe {
                libc::pthread_atfork(None, None, Some(after_fork_in_child));
            }
        }
        decide();
    }

    /// Whether the test-only variable `SHMCHAN_TEST_BARRIER_DEGRADED` is set: the
    /// process then behaves as if membarrier were forbidden to it. Read with libc's
    /// `getenv`, which takes no lock (std's environment lock could be held by another
    /// thread of a parent that forked us). Compiled in only with the test-only
    /// `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    fn test_degraded() -> bool {
        // SAFETY: `getenv` reads the environment through a valid NUL-terminated name;
        // the crate never modifies the environment.
        unsafe { !libc::getenv(c"SHMCHAN_TEST_BARRIER_DEGRADED".as_ptr()).is_null() }
    }

    /// Without the `test-hooks` feature no variable is read: never degraded on purpose.
    #[cfg(not(feature = "test-hooks"))]
    fn test_degraded() -> bool {
        false
    }

    fn decide() {
        let supported = if test_degraded() {
            -1
        } else {
            membarrier(CMD_QUERY)
        };
        let needed = libc::c_long::from(CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED);
        let state = if supported < 0 {
            // Not `SYMMETRIC` even for ENOSYS: seccomp filters commonly answer ENOSYS,
            // and peers on the same kernel may be registered. (A kernel older than 4.3,
            // without the call at all, thus costs waiters their 1 ms sleep cap.)
            DEGRADED
        } else if supported & needed != needed {
            // The kernel lacks the command: no process anywhere can be light.
            SYMMETRIC
        } else if membarrier(CMD_REGISTER_GLOBAL_EXPEDITED) == 0 {
            ASYMMETRIC
        } else {
            DEGRADED
        };
        STATE.store(state, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(super) fn light_is_free() -> bool {
        STATE.load(Ordering::Relaxed) == ASYMMETRIC
    }

    #[inline]
    pub(super) fn light() {
        if STATE.load(Ordering::Relaxed) == ASYMMETRIC {
            // Orders nothing in hardware: a peer's `heavy` does (module doc). It keeps
            // the compiler from moving our accesses across this point.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    #[cold]
    pub(super) fn heavy() -> bool {
        init();
        match STATE.load(Ordering::Relaxed) {
            ASYMMETRIC => {
                if membarrier(CMD_GLOBAL_EXPEDITED) == 0 {
                    // The system call is a full barrier for us too.
                    return true;
                }
                // Registered but the call failed (it should not): be safe.
                fence(Ordering::SeqCst);
                false
            }
            SYMMETRIC => {
                fence(Ordering::SeqCst);
                true
            }
            _ => {
                fence(Ordering::SeqCst);
                false
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_heavy_covers_light_where_membarrier_works() {
        init();
        init();
        light();
        // Whether this process can use the command, asked of the kernel directly.
        let cmd = |c: libc::c_int| {
            // SAFETY: as in `imp::membarrier`.
            unsafe { libc::syscall(libc::SYS_membarrier, c, 0 as libc::c_uint, 0 as libc::c_int) }
        };
        let query = cmd(0);
        // The variable counts only where the `test-hooks` feature compiled its read in.
        let forced = cfg!(feature = "test-hooks")
            && std::env::var_os("SHMCHAN_TEST_BARRIER_DEGRADED").is_some();
        let usable = !forced && query >= 0 && query & 0b110 == 0b110 && cmd(1 << 2) == 0;
        let kernel_lacks_it = query >= 0 && query & 0b110 != 0b110;
        assert_eq!(heavy(), usable || kernel_lacks_it);
        light();
    }
}
