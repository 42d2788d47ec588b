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
//! *Fenced mode: no `membarrier` per park when waiters park all the time.* A heavy fence
//! interrupts every CPU that runs a registered process, the notifier's among them. A
//! `Wait::Block` receiver parks once per record, so with four of them each record cost
//! the producer four interrupts. So the pair switches to symmetric fences while waiters
//! keep parking: two flag bits above the count in `waiters`,
//!
//! ```text
//!   waiter F_w (after registering)              notifier (its `waiters` load was not 0)
//!   w = waiters.load(Acquire)                   fence(SeqCst)                // F_n'
//!   if w & FENCED { fence(SeqCst) }             w = waiters.load(Relaxed)
//!   else { waiters |= ASKED                     if count(w) > 0 { wake }
//!          heavy fence                          else after QUIET_LIMIT such loads,
//!          if it covered: waiters |= FENCED }     CAS(w -> 0): light again
//! ```
//!
//! A waiter that reads `FENCED` pairs its `fence(SeqCst)` with the notifier's `F_n'`
//! like any two `SeqCst` fences, provided the notifier took that path. It did unless its
//! `waiters` load (after `P`) missed `ASKED`. `FENCED` was stored (`Release`, read here
//! with `Acquire`) by a waiter after a heavy fence that followed its `ASKED` store, and
//! that heavy fence ran a full barrier on the notifier's CPU (or found the notifier
//! switched out, past a context switch). A load after that barrier sees `ASKED` (the
//! flags are only ever cleared by the CAS below); a load before it comes after `P` in
//! program order, so `P` was visible when the heavy fence returned, hence to us. The
//! flags return to zero by a CAS from a value with a zero count: a waiter registered at
//! that moment would have made the CAS fail, and one that registers later reads a
//! value without `FENCED` (its own increment comes after the CAS in the word's order)
//! and takes the heavy path. (Under loom the light fence is `SeqCst` too, so no model
//! can show that `F_n'` is needed; a store-buffering stress test on hardware does,
//! `src/wait/tests/stress.rs`.) So the extra `mfence` is paid only while waiters park; a
//! stream whose receivers keep up returns to the free path after [`QUIET_LIMIT`]
//! notifies.
//!
//! *Bounded sleeps.* Every sleep is capped by a tick, after which the waiter runs an
//! idle check (is the peer still alive?), so a peer that died without waking us, or a
//! hostile process that zeroed `waiters` or set its flags, costs at most one tick of
//! latency, never a hang.
//!
//! *Sleepers that die.* A waiter killed while registered would leave `waiters` too high
//! for the segment's life, and every later notify would make a system call. So a waiter
//! with a table entry also stores, while registered, which pair it is on in its entry's
//! `parked` word (`layout.rs`), with its owner word above the tag. Whoever frees a
//! dead participant's entry (eviction, reaping, taking over the `Route` sender claim;
//! `ring/table.rs`) first takes its registration back with [`take_back`]: a CAS from
//! that owner's value, *before* the CAS that frees the entry, so it can neither take
//! the registration of the entry's next owner nor miss the dead one's because the next
//! owner's overwrote it. A notifier whose wake calls keep finding nobody asleep sweeps
//! the table for such entries every `SWEEP_EVERY` futile calls. The tag is stored
//! after the count is incremented and cleared before it is decremented, so a process
//! killed between the two steps leaves the count one too high (a wake too many), never
//! too low (a wake missed).
//!
//! The futex is the shared (not `FUTEX_PRIVATE_FLAG`) kind: the word lives in memory
//! mapped by several processes, and the kernel keys it by the underlying page.

use std::time::{Duration, Instant};

use crate::barrier;
use crate::layout::{FutexPair, PARKED_DATA, PARKED_SPACE};
use crate::sync::{fence, spin_hint, AtomicU32, AtomicU64, Ordering};
use crate::weaken::{seqcst_fence, weaken};

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
    /// Wake calls that woke nobody (see [`wake_if_parked`]).
    pub futile: &'a AtomicU32,
    /// Notifies in fenced mode that found nobody registered (module doc).
    pub quiet: &'a AtomicU32,
    /// Loom only: the pair's `fenced_mode` knob (0: off).
    #[cfg(loom)]
    pub fenced_mode: u32,
    /// The waiter's own `parked` word in its table entry, and the value it stores
    /// there while registered: the tag that names this pair (`layout.rs`) in the low
    /// two bits, the waiter's owner word above them. A peer that finds the waiter dead
    /// takes the registration back ([`take_back`]); the owner bits keep a waiter that
    /// was wrongly judged dead from taking back the registration of the entry's next
    /// owner when it wakes. `None` for a waiter with no entry (tests).
    pub mine: Option<(&'a AtomicU64, u64)>,
}

