//! The receive loop: one non-blocking poll ([`poll`]) that also does a receiver's share
//! of crash recovery, and the blocking receive ([`recv`]) that waits between polls per
//! the `Wait` strategy (`wait.rs`). `Receiver` calls these functions, and the loom
//! models call the same ones.
//!
//! # Recovery, once a liveness tick
//!
//! A poll with `check_liveness` (the blocking loop passes it about every `IDLE_TICK`,
//! `try_recv` every 2^16 empty polls) also reaps `Channel` producers that died, skips
//! the claim this receiver waits on if its producer died or never started writing it
//! (`multi.rs`, "Dead claims": one tick for a busy slot of a dead producer, two for a
//! never-started claim), rescues (unicast) a record whose taker died (`unicast.rs`),
//! and clears the `Route` sender claim of a dead sender.
//!
//! # Disconnection
//!
//! A receiver is disconnected when no sender is attached (neither the `Route` claim nor
//! any `Channel` producer) and one was attached at some point since it joined (or when
//! it joined), and it has read everything they published. With no producer left, a
//! claim that was never published can never be: the receiver skips such claims at
//! once (no patience needed) and keeps reading, so records published after a dead
//! producer's claim are still delivered before `Disconnected`.

use std::time::Instant;

use bytemuck::Pod;

use super::multi::{resolve_stall, resolved};
use super::reader::Reader;
use super::table::{reap_dead_producers, reap_sender, senders_present};
use super::RingView;
use crate::error::{RecvTimeoutError, TryRecvError};
use crate::layout::PARKED_DATA;
use crate::process::Liveness;
use crate::sync::Ordering;
use crate::wait::{wait_for, Wait};

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
}

impl RecvState {
    /// The state of a receiver about to join: call before [`Reader::join`].
    pub fn before_join(view: &RingView<'_>) -> RecvState {
        // `Acquire`: pairs with the senders' `Release` increments when they attach.
        let attaches_at_join = view.ctl.membership.sender_attaches.load(Ordering::Acquire);
        RecvState {
            joined_with_sender: senders_present(view),
            attaches_at_join,
            stall_seq: 0,
            stall_ticks: 0,
        }
    }

    /// Whether the senders are gone for good (see "Disconnection").
    fn senders_gone(&self, view: &RingView<'_>) -> bool {
        !senders_present(view)
            && (self.joined_with_sender
                || view.ctl.membership.sender_attaches.load(Ordering::Acquire)
                    != self.attaches_at_join)
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

/// One non-blocking receive: a record, or why not. `check_liveness` (about once a
/// liveness tick) adds the recovery steps of the module doc.
pub fn poll<T: Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    check_liveness: bool,
    liveness: &impl Liveness,
) -> Result<T, TryRecvError> {
    if let Some(result) = reader.read::<T>(view) {
        return result;
    }
    if reader.is_evicted(view) {
        return Err(TryRecvError::Evicted);
    }
    if check_liveness {
        let waiting_on = reader.waiting_on(view);
        if !view.producers.is_empty() {
            reap_dead_producers(view, liveness);
            let patient = state.patient(waiting_on);
            if resolve_stall(view, waiting_on, liveness, patient) {
                if let Some(result) = reader.read::<T>(view) {
                    return result;
                }
            }
        }
        if let Some(value) = reader.rescue::<T>(view, liveness) {
            return Ok(value);
        }
        reap_sender(view, liveness);
    }
    if !state.senders_gone(view) {
        return Err(TryRecvError::Empty);
    }
    // The senders are gone: drain what they published, stepping over claims nobody
    // is left to write (another receiver may step over one first: then read again).
    // Bounded: each round reads past one sequence number or stops.
    for _ in 0..=view.geom.capacity {
        if let Some(result) = reader.read::<T>(view) {
            return result;
        }
        if view.producers.is_empty() {
            break;
        }
        // A producer that attached meanwhile will write: not disconnected after all.
        if senders_present(view) {
            return Err(TryRecvError::Empty);
        }
        let seq = reader.waiting_on(view);
        if !resolve_stall(view, seq, liveness, true) && !resolved(view, seq) {
            break;
        }
    }
    Err(TryRecvError::Disconnected)
}

/// Receives the next record, waiting per `strategy` until `deadline` (`None`: for
/// ever).
pub fn recv<T: Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<T, RecvTimeoutError> {
    let parker = view
        .data_parker()
        .registered(reader.parked(view), PARKED_DATA);
    wait_for(strategy, deadline, parker, |idle| {
        match poll::<T>(view, reader, state, idle, liveness) {
            Ok(value) => Some(Ok(value)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvTimeoutError::Lagged(n))),
            Err(TryRecvError::Disconnected) => Some(Err(RecvTimeoutError::Disconnected)),
            Err(TryRecvError::Evicted) => Some(Err(RecvTimeoutError::Evicted)),
        }
    })
    .unwrap_or(Err(RecvTimeoutError::Timeout))
}
