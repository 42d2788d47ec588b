//! The send loops: how a record gets out through a [`Producer`], waiting (per the
//! `Wait` strategy, `wait.rs`) while a lossless ring is full, while a lap-older writer
//! holds the slot, or while the gate does not admit a claim, and never past the
//! caller's deadline. `Sender` calls these functions, and the loom models call the
//! same ones.
//!
//! A claim the loop gives up on (a deadline, or `try_send` finding the slot held)
//! stays pending in the producer, and the next record takes it (`producer.rs`), so a
//! timeout leaves no hole in the sequence while the producer lives.

use std::time::Instant;

use super::gaps;
use super::producer::{Begin, Producer};
use super::record::{Record, Records};
use super::RingView;
use crate::layout::{PARKED_DATA, PARKED_SPACE};
use crate::process::Liveness;
use crate::wait::{wait_for, Wait};

/// How many times `try_send` retries a claim that a receiver voided (it judged this
/// producer stalled) before reporting the ring full.
const VOID_RETRIES: u32 = 64;

/// Why a record was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFail {
    /// No room now (`try_send`), or none before the deadline.
    Full,
    /// This producer lost its role: it was judged dead and taken over or reaped.
    Evicted,
    /// The handle belongs to another process (a `fork` copied it into this one). Never
    /// returned by the ring: the handle refuses before it gets there
    /// (`raw/sender.rs`).
    Forked,
}

/// The hot path, inlined: sends `value` if there is room now and nothing unusual
/// happens (no pending claim, no void claim, the slot free). `false`: nothing was
/// published; a claim it took stays pending for [`send`] or [`try_send`].
#[inline(always)]
pub fn send_now<R: Record + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &R,
    liveness: &impl Liveness,
) -> bool {
    // A gap marker takes the full loop, which does its accounting (`R::GAP` is a
    // constant: nothing is left of this test for records).
    !R::GAP && p.send_now(view, value, liveness)
}

/// Sends `value` if there is room now: `Err(Full)` otherwise. `check_liveness`: when
/// full, evict dead receivers that hold a lossless ring back, and take over a slot
/// from a dead lap-older writer (the caller passes `true` about once a liveness tick:
/// the oracle reads `/proc`).
pub fn try_send<R: Record + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &R,
    liveness: &impl Liveness,
    check_liveness: bool,
) -> Result<(), SendFail> {
    if R::GAP {
        return accounted(
            view,
            value,
            |p| try_send_record(p, view, value, liveness, check_liveness),
            p,
        );
    }
    try_send_record(p, view, value, liveness, check_liveness)
}

/// Sends gap marker `marker` with `send`, inside its accounting (G1 before, G3
/// after: `broadcast.rs`, "Gap markers and laps").
#[cold]
fn accounted<R: Record + ?Sized>(
    view: &RingView<'_>,
    marker: &R,
    send: impl FnOnce(&mut Producer) -> Result<(), SendFail>,
    p: &mut Producer,
) -> Result<(), SendFail> {
    let extra = gaps::extra_of(marker);
    gaps::started(view, extra);
    let result = send(p);
    gaps::finished(view, extra, result.is_ok());
    result
}

/// [`try_send`] of a record or, inside its accounting, a gap marker.
#[inline(always)]
fn try_send_record<R: Record + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &R,
    liveness: &impl Liveness,
    check_liveness: bool,
) -> Result<(), SendFail> {
    if !p.holds_role(view) {
        return Err(SendFail::Evicted);
    }
    for _ in 0..VOID_RETRIES {
        if !p.try_claim(view) {
            if check_liveness {
                p.evict_dead(view, liveness);
            }
            if !p.try_claim(view) {
                return Err(SendFail::Full);
            }
        }
        let mut begun = p.begin(view, liveness, check_liveness);
        if begun == Begin::Gated && check_liveness {
            // A dead receiver may be what holds the gate (a pending claim skipped the
            // eviction above): evict it and look again.
            p.evict_dead(view, liveness);
            begun = p.begin(view, liveness, true);
        }
        match begun {
            Begin::Ours => {
                p.write(view, value);
                if p.commit(view, R::GAP) {
                    return Ok(());
                }
            }
            Begin::Void => {}
            Begin::Busy | Begin::Gated => return Err(SendFail::Full),
        }
    }
    Err(SendFail::Full)
}

/// Sends `value`, waiting per `strategy` while there is no room, until `deadline`
/// (`None`: for ever). `Err(Full)` means the deadline passed.
pub fn send<R: Record + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &R,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<(), SendFail> {
    if R::GAP {
        return accounted(
            view,
            value,
            |p| send_record(p, view, value, strategy, deadline, liveness),
            p,
        );
    }
    send_record(p, view, value, strategy, deadline, liveness)
}

