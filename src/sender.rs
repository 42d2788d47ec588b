//! The typed sending half: a thin wrapper over [`RawSender`] that views each `T` as
//! its bytes (one implementation for both, `raw/sender.rs`).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::options::{Family, Mode, Overflow};
use crate::raw::sender::{send_error, send_timeout_error, try_send_error};
use crate::raw::{RawSender, RecordLayout};
use crate::segment::Segment;
use crate::wait::Wait;

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
/// * **Fork.** A sender belongs to the process that opened it. A copy of it in a child
///   made by `fork` is refused by every send, loan and publish there
///   ([`SendError::Forked`], the value given back; nothing is written), so a `Route`
///   never gets a second writer that way; open a new sender in the child instead.
///   ([`Sender::receiver_count`], [`Sender::wait_for_receivers`] and
///   [`Sender::next_seq`] only look, and work there.)
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
    raw: RawSender,
    _record: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("raw", &self.raw).finish()
    }
}

impl<T: Pod> Sender<T> {
    pub(crate) fn attach(
        segment: Segment,
        family: Family,
        wait: Wait,
        layout: RecordLayout,
    ) -> Result<Self, OpenError> {
        Ok(Sender {
            raw: RawSender::attach(segment, family, wait, layout)?,
            _record: PhantomData,
        })
    }

    /// Sends a record, waiting (per the [`Wait`] strategy) while a lossless ring is
    /// full. Never waits in broadcast `Overwrite` mode.
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        match self.raw.send_record(&value) {
            Ok(()) => Ok(()),
            Err(fail) => Err(send_error(fail, value)),
        }
    }

    /// Sends a record if there is room now; gives it back in
    /// [`TrySendError::Full`] otherwise.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        match self.raw.try_send_record(&value) {
            Ok(()) => Ok(()),
            Err(fail) => Err(try_send_error(fail, value)),
        }
    }

    /// Sends a record, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match self
            .raw
            .send_record_deadline(&value, Some(Instant::now() + timeout))
        {
            Ok(()) => Ok(()),
            Err(fail) => Err(send_timeout_error(fail, value)),
        }
    }

    /// This sender as a [`RawSender`] (records as bytes), e.g. to hand it to code that
    /// works on any record layout.
    pub fn into_raw(self) -> RawSender {
        self.raw
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
        self.raw.send_many_records(records)
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
        self.raw.try_send_many_records(records)
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
        self.raw.send_many_records_timeout(records, timeout)
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
    /// Fails only if this sender lost its role, or is used in a forked child
    /// ([`SendError::Forked`]).
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
        if let Err(fail) = self.raw.check_role() {
            return Err(send_error(fail, ()));
        }
        Ok(Loan {
            sender: self,
            value: T::zeroed(),
        })
    }

    /// Number of receivers attached, after evicting those whose process died. Reads
    /// `/proc` for each: not for the hot path.
    pub fn receiver_count(&self) -> usize {
        self.raw.receiver_count()
    }

    /// Number of slots in the ring: the segment's, whether this sender set it, adopted
    /// it or created the segment with the default (see [`Builder`](crate::Builder)).
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Broadcast or unicast: the segment's (see [`Builder`](crate::Builder)).
    pub fn mode(&self) -> Mode {
        self.raw.mode()
    }

    /// What a full ring does: the segment's (see [`Builder`](crate::Builder));
    /// [`Overflow::Block`] for every unicast segment.
    pub fn overflow(&self) -> Overflow {
        self.raw.overflow()
    }

    /// Size of the segment's receiver table (see [`Builder`](crate::Builder)).
    pub fn max_receivers(&self) -> usize {
        self.raw.max_receivers()
    }

    /// Waits until at least `n` receivers are attached (start-up synchronisation),
    /// polling every millisecond. Returns the count reached.
    pub fn wait_for_receivers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, ReceiversTimeout> {
        self.raw.wait_for_receivers(n, timeout)
    }

    /// The futex pair this sender sleeps on (async send, `asynk/`): `data` while a
    /// lap-older writer holds its slot, else `space` (see [`RawSender::parker`]).
    #[cfg(feature = "async")]
    pub(crate) fn parker(&self, on_data: bool) -> crate::wait::Parker<'_> {
        self.raw.parker(on_data)
    }

    /// Whether a send that found no room waits on `data` (see
    /// [`RawSender::awaits_writer`]).
    #[cfg(feature = "async")]
    pub(crate) fn awaits_writer(&self) -> bool {
        self.raw.awaits_writer()
    }

    /// Sequence number the next record will get on a `Route` (the number of records
    /// published so far); on a `Channel`, the number of sequence numbers claimed by
    /// all its producers so far.
    pub fn next_seq(&self) -> u64 {
        self.raw.next_seq()
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
    /// role, the record comes back in [`SendError::Evicted`] ([`SendError::Forked`] in a
    /// forked child); it is never dropped silently.
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
