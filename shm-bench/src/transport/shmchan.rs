//! shmchan: `Route<T>` (one producer) or `Channel<T>` (many producers), broadcast
//! (overwrite or lossless) or unicast, one segment per direction for ping-pong.
//!
//! Every stream here has exactly one producer, so a `Channel` measures what its
//! multi-producer claim costs one producer, not contention between producers; and a
//! unicast stream has one receiver (the fan-out refuses unicast transports).
//!
//! A batching transport (`-batchN`) keeps the harness's one-record-at-a-time calls: its
//! sender gathers N records and hands them to `send_many` (the last, partial batch on
//! `flush`); its receiver fills an N-record buffer with `recv_many` and hands the
//! records out one by one, so the harness checks each as it does for every transport.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use shmchan::{Channel, Mode, Overflow, Receiver, RecvError, Route, Sender, TryRecvError, Wait};

use super::{Ctx, Delivery, Duplex, Family, Got, RecvStyle, Rx, Side, Tx, WaitKind};
use crate::payload::Payload;

/// How a shmchan transport opens its segments: the fields of
/// [`Transport::Shmchan`](super::Transport::Shmchan).
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    family: Family,
    delivery: Delivery,
    wait: WaitKind,
    loan: bool,
    batch: usize,
    style: RecvStyle,
}

impl Opts {
    /// Options of one shmchan transport; `loan` applies to senders only; `batch` is the
    /// number of records per `send_many` / `recv_many` call (1: `send` / `recv`).
    pub fn new(
        family: Family,
        delivery: Delivery,
        wait: WaitKind,
        loan: bool,
        batch: usize,
    ) -> Opts {
        Opts {
            family,
            delivery,
            wait,
            loan,
            batch: batch.max(1),
            style: RecvStyle::Recv,
        }
    }

    /// How the receiver takes each record (one at a time).
    pub fn style(mut self, style: RecvStyle) -> Opts {
        self.style = style;
        self
    }

    /// Every record reaches its receiver (lossless broadcast, unicast).
    fn lossless(self) -> bool {
        self.delivery != Delivery::Overwrite
    }
}

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
        // Removal goes by name: this removes `Channel` segments as well.
        let _ = Route::<[u8; 8]>::remove(&seg_name(base, s));
    }
}

struct ShmTx<P: Payload> {
    tx: Sender<P>,
    loan: bool,
}

struct ShmRx<P: Payload> {
    rx: Receiver<P>,
    /// Lossless broadcast or unicast: a lapped receiver is a failure, not lost records.
    lossless: bool,
    /// `recv`, `recv_ref` or a `try_recv` loop.
    style: RecvStyle,
}

/// Sends with `send_many`, `buf.capacity()` records at a time.
struct BatchTx<P: Payload> {
    tx: Sender<P>,
    buf: Vec<P>,
}

/// Receives with `recv_many` into `buf`, then hands out `buf[next..len]`.
struct BatchRx<P: Payload> {
    rx: Receiver<P>,
    lossless: bool,
    buf: Vec<P>,
    next: usize,
    len: usize,
}

pub(super) fn lagged(lossless: bool, n: u64) -> Result<Got> {
    if lossless {
        Err(anyhow!("lossless shmchan receiver lagged by {n} records"))
    } else {
        Ok(Got::Lagged(n))
    }
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
            slot.publish()
                .map_err(|_| anyhow!("shmchan sender lost its role"))?;
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
        if self.style == RecvStyle::TryLoop {
            // The user's own busy loop: every empty poll returns to the caller.
            loop {
                match self.rx.try_recv() {
                    Ok(v) => {
                        *out = v;
                        return Ok(Got::Msg);
                    }
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(TryRecvError::Lagged(n)) => return lagged(self.lossless, n),
                    Err(e) => return Err(anyhow!("shmchan try_recv: {e}")),
                }
            }
        }
        if self.style == RecvStyle::Ref {
            // In place: the one copy is the harness's, out of the slot (as iceoryx2's
            // transport copies its sample).
            return match self.rx.recv_ref() {
                Ok(r) => {
                    *out = *r;
                    Ok(Got::Msg)
                }
                Err(RecvError::Lagged(n)) => lagged(self.lossless, n),
                Err(e) => Err(anyhow!("shmchan recv_ref: {e}")),
            };
        }
        match self.rx.recv() {
            Ok(v) => {
                *out = v;
                Ok(Got::Msg)
            }
            Err(RecvError::Lagged(n)) => lagged(self.lossless, n),
            Err(e) => Err(anyhow!("shmchan recv: {e}")),
        }
    }
}

