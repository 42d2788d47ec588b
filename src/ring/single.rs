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
//! # Sending a batch
//!
//! [`Single::send_chunk`] writes a *chunk* of records, each with the per-record stamp
//! protocol (busy, W1, words, W2 done), and then stores `head`, runs `F_p`, checks
//! `joins` and wakes receivers *once* for the whole chunk. A chunk is at most
//! `capacity` records and stops where the gate stops admitting (each record is
//! checked against the cached gate, as a single send is).
//!
//! The join protocol still holds with one `head` store per chunk. Take the joiner's
//! `F_r` and the producers' `F_p`s in their total order. A chunk whose `F_p` precedes
//! `F_r` published a `head` the joiner's second read sees, so the joiner starts after
//! it. A chunk whose `F_p` follows `F_r` sees the new `joins` and the *next* chunk
//! rescans and gates on the newcomer. Only the one chunk whose `F_p` is the first after
//! `F_r` may write without gating on it; it starts at the `head` `s` published by the
//! previous chunk's store, which precedes that chunk's `F_p`, which precedes `F_r`, so
//! the joiner starts at `start >= s`. The unchecked chunk writes `k <= capacity`
//! records `s..s+k-1` and so overwrites only records below `s + k - capacity <= s <=
//! start`: none the joiner will read. This is the single-record argument with `k` for
//! 1, and it is why a chunk never exceeds `capacity`.
//!
//! The wake argument (a receiver parks with `F_w` then re-checks the stamp of its next
//! record) is unchanged: `F_p` follows every W2 of the chunk. Between a chunk's stamp
//! stores and its `head` store, `head` trails the stamps by at most a chunk, which a
//! joiner or a lapped reader only sees as an older position: a lapped reader that
//! resynchronises from such a `head` may meet the lap again and report it in two
//! steps, whose counts still add up. A producer that dies inside a chunk leaves
//! published records above `head`; a takeover steps over all of them (below).
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
//! unicast): the previous producer died between its stamp stores and its `head` store,
//! receivers may have read those records, and the new producer starts after the last
//! of them (a stamp that went backwards would hide a record or deliver it twice). A
//! batch leaves at most `capacity` such records, so the scan is bounded by it. A slot
//! left `busy` is simply rewritten.

use super::record::Records;

use super::gate::{slot_free, Gate};
use super::seqlock::write_record;
use super::table::{evict_blocking, sweep_parked};
use super::RingView;
use crate::layout::{stamp_busy, stamp_done, stamp_gap, Stamp};
use crate::process::{Liveness, ProcLiveness};
use crate::sync::{fence, Ordering};
use crate::wait::Tick;
use crate::weaken::{light_fence, ordering, weaken};

/// The `Route` producer's private state.
#[derive(Debug)]
pub struct Single {
    owner: u64,
    /// Sequence number of the next record.
    next: u64,
    /// Lossless broadcast: the cached gate on the receivers' cursors.
    gate: Gate,
    /// When the send loops' next liveness check is due, across sends (`wait.rs`).
    pub(crate) tick: Tick,
}

impl Single {
    /// Attaches to the ring as its producer. The caller holds the sender claim for
    /// `owner`, so no other producer runs.
    pub fn attach(view: &RingView<'_>, owner: u64) -> Single {
        // `Acquire`: pairs with the previous producer's `Release` stores of head/stamps.
        let head = view.ctl.head.load(Ordering::Acquire);
        let mut next = head;
        // Bounded by the capacity: a dead producer's chunk is at most that long.
        for _ in 0..view.geom.capacity {
            let stamp = view.slots[view.geom.stamp_index(next)].load(Ordering::Acquire);
            match Stamp::decode(stamp) {
                Stamp::Done(s) | Stamp::Settled(s) | Stamp::Gap(s) if s == next => {
                    next = next.wrapping_add(1)
                }
                _ => break,
            }
        }
        if next != head {
            view.ctl.head.store(next, Ordering::Release);
        }
        Single {
            owner,
            next,
            gate: Gate::new(),
            tick: Tick::default(),
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

    /// Publishes the record started by [`Single::begin`] (a gap marker if `gap`) and
    /// wakes sleeping receivers.
    #[inline]
    pub fn commit(&mut self, view: &RingView<'_>, gap: bool) {
        self.stamp_published(view, gap);
        self.publish_head(view);
    }

    /// Writes as many of `records` from index `from` on as may be written now, at most
    /// `capacity`, as one chunk (module doc, "Sending a batch"): per-record stamps, then one `head` store,
    /// `F_p`, join check and wake. Returns how many were published (0: no room, or this
    /// process lost the sender role).
    #[inline]
    pub fn send_chunk<R: Records + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        records: &R,
        from: usize,
    ) -> usize {
        if !self.holds_role(view) {
            return 0;
        }
        let max = records
            .count()
            .saturating_sub(from)
            .min(usize::try_from(view.geom.capacity).unwrap_or(usize::MAX));
        let mut sent = 0;
        while sent < max && self.has_space(view) {
            let seq = self.begin(view);
            write_record(view, seq, records.record(from + sent));
            self.stamp_published(view, false);
            sent += 1;
        }
        if sent > 0 {
            self.publish_head(view);
        }
        sent
    }

    /// W2 of the record started by [`Single::begin`] (the done stamp, or the gap
    /// stamp for a gap marker); moves `next` past it.
    #[inline(always)]
    fn stamp_published(&mut self, view: &RingView<'_>, gap: bool) {
        let seq = self.next;
        let stamp = if gap { stamp_gap(seq) } else { stamp_done(seq) };
        // W2: pairs with the reader's R1 `Acquire` (seqlock.rs).
        view.slots[view.geom.stamp_index(seq)].store(stamp, ordering!("w2", Release, Relaxed));
        self.next = seq.wrapping_add(1);
    }

    /// Publishes `head = next`, then `F_p`, the join check and the wake ("Committing").
    #[inline(always)]
    fn publish_head(&mut self, view: &RingView<'_>) {
        // `Release`: a receiver that joins or resynchronises at `head` sees the stamps
        // of the records below it.
        view.ctl.head.store(self.next, Ordering::Release);
        // F_p: orders the stores above before the loads below; pairs with the
        // receivers' heavy F_r (join) and F_w (park).
        light_fence!("f_p");
        if view.lossless && !view.unicast {
            self.gate.note_joins(view);
        }
        if view.wake_data() {
            sweep_parked(view, &ProcLiveness);
        }
    }
}
