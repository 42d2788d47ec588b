//! Lock-free shared-memory channels for low-latency inter-process communication on Linux.
//!
//! A *segment* is a named region of shared memory (a file under `/dev/shm`, or a path
//! you choose) holding a ring of fixed-size records of one type `T: bytemuck::Pod`,
//! with atomic cursors and futex wake-ups. Processes open it by name and send and receive
//! records without a system call on the hot path:
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
//! | | producers | [`Mode::Broadcast`] | [`Mode::Unicast`] |
//! |---|---|---|---|
//! | [`Route<T>`] | exactly one, enforced across processes | every receiver gets every record | each record to exactly one receiver (work queue) |
//! | [`Channel<T>`] | many (64 by default, [`Builder::max_producers`]) | every receiver gets every record, each producer's in its order | each record to exactly one receiver |
//!
//! - **Broadcast, [`Overflow::Overwrite`]** (default): the producer never waits. A receiver
//!   that falls a whole ring behind gets [`RecvError::Lagged`]`(n)` (how many it missed)
//!   and resumes at the oldest record still in the ring. Records are copied out under a
//!   sequence stamp (a seqlock): a record being overwritten is never returned.
//! - **Broadcast, [`Overflow::Block`]**: lossless. The producer waits for the slowest
//!   *live* receiver; every receiver sees every record published after it joined, once,
//!   in order. A receiver whose process died is evicted, so the producer never waits on a
//!   corpse.
//! - **Unicast**: always lossless. [`Sender::send`] waits while the ring is full
//!   ([`Sender::try_send`] gives the value back in [`TrySendError::Full`],
//!   [`Sender::send_timeout`] times out); receivers compete for records, each delivered
//!   to exactly one of them.
//! - **Many producers** ([`Channel`]): producers claim sequence numbers without locks and
//!   publish independently; receivers get each producer's records in the order it sent
//!   them. Every claim is checked against receivers that just joined, so a lossless
//!   receiver never lags, however many producers there are. A producer killed between
//!   claiming a slot and publishing it stalls receivers for at most two 50 ms liveness
//!   ticks, then its claim is skipped (and counted); once no producer is left, such a
//!   claim is skipped at once and every record published after it is still delivered
//!   before `Disconnected`.
//! - **Errors** are enums in the shape crossbeam and tokio users know: [`Receiver::recv`]
//!   returns [`RecvError`]`::{Lagged(n), Disconnected, Evicted}`,
//!   [`Receiver::recv_timeout`] a [`RecvTimeoutError`] that adds `Timeout`,
//!   [`Receiver::try_recv`] a [`TryRecvError`] that adds `Empty`; `try_send` gives the
//!   value back in [`TrySendError::Full`], `send_timeout` in
//!   [`SendTimeoutError::Timeout`]; a sender that lost its role (it was judged dead) gets
//!   `Evicted(value)`. A handle used in a child made by `fork` (it belongs to the parent)
//!   gets `Forked` (`Forked(value)` for a send) from every call, and does nothing. Nothing
//!   waits past its timeout: not a full ring, not a slower producer holding a slot.
//! - **Batches**: [`Sender::send_many`] publishes a slice (a `Route` stores its head once
//!   per chunk); [`Receiver::recv_many`] waits for at least one record and returns as many
//!   as are ready, moving a broadcast receiver's cursor once per batch.
//! - **Loans**: [`Sender::loan`] lends a record to fill in place of building a value;
//!   [`Loan::publish`] sends it like `send` (one copy into the slot, with the same atomic
//!   stores). A loan holds no slot while it is out, so one dropped without publishing
//!   costs nothing.
//! - **Reading in place**: [`Receiver::recv_ref`] returns a guard that derefs to the
//!   record where it lies in the segment, with no copy, in lossless modes (a 4 KiB frame
//!   is not copied out); the slot is held until the guard drops, so a slow holder holds
//!   the sender back and a dead one is evicted as any receiver. In `Overwrite` mode, where
//!   a sender may rewrite any slot, the guard holds a copy instead, and so it does for a
//!   unicast record rescued from a receiver that died with it
//!   ([`RecvRef::is_in_place`] says which).
//! - **Waiting**: [`Wait::Spin`] (busy-poll, lowest latency, one core per waiter),
//!   [`Wait::Adaptive`] (default: spin 50 µs, then sleep on a futex), [`Wait::Block`]
//!   (sleep at once). A send or receive makes no system call while nobody sleeps; idle
//!   receivers in `Adaptive`/`Block` use no CPU (they wake every 50 ms to check that the
//!   sender is alive).
//! - **Joining**: a receiver starts at the newest position;
//!   [`Sender::wait_for_receivers`] synchronises start-up.
//! - **Options**: opening adopts, creating decides. The side that creates a segment
//!   fixes its capacity, mode, overflow policy and table sizes (its options, the
//!   defaults for those it leaves unset); a side that opens an existing segment adopts
//!   every option it leaves unset (`Route::<Quote>::receiver("quotes")` joins a
//!   65,536-slot feed as it is, and `rx.capacity()` tells) and gets
//!   [`OpenError::Mismatch`] for one it sets to another value. The rule, with its fine
//!   print, is documented once, in [`Builder`].
//! - **Types**: a segment records the size, alignment and name (without module path) of
//!   `T`, or a schema id set with [`Builder::schema`]; opening with anything different
//!   fails with [`OpenError::Mismatch`] naming the field, what this side expects and what
//!   the segment holds, whatever options are set or unset.
//! - **Records known at run time** ([`raw`]): a tool, a bridge or a binding that learns
//!   the record layout at run time opens the segment with a [`raw::RecordLayout`] (size,
//!   alignment, schema) instead of a `T`, checked exactly like a typed open, and moves
//!   records as bytes; [`raw::inspect`] reads a segment's family, mode, capacity and
//!   layout without joining it. The typed handles are thin wrappers over the raw ones, so
//!   both speak one protocol and share segments in either direction:
//!
//!   ```no_run
//!   fn read_any(name: &str) -> Result<(), Box<dyn std::error::Error>> {
//!       let info = shmchan::raw::inspect(name)?; // what the producer made
//!       let mut rx = shmchan::raw::route(name, info.layout()).overflow(info.overflow).receiver()?;
//!       let mut buf = vec![0u8; 256 * info.record_size]; // a whole number of records
//!       let n = rx.recv_many_into(&mut buf)?; // 1 to 256 records, as bytes
//!       println!("{n} records of {}", info.layout());
//!       Ok(())
//!   }
//!   # fn main() {}
//!   ```
//! - **Permissions**: segments are files `/dev/shm/shmchan.NAME`, mode `0600` unless
//!   [`Builder::permissions`] says otherwise, or at a path chosen with [`Builder::path`].
//! - **Observing**: [`stats`] reads who is attached, how far behind each receiver is and
//!   what was lost, from the segment itself, without taking part
//!   (`Observer::open(name)?.stats()?`); the `shmchan` command-line tool is built on it.
//!
//! # Async (features `async` and `stream`)
//!
//! With the `async` feature, `Receiver::recv_async`, `Receiver::recv_many_async` and
//! `Sender::send_async` return futures that work on any executor; the `stream` feature
//! adds `Receiver::into_stream`, a `futures_core::Stream`. A record that is ready costs a
//! `try_recv` and a few instructions, no system call; an empty ring puts the future to
//! sleep on the segment's futex word through one `shmchan-waker` thread per process
//! (`futex_waitv`, with a plain `FUTEX_WAIT` fallback where a kernel or seccomp profile
//! refuses it), so no runtime thread blocks and an idle receiver uses no CPU. The futures
//! are cancel safe: one dropped before it completed (a losing `select!` branch) has taken
//! or published nothing.
//!
//! An order gateway as a tokio service: orders from many strategy processes on a unicast
//! `Channel`, fills back to all of them on a lossless broadcast `Channel`:
//!
//! ```rust,no_run
//! use std::time::Duration;
//! use shmchan::{Channel, Mode, Overflow, RecvError};
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! struct Order { strategy: u32, _pad: u32, seq: u64, price: f64, qty: u64 }
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! struct Fill { strategy: u32, _pad: u32, order_seq: u64, price: f64, qty: u64 }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut orders = Channel::<Order>::builder("orders").mode(Mode::Unicast).receiver()?;
//!     let mut fills = Channel::<Fill>::builder("fills").overflow(Overflow::Block).sender()?;
//!     loop {
//!         tokio::select! {
//!             order = orders.recv_async() => match order {
//!                 Ok(o) => {
//!                     let fill = Fill { strategy: o.strategy, _pad: 0, order_seq: o.seq, price: o.price, qty: o.qty };
//!                     fills.send_async(fill).await?; // waits, without blocking, for slow readers
//!                 }
//!                 Err(RecvError::Disconnected) => return Ok(()),
//!                 Err(e) => return Err(e.into()),
//!             },
//!             _ = tokio::time::sleep(Duration::from_secs(1)) => println!("no order for a second"),
//!         }
//!     }
//! }
//! ```
//!
//! The repository's `async_gateway` example runs a complete one: strategy processes send
//! orders, the tokio gateway checks that each arrives exactly once and in order and
//! answers with fills.
//!
//! # What happens when a process dies
//!
//! Every participant holds a shared `flock` on the segment file and records its pid and
//! process start time in the segment. Liveness means: the pid exists, started at the
//! recorded time, and has a thread left, so a reused pid is never taken for the dead
//! process, and neither is a live process whose main thread has exited while other
//! threads run (`pthread_exit` in `main`). A process forked after opening handles gets its
//! own identity for the handles it opens, and the parent's handles it inherited stay the
//! parent's: every send or receive through them in the child is refused with a `Forked`
//! error (so a `Route` never gets a second writer that way), and dropping them there, or a
//! future of theirs, releases nothing. Under `/proc` mounted with `hidepid`, a peer whose
//! `/proc` entry is hidden counts as alive while its pid exists. Processes in different
//! pid namespaces (containers sharing `/dev/shm`) cannot check each other's liveness, so
//! opening a segment created in another pid namespace fails with
//! [`OpenError::PidNamespace`].
//!
//! | who dies | [`Overflow::Overwrite`] | [`Overflow::Block`] |
//! |---|---|---|
//! | a receiver (broadcast) | nothing waits on it; its table entry is freed by the next `receiver_count()` or by a receiver that finds the table full | the producer, once blocked on it, evicts it within one 50 ms liveness tick and continues; the other receivers lose nothing; a new receiver reuses the entry |
//! | the sender | receivers drain what it published, then get [`RecvError::Disconnected`] (within one 50 ms tick of finding the ring empty) | the same |
//! | the sender, mid-record | the half-written slot stays marked busy and is never returned; the next sender rewrites it | the same |
//! | a `Channel` producer, between claim and publish | receivers skip its claim after one liveness tick (two if it never started writing) and keep receiving from the others; if it was the last producer, they skip it at once and drain the rest | the same |
//! | anyone, while asleep on the futex | its registration is taken back when its entry is freed, so the waiter count does not stay high (a notifier whose wake calls keep finding nobody asleep looks for such entries) | the same |
//! | a unicast receiver, holding a record it took | — | an idle receiver delivers the record within a liveness tick (exactly once: the dead one never returned it) |
//! | a new sender after that | takes the role over (the dead claim is reclaimed); receivers that stayed continue with its records | the same |
//! | the creator, while initialising | the next opener finds the header not ready and no lock held, and initialises it again | the same |
//! | everyone | the next opener finds no live participant and re-creates the segment, with its own options; [`Route::remove`] unlinks it; no manual `rm /dev/shm/...` | the same |
//!
//! A receiver that is alive but slow is never evicted: in `Block` mode the producer waits
//! for it (use `send_timeout` to bound that wait); in `Overwrite` mode it gets `Lagged`.
//! Measured by the crate's crash tests: a killed receiver blocking a lossless producer is
//! evicted ~50 ms after the kill, a killed sender shows as `Disconnected` after 50-51 ms,
//! and a segment whose creator died mid-initialisation is re-initialised within a
//! millisecond of the death. The same tests kill 25 receivers and 20 senders at random
//! moments per run and check that the survivors lose nothing; 20 unicast receivers
//! killed mid-stream (150-200k records per run) leave no record delivered twice and none
//! missing beyond the one a victim may have had in hand; and a scribbling peer that
//! writes ~170,000 random words a second into a live segment causes errors and garbage
//! records, never a crash or a hang.
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
//!   bounded, and the header is validated as untrusted input (every value bounded,
//!   the layout recomputed and compared) before it is checked against this side's
//!   record type and the options it set, and before an unset option adopts its value
//!   (see [`Builder`]).
//!
//! # Features
//!
//! - `async`: `Receiver::recv_async`, `Receiver::recv_many_async`, `Sender::send_async`
//!   (no runtime dependency).
//! - `stream`: `Receiver::into_stream`, a `futures_core::Stream` of records (implies
//!   `async`).
//!
//! The memory layout, the algorithms and the trust model are described in the design
//! notes that come with the source code.

#![warn(clippy::undocumented_unsafe_blocks)]
// docs.rs builds with `--cfg docsrs` on nightly: items behind a feature say which.
#![cfg_attr(docsrs, feature(doc_cfg))]
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
