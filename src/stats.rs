//! Looking inside a live segment without taking part in it: the stats API behind the
//! `shmchan` command-line tool.
//!
//! An [`Observer`] opens an existing segment of *any* record type by name or path,
//! validates its header (bounding every value, recomputing the layout from the
//! fingerprint), and then reads [`Stats`] from it lock-free, as often as you like:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmchan::{stats::Observer, Route};
//!
//! # let name = format!("doc-stats-{}", std::process::id());
//! let mut tx = Route::<u64>::sender(&name)?;
//! let mut rx = Route::<u64>::receiver(&name)?;
//! tx.send(1)?;
//! tx.send(2)?;
//! rx.recv()?;
//!
//! let observer = Observer::open(&name)?;
//! let stats = observer.stats()?;
//! assert_eq!(stats.published, 2);
//! assert_eq!(stats.receivers.len(), 1);
//! assert_eq!(stats.receivers[0].lag, 1); // one record not yet received
//! assert!(stats.receivers[0].alive);
//! assert!(!stats.stale);
//! # drop((tx, rx)); Route::<u64>::remove(&name)?;
//! # Ok(()) }
//! ```
//!
//! # Not a participant
//!
//! An observer never writes to the segment and holds no lock on it: it copies the
//! header, the control block and the receiver table into local memory with `pread`.
//! So it does not slow the producer (it reads lines the producer already shares with
//! its receivers, rarely), does not make a dead segment look alive, and cannot be
//! crashed by a segment that is truncated or re-created under it (that is an error).
//! Everything it reads is untrusted: a hostile or torn value shows as a wrong number,
//! never as an out-of-bounds access.
//!
//! The exception is [`Observer::tail`], which maps the slots read-only to read records
//! and holds a shared lock while the [`Tail`] lives (see there).
//!
//! # What is counted, and what it costs
//!
//! | value | written by | when |
//! |---|---|---|
//! | [`Stats::head`], [`Stats::published`] | the producer (`head`, on its own cache line) | every send; it is the ring's own cursor, no extra store |
//! | [`ReceiverStats::cursor`] | each receiver (its own table entry) | every receive; the ring's own cursor |
//! | [`ReceiverStats::lagged`] | each receiver (its own entry) | only when it lags |
//! | [`ProducerStats::records`] (`Channel`) | each producer (its own table entry) | every send: a relaxed load and store of a word on the producer's own line |
//! | [`Stats::evictions`], [`Stats::joins`], [`Stats::sender_attaches`], [`Stats::dead_claims`], [`Stats::rescued`] | anyone, on the rarely written membership line | attach, join, eviction, a dead producer's or receiver's claim |
//!
//! Apart from a `Channel` producer's record count, no counter is on a hot path: each
//! value is a cursor the algorithm needs anyway, or is written only on a cold path. A
//! `Route`'s sender keeps no count of its own ([`ProducerStats::records`] is `None`):
//! the segment's [`Stats::published`] counts every record its senders published.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::OpenError;
use crate::layout::{Control, ProducerEntry, ReceiverEntry};
use crate::options::{self, Family as FamilyCode, Mode, Overflow};
use crate::process;
use crate::ring::broadcast::{self, Read};
use crate::segment::{self, Observed, ObservedMap};
use crate::sync::Ordering;

/// Where named segments live: `/dev/shm`.
pub const DEFAULT_DIR: &str = options::SHM_DIR;

/// Prefix of segment file names: the segment `quotes` is the file `shmchan.quotes`.
pub const FILE_PREFIX: &str = options::FILE_PREFIX;

/// How long [`Observer::tail`] waits for a process that is initialising the segment.
const TAIL_OPEN_TIMEOUT: Duration = crate::options::DEFAULT_OPEN_TIMEOUT;

