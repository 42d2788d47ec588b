//! The single-producer broadcast ring (`Route<T>`, `Mode::Broadcast`).
//!
//! One producer writes records into a ring of `capacity` slots (a power of two); every
//! receiver reads every record with its own cursor. The ring is a sequence-stamped
//! *seqlock ring*, the broadcast relative of Vyukov's bounded queue used by crossbeam's
//! `flavors/array.rs` and of Aeron's term buffers: a slot's stamp says which record it
//! holds and whether that record is complete, so readers need no shared read cursor.
//!
//! # Memory
//!
//! * `ctl.head`: the next sequence number the producer will publish. Only the producer
//!   writes it; receivers read it only to join and to resynchronise after lagging.
//! * slot `seq & (capacity - 1)`: a stamp word followed by the record's words.
//!   The stamp is `2 * seq + 1` ([`stamp_busy`]) while record `seq` is being written and
//!   `2 * seq + 2` ([`stamp_done`]) once it is published. A zeroed slot (stamp 0) holds
//!   nothing.
//! * receiver table: per receiver an owner word (pid + start time) and `cursor`, the
//!   next sequence number it will read.
//!
//! # Invariants
//!
//! 1. Stamps of a slot only grow (the producer writes `seq`, `seq + capacity`, ...), so
//!    for a reader of `seq` a stamp `< stamp_done(seq)` means "not yet", `==` means
//!    "here", `>` means "overwritten: you lagged".
//! 2. A reader returns a record only if the stamp was `stamp_done(seq)` both before and
//!    after copying it (seqlock): a torn or overwritten copy is never returned.
//! 3. Lossless (`Overflow::Block`): the producer writes `seq` only when every live
//!    receiver's cursor is `> seq - capacity`, i.e. every live receiver has finished
//!    reading the record the slot held. The producer caches the minimum cursor
//!    (`limit = min + capacity`) and rescans the table only when it reaches the limit
//!    or a receiver has joined (rtrb's "possibly full, then really full" pattern).
//! 4. A joining receiver starts at a sequence number the producer will not overwrite
//!    before it sees the receiver's cursor (the join protocol below).
//!
//! # Writing record `seq`
//!
//! ```text
//! stamp.store(busy(seq), Relaxed)
//! fence(Release)                      // W1: orders the busy stamp before the data
//! data words .store(.., Relaxed)
//! stamp.store(done(seq), Release)     // W2: publishes the data
//! head.store(seq + 1, Release)
//! light fence                         // F_p: see "Joining" and wait.rs
//! joins.load(Relaxed)                 // lossless only; if it changed:
//!     fence(Acquire)                  //   J2: pairs with the joiner's Release J1
//! data.waiters.load(Relaxed)
//! ```
//!
//! # Reading record `seq`
//!
//! ```text
//! s1 = stamp.load(Acquire)            // R1: pairs with W2, makes the data visible
//! data words .load(.., Relaxed)
//! fence(Acquire)                      // R2: pairs with W1
//! s2 = stamp.load(Relaxed)
//! ok iff s1 == s2 == done(seq)
//! cursor.store(seq + 1, Release)      // pairs with the producer's Acquire rescan
//! ```
//!
//! If the reader's copy saw any word of a later write, that word was stored after W1,
//! so R2 synchronises with W1 and the second stamp load sees at least `busy(later)`:
//! the copy is discarded. This is the seqlock argument of Boehm, "Can seqlocks get
//! along with programming language memory models?" (2012).
//!
//! # Lagging
//!
//! In `Overflow::Overwrite` the producer never waits. A receiver that finds its slot
//! stamped past its sequence (or loses the seqlock race) has been lapped: it reads
//! `head`, moves its cursor to `max(seq + 1, head - capacity)`, the oldest record that
//! may still be present, and reports how many it skipped as `Lagged(n)`.
//!
//! # Joining
//!
//! A receiver claims a free entry (CAS of the owner word from 0), stores a provisional
//! cursor `h0 = head`, increments `joins` (`Release`, J1), executes a heavy fence
//! (`F_r`), then reads `head` again and starts there, stores that as its cursor and,
//! in lossless mode, executes `fence(SeqCst)` (`F_j`) and wakes a producer parked on
//! `space`. The producer's `F_p` is a light fence and `F_r` a heavy one
//! (`barrier.rs`): the pair orders like two `SeqCst` fences, so take the fences in
//! their total order. Every send whose `F_p` precedes `F_r` published a `head` that
//! the receiver's second read sees, so it starts after all of them. A send whose `F_p`
//! follows `F_r` loads `joins` after its fence and sees the increment, so the *next*
//! send rescans and gates on the receiver's cursor. Only the one send in between may
//! write without gating on the newcomer; it writes sequence `>= start` and overwrites
//! `seq - capacity < start`. Hence no record `>= start` is overwritten before the
//! receiver reads it (lossless mode).
//!
//! Two details make "rescans and gates" true. (a) A send whose `F_p` *precedes* `F_r`
//! may also read the new `joins` (nothing forbids it); it then marks the table scanned
//! and no later send looks again, so that rescan must see the new owner word: the
//! producer's `fence(Acquire)` (J2) after reading a changed `joins` pairs with the
//! `Release` increment (J1), which follows the claim and the provisional cursor. (b) A
//! rescan may see the provisional `h0` and block the producer on it; the final cursor
//! store is then progress the producer is waiting for, hence `F_j` and the wake.
//! Both were found by `loom-tests` (`block_join_while_producer_runs`).
//!
//! A cursor left by a dead receiver is at most the `head` of its time, never above the
//! newcomer's, so a stale cursor seen by a rescan between the claim and the store only
//! makes the producer more careful.
//!
//! # Leaving and eviction
//!
//! A receiver leaves by storing 0 into its owner word. A lossless producer that has
//! been blocked by a receiver asks the liveness oracle about it and, if its process is
//! dead, evicts it with a CAS of the owner word (so a concurrent re-join by a new owner
//! is never undone). A live receiver that finds its owner word changed reports
//! `Evicted`.
//!
//! # Taking over from a dead producer
//!
//! A new producer starts at `head`, unless the slot of `head` is already stamped
//! `done(head)`: the previous producer died between its stamp store and its `head`
//! store, receivers may have read that record, and the new producer starts one
//! further. A slot left `busy` is simply rewritten.

