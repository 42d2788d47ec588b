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

/// Why [`Receiver::recv`](crate::Receiver::recv) returned without a record.
///
/// The shape of `tokio::sync::broadcast::error::RecvError`, plus eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The receiver fell a whole ring behind (`Overflow::Overwrite`) and skipped this
    /// many records; the next receive continues at the oldest record still present.
    #[error("receiver lagged behind and skipped {0} records")]
    Lagged(u64),
    /// Every sender left or died, and every record they published has been received.
    #[error("all senders disconnected")]
    Disconnected,
    /// This receiver's entry was taken from it (its process was judged dead, or a peer
    /// overwrote the entry). Open a new receiver.
    #[error("receiver was evicted from the segment")]
    Evicted,
    /// This receiver was opened by another process: it was copied into this one by
    /// `fork`, and belongs to the parent, which still uses it. Nothing was received;
    /// open a new receiver in this process.
    #[error("{FORKED}")]
    Forked,
}

/// Why [`Receiver::recv_timeout`](crate::Receiver::recv_timeout) returned without a
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout.
    #[error("timed out waiting for a record")]
    Timeout,
    /// See [`RecvError::Lagged`].
    #[error("receiver lagged behind and skipped {0} records")]
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    #[error("all senders disconnected")]
    Disconnected,
    /// See [`RecvError::Evicted`].
    #[error("receiver was evicted from the segment")]
    Evicted,
    /// See [`RecvError::Forked`].
    #[error("{FORKED}")]
    Forked,
}

/// Why [`Receiver::try_recv`](crate::Receiver::try_recv) returned without a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing to receive right now.
    #[error("no record available")]
    Empty,
    /// See [`RecvError::Lagged`].
    #[error("receiver lagged behind and skipped {0} records")]
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    #[error("all senders disconnected")]
    Disconnected,
    /// See [`RecvError::Evicted`].
    #[error("receiver was evicted from the segment")]
    Evicted,
    /// See [`RecvError::Forked`].
    #[error("{FORKED}")]
    Forked,
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Evicted => RecvTimeoutError::Evicted,
            RecvError::Forked => RecvTimeoutError::Forked,
        }
    }
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Evicted => TryRecvError::Evicted,
            RecvError::Forked => TryRecvError::Forked,
        }
    }
}

macro_rules! recv_helpers {
    ($t:ident) => {
        impl $t {
            /// Whether every sender is gone and everything was received.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $t::Disconnected)
            }

            /// Whether this receiver lagged (and how far: see `Lagged`).
            pub fn is_lagged(&self) -> bool {
                matches!(self, $t::Lagged(_))
            }

            /// Whether this receiver was evicted.
            pub fn is_evicted(&self) -> bool {
                matches!(self, $t::Evicted)
            }

            /// Whether this receiver belongs to another process (the parent of a
            /// `fork`): see `Forked`.
            pub fn is_forked(&self) -> bool {
                matches!(self, $t::Forked)
            }
        }
    };
}
recv_helpers!(RecvError);
recv_helpers!(RecvTimeoutError);
recv_helpers!(TryRecvError);

impl RecvTimeoutError {
    /// Whether the timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

impl TryRecvError {
    /// Whether nothing was there to receive.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

/// Why [`Sender::send`](crate::Sender::send) or [`Loan::publish`](crate::Loan::publish)
/// did not send. Carries the value back.
///
/// For the batch sends ([`Sender::send_many`](crate::Sender::send_many),
/// [`Sender::try_send_many`](crate::Sender::try_send_many)) `T` is the number of
/// records of the slice sent before the role was lost.
///
/// A broadcast sender with no receiver still sends (receivers that join later start
/// at the newest position), so unlike crossbeam's `SendError` this is not about
/// receivers: a send fails only if this sender lost its role, or is used in a process
/// it does not belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<T> {
    /// This sender lost its role on the segment: it was judged dead (or a peer
    /// overwrote its entry) and its place was taken. Open a new sender.
    Evicted(T),
    /// This sender was opened by another process: it was copied into this one by
    /// `fork`, and belongs to the parent, which still holds its role (a `Route` has
    /// one writer). Nothing was sent; open a new sender in this process.
    Forked(T),
}

/// Why [`Sender::try_send`](crate::Sender::try_send) did not send. Carries the value
/// back.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// No room now: a lossless ring is full (the slowest live receiver is a ring
    /// behind, or in unicast nobody has taken the oldest record), or another producer
    /// still holds the slot.
    Full(T),
    /// See [`SendError::Evicted`].
    Evicted(T),
    /// See [`SendError::Forked`].
    Forked(T),
}

