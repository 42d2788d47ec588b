"""One process (or a child it starts): the GIL released while blocked, Ctrl-C, and
every bad input giving a clear Python exception."""

from __future__ import annotations

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
from _records import TICK, ticks

pytestmark = pytest.mark.timeout(60)

# Children run from this folder, so that `import shmchan` finds the installed package
# (with its extension module), not the source folder beside it.
HERE = os.path.dirname(os.path.abspath(__file__))


def test_recv_blocked_in_a_thread_lets_other_threads_run(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick")
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    got = []
    t = threading.Thread(target=lambda: got.append(rx.recv(timeout=30)))
    t.start()
    # Pure-Python work while the other thread is inside recv(): it must not hold the GIL.
    count = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        count += 1
    assert t.is_alive() and not got
    assert count > 10_000
    tx.send(ticks(7, 8)[0])
    t.join(30)
    assert not t.is_alive() and got[0]["seq"] == 7


def test_a_handle_used_by_two_threads_at_once_is_refused(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick")
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    t = threading.Thread(target=lambda: rx.recv(timeout=30))
    t.start()
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="another thread"):
        rx.recv(timeout=0)
    tx.send(ticks(0, 1)[0])
    t.join(30)


SIGINT_CHILD = textwrap.dedent("""
    import signal, sys, time, numpy as np, shmchan
    # Python leaves SIGINT alone if it started ignored (a background job of a
    # non-interactive shell, as in CI): install the handler that raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rx = shmchan.Route.receiver(sys.argv[1], np.uint64)
    print("READY", flush=True)
    try:
        rx.recv()
    except KeyboardInterrupt:
        print("INTERRUPTED", time.monotonic(), flush=True)
""")


@pytest.mark.parametrize("wait", ["adaptive", "block", "spin"])
def test_sigint_interrupts_recv_within_200ms(name, wait):
    child_code = SIGINT_CHILD.replace("np.uint64)", f"np.uint64, wait={wait!r})")
    p = subprocess.Popen([sys.executable, "-c", child_code, name], stdout=subprocess.PIPE,
                         text=True, cwd=HERE)
    try:
        assert p.stdout.readline().strip() == "READY"
        time.sleep(0.3)  # well inside recv() by now
        sent_at = time.monotonic()  # CLOCK_MONOTONIC: one clock for both processes
        p.send_signal(2)
        line = p.stdout.readline().split()
        p.wait(10)
    finally:
        p.kill()
        p.wait()
    assert line and line[0] == "INTERRUPTED", line
    assert float(line[1]) - sent_at < 0.2


# --- bad inputs -------------------------------------------------------------------

def test_big_endian_and_object_fields_are_refused(name):
    be = np.dtype([("seq", ">u8"), ("bid", "<f8")])
    with pytest.raises(TypeError, match="'seq' is big-endian"):
        shmchan.Route.receiver(name, be, schema="X")
    with pytest.raises(TypeError, match="big-endian"):
        shmchan.Route.sender(name, ">f8")
    with pytest.raises(TypeError, match="'obj' holds Python objects"):
        shmchan.Route.receiver(name, np.dtype([("seq", "<u8"), ("obj", "O")]), schema="X")
    with pytest.raises(TypeError, match="holds Python objects"):
        shmchan.Route.receiver(name, np.dtype([("a", "O", (2,))]), schema="X")
    with pytest.raises(TypeError, match="schema="):
        shmchan.Route.receiver(name, TICK)


def test_output_arrays_must_be_writeable_contiguous_and_of_the_dtype(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick")
    ro = np.empty(8, TICK)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        rx.recv_into(ro, timeout=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        rx.recv_into(np.empty(8, TICK)[::2], timeout=0)
    with pytest.raises(TypeError, match="dtype"):
        rx.recv_into(np.empty(8, np.uint64), timeout=0)
    with pytest.raises(TypeError, match="numpy array"):
        rx.recv_into([0] * 8, timeout=0)
    assert rx.recv_into(np.empty(8, TICK), timeout=0) == 0


def test_send_refuses_records_of_another_dtype_or_size(name):
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    other = np.zeros(2, [("a", "<u8")] * 1)
    with pytest.raises(TypeError, match="cannot be sent"):
        tx.send_many(other)
    with pytest.raises(ValueError, match="48 bytes"):
        tx.send(b"\0" * 47)
    with pytest.raises(ValueError, match="whole number"):
        tx.send_many(b"\0" * 50)
    with pytest.raises(ValueError, match="one record"):
        tx.send(ticks(0, 2))
    assert tx.send_many(b"\0" * 96) == 2
    tx.send(tuple(range(6)))  # field values convert


def test_second_sender_on_a_route_is_refused(name):
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    with pytest.raises(shmchan.SenderExists) as e:
        shmchan.Route.sender(name, TICK, schema="Tick")
    assert e.value.pid == os.getpid()
    # From another process too.
    code = ("import sys, numpy as np, shmchan\n"
            "try:\n"
            "    shmchan.Route.sender(sys.argv[1], np.dtype(sys.argv[2]), schema='Tick')\n"
            "except shmchan.SenderExists as e:\n"
            "    print('REFUSED', e.pid)\n")
    out = subprocess.run([sys.executable, "-c", code, name, "V48"], capture_output=True,
                         text=True, timeout=30, cwd=HERE)
    # A V48 dtype has alignment 1: refused before the sender check, by the layout.
    assert "Mismatch" in out.stderr and "align=True" not in out.stderr
    code = code.replace("np.dtype(sys.argv[2])", "(np.void, 48), align=8")
    out = subprocess.run([sys.executable, "-c", code, name, "-"], capture_output=True,
                         text=True, timeout=30, cwd=HERE)
    assert out.stdout.split() == ["REFUSED", str(os.getpid())], out.stderr
    tx.close()
    shmchan.Route.sender(name, TICK, schema="Tick").close()  # the role is free again


def test_receiver_used_in_a_forked_child_raises(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what recv() did, never return into pytest
        try:
            try:
                rx.recv(timeout=0)
                msg = "no error"
            except shmchan.Error as e:
                msg = "ERROR " + str(e)
            except BaseException as e:  # noqa: BLE001
                msg = "OTHER " + repr(e)
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        msg = f.read()
    assert msg.startswith("ERROR") and "forked child" in msg, msg
    # The parent's receiver is untouched by the child.
    tx = shmchan.Route.sender(name, TICK, schema="Tick")
    tx.send(ticks(3, 4)[0])
    assert rx.recv(timeout=5)["seq"] == 3


def test_mismatch_names_the_field_both_values_and_hints_align(name):
    rx = shmchan.Route.receiver(name, TICK, schema="Tick", capacity=64)
    packed = np.dtype([("seq", "<u8"), ("flag", "u1"), ("value", "<f8")])  # 17 bytes
    with pytest.raises(shmchan.Mismatch) as e:
        shmchan.Route.receiver(name, packed, schema="Tick", capacity=64)
    assert e.value.field == "record size"
    assert (e.value.expected, e.value.found) == ("17", "48")
    assert "align=True" in str(e.value)
    with pytest.raises(shmchan.Mismatch) as e:
        shmchan.Route.receiver(name, TICK, schema="Tick", capacity=128)
    assert (e.value.field, e.value.expected, e.value.found) == ("capacity", "128", "64")
    assert "align=True" not in str(e.value)
    with pytest.raises(shmchan.Mismatch, match="type name"):
        shmchan.Route.receiver(name, TICK, schema="Quote", capacity=64)
    rx.close()


def test_ctypes_structures_and_inspect(name):
    class Tick(ctypes.Structure):
        _fields_ = [("seq", ctypes.c_uint64), ("producer", ctypes.c_uint64),
                    ("value", ctypes.c_double), ("check", ctypes.c_uint64),
                    ("ts_ns", ctypes.c_uint64), ("pad", ctypes.c_uint64)]

    tx = shmchan.Route.sender(name, Tick, overflow="block")  # schema: the class name
    info = shmchan.inspect(name)
    assert (info.schema, info.record_size, info.record_align) == ("Tick", 48, 8)
    assert (info.family, info.mode, info.overflow, info.capacity) == ("route", "broadcast", "block", 4096)
    raw = shmchan.Route.receiver(name)  # layout and options from the segment
    assert raw.dtype == np.dtype("V48")
    tx.send(ticks(5, 6)[0])
    assert np.frombuffer(raw.recv(timeout=5).tobytes(), TICK)["seq"][0] == 5


def test_a_channel_opened_without_a_dtype_takes_its_table_sizes_from_the_header(name):
    tx = shmchan.Channel.sender(name, np.uint64, max_producers=8, max_receivers=4)
    info = shmchan.inspect(name)
    assert (info.family, info.max_producers, info.max_receivers) == ("channel", 8, 4)
    rx = shmchan.Channel.receiver(name)  # no dtype: layout and options from the header
    tx.send(np.uint64(42))
    assert np.frombuffer(rx.recv(timeout=5).tobytes(), np.uint64)[0] == 42
    with pytest.raises(shmchan.Mismatch, match="max_producers"):
        shmchan.Channel.receiver(name, np.uint64, max_receivers=4, max_producers=16)
    rx.close()
    tx.close()


def test_opening_with_no_options_adopts_the_segment_s_and_checks_those_set(name):
    # Opening adopts, creating decides: the producer chose 65,536 slots.
    tx = shmchan.Route.sender(name, np.uint64, capacity=1 << 16, overflow="block",
                              max_receivers=4)
    rx = shmchan.Route.receiver(name, np.uint64)  # no option: the segment's
    assert rx.capacity == 1 << 16
    raw = shmchan.Route.receiver(name)  # neither a dtype nor an option
    assert (raw.dtype, raw.capacity) == (np.dtype("V8"), 1 << 16)
    tx.send(np.uint64(11))
    assert int(rx.recv(timeout=5)) == 11
    assert np.frombuffer(raw.recv(timeout=5).tobytes(), np.uint64)[0] == 11
    with pytest.raises(shmchan.Mismatch) as e:
        shmchan.Route.receiver(name, np.uint64, capacity=4096)
    assert (e.value.field, e.value.expected, e.value.found) == ("capacity", "4096", "65536")
    with pytest.raises(shmchan.Mismatch, match="max_receivers"):
        shmchan.Route.receiver(name, max_receivers=64)
    with pytest.raises(shmchan.Mismatch, match="type name"):
        shmchan.Route.receiver(name, np.uint32)  # the record type is always checked
    raw.close()
    rx.close()
    tx.close()


def test_missing_segments_options_and_closed_handles(name):
    with pytest.raises(FileNotFoundError):
        shmchan.inspect(name)
    with pytest.raises(FileNotFoundError):
        shmchan.Route.receiver(name)
    with pytest.raises(ValueError, match="mode"):
        shmchan.Route.receiver(name, np.uint64, mode="multicast")
    with pytest.raises(ValueError, match="capacity"):
        shmchan.Route.receiver(name, np.uint64, capacity=1000)
    with pytest.raises(ValueError, match="name"):
        shmchan.Route.receiver("no/slashes", np.uint64)
    with pytest.raises(TypeError, match="unknown option"):
        shmchan.Route.receiver(name, np.uint64, capacty=64)
    with pytest.raises(TypeError, match="max_producers"):
        shmchan.Route.sender(name, np.uint64, max_producers=4)
    rx = shmchan.Channel.receiver(name, np.uint64)
    with pytest.raises(ValueError, match="timeout"):
        rx.recv(timeout=-1)
    with rx:
        assert rx.try_recv() is None
    with pytest.raises(ValueError, match="closed"):
        rx.recv(timeout=0)
    rx.close()  # idempotent


def test_scalar_dtypes_meet_typed_rust_names(name):
    tx = shmchan.Channel.sender(name, np.dtype(("<u4", (3,))), overflow="block")
    assert shmchan.inspect(name).schema == "[u32; 3]"
    rx = shmchan.Channel.receiver(name, np.dtype(("<u4", (3,))), overflow="block")
    tx.send_many(np.arange(9, dtype="<u4").reshape(3, 3))
    out = rx.recv_many(10)
    assert out.shape == (3, 3) and out[2, 2] == 8


def test_paths_missing_and_not_permitted(tmp_path):
    with pytest.raises(FileNotFoundError):
        shmchan.Route.receiver(None, np.uint64, path=tmp_path / "no-such-dir" / "seg")
    seg = tmp_path / "seg"
    shmchan.Route.receiver(None, np.uint64, path=seg, permissions=0o600).close()
    assert shmchan.inspect(path=seg).record_size == 8
    if os.geteuid() == 0:
        pytest.skip("root is not refused by file permissions")
    seg.chmod(0)
    with pytest.raises(PermissionError):
        shmchan.Route.receiver(None, np.uint64, path=seg)
