//! The multi-producer claim (`Channel<T>`): many producers share one ring.
//!
//! The slots, stamps and receivers are those of `broadcast.rs` (broadcast) or
//! `unicast.rs` (unicast); what changes is how a producer gets a sequence number and
//! how a slot is made its own, because several producers now race for both.
//!
//! # Claiming
//!
//! Each producer holds an entry of the producer table (owner word, `claim`). To claim
//! the next sequence number it reads `head`, checks the gate (lossless broadcast: the
//! receivers' cursors, as the single producer does; unicast: the slot of `head` is
//! consumed), stores its *intent* `claim = head + 1` and CASes `head` to `head + 1`. The
//! intent is stored before the CAS, so any process that sees `head` past a sequence
//! number (`Acquire`, through the release sequence of the CAS) also sees which
//! producer claimed it.
//!
//! # Writing
//!
//! The producer then CASes the slot's stamp from a settled value of an older lap to
//! `busy(seq)` (W0), issues `fence(Release)` (W1, as in broadcast.rs), writes the record
//! words and CASes `busy(seq)` to `done(seq)` (`Release`, W2). If the stamp is already
//! `>= busy(seq)` when it starts, or is no longer `busy(seq)` when it publishes, a
//! receiver has skipped its claim (it judged the producer dead or stalled, below): the
//! claim is void and the producer claims a new sequence number for the same record.
//! Nothing is lost and the producer's own records stay in order.
//!
//! If a producer a whole lap behind (Overwrite, a preempted producer) is still writing
//! the slot, the newer one waits for it, unless that producer is dead, in which case
//! it takes the slot over: two live writers never write one slot at once, so a
//! published record is never a mix of two.
//!
//! # Dead claims
//!
//! A producer killed between its claim and its publication leaves a sequence number
//! that will never be published, and receivers wait on it. A receiver that has waited
//! a liveness tick calls [`resolve_stall`]: if the slot is `busy` and no live producer
//! claims that sequence number, or if the slot was never marked busy and the receiver
//! has waited two ticks (a producer that is alive but preempted there simply finds its
//! claim void and retries), it CASes the stamp to `settled(seq)` and counts a dead
//! claim. Receivers step over settled stamps.
//!
//! # Invariants
//!
//! 1. Only the claimer of `seq` moves a slot's stamp to `busy(seq)` or `done(seq)`;
//!    a receiver moves it only to `settled(seq)` and only from a state below `done`.
//! 2. A slot is `busy` for at most one live writer at a time.
//! 3. A record is published at most once, at one sequence number; a void claim is
//!    never published.

use bytemuck::Pod;

use super::broadcast::Gate;
use super::unicast::slot_free;
use super::{claim_free, RingView};
use crate::barrier;
use crate::layout::{stamp_busy, stamp_done, stamp_settled, ProducerEntry, Stamp};
use crate::process::Liveness;
use crate::sync::{fence, spin_hint, store_words, Ordering};

/// Spins between two liveness checks while waiting for a lapped writer.
const SPINS_PER_LIVENESS_CHECK: u32 = 1 << 14;

/// A producer's private state.
#[derive(Debug)]
pub struct SharedProducer {
    index: usize,
    owner: u64,
    /// The sequence number claimed by the last `try_claim`.
    seq: u64,
    /// Lossless broadcast: the cached gate on the receivers' cursors.
    gate: Gate,
}

impl SharedProducer {
    /// Takes a free entry of the producer table. `None` if it is full.
    pub fn join(view: &RingView<'_>, owner: u64) -> Option<SharedProducer> {
        let index = claim_free(view.producers, owner, |p| &p.owner)?;
        let entry = &view.producers[index];
        entry.claim.store(0, Ordering::Relaxed);
        entry.records.store(0, Ordering::Relaxed);
        let membership = &view.ctl.membership;
        // `Release`: a receiver that counts us (`Acquire`) sees our entry.
        membership.producers.fetch_add(1, Ordering::Release);
        membership.sender_attaches.fetch_add(1, Ordering::Release);
        Some(SharedProducer {
            index,
            owner,
            seq: 0,
            gate: Gate::new(),
        })
    }

