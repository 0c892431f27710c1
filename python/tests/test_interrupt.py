"""Ctrl-C interrupts a long libmmp call (issue 19): while Python's main
thread is inside a ctypes call its signal handlers wait, so libmmp watches
for SIGINT itself (_lib._interruptible, mmp_signal_token) and cancels the
call, which returns at once.

Each test runs a child interpreter (this one: the suite runs under numpy 1
and numpy 2) that starts a call taking seconds on a file built here, gets
SIGINT from this process while inside it, and reports: KeyboardInterrupt
must come out of the call (libmmp's last error on the main thread is
INTERRUPTED: the call was cut short, not completed), and the time from the
signal to the exception, measured on both sides with CLOCK_MONOTONIC, is
asserted only against a generous bound (the machine may be loaded); it is
printed for the record.
"""
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time

import pytest

import mmpbridge

CHILD = r"""
import json, sys, threading, time, traceback
import mmpbridge
from mmpbridge import _lib
case, path, out = sys.argv[1], sys.argv[2], sys.argv[3]

def run():
    if case == "getitem":
        return mmpbridge.mmapdict(path)["big"]
    if case == "getitem-readonly":
        return mmpbridge.mmapdict(path, readonly=True)["big"]
    if case == "verify":
        return mmpbridge.verify(path)
    if case == "convert":
        return mmpbridge.convert(path, out, key="arr", compress=True)
    raise SystemExit("unknown case " + case)

def watch():
    # Tells the parent once the main thread has been inside one libmmp
    # call (a wrapper of _lib's, in its ctypes call) for 50 ms.
    main = threading.main_thread().ident
    seen = None
    while True:
        f = sys._current_frames().get(main)
        if f is not None and f.f_code.co_filename == _lib.__file__ and f.f_code.co_name.startswith("_"):
            if seen == (f, f.f_lasti):
                print(json.dumps({"inside": time.monotonic(), "fn": f.f_code.co_name}), flush=True)
                return
            seen = (f, f.f_lasti)
        else:
            seen = None
        time.sleep(0.05)

threading.Thread(target=watch, daemon=True).start()
res = {}
try:
    run()
    res["outcome"] = "completed"
except KeyboardInterrupt:
    res["t_exc"] = time.monotonic()
    res["outcome"] = "KeyboardInterrupt"
    res["code"] = _lib._last_error_code()
    res["where"] = traceback.extract_tb(sys.exc_info()[2])[-1].filename
res["end"] = time.monotonic()
print(json.dumps(res), flush=True)
"""


def _raw_file(entries):
    """An mmappickle file of (key, value opcodes, memo max index) entries."""
    out = bytearray(b"\x80\x04\x95" + struct.pack("<Q", 13) + b"J\x01\x00\x00\x000J\x01\x00\x00\x000(")
    for key, value, memo_max in entries:
        k = key.encode()
        body = b"\x8c" + bytes([len(k)]) + k + value + b"J" + struct.pack("<i", memo_max) + b"0\x880"
        out += b"\x95" + struct.pack("<Q", len(body)) + body
    return bytes(out + b"\x95" + struct.pack("<Q", 2) + b"d.")


# A list of 25 million small ints: a legitimate value that libmmp takes
# seconds to analyse and check (one opcode each), whatever budgets it has.
BIG_LIST_N = 25_000_000


@pytest.fixture(scope="module")
def big_list(tmp_path_factory):
    path = tmp_path_factory.mktemp("interrupt") / "big.mmpkl"
    value = b"]\x94(" + b"K\x07" * BIG_LIST_N + b"e"
    path.write_bytes(_raw_file([("small", b"K\x01", 0), ("big", value, 0)]))
    return str(path)


@pytest.fixture(scope="module")
def big_array(tmp_path_factory):
    """A file of one 4 GiB array of zeros, reserved (a hole: no disk)."""
    path = str(tmp_path_factory.mktemp("interrupt") / "arr.mmpkl")
    m = mmpbridge.mmapdict(path)
    import numpy as np
    m["arr"] = mmpbridge.EmptyNDArray((4 << 30,), np.uint8)
    m.close()
    return path


