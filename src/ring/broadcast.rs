//! Broadcast receivers (`Mode::Broadcast`, `Route` and `Channel`): every receiver reads
//! every record with a cursor of its own.
//!
//! The ring is a sequence-stamped *seqlock ring*, the broadcast relative of Vyukov's
//! bounded queue used by crossbeam's `flavors/array.rs` and of Aeron's term buffers: a
//! slot's stamp (`layout.rs`: `4·seq + 1` busy, `+ 2` done, `+ 3` settled, `+ 4` gap) says which
//! record it holds and whether it is complete, so readers need no shared read cursor.
//!
//! # Memory
//!
//! * `ctl.head`: the next sequence number a producer will publish (or claim, on a
//!   `Channel`). Receivers read it only to join and to resynchronise after lagging.
//! * slot `seq & (capacity - 1)`: a stamp word followed by the record's words.
//! * receiver table (`table.rs`): per receiver an owner word and `cursor`, the next
//!   sequence number it will read (everything below it has been read).
//! * `ctl.membership.extra_started`, `extra_done`: the gap accounting ("Gap markers and
//!   laps"), written only when a gap marker is published.
//!
//! # Invariants
//!
//! 1. Stamps of a slot only grow, so for a reader of `seq` a stamp `< done(seq)` means
//!    "not yet", `== done(seq)` "here", `== settled(seq)` "skipped, nothing to read"
//!    (a `Channel` claim whose producer died, `multi.rs`), `== gap(seq)` "a gap
//!    marker: report its count as a lag and step over it" (`RawSender::publish_gap`),
//!    and anything above "overwritten: you lagged". (A gap marker is read with the
//!    same copy-and-check as a record, `seqlock.rs`, `gap_if_intact`.)
//! 2. A reader returns a record only if the stamp was `done(seq)` both before and after
//!    copying it (`seqlock.rs`): a torn or overwritten copy is never returned.
//! 3. Lossless (`Overflow::Block`): no producer writes `seq` before every live receiver's
//!    cursor is `> seq - capacity` (`gate.rs`).
//! 4. A joining receiver starts at a sequence number no producer will overwrite before
//!    it sees the receiver's cursor (the join protocol below).
//! 5. A receiver's private `extra` is `E(cursor)`, the extra records the gap markers
//!    below its cursor stand for, so every `Lagged(n)` counts the producer's records
//!    ("Gap markers and laps"; an estimate only after a producer died inside a gap's
//!    accounting).
//!
//! # Reading in place
//!
//! In a lossless ring a receiver may also *hold* the next record
//! ([`Consumer::try_hold`]): it checks the stamp (R1) and leaves its cursor at the
//! record until it lets go ([`Consumer::release`]). By invariant 3 no producer writes
//! that slot meanwhile, so the record can be read where it lies, with no copy and no
//! second stamp check (`Receiver::recv_ref`). A receiver that dies holding it is
//! evicted as any other, which frees the slot.
//!
//! # Lagging
//!
//! In `Overflow::Overwrite` producers never wait. A receiver that finds its slot
//! stamped past its sequence (or loses the seqlock race) has been lapped: it reads
//! `head`, moves its cursor to `max(seq + 1, head - capacity)`, the oldest record that
//! may still be present, and reports how many records it skipped as `Lagged(n)`,
//! counted in the producer's records (a gap marker it skipped counts its `n`: next
//! section). In lossless mode only an evicted receiver can be lapped.
//!
//! # Gap markers and laps
//!
//! A gap marker of `n` records (`RawSender::publish_gap`) takes one slot and stands
//! for `n` of the producer's records. A receiver that reads it reports `Lagged(n)`; one
//! lapped over it must count the same `n`. Let `E(s)` be the sum of `n - 1` over the
//! gap markers published below sequence number `s`: the producer's records below `s`
//! are `s + E(s)`, so a receiver lapped at `c0` and resuming at `c1` missed
//! `(c1 - c0) + E(c1) - E(c0)` of them (`lapped_count`).
//!
//! Each receiver keeps `E(cursor)` itself (`Consumer::extra`: `+ n - 1` when it reads a
//! marker; learnt from the ring when it joins and when it is lapped). The ring keeps two
//! sums on the membership line, written only by gap publications (`gaps.rs`):
//!
//! ```text
//! producer (send.rs, `accounted`)           receiver (gaps.rs, `locate(from)`)
//! G1 extra_started += n - 1 (Relaxed)       L1 d = extra_done (Acquire)
//!    claim (Channel), stamp gap(g) (W2,     L2 h = head (Acquire); next = max(from, h - capacity)
//!    Release), head store (Route)           L3 S = sum of n - 1 over the gap stamps in [next, h)
//! G3 extra_done += n - 1 (Release)             (Acquire; top down; a slot found overwritten:
//!    F_g (light), wake `data`                  next = the one after it, stop)
//! not published: extra_started -= n - 1     L4 s = extra_started (Relaxed)
//!                                           exact iff s - d == A and h >= next: E(next) = d - S
//! ```
//!
//! Why `d - S` is `E(next)` when exact (the sums are of non-negative terms and do not
//! wrap for any real count; garbage counts give a garbage count, never UB, a panic or an
//! unbounded loop: wrapping arithmetic, at most `capacity` stamps per round):
//!
//! 1. A gap counted in `d` is stamped and below `h`: G3 follows its stamp and, on a
//!    `Route`, the `head` store past it (on a `Channel`, the claim), and L1 acquires. So
//!    L3 sees its stamp, or finds its slot overwritten and moves `next` past it.
//! 2. A gap that L2 or L3 reveals (its stamp, or a `head` or claim past it) was
//!    announced: G1 precedes the claim CAS, the stamp and the `head` store (all
//!    `Release`), L2 and L3 acquire, so L4 reads `extra_started` at or after G1
//!    (coherence). Every gap of `d` is in `s` too (G1, G3, L1, L4 in that order), so
//!    `s == d` means every revealed gap is counted in `d`.
//! 3. `h >= next`: the receiver saw the slot of `from - 1` overwritten, possibly by a
//!    busy stamp (a relaxed store that synchronises with nothing); a `head` below
//!    `from` is a stale view in which the marker at `from - 1` may not be revealed.
//!
//! So `d` counts exactly the gaps below `h`, `S` those in `[next, h)`, `d - S` those
//! below `next`. *Quick path:* if `d` equals the receiver's own `E(cursor)` (and the
//! check holds), every gap of `d` is one it has counted, below its cursor, and by 2
//! there is no other below `h`: `E(next) = E(cursor)`, no scan. A ring without gap
//! markers never scans. Likewise the scan stops once `S` reaches `d - E(cursor)`: the
//! markers of the window are all above the cursor, so the rest of it holds none.
//!
//! L5: if four rounds (one under loom) are not exact, a gap is in flight (between G1
//! and G3): the receiver *puts the lap off*: the read says `Empty`, the cursor stays on
//! the lapped slot, and the next read meets the lap again. G3 is followed by `F_g` and
//! a wake of `data` (`F_g` pairs with the receiver's `F_w`, as `F_p` does for a
//! record), so a receiver that went to sleep meanwhile is woken. A producer killed
//! between G1 and G3 leaves the sums apart for good: when a lap has been put off at two
//! liveness checks in a row (a whole tick at least), or when no producer is left, the
//! receive loop lets it through (`settle_lap`), counted from the sums as they stand:
//! off by at most that gap's `n - 1`, once per receiver, and never below the slots
//! skipped. (A live producer stalled a whole tick inside that window is taken for dead
//! here, with the same bound.) The receiver then takes the difference `s - d` it saw
//! as lasting: `A` (`Consumer::apart`, 0 until then) is what L4 compares `s - d` with,
//! so later laps are exact again and not put off for the dead gap (a stalled producer
//! that finishes after all moves the difference once more: one more lap put off, and
//! settled the same way). A joining receiver learns `E(start)` the same way (bounded
//! rounds, then the estimate, and `A` from it). A batch ends at a lap; the next read counts
//! it as above. G3's `Release` has no loom weakening: under loom the light fence after
//! the stamp (`F_p`, after W2 and the `head` store) is a `SeqCst` fence and already
//! orders them before L1's fence; on hardware it is a compiler barrier.
//!
//! Not exact, and left so: a `Channel` gap sent on a claim an earlier send left
//! pending (the slot was busy or gated) is announced after its claim, so a receiver
//! lapped past that claim in between counts it as one slot and its `n - 1` in its next
//! lap; a claim skipped because its producer died (`settled`) holds no record but a
//! lap over it counts its slot, as it did before.
//!
//! # Joining
//!
//! A receiver claims a free entry (CAS of the owner word from 0), stores a provisional
//! cursor `h0 = head`, increments `joins` (`Release`, J1), executes a heavy fence
//! (`F_r`), then reads `head` again and starts there, stores that as its cursor and, in
//! lossless mode, executes `fence(SeqCst)` (`F_j`) and wakes a producer parked on
//! `space`.
//!
//! The `Route` producer's `F_p` (after its `head` store, `single.rs`) is a light fence
//! and `F_r` a heavy one (`barrier.rs`): the pair orders like two `SeqCst` fences, so
//! take the fences in their total order. Every send whose `F_p` precedes `F_r`
//! published a `head` that the receiver's second read sees, so it starts after all of
//! them. A send whose `F_p` follows `F_r` loads `joins` after its fence and sees the
//! increment, so the *next* send rescans and gates on the receiver's cursor. Only the
//! one send in between may write without gating on the newcomer; it writes sequence
//! `>= start` and overwrites `seq - capacity < start`. Hence no record `>= start` is
//! overwritten before the receiver reads it. `Channel` producers check every claim
//! instead, with a fence after the claim (`multi.rs`, "Claiming").
//!
//! Two details make "rescans and gates" true. (a) A send whose fence *precedes* `F_r`
//! may also read the new `joins` (nothing forbids it); it then marks the table scanned
//! and no later send looks again, so that rescan must see the new owner word: the
//! producer's `fence(Acquire)` (J2, `gate.rs`) after reading a changed `joins` pairs
//! with the `Release` increment (J1), which follows the claim and the provisional
//! cursor. (b) A rescan may see the provisional `h0` and block the producer on it; the
//! final cursor store is then progress the producer is waiting for, hence `F_j` and the
//! wake. Both were found by `loom-tests` (`block_join_while_producer_runs`).
//!
//! A cursor left by a dead receiver is at most the `head` of its time, never above the
//! newcomer's, so a stale cursor seen by a rescan between the claim and the store only
//! makes the producer more careful.
//!
//! # Reading a batch
//!
//! [`Consumer::try_read_many`] reads consecutive records from the cursor, each with the
//! copy-and-check of `try_read` (R1, copy, R2, re-check: invariant 2 holds per record,
//! whatever the batch), stepping over settled stamps, and publishes the cursor *once*
//! at the end of the batch: one `Release` store and, in lossless mode, one light fence
//! `F_a` and at most one wake of a producer parked on `space`.
//!
//! Why one store per batch keeps invariant 3: the producer gates on the cursor it
//! *reads*. Until the batch's store the published cursor is the batch's first sequence
//! number `c`, at or below every record the batch copies, so no producer writes any
//! slot of the batch (writing `seq + capacity` needs a cursor `> seq`) while we copy
//! it: a later store only delays freeing slots, it never frees one early. The single
//! `Release` store then orders *all* the batch's copies before the producer's
//! `Acquire` rescan that sees it, exactly as the per-record store did for one copy
//! (the earlier copies are sequenced before it). The wake argument is the one of
//! `advance`: a producer that parked after reading an older cursor registered and
//! fenced (`F_w`) before re-checking; against `F_a` after our store, either its
//! re-check sees the new cursor or we see it registered and wake it. Intermediate
//! cursors are never published, so a producer blocked on this receiver may sleep a
//! little longer, never for ever.
//!
//! A lap met after at least one record ends the batch *before* the lapped record: the
//! records before it are returned, the cursor is left on it, and the next read
//! (`try_read` or `try_read_many`) meets the lap again and reports `Lagged(n)` from
//! there, so nothing is skipped silently and records returned plus lags reported add
//! up to the cursor's progress. A lap on the first record is reported at once, as
//! `try_read` does.
//!
//! # Leaving and eviction
//!
//! A receiver leaves by storing 0 into its owner word (CAS) and waking a producer
//! parked on `space`. A lossless producer blocked by a dead receiver evicts it
//! (`table.rs`); a live receiver that finds its owner word changed reports `Evicted`.

