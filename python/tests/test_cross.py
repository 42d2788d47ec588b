"""Across processes: a Rust producer to a Python receiver in every family and mode, a
Python sender to a Rust receiver, Python to Python through multiprocessing (spawn),
exact lag counts, and a producer killed with SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import signal

import numpy as np
import pytest

import shmchan
from _records import TICK, SeqChecker, receive_all, ticks
import _workers

MODES = [
    # family, mode, overflow, producers
    ("route", "broadcast", "overwrite", 1),
    ("route", "broadcast", "block", 1),
    ("route", "unicast", "block", 1),
    ("channel", "broadcast", "overwrite", 2),
    ("channel", "broadcast", "block", 2),
    ("channel", "unicast", "block", 2),
]
TOTAL = 1_000_000


def seg_args(family, mode, overflow, capacity):
    return ["--family", family, "--mode", mode, "--overflow", overflow,
            "--capacity", capacity]


def opener(family):
    return shmchan.Route if family == "route" else shmchan.Channel


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family,mode,overflow,producers", MODES)
def test_rust_producer_to_python_receiver(peer, name, procs, family, mode, overflow, producers):
    capacity = 4096
    rx = opener(family).receiver(name, TICK, schema="Tick", capacity=capacity, mode=mode,
                                 overflow=overflow)
    per = TOTAL // producers
    senders = [
        procs.start([peer, "send", name, *seg_args(family, mode, overflow, capacity),
                     "--count", per, "--producer", p, "--batch", 1 if p == 0 else 64])
        for p in range(producers)
    ]
    checker = SeqChecker(producers, ordered_only=(mode == "unicast"))
    receive_all(rx, checker, TOTAL, lambda: any(s.poll() is None for s in senders))
    for s in senders:
        assert procs.finish(s).split() == ["SENT", str(per)]
    if family == "channel" and overflow == "overwrite":
        # With several producers the core's Lagged counts can exceed the records
        # actually skipped by a few (the Rust receiver sees the same): received records
        # are still each producer's, in order, without duplicates.
        assert TOTAL <= checker.received + checker.lagged <= TOTAL + 64
    else:
        assert checker.received + checker.lagged == TOTAL
    if overflow == "block" or mode == "unicast":
        assert checker.lagged == 0
        assert checker.next == [per] * producers
    assert rx.lagged_total == checker.lagged
    with pytest.raises(shmchan.Disconnected):
        rx.recv(timeout=5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("api", ["recv", "recv_into", "batches", "iter"])
def test_receive_apis_see_every_record(peer, name, procs, api):
    count = 100_000
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", overflow="block")
    sender = procs.start([peer, "send", name, "--overflow", "block", "--count", count])
    checker = SeqChecker()
    if api == "recv":
        while True:
            try:
                q = rx.recv(timeout=30)
            except shmchan.Disconnected:
                break
            assert isinstance(q, np.void) and q.dtype == TICK
            checker.one(q)
    elif api == "recv_into":
        out = np.empty(1000, TICK)
        while True:
            try:
                n = rx.recv_into(out, timeout=30)
            except shmchan.Disconnected:
                break
            checker.batch(out[:n].copy())
    elif api == "batches":
        for batch in rx.batches(4096):
            checker.batch(batch)
    else:
        for q in rx:
            checker.one(q)
    assert procs.finish(sender).split() == ["SENT", str(count)]
    assert checker.received == count and checker.next == [count]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("family,mode,batch", [("route", "broadcast", 4096),
                                               ("route", "broadcast", 1),
                                               ("channel", "unicast", 1000)])
def test_python_sender_to_rust_receiver(peer, name, procs, family, mode, batch):
    count = 1_000_000 if batch > 1 else 100_000
    receiver = procs.start([peer, "recv", name, *seg_args(family, mode, "block", 4096)])
    assert receiver.stdout.readline().strip() == "READY"
    with opener(family).sender(name, TICK, schema="Tick", capacity=4096, mode=mode,
                               overflow="block") as tx:
        assert tx.wait_for_receivers(1, timeout=30) >= 1
        if batch == 1:
            for q in ticks(0, count):
                tx.send(q)
        else:
            for start in range(0, count, batch):
                assert tx.send_many(ticks(start, min(start + batch, count))) == min(batch, count - start)
    words = procs.finish(receiver).split()
    assert words[:4] == ["RECEIVED", str(count), "0", "0"], words


@pytest.mark.timeout(120)
def test_python_to_python_through_spawn(name):
    ctx = mp.get_context("spawn")
    count = 200_000
    # The receiver first, so the producer (which waits for it) loses nothing.
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", overflow="block")
    child = ctx.Process(target=_workers.produce, args=(name, count))
    child.start()
    try:
        checker = SeqChecker()
        receive_all(rx, checker, count, child.is_alive)
        assert checker.received == count and checker.lagged == 0
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()

    # And back: a spawned Python receiver, this process sending.
    results = ctx.Queue()
    back = name + "-back"
    child = ctx.Process(target=_workers.consume, args=(back, results))
    child.start()
    try:
        tx = shmchan.Channel.sender(back, TICK, schema="Tick", mode="unicast")
        tx.wait_for_receivers(1, timeout=60)
        for start in range(0, count, 1000):
            tx.send_many(ticks(start, start + 1000))
        tx.close()
        assert results.get(timeout=60) == ("ok", count)
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        shmchan.remove(back)


@pytest.mark.timeout(60)
def test_exact_lag_count(name):
    """A receiver that does not read while the producer laps it is told exactly how
    many records it missed, and resumes at the oldest record still in the ring."""
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", capacity=64)
    tx = shmchan.Route.sender(name, TICK, schema="Tick", capacity=64)
    tx.send_many(ticks(0, 1000))
    with pytest.raises(shmchan.Lagged) as e:
        rx.recv_many(1000)
    assert e.value.missed == 1000 - 64
    a = rx.recv_many(1000)
    assert list(a["seq"]) == list(range(936, 1000))
    assert rx.lagged_total == 936
    # Lapped again, through recv() this time.
    tx.send_many(ticks(1000, 1100))
    with pytest.raises(shmchan.Lagged) as e:
        rx.recv()
    assert e.value.missed == 100 - 64
    assert rx.recv()["seq"] == 1036


@pytest.mark.timeout(120)
def test_exact_lag_counts_with_a_slow_reader(peer, name, procs):
    """A slow Python reader behind a Rust producer in Overwrite mode: every record is
    either received or counted in a Lagged, and each batch after a lag starts exactly
    where the lag count says."""
    count = 300_000
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", capacity=1024)
    sender = procs.start([peer, "send", name, "--capacity", 1024, "--count", count])
    checker = SeqChecker()
    lags = 0
    while True:
        try:
            a = rx.recv_many(256, timeout=1.0)
        except shmchan.Lagged as e:
            checker.lagged += e.missed
            lags += 1
            # Exact: the next record is the one just after the skipped ones.
            checker.next[0] += e.missed
            continue
        except shmchan.Disconnected:
            break
        checker.batch(a)
        if checker.received % 4096 < 256:
            _workers.slow_down()
    assert procs.finish(sender).split() == ["SENT", str(count)]
    assert checker.received + checker.lagged == count
    assert lags > 0, "the reader was never lapped: not a test of lag counts"


@pytest.mark.timeout(60)
def test_killed_producer_gives_disconnected_after_the_drain(peer, name, procs):
    count = 10_000
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", capacity=16384, overflow="block")
    sender = procs.start([peer, "send", name, "--capacity", 16384, "--overflow", "block",
                          "--count", count, "--hold"])
    assert sender.stdout.readline().split() == ["SENT", str(count)]
    sender.send_signal(signal.SIGKILL)
    sender.wait(10)
    checker = SeqChecker()
    while True:
        try:
            checker.batch(rx.recv_many(1000, timeout=10))
        except shmchan.Disconnected:
            break
    assert checker.received == count and checker.next == [count]
