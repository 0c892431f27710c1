"""Bytes are read once, proven, and the proven copy is what is unpickled
(issue 19, items 1 and 2).

Every hostile file here is built by the test itself, at the level of
pickle opcodes, and opened in a child process (a crash cannot take the
runner down): the child must exit normally, the file must be unchanged,
and a marker file that the payload would create if anything ran it must
never appear.

- A plain pickled dict opened writable (the default) is converted by
  libmmp without any Python unpickler: hostile ones are refused.
- A value whose bytes change between reads (a server of our own on
  loopback answering Range requests with other bytes, a process rewriting
  a local file) never reaches pickle unproven.
"""
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import mmpbridge
from mmpbridge import _lib
from helpers import plain_load, same

# -- pickle opcodes ---------------------------------------------------------

PROTO4, STOP = b"\x80\x04", b"."
MARK, TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"(", b"t", b"\x85", b"\x86", b"\x87"
REDUCE, BUILD, POP, NONE = b"R", b"b", b"0", b"N"
NEWTRUE, NEWFALSE = b"\x88", b"\x89"
EMPTY_DICT, SETITEM, SETITEMS, EMPTY_LIST, APPEND = b"}", b"s", b"u", b"]", b"a"
STACK_GLOBAL, MEMOIZE, BINGET, BINPUT = b"\x93", b"\x94", b"h", b"q"


def s(text):
    """SHORT_BINUNICODE."""
    b = text.encode()
    return b"\x8c" + bytes([len(b)]) + b


def binbytes(b):
    return b"B" + len(b).to_bytes(4, "little") + b


def short_binbytes(b):
    return b"C" + bytes([len(b)]) + b


def binint(n):
    return b"J" + n.to_bytes(4, "little", signed=True)


def sg(module, name):
    return s(module) + s(name) + STACK_GLOBAL


def glob(module, name):
    """GLOBAL (protocol 0's form)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def object_dtype(flags=0, how="stack"):
    """numpy.dtype('O', False, True), then BUILD with a state whose flags
    drop the pointer handling: the start of the issue's chain."""
    head = sg("numpy", "dtype") if how == "stack" else glob("numpy", "dtype")
    state = MARK + b"K\x03" + s("|") + NONE + NONE + NONE + binint(-1) + binint(-1) + b"K" + bytes([flags]) + TUPLE
    return head + s("O") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE + state + BUILD


def scalar_chain(module="numpy.core.multiarray", ptr=b"AAAAAAAA", flags=0, how="stack"):
    """numpy's scalar(that object dtype, 8 bytes): numpy reads the bytes as
    a PyObject pointer (a crash, or code execution where addresses are
    known). Allowed names only."""
    return sg(module, "scalar") + object_dtype(flags, how) + short_binbytes(ptr) + TUPLE2 + REDUCE


def touch(marker, how="stack"):
    """os.system('touch MARKER'): harmless, and visible if it ever runs."""
    cmd = s(f"touch {marker}")
    if how == "stack":
        return sg("os", "system") + cmd + TUPLE1 + REDUCE
    if how == "global":
        return glob("os", "system") + cmd + TUPLE1 + REDUCE
    if how == "inst":
        return MARK + cmd + b"i" + b"os\nsystem\n"
    if how == "exec":
        code = s(f"open({marker!r}, 'w').close()")
        return sg("builtins", "exec") + code + TUPLE1 + REDUCE
    raise ValueError(how)


def hostile_values(marker):
    """Values (opcodes without PROTO/STOP) that must never be unpickled."""
    return {
        "chain": scalar_chain(),
        "chain-null": scalar_chain(ptr=b"\0" * 8),
        "chain-numpy2": scalar_chain("numpy._core.multiarray", ptr=b"\x10" * 8),
        "chain-flags": scalar_chain(flags=0x10, ptr=b"\x41\x41\x41\x41\x00\x00\x00\x00"),
        "chain-global": scalar_chain(how="global"),
        "chain-in-list": EMPTY_LIST + scalar_chain() + APPEND,
        "chain-memo": object_dtype() + MEMOIZE + POP + sg("numpy.core.multiarray", "scalar") + BINGET + b"\x00"
                      + short_binbytes(b"B" * 8) + TUPLE2 + REDUCE,
        "touch": touch(marker),
        "touch-global": touch(marker, "global"),
        "touch-inst": touch(marker, "inst"),
        "touch-exec": touch(marker, "exec"),
    }