use bytemuck::Pod;

use super::{claim_free, RingView};
use crate::barrier;
use crate::layout::{stamp_busy, stamp_done, stamp_settled, ReceiverEntry};
use crate::process::Liveness;
use crate::sync::{fence, load_words, store_words, Ordering};

/// What a receiver's non-blocking read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<T> {
    /// The next record.
    Record(T),
    /// Nothing published beyond the cursor yet.
    Empty,
    /// The receiver was lapped and skipped this many records; its cursor now points at
    /// the oldest record that may still be in the ring.
    Lagged(u64),
}

/// A lossless broadcast producer's cached view of the receivers' cursors (rtrb's
/// "possibly full, then really full"): records below `limit` may be written without
/// looking at the receiver table, which is rescanned only at the limit, after a join
/// or after an eviction. Shared by the single producer and `multi::SharedProducer`.
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

    /// Whether record `seq` may be written now.
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

    /// Called after the producer's F_p: notes a join, so the next record rescans.
    #[inline]
    pub(crate) fn note_joins(&mut self, view: &RingView<'_>) {
        let joins = view.ctl.membership.joins.load(Ordering::Relaxed);
        if joins != self.joins_seen {
            // J2: pairs with the joiner's `Release` increment J1, so the rescan
            // sees its owner word and provisional cursor; see "Joining", (a).
            // (`shmchan_weaken = "j2"` drops it.)
            if !cfg!(shmchan_weaken = "j2") {
                fence(Ordering::Acquire);
            }
            self.joins_seen = joins;
            self.stale = true;
        }
    }
}

