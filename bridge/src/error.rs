//! [`BridgeError`]: why an exporter or an importer could not start, or stopped.

use std::path::PathBuf;
use std::time::Duration;

/// Why an exporter or an importer could not start, or why it ended with an error.
/// `Display` texts are lowercase and name what went wrong, and where both sides are
/// involved (a layout mismatch), both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The key prefix is not a valid zenoh key, or contains a wildcard (`*`, `**`,
    /// `$*`): a bridge serves and reads one concrete key.
    #[error("invalid key prefix {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The source segment to export does not exist.
    #[error("source segment {name:?} does not exist ({}): start its producer (or a receiver) first", path.display())]
    SourceNotFound {
        /// The segment name as given.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The source is lossless (`Overflow::Block`): a stalled link would stop its
    /// producer, so the exporter refuses it unless asked with `--lossless`.
    #[error("source segment {name:?} is lossless ({policy}): a stalled link would stop its producer; pass --lossless to export it anyway")]
    LosslessSource {
        /// The segment name.
        name: String,
        /// Why it is lossless (`Overflow::Block` or `Mode::Unicast`).
        policy: &'static str,
    },
    /// The source's records are larger than a frame carries.
    #[error(
        "source segment {name:?} has records of {size} bytes, more than a frame carries ({max})"
    )]
    RecordTooLarge {
        /// The segment name.
        name: String,
        /// Its record size.
        size: usize,
        /// The most record bytes in a frame.
        max: usize,
    },
    /// Another exporter already serves this key.
    #[error("key {key:?} is already exported by another live exporter ({token})")]
    KeyTaken {
        /// The key prefix.
        key: String,
        /// The other exporter's liveliness token.
        token: String,
    },
    /// No exporter answered on the key within the timeout.
    #[error("no exporter answered on {key}/meta within {waited:?}: is `shmchan-bridge export` running and are the peers connected?")]
    NoExporter {
        /// The key prefix.
        key: String,
        /// How long the importer waited.
        waited: Duration,
    },
    /// The exporter's description of its source could not be understood.
    #[error("bad meta from the exporter on {key}: {reason}")]
    BadMeta {
        /// The key prefix.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local mirror exists with another layout or policy than the source's.
    #[error("mirror segment {} does not match the source exported on {key}: {field} is {mirror} in the mirror, {source_value} in the source; remove the mirror (`shmchan rm`) or import under another name", mirror_path.display())]
    MirrorMismatch {
        /// The mirror's segment file.
        mirror_path: PathBuf,
        /// The key prefix the source is exported on.
        key: String,
        /// Which field differs.
        field: &'static str,
        /// The source's value.
        source_value: String,
        /// The mirror's value.
        mirror: String,
    },
    /// The mirror already has a live sender (another importer, or a local producer).
    #[error("mirror segment {} already has a live sender (pid {pid}): an importer must be its only sender", path.display())]
    MirrorBusy {
        /// The mirror's segment file.
        path: PathBuf,
        /// The process holding the sender role.
        pid: u32,
    },
    /// A frame did not decode, or does not fit the stream. The importer counts and
    /// skips such frames ([`ImportStats::corrupt`](crate::ImportStats::corrupt)) rather
    /// than end with this error.
    #[error("bad frame on {key}/data: {reason}")]
    BadFrame {
        /// The key prefix.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A new exporter (new epoch) serves a different source segment, or one whose
    /// sequence cannot be related to the previous exporter's: how many records were
    /// lost in between is unknown, so the importer ends the mirror's stream (far
    /// readers see `Disconnected`) rather than pretend nothing was lost.
    #[error("the exporter on {key} restarted on {reason}: the records lost in between cannot be counted, so the mirror's stream ends here")]
    SourceChanged {
        /// The key prefix.
        key: String,
        /// What changed.
        reason: String,
    },
    /// A peer could not be reached, or the zenoh session failed otherwise.
    #[error("zenoh: {context}: {message}")]
    Zenoh {
        /// What the bridge was doing.
        context: String,
        /// zenoh's own message.
        message: String,
    },
    /// The exporter's receiver on the source was evicted (judged dead by a peer).
    #[error("the exporter's receiver on {name:?} was evicted")]
    Evicted {
        /// The segment name.
        name: String,
    },
    /// Receiving from the source failed otherwise.
    #[error("receiving from {name:?}: {message}")]
    Receive {
        /// The segment name.
        name: String,
        /// The core's error.
        message: String,
    },
    /// Opening or using a local segment failed.
    #[error("segment {name:?}: {source}")]
    Segment {
        /// The segment name.
        name: String,
        /// The core's error.
        #[source]
        source: shmchan::OpenError,
    },
    /// The mirror's sender lost its role.
    #[error("the importer lost the sender role on the mirror {name:?}")]
    MirrorLost {
        /// The segment name.
        name: String,
    },
    /// The bridge's worker thread panicked.
    #[error("the bridge's worker thread panicked")]
    Panicked,
}

impl BridgeError {
    pub(crate) fn zenoh(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        BridgeError::Zenoh {
            context: context.into(),
            message: e.to_string(),
        }
    }
}
