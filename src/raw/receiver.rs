//! [`RawReceiver`]: the receiving half, over records as bytes. The typed
//! [`Receiver<T>`](crate::Receiver) wraps it; both drive `ring::reader::Reader` and the
//! receive loop of `ring/recv.rs` on a mapped segment.

use std::time::{Duration, Instant};

use super::error::RawError;
use super::layout::RecordLayout;
use crate::error::{OpenError, RecvError, RecvTimeoutError, TryRecvError};
use crate::options::{Mode, Overflow};
use crate::process::{Opener, ProcLiveness};
use crate::ring::reader::Reader;
use crate::ring::record::{Packed, Record, RecordsMut};
use crate::ring::recv::{self, RecvState};
use crate::segment::Segment;
use crate::wait::Wait;

/// How many empty `try_recv` calls between two liveness checks of the senders (a
/// liveness check reads `/proc`; an empty poll must stay cheap).
const EMPTY_POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// The receiving half of a segment, with records as bytes. Opened with
/// [`raw::route`](super::route) or [`raw::channel`](super::channel) and an explicit
/// [`RecordLayout`]; everything [`Receiver<T>`](crate::Receiver) documents (where it
/// starts, lagging, disconnection, eviction, dropping) holds here too, with
/// [`RawError::Length`] for a buffer that does not fit.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{raw::{self, RecordLayout}, Overflow, RecvError};
///
/// # let name = format!("doc-raw-receiver-{}", std::process::id());
/// let layout = RecordLayout::new(3, 1, "Rgb")?;
/// let builder = raw::route(&name, layout).capacity(4).overflow(Overflow::Block);
/// let mut tx = builder.clone().sender()?;
/// let mut rx = builder.receiver()?;
/// tx.send_many_bytes(b"abcdef")?;
/// let mut one = [0u8; 3];
/// rx.recv_into(&mut one)?;
/// assert_eq!(&one, b"abc");
/// assert!(rx.recv_into(&mut [0u8; 4]).is_err_and(|e| e.is_length()));
/// rx.recv_into(&mut one)?;
/// assert_eq!(&one, b"def");
/// drop(tx);
/// assert_eq!(rx.recv_into(&mut one), Err(RecvError::Disconnected.into()));
/// # drop(rx); shmchan::Route::<[u8; 3]>::remove(&name)?;
/// # Ok(()) }
/// ```
pub struct RawReceiver {
    segment: Segment,
    /// `None` only during drop.
    reader: Option<Reader>,
    state: RecvState,
    wait: Wait,
    layout: RecordLayout,
    /// The process that opened this receiver, the only one it acts for.
    opener: Opener,
    empty_polls: u32,
    lagged_total: u64,
}

impl std::fmt::Debug for RawReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawReceiver")
            .field("path", &self.segment.path())
            .field("layout", &self.layout)
            .field("reader", &self.reader)
            .field("wait", &self.wait)
            .finish()
    }
}

impl RawReceiver {
    pub(crate) fn attach(
        segment: Segment,
        wait: Wait,
        layout: RecordLayout,
    ) -> Result<Self, OpenError> {
        let view = segment.view();
        let state = RecvState::before_join(view);
        let opener = Opener::current();
        let reader = Reader::join(view, opener.word(), &ProcLiveness).ok_or_else(|| {
            OpenError::ReceiversFull {
                path: segment.path().to_owned(),
                max: view.receivers.len(),
            }
        })?;
        Ok(RawReceiver {
            segment,
            reader: Some(reader),
            state,
            wait,
            layout,
            opener,
            empty_polls: 0,
            lagged_total: 0,
        })
    }

