"""The xarray engine "mmpbridge" and mmpbridge.to_mmpkl: round trips that
xarray.testing.assert_identical accepts, local and over `mmpconv serve`;
laziness (opening reads no array data: counted in calls and in bytes the
server sent); dask arrays that travel by reference; the convention under
"__xarray__" and HDF5 attributes from mmpconv; what cannot be stored is
refused."""
from __future__ import annotations

import os
import pickle
import re
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import mmpbridge
from helpers import plain_load, require

xr = require("xarray")
from mmpbridge import xarray_backend  # noqa: E402 - after the skip
from mmpbridge.xarray_backend import (  # noqa: E402
    XARRAY_KEY, MmpbridgeArray, MmpbridgeBackendEntrypoint, is_mmpkl_header)

ENGINE = MmpbridgeBackendEntrypoint  # the class itself: works without the installed entry point


def _datasets() -> dict[str, Any]:
    rng = np.random.default_rng(20)
    y, x, b = 6, 5, 7
    cube = rng.random((y, x, b), dtype=np.float32)
    cube[1, 2, 3] = np.nan
    hyper = xr.Dataset(
        {"radiance": (("y", "x", "band"), cube, {"units": "W m-2 sr-1 um-1", "gain": np.float32(1.5),
                                                 "bad_bands": np.array([3, 5], dtype=np.int16)}),
         "quality": (("y", "x"), rng.integers(0, 4, (y, x)).astype(np.uint8)),
         "cloud": (("y", "x"), rng.random((y, x)) > 0.7),
         "count": ("y", np.arange(y, dtype=">i4")),
         "empty": (("row", "band"), np.zeros((0, b), dtype=np.float64)),
         "sun_elevation": ((), 41.25, {"units": "degree"})},
        coords={"band": ("band", np.linspace(400.0, 1000.0, b), {"units": "nm", "long_name": "wavelength"}),
                "lat": (("y", "x"), 46.0 + rng.random((y, x))),
                "lon": (("y", "x"), 6.0 + rng.random((y, x))),
                "band_name": ("band", np.array([f"B{i}" for i in range(b)], dtype=object)),
                "time": np.datetime64("2024-06-01T10:30:00.123456789", "ns")},
        attrs={"title": "scene", "sensor": "hyper", "history": ["made", "checked"], "version": 3,
               "valid": True, "nothing": None, "ratio": 0.5, "bounds": np.array([1.0, 2.0]),
               "nested": {"a": [1, (2, 3)], "b": b"raw"}, "complex": 1 - 2j})
    series = xr.Dataset(
        {"temperature": (("time", "station"), rng.standard_normal((4, 3)).astype(np.float64)),
         "flags": (("time",), np.array([True, False, True, True]))},
        coords={"time": np.array(["2024-01-01", "2024-01-02", "2024-01-05", "2024-02-01"], dtype="datetime64[ns]"),
                "station": ["geneva", "bern", "zurich"],
                "elapsed": ("time", np.array([0, 1, 4, 31], dtype="timedelta64[D]").astype("timedelta64[ns]"))})
    fortran = xr.Dataset({"f": (("a", "b"), np.asfortranarray(rng.standard_normal((3, 4))))})
    nothing = xr.Dataset(attrs={"only": "attributes"})
    return {"hyperspectral": hyper, "series": series, "fortran": fortran, "no_variables": nothing}


DATASETS = _datasets()


@pytest.mark.parametrize("name, profile", [(n, "portable") for n in sorted(DATASETS)] + [("hyperspectral", "mmappickle")])
def test_round_trip(tmp_path: Path, name: str, profile: str) -> None:
    ds = DATASETS[name]
    path = tmp_path / f"{name}.mmpkl"
    mmpbridge.to_mmpkl(ds, path, profile=profile)
    with xr.open_dataset(path, engine=ENGINE) as got:
        assert all(not v._in_memory for k, v in got.variables.items() if k not in got.indexes)
        xr.testing.assert_identical(got, ds)
        assert list(got.data_vars) == list(ds.data_vars)
        assert set(got.coords) == set(ds.coords)
    with xr.open_dataset(str(path), engine=ENGINE, chunks={}) as got:
        import dask.array as da
        for k in ds.data_vars:
            assert isinstance(got[k].data, da.Array) or got[k].ndim == 0, k  # xarray leaves 0-d ones unchunked
        xr.testing.assert_identical(got.compute(), ds)


