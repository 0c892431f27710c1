"""A user's script that calls every documented part of mmpbridge's API with
the types a user would write. test_typing.py runs `mypy --strict` on it
(no error allowed) and runs it (python typing_user_script.py DIR [URL]):
its local part in DIR, its remote part only when given a URL of an
mmappickle file holding a C-ordered float array under "cube".

Nothing here may need a cast or a `type: ignore`: if a call's types make
the user write one, the package's annotations are wrong.
"""
from __future__ import annotations

import fractions
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

import mmpbridge
from mmpbridge import (
    EmptyNDArray,
    Error,
    FormatError,
    LazyArray,
    NotPlainError,
    UnsupportedError,
    mmapdict,
    remotedict,
)


def write_scene(path: Path) -> int:
    """Writes arrays, a masked array, a reserved array and plain values;
    returns the commit number."""
    cube: npt.NDArray[np.float32] = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    with mmapdict(path) as m:
        m["cube"] = cube
        m["fortran"] = np.asfortranarray(cube)
        ma: Any = np.ma  # numpy 1.x ships numpy.ma without types (numpy 2 types it)
        m["masked"] = ma.MaskedArray(cube, mask=cube < 10.0)
        m["meta"] = {"sensor": "vnir", "gain": 1.5, "bands": [400.0, 500.0]}
        reserved = EmptyNDArray((10, 20), np.float32)
        dims: tuple[int, ...] = reserved.shape
        kind: np.dtype[Any] = reserved.dtype
        assert dims == (10, 20) and kind == np.float32
        m["big"] = reserved
        m["big"][:2] = 1.0
        m["scalar"] = EmptyNDArray(3)
        del m["scalar"]
        assert m.writable and not m.closed
        n: int = m.commit_number
        m.commit_number = n + 1
        m.vacuum()
        m.vacuum(chunk_size=1 << 20)
        intact: bool = m.fsck()
        assert intact
        return m.commit_number


def read_scene(path: Path) -> float:
    """Reads it back read-only, through every mapping method."""
    m = mmapdict(path, readonly=True)
    try:
        assert not m.writable
        keys: list[str] = sorted(m)
        assert keys == ["big", "cube", "fortran", "masked", "meta"], keys
        assert len(m) == 5 and "cube" in m and "nothing" not in m
        view: np.memmap[Any, np.dtype[Any]] = m["cube"]
        masked: np.ma.MaskedArray[Any, Any] = m["masked"]
        meta: dict[str, Any] = m["meta"]
        missing: Optional[int] = m.get("nothing")
        fallback: Any = m.get("nothing", 0)
        assert missing is None and fallback == 0
        for key, value in m.items():
            print(key, type(value).__name__)
        total = float(view.sum()) + float(np.sum(masked)) + float(meta["gain"])
        try:
            m["cube"] = view
        except io.UnsupportedOperation:
            pass
        return total
    finally:
        m.close()


def open_options(path: Path, other: Path) -> None:
    """mmapdict's other arguments: a file object, profile, align, trusted,
    picklers (ignored), os.PathLike and str paths."""
    with open(other, "w+b") as f:
        with mmapdict(f, profile="mmappickle", align=1) as m:
            m["a"] = np.zeros(3)
    with mmapdict(str(other), None, None, profile="portable", align=4096, trusted=True) as m:
        assert isinstance(m["a"], np.ndarray)
    d = mmapdict(os.fspath(path), readonly=True)
    state: str = repr(d)
    d.close()
    assert "closed" in repr(d) and state != repr(d)
    blob = pickle.dumps(mmapdict(path, readonly=True))  # pickles as its path and mode
    again: mmapdict = pickle.loads(blob)
    again.close()


def tools(path: Path, folder: Path) -> None:
    """convert, verify and salvage, with every option."""
    npz = folder / "scene.npz"
    mmpbridge.convert(path, npz)
    mmpbridge.convert(npz, folder / "back.mmpkl", profile="mmappickle", align=1, force=True, compress=False,
                      skip_unsupported=True)
    mmpbridge.convert(str(path), str(folder / "cube.npy"), key="cube", from_format="mmpkl", to_format="npy")
    report: dict[str, Any] = mmpbridge.verify(path)
    trusted: dict[str, Any] = mmpbridge.verify(str(path), allow=["collections.OrderedDict"])
    assert report["ok"] and trusted["ok"]
    saved: dict[str, Any] = mmpbridge.salvage(path, folder / "saved.mmpkl", force=False, profile="portable", align=64)
    assert saved["ok"], saved
    version: str = mmpbridge.__version__
    assert version


