//! `Receiver::recv_async`, `Receiver::recv_many_async`, and the `Stream` of records
//! (feature `stream`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytemuck::Pod;

use super::Waiter;
use crate::error::{RecvError, TryRecvError};
use crate::receiver::Receiver;

/// What a receive attempt came to: `Pending` while the ring is empty.
#[inline(always)]
fn outcome<R>(result: Result<R, TryRecvError>) -> Poll<Result<R, RecvError>> {
    match result {
        Ok(value) => Poll::Ready(Ok(value)),
        Err(TryRecvError::Empty) => Poll::Pending,
        Err(TryRecvError::Lagged(n)) => Poll::Ready(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Disconnected) => Poll::Ready(Err(RecvError::Disconnected)),
        Err(TryRecvError::Evicted) => Poll::Ready(Err(RecvError::Evicted)),
        Err(TryRecvError::Forked) => Poll::Ready(Err(RecvError::Forked)),
    }
}

impl<T: Pod> Receiver<T> {
    /// Receives the next record without blocking the thread: the future completes when
    /// a record is there (feature `async`; any executor).
    ///
    /// A record that is ready costs what [`Receiver::try_recv`] costs: no system call.
    /// While the ring is empty the future sleeps on the segment's futex word through
    /// this process's `shmchan-waker` thread and uses no CPU; it never spins on the
    /// executor's thread unless asked to ([`RecvFuture::spin`]). The [`Wait`](crate::Wait)
    /// strategy of the receiver does not apply.
    ///
    /// Errors are those of [`Receiver::recv`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a record is taken only in the poll that returns it, so a future
    /// dropped before it completed (the losing branch of a `select!`, a timeout) has
    /// taken nothing, and the next receive gets that record.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::Route;
    ///
    /// # let name = format!("doc-recv-async-{}", std::process::id());
    /// let builder = Route::<u64>::builder(&name);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// let producer = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     tx.send(42)
    /// });
    /// // Any executor: here the minimal `pollster`.
    /// let got = pollster::block_on(rx.recv_async())?;
    /// assert_eq!(got, 42);
    /// producer.join().unwrap()?;
    /// # drop(rx); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn recv_async(&mut self) -> RecvFuture<'_, T> {
        RecvFuture {
            receiver: self,
            waiter: Waiter::default(),
        }
    }

    /// Receives at least one record into the front of `out`, and as many more as are
    /// ready then (up to `out.len()`), without blocking the thread; completes with how
    /// many (feature `async`). `Ok(0)` at once if `out` is empty. As
    /// [`Receiver::recv_many`] for the batch, as [`Receiver::recv_async`] for the
    /// waiting, and cancel safe in the same way: records are copied into `out` only in
    /// the poll that completes.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-recv-many-async-{}", std::process::id());
    /// let builder = Route::<u32>::builder(&name).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// tx.send_many(&[1, 2, 3])?;
    /// let mut buf = [0u32; 8];
    /// let n = pollster::block_on(rx.recv_many_async(&mut buf))?;
    /// assert_eq!(&buf[..n], [1, 2, 3]);
    /// # drop((tx, rx)); Route::<u32>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn recv_many_async<'a>(&'a mut self, out: &'a mut [T]) -> RecvManyFuture<'a, T> {
        RecvManyFuture {
            receiver: self,
            out,
            waiter: Waiter::default(),
        }
    }

    /// Turns the receiver into a [`Stream`](futures_core::Stream) of records
    /// (feature `stream`). See [`RecvStream`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-into-stream-{}", std::process::id());
    /// let builder = Route::<u8>::builder(&name).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut stream = builder.receiver()?.into_stream();
    /// tx.send_many(&[7, 8])?;
    /// drop(tx); // the stream ends after the records sent
    /// let mut got = Vec::new();
    /// pollster::block_on(async {
    ///     while let Some(item) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
    ///         got.push(item?);
    ///     }
    ///     Ok::<_, shmchan::RecvError>(())
    /// })?;
    /// assert_eq!(got, [7, 8]);
    /// # drop(stream); Route::<u8>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    #[cfg(feature = "stream")]
    pub fn into_stream(self) -> RecvStream<T> {
        RecvStream {
            receiver: Some(self),
            waiter: Waiter::default(),
            ended: false,
        }
    }
}

/// The receiver's futex parker, for the waiter.
fn data_parker<T: Pod>(rx: &Receiver<T>) -> crate::wait::Parker<'_> {
    rx.data_parker()
}

/// The future of [`Receiver::recv_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RecvFuture<'a, T: Pod> {
    receiver: &'a mut Receiver<T>,
    waiter: Waiter,
}

