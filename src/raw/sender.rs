//! [`RawSender`]: the sending half, over records as bytes. The typed
//! [`Sender<T>`](crate::Sender) wraps it; both drive `ring::producer::Producer` and the
//! send loops of `ring/send.rs` on a mapped segment.

use std::time::{Duration, Instant};

use super::error::RawError;
use super::layout::RecordLayout;
use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::options::Family;
use crate::process::{self, ProcLiveness};
use crate::ring::producer::Producer;
use crate::ring::record::{GapMarker, Packed, Record, Records};
use crate::ring::send::{self, SendFail};
use crate::ring::table;
use crate::segment::Segment;
use crate::wait::{Wait, IDLE_TICK};

/// The sending half of a segment, with records as bytes. Opened with
/// [`raw::route`](super::route) or [`raw::channel`](super::channel) and an explicit
/// [`RecordLayout`]; everything [`Sender<T>`](crate::Sender) documents (room, no
/// receivers, dead receivers, eviction, dropping) holds here too, with
/// [`RawError::Length`] for a buffer that does not fit. The send errors carry `()`
/// (the caller still has its bytes) or, for the batch sends, how many records went
/// out.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{raw::{self, RecordLayout}, Overflow, Route, TrySendError};
///
/// # let name = format!("doc-raw-sender-{}", std::process::id());
/// let layout = RecordLayout::of::<u32>();
/// let builder = raw::route(&name, layout).capacity(2).overflow(Overflow::Block);
/// let mut tx = builder.sender()?;
/// let mut rx = Route::<u32>::builder(&name).capacity(2).overflow(Overflow::Block).receiver()?;
/// tx.send_bytes(&7u32.to_ne_bytes())?;
/// assert_eq!(tx.try_send_many_bytes(bytemuck::bytes_of(&[8u32, 9]))?, 1); // room for one
/// assert_eq!(tx.try_send_bytes(&9u32.to_ne_bytes()), Err(TrySendError::Full(()).into()));
/// assert!(tx.send_bytes(&[0u8; 3]).is_err_and(|e| e.is_length()));
/// assert_eq!((rx.recv()?, rx.recv()?), (7, 8));
/// # drop((tx, rx)); Route::<u32>::remove(&name)?;
/// # Ok(()) }
/// ```
pub struct RawSender {
    segment: Segment,
    producer: Producer,
    wait: Wait,
    layout: RecordLayout,
    /// The owner word of the process that opened this sender.
    owner: u64,
    /// Last time a full `try_send` checked the liveness of the receivers.
    last_liveness: Option<Instant>,
}

impl std::fmt::Debug for RawSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSender")
            .field("path", &self.segment.path())
            .field("layout", &self.layout)
            .field("producer", &self.producer)
            .field("wait", &self.wait)
            .finish()
    }
}

impl RawSender {
    pub(crate) fn attach(
        segment: Segment,
        family: Family,
        wait: Wait,
        layout: RecordLayout,
    ) -> Result<Self, OpenError> {
        let owner = process::current_owner();
        let view = segment.view();
        let producer = match family {
            Family::Route => {
                Producer::attach_route(view, owner, &ProcLiveness).map_err(|holder| {
                    OpenError::SenderExists {
                        path: segment.path().to_owned(),
                        pid: process::owner_pid(holder),
                    }
                })?
            }
            Family::Channel => {
                Producer::join_channel(view, owner, &ProcLiveness).ok_or_else(|| {
                    OpenError::ProducersFull {
                        path: segment.path().to_owned(),
                        max: view.producers.len(),
                    }
                })?
            }
        };
        Ok(RawSender {
            segment,
            producer,
            wait,
            layout,
            owner,
            last_liveness: None,
        })
    }

