//! The async waiter's half of the futex protocol (`wait.rs`), without the sleep.
//!
//! A blocking waiter registers, re-checks and then sleeps in `futex_wait` itself. An
//! async waiter cannot sleep on its executor's thread, so [`ParkState::poll`] stops
//! where the sleep would begin and returns the word and the value to sleep on
//! ([`Step::Sleep`]); the process's waker thread (`waker_thread/`) makes that wait
//! on its behalf and turns its end into `Waker::wake`. Everything up to the sleep is
//! the protocol of `wait.rs`, step for step:
//!
//! ```text
//!   async waiter (one poll)                  notifier (unchanged)
//!   attempt()            -> Ready            <make progress P (Release)>
//!   v = seq.load(Acquire)                    light fence               // F_n
//!   waiters += 1 (once, until finished)      if waiters > 0 {
//!   F_w (fence_parked, wait.rs)      // F_w      seq += 1 (Release)
//!   attempt()            -> Ready            futex_wake(seq, all)
//!   Sleep { seq, v }: the waker thread       }
//!     waits while seq == v, then wakes the task, which polls again
//! ```
//!
//! *No lost wake-up*, by the argument of `wait.rs`: if `F_n` precedes `F_w` the
//! re-check sees `P`; otherwise the notifier sees the registration, so it bumps `seq`
//! after `F_n`, a bump the load of `v` (before `F_w`) cannot have read: the waker
//! thread's wait on `v` then returns at once or is woken. A waiter that stays
//! registered across polls loads a fresh `v` before each fence, so the argument holds
//! for every round. Without the re-check a record published between the first attempt
//! and the registration would be seen by nobody: the loom model `loom_async.rs` shows
//! it (the weakening `async_recheck`).
//!
//! *No wake call when nobody is parked*: a poll that finds what it wants returns before
//! registering, and a finished or dropped waiter unregisters ([`ParkState::finish`]),
//! so the notifier's count is zero again.

use crate::sync::{AtomicU32, Ordering};
use crate::wait::Parker;
use crate::weaken::weaken;

/// What one poll of an async waiter came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<R> {
    /// The attempt succeeded (before or after registering); the waiter is unregistered.
    Ready(R),
    /// Nothing yet: sleep while the futex word still holds `expected`, then poll
    /// again. The waiter stays registered until [`ParkState::finish`].
    Sleep {
        /// The address of the futex word (the waker thread passes it to the kernel and
        /// never dereferences it).
        word: usize,
        /// The value the word held before the registration's fence.
        expected: u32,
        /// Whether the heavy fence covered peers that use light fences; if not, the
        /// sleep must be short (`barrier.rs`, "degraded").
        covered: bool,
    },
}

/// The registration state of one async waiter between its polls.
#[derive(Debug, Default)]
pub struct ParkState {
    /// Counted in the pair's `waiters` (and tagged in the entry's `parked` word).
    registered: bool,
}

impl ParkState {
    /// Whether this waiter is counted in its pair's `waiters`.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// One poll: `attempt(x)` first, then (if it found nothing) register on the pair
    /// `parker(x)` names, fence, and `attempt(x)` again; see the module doc. `x` is
    /// what both borrow (the receiver or sender), handed in so that the parker, which
    /// borrows it, is dropped before the attempt needs it mutably.
    pub fn poll<X: ?Sized, R>(
        &mut self,
        x: &mut X,
        parker: impl for<'a> Fn(&'a X) -> Parker<'a>,
        mut attempt: impl FnMut(&mut X) -> Option<R>,
    ) -> Step<R> {
        if let Some(r) = attempt(x) {
            self.finish(x, &parker);
            return Step::Ready(r);
        }
        let (word, expected, covered) = {
            let p = parker(x);
            // `Acquire`: pairs with the notifier's `Release` bump, as in `wait_for`.
            let expected = p.seq.load(Ordering::Acquire);
            if !self.registered {
                p.register();
                self.registered = true;
            }
            // F_w: paired with the notifiers' fences (wait.rs).
            let word = p.seq as *const AtomicU32 as usize;
            (word, expected, p.fence_parked())
        };
        // The re-check that makes the registration safe (module doc).
        if !weaken!("async_recheck") {
            if let Some(r) = attempt(x) {
                self.finish(x, &parker);
                return Step::Ready(r);
            }
        }
        Step::Sleep {
            word,
            expected,
            covered,
        }
    }

    /// Unregisters, if registered: after a poll that found what it wanted, and when
    /// the waiting future is dropped.
    pub fn finish<X: ?Sized>(&mut self, x: &X, parker: &impl for<'a> Fn(&'a X) -> Parker<'a>) {
        if std::mem::take(&mut self.registered) {
            parker(x).unregister();
        }
    }
}
