//! [`RawSender`]: the sending half, over records as bytes. The typed
//! [`Sender<T>`](crate::Sender) wraps it; both drive `ring::producer::Producer` and the
//! send loops of `ring/send.rs` on a mapped segment.

use std::time::{Duration, Instant};

use super::error::RawError;
use super::layout::RecordLayout;
use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::options::{Family, Mode, Overflow};
use crate::process::{self, Opener, ProcLiveness};
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
    /// The process that opened this sender, the only one it acts for.
    opener: Opener,
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
        let opener = Opener::current();
        let owner = opener.word();
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
            opener,
            last_liveness: None,
        })
    }

    /// The futex pair this sender sleeps on, registered through its claim or table
    /// entry: `data` if `on_data` (a lap-older writer holds the slot of its pending
    /// claim, and that writer's commit wakes `data`), else `space` (a lossless ring is
    /// full). The async send (`asynk/`) parks through the same protocol as `send`
    /// (`wait.rs`), on the pair `send` would wait on ([`RawSender::awaits_writer`]).
    #[cfg(feature = "async")]
    pub(crate) fn parker(&self, on_data: bool) -> crate::wait::Parker<'_> {
        let view = self.segment.view();
        let parked = self.producer.parked(view);
        if on_data {
            view.data_parker()
                .registered(parked, crate::layout::PARKED_DATA)
        } else {
            view.space_parker()
                .registered(parked, crate::layout::PARKED_SPACE)
        }
    }

    /// Whether a send that found no room waits for a lap-older writer (on `data`)
    /// rather than for room (on `space`): see [`RawSender::parker`].
    #[cfg(feature = "async")]
    pub(crate) fn awaits_writer(&self) -> bool {
        self.producer.awaits_writer(self.segment.view())
    }

    /// The layout of this segment's records.
    pub fn layout(&self) -> &RecordLayout {
        &self.layout
    }

    /// Number of slots in the ring: the segment's, whether this sender set it, adopted
    /// it or created the segment with the default (see [`Builder`](crate::Builder)).
    pub fn capacity(&self) -> usize {
        self.segment.capacity()
    }

    /// Broadcast or unicast: the segment's (see [`Builder`](crate::Builder)).
    pub fn mode(&self) -> Mode {
        self.segment.mode()
    }

    /// What a full ring does: the segment's (see [`Builder`](crate::Builder));
    /// [`Overflow::Block`] for every unicast segment.
    pub fn overflow(&self) -> Overflow {
        self.segment.overflow()
    }

    /// Size of the segment's receiver table (see [`Builder`](crate::Builder)).
    pub fn max_receivers(&self) -> usize {
        self.segment.max_receivers()
    }

    /// Sends one record (`bytes`: exactly one record's bytes), waiting while a lossless
    /// ring is full. As [`Sender::send`](crate::Sender::send).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError<SendError<()>>> {
        self.check_one(bytes.len())?;
        self.send_record(bytes)
            .map_err(|fail| RawError::Channel(send_error(fail, ())))
    }

    /// Sends one record if there is room now. As [`Sender::try_send`](crate::Sender::try_send).
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<(), RawError<TrySendError<()>>> {
        self.check_one(bytes.len())?;
        self.try_send_record(bytes)
            .map_err(|fail| RawError::Channel(try_send_error(fail, ())))
    }

    /// Sends one record, waiting at most `timeout` for room.
    pub fn send_bytes_timeout(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), RawError<SendTimeoutError<()>>> {
        self.check_one(bytes.len())?;
        self.send_record_deadline(bytes, Some(Instant::now() + timeout))
            .map_err(|fail| RawError::Channel(send_timeout_error(fail, ())))
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
            .map_err(|fail| send_error(fail, ()))
    }

    /// [`RawSender::publish_gap`] if there is room now.
    pub fn try_publish_gap(&mut self, missing: u64) -> Result<(), TrySendError<()>> {
        if missing == 0 {
            return Ok(());
        }
        self.try_send_record(&GapMarker::new(missing))
            .map_err(|fail| try_send_error(fail, ()))
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
            .map_err(|fail| send_timeout_error(fail, ()))
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

    /// Whether this sender can send: it is used in the process that opened it, and
    /// still holds its role (`Err`: why not).
    pub(crate) fn check_role(&self) -> Result<(), SendFail> {
        if !self.opener.is_here() {
            Err(SendFail::Forked)
        } else if !self.producer.holds_role(self.segment.view()) {
            Err(SendFail::Evicted)
        } else {
            Ok(())
        }
    }

    /// Sends a record, waiting while a lossless ring is full. An error means this
    /// sender lost its role or is used in a forked child (the only ways a send without
    /// deadline ends unsent).
    ///
    /// Every entry point of a send checks [`Opener::is_here`] before it touches the
    /// ring: a copy of this sender in a forked child would otherwise act with its
    /// parent's claim. Here the fast path is taken only after the check, and the
    /// refusal is left to the slow path, which checks again. Inlined always: the check
    /// tipped the compiler's choice to a call, which cost ~20 instructions a record.
    #[inline(always)]
    pub(crate) fn send_record<R: Record + ?Sized>(&mut self, value: &R) -> Result<(), SendFail> {
        if self.opener.is_here() {
            let view = self.segment.view();
            if send::send_now(&mut self.producer, view, value, &ProcLiveness) {
                return Ok(());
            }
        }
        self.send_slow(value)
    }

    #[inline(never)]
    fn send_slow<R: Record + ?Sized>(&mut self, value: &R) -> Result<(), SendFail> {
        // No deadline: only eviction (or a fork) ends the wait.
        self.send_record_deadline(value, None)
    }

    /// Sends a record if there is room now, looking at the liveness of whoever holds
    /// the ring back at most once a tick.
    pub(crate) fn try_send_record<R: Record + ?Sized>(
        &mut self,
        value: &R,
    ) -> Result<(), SendFail> {
        if !self.opener.is_here() {
            return Err(SendFail::Forked);
        }
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
        if !self.opener.is_here() {
            return Err(SendFail::Forked);
        }
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
        // No deadline: only eviction (or a fork) ends the wait.
        self.send_many_deadline(records, None)
            .map_err(|(n, fail)| send_error(fail, n))
    }

    /// Sends all of `records`, waiting at most `timeout` for room.
    pub(crate) fn send_many_records_timeout<R: Records + ?Sized>(
        &mut self,
        records: &R,
        timeout: Duration,
    ) -> Result<usize, SendTimeoutError<usize>> {
        self.send_many_deadline(records, Some(Instant::now() + timeout))
            .map_err(|(n, fail)| send_timeout_error(fail, n))
    }

    fn send_many_deadline<R: Records + ?Sized>(
        &mut self,
        records: &R,
        deadline: Option<Instant>,
    ) -> Result<usize, (usize, SendFail)> {
        if !self.opener.is_here() {
            return Err((0, SendFail::Forked));
        }
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
        if !self.opener.is_here() {
            return Err(SendError::Forked(0));
        }
        let view = self.segment.view();
        let first = send::try_send_many(&mut self.producer, view, records, &ProcLiveness, false)
            .map_err(|(n, fail)| send_error(fail, n))?;
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
            Err((n, fail)) => Err(send_error(fail, first + n)),
        }
    }
}

