//! One producer interface over the two producer algorithms, so that the send loops
//! (`send.rs`) and every front end above them drive a `Route` and a `Channel` alike.
//!
//! A record goes out in three steps, whatever the family:
//!
//! 1. [`Producer::try_claim`]: is there room (and, on a `Channel`, take a sequence
//!    number)? A claim that is not yet written stays *pending* in the producer and is
//!    the next record's, whichever call sends it.
//! 2. [`Producer::begin`]: make the slot ours ([`Begin::Ours`]), or learn that the claim
//!    is void, that a lap-older writer still holds the slot, or that the gate does not
//!    admit it yet (`multi.rs`).
//! 3. [`Producer::write`] then [`Producer::commit`]: publish, or learn that a receiver
//!    voided the claim meanwhile (claim again).
//!
//! The algorithms themselves are in `single.rs` (the one producer of a `Route`) and
//! `multi.rs` (the producers of a `Channel`).

pub use super::multi::Begin;
use super::multi::{Shared, Step};
use super::record::{Record, Records};
use super::seqlock::write_record;
use super::single::Single;
use super::table::{claim_sender, evict_blocking, reap_dead_producers, release_sender};
use super::RingView;
use crate::process::Liveness;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::Tick;

/// A producer of either family.
#[derive(Debug)]
pub enum Producer {
    /// The one producer of a `Route`.
    Single(Single),
    /// One of the producers of a `Channel`.
    Shared {
        /// The algorithm's state.
        producer: Shared,
        /// A claim was taken and not yet made ours or found void.
        pending: bool,
    },
}

impl Producer {
    /// Takes the `Route` sender claim for `owner` (from a dead holder if need be) and
    /// attaches. `Err(holder)` if a live process holds it.
    pub fn attach_route(
        view: &RingView<'_>,
        owner: u64,
        liveness: &impl Liveness,
    ) -> Result<Producer, u64> {
        claim_sender(view, owner, liveness)?;
        Ok(Producer::Single(Single::attach(view, owner)))
    }

    /// Takes a free entry of a `Channel`'s producer table (freeing the entries of dead
    /// producers if it is full). `None` if every entry is held by a live producer.
    pub fn join_channel(
        view: &RingView<'_>,
        owner: u64,
        liveness: &impl Liveness,
    ) -> Option<Producer> {
        let producer = Shared::join(view, owner).or_else(|| {
            reap_dead_producers(view, liveness);
            Shared::join(view, owner)
        })?;
        Some(Producer::Shared {
            producer,
            pending: false,
        })
    }

    /// Whether this producer still holds its role (it was not judged dead and taken
    /// over or reaped).
    #[inline]
    pub fn holds_role(&self, view: &RingView<'_>) -> bool {
        match self {
            Producer::Single(p) => p.holds_role(view),
            Producer::Shared { producer, .. } => producer.holds_role(view),
        }
    }

