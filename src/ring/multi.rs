//! The producers of a `Channel<T>`: many producers share one ring.
//!
//! The slots, stamps and receivers are those of a `Route` (`broadcast.rs`,
//! `unicast.rs`); what changes is how a producer gets a sequence number and how a slot
//! is made its own, because several producers now race for both.
//!
//! # Claiming
//!
//! Each producer holds an entry of the producer table (owner word, `claim`). To claim
//! the next sequence number it reads `head`, checks the gate (`gate.rs`: lossless
//! broadcast, the cached limit on the receivers' cursors; unicast, the slot of `head`
//! is consumed), stores its *intent* `claim = head + 1` and CASes `head` to `head + 1`.
//! The intent is stored before the CAS, so any process that sees `head` past a
//! sequence number (`Acquire`, through the release sequence of the CAS) also sees
//! which producer claimed it.
//!
//! Lossless broadcast then checks for joins *after* the claim:
//!
//! ```text
//! head.CAS(h, h + 1, AcqRel)          // the claim: a store
//! light fence                         // F_c: pairs with the joiner's heavy F_r
//! joins.load(Relaxed)                 // changed? J2, rescan: is h still admitted?
//! ```
//!
//! A joiner increments `joins`, runs `F_r` and then reads `head` to start there
//! (`broadcast.rs`, "Joining"). Take the two fences in their total order. If `F_c`
//! comes first, the joiner's `head` read sees the claim, so it starts after `h` and
//! record `h` overwrites nothing it will read. If `F_r` comes first, the producer sees
//! the new `joins`, rescans (J2 makes the joiner's entry and provisional cursor
//! visible) and writes `h` only once the gate admits it. So *every* claim is checked
//! against every receiver that could be hurt by it. (A `Route` may let one record pass
//! unchecked after a join; with N producers that would be N records, and with N above
//! the capacity one of them overwrites a record the joiner has not read.)
//!
//! A claim that the rescan does not admit stays the producer's, *gated*: it waits (on
//! `space`, like a full ring) until the receivers' cursors admit it. Meanwhile
//! receivers do not skip it ([`resolve_stall`] never skips a sequence number the gate
//! would not admit), so no record a receiver has not read is overwritten by a skip.
//!
//! # Writing
//!
//! The producer then CASes the slot's stamp from a value of an older lap to `busy(seq)`
//! (W0), issues `fence(Release)` (W1, `seqlock.rs`), writes the record words and CASes
//! `busy(seq)` to `done(seq)` (`Release`, W2). If the stamp is already `>= busy(seq)`
//! when it starts, or is no longer `busy(seq)` when it publishes, a receiver has skipped
//! its claim (it judged the producer dead or stalled, below): the claim is *void* and
//! the producer claims a new sequence number for the same record. Nothing is lost and
//! the producer's own records stay in order.
//!
//! If a producer a whole lap behind (Overwrite, a preempted producer) is still writing
//! the slot, the newer one waits for it (`Begin::Busy`: the send loop sleeps on `data`,
//! where the older writer's commit wakes it), unless that producer is dead, in which
//! case it takes the slot over: two live writers never write one slot at once, so a
//! published record is never a mix of two. The wait honours the caller's deadline: a
//! claim given up on (a deadline, or `try_send`) stays *pending* in the producer and
//! the producer's next record takes it (`producer.rs`); a producer that leaves with a
//! pending claim withdraws its intent, and receivers skip the number (two ticks).
//!
//! # Dead claims
//!
//! A producer killed between its claim and its publication leaves a sequence number
//! that will never be published, and receivers wait on it. A receiver that has waited
//! a liveness tick calls [`resolve_stall`]: if the slot is `busy` and no live producer
//! claims that sequence number, or if the slot was never marked busy and the receiver
//! has waited two ticks (a producer that is alive but preempted there simply finds its
//! claim void and retries), it CASes the stamp to `settled(seq)` and counts a dead
//! claim. Receivers step over settled stamps. When no producer is attached at all, a
//! receiver skips unwritten claims at once: nobody will write them (`recv.rs`).
//!
//! # Invariants
//!
//! 1. Only the claimer of `seq` moves a slot's stamp to `busy(seq)` or `done(seq)`;
//!    a receiver moves it only to `settled(seq)`, only from a state below `done`, and
//!    (lossless broadcast) only if every live receiver has read `seq - capacity`.
//! 2. A slot is `busy` for at most one live writer at a time.
//! 3. A record is published at most once, at one sequence number; a void claim is
//!    never published.

