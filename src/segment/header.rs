//! The segment header, the fingerprint it stores and the layout computed from it.
//!
//! # Layout
//!
//! ```text
//! offset 0      Header        magic, version, state, fingerprint, offsets, pid ns (< 512 B)
//! offset 512    Control       head | data futex | space futex | membership | read (5 x 128 B)
//! offset 1152   receivers     max_receivers x ReceiverEntry (128 B each)
//! then          producers     max_producers x ProducerEntry (128 B each; Channel only)
//! page-aligned  slots         capacity x stride (stamp word + record words; below a
//!                              cache line rounded to 16, 32 or 64 bytes)
//! ```
//!
//! The header is written once, by the initialiser (see `open.rs`), and validated by
//! `Header::check` against what an opener expects.

use std::path::Path;
use std::time::SystemTime;

use super::pid_ns::PidNamespace;
use crate::error::OpenError;
use crate::layout::{Control, Geometry, ProducerEntry, ReceiverEntry};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `b"SHMCHAN\x01"` as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\x01");
/// Layout version; bumped on any incompatible change of this file's structures or
/// of the protocol on them (6: the gap accounting on the membership line, a version 5
/// producer would not keep it).
pub(crate) const VERSION: u32 = 6;

const STATE_INITIALISING: u32 = 1;
pub(super) const STATE_READY: u32 = 2;

pub(super) const CONTROL_OFFSET: usize = 512;
pub(super) const RECEIVERS_OFFSET: usize = CONTROL_OFFSET + size_of::<Control>();
const PAGE: usize = 4096;
const TYPE_NAME_WORDS: usize = crate::options::MAX_TYPE_NAME_LEN / 8;

/// The segment header. Every field is atomic because any process may write it at any
/// time; all are written once, under the exclusive lock, before `state` turns `READY`.
#[repr(C)]
pub(crate) struct Header {
    pub(super) magic: AtomicU64,
    pub(super) version: AtomicU32,
    pub(super) state: AtomicU32,
    pub(super) total_len: AtomicU64,
    pub(super) created_at_ns: AtomicU64,
    pub(super) creator_pid: AtomicU64,
    pub(super) family: AtomicU32,
    pub(super) mode: AtomicU32,
    pub(super) overflow: AtomicU32,
    pub(super) max_receivers: AtomicU32,
    pub(super) capacity: AtomicU64,
    pub(super) record_size: AtomicU64,
    pub(super) record_align: AtomicU64,
    pub(super) type_name_len: AtomicU64,
    pub(super) type_name: [AtomicU64; TYPE_NAME_WORDS],
    pub(super) control_offset: AtomicU64,
    pub(super) receivers_offset: AtomicU64,
    pub(super) slots_offset: AtomicU64,
    pub(super) max_producers: AtomicU64,
    pub(super) producers_offset: AtomicU64,
    /// The creator's pid namespace (`PidNamespace`; 0 and 0 if it could not tell).
    pub(super) pid_ns_dev: AtomicU64,
    pub(super) pid_ns_ino: AtomicU64,
}

const _: () = assert!(size_of::<Header>() <= CONTROL_OFFSET);
const _: () = assert!(CONTROL_OFFSET % align_of::<Control>() == 0);
const _: () = assert!(RECEIVERS_OFFSET % align_of::<ReceiverEntry>() == 0);

/// Everything that must agree between the processes sharing a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub family: u32,
    pub mode: u32,
    pub overflow: u32,
    pub capacity: u64,
    pub record_size: u64,
    pub record_align: u64,
    pub type_name: String,
    pub max_receivers: u32,
    /// Size of the producer table: 0 for a `Route`.
    pub max_producers: u32,
}

/// Where each part of a segment starts, computed from a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub geom: Geometry,
    pub max_receivers: usize,
    pub max_producers: usize,
    pub producers_offset: usize,
    pub slots_offset: usize,
    pub total_len: usize,
}

