//! The importing end: frames from `PREFIX/data` into a local mirror, jumps as gaps.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmchan::raw::{RawError, RawSender};
use shmchan::stats::Family;
use shmchan::{OpenError, SendTimeoutError};
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

use crate::frame::{Header, FLAG_SOURCE_SEQ};
use crate::meta::Meta;
use crate::{BridgeError, Keys, Network, SegmentRef};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The local mirror (created if absent, with the source's layout and policy).
    pub mirror: SegmentRef,
    /// The key prefix the source is exported on.
    pub key: String,
    /// Endpoints.
    pub network: Network,
    /// How long the exporter's liveliness may be gone before the importer ends the
    /// mirror's stream (far readers then get `Disconnected`). Default 5 s.
    pub linger: Duration,
    /// How long to wait for the exporter's meta at start. Default 5 s.
    pub meta_timeout: Duration,
    /// The mirror's capacity (default: the source's).
    pub capacity: Option<usize>,
    /// The mirror's receiver table size (default: the source's).
    pub max_receivers: Option<usize>,
    /// Frames buffered between zenoh and the mirror before the link is held back.
    pub queue: usize,
}

impl ImportConfig {
    /// Imports `key` into `mirror` with default options.
    pub fn new(mirror: SegmentRef, key: &str, network: Network) -> ImportConfig {
        ImportConfig {
            mirror,
            key: key.to_owned(),
            network,
            linger: Duration::from_secs(5),
            meta_timeout: Duration::from_secs(5),
            capacity: None,
            max_receivers: None,
            queue: 256,
        }
    }
}

/// How an importer ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportEnd {
    /// [`Importer::stop`] was called.
    Stopped,
    /// The exporter's liveliness was gone for the linger time: the mirror's sender was
    /// dropped, so far readers drain and get `Disconnected`.
    SourceGone,
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    frames: AtomicU64,
    gaps: AtomicU64,
    missing: AtomicU64,
    epochs: AtomicU64,
}

/// What an importer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportStats {
    /// Records written into the mirror.
    pub records: u64,
    /// Frames received.
    pub frames: u64,
    /// Gaps published into the mirror (each a `Lagged(n)` for the far readers).
    pub gaps: u64,
    /// Records missing, the sum of the gaps.
    pub missing: u64,
    /// Exporter incarnations seen.
    pub epochs: u64,
}

/// A running importer. Stop it with [`Importer::stop`], or wait for its end with
/// [`Importer::wait`]; dropping it stops it.
#[derive(Debug)]
pub struct Importer {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<ImportEnd, BridgeError>>>,
    counters: Arc<Counters>,
    meta: Meta,
    session: zenoh::Session,
}

