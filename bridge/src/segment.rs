//! Which local segment a bridge end uses, and how the core's open errors become
//! [`BridgeError`]s.

use std::io;
use std::path::PathBuf;

use shmchan::raw::{self, RecordLayout};
use shmchan::stats::{Family, SegmentInfo};
use shmchan::{Builder, OpenError};

use crate::BridgeError;

/// A local segment: a name (under `/dev/shm`), or a name and the file that holds it
/// (the builder's [`path`](shmchan::Builder::path), for hugetlbfs or any directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    /// The segment name.
    pub name: String,
    /// The segment file, if not the name's place under `/dev/shm`.
    pub path: Option<PathBuf>,
}

impl SegmentRef {
    /// The segment `name` under `/dev/shm`.
    pub fn named(name: &str) -> SegmentRef {
        SegmentRef {
            name: name.to_owned(),
            path: None,
        }
    }

    /// The segment `name` in the file `path`.
    pub fn at(name: &str, path: impl Into<PathBuf>) -> SegmentRef {
        SegmentRef {
            name: name.to_owned(),
            path: Some(path.into()),
        }
    }

    /// Where the segment file is (or would be).
    pub fn file(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.clone(),
            None => shmchan::stats::segment_path(&self.name)
                .unwrap_or_else(|_| PathBuf::from("/dev/shm").join(&self.name)),
        }
    }

    /// The segment's header, or [`BridgeError::SourceNotFound`] if there is none.
    pub(crate) fn inspect(&self) -> Result<SegmentInfo, BridgeError> {
        let info = match &self.path {
            Some(p) => raw::inspect_path(p),
            None => raw::inspect(&self.name),
        };
        info.map_err(|e| match e {
            OpenError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                BridgeError::SourceNotFound {
                    name: self.name.clone(),
                    path: self.file(),
                }
            }
            e => self.error(e),
        })
    }

    /// A raw builder for this segment.
    pub(crate) fn builder(&self, family: Family, layout: RecordLayout) -> Builder<raw::Raw> {
        let b = match family {
            Family::Route => raw::route(&self.name, layout),
            Family::Channel => raw::channel(&self.name, layout),
        };
        match &self.path {
            Some(p) => b.path(p),
            None => b,
        }
    }

    pub(crate) fn error(&self, source: OpenError) -> BridgeError {
        BridgeError::Segment {
            name: self.name.clone(),
            source,
        }
    }
}
