//! The shared structures of a ring and their geometry.
//!
//! [`Control`] and [`ReceiverEntry`] are `#[repr(C)]` and made only of atomics, so a
//! normal build overlays them on the mapped segment, and a loom build allocates them on
//! the heap with loom's atomics. The segment header (magic, fingerprint) is not here: it
//! is the segment's business (`segment/`), and the ring algorithms never read it.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicU64};

/// The control block of a ring: cursors, futex words and the sender claim, each group
/// on its own cache line so that the producer's hot stores and the receivers' hot
/// stores never share a line.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Control {
    /// Next sequence number the producer will publish (= records published so far).
    /// Written by the producer on every send; read by receivers only when they join
    /// or lag.
    pub head: CachePadded<AtomicU64>,
    /// Receivers park here when the ring is empty.
    pub data: CachePadded<FutexPair>,
    /// A lossless producer parks here when the ring is full.
    pub space: CachePadded<FutexPair>,
    /// Rarely written: the sender claim, the join counter, the gap accounting.
    pub membership: CachePadded<Membership>,
    /// Unicast only: the next sequence number a receiver will claim. Receivers
    /// compete for it with a CAS.
    pub read: CachePadded<AtomicU64>,
}

/// A futex word and the number of processes sleeping on it (see `wait.rs`).
#[repr(C)]
#[derive(Debug, Default)]
pub struct FutexPair {
    /// The futex word, bumped on every wake.
    pub seq: AtomicU32,
    /// Number of registered sleepers.
    pub waiters: AtomicU32,
    /// Wake calls that woke nobody: every so many, the notifier looks for sleepers that
    /// died registered (`ring/table.rs`, `sweep_parked`).
    pub futile: AtomicU32,
    /// Notifies in fenced mode that found nobody registered (`wait.rs`, "fenced mode").
    pub quiet: AtomicU32,
    /// Loom models only: 0 (the default) keeps fenced mode off, so waiters always take
    /// the heavy fence and the larger models explore what they did before it existed;
    /// `n > 0` turns it on, notifiers clearing it after `n` quiet notifies (`u32::MAX`:
    /// never). The models of fenced mode set it. Production: always on, `QUIET_LIMIT`.
    #[cfg(loom)]
    pub fenced_mode: u32,
}

/// Tag of a participant's `parked` word: registered on `data` (waiting for records).
pub const PARKED_DATA: u64 = 1;
/// Tag of a participant's `parked` word: registered on `space` (waiting for room).
pub const PARKED_SPACE: u64 = 2;

/// Who is attached (the sender claim, the receivers' join counter), and the gap
/// accounting: words written on attach, join, eviction or a gap, never per record.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Membership {
    /// Owner word of the attached sender (see `process.rs`), 0 when none.
    pub sender: AtomicU64,
    /// Incremented each time a sender attaches: lets a receiver tell "no sender yet"
    /// from "the sender left".
    pub sender_attaches: AtomicU64,
    /// Incremented each time a receiver joins: tells a lossless producer that its
    /// cached minimum cursor may be stale.
    pub joins: AtomicU64,
    /// Receivers evicted because their process died.
    pub evictions: AtomicU64,
    /// `Channel`: a hint of the producers attached, never below the entries of the
    /// producer table in use (raised before an entry is taken, lowered after one is
    /// freed) and above it by the producers killed in between. Receivers read presence
    /// from the table; this only tells them when to look again (`ring/multi.rs`,
    /// "Membership").
    pub producers: AtomicU64,
    /// Sequence numbers claimed by a producer that died (or stalled) before
    /// publishing, which receivers skipped.
    pub dead_claims: AtomicU64,
    /// Unicast: records a receiver claimed and died with, delivered to another one.
    pub rescued: AtomicU64,
    /// While the `Route` sender sleeps: which futex pair it is registered on
    /// ([`PARKED_DATA`], [`PARKED_SPACE`]) in the low two bits, its owner word above
    /// them; 0 when awake. Lets whoever takes over from a sender that died asleep take
    /// its registration back (`wait.rs`).
    pub sender_parked: AtomicU64,
    /// Gap accounting (`ring/broadcast.rs`, "Gap markers and laps"): the sum of
    /// `n - 1` over the gap markers of `n` records whose publication has started (G1;
    /// taken back if it fails).
    pub extra_started: AtomicU64,
    /// The sum of `n - 1` over the gap markers published (G3, after the stamp and the
    /// `head` store): equal to `extra_started` when no gap is in flight.
    pub extra_done: AtomicU64,
}

