//! The one synchronisation shim: every atomic the ring algorithms touch comes from here.
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

/// Copies `dst.len()` bytes out of `words` with one relaxed atomic load per 8-byte word.
///
/// This is the reader half of the seqlock copy: another process may be rewriting the
/// words while we read them, so a plain `memcpy` would be a data race; relaxed atomic
/// loads are not, and the caller's stamp check afterwards discards a torn copy. It is
/// written here rather than taken from `atomic-memcpy` so that loom drives exactly the
/// copy production uses (loom's atomics cannot be overlaid on raw bytes).
#[inline(always)]
pub(crate) fn load_words(words: &[AtomicU64], dst: &mut [u8]) {
    // `Relaxed`: ordering comes from the caller's stamp load (Acquire) before and its
    // `fence(Acquire)` after, which pair with the writer's stamp stores and release fence.
    // Sliced to `dst`'s length first: that length is the record size, a constant after
    // monomorphisation, so the loop unrolls into plain moves with one bounds check.
    let words = &words[..dst.len().div_ceil(8)];
    let mut chunks = dst.chunks_exact_mut(8);
    for (word, chunk) in words.iter().zip(&mut chunks) {
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
    }
    let tail = chunks.into_remainder();
    if let Some(last) = words.last().filter(|_| !tail.is_empty()) {
        let bytes = last.load(Ordering::Relaxed).to_ne_bytes();
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
}

/// Copies `src` into `words` with one relaxed atomic store per 8-byte word; a final
/// partial word is padded with zeros. The writer half of [`load_words`].
#[inline(always)]
pub(crate) fn store_words(words: &[AtomicU64], src: &[u8]) {
    // `Relaxed`: the caller's `fence(Release)` before and stamp store (Release) after
    // give the ordering; see `load_words`, also for the slicing.
    let words = &words[..src.len().div_ceil(8)];
    let mut chunks = src.chunks_exact(8);
    for (word, chunk) in words.iter().zip(&mut chunks) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
    let tail = chunks.remainder();
    if let Some(last) = words.last().filter(|_| !tail.is_empty()) {
        let mut bytes = [0u8; 8];
        bytes[..tail.len()].copy_from_slice(tail);
        last.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
}
