//! Unit tests of the ring algorithms and loops on heap memory, one thread (the loom
//! models in `loom-tests/` explore the concurrent interleavings of the same code), by
//! topic: `route.rs` (the `Route` producer, broadcast reading, the observer),
//! `channel.rs` (`Channel` claims, dead claims, gating, disconnection), `unicast.rs`,
//! `batch.rs` (batch reads and chunked sends). This file holds their helpers.

mod batch;
mod channel;
mod gap;
mod route;
mod unicast;

use std::time::{Duration, Instant};

use super::broadcast::{Batch, Consumer, Read};
use super::multi::{resolve_stall, Begin};
use super::observe::observe;
use super::producer::Producer;
use super::reader::Reader;
use super::recv::{poll, poll_many, RecvState};
use super::send::{send, send_many, try_send, try_send_many, SendFail};
use super::seqlock::write_record;
use super::single::Single;
use super::table::{claim_sender, live_receivers, reap_dead_producers, release_sender};
use super::unicast::Worker;
use super::{HeapRing, RingView};
use crate::error::TryRecvError;
use crate::layout::{stamp_done, stamp_settled, Stamp};
use crate::process::Liveness;
use crate::sync::Ordering;
use crate::wait::Wait;

/// A liveness oracle under which exactly owner `.0` is dead (`Dead(0)`: all alive).
pub(super) struct Dead(pub(super) u64);

impl Liveness for Dead {
    fn is_alive(&self, owner: u64) -> bool {
        owner != self.0
    }
}

pub(super) const ALIVE: Dead = Dead(0);
pub(super) const ROUTE_OWNER: u64 = 999;

pub(super) fn route(view: &RingView<'_>) -> Producer {
    Producer::attach_route(view, ROUTE_OWNER, &ALIVE).expect("sender claim")
}

pub(super) fn channel(view: &RingView<'_>, owner: u64) -> Producer {
    Producer::join_channel(view, owner, &ALIVE).expect("producer entry")
}

pub(super) fn push<T: bytemuck::Pod>(p: &mut Producer, view: &RingView<'_>, value: T) {
    try_send(p, view, &value, &ALIVE, false).expect("room");
}

pub(super) fn stamp(view: &RingView<'_>, seq: u64) -> Stamp {
    Stamp::decode(view.slots[view.geom.stamp_index(seq)].load(Ordering::Relaxed))
}

/// The previous producer died after stamping record `seq` done, before storing head.
pub(super) fn die_after_done_stamp(view: &RingView<'_>, tx: &mut Producer, value: u64) -> u64 {
    let seq = tx.next_seq(view);
    assert_eq!(tx.begin(view, &ALIVE, false), Begin::Ours);
    write_record(view, seq, bytemuck::bytes_of(&value));
    view.slots[view.geom.stamp_index(seq)].store(stamp_done(seq), Ordering::Release);
    seq
}
