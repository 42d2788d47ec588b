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
pub mod shmchan_async;

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
    /// Sends whatever `send` still holds back (batching transports); the producer calls
    /// it once after its last record.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
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

/// How a shmchan receiver takes each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecvStyle {
    /// `recv`, waiting per the transport's strategy.
    Recv,
    /// Receive in place with `recv_ref` (lossless deliveries only), copying the record
    /// out of the slot once, as the iceoryx2 transport does with its sample.
    Ref,
    /// `try_recv` in a busy loop, as a user's own event loop polls.
    TryLoop,
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

/// Which shmchan type a transport opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// `Route<T>`: exactly one producer.
    Route,
    /// `Channel<T>`: many producers (the benchmark attaches one per segment, so it
    /// measures the cost of the multi-producer claim, not contention between producers).
    Channel,
}

/// Who gets each record of a shmchan segment, and what its producer does when the ring
/// is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// `Mode::Broadcast` with `Overflow::Overwrite`: every receiver gets every record;
    /// the producer never waits, a lapped receiver is told how many records it lost.
    Overwrite,
    /// `Mode::Broadcast` with `Overflow::Block`: every receiver gets every record; the
    /// producer waits for the slowest receiver.
    Lossless,
    /// `Mode::Unicast`: each record goes to exactly one receiver; always lossless (the
    /// producer waits while the ring is full). Not a fan-out: see
    /// [`Transport::broadcasts`].
    Unicast,
}

/// One transport under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// Raw shared-memory cache-line ping-pong / raw ring, spinning.
    Floor,
    /// The same, sleeping on a shared futex.
    FloorBlock,
    /// shmchan: a `Route<T>` or `Channel<T>`, broadcast or unicast, one segment per
    /// direction for ping-pong.
    Shmchan {
        /// `Route<T>` or `Channel<T>`.
        family: Family,
        /// Broadcast (overwrite or lossless) or unicast.
        delivery: Delivery,
        /// Wait strategy of both ends.
        wait: WaitKind,
        /// Send through `loan()` + `publish()` instead of `send` (offered only for
        /// lossless deliveries, where the loan points into the slot itself).
        loan: bool,
        /// Records per `send_many` / `recv_many` call; 0 sends and receives one record
        /// at a time. Throughput only.
        batch: u16,
        /// How the receiver takes each record.
        style: RecvStyle,
    },
    /// shmchan `Route<T>` received with `recv_async` (and, in ping-pong, sent with
    /// `send_async`) on a tokio current_thread runtime; broadcast, one segment per
    /// direction for ping-pong; a stream's producer sends with `send` (`Wait::Spin`).
    ShmchanTokio {
        /// `Overflow::Block` (else `Overflow::Overwrite`).
        lossless: bool,
        /// Ping-pong: the echo side answers with the blocking `recv` / `send`
        /// (`Wait::Block`), so only the pings' replies are awaited. Streams are the same
        /// either way (their producer is synchronous).
        half: bool,
        /// Receives through `Receiver::into_stream` (`Stream::poll_next`, one waiter
        /// kept across records) instead of a `recv_async` future per record.
        stream: bool,
    },
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

const fn sc(family: Family, delivery: Delivery, wait: WaitKind, loan: bool) -> Transport {
    Shmchan {
        family,
        delivery,
        wait,
        loan,
        batch: 0,
        style: RecvStyle::Recv,
    }
}

/// A shmchan transport receiving in place with `recv_ref`.
const fn scr(family: Family, delivery: Delivery, wait: WaitKind) -> Transport {
    Shmchan {
        family,
        delivery,
        wait,
        loan: false,
        batch: 0,
        style: RecvStyle::Ref,
    }
}

/// A shmchan transport receiving with `try_recv` in a busy loop.
const fn sct(family: Family, delivery: Delivery) -> Transport {
    Shmchan {
        family,
        delivery,
        wait: Spin,
        loan: false,
        batch: 0,
        style: RecvStyle::TryLoop,
    }
}

/// A shmchan transport moving `batch` records per `send_many` / `recv_many` call.
const fn scb(family: Family, delivery: Delivery, wait: WaitKind, batch: u16) -> Transport {
    Shmchan {
        family,
        delivery,
        wait,
        loan: false,
        batch,
        style: RecvStyle::Recv,
    }
}

const R: Family = Family::Route;
const C: Family = Family::Channel;
const OVERWRITE: Delivery = Delivery::Overwrite;
const LOSSLESS: Delivery = Delivery::Lossless;
const UNICAST: Delivery = Delivery::Unicast;