/// Asks `PREFIX/meta` until an exporter answers or `timeout` passes.
fn fetch_meta(
    session: &zenoh::Session,
    keys: &Keys,
    timeout: Duration,
) -> Result<Meta, BridgeError> {
    let start = Instant::now();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let replies = session
            .get(keys.meta.clone())
            .timeout(left.clamp(Duration::from_millis(1), Duration::from_millis(500)))
            .wait()
            .map_err(|e| BridgeError::zenoh(format!("querying {}", keys.meta), e))?;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                return Meta::from_json(&sample.payload().to_bytes()).map_err(|reason| {
                    BridgeError::BadMeta {
                        key: keys.prefix.clone(),
                        reason,
                    }
                });
            }
        }
        if start.elapsed() >= timeout {
            return Err(BridgeError::NoExporter {
                key: keys.prefix.clone(),
                waited: timeout,
            });
        }
        // No queryable yet (its declaration may still be on its way): ask again.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Importer {
    /// Checks the key, opens the zenoh session (an error if a peer is unreachable),
    /// reads the exporter's meta, creates or opens the mirror as its only sender, and
    /// starts writing into it. Every bad input is an error here.
    pub fn start(config: ImportConfig) -> Result<Importer, BridgeError> {
        let keys = Keys::new(&config.key)?;
        let session = config.network.open()?;
        let meta = fetch_meta(&session, &keys, config.meta_timeout)?;
        let layout = meta.layout().map_err(|reason| BridgeError::BadMeta {
            key: keys.prefix.clone(),
            reason,
        })?;
        let capacity = config
            .capacity
            .unwrap_or(usize::try_from(meta.capacity).unwrap_or(usize::MAX));
        let tx = config
            .mirror
            .builder(Family::Route, layout)
            .capacity(capacity)
            .mode(meta.mode)
            .overflow(meta.overflow)
            .max_receivers(config.max_receivers.unwrap_or(meta.max_receivers))
            .sender()
            .map_err(|e| match e {
                OpenError::Mismatch {
                    path,
                    field,
                    expected,
                    found,
                } => BridgeError::MirrorMismatch {
                    mirror_path: path,
                    key: keys.prefix.clone(),
                    field,
                    source_value: expected,
                    mirror: found,
                },
                OpenError::SenderExists { path, pid } => BridgeError::MirrorBusy { path, pid },
                e => config.mirror.error(e),
            })?;
        let data = session
            .declare_subscriber(keys.data.clone())
            .with(FifoChannel::new(config.queue.max(1)))
            .wait()
            .map_err(|e| BridgeError::zenoh(format!("subscribing to {}", keys.data), e))?;
        let alive = session
            .liveliness()
            .declare_subscriber(format!("{}/*", keys.alive))
            .history(true)
            .wait()
            .map_err(|e| BridgeError::zenoh("subscribing to the exporter's liveliness", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            tx,
            data,
            alive,
            keys,
            linger: config.linger,
            record_size: meta.record_size,
            stream: None,
            name: config.mirror.name.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
        };
        let worker = std::thread::Builder::new()
            .name("shmchan-import".into())
            .spawn(move || worker.run())
            .map_err(|e| BridgeError::zenoh("spawning the importer thread", e))?;
        Ok(Importer {
            stop,
            worker: Some(worker),
            counters,
            meta,
            session,
        })
    }

    /// The exporter's description of the source, as read at start.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// What it has done so far.
    pub fn stats(&self) -> ImportStats {
        let c = &self.counters;
        ImportStats {
            records: c.records.load(Ordering::Relaxed),
            frames: c.frames.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            missing: c.missing.load(Ordering::Relaxed),
            epochs: c.epochs.load(Ordering::Relaxed),
        }
    }

    /// Whether the importer has ended ([`Importer::wait`] tells how).
    pub fn is_finished(&self) -> bool {
        self.worker.as_ref().is_none_or(|w| w.is_finished())
    }

    /// Waits until the importer ends by itself (the exporter gone for the linger time,
    /// or an error), then closes the session.
    pub fn wait(mut self) -> Result<ImportEnd, BridgeError> {
        let result = match self.worker.take() {
            Some(w) => w.join().unwrap_or(Err(BridgeError::Panicked)),
            None => Ok(ImportEnd::Stopped),
        };
        let _ = self.session.close().wait();
        result
    }

    /// Stops the importer (the mirror's sender is dropped: far readers drain and get
    /// `Disconnected`) and closes the session.
    pub fn stop(self) -> Result<ImportEnd, BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }
}

impl Drop for Importer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
            let _ = self.session.close().wait();
        }
    }
}

/// Where the current exporter's stream is.
#[derive(Debug, Clone, Copy)]
struct Stream {
    epoch: u64,
    source_id: u64,
    source_seq: bool,
    /// The sequence number the next record should have.
    next: u64,
}

