"""Legal input at the edges (issue 32): single receives of every accepted dtype shape,
byte buffers of every kind to send_many, bounded recv_many, one handle used from two
threads, from a signal handler and in a forked child, huge timeouts, close() cancelling
a blocked call, and the count of records sent carried on an interrupted send_many.

What crashed or hung the interpreter before runs in a child process with a timeout, so
that it fails as a test instead of taking pytest down with it."""

from __future__ import annotations

import array
import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import shmchan
from _dtypes import SAMPLES
from _records import TICK, ticks

pytestmark = pytest.mark.timeout(60)

HERE = os.path.dirname(os.path.abspath(__file__))


def run_child(code: str, *args: str, timeout: float = 30) -> list[str]:
    """Runs `code` in a fresh interpreter (from this folder, so that it imports the
    installed package and the test helpers) and returns its stdout lines; fails the
    test if it crashed, hung or exited non-zero."""
    try:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                             capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child hung (killed after {timeout} s); stdout: {e.stdout!r}")
    assert out.returncode == 0, (
        f"the child exited {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr[-2000:]}")
    return out.stdout.splitlines()


# --- 1. single receives of every dtype shape ---------------------------------------

SINGLE = """
    import sys, numpy as np, shmchan
    from _dtypes import sample
    name, key = sys.argv[1:]
    dt, records = sample(key)
    rx = shmchan.Route.receiver(name, dt, schema="Sample", overflow="block", capacity=8)
    tx = shmchan.Route.sender(name, dt, schema="Sample", overflow="block", capacity=8)
    it = iter(rx)
    for api, receive in [("recv", lambda: rx.recv(timeout=5)), ("try_recv", rx.try_recv),
                         ("iter", lambda: next(it))]:
        assert tx.send_many(records) == 3
        for i in range(3):
            got = receive()
            want = records[i]  # what numpy gives for one record of this dtype
            where = f"{api}, record {i}"
            assert type(got) is type(want), (where, type(got), type(want))
            g, w = np.asarray(got), np.asarray(want)
            assert (g.dtype, g.shape) == (w.dtype, w.shape), (where, g.dtype, g.shape, w.dtype, w.shape)
            assert got.tobytes() == want.tobytes(), (where, got.tobytes(), want.tobytes())
            assert repr(got) == repr(want), (where, repr(got), repr(want))
            a, b = np.array([got]), np.array([want])
            assert (a.dtype, a.shape) == (b.dtype, b.shape) and (a == b).all(), (where, a, b)
            if w.dtype.kind in "uif":
                assert np.array_equal(got + 1, want + 1), where
        print(api, "OK")
"""


@pytest.mark.parametrize("key", list(SAMPLES))
def test_a_single_receive_gives_what_numpy_gives_for_one_record(name, key):
    """recv(), try_recv() and iteration, for every dtype shape the package accepts (in
    a child: a subarray dtype crashed numpy before)."""
    assert run_child(SINGLE, name, key) == ["recv OK", "try_recv OK", "iter OK"]


def test_a_subarray_record_comes_back_as_an_array(name):
    dt = np.dtype(("<u4", (3,)))
    rx = shmchan.Route.receiver(name, dt)
    tx = shmchan.Route.sender(name, dt)
    tx.send(np.array([7, 8, 9], "<u4"))
    # In a child: before, this was a numpy.void of a subarray dtype, which crashed numpy.
    assert run_child("""
        import sys, numpy as np, shmchan
        rx = shmchan.Route.receiver(sys.argv[1], np.dtype(("<u4", (3,))))
        tx = shmchan.Route.sender(sys.argv[1], np.dtype(("<u4", (3,))))
        tx.send(np.array([7, 8, 9], "<u4"))
        r = rx.recv(timeout=5)
        print(type(r).__name__, r.tolist(), (r + 1).tolist(), np.asarray(r).shape)
    """, name + "-child") == ["ndarray [7, 8, 9] [8, 9, 10] (3,)"]
    rx.close()
    tx.close()
    shmchan.remove(name + "-child")


# --- 2. attributes, close() and signal handlers while a call is in progress ---------

def wait_in_use(handle, timeout: float = 10) -> bool:
    """Waits until another thread is inside a call on `handle` (a call that needs the
    handle is refused with RuntimeError then); False if none was within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            handle.next_seq
        except RuntimeError:
            return True
        time.sleep(0.005)
    return False


# The same, for the children (pasted into their code).
WAIT_IN_USE = """
    def wait_in_use(handle, timeout=10):
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                handle.next_seq
            except RuntimeError:
                return True
            time.sleep(0.005)
        return False
