//! The seqlock copy of a record: word-wise atomic copies in and out of a slot, and the
//! copy-and-check that keeps a reader from returning a torn or overwritten record.
//!
//! # Writing record `seq` (every producer)
//!
//! ```text
//! stamp := busy(seq)                  // a store (Route) or a CAS (Channel, W0)
//! fence(Release)                      // W1: orders the busy stamp before the data
//! data words .store(.., Relaxed)      // store_words
//! stamp := done(seq) (Release)        // W2: publishes the data
//! ```
//!
//! # Reading record `seq` ([`copy_if_intact`])
//!
//! ```text
//! s1 = stamp.load(Acquire)            // R1 (the caller): pairs with W2
//! data words .load(.., Relaxed)       // load_words
//! fence(Acquire)                      // R2: pairs with W1
//! s2 = stamp.load(Relaxed)
//! ok iff s1 == s2 == done(seq)
//! ```
//!
//! If the reader's copy saw any word of a later write, that word was stored after W1,
//! so R2 synchronises with W1 and the second stamp load sees at least `busy(later)`:
//! the copy is discarded. This is the seqlock argument of Boehm, "Can seqlocks get
//! along with programming language memory models?" (2012). The copies are relaxed
//! atomic word accesses, or (whole 64-byte blocks, x86_64) vector moves in inline
//! assembly that amount to relaxed atomic byte accesses (`bulk.rs`), never a plain
//! `memcpy`, so a reader racing a writer is not a data race in Rust's memory model; the
//! stamps decide which copies are kept.

use super::bulk::{self, bulk_len};
use super::RingView;
use crate::layout::{stamp_done, stamp_gap};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::weaken::weaken;

/// Copies `dst.len()` bytes out of `words`: whole 64-byte blocks with the bulk copy
/// (`bulk.rs`, x86_64), the rest with one relaxed atomic load per 8-byte word.
///
/// Another process may be rewriting the words while we read them, so a plain `memcpy`
/// would be a data race; relaxed atomic loads are not, nor is the bulk copy (see its
/// module doc), and the caller's stamp check afterwards discards a torn copy. Written
/// here rather than taken from `atomic-memcpy` so that loom drives exactly the word
/// copy production uses (loom's atomics cannot be overlaid on raw bytes; under loom
/// every byte takes the word path).
#[inline(always)]
pub(crate) fn load_words(words: &[AtomicU64], dst: &mut [u8]) {
    // Sliced to `dst`'s length first: that length is the record size, a constant after
    // monomorphisation, so the loop unrolls into plain moves with one bounds check.
    let words = &words[..dst.len().div_ceil(8)];
    let (bulk, dst) = dst.split_at_mut(bulk_len(dst.len()));
    let (bulk_words, words) = words.split_at(bulk.len() / 8);
    bulk::load(bulk_words, bulk);
    // `Relaxed`: ordering comes from the caller's stamp load (Acquire) before and its
    // `fence(Acquire)` after, which pair with the writer's stamp stores and release fence.
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

/// Copies `src` into `words`: whole 64-byte blocks with the bulk copy, the rest with
/// one relaxed atomic store per 8-byte word; a final partial word is padded with
/// zeros. The writer half of [`load_words`].
#[inline(always)]
pub(crate) fn store_words(words: &[AtomicU64], src: &[u8]) {
    let words = &words[..src.len().div_ceil(8)];
    let (bulk, src) = src.split_at(bulk_len(src.len()));
    let (bulk_words, words) = words.split_at(bulk.len() / 8);
    bulk::store(bulk_words, bulk);
    // `Relaxed`: the caller's `fence(Release)` before and stamp store (Release) after
    // give the ordering; see `load_words`, also for the slicing.
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

/// Writes the record `src` (exactly `geom.record_size` bytes, `record.rs`) into the
/// record words of the slot of `seq`, which the caller has stamped busy and fenced
/// (W1).
#[inline(always)]
pub(crate) fn write_record(view: &RingView<'_>, seq: u64, src: &[u8]) {
    store_words(&view.slots[view.geom.data_range(seq)], src);
}

/// The copy-and-check of record `seq` into `dst` (exactly `geom.record_size` bytes),
/// whose stamp the caller has just loaded (R1, `Acquire`) as `done(seq)`: copies the
/// words, then keeps the copy only if the stamp still says `done(seq)`. `false`: a
/// writer lapped us during the copy, and `dst` holds a torn copy the caller must not
/// deliver.
#[inline(always)]
pub(crate) fn copy_if_intact(view: &RingView<'_>, seq: u64, dst: &mut [u8]) -> bool {
    load_words(&view.slots[view.geom.data_range(seq)], dst);
    // R2: pairs with the producer's W1.
    if !weaken!("r2") {
        fence(Ordering::Acquire);
    }
    view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed) == stamp_done(seq)
}

/// The copy-and-check of gap marker `seq` (`layout.rs`), whose stamp the caller has just
/// loaded (R1, `Acquire`) as `gap(seq)`: the count of missing records, or `None` if a
/// writer lapped us during the copy. The count is untrusted (any `u64`).
#[inline]
pub(crate) fn gap_if_intact(view: &RingView<'_>, seq: u64) -> Option<u64> {
    let mut count = [0u8; 8];
    // Every slot has at least one data word (`Geometry`).
    load_words(&view.slots[view.geom.data_range(seq)], &mut count);
    // R2: pairs with the producer's W1.
    fence(Ordering::Acquire);
    (view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed) == stamp_gap(seq))
        .then_some(u64::from_ne_bytes(count))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_and_bulk_copies_round_trip_every_length() {
        for len in 0..=300usize {
            let words: Vec<AtomicU64> = (0..len.div_ceil(8) + 1)
                .map(|_| AtomicU64::new(u64::MAX))
                .collect();
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            store_words(&words, &src);
            let mut dst = vec![0u8; len];
            load_words(&words, &mut dst);
            assert_eq!(dst, src, "length {len}");
            if len % 8 != 0 {
                let last = words[len / 8].load(Ordering::Relaxed).to_ne_bytes();
                assert!(
                    last[len % 8..].iter().all(|&b| b == 0),
                    "padding, length {len}"
                );
            }
            assert_eq!(
                words[len.div_ceil(8)].load(Ordering::Relaxed),
                u64::MAX,
                "wrote past the record, length {len}"
            );
        }
    }
}