struct Worker {
    tx: RawSender,
    data: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    alive: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    keys: Keys,
    linger: Duration,
    record_size: usize,
    stream: Option<Stream>,
    name: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

/// The mirror's sender lost its role, or the importer was asked to stop mid-write.
enum Halt {
    Stop,
    Err(BridgeError),
}

impl From<BridgeError> for Halt {
    fn from(e: BridgeError) -> Self {
        Halt::Err(e)
    }
}

impl Worker {
    fn run(mut self) -> Result<ImportEnd, BridgeError> {
        let mut tokens: HashSet<String> = HashSet::new();
        // Until the first token arrives (history replays it at once), count as gone
        // since the start: an exporter that vanished meanwhile ends the import.
        let mut gone_since = Some(Instant::now());
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(ImportEnd::Stopped);
            }
            let sample = self
                .data
                .recv_timeout(Duration::from_millis(50))
                .map_err(|e| BridgeError::zenoh("receiving frames", e))?;
            if let Some(sample) = sample {
                match self.frame(&sample.payload().to_bytes()) {
                    Ok(()) => {}
                    Err(Halt::Stop) => return Ok(ImportEnd::Stopped),
                    Err(Halt::Err(e)) => return Err(e),
                }
            }
            while let Ok(Some(s)) = self.alive.try_recv() {
                let key = s.key_expr().to_string();
                match s.kind() {
                    SampleKind::Put => tokens.insert(key),
                    SampleKind::Delete => tokens.remove(&key),
                };
            }
            if tokens.is_empty() {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.linger {
                    // Dropping `self.tx` (with `self`) ends the mirror's stream.
                    return Ok(ImportEnd::SourceGone);
                }
            } else {
                gone_since = None;
            }
        }
    }

    fn bad(&self, reason: String) -> Halt {
        Halt::Err(BridgeError::BadFrame {
            key: self.keys.prefix.clone(),
            reason,
        })
    }

    fn frame(&mut self, bytes: &[u8]) -> Result<(), Halt> {
        let (h, records) = Header::decode(bytes).map_err(|r| self.bad(r))?;
        if h.record_size as usize != self.record_size {
            return Err(self.bad(format!(
                "records of {} bytes, the meta said {}",
                h.record_size, self.record_size
            )));
        }
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let source_seq = h.flags & FLAG_SOURCE_SEQ != 0;
        let mut stream = match self.stream {
            None => {
                self.counters.epochs.fetch_add(1, Ordering::Relaxed);
                Stream {
                    epoch: h.epoch,
                    source_id: h.source_id,
                    source_seq,
                    next: h.first,
                }
            }
            Some(s) if s.epoch != h.epoch => {
                // A new exporter. Only a broadcast source that is still the same
                // segment lets us count what no exporter read: its ring's sequence
                // went on meanwhile.
                let reason = if s.source_id != h.source_id {
                    Some("another source segment (recreated, or another one)".to_owned())
                } else if !(source_seq && s.source_seq) {
                    Some("a unicast source (its sequence restarts with each exporter)".to_owned())
                } else if h.first < s.next {
                    Some(format!(
                        "a sequence that went back (from {} to {})",
                        s.next, h.first
                    ))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Halt::Err(BridgeError::SourceChanged {
                        key: self.keys.prefix.clone(),
                        reason,
                    }));
                }
                self.counters.epochs.fetch_add(1, Ordering::Relaxed);
                Stream {
                    epoch: h.epoch,
                    next: s.next,
                    ..s
                }
            }
            Some(s) => s,
        };
        let mut records = records;
        if h.first > stream.next {
            self.gap(h.first - stream.next)?;
            stream.next = h.first;
        } else if h.first < stream.next {
            // Already written (cannot happen on a reliable link; never write twice).
            let dup = (stream.next - h.first).min(u64::from(h.count)) as usize;
            records = &records[dup * self.record_size..];
        }
        self.write(records)?;
        stream.next = h.first + u64::from(h.count);
        self.stream = Some(stream);
        Ok(())
    }

    fn gap(&mut self, missing: u64) -> Result<(), Halt> {
        loop {
            match self
                .tx
                .publish_gap_timeout(missing, Duration::from_millis(100))
            {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(())) if !self.stop.load(Ordering::Relaxed) => {}
                Err(SendTimeoutError::Timeout(())) => return Err(Halt::Stop),
                Err(_) => return Err(self.lost()),
            }
        }
        self.counters.gaps.fetch_add(1, Ordering::Relaxed);
        self.counters.missing.fetch_add(missing, Ordering::Relaxed);
        Ok(())
    }

    fn write(&mut self, mut records: &[u8]) -> Result<(), Halt> {
        while !records.is_empty() {
            let sent = match self
                .tx
                .send_many_bytes_timeout(records, Duration::from_millis(100))
            {
                Ok(n) => n,
                Err(RawError::Channel(SendTimeoutError::Timeout(n))) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(Halt::Stop);
                    }
                    n
                }
                Err(_) => return Err(self.lost()),
            };
            self.counters
                .records
                .fetch_add(sent as u64, Ordering::Relaxed);
            records = &records[sent * self.record_size..];
        }
        Ok(())
    }

    fn lost(&self) -> Halt {
        Halt::Err(BridgeError::MirrorLost {
            name: self.name.clone(),
        })
    }
}