/// The family of a segment: one producer or many.
///
/// ```
/// use shmchan::stats::Family;
/// assert_eq!(Family::Route.to_string(), "Route");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// [`Route<T>`](crate::Route): exactly one producer.
    Route,
    /// [`Channel<T>`](crate::Channel): many producers.
    Channel,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Route => "Route",
            Family::Channel => "Channel",
        })
    }
}

/// What a segment is: everything its header says. Fixed when the segment was created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// One producer or many.
    pub family: Family,
    /// Broadcast or unicast.
    pub mode: Mode,
    /// The overflow policy (meaningful in broadcast mode).
    pub overflow: Overflow,
    /// The record type's name (without module path) or its schema id.
    pub type_name: String,
    /// Size of a record in bytes.
    pub record_size: usize,
    /// Alignment of a record in bytes.
    pub record_align: usize,
    /// Number of slots in the ring.
    pub capacity: u64,
    /// Size of the receiver table.
    pub max_receivers: usize,
    /// Bytes of the segment file.
    pub file_len: u64,
    /// When the segment was (last) initialised.
    pub created_at: SystemTime,
    /// The process that initialised it.
    pub creator_pid: u32,
}

/// A snapshot of a segment's counters and participants. See the [module
/// docs](self) for who writes each value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// When the snapshot was taken (for rates: [`Stats::rate_since`]).
    pub taken_at: Instant,
    /// The sequence number the next record will get.
    pub head: u64,
    /// Records published since the segment was created: [`Stats::head`] less the
    /// sequence numbers claimed by producers that died before publishing
    /// ([`Stats::dead_claims`], `Channel` only).
    pub published: u64,
    /// Unicast: records published and not yet taken by any receiver (`None` in
    /// broadcast mode, where each receiver has its own [`ReceiverStats::lag`]).
    pub backlog: Option<u64>,
    /// No process holds the segment open: every participant died (or left without
    /// removing it). The next opener re-creates it; `shmchan gc` removes it.
    pub stale: bool,
    /// The producers: for a `Route`, the sender holding the segment's sender role, if
    /// any (a dead one until a receiver or the next sender clears its claim); for a
    /// `Channel`, the entries of its producer table, alive or dead.
    pub producers: Vec<ProducerStats>,
    /// The receivers holding an entry of the receiver table, alive or dead (a dead one
    /// keeps its entry until it is evicted).
    pub receivers: Vec<ReceiverStats>,
    /// How many times a sender attached (took the sender role).
    pub sender_attaches: u64,
    /// How many times a receiver joined.
    pub joins: u64,
    /// Receivers evicted because their process died.
    pub evictions: u64,
    /// `Channel`: sequence numbers claimed by a producer that died (or stalled) before
    /// publishing, which receivers skipped. Nothing the live producers sent is lost:
    /// a stalled producer re-sends under a new number.
    pub dead_claims: u64,
    /// Unicast: records a receiver took and died with, delivered to another receiver.
    pub rescued: u64,
}

/// One producer of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Its entry in the producer table (`Channel`); `None` for a `Route`'s sender.
    pub index: Option<usize>,
    /// Its process id.
    pub pid: u32,
    /// Whether its process is alive (same pid *and* start time).
    pub alive: bool,
    /// Records this producer published (`Channel`). `None` for a `Route`, whose
    /// sender keeps no count of its own: see [`Stats::published`].
    pub records: Option<u64>,
}

/// One receiver of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// Its entry in the receiver table.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Whether its process is alive (same pid *and* start time).
    pub alive: bool,
    /// The sequence number it will read next.
    pub cursor: u64,
    /// Broadcast: records published that it has not read, `head - cursor`; in
    /// Overwrite mode those more than `capacity` behind are already lost to it.
    /// Unicast: the shared [`Stats::backlog`], which any receiver may take.
    pub lag: u64,
    /// Records it skipped because it lagged (its `RecvError::Lagged` total).
    pub lagged: u64,
}

