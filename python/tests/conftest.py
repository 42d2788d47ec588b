"""Fixtures of the cross-process tests: the Rust peer binary, unique segment names,
child processes that are always reaped, and the `Tick` record both sides share."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import shmchan

sys.path.insert(0, str(Path(__file__).parent))

from _records import TICK  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_names = itertools.count()


@pytest.fixture(scope="session")
def peer() -> str:
    """The Rust peer (`examples/python_peer.rs`), built if it is not there yet
    (SHMCHAN_PEER names another binary)."""
    explicit = os.environ.get("SHMCHAN_PEER")
    if explicit:
        return explicit
    binary = REPO / "target" / "release" / "examples" / "python_peer"
    subprocess.run(
        ["nice", "-n", "10", "cargo", "build", "--release", "--example", "python_peer"],
        cwd=REPO, check=True, timeout=900)
    return str(binary)


@pytest.fixture
def name():
    """A fresh segment name, removed after the test."""
    n = f"pyt-{os.getpid()}-{next(_names)}"
    yield n
    try:
        shmchan.remove(n)
    except OSError:
        pass


class Procs:
    """Child processes started by a test; whatever is left is killed at teardown."""

    def __init__(self):
        self.children: list[subprocess.Popen] = []

    def start(self, args, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen([str(a) for a in args], **kw)
        self.children.append(p)
        return p

    def finish(self, p: subprocess.Popen, timeout: float = 60) -> str:
        """Waits for `p` (killing it after `timeout`) and returns its stdout; fails the
        test if it did not exit 0."""
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            pytest.fail(f"{p.args} did not finish within {timeout} s: {out}")
        assert p.returncode == 0, f"{p.args} exited {p.returncode}: {out}"
        return out

    def kill_all(self):
        for p in self.children:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.kill_all()


@pytest.fixture
def tick():
    return TICK
