//! Transports: every way of moving a record from one process to another that the
//! benchmark compares, behind two small traits.
//!
//! Each open function ([`duplex`], [`producer`], [`consumer`]) calls [`Ctx::sync`]
//! exactly once, at the point its transport needs every party to have set up (a
//! listener bound, a segment created), so the parties of one measurement stay in step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::shm::{Ctl, Region, CTL_LEN};

pub mod floor;
#[cfg(feature = "peers")]
pub mod iceoryx2;
pub mod os;
#[cfg(feature = "peers")]
pub mod ringfire;
pub mod shmchan;

/// Both ends of a ping-pong side: its sender and its receiver.
pub type Duplex<P> = (Box<dyn Tx<P>>, Box<dyn Rx<P>>);

/// What a receive produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// A record was written to `out`.
    Msg,
    /// The receiver was lapped and skipped this many records (lossy transports).
    Lagged(u64),
}

/// Sending half.
pub trait Tx<P> {
    /// Sends one record, waiting per the transport's strategy if it is lossless and full.
    fn send(&mut self, msg: &P) -> Result<()>;
}

/// Receiving half.
pub trait Rx<P> {
    /// Receives the next record into `out`, waiting per the transport's strategy.
    fn recv(&mut self, out: &mut P) -> Result<Got>;
    /// Only the sequence number travels (the cache-line floor): check nothing else.
    fn seq_only(&self) -> bool {
        false
    }
    /// The transport drops records without saying so (the receiver sees a gap).
    fn silent_gaps(&self) -> bool {
        false
    }
}

/// A shmchan wait strategy, named independently of the library for serialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitKind {
    /// Busy-poll.
    Spin,
    /// Spin briefly, then sleep.
    Adaptive,
    /// Sleep at once.
    Block,
}

/// One transport under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// Raw shared-memory cache-line ping-pong / raw ring, spinning.
    Floor,
    /// The same, sleeping on a shared futex.
    FloorBlock,
    /// `shmchan::Route` broadcast.
    Shmchan {
        /// Wait strategy of both ends.
        wait: WaitKind,
        /// `Overflow::Block` (lossless) instead of `Overflow::Overwrite`.
        lossless: bool,
        /// Send through `loan()` + `publish()` instead of `send`.
        loan: bool,
    },
    // Channel<T> (many producers) and Mode::Unicast transports belong here once the
    // library has them (their own issue): add variants, names in `ALL`, and open
    // functions in `shmchan.rs`.
    /// Unix domain stream socket, blocking.
    Uds,
    /// Named pipe (FIFO), blocking.
    Pipe,
    /// iceoryx2 ipc publish-subscribe, loan API, busy-polling receive.
    Iceoryx2Spin,
    /// iceoryx2 publish-subscribe woken through its event service (notifier/listener).
    Iceoryx2Event,
    /// ringfire SPMC ring.
    Ringfire(WaitKind),
}

use Transport::*;
use WaitKind::*;

const fn sc(wait: WaitKind, lossless: bool, loan: bool) -> Transport {
    Shmchan {
        wait,
        lossless,
        loan,
    }
}

/// Every transport and its command-line name.
pub const ALL: &[(&str, Transport)] = &[
    ("floor", Floor),
    ("floor-block", FloorBlock),
    ("shmchan-spin", sc(Spin, false, false)),
    ("shmchan-adaptive", sc(Adaptive, false, false)),
    ("shmchan-block", sc(Block, false, false)),
    ("shmchan-spin-lossless", sc(Spin, true, false)),
    ("shmchan-adaptive-lossless", sc(Adaptive, true, false)),
    ("shmchan-block-lossless", sc(Block, true, false)),
    ("shmchan-spin-loan", sc(Spin, true, true)),
    ("uds", Uds),
    ("pipe", Pipe),
    ("iceoryx2-spin", Iceoryx2Spin),
    ("iceoryx2-event", Iceoryx2Event),
    ("ringfire-spin", Ringfire(Spin)),
    ("ringfire-adaptive", Ringfire(Adaptive)),
    ("ringfire-block", Ringfire(Block)),
];

