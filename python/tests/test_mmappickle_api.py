"""The behaviours mmappickle 1.0.1's own test suite expects of its API, in
our words, so that CI holds them (its suite itself is LGPL and is not
copied here; the 40 of its tests that use only the public API pass against
mmpbridge, the 8 others test its private classes and pickler plug-ins).

File objects get the most attention: mmappickle works on the caller's file
object itself, so a file object with buffered, unflushed bytes
(pickle.dump(d, f); mmapdict(f)) is read as the caller sees it, the dict
always starts at byte 0 whatever f's position, and f's position is the same
after every operation as before it.
"""
import collections
import gc
import io
import itertools
import os
import pickle
import re
import string
import tempfile
import weakref

import numpy as np
import pytest

import mmpbridge
from mmpbridge import EmptyNDArray, mmapdict


# -- opening ----------------------------------------------------------------

def test_new_dict_is_an_empty_pickle():
    with tempfile.TemporaryFile() as f:
        mmapdict(f)
        assert f.tell() == 0
        assert pickle.load(f) == {}


def test_dropped_dict_is_collected():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        ref = weakref.ref(m)
        del m
        gc.collect()
        assert ref() is None


def test_missing_file(tmp_path):
    p = str(tmp_path / "gone.mmpkl")
    with pytest.raises(FileNotFoundError):
        mmapdict(p, True)
    assert not os.path.exists(p)
    mmapdict(p, False).close()  # a writable open creates it
    assert os.path.exists(p)


@pytest.mark.parametrize("bad", [{}, 42, None, [b"x"]])
def test_neither_path_nor_file_object(bad):
    with pytest.raises(TypeError):
        mmapdict(bad)


def test_read_only_refuses_every_change(tmp_path):
    p = str(tmp_path / "ro.mmpkl")
    m = mmapdict(p)
    m["k"] = 234
    assert m.writable
    ro = mmapdict(p, True)
    assert not ro.writable and ro["k"] == 234
    for change in (lambda: ro.__setitem__("k", 1), lambda: ro.__setitem__("new", 1), lambda: ro.__delitem__("k")):
        with pytest.raises(io.UnsupportedOperation):
            change()
    assert dict(ro) == {"k": 234}


def test_version_is_pep440():
    pep440 = r"^([1-9]\d*!)?(0|[1-9]\d*)(\.(0|[1-9]\d*))*((a|b|rc)(0|[1-9]\d*))?(\.post(0|[1-9]\d*))?(\.dev(0|[1-9]\d*))?$"
    assert re.match(pep440, mmpbridge.__version__)


def _valid_header():
    with tempfile.TemporaryFile() as f:
        mmapdict(f).close()
        return f.read()


@pytest.mark.parametrize("cut", range(1, 24))
def test_cut_headers_are_value_errors(tmp_path, cut):
    """A file holding only the first bytes of an mmappickle header (or of
    a header with one byte changed) is neither an mmappickle file nor a
    plain pickle of a dict: ValueError, and the file is left alone."""
    head = _valid_header()[:cut]
    variants = [head] + [head[:i] + bytes([head[i] ^ 0x55]) + head[i + 1:] for i in range(0, len(head), 5)]
    for data in variants:
        p = tmp_path / "bad.mmpkl"
        p.write_bytes(data)
        with pytest.raises(ValueError):
            mmapdict(str(p))
        assert p.read_bytes() == data


# -- values ---------------------------------------------------------------

def test_missing_key():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        with pytest.raises(KeyError):
            m["nope"]
        with pytest.raises(KeyError):
            del m["nope"]


def test_str_value_and_non_str_key():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["s"] = "abc"
        with pytest.raises(TypeError):
            m[1] = "x"
        assert m["s"] == "abc"
        assert f.tell() == 0  # no seek needed: our reads and writes left f where it was
        assert pickle.load(f) == {"s": "abc"}


def test_values_survive_a_read_only_reopen(tmp_path):
    p = str(tmp_path / "v.mmpkl")
    m = mmapdict(p)
    m["s"] = "abc"
    del m
    assert mmapdict(p, readonly=True)["s"] == "abc"


