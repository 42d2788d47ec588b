//! One receiver interface over the two receiving algorithms, so that the receive loop
//! (`recv.rs`) and every front end above it drive broadcast and unicast alike: a
//! broadcast [`Consumer`] with a cursor of its own (`broadcast.rs`), or a unicast
//! [`Worker`] competing for records through the shared read cursor (`unicast.rs`).

use bytemuck::Pod;

use super::broadcast::{Batch, Consumer, Read};
use super::table::live_receivers;
use super::unicast::Worker;
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

    /// The common case of every receive, inlined: the next record if it is there.
    /// Anything else (nothing yet, lagged, a skipped claim) is left to [`Reader::read`].
    #[inline(always)]
    pub fn read_fast<T: Pod>(&mut self, view: &RingView<'_>) -> Option<T> {
        match self {
            Reader::Broadcast(c) => match c.try_read_ready::<T>(view) {
                Read::Record(value) => Some(value),
                _ => None,
            },
            Reader::Unicast(w) => w.try_take::<T>(view),
        }
    }

    /// Reads the next record: `None` if there is none now.
    #[inline]
    pub fn read<T: Pod>(&mut self, view: &RingView<'_>) -> Option<Result<T, TryRecvError>> {
        match self {
            Reader::Broadcast(c) => match c.try_read::<T>(view) {
                Read::Record(v) => Some(Ok(v)),
                // A lossless ring laps only an evicted receiver.
                Read::Lagged(_) if c.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
                Read::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
                Read::Empty => None,
            },
            Reader::Unicast(w) => w.try_take::<T>(view).map(Ok),
        }
    }

    /// Reads up to `out.len()` records into the front of `out`: `None` if there is none
    /// now (or `out` is empty). Broadcast: one batch read, publishing the cursor once
    /// (`broadcast.rs`, "Reading a batch"). Unicast: records taken one at a time with
    /// [`Worker::try_take`], because the rescue protocol names one claimed record per
    /// receiver (`unicast.rs`), which is what keeps each record exactly-once.
    #[inline]
    pub fn read_many<T: Pod>(
        &mut self,
        view: &RingView<'_>,
        out: &mut [T],
    ) -> Option<Result<usize, TryRecvError>> {
        match self {
            Reader::Broadcast(c) => match c.try_read_many::<T>(view, out) {
                Batch::Records(n) => Some(Ok(n)),
                // A lossless ring laps only an evicted receiver.
                Batch::Lagged(_) if c.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
                Batch::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
                Batch::Empty => None,
            },
            Reader::Unicast(w) => {
                let mut n = 0;
                for slot in out.iter_mut() {
                    match w.try_take::<T>(view) {
                        Some(value) => *slot = value,
                        None => break,
                    }
                    n += 1;
                }
                (n > 0).then_some(Ok(n))
            }
        }
    }

    /// Unicast, when idle: delivers a record that a receiver took and died with.
    pub fn rescue<T: Pod>(&mut self, view: &RingView<'_>, liveness: &impl Liveness) -> Option<T> {
        match self {
            Reader::Broadcast(_) => None,
            Reader::Unicast(w) => w.rescue::<T>(view, liveness),
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
