//! A snapshot of a segment's counters and participants ([`Stats`]), and how it is
//! computed from the raw values an observer copied.

use std::time::Instant;

use super::info::Family;
use crate::layout::{Control, ProducerEntry, ReceiverEntry};
use crate::process;
use crate::sync::Ordering;
use crate::wait::WAITER_COUNT;

/// A snapshot of a segment's counters and participants. See the [module
/// docs](crate::stats) for who writes each value.
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
    /// Processes registered as asleep waiting for records (receivers, and `Channel`
    /// producers waiting for a slower writer). A participant killed asleep is taken
    /// off this count when its entry is freed.
    pub data_waiters: u32,
    /// Processes registered as asleep waiting for room (lossless producers).
    pub space_waiters: u32,
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

/// The raw values of one snapshot, before the liveness checks.
pub(super) struct RawStats {
    head: u64,
    read: u64,
    sender: u64,
    sender_attaches: u64,
    joins: u64,
    evictions: u64,
    dead_claims: u64,
    rescued: u64,
    data_waiters: u32,
    space_waiters: u32,
    /// (index, owner, cursor, lagged) of the held receiver entries.
    receivers: Vec<(usize, u64, u64, u64)>,
    /// (index, owner, records) of the held producer entries.
    producers: Vec<(usize, u64, u64)>,
}

impl RawStats {
    pub(super) fn read(
        ctl: &Control,
        receivers: &[ReceiverEntry],
        producers: &[ProducerEntry],
    ) -> RawStats {
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
            data_waiters: ctl.data.waiters.load(r) & WAITER_COUNT,
            space_waiters: ctl.space.waiters.load(r) & WAITER_COUNT,
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

    pub(super) fn into_stats(
        self,
        taken_at: Instant,
        stale: bool,
        family: Family,
        unicast: bool,
    ) -> Stats {
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
            data_waiters: self.data_waiters,
            space_waiters: self.space_waiters,
        }
    }
}
