"""Notebook-style: plot a live quote feed with matplotlib (if it is installed).

Start the demo with a known segment name and a slow rate in one terminal,

    cargo run --release --example market_data -- --name quotes --subscribers 1 --rate 2000

then, while it runs (its segment has one receiver entry per subscriber, so ask for
one more with `--subscribers 2` if its own subscriber holds the only one):

    python examples/python/plot_live.py quotes [--seconds 5]

Reads for a few seconds with `batches()`, then plots bid and ask against time (to
quotes.png), or prints a summary when matplotlib is not installed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import shmchan

QUOTE = np.dtype([("seq", "<u8"), ("ts_ns", "<u8"), ("bid", "<f8"), ("ask", "<f8"),
                  ("bid_qty", "<u4"), ("ask_qty", "<u4"), ("symbol", "S8")], align=True)

ap = argparse.ArgumentParser()
ap.add_argument("name")
ap.add_argument("--seconds", type=float, default=5.0)
args = ap.parse_args()

# %% Join the feed with the segment's own options (capacity, overflow, table size).
info = shmchan.inspect(args.name)
rx = shmchan.Route.receiver(args.name, QUOTE, schema=info.schema, capacity=info.capacity,
                            overflow=info.overflow, max_receivers=info.max_receivers)

# %% Collect for a while: whole batches, lags skipped (a plot does not need every quote).
parts, end = [], time.monotonic() + args.seconds
for batch in rx.batches(4096, timeout=0.1, skip_lag=True):
    parts.append(batch)
    if time.monotonic() > end:
        break
quotes = np.concatenate(parts) if parts else np.empty(0, QUOTE)
rx.close()
print(f"{len(quotes)} quotes, {rx.lagged_total if not rx.closed else 0} skipped")

# %% Plot (or summarise).
if len(quotes):
    t = (quotes["ts_ns"] - quotes["ts_ns"][0]) / 1e9
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed; bid {quotes['bid'].min():.2f}..{quotes['bid'].max():.2f}, "
              f"mean spread {np.mean(quotes['ask'] - quotes['bid']):.4f} over {t[-1]:.2f} s")
    else:
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(t, quotes["bid"], lw=0.6, label="bid")
        ax.plot(t, quotes["ask"], lw=0.6, label="ask")
        ax.set_xlabel("seconds")
        ax.set_title(f"{args.name}: {len(quotes)} quotes")
        ax.legend()
        fig.savefig("quotes.png", dpi=100)
        print("wrote quotes.png")