    /// The futex pair this sender sleeps on while a lossless ring is full, registered
    /// through its claim or table entry: the async send (`asynk/`) parks through the
    /// same protocol as `send` (`wait.rs`).
    #[cfg(feature = "async")]
    pub(crate) fn space_parker(&self) -> crate::wait::Parker<'_> {
        let view = self.segment.view();
        view.space_parker()
            .registered(self.producer.parked(view), crate::layout::PARKED_SPACE)
    }

    /// The layout of this segment's records.
    pub fn layout(&self) -> &RecordLayout {
        &self.layout
    }

    /// Sends one record (`bytes`: exactly one record's bytes), waiting while a lossless
    /// ring is full. As [`Sender::send`](crate::Sender::send).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError<SendError<()>>> {
        self.check_one(bytes.len())?;
        self.send_record(bytes)
            .map_err(|_| RawError::Channel(SendError::Evicted(())))
    }

    /// Sends one record if there is room now. As [`Sender::try_send`](crate::Sender::try_send).
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError<TrySendError<()>>> {
        self.check_one(bytes.len())?;
        self.try_send_record(bytes).map_err(|fail| {
            RawError::Channel(match fail {
                SendFail::Full => TrySendError::Full(()),
                SendFail::Evicted => TrySendError::Evicted(()),
            })
        })
    }

    /// Sends one record, waiting at most `timeout` for room.
    pub fn send_bytes_timeout(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), RawError<SendTimeoutError<()>>> {
        self.check_one(bytes.len())?;
        self.send_record_deadline(bytes, Some(Instant::now() + timeout))
            .map_err(|fail| {
                RawError::Channel(match fail {
                    SendFail::Full => SendTimeoutError::Timeout(()),
                    SendFail::Evicted => SendTimeoutError::Evicted(()),
                })
            })
    }

    /// Sends every record of `bytes` (a whole number of records), in order, waiting
    /// for room in lossless modes; returns how many records. As
    /// [`Sender::send_many`](crate::Sender::send_many).
    pub fn send_many_bytes(&mut self, bytes: &[u8]) -> Result<usize, RawError<SendError<usize>>> {
        let records = self.packed(bytes)?;
        self.send_many_records(&records).map_err(RawError::Channel)
    }

    /// Sends as many records of `bytes` as there is room for now; returns how many. As
    /// [`Sender::try_send_many`](crate::Sender::try_send_many).
    pub fn try_send_many_bytes(
        &mut self,
        bytes: &[u8],
    ) -> Result<usize, RawError<SendError<usize>>> {
        let records = self.packed(bytes)?;
        self.try_send_many_records(&records)
            .map_err(RawError::Channel)
    }

    /// Like [`RawSender::send_many_bytes`], giving up after `timeout`
    /// ([`SendTimeoutError::Timeout`] carries how many records were sent by then).
    pub fn send_many_bytes_timeout(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<usize, RawError<SendTimeoutError<usize>>> {
        let records = self.packed(bytes)?;
        self.send_many_records_timeout(&records, timeout)
            .map_err(RawError::Channel)
    }

    /// Publishes a *gap*: `missing` records that this sender never had (its source lost
    /// them), at this point of the sequence. Every receiver that reaches it gets
    /// [`RecvError::Lagged(missing)`](crate::RecvError::Lagged) once (in unicast, the
    /// one receiver that takes it), counted in its `lagged_total`, and then the next
    /// record; lossless receivers too, which otherwise never lag. An `Overwrite`
    /// receiver lapped over the marker counts its `missing` records in that lap's
    /// `Lagged`, not one slot. The marker takes one slot and waits for room like a
    /// record. `missing == 0` publishes nothing.
    ///
    /// This is how a mirror of a remote segment (a bridge) keeps the promise that a
    /// reader either gets every record or learns how many it missed.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{raw::{self, RecordLayout}, Overflow, RecvError, Route};
    ///
    /// # let name = format!("doc-gap-{}", std::process::id());
    /// let mut tx = raw::route(&name, RecordLayout::of::<u64>()).overflow(Overflow::Block).sender()?;
    /// let mut rx = Route::<u64>::builder(&name).overflow(Overflow::Block).receiver()?;
    /// tx.send_bytes(&1u64.to_ne_bytes())?;
    /// tx.publish_gap(5)?; // records 2 to 6 were lost upstream
    /// tx.send_bytes(&7u64.to_ne_bytes())?;
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert_eq!(rx.recv(), Err(RecvError::Lagged(5)));
    /// assert_eq!(rx.recv(), Ok(7));
    /// assert_eq!(rx.lagged_total(), 5);
    /// # drop((tx, rx)); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn publish_gap(&mut self, missing: u64) -> Result<(), SendError<()>> {
        if missing == 0 {
            return Ok(());
        }
        self.send_record(&GapMarker::new(missing))
            .map_err(|_| SendError::Evicted(()))
    }

    /// [`RawSender::publish_gap`] if there is room now.
    pub fn try_publish_gap(&mut self, missing: u64) -> Result<(), TrySendError<()>> {
        if missing == 0 {
            return Ok(());
        }
        self.try_send_record(&GapMarker::new(missing))
            .map_err(|fail| match fail {
                SendFail::Full => TrySendError::Full(()),
                SendFail::Evicted => TrySendError::Evicted(()),
            })
    }

    /// [`RawSender::publish_gap`], waiting at most `timeout` for room.
    pub fn publish_gap_timeout(
        &mut self,
        missing: u64,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<()>> {
        if missing == 0 {
            return Ok(());
        }
        self.send_record_deadline(&GapMarker::new(missing), Some(Instant::now() + timeout))
            .map_err(|fail| match fail {
                SendFail::Full => SendTimeoutError::Timeout(()),
                SendFail::Evicted => SendTimeoutError::Evicted(()),
            })
    }

    fn check_one<E>(&self, len: usize) -> Result<(), RawError<E>> {
        if len == self.layout.size() {
            Ok(())
        } else {
            Err(RawError::Length {
                len,
                record_size: self.layout.size(),
                whole: false,
            })
        }
    }

    fn packed<'b, E>(&self, bytes: &'b [u8]) -> Result<Packed<&'b [u8]>, RawError<E>> {
        Packed::new(bytes, self.layout.size()).ok_or(RawError::Length {
            len: bytes.len(),
            record_size: self.layout.size(),
            whole: true,
        })
    }

    /// Number of receivers attached, after evicting those whose process died. Reads
    /// `/proc` for each: not for the hot path.
    pub fn receiver_count(&self) -> usize {
        table::live_receivers(self.segment.view(), &ProcLiveness)
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
        self.producer.next_seq(self.segment.view())
    }

    // The one implementation of sending, generic over the record buffer: the typed
    // `Sender<T>` calls these with `T` (a size known at compile time), the methods
    // above with byte buffers of the segment's record size.

    /// Whether this sender still holds its role.
    pub(crate) fn holds_role(&self) -> bool {
        self.producer.holds_role(self.segment.view())
    }

    /// Sends a record, waiting while a lossless ring is full. An error means this
    /// sender lost its role (the only way a send without deadline ends unsent).
    #[inline]
    pub(crate) fn send_record<R: Record + ?Sized>(&mut self, value: &R) -> Result<(), SendFail> {
        let view = self.segment.view();
        if send::send_now(&mut self.producer, view, value, &ProcLiveness) {
            return Ok(());
        }
        self.send_slow(value)
    }

    #[inline(never)]
    fn send_slow<R: Record + ?Sized>(&mut self, value: &R) -> Result<(), SendFail> {
        // No deadline: only eviction ends the wait.
        self.send_record_deadline(value, None)
    }

    /// Sends a record if there is room now, looking at the liveness of whoever holds
    /// the ring back at most once a tick.
    pub(crate) fn try_send_record<R: Record + ?Sized>(
        &mut self,
        value: &R,
    ) -> Result<(), SendFail> {
        let view = self.segment.view();
        // Dead receivers (or a dead writer holding a slot) may be what holds us back.
        // Look at most once a tick: the check reads /proc.
        let now = Instant::now();
        let check = self
            .last_liveness
            .is_none_or(|t| now.duration_since(t) >= IDLE_TICK);
        match send::try_send(&mut self.producer, view, value, &ProcLiveness, false) {
            Err(SendFail::Full) if check => {
                self.last_liveness = Some(now);
                send::try_send(&mut self.producer, view, value, &ProcLiveness, true)
            }
            result => result,
        }
    }

    /// Sends a record, waiting until `deadline` (`None`: for ever) for room.
    pub(crate) fn send_record_deadline<R: Record + ?Sized>(
        &mut self,
        value: &R,
        deadline: Option<Instant>,
    ) -> Result<(), SendFail> {
        let view = self.segment.view();
        send::send(
            &mut self.producer,
            view,
            value,
            self.wait,
            deadline,
            &ProcLiveness,
        )
    }

    /// Sends all of `records`, waiting for room.
    pub(crate) fn send_many_records<R: Records + ?Sized>(
        &mut self,
        records: &R,
    ) -> Result<usize, SendError<usize>> {
        match self.send_many_deadline(records, None) {
            Ok(n) => Ok(n),
            // No deadline: only eviction ends the wait.
            Err((n, _)) => Err(SendError::Evicted(n)),
        }
    }

    /// Sends all of `records`, waiting at most `timeout` for room.
    pub(crate) fn send_many_records_timeout<R: Records + ?Sized>(
        &mut self,
        records: &R,
        timeout: Duration,
    ) -> Result<usize, SendTimeoutError<usize>> {
        match self.send_many_deadline(records, Some(Instant::now() + timeout)) {
            Ok(n) => Ok(n),
            Err((n, SendFail::Full)) => Err(SendTimeoutError::Timeout(n)),
            Err((n, SendFail::Evicted)) => Err(SendTimeoutError::Evicted(n)),
        }
    }

    fn send_many_deadline<R: Records + ?Sized>(
        &mut self,
        records: &R,
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, SendFail)> {
        let view = self.segment.view();
        send::send_many(
            &mut self.producer,
            view,
            records,
            self.wait,
            deadline,
            &ProcLiveness,
        )
    }

    /// Sends as many of `records` as there is room for now.
    pub(crate) fn try_send_many_records<R: Records + ?Sized>(
        &mut self,
        records: &R,
    ) -> Result<usize, SendError<usize>> {
        let view = self.segment.view();
        let first = send::try_send_many(&mut self.producer, view, records, &ProcLiveness, false)
            .map_err(|(n, _)| SendError::Evicted(n))?;
        if first == records.count() {
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
        let rest = Skip(records, first);
        match send::try_send_many(&mut self.producer, view, &rest, &ProcLiveness, true) {
            Ok(n) => Ok(first + n),
            Err((n, _)) => Err(SendError::Evicted(first + n)),
        }
    }
}

/// The records of `.0` from index `.1` on.
struct Skip<'r, R: ?Sized>(&'r R, usize);

impl<R: Records + ?Sized> Records for Skip<'_, R> {
    fn count(&self) -> usize {
        self.0.count() - self.1
    }

    fn record(&self, i: usize) -> &[u8] {
        self.0.record(self.1 + i)
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        // A copy in a forked child belongs to the parent, which still uses it.
        if process::is_current_process(self.owner) {
            self.producer.leave(self.segment.view());
        }
    }
}