impl Layout {
    /// `None` if the sizes overflow or the geometry is invalid.
    pub(crate) fn new(fp: &Fingerprint) -> Option<Layout> {
        let geom = Geometry::new(
            fp.capacity,
            usize::try_from(fp.record_size).ok()?,
            usize::try_from(fp.record_align).ok()?,
        )?;
        let max_receivers = fp.max_receivers as usize;
        let producers_offset =
            RECEIVERS_OFFSET.checked_add(max_receivers.checked_mul(size_of::<ReceiverEntry>())?)?;
        let max_producers = fp.max_producers as usize;
        let producers_end =
            producers_offset.checked_add(max_producers.checked_mul(size_of::<ProducerEntry>())?)?;
        let slots_offset = producers_end.checked_next_multiple_of(PAGE.max(geom_align(fp)))?;
        let total_len = slots_offset
            .checked_add(geom.slot_words().checked_mul(8)?)?
            .checked_next_multiple_of(PAGE)?;
        // Keep every offset representable as a file offset.
        i64::try_from(total_len).ok()?;
        Some(Layout {
            geom,
            max_receivers,
            max_producers,
            producers_offset,
            slots_offset,
            total_len,
        })
    }
}

fn geom_align(fp: &Fingerprint) -> usize {
    usize::try_from(fp.record_align).unwrap_or(PAGE).max(8)
}

/// Why the header could not be used yet.
pub(super) enum Check {
    /// Not (fully) initialised: its initialiser died; take the exclusive lock and redo it.
    NotReady,
    /// A definite error.
    Fail(OpenError),
}

impl Header {
    pub(super) const SIZE: usize = CONTROL_OFFSET;