impl Stats {
    /// Receivers whose process is alive.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-live-{}", std::process::id());
    /// let rx = shmchan::Route::<u32>::receiver(&name)?;
    /// let stats = shmchan::stats::Observer::open(&name)?.stats()?;
    /// assert_eq!((stats.live_receivers(), stats.dead_receivers()), (1, 0));
    /// # drop(rx); shmchan::Route::<u32>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn live_receivers(&self) -> usize {
        self.receivers.iter().filter(|r| r.alive).count()
    }

    /// Receivers whose process died but still hold an entry.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-dead-{}", std::process::id());
    /// let _tx = shmchan::Route::<u32>::sender(&name)?;
    /// let stats = shmchan::stats::Observer::open(&name)?.stats()?;
    /// assert_eq!(stats.dead_receivers(), 0);
    /// # drop(_tx); shmchan::Route::<u32>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn dead_receivers(&self) -> usize {
        self.receivers.iter().filter(|r| !r.alive).count()
    }

    /// Records published per second between `earlier` and this snapshot. `None` if
    /// `earlier` is not earlier, or the counter went backwards (the segment was
    /// re-created).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-rate-{}", std::process::id());
    /// let mut tx = shmchan::Route::<u64>::sender(&name)?;
    /// let observer = shmchan::stats::Observer::open(&name)?;
    /// let before = observer.stats()?;
    /// for i in 0..1000 {
    ///     tx.send(i)?;
    /// }
    /// std::thread::sleep(std::time::Duration::from_millis(10));
    /// let rate = observer.stats()?.rate_since(&before).expect("later snapshot");
    /// assert!(rate > 0.0);
    /// # drop(tx); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn rate_since(&self, earlier: &Stats) -> Option<f64> {
        let secs = self
            .taken_at
            .checked_duration_since(earlier.taken_at)?
            .as_secs_f64();
        let records = self.published.checked_sub(earlier.published)?;
        (secs > 0.0).then(|| records as f64 / secs)
    }
}

/// An existing segment, opened to look at it. See the [module docs](self).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{stats::{Family, Observer}, Mode, Overflow, Route};
///
/// # let name = format!("doc-observer-{}", std::process::id());
/// let _tx = Route::<[u8; 24]>::builder(&name).capacity(1024).overflow(Overflow::Block).sender()?;
/// let observer = Observer::open(&name)?;
/// let info = observer.info();
/// assert_eq!((info.family, info.mode, info.overflow), (Family::Route, Mode::Broadcast, Overflow::Block));
/// assert_eq!((info.type_name.as_str(), info.record_size, info.capacity), ("[u8; 24]", 24, 1024));
/// assert_eq!(info.creator_pid, std::process::id());
/// # drop(_tx); Route::<[u8; 24]>::remove(&name)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Observer {
    observed: Observed,
    info: SegmentInfo,
}

impl Observer {
    /// Opens the segment `name` in `/dev/shm`.
    ///
    /// Fails with [`OpenError::InvalidName`] for a bad name, [`OpenError::Io`] (with
    /// an `io::ErrorKind::NotFound` source) if there is no such segment,
    /// [`OpenError::Corrupt`] if the file is not a ready shmchan segment (not one, or
    /// its creator is initialising it or died doing so), [`OpenError::Mismatch`] for
    /// another format version.
    ///
    /// ```
    /// use shmchan::{stats::Observer, OpenError};
    /// assert!(matches!(Observer::open("no-such-segment-here"), Err(OpenError::Io { .. })));
    /// assert!(matches!(Observer::open("a/b"), Err(OpenError::InvalidName { .. })));
    /// ```
    pub fn open(name: &str) -> Result<Observer, OpenError> {
        Self::open_path(segment_path(name)?)
    }

