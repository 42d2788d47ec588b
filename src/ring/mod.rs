//! The ring algorithms, on memory they are handed: a [`RingView`] of a control block, a
//! receiver table and a slot array. In production these live in a mapped segment; under
//! loom they are heap allocations of loom atomics. Nothing here maps, opens or sleeps:
//! waiting is `wait.rs`, and the segment is `segment.rs`.

pub mod broadcast;
pub mod multi;
pub mod unicast;

use crate::layout::{Control, Geometry, ProducerEntry, ReceiverEntry};
use crate::sync::{AtomicU64, Ordering};
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
        Parker {
            seq: &self.ctl.data.seq,
            waiters: &self.ctl.data.waiters,
        }
    }

    /// Where a lossless producer sleeps while the ring is full.
    pub fn space_parker(&self) -> Parker<'a> {
        Parker {
            seq: &self.ctl.space.seq,
            waiters: &self.ctl.space.waiters,
        }
    }
}

/// Takes the first free entry of a table (receivers or producers) for `owner`: CAS of
/// its owner word from 0. Returns its index, or `None` if every entry is held.
pub(crate) fn claim_free<E>(
    entries: &[E],
    owner: u64,
    owner_of: impl Fn(&E) -> &AtomicU64,
) -> Option<usize> {
    entries.iter().position(|entry| {
        let word = owner_of(entry);
        // `Acquire` on success: we see the previous owner's last stores.
        word.load(Ordering::Relaxed) == 0
            && word
                .compare_exchange(0, owner, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })
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
