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

mod files;
mod info;
mod observer;
mod snapshot;
mod tail;

pub use files::{
    is_stale, list, remove, segment_path, segment_path_in, Removal, DEFAULT_DIR, FILE_PREFIX,
};
pub use info::{Family, SegmentInfo};
pub use observer::Observer;
pub use snapshot::{ProducerStats, ReceiverStats, Stats};
pub use tail::{Tail, TailRead};
