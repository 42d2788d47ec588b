//! The importing end: frames from `PREFIX/data` into a local mirror, jumps as gaps.
//!
//! An [`Importer`] reads the exporter's meta, creates or opens the mirror, and runs a
//! worker thread that takes frames from zenoh and the exporter's liveliness tokens,
//! and hands each frame to the mirror's judge and writer (`mirror.rs`, which also
//! tells how frames from the network are trusted and how the source's producer
//! reaches the mirror's readers).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shmchan::stats::Family;
use shmchan::OpenError;
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

use crate::meta::Meta;
use crate::mirror::{Counters, Halt, Mirror};
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
    /// The fastest the source can publish, in records a second: a jump in the sequence
    /// that this rate cannot explain since the first frame (plus a minute) is a corrupt
    /// frame, not a gap. Default [`DEFAULT_MAX_RATE`]; at least 1 is used.
    pub max_rate: u64,
    /// The largest mirror the importer creates, in bytes of records (capacity times
    /// record size), whatever the exporter's meta asks for. Default 4 GiB.
    pub max_mirror_bytes: u64,
}

/// 2^32 records a second: some forty times the fastest `send_many` measured on one
/// ring, so no source reaches it.
pub const DEFAULT_MAX_RATE: u64 = 1 << 32;

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
            max_rate: DEFAULT_MAX_RATE,
            max_mirror_bytes: 4 << 30,
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
    /// Exporter incarnations followed.
    pub epochs: u64,
    /// Frames skipped as repeated or late (already passed in the stream).
    pub stale: u64,
    /// Frames skipped as corrupt: not a frame, records of another size, a sequence that
    /// goes back or jumps further than the source could, an exporter that never
    /// announced itself ([`Importer::last_corrupt`] says why, for the last one).
    pub corrupt: u64,
    /// Times the source's producer left (the mirror's sender was dropped).
    pub producer_left: u64,
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
        let bad_meta = |reason| BridgeError::BadMeta {
            key: keys.prefix.clone(),
            reason,
        };
        let layout = meta.layout().map_err(bad_meta)?;
        let capacity = match config.capacity {
            Some(c) => c as u64,
            None => meta.capacity,
        };
        // The meta comes from the network: bound the mirror it makes us create.
        meta.check(capacity, config.max_mirror_bytes)
            .map_err(bad_meta)?;
        let open = {
            let builder = config
                .mirror
                .builder(Family::Route, layout)
                .capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
                .mode(meta.mode)
                .overflow(meta.overflow)
                .max_receivers(config.max_receivers.unwrap_or(meta.max_receivers));
            let (mirror, key) = (config.mirror.clone(), keys.prefix.clone());
            move || {
                builder.clone().sender().map_err(|e| match e {
                    OpenError::Mismatch {
                        path,
                        field,
                        expected,
                        found,
                    } => BridgeError::MirrorMismatch {
                        mirror_path: path,
                        key: key.clone(),
                        field,
                        source_value: expected,
                        mirror: found,
                    },
                    OpenError::SenderExists { path, pid } => BridgeError::MirrorBusy { path, pid },
                    e => mirror.error(e),
                })
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mirror = Mirror::new(
            Box::new(open),
            keys.prefix.clone(),
            config.mirror.name.clone(),
            &meta,
            config.max_rate.max(1),
            stop.clone(),
            counters.clone(),
        )?;
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
        let worker = Worker {
            mirror,
            data,
            alive,
            alive_root: format!("{}/", keys.alive),
            linger: config.linger,
            stop: stop.clone(),
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
        self.counters.stats()
    }

    /// Why the last corrupt frame ([`ImportStats::corrupt`]) was skipped.
    pub fn last_corrupt(&self) -> Option<String> {
        self.counters.last_corrupt()
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

struct Worker {
    mirror: Mirror,
    data: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    alive: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    /// `PREFIX/exporter/`: a token's key is this and the exporter's epoch in hex.
    alive_root: String,
    linger: Duration,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> Result<ImportEnd, BridgeError> {
        match self.follow() {
            Ok(end) => Ok(end),
            Err(Halt::Stop) => Ok(ImportEnd::Stopped),
            Err(Halt::Err(e)) => Err(e),
        }
    }

    fn follow(&mut self) -> Result<ImportEnd, Halt> {
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
            // Tokens first: a new exporter's frame is taken once its token is known.
            while let Ok(Some(s)) = self.alive.try_recv() {
                let key = s.key_expr().to_string();
                match s.kind() {
                    SampleKind::Put => {
                        let epoch = key
                            .strip_prefix(&self.alive_root)
                            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
                        if let Some(epoch) = epoch {
                            self.mirror.announce(epoch, Instant::now())?;
                        }
                        tokens.insert(key);
                    }
                    SampleKind::Delete => {
                        tokens.remove(&key);
                    }
                }
            }
            let now = Instant::now();
            if let Some(sample) = sample {
                self.mirror.frame(&sample.payload().to_bytes(), now)?;
            }
            self.mirror.expire(now);
            if tokens.is_empty() {
                let since = *gone_since.get_or_insert(now);
                if since.elapsed() >= self.linger {
                    // Dropping the mirror's sender (with `self`) ends its stream.
                    return Ok(ImportEnd::SourceGone);
                }
            } else {
                gone_since = None;
            }
        }
    }
}
