//! The exporting end: a receiver on the local source, frames on `PREFIX/data`.
//!
//! Frames are numbered in their epoch and say whether the source has a producer: when
//! the exporter's receiver has read everything and gets `Disconnected` (the producer
//! left), a frame with [`FLAG_NO_PRODUCER`] tells the importers, whose far readers then
//! get `Disconnected` too; when the receiver stops getting `Disconnected` (a producer
//! attached), the next frame, without the flag, tells them it is back. Idle, the
//! exporter repeats the state in an empty frame once a second (`HEARTBEAT`), so an
//! importer that started meanwhile, or missed a frame while the link was down, learns
//! it.
//!
//! An exporter started after the source's producer left has a receiver that joined
//! without a producer: like any receiver that joined then, it waits rather than get
//! `Disconnected`. The far readers, though, were there before (on the mirror), so the
//! exporter tells them from the segment's table ([`Observer`]): a producer attached
//! once and none is alive. It asks the table again on each idle poll until a
//! producer attaches (or records come).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shmchan::raw::{RawError, RawReceiver};
use shmchan::stats::{Family, Observer, SegmentInfo};
use shmchan::{Mode, Overflow, RecvTimeoutError};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::frame::{Header, FLAG_NO_PRODUCER, FLAG_SOURCE_SEQ, MAX_RECORDS_LEN};
use crate::meta::Meta;
use crate::{BridgeError, Keys, Network, SegmentRef};

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The local source segment (it must exist).
    pub source: SegmentRef,
    /// The key prefix: frames on `PREFIX/data`, meta on `PREFIX/meta`.
    pub key: String,
    /// Endpoints.
    pub network: Network,
    /// Export a lossless source (`Overflow::Block`, or `Mode::Unicast`) although a
    /// stalled link then stops its producer.
    pub lossless: bool,
    /// At most this many records per frame (default: as many as fit in 64 KiB, at
    /// least one; never more than fit in 16 MiB, the most a frame carries).
    pub max_batch: Option<usize>,
    /// A pause after each frame: caps the exporter's rate (a slow link, in tests).
    pub pace: Duration,
}

impl ExportConfig {
    /// Exports `source` on `key` with default options.
    pub fn new(source: SegmentRef, key: &str, network: Network) -> ExportConfig {
        ExportConfig {
            source,
            key: key.to_owned(),
            network,
            lossless: false,
            max_batch: None,
            pace: Duration::ZERO,
        }
    }
}

/// Counters of an exporter, readable while it runs.
#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    frames: AtomicU64,
    lagged: AtomicU64,
}

/// What an exporter has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    /// Records read from the source and published.
    pub records: u64,
    /// Frames published.
    pub frames: u64,
    /// Records the exporter's receiver missed (the sum of its `Lagged(n)`), sent on as
    /// sequence jumps.
    pub lagged: u64,
}

/// A running exporter: a thread that reads the source and publishes frames, a
/// queryable for the meta, and a liveliness token. Stop it with [`Exporter::stop`];
/// dropping it stops it too.
#[derive(Debug)]
pub struct Exporter {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<(), BridgeError>>>,
    counters: Arc<Counters>,
    epoch: u64,
    publisher: Arc<zenoh::pubsub::Publisher<'static>>,
    // Dropped after the worker stopped: undeclaring them tells importers.
    token: Option<zenoh::liveliness::LivelinessToken>,
    queryable: Option<zenoh::query::Queryable<()>>,
    session: zenoh::Session,
}

/// An idle exporter publishes an empty frame this often: it repeats whether the source
/// has a producer.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// A fresh random epoch.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether a producer of `info` waits for its receivers (so for the exporter).
fn is_lossless(info: &SegmentInfo) -> Option<&'static str> {
    match (info.mode, info.overflow) {
        (Mode::Unicast, _) => Some("Mode::Unicast"),
        (Mode::Broadcast, Overflow::Block) => Some("Overflow::Block"),
        _ => None,
    }
}

/// Whether the source had a producer once and has no live one now.
fn producer_left(observer: &Observer) -> bool {
    observer
        .stats()
        .is_ok_and(|s| s.sender_attaches > 0 && !s.producers.iter().any(|p| p.alive))
}

fn open_receiver(source: &SegmentRef, info: &SegmentInfo) -> Result<RawReceiver, BridgeError> {
    let builder = source
        .builder(info.family, info.layout())
        .capacity(usize::try_from(info.capacity).unwrap_or(usize::MAX))
        .mode(info.mode)
        .overflow(info.overflow)
        .max_receivers(info.max_receivers);
    let builder = match info.family {
        Family::Channel => builder.max_producers(info.max_producers),
        Family::Route => builder,
    };
    builder.receiver().map_err(|e| source.error(e))
}

