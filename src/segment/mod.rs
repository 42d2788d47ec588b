//! The segment: a file in `/dev/shm` (or at a user-given path) mapped shared, holding a
//! header, a ring control block, the receiver table and the slots.
//!
//! The code is split by job:
//!
//! | file | holds |
//! |---|---|
//! | `header.rs` | the header, the fingerprint, the layout, and the validation of a header |
//! | `open.rs` | opening as a participant: create, initialise, reclaim, map; removal |
//! | `observe.rs` | read-only observation for `stats`: header reads, staleness, `rm`/`gc` |
//! | `file.rs` | the `flock` and file helpers the two sides share |
//! | `pid_ns.rs` | the pid namespace recorded in the header, and the check on open |
//!
//! # Trust
//!
//! The header is shared with every process that can open the file. It is validated on
//! open against what *this* side expects (its own record type and options), and the
//! geometry used afterwards is this side's own, never re-read from shared memory. A
//! peer with write access can still corrupt records or cursors: the ring code masks
//! every index and bounds every loop, so the worst outcome is garbage records, errors,
//! or a wait that ends at the caller's timeout. A peer that truncates the file can make
//! this process fault on access (`SIGBUS`); the segment is therefore created with
//! `posix_fallocate`, so a full `/dev/shm` is an error at creation, not a fault later.

mod file;
mod header;
mod observe;
mod open;
mod pid_ns;

pub(crate) use header::Fingerprint;
pub(crate) use observe::{probe_stale, remove_unused, Observed, ObservedMap, Removal};
pub(crate) use open::{remove, Segment};
pub(crate) use pid_ns::check_pid_namespace;
