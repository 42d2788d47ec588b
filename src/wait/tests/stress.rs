//! The store-buffering stress test of fenced mode on real hardware.
//!
//! Fenced mode (module doc of `wait.rs`) is a Dekker pair of two `SeqCst` fences: the
//! waiter registers, fences and re-checks the progress; the notifier stores the
//! progress, fences (`F_n'`) and reads the count. Loom cannot tell `F_n'` from the
//! light fence before it (under loom both are `SeqCst`), so deleting `F_n'` passes every
//! model. On hardware, in a process registered for `membarrier`, the light fence is a
//! compiler fence, and without `F_n'` the notifier's store of the progress may still sit
//! in its store buffer when its load of the count is answered: the waiter registered
//! after that load, re-checked before the store drained, and sleeps with nobody to wake
//! it. This test runs the shipped pair (`wait_for` with `Wait::Block`, `wake_if_parked`)
//! on two threads pinned to two CPUs, one round per record, and counts the rounds in
//! which the waiter went to sleep (its re-check after the fence found nothing) while the
//! notifier, having stored the progress, checked the count and did not wake (its bump of
//! the futex word did not happen): a lost wake-up, detected without waiting for it to
//! show as a delay. `loom-tests/fence.sh` runs it as built (it must pass) and with
//! `--cfg shmchan_weaken="fenced_notify"`, which turns `F_n'` into `fence(AcqRel)`, a
//! compiler fence on x86 (it must fail).
//!
//! *A verdict with no false alarm.* "Slept and not woken" is a lost wake-up only if the
//! waiter was still registered when the notifier checked: a notifier switched out
//! before its store may check after a waiter that re-checked too early has given up.
//! The waiter has no deadline, so it stays registered until it is woken or its idle
//! tick ends the sleep (`IDLE_TICK` after it started); the notifier therefore judges
//! only rounds whose check came less than half a tick after the round began (it
//! measures this), and only rounds in which the waiter parked once. Other rounds count
//! as inconclusive; a lost wake-up costs the waiter its idle tick.
//!
//! Bounded: [`ROUNDS`] rounds or [`SECONDS`] seconds, whichever first (the variables
//! `SHMCHAN_STRESS_ROUNDS` and `SHMCHAN_STRESS_SECS` change them); it stops at the
//! first lost wake-up.

use std::time::{Duration, Instant};

use super::super::*;
use crate::barrier;
use crate::sync::{spin_hint, AtomicU32, AtomicU64, Ordering};

/// Rounds at most.
const ROUNDS: u64 = 20_000_000;
/// Seconds at most.
const SECONDS: u64 = 25;
/// A round whose check came later than this after it began is not judged (module doc).
const CONCLUSIVE: Duration = Duration::from_millis(IDLE_TICK.as_millis() as u64 / 2);
/// The notifier's delay before its store is drawn from `0..DELAY_SPAN` iterations of
/// an empty loop (about 0 to 400 ns), so that the store falls on every point of the
/// waiter's park across the rounds.
const DELAY_SPAN: u64 = 1024;
/// The longest either side waits for the other within a round before giving up.
const STUCK: Duration = Duration::from_secs(10);

/// One cache line (two on some CPUs) each, so that the threads share lines only where
/// the protocol makes them.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Line<T>(T);

#[derive(Debug, Default)]
struct Shared {
    pair: Line<FutexPair>,
    /// The progress `P`: the last round whose record is published.
    progress: Line<AtomicU32>,
    /// The round the notifier has started.
    go: Line<AtomicU64>,
    /// The waiter's verdict on the last round it finished: `round << 2 | once << 1 |
    /// slept` (`slept`: its re-check found nothing; `once`: it parked once).
    done: Line<AtomicU64>,
    /// Set by the notifier when it stops: the waiter stops too.
    stop: Line<AtomicU32>,
}

