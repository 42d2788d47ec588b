//! Firing: taking an armed entry's `Waker` to wake its task (the word moved, was woken,
//! or the deadline passed), and noting whether the task was armed from this thread's
//! CPU ("Yielding to the task" in the module doc of `waker_thread`).

use std::task::Waker;
use std::time::Instant;

use super::registry::{lock, Entry, Inner, Registry};

/// Fires the armed entries of `thread` whose deadline has passed.
pub(super) fn fire_expired(inner: &mut Inner, thread: u64, now: Instant, wake: &mut Vec<Waker>) {
    fire_into(inner, thread, |e| e.deadline <= now, wake);
}

/// Fires the armed entries of `thread` that `which` selects.
pub(super) fn fire_where(
    registry: &Registry,
    thread: u64,
    which: impl Fn(&Entry) -> bool,
    wake: &mut Vec<Waker>,
) {
    fire_into(&mut lock(registry), thread, which, wake);
}

/// Fires the armed entries of `thread` that `which` selects into `wake`: `true` if one
/// of them was armed from the CPU this thread runs on.
pub(super) fn fire_into(
    inner: &mut Inner,
    thread: u64,
    which: impl Fn(&Entry) -> bool,
    wake: &mut Vec<Waker>,
) -> bool {
    let here = current_cpu();
    let mut near = false;
    for e in inner
        .entries
        .iter_mut()
        .filter(|e| e.thread == thread && which(e))
    {
        if let Some(w) = e.fire() {
            near |= here >= 0 && e.cpu == here;
            wake.push(w);
        }
    }
    near
}

/// The CPU the calling thread runs on, or `-1`.
pub(super) fn current_cpu() -> i32 {
    // SAFETY: `sched_getcpu` takes nothing and writes no memory of ours (glibc reads it
    // from the thread's rseq area, or through the vDSO's `getcpu`).
    unsafe { libc::sched_getcpu() }
}

/// Gives the CPU to another runnable thread on it, if any.
pub(super) fn yield_cpu() {
    // SAFETY: `sched_yield` takes nothing and cannot fail on Linux.
    unsafe {
        libc::sched_yield();
    }
}
