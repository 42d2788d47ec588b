//! Error types. `Display` texts are lowercase and name what went wrong; the send
//! errors give the value back, as rtrb and crossbeam do.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a segment could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment name is empty, too long, or contains a character not allowed.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A builder option is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The builder method.
        option: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// The combination of options is not implemented.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The segment exists with a different layout, record type or policy.
    #[error("segment {} does not match: {field} is {found} there, this side expects {expected}", path.display())]
    Mismatch {
        /// The segment file.
        path: PathBuf,
        /// Which field differs (`capacity`, `record size`, `type name`, ...).
        field: &'static str,
        /// What this side asked for.
        expected: String,
        /// What the segment holds.
        found: String,
    },
    /// The file is not a shmchan segment, or its header is inconsistent.
    #[error("segment {} is corrupt or not a shmchan segment: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// A `Route` already has a live sender.
    #[error("segment {} already has a live sender (pid {pid}); a Route allows one", path.display())]
    SenderExists {
        /// The segment file.
        path: PathBuf,
        /// The process holding the sender role.
        pid: u32,
    },
    /// Every entry of the receiver table is held by a live receiver.
    #[error("segment {} has no free receiver entry: all {max} are held by live receivers (raise `max_receivers`)", path.display())]
    ReceiversFull {
        /// The segment file.
        path: PathBuf,
        /// The table size.
        max: usize,
    },
    /// The file system (the `/dev/shm` tmpfs, or the one `Builder::path` points at) has
    /// no room for a segment this large.
    #[error("segment {} needs {bytes} bytes, more than its file system can hold", path.display())]
    NoSpace {
        /// The segment file.
        path: PathBuf,
        /// Size of the segment.
        bytes: u64,
    },
    /// Every entry of a `Channel`'s producer table is held by a live producer.
    #[error("segment {} has no free producer entry: all {max} are held by live producers (raise `max_producers`)", path.display())]
    ProducersFull {
        /// The segment file.
        path: PathBuf,
        /// The table size.
        max: usize,
    },
    /// Another process kept the segment locked for initialisation past the timeout.
    #[error("segment {} is still being initialised by another process after {waited:?}", path.display())]
    Timeout {
        /// The segment file.
        path: PathBuf,
        /// How long this side waited.
        waited: Duration,
    },
    /// The segment exists but this process may not open it.
    #[error("permission denied opening segment {}", path.display())]
    PermissionDenied {
        /// The segment file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other system error.
    #[error("segment {}: {op} failed", path.display())]
    Io {
        /// The segment file.
        path: PathBuf,
        /// The operation (`open`, `mmap`, `fallocate`, ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The segment was created by a process in another pid namespace (another
    /// container, say). Peers judge each other's liveness by pid, and a pid means
    /// nothing in another pid namespace, so the segment is refused rather than shared
    /// with wrong liveness checks (live peers evicted, dead ones waited for).
    #[error("segment {} was created in another pid namespace (pid:[{creator_ns}]; this process is in pid:[{own_ns}]): processes in different pid namespaces cannot check each other's liveness; run every process that uses the segment in one pid namespace (e.g. `docker run --pid=host`, `--pid=container:NAME`, or a pod with a shared process namespace)", path.display())]
    PidNamespace {
        /// The segment file.
        path: PathBuf,
        /// The creator's pid namespace: the inode number `readlink /proc/PID/ns/pid`
        /// shows as `pid:[N]`.
        creator_ns: u64,
        /// This process's pid namespace, in the same form.
        own_ns: u64,
    },
}

/// Why a blocking receive returned without a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The receiver fell a whole ring behind (`Overflow::Overwrite`) and skipped this
    /// many records; the next receive continues at the oldest record still present.
    #[error("receiver lagged behind and skipped {0} records")]
    Lagged(u64),
    /// The sender left or died and every record it published has been received.
    #[error("sender disconnected")]
    Disconnected,
    /// This receiver's entry was taken from it (it was judged dead). Open a new one.
    #[error("receiver was evicted from the segment")]
    Evicted,
    /// `recv_timeout` elapsed with nothing to receive.
    #[error("timed out waiting for a record")]
    Timeout,
}

/// Why a non-blocking receive returned without a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing to receive right now.
    #[error("no record available")]
    Empty,
    /// See [`RecvError::Lagged`].
    #[error("receiver lagged behind and skipped {0} records")]
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    #[error("sender disconnected")]
    Disconnected,
    /// See [`RecvError::Evicted`].
    #[error("receiver was evicted from the segment")]
    Evicted,
}

/// The sender lost its role (another process took the segment's sender claim, which
/// happens only if this process was judged dead or a peer overwrote the claim).
/// Carries the value back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why `try_send` did not send. Carries the value back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The ring is full (lossless mode: the slowest live receiver is a ring behind).
    Full(T),
    /// See [`SendError`].
    Disconnected(T),
}

/// Why `send_timeout` did not send. Carries the value back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// The ring stayed full until the timeout.
    Timeout(T),
    /// See [`SendError`].
    Disconnected(T),
}

/// `wait_for_receivers` gave up: fewer receivers than wanted were attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for {wanted} receivers ({found} attached)")]
pub struct ReceiversTimeout {
    /// How many were asked for.
    pub wanted: usize,
    /// How many were attached at the deadline.
    pub found: usize,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the ring was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
}

// Records are `Pod`, which need not be `Debug`: the errors print without the value.
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sender lost its role on the segment")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("ring is full"),
            TrySendError::Disconnected(_) => f.write_str("sender lost its role on the segment"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting for a free slot"),
            SendTimeoutError::Disconnected(_) => f.write_str("sender lost its role on the segment"),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}

impl From<TryRecvError> for Option<RecvError> {
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => None,
            TryRecvError::Lagged(n) => Some(RecvError::Lagged(n)),
            TryRecvError::Disconnected => Some(RecvError::Disconnected),
            TryRecvError::Evicted => Some(RecvError::Evicted),
        }
    }
}
