//! The pid namespace of a process, recorded in the header by the segment's creator.
//!
//! Peers judge each other's liveness by pid and start time (`kill(pid, 0)` and
//! `/proc/PID/stat`, see `process.rs`), and a pid names a process only within one pid
//! namespace. Processes in different pid namespaces that share a segment (containers
//! sharing `/dev/shm`) would judge each other by unrelated pids: evict live receivers,
//! or wait on a dead sender's claim as if it were alive. So the creator records its pid
//! namespace in the header, and an opener from another one is refused with
//! [`OpenError::PidNamespace`]. A side that cannot tell its namespace (no `/proc`)
//! records or compares 0, which is never refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::OpenError;

/// A pid namespace: the device and inode numbers of `/proc/self/ns/pid`, the pair that
/// identifies a namespace (namespaces(7)). The inode is what `readlink` shows as
/// `pid:[N]`. Both 0 if unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidNamespace {
    pub dev: u64,
    pub ino: u64,
}

impl PidNamespace {
    /// Unknown: `/proc/self/ns/pid` could not be read.
    pub(crate) const UNKNOWN: PidNamespace = PidNamespace { dev: 0, ino: 0 };

    /// The pid namespace of the calling process, or [`PidNamespace::UNKNOWN`].
    ///
    /// Not cached: a child forked after its parent called `unshare(CLONE_NEWPID)` is in
    /// another namespace than the parent, and a `stat` per open is cheap.
    pub(crate) fn current() -> PidNamespace {
        match std::fs::metadata("/proc/self/ns/pid") {
            Ok(meta) => PidNamespace {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            Err(_) => PidNamespace::UNKNOWN,
        }
    }

    /// Whether the namespace is known (inode numbers are never 0).
    pub(crate) fn is_known(self) -> bool {
        self.ino != 0
    }
}

/// Refuses a segment whose creator was in another pid namespace than this process. Both
/// must be known: a 0 on either side (no `/proc`) is not refused.
pub(crate) fn check_pid_namespace(path: &Path, creator: PidNamespace) -> Result<(), OpenError> {
    let own = PidNamespace::current();
    if creator.is_known() && own.is_known() && creator != own {
        return Err(OpenError::PidNamespace {
            path: path.to_owned(),
            creator_ns: creator.ino,
            own_ns: own.ino,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_knows_its_namespace_and_accepts_it() {
        let own = PidNamespace::current();
        // Any Linux with /proc mounted, which the liveness checks need anyway.
        assert!(own.is_known(), "{own:?}");
        let link = std::fs::read_link("/proc/self/ns/pid").expect("readlink");
        assert_eq!(link.to_str(), Some(format!("pid:[{}]", own.ino).as_str()));
        let path = Path::new("/dev/shm/x");
        assert!(check_pid_namespace(path, own).is_ok());
        assert!(check_pid_namespace(path, PidNamespace::UNKNOWN).is_ok());
        let other = PidNamespace {
            ino: own.ino + 1,
            ..own
        };
        match check_pid_namespace(path, other) {
            Err(OpenError::PidNamespace {
                creator_ns, own_ns, ..
            }) => assert_eq!((creator_ns, own_ns), (own.ino + 1, own.ino)),
            other => panic!("expected PidNamespace, got {other:?}"),
        }
        let other_dev = PidNamespace {
            dev: own.dev + 1,
            ..own
        };
        assert!(check_pid_namespace(path, other_dev).is_err());
    }
}
