"""Arrays: memmaps of the file, orders, dtypes, masked arrays, reserved
arrays, profiles and alignment."""
import gc
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from helpers import NUMPY, plain_load, same
from mmpbridge import EmptyNDArray, mmapdict
from mmpbridge.stubs import EmptyNDArray as StubEmpty

DTYPES = ["?", "i1", "u1", "<i2", ">i2", "<i4", "<u4", "<i8", ">u8", "<f2", "<f4", ">f4", "<f8", ">f8",
          "<c8", "<c16", "<U3", ">U2", "S4", "V3", "<M8[s]", "<M8[D]", "<m8[ns]", ">M8[us]"]


def sample(dt, shape=(2, 3)):
    dt = np.dtype(dt)
    n = int(np.prod(shape))
    raw = np.random.default_rng(len(dt.str)).integers(0, 256, n * dt.itemsize, dtype=np.uint8).tobytes()
    if dt.kind == "U":
        raw = (np.frombuffer(raw, "<u4") % 0xd000).astype(dt.byteorder.replace("|", "<").replace("=", "<") + "u4").tobytes()
    if dt.kind == "b":
        raw = bytes(x & 1 for x in raw)
    if dt.kind == "f" and dt.itemsize == 2:
        raw = np.arange(n, dtype=dt).tobytes()
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


@pytest.mark.parametrize("dt", DTYPES)
def test_dtypes_round_trip(path, dt):
    a = sample(dt)
    with mmapdict(path) as m:
        m["a"] = a
        b = m["a"]
        assert isinstance(b, np.memmap)
        assert b.dtype == a.dtype and b.shape == a.shape and b.tobytes() == a.tobytes()
    back = plain_load(path)["a"]
    assert same(back.astype(a.dtype), a)


@pytest.mark.parametrize("shape", [(), (0,), (5,), (0, 3), (2, 3), (4, 1, 3), (1,) * 8])
@pytest.mark.parametrize("order", ["C", "F"])
def test_shapes_and_orders(path, shape, order):
    a = np.asarray(np.arange(int(np.prod(shape)), dtype="<f4").reshape(shape), order=order)
    with mmapdict(path) as m:
        m["a"] = a
        b = m["a"]
        assert b.shape == shape and same(np.asarray(b), a)
        if order == "F" and a.ndim > 1 and a.size > 1 and 1 not in a.shape[:2]:
            assert b.flags.f_contiguous and not b.flags.c_contiguous
    assert same(plain_load(path)["a"], a)


def test_non_contiguous_arrays(path):
    base = np.arange(60.).reshape(6, 10)
    views = {"cols": base[:, ::3], "rows": base[::2], "T": base.T[::2], "neg": base[::-1, ::-2]}
    with mmapdict(path) as m:
        for k, v in views.items():
            m[k] = v
        for k, v in views.items():
            assert same(np.asarray(m[k]), np.ascontiguousarray(v)), k
    back = plain_load(path)
    assert all(same(back[k], np.ascontiguousarray(v)) for k, v in views.items())


def test_memmap_as_source(path, tmp_path):
    src = np.memmap(tmp_path / "src.bin", dtype="<i8", mode="w+", shape=(1000,))
    src[:] = np.arange(1000)
    with mmapdict(path) as m:
        m["x"] = src
        m["y"] = m["x"]  # from the file itself
        assert same(np.asarray(m["y"]), np.arange(1000, dtype="<i8"))


def test_writes_reach_the_file(path):
    with mmapdict(path) as m:
        m["a"] = np.zeros(4)
        a = m["a"]
        a[2] = 7.5
        a.flush()
    with mmapdict(path, readonly=True) as m:
        assert m["a"][2] == 7.5
    # Another process sees writes made through the mapping at once.
    with mmapdict(path) as m:
        m["a"][1] = 3
        code = "import pickle,sys; print(pickle.load(open(sys.argv[1],'rb'))['a'][1])"
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True).stdout
        assert float(out) == 3


def test_arrays_outlive_the_dict(path):
    m = mmapdict(path)
    m["a"] = np.arange(100_000)
    a = m["a"]
    m.close()
    del m
    gc.collect()
    assert a[99_999] == 99_999 and a.sum() == np.arange(100_000).sum()


def test_read_only_arrays(path):
    with mmapdict(path) as m:
        m["a"] = np.ones(3)
    with mmapdict(path, readonly=True) as m:
        a = m["a"]
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 5


@pytest.mark.parametrize("profile", ["portable", "mmappickle"])
@pytest.mark.parametrize("align", [1, 64, 4096])
def test_profiles_and_alignment(path, profile, align):
    arrays = {"x": np.arange(7, dtype="<i2"), "y": np.arange(12.).reshape(3, 4), "f": np.asfortranarray(np.ones((2, 5)))}
    with mmapdict(path, profile=profile, align=align) as m:
        for k, v in arrays.items():
            m[k] = v
        for k, v in arrays.items():
            got = m[k]
            assert same(np.ascontiguousarray(got), np.ascontiguousarray(v))
            assert got.offset % align == 0 if hasattr(got, "offset") else True
    info = __import__("mmpbridge").verify(path)
    assert info["ok"], info
    if profile == "portable" or NUMPY < (2, 3):
        back = plain_load(path, warnings_ok=profile == "mmappickle")
        assert all(same(np.ascontiguousarray(back[k]), np.ascontiguousarray(v)) for k, v in arrays.items())


