//! The sending half: a thin handle over `ring::producer::Producer` and the send loops
//! of `ring/send.rs`, on a mapped segment.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::options::Family;
use crate::process::{self, ProcLiveness};
use crate::ring::producer::Producer;
use crate::ring::send::{self, SendFail};
use crate::ring::table;
use crate::segment::Segment;
use crate::wait::{Wait, IDLE_TICK};

/// The sending half of a segment. Created by [`Route::sender`](crate::Route::sender),
/// [`Channel::sender`](crate::Channel::sender) or a [`Builder`](crate::Builder).
///
/// # What the caller sees
///
/// * **Room.** In broadcast [`Overflow::Overwrite`](crate::Overflow::Overwrite) mode a
///   send never waits: the oldest record is overwritten, and a receiver that falls a
///   whole ring behind gets [`RecvError::Lagged`](crate::RecvError::Lagged). In
///   lossless modes ([`Overflow::Block`](crate::Overflow::Block), and always in
///   [`Mode::Unicast`](crate::Mode::Unicast)) `send` waits per its [`Wait`] strategy
///   while the ring is full, `send_timeout` gives up at its timeout and `try_send`
///   at once, both giving the value back.
/// * **No receivers.** A broadcast record sent while no receiver is attached is
///   written anyway; receivers that join later start at the newest position and do
///   not see it. A unicast record waits in the ring for a receiver.
/// * **Dead receivers.** A lossless sender never waits for a receiver whose process
///   died: it is evicted (checked about every 50 ms while the ring stays full).
/// * **Eviction.** The only way a send fails for good: this sender lost its role (it
///   was judged dead, which a live process is not unless a peer scribbled over the
///   segment) and [`SendError::Evicted`] gives the value back.
/// * **Dropping** the sender releases its role: when no sender is left, receivers
///   drain what was sent and then get
///   [`RecvError::Disconnected`](crate::RecvError::Disconnected). A sender that was
///   copied into a forked child belongs to the parent: the child's drop releases
///   nothing.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use shmchan::{Overflow, Route, TrySendError};
///
/// # let name = format!("doc-sender-{}", std::process::id());
/// let builder = Route::<u64>::builder(&name).capacity(2).overflow(Overflow::Block);
/// let mut tx = builder.clone().sender()?;
/// let mut rx = builder.receiver()?;
/// tx.send(1)?;
/// tx.send(2)?;
/// // Lossless and full: the slowest receiver is a whole ring behind.
/// assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
/// assert!(tx.send_timeout(3, Duration::from_millis(1)).is_err_and(|e| e.is_timeout()));
/// assert_eq!(rx.recv()?, 1);
/// tx.try_send(3)?;
/// # drop((tx, rx)); Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub struct Sender<T> {
    segment: Segment,
    producer: Producer,
    wait: Wait,
    /// The owner word of the process that opened this sender.
    owner: u64,
    /// Last time a full `try_send` checked the liveness of the receivers.
    last_liveness: Option<Instant>,
    _record: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("path", &self.segment.path())
            .field("producer", &self.producer)
            .field("wait", &self.wait)
            .finish()
    }
}

impl<T: Pod> Sender<T> {
    pub(crate) fn attach(segment: Segment, family: Family, wait: Wait) -> Result<Self, OpenError> {
        let owner = process::current_owner();
        let view = segment.view();
        let producer = match family {
            Family::Route => {
                Producer::attach_route(&view, owner, &ProcLiveness).map_err(|holder| {
                    OpenError::SenderExists {
                        path: segment.path().to_owned(),
                        pid: process::owner_pid(holder),
                    }
                })?
            }
            Family::Channel => {
                Producer::join_channel(&view, owner, &ProcLiveness).ok_or_else(|| {
                    OpenError::ProducersFull {
                        path: segment.path().to_owned(),
                        max: view.producers.len(),
                    }
                })?
            }
        };
        Ok(Sender {
            segment,
            producer,
            wait,
            owner,
            last_liveness: None,
            _record: PhantomData,
        })
    }

