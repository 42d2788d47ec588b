//! A `futex_waitv` thread: one call on the words of up to 127 armed entries, its
//! ghosts and its control word; then fires what the call reports (module doc of
//! `waker_thread`, "Threads" and "Yielding to the task").

use std::task::Waker;
use std::time::{Duration, Instant};

use super::fire::{fire_expired, fire_into, yield_cpu};
use super::registry::{lock, Entry, Ghost, Registry};
use crate::asynk::futex::{self, WaitV, Woke, WAITV_MAX};
use crate::sync::{AtomicU32, Ordering};
use crate::wait::IDLE_TICK;

/// A `futex_waitv` thread.
pub(super) fn run_waitv(registry: &'static Registry, me: u64, control: &AtomicU32) {
    // (entry id, or `None` for a ghost; word; expected) of the words in the current
    // call, after the control word.
    let mut list: Vec<(Option<u64>, usize, u32)> = Vec::new();
    let mut words: Vec<WaitV> = Vec::with_capacity(WAITV_MAX);
    let mut wake: Vec<Waker> = Vec::new();
    loop {
        let (c, deadline) = {
            let mut guard = lock(registry);
            let inner = &mut *guard;
            let now = Instant::now();
            fire_expired(inner, me, now, &mut wake);
            list.clear();
            list.extend(
                inner
                    .entries
                    .iter()
                    .filter(|e| e.thread == me && e.waker.is_some())
                    .map(|e| (Some(e.id), e.word, e.expected)),
            );
            let mut deadline = inner
                .entries
                .iter()
                .filter(|e| e.thread == me && e.waker.is_some())
                .map(|e| e.deadline)
                .min();
            if let Some(info) = inner.threads.iter_mut().find(|t| t.id == me) {
                info.ghosts.retain(|g| g.until > now);
                for g in &mut info.ghosts {
                    // An armed entry on the word watches it already. Listing the ghost
                    // too, at another value, would fail the call at once (`EAGAIN`: the
                    // word cannot hold both values) and cost a probe per listed word.
                    let watched = list.iter().any(|&(_, w, _)| w == g.word);
                    g.listed = !watched && list.len() < WAITV_MAX - 1;
                    if g.listed {
                        list.push((None, g.word, g.expected));
                        deadline = Some(deadline.map_or(g.until, |d| d.min(g.until)));
                    }
                }
                info.waiting_until = deadline;
                info.in_call = true;
            }
            // `Relaxed`: read under the lock that `arm` bumps it under.
            (control.load(Ordering::Relaxed), deadline)
        };
        wake.drain(..).for_each(Waker::wake);
        words.clear();
        words.push(WaitV::private(control, c));
        words.extend(list.iter().map(|&(_, w, v)| WaitV::shared(w, v)));
        let mut near = false;
        match futex::waitv(&words, deadline) {
            Woke::Index(0) | Woke::TimedOut | Woke::Interrupted => {}
            Woke::Index(i) => {
                if let Some(&(_, w, v)) = list.get(i - 1) {
                    let mut inner = lock(registry);
                    near |= fire_into(&mut inner, me, |e| e.word == w, &mut wake);
                    if let Some(info) = inner.threads.iter_mut().find(|t| t.id == me) {
                        // It rebuilds its list before it waits again.
                        info.in_call = false;
                        info.ghosts.retain(|g| g.word != w);
                        info.ghosts.push(Ghost {
                            word: w,
                            expected: v.wrapping_add(1),
                            until: Instant::now() + IDLE_TICK,
                            listed: false,
                        });
                    }
                }
            }
            Woke::Moved | Woke::Failed(_) => {
                if control.load(Ordering::Relaxed) != c {
                    // Our list changed: rebuild it first.
                    continue;
                }
                // Which word moved (or is gone)? Ask the kernel about each.
                for &(id, w, v) in &list {
                    if futex::wait_one(w, v, Some(Duration::ZERO)) == Woke::TimedOut {
                        continue;
                    }
                    let mut inner = lock(registry);
                    // Entries armed on a listed ghost's value are fired with it.
                    let which = |e: &Entry| {
                        e.word == w && e.expected == v && id.is_none_or(|id| e.id == id)
                    };
                    near |= fire_into(&mut inner, me, which, &mut wake);
                    if id.is_none() {
                        if let Some(info) = inner.threads.iter_mut().find(|t| t.id == me) {
                            info.ghosts.retain(|g| g.word != w || g.expected != v);
                        }
                    }
                }
            }
        }
        // Wake the tasks now, before the next round rebuilds the list under the lock.
        wake.drain(..).for_each(Waker::wake);
        if near {
            // A task woken on this CPU runs only once this thread leaves it: let it run
            // first ("Yielding to the task", above).
            yield_cpu();
        }
    }
}