impl Transport {
    /// Command-line name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .expect("every transport is listed in ALL")
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Result<Transport> {
        let t = ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!("unknown transport {name:?}; known: {}", names.join(", "))
            })?;
        if t.is_peer() && !cfg!(feature = "peers") {
            bail!("transport {name} needs a build with `--features peers`");
        }
        Ok(t)
    }

    /// A peer library (behind the `peers` feature).
    pub fn is_peer(self) -> bool {
        matches!(self, Iceoryx2Spin | Iceoryx2Event | Ringfire(_))
    }

    /// Its receivers sleep in the kernel when idle (so a run needs fewer records).
    pub fn blocking(self) -> bool {
        matches!(
            self,
            FloorBlock | Uds | Pipe | Iceoryx2Event | Ringfire(Block) | Shmchan { wait: Block, .. }
        )
    }

    /// Busy-polls while waiting (needs a core of its own per waiting process).
    pub fn spins(self) -> bool {
        !self.blocking()
    }

    /// The sleeping counterpart of a spinning transport (for fan-outs with more receivers
    /// than free cores).
    pub fn blocking_twin(self) -> Transport {
        match self {
            Floor => FloorBlock,
            Shmchan { lossless, .. } => sc(Block, lossless, false),
            Iceoryx2Spin => Iceoryx2Event,
            Ringfire(_) => Ringfire(Block),
            t => t,
        }
    }
}

/// Which measurement a process takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bench {
    /// Ping-pong.
    Latency,
    /// One producer, one consumer, flat out.
    Throughput,
    /// One producer, N broadcast receivers, paced.
    Fanout,
}

/// Which end of a ping-pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The pinger: sends on direction 0, receives on 1.
    A,
    /// The echo: receives on 0, sends on 1.
    B,
}

/// Everything a process needs to open its end of a transport.
pub struct Ctx {
    /// Run directory (under /dev/shm) shared by the parties of this measurement.
    pub dir: PathBuf,
    /// Unique base name for named resources (shmchan segments, iceoryx2 services).
    pub name: String,
    /// Measurement kind.
    pub bench: Bench,
    /// Receivers of a stream (1 for latency and throughput).
    pub receivers: usize,
    /// This receiver's index (stream consumers).
    pub index: usize,
    /// Ring capacity in records.
    pub capacity: usize,
    /// How long start-up waits may take.
    pub timeout: Duration,
    parties: u32,
    round: u32,
    ctl: Region,
}

impl Ctx {
    /// Opens the control block of a measurement.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: PathBuf,
        name: String,
        bench: Bench,
        receivers: usize,
        index: usize,
        capacity: usize,
        parties: u32,
        timeout: Duration,
    ) -> Result<Ctx> {
        let ctl = Region::open(&dir.join("ctl"))?;
        Ok(Ctx {
            dir,
            name,
            bench,
            receivers,
            index,
            capacity,
            timeout,
            parties,
            round: 0,
            ctl,
        })
    }

    /// Waits until every party of the measurement reached the same point.
    pub fn sync(&mut self) -> Result<()> {
        self.round += 1;
        self.ctl
            .at::<Ctl>(0)
            .barrier(self.parties, self.round, self.timeout)
    }

    /// Tells the other parties this one failed.
    pub fn fail(&self) {
        self.ctl.at::<Ctl>(0).fail();
    }
}

