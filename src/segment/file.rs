//! File-level helpers shared by participants (`open.rs`) and observers (`observe.rs`):
//! error mapping, the open-timeout pause, non-blocking `flock`, inode identity, and the
//! check that a file is empty or one of ours.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::header::MAGIC;
use crate::error::OpenError;

pub(super) fn io_err(path: &Path, op: &'static str, source: io::Error) -> OpenError {
    if source.kind() == io::ErrorKind::PermissionDenied {
        OpenError::PermissionDenied {
            path: path.to_owned(),
            source,
        }
    } else {
        OpenError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}

pub(super) fn retry_pause(path: &Path, start: Instant, timeout: Duration) -> Result<(), OpenError> {
    let waited = start.elapsed();
    if waited >= timeout {
        return Err(OpenError::Timeout {
            path: path.to_owned(),
            waited,
        });
    }
    std::thread::sleep(Duration::from_millis(1));
    Ok(())
}

/// `flock` without blocking. `Ok(false)` if another open file holds a conflicting lock.
pub(super) fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: `flock` on a file descriptor we own; it touches no memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Whether `file` is still the file `path` names (not unlinked and replaced).
pub(super) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the file may be (re)initialised: empty, or already one of ours. Anything
/// else at a user-given path is left alone.
pub(super) fn is_ours_or_empty(file: &File, path: &Path) -> Result<bool, OpenError> {
    let len = file.metadata().map_err(|e| io_err(path, "fstat", e))?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut magic = [0u8; 8];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut magic, 0)
        .map_err(|e| io_err(path, "read", e))?;
    Ok(n == 8 && u64::from_le_bytes(magic) == MAGIC)
}