    /// All three steps at once for the common case, with a single dispatch on the
    /// family: `true` if the record was published. `false` if there was no room, a
    /// claim was pending, or anything else needs the full loop (`send.rs`); a claim
    /// taken here then stays pending.
    #[inline(always)]
    pub fn send_now<R: Record + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        value: &R,
        liveness: &impl Liveness,
    ) -> bool {
        match self {
            Producer::Single(p) => {
                if !p.holds_role(view) || !p.has_space(view) {
                    return false;
                }
                let seq = p.begin(view);
                write_record(view, seq, value.bytes());
                p.commit(view, R::GAP);
                true
            }
            Producer::Shared { producer, pending } => {
                if *pending || !producer.holds_role(view) || !producer.try_claim(view) {
                    return false;
                }
                match producer.begin(view, liveness, false) {
                    Begin::Ours => {
                        write_record(view, producer.seq(), value.bytes());
                        producer.commit(view, R::GAP)
                    }
                    Begin::Void => false,
                    Begin::Busy | Begin::Gated => {
                        *pending = true;
                        false
                    }
                }
            }
        }
    }

    /// The hot path of a batch: publishes as many of `records` from index `from` on as
    /// go out now without waiting, and returns how many. A `Route` writes them as chunks of at most
    /// `capacity` records with one `head` store, join check and wake per chunk
    /// (`single.rs`, "Sending a batch"). A `Channel` needs a claim and a join check per
    /// record (`multi.rs`, "Claiming"), so it loops [`Producer::send_now`], which wakes
    /// per record. Stops at the first record that needs the full loop (`send.rs`).
    #[inline]
    pub fn send_chunks<R: Records + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        records: &R,
        from: usize,
        liveness: &impl Liveness,
    ) -> usize {
        let len = records.count();
        let mut at = from;
        match self {
            Producer::Single(p) => {
                // Bounded: each round publishes at least one record.
                while at < len {
                    let k = p.send_chunk(view, records, at);
                    if k == 0 {
                        break;
                    }
                    at += k;
                }
            }
            Producer::Shared { .. } => {
                while at < len && self.send_now(view, records.record(at), liveness) {
                    at += 1;
                }
            }
        }
        at - from
    }

    /// Step 1: whether the next record may be written now; on a `Channel`, claims its
    /// sequence number. A pending claim counts as room.
    #[inline]
    pub fn try_claim(&mut self, view: &RingView<'_>) -> bool {
        match self {
            Producer::Single(p) => p.has_space(view),
            Producer::Shared { producer, pending } => {
                *pending = *pending || producer.try_claim(view);
                *pending
            }
        }
    }

    /// Step 2, after a successful [`Producer::try_claim`]: makes the slot ours.
    /// `check_liveness`: a lap-older writer may be asked the liveness oracle (about
    /// once a liveness tick).
    #[inline]
    pub fn begin(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
        check_liveness: bool,
    ) -> Begin {
        match self {
            Producer::Single(p) => {
                p.begin(view);
                Begin::Ours
            }
            Producer::Shared { producer, pending } => {
                let begun = producer.begin(view, liveness, check_liveness);
                if matches!(begun, Begin::Ours | Begin::Void) {
                    *pending = false;
                }
                begun
            }
        }
    }

    /// Whether the pending claim waits for a lap-older writer that holds its slot
    /// ([`Begin::Busy`]): the blocking send then waits on `data`, else on `space`.
    #[cfg(feature = "async")]
    pub fn awaits_writer(&self, view: &RingView<'_>) -> bool {
        match self {
            Producer::Shared {
                producer,
                pending: true,
            } => producer.awaits_writer(view),
            _ => false,
        }
    }

    /// Step 3a: writes the record into the slot made ours by [`Producer::begin`].
    #[inline(always)]
    pub fn write<R: Record + ?Sized>(&self, view: &RingView<'_>, value: &R) {
        let seq = match self {
            Producer::Single(p) => p.next_seq(),
            Producer::Shared { producer, .. } => producer.seq(),
        };
        write_record(view, seq, value.bytes());
    }

    /// Step 3b: publishes the record (a gap marker if `gap`, `record.rs`) and wakes
    /// sleeping receivers. `false` if a receiver voided the claim while we wrote: the
    /// record was not published.
    #[inline]
    pub fn commit(&mut self, view: &RingView<'_>, gap: bool) -> bool {
        match self {
            Producer::Single(p) => {
                p.commit(view, gap);
                true
            }
            Producer::Shared { producer, .. } => producer.commit(view, gap),
        }
    }

    /// While a lossless broadcast ring is full: evicts the dead receivers that hold it
    /// back (and makes the gate rescan).
    pub fn evict_dead(&mut self, view: &RingView<'_>, liveness: &impl Liveness) {
        match self {
            Producer::Single(p) => {
                p.evict_dead(view, liveness);
            }
            Producer::Shared { producer, .. } => {
                if view.lossless && !view.unicast {
                    let head = view.ctl.head.load(Ordering::Relaxed);
                    if evict_blocking(view, head, liveness) > 0 {
                        producer.invalidate_gate();
                    }
                }
            }
        }
    }

    /// When the send loops' next liveness check is due (`wait.rs`, `Tick`).
    pub fn tick(&self) -> Tick {
        match self {
            Producer::Single(p) => p.tick,
            Producer::Shared { producer, .. } => producer.tick,
        }
    }

    /// Keeps `tick` for the next send loop.
    pub fn set_tick(&mut self, tick: Tick) {
        match self {
            Producer::Single(p) => p.tick = tick,
            Producer::Shared { producer, .. } => producer.tick = tick,
        }
    }

    /// This producer's `parked` word and owner word, for registering as a sleeper
    /// (`wait.rs`).
    pub fn parked<'a>(&self, view: &RingView<'a>) -> (&'a AtomicU64, u64) {
        match self {
            Producer::Single(p) => (&view.ctl.membership.sender_parked, p.owner()),
            Producer::Shared { producer, .. } => producer.parked(view),
        }
    }

    /// `Route`: the sequence number of the next record (= records published so far).
    /// `Channel`: the sequence numbers claimed by all its producers so far.
    pub fn next_seq(&self, view: &RingView<'_>) -> u64 {
        match self {
            Producer::Single(p) => p.next_seq(),
            Producer::Shared { .. } => view.ctl.head.load(Ordering::Relaxed),
        }
    }

    /// Gives the role back (withdrawing a pending claim) and wakes receivers, which may
    /// now see no producer left.
    pub fn leave(&self, view: &RingView<'_>) {
        self.leave_until(view, None);
    }

    /// [`Producer::leave`], a `Channel` producer stopping for good at `stop` (the
    /// models of a producer that dies there, `multi.rs`).
    pub fn leave_until(&self, view: &RingView<'_>, stop: Option<Step>) {
        match self {
            Producer::Single(p) => release_sender(view, p.owner()),
            Producer::Shared { producer, .. } => producer.leave_until(view, stop),
        }
    }
}
