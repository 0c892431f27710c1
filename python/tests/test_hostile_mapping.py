"""Arrays of hostile or unusual layout are mapped as pickle.load reads them,
or refused; a read never changes the file.

Every file is read in a child process (a crash there is a failed test, not
a dead test runner), read-only and writable, and the file's bytes are
hashed before and after. Structured dtypes go to Python as numpy.dtype(dict)
descriptions with explicit offsets: numpy's descr list, used before, read an
overlapping field's offset as a subarray shape (itemsize 8 for 6, 204 MB for
200 KB), and numpy.memmap(mode="r+") then grew the file to that size.
"""
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from mmpbridge import mmapdict

NUMPY1 = np.__version__.startswith("1.")

# The child: reads key of path (read-only when argv[3] is "1") and prints
# what it got, or the exception; then tries a write through a read-only
# array (which must raise).
CHILD = r"""
import json, pickle, sys
import numpy as np
from mmpbridge import mmapdict
def raw(a):
    # The array's memory as it lies (ascontiguousarray or tobytes copy
    # field by field: not padding, and overlaps once per field).
    b = a.T if a.flags.f_contiguous and not a.flags.c_contiguous else a
    assert b.flags.c_contiguous
    return b.reshape(-1).view(np.uint8).tobytes()
path, key, ro = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
try:
    with mmapdict(path, readonly=ro) as m:
        a = m[key]
        out = {"ok": True, "memmap": isinstance(a, np.memmap), "itemsize": a.dtype.itemsize,
               "shape": list(a.shape), "dtype": pickle.dumps(a.dtype, 4).hex(),
               "bytes": raw(a).hex(), "value": pickle.dumps(np.array(a), 4).hex(), "writeable": bool(a.flags.writeable),
               "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous)}
        if ro and a.size:
            try:
                a[(0,) * a.ndim] = np.zeros((), a.dtype)[()]
                out["write"] = "allowed"
            except ValueError:
                out["write"] = "refused"
        del a
except Exception as e:
    out = {"ok": False, "error": type(e).__name__, "msg": str(e)[:500]}
print(json.dumps(out))
"""

# pickle.load of the whole file, numpy only, in a child.
PLAIN = r"""
import json, pickle, sys
import numpy as np
def raw(a):
    # The array's memory as it lies (ascontiguousarray or tobytes copy
    # field by field: not padding, and overlaps once per field).
    b = a.T if a.flags.f_contiguous and not a.flags.c_contiguous else a
    assert b.flags.c_contiguous
    return b.reshape(-1).view(np.uint8).tobytes()
try:
    with open(sys.argv[1], "rb") as f:
        a = pickle.load(f)[sys.argv[2]]
    out = {"ok": True, "dtype": pickle.dumps(a.dtype, 4).hex(), "shape": list(a.shape),
           "bytes": raw(a).hex(), "value": pickle.dumps(np.array(a), 4).hex(), "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous)}
except Exception as e:
    out = {"ok": False, "error": type(e).__name__}
print(json.dumps(out))
"""


def _child(code, *args):
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"child died (status {r.returncode}): {r.stderr[-2000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _state(path):
    with open(path, "rb") as f:
        data = f.read()
    return len(data), hashlib.sha256(data).hexdigest()


def read_unchanged(path, key, readonly):
    """What the child read, after checking the read left the file as it was."""
    before = _state(path)
    got = _child(CHILD, path, key, "1" if readonly else "0")
    assert _state(path) == before, f"reading {key!r} (readonly={readonly}) changed the file"
    return got


def _dt(spec, align=False):
    return np.dtype(spec, align=align)


