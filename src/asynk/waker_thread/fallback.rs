//! A fallback thread, where the kernel refuses `futex_waitv`: plain `FUTEX_WAIT` on one
//! word, for the entries armed on it; it exits after [`LINGER`] without entries
//! (module doc of `waker_thread`, "Threads").

use std::sync::Condvar;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::fire::{fire_expired, fire_where};
use super::registry::{lock, Inner, Registry};
use crate::asynk::futex::{self, Woke};

/// How long a fallback thread with no entries stays before it exits.
const LINGER: Duration = Duration::from_secs(1);

/// What a fallback thread does next.
enum Plan {
    /// No armed entry: wait for one.
    Idle,
    /// Armed entries expect different values: at most one of them is current.
    Probe(u32),
    /// Every armed entry expects this value: sleep while the word holds it.
    Wait(u32, Instant),
}

/// A fallback thread: plain `FUTEX_WAIT` on one word.
pub(super) fn run_word(registry: &'static Registry, me: u64, word: usize, idle: &Condvar) {
    let mut wake: Vec<Waker> = Vec::new();
    loop {
        let plan = {
            let mut inner = lock(registry);
            fire_expired(&mut inner, me, Instant::now(), &mut wake);
            let mut armed = inner
                .entries
                .iter()
                .filter(|e| e.thread == me && e.waker.is_some());
            match armed.next() {
                None => Plan::Idle,
                Some(first) => {
                    let v = first.expected;
                    let mut deadline = first.deadline;
                    let mut same = true;
                    for e in armed {
                        same &= e.expected == v;
                        deadline = deadline.min(e.deadline);
                    }
                    if same {
                        Plan::Wait(v, deadline)
                    } else {
                        Plan::Probe(v)
                    }
                }
            }
        };
        wake.drain(..).for_each(Waker::wake);
        match plan {
            Plan::Idle => {
                let inner = lock(registry);
                let has_armed = |inner: &mut Inner| {
                    inner
                        .entries
                        .iter()
                        .any(|e| e.thread == me && e.waker.is_some())
                };
                let (mut inner, timeout) = idle
                    .wait_timeout_while(inner, LINGER, |inner| !has_armed(inner))
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if timeout.timed_out() && !inner.entries.iter().any(|e| e.thread == me) {
                    inner.threads.retain(|t| t.id != me);
                    return;
                }
            }
            Plan::Probe(v) => match futex::wait_one(word, v, Some(Duration::ZERO)) {
                Woke::TimedOut => fire_where(registry, me, |e| e.expected != v, &mut wake),
                Woke::Interrupted => {}
                _ => fire_where(registry, me, |e| e.expected == v, &mut wake),
            },
            Plan::Wait(v, deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match futex::wait_one(word, v, Some(left)) {
                    Woke::TimedOut | Woke::Interrupted => {}
                    Woke::Moved => fire_where(registry, me, |e| e.expected == v, &mut wake),
                    Woke::Index(_) | Woke::Failed(_) => {
                        fire_where(registry, me, |_| true, &mut wake)
                    }
                }
            }
        }
    }
}
