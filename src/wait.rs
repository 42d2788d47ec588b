//! Waiting: spin, then sleep on a futex word in the segment.
//!
//! # The protocol
//!
//! A side that cannot make progress (a receiver with nothing to read, a lossless
//! producer with no free slot) waits on a pair of words owned by the *other* side's
//! progress: a 32-bit futex word `seq` and a count `waiters` of parked processes.
//!
//! ```text
//!   waiter                                   notifier
//!   v = seq.load(Acquire)                    <make progress: store P (Release)>
//!   waiters.fetch_add(1, Relaxed)            light fence              // F_n
//!   heavy fence                    // F_w    if waiters.load(Relaxed) > 0 {
//!   if <progress P visible> { return }           seq.fetch_add(1, Release)
//!   futex_wait(seq, v, tick)                     futex_wake(seq, all)
//!   waiters.fetch_sub(1, Relaxed)            }
//! ```
//!
//! *No lost wake-up.* A light and a heavy fence order like two `SeqCst` fences
//! (`barrier.rs`; a notifier off the hot path simply uses `fence(SeqCst)`), so take
//! `F_w` and `F_n` in their total order. If `F_n` comes first, the waiter's check after `F_w` sees `P` and it does not
//! sleep. If `F_w` comes first, the notifier's `waiters` load after `F_n` sees the
//! increment, so it bumps `seq` and wakes; the waiter's `futex_wait` then either finds
//! `seq != v` and returns at once (the bump came first) or is already asleep and woken.
//!
//! *No syscall when nobody sleeps.* The notifier pays a light fence (a compiler fence in
//! a process registered for `membarrier`, else an `mfence`) and one load; the waiter
//! pays the heavy fence, a `membarrier` system call, when it parks. The notifier makes
//! the `futex_wake` system call only when a waiter is registered.
//!
//! *Bounded sleeps.* Every sleep is capped by a tick, after which the waiter runs an
//! idle check (is the peer still alive?), so a peer that died without waking us, or a
//! hostile process that zeroed `waiters`, costs at most one tick of latency, never a hang.
//! A waiter that dies while registered leaves `waiters` too high; the notifier then makes
//! unneeded wake calls, which costs time but never correctness.
//!
//! The futex is the shared (not `FUTEX_PRIVATE_FLAG`) kind: the word lives in memory
//! mapped by several processes, and the kernel keys it by the underlying page.

use std::time::{Duration, Instant};

use crate::barrier;
use crate::sync::{spin_hint, AtomicU32, Ordering};
use crate::weaken::heavy_fence;

/// How a blocked `send` or `recv` waits for the other side.
///
/// ```
/// use shmchan::Wait;
/// assert_eq!(Wait::default(), Wait::Adaptive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Wait {
    /// Busy-poll the ring: the lowest latency, at the price of a whole core while waiting.
    Spin,
    /// Spin for a short window ([`ADAPTIVE_SPIN`]), then sleep on a futex until woken.
    /// A busy stream stays on the spinning path; an idle receiver uses no CPU.
    #[default]
    Adaptive,
    /// Sleep on the futex at once: no CPU while waiting, a futex wake-up per record
    /// that finds the receiver asleep.
    Block,
}

/// How long [`Wait::Adaptive`] spins before it sleeps.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(50);

/// How long a sleeping waiter sleeps at most before it re-checks its peer's liveness.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(50);

/// How many spins between two reads of the clock while spinning.
const SPINS_PER_CLOCK: u32 = 128;

/// The futex word and waiter count a waiter parks on.
///
/// (`pub` only so that the `loom-tests` crate can drive the protocol: the module is
/// private outside `--cfg loom`.)
#[derive(Debug, Clone, Copy)]
pub struct Parker<'a> {
    /// Bumped by the notifier when it wakes.
    pub seq: &'a AtomicU32,
    /// Number of processes asleep (or about to sleep) on `seq`.
    pub waiters: &'a AtomicU32,
}

impl Parker<'_> {
    /// The notifier's half, to be called after the progress store and a light fence
    /// or `fence(SeqCst)` (the caller's `F_n`, shared with other checks). `Relaxed`
    /// loads: the fence, with the waiter's heavy one, orders them after the progress
    /// store.
    #[inline]
    pub fn wake_if_parked(&self) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.wake();
        }
    }

    /// Bumps the futex word and wakes every sleeper. The `Release` bump pairs with the
    /// waiter's `Acquire` load of `seq`: a waiter that reads the new value sees the
    /// progress made before it.
    #[cold]
    pub fn wake(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake_all(self.seq);
    }
}

