//! Unicast (`Mode::Unicast`): each record goes to exactly one receiver, a work queue.
//!
//! Producers write slots exactly as in broadcast (`single.rs` for a `Route`, `multi.rs`
//! for a `Channel`), with the stamps of `layout.rs`, gated on the slot's previous record
//! being consumed (`gate.rs`, `slot_free`). Receivers share one read cursor,
//! `ctl.read`, instead of having one each.
//!
//! # Taking record `r`
//!
//! ```text
//! r = read.load(Acquire)
//! stamp(r).load(Acquire) == done(r)?      // R1: pairs with the producer's W2
//! entry.claim.store(r + 1, Relaxed)       // C1: who is taking r, for rescuers
//! read.CAS(r, r + 1, AcqRel)              // C2: exclusive among takers
//! copy the record words (Relaxed)
//! stamp.CAS(done(r), settled(r), AcqRel)  // C3: consumed; Release pairs with the
//!                                          //     producer's Acquire slot check
//! entry.claim.store(0, Release)
//! light fence (F_s); wake a producer parked on `space`
//! ```
//!
//! A stamp `settled(r)` at the read cursor is a claim skipped because its producer
//! died (`multi.rs`): takers move `read` past it.
//!
//! A stamp `gap(r)` is a gap marker (`layout.rs`): taken exactly like a record (C1-C3,
//! the CAS C3 from `gap(r)`), and the receiver that settles it reports its count as a
//! lag. The inlined fast path does not take one (it cannot report a lag); the full
//! read does, and a batch takes one only as its first element. A taker that dies
//! holding a gap is rescued like a record.
//!
//! # A receiver that dies holding a record
//!
//! Between C2 and C3 the record belongs to one receiver. If that process dies there,
//! the record is not lost: it stays `done(r)` below the read cursor, and a receiver
//! that is idle ([`Worker::rescue_into`], once a liveness tick) looks for such orphans in
//! the last lap, checks that no live receiver claims them (C1 precedes C2, so the
//! claim of a live taker is visible to anyone who read `read` past `r`), copies the
//! record and settles it with the same CAS C3. Whoever wins C3 delivers the record, so
//! it is delivered exactly once; a taker that died after C3 had already returned it.
//! Rescues are counted in `membership.rescued`.
//!
//! The scan is not exclusive: two rescuers can both find the orphan unclaimed (each
//! checks the claims before storing its own, and each `is_alive` reads /proc, so the
//! window is microseconds) and both go on. Only C3 decides between them, which is why
//! every rescue ends in C3, the one that leaves the record held included: a receiver
//! idle in `recv_ref` ([`Worker::rescue_hold`]) rescues by copy, into a buffer of its
//! own, and settles the record with C3 like any rescuer; if it wins, it holds the copy
//! (`Take::Held`, [`Worker::held_copy`]), and the guard reads that copy, not the slot.
//! Holding the slot in place instead (C1 without C2 or C3) would leave a second
//! rescuer free to copy and settle the same record: delivered twice, and the sender
//! then rewrites the slot under the holder's reference (issue 25). A rescue is rare
//! (once a liveness tick, and only past a dead taker), so its copy costs nothing that
//! matters; the buffer is allocated at the first rescue of a hold and kept.
//! `loom-tests` `unicast_rescue_copier_and_holder` and `unicast_rescue_two_holders`
//! check it (weakened at `uc_hold_copy`, a hold rescued in place, and `uc_c3`, C3 as
//! a plain store, they fail).
//!
//! # Batches
//!
//! A batch receive (`reader.rs`, `read_many`) takes its records one at a time with
//! [`Worker::try_take_into`]: the entry's `claim` names one record, which is what lets a
//! rescuer tell a live taker's record from an orphan, so each record of a batch is
//! claimed, copied and settled (C1-C3) before the next is claimed. A receiver that
//! dies in a batch leaves at most one record to rescue, and every record still goes
//! to exactly one receiver.

use super::record::Record;
use super::seqlock::load_words;
use super::table::{claim_free, sweep_parked};
use super::RingView;
use crate::layout::{stamp_done, stamp_gap, stamp_settled, ReceiverEntry};
use crate::process::{Liveness, ProcLiveness};
use crate::sync::{AtomicU64, Ordering};
use crate::weaken::{light_fence, ordering, weaken};