"""

BUSY = WAIT_IN_USE + """
    import sys, threading, time, numpy as np, shmchan
    name, kind = sys.argv[1:]
    rx = shmchan.Route.receiver(name, np.uint64, overflow="block", capacity=8)
    tx = shmchan.Route.sender(name, np.uint64, overflow="block", capacity=8)
    if kind == "receiver":
        handle, call = rx, lambda: rx.recv(timeout=10)
    else:
        tx.send_many(np.arange(8, dtype=np.uint64))  # the ring is full: send_many waits
        handle, call = tx, lambda: tx.send_many(np.arange(4, dtype=np.uint64), timeout=10)
    got = []
    def run():
        try:
            call()
            got.append("returned")
        except BaseException as e:
            got.append(f"{type(e).__name__}: {e} sent={getattr(e, 'sent', None)}")
    t = threading.Thread(target=run)
    t.start()
    print("inside", wait_in_use(handle), flush=True)
    print("closed", handle.closed, flush=True)
    print("repr", "closed" in repr(handle), flush=True)
    print("name", handle.name == name, getattr(handle, "schema", "u64"), handle.dtype, flush=True)
    try:
        handle.recv(timeout=0) if kind == "receiver" else handle.send(np.uint64(1))
    except RuntimeError as e:
        print("second call refused", "another thread" in str(e), flush=True)
    handle.close()
    t.join(10)
    print("joined", not t.is_alive(), flush=True)
    print("closed", handle.closed, "closed" in repr(handle), flush=True)
    print("call", got[0], flush=True)
"""


@pytest.mark.parametrize("kind", ["receiver", "sender"])
def test_attributes_and_close_while_another_thread_is_inside_a_call(name, kind):
    lines = run_child(BUSY, name, kind)
    assert lines[:7] == ["inside True", "closed False", "repr False", "name True u64 uint64",
                         "second call refused True", "joined True", "closed True True"], lines
    assert lines[7].startswith("call ValueError") and "closed" in lines[7], lines
    if kind == "sender":
        assert lines[7].endswith("sent=0"), lines


SIGNAL = WAIT_IN_USE + """
    import signal, sys, threading, numpy as np, shmchan
    name = sys.argv[1]
    rx = shmchan.Route.receiver(name, np.uint64)
    seen = []
    def handler(signum, frame):
        seen.append(f"closed={rx.closed}")
        seen.append(f"repr-closed={'closed' in repr(rx)}")
        try:
            rx.try_recv()
        except RuntimeError as e:
            seen.append("in-use")
        rx.close()
        seen.append(f"closed-after-close={rx.closed}")
    signal.signal(signal.SIGALRM, handler)
    main = threading.get_ident()
    def alarm():  # SIGALRM once the main thread is inside recv
        if wait_in_use(rx):
            signal.pthread_kill(main, signal.SIGALRM)
    threading.Thread(target=alarm, daemon=True).start()
    try:
        rx.recv(timeout=10)
        print("returned")
    except ValueError as e:
        print("ValueError", "closed" in str(e))
    print(" ".join(seen))
    print("closed", rx.closed)
    rx.close()  # idempotent