def test_masked_arrays(path):
    cases = {
        "simple": np.ma.MaskedArray([[1, 2, 3], [4, 5, 6]], [[False, True, False], [True, False, True]]),
        "invalid": np.ma.masked_invalid(np.where(np.arange(100) % 7 == 0, np.nan, np.arange(100.))),
        "zeros": np.ma.zeros([2, 3], dtype=np.int64),
        "fill": np.ma.masked_array(np.arange(5.), mask=[0, 1, 0, 0, 1], fill_value=-9.5),
        "F": np.ma.masked_array(np.asfortranarray(np.arange(6).reshape(2, 3)), mask=np.eye(2, 3, dtype=bool)),
        "empty": np.ma.masked_array(np.zeros(0), mask=np.zeros(0, bool)),
    }
    with mmapdict(path) as m:
        for k, v in cases.items():
            m[k] = v
        for k, v in cases.items():
            got = m[k]
            assert isinstance(got, np.ma.MaskedArray), k
            assert isinstance(got.data, np.memmap) and isinstance(got.mask, np.memmap), k
            assert same(got, v), k
        assert m["fill"].fill_value == -9.5
        assert m["simple"].fill_value == cases["simple"].fill_value  # numpy's default
        # The mask is writable through the mapping.
        m["simple"].mask[0, 0] = True
        assert m["simple"].mask[0, 0]
    back = plain_load(path)
    assert back["fill"].fill_value == -9.5 and same(back["invalid"], cases["invalid"])


def test_empty_ndarray_reserves(path):
    with mmapdict(path) as m:
        m["big"] = EmptyNDArray((1000, 1000), dtype=np.float32)
        m["x"] = StubEmpty((10, 9))
        a = m["big"]
        assert isinstance(a, np.memmap) and a.shape == (1000, 1000) and a.dtype == np.float32
        assert m["x"].dtype == np.float64
        assert not a.any()
        a[999, 999] = 1.5
        a.flush()
    st = os.stat(path)
    assert st.st_blocks * 512 < 1_000_000  # a hole, not 4 MB of zeros
    assert plain_load(path)["big"][999, 999] == 1.5


def test_eight_dimensions(path):
    # mmappickle's test_store_dims.
    with mmapdict(path) as m:
        for i in range(1, 9):
            m[f"test{i}"] = np.zeros((1,) * i, dtype=np.float32)
        for i in range(1, 9):
            assert m[f"test{i}"].ndim == i


def test_object_arrays_are_pickled(path):
    objects = np.array([1, "a", None], dtype=object)
    with mmapdict(path, trusted=True) as m:
        m["objects"] = objects
        assert list(m["objects"]) == [1, "a", None]
    with mmapdict(path) as m:
        with pytest.raises(pickle.UnpicklingError, match="trusted=True"):
            m["objects"]


STRUCTURED = {
    "table": [("id", "<i8"), ("x", "<f8"), ("ok", "?"), ("name", "S6")],
    "nested": [("p", [("a", "u1"), ("b", ">i2")], (2,)), ("m", "<f4", (2, 3)), ("t", "<M8[ms]")],
    "aligned": np.dtype([("x", "u1"), ("y", "<f8")], align=True),
    "names": [("température", "<f4"), ("n'x\"", "<i2")],
}


@pytest.mark.parametrize("name", sorted(STRUCTURED))
@pytest.mark.parametrize("order", ["C", "F"])
def test_structured_arrays(path, name, order):
    """Structured arrays are plain data: memmaps of the file, without
    trusted=True, and plain pickle.load gives them back."""
    dt = np.dtype(STRUCTURED[name])
    a = np.zeros((3, 4), dt, order=order)
    for f in dt.names:
        a[f] = np.arange(12).reshape(3, 4).reshape(a[f].shape[:2] + (1,) * (a[f].ndim - 2)) if dt[f].kind in "iuf" else a[f]
    with mmapdict(path) as m:
        m["a"] = a
    with mmapdict(path, readonly=True) as m:
        b = m["a"]
        assert isinstance(b, np.memmap)
        assert b.dtype.names == dt.names and b.dtype.itemsize == dt.itemsize
        assert all(b.dtype.fields[f][1] == dt.fields[f][1] for f in dt.names)
        assert np.array_equal(b, a) and b.shape == a.shape
    back = plain_load(path)["a"]
    assert back.dtype == a.dtype and np.array_equal(back, a)


def test_structured_from_mmpconv(path, tmp_path):
    """A structured .npy converted by mmpconv opens as a memmap."""
    import mmpbridge
    a = np.zeros(5, [("x", "<f8"), ("y", "<i4", (2,))])
    a["x"] = np.arange(5)
    np.save(tmp_path / "t.npy", a)
    mmpbridge.convert(str(tmp_path / "t.npy"), path, force=True)
    with mmapdict(path, readonly=True) as m:
        b = m["t"]
        assert isinstance(b, np.memmap) and b.dtype == a.dtype and np.array_equal(b, a)


def test_array_inside_values(path):
    v = {"a": np.arange(3), "b": [np.float32(1.5), np.datetime64("2020-01-02")]}
    with mmapdict(path) as m:
        m["v"] = v
        assert same(m["v"], v)