def test_selections_read_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = DATASETS["hyperspectral"]
    path = tmp_path / "s.mmpkl"
    mmpbridge.to_mmpkl(ds, path)
    reads: list[tuple[str, tuple[Any, ...]]] = []
    raw = MmpbridgeArray._raw

    def counted(self: MmpbridgeArray, key: tuple[Any, ...]) -> Any:
        reads.append((self.key, key))
        return raw(self, key)

    monkeypatch.setattr(MmpbridgeArray, "_raw", counted)
    with xr.open_dataset(path, engine=ENGINE) as got:
        assert [k for k, _ in reads] == ["band"]  # the index only: xarray loads it to build it
        reads.clear()
        spectrum = got.radiance.isel(y=4, x=1).values
        assert reads == [("radiance", (4, 1, slice(None)))]  # the one pixel's spectrum, no more
        np.testing.assert_array_equal(spectrum, ds.radiance.values[4, 1])
        reads.clear()
        sub = got.radiance.isel(band=[0, 6, 2], y=slice(None, None, -2)).values  # decomposed: basic, then numpy
        assert len(reads) == 1
        np.testing.assert_array_equal(sub, ds.radiance.values[::-2][:, :, [0, 6, 2]])


def _sparse_cube(path: Path, shape: tuple[int, ...]) -> None:
    """A file of one reserved (never written) float32 cube: a hole, no disk."""
    with mmpbridge.mmapdict(str(path)) as m:
        m["cube"] = mmpbridge.EmptyNDArray(shape, np.float32)
        m[XARRAY_KEY] = {"version": 1, "dims": {"cube": ["y", "x", "band"]}}
        m["cube"][3, 4, :] = np.arange(shape[2], dtype=np.float32)


def test_open_reads_no_data_of_huge_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.mmpkl"
    shape = (1024, 1024, 256)  # 1 GiB, sparse
    _sparse_cube(path, shape)
    assert os.stat(path).st_blocks * 512 < 1 << 20
    calls: list[Any] = []
    raw = MmpbridgeArray._raw

    def counted(self: MmpbridgeArray, key: tuple[Any, ...]) -> Any:
        calls.append(key)
        return raw(self, key)

    monkeypatch.setattr(MmpbridgeArray, "_raw", counted)
    xr.open_dataset(path, engine=ENGINE).close()  # xarray's own first-use costs out of the count
    before = resource.getrusage(resource.RUSAGE_SELF)
    with xr.open_dataset(path, engine=ENGINE) as got:
        after = resource.getrusage(resource.RUSAGE_SELF)
        # Touching the cube's pages (even a hole's) would fault at least 1 GiB / 64 KiB = 16384 times.
        assert after.ru_minflt + after.ru_majflt - before.ru_minflt - before.ru_majflt < 2000
        assert calls == [] and got.cube.shape == shape and got.cube.dtype == np.float32
        np.testing.assert_array_equal(got.cube[3, 4].values, np.arange(256, dtype=np.float32))
        assert calls == [(3, 4, slice(None))]


# -- dask: references, not data -------------------------------------------


def test_dask_graph_travels_by_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("dask")
    monkeypatch.setattr(xarray_backend, "CHUNK_BYTES", 512 << 10)  # chunks={}: 4 chunks of 16 rows
    path = tmp_path / "big.mmpkl"
    rng = np.random.default_rng(3)
    cube = rng.random((64, 128, 64), dtype=np.float32)  # 2 MiB
    mmpbridge.to_mmpkl(xr.Dataset({"cube": (("y", "x", "band"), cube)}), path)
    with xr.open_dataset(path, engine=ENGINE, chunks={}) as got:
        assert got.cube.data.chunks[0] == (16, 16, 16, 16)
        blob = pickle.dumps(got.cube.data)
        assert len(blob) < 64 << 10, len(blob)  # the array is 2 MiB
        a = pickle.loads(blob)
        # In another process: the worker maps the file itself.
        code = ("import pickle, sys\n"
                "a = pickle.loads(sys.stdin.buffer.read())\n"
                "sys.stdout.buffer.write(pickle.dumps(a.mean(axis=(0, 1)).compute(scheduler='threads')))\n")
        out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout
        here = a.mean(axis=(0, 1)).compute(scheduler="threads")
        np.testing.assert_array_equal(pickle.loads(out), here)
        np.testing.assert_allclose(here, cube.mean(axis=(0, 1)), rtol=1e-5)


