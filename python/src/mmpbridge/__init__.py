"""mmpbridge: mmappickle files on numpy 1.x and 2.x, on a Go core.

    from mmpbridge import mmapdict     # or: import mmpbridge as mmappickle

An mmappickle file is a dict that is at the same time a plain pickle
(pickle.load gives the dict) and a file whose numpy arrays are
memory-mapped. mmapdict is mmappickle's API; convert(), verify() and
salvage() are those of the command-line tool mmpconv. mmapdict of an
http(s) URL gives a read-only remotedict.

Errors: builtin exceptions where one fits (FileNotFoundError, KeyError,
TypeError, ValueError, io.UnsupportedOperation, OSError), and:

- Error: the base of libmmp's own errors (its ``code`` says which).
- FormatError(Error, ValueError): the file is not a (sound) mmappickle
  file: a bad header, a torn file, a value or array description that
  breaks the format or a limit.
- UnsupportedError(Error, TypeError): a valid value the Go core cannot
  store or read (mmapdict pickles such arrays instead).
- NotPlainError(pickle.UnpicklingError): a value's pickle would build
  more than plain data; ``trusted=True`` reads it (only for files you
  trust).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from . import _lib
from ._lib import Error, FormatError, NotPlainError, UnsupportedError
from ._dict import mmapdict
from ._remote import LazyArray, remotedict
from ._salvage import salvage
from .stubs import EmptyNDArray

if TYPE_CHECKING:
    import xarray

__version__: str = _lib.version()

#: A path as mmpbridge's calls take it: str, bytes or os.PathLike.
StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def convert(src: StrPath, dst: StrPath, profile: Literal["portable", "mmappickle"] = "portable", align: int = 64,
            force: bool = False, key: Optional[str] = None, compress: bool = False,
            skip_unsupported: bool = False, from_format: Optional[str] = None,
            to_format: Optional[str] = None) -> None:
    """What ``mmpconv convert`` does: .npy, .npz and HDF5 to and from
    mmappickle (by extension; from_format and to_format override: mmpkl,
    npy, npz, hdf5), streaming. dst is refused if it exists, unless force;
    it appears whole or not at all. src is a path or an http(s) URL.

    Raises ValueError for bad options, FileNotFoundError for a missing
    src, FormatError (a ValueError) for a src that is not a sound file of
    its format, UnsupportedError (a TypeError) for a value the target
    format cannot hold (unless skip_unsupported), OSError when dst exists
    (unless force) and for other failures to read or write."""
    opts: dict[str, Any] = {"profile": profile, "align": align, "force": bool(force), "compress": bool(compress),
            "skip_unsupported": bool(skip_unsupported)}
    if key is not None:
        opts["key"] = key
    if from_format:
        opts["from"] = from_format
    if to_format:
        opts["to"] = to_format
    _lib.convert(os.fsdecode(os.fspath(src)), os.fsdecode(os.fspath(dst)), opts)


def verify(path: StrPath, allow: Iterable[str] = ()) -> dict[str, Any]:
    """What ``mmpconv verify --json`` prints, as a dict: whether plain
    pickle.load of the file builds only plain data (report["ok"]), and
    every finding. allow trusts callables ("module.name") with any
    arguments.

    Nothing in the file is run. A file that is not a sound mmappickle file
    gives a report (report["structure_ok"] false, report["structure_errors"]
    saying where and why), not an exception. Raises FileNotFoundError for
    a missing file, OSError for other failures to read it."""
    return _lib.verify(os.fsdecode(os.fspath(path)), list(allow))


def to_mmpkl(ds: xarray.Dataset, path: str | os.PathLike[str], *, force: bool = False,
             profile: Literal["portable", "mmappickle"] = "portable", align: int = 64) -> None:
    """Write an xarray.Dataset as a new mmappickle file that
    ``xr.open_dataset(path, engine="mmpbridge")`` reads back identical
    (see mmpbridge.xarray_backend.to_mmpkl; imports xarray on first call)."""
    from .xarray_backend import to_mmpkl as write
    write(ds, path, force=force, profile=profile, align=align)


__all__ = [
    "mmapdict",
    "remotedict",
    "LazyArray",
    "EmptyNDArray",
    "convert",
    "verify",
    "salvage",
    "to_mmpkl",
    "Error",
    "FormatError",
    "UnsupportedError",
    "NotPlainError",
    "StrPath",
    "__version__",
]