    /// Opens the segment in the file `path` (for segments created with
    /// [`Builder::path`](crate::Builder::path), or in another directory).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-path-{}", std::process::id());
    /// let path = std::env::temp_dir().join(&name);
    /// let _rx = shmchan::Route::<u64>::builder(&name).path(&path).receiver()?;
    /// let observer = shmchan::stats::Observer::open_path(&path)?;
    /// assert_eq!(observer.stats()?.receivers.len(), 1);
    /// # drop(_rx); std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    pub fn open_path(path: impl AsRef<Path>) -> Result<Observer, OpenError> {
        let observed = Observed::open(path.as_ref())?;
        let header = observed.info();
        let fp = &header.fp;
        let family = if fp.family == FamilyCode::Route.code() {
            Family::Route
        } else {
            Family::Channel
        };
        let mode = if fp.mode == Mode::Broadcast.code() {
            Mode::Broadcast
        } else {
            Mode::Unicast
        };
        let overflow = if fp.overflow == Overflow::Overwrite.code() {
            Overflow::Overwrite
        } else {
            Overflow::Block
        };
        let info = SegmentInfo {
            path: observed.path().to_owned(),
            family,
            mode,
            overflow,
            type_name: fp.type_name.clone(),
            record_size: header.layout.geom.record_size,
            // Bounded by `Geometry::MAX_ALIGN` when the layout was computed.
            record_align: usize::try_from(fp.record_align).unwrap_or(usize::MAX),
            capacity: fp.capacity,
            max_receivers: header.layout.max_receivers,
            file_len: header.layout.total_len as u64,
            created_at: SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_nanos(header.created_at_ns))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            creator_pid: u32::try_from(header.creator_pid).unwrap_or(u32::MAX),
        };
        Ok(Observer { observed, info })
    }

    /// The segment file.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-obspath-{}", std::process::id());
    /// # let _rx = shmchan::Route::<u64>::receiver(&name)?;
    /// let observer = shmchan::stats::Observer::open(&name)?;
    /// assert_eq!(observer.path(), shmchan::stats::segment_path(&name)?);
    /// # drop(_rx); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        self.observed.path()
    }

    /// What the header says (fixed at creation).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-info-{}", std::process::id());
    /// # let _rx = shmchan::Route::<u64>::receiver(&name)?;
    /// let info = shmchan::stats::Observer::open(&name)?.info().clone();
    /// assert_eq!((info.type_name.as_str(), info.capacity), ("u64", 4096));
    /// # drop(_rx); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// Reads the counters and the participants now. Checks the liveness of each
    /// participant (a `kill(pid, 0)` and a read of `/proc/PID/stat` each) and whether
    /// the segment is stale (one non-blocking `flock`, released at once).
    ///
    /// Fails with [`OpenError::Corrupt`] if the segment was truncated or re-created
    /// since it was opened (open it again).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-snap-{}", std::process::id());
    /// let mut tx = shmchan::Route::<u64>::sender(&name)?;
    /// tx.send(7)?;
    /// let stats = shmchan::stats::Observer::open(&name)?.stats()?;
    /// assert_eq!(stats.producers.len(), 1);
    /// assert_eq!((stats.producers[0].pid, stats.producers[0].alive), (std::process::id(), true));
    /// assert_eq!((stats.head, stats.published, stats.sender_attaches), (1, 1, 1));
    /// # drop(tx); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Result<Stats, OpenError> {
        let unicast = self.info.mode == Mode::Unicast;
        let (taken_at, raw) = self.observed.snapshot(|ctl, receivers, producers| {
            let taken_at = Instant::now();
            (taken_at, RawStats::read(ctl, receivers, producers))
        })?;
        let stale = self.observed.is_stale()?;
        Ok(raw.into_stats(taken_at, stale, self.info.family, unicast))
    }

    /// Whether no process holds the segment open (every participant died). One
    /// non-blocking `flock`, released at once: the probe never makes the segment look
    /// alive, and never keeps anyone from opening it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-stale-{}", std::process::id());
    /// let rx = shmchan::Route::<u64>::receiver(&name)?;
    /// let observer = shmchan::stats::Observer::open(&name)?;
    /// assert!(!observer.is_stale()?);
    /// drop(rx); // the last participant leaves without removing the segment
    /// assert!(observer.is_stale()?);
    /// # shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn is_stale(&self) -> Result<bool, OpenError> {
        self.observed.is_stale()
    }

    /// Starts reading records as a read-only observer, `back` records before the
    /// newest (0: only records published from now on).
    ///
    /// The tail takes no receiver entry and never gates a lossless producer: if it
    /// falls a ring behind it is lapped, like a receiver in Overwrite mode. It maps the
    /// segment read-only and, while it lives, holds a shared lock on it like a
    /// participant, so that the segment is not re-initialised (truncated) under the
    /// mapping: while a `Tail` lives the segment is not stale, and a new process that
    /// opens it attaches to it instead of re-creating it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::stats::{Observer, TailRead};
    ///
    /// # let name = format!("doc-tail-{}", std::process::id());
    /// let mut tx = shmchan::Route::<u64>::sender(&name)?;
    /// for i in 0..5u64 {
    ///     tx.send(i * 10)?;
    /// }
    /// let mut tail = Observer::open(&name)?.tail(2)?;
    /// let mut buf = vec![0u8; tail.record_size()];
    /// assert_eq!(tail.try_next(&mut buf), TailRead::Record(3));
    /// assert_eq!(u64::from_ne_bytes(buf[..8].try_into()?), 30);
    /// assert_eq!(tail.try_next(&mut buf), TailRead::Record(4));
    /// assert_eq!(tail.try_next(&mut buf), TailRead::Empty);
    /// # drop(tx); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn tail(&self, back: u64) -> Result<Tail, OpenError> {
        let map = self.observed.map(TAIL_OPEN_TIMEOUT)?;
        let view = map.view();
        let head = view.ctl.head.load(Ordering::Relaxed);
        let cursor = head.saturating_sub(back.min(view.geom.capacity));
        Ok(Tail {
            record_size: view.geom.record_size,
            map,
            cursor,
        })
    }
}