    /// The futex pair this receiver sleeps on while the ring is empty, registered
    /// through its table entry: the async receive (`asynk/`) parks through the same
    /// protocol as `recv` (`wait.rs`).
    #[cfg(feature = "async")]
    pub(crate) fn data_parker(&self) -> crate::wait::Parker<'_> {
        let view = self.segment.view();
        let reader = self
            .reader
            .as_ref()
            .expect("the reader is present until drop");
        view.data_parker()
            .registered(reader.parked(view), crate::layout::PARKED_DATA)
    }

    /// Makes the next empty `try_recv` or `try_recv_many` run the liveness checks of a
    /// blocking receive's idle tick (the async receive asks for them once a tick).
    #[cfg(feature = "async")]
    pub(crate) fn check_liveness_next(&mut self) {
        self.empty_polls = EMPTY_POLLS_PER_LIVENESS_CHECK - 1;
    }

    /// The layout of this segment's records.
    pub fn layout(&self) -> &RecordLayout {
        &self.layout
    }

    /// Number of slots in the ring: the segment's, whether this receiver set it, adopted
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

    /// Receives the next record into `buf` (exactly one record's bytes), waiting for it
    /// per the [`Wait`] strategy. Errors as [`Receiver::recv`](crate::Receiver::recv).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(), RawError<RecvError>> {
        self.check_one(buf.len())?;
        self.recv_record(buf).map_err(RawError::Channel)
    }

    /// Like [`RawReceiver::recv_into`], giving up with [`RecvTimeoutError::Timeout`]
    /// after `timeout`.
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(), RawError<RecvTimeoutError>> {
        self.check_one(buf.len())?;
        self.recv_record_deadline(buf, Some(Instant::now() + timeout))
            .map_err(RawError::Channel)
    }

    /// Receives the next record into `buf` if one is there now.
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(), RawError<TryRecvError>> {
        self.check_one(buf.len())?;
        self.try_recv_record(buf).map_err(RawError::Channel)
    }

    /// Receives at least one record into the front of `buf` (a whole number of
    /// records), waiting for it, with every further record ready now that fits;
    /// returns how many records. As [`Receiver::recv_many`](crate::Receiver::recv_many).
    pub fn recv_many_into(&mut self, buf: &mut [u8]) -> Result<usize, RawError<RecvError>> {
        let mut out = self.packed(buf)?;
        self.recv_many_records(&mut out).map_err(RawError::Channel)
    }

    /// Like [`RawReceiver::recv_many_into`], giving up after `timeout` if no record
    /// came.
    pub fn recv_many_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RawError<RecvTimeoutError>> {
        let mut out = self.packed(buf)?;
        self.recv_many_records_deadline(&mut out, Some(Instant::now() + timeout))
            .map_err(RawError::Channel)
    }

    /// Copies the records that are there now into the front of `buf` (a whole number
    /// of records) and returns how many: at least one, or [`TryRecvError::Empty`].
    pub fn try_recv_many_into(&mut self, buf: &mut [u8]) -> Result<usize, RawError<TryRecvError>> {
        let mut out = self.packed(buf)?;
        self.try_recv_many_records(&mut out)
            .map_err(RawError::Channel)
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

    fn packed<'b, E>(&self, buf: &'b mut [u8]) -> Result<Packed<&'b mut [u8]>, RawError<E>> {
        let len = buf.len();
        Packed::new(buf, self.layout.size()).ok_or(RawError::Length {
            len,
            record_size: self.layout.size(),
            whole: true,
        })
    }

    /// Total records this receiver skipped because it lagged.
    pub fn lagged_total(&self) -> u64 {
        self.lagged_total
    }

    /// Broadcast: sequence number of the next record this receiver will read.
    /// Unicast: of the next record any receiver will take.
    pub fn next_seq(&self) -> u64 {
        let view = self.segment.view();
        self.reader.as_ref().map_or(0, |r| r.waiting_on(view))
    }

    // The one implementation of receiving, generic over the record buffer: the typed
    // `Receiver<T>` calls these with `T` (a size known at compile time), the methods
    // above with byte buffers of the segment's record size.

    /// [`RawReceiver::recv_into`] for a buffer of the right size.
    ///
    /// Every entry point of a receive checks [`Opener::is_here`] before it touches the
    /// ring: a copy of this receiver in a forked child would otherwise move its
    /// parent's cursor, or take records in its parent's name. Here the fast path is
    /// taken only after the check, and the refusal is left to the slow path, which
    /// checks again (so the inlined part stays small).
    #[inline(always)]
    pub(crate) fn recv_record<R: Record + ?Sized>(&mut self, dst: &mut R) -> Result<(), RecvError> {
        if self.opener.is_here() && self.read_fast(dst) {
            return Ok(());
        }
        self.recv_slow(dst, None).map_err(without_deadline)
    }

    /// [`RawReceiver::try_recv_into`] for a buffer of the right size.
    #[inline(always)]
    pub(crate) fn try_recv_record<R: Record + ?Sized>(
        &mut self,
        dst: &mut R,
    ) -> Result<(), TryRecvError> {
        if self.opener.is_here() && self.read_fast(dst) {
            return Ok(());
        }
        self.try_recv_slow(dst)
    }

    /// The common case of every receive, inlined: the next record is there.
    #[inline(always)]
    fn read_fast<R: Record + ?Sized>(&mut self, dst: &mut R) -> bool {
        let view = self.segment.view();
        match self.reader.as_mut() {
            Some(reader) => reader.read_fast(view, dst),
            None => false,
        }
    }

    fn count_lag<T, E: LagOf>(&mut self, result: Result<T, E>) -> Result<T, E> {
        if let Err(e) = &result {
            if let Some(n) = e.lag() {
                self.lagged_total = self.lagged_total.saturating_add(n);
            }
        }
        result
    }

    #[inline(never)]
    fn try_recv_slow<R: Record + ?Sized>(&mut self, dst: &mut R) -> Result<(), TryRecvError> {
        if !self.opener.is_here() {
            return Err(TryRecvError::Forked);
        }
        self.empty_polls = self.empty_polls.wrapping_add(1);
        let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
        let view = self.segment.view();
        let result = recv::poll_into(
            view,
            present(&mut self.reader),
            &mut self.state,
            check_liveness,
            &ProcLiveness,
            dst,
        );
        self.count_lag(result)
    }

    /// The blocking receive of one record, until `deadline` (`None`: for ever).
    pub(crate) fn recv_record_deadline<R: Record + ?Sized>(
        &mut self,
        dst: &mut R,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        if self.opener.is_here() && self.read_fast(dst) {
            return Ok(());
        }
        self.recv_slow(dst, deadline)
    }

    #[inline(never)]
    fn recv_slow<R: Record + ?Sized>(
        &mut self,
        dst: &mut R,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        if !self.opener.is_here() {
            return Err(RecvTimeoutError::Forked);
        }
        let view = self.segment.view();
        let result = recv::recv_into(
            view,
            present(&mut self.reader),
            &mut self.state,
            self.wait,
            deadline,
            &ProcLiveness,
            dst,
        );
        self.count_lag(result)
    }

    /// Whether this segment is lossless (`Overflow::Block` broadcast, or unicast): only
    /// then can a record be held in place.
    pub(crate) fn lossless(&self) -> bool {
        self.segment.view().lossless
    }

    /// Lossless only: holds the next record in place (`ring/broadcast.rs`, "Reading in
    /// place"), waiting for it until `deadline` (`None`: for ever); its sequence
    /// number. The caller reads it at [`RawReceiver::record_ptr`] (or, if it is held
    /// as a copy, in [`RawReceiver::held_copy`]) and lets go with
    /// [`RawReceiver::release`].
    #[inline]
    pub(crate) fn hold(&mut self, deadline: Option<Instant>) -> Result<u64, RecvTimeoutError> {
        if !self.opener.is_here() {
            return Err(RecvTimeoutError::Forked);
        }
        let view = self.segment.view();
        if let Some(seq) = present(&mut self.reader).hold_fast(view) {
            return Ok(seq);
        }
        let result = recv::recv_hold(
            view,
            present(&mut self.reader),
            &mut self.state,
            self.wait,
            deadline,
            &ProcLiveness,
        );
        self.count_lag(result)
    }

    /// Lossless only: [`RawReceiver::hold`] if a record is there now.
    #[inline]
    pub(crate) fn try_hold(&mut self) -> Result<u64, TryRecvError> {
        if !self.opener.is_here() {
            return Err(TryRecvError::Forked);
        }
        let view = self.segment.view();
        if let Some(seq) = present(&mut self.reader).hold_fast(view) {
            return Ok(seq);
        }
        self.empty_polls = self.empty_polls.wrapping_add(1);
        let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
        let result = recv::poll_hold(
            view,
            present(&mut self.reader),
            &mut self.state,
            check_liveness,
            &ProcLiveness,
        );
        self.count_lag(result)
    }

    /// The bytes of record `seq`, held by [`RawReceiver::hold`], if this receiver holds
    /// it as a copy rather than in place: a unicast record rescued from a receiver that
    /// died (`ring/unicast.rs`, "A receiver that dies holding a record"). Read these,
    /// not [`RawReceiver::record_ptr`], then.
    #[inline]
    pub(crate) fn held_copy(&self, seq: u64) -> Option<&[u8]> {
        let view = self.segment.view();
        self.reader.as_ref()?.held_copy(view, seq)
    }

    /// Where the data words of record `seq`'s slot start in this process's mapping
    /// (aligned to the record's alignment: `Geometry`), `geom.record_size` bytes.
    pub(crate) fn record_ptr(&self, seq: u64) -> *const u8 {
        let view = self.segment.view();
        view.slots[view.geom.data_range(seq)].as_ptr().cast()
    }

    /// Lets go of record `seq`, held by [`RawReceiver::hold`]. Nothing in a forked child:
    /// the hold is the parent's (a guard copied by `fork` and dropped there).
    #[inline]
    pub(crate) fn release(&mut self, seq: u64) {
        if !self.opener.is_here() {
            return;
        }
        let view = self.segment.view();
        present(&mut self.reader).release(view, seq);
    }

    /// The blocking batch receive.
    pub(crate) fn recv_many_records<R: RecordsMut + ?Sized>(
        &mut self,
        out: &mut R,
    ) -> Result<usize, RecvError> {
        self.recv_many_records_deadline(out, None)
            .map_err(without_deadline)
    }

    /// The blocking batch receive, until `deadline` (`None`: for ever).
    pub(crate) fn recv_many_records_deadline<R: RecordsMut + ?Sized>(
        &mut self,
        out: &mut R,
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        if !self.opener.is_here() {
            return Err(RecvTimeoutError::Forked);
        }
        let view = self.segment.view();
        let result = recv::recv_many(
            view,
            present(&mut self.reader),
            &mut self.state,
            self.wait,
            deadline,
            &ProcLiveness,
            out,
        );
        self.count_lag(result)
    }

    /// The non-blocking batch receive.
    pub(crate) fn try_recv_many_records<R: RecordsMut + ?Sized>(
        &mut self,
        out: &mut R,
    ) -> Result<usize, TryRecvError> {
        if !self.opener.is_here() {
            return Err(TryRecvError::Forked);
        }
        if out.count() == 0 {
            return Ok(0);
        }
        let view = self.segment.view();
        let mut result = match present(&mut self.reader).read_many(view, out) {
            Some(result) => result,
            None => Err(TryRecvError::Empty),
        };
        if result == Err(TryRecvError::Empty) {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
            result = recv::poll_many(
                view,
                present(&mut self.reader),
                &mut self.state,
                check_liveness,
                &ProcLiveness,
                out,
            );
        }
        self.count_lag(result)
    }
}

