//! Opening a transport: the measurement a process takes part in, its context (run
//! directory, control block) and the open functions ([`duplex`], [`producer`], [`consumer`]).

use super::*;

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
    if let Shmchan { .. } | ShmchanTokio { .. } = t {
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
            family,
            delivery,
            wait,
            loan,
            batch,
            style,
        } => {
            if batch > 1 {
                bail!("{} sends in batches: throughput only", t.name());
            }
            shmchan::duplex::<P>(
                ctx,
                side,
                shmchan::Opts::new(family, delivery, wait, loan, 1).style(style),
            )
        }
        ShmchanTokio {
            lossless,
            half,
            stream,
        } => {
            if half && side == Side::B {
                shmchan::duplex::<P>(ctx, side, shmchan_async::opts(lossless))
            } else {
                shmchan_async::duplex::<P>(ctx, side, lossless, stream)
            }
        }
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
        Shmchan { delivery, .. } => delivery != Delivery::Overwrite,
        ShmchanTokio { lossless, .. } => lossless,
        _ => bench == Bench::Throughput,
    }
}

/// Refuses to fan a stream out through a transport whose receivers do not each get
/// every record (the fan-out would measure a work queue and see gaps).
/// Refuses batches outside the throughput benchmark too.
fn check_fanout(t: Transport, ctx: &Ctx) -> Result<()> {
    if ctx.bench == Bench::Fanout && !t.broadcasts() {
        bail!(
            "{} cannot fan out: it is unicast, each record goes to exactly one receiver",
            t.name()
        );
    }
    if ctx.bench != Bench::Throughput && t.throughput_only() {
        bail!("{} sends in batches: throughput only", t.name());
    }
    Ok(())
}

/// Opens the producer of a stream to `ctx.receivers` receivers.
pub fn producer<P: Payload>(t: Transport, ctx: &mut Ctx) -> Result<Box<dyn Tx<P>>> {
    check_fanout(t, ctx)?;
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
            family,
            delivery,
            wait,
            loan,
            ..
        } => shmchan::producer::<P>(
            ctx,
            shmchan::Opts::new(family, delivery, wait, loan, t.batch()),
        ),
        ShmchanTokio { lossless, .. } => shmchan_async::producer::<P>(ctx, lossless),
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
    check_fanout(t, ctx)?;
    let lossless = lossless_stream(t, ctx.bench);
    match t {
        Floor | FloorBlock => {
            let region = Region::open(&ctx.dir.join("floor"))?;
            let rx = floor::RingRx::<P>::new(region, ctx.capacity, lossless, t == FloorBlock);
            ctx.sync()?;
            Ok(Box::new(rx))
        }
        Shmchan {
            family,
            delivery,
            wait,
            style,
            ..
        } => shmchan::consumer::<P>(
            ctx,
            shmchan::Opts::new(family, delivery, wait, false, t.batch()).style(style),
        ),
        ShmchanTokio {
            lossless, stream, ..
        } => shmchan_async::consumer::<P>(ctx, lossless, stream),
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
