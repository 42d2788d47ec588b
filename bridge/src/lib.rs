//! Carries a shmchan segment across hosts over [zenoh](https://zenoh.io), keeping the
//! one promise that matters: a far reader either gets every record in order or learns
//! exactly how many it missed (`Lagged(n)`).
//!
//! ```text
//!  host A                                        host B
//!  producer ─▶ segment ─▶ Exporter ══ zenoh/TCP ══▶ Importer ─▶ mirror ─▶ far readers
//!                         (a receiver)                         (its one sender)
//! ```
//!
//! * The [`Exporter`] opens the local source as a receiver of any record layout
//!   (through `shmchan::raw`), and publishes batches of records on `PREFIX/data`
//!   (`Reliable`, `CongestionControl::Block`: a full link waits, it never drops).
//!   Each [frame](frame) carries the exporter's *epoch* (its incarnation), its number
//!   in the epoch, the sequence number of its first record, the count, whether the
//!   source has a producer, and the records. A `Lagged(n)` of
//!   its receiver becomes a jump of `n` in the sequence. It answers `PREFIX/meta`
//!   ([`Meta`]: layout, capacity, family, mode, overflow) and holds a liveliness token
//!   under `PREFIX/exporter`.
//! * The [`Importer`] reads the meta, creates or opens the local mirror (always a
//!   `Route` with the source's layout, mode and overflow; the importer is its only
//!   sender) and writes the records in order. A jump of `n` (the exporter lagged, or
//!   frames were lost while the link was down) is published into the mirror with
//!   `RawSender::publish_gap(n)`, so every far reader gets `Lagged(n)` at that point.
//!   When the exporter's liveliness has been gone for the *linger* time, the importer
//!   drops the mirror's sender: far readers drain and get `Disconnected`.
//! * Far readers see what the source's readers see of its producer: when it leaves,
//!   the exporter's receiver drains and gets `Disconnected`, the frames say so, and the
//!   importer drops the mirror's sender, so far readers drain and get `Disconnected`;
//!   when a producer attaches again, the importer opens the mirror's sender again and
//!   far readers receive its records.
//! * Frames and meta come from the network and are not trusted: a frame that does not
//!   decode or does not fit the stream (repeated, late, a sequence that goes back or
//!   jumps further than the source could publish) is counted
//!   ([`ImportStats::stale`], [`ImportStats::corrupt`]) and skipped, never taken as a
//!   gap nor allowed to end the import; a meta asking for a mirror beyond
//!   [`ImportConfig::max_mirror_bytes`] or records no frame carries is refused
//!   ([`BridgeError::BadMeta`]); zenoh refuses messages longer than a frame
//!   ([`MAX_MESSAGE_LEN`]). The rules are in `src/mirror.rs` ("Untrusted frames").
//!
//! # Restarts
//! A new exporter on the same key starts a new epoch. For a broadcast source the frames
//! count in the source ring's own sequence, which goes on while no exporter runs, so if
//! the new exporter reads the *same* source segment (same incarnation) the importer
//! publishes the records it missed meanwhile as one gap and goes on. Otherwise (the
//! source was recreated, or it is a unicast source whose records other consumers may
//! have taken) the number of missed records is unknown: the importer ends with
//! [`BridgeError::SourceChanged`], dropping the mirror's sender, so far readers get
//! `Disconnected` rather than a silent hole; start the importer again to follow the new
//! source.
//!
//! # Lossless sources
//! A lossless source (`Overflow::Block`, or `Mode::Unicast`) would let a stalled link
//! stop its producer: [`Exporter::start`] refuses it unless
//! [`ExportConfig::lossless`] is set.
//!
//! ```no_run
//! # fn main() -> Result<(), shmchan_bridge::BridgeError> {
//! use shmchan_bridge::{ExportConfig, Exporter, ImportConfig, Importer, Network, SegmentRef};
//!
//! // Host A: export the segment "quotes" on md/quotes, listening on port 7447.
//! let net = Network { listen: vec!["tcp/0.0.0.0:7447".into()], ..Network::default() };
//! let exporter = Exporter::start(ExportConfig::new(SegmentRef::named("quotes"), "md/quotes", net))?;
//!
//! // Host B: mirror it into the local segment "quotes".
//! let net = Network { connect: vec!["tcp/hostA:7447".into()], ..Network::default() };
//! let importer = Importer::start(ImportConfig::new(SegmentRef::named("quotes"), "md/quotes", net))?;
//! # drop((exporter, importer)); Ok(()) }
//! ```

// The bridge holds no unsafe code (the workspace lints cannot forbid it per member).
#![forbid(unsafe_code)]

mod error;
mod export;
pub mod frame;
mod import;
mod meta;
mod mirror;
mod net;
mod segment;

pub use error::BridgeError;
pub use export::{ExportConfig, ExportStats, Exporter};
pub use import::{ImportConfig, ImportEnd, ImportStats, Importer, DEFAULT_MAX_RATE};
pub use meta::Meta;
pub use net::{Keys, Network, MAX_MESSAGE_LEN};
pub use segment::SegmentRef;
