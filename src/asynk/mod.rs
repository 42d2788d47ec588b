//! Async receive and send (feature `async`): futures that sleep on the segment's futex
//! words, for any executor.
//!
//! A `Waker` lives in the receiver's process, so a producer in another process cannot
//! call it. The future therefore sleeps on what both reach, the futex word that
//! `Wait::Block` sleeps on, and a thread of its own process (`shmchan-waker`) turns
//! "the word moved" into `Waker::wake`:
//!
//! | file | holds |
//! |---|---|
//! | `park.rs` | the waiter's half of the futex protocol of `wait.rs`, up to the sleep (also built under loom) |
//! | `waker_thread/` | the registry of sleeping futures and the `shmchan-waker` threads (its module doc lists its files) |
//! | `futex.rs` | `futex_waitv`, the `FUTEX_WAIT` fallback and probe, the control word's wake |
//! | `recv.rs` | `Receiver::recv_async`, `recv_many_async`, and `RecvStream` (feature `stream`) |
//! | `send.rs` | `Sender::send_async` |
//!
//! A poll first makes the non-blocking call (`try_recv`, `try_send`): a ready record
//! costs no system call. Only when it finds nothing does it register on the word
//! through the protocol of the blocking path (`park.rs`), re-check, and hand the word
//! and its `Waker` to a waker thread. Producers are unchanged: they wake only when
//! someone is registered. A future that sleeps a whole idle tick runs the liveness
//! checks of a blocking wait's tick when it is next polled (a dead sender shows as
//! `Disconnected`), as the blocking loop does.
//!
//! # Cancel safety
//!
//! A record is taken only in the poll that returns `Ready`: a future dropped before
//! that has taken nothing. Dropping it unregisters it from the futex pair and from the
//! registry; if it had been woken and not polled since, it passes the wake on to the
//! other waiters of this process on the same word (the notifier wakes every sleeper of
//! a word, so no waiter elsewhere depends on it). A dropped `send_async` has published
//! nothing (a claim it made stays with the sender for its next record, as after a
//! `send_timeout`).
//!
//! # Fork
//!
//! A future copied into a child by `fork` belongs to the parent, as its handle does
//! (`process.rs`, "Fork"): polled there, its attempt is refused (`Forked`); dropped
//! there, it leaves the registration alone, which is the parent's (its tag in the
//! entry's `parked` word and its place in the waiter count: unregistering would take
//! them from the parent's future, which may be asleep on them).

pub mod park;

#[cfg(not(loom))]
mod futex;
#[cfg(not(loom))]
mod recv;
#[cfg(not(loom))]
mod send;
#[cfg(not(loom))]
mod waker_thread;

#[cfg(all(not(loom), feature = "stream"))]
pub use recv::RecvStream;
#[cfg(not(loom))]
pub use recv::{RecvFuture, RecvManyFuture};
#[cfg(not(loom))]
pub use send::SendFuture;

#[cfg(not(loom))]
pub(crate) use waiter::Waiter;

/// Whether this process's async waiters sleep through `futex_waitv` (`false`: the
/// fallback, one thread per futex word in plain `FUTEX_WAIT`, where the kernel or a
/// seccomp profile refuses `futex_waitv`). Decided once per process, when the first
/// async wait begins; calling this decides it.
///
/// ```
/// // On Linux 5.16 and later, outside a seccomp profile that denies the call:
/// let fast = shmchan::uses_futex_waitv();
/// # let _ = fast;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
#[cfg(not(loom))]
pub fn uses_futex_waitv() -> bool {
    waker_thread::uses_futex_waitv()
}

/// Registry entries of this process's async waiters (test builds only).
#[cfg(all(not(loom), feature = "test-hooks"))]
pub(crate) fn registered_entries() -> usize {
    waker_thread::entries()
}

#[cfg(not(loom))]
mod waiter {
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use super::park::{ParkState, Step};
    use super::waker_thread::{self, Slot};
    use crate::barrier::DEGRADED_TICK;
    use crate::process;
    use crate::sync::{spin_hint, Ordering};
    use crate::wait::{Parker, IDLE_TICK};

