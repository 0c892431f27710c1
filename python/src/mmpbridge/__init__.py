"""mmpbridge: mmappickle files on numpy 1.x and 2.x, on a Go core.

    from mmpbridge import mmapdict     # or: import mmpbridge as mmappickle

An mmappickle file is a dict that is at the same time a plain pickle
(pickle.load gives the dict) and a file whose numpy arrays are
memory-mapped. mmapdict is mmappickle's API; convert(), verify() and
salvage() are those of the command-line tool mmpconv.
"""
from typing import TYPE_CHECKING

from . import _lib
from ._dict import mmapdict
from ._remote import LazyArray, remotedict
from ._salvage import salvage
from .stubs import EmptyNDArray

if TYPE_CHECKING:
    import os

    import xarray

__version__ = _lib.version()
NotPlainError = _lib.NotPlainError


def convert(src, dst, profile="portable", align=64, force=False, key=None, compress=False,
            skip_unsupported=False, from_format=None, to_format=None):
    """What ``mmpconv convert`` does: .npy, .npz and HDF5 to and from
    mmappickle (by extension; from_format and to_format override: mmpkl,
    npy, npz, hdf5), streaming. dst is refused if it exists, unless force.
    Raises ValueError for bad options, OSError or ValueError for inputs."""
    import os
    opts = {"profile": profile, "align": align, "force": bool(force), "compress": bool(compress),
            "skip_unsupported": bool(skip_unsupported)}
    if key is not None:
        opts["key"] = key
    if from_format:
        opts["from"] = from_format
    if to_format:
        opts["to"] = to_format
    _lib.convert(os.fsdecode(os.fspath(src)), os.fsdecode(os.fspath(dst)), opts)


def verify(path, allow=()):
    """What ``mmpconv verify --json`` prints, as a dict: whether plain
    pickle.load of the file builds only plain data (report["ok"]), and
    every finding. allow trusts callables ("module.name") with any
    arguments."""
    import os
    return _lib.verify(os.fsdecode(os.fspath(path)), list(allow))


def to_mmpkl(ds: "xarray.Dataset", path: "str | os.PathLike[str]", *, force: bool = False,
             profile: str = "portable", align: int = 64) -> None:
    """Write an xarray.Dataset as a new mmappickle file that
    ``xr.open_dataset(path, engine="mmpbridge")`` reads back identical
    (see mmpbridge.xarray_backend.to_mmpkl; imports xarray on first call)."""
    from .xarray_backend import to_mmpkl as write
    write(ds, path, force=force, profile=profile, align=align)


__all__ = ["mmapdict", "to_mmpkl", "EmptyNDArray", "convert", "verify", "salvage", "NotPlainError", "__version__"]
