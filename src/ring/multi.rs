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
//! # Membership
//!
//! A producer's entry is the truth about whether it is attached: its owner word is
//! non-zero from the CAS that takes it (`join`) to the CAS that gives it back (`leave`)
//! or frees it once its process died (`reap_dead_producers`, `table.rs`). Receivers
//! decide that no producer is left (`recv.rs`, "Disconnection") from the owner words,
//! never from a count: a producer can die between any two of its stores, and a count
//! kept apart from the entries would then be wrong for good (killed in `join` between
//! its entry and its increment, the reaper's decrement wrapped the count; killed in
//! `leave` between its owner CAS and its decrement, the count stayed above zero).
//!
//! `membership.producers` remains, as a hint: `join` raises it *before* it takes an
//! entry, `leave` and the reaper lower it *after* they freed one (saturating at 0), so
//! it is never below the number of entries held, and above it only by the producers
//! that died between those two steps. Receivers read it with `sender_attaches` as the
//! key of their last scan of the table: the key changes with every join and leave
//! that runs to its end, so the scan (one owner word per entry, lines the producers
//! write on every send) is repeated only then, and on the liveness tick, not on every
//! empty poll. The steps, and what a death after each leaves ([`Step`]):
//!
//! ```text
//! join:  producers += 1                 JoinCounted: no entry; count one high
//!        owner CAS 0 -> us              JoinEntered: entry held; reaped on a tick
//!        sender_attaches += 1 (Release)
//! leave: owner CAS us -> 0 (Release)    LeaveFreed: entry free; count one high,
//!        producers -= 1 (Release)         key unchanged: seen on the next tick
//!        fence(SeqCst), wake `data`
//! ```
//!
//! The orderings. The owner CAS of `leave` (`Release`) pairs with the receivers'
//! scan (`Acquire`): a receiver that finds every entry free sees every record their
//! producers published and drains them before `Disconnected`. The `sender_attaches`
//! increment (`Release`, after the owner CAS) pairs with the key read (`Acquire`): a
//! receiver whose key shows a join finds the entry held when it scans; one whose key
//! does not show it yet decides as it would have just before that join (and
//! `Disconnected` is not sticky: the records are read once they come). The decrement
//! (`Release`, after the owner CAS) pairs with the key read likewise, so a receiver
//! woken by a leave (the fence and the wake pair with its `F_w`, `wait.rs`) rescans
//! and finds the entry free at once.
//!
//! A death between two steps leaves the key without the change the next step would
//! have made, and a later leave may then bring the count back to a value a receiver
//! keeps: its verdict "present" can outlive the last producer. The tick rescans
//! whatever the key says, so this delays `Disconnected` by one liveness tick at most.
//! The other verdict, "none", cannot outlive a completed join: `sender_attaches` only
//! grows and every completed join raises it, and a receiver that read a record of
//! that producer (published after its increment) reads the increment too.
//!
//! # Invariants
//!
//! 1. Only the claimer of `seq` moves a slot's stamp to `busy(seq)` or `done(seq)`;
//!    a receiver moves it only to `settled(seq)`, only from a state below `done`, and
//!    (lossless broadcast) only if every live receiver has read `seq - capacity`.
//! 2. A slot is `busy` for at most one live writer at a time.
//! 3. A record is published at most once, at one sequence number; a void claim is
//!    never published.
//! 4. `membership.producers` is never below the number of entries held; receivers
//!    never decide anything from its value alone.

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

/// A point inside [`Shared::join`] or [`Shared::leave_until`] between two of its stores to
/// shared memory, where a producer that dies leaves the table half updated. The crash
/// tests kill a process at one (`SHMCHAN_TEST_DIE_AT`, feature `test-hooks`); the
/// loom models stop a thread at one ([`Shared::join_until`], [`Shared::leave_until`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `join`: the count is raised, no entry taken yet.
    JoinCounted,
    /// `join`: the entry is taken, `sender_attaches` not raised yet.
    JoinEntered,
    /// `leave`: the entry is given back, the count not lowered yet.
    LeaveFreed,
}

