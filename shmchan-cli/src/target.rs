//! Segments as named on the command line, and what went wrong opening them.

use std::io;
use std::path::{Path, PathBuf};

use shmchan::stats;
use shmchan::OpenError;

use crate::exit::Failure;

/// A segment as named on the command line.
pub(crate) struct Target {
    /// How to call it in messages: the name, or the path as given.
    pub(crate) label: String,
    pub(crate) path: PathBuf,
}

pub(crate) fn target(dir: &Path, name: &str) -> Result<Target, Failure> {
    if name.contains('/') {
        return Ok(Target {
            label: name.to_owned(),
            path: PathBuf::from(name),
        });
    }
    let path = stats::segment_path_in(dir, name)
        .map_err(|e| Failure::Message(format!("segment '{name}': {}", describe(&e))))?;
    Ok(Target {
        label: name.to_owned(),
        path,
    })
}

/// The name of a segment file, without directory and prefix.
pub(crate) fn label_of(path: &Path) -> String {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match file {
        Some(n) => n
            .strip_prefix(stats::FILE_PREFIX)
            .map(str::to_owned)
            .unwrap_or(n),
        None => path.display().to_string(),
    }
}

/// What went wrong, without repeating the path (the caller names the segment).
pub(crate) fn describe(e: &OpenError) -> String {
    match e {
        OpenError::Io { op, source, .. } => {
            if source.kind() == io::ErrorKind::NotFound {
                "no such segment".into()
            } else {
                format!("{op} failed: {source}")
            }
        }
        OpenError::PermissionDenied { .. } => "permission denied".into(),
        OpenError::Corrupt { reason, .. } => reason.clone(),
        OpenError::Mismatch {
            field,
            expected,
            found,
            ..
        } => format!("{field} is {found}, this tool reads {expected}"),
        OpenError::InvalidName { reason, .. } => format!("invalid name: {reason}"),
        OpenError::Timeout { waited, .. } => {
            format!("still being initialised by another process after {waited:?}")
        }
        other => other.to_string(),
    }
}

pub(crate) fn failure(t: &Target, e: &OpenError) -> Failure {
    Failure::Message(format!(
        "segment '{}' ({}): {}",
        t.label,
        t.path.display(),
        describe(e)
    ))
}