def test_large_values_many_times():
    """A dict of 2,704 two-letter keys, stored five times (memo indices
    past 255 and frames of their own)."""
    big = {a + b: a + b for a, b in itertools.product(string.ascii_letters, repeat=2)}
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        for i in range(5):
            m[f"v{i}"] = big
        for i in range(5):
            assert m[f"v{i}"] == big
        assert pickle.load(f) == {f"v{i}": big for i in range(5)}


def test_shared_references_and_replacement():
    with tempfile.TemporaryFile() as f:
        s, t = "1234", "machin"
        a = {s: s, "3": s}
        b = {s: t, t: t, 2: 4, 4: s}
        m = mmapdict(f)
        m["a"], m["b"] = a, b
        assert m["a"] == a and m["b"] == b
        assert pickle.load(f) == {"a": a, "b": b}
        od = collections.OrderedDict([("x", s), ("y", t), (s, 3)])
        m["od"] = od
        m["od"]["other"] = "changes a copy only"
        assert m["od"] == od and type(m["od"]) is collections.OrderedDict
        m["od"] = "abc"
        assert m["od"] == "abc"
        f.seek(0)
        assert pickle.load(f)["od"] == "abc"


def test_deleted_key_stays_deleted():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["k"] = "abc"
        del m["k"]
        with pytest.raises(KeyError):
            m["k"]
        m2 = mmapdict(f)  # the same file object, opened again
        with pytest.raises(KeyError):
            m2["k"]
        f.seek(0)
        assert pickle.load(f) == {}


# -- arrays ---------------------------------------------------------------

def test_array_is_a_memmap():
    with tempfile.TemporaryFile() as f:
        a = np.array([[1, 2, 3], [4, 5, 6]])
        m = mmapdict(f)
        m["a"] = a
        assert isinstance(m["a"], np.memmap) and np.array_equal(m["a"], a)
        f.seek(0)
        assert np.array_equal(pickle.load(f)["a"], a)


def test_reserved_array():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["r"] = EmptyNDArray((10, 9), dtype=np.float32)
        r = m["r"]
        assert isinstance(r, np.memmap) and r.shape == (10, 9) and r.dtype == np.float32


def test_one_to_eight_dimensions():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        for n in range(1, 9):
            m[f"d{n}"] = np.zeros((1,) * n, np.float32)
        assert [m[f"d{n}"].ndim for n in range(1, 9)] == list(range(1, 9))


@pytest.mark.parametrize("make", [
    lambda: np.ma.MaskedArray([[1, 2, 3], [4, 5, 6]], [[False, True, False], [True, False, True]]),
    lambda: np.ma.masked_invalid(np.where(np.arange(100) % 7 == 0, np.nan, np.random.default_rng(1).random(100))),
    lambda: np.ma.zeros([2, 3], dtype=np.int64),
])
def test_masked_arrays_map_data_and_mask(make):
    data = make()
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["m"] = data
        got = m["m"]
        assert isinstance(got, np.ma.MaskedArray)
        assert isinstance(got.data, np.memmap) and isinstance(got.mask, np.memmap)
        assert np.ma.allequal(got, data) and np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(data))
        back = pickle.load(f)["m"]  # f is still at byte 0
        assert np.ma.allequal(back, data) and np.array_equal(np.ma.getmaskarray(back), np.ma.getmaskarray(data))


def test_read_only_arrays_refuse_writes(tmp_path):
    p = str(tmp_path / "a.mmpkl")
    m = mmapdict(p)
    m["a"] = np.zeros(1, np.float32)
    ro = mmapdict(p, True)
    with pytest.raises(ValueError):
        ro["a"][0] = 2
    assert m["a"][0] == 0


# -- processes --------------------------------------------------------------

def _increment(args):
    m, i = args
    m["value"][i] += 1


def test_workers_write_through_a_pickled_dict(tmp_path):
    import multiprocessing
    p = str(tmp_path / "c.mmpkl")
    m = mmapdict(p)
    m["value"] = np.zeros(4)
    with multiprocessing.Pool(2) as pool:
        pool.map(_increment, [(m, i) for i in range(4)])
    assert list(m["value"]) == [1, 1, 1, 1]


def test_dict_pickles(tmp_path):
    p = str(tmp_path / "c.mmpkl")
    m = mmapdict(p)
    m["k"] = 1
    m2 = pickle.loads(pickle.dumps(m))
    assert m2["k"] == 1


# -- vacuum -----------------------------------------------------------------

