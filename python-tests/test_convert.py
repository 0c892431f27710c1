"""npy, npz (numpy) and HDF5 (h5py) converted by mmpconv, loaded back with
plain pickle.load: numpy only, nothing of ours, warnings as errors."""
import pickle

import numpy as np
import pytest

from mmphelpers import (NUMPY_NO_FROMSTRING, assert_same_array, h5py, load_expecting_fromstring_failure, needs_h5py,
                        plain_load)

DTYPES = [
    "|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
    "<f2", "<f4", "<f8", "<c8", "<c16", np.dtype(np.longdouble).str,
    ">i2", ">i4", ">i8", ">u4", ">f4", ">f8", ">c16",
    "<M8[D]", "<M8[ns]", ">M8[us]", "<m8[s]",
    "<U5", ">U2", "|S4",
]

SHAPES = [(), (0,), (3, 0), (7,), (2, 3), (2, 3, 4), (1, 1, 5)]


def sample(dtype, shape, fortran=False):
    """A deterministic array of any of DTYPES, values distinct per element."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n)
    if dt.kind == "b":
        flat = i % 3 == 1
    elif dt.kind in "iu":
        flat = (i * 37 + 5) % 100
    elif dt.kind == "f":
        flat = i * 1.5 - 2.25
    elif dt.kind == "c":
        flat = i * 1.5 - 1j * (i + 0.5)
    elif dt.kind in "Mm":
        flat = (i * 1000 + 17).astype(np.int64)
    elif dt.kind == "U":
        flat = np.array([f"é{k}"[: dt.itemsize // 4] for k in i], dtype="U")
    elif dt.kind == "S":
        flat = np.array([f"b{k}".encode()[: dt.itemsize] for k in i], dtype="S")
    else:
        raise ValueError(dt)
    a = np.asarray(flat).astype(dt).reshape(shape)
    return np.asfortranarray(a) if fortran else a


def check_loaded(d, want, order_kept=True):
    """d (a loaded dict) holds exactly the arrays of want, in order, each
    writable."""
    assert list(d) == list(want)
    for k, w in want.items():
        got = d[k]
        assert type(got) is np.ndarray, (k, type(got))
        assert_same_array(got, w, k)
        assert got.flags.writeable, k
        if order_kept and w.ndim > 1 and w.flags.f_contiguous and not w.flags.c_contiguous:
            assert got.flags.f_contiguous, k
        got[...] = got  # and really writable


def check_libmmp(lib, path, want):
    """The same file through libmmp: numpy arrays on the mapped bytes, in
    the stored dtype (byte order kept)."""
    h = lib.open(path)
    try:
        assert [k for k in lib.keys(h) if k in want] == list(want)
        for k, w in want.items():
            a = lib.array(h, k)
            assert a.dtype == w.dtype and a.shape == w.shape, k
            np.testing.assert_array_equal(a, w, err_msg=k)
    finally:
        lib.close(h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_npy_dtypes(tmp_path, mmpconv, lib, dtype):
    want = sample(dtype, (2, 3))
    np.save(tmp_path / "arr.npy", want)
    mmpconv("convert", "--quiet", tmp_path / "arr.npy", tmp_path / "out.mmpkl")
    check_loaded(plain_load(tmp_path / "out.mmpkl"), {"arr": want})
    check_libmmp(lib, tmp_path / "out.mmpkl", {"arr": want})


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
def test_npy_shapes(tmp_path, mmpconv, shape, fortran):
    want = sample("<f8", shape, fortran)
    np.save(tmp_path / "a.npy", want)
    mmpconv("convert", "--quiet", "--key", "the key", tmp_path / "a.npy", tmp_path / "out.mmpkl")
    check_loaded(plain_load(tmp_path / "out.mmpkl"), {"the key": want})


def npz_members():
    m = {f"d{i:02d}": sample(dt, (3, 4), fortran=(i % 4 == 3)) for i, dt in enumerate(DTYPES)}
    m.update({f"s{i}": sample("<i4", s) for i, s in enumerate(SHAPES)})
    m["ключ é"] = sample("<f4", (5,))
    return m


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_npz(tmp_path, mmpconv, lib, compressed):
    want = npz_members()
    (np.savez_compressed if compressed else np.savez)(tmp_path / "in.npz", **want)
    mmpconv("convert", "--quiet", tmp_path / "in.npz", tmp_path / "out.mmpkl")
    check_loaded(plain_load(tmp_path / "out.mmpkl"), want)
    check_libmmp(lib, tmp_path / "out.mmpkl", want)


def test_mmappickle_profile(tmp_path, mmpconv):
    """--profile mmappickle: loads on numpy 1.x (with fromstring's
    DeprecationWarning), fails on numpy >= 2.3 as documented."""
    want = {k: v for k, v in npz_members().items() if v.dtype.kind not in "Mm"}
    np.savez(tmp_path / "in.npz", **want)
    out = tmp_path / "out.mmpkl"
    mmpconv("convert", "--quiet", "--profile", "mmappickle", tmp_path / "in.npz", out)
    if NUMPY_NO_FROMSTRING:
        load_expecting_fromstring_failure(out)
        return
    with pytest.warns(DeprecationWarning, match="fromstring"):
        d = plain_load(out, warnings_as_errors=False)
    # The mmappickle encoding has no order: Fortran arrays come back in C order.
    check_loaded(d, want, order_kept=False)


def test_unsupported_npy(tmp_path, mmpconv):
    np.save(tmp_path / "obj.npy", np.array([1, "x", None], dtype=object), allow_pickle=True)
    r = mmpconv("convert", "--quiet", tmp_path / "obj.npy", tmp_path / "out.mmpkl", status=1)
    assert "object" in r.stderr
    assert not (tmp_path / "out.mmpkl").exists()
    table = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    np.savez(tmp_path / "mixed.npz", good=np.arange(3), table=table, rec=np.zeros(2, dtype=[("a", "<i4"), ("o", "O")]))
    r = mmpconv("convert", "--quiet", tmp_path / "mixed.npz", tmp_path / "out.mmpkl", status=1)
    assert "object fields" in r.stderr and "--skip-unsupported" in r.stderr
    r = mmpconv("convert", "--quiet", "--skip-unsupported", tmp_path / "mixed.npz", tmp_path / "out.mmpkl")
    assert "skipped" in r.stderr and "rec" in r.stderr
    got = plain_load(tmp_path / "out.mmpkl")
    assert set(got) == {"good", "table"}
    assert got["table"].dtype == table.dtype and np.array_equal(got["table"], table)  # structured: converted


def write_h5(path):
    """An HDF5 file as h5py users write them; returns {key: array} as the
    converter names the datasets (their paths without the leading slash)."""
    want = {}
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "h5py file"
        f.attrs["version"] = 3
        for i, dt in enumerate(["|b1", "|i1", "<i2", ">i4", "<i8", "|u1", "<u8", "<f2", "<f4", ">f8", "<c8", "<c16", "|S4"]):
            f[f"plain/{i:02d}"] = want[f"plain/{i:02d}"] = sample(dt, (3, 4))
        f["scalar"] = want["scalar"] = np.array(2.5, "<f4")
        f["empty"] = want["empty"] = np.zeros((0, 3), "<i4")
        want["chunked"] = sample("<f8", (40, 30))
        d = f.create_dataset("chunked", data=want["chunked"], chunks=(7, 8), compression="gzip", shuffle=True)
        d.attrs["units"] = "m"
        want["deep/er/still"] = sample("<i2", (2, 2, 2))
        f.create_group("deep/er")["still"] = want["deep/er/still"]
    return dict(sorted(want.items()))


@needs_h5py
def test_hdf5(tmp_path, mmpconv, lib):
    want = write_h5(tmp_path / "in.h5")
    mmpconv("convert", "--quiet", tmp_path / "in.h5", tmp_path / "out.mmpkl")
    d = plain_load(tmp_path / "out.mmpkl")
    attrs = d.pop("__attrs__")
    layout = {"chunks": [7, 8], "compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": False}
    assert attrs == {"/": {"title": "h5py file", "version": 3}, "/chunked": {"units": "m", "__layout__": layout}}
    assert type(attrs["/"]["version"]) is np.int64  # attributes keep their numpy types
    assert sorted(d) == list(want)
    check_loaded({k: d[k] for k in want}, want)
    check_libmmp(lib, tmp_path / "out.mmpkl", {k: want[k] for k in d})


@needs_h5py
def test_hdf5_unsupported(tmp_path, mmpconv):
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["ok"] = np.arange(4)
        f["vlen"] = ["a", "bb"]  # converted: a '<U2' array
        r = f.create_dataset("ref", (1,), dtype=h5py.ref_dtype)
        r[0] = f["ok"].ref
    r = mmpconv("convert", "--quiet", tmp_path / "in.h5", tmp_path / "out.mmpkl", status=1)
    assert "/ref" in r.stderr and "--skip-unsupported" in r.stderr
    r = mmpconv("convert", "--quiet", "--skip-unsupported", tmp_path / "in.h5", tmp_path / "out.mmpkl")
    assert "skipped" in r.stderr
    check_loaded(plain_load(tmp_path / "out.mmpkl"), {"ok": np.arange(4), "vlen": np.array(["a", "bb"])})


def test_pickle_load_is_plain(tmp_path, mmpconv):
    """The converted file names only numpy's reconstructors: the allow-list
    pickle scanners use (numpy.core.multiarray._reconstruct, numpy.ndarray,
    numpy.dtype) and nothing else."""
    from mmphelpers import pickle_globals
    np.savez(tmp_path / "in.npz", a=np.arange(3), b=sample(">c16", (2, 2), fortran=True))
    mmpconv("convert", "--quiet", tmp_path / "in.npz", tmp_path / "out.mmpkl")
    assert pickle_globals(tmp_path / "out.mmpkl") <= {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
    with open(tmp_path / "out.mmpkl", "rb") as f:
        assert set(pickle.load(f)) == {"a", "b"}
