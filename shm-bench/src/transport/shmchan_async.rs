//! shmchan through its async API: a `Route<T>` whose receiver awaits `recv_async` (and,
//! in ping-pong, whose sender awaits `send_async`) on a tokio current_thread runtime
//! with its drivers enabled, as a tokio service has it. In ping-pong each harness call is
//! one `block_on` of one future: an empty ring parks the runtime's thread until the
//! process's `shmchan-waker` thread wakes the task. A stream's producer stays
//! synchronous and spins when the ring is full (as `shmchan-spin-lossless-try`'s does),
//! and its receiver polls each `recv_async` future once in place before it enters the
//! runtime, as a task looping over `recv_async().await` does: a record that is ready
//! costs the future's poll and not a runtime entry, so the stream compares the async
//! receiver with a `try_recv` loop (`shmchan-spin-lossless-try`) alone.
//! `shmchan-async-tokio-stream-lossless` receives through `Receiver::into_stream`
//! instead (`Stream::poll_next`: one waiter kept across records, no future per record).

use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};

use futures_core::Stream;

use anyhow::{anyhow, Context, Result};
use shmchan::{Receiver, RecvError, RecvStream, Sender};
use tokio::runtime::{Builder, Runtime};

use super::shmchan::{builder, lagged, wait_receivers, Opts};
use super::{Ctx, Delivery, Duplex, Family, Got, Rx, Side, Tx, WaitKind};
use crate::payload::Payload;

/// The segments' options (also those of `shmchan-async-tokio-half`'s blocking echo side).
pub(super) fn opts(lossless: bool) -> Opts {
    let delivery = if lossless {
        Delivery::Lossless
    } else {
        Delivery::Overwrite
    };
    // The async calls ignore the strategy; `Wait::Block` is what a receiver would use
    // if it fell back to `recv`. (The wait strategy is not in the segment's header: the
    // stream's synchronous producer below spins.)
    Opts::new(Family::Route, delivery, WaitKind::Block, false, 1)
}

fn runtime() -> Result<Runtime> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

struct AsyncTx<P: Payload> {
    rt: Runtime,
    tx: Sender<P>,
}

struct AsyncRx<P: Payload> {
    rt: Runtime,
    rx: Receiver<P>,
    lossless: bool,
    /// Poll each future once in place (with a no-op waker) before `block_on`.
    inline_first: bool,
}

impl<P: Payload> Tx<P> for AsyncTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        self.rt
            .block_on(self.tx.send_async(*msg))
            .map_err(|_| anyhow!("shmchan sender lost its role"))
    }
}

/// What the harness makes of a completed receive. Inlined into each path of
/// `AsyncRx::recv`, so that the record goes straight from the future's output into
/// `out` (as a task's `.await` hands it on), not through a merged temporary.
#[inline(always)]
fn take<P: Payload>(lossless: bool, got: Result<P, RecvError>, out: &mut P) -> Result<Got> {
    match got {
        Ok(v) => {
            *out = v;
            Ok(Got::Msg)
        }
        Err(RecvError::Lagged(n)) => lagged(lossless, n),
        Err(e) => Err(anyhow!("shmchan recv_async: {e}")),
    }
}

impl<P: Payload> Rx<P> for AsyncRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        let mut fut = std::pin::pin!(self.rx.recv_async());
        if self.inline_first {
            let cx = &mut std::task::Context::from_waker(Waker::noop());
            if let Poll::Ready(got) = fut.as_mut().poll(cx) {
                return take(self.lossless, got, out);
            }
        }
        // Polled (again) with the runtime's waker, which replaces the no-op one.
        let got = self.rt.block_on(fut);
        take(self.lossless, got, out)
    }
}

/// A receiver that takes its records from `Receiver::into_stream`: one waiter kept
/// across records, no future built per record.
struct StreamRx<P: Payload> {
    rt: Runtime,
    stream: RecvStream<P>,
    lossless: bool,
    /// Poll once in place (with a no-op waker) before `block_on`, as `AsyncRx`.
    inline_first: bool,
}

impl<P: Payload> Rx<P> for StreamRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        if self.inline_first {
            let cx = &mut std::task::Context::from_waker(Waker::noop());
            if let Poll::Ready(item) = Pin::new(&mut self.stream).poll_next(cx) {
                return match item {
                    Some(got) => take(self.lossless, got, out),
                    None => Err(anyhow!("shmchan stream ended")),
                };
            }
        }
        // Polled (again) with the runtime's waker, which replaces the no-op one.
        let stream = &mut self.stream;
        let item = self.rt.block_on(std::future::poll_fn(|cx| {
            Pin::new(&mut *stream).poll_next(cx)
        }));
        match item {
            Some(got) => take(self.lossless, got, out),
            None => Err(anyhow!("shmchan stream ended")),
        }
    }
}

/// The receiving half of a ping-pong end or a stream: a `recv_async` future per record,
/// or (`stream`) the receiver's `Stream`.
fn async_rx<P: Payload>(
    rx: Receiver<P>,
    lossless: bool,
    stream: bool,
    inline_first: bool,
) -> Result<Box<dyn Rx<P>>> {
    let rt = runtime()?;
    Ok(if stream {
        Box::new(StreamRx {
            rt,
            stream: rx.into_stream(),
            lossless,
            inline_first,
        })
    } else {
        Box::new(AsyncRx {
            rt,
            rx,
            lossless,
            inline_first,
        })
    })
}

/// Ping-pong: segment `ab` carries pings, `ba` pongs; both ends async.
pub fn duplex<P: Payload>(
    ctx: &mut Ctx,
    side: Side,
    lossless: bool,
    stream: bool,
) -> Result<Duplex<P>> {
    let o = opts(lossless);
    let (out, inp) = match side {
        Side::A => ("ab", "ba"),
        Side::B => ("ba", "ab"),
    };
    let rx = builder::<P>(ctx, inp, o)
        .receiver()
        .context("open shmchan receiver")?;
    let tx = builder::<P>(ctx, out, o)
        .sender()
        .context("open shmchan sender")?;
    ctx.sync()?;
    wait_receivers(&tx, 1, ctx.timeout)?;
    Ok((
        Box::new(AsyncTx { rt: runtime()?, tx }),
        async_rx(rx, lossless, stream, false)?,
    ))
}

/// Stream producer on segment `st`: the synchronous `send` with `Wait::Spin` (the wait
/// strategy is not part of the segment's header), so that a stream compares
/// `recv_async` with a `try_recv` loop (`shmchan-spin[-lossless]-try`) alone.
pub fn producer<P: Payload>(ctx: &mut Ctx, lossless: bool) -> Result<Box<dyn Tx<P>>> {
    let delivery = if lossless {
        Delivery::Lossless
    } else {
        Delivery::Overwrite
    };
    super::shmchan::producer::<P>(
        ctx,
        Opts::new(Family::Route, delivery, WaitKind::Spin, false, 1),
    )
}

/// Stream receiver on segment `st` (`recv_async`, or with `stream` the `Stream`).
pub fn consumer<P: Payload>(ctx: &mut Ctx, lossless: bool, stream: bool) -> Result<Box<dyn Rx<P>>> {
    let rx = builder::<P>(ctx, "st", opts(lossless))
        .receiver()
        .context("open shmchan receiver")?;
    ctx.sync()?;
    async_rx(rx, lossless, stream, true)
}