/// [`send`] of a record or, inside its accounting, a gap marker.
#[inline(always)]
fn send_record<R: Record + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &R,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<(), SendFail> {
    let mut first = true;
    loop {
        // A round that ended with a void claim: the waits below look at the deadline
        // only when they have to wait, so look here (not on the first round: a zero
        // timeout still tries once).
        if !first && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(SendFail::Full);
        }
        first = false;
        // Returns at once with a pending claim.
        reserve(p, view, strategy, deadline, liveness)?;
        let begun = match p.begin(view, liveness, false) {
            awaited @ (Begin::Busy | Begin::Gated) => {
                wait_to_begin(p, view, awaited, strategy, deadline, liveness)?
            }
            begun => begun,
        };
        if begun == Begin::Ours {
            p.write(view, value);
            if p.commit(view, R::GAP) {
                return Ok(());
            }
        }
        // Void (claim again), or a claim that went from gated to busy: go round.
    }
}

/// Sends as many of `records` as there is room for now, in order, and returns how
/// many (`records.count()` or fewer: the ring filled). `Err((sent, Evicted))`: this
/// producer lost its role after sending `sent`. `check_liveness` as for [`try_send`].
/// A `Route` publishes in chunks (`Producer::send_chunks`); anything unusual goes
/// through [`try_send`], one record at a time.
pub fn try_send_many<R: Records + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    records: &R,
    liveness: &impl Liveness,
    check_liveness: bool,
) -> Result<usize, (usize, SendFail)> {
    let mut sent = 0;
    // Bounded: each round publishes at least one record or returns.
    while sent < records.count() {
        sent += p.send_chunks(view, records, sent, liveness);
        if sent == records.count() {
            break;
        }
        let value = records.record(sent);
        match try_send(p, view, value, liveness, check_liveness) {
            Ok(()) => sent += 1,
            Err(SendFail::Full) => return Ok(sent),
            Err(fail) => return Err((sent, fail)),
        }
    }
    Ok(sent)
}

/// Sends all of `records`, in order, waiting per `strategy` while there is no room,
/// until `deadline` (`None`: for ever). `Err((sent, Full))`: the deadline passed after
/// `sent` records; `Err((sent, Evicted))`: the role was lost after `sent`.
pub fn send_many<R: Records + ?Sized>(
    p: &mut Producer,
    view: &RingView<'_>,
    records: &R,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<usize, (usize, SendFail)> {
    let mut sent = 0;
    // Each round publishes at least one record, or fails at the deadline or eviction.
    while sent < records.count() {
        sent += p.send_chunks(view, records, sent, liveness);
        if sent == records.count() {
            break;
        }
        let value = records.record(sent);
        send(p, view, value, strategy, deadline, liveness).map_err(|fail| (sent, fail))?;
        sent += 1;
    }
    Ok(sent)
}

/// Waits until there is room for the next record (a `Channel`: claims it).
fn reserve(
    p: &mut Producer,
    view: &RingView<'_>,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<(), SendFail> {
    if !p.holds_role(view) {
        return Err(SendFail::Evicted);
    }
    let parker = view.space_parker().registered(p.parked(view), PARKED_SPACE);
    let mut tick = p.tick();
    let result = wait_for(strategy, deadline, parker, &mut tick, |idle| {
        if idle {
            if !p.holds_role(view) {
                return Some(Err(SendFail::Evicted));
            }
            p.evict_dead(view, liveness);
        }
        p.try_claim(view).then_some(Ok(()))
    })
    .unwrap_or(Err(SendFail::Full));
    p.set_tick(tick);
    result
}

/// Waits while [`Producer::begin`] says `awaited` (`Busy`: a lap-older writer holds
/// the slot, and its commit wakes `data`; `Gated`: the receivers' cursors must move,
/// and their progress wakes `space`). Returns the first other answer.
fn wait_to_begin(
    p: &mut Producer,
    view: &RingView<'_>,
    awaited: Begin,
    strategy: Wait,
    deadline: Option<Instant>,
    liveness: &impl Liveness,
) -> Result<Begin, SendFail> {
    let parker = if awaited == Begin::Busy {
        view.data_parker().registered(p.parked(view), PARKED_DATA)
    } else {
        view.space_parker().registered(p.parked(view), PARKED_SPACE)
    };
    let mut tick = p.tick();
    let result = wait_for(strategy, deadline, parker, &mut tick, |idle| {
        if idle {
            if !p.holds_role(view) {
                return Some(Err(SendFail::Evicted));
            }
            p.evict_dead(view, liveness);
        }
        match p.begin(view, liveness, idle) {
            begun if begun == awaited => None,
            begun => Some(Ok(begun)),
        }
    })
    .unwrap_or(Err(SendFail::Full));
    p.set_tick(tick);
    result
}