impl Exporter {
    /// Checks everything (key, source, policy, endpoints), joins the source as a
    /// receiver, opens the zenoh session, declares the publisher, the meta queryable and
    /// the liveliness token, and starts publishing. Every bad input is an error here.
    pub fn start(config: ExportConfig) -> Result<Exporter, BridgeError> {
        let keys = Keys::new(&config.key)?;
        let info = config.source.inspect()?;
        if let Some(policy) = is_lossless(&info) {
            if !config.lossless {
                return Err(BridgeError::LosslessSource {
                    name: config.source.name.clone(),
                    policy,
                });
            }
        }
        if info.record_size > MAX_RECORDS_LEN {
            return Err(BridgeError::RecordTooLarge {
                name: config.source.name.clone(),
                size: info.record_size,
                max: MAX_RECORDS_LEN,
            });
        }
        let rx = open_receiver(&config.source, &info)?;
        // After the receiver joined: a producer that attaches later is seen by both.
        let left_before = Observer::open_path(config.source.file())
            .ok()
            .filter(producer_left);
        let session = config.network.open()?;
        let epoch = new_epoch();
        let meta = Meta::of(&info, epoch);

        // One exporter per key: a second one would interleave two sequences.
        let others = session
            .liveliness()
            .get(format!("{}/*", keys.alive))
            .timeout(Duration::from_millis(300))
            .wait()
            .map_err(|e| BridgeError::zenoh("asking for other exporters", e))?;
        while let Ok(reply) = others.recv() {
            if let Ok(sample) = reply.result() {
                return Err(BridgeError::KeyTaken {
                    key: keys.prefix.clone(),
                    token: sample.key_expr().to_string(),
                });
            }
        }

        // `Reliable` is zenoh's default for publishers (setting it explicitly needs its
        // `unstable` feature); `Block` makes a full link wait instead of dropping.
        let publisher = session
            .declare_publisher(keys.data.clone())
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| {
                BridgeError::zenoh(format!("declaring the publisher on {}", keys.data), e)
            })?;
        let json = meta.to_json();
        let queryable = session
            .declare_queryable(keys.meta.clone())
            .callback(move |query| {
                // A failed reply is the querier's problem (it times out).
                let _ = query.reply(query.key_expr().clone(), json.clone()).wait();
            })
            .wait()
            .map_err(|e| BridgeError::zenoh(format!("declaring the queryable {}", keys.meta), e))?;
        let token = session
            .liveliness()
            .declare_token(format!("{}/{epoch:016x}", keys.alive))
            .wait()
            .map_err(|e| BridgeError::zenoh("declaring the liveliness token", e))?;

        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let publisher = Arc::new(publisher);
        let worker = Worker {
            rx,
            publisher: publisher.clone(),
            header: Header {
                record_size: u32::try_from(info.record_size).unwrap_or(u32::MAX),
                epoch,
                source_id: meta.source_id,
                frame: 0,
                first: 0,
                count: 0,
                flags: if info.mode == Mode::Broadcast {
                    FLAG_SOURCE_SEQ
                } else {
                    0
                },
            },
            record_size: info.record_size,
            max_batch: config
                .max_batch
                .unwrap_or((64 * 1024 / info.record_size.max(1)).max(1))
                .clamp(1, (MAX_RECORDS_LEN / info.record_size.max(1)).max(1)),
            no_producer: left_before.is_some(),
            left_before,
            last_publish: std::time::Instant::now(),
            pace: config.pace,
            name: config.source.name.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("shmchan-export".into())
            .spawn(move || worker.run())
            .map_err(|e| BridgeError::zenoh("spawning the exporter thread", e))?;
        Ok(Exporter {
            stop,
            worker: Some(worker),
            counters,
            epoch,
            publisher,
            token: Some(token),
            queryable: Some(queryable),
            session,
        })
    }

