//! The receiving half.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, RecvError, TryRecvError};
use crate::process::{self, ProcLiveness};
use crate::ring::broadcast::{self, Consumer, Read};
use crate::ring::multi;
use crate::ring::unicast::Worker;
use crate::ring::RingView;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Wait};

/// How many empty `try_recv` calls between two liveness checks of the sender (a
/// liveness check reads `/proc`; an empty poll must stay cheap).
const EMPTY_POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// The receiving half of a segment. Created by
/// [`Route::receiver`](crate::Route::receiver), [`Channel::receiver`](crate::Channel::receiver)
/// or a [`Builder`](crate::Builder).
///
/// A new broadcast receiver starts at the newest position: it sees the records
/// published after it joined. A unicast receiver takes the oldest record no other
/// receiver has taken. Dropping it frees its entry in the receiver table.
pub struct Receiver<T> {
    segment: Segment,
    /// `None` only during drop.
    role: Option<Role>,
    wait: Wait,
    rule: DisconnectRule,
    stall: Stall,
    empty_polls: u32,
    lagged_total: u64,
    _record: PhantomData<fn() -> T>,
}

/// Which receiver algorithm this receiver runs.
#[derive(Debug)]
enum Role {
    /// Every record, with a cursor of its own (`ring/broadcast.rs`).
    Broadcast(Consumer),
    /// Competing for records through the shared read cursor (`ring/unicast.rs`).
    Unicast(Worker),
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("path", &self.segment.path())
            .field("role", &self.role)
            .field("wait", &self.wait)
            .finish()
    }
}

/// When an empty ring means the senders are gone for good.
#[derive(Clone, Copy)]
struct DisconnectRule {
    /// A sender was attached when we joined.
    joined_with_sender: bool,
    /// `sender_attaches` when we joined: a change means a sender has come since.
    attaches_at_join: u64,
}

/// Where this receiver has been waiting, for how many liveness ticks (a `Channel`
/// claim whose producer died is skipped after one or two ticks).
#[derive(Clone, Copy, Default)]
struct Stall {
    seq: u64,
    ticks: u32,
}

