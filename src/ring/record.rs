//! What the ring copies: records as bytes.
//!
//! The ring algorithms never look inside a record: they copy `geom.record_size` bytes
//! in and out of a slot under the seqlock (`seqlock.rs`). Every loop is generic over
//! the buffer it copies from or into, so that one implementation serves both front
//! ends:
//!
//! * the typed API (`Sender<T>`, `Receiver<T>`) passes its `T: Pod` values (and
//!   slices of them): [`Record`] views a `T` as `size_of::<T>()` bytes, a constant
//!   after monomorphisation, so the word copies unroll as if they had been written
//!   for `T`;
//! * the raw API (`shmchan::raw`) passes byte buffers whose record size is known only
//!   at run time: a `[u8]` of exactly one record, or [`Packed`] records back to back.
//!
//! A buffer's length is checked against the segment's record size where it enters
//! the crate (the raw API's methods); inside the ring a record buffer always holds
//! exactly `geom.record_size` bytes.

use bytemuck::Pod;

/// One record's bytes: a `T: Pod` value, or a raw byte buffer of one record (or a
/// [`GapMarker`]).
pub trait Record {
    /// Whether this is a gap marker, published with the gap stamp (`layout.rs`).
    const GAP: bool = false;
    /// The record's bytes, to be written into a slot.
    fn bytes(&self) -> &[u8];
    /// The record's bytes, to be overwritten by a copy out of a slot.
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl<T: Pod> Record for T {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    #[inline(always)]
    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::bytes_of_mut(self)
    }
}

impl Record for [u8] {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self
    }

    #[inline(always)]
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A gap marker: this many records are missing upstream (a bridge's mirror publishes
/// one where its source lost records). Written into a slot like a record (the count,
/// native-endian, in the first data word, which every slot has) and published with
/// the gap stamp; receivers report it as `Lagged(count)`.
#[derive(Debug, Clone, Copy)]
pub struct GapMarker([u8; 8]);

impl GapMarker {
    /// The marker for `missing` records.
    pub fn new(missing: u64) -> Self {
        GapMarker(missing.to_ne_bytes())
    }
}

impl Record for GapMarker {
    const GAP: bool = true;

    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        &self.0
    }

    #[inline(always)]
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// A buffer of records, read by the batch sends.
pub trait Records {
    /// How many records the buffer holds.
    fn count(&self) -> usize;
    /// The bytes of record `i < count()`.
    fn record(&self, i: usize) -> &[u8];
}

/// A buffer of records, written by the batch receives.
pub trait RecordsMut: Records {
    /// The bytes of record `i < count()`, to be overwritten.
    fn record_mut(&mut self, i: usize) -> &mut [u8];
}

impl<T: Pod> Records for [T] {
    #[inline(always)]
    fn count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn record(&self, i: usize) -> &[u8] {
        bytemuck::bytes_of(&self[i])
    }
}

impl<T: Pod> RecordsMut for [T] {
    #[inline(always)]
    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        bytemuck::bytes_of_mut(&mut self[i])
    }
}

impl<T: Pod, const N: usize> Records for [T; N] {
    #[inline(always)]
    fn count(&self) -> usize {
        N
    }

    #[inline(always)]
    fn record(&self, i: usize) -> &[u8] {
        bytemuck::bytes_of(&self[i])
    }
}

impl<T: Pod, const N: usize> RecordsMut for [T; N] {
    #[inline(always)]
    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        bytemuck::bytes_of_mut(&mut self[i])
    }
}

/// Records of `size` bytes stored back to back in a byte buffer (the raw API's
/// batches). Constructed only with `size >= 1` dividing the buffer's length.
#[derive(Debug)]
pub struct Packed<B> {
    bytes: B,
    size: usize,
}

impl<B: AsRef<[u8]>> Packed<B> {
    /// `bytes` as records of `size` bytes; `None` unless `size >= 1` divides its
    /// length.
    pub fn new(bytes: B, size: usize) -> Option<Self> {
        (size >= 1 && bytes.as_ref().len() % size == 0).then_some(Packed { bytes, size })
    }
}

impl<B: AsRef<[u8]>> Records for Packed<B> {
    #[inline]
    fn count(&self) -> usize {
        self.bytes.as_ref().len() / self.size
    }

    #[inline]
    fn record(&self, i: usize) -> &[u8] {
        &self.bytes.as_ref()[i * self.size..][..self.size]
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> RecordsMut for Packed<B> {
    #[inline]
    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        let size = self.size;
        &mut self.bytes.as_mut()[i * size..][..size]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn packed_records_are_consecutive_slices() {
        let mut buf = [0u8; 6];
        assert!(Packed::new(&buf[..], 4).is_none());
        assert!(Packed::new(&buf[..], 0).is_none());
        let mut p = Packed::new(&mut buf[..], 3).expect("3 divides 6");
        assert_eq!(p.count(), 2);
        p.record_mut(1).copy_from_slice(&[7, 8, 9]);
        assert_eq!(p.record(0), [0, 0, 0]);
        assert_eq!(buf, [0, 0, 0, 7, 8, 9]);
    }

    #[test]
    fn typed_records_are_their_bytes() {
        let mut v = [0u32; 2];
        v.record_mut(1).copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(v, [0, 5]);
        assert_eq!(Records::count(&v[..]), 2);
        assert_eq!(Record::bytes(&1u16), 1u16.to_ne_bytes());
    }
}
