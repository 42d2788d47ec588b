//! The receive loop: one non-blocking poll ([`poll_into`]) that also does a receiver's share
//! of crash recovery, and the blocking receive ([`recv_into`]) that waits between polls per
//! the `Wait` strategy (`wait.rs`). `Receiver` calls these functions, and the loom
//! models call the same ones.
//!
//! The batch receives [`poll_many`] and [`recv_many`] are the same loop (one generic
//! body, over what a read delivers: one record or a batch into a buffer), so recovery
//! and disconnection are decided identically; a batch poll returns as soon as at least
//! one record is there, with as many as are ready (`reader.rs`, `read_many`).
//!
//! # Recovery, once a liveness tick
//!
//! A poll with `check_liveness` (the blocking loop passes it about every `IDLE_TICK`,
//! `try_recv` every 2^16 empty polls) also reaps `Channel` producers that died, skips
//! the claim this receiver waits on if its producer died or never started writing it
//! (`multi.rs`, "Dead claims": one tick for a busy slot of a dead producer, two for a
//! never-started claim), rescues (unicast) a record whose taker died (`unicast.rs`),
//! and clears the `Route` sender claim of a dead sender; a broadcast receiver that has
//! put off a lap for a whole tick (a gap marker in flight) counts it from the counters
//! as they are (`broadcast.rs`, "Gap markers and laps", L5).
//!
//! # Disconnection
//!
//! A receiver is disconnected when no sender is attached (neither the `Route` claim nor
//! any `Channel` producer) and one was attached at some point since it joined (or when
//! it joined), and it has read everything they published. With no producer left, a
//! claim that was never published can never be: the receiver skips such claims at
//! once (no patience needed) and keeps reading, so records published after a dead
//! producer's claim are still delivered before `Disconnected`.
//!
//! Whether a `Channel` producer is attached is read from the producer table's owner
//! words, not from the producer count, which a producer killed inside `join` or
//! `leave` leaves wrong (`multi.rs`, "Membership"). An empty poll does not rescan the
//! table: the receiver keeps its last verdict with the key it read before that scan
//! (`sender_attaches` and the count, on the rarely written membership line) and
//! rescans when the key changes or on the liveness tick.

use std::time::Instant;

use super::multi::{resolve_stall, resolved};
use super::reader::Reader;
use super::record::{Record, RecordsMut};
use super::table::{
    presence_key, producers_present, reap_dead_producers, reap_sender, route_sender_present,
};
use super::RingView;
use crate::error::{RecvTimeoutError, TryRecvError};
use crate::layout::PARKED_DATA;
use crate::process::Liveness;
use crate::sync::Ordering;
use crate::wait::{wait_for, Tick, Wait};

/// A receiver's state between polls: when an empty ring means the senders are gone
/// for good, and how long it has been waiting on one sequence number.
#[derive(Debug, Clone, Copy)]
pub struct RecvState {
    /// A sender was attached when we joined.
    joined_with_sender: bool,
    /// `sender_attaches` when we joined: a change means a sender has come since.
    attaches_at_join: u64,
    /// The sequence number this receiver has been waiting on...
    stall_seq: u64,
    /// ...for this many liveness ticks.
    stall_ticks: u32,
    /// When the next liveness check of a blocking receive is due, across receives.
    tick: Tick,
    /// `Channel`: the key of the last scan of the producer table (`presence_key`) and
    /// whether it found a producer; `None` before the first.
    present: Option<((u64, u64), bool)>,
}

impl RecvState {
    /// The state of a receiver about to join: call before [`Reader::join`].
    pub fn before_join(view: &RingView<'_>) -> RecvState {
        // `Acquire`: pairs with the senders' `Release` increments when they attach.
        let attaches_at_join = view.ctl.membership.sender_attaches.load(Ordering::Acquire);
        RecvState {
            joined_with_sender: route_sender_present(view) || producers_present(view),
            attaches_at_join,
            stall_seq: 0,
            stall_ticks: 0,
            tick: Tick::default(),
            present: None,
        }
    }

    /// Whether the senders are gone for good (see "Disconnection"). `rescan`: on the
    /// liveness tick, scan the producer table whatever the key says.
    fn senders_gone(&mut self, view: &RingView<'_>, rescan: bool) -> bool {
        !self.senders_present(view, rescan)
            && (self.joined_with_sender
                || view.ctl.membership.sender_attaches.load(Ordering::Acquire)
                    != self.attaches_at_join)
    }

