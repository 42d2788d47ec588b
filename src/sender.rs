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

    /// Sends every record of `records`, in order, waiting (per the [`Wait`] strategy)
    /// for room in lossless modes; returns how many were sent (`records.len()`).
    ///
    /// A `Route` publishes the records in chunks of at most the capacity, with one
    /// `head` store and at most one wake of sleeping receivers per chunk; a `Channel`
    /// claims and publishes each record on its own. If this sender loses its role the
    /// call stops, and [`SendError::Evicted`] carries how many records were sent
    /// before (the rest, `records[n..]`, were not).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-send-many-{}", std::process::id());
    /// let builder = Route::<u64>::builder(&name).capacity(4).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// assert_eq!(tx.send_many(&[1, 2, 3])?, 3);
    /// let mut buf = [0u64; 4];
    /// assert_eq!(rx.try_recv_many(&mut buf)?, 3);
    /// assert_eq!(buf[..3], [1, 2, 3]);
    /// # drop((tx, rx)); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn send_many(&mut self, records: &[T]) -> Result<usize, SendError<usize>> {
        match self.send_many_deadline(records, None) {
            Ok(n) => Ok(n),
            // No deadline: only eviction ends the wait.
            Err((n, _)) => Err(SendError::Evicted(n)),
        }
    }

    /// Sends as many of `records`, in order, as there is room for now, and returns how
    /// many: `Ok(n)` with `n < records.len()` when a lossless ring filled (send
    /// `records[n..]` later). The error is only for losing the role:
    /// [`SendError::Evicted`] with how many were sent before.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-try-send-many-{}", std::process::id());
    /// let builder = Route::<u8>::builder(&name).capacity(2).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// // Lossless: room for 2 until the receiver reads.
    /// assert_eq!(tx.try_send_many(&[1, 2, 3])?, 2);
    /// assert_eq!(rx.recv()?, 1);
    /// assert_eq!(tx.try_send_many(&[3])?, 1);
    /// # drop((tx, rx)); Route::<u8>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn try_send_many(&mut self, records: &[T]) -> Result<usize, SendError<usize>> {
        let view = self.segment.view();
        let first = send::try_send_many(&mut self.producer, &view, records, &ProcLiveness, false)
            .map_err(|(n, _)| SendError::Evicted(n))?;
        if first == records.len() {
            return Ok(first);
        }
        // Dead receivers (or a dead writer holding a slot) may be what holds us back.
        // Look at most once a tick: the check reads /proc.
        let now = Instant::now();
        if self
            .last_liveness
            .is_some_and(|t| now.duration_since(t) < IDLE_TICK)
        {
            return Ok(first);
        }
        self.last_liveness = Some(now);
        let rest = &records[first..];
        match send::try_send_many(&mut self.producer, &view, rest, &ProcLiveness, true) {
            Ok(n) => Ok(first + n),
            Err((n, _)) => Err(SendError::Evicted(first + n)),
        }
    }

    /// Like [`Sender::send_many`], giving up after `timeout`:
    /// [`SendTimeoutError::Timeout`] carries how many records were sent by then.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use shmchan::{Overflow, Route, SendTimeoutError};
    ///
    /// # let name = format!("doc-send-many-timeout-{}", std::process::id());
    /// let builder = Route::<u32>::builder(&name).capacity(2).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let _rx = builder.receiver()?;
    /// let timeout = Duration::from_millis(1);
    /// assert!(matches!(tx.send_many_timeout(&[1, 2, 3], timeout), Err(SendTimeoutError::Timeout(2))));
    /// # drop((tx, _rx)); Route::<u32>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn send_many_timeout(
        &mut self,
        records: &[T],
        timeout: Duration,
    ) -> Result<usize, SendTimeoutError<usize>> {
        match self.send_many_deadline(records, Some(Instant::now() + timeout)) {
            Ok(n) => Ok(n),
            Err((n, SendFail::Full)) => Err(SendTimeoutError::Timeout(n)),
            Err((n, SendFail::Evicted)) => Err(SendTimeoutError::Evicted(n)),
        }
    }

    fn send_many_deadline(
        &mut self,
        records: &[T],
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, SendFail)> {
        let view = self.segment.view();
        send::send_many(
            &mut self.producer,
            &view,
            records,
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
