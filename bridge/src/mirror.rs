//! The importer's mirror: how each frame from the network is judged, and turned into
//! records, gaps, and the source's producer leaving or attaching.
//!
//! # Untrusted frames
//!
//! Anything on the key reaches the importer: the exporter's frames, but also a frame
//! zenoh delivers twice or late (some topologies do), a stray or broken publisher, a
//! corrupt sequence number. No frame moves the stream backwards, and none ends the
//! import, except a restart of an announced exporter whose lost records cannot be
//! counted (the crate docs, "Restarts"). Each frame is judged against where the stream
//! is ([`Mirror::judge`]):
//!
//! * It must decode ([`Header::decode`]: magic, length, flags, whole records of at most
//!   16 MiB) and carry records of the meta's size. Otherwise it is *corrupt*: counted
//!   ([`ImportStats::corrupt`], with the last reason in [`Importer::last_corrupt`](crate::Importer::last_corrupt)) and
//!   skipped.
//! * In the current epoch, frames are numbered: a frame whose number was already passed
//!   is *stale* (a repeat, or a late frame that another overtook, whose records were
//!   then published as a gap): counted ([`ImportStats::stale`]) and skipped. The stream
//!   only moves forward: a newer frame whose sequence starts below the expected one
//!   is corrupt.
//! * A forward jump becomes a gap only if it is *credible*: since the first frame the
//!   importer took, the source's sequence (and, within an epoch, the frame number) can
//!   have advanced by at most `max_rate` (default 2^32 records a second, some forty
//!   times the fastest ring measured) times the time elapsed on the importer's clock
//!   plus a minute (the first frame's own delay in the queues). The bound is
//!   cumulative, never per frame: a backlog drained in a burst (frames that waited
//!   behind a full mirror) passes, since the source cannot have outrun the clock. A jump
//!   beyond it (a flipped high bit) is corrupt and skipped, so the next true frame is
//!   taken as it would have been. A jump under the bound cannot be told from a real
//!   one: the check stops absurd gaps, it does not authenticate frames.
//! * A frame of another epoch is a restart only if that exporter announced itself: by
//!   its liveliness token (`PREFIX/exporter/EPOCH`) or the meta read at start. Until the
//!   token arrives (it may come after the first frames) such frames wait, a few and for
//!   a few seconds, then count as corrupt. Frames of an epoch the importer followed
//!   before are stale.
//!
//! # The source's producer
//!
//! The exporter says in every frame whether its source has a producer
//! ([`FLAG_NO_PRODUCER`]: its receiver read everything and got `Disconnected`; idle, it
//! repeats that state once a second). When a frame says the producer left, the
//! importer drops the mirror's sender, so local readers of the mirror drain and get
//! `Disconnected`, as readers of the source did. The first frame without the flag (a
//! producer attached again) opens the mirror's sender again, and the readers go on
//! from the new producer's records, as the source's do.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmchan::raw::{RawError, RawSender};
use shmchan::SendTimeoutError;

use crate::frame::{Header, FLAG_NO_PRODUCER, FLAG_SOURCE_SEQ};
use crate::meta::Meta;
use crate::{BridgeError, ImportStats};

/// Added to the time elapsed since the first frame when a jump is judged: that frame
/// may have waited this long in zenoh's queues before the importer took it.
const JUMP_SLACK: Duration = Duration::from_secs(60);
/// Frames of an exporter whose liveliness token has not come yet, kept at most (its
/// first frames; a stray publisher's frames wait here too, so few)...
const PENDING_MAX: usize = 64;
/// ...and at most this many bytes of them...
const PENDING_BYTES: usize = 64 << 20;
/// ...for this long.
const PENDING_HOLD: Duration = Duration::from_secs(5);
/// Epochs remembered as announced, and as followed before.
const EPOCHS_KEPT: usize = 64;