    /// Whether a sender is attached: the `Route` claim, or an entry of the producer
    /// table, scanned again only if the key changed since the last scan, or `rescan`.
    fn senders_present(&mut self, view: &RingView<'_>, rescan: bool) -> bool {
        if route_sender_present(view) {
            return true;
        }
        if view.producers.is_empty() {
            return false;
        }
        // The key first, then the scan: a join or leave that ends after the key read
        // changes the key for the next poll (`multi.rs`, "Membership").
        let key = presence_key(view);
        match self.present {
            Some((seen, present)) if seen == key && !rescan => present,
            _ => {
                let present = producers_present(view);
                self.present = Some((key, present));
                present
            }
        }
    }

    /// One more liveness tick spent waiting on `seq`: whether this is the second.
    fn patient(&mut self, seq: u64) -> bool {
        if self.stall_seq != seq {
            self.stall_seq = seq;
            self.stall_ticks = 0;
        }
        self.stall_ticks = self.stall_ticks.saturating_add(1);
        self.stall_ticks >= 2
    }
}

/// What a poll delivers: one record into a buffer ([`One`]) or a batch ([`Many`]).
/// The receive loop is written once over this.
trait Take {
    /// What a successful poll returns.
    type Out;
    /// A read of what is there now: `None` if nothing is.
    fn read(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
    ) -> Option<Result<Self::Out, TryRecvError>>;
    /// Unicast recovery: a record (or a gap marker) whose taker died.
    fn rescue(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
        liveness: &impl Liveness,
    ) -> Option<Result<Self::Out, TryRecvError>>;
}

/// One record, copied into the buffer.
struct One<'b, R: ?Sized>(&'b mut R);

impl<R: Record + ?Sized> Take for One<'_, R> {
    type Out = ();

    #[inline(always)]
    fn read(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
    ) -> Option<Result<(), TryRecvError>> {
        reader.read_into(view, self.0)
    }

    fn rescue(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
        liveness: &impl Liveness,
    ) -> Option<Result<(), TryRecvError>> {
        reader.rescue_into(view, liveness, self.0)
    }
}

/// Up to `.0.count()` records (never none: the callers return `Ok(0)` first).
struct Many<'b, R: ?Sized>(&'b mut R);

impl<R: RecordsMut + ?Sized> Take for Many<'_, R> {
    type Out = usize;

    #[inline]
    fn read(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
    ) -> Option<Result<usize, TryRecvError>> {
        reader.read_many(view, self.0)
    }

    fn rescue(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
        liveness: &impl Liveness,
    ) -> Option<Result<usize, TryRecvError>> {
        if self.0.count() == 0 {
            return None;
        }
        reader
            .rescue_into(view, liveness, self.0.record_mut(0))
            .map(|result| result.map(|()| 1))
    }
}

/// Lossless only: one record held in place (its sequence number), not copied; a
/// rescued one is held as a copy (`unicast.rs`, [`Reader::rescue_hold`]).
struct Hold;

impl Take for Hold {
    type Out = u64;

    #[inline]
    fn read(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
    ) -> Option<Result<u64, TryRecvError>> {
        reader.hold(view)
    }

    fn rescue(
        &mut self,
        view: &RingView<'_>,
        reader: &mut Reader,
        liveness: &impl Liveness,
    ) -> Option<Result<u64, TryRecvError>> {
        reader.rescue_hold(view, liveness)
    }
}

/// Lossless only: one non-blocking receive that holds the next record in place
/// (`reader.rs`, `hold`) and returns its sequence number; the caller reads it in its
/// slot, or in `Reader::held_copy` if it was rescued from a receiver that died
/// (unicast), and lets go with `Reader::release`. Otherwise as [`poll_into`].
pub fn poll_hold(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
) -> Result<u64, TryRecvError> {
    poll_with(view, reader, state, check_liveness, liveness, &mut Hold)
}

/// Lossless only: [`poll_hold`], waiting per `strategy` until `deadline` (`None`: for
/// ever).
pub fn recv_hold(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<u64, RecvTimeoutError> {
    recv_with(view, reader, state, strategy, deadline, liveness, &mut Hold)
}

/// One non-blocking receive into `dst`: `Ok(())` when `dst` holds the record, or why
/// not. `check_liveness` (about once a liveness tick) adds the recovery steps of the
/// module doc.
pub fn poll_into<R: Record + ?Sized>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
    dst: &mut R,
) -> Result<(), TryRecvError> {
    poll_with(view, reader, state, check_liveness, liveness, &mut One(dst))
}

/// [`poll_into`] returning the record by value (the ring's tests and models).
#[cfg(any(test, loom))]
pub fn poll<T: bytemuck::Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
) -> Result<T, TryRecvError> {
    let mut value = T::zeroed();
    poll_into(view, reader, state, check_liveness, liveness, &mut value).map(|()| value)
}

