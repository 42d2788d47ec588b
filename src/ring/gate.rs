//! When a lossless producer may write a slot: the cached gate on the receivers'
//! cursors (broadcast) and the consumed-slot check (unicast).
//!
//! # Broadcast, `Overflow::Block`
//!
//! A producer may write record `seq` only when every live receiver's cursor is
//! `> seq - capacity`, i.e. every live receiver has finished reading the record the
//! slot held. [`Gate`] caches the minimum cursor as `limit = min + capacity` and
//! rescans the receiver table only when the producer reaches the limit, after a
//! receiver joined, or after an eviction (rtrb's "possibly full, then really full").
//! How a producer learns of a join in time is the join protocol: `broadcast.rs`
//! ("Joining") for the `Route` producer, `multi.rs` ("Claiming") for `Channel`
//! producers.
//!
//! # Unicast
//!
//! A producer may write `seq` when the slot's previous record `seq - capacity` was
//! consumed or skipped ([`slot_free`]); no receiver cursor is involved, so a dead
//! receiver never blocks a producer, and no record is overwritten before it is taken.

use super::RingView;
use crate::layout::Stamp;
use crate::sync::{fence, Ordering};
use crate::weaken::weaken;

/// A lossless broadcast producer's cached view of the receivers' cursors: records
/// below `limit` may be written without looking at the receiver table.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Records `< limit` may be written without looking at the table.
    limit: u64,
    /// Value of `joins` when the table was last scanned.
    joins_seen: u64,
    /// A receiver joined (or was evicted) since the last scan.
    stale: bool,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            limit: 0,
            joins_seen: 0,
            stale: true,
        }
    }

    /// Whether record `seq` may be written now (rescans if the cache says no).
    #[inline]
    pub(crate) fn admits(&mut self, view: &RingView<'_>, seq: u64) -> bool {
        if self.stale || seq >= self.limit {
            self.limit = gate_limit(view);
            self.stale = false;
        }
        seq < self.limit
    }

    /// The table changed (an eviction): rescan before the next record.
    pub(crate) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Called after the producer's join fence: notes a join, so the next check
    /// rescans. Returns whether `joins` changed.
    #[inline]
    pub(crate) fn note_joins(&mut self, view: &RingView<'_>) -> bool {
        let joins = view.ctl.membership.joins.load(Ordering::Relaxed);
        if joins == self.joins_seen {
            return false;
        }
        // J2: pairs with the joiner's `Release` increment J1, so the rescan sees its
        // owner word and provisional cursor (broadcast.rs, "Joining", (a)).
        if !weaken!("j2") {
            fence(Ordering::Acquire);
        }
        self.joins_seen = joins;
        self.stale = true;
        true
    }
}

/// Lossless broadcast: the first sequence number no producer may write yet, given the
/// receivers' cursors (`u64::MAX` if there is no receiver).
pub(crate) fn gate_limit(view: &RingView<'_>) -> u64 {
    let mut min = u64::MAX;
    for entry in view.receivers {
        // `Acquire` on both: pairs with the receiver's `Release` cursor store, so its
        // reads of the slots below its cursor happen before we overwrite them.
        if entry.owner.load(Ordering::Acquire) != 0 {
            min = min.min(entry.cursor.load(Ordering::Acquire));
        }
    }
    if min == u64::MAX {
        u64::MAX
    } else {
        min.saturating_add(view.geom.capacity)
    }
}

/// Unicast: whether the slot of `seq` may be written: its previous record,
/// `seq - capacity`, was consumed or skipped, or (first lap) the slot was never used.
///
/// The previous record itself, not just "some settled record": with several producers
/// the claim of `seq - capacity` may still be unwritten when `seq` is claimed, its slot
/// then still showing a lap-older settled stamp (or nothing). Gating on that would let
/// the claimer of `seq` overwrite record `seq - capacity` once it is published and
/// before anyone took it (found by `loom-tests`, `unicast_channel_*`).
#[inline]
pub(crate) fn slot_free(view: &RingView<'_>, seq: u64) -> bool {
    // `Acquire`: pairs with the taker's C3, so its copy happens before our overwrite.
    let previous = seq.checked_sub(view.geom.capacity);
    match Stamp::decode(view.slots[view.geom.stamp_index(seq)].load(Ordering::Acquire)) {
        Stamp::Empty => previous.is_none(),
        Stamp::Settled(s) => previous.is_none_or(|p| s >= p),
        // An unconsumed or half-written older record (or an untaken gap marker): wait.
        // A stamp at or beyond `seq` (a corrupt value) does not block.
        Stamp::Done(s) | Stamp::Busy(s) | Stamp::Gap(s) => s >= seq,
    }
}
