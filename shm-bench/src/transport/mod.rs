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
mod open;
pub mod os;
#[cfg(feature = "peers")]
pub mod ringfire;
pub mod shmchan;
pub mod shmchan_async;

pub use open::*;

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

#[cfg(test)]
mod tests;
