"""Round trips CI users run: npz -> mmpkl -> npz and HDF5 -> mmpkl -> HDF5,
by mmpconv and by libmmp's mmp_convert."""
import numpy as np
import pytest

from mmphelpers import assert_same_array, h5py, needs_h5py, plain_load
from test_convert import npz_members, sample, write_h5


@pytest.mark.parametrize("profile", ["portable", "mmappickle"])
@pytest.mark.parametrize("compress_in,compress_out", [(False, False), (True, True), (True, False)],
                         ids=["stored", "deflated", "deflated-to-stored"])
def test_npz_mmpkl_npz(tmp_path, mmpconv, profile, compress_in, compress_out):
    want = {k: v for k, v in npz_members().items() if k.isascii()}  # non-ASCII names: below
    (np.savez_compressed if compress_in else np.savez)(tmp_path / "in.npz", **want)
    mmpconv("convert", "--quiet", "--profile", profile, tmp_path / "in.npz", tmp_path / "mid.mmpkl")
    args = ["--compress"] if compress_out else []
    mmpconv("convert", "--quiet", *args, tmp_path / "mid.mmpkl", tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz", allow_pickle=False) as got:
        assert got.files == list(want)
        for k, w in want.items():
            g = got[k]
            # An .npz keeps the stored byte order: no normalisation here.
            assert g.dtype == w.dtype and g.shape == w.shape, k
            np.testing.assert_array_equal(g, w, err_msg=k)
            if profile == "portable" and w.ndim > 1 and w.flags.f_contiguous and not w.flags.c_contiguous:
                assert g.flags.f_contiguous, k
    # The output is what numpy itself would write (member names, stored/deflated).
    import zipfile
    with zipfile.ZipFile(tmp_path / "out.npz") as z:
        assert [i.filename for i in z.infolist()] == [k + ".npy" for k in want]
        methods = {i.compress_type for i in z.infolist()}
        assert methods == ({zipfile.ZIP_DEFLATED} if compress_out else {zipfile.ZIP_STORED})
        assert z.testzip() is None


@pytest.mark.parametrize("compress_out", [
    pytest.param(False, id="stored"),
    pytest.param(True, id="deflated"),
])
def test_npz_non_ascii_member_names(tmp_path, mmpconv, compress_out):
    import zipfile
    want = {"ключ é": np.arange(3), "plain": np.arange(2.0)}
    np.savez(tmp_path / "in.npz", **want)
    mmpconv("convert", "--quiet", tmp_path / "in.npz", tmp_path / "mid.mmpkl")
    assert list(plain_load(tmp_path / "mid.mmpkl")) == list(want)
    args = ["--compress"] if compress_out else []
    mmpconv("convert", "--quiet", *args, tmp_path / "mid.mmpkl", tmp_path / "out.npz")
    with zipfile.ZipFile(tmp_path / "out.npz") as z:
        assert [i.filename for i in z.infolist()] == [k + ".npy" for k in want]
    with np.load(tmp_path / "out.npz") as got:
        for k, w in want.items():
            assert_same_array(got[k], w, k)


def test_npz_roundtrip_with_libmmp(tmp_path, lib):
    want = {"x": sample("<f8", (100, 7)), "y": sample(">u4", (9,)), "z": sample("<c8", (3, 3), fortran=True)}
    np.savez_compressed(tmp_path / "in.npz", **want)
    lib.convert(tmp_path / "in.npz", tmp_path / "mid.mmpkl")
    d = plain_load(tmp_path / "mid.mmpkl")
    for k, w in want.items():
        assert_same_array(d[k], w, k)
    lib.convert(tmp_path / "mid.mmpkl", tmp_path / "out.npz", compress=True)
    with np.load(tmp_path / "out.npz") as got:
        assert got.files == list(want)
        for k, w in want.items():
            assert got[k].dtype == w.dtype
            np.testing.assert_array_equal(got[k], w)


def h5_contents(path):
    """{dataset path: array} and {object path: attributes} of an HDF5 file."""
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if obj.attrs:
                attrs["/" + name] = {k: obj.attrs[k] for k in obj.attrs}
            if isinstance(obj, h5py.Dataset):
                data["/" + name] = obj[()]
        f.visititems(visit)
        if f.attrs:
            attrs["/"] = {k: f.attrs[k] for k in f.attrs}
    return data, attrs


@needs_h5py
@pytest.mark.parametrize("via", ["mmpconv", "libmmp"])
def test_hdf5_mmpkl_hdf5(tmp_path, mmpconv, lib, via):
    write_h5(tmp_path / "in.h5")
    if via == "mmpconv":
        mmpconv("convert", "--quiet", tmp_path / "in.h5", tmp_path / "mid.mmpkl")
        mmpconv("convert", "--quiet", tmp_path / "mid.mmpkl", tmp_path / "out.h5")
    else:
        lib.convert(tmp_path / "in.h5", tmp_path / "mid.mmpkl")
        lib.convert(tmp_path / "mid.mmpkl", tmp_path / "out.h5")
    want_data, want_attrs = h5_contents(tmp_path / "in.h5")
    got_data, got_attrs = h5_contents(tmp_path / "out.h5")
    assert sorted(got_data) == sorted(want_data)
    for k, w in want_data.items():
        g = got_data[k]
        w = np.asarray(w)
        g = np.asarray(g)
        assert g.dtype == w.dtype and g.shape == w.shape, k  # h5py reads the stored byte order
        np.testing.assert_array_equal(g, w, err_msg=k)
    assert got_attrs.keys() == want_attrs.keys()
    for k, w in want_attrs.items():
        assert {a: np.asarray(v).tolist() for a, v in got_attrs[k].items()} == \
            {a: np.asarray(v).tolist() for a, v in w.items()}, k