/// One non-blocking batch receive: `Ok(n)` with `1 <= n <= out.count()` records at the
/// front of `out`, or why none (as [`poll_into`]). `Ok(0)` at once if `out` is empty.
pub fn poll_many<R: RecordsMut + ?Sized>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
    out: &mut R,
) -> Result<usize, TryRecvError> {
    if out.count() == 0 {
        return Ok(0);
    }
    poll_with(
        view,
        reader,
        state,
        check_liveness,
        liveness,
        &mut Many(out),
    )
}

/// The body of [`poll_into`] and [`poll_many`].
#[inline]
fn poll_with<S: Take>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
    take: &mut S,
) -> Result<S::Out, TryRecvError> {
    if let Some(result) = take.read(view, reader) {
        return result;
    }
    if reader.is_evicted(view) {
        return Err(TryRecvError::Evicted);
    }
    if check_liveness {
        // A lap put off for a whole tick: a producer died inside a gap's publication.
        if reader.settle_lap(false) {
            if let Some(result) = take.read(view, reader) {
                return result;
            }
        }
        let waiting_on = reader.waiting_on(view);
        if !view.producers.is_empty() {
            reap_dead_producers(view, liveness);
            let patient = state.patient(waiting_on);
            if resolve_stall(view, waiting_on, liveness, patient) {
                if let Some(result) = take.read(view, reader) {
                    return result;
                }
            }
        }
        if let Some(result) = take.rescue(view, reader, liveness) {
            return result;
        }
        reap_sender(view, liveness);
    }
    if !state.senders_gone(view, check_liveness) {
        return Err(TryRecvError::Empty);
    }
    // The senders are gone: drain what they published, stepping over claims nobody
    // is left to write (another receiver may step over one first: then read again).
    // Bounded: each round reads past one sequence number or stops. No producer is
    // left to finish a gap's accounting: a lap put off is counted as it stands.
    reader.settle_lap(true);
    for _ in 0..=view.geom.capacity {
        if let Some(result) = take.read(view, reader) {
            return result;
        }
        if view.producers.is_empty() {
            break;
        }
        // A producer that attached meanwhile will write: not disconnected after all.
        if producers_present(view) {
            return Err(TryRecvError::Empty);
        }
        let seq = reader.waiting_on(view);
        if !resolve_stall(view, seq, liveness, true) && !resolved(view, seq) {
            break;
        }
    }
    Err(TryRecvError::Disconnected)
}

/// Receives the next record into `dst`, waiting per `strategy` until `deadline`
/// (`None`: for ever).
pub fn recv_into<R: Record + ?Sized>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
    dst: &mut R,
) -> Result<(), RecvTimeoutError> {
    recv_with(
        view,
        reader,
        state,
        strategy,
        deadline,
        liveness,
        &mut One(dst),
    )
}

/// [`recv_into`] returning the record by value (the ring's models).
#[cfg(loom)]
pub fn recv<T: bytemuck::Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<T, RecvTimeoutError> {
    let mut value = T::zeroed();
    recv_into(
        view, reader, state, strategy, deadline, liveness, &mut value,
    )
    .map(|()| value)
}

/// Receives at least one record into the front of `out` and as many more as are ready
/// then (up to `out.count()`), waiting per `strategy` until `deadline` (`None`: for
/// ever). `Ok(0)` at once if `out` is empty.
pub fn recv_many<R: RecordsMut + ?Sized>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
    out: &mut R,
) -> Result<usize, RecvTimeoutError> {
    if out.count() == 0 {
        return Ok(0);
    }
    recv_with(
        view,
        reader,
        state,
        strategy,
        deadline,
        liveness,
        &mut Many(out),
    )
}

/// The body of [`recv_into`] and [`recv_many`]: polls, sleeping on `data` in between.
fn recv_with<S: Take>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
    take: &mut S,
) -> Result<S::Out, RecvTimeoutError> {
    let parker = view
        .data_parker()
        .registered(reader.parked(view), PARKED_DATA);
    let mut tick = state.tick;
    let result = wait_for(
        strategy,
        deadline,
        parker,
        &mut tick,
        |idle| match poll_with(view, reader, state, idle, liveness, take) {
            Ok(value) => Some(Ok(value)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvTimeoutError::Lagged(n))),
            Err(TryRecvError::Disconnected) => Some(Err(RecvTimeoutError::Disconnected)),
            Err(TryRecvError::Evicted) => Some(Err(RecvTimeoutError::Evicted)),
            // Refused before the ring is reached (`raw/receiver.rs`); mapped for
            // completeness.
            Err(TryRecvError::Forked) => Some(Err(RecvTimeoutError::Forked)),
        },
    )
    .unwrap_or(Err(RecvTimeoutError::Timeout));
    state.tick = tick;
    result
}