def test_replaced_key_is_refused_by_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "r.mmpkl"
    mmpbridge.to_mmpkl(xr.Dataset({"v": ("i", np.arange(10.0))}), path)
    with xr.open_dataset(path, engine=ENGINE) as got:
        backend = got.v.variable._data
        while not isinstance(backend, MmpbridgeArray):
            backend = backend.array
        blob = pickle.dumps(backend)
        assert len(blob) < 1024
    with mmpbridge.mmapdict(str(path)) as m:
        m["v"] = np.arange(10.0) * 2  # a new entry, elsewhere in the file
    again = pickle.loads(blob)
    with pytest.raises(ValueError, match=r"key 'v' was replaced"):
        again._raw((slice(None),))


# -- the convention ---------------------------------------------------------


def test_plain_pickle_load_without_mmpbridge(tmp_path: Path) -> None:
    ds = DATASETS["hyperspectral"]
    path = tmp_path / "p.mmpkl"
    mmpbridge.to_mmpkl(ds, path)
    d = plain_load(path)
    assert set(d) == set(ds.variables) | {XARRAY_KEY}
    for k, v in ds.variables.items():
        assert type(d[k]) is np.ndarray and d[k].shape == v.shape, k
    np.testing.assert_array_equal(d["radiance"], ds.radiance.values)
    assert d["band_name"].dtype.kind == "U"  # an object array of str: a numpy U array
    meta = d[XARRAY_KEY]
    assert meta["version"] == 1 and meta["dims"]["radiance"] == ["y", "x", "band"]
    assert set(meta["coords"]) == set(ds.coords)
    assert meta["dataset_attrs"]["title"] == "scene" and meta["attrs"]["band"] == {"units": "nm", "long_name": "wavelength"}


def test_files_without_convention(tmp_path: Path) -> None:
    path = tmp_path / "plain.mmpkl"
    with mmpbridge.mmapdict(str(path)) as m:
        m["a"] = np.arange(6.0).reshape(2, 3)
        m["b"] = np.arange(2)
        m["c"] = np.zeros(4)  # dim_0 is already 2 long: c/dim_0
        m["meta"] = {"not": "a variable"}
        m["masked"] = np.ma.MaskedArray(np.arange(3, dtype=np.int16), mask=[False, True, False])
        m["masked_f"] = np.ma.MaskedArray([1.5, 2.5], mask=[True, False])
    with xr.open_dataset(path, engine=ENGINE) as got:
        assert got.a.dims == ("dim_0", "dim_1") and got.b.dims == ("dim_0",) and got.c.dims == ("c/dim_0",)
        assert "meta" not in got.variables
        assert got.masked.dtype == np.float32 and got.masked.dims == ("masked/dim_0",)
        assert got.masked_f.dtype == np.float64 and got.masked_f.dims == ("dim_0",)
        np.testing.assert_array_equal(got.masked.values, np.array([0, np.nan, 2], dtype=np.float32))
        np.testing.assert_array_equal(got.masked_f.values, [np.nan, 2.5])
    with xr.open_dataset(path, engine=ENGINE, drop_variables=["a", "c"]) as got:
        assert set(got.variables) == {"b", "masked", "masked_f"}


@pytest.mark.parametrize("meta, message", [
    ({"version": 2}, r"version 2"),
    ("nope", r"want a dict"),
    ({"version": 1, "dims": {"v": ["i", "j"]}}, r"2 dimension names for key 'v'"),
    ({"version": 1, "dims": {"v": [1]}}, r"\['dims'\]\['v'\]: want a list of str"),
    ({"version": 1, "coords": ["ghost"]}, r"no array key: \['ghost'\]"),
    ({"version": 1, "attrs": {"v": ["x"]}}, r"\['attrs'\]\['v'\]: want a dict"),
    ({"version": 1, "dims": {"v": ["i"], "w": ["i"]}}, r"dimension 'i' is 3 long here, 4"),
])
def test_bad_convention_is_refused(tmp_path: Path, meta: Any, message: str) -> None:
    path = tmp_path / "bad.mmpkl"
    with mmpbridge.mmapdict(str(path)) as m:
        m["v"] = np.arange(4)
        m["w"] = np.arange(3)
        m[XARRAY_KEY] = meta
    with pytest.raises(ValueError, match=message) as e:
        xr.open_dataset(path, engine=ENGINE)
    assert str(path) in str(e.value)