    /// This exporter's incarnation (the frames' epoch).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Waits until at least one importer's subscription has reached this exporter
    /// (frames published before that reach nobody); `false` after `timeout`.
    pub fn wait_for_importers(&self, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self
                .publisher
                .matching_status()
                .wait()
                .is_ok_and(|m| m.matching())
            {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> ExportStats {
        ExportStats {
            records: self.counters.records.load(Ordering::Relaxed),
            frames: self.counters.frames.load(Ordering::Relaxed),
            lagged: self.counters.lagged.load(Ordering::Relaxed),
        }
    }

    /// Whether the worker has ended (an error: see [`Exporter::stop`]).
    pub fn is_finished(&self) -> bool {
        self.worker.as_ref().is_none_or(|w| w.is_finished())
    }

    /// Stops publishing, withdraws the liveliness token and the queryable, closes the
    /// session; returns what it did, or the error that ended it earlier.
    pub fn stop(mut self) -> Result<ExportStats, BridgeError> {
        self.shutdown()?;
        Ok(self.stats())
    }

    fn shutdown(&mut self) -> Result<(), BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        let result = match self.worker.take() {
            Some(w) => w.join().unwrap_or(Err(BridgeError::Panicked)),
            None => Ok(()),
        };
        if let Some(token) = self.token.take() {
            let _ = token.undeclare().wait();
        }
        if let Some(q) = self.queryable.take() {
            let _ = q.undeclare().wait();
        }
        let _ = self.session.close().wait();
        result
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.shutdown();
        }
    }
}

struct Worker {
    rx: RawReceiver,
    publisher: Arc<zenoh::pubsub::Publisher<'static>>,
    header: Header,
    record_size: usize,
    max_batch: usize,
    pace: Duration,
    /// The source had no producer at the last frame.
    no_producer: bool,
    /// The source's producer had left when the exporter started, and none came since
    /// (see the module docs).
    left_before: Option<Observer>,
    last_publish: std::time::Instant,
    name: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Worker {
    fn run(mut self) -> Result<(), BridgeError> {
        let mut buf = vec![0u8; self.max_batch * self.record_size];
        // Broadcast: the source ring's own sequence, which a later exporter continues.
        let mut seq = if self.header.flags & FLAG_SOURCE_SEQ != 0 {
            self.rx.next_seq()
        } else {
            0
        };
        // Announce where this epoch starts (a restart's gap shows at once).
        self.publish(seq, &[])?;
        while !self.stop.load(Ordering::Relaxed) {
            let received = self
                .rx
                .recv_many_into_timeout(&mut buf, Duration::from_millis(50));
            let disconnected = match &received {
                Err(RawError::Channel(RecvTimeoutError::Disconnected)) => true,
                Err(RawError::Channel(RecvTimeoutError::Timeout)) if self.left_before.is_some() => {
                    let still = self.left_before.as_ref().is_some_and(producer_left);
                    if !still {
                        self.left_before = None;
                    }
                    still
                }
                _ => {
                    self.left_before = None;
                    false
                }
            };
            if self.no_producer != disconnected {
                // The producer left (everything it published was read), or one came.
                self.no_producer = disconnected;
                self.publish(seq, &[])?;
            }
            match received {
                Ok(n) => {
                    let records = &buf[..n * self.record_size];
                    self.publish(seq, records)?;
                    seq += n as u64;
                    self.counters.records.fetch_add(n as u64, Ordering::Relaxed);
                    if !self.pace.is_zero() {
                        std::thread::sleep(self.pace);
                    }
                }
                Err(RawError::Channel(RecvTimeoutError::Lagged(n))) => {
                    // Missed here: a jump of n in the frames.
                    seq += n;
                    self.counters.lagged.fetch_add(n, Ordering::Relaxed);
                    self.publish(seq, &[])?;
                }
                Err(RawError::Channel(RecvTimeoutError::Timeout)) => {
                    if self.last_publish.elapsed() >= HEARTBEAT {
                        self.publish(seq, &[])?;
                    }
                }
                // The source's producer left (told above); a new one may attach.
                Err(RawError::Channel(RecvTimeoutError::Disconnected)) => {
                    if self.last_publish.elapsed() >= HEARTBEAT {
                        self.publish(seq, &[])?;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(RawError::Channel(RecvTimeoutError::Evicted)) => {
                    return Err(BridgeError::Evicted { name: self.name });
                }
                Err(e) => {
                    return Err(BridgeError::Receive {
                        name: self.name,
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    fn publish(&mut self, first: u64, records: &[u8]) -> Result<(), BridgeError> {
        let header = Header {
            first,
            count: (records.len() / self.record_size.max(1)) as u32,
            flags: self.header.flags
                | if self.no_producer {
                    FLAG_NO_PRODUCER
                } else {
                    0
                },
            ..self.header
        };
        self.publisher
            .put(header.encode(records))
            .wait()
            .map_err(|e| BridgeError::zenoh("publishing a frame", e))?;
        self.header.frame += 1;
        self.last_publish = std::time::Instant::now();
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
