//! The receiving half: a thin handle over `ring::reader::Reader` and the receive loop
//! of `ring/recv.rs`, on a mapped segment.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, RecvError, RecvTimeoutError, TryRecvError};
use crate::process::{self, ProcLiveness};
use crate::ring::reader::Reader;
use crate::ring::recv::{self, RecvState};
use crate::segment::Segment;
use crate::wait::Wait;

/// How many empty `try_recv` calls between two liveness checks of the senders (a
/// liveness check reads `/proc`; an empty poll must stay cheap).
const EMPTY_POLLS_PER_LIVENESS_CHECK: u32 = 1 << 16;

/// The receiving half of a segment. Created by
/// [`Route::receiver`](crate::Route::receiver), [`Channel::receiver`](crate::Channel::receiver)
/// or a [`Builder`](crate::Builder).
///
/// # What the caller sees
///
/// * **Where it starts.** A new broadcast receiver starts at the newest position: it
///   sees the records published after it joined. A unicast receiver takes the oldest
///   record no other receiver has taken.
/// * **Lagging** (broadcast [`Overflow::Overwrite`](crate::Overflow::Overwrite) only).
///   A receiver that falls a whole ring behind gets [`RecvError::Lagged(n)`](RecvError::Lagged) once,
///   with `n` the number of records it missed, and the next receive returns the
///   oldest record still in the ring (as `tokio::sync::broadcast`). A torn or
///   overwritten record is never returned. In lossless modes a live receiver never
///   lags: the senders wait for it.
/// * **Disconnection.** When every sender has left or died, the receiver first drains
///   what they published, then gets [`RecvError::Disconnected`]; so does every later
///   call, until a new sender attaches. A receiver that joined before any sender
///   attached waits for one.
/// * **Eviction.** A receiver whose process was judged dead loses its entry; if it is
///   in fact alive (a peer scribbled over the segment) it gets
///   [`RecvError::Evicted`] and must open a new receiver.
/// * **Dropping** it frees its entry in the receiver table. A receiver copied into a
///   forked child belongs to the parent: the child's drop frees nothing.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{RecvError, Route, TryRecvError};
///
/// # let name = format!("doc-receiver-{}", std::process::id());
/// let builder = Route::<u32>::builder(&name).capacity(4); // Overflow::Overwrite
/// let mut tx = builder.clone().sender()?;
/// let mut rx = builder.receiver()?;
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// for i in 0..10 {
///     tx.send(i)?;
/// }
/// // Lapped: the 6 oldest records are gone, and we are told so once.
/// assert_eq!(rx.recv(), Err(RecvError::Lagged(6)));
/// assert_eq!(rx.recv()?, 6);
/// drop(tx);
/// let rest: Vec<u32> = rx.iter().collect(); // ends at the disconnection
/// assert_eq!(rest, [7, 8, 9]);
/// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
/// # drop(rx); Route::<u32>::remove(&name)?;
/// # Ok(()) }
/// ```
pub struct Receiver<T> {
    segment: Segment,
    /// `None` only during drop.
    reader: Option<Reader>,
    state: RecvState,
    wait: Wait,
    /// The owner word of the process that opened this receiver.
    owner: u64,
    empty_polls: u32,
    lagged_total: u64,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("path", &self.segment.path())
            .field("reader", &self.reader)
            .field("wait", &self.wait)
            .finish()
    }
}

impl<T: Pod> Receiver<T> {
    pub(crate) fn attach(segment: Segment, wait: Wait) -> Result<Self, OpenError> {
        let view = segment.view();
        let state = RecvState::before_join(&view);
        let owner = process::current_owner();
        let reader =
            Reader::join(&view, owner, &ProcLiveness).ok_or_else(|| OpenError::ReceiversFull {
                path: segment.path().to_owned(),
                max: view.receivers.len(),
            })?;
        Ok(Receiver {
            segment,
            reader: Some(reader),
            state,
            wait,
            owner,
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
        if let Some(value) = self.read_fast() {
            return Ok(value);
        }
        match self.recv_slow(None) {
            Ok(value) => Ok(value),
            Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(RecvTimeoutError::Evicted) => Err(RecvError::Evicted),
            // No deadline: nothing else ends the wait.
            Err(_) => Err(RecvError::Disconnected),
        }
    }

    /// Like [`Receiver::recv`], giving up with [`RecvTimeoutError::Timeout`] after
    /// `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        if let Some(value) = self.read_fast() {
            return Ok(value);
        }
        self.recv_slow(Some(Instant::now() + timeout))
    }

