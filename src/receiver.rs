//! The receiving half.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, RecvError, TryRecvError};
use crate::process::{self, ProcLiveness};
use crate::ring::broadcast::{self, Consumer, Read};
use crate::ring::RingView;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Wait};

/// How many empty `try_recv` calls between two liveness checks of the sender (a
/// liveness check reads `/proc`; an empty poll must stay cheap).
const EMPTY_POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// The receiving half of a segment. Created by
/// [`Route::receiver`](crate::Route::receiver) or a [`Builder`](crate::Builder).
///
/// A new receiver starts at the newest position: it sees the records published after
/// it joined. Dropping it frees its entry in the receiver table.
pub struct Receiver<T> {
    segment: Segment,
    /// `None` only during drop.
    consumer: Option<Consumer>,
    lossless: bool,
    wait: Wait,
    /// A sender was attached when we joined.
    joined_with_sender: bool,
    /// `sender_attaches` when we joined: a change means a sender has come since.
    attaches_at_join: u64,
    empty_polls: u32,
    lagged_total: u64,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("path", &self.segment.path())
            .field("cursor", &self.consumer.as_ref().map(Consumer::cursor))
            .field("lossless", &self.lossless)
            .field("wait", &self.wait)
            .finish()
    }
}

impl<T: Pod> Receiver<T> {
    pub(crate) fn attach(segment: Segment, lossless: bool, wait: Wait) -> Result<Self, OpenError> {
        let view = segment.view(lossless);
        let membership = &view.ctl.membership;
        // `Acquire`: pairs with the sender's `Release` increment in `claim_sender`.
        let attaches_at_join = membership.sender_attaches.load(Ordering::Acquire);
        let joined_with_sender = membership.sender.load(Ordering::Acquire) != 0;
        let owner = process::current_owner();
        let consumer = match Consumer::join(&view, owner) {
            Some(c) => c,
            None => {
                // Full: free the entries of dead receivers and try once more.
                broadcast::live_receivers(&view, &ProcLiveness);
                Consumer::join(&view, owner).ok_or_else(|| OpenError::ReceiversFull {
                    path: segment.path().to_owned(),
                    max: view.receivers.len(),
                })?
            }
        };
        Ok(Receiver {
            segment,
            consumer: Some(consumer),
            lossless,
            wait,
            joined_with_sender,
            attaches_at_join,
            empty_polls: 0,
            lagged_total: 0,
            _record: PhantomData,
        })
    }

    /// Receives the next record, waiting for it per the [`Wait`] strategy.
    ///
    /// Returns [`RecvError::Lagged`] once after this receiver was lapped (the next call
    /// continues with the oldest record still present), [`RecvError::Disconnected`]
    /// after the sender left or died and everything it sent was received.
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
        let check_liveness = {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0
        };
        self.poll(check_liveness)
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        match self.poll(false) {
            Ok(v) => return Ok(v),
            Err(e) => {
                if let Some(e) = Option::<RecvError>::from(e) {
                    return Err(e);
                }
            }
        }
        let rule = self.disconnect_rule();
        let view = self.segment.view(self.lossless);
        let consumer = self
            .consumer
            .as_mut()
            .expect("consumer is present until drop");
        let outcome = wait::wait_for(
            self.wait,
            deadline,
            view.data_parker(),
            |idle| match poll_view::<T>(&view, consumer, idle, rule) {
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

    fn disconnect_rule(&self) -> DisconnectRule {
        DisconnectRule {
            joined_with_sender: self.joined_with_sender,
            attaches_at_join: self.attaches_at_join,
        }
    }

    fn poll(&mut self, check_liveness: bool) -> Result<T, TryRecvError> {
        let rule = self.disconnect_rule();
        let view = self.segment.view(self.lossless);
        let consumer = self
            .consumer
            .as_mut()
            .expect("consumer is present until drop");
        let result = poll_view::<T>(&view, consumer, check_liveness, rule);
        if let Err(TryRecvError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    /// A blocking iterator over records. It ends when the sender disconnects or this
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

    /// Sequence number of the next record this receiver will read.
    pub fn next_seq(&self) -> u64 {
        self.consumer.as_ref().map_or(0, Consumer::cursor)
    }
}

#[derive(Clone, Copy)]
struct DisconnectRule {
    joined_with_sender: bool,
    attaches_at_join: u64,
}

/// One non-blocking receive: a record, or why not.
///
/// `check_liveness` also asks whether a sender that still holds its claim is alive,
/// and reaps the claim of a dead one.
fn poll_view<T: Pod>(
    view: &RingView<'_>,
    consumer: &mut Consumer,
    check_liveness: bool,
    rule: DisconnectRule,
) -> Result<T, TryRecvError> {
    match consumer.try_read::<T>(view) {
        Read::Record(v) => return Ok(v),
        Read::Lagged(n) => {
            // A lossless ring laps only an evicted receiver.
            if consumer.is_evicted(view) {
                return Err(TryRecvError::Evicted);
            }
            return Err(TryRecvError::Lagged(n));
        }
        Read::Empty => {}
    }
    if consumer.is_evicted(view) {
        return Err(TryRecvError::Evicted);
    }
    let membership = &view.ctl.membership;
    // `Acquire`: pairs with `release_sender`'s `Release`: if the claim is gone, every
    // record the sender published is visible to the re-check below.
    let sender = membership.sender.load(Ordering::Acquire);
    let gone = if sender == 0 {
        rule.joined_with_sender
            || membership.sender_attaches.load(Ordering::Acquire) != rule.attaches_at_join
    } else if check_liveness && !process::is_alive(sender) {
        broadcast::reap_sender(view, sender);
        true
    } else {
        false
    };
    if !gone {
        return Err(TryRecvError::Empty);
    }
    // The sender is gone; drain what it published before it went.
    match consumer.try_read::<T>(view) {
        Read::Record(v) => Ok(v),
        Read::Lagged(n) => Err(TryRecvError::Lagged(n)),
        Read::Empty => Err(TryRecvError::Disconnected),
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            consumer.leave(&self.segment.view(self.lossless));
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
