//! In-process costs of shmchan's hot path (one thread, no cross-core traffic):
//! `send` + `try_recv` per overflow mode and wait strategy, `loan()` against `send`,
//! and the producer's cost per record against the number of attached receivers in
//! `Overflow::Overwrite` mode (which should not grow: one ring, one cursor per
//! receiver, receivers never touched by the producer), and a ready record through
//! `try_recv` against `recv_async`.
//!
//! Cross-process figures come from the `shm-bench` binary; these isolate the
//! instruction path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmchan::{Overflow, Route, Wait};

/// A 64-byte record like the cross-process benchmark's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Rec64 {
    seq: u64,
    ts: u64,
    pad: [u64; 6],
}

fn rec(seq: u64) -> Rec64 {
    Rec64 {
        seq,
        ts: seq,
        pad: [seq; 6],
    }
}

fn name(tag: &str) -> String {
    format!("shmbench-crit-{}-{tag}", std::process::id())
}

fn builder(n: &str, overflow: Overflow, wait: Wait) -> shmchan::Builder<Rec64> {
    Route::<Rec64>::builder(n)
        .capacity(1024)
        .overflow(overflow)
        .wait(wait)
}

const MODES: [(&str, Overflow); 2] = [
    ("overwrite", Overflow::Overwrite),
    ("lossless", Overflow::Block),
];
const WAITS: [(&str, Wait); 3] = [
    ("spin", Wait::Spin),
    ("adaptive", Wait::Adaptive),
    ("block", Wait::Block),
];

fn send_try_recv(c: &mut Criterion) {
    let mut g = c.benchmark_group("send+try_recv");
    for (mode_name, overflow) in MODES {
        for (wait_name, wait) in WAITS {
            let n = name(&format!("str-{mode_name}-{wait_name}"));
            let mut rx = builder(&n, overflow, wait)
                .receiver()
                .expect("open receiver");
            let mut tx = builder(&n, overflow, wait).sender().expect("open sender");
            g.bench_function(BenchmarkId::new(mode_name, wait_name), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for i in 0..iters {
                        tx.send(black_box(rec(i))).expect("send");
                        let r = rx.try_recv().expect("a record is there");
                        black_box(r);
                    }
                    start.elapsed()
                })
            });
            drop((tx, rx));
            // Best effort clean-up of the bench segment.
            let _ = Route::<Rec64>::remove(&n);
        }
    }
    g.finish();
}

fn loan_vs_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("loan_vs_send");
    for (mode_name, overflow) in MODES {
        let n = name(&format!("loan-{mode_name}"));
        let mut rx = builder(&n, overflow, Wait::Spin)
            .receiver()
            .expect("open receiver");
        let mut tx = builder(&n, overflow, Wait::Spin)
            .sender()
            .expect("open sender");
        g.bench_function(BenchmarkId::new("send", mode_name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    tx.send(black_box(rec(i))).expect("send");
                    black_box(rx.try_recv().expect("a record is there"));
                }
                start.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("loan", mode_name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    let mut slot = tx.loan().expect("loan");
                    *slot = black_box(rec(i));
                    slot.publish().expect("publish");
                    black_box(rx.try_recv().expect("a record is there"));
                }
                start.elapsed()
            })
        });
        drop((tx, rx));
        // Best effort clean-up of the bench segment.
        let _ = Route::<Rec64>::remove(&n);
    }
    g.finish();
}

fn producer_vs_receivers(c: &mut Criterion) {
    let mut g = c.benchmark_group("overwrite_send_vs_receivers");
    for receivers in [0usize, 1, 4, 16, 64] {
        let n = name(&format!("fan-{receivers}"));
        let b0 = || builder(&n, Overflow::Overwrite, Wait::Spin).max_receivers(64);
        // Idle receivers: attached, never reading (they lag; the producer must not care).
        let rxs: Vec<_> = (0..receivers)
            .map(|_| b0().receiver().expect("open receiver"))
            .collect();
        let mut tx = b0().sender().expect("open sender");
        g.bench_function(BenchmarkId::from_parameter(receivers), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    tx.send(black_box(rec(i))).expect("send");
                }
                start.elapsed()
            })
        });
        drop(tx);
        drop(rxs);
        // Best effort clean-up of the bench segment.
        let _ = Route::<Rec64>::remove(&n);
    }
    g.finish();
}

/// A busy stream, records always ready: a batch of 256 sent, then received with
/// `try_recv`, with `recv_async` polled once by hand (the future's cost alone), and
/// with `recv_async` on a tokio current_thread runtime (`block_on` per record).
fn try_recv_vs_recv_async(c: &mut Criterion) {
    const BATCH: u64 = 256;
    let mut g = c.benchmark_group("ready_try_recv_vs_recv_async");
    let n = name("ready-async");
    let mut rx = builder(&n, Overflow::Block, Wait::Block)
        .receiver()
        .expect("open receiver");
    let mut tx = builder(&n, Overflow::Block, Wait::Block)
        .sender()
        .expect("open sender");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for how in ["try_recv", "recv_async_poll", "recv_async_tokio"] {
        g.bench_function(how, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(BATCH);
                    for i in 0..k {
                        tx.send(rec(i)).expect("send");
                    }
                    let start = Instant::now();
                    for _ in 0..k {
                        let r = match how {
                            "try_recv" => rx.try_recv().expect("ready"),
                            "recv_async_poll" => {
                                let mut f = std::pin::pin!(rx.recv_async());
                                match std::future::Future::poll(f.as_mut(), &mut cx) {
                                    std::task::Poll::Ready(r) => r.expect("ready"),
                                    std::task::Poll::Pending => panic!("not ready"),
                                }
                            }
                            _ => rt.block_on(rx.recv_async()).expect("ready"),
                        };
                        black_box(r);
                    }
                    spent += start.elapsed();
                    left -= k;
                }
                spent
            })
        });
    }
    drop((tx, rx));
    let _ = Route::<Rec64>::remove(&n);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

/// The group `criterion_group!` declares, in a private module so that the public function
/// the macro generates (without documentation) is not exported.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = config();
        targets = send_try_recv, loan_vs_send, producer_vs_receivers, try_recv_vs_recv_async
    }
}
criterion_main!(group::benches);