/// How many futile wake calls in a row (a registered waiter count, nobody asleep)
/// before a look for sleepers that died registered.
const SWEEP_EVERY: u32 = 1024;

/// The count of registered waiters: the low bits of a pair's `waiters` word.
pub const WAITER_COUNT: u32 = (1 << 30) - 1;
/// Flag of `waiters`: a waiter asked notifiers to fence (stored before its heavy fence).
pub const FENCE_ASKED: u32 = 1 << 30;
/// Flag of `waiters`: notifiers fence before they read the count, so waiters may use
/// `fence(SeqCst)` instead of the heavy fence (module doc, "fenced mode").
pub const FENCED: u32 = 1 << 31;
/// How many notifies in fenced mode that find nobody registered before the notifier
/// clears the flags. (Under loom each pair says, `FutexPair::fenced_mode`.)
#[cfg_attr(loom, allow(dead_code))]
const QUIET_LIMIT: u32 = 64;

impl<'a> Parker<'a> {
    /// The parker of `pair`, for a waiter without a table entry.
    pub fn new(pair: &'a FutexPair) -> Parker<'a> {
        Parker {
            seq: &pair.seq,
            waiters: &pair.waiters,
            futile: &pair.futile,
            quiet: &pair.quiet,
            #[cfg(loom)]
            fenced_mode: pair.fenced_mode,
            mine: None,
        }
    }

    /// The same pair, registered through the `parked` word of the entry held by
    /// `owner`, with `tag` naming the pair.
    pub fn registered(self, (parked, owner): (&'a AtomicU64, u64), tag: u64) -> Parker<'a> {
        Parker {
            mine: Some((parked, owner << 2 | tag)),
            ..self
        }
    }

    /// [`wake_if_parked`] once the count or a flag is set: in fenced mode, the
    /// full fence and a fresh look at the count first (module doc).
    #[cold]
    fn wake_slow(&self, mut w: u32) -> bool {
        if w & (FENCED | FENCE_ASKED) != 0 {
            // F_n': pairs with the fenced waiter's `fence(SeqCst)` (module doc). Loom
            // cannot tell it from the light fence before it (both are `SeqCst` there):
            // the hardware stress test below gives its weakening teeth
            // (`loom-tests/fence.sh`).
            seqcst_fence!("fenced_notify");
            // `Relaxed`: ordered after the progress store by F_n', which pairs with the
            // fenced waiter's `fence(SeqCst)` (module doc).
            w = self.waiters.load(Ordering::Relaxed);
            if w & WAITER_COUNT == 0 {
                // `Relaxed`: a heuristic; any value is safe, and the CAS decides.
                #[cfg(not(loom))]
                let limit = QUIET_LIMIT;
                #[cfg(loom)]
                let limit = self.fenced_mode;
                if self.quiet.fetch_add(1, Ordering::Relaxed).wrapping_add(1) >= limit {
                    self.quiet.store(0, Ordering::Relaxed);
                    // `Relaxed`: a waiter orders itself against this through the RMW
                    // order of `waiters` (module doc), not through other memory.
                    let _ =
                        self.waiters
                            .compare_exchange(w, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
                return false;
            }
            // `Relaxed`: the heuristic count again; a waiter is registered, so it restarts.
            if self.quiet.load(Ordering::Relaxed) != 0 {
                self.quiet.store(0, Ordering::Relaxed);
            }
        }
        w & WAITER_COUNT != 0 && self.wake()
    }

    /// Bumps the futex word and wakes every sleeper. The `Release` bump pairs with the
    /// waiter's `Acquire` load of `seq`: a waiter that reads the new value sees the
    /// progress made before it. Returns whether a sweep is due (see [`wake_if_parked`]).
    #[cold]
    pub fn wake(&self) -> bool {
        self.seq.fetch_add(1, Ordering::Release);
        // `Relaxed`: a statistic that only paces the sweeps. A wake that reaches a
        // sleeper resets it, so only a run of futile calls leads to a sweep (a waiter
        // registered but not yet asleep makes single futile calls all the time).
        if futex::wake_all(self.seq) > 0 {
            if self.futile.load(Ordering::Relaxed) != 0 {
                self.futile.store(0, Ordering::Relaxed);
            }
            return false;
        }
        self.futile.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
    }

    /// Registers as a sleeper: the count first, then the entry's tag (a process killed
    /// between the two leaves the count one too high, never too low: a wake too many,
    /// never one missed).
    pub(crate) fn register(&self) {
        // `Relaxed`: ordered before the re-check by `F_w` ([`Parker::fence_parked`]).
        // (A count of 2^30 - 1, which only a peer's scribble can reach, would carry into
        // the flag bits: bounded sleeps, below.)
        self.waiters.fetch_add(1, Ordering::Relaxed);
        if let Some((parked, tag)) = self.mine {
            // `Relaxed`: read back only by this process or, after it died, by the
            // peer's RMW in `take_back`.
            parked.store(tag, Ordering::Relaxed);
        }
    }

    /// F_w, after [`Parker::register`] and before the re-check: `fence(SeqCst)` if the
    /// pair is in fenced mode, else the heavy fence, asking notifiers to fence from now
    /// on (module doc). Returns whether it covers notifiers that use light fences (if
    /// not, the sleep must be short: `barrier.rs`, "degraded").
    pub(crate) fn fence_parked(&self) -> bool {
        if weaken!("f_w") {
            fence(Ordering::AcqRel);
            return true;
        }
        #[cfg(loom)]
        if self.fenced_mode == 0 {
            // A model without fenced mode (`FutexPair::fenced_mode`).
            return barrier::heavy();
        }
        // `Acquire`: pairs with the `Release` that set `FENCED` after a heavy fence, so
        // that fence (and what it made visible) comes before our re-check.
        let w = self.waiters.load(Ordering::Acquire);
        if w & FENCED != 0 {
            fence(Ordering::SeqCst);
            return true;
        }
        if w & FENCE_ASKED == 0 {
            // `Relaxed`: the heavy fence below publishes it to every notifier.
            self.waiters.fetch_or(FENCE_ASKED, Ordering::Relaxed);
        }
        let covered = barrier::heavy();
        if covered {
            // `Release`: a waiter that reads `FENCED` with `Acquire` is after our heavy
            // fence. Only while `FENCE_ASKED` is still set: if the flags were cleared
            // meanwhile (possible only if our registration was wrongly taken back, or a
            // peer scribbled on the word), our heavy fence may precede notifier loads
            // that saw no flag, and it must not vouch for them.
            let _ = self
                .waiters
                .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                    (w & FENCE_ASKED != 0).then_some(w | FENCED)
                });
        }
        covered
    }

    /// Unregisters, unless a peer that judged this process dead already did it for us
    /// (it cleared the word, which may since hold the next owner's registration).
    pub(crate) fn unregister(&self) {
        let ours = self.mine.is_none_or(|(parked, value)| {
            parked
                .compare_exchange(value, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        if ours {
            decrement(self.waiters);
        }
    }
}

/// The notifier's half, to be called after the progress store and a light fence
/// or `fence(SeqCst)` (the caller's `F_n`, shared with other checks). A `Relaxed`
/// load: the fence, with the waiter's, orders it after the progress store. The
/// hot path is that load and a branch; the parker is built only when someone may be
/// parked.
///
/// Returns `true` once every [`SWEEP_EVERY`] wake calls in a row that found nobody
/// asleep: a waiter count that stays high while nobody sleeps is the mark of a sleeper
/// that died registered, and the caller should then sweep the table (`ring/table.rs`,
/// `sweep_parked`).
#[inline(always)]
pub fn wake_if_parked(pair: &FutexPair) -> bool {
    let w = pair.waiters.load(Ordering::Relaxed);
    w != 0 && Parker::new(pair).wake_slow(w)
}

/// Takes back the registration of `owner`, a sleeper that died (or was judged dead)
/// while registered with its `parked` word: if the word still holds `owner`'s
/// registration, clears it (a CAS on that value) and decrements the count its tag
/// names. Called before `owner`'s entry is freed (`ring/table.rs`), so no later owner
/// of the entry has registered through the word yet; and the CAS leaves any other
/// owner's registration alone.
pub(crate) fn take_back(parked: &AtomicU64, owner: u64, data: &AtomicU32, space: &AtomicU32) {
    // `Relaxed`: the word is written only by its owner (register, unregister) and by
    // take-backs, all RMWs or stores of whole values; the CAS decides who decrements.
    let v = parked.load(Ordering::Relaxed);
    if v == 0 || v & !3 != owner << 2 {
        return;
    }
    if parked
        .compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        // The owner (judged dead, yet alive) unregistered itself meanwhile.
        return;
    }
    match v & 3 {
        PARKED_DATA => decrement(data),
        PARKED_SPACE => decrement(space),
        _ => {}
    }
}

/// Decrements a waiter count, never below zero (a peer may have scribbled on it).
fn decrement(waiters: &AtomicU32) {
    // `Relaxed`: the count is ordered by the fences of the protocol (module doc). The
    // flags above the count stay as they are.
    let _ = waiters.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n & WAITER_COUNT != 0).then(|| n - 1)
    });
}

/// When a handle's next idle poll is due ([`wait_for`]). Kept by the handle across its
/// waits, so that a caller who waits in slices shorter than [`IDLE_TICK`] (a binding
/// that wakes every few milliseconds to look for signals, an importer with short
/// timeouts) still gets the slower checks about once a tick: a tick that restarted
/// with every wait would never come due for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tick(Option<Instant>);

/// Waits until `poll` returns `Some`, following `strategy`, until `deadline`.
///
/// `poll(idle)` is called with `idle == true` about every [`IDLE_TICK`] while waiting,
/// for the slower checks (is the peer still alive?), counted across the waits that
/// share `tick`. Returns `None` on timeout.
pub fn wait_for<R>(
    strategy: Wait,
    deadline: Option<Instant>,
    parker: Parker<'_>,
    tick: &mut Tick,
    mut poll: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = poll(false) {
        return Some(r);
    }
    let start = Instant::now();
    // Under loom time stands still (below): no idle poll, whatever an earlier wait left.
    let due = if cfg!(loom) { None } else { tick.0 };
    let mut next_idle = due.unwrap_or(start + IDLE_TICK);
    let result = wait_loop(strategy, deadline, parker, start, &mut next_idle, &mut poll);
    *tick = Tick(Some(next_idle));
    result
}

/// The body of [`wait_for`].
fn wait_loop<R>(
    strategy: Wait,
    deadline: Option<Instant>,
    parker: Parker<'_>,
    start: Instant,
    next_idle: &mut Instant,
    poll: &mut impl FnMut(bool) -> Option<R>,
) -> Option<R> {
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
        if now >= *next_idle {
            *next_idle = now + IDLE_TICK;
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
        parker.register();
        // F_w: paired with the notifiers' fences (module doc).
        let covered = parker.fence_parked();
        if let Some(r) = poll(false) {
            parker.unregister();
            return Some(r);
        }
        let mut wake_at = deadline.map_or(*next_idle, |d| d.min(*next_idle));
        if !covered {
            // A light notifier may not see us: sleep briefly (barrier.rs, "degraded").
            wake_at = wake_at.min(now + barrier::DEGRADED_TICK);
        }
        futex::wait(parker.seq, v, wake_at.saturating_duration_since(now));
        parker.unregister();
        if let Some(r) = poll(false) {
            return Some(r);
        }
    }
}

/// The modelled futex wait (loom only), for the models of the async waiter: in
/// production its process's waker thread makes this wait on its behalf (`asynk/`).
/// Sleeps while `*word == expected` until a wake on `word`.
#[cfg(loom)]
pub fn futex_wait_model(word: &AtomicU32, expected: u32) {
    futex::wait(word, expected, Duration::MAX);
}

/// How many futex wake calls this process has made (test builds only: the async tests
/// check that a producer makes none while nobody is parked).
#[cfg(all(feature = "test-hooks", not(loom)))]
pub(crate) fn wake_calls() -> u64 {
    futex::WAKE_CALLS.load(Ordering::Relaxed)
}

#[cfg(not(loom))]
mod futex {
    use std::time::Duration;

    use crate::sync::AtomicU32;

    /// Futex wake calls made by this process (test builds only).
    #[cfg(feature = "test-hooks")]
    pub(super) static WAKE_CALLS: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);

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

    /// Wakes every process sleeping on `word`. Returns how many it woke (an error
    /// counts as one: never mistaken for "nobody there").
    pub(super) fn wake_all(word: &AtomicU32) -> u32 {
        // `Relaxed`: a statistic read by tests after the fact.
        #[cfg(feature = "test-hooks")]
        WAKE_CALLS.fetch_add(1, crate::sync::Ordering::Relaxed);
        // SAFETY: `word` is a valid, aligned `u32`; FUTEX_WAKE does not access memory
        // through the other arguments.
        let woken = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        u32::try_from(woken).unwrap_or(1)
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

    /// Wakes every thread sleeping on `word`. Reports one woken: the model does not
    /// count sleepers, and the sweeps that a futile wake paces are not modelled.
    pub(super) fn wake_all(word: &AtomicU32) -> u32 {
        let table = &*TABLE;
        let mut wakes = table.wakes.lock().expect("futex table");
        *wakes_of(&mut wakes, word) += 1;
        table.woken.notify_all();
        1
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