/// Lossless broadcast: the first sequence number no producer may write yet, given the
/// receivers' cursors (`u64::MAX` if there is no receiver).
fn gate_limit(view: &RingView<'_>) -> u64 {
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

/// The producer's private state.
#[derive(Debug)]
pub struct Producer {
    /// Sequence number of the next record.
    next: u64,
    /// Lossless: the cached gate on the receivers' cursors.
    gate: Gate,
}

impl Producer {
    /// Attaches to the ring as its (single) producer. The caller must hold the sender
    /// claim, so no other producer runs.
    pub fn attach(view: &RingView<'_>) -> Producer {
        // `Acquire`: pairs with the previous producer's `Release` stores of head/stamps.
        let head = view.ctl.head.load(Ordering::Acquire);
        let stamp = view.slots[view.geom.stamp_index(head)].load(Ordering::Acquire);
        let next = if stamp == stamp_done(head) {
            head.wrapping_add(1)
        } else {
            head
        };
        if next != head {
            view.ctl.head.store(next, Ordering::Release);
        }
        Producer {
            next,
            gate: Gate::new(),
        }
    }

    /// Sequence number the next record will get (= records published so far).
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Lossless mode: may the next record be written now? Always `true` in Overwrite.
    #[inline]
    pub fn has_space(&mut self, view: &RingView<'_>) -> bool {
        if view.unicast {
            return crate::ring::unicast::slot_free(view, self.next);
        }
        if !view.lossless {
            return true;
        }
        self.gate.admits(view, self.next)
    }

    /// Lossless mode, while blocked: evicts the receivers holding the producer back
    /// whose processes are dead. Returns how many were evicted.
    pub fn evict_dead(&mut self, view: &RingView<'_>, liveness: &impl Liveness) -> usize {
        let evicted = evict_blocking(view, self.next, liveness);
        if evicted > 0 {
            self.gate.invalidate();
        }
        evicted
    }

    /// Starts writing the next record: marks its slot busy and returns its sequence.
    /// The caller then fills the record words and calls [`Producer::commit`]; if it
    /// abandons the record instead, the slot stays busy and the next `begin` rewrites it.
    #[inline]
    pub fn begin(&mut self, view: &RingView<'_>) -> u64 {
        let seq = self.next;
        view.slots[view.geom.stamp_index(seq)].store(stamp_busy(seq), Ordering::Relaxed);
        // W1: a reader that sees any record word stored after this fence also sees the
        // busy stamp (pairs with the reader's R2). `shmchan_weaken = "w1"` drops it.
        if !cfg!(shmchan_weaken = "w1") {
            fence(Ordering::Release);
        }
        seq
    }

    /// Publishes the record started by [`Producer::begin`] and wakes sleeping receivers.
    #[inline]
    pub fn commit(&mut self, view: &RingView<'_>) {
        let seq = self.next;
        // W2: pairs with the reader's R1 `Acquire`: the record words are visible to a
        // reader that sees this stamp. (`shmchan_weaken = "w2"`: `Relaxed`.)
        let w2 = if cfg!(shmchan_weaken = "w2") {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        view.slots[view.geom.stamp_index(seq)].store(stamp_done(seq), w2);
        self.next = seq.wrapping_add(1);
        // `Release`: a receiver that joins or resynchronises at `head` sees the stamps
        // of the records below it.
        view.ctl.head.store(self.next, Ordering::Release);
        // F_p: orders the stores above before the loads below; pairs with the
        // receivers' F_r (join) and F_w (park), which are heavy fences, so this one is
        // light (barrier.rs). See the module doc and wait.rs.
        // (`shmchan_weaken = "f_p"`: `fence(AcqRel)`, which does not order a store
        // before a later load.)
        if cfg!(shmchan_weaken = "f_p") {
            fence(Ordering::AcqRel);
        } else {
            barrier::light();
        }
        if view.lossless {
            self.gate.note_joins(view);
        }
        view.data_parker().wake_if_parked();
    }

    /// Writes and publishes one record. The caller has checked [`Producer::has_space`].
    #[inline]
    pub fn push<T: Pod>(&mut self, view: &RingView<'_>, value: &T) {
        let seq = self.begin(view);
        store_words(
            &view.slots[view.geom.data_range(seq)],
            bytemuck::bytes_of(value),
        );
        self.commit(view);
    }
}

/// A receiver's private state.
#[derive(Debug)]
pub struct Consumer {
    index: usize,
    owner: u64,
    cursor: u64,
}

impl Consumer {
    /// Claims a free entry of the receiver table for `owner` and positions the
    /// receiver at the current head. `None` if the table is full.
    pub fn join(view: &RingView<'_>, owner: u64) -> Option<Consumer> {
        let h0 = view.ctl.head.load(Ordering::Acquire);
        let index = claim_free(view.receivers, owner, |e| &e.owner)?;
        let entry = &view.receivers[index];
        entry.cursor.store(h0, Ordering::Relaxed);
        entry.lagged.store(0, Ordering::Relaxed);
        // J1 `Release`: a producer that reads the increment sees the claim and the
        // provisional cursor above (pairs with its J2); see "Joining", (a).
        view.ctl.membership.joins.fetch_add(1, Ordering::Release);
        // F_r: the heavy fence paired with the producer's light F_p; see "Joining".
        // (`shmchan_weaken = "f_r"`: `fence(AcqRel)`.) In a process that cannot issue
        // it (barrier.rs, "degraded") it is a `SeqCst` fence only, see design.md.
        if cfg!(shmchan_weaken = "f_r") {
            fence(Ordering::AcqRel);
        } else {
            barrier::heavy();
        }
        let start = view.ctl.head.load(Ordering::Acquire);
        // `Release`: pairs with the producer's `Acquire` rescan.
        entry.cursor.store(start, Ordering::Release);
        if view.lossless {
            // F_j: a producer that gated on the provisional cursor `h0` may be asleep on
            // `space`; moving the cursor up to `start` is progress for it, as in
            // `advance`. Pairs with its F_w; see "Joining", (b).
            // (`shmchan_weaken = "f_j"` drops the fence and the wake.)
            if !cfg!(shmchan_weaken = "f_j") {
                fence(Ordering::SeqCst);
                view.space_parker().wake_if_parked();
            }
        }
        Some(Consumer {
            index,
            owner,
            cursor: start,
        })
    }

    /// Sequence number of the next record this receiver will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    fn entry<'a>(&self, view: &RingView<'a>) -> &'a ReceiverEntry {
        &view.receivers[self.index]
    }

    /// Whether the entry was taken from this receiver (its process was judged dead,
    /// or a peer overwrote the owner word).
    pub fn is_evicted(&self, view: &RingView<'_>) -> bool {
        self.entry(view).owner.load(Ordering::Relaxed) != self.owner
    }

    /// The hot path of [`Consumer::try_read`]: returns the next record if it is
    /// published and intact, else `Read::Empty` without looking further (not yet
    /// written, lapped, a skipped claim or a lost race: `try_read` sorts those out).
    #[inline(always)]
    pub fn try_read_ready<T: Pod>(&mut self, view: &RingView<'_>) -> Read<T> {
        let seq = self.cursor;
        let stamp = &view.slots[view.geom.stamp_index(seq)];
        // R1 as in `try_read`.
        if stamp.load(Ordering::Acquire) != stamp_done(seq) {
            return Read::Empty;
        }
        match copy_if_intact::<T>(view, seq) {
            Some(value) => {
                self.advance(view, seq.wrapping_add(1));
                Read::Record(value)
            }
            None => Read::Empty,
        }
    }

    /// Reads the next record if there is one.
    #[inline]
    pub fn try_read<T: Pod>(&mut self, view: &RingView<'_>) -> Read<T> {
        // Bounded: each round either returns or skips one settled slot.
        for _ in 0..=view.geom.capacity {
            let seq = self.cursor;
            let want = stamp_done(seq);
            let stamp = &view.slots[view.geom.stamp_index(seq)];
            // R1: pairs with the producer's W2.
            let s1 = stamp.load(Ordering::Acquire);
            if s1 < want {
                return Read::Empty;
            }
            if s1 == want {
                if let Some(value) = copy_if_intact::<T>(view, seq) {
                    self.advance(view, seq.wrapping_add(1));
                    return Read::Record(value);
                }
            } else if s1 == stamp_settled(seq) {
                // A `Channel` claim skipped because its producer died: no record.
                self.advance(view, seq.wrapping_add(1));
                continue;
            }
            return self.resync(view, seq);
        }
        Read::Empty
    }

    /// Moves the cursor past a lapped record, to the oldest one that may still be in
    /// the ring, and reports how many were skipped.
    #[cold]
    fn resync<T>(&mut self, view: &RingView<'_>, seq: u64) -> Read<T> {
        let head = view.ctl.head.load(Ordering::Acquire);
        // `max(seq + 1)`: always make progress, even if a corrupt head points backwards.
        let next = head
            .saturating_sub(view.geom.capacity)
            .max(seq.wrapping_add(1));
        let skipped = next.wrapping_sub(seq);
        let entry = self.entry(view);
        // Only this receiver writes its counters: load + store, no RMW needed.
        entry.lagged.store(
            entry.lagged.load(Ordering::Relaxed).wrapping_add(skipped),
            Ordering::Relaxed,
        );
        self.advance(view, next);
        Read::Lagged(skipped)
    }

    /// Publishes the new cursor and, in lossless mode, wakes a producer waiting for
    /// the slot we just freed.
    #[inline(always)]
    fn advance(&mut self, view: &RingView<'_>, next: u64) {
        self.cursor = next;
        // `Release`: pairs with the producer's `Acquire` rescan; our reads of the slot
        // happen before its next write of it.
        self.entry(view).cursor.store(next, Ordering::Release);
        if view.lossless {
            // F_a: pairs with the producer's heavy F_w when it parks on `space`
            // (wait.rs), so it is light (barrier.rs).
            // (`shmchan_weaken = "f_a"`: `fence(AcqRel)`.)
            if cfg!(shmchan_weaken = "f_a") {
                fence(Ordering::AcqRel);
            } else {
                barrier::light();
            }
            view.space_parker().wake_if_parked();
        }
    }

    /// Leaves the table. A producer blocked on this receiver is woken to rescan.
    pub fn leave(self, view: &RingView<'_>) {
        let entry = self.entry(view);
        // `Release`: our reads happen before the producer, seeing the entry free,
        // reuses the slots. CAS: never free an entry a peer has re-assigned.
        let _ = entry
            .owner
            .compare_exchange(self.owner, 0, Ordering::Release, Ordering::Relaxed);
        // F_l: pairs with the producer's F_w when it parks on `space`.
        // (`shmchan_weaken = "f_l"`: `AcqRel`.)
        fence(if cfg!(shmchan_weaken = "f_l") {
            Ordering::AcqRel
        } else {
            Ordering::SeqCst
        });
        view.space_parker().wake_if_parked();
    }
}

/// The seqlock copy of record `seq`, whose stamp the caller has just loaded (R1,
/// `Acquire`) as `done(seq)`: copies the words, then keeps the copy only if the stamp
/// still says `done(seq)`. `None`: a writer lapped us during the copy.
#[inline(always)]
fn copy_if_intact<T: Pod>(view: &RingView<'_>, seq: u64) -> Option<T> {
    let mut value = T::zeroed();
    load_words(
        &view.slots[view.geom.data_range(seq)],
        bytemuck::bytes_of_mut(&mut value),
    );
    // R2: pairs with the producer's W1 (see the module doc).
    // `shmchan_weaken = "r2"` drops it.
    if !cfg!(shmchan_weaken = "r2") {
        fence(Ordering::Acquire);
    }
    (view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed) == stamp_done(seq))
        .then_some(value)
}