    /// How many spins between two reads of the clock while spending a spin budget.
    const SPINS_PER_CLOCK: u32 = 128;

    /// The state of one waiting future between its polls: nothing (one null word) until
    /// it first waits or is given a spin budget, then its [`WaitState`] on the heap.
    ///
    /// Building, checking and dropping a future whose record is ready touches this one
    /// word: a `recv_async().await` that completes at once costs what `try_recv` costs
    /// and a few instructions. The allocation happens only on the way to a sleep (a
    /// registration, a fence and a system call dwarf it) or with [`Waiter::set_spin`];
    /// it is freed when the wait ends.
    #[derive(Debug, Default)]
    pub(crate) struct Waiter {
        state: Option<Box<WaitState>>,
    }

    /// A wait under way: its registration on the futex pair, its registry entry, and
    /// its spin budget.
    #[derive(Debug)]
    struct WaitState {
        /// The fork generation of the process the wait began in, whose registration
        /// `park` is (module doc, "Fork").
        forks: u64,
        park: ParkState,
        slot: Option<Slot>,
        /// When this wait began, or last ran the liveness checks.
        since: Option<Instant>,
        /// Opt-in spin before the first sleep; spent once.
        spin: Duration,
        /// The word, value and nap of the last sleep armed after a fence.
        last: Option<(usize, u32, Duration)>,
    }

    impl WaitState {
        fn new() -> Box<WaitState> {
            Box::new(WaitState {
                forks: process::fork_generation(),
                park: ParkState::default(),
                slot: None,
                since: None,
                spin: Duration::ZERO,
                last: None,
            })
        }

