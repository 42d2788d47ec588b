"""Functions run in children started with multiprocessing's spawn (importable by name)."""

from __future__ import annotations

import time

import shmchan
from _records import TICK, SeqChecker, receive_all, ticks


def produce(name: str, count: int) -> None:
    tx = shmchan.Route.sender(name, TICK, schema="Tick", overflow="block")
    tx.wait_for_receivers(1, timeout=60)
    tx.send(ticks(0, 1)[0])
    for start in range(1, count, 5000):
        tx.send_many(ticks(start, min(start + 5000, count)))
    tx.close()


def consume(name: str, results) -> None:
    rx = shmchan.Channel.receiver(name, TICK, schema="Tick", mode="unicast")
    checker = SeqChecker()
    try:
        receive_all(rx, checker, 1 << 62, lambda: False)
        results.put(("ok", checker.received))
    except Exception as e:  # reported to the parent, which asserts on it
        results.put(("error", repr(e)))


def slow_down() -> None:
    time.sleep(0.002)