DTYPES = {
    # The issue's: two int32 overlapping by two bytes, 6-byte items.
    "overlap": _dt({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [0, 2], "itemsize": 6}),
    "same-offset": _dt({"names": ["f", "i"], "formats": ["<f8", "<i8"], "offsets": [0, 0], "itemsize": 8}),
    "out-of-order": _dt({"names": ["b", "a"], "formats": ["<i4", ">u2"], "offsets": [4, 0], "itemsize": 8}),
    # An offset numpy's descr would read as a 100-element subarray: a wide item.
    "wide-overlap": _dt({"names": ["a", "b", "c"], "formats": ["<i4", ("u1", (1000,)), "<f8"],
                         "offsets": [0, 4, 100], "itemsize": 200_000}),
    "subarray-overlap": _dt({"names": ["m", "x"], "formats": [("<i2", (2, 3)), "<f4"], "offsets": [0, 4], "itemsize": 12}),
    "nested-overlap": _dt({"names": ["p", "q"],
                           "formats": [{"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [0, 2], "itemsize": 6},
                                       ("<u2", (3,))],
                           "offsets": [1, 3], "itemsize": 9}),
    "nested-subarray": _dt([("p", [("a", "u1"), ("b", ">i2")], (2,)), ("m", "<f4", (2, 3)), ("t", "<M8[ms]")]),
    "padded": _dt({"names": ["a", "b"], "formats": ["u1", "<f4"], "offsets": [3, 8], "itemsize": 20}),
    "aligned": _dt([("x", "u1"), ("y", "<f8"), ("z", "<i2")], align=True),
    "aligned-nested": _dt([("x", "u1"), ("s", _dt([("a", "u1"), ("b", "<i4")], align=True))], align=True),
}

SHAPES = {"1d": ((5,), "C"), "2d-F": ((2, 3), "F"), "empty": ((0, 4), "C"), "scalar": ((), "C")}


def _array(dt, shape, order, seed=0):
    """An array of dt whose bytes are random (fields that overlap hold
    what their bytes say)."""
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.random.default_rng(seed).integers(0, 256, n * dt.itemsize, dtype=np.uint8).tobytes()
    a = np.frombuffer(raw, dtype=dt)
    # No copy (numpy copies fields, not the padding or overlaps' bytes):
    # a Fortran array is the transpose of the reversed C shape.
    return a.reshape(shape[::-1]).T if order == "F" else a.reshape(shape)


def _value(r):
    """The array a child read, as a plain ndarray."""
    return pickle.loads(bytes.fromhex(r["value"]))


def _raw(a):
    b = a.T if a.flags.f_contiguous and not a.flags.c_contiguous else a
    return b.reshape(-1).view(np.uint8).tobytes()


def _assert_as_pickle_load(got, plain, dt, shape, readonly):
    assert got["ok"], got
    assert plain["ok"], plain
    assert got["memmap"]
    back = pickle.loads(bytes.fromhex(got["dtype"]))
    assert back == dt and back.itemsize == dt.itemsize == got["itemsize"]
    assert back.names == dt.names and all(back.fields[n][1] == dt.fields[n][1] for n in dt.names)
    assert back == pickle.loads(bytes.fromhex(plain["dtype"]))
    assert got["shape"] == list(shape) == plain["shape"]
    assert got["bytes"] == plain["bytes"]
    assert got["fortran"] == plain["fortran"]
    assert got["writeable"] == (not readonly)
    if readonly and int(np.prod(shape, dtype=np.int64)):
        assert got["write"] == "refused"


# Every layout in every shape; the 200 KB items of "wide-overlap" in one.
LAYOUT_CASES = [(n, s) for n in sorted(DTYPES) for s in sorted(SHAPES) if n != "wide-overlap" or s == "1d"]


@pytest.mark.parametrize("name,shape_name", LAYOUT_CASES)
def test_structured_layouts_map_as_pickle_load(tmp_path, name, shape_name):
    dt = DTYPES[name]
    shape, order = SHAPES[shape_name]
    path = str(tmp_path / "s.mmpkl")
    a = _array(dt, shape, order)
    with mmapdict(path) as m:
        m["s"] = a
    plain = _child(PLAIN, path, "s")
    assert plain["ok"] and bytes.fromhex(plain["bytes"]) == _raw(a)
    for readonly in (True, False):
        got = read_unchanged(path, "s", readonly)
        _assert_as_pickle_load(got, plain, dt, shape, readonly)
        if order == "F" and len(shape) > 1:
            assert got["fortran"]


@pytest.mark.parametrize("profile", ["portable", "mmappickle"])
def test_plain_arrays_unchanged_by_reads(tmp_path, profile):
    """Plain arrays, every order and size, both profiles: the same checks."""
    path = str(tmp_path / "p.mmpkl")
    arrays = {"f8": np.arange(12.0).reshape(3, 4), "F": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
              "empty": np.zeros((0, 3), "<u2"), "scalar": np.array(3.5), "U": np.array(["ab", "cde"])}
    with mmapdict(path, profile=profile) as m:
        for k, v in arrays.items():
            m[k] = v
    for k, v in arrays.items():
        plain = _child(PLAIN, path, k)
        for readonly in (True, False):
            got = read_unchanged(path, k, readonly)
            assert got["ok"] and got["memmap"], (got, plain)
            assert np.array_equal(_value(got), v)
            # (numpy 2's pickle.load cannot read the mmappickle profile.)
            assert not plain["ok"] or np.array_equal(_value(got), _value(plain))
            assert got["shape"] == list(v.shape) and got["writeable"] == (not readonly)


def _patch(path, pattern, repl):
    """Overwrites the start of the one match of pattern (a bytes regex) in
    the file with repl: same length, so the file's structure stays."""
    with open(path, "rb") as f:
        data = f.read()
    found = list(re.finditer(pattern, data, re.S))
    assert len(found) == 1, (pattern, len(found))
    at = found[0].start()
    new = data[:at] + repl + data[at + len(repl):]
    assert len(new) == len(data)
    with open(path, "wb") as f:
        f.write(new)


OVERLAP6 = DTYPES["overlap"]

# Edits of an entry holding an array of 3 OVERLAP6 as numpy pickles it:
# (1, (3,), dtype, False, 18 bytes) and the dtype's state
# (3, '|', None, names, fields, 6, 1, 16). Then: whether pickle.load still
# reads the entry, and whether we must refuse it.
PATCHES = {
    # shape 3 -> 4: 24 bytes wanted, 18 in the file.
    "more-elements": (rb"\(K\x01K\x03\x85", b"(K\x01K\x04\x85", False, True),
    # shape 3 -> 9: three times the bytes.
    "many-elements": (rb"\(K\x01K\x03\x85", b"(K\x01K\x09\x85", False, True),
    # The dtype's itemsize 6 -> 8: the fields still fit, the bytes do not.
    "itemsize": (rb"K\x06K\x01K\x10t", b"K\x08K\x01K\x10t", False, True),
    # The dtype's itemsize 6 -> 3: field b (2..6) outside the item.
    "itemsize-small": (rb"K\x06K\x01K\x10t", b"K\x03K\x01K\x10t", False, True),
    # Field b's offset 2 -> 3: still a valid dtype (b overlaps a by one byte).
    "offset": (rb"K\x02\x86(?:q.)?u", b"K\x03", True, False),
    # Field b's offset 2 -> 5: b (5..9) runs past the 6-byte item. numpy's
    # dtype.__setstate__ takes it (and the last element's b reads past the
    # array's memory): we refuse it.
    "offset-outside": (rb"K\x02\x86(?:q.)?u", b"K\x05", True, True),
}


@pytest.mark.parametrize("profile", ["portable", "mmappickle"])
@pytest.mark.parametrize("patch", sorted(PATCHES))
def test_entries_that_lie_about_their_bytes(tmp_path, patch, profile):
    """An entry whose shape or dtype does not match its bytes is refused
    (as pickle.load refuses it), one still valid maps as pickle.load reads
    it; either way the file is not changed by reading it."""
    pattern, repl, loads, refuse = PATCHES[patch]
    path = str(tmp_path / "h.mmpkl")
    with mmapdict(path, profile=profile) as m:
        m["s"] = _array(OVERLAP6, (3,), "C")
        m["after"] = np.arange(4)
    _patch(path, pattern, repl)
    plain = _child(PLAIN, path, "s")
    if profile == "portable" or NUMPY1:  # numpy 2 cannot load the mmappickle profile at all
        assert plain["ok"] == loads, plain
    for readonly in (True, False):
        got = read_unchanged(path, "s", readonly)
        if not plain["ok"] or refuse:
            assert not got["ok"], got
            assert got["error"] in ("FormatError", "NotPlainError", "UnsupportedError"), got
            continue
        if got["ok"]:
            dt = pickle.loads(bytes.fromhex(plain["dtype"]))
            _assert_as_pickle_load(got, plain, dt, (3,), readonly)
        else:
            # Refusing what pickle.load reads is allowed (refuse, never
            # guess), by a typed error.
            assert got["error"] in ("FormatError", "NotPlainError", "UnsupportedError"), got


# -- the mapping layer itself -------------------------------------------

# White-box: the file changes between libmmp's check and the mapping (a
# truncation by another process), or the description is not what numpy
# builds: _memmap refuses rather than map past the end (which would grow
# the file in mode r+) or map other bytes than the entry's.
MAPPER = r"""
import json, os, sys
import numpy as np
from mmpbridge import mmapdict, _lib
path, case, ro = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
m = mmapdict(path, readonly=ro)
info = _lib.entry_info(m._handle(), "a")
if case == "truncated":
    os.truncate(path, info["offset"] + info["nbytes"] - 1)
elif case == "cut-at-offset":
    os.truncate(path, info["offset"])
elif case == "itemsize":
    info["itemsize"] += 2
elif case == "nbytes":
    info["nbytes"] += 8
elif case == "descr-text":
    # The old text: numpy reads the third item as a subarray shape.
    info["dtype"] = "[('a', '<i4', 0), ('b', '<i4', 2)]"
elif case == "text-fields":
    info["dtype"] = "<i4,<i4"
elif case == "object":
    info["dtype"] = "|O"
elif case == "nested-liar":
    info["dtype"] = {"names": ["a"], "formats": [{"names": ["x"], "formats": ["<f8"], "offsets": [0], "itemsize": 8}],
                     "offsets": [0], "itemsize": 4}
size = os.path.getsize(path)
try:
    a = m._memmap(info, "a")
    out = {"ok": True, "itemsize": a.dtype.itemsize, "nbytes": int(a.nbytes)}
except Exception as e:
    out = {"ok": False, "error": type(e).__name__, "msg": str(e)}
out["grew"] = os.path.getsize(path) != size
print(json.dumps(out))
"""


@pytest.mark.parametrize("readonly", [True, False])
@pytest.mark.parametrize("case", ["truncated", "cut-at-offset", "itemsize", "nbytes", "descr-text", "text-fields",
                                  "object", "nested-liar"])
def test_mapping_refuses_what_it_cannot_prove(tmp_path, case, readonly):
    path = str(tmp_path / "m.mmpkl")
    with mmapdict(path) as m:
        m["a"] = np.zeros(1000, "<i4")
    got = _child(MAPPER, path, case, "1" if readonly else "0")
    assert not got["ok"], got
    assert got["error"] == "FormatError", got
    assert str(path) in got["msg"] and "'a'" in got["msg"], got
    assert not got["grew"], got


def test_control_mapping_of_the_same_info_works(tmp_path):
    """The white-box child does map the untouched entry (so the refusals
    above are the checks, not a broken child)."""
    path = str(tmp_path / "m.mmpkl")
    with mmapdict(path) as m:
        m["a"] = np.zeros(1000, "<i4")
    for ro in ("1", "0"):
        got = _child(MAPPER, path, "none", ro)
        assert got["ok"] and got["itemsize"] == 4 and got["nbytes"] == 4000 and not got["grew"], got


def test_unflushed_file_object_is_flushed_first(tmp_path):
    """pickle.dump(d, f); mmapdict(f): the dict converts what f holds, and
    closing f afterwards does not write its buffer over the new file."""
    path = tmp_path / "f.pkl"
    with open(path, "w+b") as f:
        pickle.dump({"x": 1, "t": (1, 2)}, f)  # still in f's buffer
        m = mmapdict(f)
        m["a"] = np.arange(3)
        assert dict(m)["x"] == 1
        m.close()
    with mmapdict(str(path), readonly=True) as m:
        assert m["x"] == 1 and m["t"] == (1, 2) and list(m["a"]) == [0, 1, 2]
    with open(path, "rb") as f:
        d = pickle.load(f)
    assert d["x"] == 1 and list(d["a"]) == [0, 1, 2]


# -- remote reads -------------------------------------------------------------

REMOTE = r"""
import json, pickle, sys
import numpy as np
from mmpbridge import mmapdict
m = mmapdict(sys.argv[1])
out = {}
for k in sys.argv[2:]:
    try:
        a, lazy = m[k], m.lazy(k)
        part = lazy[1:3] if lazy.ndim else lazy[()]
        out[k] = {"ok": True, "value": pickle.dumps(a, 4).hex(), "lazy": pickle.dumps(np.asarray(part), 4).hex(),
                  "itemsize": lazy.dtype.itemsize, "nbytes": lazy.nbytes}
    except Exception as e:
        out[k] = {"ok": False, "error": type(e).__name__, "msg": str(e)[:300]}
print(json.dumps(out))
"""


def test_remote_reads_build_the_same_dtypes(tmp_path):
    """mmapdict(url)[k] and .lazy(k) build structured dtypes as the local
    read does: values equal to pickle.load's, nothing more fetched."""
    import threading
    from http.server import ThreadingHTTPServer

    from test_remote import RangeHandler
    path = tmp_path / "r.mmpkl"
    arrays = {name: _array(dt, (4,), "C", seed=i) for i, (name, dt) in enumerate(sorted(DTYPES.items()))}
    with mmapdict(str(path)) as m:
        for k, v in arrays.items():
            m[k] = v
    handler = type("H", (RangeHandler,), {"root": str(tmp_path), "sent": [0, 0]})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        got = _child(REMOTE, f"http://127.0.0.1:{srv.server_address[1]}/r.mmpkl", *arrays)
    finally:
        srv.shutdown()
    for k, v in arrays.items():
        plain = _child(PLAIN, path, k)
        r = got[k]
        assert r["ok"], (k, r)
        a = pickle.loads(bytes.fromhex(r["value"]))
        assert a.dtype == v.dtype and a.dtype.itemsize == v.dtype.itemsize == r["itemsize"], k
        assert _raw(a) == bytes.fromhex(plain["bytes"]) == _raw(v), k
        assert r["nbytes"] == v.nbytes
        assert _raw(pickle.loads(bytes.fromhex(r["lazy"]))) == _raw(v[1:3]), k
