//! loom model checks of shmchan's ring algorithms and of its futex wait/wake protocol.
//!
//! The models live in `tests/loom_*.rs` and compile to nothing unless the build has
//! `--cfg loom`:
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release
//! ```
//!
//! `run.sh` runs them and then checks that each model fails when the ordering it
//! depends on is weakened (`--cfg shmchan_weaken="..."`). See `README.md` and
//! `docs/loom.md`.
//!
//! This library holds the helpers the models share: the record type, and blocking
//! send/receive built on the library's own `wait::wait_for` with `Wait::Block`, so
//! that a lost wake-up leaves a thread asleep in the modelled futex and loom reports
//! a deadlock.

#![cfg(loom)]

use bytemuck::Pod;
use shmchan::process::Liveness;
use shmchan::ring::broadcast::{Consumer, Producer, Read};
use shmchan::ring::RingView;
use shmchan::wait::wait_for;
use shmchan::Wait;

/// A liveness oracle under which exactly the process with owner word `.0` is dead
/// (`Dead(0)`: everyone is alive).
#[derive(Debug, Clone, Copy)]
pub struct Dead(pub u64);

impl Liveness for Dead {
    fn is_alive(&self, owner: u64) -> bool {
        owner != self.0
    }
}

/// Everyone alive.
pub const ALL_ALIVE: Dead = Dead(0);

/// The record of the models: two words, both `seq + 1` for record `seq`, so a torn copy
/// (words of two records) and a never-written slot (zeros) are both recognisable.
pub type Rec = [u64; 2];

/// The record published with sequence number `seq`.
pub fn rec(seq: u64) -> Rec {
    [seq + 1; 2]
}

/// The sequence number of a record a receiver returned, after checking that it is
/// not torn and not a never-written slot.
pub fn seq_of(r: Rec) -> u64 {
    assert_eq!(r[0], r[1], "torn record {r:?}");
    assert_ne!(r[0], 0, "returned a slot that was never written");
    r[0] - 1
}

/// Lossless send: sleeps on the `space` futex (`Wait::Block`) until the ring has room
/// for the next record, then publishes it.
pub fn send_blocking<T: Pod>(tx: &mut Producer, view: &RingView<'_>, value: &T) {
    wait_for(Wait::Block, None, view.space_parker(), |_| {
        tx.has_space(view).then_some(())
    })
    .expect("no deadline");
    tx.push(view, value);
}

/// Receive: sleeps on the `data` futex (`Wait::Block`) until `try_read` finds a record
/// or a lag.
pub fn recv_blocking<T: Pod>(rx: &mut Consumer, view: &RingView<'_>) -> Read<T> {
    recv_with(rx, view, Wait::Block)
}

/// Receive with the given strategy (`Spin` polls with `yield_now` under loom).
pub fn recv_with<T: Pod>(rx: &mut Consumer, view: &RingView<'_>, strategy: Wait) -> Read<T> {
    wait_for(strategy, None, view.data_parker(), |_| {
        match rx.try_read::<T>(view) {
            Read::Empty => None,
            other => Some(other),
        }
    })
    .expect("no deadline")
}