impl<T: Pod> RecvFuture<'_, T> {
    /// Spins (polls the ring on the executor's thread) for at most `budget` before the
    /// first sleep: less latency when a record is about to come, at the price of the
    /// thread's time. The default is no spin.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use shmchan::Route;
    ///
    /// # let name = format!("doc-recv-async-spin-{}", std::process::id());
    /// let builder = Route::<u64>::builder(&name);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// tx.send(1)?;
    /// let got = pollster::block_on(rx.recv_async().spin(Duration::from_micros(20)))?;
    /// assert_eq!(got, 1);
    /// # drop((tx, rx)); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn spin(mut self, budget: Duration) -> Self {
        self.waiter.set_spin(budget);
        self
    }
}

impl<T: Pod> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiter.poll(
            &mut *this.receiver,
            cx,
            data_parker,
            |rx| outcome(rx.try_recv()),
            Receiver::check_liveness_next,
        )
    }
}

impl<T: Pod> Drop for RecvFuture<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.waiter.cancel(&*self.receiver, data_parker);
    }
}

/// The future of [`Receiver::recv_many_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RecvManyFuture<'a, T: Pod> {
    receiver: &'a mut Receiver<T>,
    out: &'a mut [T],
    waiter: Waiter,
}

impl<T: Pod> Future for RecvManyFuture<'_, T> {
    type Output = Result<usize, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let out = &mut *this.out;
        this.waiter.poll(
            &mut *this.receiver,
            cx,
            data_parker,
            |rx| outcome(rx.try_recv_many(out)),
            Receiver::check_liveness_next,
        )
    }
}

impl<T: Pod> Drop for RecvManyFuture<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&*self.receiver, data_parker);
    }
}

/// A [`Stream`](futures_core::Stream) of the records of a receiver (feature
/// `stream`), made by [`Receiver::into_stream`].
///
/// Each item is what [`Receiver::recv`] returns: a record, or
/// `Err(`[`RecvError::Lagged`]`(n))` after a lap (broadcast `Overwrite`; the stream goes
/// on with the oldest record still there). The stream ends (`None`) when the senders
/// have disconnected and everything they sent was received, and after yielding
/// `Err(`[`RecvError::Evicted`]`)` or `Err(`[`RecvError::Forked`]`)`. Cancel safe as
/// [`Receiver::recv_async`]: a record is taken only by the poll that yields it.
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[cfg(feature = "stream")]
#[derive(Debug)]
pub struct RecvStream<T: Pod> {
    /// `None` only after `into_inner`.
    receiver: Option<Receiver<T>>,
    waiter: Waiter,
    ended: bool,
}

#[cfg(feature = "stream")]
impl<T: Pod> RecvStream<T> {
    /// The receiver back.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::Route;
    ///
    /// # let name = format!("doc-stream-into-inner-{}", std::process::id());
    /// let rx = Route::<u8>::receiver(&name)?;
    /// let mut rx = rx.into_stream().into_inner();
    /// assert!(rx.try_recv().is_err());
    /// # drop(rx); Route::<u8>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn into_inner(mut self) -> Receiver<T> {
        let receiver = self.receiver.take().expect("present until into_inner");
        self.waiter.cancel(&receiver, data_parker);
        receiver
    }
}

#[cfg(feature = "stream")]
impl<T: Pod> futures_core::Stream for RecvStream<T> {
    type Item = Result<T, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(receiver) = this.receiver.as_mut() else {
            return Poll::Ready(None);
        };
        if this.ended {
            return Poll::Ready(None);
        }
        // The attempt gives the item itself, so a ready record moves once, into the
        // stream's output (as `recv_async`'s does).
        let item = this.waiter.poll(
            receiver,
            cx,
            data_parker,
            |rx| match rx.try_recv() {
                Ok(value) => Poll::Ready(Some(Ok(value))),
                Err(TryRecvError::Empty) => Poll::Pending,
                Err(TryRecvError::Lagged(n)) => Poll::Ready(Some(Err(RecvError::Lagged(n)))),
                Err(TryRecvError::Disconnected) => Poll::Ready(None),
                Err(TryRecvError::Evicted) => Poll::Ready(Some(Err(RecvError::Evicted))),
                Err(TryRecvError::Forked) => Poll::Ready(Some(Err(RecvError::Forked))),
            },
            Receiver::check_liveness_next,
        );
        if let Poll::Ready(None | Some(Err(RecvError::Evicted | RecvError::Forked))) = item {
            this.ended = true;
        }
        item
    }
}

#[cfg(feature = "stream")]
impl<T: Pod> Drop for RecvStream<T> {
    fn drop(&mut self) {
        if let Some(receiver) = &self.receiver {
            self.waiter.cancel(receiver, data_parker);
        }
    }
}