/// What the unit tests need to stage a producer stopped mid-write (`asynk/send.rs`).
#[cfg(test)]
impl RawSender {
    /// Claims the next record and makes its slot ours without writing it, as a
    /// producer preempted between its begin and its commit leaves it. `false` if
    /// there was no room or the slot was not ours.
    pub(crate) fn begin_unfinished(&mut self) -> bool {
        let view = self.segment.view();
        self.producer.try_claim(view)
            && self.producer.begin(view, &ProcLiveness, false) == crate::ring::producer::Begin::Ours
    }

    /// Writes `bytes` into the slot [`RawSender::begin_unfinished`] made ours and
    /// publishes it (waking sleepers as `send` does). `false` if the claim was voided.
    pub(crate) fn finish_unfinished(&mut self, bytes: &[u8]) -> bool {
        let view = self.segment.view();
        self.producer.write(view, bytes);
        self.producer.commit(view, false)
    }

    /// The segment's `data` futex word (bumped by each wake of receivers).
    pub(crate) fn data_seq(&self) -> u32 {
        self.segment
            .view()
            .ctl
            .data
            .seq
            .load(crate::sync::Ordering::Relaxed)
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

/// The error of a send that gave up for `fail` (without a deadline: never `Full`),
/// carrying `value` back.
pub(crate) fn send_error<T>(fail: SendFail, value: T) -> SendError<T> {
    match fail {
        SendFail::Forked => SendError::Forked(value),
        SendFail::Full | SendFail::Evicted => SendError::Evicted(value),
    }
}

/// The error of a `try_send` that gave up for `fail`, carrying `value` back.
pub(crate) fn try_send_error<T>(fail: SendFail, value: T) -> TrySendError<T> {
    match fail {
        SendFail::Full => TrySendError::Full(value),
        SendFail::Evicted => TrySendError::Evicted(value),
        SendFail::Forked => TrySendError::Forked(value),
    }
}

/// The error of a send with a deadline that gave up for `fail`, carrying `value` back.
pub(crate) fn send_timeout_error<T>(fail: SendFail, value: T) -> SendTimeoutError<T> {
    match fail {
        SendFail::Full => SendTimeoutError::Timeout(value),
        SendFail::Evicted => SendTimeoutError::Evicted(value),
        SendFail::Forked => SendTimeoutError::Forked(value),
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        // A copy in a forked child belongs to the parent, which still uses it.
        if self.opener.is_here_for_sure() {
            self.producer.leave(self.segment.view());
        }
    }
}
