//! Counting in the producer's record numbers across gap markers: the accounting a
//! gap's publication does (`extra_started`, `extra_done` on the membership line) and
//! what a receiver reads of it when it is lapped or joins. The algorithm, its
//! orderings and why the count is exact are in `broadcast.rs`, "Gap markers and laps";
//! this file names its steps G1 to G3 (producer) and L1 to L4 (reader) as that section
//! does.

use super::record::Record;
use super::seqlock::gap_if_intact;
use super::table::sweep_parked;
use super::RingView;
use crate::layout::stamp_gap;
use crate::process::ProcLiveness;
use crate::sync::{fence, spin_hint, Ordering};
use crate::weaken::{light_fence, weaken};

/// How many times [`locate`] reads the counters and scans before it returns an
/// estimate (not exact): a gap in flight is normally a few stores long, and only a
/// producer that died inside one keeps the counters apart for good. Under loom once:
/// putting the lap off and waiting for the gap (L5) is what the models explore.
const ATTEMPTS: u32 = if cfg!(loom) { 1 } else { 4 };

/// How many more times a joining receiver calls [`locate`] before it takes an
/// estimate (`locate_at_join`).
const JOIN_ROUNDS: u32 = 16;

/// The extra records (beyond its one slot) that gap marker `marker` stands for:
/// `n - 1`, wrapping (a count of 0 is never published, `RawSender::publish_gap`).
#[inline]
pub(super) fn extra_of<R: Record + ?Sized>(marker: &R) -> u64 {
    let bytes = marker.bytes();
    let mut count = [0u8; 8];
    let len = bytes.len().min(8);
    count[..len].copy_from_slice(&bytes[..len]);
    u64::from_ne_bytes(count).wrapping_sub(1)
}

/// G1: a gap marker standing for `extra` more records is about to be published (before
/// its claim, stamp and `head` store). Nothing to do for a gap of one record.
#[cold]
pub(super) fn started(view: &RingView<'_>, extra: u64) {
    if extra != 0 {
        // `Relaxed`: G1 is sequenced before the claim CAS (`Channel`), the gap stamp
        // and the `head` store, all `Release`; a reader that learns of the gap through
        // any of them (`Acquire`) reads `extra_started` at or after G1 (coherence).
        view.ctl
            .membership
            .extra_started
            .fetch_add(extra, Ordering::Relaxed);
    }
}

/// G3, after the send of the marker announced by [`started`] returned: `published`
/// (its stamp and, on a `Route`, `head` are stored) adds `extra` to `extra_done`;
/// otherwise takes it back from `extra_started` (nothing was published).
#[cold]
pub(super) fn finished(view: &RingView<'_>, extra: u64, published: bool) {
    if extra == 0 {
        return;
    }
    let membership = &view.ctl.membership;
    if published {
        // `Release`: pairs with L1 (`Acquire`): a reader that sees the count sees the
        // gap stamp (G2) and the `head` store past it.
        membership.extra_done.fetch_add(extra, Ordering::Release);
        // A receiver may have put off a lap while this gap was in flight and gone to
        // sleep: the counters agreeing is progress for it. F_g: light, pairs with its
        // F_w (`wait.rs`), as F_p does for a record.
        light_fence!("gap_fg");
        if view.wake_data() {
            sweep_parked(view, &ProcLiveness);
        }
    } else {
        // `Relaxed`: no stamp was published, so nothing has to be seen with it.
        membership.extra_started.fetch_sub(extra, Ordering::Relaxed);
    }
}

/// Where a receiver resumes and how many extra records the gap markers below that
/// point stand for (`E`, `broadcast.rs`, "Gap markers and laps").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The sequence number to resume at: `max(from, head - capacity)`, or past a slot
    /// overwritten during the scan.
    pub next: u64,
    /// `E(next)`: the sum of `n - 1` over the gap markers below `next`.
    pub extra: u64,
    /// Whether `extra` is exact: the counters agreed around the scan and `head` was
    /// at or past `next` (L4). Otherwise an estimate (a gap was in flight throughout,
    /// or a producer died inside one).
    pub exact: bool,
    /// `extra_started - extra_done` as last read: what a receiver that settles for
    /// the estimate takes as the sums' lasting difference (`apart` of [`locate`]).
    pub apart: u64,
}

