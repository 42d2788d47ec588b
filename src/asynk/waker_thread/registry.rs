//! The registry: one per process, created on first use, holding the entries of the
//! waiting futures and a record of each waker thread; starting a thread for a new
//! entry; and the fork handler (module doc of `waker_thread`, "Registry", "Fork").

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use super::fallback::run_word;
use super::waitv::run_waitv;
use crate::asynk::futex::{self, WAITV_MAX};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The registry, as an exposed-provenance address (0: none yet in this process).
/// `AtomicU64` rather than a pointer type: the crate's atomics all come from
/// `sync.rs`, and this is a 64-bit-only crate (Linux x86-64 and aarch64).
pub(super) static REGISTRY: AtomicU64 = AtomicU64::new(0);
/// Bumped in a forked child: registrations made before belong to the parent.
pub(super) static FORKS: AtomicU64 = AtomicU64::new(0);
/// Whether the fork handler is installed (0 no, 1 yes).
static AT_FORK: AtomicU32 = AtomicU32::new(0);

/// One future's place in the registry.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(super) registry: &'static Registry,
    pub(super) epoch: u64,
    pub(super) id: u64,
}

impl Slot {
    /// Registered in this process (not in the parent of a fork).
    pub(super) fn valid(&self) -> bool {
        // `Relaxed`: bumped only in a child, before its first thread runs.
        self.epoch == FORKS.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Waitv,
    Fallback,
}

#[derive(Debug)]
pub(super) struct Registry {
    pub(super) mode: Mode,
    pub(super) inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) next_id: u64,
    pub(super) entries: Vec<Entry>,
    pub(super) threads: Vec<ThreadInfo>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: u64,
    /// The thread that serves it.
    pub(super) thread: u64,
    pub(super) word: usize,
    pub(super) expected: u32,
    pub(super) deadline: Instant,
    /// `Some` while armed.
    pub(super) waker: Option<Waker>,
    /// Fired, and not armed since: its future has been woken and not polled again.
    pub(super) fired: bool,
    /// The CPU its future was last armed from (`-1`: unknown), where its task is likely
    /// to run when woken.
    pub(super) cpu: i32,
}

impl Entry {
    pub(super) fn fire(&mut self) -> Option<Waker> {
        let waker = self.waker.take()?;
        self.fired = true;
        Some(waker)
    }
}

#[derive(Debug)]
pub(super) struct ThreadInfo {
    pub(super) id: u64,
    /// `futex_waitv` threads: bumped when the thread's entries change.
    pub(super) control: Arc<AtomicU32>,
    /// Fallback threads: the word the thread waits on.
    pub(super) word: Option<usize>,
    /// Fallback threads: where the thread waits while it has no armed entry.
    pub(super) idle: Arc<Condvar>,
    /// `futex_waitv` threads: words it keeps watching after a wake (see "Ghosts").
    pub(super) ghosts: Vec<Ghost>,
    /// `futex_waitv` threads: the timeout of the call it is in (or about to make).
    pub(super) waiting_until: Option<Instant>,
    /// `futex_waitv` threads: `false` from a wake it is handling until its next
    /// rebuild, which lists every entry armed meanwhile (so arming needs no wake).
    pub(super) in_call: bool,
    /// Entries it serves (armed or not).
    pub(super) entries: usize,
}

/// A word a `futex_waitv` thread goes on watching after a wake on it, at the value one
/// bump past the one it woke from: the next future on that word usually expects just
/// that (a ping-pong's next record), and can then be armed without waking the thread to
/// rebuild its list. A ghost wakes nobody; it expires after an idle tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ghost {
    pub(super) word: usize,
    pub(super) expected: u32,
    pub(super) until: Instant,
    /// In the thread's current call.
    pub(super) listed: bool,
}

pub(super) fn lock(registry: &Registry) -> MutexGuard<'_, Inner> {
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
pub(super) fn registry() -> &'static Registry {
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

pub(super) fn leave_thread(inner: &mut Inner, thread: u64) {
    if let Some(t) = inner.threads.iter_mut().find(|t| t.id == thread) {
        t.entries = t.entries.saturating_sub(1);
    }
}

/// The thread a new entry on `word` goes to, started if need be.
pub(super) fn thread_for(registry: &'static Registry, inner: &mut Inner, word: usize) -> u64 {
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