/// Lossless broadcast, while a producer is blocked before writing `next`: evicts the
/// receivers holding it back whose processes are dead. Returns how many.
pub fn evict_blocking(view: &RingView<'_>, next: u64, liveness: &impl Liveness) -> usize {
    let mut evicted = 0;
    for entry in view.receivers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        let cursor = entry.cursor.load(Ordering::Acquire);
        if cursor.saturating_add(view.geom.capacity) > next {
            continue; // not what blocks us
        }
        if !liveness.is_alive(owner) && evict(view, entry, owner) {
            evicted += 1;
        }
    }
    evicted
}

/// Evicts `entry` if it is still held by `owner`. Returns whether this call evicted it.
pub fn evict(view: &RingView<'_>, entry: &ReceiverEntry, owner: u64) -> bool {
    // `AcqRel`/`Relaxed`: the CAS only needs to be atomic against a re-join; the
    // producer rescans afterwards with its own `Acquire` loads.
    let evicted = entry
        .owner
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    if evicted {
        view.ctl
            .membership
            .evictions
            .fetch_add(1, Ordering::Relaxed);
    }
    evicted
}

/// Counts the receivers whose process is alive, evicting the dead ones on the way.
pub fn live_receivers(view: &RingView<'_>, liveness: &impl Liveness) -> usize {
    let mut live = 0;
    for entry in view.receivers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        if liveness.is_alive(owner) {
            live += 1;
        } else {
            evict(view, entry, owner);
        }
    }
    if live < view.receivers.len() {
        // An eviction may unblock a lossless producer.
        fence(Ordering::SeqCst);
        view.space_parker().wake_if_parked();
    }
    live
}