use super::gate::{gate_limit, slot_free, Gate};
use super::table::{claim_alive, claim_free, evict_blocking, sweep_parked};
use super::RingView;
use crate::layout::{stamp_busy, stamp_done, stamp_gap, stamp_settled, ProducerEntry, Stamp};
use crate::process::{Liveness, ProcLiveness};
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};
use crate::wait::Tick;
use crate::weaken::{light_fence, ordering, weaken};

/// How often `begin` re-reads a slot that a lap-older writer holds before it reports
/// [`Begin::Busy`] (the writer is normally in the middle of a few stores). Under loom
/// at once: the send loop's wait is what the models explore.
const BUSY_SPINS: u32 = if cfg!(loom) { 0 } else { 256 };

/// What `begin` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// The slot is ours (`busy(seq)`): write, then commit.
    Ours,
    /// A receiver skipped the claim: claim again.
    Void,
    /// A live writer a lap behind holds the slot: wait (on `data`), then try again.
    Busy,
    /// A receiver joined and the gate does not admit the claim yet: wait (on
    /// `space`), then try again.
    Gated,
}

/// A `Channel` producer's private state.
#[derive(Debug)]
pub struct Shared {
    index: usize,
    owner: u64,
    /// The sequence number claimed by the last `try_claim`.
    seq: u64,
    /// Lossless broadcast: the cached gate on the receivers' cursors.
    gate: Gate,
    /// When the send loops' next liveness check is due, across sends (`wait.rs`).
    pub(crate) tick: Tick,
    /// Lossless broadcast: whether the gate admitted `seq` after the join check.
    admitted: bool,
}

impl Shared {
    /// Takes a free entry of the producer table. `None` if it is full.
    pub fn join(view: &RingView<'_>, owner: u64) -> Option<Shared> {
        let index = claim_free(view.producers, owner, |p| &p.owner)?;
        let entry = &view.producers[index];
        entry.claim.store(0, Ordering::Relaxed);
        entry.records.store(0, Ordering::Relaxed);
        let membership = &view.ctl.membership;
        // `Release`: a receiver that counts us (`Acquire`) sees our entry.
        membership.producers.fetch_add(1, Ordering::Release);
        membership.sender_attaches.fetch_add(1, Ordering::Release);
        Some(Shared {
            index,
            owner,
            seq: 0,
            gate: Gate::new(),
            tick: Tick::default(),
            admitted: true,
        })
    }