class Opaque:
    pass


@pytest.mark.parametrize("ds, message", [
    (xr.Dataset(attrs={"f": Opaque()}), r"the dataset's attribute 'f': a .*Opaque cannot be stored as plain data"),
    (xr.Dataset({"v": ("i", [1], {"s": {1, 2}})}), r"variable 'v' attribute 's': a builtins.set"),
    (xr.Dataset({"v": ("i", [1], {"l": [1, Opaque()]})}), r"attribute 'l'\[1\]"),
    (xr.Dataset({"v": ("i", [1], {"d": {3: 1}})}), r"a dict key 3 is not str"),
    (xr.Dataset({"v": ("i", [1], {"o": np.array([None])})}), r"numpy.ndarray cannot"),
    (xr.Dataset({"v": ("i", np.array([1, "a"], dtype=object))}), r"variable 'v': an object array"),
    (xr.Dataset({XARRAY_KEY: ("i", [1])}), r"reserved"),
    (xr.Dataset({"__attrs__": ("i", [1])}), r"reserved"),
    (xr.Dataset({1: ("i", [1])}), r"variable 1: names are str"),
    (xr.Dataset({"v": ("i", [1])}, attrs={2: "x"}), r"attribute name 2 is not str"),
])
def test_unstorable_is_refused(tmp_path: Path, ds: Any, message: str) -> None:
    path = tmp_path / "x.mmpkl"
    with pytest.raises(TypeError, match=message):
        mmpbridge.to_mmpkl(ds, path)
    assert os.listdir(tmp_path) == []  # nothing left behind


def test_existing_file_needs_force(tmp_path: Path) -> None:
    path = tmp_path / "e.mmpkl"
    path.write_bytes(b"keep me")
    ds = DATASETS["fortran"]
    with pytest.raises(FileExistsError):
        mmpbridge.to_mmpkl(ds, path)
    assert path.read_bytes() == b"keep me"
    mmpbridge.to_mmpkl(ds, path, force=True)
    with xr.open_dataset(path, engine=ENGINE) as got:
        xr.testing.assert_identical(got, ds)
    assert sorted(os.listdir(tmp_path)) == ["e.mmpkl"]


def test_dask_variables_are_written_by_chunk(tmp_path: Path) -> None:
    da = require("dask.array")
    a = da.arange(1000, dtype=np.float32, chunks=100).reshape(10, 100)
    ds = xr.Dataset({"v": (("i", "j"), a)}, coords={"i": np.arange(10)})
    mmpbridge.to_mmpkl(ds, tmp_path / "d.mmpkl")
    with xr.open_dataset(tmp_path / "d.mmpkl", engine=ENGINE) as got:
        xr.testing.assert_identical(got, ds.compute())


def test_guess_can_open(tmp_path: Path) -> None:
    e = MmpbridgeBackendEntrypoint()
    path = tmp_path / "a.data"
    mmpbridge.to_mmpkl(DATASETS["fortran"], path)
    assert is_mmpkl_header(path.read_bytes()[:24])
    other = tmp_path / "b.nc"
    other.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    pkl = tmp_path / "c.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert e.guess_can_open(path) and e.guess_can_open(str(path))
    assert e.guess_can_open("scene.mmpkl") and e.guess_can_open("http://h/x/scene.MMPKL?sig=1")
    assert not e.guess_can_open(other) and not e.guess_can_open(pkl) and not e.guess_can_open(tmp_path / "missing")
    assert not e.guess_can_open("http://h/scene.nc")
    with open(path, "rb") as f:
        f.seek(5)
        assert e.guess_can_open(f) and f.tell() == 5
    # xarray itself picks the engine from the class's guess when the entry point is installed
    assert "mmpbridge" in MmpbridgeBackendEntrypoint.description


