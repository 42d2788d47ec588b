//! Fork detection: a handle belongs to the process that opened it.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, handle::*, open::*, receiver::*, sender::*, wait::*};

/// Bumped in the child of every `fork()` (a `pthread_atfork` handler), so a handle can
/// tell with one load that it is used in a child of the process that opened it.
pub(crate) static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) extern "C" fn after_fork_in_child() {
    // `Relaxed`: the child is single-threaded when this runs, and reads it later on the
    // same thread (or on threads it starts, which synchronise with their creation).
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn install_fork_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only increments an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The process a handle was opened in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) generation: u64,
    pub(crate) pid: u32,
}

impl Owner {
    pub(crate) fn current() -> Self {
        Owner {
            generation: FORK_GENERATION.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    pub(crate) fn check(&self, what: &str) -> PyResult<()> {
        if FORK_GENERATION.load(Ordering::Relaxed) == self.generation {
            return Ok(());
        }
        Err(Error::new_err(format!(
            "this {what} was opened by process {} and cannot be used in a forked child \
             (pid {}): open a new one in the child (multiprocessing's 'spawn' start method \
             avoids inheriting handles)",
            self.pid,
            std::process::id()
        )))
    }
}