/// A unicast receiver's private state.
pub struct Worker {
    index: usize,
    owner: u64,
    /// The record this receiver holds as a copy ([`Worker::rescue_hold`]): its
    /// sequence number, `None` when it holds none.
    rescued: Option<u64>,
    /// The copy: the record's `geom.record_size` bytes at the front. Allocated at the
    /// first rescue of a hold, then kept.
    copy: Vec<u64>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the copy's bytes: a record may be large.
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("owner", &self.owner)
            .field("rescued", &self.rescued)
            .finish()
    }
}

impl Worker {
    /// Takes a free entry of the receiver table. `None` if it is full.
    pub fn join(view: &RingView<'_>, owner: u64) -> Option<Worker> {
        let index = claim_free(view.receivers, owner, |e| &e.owner)?;
        let entry = &view.receivers[index];
        entry.claim.store(0, Ordering::Relaxed);
        entry
            .cursor
            .store(view.ctl.read.load(Ordering::Relaxed), Ordering::Relaxed);
        view.ctl.membership.joins.fetch_add(1, Ordering::Relaxed);
        Some(Worker {
            index,
            owner,
            rescued: None,
            copy: Vec::new(),
        })
    }

    fn entry<'a>(&self, view: &RingView<'a>) -> &'a ReceiverEntry {
        &view.receivers[self.index]
    }

    /// This receiver's `parked` word and owner word, for registering as a sleeper
    /// (`wait.rs`).
    pub fn parked<'a>(&self, view: &RingView<'a>) -> (&'a AtomicU64, u64) {
        (&self.entry(view).parked, self.owner)
    }

    /// Whether the entry was taken from this receiver.
    pub fn is_evicted(&self, view: &RingView<'_>) -> bool {
        self.entry(view).owner.load(Ordering::Relaxed) != self.owner
    }

    /// Sequence number of the next record any receiver will take.
    pub fn read_cursor(view: &RingView<'_>) -> u64 {
        view.ctl.read.load(Ordering::Relaxed)
    }

    /// Takes the next record into `dst` if one is published. A gap marker (`layout.rs`)
    /// is taken like a record, exactly once, if `gaps` (the fast path passes `false`
    /// and leaves it to the full read, which can report it); otherwise it stops the
    /// take with [`Take::Nothing`]. On anything but [`Take::Record`] `dst` holds nothing
    /// to deliver.
    #[inline]
    pub fn try_take_into<R: Record + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        dst: &mut R,
        gaps: bool,
    ) -> Take {
        self.take_with(view, gaps, |entry, r, current| {
            copy_and_settle(view, entry, r, current, Some(&mut *dst))
        })
    }

    /// Takes the next record and *holds* it (`Take::Held(seq)`): claimed (C1, C2) but
    /// not settled, so its slot is not rewritten (`gate.rs`) and no rescuer touches it
    /// while this receiver lives, until [`Worker::release`] settles it (C3). The caller
    /// reads it in place meanwhile. Gap markers as in `try_take_into`.
    #[inline]
    pub fn try_hold(&mut self, view: &RingView<'_>, gaps: bool) -> Take {
        self.take_with(view, gaps, |entry, r, current| {
            copy_and_settle::<[u8]>(view, entry, r, current, None)
        })
    }

    /// Settles the record held by [`Worker::try_hold`] (C3): it is consumed and its slot
    /// free. Whether this receiver's CAS settled it (`false` only if a rescuer judged
    /// this process dead and took it). A copy held by [`Worker::rescue_hold`] was
    /// settled when it was made: letting go of it touches nothing shared.
    #[inline]
    pub fn release(&mut self, view: &RingView<'_>, seq: u64) -> bool {
        if self.rescued == Some(seq) {
            self.rescued = None;
            return true;
        }
        settle(view, self.entry(view), seq, stamp_done(seq))
    }

    /// The bytes of record `seq` if this receiver holds it as a copy
    /// ([`Worker::rescue_hold`]); `None` if it holds it in place (or not at all).
    #[inline]
    pub fn held_copy(&self, view: &RingView<'_>, seq: u64) -> Option<&[u8]> {
        if self.rescued != Some(seq) {
            return None;
        }
        let bytes: &[u8] = bytemuck::cast_slice(&self.copy);
        Some(&bytes[..view.geom.record_size.min(bytes.len())])
    }

    /// The body of [`Worker::try_take_into`] and [`Worker::try_hold`]: claims the next
    /// record (C1, C2) and hands it to `deliver(entry, r, stamp)`.
    #[inline(always)]
    fn take_with(
        &mut self,
        view: &RingView<'_>,
        gaps: bool,
        mut deliver: impl FnMut(&ReceiverEntry, u64, u64) -> Take,
    ) -> Take {
        let entry = self.entry(view);
        let read = &view.ctl.read;
        // Bounded: each round takes a record, skips a settled claim, or loses a race
        // to another taker (who then made progress).
        for _ in 0..=view.geom.capacity.saturating_mul(4) {
            let r = read.load(Ordering::Acquire);
            let stamp = &view.slots[view.geom.stamp_index(r)];
            // R1: pairs with the producer's W2.
            let current = stamp.load(ordering!("uc_r1", Acquire, Relaxed));
            let gap = current == stamp_gap(r);
            if gap && !gaps {
                return Take::Nothing;
            }
            if current == stamp_done(r) || gap {
                // C1, then C2. `AcqRel`: the `Release` half publishes C1 to a rescuer
                // that reads `read` past `r`.
                entry.claim.store(r.wrapping_add(1), Ordering::Relaxed);
                let c2 = ordering!("uc_c2", AcqRel, Acquire);
                if read
                    .compare_exchange(r, r.wrapping_add(1), c2, Ordering::Relaxed)
                    .is_err()
                {
                    // Lost `r` to another taker: withdraw C1. Left in place, the claim
                    // of a live receiver would vouch for `r`, and if its real taker died
                    // no rescuer would touch it (found by `loom-tests`,
                    // `unicast_taker_dies_racing_a_live_taker`).
                    entry.claim.store(0, Ordering::Relaxed);
                    continue;
                }
                entry.cursor.store(r.wrapping_add(1), Ordering::Relaxed);
                match deliver(entry, r, current) {
                    Take::Nothing => continue,
                    taken => return taken,
                }
            }
            let skip = current == stamp_settled(r)
                // A stamp past anything `r` can have is corrupt: step over it.
                || current > stamp_settled(r);
            if !skip {
                return Take::Nothing;
            }
            let _ =
                read.compare_exchange(r, r.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed);
        }
        Take::Nothing
    }

    /// [`Worker::try_take_into`] returning the record by value (the ring's tests and
    /// models); `None` also for a gap marker.
    #[cfg(any(test, loom))]
    pub fn try_take<T: bytemuck::Pod>(&mut self, view: &RingView<'_>) -> Option<T> {
        let mut value = T::zeroed();
        (self.try_take_into(view, &mut value, false) == Take::Record).then_some(value)
    }

    /// Idle-time recovery: delivers into `dst` a record (or a gap marker) that a
    /// receiver took and died with.
    pub fn rescue_into<R: Record + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
        dst: &mut R,
    ) -> Take {
        self.rescue_with(view, liveness, Some(dst)).0
    }

    /// [`Worker::rescue_into`] for a receiver that holds what it receives
    /// (`recv_ref`): the rescued record is copied into this receiver's buffer and
    /// settled (C3) like any rescue, and then held as that copy (`Take::Held`,
    /// [`Worker::held_copy`]) until [`Worker::release`]. Never held in place: see "A
    /// receiver that dies holding a record".
    pub fn rescue_hold(&mut self, view: &RingView<'_>, liveness: &impl Liveness) -> Take {
        self.rescued = None;
        let mut copy = std::mem::take(&mut self.copy);
        copy.resize(view.geom.data_words, 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut copy);
        let size = view.geom.record_size.min(bytes.len());
        // Weakened at `uc_hold_copy`: held in place, not copied and settled (the
        // defect of issue 25; the models must fail).
        let dst = (!weaken!("uc_hold_copy")).then_some(&mut bytes[..size]);
        let (taken, seq) = self.rescue_with(view, liveness, dst);
        self.copy = copy;
        match taken {
            Take::Record => {
                self.rescued = Some(seq);
                Take::Held(seq)
            }
            other => other,
        }
    }

    /// The body of [`Worker::rescue_into`] and [`Worker::rescue_hold`]: what it
    /// delivered, and the sequence number of the record (or gap) it rescued.
    fn rescue_with<R: Record + ?Sized>(
        &self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
        mut dst: Option<&mut R>,
    ) -> (Take, u64) {
        let entry = self.entry(view);
        // `Acquire`: pairs with the takers' C2, so their C1 claims are visible.
        let read = view.ctl.read.load(Ordering::Acquire);
        let lap = read.saturating_sub(view.geom.capacity);
        for seq in lap..read {
            let stamp = &view.slots[view.geom.stamp_index(seq)];
            let current = stamp.load(Ordering::Acquire);
            if current != stamp_done(seq) && current != stamp_gap(seq) {
                continue;
            }
            let taken_by_live = view.receivers.iter().any(|e| {
                e.claim.load(Ordering::Acquire) == seq.wrapping_add(1) && {
                    let owner = e.owner.load(Ordering::Acquire);
                    owner != 0 && liveness.is_alive(owner)
                }
            });
            if taken_by_live {
                continue;
            }
            // Not exclusive (another rescuer may be past its check of the claims
            // too): C3, in `copy_and_settle`, decides which of them delivers.
            entry.claim.store(seq.wrapping_add(1), Ordering::Relaxed);
            let taken = copy_and_settle(view, entry, seq, current, dst.as_deref_mut());
            if taken != Take::Nothing {
                view.ctl.membership.rescued.fetch_add(1, Ordering::Relaxed);
                return (taken, seq);
            }
        }
        (Take::Nothing, 0)
    }

    /// [`Worker::rescue_into`] returning the record by value (the ring's tests).
    #[cfg(any(test, loom))]
    pub fn rescue<T: bytemuck::Pod>(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
    ) -> Option<T> {
        let mut value = T::zeroed();
        (self.rescue_into(view, liveness, &mut value) == Take::Record).then_some(value)
    }

    /// Gives the entry back.
    pub fn leave(&self, view: &RingView<'_>) {
        let entry = self.entry(view);
        entry.claim.store(0, Ordering::Relaxed);
        let _ = entry
            .owner
            .compare_exchange(self.owner, 0, Ordering::Release, Ordering::Relaxed);
    }
}