impl<P: Payload> BatchTx<P> {
    fn send_buf(&mut self) -> Result<()> {
        let n = self
            .tx
            .send_many(&self.buf)
            .map_err(|_| anyhow!("shmchan sender lost its role"))?;
        if n != self.buf.len() {
            return Err(anyhow!(
                "shmchan send_many sent {n} of {} records",
                self.buf.len()
            ));
        }
        self.buf.clear();
        Ok(())
    }
}

impl<P: Payload> Tx<P> for BatchTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        self.buf.push(*msg);
        if self.buf.len() == self.buf.capacity() {
            self.send_buf()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send_buf()
    }
}

impl<P: Payload> Rx<P> for BatchRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        if self.next == self.len {
            self.next = 0;
            self.len = 0;
            match self.rx.recv_many(&mut self.buf) {
                Ok(n) => self.len = n,
                Err(RecvError::Lagged(n)) => return lagged(self.lossless, n),
                Err(e) => return Err(anyhow!("shmchan recv_many: {e}")),
            }
            if self.len == 0 {
                return Err(anyhow!("shmchan recv_many returned no record"));
            }
        }
        *out = self.buf[self.next];
        self.next += 1;
        Ok(Got::Msg)
    }
}

fn boxed_tx<P: Payload>(tx: Sender<P>, o: Opts) -> Box<dyn Tx<P>> {
    if o.batch > 1 {
        Box::new(BatchTx {
            tx,
            buf: Vec::with_capacity(o.batch),
        })
    } else {
        Box::new(ShmTx { tx, loan: o.loan })
    }
}

fn boxed_rx<P: Payload>(rx: Receiver<P>, o: Opts) -> Box<dyn Rx<P>> {
    if o.batch > 1 {
        Box::new(BatchRx {
            rx,
            lossless: o.lossless(),
            buf: vec![P::zeroed(); o.batch],
            next: 0,
            len: 0,
        })
    } else {
        Box::new(ShmRx {
            rx,
            lossless: o.lossless(),
            style: o.style,
        })
    }
}

/// Both ends of a segment must ask for the same options (the library checks it).
/// A `Channel` keeps the default producer table (`DEFAULT_MAX_PRODUCERS`).
pub(super) fn builder<P: Payload>(ctx: &Ctx, suffix: &str, o: Opts) -> shmchan::Builder<P> {
    let name = seg_name(&ctx.name, suffix);
    let b = match o.family {
        Family::Route => Route::<P>::builder(&name),
        Family::Channel => Channel::<P>::builder(&name),
    };
    let (mode, overflow) = match o.delivery {
        Delivery::Overwrite => (Mode::Broadcast, Overflow::Overwrite),
        Delivery::Lossless => (Mode::Broadcast, Overflow::Block),
        // The library makes unicast lossless whatever `overflow` says; say it anyway.
        Delivery::Unicast => (Mode::Unicast, Overflow::Block),
    };
    b.capacity(ctx.capacity)
        .mode(mode)
        .overflow(overflow)
        .max_receivers(ctx.receivers.max(64))
        .wait(wait_of(o.wait))
        .open_timeout(ctx.timeout)
}

pub(super) fn wait_receivers<P: Payload>(
    tx: &Sender<P>,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    tx.wait_for_receivers(n, timeout)
        .map(|_| ())
        .context("waiting for shmchan receivers")
}

/// Ping-pong: segment `ab` carries pings, `ba` pongs.
pub fn duplex<P: Payload>(ctx: &mut Ctx, side: Side, o: Opts) -> Result<Duplex<P>> {
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
    let rx = ShmRx {
        rx,
        lossless: o.lossless(),
        style: o.style,
    };
    Ok((Box::new(ShmTx { tx, loan: o.loan }), Box::new(rx)))
}

/// Stream producer on segment `st`.
pub fn producer<P: Payload>(ctx: &mut Ctx, o: Opts) -> Result<Box<dyn Tx<P>>> {
    let tx = builder::<P>(ctx, "st", o)
        .sender()
        .context("open shmchan sender")?;
    ctx.sync()?;
    wait_receivers(&tx, ctx.receivers, ctx.timeout)?;
    Ok(boxed_tx(tx, o))
}

/// Stream receiver on segment `st`.
pub fn consumer<P: Payload>(ctx: &mut Ctx, o: Opts) -> Result<Box<dyn Rx<P>>> {
    let rx = builder::<P>(ctx, "st", o)
        .receiver()
        .context("open shmchan receiver")?;
    ctx.sync()?;
    Ok(boxed_rx(rx, o))
}
