//! The frame on `PREFIX/data`: a fixed header, then `count` records as bytes.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SCB2"
//!      4     4  record size in bytes (u32)
//!      8     8  epoch: the exporter's incarnation (u64)
//!     16     8  source id: the source segment's incarnation (u64)
//!     24     8  frame: this frame's number in its epoch, from 0 (u64)
//!     32     8  first: sequence number of the first record (u64)
//!     40     4  count: records in this frame (u32, may be 0)
//!     44     4  flags (u32): bit 0 = `first` is the source ring's own sequence,
//!                            bit 1 = the source has no producer (it left)
//!     48     -  count * record size bytes
//! ```
//!
//! Integers are little-endian; records are carried as the source holds them (the
//! hosts must agree on the records' byte order, as any two users of one struct do).
//! A frame whose `first` is ahead of the previous frame's end is a *jump*: records
//! the exporter never had (its receiver lagged) or that never arrived (a link
//! outage). A frame with `count == 0` only moves the sequence, or says whether the
//! source has a producer.
//!
//! Frames come from the network: [`Header::decode`] checks everything a frame says
//! about itself (magic, length, flags, that the records are `count` whole records of
//! at most [`MAX_RECORDS_LEN`] bytes); whether it fits the stream (its epoch, frame
//! number and sequence) is the importer's judgement (`mirror.rs`, "Untrusted frames").

/// Bytes before the records.
pub const HEADER_LEN: usize = 48;
/// The most record bytes one frame carries (16 MiB): the exporter cuts its batches to
/// it, the importer refuses a longer frame, and a zenoh session of the bridge refuses
/// (drops) any message longer than [`MAX_FRAME_LEN`] and a little room for its own
/// headers. A record larger than this cannot be bridged.
pub const MAX_RECORDS_LEN: usize = 16 << 20;
/// The longest frame.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_RECORDS_LEN;
const MAGIC: &[u8; 4] = b"SCB2";
/// Flag: `first` counts in the source ring's own sequence, which outlives the
/// exporter, so a new exporter's first frame tells how many records no exporter read.
pub const FLAG_SOURCE_SEQ: u32 = 1;
/// Flag: the source has no producer: the exporter's receiver read everything and got
/// `Disconnected`. A frame without it says a producer is attached (or may be: one
/// that never attached is not told apart, as for a local receiver). Carries no records.
pub const FLAG_NO_PRODUCER: u32 = 2;
const KNOWN_FLAGS: u32 = FLAG_SOURCE_SEQ | FLAG_NO_PRODUCER;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Size of one record.
    pub record_size: u32,
    /// The exporter's incarnation.
    pub epoch: u64,
    /// The source segment's incarnation.
    pub source_id: u64,
    /// This frame's number in its epoch (0, 1, 2, ...): a repeated or late frame has a
    /// number already seen.
    pub frame: u64,
    /// Sequence number of the first record.
    pub first: u64,
    /// Number of records.
    pub count: u32,
    /// [`FLAG_SOURCE_SEQ`] and [`FLAG_NO_PRODUCER`].
    pub flags: u32,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(MAGIC);
        out[4..8].copy_from_slice(&self.record_size.to_le_bytes());
        out[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        out[16..24].copy_from_slice(&self.source_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.frame.to_le_bytes());
        out[32..40].copy_from_slice(&self.first.to_le_bytes());
        out[40..44].copy_from_slice(&self.count.to_le_bytes());
        out[44..48].copy_from_slice(&self.flags.to_le_bytes());
    }

    /// A whole frame: this header and `records`.
    pub fn encode(&self, records: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + records.len()];
        self.write(&mut out);
        out[HEADER_LEN..].copy_from_slice(records);
        out
    }

    /// Splits a frame into its header and records, checking everything a peer could
    /// get wrong by itself: magic, length, flags, and that the records are `count`
    /// whole records.
    pub fn decode(frame: &[u8]) -> Result<(Header, &[u8]), String> {
        if frame.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than the header", frame.len()));
        }
        if frame.len() > MAX_FRAME_LEN {
            return Err(format!(
                "{} bytes, longer than a frame can be ({MAX_FRAME_LEN})",
                frame.len()
            ));
        }
        if &frame[0..4] != MAGIC {
            return Err("bad magic (not a shmchan-bridge frame, or another version)".into());
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&frame[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let header = Header {
            record_size: u32_at(4),
            epoch: u64_at(8),
            source_id: u64_at(16),
            frame: u64_at(24),
            first: u64_at(32),
            count: u32_at(40),
            flags: u32_at(44),
        };
        let records = &frame[HEADER_LEN..];
        let expected = (header.record_size as u64).checked_mul(header.count as u64);
        if expected != Some(records.len() as u64) {
            return Err(format!(
                "{} bytes of records, but the header says {} records of {} bytes",
                records.len(),
                header.count,
                header.record_size
            ));
        }
        if header.record_size == 0 {
            return Err("records of 0 bytes".into());
        }
        if header.first.checked_add(header.count as u64).is_none() {
            return Err("sequence number overflows".into());
        }
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err(format!("unknown flags {:#x}", header.flags & !KNOWN_FLAGS));
        }
        if header.flags & FLAG_NO_PRODUCER != 0 && header.count != 0 {
            return Err("records in a frame that says the source has no producer".into());
        }
        Ok((header, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_frames() {
        let h = Header {
            record_size: 4,
            epoch: 7,
            source_id: 9,
            frame: 3,
            first: 100,
            count: 2,
            flags: FLAG_SOURCE_SEQ,
        };
        let f = h.encode(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (d, recs) = Header::decode(&f).unwrap();
        assert_eq!(d, h);
        assert_eq!(recs, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Header::decode(&f[..f.len() - 1]).is_err());
        assert!(Header::decode(&f[..10]).is_err());
        let mut bad = f.clone();
        bad[0] = b'X';
        assert!(Header::decode(&bad).is_err());
        let huge = Header {
            count: u32::MAX,
            record_size: u32::MAX,
            ..h
        }
        .encode(&[]);
        assert!(Header::decode(&huge).is_err());
        let unknown_flag = Header { flags: 4, ..h }.encode(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Header::decode(&unknown_flag).is_err());
        let gone_with_records = Header {
            flags: FLAG_NO_PRODUCER,
            ..h
        }
        .encode(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Header::decode(&gone_with_records).is_err());
        let too_long = vec![0u8; MAX_FRAME_LEN + 1];
        assert!(Header::decode(&too_long).unwrap_err().contains("longer"));
    }
}