def interrupt(case, path, out=""):
    """Runs CHILD on case, sends it SIGINT once it has been inside a libmmp
    call for 50 ms, and returns its report with "latency" (signal to
    exception, seconds) and the child's exit status."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.Popen([sys.executable, "-c", CHILD, case, path, out], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        inside = json.loads(p.stdout.readline() or "{}")
        assert "inside" in inside, p.stderr.read()
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline()
        status = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert line, f"child died (status {p.returncode}): {p.stderr.read()}"
    res = json.loads(line)
    res["status"] = status
    res["inside"] = inside["fn"]
    if "t_exc" in res:
        res["latency"] = res["t_exc"] - sent
    print(f"\n{case}: {res}")
    return res


def check_interrupted(res):
    assert res["status"] == 0, res
    assert res["outcome"] == "KeyboardInterrupt", f"the call completed before SIGINT or ignored it: {res}"
    # Cut short inside libmmp: its last call on the main thread was
    # interrupted (a completed call leaves code 0), and the exception came
    # out of the wrapper of that call.
    from mmpbridge import _lib
    assert res["code"] == _lib.INTERRUPTED, res
    assert os.path.basename(res["where"]) == "_lib.py", res
    # The latency (goal 0.5 s) is printed, not asserted: a wall-clock bound
    # fails on a busy machine; the code above proves the call was cut short.


@pytest.mark.parametrize("readonly", [False, True])
def test_ctrl_c_interrupts_getitem(big_list, readonly):
    res = interrupt("getitem-readonly" if readonly else "getitem", big_list)
    check_interrupted(res)


def test_ctrl_c_interrupts_convert(big_array, tmp_path):
    out = str(tmp_path / "out.npz")
    res = interrupt("convert", big_array, out)
    check_interrupted(res)
    assert not os.path.exists(out), "an interrupted convert left its output"
    assert not [f for f in os.listdir(tmp_path) if f != "out.npz"], os.listdir(tmp_path)


def test_completed_call_unaffected(big_list):
    """Without a signal the same call completes, and gives the value."""
    m = mmpbridge.mmapdict(big_list, readonly=True)
    assert m["small"] == 1
    v = m["big"]
    assert len(v) == BIG_LIST_N and v[0] == 7 and v[-1] == 7
    m.close()


def test_other_handlers_and_threads(path):
    """A SIGINT handler that does not raise gets the call made again (so
    it completes); calls from other threads, which take no signals, are
    made as they are; the previous wakeup fd is put back, with the signal
    numbers that came during the call."""
    code = r"""
import os, signal, socket, sys, threading
import mmpbridge
from mmpbridge import _lib
path = sys.argv[1]
m = mmpbridge.mmapdict(path)
m["k"] = list(range(10))
seen = []
signal.signal(signal.SIGUSR1, lambda *a: seen.append("usr1"))
r, w = socket.socketpair()
r.setblocking(False); w.setblocking(False)
signal.set_wakeup_fd(w.fileno())
calls = [0]
def fn():
    calls[0] += 1
    if calls[0] == 1:
        os.kill(os.getpid(), signal.SIGUSR1)  # its byte goes to libmmp's socket meanwhile
    return _lib._json_call(_lib._keys_json, m._h)  # the call, not its wrapper
assert _lib._interruptible(fn) == ["k"]
assert signal.set_wakeup_fd(-1) == w.fileno(), "wakeup fd not put back"
assert r.recv(16) == bytes([signal.SIGUSR1]), "signal number not passed on"
assert seen == ["usr1"]
# A handler that swallows SIGINT: the cancelled call is made again.
signal.signal(signal.SIGINT, lambda *a: seen.append("int"))
n = [0]
def fn2():
    n[0] += 1
    if n[0] == 1:
        os.kill(os.getpid(), signal.SIGINT)
        import time; time.sleep(0.05)  # the byte is in libmmp's socket before the call
    return _lib._pickle(_lib._value_pickle, m._h, "k", False)
import pickle
assert pickle.loads(_lib._interruptible(fn2)) == list(range(10))
assert n[0] == 2 and "int" in seen, (n, seen)
out = []
t = threading.Thread(target=lambda: out.append(m["k"]))
t.start(); t.join()
assert out == [list(range(10))]
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_ctrl_c_in_forked_child(big_list):
    """In a forked child, calls go to a helper process: Ctrl-C while one is
    waiting for its answer raises KeyboardInterrupt, and the next call gets
    its own answer, not the interrupted call's."""
    code = r"""
import os, signal, sys, threading, time
import mmpbridge
path = sys.argv[1]
pid = os.fork()
if pid == 0:
    try:
        m = mmpbridge.mmapdict(path, readonly=True)
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            m["big"]
            os._exit(3)  # not interrupted
        except KeyboardInterrupt:
            pass
        got = (m["small"], "big" in m, list(m.keys()))
        if got != (1, True, ["small", "big"]):
            print(got, file=sys.stderr)
            os._exit(4)
        os._exit(0)
    except BaseException:
        import traceback; traceback.print_exc()
        os._exit(5)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code, big_list], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "0", (r.stdout, r.stderr)