        /// Unregisters from the pair `parker(x)` names and removes the registry entry
        /// (`pass_on`: see `waker_thread::cancel`), unless the wait began in another
        /// process (the parent of a `fork`), whose registration this is.
        fn end<X: ?Sized>(
            &mut self,
            x: &X,
            parker: &impl for<'a> Fn(&'a X) -> Parker<'a>,
            pass_on: bool,
        ) {
            if self.forks != process::fork_generation() {
                return;
            }
            self.park.finish(x, parker);
            if let Some(slot) = self.slot.take() {
                waker_thread::cancel(slot, pass_on);
            }
        }
    }

    impl Waiter {
        /// Sets the spin budget (before the first poll).
        pub(crate) fn set_spin(&mut self, spin: Duration) {
            self.state.get_or_insert_with(WaitState::new).spin = spin;
        }

        /// One poll of a future that waits on `parker(x)` for `attempt(x)` to give
        /// something (`Pending`: nothing yet). `tick(x)`: ask for the liveness checks
        /// on the next attempt.
        ///
        /// Inlined into each future: a future with no wait state (it has not waited,
        /// or its wait is over) tries once and returns what the attempt gave, so that
        /// a ready record costs that attempt and a test of one word, and moves once
        /// (from the ring's copy into the output).
        #[inline(always)]
        pub(crate) fn poll<X: ?Sized, R>(
            &mut self,
            x: &mut X,
            cx: &mut Context<'_>,
            parker: impl for<'a> Fn(&'a X) -> Parker<'a>,
            mut attempt: impl FnMut(&mut X) -> Poll<R>,
            tick: impl FnOnce(&mut X),
        ) -> Poll<R> {
            let idle = self.state.is_none();
            // Ready at once: nothing to undo (no registration, no entry). One place
            // for the output whichever way it comes, so the record is not moved twice.
            let mut got = if idle { attempt(x) } else { Poll::Pending };
            if got.is_pending() {
                let attempt = move |x: &mut X| match attempt(x) {
                    Poll::Ready(r) => Some(r),
                    Poll::Pending => None,
                };
                got = self.poll_waiting(x, cx, parker, attempt, tick, idle);
            }
            got
        }

        /// [`Waiter::poll`] past its first attempt (`tried`: made already).
        fn poll_waiting<X: ?Sized, R>(
            &mut self,
            x: &mut X,
            cx: &mut Context<'_>,
            parker: impl for<'a> Fn(&'a X) -> Parker<'a>,
            mut attempt: impl FnMut(&mut X) -> Option<R>,
            tick: impl FnOnce(&mut X),
            tried: bool,
        ) -> Poll<R> {
            let st = self.state.get_or_insert_with(WaitState::new);
            if let Some(since) = st.since {
                if since.elapsed() >= IDLE_TICK {
                    tick(x);
                    st.since = Some(Instant::now());
                }
            }
            // (`tried`: [`Waiter::poll`] has just made this attempt.)
            if !tried {
                if let Some(r) = attempt(x) {
                    return Poll::Ready(self.done(x, &parker, r));
                }
            }
            // Polled again while still armed (another branch of a `select!` woke the
            // task, say): nothing to redo, the registration stands.
            if st.park.is_registered()
                && st
                    .slot
                    .as_ref()
                    .is_some_and(|s| waker_thread::refresh(s, cx.waker()))
            {
                return Poll::Pending;
            }
            // Woken without the word moving (the idle tick, or another branch of a
            // `select!`): still registered since the fence that followed the load of
            // `expected`, so every progress since moves the word off it (`park.rs`),
            // and the same sleep can be armed again without a new fence.
            if let (true, Some((word, expected, nap))) = (st.park.is_registered(), st.last) {
                // `Relaxed`: only compared; a stale value costs a spurious wake.
                if parker(x).seq.load(Ordering::Relaxed) == expected {
                    let deadline = Instant::now() + nap;
                    waker_thread::arm(&mut st.slot, word, expected, deadline, cx.waker());
                    return Poll::Pending;
                }
            }
            if !st.spin.is_zero() {
                let budget = std::mem::take(&mut st.spin);
                if let Some(r) = spin(x, budget, &mut attempt) {
                    return Poll::Ready(self.done(x, &parker, r));
                }
            }
            match st.park.poll(x, &parker, attempt) {
                Step::Ready(r) => Poll::Ready(self.done(x, &parker, r)),
                Step::Sleep {
                    word,
                    expected,
                    covered,
                } => {
                    let now = Instant::now();
                    st.since.get_or_insert(now);
                    // A waiter whose fence may not cover light notifiers sleeps briefly
                    // (`barrier.rs`, "degraded"); every sleep ends at the idle tick.
                    let nap = if covered { IDLE_TICK } else { DEGRADED_TICK };
                    st.last = Some((word, expected, nap));
                    waker_thread::arm(&mut st.slot, word, expected, now + nap, cx.waker());
                    Poll::Pending
                }
            }
        }

        /// The wait is over with `r`: unregisters, and frees the wait state.
        fn done<X: ?Sized, R>(
            &mut self,
            x: &X,
            parker: &impl for<'a> Fn(&'a X) -> Parker<'a>,
            r: R,
        ) -> R {
            if let Some(mut st) = self.state.take() {
                st.end(x, parker, false);
            }
            r
        }

        /// Unregisters (the future is dropped, or its owner is taken back).
        #[inline]
        pub(crate) fn cancel<X: ?Sized>(
            &mut self,
            x: &X,
            parker: impl for<'a> Fn(&'a X) -> Parker<'a>,
        ) {
            // No wait state: never waited, or finished; nothing to undo.
            if let Some(mut st) = self.state.take() {
                st.end(x, &parker, true);
            }
        }
    }

    /// Polls `attempt` for at most `budget`.
    fn spin<X: ?Sized, R>(
        x: &mut X,
        budget: Duration,
        attempt: &mut impl FnMut(&mut X) -> Option<R>,
    ) -> Option<R> {
        let until = Instant::now() + budget;
        let mut spins = 0u32;
        loop {
            spin_hint();
            if let Some(r) = attempt(x) {
                return Some(r);
            }
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_CLOCK == 0 && Instant::now() >= until {
                return None;
            }
        }
    }
}