def test_entry_point_registered() -> None:
    from importlib import metadata
    try:
        dist = metadata.distribution("mmpbridge")
    except metadata.PackageNotFoundError:
        pytest.skip("mmpbridge imported from a source tree without metadata (not installed)")
    here = Path(mmpbridge.__file__).resolve().parent
    if Path(str(dist.locate_file("mmpbridge"))).resolve() != here:
        pytest.skip(f"mmpbridge imported from {here}, not from the installed distribution")
    eps = [ep for ep in dist.entry_points if ep.group == "xarray.backends"]
    assert [(ep.name, ep.value) for ep in eps] == [("mmpbridge", "mmpbridge.xarray_backend:MmpbridgeBackendEntrypoint")]
    assert eps[0].load() is MmpbridgeBackendEntrypoint
    assert isinstance(xr.backends.list_engines()["mmpbridge"], MmpbridgeBackendEntrypoint)


def test_import_does_not_import_xarray() -> None:
    code = "import sys, mmpbridge\nassert 'xarray' not in sys.modules, 'xarray imported'\n"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- HDF5 attributes from mmpconv ---------------------------------------------


def _mmpconv() -> str:
    exe = os.environ.get("MMPCONV") or shutil.which("mmpconv")
    if not exe:
        pytest.skip("no mmpconv ($MMPCONV)")
    return exe


def test_hdf5_attributes_become_attrs(tmp_path: Path) -> None:
    h5py = require("h5py")
    src, dst = tmp_path / "scene.h5", tmp_path / "scene.mmpkl"
    rng = np.random.default_rng(1)
    cube = rng.random((3, 4, 5), dtype=np.float32)
    with h5py.File(src, "w") as f:
        f.attrs["title"] = "from hdf5"
        f.attrs["orbit"] = np.int16(42)
        d = f.create_dataset("cube", data=cube, chunks=(1, 4, 5), compression="gzip")
        d.attrs["units"] = "W"
        d.attrs["wavelengths"] = np.array([400, 500, 600, 700, 800], dtype=">i4")
        f.create_dataset("grp/mask", data=np.ones((3, 4), dtype=np.uint8)).attrs["meaning"] = "valid"
    subprocess.run([_mmpconv(), "convert", str(src), str(dst)], check=True, capture_output=True)
    with xr.open_dataset(dst, engine=ENGINE) as got:
        assert got.attrs == {"title": "from hdf5", "orbit": np.int16(42)}
        assert type(got.attrs["orbit"]) is np.int16
        assert got.cube.attrs["units"] == "W" and "__layout__" not in got.cube.attrs
        np.testing.assert_array_equal(got.cube.attrs["wavelengths"], [400, 500, 600, 700, 800])
        assert got.cube.attrs["wavelengths"].dtype.newbyteorder("=") == np.dtype("i4")  # numpy unpickles >i4 natively
        assert got["grp/mask"].attrs == {"meaning": "valid"}
        assert got.cube.dims == ("dim_0", "dim_1", "dim_2") and got["grp/mask"].dims == ("dim_0", "dim_1")
        np.testing.assert_array_equal(got.cube.values, cube)


# -- over HTTP: mmpconv serve ----------------------------------------------------


