"""vacuum, fsck and the commit number, as mmappickle's."""
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from helpers import plain_load, same
from mmpbridge import mmapdict


def _fill(m):
    m["a"] = 1
    m["b"] = 2
    m["c"] = 3
    m["d"] = " " * 2 * 1024 * 1024
    m["e"] = 5
    m["f"] = np.arange(1000)
    m["g"] = 7
    m["h"] = 8


@pytest.mark.parametrize("how", ["path", "fileobj"])
def test_vacuum(tmp_path, how):
    # mmappickle's test_vacuum, by path (rewritten and renamed) and on a
    # file object (rewritten in place).
    p = tmp_path / "v.mmpkl"
    f = open(p, "w+b") if how == "fileobj" else None
    m = mmapdict(f if f else str(p))
    _fill(m)
    size_before = os.path.getsize(p)
    for k in "bdfg":
        del m[k]
    valid = plain_load(p)
    assert dict(m) == valid == {"a": 1, "c": 3, "e": 5, "h": 8}
    assert os.path.getsize(p) == size_before
    old = m.commit_number
    m.vacuum()
    assert os.path.getsize(p) < size_before - 2 * 1024 * 1024
    assert m.commit_number != old
    assert dict(m) == plain_load(p) == valid
    m.commit_number = 143
    m.vacuum()  # nothing to reclaim: the commit number stays
    assert m.commit_number == 143
    del m["a"]
    m.commit_number = 0
    m.vacuum()
    assert m.commit_number != 0
    m.close()
    if f:
        f.close()


def test_vacuum_keeps_arrays_handed_out(path):
    with mmapdict(path) as m:
        m["old"] = np.arange(10)
        m["keep"] = np.arange(5) * 2
        keep = m["keep"]
        del m["old"]
        m.vacuum()
        assert list(keep) == [0, 2, 4, 6, 8]  # the renamed-away file stays mapped
        assert list(m["keep"]) == [0, 2, 4, 6, 8]


def test_fsck_truncations():
    # mmappickle's test_broken: cut by up to 12 bytes (the terminator and the
    # last entry's trailer), the file comes back whole; deeper, only the
    # last key is lost.
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["a"] = 1
        m["b"] = (1, 2, 3)
        m["c"] = "test"
        original = dict(m)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        m.close()
        for cut in range(1, 20):
            f.truncate(size - cut)
            m = mmapdict(f)
            assert m.fsck() is False
            f.seek(0, os.SEEK_END)
            want = dict(original)
            if cut <= 12:
                assert f.tell() == size, cut
            else:
                del want["c"]
            assert dict(m) == want, cut
            f.seek(0)
            assert pickle.load(f) == want
            if cut > 12:  # put c back for the next round
                m["c"] = "test"
                f.seek(0, os.SEEK_END)
                size = f.tell()
            m.close()
        m = mmapdict(f)
        assert m.fsck() is True  # intact
        m.close()


def test_torn_file_reads_fail_until_fsck(path):
    with mmapdict(path) as m:
        m["a"] = 1
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 5)
    m = mmapdict(path)
    with pytest.raises(ValueError, match="torn"):
        m["a"]
    assert m.fsck() is False
    assert m["a"] == 1


def test_commit_number(path):
    with mmapdict(path) as m:
        assert m.commit_number == 0
        m["a"] = 1
        assert m.commit_number == 1
        del m["a"]
        assert m.commit_number == 2
        for n in (32, 465468, -1):
            m.commit_number = n
            assert m.commit_number == n
        with pytest.raises(TypeError):
            m.commit_number = "a"
        with pytest.raises(ValueError):
            m.commit_number = 1 << 40
        m.commit_number = 5
    with mmapdict(path, readonly=True) as m:
        assert m.commit_number == 5


def test_arrays_mapped_from_the_file_described(tmp_path):
    """Another process's vacuum renames a new file over the name: a dict
    opened before still reads the file it opened, and its arrays are mapped
    from that file, not from the new one at the old file's offsets."""
    p = str(tmp_path / "f.mmpkl")
    with mmapdict(p) as m:
        m["pad"] = np.full(100_000, 7, dtype=np.int64)
        m["x"] = np.arange(1000, dtype=np.int64)
        m["masked"] = np.ma.MaskedArray(np.arange(5.0), [0, 1, 0, 1, 0])
    for readonly in (True, False):
        if not readonly:  # the first round's vacuum left no "pad": again
            with mmapdict(p) as m:
                m["pad"] = np.full(100_000, 7, dtype=np.int64)
                m["x"] = np.arange(1000, dtype=np.int64)
        a = mmapdict(p, readonly=readonly)
        before = os.stat(p).st_ino
        code = ("import sys, mmpbridge\n"
                "with mmpbridge.mmapdict(sys.argv[1]) as m:\n"
                "    del m['pad']\n"
                "    m.vacuum()\n")
        subprocess.run([sys.executable, "-c", code, p], check=True)
        assert os.stat(p).st_ino != before  # renamed over: the premise
        x = a["x"]
        assert x.tolist() == list(range(1000))
        if readonly:
            mk = a["masked"]
            assert mk.data.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
            assert np.ma.getmaskarray(mk).tolist() == [False, True, False, True, False]
        a.close()
