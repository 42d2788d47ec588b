//! The typed receiving half: a thin wrapper over [`RawReceiver`] that views each `T`
//! as its bytes (one implementation for both, `raw/receiver.rs`).

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, RecvError, RecvTimeoutError, TryRecvError};
use crate::options::{Mode, Overflow};
use crate::raw::receiver::without_deadline;
use crate::raw::{RawReceiver, RecordLayout};
use crate::segment::Segment;
use crate::wait::Wait;

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
///   oldest record still in the ring (as `tokio::sync::broadcast`). (On a `Channel`,
///   `n` counts sequence numbers: a claim that a stalled producer lost to the
///   receivers, and then re-sent under a new number, holds no record, so under heavy
///   preemption `n` can exceed the records missed by such claims, seen at one or two
///   per million.) A torn or
///   overwritten record is never returned. In lossless modes a live receiver never
///   lags: the senders wait for it. The one exception, in every mode, is a *gap* its
///   sender published ([`RawSender::publish_gap`](crate::raw::RawSender::publish_gap):
///   records a bridge's source lost), reported as `Lagged(n)` at that point; a
///   receiver lapped over such a gap counts its `n` records in the `Lagged` of the lap,
///   so `n` is always in the sender's records, never in ring slots.
/// * **Disconnection.** When every sender has left or died, the receiver first drains
///   what they published, then gets [`RecvError::Disconnected`]; so does every later
///   call, until a new sender attaches. A receiver that joined before any sender
///   attached waits for one.
/// * **Eviction.** A receiver whose process was judged dead loses its entry; if it is
///   in fact alive (a peer scribbled over the segment) it gets
///   [`RecvError::Evicted`] and must open a new receiver.
/// * **Fork.** A receiver belongs to the process that opened it. A copy of it in a
///   child made by `fork` is refused by every receive there ([`RecvError::Forked`]:
///   nothing is taken, the parent's cursor and records are left alone; the iterators
///   end); open a new receiver in the child instead.
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
    raw: RawReceiver,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("raw", &self.raw).finish()
    }
}

impl<T: Pod> Receiver<T> {
    pub(crate) fn attach(
        segment: Segment,
        wait: Wait,
        layout: RecordLayout,
    ) -> Result<Self, OpenError> {
        Ok(Receiver {
            raw: RawReceiver::attach(segment, wait, layout)?,
            _record: PhantomData,
        })
    }

