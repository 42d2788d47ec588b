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
    /// completes, unless the slot is still held by a lap-older `Channel` writer (a
    /// producer preempted mid-write a whole lap behind): the future then sleeps until
    /// that writer's commit, as `send` waits for it (a writer that died is taken over
    /// at the next idle tick, 50 ms). In lossless modes, while the ring is full, the
    /// future sleeps on the segment's futex word through this process's
    /// `shmchan-waker` thread (never spinning on the executor's thread) until a
    /// receiver makes room. Fails only if this sender lost its role, giving the record
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
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub fn send_async(&mut self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            sender: self,
            value,
            waiter: Waiter::default(),
            on_data: false,
        }
    }
}

/// The sender's futex parker on `data` (`true`) or `space`, for the waiter.
fn parker<T: Pod>(on_data: bool) -> impl for<'a> Fn(&'a Sender<T>) -> crate::wait::Parker<'a> {
    move |tx| tx.parker(on_data)
}

/// The future of [`Sender::send_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct SendFuture<'a, T: Pod> {
    sender: &'a mut Sender<T>,
    value: T,
    waiter: Waiter,
    /// The pair the waiter registers on, the one `send` would wait on: `data` while a
    /// lap-older writer holds the slot of this sender's claim (that writer's commit
    /// wakes `data`), else `space` (receivers' progress wakes it).
    on_data: bool,
}

// The future never hands out a pinned reference to the record (it copies it), so it
// may move whatever `T` is.
impl<T: Pod> Unpin for SendFuture<'_, T> {}

impl<T: Pod> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let value = this.value;
        let mut moved = false;
        loop {
            let on_data = this.on_data;
            // What the last attempt that found no room waits for.
            let mut wants_data = on_data;
            let polled = this.waiter.poll(
                &mut *this.sender,
                cx,
                parker(on_data),
                |tx| match tx.try_send(value) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(TrySendError::Full(_)) => {
                        wants_data = tx.awaits_writer();
                        Poll::Pending
                    }
                    Err(TrySendError::Evicted(v)) => Poll::Ready(Err(SendError::Evicted(v))),
                    Err(TrySendError::Forked(v)) => Poll::Ready(Err(SendError::Forked(v))),
                },
                // `try_send` runs the liveness checks itself, once a tick.
                |_| {},
            );
            // Registered on the pair `send` would wait on (or done): sleep there. Else
            // move the registration to the other pair once per poll (unregister, then
            // poll again, which registers and re-checks there); a claim that keeps
            // changing what it waits for is looked at again at the idle tick.
            if polled.is_ready() || wants_data == on_data || moved {
                return polled;
            }
            this.waiter.cancel(&*this.sender, parker(on_data));
            this.on_data = wants_data;
            moved = true;
        }
    }
}

impl<T: Pod> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&*self.sender, parker(self.on_data));
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use crate::stats::Observer;
    use crate::sync::{AtomicU64, Ordering};
    use crate::{Channel, Overflow};

    /// A waker that counts its wakes.
    struct Counting(AtomicU64);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            // `Relaxed`: a count read by the test thread after the fact.
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the segment when the test ends, even by a panic.
    struct Remove(String);

    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Channel::<u64>::remove(&self.0);
        }
    }

    /// An `Overwrite` `Channel` sender whose claim laps a lap-older writer stopped
    /// mid-write waits where `send` waits (on `data`, which that writer's commit wakes),
    /// not on `space` (which nobody wakes in `Overwrite` mode, so it slept an idle tick):
    /// it is registered on `data`, the commit makes a wake call on that pair, the
    /// future is woken and completes.
    #[test]
    fn overwrite_send_async_waits_for_a_busy_lap_older_writer_on_data() {
        let name = format!("unit-send-async-busy-{}", std::process::id());
        let _remove = Remove(name.clone());
        let builder = Channel::<u64>::builder(&name)
            .capacity(2)
            .overflow(Overflow::Overwrite);
        let mut stalled = builder.clone().sender().expect("sender").into_raw();
        let mut tx = builder.sender().expect("sender");
        // Record 0: claimed, its slot marked busy, never written (yet).
        assert!(stalled.begin_unfinished());
        tx.send(1).expect("record 1");
        // Record 2 takes the slot of record 0, which the stalled writer holds.
        let woken = Arc::new(Counting(AtomicU64::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let mut send = tx.send_async(2);
        assert!(Pin::new(&mut send).poll(&mut cx).is_pending());
        let stats = Observer::open(&name)
            .expect("observer")
            .stats()
            .expect("stats");
        assert_eq!(
            (stats.data_waiters, stats.space_waiters),
            (1, 0),
            "registered on (data, space): the lap-older writer's commit wakes data"
        );
        let before = stalled.data_seq();
        assert!(stalled.finish_unfinished(&0u64.to_ne_bytes()));
        assert_ne!(
            stalled.data_seq(),
            before,
            "the lap-older writer's commit made no wake call on data"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        // `Relaxed`: the count of the waker above.
        while woken.0.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the sender was never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(matches!(
            Pin::new(&mut send).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        drop(send);
        let stats = Observer::open(&name)
            .expect("observer")
            .stats()
            .expect("stats");
        assert_eq!((stats.data_waiters, stats.space_waiters), (0, 0));
    }
}
