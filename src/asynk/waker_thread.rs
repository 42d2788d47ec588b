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

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::futex::{self, WaitV, Woke, WAITV_MAX};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::IDLE_TICK;

/// How long a fallback thread with no entries stays before it exits.
const LINGER: Duration = Duration::from_secs(1);

/// The registry, as an exposed-provenance address (0: none yet in this process).
/// `AtomicU64` rather than a pointer type: the crate's atomics all come from
/// `sync.rs`, and this is a 64-bit-only crate (Linux x86-64 and aarch64).
static REGISTRY: AtomicU64 = AtomicU64::new(0);
/// Bumped in a forked child: registrations made before belong to the parent.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// Whether the fork handler is installed (0 no, 1 yes).
static AT_FORK: AtomicU32 = AtomicU32::new(0);

/// One future's place in the registry.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: &'static Registry,
    epoch: u64,
    id: u64,
}

impl Slot {
    /// Registered in this process (not in the parent of a fork).
    fn valid(&self) -> bool {
        // `Relaxed`: bumped only in a child, before its first thread runs.
        self.epoch == FORKS.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Waitv,
    Fallback,
}

#[derive(Debug)]
struct Registry {
    mode: Mode,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    entries: Vec<Entry>,
    threads: Vec<ThreadInfo>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// The thread that serves it.
    thread: u64,
    word: usize,
    expected: u32,
    deadline: Instant,
    /// `Some` while armed.
    waker: Option<Waker>,
    /// Fired, and not armed since: its future has been woken and not polled again.
    fired: bool,
    /// The CPU its future was last armed from (`-1`: unknown), where its task is likely
    /// to run when woken.
    cpu: i32,
}

impl Entry {
    fn fire(&mut self) -> Option<Waker> {
        let waker = self.waker.take()?;
        self.fired = true;
        Some(waker)
    }
}

#[derive(Debug)]
struct ThreadInfo {
    id: u64,
    /// `futex_waitv` threads: bumped when the thread's entries change.
    control: Arc<AtomicU32>,
    /// Fallback threads: the word the thread waits on.
    word: Option<usize>,
    /// Fallback threads: where the thread waits while it has no armed entry.
    idle: Arc<Condvar>,
    /// `futex_waitv` threads: words it keeps watching after a wake (see "Ghosts").
    ghosts: Vec<Ghost>,
    /// `futex_waitv` threads: the timeout of the call it is in (or about to make).
    waiting_until: Option<Instant>,
    /// `futex_waitv` threads: `false` from a wake it is handling until its next
    /// rebuild, which lists every entry armed meanwhile (so arming needs no wake).
    in_call: bool,
    /// Entries it serves (armed or not).
    entries: usize,
}

/// A word a `futex_waitv` thread goes on watching after a wake on it, at the value one
/// bump past the one it woke from: the next future on that word usually expects just
/// that (a ping-pong's next record), and can then be armed without waking the thread to
/// rebuild its list. A ghost wakes nobody; it expires after an idle tick.
#[derive(Debug, Clone, Copy)]
struct Ghost {
    word: usize,
    expected: u32,
    until: Instant,
    /// In the thread's current call.
    listed: bool,
}

fn lock(registry: &Registry) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves the registry consistent (every update is a
    // single step): go on.
    registry
        .inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

extern "C" fn after_fork_in_child() {
    // `Relaxed`: the child has one thread now.
    REGISTRY.store(0, Ordering::Relaxed);
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Whether the test-only variable `SHMCHAN_TEST_NO_FUTEX_WAITV` asks for the fallback
/// (compiled in only with the `test-hooks` feature; read with libc's lock-free
/// `getenv`, as in `barrier.rs`).
#[cfg(feature = "test-hooks")]
fn test_no_waitv() -> bool {
    // SAFETY: `getenv` reads the environment through a valid NUL-terminated name; the
    // crate never modifies the environment.
    unsafe { !libc::getenv(c"SHMCHAN_TEST_NO_FUTEX_WAITV".as_ptr()).is_null() }
}

#[cfg(not(feature = "test-hooks"))]
fn test_no_waitv() -> bool {
    false
}

/// This process's registry, created on first use.
fn registry() -> &'static Registry {
    // `Acquire`: pairs with the `AcqRel` publication below, so the registry is seen
    // initialised.
    let addr = REGISTRY.load(Ordering::Acquire);
    if addr != 0 {
        // SAFETY: a non-zero value is the address of a leaked `Registry` (below),
        // never freed.
        return unsafe { &*std::ptr::with_exposed_provenance::<Registry>(addr as usize) };
    }
    if AT_FORK.swap(1, Ordering::Relaxed) == 0 {
        // SAFETY: registers a handler with no arguments that only stores to static
        // atomics, which is async-signal-safe as a fork child handler must be.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    }
    let mode = if !test_no_waitv() && futex::waitv_supported() {
        Mode::Waitv
    } else {
        Mode::Fallback
    };
    let ours: &'static Registry = Box::leak(Box::new(Registry {
        mode,
        inner: Mutex::new(Inner::default()),
    }));
    let ours_addr = (ours as *const Registry).expose_provenance() as u64;
    // `AcqRel`/`Acquire`: publishes our registry, or sees the one that won.
    match REGISTRY.compare_exchange(0, ours_addr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => ours,
        // Lost the race: ours stays leaked (a few hundred bytes, once).
        // SAFETY: as above.
        Err(addr) => unsafe { &*std::ptr::with_exposed_provenance::<Registry>(addr as usize) },
    }
}

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