# -- children ---------------------------------------------------------------

def run_child(code, *args, timeout=120):
    """Runs code in a fresh interpreter (this one's environment); returns
    the CompletedProcess. A crash shows as a negative return code."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def assert_survived(p):
    assert p.returncode == 0, f"child exited with {p.returncode} (negative: killed by signal {-p.returncode})\n" \
                              f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-4000:]}"


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- 1. plain pickled dicts: converted by libmmp, never unpickled -------------

OPEN_PLAIN = """
import sys, json
import mmpbridge
path, how = sys.argv[1], sys.argv[2]
try:
    if how == "path":
        m = mmpbridge.mmapdict(path)
    else:
        with open(path, "r+b") as f:
            m = mmpbridge.mmapdict(f)
    print(json.dumps({"opened": sorted(m.keys())}))
except Exception as e:
    print(json.dumps({"refused": type(e).__name__, "msg": str(e)}))
"""


def plain_dict_pickle(value, key="k"):
    """PROTO 4, {'a': 1, key: value} built by SETITEMS, STOP."""
    return PROTO4 + EMPTY_DICT + MARK + s("a") + b"K\x01" + s(key) + value + SETITEMS + STOP


@pytest.mark.parametrize("how", ["path", "fd"])
@pytest.mark.parametrize("variant", sorted(hostile_values("M")))
def test_hostile_plain_pickle_refused(tmp_path, variant, how):
    marker = tmp_path / "MARKER"
    path = tmp_path / "plain.pkl"
    path.write_bytes(plain_dict_pickle(hostile_values(str(marker))[variant]))
    before = digest(path)
    p = run_child(OPEN_PLAIN, path, how)
    assert_survived(p)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.get("refused") == "ValueError", out
    assert str(path) in out["msg"], out["msg"]  # the file object's name, for "fd"
    assert "offset" in out["msg"], out["msg"]
    assert digest(path) == before, "the refused file was changed"
    assert not marker.exists(), "the payload ran"
    assert sorted(os.listdir(tmp_path)) == ["plain.pkl"], "a temporary file was left behind"


@pytest.mark.parametrize("data", [
    PROTO4 + EMPTY_LIST + STOP,                                     # not a dict
    PROTO4 + EMPTY_DICT + b"K\x01" + b"K\x02" + SETITEM + STOP,     # an int key
    PROTO4 + EMPTY_DICT + s("k") + b"K\x02" + SETITEM,              # no STOP
    PROTO4 + sg("collections", "OrderedDict") + b")" + REDUCE + STOP,  # not exactly a dict
    PROTO4 + EMPTY_DICT + s("k") + EMPTY_LIST + MEMOIZE + EMPTY_LIST + BINGET + b"\x00" + APPEND
    + BINGET + b"\x00" + APPEND + SETITEM + STOP,                   # one list used twice in a value
], ids=["list", "int-key", "no-stop", "ordereddict", "shared-list"])
def test_not_a_plain_dict_refused(tmp_path, data):
    path = tmp_path / "plain.pkl"
    path.write_bytes(data)
    p = run_child(OPEN_PLAIN, path, "path")
    assert_survived(p)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.get("refused") == "ValueError", out
    assert str(path) in out["msg"]
    assert path.read_bytes() == data


def benign_dict():
    rng = np.random.default_rng(19)
    return {
        "a": rng.standard_normal((30, 4)),
        "f": np.asfortranarray(rng.integers(-5, 5, (6, 7)).astype(">i4")),
        "m": np.ma.masked_array([1.5, 2.5, 3.5], mask=[False, True, False], fill_value=-9.0),
        "m0": np.ma.masked_array(np.arange(4, dtype="u2"), mask=[True, False, False, True]),
        "empty": np.zeros((0, 3), dtype="f4"),
        "zero_d": np.array(7, dtype="i8"),
        "meta": {"gain": 1.5, "tags": ["x", "y"], "t": (1, b"b", None, True), "n": {"deep": [1, [2, [3]]]}},
        "s": "héllo",
        "big": 2 ** 100 + 1,
        "c": complex(1, -2),
        "set": {1, 2, 3},
        "fs": frozenset({"a"}),
        "ba": bytearray(b"xyz"),
        "np_scalar": np.float32(2.5),
        "nested_arrays": [np.arange(5, dtype="i2"), {"x": np.ones(2)}],
        "shared_str": ["same", "same"],
    }


def native(v):
    """v with its arrays in native byte order: numpy's own unpickling
    gives big-endian arrays back in native order, mmpbridge keeps the
    file's (README: same values)."""
    if isinstance(v, np.ma.MaskedArray):
        return np.ma.MaskedArray(native(np.asarray(v.data)), mask=np.ma.getmaskarray(v), fill_value=v.fill_value)
    if isinstance(v, np.ndarray):
        a = np.asarray(v)
        return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in "=|" else a
    if isinstance(v, dict):
        return {k: native(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(native(x) for x in v)
    return v


@pytest.mark.parametrize("how", ["path", "fd"])
@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_benign_plain_pickle_converts(tmp_path, how, protocol):
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump(benign_dict(), f, protocol=protocol)
    want = plain_load(path)
    if how == "path":
        m = mmpbridge.mmapdict(str(path))
    else:
        with open(path, "r+b") as f:
            m = mmpbridge.mmapdict(f)
    with m:
        assert list(m.keys()) == list(want)
        for k, v in want.items():
            assert same(native(m[k]), native(v)), k
        assert m["m"].fill_value == want["m"].fill_value
    assert mmpbridge.verify(str(path))["ok"]
    # Read again, as a new reader sees it.
    with mmpbridge.mmapdict(str(path), readonly=True) as m:
        for k, v in want.items():
            assert same(native(m[k]), native(v)), k


# -- 2. a value whose bytes change between reads ------------------------------

VALUE_LEN = 200 << 10  # >= 128 KiB: past the remote block cache


def value_pair(marker, hostile_ops):
    """Two complete pickles of the same length and no memo: plain bytes,
    and hostile_ops padded with bytes that are popped."""
    plain = PROTO4 + binbytes(b"p" * VALUE_LEN) + STOP
    fill = len(plain) - len(PROTO4) - len(hostile_ops) - 5 - 1 - len(STOP)
    assert fill > 0
    hostile = PROTO4 + hostile_ops + binbytes(b"h" * fill) + POP + STOP
    assert len(hostile) == len(plain)
    return plain, hostile


def twin_files(tmp_path, marker, variant):
    """The same mmappickle file twice, its value "k" plain in one and
    hostile in the other; returns (plain bytes, hostile bytes, value span)."""
    plain, hostile = value_pair(marker, hostile_values(str(marker))[variant])
    out = []
    for name, pk in (("plain", plain), ("hostile", hostile)):
        p = tmp_path / f"{name}.mmpkl"
        h = _lib.open_ex(str(p), -1, _lib.WRITABLE | _lib.CREATE)
        try:
            _lib.put_pickle(h, "a", pickle.dumps(np.arange(3.0), protocol=4))
            _lib.put_pickle(h, "k", pk)
        finally:
            _lib.close(h)
        out.append(p.read_bytes())
        p.unlink()
    a, b = out
    assert len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    lo, hi = diff[0], diff[-1] + 1
    assert hi - lo <= len(plain)
    return a, b, (lo, hi)


class FlipHandler(BaseHTTPRequestHandler):
    """Serves /flipN.mmpkl: the plain file, except that requests touching
    the value after the N-th such request get the hostile bytes;
    /alt.mmpkl alternates at every such request. One ETag throughout: the
    server's own word."""
    plain = hostile = None
    span = (0, 0)
    counts = None
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = os.path.basename(self.path)
        size = len(self.plain)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if rng:
            a, b = rng.split("=")[1].split("-")
            start, end = int(a), min(int(b), size - 1)
        data = self.plain
        if start < self.span[1] and end >= self.span[0]:
            with self.lock:
                c = self.counts[name] = self.counts.get(name, 0) + 1
            if name == "alt.mmpkl":
                flip = c % 2 == 0
            else:
                flip = c > int(name[len("flip"):-len(".mmpkl")])
            if flip:
                data = self.hostile
        body = data[start:end + 1]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"pinned"')
        self.end_headers()
        self.wfile.write(body)


READ_URLS = """
import sys, json
import mmpbridge
want = b"p" * int(sys.argv[1])
out = []
for url in sys.argv[2:]:
    for attempt in range(3):
        try:
            m = mmpbridge.mmapdict(url)
            v = m["k"]
            assert v == want, "a value other than the plain one came out"
            out.append("plain")
        except AssertionError:
            raise
        except Exception as e:
            out.append(type(e).__name__)
print(json.dumps(out))
"""


@pytest.mark.parametrize("variant", ["chain", "chain-numpy2", "chain-in-list", "touch", "touch-exec"])
def test_remote_value_changes_between_requests(tmp_path, variant):
    marker = tmp_path / "MARKER"
    plain, hostile, span = twin_files(tmp_path, marker, variant)
    handler = type("H", (FlipHandler,), {"plain": plain, "hostile": hostile, "span": span, "counts": {}})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        urls = [f"{base}/flip{n}.mmpkl" for n in range(12)] + [f"{base}/alt.mmpkl"]
        p = run_child(READ_URLS, VALUE_LEN, *urls, timeout=300)
    finally:
        srv.shutdown()
    assert_survived(p)
    outcomes = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(outcomes) <= {"plain", "NotPlainError", "FormatError", "ValueError", "OSError", "KeyError"}, outcomes
    assert "plain" in outcomes and len(set(outcomes)) > 1, f"the flips never reached a read: {outcomes}"
    assert not marker.exists(), "the payload ran"


FLIPPER = """
import os, sys, time
path, off = sys.argv[1], int(sys.argv[2])
a, b, stop = open(sys.argv[3], "rb").read(), open(sys.argv[4], "rb").read(), sys.argv[5]
fd = os.open(path, os.O_WRONLY)
while not os.path.exists(stop):
    os.pwrite(fd, b, off)
    os.pwrite(fd, a, off)
"""

READ_LOCAL = """
import sys, json
import mmpbridge
want = b"p" * int(sys.argv[2])
m = mmpbridge.mmapdict(sys.argv[1])
assert m["k"] == want  # before the writer starts
open(sys.argv[4], "w").close()  # ready: the writer may start
while not __import__("os").path.exists(sys.argv[5]):
    __import__("time").sleep(0.01)
out = {}
for i in range(int(sys.argv[3])):
    try:
        v = m["k"]
        # A copy taken while the writer was half-way is another bytes
        # object (plain data, proven as read): harmless, counted apart.
        assert type(v) is bytes and len(v) == len(want), "a value other than plain bytes came out"
        what = "plain" if v == want else "torn"
        out[what] = out.get(what, 0) + 1
    except AssertionError:
        raise
    except Exception as e:
        out[type(e).__name__] = out.get(type(e).__name__, 0) + 1
print(json.dumps(out))
"""


@pytest.mark.parametrize("variant", ["chain", "chain-flags", "touch"])
def test_local_value_rewritten_while_read(tmp_path, variant):
    marker = tmp_path / "MARKER"
    plain, hostile, (lo, hi) = twin_files(tmp_path, marker, variant)
    path = tmp_path / "f.mmpkl"
    path.write_bytes(plain)
    (tmp_path / "a.bin").write_bytes(plain[lo:hi])
    (tmp_path / "b.bin").write_bytes(hostile[lo:hi])
    stop, ready, go = tmp_path / "STOP", tmp_path / "READY", tmp_path / "GO"
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(READ_LOCAL), str(path), str(VALUE_LEN), "400",
                               str(ready), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    flipper = None
    try:
        for _ in range(6000):
            if ready.exists() or reader.poll() is not None:
                break
            time.sleep(0.01)
        flipper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(FLIPPER), str(path), str(lo),
                                    str(tmp_path / "a.bin"), str(tmp_path / "b.bin"), str(stop)])
        go.touch()
        out, err = reader.communicate(timeout=300)
    finally:
        stop.touch()
        if reader.poll() is None:
            reader.kill()
        if flipper is not None:
            flipper.wait(timeout=60)
    p = subprocess.CompletedProcess(reader.args, reader.returncode, out, err)
    assert_survived(p)
    outcomes = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(outcomes) <= {"plain", "torn", "NotPlainError", "FormatError", "ValueError"}, outcomes
    assert sum(outcomes.values()) == 400
    assert not marker.exists(), "the payload ran"
