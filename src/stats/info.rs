//! What a segment is: its family and the rest of its header, as [`SegmentInfo`].

use std::path::PathBuf;
use std::time::SystemTime;

use crate::options::{Mode, Overflow};

/// The family of a segment: one producer or many.
///
/// ```
/// use shmchan::stats::Family;
/// assert_eq!(Family::Route.to_string(), "Route");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// [`Route<T>`](crate::Route): exactly one producer.
    Route,
    /// [`Channel<T>`](crate::Channel): many producers.
    Channel,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Route => "Route",
            Family::Channel => "Channel",
        })
    }
}

/// What a segment is: everything its header says. Fixed when the segment was created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// One producer or many.
    pub family: Family,
    /// Broadcast or unicast.
    pub mode: Mode,
    /// The overflow policy (meaningful in broadcast mode).
    pub overflow: Overflow,
    /// The record type's name (without module path) or its schema id.
    pub type_name: String,
    /// Size of a record in bytes.
    pub record_size: usize,
    /// Alignment of a record in bytes.
    pub record_align: usize,
    /// Number of slots in the ring.
    pub capacity: u64,
    /// Size of the receiver table.
    pub max_receivers: usize,
    /// Size of the producer table of a [`Channel`](crate::Channel) (`0` for a
    /// [`Route`](crate::Route), which has one producer). Opening a `Channel` takes the
    /// same value (`Builder::max_producers`), or is refused with
    /// [`OpenError::Mismatch`](crate::OpenError::Mismatch).
    pub max_producers: usize,
    /// Bytes of the segment file.
    pub file_len: u64,
    /// When the segment was (last) initialised.
    pub created_at: SystemTime,
    /// The process that initialised it (a pid in its pid namespace).
    pub creator_pid: u32,
    /// The pid namespace of the process that initialised it: the inode number that
    /// `readlink /proc/PID/ns/pid` shows as `pid:[N]`. `None` if it could not tell.
    /// Every participant is in this namespace (others are refused with
    /// [`OpenError::PidNamespace`](crate::OpenError::PidNamespace)), and only an
    /// observer in it gets [`Stats`](crate::stats::Stats).
    pub creator_pid_ns: Option<u64>,
}

impl SegmentInfo {
    /// The layout of the segment's records, as a raw side opens it with
    /// ([`raw::route`](crate::raw::route), [`raw::channel`](crate::raw::channel)).
    pub fn layout(&self) -> crate::raw::RecordLayout {
        crate::raw::RecordLayout::from_header(self.record_size, self.record_align, &self.type_name)
    }
}