    /// Receives the next record, waiting for it per the [`Wait`] strategy.
    ///
    /// Returns [`RecvError::Lagged`] once after this receiver was lapped (the next call
    /// continues with the oldest record still present), [`RecvError::Disconnected`]
    /// after every sender left or died and everything they sent was received.
    #[inline(always)]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let mut value = T::zeroed();
        self.raw.recv_record(&mut value).map(|()| value)
    }

    /// Like [`Receiver::recv`], giving up with [`RecvTimeoutError::Timeout`] after
    /// `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let mut value = T::zeroed();
        self.raw
            .recv_record_deadline(&mut value, Some(Instant::now() + timeout))
            .map(|()| value)
    }

    /// Receives the next record if one is there now.
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut value = T::zeroed();
        self.raw.try_recv_record(&mut value).map(|()| value)
    }

    /// Receives the next record *in place*: a guard that derefs to the record where it
    /// lies in the segment, with no copy, waiting for it per the [`Wait`] strategy.
    /// The record is let go of when the guard is dropped.
    ///
    /// * **Lossless segments** (`Overflow::Block` broadcast, and unicast): while the
    ///   guard lives, this receiver holds the record (a broadcast receiver's cursor
    ///   stays at it; a unicast receiver has taken it but not yet settled it), so no
    ///   sender rewrites its slot and the reference stays valid; a slow holder holds
    ///   the senders back, as a slow receiver does, and a process that dies holding
    ///   one is evicted (unicast: the record is delivered to another receiver) as
    ///   today. Keep guards short. A unicast record rescued that way, from a receiver
    ///   that died holding or copying it, comes as a copy (consumed at once, so that
    ///   no second rescuer can deliver it too): [`RecvRef::is_in_place`] is then
    ///   `false`.
    /// * **`Overflow::Overwrite`**: a sender may rewrite any slot at any time, so a
    ///   reference into the ring could never be sound. The guard then holds a copy
    ///   made as by [`Receiver::recv`] ([`RecvRef::is_in_place`] says which), so code
    ///   written against `recv_ref` works in every mode.
    ///
    /// Errors as [`Receiver::recv`]. Forgetting the guard (`std::mem::forget`) leaves
    /// the record held: a broadcast receiver gets it again on its next receive, a
    /// unicast one leaves it to be rescued by another receiver.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-recv-ref-{}", std::process::id());
    /// let builder = Route::<[u64; 512]>::builder(&name).capacity(4).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// tx.send([7; 512])?;
    /// {
    ///     let frame = rx.recv_ref()?; // 4 KiB, not copied
    ///     assert!(frame.is_in_place());
    ///     assert_eq!(frame.iter().sum::<u64>(), 7 * 512);
    /// } // dropped: the slot is free for the sender again
    /// # drop((tx, rx)); Route::<[u64; 512]>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn recv_ref(&mut self) -> Result<RecvRef<'_, T>, RecvError> {
        if !self.raw.lossless() {
            return self.recv().map(RecvRef::copied);
        }
        match self.raw.hold(None) {
            Ok(seq) => Ok(RecvRef::held(&mut self.raw, seq)),
            Err(e) => Err(without_deadline(e)),
        }
    }

    /// Like [`Receiver::recv_ref`], giving up with [`RecvTimeoutError::Timeout`] after
    /// `timeout`.
    pub fn recv_ref_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<RecvRef<'_, T>, RecvTimeoutError> {
        if !self.raw.lossless() {
            return self.recv_timeout(timeout).map(RecvRef::copied);
        }
        let seq = self.raw.hold(Some(Instant::now() + timeout))?;
        Ok(RecvRef::held(&mut self.raw, seq))
    }

    /// Like [`Receiver::recv_ref`] if a record is there now.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<RecvRef<'_, T>, TryRecvError> {
        if !self.raw.lossless() {
            return self.try_recv().map(RecvRef::copied);
        }
        let seq = self.raw.try_hold()?;
        Ok(RecvRef::held(&mut self.raw, seq))
    }

    /// This receiver as a [`RawReceiver`] (records as bytes), e.g. to hand it to code
    /// that works on any record layout.
    pub fn into_raw(self) -> RawReceiver {
        self.raw
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
        self.raw.recv_many_records(out)
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
        self.raw
            .recv_many_records_deadline(out, Some(Instant::now() + timeout))
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
        self.raw.try_recv_many_records(out)
    }

    /// A blocking iterator over records. It ends when the senders disconnect, this
    /// receiver is evicted, or it is used in a forked child. A lag (broadcast `Overwrite` only) does not end it: the
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
        self.raw.lagged_total()
    }

    /// Number of slots in the ring: the segment's, whether this receiver set it, adopted
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

    /// The futex pair this receiver sleeps on while the ring is empty (async receive,
    /// `asynk/`; see [`RawReceiver::data_parker`]).
    #[cfg(feature = "async")]
    pub(crate) fn data_parker(&self) -> crate::wait::Parker<'_> {
        self.raw.data_parker()
    }

    /// See [`RawReceiver::check_liveness_next`].
    #[cfg(feature = "async")]
    pub(crate) fn check_liveness_next(&mut self) {
        self.raw.check_liveness_next();
    }

    /// Broadcast: sequence number of the next record this receiver will read.
    /// Unicast: of the next record any receiver will take.
    pub fn next_seq(&self) -> u64 {
        self.raw.next_seq()
    }
}

/// A record received in place by [`Receiver::recv_ref`]: derefs to the record; dropping
/// it lets go of the record. In `Overflow::Overwrite` mode (and for a unicast record
/// rescued from a receiver that died) it holds a copy instead.
pub struct RecvRef<'a, T: Pod> {
    inner: Held<'a, T>,
}

