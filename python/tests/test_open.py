"""Opening: paths, file objects, creation, read-only, plain pickles
converted, bad files refused."""
import io
import os
import pathlib
import pickle
import shutil
import tempfile

import numpy as np
import pytest

from helpers import CORPUS, plain_load, same
from mmpbridge import mmapdict


def test_missing_path_is_created(path):
    m = mmapdict(path)
    assert m.writable and len(m) == 0
    m.close()
    assert plain_load(path) == {}


def test_pathlike(tmp_path):
    p = tmp_path / "p.mmpkl"
    with mmapdict(p) as m:
        m["a"] = 1
    with mmapdict(pathlib.Path(p), readonly=True) as m:
        assert m["a"] == 1 and not m.writable


def test_readonly_missing_is_file_not_found(path):
    with pytest.raises(FileNotFoundError):
        mmapdict(path, readonly=True)
    assert not os.path.exists(path)
    mmapdict(path, readonly=False).close()  # and this creates it
    assert os.path.exists(path)


def test_readonly_positional(path):
    mmapdict(path).close()
    m = mmapdict(path, True)
    assert not m.writable
    for op in (lambda: m.__setitem__("k", 1), lambda: m.__delitem__("k"), m.vacuum, m.fsck):
        with pytest.raises(io.UnsupportedOperation):
            op()
    with pytest.raises(io.UnsupportedOperation):
        m.commit_number = 3


@pytest.mark.parametrize("bad", [{}, 3, None, b"name.mmpkl", ["x"]])
def test_not_a_file_is_type_error(bad):
    with pytest.raises(TypeError):
        mmapdict(bad)


def test_temporary_file_object():
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        m["x"] = np.arange(5)
        m["v"] = "abc"
        assert f.tell() == 0  # the caller's position is never moved
        f.seek(0)
        d = pickle.load(f)
        assert same(d["x"], np.arange(5)) and d["v"] == "abc"
        assert list(m["x"]) == [0, 1, 2, 3, 4]
        m.close()


def test_named_temporary_file_object(tmp_path):
    with open(tmp_path / "f.mmpkl", "w+b") as f:
        with mmapdict(f) as m:
            m["a"] = np.ones(3)
        with open(tmp_path / "f.mmpkl", "rb") as g:
            assert same(pickle.load(g)["a"], np.ones(3))


def test_read_only_file_object(path):
    with mmapdict(path) as m:
        m["a"] = np.arange(3)
    with open(path, "rb") as f:
        m = mmapdict(f)
        assert not m.writable
        with pytest.raises(ValueError):
            m["a"][0] = 5  # numpy's read-only error, not a crash
        m.close()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_plain_pickled_dict_any_protocol(tmp_path, protocol):
    p = tmp_path / "plain.pkl"
    with open(p, "wb") as f:
        pickle.dump({"a": [1, 2], "b": "x"}, f, protocol=protocol)
    with mmapdict(str(p)) as m:
        assert dict(m) == {"a": [1, 2], "b": "x"}


@pytest.mark.parametrize("how", ["path", "fileobj"])
def test_plain_pickled_dict_is_converted(tmp_path, how):
    d = {"a": 1, "b": (1, 2, 3), "c": "test", "arr": np.arange(12.).reshape(3, 4),
         "m": np.ma.masked_array([1, 2], mask=[0, 1])}
    p = tmp_path / "plain.pkl"
    with open(p, "wb") as f:
        pickle.dump(d, f)
    if how == "path":
        m = mmapdict(str(p))
    else:
        f = open(p, "r+b")
        m = mmapdict(f)
    assert list(m) == list(d) and all(same(m[k], d[k]) for k in d)
    assert isinstance(m["arr"], np.memmap)
    m.close()
    if how == "fileobj":
        f.close()
    back = plain_load(p)
    assert list(back) == list(d) and all(same(back[k], d[k]) for k in d)


def test_plain_pickle_of_a_custom_class_needs_trust(tmp_path):
    p = tmp_path / "plain.pkl"
    with open(p, "wb") as f:
        pickle.dump({"when": __import__("datetime").date(2020, 1, 1)}, f)
    with pytest.raises(ValueError, match="datetime.date"):
        mmapdict(str(p))
    m = mmapdict(str(p), trusted=True)
    assert str(m["when"]) == "2020-01-01"


@pytest.mark.parametrize("value", ["abc", [1, 2], 3])
def test_pickle_of_another_type_is_value_error(tmp_path, value):
    p = tmp_path / "x.pkl"
    with open(p, "wb") as f:
        pickle.dump(value, f)
    before = p.read_bytes()
    with pytest.raises(ValueError, match="not of a dict"):
        mmapdict(str(p))
    assert p.read_bytes() == before  # untouched


def test_plain_pickle_read_only_is_value_error(tmp_path):
    p = tmp_path / "x.pkl"
    with open(p, "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(ValueError, match="not an mmappickle file"):
        mmapdict(str(p), readonly=True)


# mmappickle's own bad headers (its test suite): all ValueError, file kept.
BAD_HEADERS = [
    b"\x80", b"\x81\x04", b"\x80\x03", b"\x80\x04\x00", b"\x80\x04\x95",
    b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00111110111111111",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J11111111111111",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J11110111111111",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x000X\x01\x00\x00\x0001",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x000J\x01\x00\x00\x0011",
    b"\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00J\x01\x00\x00\x000J\x01\x00\x00\x0001",
    b"not a pickle at all",
]


@pytest.mark.parametrize("data", BAD_HEADERS)
def test_bad_headers_are_value_errors(tmp_path, data):
    p = tmp_path / "bad.mmpkl"
    p.write_bytes(data)
    with pytest.raises(ValueError):
        mmapdict(str(p))
    with pytest.raises(ValueError):
        mmapdict(str(p), readonly=True)
    assert p.read_bytes() == data


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "mmappickle").glob("*.mmpkl")))
def test_reference_files_open(tmp_path, name):
    src = CORPUS / "mmappickle" / name
    with mmapdict(str(src), readonly=True) as m:
        for k in m:
            m[k]
    dst = tmp_path / name
    shutil.copy(src, dst)
    with mmapdict(str(dst)) as m:
        keys = list(m)
        m["added"] = np.arange(3)
        assert list(m) == keys + ["added"]


@pytest.mark.parametrize("profile,align", [("fast", 64), ("portable", 3), ("portable", 0), ("mmappickle", True)])
def test_bad_options(path, profile, align):
    with pytest.raises(ValueError):
        mmapdict(path, profile=profile, align=align)
    assert not os.path.exists(path)