/// Why [`Sender::send_timeout`](crate::Sender::send_timeout) did not send. Carries the
/// value back; for [`Sender::send_many_timeout`](crate::Sender::send_many_timeout), the
/// number of records sent before.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// There was no room until the timeout.
    Timeout(T),
    /// See [`SendError::Evicted`].
    Evicted(T),
    /// See [`SendError::Forked`].
    Forked(T),
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
        match self {
            SendError::Evicted(v) | SendError::Forked(v) => v,
        }
    }

    /// Whether this sender lost its role.
    pub fn is_evicted(&self) -> bool {
        matches!(self, SendError::Evicted(_))
    }

    /// Whether this sender belongs to another process (the parent of a `fork`): see
    /// [`SendError::Forked`].
    pub fn is_forked(&self) -> bool {
        matches!(self, SendError::Forked(_))
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Evicted(v) | TrySendError::Forked(v) => v,
        }
    }

    /// Whether there was no room.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether this sender lost its role.
    pub fn is_evicted(&self) -> bool {
        matches!(self, TrySendError::Evicted(_))
    }

    /// Whether this sender belongs to another process (the parent of a `fork`): see
    /// [`SendError::Forked`].
    pub fn is_forked(&self) -> bool {
        matches!(self, TrySendError::Forked(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v)
            | SendTimeoutError::Evicted(v)
            | SendTimeoutError::Forked(v) => v,
        }
    }

    /// Whether the timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether this sender lost its role.
    pub fn is_evicted(&self) -> bool {
        matches!(self, SendTimeoutError::Evicted(_))
    }

    /// Whether this sender belongs to another process (the parent of a `fork`): see
    /// [`SendError::Forked`].
    pub fn is_forked(&self) -> bool {
        matches!(self, SendTimeoutError::Forked(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Evicted(v) => TrySendError::Evicted(v),
            SendError::Forked(v) => TrySendError::Forked(v),
        }
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Evicted(v) => SendTimeoutError::Evicted(v),
            SendError::Forked(v) => SendTimeoutError::Forked(v),
        }
    }
}

const EVICTED: &str = "sender was evicted from the segment (judged dead, its place taken)";

const FORKED: &str = "this handle belongs to the process that opened it, not to this child \
     of a fork: nothing was done (open a new one in this process)";

// Records are `Pod`, which need not be `Debug`: the errors print without the value.
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Evicted(_) => f.write_str("Evicted(..)"),
            SendError::Forked(_) => f.write_str("Forked(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Evicted(_) => f.write_str(EVICTED),
            SendError::Forked(_) => f.write_str(FORKED),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Evicted(_) => f.write_str("Evicted(..)"),
            TrySendError::Forked(_) => f.write_str("Forked(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("no room in the ring"),
            TrySendError::Evicted(_) => f.write_str(EVICTED),
            TrySendError::Forked(_) => f.write_str(FORKED),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Evicted(_) => f.write_str("Evicted(..)"),
            SendTimeoutError::Forked(_) => f.write_str("Forked(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting for room in the ring"),
            SendTimeoutError::Evicted(_) => f.write_str(EVICTED),
            SendTimeoutError::Forked(_) => f.write_str(FORKED),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}
