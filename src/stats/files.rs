//! Segment files: their paths, listing them, and probing and removing stale ones (the
//! `ls`, `gc` and `rm` helpers).

use std::io;
use std::path::{Path, PathBuf};

use crate::error::OpenError;
use crate::options;
use crate::segment;

/// Where named segments live: `/dev/shm`.
pub const DEFAULT_DIR: &str = options::SHM_DIR;

/// Prefix of segment file names: the segment `quotes` is the file `shmchan.quotes`.
pub const FILE_PREFIX: &str = options::FILE_PREFIX;

/// The file of the segment `name` in `/dev/shm`.
///
/// ```
/// assert_eq!(
///     shmchan::stats::segment_path("quotes").unwrap(),
///     std::path::Path::new("/dev/shm/shmchan.quotes")
/// );
/// ```
pub fn segment_path(name: &str) -> Result<PathBuf, OpenError> {
    segment_path_in(DEFAULT_DIR, name)
}

/// The file of the segment `name` in the directory `dir`.
///
/// ```
/// assert_eq!(
///     shmchan::stats::segment_path_in("/mnt/huge", "md").unwrap(),
///     std::path::Path::new("/mnt/huge/shmchan.md")
/// );
/// assert!(shmchan::stats::segment_path_in("/tmp", "../x").is_err());
/// ```
pub fn segment_path_in(dir: impl AsRef<Path>, name: &str) -> Result<PathBuf, OpenError> {
    options::validate_name(name)?;
    Ok(dir.as_ref().join(format!("{FILE_PREFIX}{name}")))
}

/// The segment files in `dir` (named `shmchan.*`), sorted by name. They are not
/// opened: some may be corrupt, being initialised, or not segments at all.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let name = format!("doc-list-{}", std::process::id());
/// let _rx = shmchan::Route::<u64>::receiver(&name)?;
/// let files = shmchan::stats::list(shmchan::stats::DEFAULT_DIR)?;
/// assert!(files.contains(&shmchan::stats::segment_path(&name)?));
/// # drop(_rx); shmchan::Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub fn list(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_segment = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.len() > FILE_PREFIX.len() && n.starts_with(FILE_PREFIX));
        if is_segment && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Whether no process holds the segment file at `path` open; works on any segment
/// file, also one that [`Observer::open_path`](crate::stats::Observer::open_path) refuses (e.g. its creator died while
/// initialising it). See
/// [`Observer::is_stale`](crate::stats::Observer::is_stale).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let name = format!("doc-isstale-{}", std::process::id());
/// let tx = shmchan::Route::<u64>::sender(&name)?;
/// let path = shmchan::stats::segment_path(&name)?;
/// assert!(!shmchan::stats::is_stale(&path)?);
/// drop(tx);
/// assert!(shmchan::stats::is_stale(&path)?);
/// # shmchan::Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub fn is_stale(path: impl AsRef<Path>) -> Result<bool, OpenError> {
    segment::probe_stale(path.as_ref())
}

/// What [`remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// Removed: no process had the segment open.
    Removed,
    /// Removed although processes had it open (`force`). They keep working on their
    /// mapping; the next process to open the name creates a new segment.
    RemovedLive,
    /// Kept: a process has it open (a participant, or a [`Tail`](crate::stats::Tail)).
    Live,
    /// There was no such file.
    NotFound,
    /// Kept: the file is not a shmchan segment.
    NotASegment,
}

/// Removes the segment file at `path` if no process has it open, or anyway with
/// `force`. Never removes a file that is not a shmchan segment.
///
/// No process can join the segment between the check and the removal: the file is
/// unlinked while this process holds its exclusive lock.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::stats::{remove, segment_path, Removal};
///
/// # let name = format!("doc-remove-{}", std::process::id());
/// let rx = shmchan::Route::<u64>::receiver(&name)?;
/// let path = segment_path(&name)?;
/// assert_eq!(remove(&path, false)?, Removal::Live);
/// drop(rx);
/// assert_eq!(remove(&path, false)?, Removal::Removed);
/// assert_eq!(remove(&path, false)?, Removal::NotFound);
/// # Ok(()) }
/// ```
pub fn remove(path: impl AsRef<Path>, force: bool) -> Result<Removal, OpenError> {
    Ok(match segment::remove_unused(path.as_ref(), force)? {
        segment::Removal::Removed => Removal::Removed,
        segment::Removal::RemovedLive => Removal::RemovedLive,
        segment::Removal::Live => Removal::Live,
        segment::Removal::NotFound => Removal::NotFound,
        segment::Removal::NotASegment => Removal::NotASegment,
    })
}