    /// Receives the next record if one is there now.
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.read_fast() {
            return Ok(value);
        }
        self.try_recv_slow()
    }

    /// The common case of every receive, inlined: the next record is there.
    #[inline(always)]
    fn read_fast(&mut self) -> Option<T> {
        let view = self.segment.view();
        self.reader.as_mut()?.read_fast::<T>(&view)
    }

    #[inline(never)]
    fn try_recv_slow(&mut self) -> Result<T, TryRecvError> {
        self.empty_polls = self.empty_polls.wrapping_add(1);
        let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
        let view = self.segment.view();
        let reader = self
            .reader
            .as_mut()
            .expect("the reader is present until drop");
        let result = recv::poll::<T>(
            &view,
            reader,
            &mut self.state,
            check_liveness,
            &ProcLiveness,
        );
        if let Err(TryRecvError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    #[inline(never)]
    fn recv_slow(&mut self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let view = self.segment.view();
        let reader = self
            .reader
            .as_mut()
            .expect("the reader is present until drop");
        let result = recv::recv::<T>(
            &view,
            reader,
            &mut self.state,
            self.wait,
            deadline,
            &ProcLiveness,
        );
        if let Err(RecvTimeoutError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    /// Receives at least one record into the front of `out`, waiting for it per the
    /// [`Wait`] strategy, together with every further record that is ready now, up to
    /// `out.len()`; returns how many. `Ok(0)` at once if `out` is empty.
    ///
    /// Broadcast receivers read the batch with one cursor store (a lossless sender
    /// sees the slots freed all at once); unicast receivers take the records one at a
    /// time, so each still goes to exactly one receiver. Errors are those of
    /// [`Receiver::recv`]: a lap met after some records ends the batch there, and the
    /// next call reports [`RecvError::Lagged`]; nothing is skipped silently.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-recv-many-{}", std::process::id());
    /// let builder = Route::<u32>::builder(&name).capacity(8).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// tx.send_many(&[1, 2, 3])?;
    /// let mut buf = [0u32; 16];
    /// let n = rx.recv_many(&mut buf)?;
    /// assert_eq!(&buf[..n], [1, 2, 3]);
    /// # drop((tx, rx)); Route::<u32>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn recv_many(&mut self, out: &mut [T]) -> Result<usize, RecvError> {
        match self.recv_many_deadline(out, None) {
            Ok(n) => Ok(n),
            Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(RecvTimeoutError::Evicted) => Err(RecvError::Evicted),
            // No deadline: nothing else ends the wait.
            Err(_) => Err(RecvError::Disconnected),
        }
    }

    /// Like [`Receiver::recv_many`], giving up with [`RecvTimeoutError::Timeout`]
    /// after `timeout` if no record came.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use shmchan::{Route, RecvTimeoutError};
    ///
    /// # let name = format!("doc-recv-many-timeout-{}", std::process::id());
    /// let builder = Route::<u64>::builder(&name);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// let mut buf = [0u64; 4];
    /// let timeout = Duration::from_millis(1);
    /// assert_eq!(rx.recv_many_timeout(&mut buf, timeout), Err(RecvTimeoutError::Timeout));
    /// tx.send(9)?;
    /// assert_eq!(rx.recv_many_timeout(&mut buf, timeout), Ok(1));
    /// assert_eq!(buf[0], 9);
    /// # drop((tx, rx)); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn recv_many_timeout(
        &mut self,
        out: &mut [T],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_many_deadline(out, Some(Instant::now() + timeout))
    }

    /// Copies the records that are there now into the front of `out`, up to
    /// `out.len()`, and returns how many: at least one, or
    /// [`TryRecvError::Empty`] if there is none (`Ok(0)` if `out` is empty). Lags and
    /// disconnection are reported as by [`Receiver::try_recv`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Route, TryRecvError};
    ///
    /// # let name = format!("doc-try-recv-many-{}", std::process::id());
    /// let builder = Route::<u16>::builder(&name).capacity(4); // Overflow::Overwrite
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// let mut buf = [0u16; 3];
    /// assert_eq!(rx.try_recv_many(&mut buf), Err(TryRecvError::Empty));
    /// tx.send_many(&[10, 11, 12, 13, 14, 15])?;
    /// // Lapped: the 2 oldest records are gone, and we are told so once.
    /// assert_eq!(rx.try_recv_many(&mut buf), Err(TryRecvError::Lagged(2)));
    /// assert_eq!(rx.try_recv_many(&mut buf), Ok(3));
    /// assert_eq!(buf, [12, 13, 14]);
    /// assert_eq!(rx.try_recv_many(&mut buf), Ok(1));
    /// assert_eq!(buf[0], 15);
    /// # drop((tx, rx)); Route::<u16>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn try_recv_many(&mut self, out: &mut [T]) -> Result<usize, TryRecvError> {
        if out.is_empty() {
            return Ok(0);
        }
        let view = self.segment.view();
        let reader = self
            .reader
            .as_mut()
            .expect("the reader is present until drop");
        let mut result = match reader.read_many::<T>(&view, out) {
            Some(result) => result,
            None => Err(TryRecvError::Empty),
        };
        if result == Err(TryRecvError::Empty) {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            let check_liveness = self.empty_polls % EMPTY_POLLS_PER_LIVENESS_CHECK == 0;
            result = recv::poll_many::<T>(
                &view,
                reader,
                &mut self.state,
                check_liveness,
                &ProcLiveness,
                out,
            );
        }
        if let Err(TryRecvError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    fn recv_many_deadline(
        &mut self,
        out: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        let view = self.segment.view();
        let reader = self
            .reader
            .as_mut()
            .expect("the reader is present until drop");
        let result = recv::recv_many::<T>(
            &view,
            reader,
            &mut self.state,
            self.wait,
            deadline,
            &ProcLiveness,
            out,
        );
        if let Err(RecvTimeoutError::Lagged(n)) = result {
            self.lagged_total = self.lagged_total.saturating_add(n);
        }
        result
    }

    /// A blocking iterator over records. It ends when the senders disconnect or this
    /// receiver is evicted. A lag (broadcast `Overwrite` only) does not end it: the
    /// records missed are counted in [`Receiver::lagged_total`], which the caller
    /// should check; use [`Receiver::recv`] to be told of each lag as it happens.
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// An iterator over the records available now. It ends when none is left (lag is
    /// treated as in [`Receiver::iter`]).
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
        let view = self.segment.view();
        self.reader.as_ref().map_or(0, |r| r.waiting_on(&view))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // A copy in a forked child belongs to the parent, which still uses it.
        if !process::is_current_process(self.owner) {
            return;
        }
        if let Some(reader) = self.reader.take() {
            reader.leave(&self.segment.view());
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