    /// Sends a record, waiting (per the [`Wait`] strategy) while a lossless ring is
    /// full. Never waits in broadcast `Overwrite` mode.
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        let view = self.segment.view();
        if send::send_now(&mut self.producer, &view, &value, &ProcLiveness) {
            return Ok(());
        }
        self.send_slow(value)
    }

    #[inline(never)]
    fn send_slow(&mut self, value: T) -> Result<(), SendError<T>> {
        match self.send_deadline(&value, None) {
            Ok(()) => Ok(()),
            // No deadline: only eviction ends the wait.
            Err(_) => Err(SendError::Evicted(value)),
        }
    }

    /// Sends a record if there is room now; gives it back in
    /// [`TrySendError::Full`] otherwise.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        let view = self.segment.view();
        // Dead receivers (or a dead writer holding a slot) may be what holds us back.
        // Look at most once a tick: the check reads /proc.
        let now = Instant::now();
        let check = self
            .last_liveness
            .is_none_or(|t| now.duration_since(t) >= IDLE_TICK);
        match send::try_send(&mut self.producer, &view, &value, &ProcLiveness, false) {
            Ok(()) => Ok(()),
            Err(SendFail::Full) if check => {
                self.last_liveness = Some(now);
                match send::try_send(&mut self.producer, &view, &value, &ProcLiveness, true) {
                    Ok(()) => Ok(()),
                    Err(SendFail::Full) => Err(TrySendError::Full(value)),
                    Err(SendFail::Evicted) => Err(TrySendError::Evicted(value)),
                }
            }
            Err(SendFail::Full) => Err(TrySendError::Full(value)),
            Err(SendFail::Evicted) => Err(TrySendError::Evicted(value)),
        }
    }

    /// Sends a record, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match self.send_deadline(&value, Some(Instant::now() + timeout)) {
            Ok(()) => Ok(()),
            Err(SendFail::Full) => Err(SendTimeoutError::Timeout(value)),
            Err(SendFail::Evicted) => Err(SendTimeoutError::Evicted(value)),
        }
    }

    fn send_deadline(&mut self, value: &T, deadline: Option<Instant>) -> Result<(), SendFail> {
        let view = self.segment.view();
        send::send(
            &mut self.producer,
            &view,
            value,
            self.wait,
            deadline,
            &ProcLiveness,
        )
    }

    /// Lends a record to be filled in place of a value, then
    /// [published](Loan::publish), which sends it like [`Sender::send`] (waiting for
    /// room in lossless modes).
    ///
    /// The loan is staged in the `Loan` itself and copied into the slot with the same
    /// atomic word stores as `send` when it is published: no slot is held while the
    /// loan is out, so a loan that is dropped (or forgotten) without publishing costs
    /// nothing and blocks no one, and a reader racing the copy (a lapped receiver, the
    /// `shmchan tail` observer) never races a plain write. The loan starts zeroed and
    /// lives in the `Loan` (on the caller's stack): for records of many megabytes,
    /// prefer `send` from a buffer of your own.
    ///
    /// Fails only if this sender lost its role.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-loan-{}", std::process::id());
    /// let builder = Route::<[u64; 8]>::builder(&name).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// let mut slot = tx.loan()?;
    /// slot[0] = 7;
    /// slot.publish()?;
    /// assert_eq!(rx.recv()?[0], 7);
    /// # drop((tx, rx)); Route::<[u64; 8]>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn loan(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        if !self.producer.holds_role(&self.segment.view()) {
            return Err(SendError::Evicted(()));
        }
        Ok(Loan {
            sender: self,
            value: T::zeroed(),
        })
    }

    /// Number of receivers attached, after evicting those whose process died. Reads
    /// `/proc` for each: not for the hot path.
    pub fn receiver_count(&self) -> usize {
        table::live_receivers(&self.segment.view(), &ProcLiveness)
    }

    /// Waits until at least `n` receivers are attached (start-up synchronisation),
    /// polling every millisecond. Returns the count reached.
    pub fn wait_for_receivers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, ReceiversTimeout> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.receiver_count();
            if found >= n {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(ReceiversTimeout { wanted: n, found });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sequence number the next record will get on a `Route` (the number of records
    /// published so far); on a `Channel`, the number of sequence numbers claimed by
    /// all its producers so far.
    pub fn next_seq(&self) -> u64 {
        self.producer.next_seq(&self.segment.view())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // A copy in a forked child belongs to the parent, which still uses it.
        if process::is_current_process(self.owner) {
            self.producer.leave(&self.segment.view());
        }
    }
}

/// A record lent by [`Sender::loan`], to be filled and then
/// [published](Loan::publish). Dropping it without publishing sends nothing.
pub struct Loan<'a, T: Pod> {
    sender: &'a mut Sender<T>,
    value: T,
}

impl<T: Pod> std::fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Loan<'_, T> {
    /// Publishes the record: sends it like [`Sender::send`]. If the sender lost its
    /// role, the record comes back in [`SendError::Evicted`]; it is never dropped
    /// silently.
    #[inline]
    pub fn publish(self) -> Result<(), SendError<T>> {
        self.sender.send(self.value)
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}
