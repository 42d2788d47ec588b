//! The one producer of a `Route` (`Mode::Broadcast` and `Mode::Unicast`).
//!
//! Only the holder of the sender claim (`table.rs`) runs a [`Single`] producer, so it
//! owns `head` and writes slots without any read-modify-write: record `seq` goes into
//! slot `seq & (capacity - 1)` with the seqlock protocol of `seqlock.rs` (busy stamp,
//! W1, words, W2 done stamp), then `head` moves to `seq + 1`.
//!
//! # Committing
//!
//! ```text
//! stamp.store(done(seq), Release)     // W2
//! head.store(seq + 1, Release)        // a joiner or a lapped reader starts from head
//! light fence                         // F_p: pairs with F_r (join) and F_w (park)
//! joins.load(Relaxed)                 // lossless broadcast: a join? rescan next time
//! data.waiters.load(Relaxed)          // wake sleeping receivers if any
//! ```
//!
//! Why one unchecked record after a join is harmless for the single producer is the
//! join protocol, `broadcast.rs` ("Joining").
//!
//! # Gating
//!
//! Lossless broadcast gates on the receivers' cursors and unicast on the slot's
//! previous record being consumed (`gate.rs`); Overwrite never waits.
//!
//! # Taking over from a dead producer
//!
//! A new producer starts at `head`, unless the slot of `head` already holds record
//! `head` published (`done(head)`), or published and consumed (`settled(head)`,
//! unicast): the previous producer died between its stamp store and its `head` store,
//! receivers may have read that record, and the new producer starts one further (a
//! stamp that went backwards would hide the record or deliver it twice). A slot left
//! `busy` is simply rewritten.

use super::gate::{slot_free, Gate};
use super::table::{evict_blocking, sweep_parked};
use super::RingView;
use crate::layout::{stamp_busy, stamp_done, Stamp};
use crate::process::{Liveness, ProcLiveness};
use crate::sync::{fence, Ordering};
use crate::weaken::{light_fence, ordering, weaken};

/// The `Route` producer's private state.
#[derive(Debug)]
pub struct Single {
    owner: u64,
    /// Sequence number of the next record.
    next: u64,
    /// Lossless broadcast: the cached gate on the receivers' cursors.
    gate: Gate,
}

impl Single {
    /// Attaches to the ring as its producer. The caller holds the sender claim for
    /// `owner`, so no other producer runs.
    pub fn attach(view: &RingView<'_>, owner: u64) -> Single {
        // `Acquire`: pairs with the previous producer's `Release` stores of head/stamps.
        let head = view.ctl.head.load(Ordering::Acquire);
        let stamp = view.slots[view.geom.stamp_index(head)].load(Ordering::Acquire);
        let next = match Stamp::decode(stamp) {
            Stamp::Done(s) | Stamp::Settled(s) if s == head => head.wrapping_add(1),
            _ => head,
        };
        if next != head {
            view.ctl.head.store(next, Ordering::Release);
        }
        Single {
            owner,
            next,
            gate: Gate::new(),
        }
    }

    /// Whether this process still holds the sender claim.
    #[inline]
    pub fn holds_role(&self, view: &RingView<'_>) -> bool {
        view.ctl.membership.sender.load(Ordering::Relaxed) == self.owner
    }

    /// The owner word this producer attached with.
    pub fn owner(&self) -> u64 {
        self.owner
    }

    /// Sequence number the next record will get (= records published so far).
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// May the next record be written now? Always `true` in Overwrite.
    #[inline]
    pub fn has_space(&mut self, view: &RingView<'_>) -> bool {
        if view.unicast {
            slot_free(view, self.next)
        } else if view.lossless {
            self.gate.admits(view, self.next)
        } else {
            true
        }
    }

    /// Lossless broadcast, while blocked: evicts the receivers holding the producer
    /// back whose processes are dead. Returns how many were evicted.
    pub fn evict_dead(&mut self, view: &RingView<'_>, liveness: &impl Liveness) -> usize {
        if !view.lossless || view.unicast {
            return 0;
        }
        let evicted = evict_blocking(view, self.next, liveness);
        if evicted > 0 {
            self.gate.invalidate();
        }
        evicted
    }

    /// Marks the slot of the next record busy (and fences, W1) and returns its
    /// sequence. The caller writes the record words, then calls [`Single::commit`].
    #[inline]
    pub fn begin(&mut self, view: &RingView<'_>) -> u64 {
        let seq = self.next;
        view.slots[view.geom.stamp_index(seq)].store(stamp_busy(seq), Ordering::Relaxed);
        // W1 (seqlock.rs).
        if !weaken!("w1") {
            fence(Ordering::Release);
        }
        seq
    }

    /// Publishes the record started by [`Single::begin`] and wakes sleeping receivers.
    #[inline]
    pub fn commit(&mut self, view: &RingView<'_>) {
        let seq = self.next;
        // W2: pairs with the reader's R1 `Acquire` (seqlock.rs).
        view.slots[view.geom.stamp_index(seq)]
            .store(stamp_done(seq), ordering!("w2", Release, Relaxed));
        self.next = seq.wrapping_add(1);
        // `Release`: a receiver that joins or resynchronises at `head` sees the stamps
        // of the records below it.
        view.ctl.head.store(self.next, Ordering::Release);
        // F_p: orders the stores above before the loads below; pairs with the
        // receivers' heavy F_r (join) and F_w (park).
        light_fence!("f_p");
        if view.lossless && !view.unicast {
            self.gate.note_joins(view);
        }
        if view.data_parker().wake_if_parked() {
            sweep_parked(view, &ProcLiveness);
        }
    }
}
