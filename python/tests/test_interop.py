"""mmappickle itself and mmpbridge on the same files: each opens, edits and
vacuums what the other wrote; both write one file at once and lose nothing.

Runs where mmappickle imports: the tox env `reference` (numpy < 1.24 with
mmappickle from PyPI, unpatched), which sets MMP_EXPECT_MMAPPICKLE=1 so
that these tests cannot skip there."""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import plain_load, same
from mmpbridge import EmptyNDArray, mmapdict

mmappickle = pytest.importorskip("mmappickle")
from mmappickle.stubs import EmptyNDArray as MmpEmpty  # noqa: E402

ARRAYS = {
    "f8": np.arange(12.).reshape(3, 4),
    "i2be": np.arange(5, dtype=">i2"),
    "u1": np.arange(200, dtype=np.uint8),
    "c8": np.array([1 + 2j, 3j], dtype=np.complex64),
    "U": np.array(["a", "bcd"]),
    "empty": np.zeros((0, 3)),
    "dims": np.zeros((1,) * 6, dtype=np.float32),
}
VALUES = {"int": 42, "str": "héllo", "dict": {"a": [1, 2.5, None], "b": (True, b"x")}, "list": [1, [2, [3]]]}
MASKED = np.ma.masked_array([[1, 2, 3], [4, 5, 6]], mask=[[0, 1, 0], [1, 0, 0]])


def _write_with_mmappickle(path):
    m = mmappickle.mmapdict(path)
    for k, v in {**ARRAYS, **VALUES}.items():
        m[k] = v
    m["masked"] = MASKED
    m["reserved"] = MmpEmpty((4, 5), dtype=np.float32)
    m["reserved"][1, 2] = 7.5
    m["gone"] = "deleted later"
    del m["gone"]
    del m


def _check_all(m, extra=()):
    for k, v in ARRAYS.items():
        assert same(np.asarray(m[k]), v), k
    for k, v in VALUES.items():
        assert same(m[k], v), k
    got = m["masked"]
    assert same(np.asarray(got.data), MASKED.data) and list(np.ma.getmaskarray(got).ravel()) == list(MASKED.mask.ravel())
    assert m["reserved"][1, 2] == 7.5 and m["reserved"].shape == (4, 5)
    for k, v in extra:
        assert same(np.asarray(m[k]) if isinstance(v, np.ndarray) else m[k], v), k


def test_mmappickle_file_edited_by_mmpbridge(tmp_path):
    p = str(tmp_path / "ref.mmpkl")
    _write_with_mmappickle(p)
    with mmapdict(p) as m:
        _check_all(m)
        assert isinstance(m["f8"], np.memmap) and isinstance(m["masked"].data, np.memmap)
        assert "gone" not in m
        m["f8"][0, 0] = -1  # through the mapping
        m["new_portable"] = np.arange(6).reshape(2, 3)
        m["int"] = 43
        del m["str"]
    with mmapdict(p, profile="mmappickle") as m:
        m["new_mmp"] = np.ones(4, dtype=">f4")
        m["new_reserved"] = EmptyNDArray((3,), np.int32)
        m["new_reserved"][2] = 9
        m.vacuum()
    r = mmappickle.mmapdict(p)
    assert "str" not in r and r["int"] == 43 and r["f8"][0, 0] == -1
    assert same(np.asarray(r["new_portable"]), np.arange(6).reshape(2, 3))
    assert same(np.asarray(r["new_mmp"]), np.ones(4, dtype=">f4"))
    assert list(r["new_reserved"]) == [0, 0, 9]
    assert isinstance(r["new_mmp"], np.memmap)  # mmappickle maps what the mmappickle profile writes
    assert same(r["dict"], VALUES["dict"]) and r["reserved"][1, 2] == 7.5
    back = plain_load(p, warnings_ok=True)  # mmappickle-profile arrays: numpy warns
    assert back["int"] == 43 and "str" not in back