/// Claims the sender role for `owner`. If another owner holds it and is dead, takes it
/// over. `Err(holder)` if a live process holds it.
pub fn claim_sender(view: &RingView<'_>, owner: u64, liveness: &impl Liveness) -> Result<(), u64> {
    let sender = &view.ctl.membership.sender;
    let mut current = 0;
    loop {
        // `Acquire` on success: we see everything the previous sender published.
        match sender.compare_exchange(current, owner, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(holder) if holder != 0 && liveness.is_alive(holder) => return Err(holder),
            Err(holder) => current = holder,
        }
    }
    view.ctl
        .membership
        .sender_attaches
        .fetch_add(1, Ordering::Release);
    Ok(())
}

/// Gives up the sender role (if `owner` still holds it) and wakes every sleeping
/// receiver so that it sees the disconnection.
pub fn release_sender(view: &RingView<'_>, owner: u64) {
    // `Release`: a receiver that sees the claim gone (`Acquire`) sees every record.
    let _ =
        view.ctl
            .membership
            .sender
            .compare_exchange(owner, 0, Ordering::Release, Ordering::Relaxed);
    // Pairs with the receivers' F_w: a receiver about to sleep sees the claim gone.
    fence(Ordering::SeqCst);
    view.data_parker().wake_if_parked();
}

