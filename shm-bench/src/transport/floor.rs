//! The floors: the least two processes can do to exchange data through shared memory.
//!
//! * [`WordTx`]/[`WordRx`]: a cache-line ping-pong. Each direction is one 32-bit word on
//!   its own 128-byte line; the sender stores `seq + 1`, the receiver spins (or sleeps
//!   on the same word as a shared futex) until the word changes. Only the sequence
//!   number travels: this is the physical latency limit, not a channel.
//! * [`RingTx`]/[`RingRx`]: a raw ring of fixed slots with a head cursor (and, for one
//!   lossless consumer, a tail cursor), both cached on the other side as in rtrb. The
//!   SPSC form is the throughput floor; the broadcast form (no tail, receivers detect
//!   being lapped by re-reading the head after the copy, a seqlock check that relies on
//!   x86-TSO store order) is the fan-out floor.
//!
//! Blocking variants sleep on a futex word with a waiter count: the notifier pays a
//! `SeqCst` fence and a load, and a `FUTEX_WAKE` only when someone sleeps.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;

use super::{Got, Rx, Tx};
use crate::payload::Payload;
use crate::shm::{Region, SharedPlain};
use crate::sys;

/// Longest single futex sleep; waits re-check their condition after it.
const TICK: Duration = Duration::from_millis(20);

/// One direction of the ping-pong, on its own cache line pair.
#[repr(C, align(128))]
pub struct Word {
    value: AtomicU32,
}

// SAFETY: only an atomic.
unsafe impl SharedPlain for Word {}

/// Bytes of a ping-pong region: two directions.
pub const WORDS_LEN: usize = 4096;

/// Offset of direction `dir` (0 = A to B, 1 = B to A).
pub fn word_offset(dir: usize) -> usize {
    dir * 256
}

/// Sender half of a ping-pong direction.
pub struct WordTx {
    region: std::sync::Arc<Region>,
    offset: usize,
    block: bool,
}

/// Receiver half of a ping-pong direction.
pub struct WordRx {
    region: std::sync::Arc<Region>,
    offset: usize,
    block: bool,
    last: u32,
}

impl WordTx {
    /// Sends on direction `dir` of `region`.
    pub fn new(region: std::sync::Arc<Region>, dir: usize, block: bool) -> Self {
        WordTx {
            region,
            offset: word_offset(dir),
            block,
        }
    }
}

impl WordRx {
    /// Receives on direction `dir` of `region`.
    pub fn new(region: std::sync::Arc<Region>, dir: usize, block: bool) -> Self {
        let last = region
            .at::<Word>(word_offset(dir))
            .value
            .load(Ordering::Acquire);
        WordRx {
            region,
            offset: word_offset(dir),
            block,
            last,
        }
    }
}

impl<P: Payload> Tx<P> for WordTx {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        let w = &self.region.at::<Word>(self.offset).value;
        // `Release`: pairs with the receiver's `Acquire` load (nothing else travels, but
        // it keeps the floor honest about the fence a real channel needs).
        w.store(msg.seq() as u32 + 1, Ordering::Release);
        if self.block {
            sys::futex_wake_all(w);
        }
        Ok(())
    }
}

