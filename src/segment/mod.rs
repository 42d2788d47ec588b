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
//! open as untrusted input (`Header::validate`: every value bounded, the layout
//! recomputed from the stated fingerprint and compared with the stored offsets and the
//! file length), under the shared lock that keeps any initialiser out, then checked
//! against what *this* side expects (its record type always, its options where it set
//! them; an unset option adopts the validated value). The geometry used afterwards is
//! that validated copy in local memory, never re-read from shared memory. A
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

pub(crate) use header::{Explicit, Fingerprint, Request};
pub(crate) use observe::{probe_stale, remove_unused, Observed, ObservedMap, Removal};
pub(crate) use open::{remove, Segment};
pub(crate) use pid_ns::check_pid_namespace;
