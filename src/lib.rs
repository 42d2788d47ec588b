//! Lock-free shared-memory channels for low-latency inter-process communication on Linux.
//!
//! A *segment* is a named region of shared memory (a file under `/dev/shm`, or a path
//! you choose) holding a ring of fixed-size records of one type `T: bytemuck::Pod`,
//! with atomic cursors and futex wake-ups. Processes open it by name:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmchan::Route;
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! struct Quote { ts_ns: u64, bid: f64, ask: f64, bid_qty: u32, ask_qty: u32, symbol: [u8; 8] }
//!
//! // producer process (defaults: 4096 slots, Broadcast, Overwrite, Wait::Adaptive)
//! let mut tx = Route::<Quote>::sender("quotes")?;
//! tx.send(Quote { ts_ns: 1, bid: 99.5, ask: 100.5, bid_qty: 10, ask_qty: 12, symbol: *b"ACME\0\0\0\0" })?;
//!
//! // any number of receiver processes, started before or after the producer
//! let mut rx = Route::<Quote>::receiver("quotes")?;
//! let q: Quote = rx.recv()?;
//! # Ok(()) }
//! ```
//!
//! # Families and modes
//!
//! | type | producers | [`Mode::Broadcast`] | [`Mode::Unicast`] |
//! |---|---|---|---|
//! | [`Route<T>`] | exactly one (enforced across processes) | every receiver gets every record | each record to exactly one receiver |
//! | [`Channel<T>`] | many | every receiver gets every record, each producer's in order | each record to exactly one receiver |
//!
//! Broadcast has two [`Overflow`] policies, fixed when the segment is created:
//! [`Overflow::Overwrite`] (the producer never waits; a receiver lapped by it gets
//! [`RecvError::Lagged`] and resumes at the oldest record still present; a torn or
//! overwritten record is never returned) and [`Overflow::Block`] (lossless: the
//! producer waits for the slowest live receiver; a receiver whose process died is
//! evicted). Unicast is always lossless: `send` waits while the ring is full.
//!
//! # Guarantees
//!
//! * No system call and no allocation on `send`/`recv` while nobody sleeps; a futex
//!   wake only when a waiter is parked.
//! * A receiver that dies is evicted; a sender that dies shows as
//!   [`RecvError::Disconnected`] once its records are drained, and the next sender
//!   takes its place.
//! * A live process is never taken for dead: not one whose pid was reused by another,
//!   not one whose main thread has exited while its other threads run.
//! * A handle belongs to the process that opened it: in a child made by `fork`, every
//!   send and receive through an inherited handle is refused with a `Forked` error
//!   ([`SendError::Forked`], [`RecvError::Forked`], ...), and dropping it there (or a
//!   future of it) releases nothing of the parent's.
//! * Everything read from the segment is untrusted: indices are masked, loops are
//!   bounded, and the header is validated against this side's own expectations.
//!
//! See `docs/design.md` in the repository for the memory layout and the algorithms.

#![warn(clippy::undocumented_unsafe_blocks)]
// Under loom only the ring algorithms are built (no segment, sender or receiver), so
// some helpers they share with the public API go unused.
#![cfg_attr(loom, allow(dead_code))]

/// The README's usage snippet, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(loom)]
pub mod asynk;
#[cfg(all(feature = "async", not(loom)))]
mod asynk;
mod barrier;
#[cfg(not(loom))]
mod builder;
mod error;
#[cfg(loom)]
pub mod layout;
#[cfg(not(loom))]
mod layout;
mod options;
#[cfg(loom)]
pub mod process;
#[cfg(not(loom))]
mod process;
#[cfg(not(loom))]
pub mod raw;
#[cfg(not(loom))]
mod receiver;
#[cfg(loom)]
pub mod ring;
#[cfg(not(loom))]
mod ring;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod sender;
#[cfg(not(loom))]
pub mod stats;
mod sync;
#[cfg(loom)]
pub mod wait;
#[cfg(not(loom))]
mod wait;
mod weaken;

#[cfg(not(loom))]
pub use builder::{Builder, Channel, Route};
pub use error::{
    OpenError, ReceiversTimeout, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
pub use options::{
    Mode, Overflow, DEFAULT_CAPACITY, DEFAULT_MAX_PRODUCERS, DEFAULT_MAX_RECEIVERS,
    DEFAULT_OPEN_TIMEOUT, DEFAULT_PERMISSIONS, MAX_CAPACITY, MAX_NAME_LEN, MAX_PRODUCERS,
    MAX_RECEIVERS, MAX_TYPE_NAME_LEN,
};
#[cfg(not(loom))]
pub use receiver::{Iter, Receiver, RecvRef, TryIter};
#[cfg(not(loom))]
pub use sender::{Loan, Sender};
pub use wait::{Wait, ADAPTIVE_SPIN};

#[cfg(all(feature = "stream", not(loom)))]
pub use asynk::RecvStream;
#[cfg(all(feature = "async", not(loom)))]
pub use asynk::{uses_futex_waitv, RecvFuture, RecvManyFuture, SendFuture};

/// Test-only counters of the crate's own tests: the `test-hooks` feature, which is NOT
/// part of the API (not covered by semver, hidden from the documentation; see the
/// feature's comment in Cargo.toml).
#[cfg(all(feature = "test-hooks", not(loom)))]
#[doc(hidden)]
pub mod test_hooks {
    /// Futex wake calls this process has made.
    pub fn wake_calls() -> u64 {
        crate::wait::wake_calls()
    }

    /// Registry entries of this process's async waiters.
    #[cfg(feature = "async")]
    pub fn async_entries() -> usize {
        crate::asynk::registered_entries()
    }
}
