//! The process's `shmchan-waker` threads: they sleep on the futex words of the async
//! waiters of this process and turn "the word moved" into `Waker::wake`.
//!
//! # Registry
//!
//! One registry per process, created on first use: a list of *entries*, one per
//! waiting future (its word, the value it expects there, a deadline and its `Waker`),
//! each served by one thread. An entry is *armed* while it holds a `Waker`; the thread
//! that serves it *fires* it (takes the `Waker` and wakes it) when the word moves, is
//! woken, or the deadline passes, and the future re-arms it on its next `Pending`. The
//! future removes its entry when it finishes or is dropped ([`cancel`]).
//!
//! # Threads
//!
//! * **`futex_waitv`** (Linux 5.16+): a thread waits on the words of up to 127 entries
//!   and on a private *control word* in one call (the kernel takes at most 128 words);
//!   the 128th entry starts another thread. Arming an entry bumps its thread's control
//!   word and wakes it, so the thread rebuilds its list; not while the thread is between
//!   two calls, handling a wake, since it rebuilds its list before it waits again. When
//!   the call says which word was woken, the entries on that word fire; when it says
//!   only that some word moved (`EAGAIN`), a zero-timeout `FUTEX_WAIT` on each word
//!   tells which. After a wake the thread goes on watching the word at the next value
//!   for an idle tick (a *ghost*, [`Ghost`]), so that the next future on it, which
//!   usually expects that value, is armed without a control wake. A ghost is left out
//!   of a call while an armed entry watches its word: at another value it would make
//!   the call fail at once.
//! * **Fallback** where the kernel refuses `futex_waitv` (`ENOSYS`, or `EPERM` from a
//!   seccomp profile): one thread per futex word, in plain `FUTEX_WAIT`, which exits
//!   after a second without entries. It needs no control word: an entry armed on its
//!   word expects the value the word holds now, so it is either what the thread waits
//!   on or a value the word moved away from with a wake (which ends that wait). A new
//!   entry with a nearer deadline may wait for the thread's current timeout, at most
//!   one idle tick.
//!
//! # Yielding to the task
//!
//! A task is usually woken onto the CPU its thread last ran on, and when that is the
//! waker thread's own CPU (a runtime thread pinned to a core, with the process's other
//! threads beside it) the task runs only once the waker thread leaves the CPU: after it
//! has rebuilt its list and gone back into `futex_waitv`, several microseconds later.
//! An entry therefore records the CPU its future was armed from (`sched_getcpu`, read
//! from the thread's rseq area), and a `futex_waitv` thread that has just woken a task
//! armed from its own CPU yields (`sched_yield`) before it rebuilds its list, so the
//! task runs first and the rebuild happens while it works or after it sleeps. A wake
//! that arrives before the thread is back in `futex_waitv` is not lost: the word no
//! longer holds the value the thread passes, so the call returns at once (`EAGAIN`).
//!
//! The threads never dereference a segment word: the addresses go to the kernel only,
//! so an entry that outlives its segment (a future passed to `mem::forget`) costs an
//! `EFAULT` or a spurious wake, never a read of unmapped memory; it fires at its
//! deadline and is not armed again.
//!
//! # Fork
//!
//! A child forked while threads run has none of them, and possibly a registry whose
//! lock was held by a thread that does not exist in it: a `pthread_atfork` handler
//! drops the child's reference to the registry (leaking it) and bumps an epoch, so the
//! child creates a new registry and threads on first use, and never touches entries
//! registered before the fork.
//!
//! # Files
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | what the futures call: arm, refresh, cancel |
//! | `registry.rs` | the registry, its entries and thread records, starting threads, the fork handler |
//! | `fire.rs` | firing entries into `Waker`s, and the CPU they were armed from |
//! | `waitv.rs` | the `futex_waitv` thread's loop |
//! | `fallback.rs` | the fallback thread's loop (`FUTEX_WAIT` on one word) |

mod fallback;
mod fire;
mod registry;
mod waitv;

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use super::futex;
use crate::sync::Ordering;
use fire::current_cpu;
pub(crate) use registry::Slot;
use registry::{leave_thread, lock, registry, thread_for, Entry, Mode, FORKS};
#[cfg(feature = "test-hooks")]
use registry::{Registry, REGISTRY};

/// Whether this process's async waiters use the `futex_waitv` threads (`false`: the
/// fallback).
pub(crate) fn uses_futex_waitv() -> bool {
    registry().mode == Mode::Waitv
}

