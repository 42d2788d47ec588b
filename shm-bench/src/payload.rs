//! Benchmark records: one `#[repr(C)]` Pod struct per payload size.
//!
//! Every record but the 8-byte one holds `seq`, `ts` and padding words. The padding
//! (and `ts`, unless a benchmark stores a send time in it) is a pattern derived from
//! `seq`, so a receiver can check every byte it got: a lost, duplicated, reordered,
//! torn or stale record fails the check.

use std::fmt::Debug;

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

/// Payload sizes the benchmark knows, in bytes.
pub const SIZES: [usize; 7] = [8, 32, 48, 64, 256, 1024, 4096];

/// What the peer libraries need of a record type (iceoryx2's `ZeroCopySend`).
#[cfg(feature = "peers")]
pub trait PeerPayload: iceoryx2::prelude::ZeroCopySend {}
#[cfg(feature = "peers")]
impl<T: iceoryx2::prelude::ZeroCopySend> PeerPayload for T {}
/// What the peer libraries need of a record type (nothing without them).
#[cfg(not(feature = "peers"))]
pub trait PeerPayload {}
#[cfg(not(feature = "peers"))]
impl<T> PeerPayload for T {}

/// A benchmark record.
pub trait Payload: Pod + Debug + Send + PeerPayload + 'static {
    /// Size in bytes (`size_of::<Self>()`).
    const SIZE: usize;
    /// Whether the record has a timestamp field.
    const HAS_TS: bool;

    /// A record for `seq` with every byte derived from it (`ts` included).
    fn pattern(seq: u64) -> Self;
    /// A record for `seq` whose `ts` field holds `ts` (ignored by the 8-byte record).
    fn stamped(seq: u64, ts: u64) -> Self;
    /// The sequence number.
    fn seq(&self) -> u64;
    /// The timestamp field (0 for the 8-byte record).
    fn ts(&self) -> u64;
    /// Checks every byte against the pattern for `seq`; `ts_is_time` skips the `ts`
    /// field, which then holds a send time.
    fn verify(&self, seq: u64, ts_is_time: bool) -> Result<()>;
}

/// Word `k` of the pattern for `seq`.
#[inline]
pub fn word(seq: u64, k: usize) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// The 8-byte record: only a sequence number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Msg8 {
    /// Sequence number.
    pub seq: u64,
}

// SAFETY: `#[repr(C)]`, Pod (no pointers, no padding); the layout is the same in every
// process of the benchmark, which is one binary.
#[cfg(feature = "peers")]
unsafe impl iceoryx2::prelude::ZeroCopySend for Msg8 {}

impl Payload for Msg8 {
    const SIZE: usize = 8;
    const HAS_TS: bool = false;

    #[inline]
    fn pattern(seq: u64) -> Self {
        Msg8 { seq }
    }
    #[inline]
    fn stamped(seq: u64, _ts: u64) -> Self {
        Msg8 { seq }
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
    #[inline]
    fn ts(&self) -> u64 {
        0
    }
    fn verify(&self, seq: u64, _ts_is_time: bool) -> Result<()> {
        if self.seq != seq {
            bail!(
                "corrupt record: seq {} where {} was expected",
                self.seq,
                seq
            );
        }
        Ok(())
    }
}

macro_rules! record {
    ($name:ident, $size:literal) => {
        #[doc = concat!("The ", stringify!($size), "-byte record.")]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Pod, Zeroable)]
        pub struct $name {
            /// Sequence number.
            pub seq: u64,
            /// Send time (ns, `CLOCK_MONOTONIC`) or pattern.
            pub ts: u64,
            /// Pattern words derived from `seq`.
            pub pad: [u64; $size / 8 - 2],
        }

        // SAFETY: `#[repr(C)]`, Pod (no pointers, no padding); every process of the
        // benchmark is the same binary, so the layout matches.
        #[cfg(feature = "peers")]
        unsafe impl iceoryx2::prelude::ZeroCopySend for $name {}

        impl Payload for $name {
            const SIZE: usize = $size;
            const HAS_TS: bool = true;

            #[inline]
            fn pattern(seq: u64) -> Self {
                Self::stamped(seq, word(seq, 1))
            }
            #[inline]
            fn stamped(seq: u64, ts: u64) -> Self {
                let mut pad = [0u64; $size / 8 - 2];
                for (k, w) in pad.iter_mut().enumerate() {
                    *w = word(seq, k + 2);
                }
                $name { seq, ts, pad }
            }
            #[inline]
            fn seq(&self) -> u64 {
                self.seq
            }
            #[inline]
            fn ts(&self) -> u64 {
                self.ts
            }
            fn verify(&self, seq: u64, ts_is_time: bool) -> Result<()> {
                if self.seq != seq {
                    bail!(
                        "corrupt record: seq {} where {} was expected",
                        self.seq,
                        seq
                    );
                }
                if !ts_is_time && self.ts != word(seq, 1) {
                    bail!("corrupt record {seq}: timestamp word {:#x}", self.ts);
                }
                let mut bad = 0usize;
                for (k, w) in self.pad.iter().enumerate() {
                    bad += usize::from(*w != word(seq, k + 2));
                }
                if bad != 0 {
                    bail!(
                        "corrupt record {seq}: {bad} of {} padding words differ",
                        self.pad.len()
                    );
                }
                Ok(())
            }
        }
    };
}

record!(Msg32, 32);
record!(Msg48, 48);
record!(Msg64, 64);
record!(Msg256, 256);
record!(Msg1024, 1024);
record!(Msg4096, 4096);

/// Runs `$body` with the type alias `$p` bound to the record of `$size` bytes.
#[macro_export]
macro_rules! with_payload {
    ($size:expr, $p:ident => $body:expr) => {
        match $size {
            8 => {
                type $p = $crate::payload::Msg8;
                $body
            }
            32 => {
                type $p = $crate::payload::Msg32;
                $body
            }
            48 => {
                type $p = $crate::payload::Msg48;
                $body
            }
            64 => {
                type $p = $crate::payload::Msg64;
                $body
            }
            256 => {
                type $p = $crate::payload::Msg256;
                $body
            }
            1024 => {
                type $p = $crate::payload::Msg1024;
                $body
            }
            4096 => {
                type $p = $crate::payload::Msg4096;
                $body
            }
            other => {
                anyhow::bail!("payload size {other} is not one of 8, 32, 48, 64, 256, 1024, 4096")
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<P: Payload>() {
        assert_eq!(size_of::<P>(), P::SIZE);
        let m = P::pattern(42);
        m.verify(42, false).expect("pattern verifies");
        assert!(m.verify(43, false).is_err());
        let mut bytes = bytemuck::bytes_of(&m).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let torn: P = bytemuck::pod_read_unaligned(&bytes);
        assert!(torn.verify(42, false).is_err());
        let s = P::stamped(7, 12345);
        s.verify(7, true).expect("stamped verifies with ts_is_time");
    }

    #[test]
    fn every_size_detects_corruption() {
        roundtrip::<Msg8>();
        roundtrip::<Msg64>();
        roundtrip::<Msg256>();
        roundtrip::<Msg1024>();
        roundtrip::<Msg4096>();
    }
}