def test_mmpbridge_file_edited_by_mmappickle(tmp_path):
    p = str(tmp_path / "ours.mmpkl")
    with mmapdict(p, profile="mmappickle") as m:
        for k, v in {**ARRAYS, **VALUES}.items():
            m[k] = v
        m["masked"] = MASKED
        m["reserved"] = EmptyNDArray((4, 5), np.float32)
        m["reserved"][1, 2] = 7.5
    r = mmappickle.mmapdict(p)
    _check_all(r)
    assert isinstance(r["f8"], np.memmap)
    r["added"] = np.arange(3.)
    r["int"] = 0
    del r["list"]
    r.vacuum()
    del r
    with mmapdict(p, readonly=True) as m:
        assert "list" not in m and m["int"] == 0 and same(np.asarray(m["added"]), np.arange(3.))
        assert same(np.asarray(m["f8"]), ARRAYS["f8"])
    assert __import__("mmpbridge").verify(p)["ok"]


def test_portable_files_read_by_mmappickle(tmp_path):
    # mmappickle reads the portable profile as plain pickles (copies).
    p = str(tmp_path / "portable.mmpkl")
    with mmapdict(p) as m:
        for k, v in ARRAYS.items():
            m[k] = v
        m["masked"] = MASKED
    r = mmappickle.mmapdict(p)
    for k, v in ARRAYS.items():
        assert same(np.asarray(r[k]).astype(v.dtype), v), k
    assert list(np.ma.getmaskarray(r["masked"]).ravel()) == list(MASKED.mask.ravel())


WRITER = """
import sys
import numpy as np
if sys.argv[1] == "mmappickle":
    from mmappickle import mmapdict
else:
    sys.path[:0] = sys.argv[5:]
    from mmpbridge import mmapdict
m = mmapdict(sys.argv[2])
for i in range(int(sys.argv[4])):
    m[f"{sys.argv[3]}-{i}"] = np.full(2, i) if i % 2 else i
"""


def test_concurrent_with_mmappickle(tmp_path):
    p = str(tmp_path / "shared.mmpkl")
    mmapdict(p).close()
    n = 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, lib, p, f"{lib}{j}", str(n), *sys.path])
             for j, lib in enumerate(["mmappickle", "mmpbridge", "mmappickle", "mmpbridge"])]
    assert all(q.wait() == 0 for q in procs)
    with mmapdict(p, readonly=True) as m:
        assert len(m) == 4 * n
    r = mmappickle.mmapdict(p)
    assert len(list(r.keys())) == 4 * n
    assert list(r["mmpbridge1-3"]) == [3, 3] and r["mmappickle0-4"] == 4


def _corpus():
    from helpers import CORPUS
    return sorted((CORPUS / "mmappickle").glob("*.mmpkl"))


@pytest.mark.parametrize("src", _corpus(), ids=lambda p: p.name)
def test_corpus_files_edited_then_read_by_mmappickle(tmp_path, src):
    # Files mmappickle 1.0.1 wrote: mmpbridge edits and vacuums them, the
    # real mmappickle reads the result back.
    import shutil
    p = str(tmp_path / src.name)
    shutil.copy(src, p)
    before = mmappickle.mmapdict(p, True)
    keys = list(before.keys())
    first = keys[0] if keys else None
    del before
    with mmapdict(p, profile="mmappickle", align=1) as m:
        values = {k: m[k] for k in m}
        m["added"] = np.arange(4, dtype="<i4")
        if first is not None:
            del m[first]
        m.vacuum()
    r = mmappickle.mmapdict(p, True)
    assert sorted(r.keys()) == sorted([k for k in keys if k != first] + ["added"])
    assert list(r["added"]) == [0, 1, 2, 3]
    for k in keys:
        if k == first:
            continue
        got, want = r[k], values[k]
        if isinstance(want, np.ndarray):
            assert same(np.asarray(got), np.asarray(want)), k
        else:
            assert same(got, want), k
