//! shmchan through its async API: a `Route<T>` whose receiver awaits `recv_async` (and,
//! in ping-pong, whose sender awaits `send_async`) on a tokio current_thread runtime
//! with its drivers enabled, as a tokio service has it. A stream's producer stays
//! synchronous, so the stream measures the async receiver alone. Each harness call is one
//! `block_on` of one future: a record that is ready costs the `try_recv` and the
//! runtime's entry; an empty ring parks the runtime's thread until the process's
//! `shmchan-waker` thread wakes the task.

use anyhow::{anyhow, Context, Result};
use shmchan::{Receiver, RecvError, Sender};
use tokio::runtime::{Builder, Runtime};

use super::shmchan::{builder, lagged, wait_receivers, Opts};
use super::{Ctx, Delivery, Duplex, Family, Got, Rx, Side, Tx, WaitKind};
use crate::payload::Payload;

fn opts(lossless: bool) -> Opts {
    let delivery = if lossless {
        Delivery::Lossless
    } else {
        Delivery::Overwrite
    };
    // `Wait::Block` for the sides that stay synchronous (none here but the options must
    // match between the ends); the async calls ignore the strategy.
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
}

impl<P: Payload> Tx<P> for AsyncTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        self.rt
            .block_on(self.tx.send_async(*msg))
            .map_err(|_| anyhow!("shmchan sender lost its role"))
    }
}

impl<P: Payload> Rx<P> for AsyncRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        match self.rt.block_on(self.rx.recv_async()) {
            Ok(v) => {
                *out = v;
                Ok(Got::Msg)
            }
            Err(RecvError::Lagged(n)) => lagged(self.lossless, n),
            Err(e) => Err(anyhow!("shmchan recv_async: {e}")),
        }
    }
}

/// Ping-pong: segment `ab` carries pings, `ba` pongs; both ends async.
pub fn duplex<P: Payload>(ctx: &mut Ctx, side: Side, lossless: bool) -> Result<Duplex<P>> {
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
        Box::new(AsyncRx {
            rt: runtime()?,
            rx,
            lossless,
        }),
    ))
}

/// Stream producer on segment `st`: the synchronous `send` with `Wait::Block`, so that
/// a stream compares `recv_async` with `recv` (`shmchan-block[-lossless]`) alone.
pub fn producer<P: Payload>(ctx: &mut Ctx, lossless: bool) -> Result<Box<dyn Tx<P>>> {
    super::shmchan::producer::<P>(ctx, opts(lossless))
}

/// Stream receiver on segment `st` (`recv_async`).
pub fn consumer<P: Payload>(ctx: &mut Ctx, lossless: bool) -> Result<Box<dyn Rx<P>>> {
    let rx = builder::<P>(ctx, "st", opts(lossless))
        .receiver()
        .context("open shmchan receiver")?;
    ctx.sync()?;
    Ok(Box::new(AsyncRx {
        rt: runtime()?,
        rx,
        lossless,
    }))
}
