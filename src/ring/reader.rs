//! One receiver interface over the two receiving algorithms, so that the receive loop
//! (`recv.rs`) and every front end above it drive broadcast and unicast alike: a
//! broadcast [`Consumer`] with a cursor of its own (`broadcast.rs`), or a unicast
//! [`Worker`] competing for records through the shared read cursor (`unicast.rs`).

use super::broadcast::{Batch, Consumer, Read};
use super::record::{Record, RecordsMut};
use super::table::live_receivers;
use super::unicast::{Take, Worker};
use super::RingView;
use crate::error::TryRecvError;
use crate::process::Liveness;
use crate::sync::AtomicU64;

/// A receiver of either mode.
#[derive(Debug)]
pub enum Reader {
    /// Every record, with a cursor of its own.
    Broadcast(Consumer),
    /// Each record to one receiver, through the shared read cursor.
    Unicast(Worker),
}

impl Reader {
    /// Takes an entry of the receiver table (evicting dead receivers if it is full).
    /// `None` if every entry is held by a live receiver.
    pub fn join(view: &RingView<'_>, owner: u64, liveness: &impl Liveness) -> Option<Reader> {
        let join = |view: &RingView<'_>| {
            if view.unicast {
                Worker::join(view, owner).map(Reader::Unicast)
            } else {
                Consumer::join(view, owner).map(Reader::Broadcast)
            }
        };
        join(view).or_else(|| {
            live_receivers(view, liveness);
            join(view)
        })
    }

    /// The common case of every receive, inlined: copies the next record into `dst`
    /// if it is there (`true`). Anything else (nothing yet, lagged, a skipped claim) is
    /// left to [`Reader::read_into`].
    #[inline(always)]
    pub fn read_fast<R: Record + ?Sized>(&mut self, view: &RingView<'_>, dst: &mut R) -> bool {
        match self {
            Reader::Broadcast(c) => c.try_read_ready(view, dst),
            Reader::Unicast(w) => w.try_take_into(view, dst, false) == Take::Record,
        }
    }

    /// Reads the next record into `dst`: `None` if there is none now; `Some(Ok(()))`
    /// when `dst` holds it.
    #[inline]
    pub fn read_into<R: Record + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        dst: &mut R,
    ) -> Option<Result<(), TryRecvError>> {
        match self {
            Reader::Broadcast(c) => match c.try_read_into(view, dst) {
                Read::Record(()) => Some(Ok(())),
                // A lossless ring laps only an evicted receiver.
                Read::Lagged(_) if c.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
                Read::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
                Read::Empty => None,
            },
            Reader::Unicast(w) => delivered(w.try_take_into(view, dst, true)),
        }
    }

    /// Reads up to `out.count()` records into the front of `out`: `None` if there is
    /// none now (or `out` is empty). Broadcast: one batch read, publishing the cursor
    /// once (`broadcast.rs`, "Reading a batch"). Unicast: records taken one at a time
    /// with [`Worker::try_take_into`], because the rescue protocol names one claimed
    /// record per receiver (`unicast.rs`), which is what keeps each record exactly-once.
    #[inline]
    pub fn read_many<R: RecordsMut + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        out: &mut R,
    ) -> Option<Result<usize, TryRecvError>> {
        match self {
            Reader::Broadcast(c) => match c.try_read_many(view, out) {
                Batch::Records(n) => Some(Ok(n)),
                // A lossless ring laps only an evicted receiver.
                Batch::Lagged(_) if c.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
                Batch::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
                Batch::Empty => None,
            },
            Reader::Unicast(w) => {
                let mut n = 0;
                // A gap marker is taken (and reported) only first in a batch; later, it
                // ends the batch before it.
                while n < out.count() {
                    match w.try_take_into(view, out.record_mut(n), n == 0) {
                        Take::Record => n += 1,
                        Take::Gap(missing) => return Some(Err(TryRecvError::Lagged(missing))),
                        // `Held` comes only from holding, not from a copying take.
                        Take::Nothing | Take::Held(_) => break,
                    }
                }
                (n > 0).then_some(Ok(n))
            }
        }
    }

    /// Unicast, when idle: delivers into `dst` a record that a receiver took and died
    /// with (`Some(Ok(()))`), or reports a gap marker it took as a lag.
    pub fn rescue_into<R: Record + ?Sized>(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
        dst: &mut R,
    ) -> Option<Result<(), TryRecvError>> {
        match self {
            Reader::Broadcast(_) => None,
            Reader::Unicast(w) => delivered(w.rescue_into(view, liveness, dst)),
        }
    }

    /// [`Reader::rescue_into`] returning the record by value (the ring's models).
    #[cfg(loom)]
    pub fn rescue<T: bytemuck::Pod>(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
    ) -> Option<T> {
        let mut value = T::zeroed();
        match self.rescue_into(view, liveness, &mut value) {
            Some(Ok(())) => Some(value),
            _ => None,
        }
    }

    /// Lossless only: the fast path of [`Reader::hold`], inlined: holds the next record
    /// if it is there and returns its sequence number.
    #[inline(always)]
    pub fn hold_fast(&mut self, view: &RingView<'_>) -> Option<u64> {
        match self {
            Reader::Broadcast(c) => c.try_hold_ready(view),
            Reader::Unicast(w) => match w.try_hold(view, false) {
                Take::Held(seq) => Some(seq),
                _ => None,
            },
        }
    }

    /// Lossless only: holds the next record in place (its slot is not rewritten until
    /// [`Reader::release`]) and returns its sequence number: `None` if there is none
    /// now. Lags (gap markers) and eviction as [`Reader::read_into`].
    #[inline]
    pub fn hold(&mut self, view: &RingView<'_>) -> Option<Result<u64, TryRecvError>> {
        match self {
            Reader::Broadcast(c) => match c.try_hold(view) {
                Read::Record(seq) => Some(Ok(seq)),
                Read::Lagged(_) if c.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
                Read::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
                Read::Empty => None,
            },
            Reader::Unicast(w) => held(w.try_hold(view, true)),
        }
    }

    /// Unicast, when idle: holds a record that a receiver took and died with, as
    /// [`Reader::rescue_into`]: as a copy ([`Reader::held_copy`]), settled, never in
    /// place (`unicast.rs`, "A receiver that dies holding a record").
    pub fn rescue_hold(
        &mut self,
        view: &RingView<'_>,
        liveness: &impl Liveness,
    ) -> Option<Result<u64, TryRecvError>> {
        match self {
            Reader::Broadcast(_) => None,
            Reader::Unicast(w) => held(w.rescue_hold(view, liveness)),
        }
    }

    /// Record `seq`, held by [`Reader::hold`] (or [`Reader::hold_fast`]), as the guard
    /// of `Receiver::recv_ref` reads it (the ring's tests and models).
    #[cfg(any(test, loom))]
    pub fn read_held<T: bytemuck::Pod>(&self, view: &RingView<'_>, seq: u64) -> T {
        let mut value = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut value);
        match self.held_copy(view, seq) {
            Some(copy) => dst.copy_from_slice(copy),
            None => super::seqlock::load_words(&view.slots[view.geom.data_range(seq)], dst),
        }
        value
    }

    /// The bytes of record `seq` if it is held as a copy, not in place: a unicast
    /// record rescued from a receiver that died (`unicast.rs`, "A receiver that dies
    /// holding a record"). `None` for a record held in its slot.
    #[inline]
    pub fn held_copy(&self, view: &RingView<'_>, seq: u64) -> Option<&[u8]> {
        match self {
            Reader::Broadcast(_) => None,
            Reader::Unicast(w) => w.held_copy(view, seq),
        }
    }

    /// Lets go of record `seq`, held by [`Reader::hold`] or [`Reader::hold_fast`]: a
    /// broadcast receiver moves its cursor past it, a unicast one settles it (or drops
    /// its copy of a rescued one, settled already).
    #[inline]
    pub fn release(&mut self, view: &RingView<'_>, seq: u64) {
        match self {
            Reader::Broadcast(c) => c.release(view, seq),
            Reader::Unicast(w) => {
                // `false` only if a rescuer took it from a process it judged dead.
                let _ = w.release(view, seq);
            }
        }
    }

    /// This receiver's `parked` word and owner word, for registering as a sleeper
    /// (`wait.rs`).
    pub fn parked<'a>(&self, view: &RingView<'a>) -> (&'a AtomicU64, u64) {
        match self {
            Reader::Broadcast(c) => c.parked(view),
            Reader::Unicast(w) => w.parked(view),
        }
    }

    /// Broadcast: lets a lap put off while a gap marker was in flight be counted
    /// from the counters as they are at the next read, if it has been put off for a
    /// whole liveness tick or `patient` (no producer left) (`broadcast.rs`, "Gap
    /// markers and laps", L5). Returns whether it did.
    pub fn settle_lap(&mut self, patient: bool) -> bool {
        match self {
            Reader::Broadcast(c) => c.settle_lap(patient),
            Reader::Unicast(_) => false,
        }
    }

    /// Whether the entry was taken from this receiver.
    pub fn is_evicted(&self, view: &RingView<'_>) -> bool {
        match self {
            Reader::Broadcast(c) => c.is_evicted(view),
            Reader::Unicast(w) => w.is_evicted(view),
        }
    }

    /// The sequence number this receiver is waiting for: its cursor (broadcast), or
    /// the shared read cursor (unicast).
    pub fn waiting_on(&self, view: &RingView<'_>) -> u64 {
        match self {
            Reader::Broadcast(c) => c.cursor(),
            Reader::Unicast(_) => Worker::read_cursor(view),
        }
    }

    /// Gives the entry back (a producer blocked on it is woken to rescan).
    pub fn leave(self, view: &RingView<'_>) {
        match self {
            Reader::Broadcast(c) => c.leave(view),
            Reader::Unicast(w) => w.leave(view),
        }
    }
}

/// What a unicast take means to the receive loop: a record, a lag (a gap marker), or
/// nothing now.
fn delivered(take: Take) -> Option<Result<(), TryRecvError>> {
    match take {
        Take::Record => Some(Ok(())),
        Take::Gap(missing) => Some(Err(TryRecvError::Lagged(missing))),
        // `Held` comes only from holding, not from a copying take.
        Take::Nothing | Take::Held(_) => None,
    }
}

/// What a unicast hold means to the receive loop: a held record's sequence number, a
/// lag (a gap marker), or nothing now.
fn held(take: Take) -> Option<Result<u64, TryRecvError>> {
    match take {
        Take::Held(seq) => Some(Ok(seq)),
        Take::Gap(missing) => Some(Err(TryRecvError::Lagged(missing))),
        Take::Record | Take::Nothing => None,
    }
}