def _size(f):
    return os.fstat(f.fileno()).st_size


def test_vacuum_and_commit_numbers():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        for k, v in zip("abcdefgh", [1, 2, 3, " " * (2 << 20), 5, 6, 7, 8]):
            m[k] = v
        size = _size(f)
        for k in "bdfg":
            del m[k]
        f.seek(0)
        live = pickle.load(f)
        assert dict(m) == live == {"a": 1, "c": 3, "e": 5, "h": 8}
        assert _size(f) == size  # deleting frees nothing yet
        n = m.commit_number
        m.vacuum()
        assert _size(f) < size and m.commit_number != n and dict(m) == live
        m.commit_number = 143
        m.vacuum()  # nothing to reclaim: nothing changes
        assert m.commit_number == 143
        del m["a"]
        m.commit_number = 0
        m.vacuum()
        assert m.commit_number != 0


# -- conversion and file objects --------------------------------------------

def test_convert_flushed_named_file():
    with tempfile.NamedTemporaryFile() as f:
        pickle.dump({"abc": 123}, f)
        f.flush()
        assert dict(mmapdict(f)) == {"abc": 123}


@pytest.mark.parametrize("value", [{"a": 1, "b": (1, 2, 3), "c": "test"}, {}, {"x": [1.5, None, b"z"]}])
def test_convert_unflushed_file_object(value):
    """pickle.dump(d, f); mmapdict(f) without a flush: the dict is d, and
    closing f afterwards does not write its stale buffer over the file."""
    with tempfile.TemporaryFile() as f:
        pickle.dump(value, f)
        m = mmapdict(f)
        assert dict(m) == value
        m["new"] = np.arange(3)
        f.seek(0)
        assert list(pickle.load(f)["new"]) == [0, 1, 2]
        m.close()
        f.close()


def test_convert_unflushed_into_a_named_file(tmp_path):
    p = tmp_path / "n.pkl"
    with open(p, "w+b") as f:
        pickle.dump({"k": "v"}, f)
        m = mmapdict(f)
        m["a"] = np.ones(2)
        m.close()
    with mmapdict(str(p), True) as m:
        assert m["k"] == "v" and list(m["a"]) == [1, 1]


@pytest.mark.parametrize("value", ["abc", [1, 2], 3, None])
def test_unflushed_pickle_of_not_a_dict_is_value_error(value):
    with tempfile.TemporaryFile() as f:
        pickle.dump(value, f)
        with pytest.raises(ValueError):
            mmapdict(f)
        f.seek(0)
        assert pickle.load(f) == value  # the file is left as it was


def test_file_position_is_the_callers():
    """As mmappickle: the dict is the whole file from byte 0 whatever f's
    position, and f's position after any operation is what it was."""
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["a"] = 1
        f.seek(7)
        m2 = mmapdict(f)  # opened at position 7: still the whole file
        assert f.tell() == 7
        m2["b"] = np.arange(4)
        assert f.tell() == 7
        assert m2["a"] == 1 and list(m2["b"]) == [0, 1, 2, 3] and f.tell() == 7
        assert sorted(m2) == ["a", "b"] and f.tell() == 7
        del m2["a"]
        m2.vacuum()
        assert f.tell() == 7
        f.seek(0)
        assert list(pickle.load(f)) == ["b"]


def test_unflushed_bytes_after_seek():
    """Bytes written at a position past 0 and not flushed are part of the
    file mmapdict reads."""
    with tempfile.TemporaryFile() as f:
        data = pickle.dumps({"k": 1})
        f.write(data[:5])
        f.flush()
        f.write(data[5:])  # buffered
        assert dict(mmapdict(f)) == {"k": 1}


@pytest.mark.parametrize("cut", list(range(1, 13)) + list(range(14, 20)))
def test_fsck_after_truncation(cut):
    """A file cut short (the terminator, then the last entry's end) is
    repaired by fsck: whole for a cut terminator, without the cut entry
    beyond."""
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["a"], m["b"], m["c"] = 1, (1, 2, 3), "test"
        whole = dict(m)
        size = _size(f)
        m.close()
        f.truncate(size - cut)
        m = mmapdict(f)
        m.fsck()
        if cut < 13:
            assert dict(m) == whole and _size(f) == size
        else:
            del whole["c"]
            assert dict(m) == whole
