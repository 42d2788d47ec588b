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
//! The header is written once, by the initialiser (see `open.rs`). `Header::validate`
//! reads it back as untrusted input (every value bounded, the layout recomputed from
//! the fingerprint and compared with the stored offsets), for participants and
//! observers alike; `Request::check` then compares it with what an opener asked for.

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

    /// Reads and validates the whole header: the fingerprint it states, every value
    /// bounded as a valid segment has it, and the layout recomputed from that
    /// fingerprint with [`Layout::new`] and compared with the stored offsets and
    /// length. The layout is never taken from shared memory. Both a participant (whose
    /// unset options adopt what this returns) and an observer rely on it.
    pub(super) fn validate(&self, path: &Path) -> Result<(Fingerprint, Layout), Check> {
        let corrupt = |reason: String| {
            Check::Fail(OpenError::Corrupt {
                path: path.to_owned(),
                reason,
            })
        };
        // `Relaxed` loads: the fields read after `state` are ordered after the
        // initialiser's writes by the `Acquire` load of `state` below (paired with its
        // `Release` store of READY) and, across the file lock, by the kernel; `magic`
        // is written before the file grows and only compared.
        let r = Ordering::Relaxed;
        if self.magic.load(r) != MAGIC {
            return Err(corrupt("bad magic number".into()));
        }
        // `Acquire`: pairs with the initialiser's `Release` store of READY.
        if self.state.load(Ordering::Acquire) != STATE_READY {
            return Err(Check::NotReady);
        }
        let version = self.version.load(r);
        if version != VERSION {
            return Err(Check::Fail(OpenError::Mismatch {
                path: path.to_owned(),
                field: "format version",
                expected: VERSION.to_string(),
                found: version.to_string(),
            }));
        }
        let code = |field: &str, value: u32| {
            if matches!(value, 1 | 2) {
                Ok(value)
            } else {
                Err(corrupt(format!("unknown {field} code {value}")))
            }
        };
        let family = code("family", self.family.load(r))?;
        let mode = code("mode", self.mode.load(r))?;
        let overflow = code("overflow", self.overflow.load(r))?;
        let max_receivers = self.max_receivers.load(r);
        if max_receivers == 0 || max_receivers as usize > crate::options::MAX_RECEIVERS {
            return Err(corrupt(format!(
                "max_receivers {max_receivers} is out of range"
            )));
        }
        // A `Route` has no producer table; a `Channel` one of 1 to MAX_PRODUCERS.
        let max_producers = self.max_producers.load(r);
        let producers_ok = match family {
            1 => max_producers == 0,
            _ => (1..=crate::options::MAX_PRODUCERS as u64).contains(&max_producers),
        };
        if !producers_ok {
            return Err(corrupt(format!(
                "max_producers {max_producers} is out of range for a {}",
                family_name(family)
            )));
        }
        let capacity = self.capacity.load(r);
        if capacity < 2
            || !capacity.is_power_of_two()
            || capacity > crate::options::MAX_CAPACITY as u64
        {
            return Err(corrupt(format!("capacity {capacity} is out of range")));
        }
        let type_name = self
            .type_name()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| corrupt("unreadable type name".into()))?;
        let fp = Fingerprint {
            family,
            mode,
            overflow,
            capacity,
            record_size: self.record_size.load(r),
            record_align: self.record_align.load(r),
            type_name,
            max_receivers,
            max_producers: max_producers as u32,
        };
        let layout = Layout::new(&fp).ok_or_else(|| {
            corrupt(format!(
                "record size {} / alignment {} / capacity {capacity} give no valid layout",
                fp.record_size, fp.record_align
            ))
        })?;
        let offsets = [
            (self.control_offset.load(r), CONTROL_OFFSET as u64),
            (self.receivers_offset.load(r), RECEIVERS_OFFSET as u64),
            (self.slots_offset.load(r), layout.slots_offset as u64),
            (
                self.producers_offset.load(r),
                layout.producers_offset as u64,
            ),
            (self.total_len.load(r), layout.total_len as u64),
        ];
        if offsets.iter().any(|(found, expected)| found != expected) {
            return Err(corrupt("offsets do not match the fingerprint".into()));
        }
        Ok((fp, layout))
    }
}

/// What an opener asks of a segment: the fingerprint it creates with (its explicit
/// options, the defaults for the rest) and which options it set explicitly.
///
/// Opening adopts, creating decides: against an existing segment the family and the
/// record type (name, size, alignment) are always checked, an explicit option is
/// checked, and an unset one takes the segment's value (see `Builder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The segment this side creates (or reclaims) if there is none alive.
    pub create: Fingerprint,
    pub explicit: Explicit,
}

/// Which options an opener set explicitly (checked against an existing segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Explicit {
    pub mode: bool,
    pub overflow: bool,
    pub capacity: bool,
    pub max_receivers: bool,
    pub max_producers: bool,
}

impl Request {
    /// Checks a validated fingerprint `found` (from [`Header::validate`]) against this
    /// request; the first difference is an [`OpenError::Mismatch`] naming the field.
    pub(crate) fn check(&self, path: &Path, found: &Fingerprint) -> Result<(), OpenError> {
        let want = &self.create;
        let mismatch = |field: &'static str, expected: String, found: String| {
            Err(OpenError::Mismatch {
                path: path.to_owned(),
                field,
                expected,
                found,
            })
        };
        if found.family != want.family {
            return mismatch(
                "family",
                family_name(want.family),
                family_name(found.family),
            );
        }
        if found.type_name != want.type_name {
            return mismatch("type name", want.type_name.clone(), found.type_name.clone());
        }
        let fields: [(&'static str, bool, u64, u64); 3] = [
            ("record size", true, want.record_size, found.record_size),
            (
                "record alignment",
                true,
                want.record_align,
                found.record_align,
            ),
            (
                "capacity",
                self.explicit.capacity,
                want.capacity,
                found.capacity,
            ),
        ];
        for (field, checked, expected, found) in fields {
            if checked && expected != found {
                return mismatch(field, expected.to_string(), found.to_string());
            }
        }
        if self.explicit.mode && found.mode != want.mode {
            return mismatch("mode", mode_name(want.mode), mode_name(found.mode));
        }
        // Unicast is lossless whatever the overflow option says (see `Builder::mode`),
        // so an explicit overflow is checked only against a broadcast segment.
        let broadcast = found.mode == crate::options::Mode::Broadcast.code();
        if self.explicit.overflow && broadcast && found.overflow != want.overflow {
            return mismatch(
                "overflow",
                overflow_name(want.overflow),
                overflow_name(found.overflow),
            );
        }
        if self.explicit.max_receivers && found.max_receivers != want.max_receivers {
            return mismatch(
                "max_receivers",
                want.max_receivers.to_string(),
                found.max_receivers.to_string(),
            );
        }
        if self.explicit.max_producers && found.max_producers != want.max_producers {
            return mismatch(
                "max_producers",
                want.max_producers.to_string(),
                found.max_producers.to_string(),
            );
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