/// The raw values of one snapshot, before the liveness checks.
struct RawStats {
    head: u64,
    read: u64,
    sender: u64,
    sender_attaches: u64,
    joins: u64,
    evictions: u64,
    dead_claims: u64,
    rescued: u64,
    /// (index, owner, cursor, lagged) of the held receiver entries.
    receivers: Vec<(usize, u64, u64, u64)>,
    /// (index, owner, records) of the held producer entries.
    producers: Vec<(usize, u64, u64)>,
}

impl RawStats {
    fn read(ctl: &Control, receivers: &[ReceiverEntry], producers: &[ProducerEntry]) -> RawStats {
        // `Relaxed`: these are local copies, nothing else touches them.
        let r = Ordering::Relaxed;
        let membership = &ctl.membership;
        RawStats {
            head: ctl.head.load(r),
            read: ctl.read.load(r),
            sender: membership.sender.load(r),
            sender_attaches: membership.sender_attaches.load(r),
            joins: membership.joins.load(r),
            evictions: membership.evictions.load(r),
            dead_claims: membership.dead_claims.load(r),
            rescued: membership.rescued.load(r),
            receivers: receivers
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let owner = e.owner.load(r);
                    (owner != 0).then(|| (i, owner, e.cursor.load(r), e.lagged.load(r)))
                })
                .collect(),
            producers: producers
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let owner = e.owner.load(r);
                    (owner != 0).then(|| (i, owner, e.records.load(r)))
                })
                .collect(),
        }
    }

    fn into_stats(self, taken_at: Instant, stale: bool, family: Family, unicast: bool) -> Stats {
        let producers = match family {
            Family::Route if self.sender == 0 => Vec::new(),
            Family::Route => vec![ProducerStats {
                index: None,
                pid: process::owner_pid(self.sender),
                alive: process::is_alive(self.sender),
                records: None,
            }],
            Family::Channel => self
                .producers
                .iter()
                .map(|&(index, owner, records)| ProducerStats {
                    index: Some(index),
                    pid: process::owner_pid(owner),
                    alive: process::is_alive(owner),
                    records: Some(records),
                })
                .collect(),
        };
        let backlog = unicast.then(|| self.head.saturating_sub(self.read));
        let receivers = self
            .receivers
            .into_iter()
            .map(|(index, owner, cursor, lagged)| ReceiverStats {
                index,
                pid: process::owner_pid(owner),
                alive: process::is_alive(owner),
                cursor,
                lag: backlog.unwrap_or(self.head.saturating_sub(cursor)),
                lagged,
            })
            .collect();
        Stats {
            taken_at,
            head: self.head,
            published: self.head.saturating_sub(self.dead_claims),
            backlog,
            stale,
            producers,
            receivers,
            sender_attaches: self.sender_attaches,
            joins: self.joins,
            evictions: self.evictions,
            dead_claims: self.dead_claims,
            rescued: self.rescued,
        }
    }
}