class Served:
    """mmpconv serve DIR on a free loopback port, its access log counted."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([_mmpconv(), "serve", str(root), "--addr", "127.0.0.1:0"],
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        m = re.search(r"at (http://\S+?)/?$", first.strip())
        assert m, first
        self.base = m.group(1)
        self.log: list[tuple[str, int]] = []  # (request URI, bytes sent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = re.match(r'\S+ GET "([^"]*)" (\d+) (\d+) ', line)
            if m:
                self.log.append((m.group(1), int(m.group(3))))

    def sent(self) -> int:
        return sum(n for _, n in self.log)

    def settle(self) -> None:
        """Wait until the log has every line of requests answered so far."""
        import time
        n = -1
        while n != len(self.log):
            n = len(self.log)
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    s = Served(tmp_path)
    try:
        yield s, tmp_path
    finally:
        s.close()


@pytest.mark.parametrize("name", ["hyperspectral", "series", "fortran"])
def test_round_trip_over_http(served: tuple[Served, Path], name: str) -> None:
    server, root = served
    ds = DATASETS[name]
    mmpbridge.to_mmpkl(ds, root / f"{name}.mmpkl")
    url = f"{server.base}/{name}.mmpkl"
    assert MmpbridgeBackendEntrypoint().guess_can_open(url)
    with xr.open_dataset(url, engine=ENGINE) as got:
        xr.testing.assert_identical(got, ds)
    with xr.open_dataset(url, engine=ENGINE, chunks={}) as got:
        first = list(ds.data_vars)[0]
        blob = pickle.dumps(got[first].data)
        assert len(blob) < 64 << 10
        xr.testing.assert_identical(got.compute(), ds)
    # A worker in another process opens the URL itself.
    code = ("import pickle, sys\n"
            "a = pickle.loads(sys.stdin.buffer.read())\n"
            "sys.stdout.buffer.write(pickle.dumps(a.compute(scheduler='threads')))\n")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout
    np.testing.assert_array_equal(pickle.loads(out), ds[first].values)


def test_remote_open_is_lazy(served: tuple[Served, Path]) -> None:
    server, root = served
    shape = (1024, 1024, 256)  # 1 GiB, sparse
    _sparse_cube(root / "huge.mmpkl", shape)
    with xr.open_dataset(f"{server.base}/huge.mmpkl", engine=ENGINE) as got:
        server.settle()
        opened = server.sent()
        # The cube is 1 GiB; opening fetched the first block and the entries (here 2 requests, 66 KB).
        assert opened < 256 << 10 and len(server.log) <= 4, server.log
        spectrum = got.cube[3, 4].values  # one row of the leading axis: 1 MiB
        server.settle()
        np.testing.assert_array_equal(spectrum, np.arange(256, dtype=np.float32))
        assert server.sent() - opened < 2 << 20, server.log[-5:]


def test_masked_arrays_over_http(served: tuple[Served, Path]) -> None:
    server, root = served
    data = np.arange(24, dtype=np.int16).reshape(4, 6)
    mask = (data % 5) == 0
    with mmpbridge.mmapdict(str(root / "m.mmpkl")) as m:
        m["q"] = np.ma.MaskedArray(data, mask)
        m["t"] = np.ma.MaskedArray(np.array(["2024-01-01", "2024-01-02"], dtype="M8[ns]"), [False, True])
        big = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)
        m["big"] = np.ma.MaskedArray(big, big % 3 == 0)  # 4 MiB of data, 1 MiB of mask
    want = np.where(mask, np.nan, data).astype(np.float32)
    for where in (str(root / "m.mmpkl"), f"{server.base}/m.mmpkl"):
        server.settle()
        start = server.sent()
        with xr.open_dataset(where, engine=ENGINE) as got:
            assert got.q.dtype == np.float32 and got.t.dtype == np.dtype("M8[ns]")
            np.testing.assert_array_equal(got.q.values, want)
            np.testing.assert_array_equal(got.q[1:3, ::2].values, want[1:3, ::2])
            np.testing.assert_array_equal(got.t.values, np.array(["2024-01-01", "NaT"], dtype="M8[ns]"))
            row = got.big[700].values  # 4 KiB of data, 1 KiB of mask
            np.testing.assert_array_equal(row, np.where(big[700] % 3 == 0, np.nan, big[700]))
            server.settle()
            assert server.sent() - start < 512 << 10, server.log  # not the 5 MiB of the whole


def test_chunks_are_byte_ranges(tmp_path: Path) -> None:
    path = tmp_path / "c.mmpkl"
    _sparse_cube(path, (1024, 1024, 256))  # 1 MiB a row of y
    with mmpbridge.mmapdict(str(path)) as m:
        m["f"] = np.asfortranarray(np.zeros((3, 2), dtype=np.int8))
    with xr.open_dataset(path, engine=ENGINE, chunks={}) as got:
        assert got.cube.data.chunks == ((64,) * 16, (1024,), (256,))  # 64 MiB each
        assert got.f.data.chunks == ((3,), (2,))
        assert float(got.cube[3, 4].sum()) == sum(range(256))