    fn entry<'a>(&self, view: &RingView<'a>) -> &'a ProducerEntry {
        &view.producers[self.index]
    }

    /// The sequence number claimed by the last successful [`SharedProducer::try_claim`].
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether this producer still holds its entry (it was not reaped as dead, and no
    /// peer overwrote its owner word).
    pub fn holds_entry(&self, view: &RingView<'_>) -> bool {
        self.entry(view).owner.load(Ordering::Relaxed) == self.owner
    }

    /// Claims the next sequence number, or `None` if the gate is closed (lossless
    /// and full).
    pub fn try_claim(&mut self, view: &RingView<'_>) -> Option<u64> {
        let entry = self.entry(view);
        loop {
            // `Acquire`: pairs with the `Release` half of other producers' claim CAS.
            let head = view.ctl.head.load(Ordering::Acquire);
            let open = if view.unicast {
                slot_free(view, head)
            } else if view.lossless {
                self.gate.admits(view, head)
            } else {
                true
            };
            if !open {
                // Withdraw the intent of a claim that lost its CAS above: left in
                // place, it would vouch (as the claim of a live producer) for a
                // sequence number another producer claimed and may have died with.
                entry.claim.store(0, Ordering::Relaxed);
                return None;
            }
            // The intent, before the claim: see "Claiming".
            entry.claim.store(head.wrapping_add(1), Ordering::Relaxed);
            // `AcqRel`: `Release` makes the intent visible to whoever reads `head` past
            // it; `Acquire` orders our slot accesses after the claim.
            // (`shmchan_weaken = "mp_claim"`: `Acquire`, the intent unpublished.)
            let claim = if cfg!(shmchan_weaken = "mp_claim") {
                Ordering::Acquire
            } else {
                Ordering::AcqRel
            };
            if view
                .ctl
                .head
                .compare_exchange_weak(head, head.wrapping_add(1), claim, Ordering::Relaxed)
                .is_ok()
            {
                self.seq = head;
                return Some(head);
            }
        }
    }

    /// Makes the claimed slot ours (`busy`). `false` if the claim is void (skipped by a
    /// receiver, or lapped): claim again.
    pub fn begin(&mut self, view: &RingView<'_>, liveness: &impl Liveness) -> bool {
        let seq = self.seq;
        let stamp = &view.slots[view.geom.stamp_index(seq)];
        let mut spins = 0u32;
        loop {
            // `Acquire`: pairs with a unicast receiver's `Release` settle, so its copy
            // of the old record happens before we overwrite it.
            let current = stamp.load(Ordering::Acquire);
            if current >= stamp_busy(seq) {
                return false;
            }
            if let Stamp::Busy(older) = Stamp::decode(current) {
                // A writer a lap behind still owns the slot: wait, unless it is dead.
                spins = spins.wrapping_add(1);
                if spins % SPINS_PER_LIVENESS_CHECK != 0 || claim_alive(view, older, liveness) {
                    spin_hint();
                    continue;
                }
            }
            // W0. `Acquire` on success: as the load above.
            if stamp
                .compare_exchange(
                    current,
                    stamp_busy(seq),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                break;
            }
        }
        // W1: a reader that sees any record word stored after this fence also sees the
        // busy stamp (pairs with its R2; see broadcast.rs). (`shmchan_weaken = "mp_w1"`
        // drops it.)
        if !cfg!(shmchan_weaken = "mp_w1") {
            fence(Ordering::Release);
        }
        true
    }

    /// Writes the record into the slot made ours by [`SharedProducer::begin`].
    #[inline]
    pub fn write<T: Pod>(&self, view: &RingView<'_>, value: &T) {
        store_words(
            &view.slots[view.geom.data_range(self.seq)],
            bytemuck::bytes_of(value),
        );
    }

    /// Publishes the record and wakes sleeping receivers. `false` if the claim turned
    /// void while we wrote (a receiver judged us dead): the record was not published.
    pub fn commit(&mut self, view: &RingView<'_>) -> bool {
        let seq = self.seq;
        let entry = self.entry(view);
        // W2: `Release` pairs with the reader's R1. A CAS, not a store: a receiver may
        // have skipped this claim. (`shmchan_weaken = "mp_w2"`: `Relaxed`.)
        let w2 = if cfg!(shmchan_weaken = "mp_w2") {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        let published = view.slots[view.geom.stamp_index(seq)]
            .compare_exchange(stamp_busy(seq), stamp_done(seq), w2, Ordering::Relaxed)
            .is_ok();
        entry.claim.store(0, Ordering::Relaxed);
        if published {
            // Only this producer writes its counter.
            let records = entry.records.load(Ordering::Relaxed);
            entry
                .records
                .store(records.wrapping_add(1), Ordering::Relaxed);
        }
        // F_p: light; pairs with the receivers' heavy F_r (join) and F_w (park); see
        // broadcast.rs and barrier.rs. (`shmchan_weaken = "mp_fp"`: `fence(AcqRel)`.)
        if cfg!(shmchan_weaken = "mp_fp") {
            fence(Ordering::AcqRel);
        } else {
            barrier::light();
        }
        if view.lossless && !view.unicast {
            self.gate.note_joins(view);
        }
        view.data_parker().wake_if_parked();
        published
    }

    /// Gives the entry back and wakes receivers, which may now see no producer left.
    pub fn leave(&self, view: &RingView<'_>) {
        let entry = self.entry(view);
        entry.claim.store(0, Ordering::Relaxed);
        // `Release`: a receiver that sees the entry free sees every record we published.
        if entry
            .owner
            .compare_exchange(self.owner, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            view.ctl
                .membership
                .producers
                .fetch_sub(1, Ordering::Release);
        }
        // Pairs with the receivers' F_w: a receiver about to sleep sees us gone.
        fence(Ordering::SeqCst);
        view.data_parker().wake_if_parked();
    }
}

/// Whether a live producer claims (or is writing) `seq`.
fn claim_alive(view: &RingView<'_>, seq: u64, liveness: &impl Liveness) -> bool {
    view.producers.iter().any(|p| {
        // `Acquire`: pairs with the claimer's intent store, published by its claim CAS.
        p.claim.load(Ordering::Acquire) == seq.wrapping_add(1) && {
            let owner = p.owner.load(Ordering::Acquire);
            owner != 0 && liveness.is_alive(owner)
        }
    })
}

/// A receiver has waited on `seq` for a liveness tick (`patient`: for two): skips the
/// claim if its producer died, or never started writing. Returns whether it skipped.
pub fn resolve_stall(
    view: &RingView<'_>,
    seq: u64,
    liveness: &impl Liveness,
    patient: bool,
) -> bool {
    let stamp = &view.slots[view.geom.stamp_index(seq)];
    let current = stamp.load(Ordering::Acquire);
    if current >= stamp_done(seq) {
        return false;
    }
    // Nobody has claimed `seq` yet: nothing is owed. `Acquire`: pairs with the claim
    // CAS, so the claimer's intent is visible to `claim_alive`.
    if view.ctl.head.load(Ordering::Acquire) <= seq {
        return false;
    }
    let skippable = match Stamp::decode(current) {
        // Someone is writing `seq` (or a lap-older record in its slot): skip only if
        // that writer is dead; a live one finishes.
        Stamp::Busy(writing) => !claim_alive(view, writing, liveness),
        // A unicast slot holding an unconsumed older record is never touched.
        Stamp::Done(_) => patient && !view.unicast,
        Stamp::Settled(_) | Stamp::Empty => patient,
    };
    if skippable
        && stamp
            .compare_exchange(
                current,
                stamp_settled(seq),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        view.ctl
            .membership
            .dead_claims
            .fetch_add(1, Ordering::Relaxed);
        // Producers blocked on this slot (unicast) may go on.
        fence(Ordering::SeqCst);
        view.space_parker().wake_if_parked();
        return true;
    }
    false
}

/// Frees the entries of producers whose process died. Returns how many.
pub fn reap_dead_producers(view: &RingView<'_>, liveness: &impl Liveness) -> usize {
    let mut reaped = 0;
    for entry in view.producers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner != 0
            && !liveness.is_alive(owner)
            && entry
                .owner
                .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            view.ctl
                .membership
                .producers
                .fetch_sub(1, Ordering::Release);
            reaped += 1;
        }
    }
    reaped
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::broadcast::{Consumer, Read};
    use crate::ring::HeapRing;

    struct Dead(u64);
    impl Liveness for Dead {
        fn is_alive(&self, owner: u64) -> bool {
            owner != self.0
        }
    }

    fn send(p: &mut SharedProducer, view: &RingView<'_>, value: u64) {
        send_judging(p, view, value, &Dead(0));
    }

    fn send_judging(p: &mut SharedProducer, view: &RingView<'_>, value: u64, l: &Dead) {
        loop {
            assert!(p.try_claim(view).is_some(), "room");
            if p.begin(view, l) {
                p.write(view, &value);
                if p.commit(view) {
                    return;
                }
            }
        }
    }

    #[test]
    fn a_dead_claim_is_skipped_and_the_others_flow() {
        let ring = HeapRing::with_producers::<u64>(8, 2, 4, true, false);
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let mut a = SharedProducer::join(&view, 1).expect("a");
        let mut b = SharedProducer::join(&view, 2).expect("b");
        send(&mut a, &view, 10);
        // b claims 1, marks it busy, and dies before publishing.
        assert_eq!(b.try_claim(&view), Some(1));
        assert!(b.begin(&view, &Dead(0)));
        send(&mut a, &view, 11);
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(10));
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
        // While b lives, its claim is waited for; once dead, skipped.
        assert!(!resolve_stall(&view, 1, &Dead(0), true));
        assert!(resolve_stall(&view, 1, &Dead(2), false));
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(11));
        assert_eq!(view.ctl.membership.dead_claims.load(Ordering::Relaxed), 1);
        assert_eq!(reap_dead_producers(&view, &Dead(2)), 1);
        assert_eq!(view.ctl.membership.producers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_claim_skipped_while_its_producer_was_preempted_is_retried() {
        let ring = HeapRing::with_producers::<u64>(8, 2, 4, false, false);
        let view = ring.view();
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        let mut a = SharedProducer::join(&view, 1).expect("a");
        assert_eq!(a.try_claim(&view), Some(0));
        // Receivers lose patience before `a` marks the slot busy.
        assert!(resolve_stall(&view, 0, &Dead(0), true));
        assert!(!a.begin(&view, &Dead(0)), "the claim is void");
        send(&mut a, &view, 7);
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(7));
        assert_eq!(rx.cursor(), 2);
    }

    #[test]
    fn a_dead_writer_a_lap_behind_is_taken_over() {
        let ring = HeapRing::with_producers::<u64>(2, 1, 4, false, false);
        let view = ring.view();
        let mut a = SharedProducer::join(&view, 1).expect("a");
        let mut b = SharedProducer::join(&view, 2).expect("b");
        assert_eq!(a.try_claim(&view), Some(0));
        assert!(a.begin(&view, &Dead(0))); // a dies writing 0
        send(&mut b, &view, 1);
        // b's next claim (2) shares slot 0 with a's dead busy claim: b takes it over.
        send_judging(&mut b, &view, 2, &Dead(1));
        let mut rx = Consumer::join(&view, 100).expect("receiver");
        assert_eq!(rx.cursor(), 3);
        assert_eq!(
            Stamp::decode(view.slots[view.geom.stamp_index(2)].load(Ordering::Relaxed)),
            Stamp::Done(2)
        );
        let _ = &mut rx;
    }
}
