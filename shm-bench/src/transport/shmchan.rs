//! shmchan `Route<T>` broadcast, one segment per direction.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use shmchan::{Overflow, Receiver, RecvError, Route, Sender, Wait};

use super::{Ctx, Duplex, Got, Rx, Side, Tx, WaitKind};
use crate::payload::Payload;

fn wait_of(w: WaitKind) -> Wait {
    match w {
        WaitKind::Spin => Wait::Spin,
        WaitKind::Adaptive => Wait::Adaptive,
        WaitKind::Block => Wait::Block,
    }
}

fn seg_name(base: &str, suffix: &str) -> String {
    format!("{base}-{suffix}")
}

/// Removes the segments a measurement named `base` may have created.
pub fn cleanup(base: &str) {
    for s in ["ab", "ba", "st"] {
        // Absent segments are fine; errors only mean there is nothing to remove.
        let _ = Route::<[u8; 8]>::remove(&seg_name(base, s));
    }
}

struct ShmTx<P: Payload> {
    tx: Sender<P>,
    loan: bool,
}

struct ShmRx<P: Payload> {
    rx: Receiver<P>,
}

impl<P: Payload> Tx<P> for ShmTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        if self.loan {
            let mut slot = self
                .tx
                .loan()
                .map_err(|_| anyhow!("shmchan sender lost its role"))?;
            *slot = *msg;
            slot.publish();
            Ok(())
        } else {
            self.tx
                .send(*msg)
                .map_err(|_| anyhow!("shmchan sender lost its role"))
        }
    }
}

impl<P: Payload> Rx<P> for ShmRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        match self.rx.recv() {
            Ok(v) => {
                *out = v;
                Ok(Got::Msg)
            }
            Err(RecvError::Lagged(n)) => Ok(Got::Lagged(n)),
            Err(e) => Err(anyhow!("shmchan recv: {e}")),
        }
    }
}

fn builder<P: Payload>(
    ctx: &Ctx,
    suffix: &str,
    wait: WaitKind,
    lossless: bool,
) -> shmchan::Builder<P> {
    Route::<P>::builder(&seg_name(&ctx.name, suffix))
        .capacity(ctx.capacity)
        .overflow(if lossless {
            Overflow::Block
        } else {
            Overflow::Overwrite
        })
        .max_receivers(ctx.receivers.max(64))
        .wait(wait_of(wait))
        .open_timeout(ctx.timeout)
}

fn wait_receivers<P: Payload>(tx: &Sender<P>, n: usize, timeout: Duration) -> Result<()> {
    tx.wait_for_receivers(n, timeout)
        .map(|_| ())
        .context("waiting for shmchan receivers")
}

/// Ping-pong: segment `ab` carries pings, `ba` pongs.
pub fn duplex<P: Payload>(
    ctx: &mut Ctx,
    side: Side,
    wait: WaitKind,
    lossless: bool,
    loan: bool,
) -> Result<Duplex<P>> {
    let (out, inp) = match side {
        Side::A => ("ab", "ba"),
        Side::B => ("ba", "ab"),
    };
    let rx = builder::<P>(ctx, inp, wait, lossless)
        .receiver()
        .context("open shmchan receiver")?;
    let tx = builder::<P>(ctx, out, wait, lossless)
        .sender()
        .context("open shmchan sender")?;
    ctx.sync()?;
    wait_receivers(&tx, 1, ctx.timeout)?;
    Ok((Box::new(ShmTx { tx, loan }), Box::new(ShmRx { rx })))
}

/// Stream producer on segment `st`.
pub fn producer<P: Payload>(
    ctx: &mut Ctx,
    wait: WaitKind,
    lossless: bool,
    loan: bool,
) -> Result<Box<dyn Tx<P>>> {
    let tx = builder::<P>(ctx, "st", wait, lossless)
        .sender()
        .context("open shmchan sender")?;
    ctx.sync()?;
    wait_receivers(&tx, ctx.receivers, ctx.timeout)?;
    Ok(Box::new(ShmTx { tx, loan }))
}

/// Stream receiver on segment `st`.
pub fn consumer<P: Payload>(
    ctx: &mut Ctx,
    wait: WaitKind,
    lossless: bool,
) -> Result<Box<dyn Rx<P>>> {
    let rx = builder::<P>(ctx, "st", wait, lossless)
        .receiver()
        .context("open shmchan receiver")?;
    ctx.sync()?;
    Ok(Box::new(ShmRx { rx }))
}
