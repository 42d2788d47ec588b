//! The one synchronisation shim: every atomic the ring algorithms touch comes from here
//! (the word copies built on them are `ring/seqlock.rs`).
//!
//! Under `--cfg loom` the types are loom's, so the `loom-tests` crate can explore every
//! interleaving of the *same* ring code that runs in production on shared memory. In a
//! normal build they are `core`'s, which have the layout of the plain integers and can
//! therefore be overlaid on a mapped segment.
//!
//! Nothing else in the crate names the atomic types, `Ordering` or the fences of
//! `core::sync::atomic` / `std::sync::atomic`: the root `clippy.toml` bans them
//! (`disallowed-types`, `disallowed-methods`; `.ci/run` runs clippy with `-D warnings`),
//! so no ring code can bypass the model checker by accident. This file is the one
//! exception, item by item. The shim is made of type aliases and wrapper functions, not
//! `use` re-exports: a re-export *is* the banned item, so clippy would flag every use of
//! it; an alias is an item of its own. Both compile to the same code as the items they
//! name (the wrappers are `#[inline(always)]`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

/// loom re-exports the standard `Ordering`.
#[cfg(loom)]
#[allow(clippy::disallowed_types)]
pub(crate) type Ordering = loom::sync::atomic::Ordering;

#[cfg(not(loom))]
#[allow(clippy::disallowed_types)]
pub(crate) type AtomicU32 = core::sync::atomic::AtomicU32;

#[cfg(not(loom))]
#[allow(clippy::disallowed_types)]
pub(crate) type AtomicU64 = core::sync::atomic::AtomicU64;

#[cfg(not(loom))]
#[allow(clippy::disallowed_types)]
pub(crate) type Ordering = core::sync::atomic::Ordering;

/// `core::sync::atomic::fence`.
#[cfg(not(loom))]
#[inline(always)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn fence(order: Ordering) {
    core::sync::atomic::fence(order)
}

/// `core::sync::atomic::compiler_fence` (the light fence of `barrier.rs`, whose loom
/// build has none).
#[cfg(not(loom))]
#[inline(always)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn compiler_fence(order: Ordering) {
    core::sync::atomic::compiler_fence(order)
}

/// A hint inside a spin loop. Under loom a spinning thread must yield, or the model
/// would explore an unbounded number of iterations of the loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
