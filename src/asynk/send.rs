//! `Sender::send_async`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytemuck::Pod;

use super::Waiter;
use crate::error::{SendError, TrySendError};
use crate::sender::Sender;

impl<T: Pod> Sender<T> {
    /// Sends a record without blocking the thread: the future completes once the record
    /// is published (feature `async`; any executor).
    ///
    /// In broadcast `Overwrite` mode there is always room, and the first poll
    /// completes. In lossless modes, while the ring is full, the future sleeps on the
    /// segment's futex word through this process's `shmchan-waker` thread (never
    /// spinning on the executor's thread) until a receiver makes room. A slot held by
    /// a lap-older `Channel` writer that stalls mid-write is looked at again once an
    /// idle tick (50 ms). Fails only if this sender lost its role, giving the record
    /// back in [`SendError::Evicted`], or is used in a forked child
    /// ([`SendError::Forked`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the record is published only in the poll that completes, whole; a
    /// future dropped before that has published nothing, and the record is dropped
    /// with it (send it again).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// # let name = format!("doc-send-async-{}", std::process::id());
    /// let builder = Route::<u64>::builder(&name).capacity(2).overflow(Overflow::Block);
    /// let mut tx = builder.clone().sender()?;
    /// let mut rx = builder.receiver()?;
    /// tx.send_many(&[1, 2])?; // full now
    /// let reader = std::thread::spawn(move || -> Result<Vec<u64>, shmchan::RecvError> {
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     (0..3).map(|_| rx.recv()).collect()
    /// });
    /// pollster::block_on(tx.send_async(3))?; // waits for room
    /// assert_eq!(reader.join().unwrap()?, [1, 2, 3]);
    /// # drop(tx); Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn send_async(&mut self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            sender: self,
            value,
            waiter: Waiter::default(),
        }
    }
}

/// The sender's futex parker, for the waiter.
fn space_parker<T: Pod>(tx: &Sender<T>) -> crate::wait::Parker<'_> {
    tx.space_parker()
}

/// The future of [`Sender::send_async`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct SendFuture<'a, T: Pod> {
    sender: &'a mut Sender<T>,
    value: T,
    waiter: Waiter,
}

// The future never hands out a pinned reference to the record (it copies it), so it
// may move whatever `T` is.
impl<T: Pod> Unpin for SendFuture<'_, T> {}

impl<T: Pod> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let value = this.value;
        this.waiter.poll(
            &mut *this.sender,
            cx,
            space_parker,
            |tx| match tx.try_send(value) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Full(_)) => Poll::Pending,
                Err(TrySendError::Evicted(v)) => Poll::Ready(Err(SendError::Evicted(v))),
                Err(TrySendError::Forked(v)) => Poll::Ready(Err(SendError::Forked(v))),
            },
            // `try_send` runs the liveness checks itself, once a tick.
            |_| {},
        )
    }
}

impl<T: Pod> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&*self.sender, space_parker);
    }
}