/// What a take delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A record, copied into the caller's buffer.
    Record,
    /// A gap marker: this many records are missing upstream.
    Gap(u64),
    /// This record is claimed and held in place, not yet settled
    /// ([`Worker::try_hold`]), or rescued and held as a copy, settled
    /// ([`Worker::rescue_hold`]).
    Held(u64),
    /// Nothing (none published, or lost to another receiver).
    Nothing,
}

/// Copies claimed `seq`, whose stamp was `current` (done, or gap), and settles it (C3).
/// What this receiver delivers: the record (into `dst`), the gap, or nothing if
/// another receiver's CAS settled it first. Without `dst` a record is held, not copied
/// or settled (`Take::Held`): only for a taker, whose C2 made it the record's only
/// claimant (a rescuer always copies: see "A receiver that dies holding a record"); a
/// gap marker is always settled at once.
#[inline(always)]
fn copy_and_settle<R: Record + ?Sized>(
    view: &RingView<'_>,
    entry: &ReceiverEntry,
    seq: u64,
    current: u64,
    dst: Option<&mut R>,
) -> Take {
    let words = &view.slots[view.geom.data_range(seq)];
    if current == stamp_done(seq) {
        let Some(dst) = dst else {
            return Take::Held(seq);
        };
        load_words(words, dst.bytes_mut());
        return if settle(view, entry, seq, current) {
            Take::Record
        } else {
            Take::Nothing
        };
    }
    let mut count = [0u8; 8];
    load_words(words, &mut count);
    if !settle(view, entry, seq, current) {
        return Take::Nothing;
    }
    let missing = u64::from_ne_bytes(count);
    // Only this receiver writes its counters: load + store, no RMW needed.
    entry.lagged.store(
        entry.lagged.load(Ordering::Relaxed).wrapping_add(missing),
        Ordering::Relaxed,
    );
    Take::Gap(missing)
}

/// C3: marks `seq` (stamped `current`: a record or a gap marker) consumed, releases the
/// claim and wakes a waiting producer. Returns whether this receiver's CAS settled it
/// (and so delivers it).
fn settle(view: &RingView<'_>, entry: &ReceiverEntry, seq: u64, current: u64) -> bool {
    let stamp = &view.slots[view.geom.stamp_index(seq)];
    // `AcqRel`: `Release` pairs with the producer's `Acquire` slot check (our copy
    // happens before its overwrite). A CAS: among rescuers of one record, only the
    // one whose CAS succeeds delivers it (weakened at `uc_c3` to a plain store, under
    // which the rescue models must fail).
    let ours = if weaken!("uc_c3") {
        stamp.store(stamp_settled(seq), Ordering::Release);
        true
    } else {
        stamp
            .compare_exchange(
                current,
                stamp_settled(seq),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    };
    entry.claim.store(0, Ordering::Release);
    // F_s, light: pairs with the producer's F_w (`wait.rs`) when it parks on `space`
    // (wait.rs, barrier.rs).
    light_fence!("uc_fs");
    if view.wake_space() {
        sweep_parked(view, &ProcLiveness);
    }
    ours
}