/// Arms `slot` (registering it first if `None`): fire `waker` when the futex word at
/// `word` moves from `expected` or is woken, or at `deadline`.
///
/// # Panics
/// If a waker thread cannot be started (the system is out of threads).
pub(crate) fn arm(
    slot: &mut Option<Slot>,
    word: usize,
    expected: u32,
    deadline: Instant,
    waker: &Waker,
) {
    if slot.as_ref().is_some_and(|s| !s.valid()) {
        *slot = None;
    }
    let registry = slot.as_ref().map_or_else(registry, |s| s.registry);
    let mut inner = lock(registry);
    let found = slot
        .as_ref()
        .and_then(|s| inner.entries.iter().position(|e| e.id == s.id));
    let index = match found {
        // A fallback entry moving to another word changes threads.
        Some(i) if registry.mode == Mode::Fallback && inner.entries[i].word != word => {
            let old = inner.entries.swap_remove(i);
            leave_thread(&mut inner, old.thread);
            None
        }
        other => other,
    };
    let index = match index {
        Some(i) => i,
        None => {
            let thread = thread_for(registry, &mut inner, word);
            let id = inner.next_id;
            inner.next_id += 1;
            inner.entries.push(Entry {
                id,
                thread,
                word,
                expected,
                deadline,
                waker: None,
                fired: false,
                cpu: -1,
            });
            *slot = Some(Slot {
                registry,
                epoch: FORKS.load(Ordering::Relaxed),
                id,
            });
            inner.entries.len() - 1
        }
    };
    let entry = &mut inner.entries[index];
    entry.word = word;
    entry.expected = expected;
    entry.deadline = deadline;
    entry.fired = false;
    entry.cpu = current_cpu();
    match &mut entry.waker {
        Some(w) => w.clone_from(waker),
        none => *none = Some(waker.clone()),
    }
    let thread = entry.thread;
    let Some(info) = inner.threads.iter().find(|t| t.id == thread) else {
        return;
    };
    match registry.mode {
        // The thread is between two calls (handling a wake, or just started): its next
        // rebuild, under this lock, lists this entry.
        Mode::Waitv if !info.in_call => {}
        // The thread's current call already watches this word at this value, and ends
        // no later than this entry's deadline: it will fire the entry.
        Mode::Waitv
            if info.waiting_until.is_some_and(|t| t <= deadline)
                && info
                    .ghosts
                    .iter()
                    .any(|g| g.listed && g.word == word && g.expected == expected) => {}
        Mode::Waitv => {
            let control = Arc::clone(&info.control);
            // `Relaxed`: the thread reads it under the lock we hold, together with the
            // entries; a bump after its read makes its wait return (`EAGAIN`, or the
            // wake below).
            control.fetch_add(1, Ordering::Relaxed);
            drop(inner);
            futex::wake_private(&control);
        }
        Mode::Fallback => {
            let idle = Arc::clone(&info.idle);
            drop(inner);
            idle.notify_one();
        }
    }
}

/// Updates the `Waker` of an armed entry: `false` if the entry has fired (the caller
/// must arm again, after another look).
pub(crate) fn refresh(slot: &Slot, waker: &Waker) -> bool {
    if !slot.valid() {
        return false;
    }
    let mut inner = lock(slot.registry);
    let Some(entry) = inner.entries.iter_mut().find(|e| e.id == slot.id) else {
        return false;
    };
    match &mut entry.waker {
        Some(w) => {
            w.clone_from(waker);
            true
        }
        None => false,
    }
}

/// Removes `slot`'s entry. With `pass_on`, an entry that fired and whose future never
/// saw it (dropped after the wake) fires the other armed entries on its word, so that
/// a wake it took is not lost to them.
pub(crate) fn cancel(slot: Slot, pass_on: bool) {
    if !slot.valid() {
        return;
    }
    let mut inner = lock(slot.registry);
    let Some(i) = inner.entries.iter().position(|e| e.id == slot.id) else {
        return;
    };
    let gone = inner.entries.swap_remove(i);
    leave_thread(&mut inner, gone.thread);
    let mut wake = Vec::new();
    if pass_on && gone.fired {
        wake.extend(
            inner
                .entries
                .iter_mut()
                .filter(|e| e.word == gone.word)
                .filter_map(Entry::fire),
        );
    }
    drop(inner);
    wake.into_iter().for_each(Waker::wake);
}

/// Registered entries in this process (tests: dropped futures leave none).
#[cfg(feature = "test-hooks")]
pub(crate) fn entries() -> usize {
    let addr = REGISTRY.load(Ordering::Acquire);
    if addr == 0 {
        return 0;
    }
    // SAFETY: as in `registry`.
    let registry = unsafe { &*std::ptr::with_exposed_provenance::<Registry>(addr as usize) };
    lock(registry).entries.len()
}
