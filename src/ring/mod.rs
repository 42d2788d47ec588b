//! The ring algorithms and the send and receive loops that drive them, on memory they
//! are handed: a [`RingView`] of a control block, the receiver and producer tables and
//! a slot array. In production these live in a mapped segment; under loom they are heap
//! allocations of loom atomics ([`HeapRing`]), and the models call the same functions
//! `Sender` and `Receiver` call. Nothing here maps or opens anything: the segment is
//! `segment/`, and sleeping is `wait.rs` (whose futex is modelled under loom).
//!
//! | file | holds |
//! |---|---|
//! | `record.rs` | records as bytes: typed values and raw buffers alike |
//! | `bulk.rs` | the bulk copy of whole 64-byte blocks (inline assembly, x86_64) |
//! | `seqlock.rs` | the word copies and the copy-and-check of a record |
//! | `gate.rs` | when a lossless producer may write: the cached cursor gate, `slot_free` |
//! | `table.rs` | entries: claim, leave, evict, reap; the `Route` sender claim |
//! | `single.rs` | the one producer of a `Route` |
//! | `multi.rs` | the producers of a `Channel`: claiming, void claims, dead claims, membership (the table, not the count, says who is attached) |
//! | `producer.rs` | one interface over the two producers |
//! | `broadcast.rs` | broadcast receivers: reading, lagging, the join protocol |
//! | `unicast.rs` | unicast receivers: taking, rescue |
//! | `reader.rs` | one interface over the two receivers |
//! | `send.rs` | the send loops |
//! | `recv.rs` | the receive loop, recovery on liveness ticks, disconnection |
//! | `observe.rs` | the read-only observer (`shmchan tail`) |

pub mod broadcast;
mod bulk;
pub mod gaps;
pub mod gate;
pub mod multi;
pub mod observe;
pub mod producer;
pub mod reader;
pub mod record;
pub mod recv;
pub mod send;
pub mod seqlock;
pub mod single;
pub mod table;
pub mod unicast;

use crate::layout::{Control, Geometry, ProducerEntry, ReceiverEntry};
use crate::sync::AtomicU64;
use crate::wait::Parker;

/// Borrowed views of the shared structures of one ring.
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    /// Cursors, futex words, the sender claim.
    pub ctl: &'a Control,
    /// The receiver table.
    pub receivers: &'a [ReceiverEntry],
    /// The producer table (`Channel`; empty for a `Route`).
    pub producers: &'a [ProducerEntry],
    /// The slot array, `geom.slot_words()` words.
    pub slots: &'a [AtomicU64],
    /// The slot geometry (computed locally, never read from shared memory).
    pub geom: Geometry,
    /// `true` for `Overflow::Block` and for unicast: the producer never overwrites a
    /// record a live receiver has not read.
    pub lossless: bool,
    /// `true` for `Mode::Unicast`: each record goes to one receiver, which claims it
    /// through `ctl.read`; producers gate on the slot being consumed.
    pub unicast: bool,
}

impl<'a> RingView<'a> {
    /// Where receivers sleep while the ring is empty.
    pub fn data_parker(&self) -> Parker<'a> {
        Parker::new(&self.ctl.data)
    }

    /// Where a lossless producer sleeps while the ring is full.
    pub fn space_parker(&self) -> Parker<'a> {
        Parker::new(&self.ctl.space)
    }

    /// Wakes the receivers parked on `data`, if any (`wait::wake_if_parked`; the
    /// caller has made its progress and fenced). Returns whether a sweep is due.
    #[inline(always)]
    pub fn wake_data(&self) -> bool {
        crate::wait::wake_if_parked(&self.ctl.data)
    }

    /// Wakes the producers parked on `space`, if any, as [`RingView::wake_data`].
    #[inline(always)]
    pub fn wake_space(&self) -> bool {
        crate::wait::wake_if_parked(&self.ctl.space)
    }
}

/// Heap-allocated ring memory, for tests and loom models.
#[cfg(any(test, loom))]
#[derive(Debug)]
pub struct HeapRing {
    ctl: Control,
    receivers: Vec<ReceiverEntry>,
    producers: Vec<ProducerEntry>,
    slots: Vec<AtomicU64>,
    geom: Geometry,
    lossless: bool,
    unicast: bool,
}

#[cfg(any(test, loom))]
impl HeapRing {
    /// A zeroed ring of `capacity` records of type `T` with `max_receivers` entries.
    ///
    /// # Panics
    /// If the capacity is not a power of two >= 2 (a test-only constructor).
    pub fn new<T: bytemuck::Pod>(capacity: u64, max_receivers: usize, lossless: bool) -> Self {
        Self::with_producers::<T>(capacity, max_receivers, 0, lossless, false)
    }

    /// A zeroed ring with a producer table of `max_producers` entries (a `Channel`),
    /// in unicast mode if `unicast` (which implies lossless).
    ///
    /// # Panics
    /// If the capacity is not a power of two >= 2 (a test-only constructor).
    pub fn with_producers<T: bytemuck::Pod>(
        capacity: u64,
        max_receivers: usize,
        max_producers: usize,
        lossless: bool,
        unicast: bool,
    ) -> Self {
        let geom = Geometry::new(capacity, size_of::<T>(), align_of::<T>().min(8))
            .expect("HeapRing: capacity must be a power of two >= 2");
        HeapRing {
            ctl: Control::default(),
            receivers: (0..max_receivers)
                .map(|_| ReceiverEntry::default())
                .collect(),
            producers: (0..max_producers)
                .map(|_| ProducerEntry::default())
                .collect(),
            slots: (0..geom.slot_words()).map(|_| AtomicU64::new(0)).collect(),
            geom,
            lossless: lossless || unicast,
            unicast,
        }
    }

    /// Turns fenced mode on (`wait.rs`), notifiers clearing it after `notifies` quiet
    /// notifies: for the loom models of fenced mode. A loom ring has it off by default
    /// (`FutexPair::fenced_mode`).
    #[cfg(loom)]
    pub fn fenced_mode(mut self, notifies: u32) -> Self {
        self.ctl.data.fenced_mode = notifies;
        self.ctl.space.fenced_mode = notifies;
        self
    }

    /// The view the algorithms work on.
    pub fn view(&self) -> RingView<'_> {
        RingView {
            ctl: &self.ctl,
            receivers: &self.receivers,
            producers: &self.producers,
            slots: &self.slots,
            geom: self.geom,
            lossless: self.lossless,
            unicast: self.unicast,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
