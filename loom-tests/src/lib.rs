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
//! The models drive the shipped send and receive loops (`ring::send`, `ring::recv`)
//! with `Wait::Block`, so that a lost wake-up leaves a thread asleep in the modelled
//! futex and loom reports a deadlock. This library holds only the record types, the
//! liveness oracles and thin wrappers (an `expect`) around those shipped functions:
//! no model has a send or receive loop of its own.

#![cfg(loom)]

use bytemuck::Pod;
use shmchan::process::Liveness;
use shmchan::ring::producer::Producer;
use shmchan::ring::reader::Reader;
use shmchan::ring::recv::{recv, recv_many, RecvState};
use shmchan::ring::send::{send, send_many, try_send, SendFail};
use shmchan::ring::RingView;
use shmchan::{RecvTimeoutError, Wait};

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

/// The record of the seqlock models: two words, both `seq + 1` for record `seq`, so a
/// torn copy (words of two records) and a never-written slot (zeros) are both
/// recognisable.
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

/// Attaches the `Route` producer for `owner` (nobody else holds the claim).
pub fn attach_route(view: &RingView<'_>, owner: u64) -> Producer {
    Producer::attach_route(view, owner, &ALL_ALIVE).expect("the sender claim is free")
}

/// Joins a `Channel` producer for `owner` (the table has room).
pub fn join_channel(view: &RingView<'_>, owner: u64) -> Producer {
    Producer::join_channel(view, owner, &ALL_ALIVE).expect("a free producer entry")
}

/// Joins a receiver for `owner`: its [`RecvState`] (taken first, as `Receiver` does)
/// and its [`Reader`].
pub fn join_reader(view: &RingView<'_>, owner: u64) -> (Reader, RecvState) {
    let state = RecvState::before_join(view);
    let reader = Reader::join(view, owner, &ALL_ALIVE).expect("a free receiver entry");
    (reader, state)
}

/// `ring::send::send` with `Wait::Block`, no deadline, everyone alive: it can only
/// fail if the producer lost its role, which no model expects.
pub fn send_block<T: Pod>(p: &mut Producer, view: &RingView<'_>, value: &T) {
    send(p, view, value, Wait::Block, None, &ALL_ALIVE).expect("send: no deadline, not evicted");
}

/// `ring::send::try_send` without liveness checks.
pub fn try_send_now<T: Pod>(
    p: &mut Producer,
    view: &RingView<'_>,
    value: &T,
) -> Result<(), SendFail> {
    try_send(p, view, value, &ALL_ALIVE, false)
}

/// `ring::recv::recv` with `Wait::Block`, no deadline, everyone alive (under loom the
/// liveness tick never fires, so the oracle is never asked).
pub fn recv_block<T: Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
) -> Result<T, RecvTimeoutError> {
    recv(view, reader, state, Wait::Block, None, &ALL_ALIVE)
}

/// `ring::send::send_many` with `Wait::Block`, no deadline, everyone alive: all of
/// `records` go out (a `Route` in chunks).
pub fn send_many_block<T: Pod>(p: &mut Producer, view: &RingView<'_>, records: &[T]) {
    let sent = send_many(p, view, records, Wait::Block, None, &ALL_ALIVE)
        .expect("send_many: no deadline, not evicted");
    assert_eq!(sent, records.len());
}

/// `ring::recv::recv_many` with `Wait::Block`, no deadline, everyone alive.
pub fn recv_many_block<T: Pod>(
    view: &RingView<'_>,
    reader: &mut Reader,
    state: &mut RecvState,
    out: &mut [T],
) -> Result<usize, RecvTimeoutError> {
    recv_many(view, reader, state, Wait::Block, None, &ALL_ALIVE, out)
}