    /// Fills in a zeroed header. `magic` first and `state = READY` last, so an opener
    /// can tell a half-written header from a foreign file.
    pub(super) fn write(&self, fp: &Fingerprint, layout: &Layout) {
        // `Relaxed` stores: ordered before other processes' reads by the `Release`
        // store of `state` below (paired with their `Acquire` load) and, across the
        // file lock, by the kernel.
        let r = Ordering::Relaxed;
        self.magic.store(MAGIC, r);
        self.version.store(VERSION, r);
        self.state.store(STATE_INITIALISING, r);
        self.total_len.store(layout.total_len as u64, r);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.created_at_ns
            .store(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX), r);
        self.creator_pid.store(u64::from(std::process::id()), r);
        self.family.store(fp.family, r);
        self.mode.store(fp.mode, r);
        self.overflow.store(fp.overflow, r);
        self.max_receivers.store(fp.max_receivers, r);
        self.capacity.store(fp.capacity, r);
        self.record_size.store(fp.record_size, r);
        self.record_align.store(fp.record_align, r);
        let name = fp.type_name.as_bytes();
        self.type_name_len.store(name.len() as u64, r);
        for (word, chunk) in self.type_name.iter().zip(name.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(bytes), r);
        }
        self.control_offset.store(CONTROL_OFFSET as u64, r);
        self.receivers_offset.store(RECEIVERS_OFFSET as u64, r);
        self.slots_offset.store(layout.slots_offset as u64, r);
        self.max_producers.store(fp.max_producers.into(), r);
        self.producers_offset
            .store(layout.producers_offset as u64, r);
        let pid_ns = PidNamespace::current();
        self.pid_ns_dev.store(pid_ns.dev, r);
        self.pid_ns_ino.store(pid_ns.ino, r);
        pause_for_tests();
        self.state.store(STATE_READY, Ordering::Release);
    }

    /// The creator's pid namespace as stored (untrusted; compared, never used otherwise).
    pub(super) fn pid_namespace(&self) -> PidNamespace {
        PidNamespace {
            dev: self.pid_ns_dev.load(Ordering::Relaxed),
            ino: self.pid_ns_ino.load(Ordering::Relaxed),
        }
    }

    /// The stored type name, or `None` if its length is out of range or not UTF-8.
    pub(super) fn type_name(&self) -> Option<String> {
        let len = usize::try_from(self.type_name_len.load(Ordering::Relaxed)).ok()?;
        if len > crate::options::MAX_TYPE_NAME_LEN {
            return None;
        }
        let mut bytes = Vec::with_capacity(TYPE_NAME_WORDS * 8);
        for word in &self.type_name {
            bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        String::from_utf8(bytes).ok()
    }

    /// Compares the header with what this side expects.
    pub(super) fn check(
        &self,
        path: &Path,
        fp: &Fingerprint,
        layout: &Layout,
    ) -> Result<(), Check> {
        let corrupt = |reason: String| {
            Check::Fail(OpenError::Corrupt {
                path: path.to_owned(),
                reason,
            })
        };
        if self.magic.load(Ordering::Relaxed) != MAGIC {
            return Err(corrupt("bad magic number".into()));
        }
        // `Acquire`: pairs with the initialiser's `Release` store of READY.
        if self.state.load(Ordering::Acquire) != STATE_READY {
            return Err(Check::NotReady);
        }
        let version = self.version.load(Ordering::Relaxed);
        let mismatch = |field: &'static str, expected: String, found: String| {
            Check::Fail(OpenError::Mismatch {
                path: path.to_owned(),
                field,
                expected,
                found,
            })
        };
        if version != VERSION {
            return Err(mismatch(
                "format version",
                VERSION.to_string(),
                version.to_string(),
            ));
        }
        let family = self.family.load(Ordering::Relaxed);
        if family != fp.family {
            return Err(mismatch(
                "family",
                family_name(fp.family),
                family_name(family),
            ));
        }
        let name = self
            .type_name()
            .ok_or_else(|| corrupt("unreadable type name".into()))?;
        if name != fp.type_name {
            return Err(mismatch("type name", fp.type_name.clone(), name));
        }
        let fields: [(&'static str, u64, u64); 3] = [
            (
                "record size",
                fp.record_size,
                self.record_size.load(Ordering::Relaxed),
            ),
            (
                "record alignment",
                fp.record_align,
                self.record_align.load(Ordering::Relaxed),
            ),
            (
                "capacity",
                fp.capacity,
                self.capacity.load(Ordering::Relaxed),
            ),
        ];
        for (field, expected, found) in fields {
            if expected != found {
                return Err(mismatch(field, expected.to_string(), found.to_string()));
            }
        }
        let mode = self.mode.load(Ordering::Relaxed);
        if mode != fp.mode {
            return Err(mismatch("mode", mode_name(fp.mode), mode_name(mode)));
        }
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow != fp.overflow {
            return Err(mismatch(
                "overflow",
                overflow_name(fp.overflow),
                overflow_name(overflow),
            ));
        }
        let max = self.max_receivers.load(Ordering::Relaxed);
        if max != fp.max_receivers {
            return Err(mismatch(
                "max_receivers",
                fp.max_receivers.to_string(),
                max.to_string(),
            ));
        }
        let max = self.max_producers.load(Ordering::Relaxed);
        if max != u64::from(fp.max_producers) {
            return Err(mismatch(
                "max_producers",
                fp.max_producers.to_string(),
                max.to_string(),
            ));
        }
        let offsets = [
            (
                self.control_offset.load(Ordering::Relaxed),
                CONTROL_OFFSET as u64,
            ),
            (
                self.receivers_offset.load(Ordering::Relaxed),
                RECEIVERS_OFFSET as u64,
            ),
            (
                self.slots_offset.load(Ordering::Relaxed),
                layout.slots_offset as u64,
            ),
            (
                self.producers_offset.load(Ordering::Relaxed),
                layout.producers_offset as u64,
            ),
            (
                self.total_len.load(Ordering::Relaxed),
                layout.total_len as u64,
            ),
        ];
        if offsets.iter().any(|(found, expected)| found != expected) {
            return Err(corrupt("offsets do not match the fingerprint".into()));
        }
        Ok(())
    }
}

/// Environment variable that makes an initialiser pause (milliseconds) after writing
/// the header and before marking it ready. For crash tests only: it lets a test kill a
/// creator in the middle of initialisation. Read only while initialising a segment, and
/// compiled in only with the test-only `test-hooks` feature.
#[cfg(feature = "test-hooks")]
pub(crate) const TEST_INIT_PAUSE_VAR: &str = "SHMCHAN_TEST_INIT_PAUSE_MS";

#[cfg(feature = "test-hooks")]
fn pause_for_tests() {
    if let Some(ms) = std::env::var(TEST_INIT_PAUSE_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Without the `test-hooks` feature there is no pause and no variable is read.
#[cfg(not(feature = "test-hooks"))]
fn pause_for_tests() {}

fn family_name(code: u32) -> String {
    match code {
        1 => "Route".into(),
        2 => "Channel".into(),
        other => format!("unknown ({other})"),
    }
}

fn mode_name(code: u32) -> String {
    match code {
        1 => "Broadcast".into(),
        2 => "Unicast".into(),
        other => format!("unknown ({other})"),
    }
}

fn overflow_name(code: u32) -> String {
    match code {
        1 => "Overwrite".into(),
        2 => "Block".into(),
        other => format!("unknown ({other})"),
    }
}