use super::gaps::{locate, locate_at_join, Located};
use super::record::{Record, RecordsMut};
use super::seqlock::{copy_if_intact, gap_if_intact};
use super::table::{claim_free, sweep_parked};
use super::RingView;
use crate::layout::{stamp_done, stamp_gap, stamp_settled, ReceiverEntry};
use crate::process::ProcLiveness;
use crate::sync::{fence, AtomicU64, Ordering};
use crate::weaken::{heavy_fence, light_fence, seqcst_fence, weaken};

/// What a receiver's non-blocking read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<T = ()> {
    /// The next record (`()`: it was copied into the caller's buffer).
    Record(T),
    /// Nothing published beyond the cursor yet.
    Empty,
    /// The receiver was lapped and skipped this many records; its cursor now points at
    /// the oldest record that may still be in the ring.
    Lagged(u64),
}

/// What a receiver's non-blocking batch read found ([`Consumer::try_read_many`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many records (at least one) were copied to the front of the buffer.
    Records(usize),
    /// Nothing published beyond the cursor yet (or the buffer was empty).
    Empty,
    /// As [`Read::Lagged`]: lapped on the first record, this many skipped.
    Lagged(u64),
}

/// A broadcast receiver's private state.
#[derive(Debug)]
pub struct Consumer {
    index: usize,
    owner: u64,
    cursor: u64,
    /// `E(cursor)`: the extra records the gap markers below the cursor stand for
    /// ("Gap markers and laps").
    extra: u64,
    /// A lap was put off because its count could not be made exact yet...
    deferred: bool,
    /// ...at this many liveness ticks in a row ([`Consumer::settle_lap`]).
    deferred_ticks: u8,
    /// The next lap may be counted from an estimate ([`Consumer::settle_lap`]).
    estimate: bool,
    /// The difference of the gap sums taken as lasting (L5): 0 until this receiver
    /// settles for an estimate.
    apart: u64,
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
        // F_r: the heavy fence paired with the producers' light F_p / F_c. In a process
        // that cannot issue it (barrier.rs, "degraded") it is a `SeqCst` fence only,
        // see docs/design.md.
        heavy_fence!("f_r");
        let start = view.ctl.head.load(Ordering::Acquire);
        // `Release`: pairs with the producer's `Acquire` rescan.
        entry.cursor.store(start, Ordering::Release);
        // `E(start)`, for counting laps in the producer's numbers ("Gap markers and
        // laps"). Overwrite only: a slot at or above `start` overwritten meanwhile
        // moves the start past it (a lossless producer never overwrites them).
        let Located {
            next,
            extra,
            exact,
            apart,
        } = locate_at_join(view, start);
        if next != start {
            // `Release`: as above.
            entry.cursor.store(next, Ordering::Release);
        }
        let start = next;
        if view.lossless && !weaken!("f_j") {
            // F_j: a producer that gated on the provisional cursor `h0` may be asleep on
            // `space`; moving the cursor up to `start` is progress for it, as in
            // `advance`. Pairs with its F_w; see "Joining", (b).
            fence(Ordering::SeqCst);
            view.wake_space();
        }
        Some(Consumer {
            index,
            owner,
            cursor: start,
            extra,
            deferred: false,
            deferred_ticks: 0,
            estimate: false,
            apart: if exact { 0 } else { apart },
        })
    }

    /// Sequence number of the next record this receiver will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    fn entry<'a>(&self, view: &RingView<'a>) -> &'a ReceiverEntry {
        &view.receivers[self.index]
    }

    /// This receiver's `parked` word and owner word, for registering as a sleeper
    /// (`wait.rs`).
    pub fn parked<'a>(&self, view: &RingView<'a>) -> (&'a AtomicU64, u64) {
        (&self.entry(view).parked, self.owner)
    }

    /// Whether the entry was taken from this receiver (its process was judged dead,
    /// or a peer overwrote the owner word).
    pub fn is_evicted(&self, view: &RingView<'_>) -> bool {
        self.entry(view).owner.load(Ordering::Relaxed) != self.owner
    }

    /// The hot path of [`Consumer::try_read_into`]: copies the next record into `dst`
    /// if it is published and intact (`true`), else returns `false` without looking
    /// further (not yet written, lapped, a skipped claim or a lost race: `try_read_into`
    /// sorts those out; `dst` may then hold a torn copy).
    #[inline(always)]
    pub fn try_read_ready<R: Record + ?Sized>(&mut self, view: &RingView<'_>, dst: &mut R) -> bool {
        let seq = self.cursor;
        let stamp = &view.slots[view.geom.stamp_index(seq)];
        // R1 (seqlock.rs): pairs with the producer's W2.
        if stamp.load(Ordering::Acquire) != stamp_done(seq) {
            return false;
        }
        if copy_if_intact(view, seq, dst.bytes_mut()) {
            self.advance(view, seq.wrapping_add(1));
            return true;
        }
        false
    }

    /// Reads the next record into `dst` if there is one (`Read::Record(())`); on any
    /// other answer `dst` holds nothing to deliver.
    #[inline]
    pub fn try_read_into<R: Record + ?Sized>(&mut self, view: &RingView<'_>, dst: &mut R) -> Read {
        let dst = dst.bytes_mut();
        match self.next_with(view, |seq| copy_if_intact(view, seq, dst), false) {
            Read::Record(_) => Read::Record(()),
            Read::Empty => Read::Empty,
            Read::Lagged(n) => Read::Lagged(n),
        }
    }

    /// Lossless only: finds the next record and *holds* it (`Read::Record(seq)`): the
    /// cursor stays at `seq`, so no producer rewrites its slot (invariant 3) until
    /// [`Consumer::release`], and the caller may read it in place ("Reading in
    /// place"). Gaps, skipped claims and lags are handled as by `try_read_into`.
    #[inline]
    pub fn try_hold(&mut self, view: &RingView<'_>) -> Read<u64> {
        debug_assert!(
            view.lossless,
            "records are held in place only in lossless rings"
        );
        // Nothing to copy: the stamp `done(seq)` (R1, Acquire) makes the producer's
        // writes visible, and the gate keeps them from changing.
        self.next_with(view, |_| true, true)
    }

    /// The hot path of [`Consumer::try_hold`]: the next record's sequence number if it
    /// is published, else `None` without looking further.
    #[inline(always)]
    pub fn try_hold_ready(&mut self, view: &RingView<'_>) -> Option<u64> {
        let seq = self.cursor;
        // R1 (seqlock.rs): pairs with the producer's W2.
        (view.slots[view.geom.stamp_index(seq)].load(Ordering::Acquire) == stamp_done(seq))
            .then_some(seq)
    }

    /// Lets go of the record held by [`Consumer::try_hold`]: moves the cursor past it
    /// (which frees its slot for the producers).
    #[inline]
    pub fn release(&mut self, view: &RingView<'_>, seq: u64) {
        if self.cursor == seq {
            self.advance(view, seq.wrapping_add(1));
        }
    }

    /// The body of [`Consumer::try_read_into`] and [`Consumer::try_hold`]: at the
    /// next published record, `take(seq)` copies it (`false`: the copy was torn);
    /// unless `hold`, the cursor then moves past it.
    #[inline(always)]
    fn next_with(
        &mut self,
        view: &RingView<'_>,
        mut take: impl FnMut(u64) -> bool,
        hold: bool,
    ) -> Read<u64> {
        // Bounded: each round either returns or skips one settled slot.
        for _ in 0..=view.geom.capacity {
            let seq = self.cursor;
            let want = stamp_done(seq);
            let stamp = &view.slots[view.geom.stamp_index(seq)];
            // R1 (seqlock.rs): pairs with the producer's W2.
            let s1 = stamp.load(Ordering::Acquire);
            if s1 < want {
                return Read::Empty;
            }
            if s1 == want {
                if take(seq) {
                    if !hold {
                        self.advance(view, seq.wrapping_add(1));
                    }
                    return Read::Record(seq);
                }
            } else if s1 == stamp_settled(seq) {
                // A `Channel` claim skipped (its producer died): no record.
                self.advance(view, seq.wrapping_add(1));
                continue;
            } else if s1 == stamp_gap(seq) {
                if let Some(missing) = gap_if_intact(view, seq) {
                    return match self.pass_gap(view, seq, missing) {
                        Read::Lagged(n) => Read::Lagged(n),
                        _ => Read::Empty,
                    };
                }
            }
            return match self.resync(view, seq) {
                Read::Lagged(n) => Read::Lagged(n),
                _ => Read::Empty,
            };
        }
        Read::Empty
    }

    /// [`Consumer::try_read_into`] returning the record by value (the ring's tests and
    /// models).
    #[cfg(any(test, loom))]
    pub fn try_read<T: bytemuck::Pod>(&mut self, view: &RingView<'_>) -> Read<T> {
        let mut value = T::zeroed();
        match self.try_read_into(view, &mut value) {
            Read::Record(()) => Read::Record(value),
            Read::Empty => Read::Empty,
            Read::Lagged(n) => Read::Lagged(n),
        }
    }

    /// Reads consecutive records into `out`, as many as are published and intact, up to
    /// `out.len()`, and publishes the cursor once at the end (module doc, "Reading a
    /// batch"). A lap after at least one record ends the batch before it; the next
    /// read reports it.
    #[inline]
    pub fn try_read_many<R: RecordsMut + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        out: &mut R,
    ) -> Batch {
        let mut seq = self.cursor;
        let mut n = 0;
        let mut lapped = false;
        // Bounded: each round fills one element of `out` or steps over one settled
        // slot, and at most `capacity + 1` of those (as in `try_read`).
        let mut settled_left = view.geom.capacity.saturating_add(1);
        let len = out.count();
        while n < len {
            let want = stamp_done(seq);
            let stamp = &view.slots[view.geom.stamp_index(seq)];
            // R1 (seqlock.rs): pairs with the producer's W2.
            let s1 = stamp.load(Ordering::Acquire);
            if s1 < want {
                break;
            }
            if s1 == want {
                // A torn copy into `out[n]` is overwritten or left beyond the count.
                if copy_if_intact(view, seq, out.record_mut(n)) {
                    n += 1;
                    seq = seq.wrapping_add(1);
                    continue;
                }
            } else if s1 == stamp_settled(seq) && settled_left > 0 {
                // A `Channel` claim skipped (its producer died): no record.
                settled_left -= 1;
                seq = seq.wrapping_add(1);
                continue;
            } else if s1 == stamp_settled(seq) {
                break;
            } else if s1 == stamp_gap(seq) {
                // A gap marker ends the batch before it; first in the batch, it is the
                // answer (as a lag).
                if n > 0 {
                    break;
                }
                if let Some(missing) = gap_if_intact(view, seq) {
                    return match self.pass_gap(view, seq, missing) {
                        Read::Lagged(k) => Batch::Lagged(k),
                        _ => Batch::Empty,
                    };
                }
            }
            lapped = true;
            break;
        }
        if n == 0 && lapped {
            // Lapped on the first record: `resync` publishes the cursor (once).
            self.cursor = seq;
            return match self.resync(view, seq) {
                Read::Lagged(k) => Batch::Lagged(k),
                _ => Batch::Empty,
            };
        }
        if seq != self.cursor {
            self.publish_batch(view, seq);
        }
        if n == 0 {
            Batch::Empty
        } else {
            Batch::Records(n)
        }
    }

    /// The cursor store of a batch read, with its own switches for the weakened loom
    /// builds; otherwise [`Consumer::advance`].
    #[inline(always)]
    fn publish_batch(&mut self, view: &RingView<'_>, next: u64) {
        self.cursor = next;
        // `Release`: pairs with the producer's `Acquire` rescan; every copy of the
        // batch happens before its next write of those slots.
        self.entry(view).cursor.store(next, Ordering::Release);
        if view.lossless {
            // F_a of the batch: pairs with the producer's F_w (`wait.rs`) when it parks on
            // `space` (wait.rs).
            light_fence!("rb_fa");
            if view.wake_space() {
                sweep_parked(view, &ProcLiveness);
            }
        }
    }

    /// Moves the cursor past gap marker `seq` and reports the records it says are
    /// missing as a lag (counted like one).
    #[cold]
    fn pass_gap(&mut self, view: &RingView<'_>, seq: u64, missing: u64) -> Read {
        self.extra = self.extra.wrapping_add(missing.wrapping_sub(1));
        let entry = self.entry(view);
        // Only this receiver writes its counters: load + store, no RMW needed.
        entry.lagged.store(
            entry.lagged.load(Ordering::Relaxed).wrapping_add(missing),
            Ordering::Relaxed,
        );
        self.advance(view, seq.wrapping_add(1));
        Read::Lagged(missing)
    }

    /// Moves the cursor past a lapped record, to the oldest one that may still be in
    /// the ring, and reports how many were skipped, in the producer's numbers ("Gap
    /// markers and laps").
    #[cold]
    fn resync(&mut self, view: &RingView<'_>, seq: u64) -> Read {
        // From `seq + 1`: always make progress, even if a corrupt head points backwards.
        let at = locate(view, seq.wrapping_add(1), Some(self.extra), self.apart);
        if !at.exact && !self.estimate {
            // Put off: the cursor stays on the lapped slot, the next read meets the lap
            // again ("Gap markers and laps", L5).
            self.deferred = true;
            return Read::Empty;
        }
        if !at.exact {
            // Settled for the estimate: the difference now is taken as lasting, so
            // later laps are not put off for it again (L5).
            self.apart = at.apart;
        }
        (self.deferred, self.deferred_ticks, self.estimate) = (false, 0, false);
        let Located { next, extra, .. } = at;
        let skipped = lapped_count(seq, next, self.extra, extra);
        self.extra = extra;
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
            // F_a: pairs with the producer's F_w (`wait.rs`) when it parks on `space`
            // (wait.rs), so it is light (barrier.rs).
            light_fence!("f_a");
            if view.wake_space() {
                sweep_parked(view, &ProcLiveness);
            }
        }
    }

    /// Once a liveness tick (`patient: false`), or when no producer is left (`true`):
    /// if a lap has been put off (its count could not be made exact, L5) since the
    /// previous tick as well, so for a whole tick at least, or at once if `patient`,
    /// lets the next read count it from the counters as they are. Returns whether it
    /// did.
    pub fn settle_lap(&mut self, patient: bool) -> bool {
        if !self.deferred {
            return false;
        }
        self.deferred_ticks = self.deferred_ticks.saturating_add(1);
        self.estimate = patient || self.deferred_ticks >= 2;
        self.estimate
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
        seqcst_fence!("f_l");
        view.wake_space();
    }
}

/// What a receiver lapped at `seq` and resuming at `next` missed, in the producer's
/// numbers: the slots `next - seq` plus `E(next) - E(seq)` ("Gap markers and laps").
/// From untrusted counts, so wrapping; an `E` that went backwards (only a producer
/// that died inside a gap's accounting can cause that) adds nothing, so the count
/// never falls below the slots skipped.
pub(super) fn lapped_count(seq: u64, next: u64, extra_seq: u64, extra_next: u64) -> u64 {
    let slots = next.wrapping_sub(seq);
    let more = extra_next.wrapping_sub(extra_seq);
    if more > u64::MAX / 2 {
        slots
    } else {
        slots.wrapping_add(more)
    }
}
