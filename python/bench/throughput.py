"""Records/s of a Python receiver (`recv()` one record at a time, `recv_many(4096)`)
against the Rust receiver, in one run: a Rust producer (`examples/python_peer.rs`)
sends 48-byte records with `send_many` on a lossless Route (Overflow 'block', 65536
slots), so the receiver is the bottleneck; each receiver counts from its first record
to its last.

    python python/bench/throughput.py [--count N]

Needs the package installed (`pip install ./python`) and builds the Rust peer with
cargo if it is not there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import shmchan

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / "target" / "release" / "examples" / "python_peer"
TICK = np.dtype([("seq", "<u8"), ("producer", "<u8"), ("value", "<f8"), ("check", "<u8"),
                 ("ts_ns", "<u8"), ("pad", "<u8")], align=True)
SEGMENT = ["--capacity", "65536", "--overflow", "block"]
OPTIONS = dict(schema="Tick", capacity=65536, overflow="block")


def producer(name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([str(PEER), "send", name, *SEGMENT, "--count", str(count),
                             "--batch", "4096"], stdout=subprocess.DEVNULL)


def python_recv(name: str, count: int) -> float:
    rx = shmchan.Route.receiver(name, TICK, **OPTIONS)
    p = producer(name, count)
    try:
        last = rx.recv(timeout=30)
        t0 = time.perf_counter()
        recv = rx.recv
        for _ in range(count - 1):
            last = recv()
        t1 = time.perf_counter()
        assert last["seq"] == count - 1
    finally:
        p.wait(60)
    return (count - 1) / (t1 - t0)


def python_recv_many(name: str, count: int, batch: int = 4096) -> float:
    rx = shmchan.Route.receiver(name, TICK, **OPTIONS)
    p = producer(name, count)
    try:
        got = len(rx.recv_many(batch, timeout=30))
        first = got
        t0 = time.perf_counter()
        while got < count:
            a = rx.recv_many(batch)
            got += len(a)
        t1 = time.perf_counter()
        assert a["seq"][-1] == count - 1
    finally:
        p.wait(60)
    return (count - first) / (t1 - t0)


def rust_recv_many(name: str, count: int) -> float:
    rx = subprocess.Popen([str(PEER), "recv", name, *SEGMENT], stdout=subprocess.PIPE,
                          text=True)
    try:
        assert rx.stdout.readline().strip() == "READY"
        p = producer(name, count)
        out, _ = rx.communicate(timeout=120)
        p.wait(60)
    finally:
        rx.kill()
    words = out.split()
    assert words[:2] == ["RECEIVED", str(count)], out
    return float(words[4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2_000_000, help="records per receiver")
    args = ap.parse_args()
    if not PEER.exists():
        subprocess.run(["cargo", "build", "--release", "--example", "python_peer"],
                       cwd=REPO, check=True)
    runs = [
        ("Python Receiver.recv()", python_recv),
        ("Python Receiver.recv_many(4096)", python_recv_many),
        ("Rust RawReceiver/Receiver::recv_many (4096)", rust_recv_many),
    ]
    print(f"{args.count} records of {TICK.itemsize} bytes per receiver, Route, Overflow "
          f"block, 65536 slots, Rust producer with send_many(4096)")
    results = []
    for label, run in runs:
        name = f"pybench-{os.getpid()}-{len(results)}"
        try:
            rate = run(name, args.count)
        finally:
            shmchan.remove(name)
        results.append((label, rate))
        print(f"  {label:<46} {rate / 1e6:8.2f} M records/s", flush=True)
    rust = results[-1][1]
    for label, rate in results[:-1]:
        print(f"  {label}: {rate / rust:.2f}x the Rust receiver")


if __name__ == "__main__":
    sys.exit(main())
