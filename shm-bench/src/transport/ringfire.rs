//! ringfire peer: its SPMC ring (`RingProducer::push`, `RingConsumer::recv_blocking`)
//! with the wait strategy its README recommends per use: `BusySpin` on dedicated cores,
//! `FutexWait::default()` (32 spins, then a futex), and `FutexWait::new(0, None)`
//! (sleep at once). Lossless streams use `FlowControl::LosslessBackpressure`; the
//! ping-pong and fan-out use the default `LossyLatestWins`.

use anyhow::{anyhow, Result};
use ringfire::{
    BusySpin, FlowControl, FutexWait, RingConsumer, RingProducer, RingProducerBuilder, WaitStrategy,
};

use super::{Ctx, Duplex, Got, Rx, Side, Tx, WaitKind};
use crate::payload::Payload;

struct RfTx<P: Payload> {
    producer: RingProducer<P>,
}

struct RfRx<P: Payload, W: WaitStrategy> {
    consumer: RingConsumer<P>,
    wait: W,
    lapped: u64,
    pending: Option<P>,
    lossy: bool,
}

impl<P: Payload> Tx<P> for RfTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        self.producer.push(msg);
        Ok(())
    }
}

impl<P: Payload, W: WaitStrategy> Rx<P> for RfRx<P, W> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        if let Some(p) = self.pending.take() {
            *out = p;
            return Ok(Got::Msg);
        }
        let item = self.consumer.recv_blocking(&mut self.wait);
        let lapped = self.consumer.lapped_count();
        if lapped != self.lapped {
            let skipped = lapped - self.lapped;
            self.lapped = lapped;
            self.pending = Some(item);
            return Ok(Got::Lagged(skipped));
        }
        *out = item;
        Ok(Got::Msg)
    }

    fn silent_gaps(&self) -> bool {
        // `lapped_count` reports what a lapped reader skipped; count it, but do not
        // insist the sequence continue exactly after it.
        self.lossy
    }
}

fn create<P: Payload>(ctx: &Ctx, file: &str, lossless: bool) -> Result<RingProducer<P>> {
    let flow = if lossless {
        FlowControl::LosslessBackpressure
    } else {
        FlowControl::LossyLatestWins
    };
    RingProducerBuilder::new(ctx.capacity as u64)
        .flow_control(flow)
        .max_readers(ctx.receivers.max(32))
        .build::<P, _>(ctx.dir.join(file))
        .map_err(|e| anyhow!("ringfire create: {e}"))
}

fn attach<P: Payload>(
    ctx: &Ctx,
    file: &str,
    wait: WaitKind,
    lossless: bool,
) -> Result<Box<dyn Rx<P>>> {
    let consumer = RingConsumer::<P>::attach(ctx.dir.join(file))
        .map_err(|e| anyhow!("ringfire attach: {e}"))?;
    let lapped = consumer.lapped_count();
    Ok(match wait {
        WaitKind::Spin => Box::new(RfRx {
            consumer,
            wait: BusySpin::new(),
            lapped,
            pending: None,
            lossy: !lossless,
        }),
        WaitKind::Adaptive => Box::new(RfRx {
            consumer,
            wait: FutexWait::default(),
            lapped,
            pending: None,
            lossy: !lossless,
        }),
        WaitKind::Block => Box::new(RfRx {
            consumer,
            wait: FutexWait::new(0, None),
            lapped,
            pending: None,
            lossy: !lossless,
        }),
    })
}

/// Ping-pong over two rings; each side creates its outgoing ring.
pub fn duplex<P: Payload>(ctx: &mut Ctx, side: Side, wait: WaitKind) -> Result<Duplex<P>> {
    let (out, inp) = match side {
        Side::A => ("rf.ab", "rf.ba"),
        Side::B => ("rf.ba", "rf.ab"),
    };
    let producer = create::<P>(ctx, out, false)?;
    ctx.sync()?;
    let rx = attach::<P>(ctx, inp, wait, false)?;
    Ok((Box::new(RfTx { producer }), rx))
}

/// Stream producer: creates the ring before the start-up barrier.
pub fn producer<P: Payload>(ctx: &mut Ctx, lossless: bool) -> Result<Box<dyn Tx<P>>> {
    let producer = create::<P>(ctx, "rf.st", lossless)?;
    ctx.sync()?;
    Ok(Box::new(RfTx { producer }))
}

/// Stream consumer: attaches after the barrier.
pub fn consumer<P: Payload>(
    ctx: &mut Ctx,
    wait: WaitKind,
    lossless: bool,
) -> Result<Box<dyn Rx<P>>> {
    ctx.sync()?;
    attach::<P>(ctx, "rf.st", wait, lossless)
}