/// L1 to L4: a position at or after `from` that the ring may still hold, and `E` there.
/// `known`: `E(c)` for a position `c <= from` with no gap marker read since (a lapped
/// receiver's own count), which spares the scan when no gap was published since.
/// `apart`: the difference of the sums that stays for good (0, or the `n - 1` of a gap
/// whose producer died inside its accounting, once the receiver has settled for it).
///
/// Only loads (a relaxed load followed by `fence(Acquire)` where an `Acquire` load is
/// meant), so an observer on a read-only mapping may call it. Bounded: at most
/// [`ATTEMPTS`] rounds of at most `capacity` stamps each. Counts from shared memory are
/// untrusted: wrapping arithmetic only.
pub fn locate(view: &RingView<'_>, from: u64, known: Option<u64>, apart: u64) -> Located {
    let membership = &view.ctl.membership;
    let mut estimate = Located {
        next: from,
        extra: known.unwrap_or(0),
        exact: false,
        apart,
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            spin_hint();
        }
        // L1: pairs with G3's `Release` (the gaps counted here are stamped, and
        // `head` is past them).
        let done = membership.extra_done.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        // L2: pairs with the `Release` store of `head` (`Route`) or the release
        // sequence of the claim CASes (`Channel`).
        let head = view.ctl.head.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let mut next = head.saturating_sub(view.geom.capacity).max(from);
        let mut gaps = 0u64;
        let quick = known == Some(done);
        if !quick {
            // L3: the gap markers of `[next, head)`, at most `capacity` slots, from the
            // top down. A slot already overwritten says nothing about its old sequence
            // number: resume after it (the slots below it are older still). Every
            // marker in the window is one the receiver has not counted (all are at or
            // above `from`), so once they add up to `done - known`, all the markers
            // published since its count are found and the rest of the window has none.
            let wanted = known.map(|k| done.wrapping_sub(k));
            let mut seq = head;
            // `head - next <= capacity` rounds (`next >= head - capacity`).
            for _ in 0..view.geom.capacity {
                if seq <= next {
                    break;
                }
                seq = seq.wrapping_sub(1);
                let stamp = view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed);
                // Pairs with the producer's `Release` stamp store (W2), as R1.
                fence(Ordering::Acquire);
                let gap = stamp_gap(seq);
                if stamp == gap {
                    match gap_if_intact(view, seq) {
                        Some(n) => gaps = gaps.wrapping_add(n.wrapping_sub(1)),
                        None => {
                            next = seq.wrapping_add(1);
                            break;
                        }
                    }
                } else if stamp > gap {
                    next = seq.wrapping_add(1);
                    break;
                }
                if Some(gaps) == wanted {
                    break;
                }
            }
        }
        // L4: after the scan's acquire fences. `Relaxed`: a gap we learnt of (its
        // stamp, a `head` or claim past it) was announced (G1) before, so this load
        // sees it (coherence).
        let started = membership.extra_started.load(Ordering::Relaxed);
        // A `head` below `next` is a stale view (we saw the slot of `from - 1`
        // overwritten, so `head` is past it): a gap there may be uncounted yet.
        let difference = started.wrapping_sub(done);
        let exact = (difference == apart || weaken!("gap_started")) && head >= next;
        estimate = Located {
            next,
            extra: if quick { done } else { done.wrapping_sub(gaps) },
            exact,
            apart: difference,
        };
        if exact {
            return estimate;
        }
    }
    estimate
}

/// [`locate`] for a receiver joining at `start` (no count of its own yet): a gap in
/// flight at the head is a few stores from done, so ask again a bounded number of
/// times; then take the estimate.
pub(super) fn locate_at_join(view: &RingView<'_>, start: u64) -> Located {
    let mut at = locate(view, start, None, 0);
    for _ in 0..JOIN_ROUNDS {
        if at.exact {
            break;
        }
        spin_hint();
        at = locate(view, start, None, 0);
    }
    at
}