/// Clears the sender claim if `owner` (observed dead by the caller) still holds it.
pub fn reap_sender(view: &RingView<'_>, owner: u64) -> bool {
    view.ctl
        .membership
        .sender
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Reads record `*cursor` into `dst` as a read-only *observer* (`shmchan tail`), and
/// moves `*cursor` past it. `Read::Record(())` means `dst` holds the record;
/// `Read::Lagged(n)` that the producer lapped the cursor, which now points at the
/// oldest record that may still be present.
///
/// The same seqlock validation as [`Consumer::try_read`] (a torn or overwritten record
/// is never reported as one), but the cursor is the caller's own and nothing is stored
/// to shared memory: the observer takes no receiver entry, never gates a lossless
/// producer, and works on a read-only mapping. For that last reason each load is a
/// `Relaxed` load of 8 bytes (defined on read-only memory) followed by a
/// `fence(Acquire)` where `try_read` has an `Acquire` load: a relaxed load followed by
/// an acquire fence synchronises with the same release store. `dst` is at most the
/// record's words long (the caller passes the record size).
pub fn observe(view: &RingView<'_>, cursor: &mut u64, dst: &mut [u8]) -> Read<()> {
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
        }
        // Lapped: as `Consumer::resync`, without the shared counters.
        let head = view.ctl.head.load(Ordering::Relaxed);
        // Pairs with the producer's `Release` store of `head`.
        fence(Ordering::Acquire);
        let next = head
            .saturating_sub(view.geom.capacity)
            .max(seq.wrapping_add(1));
        *cursor = next;
        return Read::Lagged(next.wrapping_sub(seq));
    }
    Read::Empty
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::HeapRing;

    struct AllAlive;
    impl Liveness for AllAlive {
        fn is_alive(&self, _: u64) -> bool {
            true
        }
    }

    struct AllDead;
    impl Liveness for AllDead {
        fn is_alive(&self, _: u64) -> bool {
            false
        }
    }

    #[test]
    fn lapped_receiver_gets_the_exact_lag_then_the_oldest_records() {
        let ring = HeapRing::new::<[u64; 3]>(8, 4, false);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        let mut rx = Consumer::join(&view, 7).expect("join");
        for i in 0..20u64 {
            assert!(tx.has_space(&view));
            tx.push(&view, &[i, !i, i * 3]);
        }
        assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Lagged(12));
        for i in 12..20u64 {
            assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Record([i, !i, i * 3]));
        }
        assert_eq!(rx.try_read::<[u64; 3]>(&view), Read::Empty);
        assert_eq!(view.receivers[0].lagged.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn lossless_producer_stops_at_the_slowest_receiver() {
        let ring = HeapRing::new::<u64>(4, 4, true);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        let mut slow = Consumer::join(&view, 1).expect("join");
        let mut fast = Consumer::join(&view, 2).expect("join");
        for i in 0..4u64 {
            assert!(tx.has_space(&view));
            tx.push(&view, &i);
            assert_eq!(fast.try_read::<u64>(&view), Read::Record(i));
        }
        assert!(!tx.has_space(&view), "slow receiver has read nothing");
        assert_eq!(slow.try_read::<u64>(&view), Read::Record(0));
        assert!(tx.has_space(&view));
        tx.push(&view, &4);
        assert!(!tx.has_space(&view));
        // The slow receiver's process dies: it is evicted only if dead.
        assert_eq!(tx.evict_dead(&view, &AllAlive), 0);
        assert_eq!(tx.evict_dead(&view, &AllDead), 1);
        assert!(tx.has_space(&view));
        assert!(slow.is_evicted(&view));
        assert!(!fast.is_evicted(&view));
        assert_eq!(live_receivers(&view, &AllAlive), 1);
    }

    #[test]
    fn a_receiver_that_joins_late_starts_at_head() {
        let ring = HeapRing::new::<u64>(4, 2, true);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        for i in 0..3u64 {
            tx.push(&view, &i);
        }
        let mut rx = Consumer::join(&view, 1).expect("join");
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
        assert!(tx.has_space(&view));
        tx.push(&view, &3);
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(3));
        let _other = Consumer::join(&view, 2).expect("second entry");
        assert!(Consumer::join(&view, 3).is_none(), "table of 2 is full");
        rx.leave(&view);
        assert!(Consumer::join(&view, 3).is_some(), "a left entry is reused");
    }

    #[test]
    fn a_new_producer_continues_after_a_dead_ones_last_record() {
        let ring = HeapRing::new::<u64>(4, 2, false);
        let view = ring.view();
        let mut rx = Consumer::join(&view, 1).expect("join");
        let mut tx = Producer::attach(&view);
        tx.push(&view, &10);
        // Died after stamping record 1 done but before storing head.
        let seq = tx.begin(&view);
        store_words(&view.slots[view.geom.data_range(seq)], &11u64.to_ne_bytes());
        view.slots[view.geom.stamp_index(seq)].store(stamp_done(seq), Ordering::Release);
        assert_eq!(view.ctl.head.load(Ordering::Relaxed), 1);
        let mut next = Producer::attach(&view);
        assert_eq!(next.next_seq(), 2);
        next.push(&view, &12);
        for want in [10u64, 11, 12] {
            assert_eq!(rx.try_read::<u64>(&view), Read::Record(want));
        }
        // Died in the middle of writing: the slot stays busy and is rewritten.
        let seq = next.begin(&view);
        let mut third = Producer::attach(&view);
        assert_eq!(third.next_seq(), seq);
        assert_eq!(rx.try_read::<u64>(&view), Read::Empty);
        third.push(&view, &13);
        assert_eq!(rx.try_read::<u64>(&view), Read::Record(13));
    }

    #[test]
    fn sender_claim_is_exclusive_and_taken_from_the_dead() {
        let ring = HeapRing::new::<u64>(4, 2, false);
        let view = ring.view();
        assert_eq!(claim_sender(&view, 5, &AllAlive), Ok(()));
        assert_eq!(claim_sender(&view, 6, &AllAlive), Err(5));
        assert_eq!(claim_sender(&view, 6, &AllDead), Ok(()));
        release_sender(&view, 5); // not the holder any more: no effect
        assert_eq!(view.ctl.membership.sender.load(Ordering::Relaxed), 6);
        release_sender(&view, 6);
        assert_eq!(view.ctl.membership.sender.load(Ordering::Relaxed), 0);
        assert_eq!(
            view.ctl.membership.sender_attaches.load(Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn threads_never_see_a_torn_record() {
        // A stress complement to the loom model: a fast producer laps a reader that
        // validates every record it returns.
        let ring = std::sync::Arc::new(HeapRing::new::<[u64; 8]>(4, 1, false));
        let r2 = std::sync::Arc::clone(&ring);
        let total = 200_000u64;
        let mut rx = Consumer::join(&ring.view(), 1).expect("join");
        let producer = std::thread::spawn(move || {
            let view = r2.view();
            let mut tx = Producer::attach(&view);
            for i in 0..total {
                tx.push(&view, &[i; 8]);
            }
        });
        let view = ring.view();
        let (mut got, mut skipped, mut last) = (0u64, 0u64, None);
        while got + skipped < total {
            match rx.try_read::<[u64; 8]>(&view) {
                Read::Record(r) => {
                    assert!(r.iter().all(|w| *w == r[0]), "torn record {r:?}");
                    assert!(last.is_none_or(|l| r[0] > l), "out of order");
                    last = Some(r[0]);
                    got += 1;
                }
                Read::Lagged(n) => skipped += n,
                Read::Empty => std::hint::spin_loop(),
            }
        }
        producer.join().expect("producer");
        assert_eq!(got + skipped, total);
    }

    #[test]
    fn an_observer_reads_validated_records_without_touching_the_table() {
        let ring = HeapRing::new::<[u64; 2]>(4, 2, true);
        let view = ring.view();
        let mut tx = Producer::attach(&view);
        let mut cursor = 0u64;
        let mut buf = [0u8; 16];
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Empty);
        for i in 0..3u64 {
            tx.push(&view, &[i, !i]);
        }
        for i in 0..3u64 {
            assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
            assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [i, !i]);
        }
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Empty);
        // The observer holds no entry: a lossless producer is not gated by it.
        for i in 3..20u64 {
            assert!(tx.has_space(&view));
            tx.push(&view, &[i, !i]);
        }
        assert!(view
            .receivers
            .iter()
            .all(|e| e.owner.load(Ordering::Relaxed) == 0));
        // Lapped: skips to the oldest record still present (20 - 4 = 16).
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Lagged(13));
        assert_eq!(cursor, 16);
        assert_eq!(observe(&view, &mut cursor, &mut buf), Read::Record(()));
        assert_eq!(bytemuck::cast::<[u8; 16], [u64; 2]>(buf), [16, !16]);
    }
}