impl<T: Pod> Receiver<T> {
    pub(crate) fn attach(segment: Segment, wait: Wait) -> Result<Self, OpenError> {
        let view = segment.view();
        let membership = &view.ctl.membership;
        // `Acquire`: pairs with the senders' `Release` increments when they attach.
        let attaches_at_join = membership.sender_attaches.load(Ordering::Acquire);
        let joined_with_sender = senders_present(&view);
        let owner = process::current_owner();
        let join = |view: &RingView<'_>| {
            if view.unicast {
                Worker::join(view, owner).map(Role::Unicast)
            } else {
                Consumer::join(view, owner).map(Role::Broadcast)
            }
        };
        let role = match join(&view) {
            Some(role) => role,
            None => {
                // Full: free the entries of dead receivers and try once more.
                broadcast::live_receivers(&view, &ProcLiveness);
                join(&view).ok_or_else(|| OpenError::ReceiversFull {
                    path: segment.path().to_owned(),
                    max: view.receivers.len(),
                })?
            }
        };
        Ok(Receiver {
            segment,
            role: Some(role),
            wait,
            rule: DisconnectRule {
                joined_with_sender,
                attaches_at_join,
            },
            stall: Stall::default(),
            empty_polls: 0,
            lagged_total: 0,
            _record: PhantomData,
        })
    }

    /// Receives the next record, waiting for it per the [`Wait`] strategy.
    ///
    /// Returns [`RecvError::Lagged`] once after this receiver was lapped (the next call
    /// continues with the oldest record still present), [`RecvError::Disconnected`]
    /// after every sender left or died and everything they sent was received.
    #[inline]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_deadline(None)
    }

    /// Like [`Receiver::recv`], giving up with [`RecvError::Timeout`] after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_deadline(Some(Instant::now() + timeout))
    }

    /// Receives the next record if one is there now.
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.read_fast() {
            return Ok(value);
        }
        self.try_recv_slow()
    }

    /// The common case of every receive, inlined: the next record is there. Anything
    /// else (nothing yet, lagged, evicted) takes the full path, which reads again.
    #[inline(always)]
    fn read_fast(&mut self) -> Option<T> {
        match &mut self.role {
            Some(Role::Broadcast(consumer)) => {
                match consumer.try_read_ready::<T>(&self.segment.view()) {
                    Read::Record(value) => Some(value),
                    _ => None,
                }
            }
            Some(Role::Unicast(worker)) => worker.try_take::<T>(&self.segment.view()),
            None => None,
        }
    }

    #[inline(never)]
    fn try_recv_slow(&mut self) -> Result<T, TryRecvError> {
        self.empty_polls = self.empty_polls.wrapping_add(1);
        let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
        let result = self.poll(check_liveness);
        if let Err(TryRecvError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    #[inline]
    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        if let Some(value) = self.read_fast() {
            return Ok(value);
        }
        self.recv_slow(deadline)
    }

    #[inline(never)]
    fn recv_slow(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let view = self.segment.view();
        let role = self.role.as_mut().expect("role is present until drop");
        let (rule, stall) = (self.rule, &mut self.stall);
        let outcome = wait::wait_for(
            self.wait,
            deadline,
            view.data_parker(),
            |idle| match poll_view::<T>(&view, role, idle, rule, stall) {
                Ok(v) => Some(Ok(v)),
                Err(e) => Option::<RecvError>::from(e).map(Err),
            },
        );
        let result = outcome.unwrap_or(Err(RecvError::Timeout));
        if let Err(RecvError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    fn poll(&mut self, check_liveness: bool) -> Result<T, TryRecvError> {
        let view = self.segment.view();
        let role = self.role.as_mut().expect("role is present until drop");
        poll_view::<T>(&view, role, check_liveness, self.rule, &mut self.stall)
    }

    /// A blocking iterator over records. It ends when the senders disconnect or this
    /// receiver is evicted; lag is skipped over (see [`Receiver::lagged_total`]).
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// An iterator over the records available now. It ends when none is left.
    pub fn try_iter(&mut self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    /// Total records this receiver skipped because it lagged.
    pub fn lagged_total(&self) -> u64 {
        self.lagged_total
    }

    /// Broadcast: sequence number of the next record this receiver will read.
    /// Unicast: of the next record any receiver will take.
    pub fn next_seq(&self) -> u64 {
        match &self.role {
            Some(Role::Broadcast(c)) => c.cursor(),
            Some(Role::Unicast(_)) => Worker::read_cursor(&self.segment.view()),
            None => 0,
        }
    }
}

/// Whether any sender is attached: the `Route` claim or a `Channel` producer.
fn senders_present(view: &RingView<'_>) -> bool {
    let membership = &view.ctl.membership;
    // `Acquire`: pairs with the `Release` with which a sender leaves, so if none is
    // left, every record they published is visible to the re-check that follows.
    membership.sender.load(Ordering::Acquire) != 0
        || membership.producers.load(Ordering::Acquire) != 0
}

/// One non-blocking receive: a record, or why not.
///
/// `check_liveness` (once a liveness tick) also looks for senders that died: reaps
/// their claims, skips sequence numbers a dead `Channel` producer will never publish,
/// and (unicast) delivers records a dead receiver had taken.
fn poll_view<T: Pod>(
    view: &RingView<'_>,
    role: &mut Role,
    check_liveness: bool,
    rule: DisconnectRule,
    stall: &mut Stall,
) -> Result<T, TryRecvError> {
    if let Some(result) = read::<T>(view, role) {
        return result;
    }
    if is_evicted(view, role) {
        return Err(TryRecvError::Evicted);
    }
    let membership = &view.ctl.membership;
    if check_liveness {
        let waiting_on = match role {
            Role::Broadcast(c) => c.cursor(),
            Role::Unicast(_) => Worker::read_cursor(view),
        };
        if !view.producers.is_empty() {
            // A `Channel`: producers that died, and the claims they left behind.
            multi::reap_dead_producers(view, &ProcLiveness);
            if stall.seq != waiting_on {
                *stall = Stall {
                    seq: waiting_on,
                    ticks: 0,
                };
            }
            stall.ticks = stall.ticks.saturating_add(1);
            let patient = stall.ticks >= 2;
            if multi::resolve_stall(view, waiting_on, &ProcLiveness, patient) {
                if let Some(result) = read::<T>(view, role) {
                    return result;
                }
            }
        }
        if let Role::Unicast(worker) = role {
            if let Some(value) = worker.rescue::<T>(view, &ProcLiveness) {
                return Ok(value);
            }
        }
        let sender = membership.sender.load(Ordering::Acquire);
        if sender != 0 && !process::is_alive(sender) {
            broadcast::reap_sender(view, sender);
        }
    }
    let gone = !senders_present(view)
        && (rule.joined_with_sender
            || membership.sender_attaches.load(Ordering::Acquire) != rule.attaches_at_join);
    if !gone {
        return Err(TryRecvError::Empty);
    }
    // The senders are gone; drain what they published before they went.
    read::<T>(view, role).unwrap_or(Err(TryRecvError::Disconnected))
}

/// Reads the next record: `None` if there is none now.
#[inline]
fn read<T: Pod>(view: &RingView<'_>, role: &mut Role) -> Option<Result<T, TryRecvError>> {
    match role {
        Role::Broadcast(consumer) => match consumer.try_read::<T>(view) {
            Read::Record(v) => Some(Ok(v)),
            // A lossless ring laps only an evicted receiver.
            Read::Lagged(_) if consumer.is_evicted(view) => Some(Err(TryRecvError::Evicted)),
            Read::Lagged(n) => Some(Err(TryRecvError::Lagged(n))),
            Read::Empty => None,
        },
        Role::Unicast(worker) => worker.try_take::<T>(view).map(Ok),
    }
}

fn is_evicted(view: &RingView<'_>, role: &Role) -> bool {
    match role {
        Role::Broadcast(c) => c.is_evicted(view),
        Role::Unicast(w) => w.is_evicted(view),
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let view = self.segment.view();
        match self.role.take() {
            Some(Role::Broadcast(consumer)) => consumer.leave(&view),
            Some(Role::Unicast(worker)) => worker.leave(&view),
            None => {}
        }
    }
}

/// Blocking iterator returned by [`Receiver::iter`].
pub struct Iter<'a, T: Pod> {
    receiver: &'a mut Receiver<T>,
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            match self.receiver.recv() {
                Ok(v) => return Some(v),
                Err(RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl<T: Pod> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("receiver", &self.receiver)
            .finish()
    }
}

/// Non-blocking iterator returned by [`Receiver::try_iter`].
pub struct TryIter<'a, T: Pod> {
    receiver: &'a mut Receiver<T>,
}

impl<T: Pod> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            match self.receiver.try_recv() {
                Ok(v) => return Some(v),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl<T: Pod> std::fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TryIter")
            .field("receiver", &self.receiver)
            .finish()
    }
}