/// What [`Tail::try_next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailRead {
    /// The buffer holds the record with this sequence number.
    Record(u64),
    /// Nothing new yet.
    Empty,
    /// The producer lapped the tail: this many records were skipped.
    Lagged(u64),
}

/// Reads a segment's records as a read-only observer. Created by [`Observer::tail`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let name = format!("doc-tailtype-{}", std::process::id());
/// # let _tx = shmchan::Route::<[u32; 3]>::sender(&name)?;
/// let tail = shmchan::stats::Observer::open(&name)?.tail(0)?;
/// assert_eq!(tail.record_size(), 12);
/// # drop((tail, _tx)); shmchan::Route::<[u32; 3]>::remove(&name)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Tail {
    map: ObservedMap,
    cursor: u64,
    record_size: usize,
}

impl Tail {
    /// Size of a record in bytes.
    pub fn record_size(&self) -> usize {
        self.record_size
    }

    /// The sequence number of the next record this tail will read.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let name = format!("doc-tailseq-{}", std::process::id());
    /// let mut tx = shmchan::Route::<u64>::sender(&name)?;
    /// tx.send(1)?;
    /// let tail = shmchan::stats::Observer::open(&name)?.tail(0)?;
    /// assert_eq!((tail.next_seq(), tail.head()), (1, 1));
    /// # drop((tail, tx)); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.cursor
    }

    /// The sequence number the producer will publish next (read now, untrusted).
    pub fn head(&self) -> u64 {
        self.map.view().ctl.head.load(Ordering::Relaxed)
    }

    /// Copies the next record into `buf` if it has been published. `buf` receives at
    /// most [`Tail::record_size`] bytes; a torn or overwritten record is never
    /// reported as [`TailRead::Record`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::stats::TailRead;
    /// # let name = format!("doc-trynext-{}", std::process::id());
    /// let mut tx = shmchan::Route::<u64>::builder(&name).capacity(4).sender()?;
    /// let mut tail = shmchan::stats::Observer::open(&name)?.tail(0)?;
    /// for i in 0..10u64 {
    ///     tx.send(i)?;
    /// }
    /// let mut buf = [0u8; 8];
    /// // Lapped: records 0..6 were overwritten; 6 is the oldest still in the 4 slots.
    /// assert_eq!(tail.try_next(&mut buf), TailRead::Lagged(6));
    /// assert_eq!(tail.try_next(&mut buf), TailRead::Record(6));
    /// assert_eq!(u64::from_ne_bytes(buf), 6);
    /// # drop((tail, tx)); shmchan::Route::<u64>::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn try_next(&mut self, buf: &mut [u8]) -> TailRead {
        let seq = self.cursor;
        let len = buf.len().min(self.record_size);
        match broadcast::observe(&self.map.view(), &mut self.cursor, &mut buf[..len]) {
            Read::Record(()) => TailRead::Record(seq),
            Read::Empty => TailRead::Empty,
            Read::Lagged(n) => TailRead::Lagged(n),
        }
    }
}