/// One entry of the receiver table, on its own 128 bytes (two cache lines, like
/// `CachePadded` on x86-64, because of the adjacent-line prefetcher), so receivers'
/// cursor stores never share a line.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct ReceiverEntry {
    /// Owner word of the receiver holding this entry, 0 when free.
    pub owner: AtomicU64,
    /// Next sequence number this receiver will read: everything below has been read.
    pub cursor: AtomicU64,
    /// Records this receiver skipped because it lagged (Overwrite mode).
    pub lagged: AtomicU64,
    /// Unicast: `seq + 1` of the record this receiver has claimed and is copying, 0
    /// when none. Lets another receiver deliver it if this one dies.
    pub claim: AtomicU64,
    /// While this receiver sleeps: [`PARKED_DATA`] in the low two bits, its owner word
    /// above them; 0 when awake. Lets whoever evicts it take the registration back, so
    /// a receiver killed asleep does not leave the waiter count high (`wait.rs`).
    pub parked: AtomicU64,
}

/// One entry of the producer table of a `Channel`, on its own 128 bytes.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct ProducerEntry {
    /// Owner word of the producer holding this entry, 0 when free.
    pub owner: AtomicU64,
    /// `seq + 1` of the sequence number this producer is claiming or writing, 0 when
    /// none. Stored *before* the claim, so a receiver stuck on a busy slot can find
    /// the process that owes it the record.
    pub claim: AtomicU64,
    /// Records this producer published.
    pub records: AtomicU64,
    /// While this producer sleeps: the pair it is registered on ([`PARKED_DATA`],
    /// [`PARKED_SPACE`]) in the low two bits, its owner word above them; 0 when awake.
    pub parked: AtomicU64,
}

/// The geometry of the slot array, computed from the record type and the capacity,
/// never read back from shared memory.
///
/// Slot `i` occupies words `[i * stride_words, (i + 1) * stride_words)` of the slot
/// array: word 0 is the sequence stamp, the record starts at word `data_word` (so that
/// it is aligned for `T`) and takes `data_words` words (its size rounded up to 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots, a power of two.
    pub capacity: u64,
    /// Words from one slot's stamp to the next one's.
    pub stride_words: usize,
    /// Offset of the record within a slot, in words.
    pub data_word: usize,
    /// Words the record occupies.
    pub data_words: usize,
    /// Size of the record in bytes.
    pub record_size: usize,
}

impl Geometry {
    /// Largest alignment a record type may have.
    pub const MAX_ALIGN: usize = 4096;

    /// The geometry for `capacity` records of `size` bytes aligned to `align`.
    /// `None` if the capacity is not a power of two (or < 2), the alignment is not a
    /// power of two or exceeds [`Self::MAX_ALIGN`], or the slot array would not fit in
    /// the address space.
    pub fn new(capacity: u64, size: usize, align: usize) -> Option<Geometry> {
        if capacity < 2 || !capacity.is_power_of_two() {
            return None;
        }
        if !align.is_power_of_two() || align > Self::MAX_ALIGN {
            return None;
        }
        let align_words = align.max(8) / 8;
        let data_word = align_words.max(1);
        let data_words = size.div_ceil(8).max(1);
        let mut stride_words = (data_word + data_words).next_multiple_of(align_words);
        if stride_words < 8 {
            // A slot of less than a cache line is rounded up to 16, 32 or 64 bytes, so
            // that no slot straddles two lines (the slot array is page-aligned): the
            // stamp and the record then travel to a receiver in one line transfer,
            // not two. A 48-byte record takes 64 bytes instead of 56.
            stride_words = stride_words.next_power_of_two();
        }
        usize::try_from(capacity)
            .ok()?
            .checked_mul(stride_words)?
            .checked_mul(8)?;
        Some(Geometry {
            capacity,
            stride_words,
            data_word,
            data_words,
            record_size: size,
        })
    }

    /// Total words of the slot array.
    pub fn slot_words(&self) -> usize {
        self.capacity as usize * self.stride_words
    }

    /// Index of the stamp word of the slot that holds `seq`. Always in bounds: the
    /// sequence number is masked with `capacity - 1`.
    #[inline]
    pub fn stamp_index(&self, seq: u64) -> usize {
        ((seq & (self.capacity - 1)) as usize) * self.stride_words
    }

    /// Range of the record words of the slot that holds `seq`.
    #[inline]
    pub fn data_range(&self, seq: u64) -> core::ops::Range<usize> {
        let start = self.stamp_index(seq) + self.data_word;
        start..start + self.data_words
    }
}

