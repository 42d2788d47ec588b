//! The read-only *observer* behind `shmchan tail` and `stats::Observer::tail`: reads
//! records of any ring without taking part in it.
//!
//! It validates each record with the seqlock check of `seqlock.rs` (a torn or
//! overwritten record is never reported as one), but its cursor is the caller's own
//! and it stores nothing to shared memory: it takes no receiver entry, never gates a
//! lossless producer, and works on a read-only mapping. Since no producer waits for
//! it, a slow observer is lapped like an `Overwrite` receiver, in every mode.
//!
//! Producers write record words only with relaxed atomic stores (`seqlock.rs`; a loan
//! is staged and copied the same way), so an observer reading a slot that a producer is
//! rewriting races with nothing: the stamps decide which copies are kept.

use super::broadcast::{lapped_count, Read};
use super::gaps::locate;
use super::seqlock::{gap_if_intact, load_words};
use super::RingView;
use crate::layout::{stamp_done, stamp_gap, stamp_settled};
use crate::sync::{fence, Ordering};

/// Reads record `*cursor` into `dst` as a read-only *observer* (`shmchan tail`), and
/// moves `*cursor` past it. `Read::Record(())` means `dst` holds the record;
/// `Read::Lagged(n)` that the producer lapped the cursor, which now points at the
/// oldest record that may still be present, or a gap marker. `*extra` is `E(*cursor)`
/// (`broadcast.rs`, "Gap markers and laps"; [`locate`] gives it for a starting
/// cursor), kept up to date here, so `n` counts the producer's records. An observer is
/// never woken and never puts a lap off: a lap met while a gap marker is in flight is
/// counted from the sums as they stand (best effort, like the rest of the observer).
///
/// The same seqlock validation as [`Consumer::try_read_into`](super::broadcast::Consumer::try_read_into) (a torn or overwritten record
/// is never reported as one), but the cursor is the caller's own and nothing is stored
/// to shared memory: the observer takes no receiver entry, never gates a lossless
/// producer, and works on a read-only mapping. For that last reason each load is a
/// `Relaxed` load of 8 bytes (defined on read-only memory) followed by a
/// `fence(Acquire)` where `try_read_into` has an `Acquire` load: a relaxed load followed by
/// an acquire fence synchronises with the same release store. `dst` is at most the
/// record's words long (the caller passes the record size).
pub fn observe(view: &RingView<'_>, cursor: &mut u64, extra: &mut u64, dst: &mut [u8]) -> Read<()> {
    // Bounded: each round either returns or skips one settled slot.
    for _ in 0..=view.geom.capacity {
        let seq = *cursor;
        let want = stamp_done(seq);
        let stamp = &view.slots[view.geom.stamp_index(seq)];
        let s1 = stamp.load(Ordering::Relaxed);
        // R1 (relaxed load + acquire fence): pairs with the producer's W2.
        fence(Ordering::Acquire);
        if s1 < want {
            return Read::Empty;
        }
        if s1 == want {
            let words = &view.slots[view.geom.data_range(seq)];
            let len = dst.len().min(words.len() * 8);
            load_words(words, &mut dst[..len]);
            // R2: pairs with the producer's W1, as in `try_read`.
            fence(Ordering::Acquire);
            if stamp.load(Ordering::Relaxed) == want {
                *cursor = seq.wrapping_add(1);
                return Read::Record(());
            }
        } else if s1 == stamp_settled(seq) {
            // A skipped `Channel` claim (or, in unicast, a consumed record): no record.
            *cursor = seq.wrapping_add(1);
            continue;
        } else if s1 == stamp_gap(seq) {
            // A gap marker: the records its sender says are missing, as a lag (the
            // copy-and-check of `seqlock.rs`, loads only).
            if let Some(missing) = gap_if_intact(view, seq) {
                *cursor = seq.wrapping_add(1);
                *extra = extra.wrapping_add(missing.wrapping_sub(1));
                return Read::Lagged(missing);
            }
        }
        // Lapped: as `Consumer::resync`, without the shared counters (`locate` only
        // loads, so it reads a read-only mapping).
        let at = locate(view, seq.wrapping_add(1), Some(*extra), 0);
        let skipped = lapped_count(seq, at.next, *extra, at.extra);
        (*cursor, *extra) = (at.next, at.extra);
        return Read::Lagged(skipped);
    }
    Read::Empty
}