/// The file of the segment `name` in `/dev/shm`.
///
/// ```
/// assert_eq!(
///     shmchan::stats::segment_path("quotes").unwrap(),
///     std::path::Path::new("/dev/shm/shmchan.quotes")
/// );
/// ```
pub fn segment_path(name: &str) -> Result<PathBuf, OpenError> {
    segment_path_in(DEFAULT_DIR, name)
}

/// The file of the segment `name` in the directory `dir`.
///
/// ```
/// assert_eq!(
///     shmchan::stats::segment_path_in("/mnt/huge", "md").unwrap(),
///     std::path::Path::new("/mnt/huge/shmchan.md")
/// );
/// assert!(shmchan::stats::segment_path_in("/tmp", "../x").is_err());
/// ```
pub fn segment_path_in(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf, OpenError> {
    options::validate_name(name)?;
    Ok(dir.as_ref().join(format!("{FILE_PREFIX}{name}")))
}

/// The segment files in `dir` (named `shmchan.*`), sorted by name. They are not
/// opened: some may be corrupt, being initialised, or not segments at all.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let name = format!("doc-list-{}", std::process::id());
/// let _rx = shmchan::Route::<u64>::receiver(&name)?;
/// let files = shmchan::stats::list(shmchan::stats::DEFAULT_DIR)?;
/// assert!(files.contains(&shmchan::stats::segment_path(&name)?));
/// # drop(_rx); shmchan::Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub fn list(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_segment = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.len() > FILE_PREFIX.len() && n.starts_with(FILE_PREFIX));
        if is_segment && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Whether no process holds the segment file at `path` open; works on any segment
/// file, also one that [`Observer::open_path`] refuses (e.g. its creator died while
/// initialising it). See [`Observer::is_stale`].
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let name = format!("doc-isstale-{}", std::process::id());
/// let tx = shmchan::Route::<u64>::sender(&name)?;
/// let path = shmchan::stats::segment_path(&name)?;
/// assert!(!shmchan::stats::is_stale(&path)?);
/// drop(tx);
/// assert!(shmchan::stats::is_stale(&path)?);
/// # shmchan::Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub fn is_stale(path: impl AsRef<Path>) -> Result<bool, OpenError> {
    segment::probe_stale(path.as_ref())
}

/// What [`remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// Removed: no process had the segment open.
    Removed,
    /// Removed although processes had it open (`force`). They keep working on their
    /// mapping; the next process to open the name creates a new segment.
    RemovedLive,
    /// Kept: a process has it open (a participant, or a [`Tail`]).
    Live,
    /// There was no such file.
    NotFound,
    /// Kept: the file is not a shmchan segment.
    NotASegment,
}

/// Removes the segment file at `path` if no process has it open, or anyway with
/// `force`. Never removes a file that is not a shmchan segment.
///
/// No process can join the segment between the check and the removal: the file is
/// unlinked while this process holds its exclusive lock.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::stats::{remove, segment_path, Removal};
///
/// # let name = format!("doc-remove-{}", std::process::id());
/// let rx = shmchan::Route::<u64>::receiver(&name)?;
/// let path = segment_path(&name)?;
/// assert_eq!(remove(&path, false)?, Removal::Live);
/// drop(rx);
/// assert_eq!(remove(&path, false)?, Removal::Removed);
/// assert_eq!(remove(&path, false)?, Removal::NotFound);
/// # Ok(()) }
/// ```
pub fn remove(path: impl AsRef<Path>, force: bool) -> Result<Removal, OpenError> {
    Ok(match segment::remove_unused(path.as_ref(), force)? {
        segment::Removal::Removed => Removal::Removed,
        segment::Removal::RemovedLive => Removal::RemovedLive,
        segment::Removal::Live => Removal::Live,
        segment::Removal::NotFound => Removal::NotFound,
        segment::Removal::NotASegment => Removal::NotASegment,
    })
}