/// Waits until `poll` returns `Some`, following `strategy`, until `deadline`.
///
/// `poll(idle)` is called with `idle == true` about every [`IDLE_TICK`] while waiting,
/// for the slower checks (is the peer still alive?). Returns `None` on timeout.
pub fn wait_for<R>(
    strategy: Wait,
    deadline: Option<Instant>,
    parker: Parker<'_>,
    mut poll: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = poll(false) {
        return Some(r);
    }
    let start = Instant::now();
    let mut next_idle = start + IDLE_TICK;
    let spin_until = match strategy {
        Wait::Spin => None,
        Wait::Adaptive => Some(start + ADAPTIVE_SPIN),
        Wait::Block => Some(start),
    };
    let mut spinning = strategy != Wait::Block;
    let mut spins = 0u32;
    loop {
        if spinning {
            spin_hint();
            if let Some(r) = poll(false) {
                return Some(r);
            }
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_CLOCK != 0 {
                continue;
            }
        }
        // Under loom time stands still: a model must not depend on the real clock (loom
        // replays its executions), and no tick may rescue a lost wake-up. Hence no idle
        // polls, no deadline passes, `Adaptive` spins like `Spin`, and the modelled
        // futex sleeps until woken.
        let now = if cfg!(loom) { start } else { Instant::now() };
        if now >= next_idle {
            next_idle = now + IDLE_TICK;
            if let Some(r) = poll(true) {
                return Some(r);
            }
        }
        if deadline.is_some_and(|d| now >= d) {
            return None;
        }
        if spinning {
            spinning = spin_until.is_none_or(|t| now < t);
            continue;
        }
        // Park. See the module doc for why this cannot miss a wake-up.
        let v = parker.seq.load(Ordering::Acquire);
        parker.waiters.fetch_add(1, Ordering::Relaxed);
        // F_w: the heavy fence, paired with the notifiers' light ones (barrier.rs).
        let covered = heavy_fence!("f_w");
        if let Some(r) = poll(false) {
            parker.waiters.fetch_sub(1, Ordering::Relaxed);
            return Some(r);
        }
        let mut wake_at = deadline.map_or(next_idle, |d| d.min(next_idle));
        if !covered {
            // A light notifier may not see us: sleep briefly (barrier.rs, "degraded").
            wake_at = wake_at.min(now + barrier::DEGRADED_TICK);
        }
        futex::wait(parker.seq, v, wake_at.saturating_duration_since(now));
        parker.waiters.fetch_sub(1, Ordering::Relaxed);
        if let Some(r) = poll(false) {
            return Some(r);
        }
    }
}

#[cfg(not(loom))]
mod futex {
    use std::time::Duration;

    use crate::sync::AtomicU32;

    /// Sleeps while `*word == expected`, at most `timeout`. Spurious returns are fine:
    /// every caller re-checks its condition.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `word` is a valid, aligned `u32` for the duration of the call (it is
        // borrowed); the kernel only reads it. The timeout points at a live timespec.
        // FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word is in shared memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Wakes every process sleeping on `word`.
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: `word` is a valid, aligned `u32`; FUTEX_WAKE does not access memory
        // through the other arguments.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

#[cfg(loom)]
mod futex {
    //! A loom model of the futex: `wait` checks the word and goes to sleep atomically
    //! with respect to `wake_all` (the kernel's hash-bucket lock, here a loom `Mutex`),
    //! and then sleeps until a `wake_all` on the same word, with no timeout and no
    //! spurious return. A lost wake-up therefore leaves the waiter blocked for ever,
    //! which loom reports as a deadlock.
    use std::time::Duration;

    use loom::sync::{Condvar, Mutex};

    use crate::sync::{AtomicU32, Ordering};

    /// All futex words of one loom execution: per word address, how many
    /// `wake_all` calls it has had.
    struct Table {
        wakes: Mutex<Vec<(usize, u64)>>,
        woken: Condvar,
    }

    loom::lazy_static! {
        static ref TABLE: Table = Table { wakes: Mutex::new(Vec::new()), woken: Condvar::new() };
    }

    fn wakes_of<'a>(wakes: &'a mut Vec<(usize, u64)>, word: &AtomicU32) -> &'a mut u64 {
        let key = word as *const AtomicU32 as usize;
        let i = match wakes.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                wakes.push((key, 0));
                wakes.len() - 1
            }
        };
        &mut wakes[i].1
    }

    /// Sleeps while `*word == expected` until a [`wake_all`] on `word`; the timeout
    /// is ignored (see `wait_for`).
    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
        let table = &*TABLE;
        let mut wakes = table.wakes.lock().expect("futex table");
        // `Relaxed`: the table lock orders this load after the notifier's bump, as
        // the kernel's bucket lock does.
        if word.load(Ordering::Relaxed) != expected {
            return;
        }
        let seen = *wakes_of(&mut wakes, word);
        while *wakes_of(&mut wakes, word) == seen {
            wakes = table.woken.wait(wakes).expect("futex table");
        }
    }

    /// Wakes every thread sleeping on `word`.
    pub(super) fn wake_all(word: &AtomicU32) {
        let table = &*TABLE;
        let mut wakes = table.wakes.lock().expect("futex table");
        *wakes_of(&mut wakes, word) += 1;
        table.woken.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::fence;
    use std::sync::Arc;

    #[test]
    fn times_out_when_nothing_happens() {
        let seq = AtomicU32::new(0);
        let waiters = AtomicU32::new(0);
        let parker = Parker {
            seq: &seq,
            waiters: &waiters,
        };
        for strategy in [Wait::Spin, Wait::Adaptive, Wait::Block] {
            let deadline = Instant::now() + Duration::from_millis(20);
            let r: Option<()> = wait_for(strategy, Some(deadline), parker, |_| None);
            assert!(r.is_none());
            assert!(Instant::now() >= deadline);
            assert_eq!(waiters.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn a_parked_waiter_is_woken() {
        struct Shared {
            flag: AtomicU32,
            seq: AtomicU32,
            waiters: AtomicU32,
        }
        let shared = Arc::new(Shared {
            flag: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        });
        let s2 = Arc::clone(&shared);
        let waiter = std::thread::spawn(move || {
            let parker = Parker {
                seq: &s2.seq,
                waiters: &s2.waiters,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            wait_for(Wait::Block, Some(deadline), parker, |_| {
                (s2.flag.load(Ordering::Acquire) == 1).then_some(())
            })
        });
        // Wait until the waiter is registered, then make progress and notify.
        while shared.waiters.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        shared.flag.store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        Parker {
            seq: &shared.seq,
            waiters: &shared.waiters,
        }
        .wake_if_parked();
        assert_eq!(waiter.join().expect("waiter"), Some(()));
    }
}
