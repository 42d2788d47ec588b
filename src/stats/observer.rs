//! [`Observer`]: opening an existing segment of any record type, and reading its
//! header, its [`Stats`] and its records through it.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::files::segment_path;
use super::info::{Family, SegmentInfo};
use super::snapshot::{RawStats, Stats};
use super::tail::Tail;
use crate::error::OpenError;
use crate::options::{Family as FamilyCode, Mode, Overflow};
use crate::segment::{self, Observed};
use crate::sync::Ordering;

/// How long [`Observer::tail`] waits for a process that is initialising the segment.
const TAIL_OPEN_TIMEOUT: Duration = crate::options::DEFAULT_OPEN_TIMEOUT;

/// An existing segment, opened to look at it. See the [module docs](crate::stats).
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
            // Validated against the file's length when the layout was computed.
            max_producers: header.layout.max_producers,
            file_len: header.layout.total_len as u64,
            created_at: SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_nanos(header.created_at_ns))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            creator_pid: u32::try_from(header.creator_pid).unwrap_or(u32::MAX),
            creator_pid_ns: header.pid_ns.is_known().then_some(header.pid_ns.ino),
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
    /// since it was opened (open it again), and with [`OpenError::PidNamespace`] if
    /// this process is in another pid namespace than the segment's creator: the
    /// participants' pids name other processes here, so their liveness cannot be
    /// judged. ([`Observer::info`], [`Observer::is_stale`] and [`Observer::tail`] do
    /// not depend on pids and work from any pid namespace.)
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
        segment::check_pid_namespace(self.observed.path(), self.observed.info().pid_ns)?;
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
        // `E(cursor)`, so that the tail's lags count the producer's records.
        let at = crate::ring::gaps::locate(&view, cursor, None, 0);
        Ok(Tail {
            record_size: view.geom.record_size,
            map,
            cursor: at.next,
            extra: at.extra,
        })
    }
}