enum Held<'a, T> {
    /// A record held in the ring: `ptr` points at it in this process's mapping.
    InPlace {
        rx: &'a mut RawReceiver,
        seq: u64,
        ptr: NonNull<T>,
    },
    /// A copy (Overwrite mode).
    Copied(T),
}

impl<'a, T: Pod> RecvRef<'a, T> {
    fn copied(value: T) -> Self {
        RecvRef {
            inner: Held::Copied(value),
        }
    }

    /// Record `seq`, held by `rx` (`RawReceiver::hold`).
    fn held(rx: &'a mut RawReceiver, seq: u64) -> Self {
        // A unicast record rescued from a receiver that died is held as a copy, settled
        // already (`ring/unicast.rs`, "A receiver that dies holding a record"): the
        // guard takes the copy and lets go at once.
        let copied = rx.held_copy(seq).map(|bytes| {
            let mut value = T::zeroed();
            let dst = bytemuck::bytes_of_mut(&mut value);
            let n = dst.len().min(bytes.len());
            dst[..n].copy_from_slice(&bytes[..n]);
            value
        });
        if let Some(value) = copied {
            rx.release(seq);
            return RecvRef::copied(value);
        }
        let ptr = rx.record_ptr(seq).cast::<T>().cast_mut();
        match NonNull::new(ptr) {
            Some(ptr) if ptr.is_aligned() => RecvRef {
                inner: Held::InPlace { rx, seq, ptr },
            },
            // The slot geometry aligns every record to its type (`Geometry`), so this
            // does not happen; if a mapping were misaligned, copy rather than make an
            // unaligned reference.
            _ => {
                // SAFETY: `ptr` points at the `size_of::<T>()` bytes of record `seq` in
                // the mapping, which `rx` (borrowed for 'a) keeps alive, and which no
                // sender writes while `rx` holds `seq` (see `Deref`); `T: Pod` makes
                // any bytes a valid `T`, and `read_unaligned` needs no alignment.
                let value = unsafe { ptr.read_unaligned() };
                rx.release(seq);
                RecvRef::copied(value)
            }
        }
    }

    /// Whether the record is read where it lies in the segment (lossless modes), not a
    /// copy (`Overflow::Overwrite`, or a unicast record rescued from a receiver that
    /// died).
    pub fn is_in_place(&self) -> bool {
        matches!(self.inner, Held::InPlace { .. })
    }
}

impl<T: Pod> Deref for RecvRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.inner {
            // SAFETY: `ptr` is non-null and aligned (checked in `held`) and points at the
            // `size_of::<T>()` bytes (the segment's record size, validated at open) of
            // record `seq` in this process's mapping, which lives as long as the receiver
            // `rx` this guard borrows. The receiver holds `seq` until the guard drops: its
            // broadcast cursor stays at `seq` (lossless senders never write a slot before
            // every live cursor is past its previous record: `ring/gate.rs`), or as a
            // unicast taker it has claimed `seq` (C2, which only one receiver wins) and not
            // settled it (senders wait for the settled stamp, rescuers skip a live taker's
            // claim, and a record a rescuer took is never held in place but as a copy, in
            // `held` above: `ring/unicast.rs`). So no process writes these bytes while the
            // reference lives, and reading them through a shared reference races with
            // nothing: other readers only read. (A peer that breaks the protocol, e.g. by
            // overwriting this receiver's owner word so that a sender evicts it, could
            // write them; the protocol's guarantees assume peers that follow it, as do all
            // of a lossless segment's.) The words are `AtomicU64` (`UnsafeCell`), so
            // reading them through a pointer derived from a shared reference is allowed.
            // Any bytes are a valid `T: Pod`.
            Held::InPlace { ptr, .. } => unsafe { ptr.as_ref() },
            Held::Copied(value) => value,
        }
    }
}

impl<T: Pod> Drop for RecvRef<'_, T> {
    fn drop(&mut self) {
        if let Held::InPlace { rx, seq, .. } = &mut self.inner {
            rx.release(*seq);
        }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for RecvRef<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRef")
            .field("in_place", &self.is_in_place())
            .field("record", &**self)
            .finish()
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