/// What the notifier counted.
#[derive(Debug, Default)]
struct Outcome {
    rounds: u64,
    /// Rounds in which the waiter registered and found nothing after its fence, so went
    /// to sleep (and was woken).
    slept: u64,
    /// Rounds in which the waiter went to sleep and the notifier did not wake it.
    lost: u64,
    /// Rounds not judged (module doc).
    inconclusive: u64,
    first_lost: Option<u64>,
    /// A side waited [`STUCK`] for the other.
    stuck: bool,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pins the calling thread to `cpu` (ignored where that is not allowed).
fn pin_to(cpu: usize) {
    // SAFETY: `set` is a plain `cpu_set_t`, zeroed and then filled by libc's `CPU_SET`;
    // `sched_setaffinity` reads it and changes only the calling thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A cheap pseudo-random delay for round `round`.
fn delay_of(round: u64) -> u64 {
    (round.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % DELAY_SPAN
}

fn notifier(s: &Shared, rounds: u64, until: Instant) -> Outcome {
    pin_to(0);
    let pair = &s.pair.0;
    let mut out = Outcome::default();
    for round in 1..=rounds {
        if round % 1024 == 0 && Instant::now() >= until {
            break;
        }
        // `Relaxed`: only this thread bumps the word (`wake`). Read before the store:
        // it also brings the pair's line here, so that the load of the count below is
        // answered at once, while the store waits for its line.
        let before = pair.seq.load(Ordering::Relaxed);
        let began = Instant::now();
        // `Release`: pairs with the waiter's `Acquire` wait for the round.
        s.go.0.store(round, Ordering::Release);
        for i in 0..delay_of(round) {
            std::hint::black_box(i);
        }
        // The progress, then the notify, as a producer's commit makes them.
        s.progress.0.store(round as u32, Ordering::Release);
        barrier::light();
        wake_if_parked(pair);
        let woke = pair.seq.load(Ordering::Relaxed) != before;
        let checked = began.elapsed();
        let done = loop {
            // `Acquire`: pairs with the waiter's `Release` verdict.
            let done = s.done.0.load(Ordering::Acquire);
            if done >> 2 == round {
                break done;
            }
            if began.elapsed() >= STUCK {
                out.stuck = true;
                break 0;
            }
            spin_hint();
        };
        if out.stuck {
            break;
        }
        out.rounds = round;
        let (slept, once) = (done & 1 == 1, done & 2 == 2);
        if !slept {
            continue;
        }
        if woke {
            out.slept += 1;
        } else if once && checked < CONCLUSIVE {
            out.lost += 1;
            out.first_lost = Some(round);
            break;
        } else {
            out.inconclusive += 1;
        }
    }
    // `Release`: the waiter stops waiting for a next round.
    s.stop.0.store(1, Ordering::Release);
    out
}

fn waiter(s: &Shared) {
    pin_to(1);
    let parker = Parker::new(&s.pair.0);
    for round in 1.. {
        let waited = Instant::now();
        // `Acquire`: pairs with the notifier's `Release` start of the round.
        while s.go.0.load(Ordering::Acquire) != round {
            if s.stop.0.load(Ordering::Acquire) != 0 || waited.elapsed() >= STUCK {
                return;
            }
            spin_hint();
        }
        let mut polls = 0u32;
        let mut slept = false;
        // No deadline: registered until woken, or until the idle tick (module doc).
        let _ = wait_for(Wait::Block, None, parker, &mut Tick::default(), |idle| {
            // `Acquire`: pairs with the notifier's `Release` store of the progress.
            let seen = s.progress.0.load(Ordering::Acquire) >= round as u32;
            if !idle {
                // The second look is the re-check after registering and fencing; a
                // third ends the wait after one sleep.
                polls += 1;
                slept |= polls == 2 && !seen;
            }
            seen.then_some(())
        });
        let once = polls == 3;
        // `Release`: pairs with the notifier's `Acquire` wait for the verdict.
        s.done.0.store(
            round << 2 | u64::from(once) << 1 | u64::from(slept),
            Ordering::Release,
        );
    }
}

/// Fenced mode never loses a wake-up on hardware, with the notifier's `F_n'` as built
/// (see the module doc; `--ignored`: run by `loom-tests/fence.sh`).
#[test]
#[ignore = "a hardware stress test of up to 25 s; loom-tests/fence.sh runs it"]
fn fenced_notify_never_loses_a_wake_up() {
    barrier::init();
    if !barrier::light_is_free() {
        // Light fences are full ones, and a waiter that cannot fence heavily sleeps
        // 1 ms at most (`barrier.rs`, "degraded"): nothing to catch, nothing to judge.
        eprintln!("note: membarrier is not usable here: the fenced notify stress test is void");
        return;
    }
    let rounds = env_or("SHMCHAN_STRESS_ROUNDS", ROUNDS);
    let until = Instant::now() + Duration::from_secs(env_or("SHMCHAN_STRESS_SECS", SECONDS));
    let shared = Shared::default();
    let start = Instant::now();
    let out = std::thread::scope(|scope| {
        let w = scope.spawn(|| waiter(&shared));
        let out = notifier(&shared, rounds, until);
        w.join().expect("waiter thread");
        out
    });
    eprintln!(
        "fenced notify stress: {} rounds in {:.1?}, {} slept and woken, {} not judged, \
         {} lost{}; weakened F_n' (fenced_notify): {}",
        out.rounds,
        start.elapsed(),
        out.slept,
        out.inconclusive,
        out.lost,
        out.first_lost
            .map_or(String::new(), |r| format!(" (first in round {r})")),
        cfg!(shmchan_weaken = "fenced_notify"),
    );
    assert!(!out.stuck, "a side waited {STUCK:?} for the other");
    assert_eq!(
        out.lost, 0,
        "lost a wake-up: the waiter slept with the progress already stored and no wake"
    );
}