/// Creates what the parties of a measurement open (run by the orchestrator before it
/// starts them): the control block, floor regions, FIFOs.
pub fn prepare(
    t: Transport,
    dir: &std::path::Path,
    bench: Bench,
    payload: usize,
    receivers: usize,
    capacity: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    Region::create(&dir.join("ctl"), CTL_LEN)?;
    match t {
        Floor | FloorBlock => {
            if bench == Bench::Latency {
                Region::create(&dir.join("floor"), floor::WORDS_LEN)?;
            } else {
                let len = crate::with_payload!(payload, P => floor::ring_len::<P>(capacity));
                Region::create(&dir.join("floor"), len)?;
            }
        }
        Pipe => {
            let names: Vec<String> = if bench == Bench::Latency {
                vec!["ab.fifo".into(), "ba.fifo".into()]
            } else {
                (0..receivers).map(|i| format!("{i}.fifo")).collect()
            };
            for n in names {
                os::mkfifo(&dir.join(n))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Removes named resources outside the run directory (the caller removes the directory).
pub fn cleanup(t: Transport, name: &str) {
    if let Shmchan { .. } = t {
        shmchan::cleanup(name);
    }
}

/// Opens a ping-pong end.
pub fn duplex<P: Payload>(t: Transport, ctx: &mut Ctx, side: Side) -> Result<Duplex<P>> {
    let (out_dir, in_dir) = match side {
        Side::A => (0, 1),
        Side::B => (1, 0),
    };
    match t {
        Floor | FloorBlock => {
            let block = t == FloorBlock;
            let region = Arc::new(Region::open(&ctx.dir.join("floor"))?);
            let rx = floor::WordRx::new(region.clone(), in_dir, block);
            let tx = floor::WordTx::new(region, out_dir, block);
            ctx.sync()?;
            Ok((Box::new(tx), Box::new(rx)))
        }
        Shmchan {
            wait,
            lossless,
            loan,
        } => shmchan::duplex::<P>(ctx, side, wait, lossless, loan),
        Uds => os::uds_duplex::<P>(ctx, side),
        Pipe => os::pipe_duplex::<P>(ctx, side),
        #[cfg(feature = "peers")]
        Iceoryx2Spin | Iceoryx2Event => iceoryx2::duplex::<P>(ctx, side, t == Iceoryx2Event),
        #[cfg(feature = "peers")]
        Ringfire(wait) => ringfire::duplex::<P>(ctx, side, wait),
        #[cfg(not(feature = "peers"))]
        Iceoryx2Spin | Iceoryx2Event | Ringfire(_) => bail!("{} needs --features peers", t.name()),
    }
}

/// Whether a stream of this benchmark is lossless (waits for its receivers) where the
/// transport can choose.
fn lossless_stream(t: Transport, bench: Bench) -> bool {
    match t {
        Shmchan { lossless, .. } => lossless,
        _ => bench == Bench::Throughput,
    }
}

/// Opens the producer of a stream to `ctx.receivers` receivers.
pub fn producer<P: Payload>(t: Transport, ctx: &mut Ctx) -> Result<Box<dyn Tx<P>>> {
    let lossless = lossless_stream(t, ctx.bench);
    match t {
        Floor | FloorBlock => {
            if lossless && ctx.receivers != 1 {
                bail!("the lossless floor ring has one consumer");
            }
            let region = Region::open(&ctx.dir.join("floor"))?;
            let tx = floor::RingTx::<P>::new(region, ctx.capacity, lossless, t == FloorBlock);
            ctx.sync()?;
            Ok(Box::new(tx))
        }
        Shmchan {
            wait,
            lossless,
            loan,
        } => shmchan::producer::<P>(ctx, wait, lossless, loan),
        Uds => os::uds_producer::<P>(ctx),
        Pipe => os::pipe_producer::<P>(ctx),
        #[cfg(feature = "peers")]
        Iceoryx2Spin | Iceoryx2Event => iceoryx2::producer::<P>(ctx, t == Iceoryx2Event, lossless),
        #[cfg(feature = "peers")]
        Ringfire(_) => ringfire::producer::<P>(ctx, lossless),
        #[cfg(not(feature = "peers"))]
        Iceoryx2Spin | Iceoryx2Event | Ringfire(_) => bail!("{} needs --features peers", t.name()),
    }
}

/// Opens receiver `ctx.index` of a stream.
pub fn consumer<P: Payload>(t: Transport, ctx: &mut Ctx) -> Result<Box<dyn Rx<P>>> {
    let lossless = lossless_stream(t, ctx.bench);
    match t {
        Floor | FloorBlock => {
            let region = Region::open(&ctx.dir.join("floor"))?;
            let rx = floor::RingRx::<P>::new(region, ctx.capacity, lossless, t == FloorBlock);
            ctx.sync()?;
            Ok(Box::new(rx))
        }
        Shmchan { wait, lossless, .. } => shmchan::consumer::<P>(ctx, wait, lossless),
        Uds => os::uds_consumer::<P>(ctx),
        Pipe => os::pipe_consumer::<P>(ctx),
        #[cfg(feature = "peers")]
        Iceoryx2Spin | Iceoryx2Event => iceoryx2::consumer::<P>(ctx, t == Iceoryx2Event, lossless),
        #[cfg(feature = "peers")]
        Ringfire(wait) => ringfire::consumer::<P>(ctx, wait, lossless),
        #[cfg(not(feature = "peers"))]
        Iceoryx2Spin | Iceoryx2Event | Ringfire(_) => bail!("{} needs --features peers", t.name()),
    }
}