"""


def test_a_signal_handler_can_read_and_close_the_handle_it_interrupted(name):
    assert run_child(SIGNAL, name) == [
        "ValueError True",
        "closed=False repr-closed=False in-use closed-after-close=True",
        "closed True",
    ]


FORK = WAIT_IN_USE + """
    import os, signal, sys, threading, time, numpy as np, shmchan
    name = sys.argv[1]
    rx = shmchan.Route.receiver(name, np.uint64)
    def wait():
        try:
            rx.recv(timeout=3)
        except TimeoutError:
            pass
    t = threading.Thread(target=wait)
    t.start()
    assert wait_in_use(rx)  # the thread is inside recv: it holds the handle's lock
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists; the handle's lock stays held
        try:
            out = [f"closed={rx.closed}", f"repr={'Receiver' in repr(rx)}"]
            for call in (lambda: rx.recv(timeout=0), rx.close):
                try:
                    call()
                    out.append("no error")
                except shmchan.Error as e:
                    out.append(f"forked={'forked child' in str(e)}")
            os.write(w, " ".join(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 10
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("the child hung")
            break
        time.sleep(0.02)
    with os.fdopen(r) as f:
        print(f.read())
    t.join(10)
    print("parent", t.is_alive(), rx.closed)
"""


def test_a_child_forked_while_a_call_is_in_progress_can_read_the_handle(name):
    assert run_child(FORK, name) == [
        "closed=False repr=True forked=True forked=True",
        "parent False False",
    ]


def test_close_cancels_a_recv_waiting_for_ever(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick")
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    got = []

    def run():
        try:
            got.append(rx.recv())
        except BaseException as e:  # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        assert wait_in_use(rx)
        rx.close()
        t.join(10)
        assert not t.is_alive()
        assert isinstance(got[0], ValueError) and "closed" in str(got[0]), got
        assert rx.closed and "closed" in repr(rx)
        with pytest.raises(ValueError, match="closed"):
            rx.try_recv()
    finally:
        tx.send(ticks(0, 1)[0])  # releases the thread if close() did not
        t.join(10)


def test_close_cancels_a_send_many_waiting_for_room_and_says_how_many_went(name):
    rx = shmchan.Route.receiver(name, np.uint64, overflow="block", capacity=8)
    tx = shmchan.Route.sender(name, np.uint64, overflow="block", capacity=8)
    got = []

    def run():
        try:
            got.append(tx.send_many(np.arange(20, dtype=np.uint64)))
        except BaseException as e:  # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        assert wait_in_use(tx)
        tx.close()
        t.join(10)
        assert isinstance(got[0], ValueError) and "closed" in str(got[0]), got
        assert got[0].sent == 8
        assert list(rx.recv_many(100, timeout=5)) == list(range(8))
    finally:
        while t.is_alive() and rx.try_recv_many(100) is not None:  # release the thread
            t.join(0.05)


# --- 3. byte buffers to send_many --------------------------------------------------

def _buffers(raw: bytes):
    yield "bytes", raw
    yield "bytearray", bytearray(raw)
    yield "memoryview", memoryview(raw)
    yield "memoryview of bytearray", memoryview(bytearray(raw))
    yield "array('B')", array.array("B", raw)
    yield "array('I')", array.array("I", np.frombuffer(raw, "<u4").tolist())
    yield "ctypes array", (ctypes.c_uint8 * len(raw)).from_buffer_copy(raw)
    yield "memoryview cast to 'I'", memoryview(bytearray(raw)).cast("I")


@pytest.mark.parametrize("kind", [k for k, _ in _buffers(b"")])
def test_every_contiguous_buffer_is_taken_as_its_bytes(name, kind):
    rx = shmchan.Route.receiver(name, "<u4", overflow="block", capacity=64)
    tx = shmchan.Route.sender(name, "<u4", overflow="block", capacity=64)
    records = np.array([1, 2, 0xDEADBEEF], "<u4")
    buf = dict(_buffers(records.tobytes()))[kind]
    assert tx.send_many(buf) == 3
    assert tx.try_send_many(buf) == 3
    one = dict(_buffers(records[:1].tobytes()))[kind]
    tx.send(one)
    assert tx.try_send(one)
    assert rx.recv_many(64, timeout=5).tolist() == [1, 2, 0xDEADBEEF] * 2 + [1, 1]


def test_typed_buffers_convert_value_by_value_and_unsafe_casts_are_refused(name):
    rx = shmchan.Route.receiver(name, "<f8", overflow="block", capacity=64)
    tx = shmchan.Route.sender(name, "<f8", overflow="block", capacity=64)
    assert tx.send_many(array.array("d", [1.5, -2.0])) == 2
    assert tx.send_many(array.array("i", [3, 4])) == 2  # int32 -> float64 is safe
    assert rx.recv_many(64, timeout=5).tolist() == [1.5, -2.0, 3.0, 4.0]
    f4 = shmchan.Route.sender(name + "-f4", "<f4")
    try:
        with pytest.raises(TypeError, match="Cannot cast"):
            f4.send_many(array.array("d", [1.5]))
        assert f4.next_seq == 0
    finally:
        f4.close()
        shmchan.remove(name + "-f4")


def test_structured_records_from_a_bytearray(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", overflow="block")
    tx = shmchan.Route.sender(name, TICK, schema="Tick", overflow="block")
    assert tx.send_many(bytearray(ticks(0, 5).tobytes())) == 5
    assert rx.recv_many(10, timeout=5)["seq"].tolist() == list(range(5))


def test_buffers_of_the_wrong_length_or_not_contiguous_are_refused(name):
    tx = shmchan.Route.sender(name, "<u4", overflow="block", capacity=64)
    for bad in (bytearray(7), memoryview(b"\0" * 6), array.array("B", [0] * 5)):
        with pytest.raises(ValueError, match="whole number"):
            tx.send_many(bad)
        with pytest.raises(ValueError, match="4 bytes"):
            tx.send(bad)
    with pytest.raises(ValueError, match="contiguous"):
        tx.send_many(memoryview(bytearray(16))[::2])
    assert tx.next_seq == 0  # nothing went out


# --- 4. recv_many's memory -----------------------------------------------------------

BOUNDED = """
    import resource, sys, numpy as np, shmchan
    sys.path.insert(0, ".")
    from _records import TICK, ticks
    name = sys.argv[1]
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", capacity=8)
    tx = shmchan.Route.sender(name, TICK, schema="Tick", capacity=8)
    tx.send_many(ticks(0, 5))
    a = rx.recv_many(2**50)
    print(len(a), a["seq"].tolist(), a.nbytes, a.base is None, a.flags.owndata)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tx.send_many(ticks(5, 13))
    for _ in range(3):
        print(len(rx.recv_many(10**7, timeout=1)))
    print(len(rx.recv_many(10**7, timeout=0)))
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    print("grew", grew < 16 * 1024, grew)
"""


def test_recv_many_allocates_no_more_than_the_ring_can_return(name):
    lines = run_child(BOUNDED, name)
    assert lines[0] == "5 [0, 1, 2, 3, 4] 240 True True", lines
    assert lines[1:5] == ["8", "0", "0", "0"], lines
    assert lines[5].startswith("grew True"), lines


def test_recv_many_returns_exactly_its_records(name):
    dt = np.dtype(("<u4", (3,)))
    rx = shmchan.Route.receiver(name, dt, capacity=16)
    tx = shmchan.Route.sender(name, dt, capacity=16)
    tx.send_many(np.arange(12, dtype="<u4").reshape(4, 3))
    a = rx.recv_many(1000)
    assert a.shape == (4, 3) and a.base is None and a.nbytes == 48
    assert a.tolist() == np.arange(12).reshape(4, 3).tolist()
    e = rx.recv_many(1000, timeout=0)
    assert e.shape == (0, 3) and e.dtype == np.uint32


# --- 5. timeouts, the Rust-side dtype check, an interrupted send_many ------------------

@pytest.mark.parametrize("timeout", [1e19, 1e300, float("inf")])
def test_a_huge_timeout_waits_for_ever(name, timeout):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", overflow="block",
                                open_timeout=timeout)
    tx = shmchan.Route.sender(name, TICK, schema="Tick", overflow="block",
                              open_timeout=timeout)
    assert tx.wait_for_receivers(1, timeout=timeout) == 1
    tx.send(ticks(0, 1)[0], timeout=timeout)
    assert tx.send_many(ticks(1, 3), timeout=timeout) == 2
    assert rx.recv(timeout=timeout)["seq"] == 0
    assert rx.recv_many(10, timeout=timeout)["seq"].tolist() == [1, 2]
    # Nothing there: the wait goes on until a record comes.
    t = threading.Timer(0.3, lambda: tx.send(ticks(3, 4)[0]))
    t.start()
    assert rx.recv(timeout=timeout)["seq"] == 3
    t.join()


def _options(name, **kw):
    o = dict(family="route", name=name, schema="X", align=8, capacity=None, mode=None,
             overflow=None, wait=None, max_receivers=None, max_producers=None, path=None,
             permissions=None, open_timeout=None)
    o.update(kw)
    return o


@pytest.mark.parametrize("dtype", [np.dtype(object), np.dtype([("a", "<u8"), ("o", "O")]),
                                   np.dtype(("O", (2,)))])
def test_the_extension_refuses_object_dtypes_itself(name, dtype):
    from shmchan import _shmchan

    for opener in (_shmchan.open_receiver, _shmchan.open_sender):
        with pytest.raises(TypeError, match="Python objects"):
            opener(dtype, _options(name))
    with pytest.raises(FileNotFoundError):
        shmchan.inspect(name)  # nothing was created


SIGINT_SEND = WAIT_IN_USE + """
    import signal, sys, threading, numpy as np, shmchan
    signal.signal(signal.SIGINT, signal.default_int_handler)
    name = sys.argv[1]
    rx = shmchan.Route.receiver(name, np.uint64, overflow="block", capacity=64)
    tx = shmchan.Route.sender(name, np.uint64, overflow="block", capacity=64)
    def announce():  # READY once the main thread is inside send_many (the ring is full)
        if wait_in_use(tx):
            print("READY", flush=True)
    threading.Thread(target=announce, daemon=True).start()
    try:
        tx.send_many(np.arange(1000, dtype=np.uint64))
        print("returned", flush=True)
    except KeyboardInterrupt as e:
        print("interrupted", getattr(e, "sent", None), flush=True)
"""


def test_ctrl_c_during_send_many_tells_how_many_were_sent(name):
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SIGINT_SEND), name],
                         stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        assert p.stdout.readline().strip() == "READY"
        p.send_signal(2)
        out, _ = p.communicate(timeout=10)
    finally:
        p.kill()
        p.wait()
    assert out.split() == ["interrupted", "64"], out