/// Every transport and its command-line name.
///
/// shmchan names follow `shmchan[-channel][-unicast]-WAIT[-lossless|-loan][-batchN]`:
/// `-channel` opens a `Channel<T>` (default `Route<T>`); `-unicast` uses
/// `Mode::Unicast` (default broadcast); `WAIT` is `spin`, `adaptive` or `block`;
/// `-lossless` is broadcast with `Overflow::Block` (default `Overflow::Overwrite`);
/// `-loan` sends through `loan()` + `publish()` and is lossless too. Unicast is always
/// lossless, so unicast names never carry `-lossless`. `-batchN` sends with
/// `send_many` on N records at a time and receives with `recv_many` into an N-record
/// buffer; it is offered without `-loan`, for the throughput benchmark only. `-ref`
/// receives in place with `recv_ref` (lossless deliveries only); `-try` receives with
/// `try_recv` in a busy loop (`spin` only: the loop is the wait).
pub const ALL: &[(&str, Transport)] = &[
    ("floor", Floor),
    ("floor-block", FloorBlock),
    ("shmchan-spin", sc(R, OVERWRITE, Spin, false)),
    ("shmchan-adaptive", sc(R, OVERWRITE, Adaptive, false)),
    ("shmchan-block", sc(R, OVERWRITE, Block, false)),
    ("shmchan-spin-lossless", sc(R, LOSSLESS, Spin, false)),
    (
        "shmchan-adaptive-lossless",
        sc(R, LOSSLESS, Adaptive, false),
    ),
    ("shmchan-block-lossless", sc(R, LOSSLESS, Block, false)),
    ("shmchan-spin-loan", sc(R, LOSSLESS, Spin, true)),
    ("shmchan-channel-spin", sc(C, OVERWRITE, Spin, false)),
    (
        "shmchan-channel-adaptive",
        sc(C, OVERWRITE, Adaptive, false),
    ),
    ("shmchan-channel-block", sc(C, OVERWRITE, Block, false)),
    (
        "shmchan-channel-spin-lossless",
        sc(C, LOSSLESS, Spin, false),
    ),
    (
        "shmchan-channel-adaptive-lossless",
        sc(C, LOSSLESS, Adaptive, false),
    ),
    (
        "shmchan-channel-block-lossless",
        sc(C, LOSSLESS, Block, false),
    ),
    ("shmchan-channel-spin-loan", sc(C, LOSSLESS, Spin, true)),
    ("shmchan-unicast-spin", sc(R, UNICAST, Spin, false)),
    ("shmchan-unicast-adaptive", sc(R, UNICAST, Adaptive, false)),
    ("shmchan-unicast-block", sc(R, UNICAST, Block, false)),
    ("shmchan-unicast-spin-loan", sc(R, UNICAST, Spin, true)),
    ("shmchan-channel-unicast-spin", sc(C, UNICAST, Spin, false)),
    (
        "shmchan-channel-unicast-adaptive",
        sc(C, UNICAST, Adaptive, false),
    ),
    (
        "shmchan-channel-unicast-block",
        sc(C, UNICAST, Block, false),
    ),
    (
        "shmchan-channel-unicast-spin-loan",
        sc(C, UNICAST, Spin, true),
    ),
    ("shmchan-spin-lossless-ref", scr(R, LOSSLESS, Spin)),
    ("shmchan-spin-try", sct(R, OVERWRITE)),
    ("shmchan-spin-lossless-try", sct(R, LOSSLESS)),
    ("shmchan-unicast-spin-ref", scr(R, UNICAST, Spin)),
    ("shmchan-spin-lossless-batch16", scb(R, LOSSLESS, Spin, 16)),
    (
        "shmchan-spin-lossless-batch256",
        scb(R, LOSSLESS, Spin, 256),
    ),
    (
        "shmchan-block-lossless-batch16",
        scb(R, LOSSLESS, Block, 16),
    ),
    ("shmchan-spin-batch16", scb(R, OVERWRITE, Spin, 16)),
    ("shmchan-unicast-spin-batch16", scb(R, UNICAST, Spin, 16)),
    (
        "shmchan-channel-spin-lossless-batch16",
        scb(C, LOSSLESS, Spin, 16),
    ),
    (
        "shmchan-channel-unicast-spin-batch16",
        scb(C, UNICAST, Spin, 16),
    ),
    (
        "shmchan-async-tokio",
        ShmchanTokio {
            lossless: false,
            half: false,
            stream: false,
        },
    ),
    (
        "shmchan-async-tokio-lossless",
        ShmchanTokio {
            lossless: true,
            half: false,
            stream: false,
        },
    ),
    (
        "shmchan-async-tokio-stream-lossless",
        ShmchanTokio {
            lossless: true,
            half: false,
            stream: true,
        },
    ),
    (
        "shmchan-async-tokio-half",
        ShmchanTokio {
            lossless: false,
            half: true,
            stream: false,
        },
    ),
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

    /// Records per `send_many` / `recv_many` call (1: one record at a time).
    pub fn batch(self) -> usize {
        match self {
            Shmchan { batch, .. } => usize::from(batch).max(1),
            _ => 1,
        }
    }

    /// Moves records in batches, which only the throughput benchmark drives (latency
    /// sends one record at a time, the fan-out paces each record).
    pub fn throughput_only(self) -> bool {
        self.batch() > 1
    }

    /// Its receivers sleep in the kernel when idle (so a run needs fewer records).
    pub fn blocking(self) -> bool {
        matches!(
            self,
            FloorBlock
                | Uds
                | Pipe
                | Iceoryx2Event
                | Ringfire(Block)
                | Shmchan { wait: Block, .. }
                | ShmchanTokio { .. }
        )
    }

    /// Busy-polls while waiting (needs a core of its own per waiting process).
    /// shmchan's adaptive strategy counts: it spins before it sleeps.
    pub fn spins(self) -> bool {
        !self.blocking()
    }

    /// Every receiver of a stream gets every record, so it can fan out. Only shmchan's
    /// unicast transports do not: each of their records goes to exactly one receiver.
    pub fn broadcasts(self) -> bool {
        !matches!(
            self,
            Shmchan {
                delivery: Delivery::Unicast,
                ..
            }
        )
    }

    /// The sleeping counterpart of a spinning transport (for fan-outs with more receivers
    /// than free cores). A shmchan transport keeps its family and delivery and sends
    /// with `send`, one record at a time (there are no sleeping loan variants, and the
    /// fan-out has no batches).
    pub fn blocking_twin(self) -> Transport {
        match self {
            Floor => FloorBlock,
            Shmchan {
                family, delivery, ..
            } => sc(family, delivery, Block, false),
            Iceoryx2Spin => Iceoryx2Event,
            Ringfire(_) => Ringfire(Block),
            t => t,
        }
    }

    /// One line on what the transport is (for `shm-bench list`).
    pub fn describe(self) -> String {
        let wait = |w: WaitKind| match w {
            Spin => "Wait::Spin",
            Adaptive => "Wait::Adaptive",
            Block => "Wait::Block",
        };
        match self {
            Floor => "raw shared memory: cache-line ping-pong / SPSC ring, spinning".into(),
            FloorBlock => "the same, sleeping on a shared futex".into(),
            Shmchan {
                family,
                delivery,
                wait: w,
                loan,
                batch,
                style,
            } => format!(
                "{}, {}, {}{}{}{}",
                match family {
                    Family::Route => "Route<T>",
                    Family::Channel => "Channel<T>",
                },
                match delivery {
                    Delivery::Overwrite => "broadcast Overflow::Overwrite",
                    Delivery::Lossless => "broadcast Overflow::Block",
                    Delivery::Unicast => "Mode::Unicast (no fan-out)",
                },
                wait(w),
                if loan { ", loan() + publish()" } else { "" },
                match style {
                    RecvStyle::Recv => "",
                    RecvStyle::Ref => ", recv_ref() (in place)",
                    RecvStyle::TryLoop => ", try_recv() in a busy loop",
                },
                if batch > 1 {
                    format!(", send_many/recv_many of {batch} (throughput only)")
                } else {
                    String::new()
                }
            ),
            ShmchanTokio {
                lossless,
                half,
                stream,
            } => format!(
                "Route<T>, broadcast Overflow::{}, {} (and send_async in ping-pong) \
                 on a tokio current_thread runtime{}",
                if lossless { "Block" } else { "Overwrite" },
                if stream {
                    "into_stream() polled with poll_next"
                } else {
                    "recv_async"
                },
                if half {
                    "; in ping-pong on the pinging side only, the echo side blocks \
                     (Wait::Block)"
                } else {
                    ""
                },
            ),
            Uds => "Unix domain stream socket, blocking".into(),
            Pipe => "named pipe (FIFO), blocking".into(),
            Iceoryx2Spin => "iceoryx2 publish-subscribe, busy-polling receive".into(),
            Iceoryx2Event => "iceoryx2 publish-subscribe woken by its event service".into(),
            Ringfire(w) => format!(
                "ringfire SPMC ring, {}",
                match w {
                    Spin => "BusySpin",
                    Adaptive => "FutexWait::default() (spins, then sleeps)",
                    Block => "FutexWait::new(0, None)",
                }
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, (name, t)) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|(n, u)| n != name && u != t),
                "{name} listed twice"
            );
            assert_eq!(t.name(), *name);
            if !t.is_peer() || cfg!(feature = "peers") {
                assert_eq!(Transport::parse(name).expect("known"), *t);
            }
        }
    }

    #[test]
    fn shmchan_variants_are_classified() {
        for &(name, t) in ALL {
            // Every twin is a listed transport that sleeps.
            let twin = t.blocking_twin();
            assert!(twin.blocking(), "{name}: twin {} spins", twin.name());
            assert_eq!(t.blocking(), !t.spins(), "{name}");
            if let Shmchan {
                family,
                delivery,
                wait,
                loan,
                batch,
                style,
            } = t
            {
                // `-ref` is the last part of the name: in place, lossless, one at a time;
                // `-try` likewise: `try_recv` in a loop, one at a time, spinning.
                let name = if let Some(base) = name.strip_suffix("-ref") {
                    assert!(style == RecvStyle::Ref && !loan && batch == 0, "{name}");
                    assert_ne!(delivery, Delivery::Overwrite, "{name}");
                    base
                } else if let Some(base) = name.strip_suffix("-try") {
                    assert!(style == RecvStyle::TryLoop && !loan && batch == 0, "{name}");
                    assert_eq!(wait, Spin, "{name}");
                    base
                } else {
                    assert_eq!(style, RecvStyle::Recv, "{name}");
                    name
                };
                // `-batchN` is the last part of the name, N the batch field.
                let (base, n) = match name.rsplit_once("-batch") {
                    Some((base, n)) => (base, n.parse::<u16>().expect("batch size")),
                    None => (name, 0),
                };
                assert_eq!(n, batch, "{name}");
                assert!(batch != 1, "{name}: a batch of one is the per-record path");
                assert!(!loan || batch == 0, "{name}: no loans in batches");
                assert_eq!(t.throughput_only(), batch > 1, "{name}");
                assert_eq!(t.batch(), usize::from(batch).max(1), "{name}");
                if batch > 1 {
                    // The same transport one record at a time is listed too.
                    let single = sc(family, delivery, wait, false);
                    assert_eq!(single.name(), base, "{name}");
                }
                let name = base;
                assert_eq!(t.blocking(), wait == Block, "{name}");
                assert_eq!(t.broadcasts(), delivery != Delivery::Unicast, "{name}");
                // Loans are offered only where they go straight into the slot.
                assert!(!loan || delivery != Delivery::Overwrite, "{name}");
                assert_eq!(
                    name.contains("-channel"),
                    family == Family::Channel,
                    "{name}"
                );
                assert_eq!(
                    name.contains("-unicast"),
                    delivery == Delivery::Unicast,
                    "{name}"
                );
                assert_eq!(
                    name.ends_with("-lossless"),
                    delivery == Delivery::Lossless && !loan,
                    "{name}"
                );
                assert_eq!(name.ends_with("-loan"), loan, "{name}");
                match twin {
                    Shmchan {
                        family: f,
                        delivery: d,
                        wait: Block,
                        loan: false,
                        batch: 0,
                        style: RecvStyle::Recv,
                    } => assert_eq!((f, d), (family, delivery), "{name}"),
                    other => panic!("{name}: twin {other:?}"),
                }
            } else {
                assert!(t.broadcasts(), "{name}");
            }
        }
    }

    #[test]
    fn batch_names_parse() {
        let t = Transport::parse("shmchan-spin-lossless-batch16").expect("listed");
        assert_eq!(t, scb(R, LOSSLESS, Spin, 16));
        assert_eq!(t.batch(), 16);
        assert_eq!(
            Transport::parse("shmchan-spin-lossless-batch256").expect("listed"),
            scb(R, LOSSLESS, Spin, 256)
        );
        assert_eq!(
            Transport::parse("shmchan-unicast-spin-batch16").expect("listed"),
            scb(R, UNICAST, Spin, 16)
        );
        assert_eq!(
            Transport::parse("shmchan-channel-spin-lossless-batch16").expect("listed"),
            scb(C, LOSSLESS, Spin, 16)
        );
        assert_eq!(
            Transport::parse("shmchan-spin-lossless")
                .expect("listed")
                .batch(),
            1
        );
        assert_eq!(Transport::Floor.batch(), 1);
        // No loans in batches, no unlisted sizes, the suffix goes last.
        for bad in [
            "shmchan-spin-loan-batch16",
            "shmchan-spin-lossless-batch",
            "shmchan-spin-lossless-batch1",
            "shmchan-spin-lossless-batch17",
            "shmchan-spin-batch16-lossless",
            "floor-batch16",
        ] {
            let e = Transport::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("unknown transport"), "{bad}: {e}");
        }
    }

    #[test]
    fn batches_are_throughput_only() {
        for &(name, t) in ALL {
            if t.throughput_only() {
                assert!(name.contains("-batch"), "{name}");
                assert!(!t.blocking_twin().throughput_only(), "{name}");
            }
        }
    }
}