/// What the importer has done, read by [`Importer::stats`](crate::Importer::stats) while
/// it runs. Statistics only: `Relaxed` throughout, nothing is published through them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    records: AtomicU64,
    frames: AtomicU64,
    gaps: AtomicU64,
    missing: AtomicU64,
    epochs: AtomicU64,
    stale: AtomicU64,
    corrupt: AtomicU64,
    producer_left: AtomicU64,
    last_corrupt: Mutex<Option<String>>,
}

impl Counters {
    /// Why the last corrupt frame was skipped.
    pub(crate) fn last_corrupt(&self) -> Option<String> {
        self.last_corrupt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn stats(&self) -> ImportStats {
        ImportStats {
            records: self.records.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            missing: self.missing.load(Ordering::Relaxed),
            epochs: self.epochs.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            producer_left: self.producer_left.load(Ordering::Relaxed),
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
    /// The number of the last frame taken in this epoch.
    frame: u64,
    /// When the epoch's first frame was taken, and its number: where frame numbers
    /// are judged from.
    frame_origin: (Instant, u64),
}

/// What a frame does to the stream.
#[derive(Debug)]
enum Verdict {
    /// Take it: publish a gap of `gap` records, then its records; the stream is then
    /// `stream` (of a new epoch if `restart`).
    Take {
        stream: Stream,
        gap: u64,
        restart: bool,
    },
    /// Already passed (a repeat, or a late frame): skip it.
    Stale,
    /// Does not fit the stream: skip it and count it.
    Corrupt(String),
    /// Of an epoch whose exporter has not announced itself (yet): hold it.
    Unannounced,
    /// A restart whose lost records cannot be counted: end the import.
    Changed(String),
}

/// Why the import stops: asked to (while waiting for room in the mirror), or an error
/// (the mirror's sender lost its role or could not be opened again, a restart that
/// cannot be counted).
pub(crate) enum Halt {
    Stop,
    Err(BridgeError),
}

impl From<BridgeError> for Halt {
    fn from(e: BridgeError) -> Self {
        Halt::Err(e)
    }
}

/// Opens the mirror's sender (again).
pub(crate) type Open = Box<dyn FnMut() -> Result<RawSender, BridgeError> + Send>;

/// The mirror's sender and where the stream is: judges each frame and turns it into
/// records and gaps (see "Untrusted frames" and "The source's producer").
pub(crate) struct Mirror {
    /// `None` while the source has no producer.
    tx: Option<RawSender>,
    open: Open,
    key: String,
    name: String,
    record_size: usize,
    max_rate: u64,
    stream: Option<Stream>,
    /// When the first frame was taken, and its first sequence number: where jumps
    /// are judged from (the sequence goes on across the epochs the importer follows).
    origin: Option<(Instant, u64)>,
    /// Epochs whose exporter announced itself (the meta, liveliness tokens).
    announced: VecDeque<u64>,
    /// Epochs followed before the current one.
    retired: VecDeque<u64>,
    /// Frames of unannounced epochs, with when they came, and their bytes in all.
    pending: VecDeque<(Instant, Vec<u8>)>,
    pending_bytes: usize,
    /// Records missed while the source had no producer, published when one comes.
    deferred_gap: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Mirror {
    pub(crate) fn new(
        mut open: Open,
        key: String,
        name: String,
        meta: &Meta,
        max_rate: u64,
        stop: Arc<AtomicBool>,
        counters: Arc<Counters>,
    ) -> Result<Mirror, BridgeError> {
        let tx = open()?;
        Ok(Mirror {
            tx: Some(tx),
            open,
            key,
            name,
            record_size: meta.record_size,
            max_rate,
            stream: None,
            origin: None,
            announced: VecDeque::from([meta.epoch]),
            retired: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            deferred_gap: 0,
            stop,
            counters,
        })
    }

    /// Handles one frame from the network. Only a mirror that cannot be written (its
    /// sender lost or not opened again, or the stop asked for mid-write) or a restart
    /// that cannot be counted ends the import; a frame that does not fit is counted
    /// and skipped.
    pub(crate) fn frame(&mut self, bytes: &[u8], now: Instant) -> Result<(), Halt> {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let (h, records) = match Header::decode(bytes) {
            Ok(decoded) => decoded,
            Err(reason) => {
                self.corrupt(reason);
                return Ok(());
            }
        };
        match self.judge(&h, now) {
            Verdict::Take {
                stream,
                gap,
                restart,
            } => self.take(&h, records, stream, gap, restart),
            Verdict::Stale => {
                self.counters.stale.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Verdict::Corrupt(reason) => {
                self.corrupt(reason);
                Ok(())
            }
            Verdict::Unannounced => {
                while !self.pending.is_empty()
                    && (self.pending.len() >= PENDING_MAX
                        || self.pending_bytes + bytes.len() > PENDING_BYTES)
                {
                    self.unpend();
                    self.corrupt("too many frames of exporters not announced".into());
                }
                self.pending_bytes += bytes.len();
                self.pending.push_back((now, bytes.to_vec()));
                Ok(())
            }
            Verdict::Changed(reason) => Err(Halt::Err(BridgeError::SourceChanged {
                key: self.key.clone(),
                reason,
            })),
        }
    }

    /// Whether the source, at `max_rate` since `origin` (and a minute more), could
    /// have reached `to`.
    fn reachable(&self, origin: (Instant, u64), to: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(origin.0) + JUMP_SLACK;
        let most = u128::from(self.max_rate) * elapsed.as_millis() / 1000;
        u128::from(to.saturating_sub(origin.1)) <= most
    }

    /// Where `h` fits in the stream (see "Untrusted frames").
    fn judge(&self, h: &Header, now: Instant) -> Verdict {
        if h.record_size as usize != self.record_size {
            return Verdict::Corrupt(format!(
                "records of {} bytes, the meta said {}",
                h.record_size, self.record_size
            ));
        }
        let source_seq = h.flags & FLAG_SOURCE_SEQ != 0;
        let end = h.first + u64::from(h.count); // checked by `decode`
        let unreachable = |what: &str, to: u64, from: u64| {
            Verdict::Corrupt(format!(
                "{what} jumps from {from} to {to}, further than {} a second could reach",
                self.max_rate
            ))
        };
        let current = match self.stream {
            Some(s) if s.epoch == h.epoch => s,
            _ if self.retired.contains(&h.epoch) => return Verdict::Stale,
            _ if !self.announced.contains(&h.epoch) => return Verdict::Unannounced,
            None => {
                // The first frame: nothing to judge its sequence by.
                return Verdict::Take {
                    stream: Stream {
                        epoch: h.epoch,
                        source_id: h.source_id,
                        source_seq,
                        next: end,
                        frame: h.frame,
                        frame_origin: (now, h.frame),
                    },
                    gap: 0,
                    restart: true,
                };
            }
            Some(s) => {
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
                    return Verdict::Changed(reason);
                }
                let origin = self.origin.unwrap_or((now, s.next));
                if !self.reachable(origin, end, now) {
                    return unreachable("the sequence", end, s.next);
                }
                return Verdict::Take {
                    stream: Stream {
                        epoch: h.epoch,
                        next: end,
                        frame: h.frame,
                        frame_origin: (now, h.frame),
                        ..s
                    },
                    gap: h.first - s.next,
                    restart: true,
                };
            }
        };
        if h.frame <= current.frame {
            return Verdict::Stale;
        }
        if h.source_id != current.source_id || source_seq != current.source_seq {
            return Verdict::Corrupt("another source id or sequence kind within an epoch".into());
        }
        if !self.reachable(current.frame_origin, h.frame, now) {
            return unreachable("the frame number", h.frame, current.frame);
        }
        if h.first < current.next {
            // Frames of an epoch are numbered in sequence order: a newer one cannot
            // start before the end of an older one.
            return Verdict::Corrupt(format!(
                "frame {} starts at {}, before the end of frame {} ({})",
                h.frame, h.first, current.frame, current.next
            ));
        }
        let origin = self.origin.unwrap_or((now, current.next));
        if !self.reachable(origin, end, now) {
            return unreachable("the sequence", end, current.next);
        }
        Verdict::Take {
            stream: Stream {
                next: end,
                frame: h.frame,
                ..current
            },
            gap: h.first - current.next,
            restart: false,
        }
    }

    /// Applies a frame judged [`Verdict::Take`].
    fn take(
        &mut self,
        h: &Header,
        records: &[u8],
        stream: Stream,
        gap: u64,
        restart: bool,
    ) -> Result<(), Halt> {
        if restart {
            self.counters.epochs.fetch_add(1, Ordering::Relaxed);
            if let Some(old) = self.stream {
                remember(&mut self.retired, old.epoch);
            }
        }
        self.origin.get_or_insert((Instant::now(), h.first));
        self.stream = Some(stream);
        let no_producer = h.flags & FLAG_NO_PRODUCER != 0;
        self.deferred_gap += gap;
        if !no_producer && self.tx.is_none() {
            // A producer attached to the source again: so does the mirror's sender.
            self.tx = Some((self.open)()?);
        }
        if self.tx.is_some() && self.deferred_gap > 0 {
            let missing = std::mem::take(&mut self.deferred_gap);
            self.gap(missing)?;
        }
        self.write(records)?;
        if no_producer && self.tx.take().is_some() {
            // The source's producer left: the mirror's readers drain and get
            // `Disconnected`, as the source's do.
            self.counters.producer_left.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The exporter of `epoch` announced itself: its held frames are judged now.
    pub(crate) fn announce(&mut self, epoch: u64, now: Instant) -> Result<(), Halt> {
        if self.announced.contains(&epoch) {
            return Ok(());
        }
        remember(&mut self.announced, epoch);
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for (at, bytes) in pending {
            let of_epoch = Header::decode(&bytes).is_ok_and(|(h, _)| h.epoch == epoch);
            if of_epoch {
                // Counted once, when it came.
                self.counters.frames.fetch_sub(1, Ordering::Relaxed);
                self.frame(&bytes, now)?;
            } else {
                self.pending_bytes += bytes.len();
                self.pending.push_back((at, bytes));
            }
        }
        Ok(())
    }

    /// Drops the held frames whose exporter did not announce itself in time.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self
            .pending
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= PENDING_HOLD)
        {
            self.unpend();
            self.corrupt(format!(
                "a frame of an exporter whose liveliness token did not come within {PENDING_HOLD:?}"
            ));
        }
    }

    /// Drops the oldest held frame.
    fn unpend(&mut self) {
        if let Some((_, bytes)) = self.pending.pop_front() {
            self.pending_bytes -= bytes.len();
        }
    }

    fn corrupt(&self, reason: String) {
        self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
        *self
            .counters
            .last_corrupt
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    fn gap(&mut self, missing: u64) -> Result<(), Halt> {
        let Some(tx) = self.tx.as_mut() else {
            self.deferred_gap += missing;
            return Ok(());
        };
        loop {
            match tx.publish_gap_timeout(missing, Duration::from_millis(100)) {
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
            let Some(tx) = self.tx.as_mut() else {
                return Err(self.lost());
            };
            let sent = match tx.send_many_bytes_timeout(records, Duration::from_millis(100)) {
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

/// Adds `epoch` to a bounded list of epochs.
fn remember(list: &mut VecDeque<u64>, epoch: u64) {
    if list.len() >= EPOCHS_KEPT {
        list.pop_front();
    }
    list.push_back(epoch);
}

#[cfg(test)]
mod tests;