    fn entry<'a>(&self, view: &RingView<'a>) -> &'a ProducerEntry {
        &view.producers[self.index]
    }

    /// The sequence number claimed by the last successful [`Shared::try_claim`].
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether this producer still holds its entry (it was not reaped as dead, and no
    /// peer overwrote its owner word).
    #[inline]
    pub fn holds_role(&self, view: &RingView<'_>) -> bool {
        self.entry(view).owner.load(Ordering::Relaxed) == self.owner
    }

    /// Claims the next sequence number; `false` if the gate is closed (lossless and
    /// full).
    #[inline]
    pub fn try_claim(&mut self, view: &RingView<'_>) -> bool {
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
                return false;
            }
            // The intent, before the claim: see "Claiming".
            entry.claim.store(head.wrapping_add(1), Ordering::Relaxed);
            // `AcqRel`: `Release` makes the intent visible to whoever reads `head` past
            // it; `Acquire` orders our slot accesses after the claim.
            if view
                .ctl
                .head
                .compare_exchange_weak(
                    head,
                    head.wrapping_add(1),
                    ordering!("mp_claim", AcqRel, Acquire),
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                self.seq = head;
                self.admitted = true;
                if view.lossless && !view.unicast {
                    // F_c: pairs with a joiner's heavy F_r ("Claiming").
                    light_fence!("mp_fc");
                    if self.gate.note_joins(view) {
                        self.admitted = self.gate.admits(view, head);
                    }
                }
                return true;
            }
        }
    }

    /// Makes the claimed slot ours (`busy`). `check_liveness`: whether a lap-older
    /// writer may be asked the liveness oracle (and taken over if dead); the callers
    /// pass `true` about once a liveness tick.
    #[inline]
    pub fn begin(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
        check_liveness: bool,
    ) -> Begin {
        let seq = self.seq;
        let stamp = &view.slots[view.geom.stamp_index(seq)];
        if !self.admitted {
            if stamp.load(Ordering::Relaxed) >= stamp_busy(seq) {
                return Begin::Void;
            }
            if !self.gate.admits(view, seq) {
                return Begin::Gated;
            }
            self.admitted = true;
        }
        let mut spins = 0u32;
        loop {
            // `Acquire`: pairs with a unicast receiver's `Release` settle, so its copy
            // of the old record happens before we overwrite it.
            let current = stamp.load(Ordering::Acquire);
            if current >= stamp_busy(seq) {
                return Begin::Void;
            }
            if let Stamp::Busy(older) = Stamp::decode(current) {
                // A writer a lap behind still owns the slot: wait, unless it is dead.
                if spins < BUSY_SPINS {
                    spins += 1;
                    spin_hint();
                    continue;
                }
                if !check_liveness || claim_alive(view, older, liveness) {
                    return Begin::Busy;
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
        // W1 (seqlock.rs).
        if !weaken!("mp_w1") {
            fence(Ordering::Release);
        }
        Begin::Ours
    }

    /// Whether a lap-older writer holds the slot of the claimed sequence number: what
    /// [`Shared::begin`] reports as [`Begin::Busy`], and the send loop then waits on
    /// `data`, where that writer's commit wakes (the async send registers there too).
    /// `Relaxed`: a hint that picks the pair to wait on; the waiter's re-check after
    /// registering decides (`wait.rs`).
    #[cfg(feature = "async")]
    pub fn awaits_writer(&self, view: &RingView<'_>) -> bool {
        let seq = self.seq;
        let current = view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed);
        self.admitted
            && current < stamp_busy(seq)
            && matches!(Stamp::decode(current), Stamp::Busy(_))
    }

    /// Publishes the record (a gap marker if `gap`) and wakes sleeping receivers.
    /// `false` if the claim turned void while we wrote (a receiver judged us dead): the
    /// record was not published.
    #[inline]
    pub fn commit(&mut self, view: &RingView<'_>, gap: bool) -> bool {
        let seq = self.seq;
        let stamp = if gap { stamp_gap(seq) } else { stamp_done(seq) };
        let entry = self.entry(view);
        // W2: `Release` pairs with the reader's R1. A CAS, not a store: a receiver may
        // have skipped this claim.
        let published = view.slots[view.geom.stamp_index(seq)]
            .compare_exchange(
                stamp_busy(seq),
                stamp,
                ordering!("mp_w2", Release, Relaxed),
                Ordering::Relaxed,
            )
            .is_ok();
        entry.claim.store(0, Ordering::Relaxed);
        if published {
            // Only this producer writes its counter.
            let records = entry.records.load(Ordering::Relaxed);
            entry
                .records
                .store(records.wrapping_add(1), Ordering::Relaxed);
        }
        // F_p: light; pairs with the receivers' F_w (park, `wait.rs`).
        light_fence!("mp_fp");
        if view.wake_data() {
            sweep_parked(view, &ProcLiveness);
        }
        published
    }

    /// This producer's `parked` word and owner word, for registering as a sleeper
    /// (`wait.rs`).
    pub fn parked<'a>(&self, view: &RingView<'a>) -> (&'a AtomicU64, u64) {
        (&self.entry(view).parked, self.owner)
    }

    /// The table changed (an eviction): rescan before the next claim.
    pub fn invalidate_gate(&mut self) {
        self.gate.invalidate();
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
        view.wake_data();
    }
}

/// Whether the slot of `seq` holds a state at or past `done(seq)`: published, skipped
/// (possibly by another receiver) or overwritten, so a reader waiting on `seq` has
/// something to read or step over.
pub fn resolved(view: &RingView<'_>, seq: u64) -> bool {
    view.slots[view.geom.stamp_index(seq)].load(Ordering::Acquire) >= stamp_done(seq)
}

/// A receiver has waited on `seq` for a liveness tick (`patient`: for two, or no
/// producer is left): skips the claim if its producer died, or never started writing.
/// Returns whether it skipped.
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
        // A unicast slot holding an unconsumed older record (or gap marker) is never
        // touched.
        Stamp::Done(_) | Stamp::Gap(_) => patient && !view.unicast,
        Stamp::Settled(_) | Stamp::Empty => patient,
    };
    if !skippable {
        return false;
    }
    // Lossless broadcast: the settled stamp replaces record `seq - capacity`; a receiver
    // that has not read it yet would find it gone. Only skip what the gate admits (a
    // gated claim stays its producer's, see "Claiming"), after evicting dead receivers
    // that hold the gate (no producer may be left to do it).
    if view.lossless
        && !view.unicast
        && seq >= gate_limit(view)
        && (evict_blocking(view, seq, liveness) == 0 || seq >= gate_limit(view))
    {
        return false;
    }
    if stamp
        .compare_exchange(
            current,
            stamp_settled(seq),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return false;
    }
    view.ctl
        .membership
        .dead_claims
        .fetch_add(1, Ordering::Relaxed);
    // Producers blocked on this slot (unicast) may go on, and so may a producer that
    // waited on `data` for the lap-older writer this replaced.
    fence(Ordering::SeqCst);
    view.wake_space();
    view.wake_data();
    true
}
