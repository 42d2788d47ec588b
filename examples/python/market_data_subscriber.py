"""A Python subscriber to the market-data demo's quotes, side by side with a Rust one.

Runs the demo's publisher (`cargo run --release --example market_data`, role
`publisher`) and one Rust subscriber (role `subscriber`) as child processes, and
subscribes to the same Route from Python. Every subscriber checks each quote's
sequence number and measures one-way latency from the CLOCK_MONOTONIC stamp the
publisher puts in the quote; the table is the demo's, one row per subscriber:

    pip install ./python
    cargo build --release --example market_data
    python examples/python/market_data_subscriber.py [--quotes N] [--rate QUOTES_PER_S] [--batch]

`--batch` reads with `recv_many(4096)` instead of one `recv()` per quote.
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
DEMO = REPO / "target" / "release" / "examples" / "market_data"

# The demo's `#[repr(C)] struct Quote` (48 bytes); `align=True` lays it out the same way.
QUOTE = np.dtype([("seq", "<u8"), ("ts_ns", "<u8"), ("bid", "<f8"), ("ask", "<f8"),
                  ("bid_qty", "<u4"), ("ask_qty", "<u4"), ("symbol", "S8")], align=True)
HEADER = ("{:<11}{:>10}{:>9}{:>7}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}"
          .format("subscriber", "received", "lagged", "gaps", "p50", "p90", "p99",
                  "p99.9", "p99.99", "max"))


def row(who: str, received: int, lagged: int, gaps: int, lat_us: np.ndarray) -> str:
    q = np.percentile(lat_us, [50, 90, 99, 99.9, 99.99]) if lat_us.size else [0.0] * 5
    mx = lat_us.max() if lat_us.size else 0.0
    return ("{:<11}{:>10}{:>9}{:>7}{:>9.1f}{:>9.1f}{:>9.1f}{:>9.1f}{:>10.1f}{:>10.1f}"
            .format(who, received, lagged, gaps, *q, mx))


def subscribe(rx: shmchan.Receiver, quotes: int, batch: bool) -> str:
    """Receives until the publisher disconnects; returns the table row."""
    lat = np.empty(quotes, np.int64)  # nanoseconds, one per quote received
    received = lagged = gaps = 0
    expected = 0
    while True:
        try:
            if batch:
                a = rx.recv_many(4096, timeout=30)
                now = time.monotonic_ns()
            else:
                q = rx.recv(timeout=30)
                now = time.monotonic_ns()
                a = None
        except shmchan.Lagged as e:
            lagged += e.missed
            expected += e.missed
            continue
        except shmchan.Disconnected:
            break
        except TimeoutError:
            print("no quote for 30 s; giving up", file=sys.stderr)
            break
        if a is None:
            seq = int(q["seq"])
            gaps += seq != expected
            expected = seq + 1
            if received < quotes:
                lat[received] = now - int(q["ts_ns"])
            received += 1
        else:
            n = len(a)
            if n == 0:
                continue
            seqs = a["seq"].astype(np.int64)
            gaps += int(seqs[0] != expected) + int(np.count_nonzero(np.diff(seqs) != 1))
            expected = int(seqs[-1]) + 1
            k = min(n, quotes - received)
            # One clock reading per batch: each quote's latency runs to the batch's end.
            lat[received:received + k] = now - a["ts_ns"][:k].astype(np.int64)
            received += n
    if received + lagged != quotes:
        gaps += 1
    return row(f"py {os.getpid()}", received, lagged, gaps,
               np.maximum(lat[:min(received, quotes)], 1) / 1000.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quotes", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=250_000)
    ap.add_argument("--batch", action="store_true", help="recv_many(4096) instead of recv()")
    args = ap.parse_args()
    if not DEMO.exists():
        subprocess.run(["cargo", "build", "--release", "--example", "market_data"],
                       cwd=REPO, check=True)
    name = f"md-py-{os.getpid()}"
    # The demo's options: 65536 slots, Overwrite, Adaptive, one receiver entry per
    # subscriber (two: the Rust one and this one).
    demo = ["--name", name, "--subscribers", "2", "--quotes", str(args.quotes),
            "--rate", str(args.rate), "--capacity", "65536"]
    rx = shmchan.Route.receiver(name, QUOTE, schema="Quote", capacity=65536,
                                overflow="overwrite", max_receivers=2)
    children = [subprocess.Popen([str(DEMO), *demo, "--role", role], stdout=subprocess.PIPE,
                                 text=True) for role in ("subscriber", "publisher")]
    try:
        print(f"market-data demo: publisher -> 1 Rust + 1 Python subscriber, "
              f"{args.quotes} quotes of {QUOTE.itemsize} bytes at {args.rate}/s; Python "
              f"reads with {'recv_many(4096)' if args.batch else 'recv()'}")
        mine = subscribe(rx, args.quotes, args.batch)
        outputs = [c.communicate(timeout=60)[0] for c in children]
    finally:
        for c in children:
            c.kill()
            c.wait()
        rx.close()
        shmchan.remove(name)
    for text in outputs:
        for line in text.splitlines():
            if line.startswith("PUBLISHER "):
                print("publisher: " + line[len("PUBLISHER "):])
    print()
    print(HEADER)
    for text in outputs:
        for line in text.splitlines():
            if line.startswith("SUBSCRIBER "):
                f = line.split()[1:]
                print("{:<11}{:>10}{:>9}{:>7}{:>9}{:>9}{:>9}{:>9}{:>10}{:>10}".format(
                    "rs " + f[0], *f[1:]))
    print(mine)
    print("(one-way latency publisher -> subscriber in microseconds, from CLOCK_MONOTONIC stamps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
