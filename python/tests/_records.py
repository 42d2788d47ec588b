"""The record the Rust peer (`examples/python_peer.rs`) sends and checks, and the checks
of a batch of them (importable by children started with multiprocessing's spawn)."""

from __future__ import annotations

import time

import numpy as np

import shmchan

TICK = np.dtype([("seq", "<u8"), ("producer", "<u8"), ("value", "<f8"), ("check", "<u8"),
                 ("ts_ns", "<u8"), ("pad", "<u8")], align=True)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def ticks(start: int, stop: int, producer: int = 0) -> np.ndarray:
    a = np.zeros(stop - start, TICK)
    a["seq"] = np.arange(start, stop, dtype=np.uint64)
    a["producer"] = producer
    a["value"] = a["seq"] * 0.5
    a["check"] = (a["seq"] * GOLDEN) ^ np.uint64(producer)
    return a


def check_words(batch: np.ndarray) -> None:
    expected = (batch["seq"] * GOLDEN) ^ batch["producer"]
    bad = np.flatnonzero(batch["check"] != expected)
    assert bad.size == 0, f"corrupt records: {batch[bad[:3]]}"


class SeqChecker:
    """Per producer, sequence numbers rise by exactly one, except right after a lag
    (Overwrite), where they may jump ahead; in unicast (`ordered_only`) they only rise
    (another receiver may take some)."""

    def __init__(self, producers: int = 1, ordered_only: bool = False):
        self.next = [0] * producers
        self.ordered_only = ordered_only
        self.received = 0
        self.lagged = 0
        # Producers whose next record may jump ahead: a lag skips records of every
        # producer (the sequence numbers of a Channel are shared).
        self.may_jump: set[int] = set()

    def lag(self, missed: int) -> None:
        self.lagged += missed
        self.may_jump = set(range(len(self.next)))

    def one(self, q: np.void) -> None:
        """`batch` for one record, in plain Python (cheaper than numpy for one)."""
        seq, p = int(q["seq"]), int(q["producer"])
        assert int(q["check"]) == ((seq * 0x9E3779B97F4A7C15) & (2**64 - 1)) ^ p, q
        if p in self.may_jump or self.ordered_only:
            assert seq >= self.next[p], (p, seq, self.next[p])
        else:
            assert seq == self.next[p], f"producer {p}: got {seq}, expected {self.next[p]}"
        self.next[p] = seq + 1
        self.may_jump.discard(p)
        self.received += 1

    def batch(self, a: np.ndarray) -> None:
        if len(a) == 0:
            return
        check_words(a)
        for p in np.unique(a["producer"]):
            seqs = a["seq"][a["producer"] == p].astype(np.int64)
            first = int(seqs[0])
            if p in self.may_jump or self.ordered_only:
                assert first >= self.next[p], (p, first, self.next[p])
            else:
                assert first == self.next[p], f"producer {p}: got {first}, expected {self.next[p]}"
            steps = np.diff(seqs)
            if self.ordered_only:
                assert np.all(steps > 0), f"producer {p} out of order"
            else:
                assert np.all(steps == 1), f"producer {p}: a gap inside a batch"
            self.next[p] = int(seqs[-1]) + 1
            self.may_jump.discard(int(p))
        self.received += len(a)


def receive_all(rx: shmchan.Receiver, checker: SeqChecker, total: int, producers_alive,
                batch: int = 4096) -> None:
    """Receives until `total` records were received or skipped and the senders are
    gone (`Disconnected`), checking each batch."""
    while True:
        try:
            a = rx.recv_many(batch, timeout=1.0)
        except shmchan.Lagged as e:
            checker.lag(e.missed)
            continue
        except shmchan.Disconnected:
            if checker.received + checker.lagged >= total or not producers_alive():
                return
            time.sleep(0.01)  # one producer left before the next attached
            continue
        checker.batch(a)
