//! Reading a segment's records as a read-only observer: [`Tail`].

use crate::ring::broadcast::Read;
use crate::ring::observe::observe;
use crate::segment::ObservedMap;
use crate::sync::Ordering;

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

/// Reads a segment's records as a read-only observer. Created by [`Observer::tail`](crate::stats::Observer::tail).
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
    pub(super) map: ObservedMap,
    pub(super) cursor: u64,
    /// The extra records the gap markers below `cursor` stand for (`ring/observe.rs`).
    pub(super) extra: u64,
    pub(super) record_size: usize,
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
        match observe(
            &self.map.view(),
            &mut self.cursor,
            &mut self.extra,
            &mut buf[..len],
        ) {
            Read::Record(()) => TailRead::Record(seq),
            Read::Empty => TailRead::Empty,
            Read::Lagged(n) => TailRead::Lagged(n),
        }
    }
}