fn leave_thread(inner: &mut Inner, thread: u64) {
    if let Some(t) = inner.threads.iter_mut().find(|t| t.id == thread) {
        t.entries = t.entries.saturating_sub(1);
    }
}

/// The thread a new entry on `word` goes to, started if need be.
fn thread_for(registry: &'static Registry, inner: &mut Inner, word: usize) -> u64 {
    let existing = match registry.mode {
        // One word of each call is the control word.
        Mode::Waitv => inner.threads.iter_mut().find(|t| t.entries < WAITV_MAX - 1),
        Mode::Fallback => inner.threads.iter_mut().find(|t| t.word == Some(word)),
    };
    if let Some(t) = existing {
        t.entries += 1;
        return t.id;
    }
    let id = inner.next_id;
    inner.next_id += 1;
    let control = Arc::new(AtomicU32::new(0));
    let idle = Arc::new(Condvar::new());
    let (mode, thread_control, thread_idle) =
        (registry.mode, Arc::clone(&control), Arc::clone(&idle));
    std::thread::Builder::new()
        .name("shmchan-waker".into())
        .spawn(move || match mode {
            Mode::Waitv => run_waitv(registry, id, &thread_control),
            Mode::Fallback => run_word(registry, id, word, &thread_idle),
        })
        .expect("failed to start the shmchan-waker thread");
    inner.threads.push(ThreadInfo {
        id,
        control,
        word: (registry.mode == Mode::Fallback).then_some(word),
        idle,
        ghosts: Vec::new(),
        waiting_until: None,
        in_call: false,
        entries: 1,
    });
    id
}

/// Fires the armed entries of `thread` whose deadline has passed.
fn fire_expired(inner: &mut Inner, thread: u64, now: Instant, wake: &mut Vec<Waker>) {
    fire_into(inner, thread, |e| e.deadline <= now, wake);
}

/// Fires the armed entries of `thread` that `which` selects.
fn fire_where(
    registry: &Registry,
    thread: u64,
    which: impl Fn(&Entry) -> bool,
    wake: &mut Vec<Waker>,
) {
    fire_into(&mut lock(registry), thread, which, wake);
}

/// Fires the armed entries of `thread` that `which` selects into `wake`: `true` if one
/// of them was armed from the CPU this thread runs on.
fn fire_into(
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
fn current_cpu() -> i32 {
    // SAFETY: `sched_getcpu` takes nothing and writes no memory of ours (glibc reads it
    // from the thread's rseq area, or through the vDSO's `getcpu`).
    unsafe { libc::sched_getcpu() }
}

/// Gives the CPU to another runnable thread on it, if any.
fn yield_cpu() {
    // SAFETY: `sched_yield` takes nothing and cannot fail on Linux.
    unsafe {
        libc::sched_yield();
    }
}

/// A `futex_waitv` thread.
fn run_waitv(registry: &'static Registry, me: u64, control: &AtomicU32) {
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
fn run_word(registry: &'static Registry, me: u64, word: usize, idle: &Condvar) {
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