def errors(folder: Path) -> None:
    """The exceptions, each caught as a user would."""
    raised: list[str] = []
    bad = folder / "bad.mmpkl"
    bad.write_bytes(b"not an mmappickle file")
    try:
        mmapdict(bad, readonly=True)
    except FormatError as e:
        code: int = e.code
        assert isinstance(e, ValueError) and isinstance(e, Error) and code > 0
        raised.append("FormatError")
    unplain = folder / "unplain.mmpkl"
    with mmapdict(unplain) as m:
        m["odd"] = fractions.Fraction(1, 3)  # pickled by Python: outside plain data
        try:
            print(m["odd"])
        except NotPlainError as e:
            assert isinstance(e, pickle.UnpicklingError)
            raised.append("NotPlainError")
    with mmapdict(unplain, trusted=True) as m:
        assert m["odd"] == fractions.Fraction(1, 3)
    caught: tuple[type[Exception], ...] = (Error, FormatError, UnsupportedError, NotPlainError)
    assert all(issubclass(c, Exception) for c in caught)
    try:
        mmapdict(folder / "missing.mmpkl", readonly=True)
    except FileNotFoundError:
        raised.append("FileNotFoundError")
    assert raised == ["FormatError", "NotPlainError", "FileNotFoundError"], raised


def remote(url: str) -> float:
    """A remote file: remotedict and its lazy arrays (mmapdict(url) gives
    the same object, typed as mmapdict)."""
    with remotedict(url, trusted=False) as r:
        where: str = r.url
        assert where == url and not r.writable and not r.closed
        keys = list(r)
        lazy: LazyArray = r.lazy("cube")
        shape: tuple[int, ...] = lazy.shape
        dtype: np.dtype[Any] = lazy.dtype
        counts = (lazy.ndim, lazy.size, lazy.nbytes, len(lazy))
        first: npt.NDArray[Any] = lazy[0]
        band: npt.NDArray[Any] = lazy[:, :, 1]
        whole: npt.NDArray[Any] = np.asarray(lazy)
        fetched: npt.NDArray[Any] = r["cube"]
        stats: dict[str, int] = r.stats()
        print(keys, shape, dtype, counts, stats["requests"], stats["bytes"])
        total = float(first.sum() + band.sum() + whole.sum() + fetched.sum())
    assert r.closed
    untyped = mmapdict(url)  # a remotedict at run time
    assert isinstance(untyped, remotedict)
    return total


def local_lazy(path: Path) -> float:
    """A local file's lazy arrays: read by the selection, pickled by
    reference (the path, the key and the entry), as dask needs."""
    with mmapdict(path, readonly=True) as m:
        lz = m.lazy("cube")
        shape: tuple[int, ...] = lz.shape
        dtype: np.dtype[Any] = lz.dtype
        part: npt.NDArray[Any] = lz[1:3, :, 2]
        back = pickle.loads(pickle.dumps(lz))
        whole: npt.NDArray[Any] = np.asarray(back)
        return float(part.sum() + whole.sum()) + len(shape) + dtype.itemsize


def xarray_round_trip(folder: Path) -> None:
    """to_mmpkl, and the engine (engine="mmpbridge" once installed; the
    class itself works from a source tree too)."""
    try:
        import xarray as xr
    except ImportError:  # xarray is optional: mmpbridge never needs it
        return

    from mmpbridge.xarray_backend import MmpbridgeBackendEntrypoint

    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 3), dtype=np.float32))}, attrs={"title": "t"})
    mmpbridge.to_mmpkl(ds, folder / "ds.mmpkl", force=True, profile="portable", align=64)
    with xr.open_dataset(folder / "ds.mmpkl", engine=MmpbridgeBackendEntrypoint) as back:
        xr.testing.assert_identical(back, ds)


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    path = folder / "scene.mmpkl"
    write_scene(path)
    print(read_scene(path))
    open_options(path, folder / "other.mmpkl")
    tools(path, folder)
    errors(folder)
    print(local_lazy(path))
    xarray_round_trip(folder)
    if len(argv) > 2:
        print(remote(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