// Slot stamps. Each sequence number has three states, in increasing stamp order, and
// every state of `seq` is below every state of `seq + 1`, so a reader compares a stamp
// with the one it wants: 0 means never written.
//
//   4·seq + 1  busy     a producer is writing record `seq`
//   4·seq + 2  done     record `seq` is published
//   4·seq + 3  settled  nothing to read for `seq` any more: consumed (unicast), or the
//                       claim was skipped because its producer died
//   4·seq + 4  gap      `seq` is a gap marker: the sender says that the number of
//                       records in the slot's first data word are missing upstream
//                       (a bridge's mirror); receivers report it as `Lagged(n)`.
//                       Above settled(seq) and below busy(seq + 1), so every lap
//                       comparison holds; settling a taken gap lowers it to settled.

/// Stamp of a slot whose record `seq` is being written.
#[inline]
pub const fn stamp_busy(seq: u64) -> u64 {
    seq.wrapping_mul(4).wrapping_add(1)
}

/// Stamp of a slot whose record `seq` is published.
#[inline]
pub const fn stamp_done(seq: u64) -> u64 {
    seq.wrapping_mul(4).wrapping_add(2)
}

/// Stamp of a slot whose record `seq` was consumed (unicast) or skipped (dead claim).
#[inline]
pub const fn stamp_settled(seq: u64) -> u64 {
    seq.wrapping_mul(4).wrapping_add(3)
}

/// Stamp of a slot that holds the gap marker `seq` (its first data word: how many
/// records are missing).
#[inline]
pub const fn stamp_gap(seq: u64) -> u64 {
    seq.wrapping_mul(4).wrapping_add(4)
}

/// What a stamp says, and about which sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Never written (0).
    Empty,
    /// Record `seq` is being written.
    Busy(u64),
    /// Record `seq` is published.
    Done(u64),
    /// Record `seq` was consumed or skipped.
    Settled(u64),
    /// `seq` is a gap marker.
    Gap(u64),
}

impl Stamp {
    /// Decodes a stamp word.
    #[inline]
    pub const fn decode(stamp: u64) -> Stamp {
        let seq = stamp.wrapping_sub(1) / 4;
        match stamp % 4 {
            1 => Stamp::Busy(seq),
            2 => Stamp::Done(seq),
            3 => Stamp::Settled(seq),
            _ if stamp == 0 => Stamp::Empty,
            _ => Stamp::Gap((stamp / 4).wrapping_sub(1)),
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<ReceiverEntry>() == 128 && size_of::<ProducerEntry>() == 128);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_aligns_records() {
        let g = Geometry::new(8, 64, 8).expect("valid");
        assert_eq!((g.data_word, g.data_words, g.stride_words), (1, 8, 9));
        let g = Geometry::new(8, 12, 4).expect("valid");
        assert_eq!((g.data_word, g.data_words, g.stride_words), (1, 2, 4));
        // Slots below a cache line never straddle one.
        for (size, stride) in [(1, 2), (8, 2), (16, 4), (24, 4), (32, 8), (48, 8), (56, 8)] {
            let g = Geometry::new(8, size, 8).expect("valid");
            assert_eq!(g.stride_words, stride, "{size}-byte records");
        }
        assert_eq!(Geometry::new(8, 72, 8).expect("valid").stride_words, 10);
        let g = Geometry::new(4, 64, 64).expect("valid");
        assert_eq!((g.data_word, g.data_words, g.stride_words), (8, 8, 16));
        assert_eq!(g.data_range(5), 24..32);
        assert!(Geometry::new(3, 8, 8).is_none());
        assert!(Geometry::new(1, 8, 8).is_none());
        assert!(Geometry::new(8, 8, 3).is_none());
        assert!(Geometry::new(1 << 62, 4096, 8).is_none());
    }

    #[test]
    fn stamps_order_busy_done_settled_gap() {
        for seq in [0u64, 1, 77] {
            assert!(stamp_busy(seq) < stamp_done(seq));
            assert!(stamp_done(seq) < stamp_settled(seq));
            assert!(stamp_settled(seq) < stamp_gap(seq));
            assert!(stamp_gap(seq) < stamp_busy(seq + 1));
            assert_eq!(Stamp::decode(stamp_gap(seq)), Stamp::Gap(seq));
            assert_eq!(Stamp::decode(stamp_busy(seq)), Stamp::Busy(seq));
            assert_eq!(Stamp::decode(stamp_done(seq)), Stamp::Done(seq));
            assert_eq!(Stamp::decode(stamp_settled(seq)), Stamp::Settled(seq));
        }
        assert_ne!(stamp_done(0), 0, "a zeroed slot is not record 0");
        assert_eq!(Stamp::decode(0), Stamp::Empty);
        assert_eq!(Stamp::decode(8), Stamp::Gap(1));
    }
}