#[cfg(all(feature = "test-hooks", not(loom)))]
impl Step {
    /// The value of `SHMCHAN_TEST_DIE_AT` that kills a process here.
    fn name(self) -> &'static str {
        match self {
            Step::JoinCounted => "join-counted",
            Step::JoinEntered => "join-entered",
            Step::LeaveFreed => "leave-freed",
        }
    }
}

/// Whether a join or leave stops at `step` because `stop` says so (a model). In a test
/// build the process is also killed here if `SHMCHAN_TEST_DIE_AT` names `step`.
#[inline]
fn stops_at(step: Step, stop: Option<Step>) -> bool {
    #[cfg(all(feature = "test-hooks", not(loom)))]
    die_if_asked(step);
    stop == Some(step)
}

/// Environment variable naming the [`Step`] at which a test process kills itself
/// (`SIGKILL`), compiled in only with the test-only `test-hooks` feature.
#[cfg(all(feature = "test-hooks", not(loom)))]
pub(crate) const TEST_DIE_AT_VAR: &str = "SHMCHAN_TEST_DIE_AT";

#[cfg(all(feature = "test-hooks", not(loom)))]
fn die_if_asked(step: Step) {
    if std::env::var(TEST_DIE_AT_VAR).is_ok_and(|v| v == step.name()) {
        // SAFETY: `raise` has no memory preconditions; SIGKILL ends the process here,
        // as `kill -9` would, without running any destructor.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
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
        Self::join_until(view, owner, None)
    }

    /// [`Shared::join`], stopping for good at `stop` (the models of a producer that dies
    /// there; `None` then). See "Membership" for the order of the steps.
    pub fn join_until(view: &RingView<'_>, owner: u64, stop: Option<Step>) -> Option<Shared> {
        let membership = &view.ctl.membership;
        // The count before the entry, so that it never falls below the entries held.
        // `Relaxed`: it publishes nothing (the table does); receivers only see that it
        // changed, and rescan the table.
        membership.producers.fetch_add(1, Ordering::Relaxed);
        if stops_at(Step::JoinCounted, stop) {
            return None;
        }
        let Some(index) = claim_free(view.producers, owner, |p| &p.owner) else {
            lower_count(view);
            return None;
        };
        if stops_at(Step::JoinEntered, stop) {
            return None;
        }
        let entry = &view.producers[index];
        entry.claim.store(0, Ordering::Relaxed);
        entry.records.store(0, Ordering::Relaxed);
        // `Release`: a receiver that sees the new attach count (`Acquire`, its presence
        // key, `recv.rs`) and then scans the table sees our owner word.
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

    /// Gives the entry back and wakes receivers, which may now see no producer left;
    /// `stop`: `None`, or the step at which a model's producer dies (see "Membership"
    /// for the order of the steps).
    pub fn leave_until(&self, view: &RingView<'_>, stop: Option<Step>) {
        let entry = self.entry(view);
        entry.claim.store(0, Ordering::Relaxed);
        // `Release`: a receiver that sees the entry free (`Acquire`, its table scan)
        // sees every record we published, so it drains them before `Disconnected`.
        if entry
            .owner
            .compare_exchange(self.owner, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            if stops_at(Step::LeaveFreed, stop) {
                return;
            }
            lower_count(view);
        }
        // Pairs with the receivers' F_w: a receiver about to sleep sees us gone.
        fence(Ordering::SeqCst);
        view.wake_data();
    }
}

/// Lowers the producer count after an entry was given back or reaped (or a join found
/// the table full), never below 0: by construction it never is (the count is raised
/// before an entry is taken), but it lives in shared memory. `Release`: a receiver that
/// sees the lower count (`Acquire`, its presence key) and rescans sees the entry free.
pub(crate) fn lower_count(view: &RingView<'_>) {
    let _ =
        view.ctl
            .membership
            .producers
            .fetch_update(Ordering::Release, Ordering::Relaxed, |count| {
                count.checked_sub(1)
            });
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