impl<P: Payload> Rx<P> for WordRx {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        let w = &self.region.at::<Word>(self.offset).value;
        loop {
            let v = w.load(Ordering::Acquire);
            if v != self.last {
                self.last = v;
                bytemuck::bytes_of_mut(out)[..8].copy_from_slice(&u64::from(v - 1).to_ne_bytes());
                return Ok(Got::Msg);
            }
            if self.block {
                sys::futex_wait(w, v, TICK);
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn seq_only(&self) -> bool {
        true
    }
}

/// A futex word and the number of processes sleeping on it, on one line.
#[repr(C, align(128))]
struct Parker {
    futex: AtomicU32,
    waiters: AtomicU32,
}

/// The ring header: each cursor on its own line.
#[repr(C)]
struct RingHeader {
    head: Cursor,
    tail: Cursor,
    data: Parker,
    space: Parker,
}

#[repr(C, align(128))]
struct Cursor {
    value: AtomicU64,
}

// SAFETY: only atomics (and padding from alignment).
unsafe impl SharedPlain for RingHeader {}

const SLOTS_OFFSET: usize = 4096;

/// Bytes of a ring region for `capacity` records of `P`.
pub fn ring_len<P: Payload>(capacity: usize) -> usize {
    SLOTS_OFFSET + capacity * P::SIZE
}

impl Parker {
    /// Notifier half: call after publishing progress.
    #[inline]
    fn notify(&self) {
        // `SeqCst` fence: pairs with the waiter's fence so that either it sees our
        // progress or we see its registration (see shmchan's wait protocol).
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.futex.fetch_add(1, Ordering::Release);
            sys::futex_wake_all(&self.futex);
        }
    }

    /// Waiter half: sleeps unless `ready()` turns true after registering.
    #[inline]
    fn wait(&self, ready: impl Fn() -> bool) {
        let v = self.futex.load(Ordering::Acquire);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !ready() {
            sys::futex_wait(&self.futex, v, TICK);
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Producer of a raw ring.
pub struct RingTx<P> {
    region: Region,
    capacity: u64,
    lossless: bool,
    block: bool,
    seq: u64,
    cached_tail: u64,
    _p: std::marker::PhantomData<P>,
}

/// Consumer of a raw ring.
pub struct RingRx<P> {
    region: Region,
    capacity: u64,
    lossless: bool,
    block: bool,
    cursor: u64,
    cached_head: u64,
    _p: std::marker::PhantomData<P>,
}

impl<P: Payload> RingTx<P> {
    /// Producer over a region made by [`ring_len`]; `lossless` waits for the one
    /// consumer's tail.
    pub fn new(region: Region, capacity: usize, lossless: bool, block: bool) -> Self {
        assert!(
            region.len() >= ring_len::<P>(capacity),
            "ring region too small"
        );
        RingTx {
            region,
            capacity: capacity as u64,
            lossless,
            block,
            seq: 0,
            cached_tail: 0,
            _p: std::marker::PhantomData,
        }
    }

    fn header(&self) -> &RingHeader {
        self.region.at::<RingHeader>(0)
    }
}

impl<P: Payload> Tx<P> for RingTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        if self.lossless && self.seq - self.cached_tail >= self.capacity {
            loop {
                // `Acquire`: pairs with the consumer's `Release` tail store; its reads of
                // the slot we are about to reuse are done.
                self.cached_tail = self.header().tail.value.load(Ordering::Acquire);
                if self.seq - self.cached_tail < self.capacity {
                    break;
                }
                if self.block {
                    let (h, seq, cap) = (self.header(), self.seq, self.capacity);
                    h.space
                        .wait(|| seq - h.tail.value.load(Ordering::Acquire) < cap);
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let slot = SLOTS_OFFSET + (self.seq % self.capacity) as usize * P::SIZE;
        let dst = self.region.ptr(slot).cast::<P>();
        // SAFETY: `slot` + P::SIZE is within the region (checked in `new`), slots are
        // 8-aligned (P::SIZE is a multiple of 8, SLOTS_OFFSET page aligned). In lossless
        // mode no consumer reads this slot (the tail is past it); in broadcast mode a
        // lapped reader may, and detects it by re-reading the head after its copy.
        unsafe { std::ptr::write_volatile(dst, *msg) };
        self.seq += 1;
        let h = self.header();
        // `Release`: publishes the slot write to consumers' `Acquire` head loads.
        h.head.value.store(self.seq, Ordering::Release);
        if self.block {
            h.data.notify();
        }
        Ok(())
    }
}

impl<P: Payload> RingRx<P> {
    /// Consumer over a region made by [`ring_len`].
    pub fn new(region: Region, capacity: usize, lossless: bool, block: bool) -> Self {
        assert!(
            region.len() >= ring_len::<P>(capacity),
            "ring region too small"
        );
        let head = region
            .at::<RingHeader>(0)
            .head
            .value
            .load(Ordering::Acquire);
        RingRx {
            region,
            capacity: capacity as u64,
            lossless,
            block,
            cursor: head,
            cached_head: head,
            _p: std::marker::PhantomData,
        }
    }

    fn header(&self) -> &RingHeader {
        self.region.at::<RingHeader>(0)
    }
}

impl<P: Payload> Rx<P> for RingRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        while self.cursor >= self.cached_head {
            // `Acquire`: pairs with the producer's `Release` head store.
            self.cached_head = self.header().head.value.load(Ordering::Acquire);
            if self.cursor < self.cached_head {
                break;
            }
            if self.block {
                let (h, cursor) = (self.header(), self.cursor);
                h.data
                    .wait(|| h.head.value.load(Ordering::Acquire) > cursor);
            } else {
                std::hint::spin_loop();
            }
        }
        if !self.lossless && self.cached_head - self.cursor > self.capacity {
            let skipped = self.cached_head - self.capacity - self.cursor;
            self.cursor += skipped;
            return Ok(Got::Lagged(skipped));
        }
        let s = self.cursor;
        let slot = SLOTS_OFFSET + (s % self.capacity) as usize * P::SIZE;
        let src = self.region.ptr(slot).cast::<P>();
        // SAFETY: in bounds and aligned as in `RingTx::send`; the producer finished
        // writing this slot before publishing a head beyond `s` (Acquire above). A
        // broadcast producer may overwrite it concurrently once it laps us; `P` is Pod,
        // so a torn copy is still a valid value, and it is discarded below.
        *out = unsafe { std::ptr::read_volatile(src) };
        if !self.lossless {
            // `Acquire` fence: the copy above is ordered before this re-read of the head.
            fence(Ordering::Acquire);
            let h2 = self.header().head.value.load(Ordering::Relaxed);
            if h2 >= s + self.capacity {
                let resume = h2 + 1 - self.capacity;
                let skipped = resume - s;
                self.cursor = resume;
                self.cached_head = h2;
                return Ok(Got::Lagged(skipped));
            }
        }
        self.cursor += 1;
        if self.lossless {
            let h = self.header();
            // `Release`: our read of the slot is done before the producer reuses it.
            h.tail.value.store(self.cursor, Ordering::Release);
            if self.block {
                h.space.notify();
            }
        }
        Ok(Got::Msg)
    }
}
