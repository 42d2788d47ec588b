//! The one synchronisation shim: every atomic the ring algorithms touch comes from here
//! (the word copies built on them are `ring/seqlock.rs`).
//!
//! Under `--cfg loom` the types are loom's, so the `loom-tests` crate can explore every
//! interleaving of the *same* ring code that runs in production on shared memory. In a
//! normal build they are `core`'s, which have the layout of the plain integers and can
//! therefore be overlaid on a mapped segment.
//!
//! Nothing else in `src/` names `core::sync::atomic` or `std::sync::atomic` (`.ci/run`
//! checks it), so no ring code can bypass the model checker by accident.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};

/// A hint inside a spin loop. Under loom a spinning thread must yield, or the model
/// would explore an unbounded number of iterations of the loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