/// The error of a receive without a deadline, from the error of the one with a
/// deadline that it is.
pub(crate) fn without_deadline(e: RecvTimeoutError) -> RecvError {
    match e {
        RecvTimeoutError::Lagged(n) => RecvError::Lagged(n),
        RecvTimeoutError::Evicted => RecvError::Evicted,
        RecvTimeoutError::Forked => RecvError::Forked,
        // No deadline: nothing else ends the wait.
        RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout => RecvError::Disconnected,
    }
}

/// The reader, which is there until drop.
fn present(reader: &mut Option<Reader>) -> &mut Reader {
    reader.as_mut().expect("the reader is present until drop")
}

/// The lag an error reports, for [`RawReceiver::lagged_total`].
trait LagOf {
    fn lag(&self) -> Option<u64>;
}

impl LagOf for RecvError {
    fn lag(&self) -> Option<u64> {
        match self {
            RecvError::Lagged(n) => Some(*n),
            _ => None,
        }
    }
}

impl LagOf for RecvTimeoutError {
    fn lag(&self) -> Option<u64> {
        match self {
            RecvTimeoutError::Lagged(n) => Some(*n),
            _ => None,
        }
    }
}

impl LagOf for TryRecvError {
    fn lag(&self) -> Option<u64> {
        match self {
            TryRecvError::Lagged(n) => Some(*n),
            _ => None,
        }
    }
}

impl Drop for RawReceiver {
    fn drop(&mut self) {
        // A copy in a forked child belongs to the parent, which still uses it.
        if !self.opener.is_here_for_sure() {
            return;
        }
        if let Some(reader) = self.reader.take() {
            reader.leave(self.segment.view());
        }
    }
}
