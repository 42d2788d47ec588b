//! The options a segment is created with, and how they are checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::OpenError;

/// Who gets each record.
///
/// ```
/// use shmchan::Mode;
/// assert_eq!(Mode::default(), Mode::Broadcast);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mode {
    /// Every receiver gets every record.
    #[default]
    Broadcast,
    /// Each record goes to exactly one receiver (a work queue).
    Unicast,
}

/// What a broadcast producer does when the slowest receiver is a whole ring behind.
///
/// ```
/// use shmchan::Overflow;
/// assert_eq!(Overflow::default(), Overflow::Overwrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Overflow {
    /// Lossy: the producer never waits; a lapped receiver gets
    /// [`RecvError::Lagged`](crate::RecvError::Lagged) and resumes at the oldest record
    /// still in the ring.
    #[default]
    Overwrite,
    /// Lossless: the producer waits for the slowest *live* receiver. A receiver whose
    /// process died is evicted, so the producer never waits on a corpse.
    ///
    /// One caveat, for processes that may not call `membarrier(2)` (a seccomp filter)
    /// while their peers can: a receiver in such a process that joins while records
    /// flow has no formal guarantee that its very first records are not overwritten
    /// before it reads them; it would see [`RecvError::Lagged`](crate::RecvError::Lagged),
    /// never a silent gap. (The hot path's fences are asymmetric: a producer whose
    /// process registered for `membarrier` issues only a compiler fence, and a joining
    /// receiver's `membarrier` orders it; a joiner that may not make that call cannot
    /// order the producer's side. No test has produced such a lag.)
    Block,
}

/// The two families: one producer (`Route`) or many (`Channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// `Route<T>`: exactly one producer.
    Route,
    /// `Channel<T>`: many producers.
    Channel,
}

impl Mode {
    pub(crate) fn code(self) -> u32 {
        match self {
            Mode::Broadcast => 1,
            Mode::Unicast => 2,
        }
    }
}

impl Overflow {
    pub(crate) fn code(self) -> u32 {
        match self {
            Overflow::Overwrite => 1,
            Overflow::Block => 2,
        }
    }
}

impl Family {
    pub(crate) fn code(self) -> u32 {
        match self {
            Family::Route => 1,
            Family::Channel => 2,
        }
    }
}

/// Prefix of segment files under `/dev/shm`, so they never collide with other
/// programs' shared-memory objects and `ls /dev/shm/shmchan.*` finds them.
pub(crate) const FILE_PREFIX: &str = "shmchan.";

/// Where named segments live unless `Builder::path` says otherwise.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Default number of slots.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default size of the receiver table.
pub const DEFAULT_MAX_RECEIVERS: usize = 64;
/// Largest receiver table.
pub const MAX_RECEIVERS: usize = 1 << 16;
/// Default size of the producer table of a `Channel`.
pub const DEFAULT_MAX_PRODUCERS: usize = 64;
/// Largest producer table.
pub const MAX_PRODUCERS: usize = 1 << 12;
/// Largest capacity.
pub const MAX_CAPACITY: usize = 1 << 32;
/// Default permission bits of a new segment file.
pub const DEFAULT_PERMISSIONS: u32 = 0o600;
/// How long an opener waits for another process that is initialising the segment.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest segment name (the file name limit is 255 bytes, less the prefix).
pub const MAX_NAME_LEN: usize = 200;

/// Longest type name or schema id stored in the header.
pub const MAX_TYPE_NAME_LEN: usize = 128;

/// Checks a segment name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `.`,
/// `_`, `-`, not starting with `.`.
pub(crate) fn validate_name(name: &str) -> Result<(), OpenError> {
    let bad = |reason| {
        Err(OpenError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("the name is longer than 200 bytes");
    }
    if name.contains('/') {
        return bad("the name contains '/'");
    }
    if name.contains('\0') {
        return bad("the name contains a NUL byte");
    }
    if name.starts_with('.') {
        return bad("the name starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The file of the segment called `name` under `/dev/shm`.
pub(crate) fn default_path(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(format!("{FILE_PREFIX}{name}"))
}

/// The name of `T` without module paths: `my_app::md::Quote<u8>` becomes `Quote<u8>`,
/// so two programs that share a struct definition but not a crate agree on it.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("::") {
            out.truncate(segment_start);
            rest = &rest[2..];
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            segment_start = out.len();
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("quotes").is_ok());
        assert!(validate_name("md.quotes-1_A").is_ok());
        for bad in [
            "",
            "a/b",
            "a\0b",
            ".hidden",
            "sp ace",
            "é",
            &"x".repeat(201),
        ] {
            assert!(
                matches!(validate_name(bad), Err(OpenError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
        assert_eq!(default_path("q"), PathBuf::from("/dev/shm/shmchan.q"));
    }

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(short_type_name("app::md::Quote"), "Quote");
        assert_eq!(short_type_name("u64"), "u64");
        assert_eq!(short_type_name("alloc::vec::Vec<my::Q>"), "Vec<Q>");
        assert_eq!(
            short_type_name("x::Pair<a::B, [c::D; 4]>"),
            "Pair<B, [D; 4]>"
        );
        assert_eq!(
            short_type_name(std::any::type_name::<Option<String>>()),
            "Option<String>"
        );
    }
}
