"""xarray on mmappickle files: ``xr.open_dataset(path_or_url, engine="mmpbridge")``
and ``mmpbridge.to_mmpkl(ds, path)``.

This module imports xarray; ``import mmpbridge`` does not import it (xarray
finds the engine through the entry point ``xarray.backends: mmpbridge``).

The convention
--------------
An mmappickle file is a dict of numpy arrays; xarray wants dimension
names, coordinates and attributes as well. They live in ONE reserved key,
``"__xarray__"``, whose value is plain data (what ``pickle.load`` builds
without importing anything but numpy)::

    {"version": 1,
     "dims": {"cube": ["y", "x", "band"], "band": ["band"]},   # per array key
     "coords": ["band", "lat", "lon"],                          # keys that are coordinates
     "attrs": {"cube": {"units": "W m-2 sr-1 um-1"}},          # per array key
     "dataset_attrs": {"title": "scene"}}

- Every array key (plain or masked) is a variable, named by its key; the
  other values (and ``"__xarray__"``, ``"__attrs__"``) are not variables.
- A key without ``dims`` gets ``dim_0, dim_1, ...``; where such a name is
  already the dimension of another length of an earlier key, it is
  ``KEY/dim_N`` instead (files made by other tools open, whatever their
  shapes).
- ``"__attrs__"`` (HDF5 attributes, as ``mmpconv convert`` of an HDF5 file
  writes them: ``{"/path": {name: value}}``) gives the attributes of the
  key ``path`` and, for ``"/"``, of the dataset; mmpconv's own records
  (``__layout__``, ``__enum__``, ``__empty__``, ``__empty_attrs__``) are
  left out. ``"__xarray__"``'s attributes come on top of them.
- With ``chunks={}``, a variable's dask chunks are about 64 MiB, each one
  byte range of the file (cut along the first axis of a C-ordered array,
  the last of a Fortran-ordered one).
- A masked array is read with its masked elements as NaN (NaT for
  datetimes), its dtype promoted as xarray's mask_and_scale promotes it
  (integers and bools to float32 or float64).
- Attribute values are plain data: None, bool, int, float, complex, str,
  bytes, numpy scalars and arrays (of numbers, bools, strings, dates),
  and lists, tuples and dicts (str keys) of these. ``to_mmpkl`` refuses
  anything else with a TypeError naming the variable and the attribute.

``pickle.load`` of a file ``to_mmpkl`` writes, without mmpbridge, gives a
dict of numpy arrays plus the plain dict under ``"__xarray__"``.

Arrays are read lazily: a variable is a ``BackendArray`` over a numpy
memmap of the file (local files) or over the remote file's byte ranges
(URLs); opening reads only the file's entries (keys, dtypes, shapes and
the plain values), never an array's data. A ``BackendArray`` pickles as
(path or URL, key, the entry's offset and size) and maps the file again in
the process that unpickles it, so dask workers (``chunks={}``) receive
references, not data; a worker that finds the key replaced raises.
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Optional, Union

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import _lib
from ._dict import _check_key, mmapdict
from ._remote import LazyArray, is_url, remotedict

__all__ = ["MmpbridgeBackendEntrypoint", "MmpbridgeArray", "to_mmpkl", "XARRAY_KEY", "VERSION"]

XARRAY_KEY = "__xarray__"
HDF5_ATTRS_KEY = "__attrs__"
VERSION = 1
_HDF5_RECORDS = frozenset({"__layout__", "__enum__", "__empty__", "__empty_attrs__"})
# The first 24 bytes of every mmappickle file (bridge/doc.go): PROTO 4,
# FRAME 13, BININT 1 POP, BININT <commit number> POP, MARK.
_HEADER = bytes.fromhex("8004950d000000000000004a01000000304a")
_HEADER_LEN = 24

PathOrURL = Union[str, "os.PathLike[str]"]


def is_mmpkl_header(head: bytes) -> bool:
    """Whether head (at least the first 24 bytes of a file) is an mmappickle header."""
    return len(head) >= _HEADER_LEN and head[:18] == _HEADER and head[22:24] == b"0("


# -- reading ------------------------------------------------------------


def _fill_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a masked array of dtype is read as (masked elements NaN or NaT)."""
    if dtype.kind in "fcmM":
        return dtype
    if dtype.kind in "biu":
        return np.dtype(np.float32) if dtype.itemsize <= 2 else np.dtype(np.float64)
    return dtype  # strings: no missing value; the mask is not applied


def _filled(a: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    if isinstance(a, np.ma.MaskedArray):
        data = np.array(np.ma.getdata(a), dtype=dtype)
        if dtype.kind in "fcmM":
            data[np.ma.getmaskarray(a)] = np.array("NaT" if dtype.kind in "mM" else np.nan, dtype=dtype)
        return data
    return np.array(a, dtype=dtype)  # a copy: the result never pins the file's mapping


class MmpbridgeArray(BackendArray):
    """One array of an mmappickle file, read by the selection: a numpy
    memmap of a local file, byte ranges of a remote one. Pickles as the
    file's path or URL, the key and the entry's offset and size; the
    process that unpickles it opens the file again and checks that the key
    still names that entry."""

    def __init__(self, location: str, key: str, kind: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 ident: tuple[int, int], target: Any = None) -> None:
        self.location, self.key, self.kind = location, key, kind
        self.shape = tuple(int(n) for n in shape)
        self._stored = np.dtype(dtype)
        self.dtype = _fill_dtype(self._stored) if kind == "masked" else self._stored
        self._ident = ident
        self._target = target  # what is indexed, in this process: never pickled
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.location, self.key, self.kind, self.shape, self._stored, self._ident))

    def __repr__(self) -> str:
        return f"<MmpbridgeArray {self.key!r} {self._stored} {self.shape} of {self.location}>"

    def _open(self) -> Any:
        with self._lock:
            if self._target is None:
                self._target = _open_target(self.location, self.key, self.kind, self._ident)
            return self._target

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        return _filled(self._open()[key], self.dtype)


def _ident(info: Mapping[str, Any]) -> tuple[int, int]:
    """The entry's identity: the offset and size of its (data) bytes."""
    a = info["data"] if info["kind"] == "masked" else info
    return int(a["offset"]), int(a["nbytes"])


def _open_target(location: str, key: str, kind: str, ident: tuple[int, int]) -> Any:
    """The key's array in this process (a memmap, a masked array of memmaps,
    or a remote LazyArray), refused if the key is no longer that entry."""
    if is_url(location):
        d: Any = remotedict(location)
        info = d._info(key)
    else:
        d = mmapdict(location, readonly=True)
        if key not in d:
            d.close()
            raise KeyError(f"{location}: key {key!r} is gone (it was an array when the dataset was opened)")
        info = _lib.entry_info(d._handle(), key)
    try:
        if info["kind"] != kind or _ident(info) != ident:
            raise ValueError(f"{location}: key {key!r} was replaced since the dataset was opened "
                             f"(its data was {ident[1]} bytes at offset {ident[0]})")
        if is_url(location):
            return _remote_target(d, info, key)
        return d[key]  # memmaps (a masked array of two), valid after close
    finally:
        if not is_url(location):
            d.close()


class _RemoteMasked:
    """A masked array of a remote file, its data and mask fetched by the selection."""

    def __init__(self, data: LazyArray, mask: LazyArray) -> None:
        self.data, self.mask = data, mask

    def __getitem__(self, key: Any) -> np.ma.MaskedArray[Any, Any]:
        return np.ma.MaskedArray(self.data[key], np.asarray(self.mask[key]).astype(bool))


def _remote_target(d: remotedict, info: Mapping[str, Any], key: str) -> Any:
    if info["kind"] == "masked":
        data, mask = LazyArray(d, info["data"], key), LazyArray(d, info["mask"], key)
        if mask.shape != data.shape:
            raise _lib.FormatError(f"{d.url}: key {key!r}: a mask of shape {mask.shape} for data of {data.shape}",
                                   _lib.FORMAT)
        return _RemoteMasked(data, mask)
    return d.lazy(key)


def _plain_mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: want a dict with str keys, not {type(value).__name__}")
    return value


def _read_convention(m: Any, name: str) -> dict[str, Any]:
    """The "__xarray__" value, checked (it comes from the file: untrusted)."""
    if XARRAY_KEY not in m:
        return {"dims": {}, "attrs": {}, "coords": [], "dataset_attrs": {}}
    where = f"{name}: key {XARRAY_KEY!r}"
    meta = m[XARRAY_KEY]
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: want a dict, not {type(meta).__name__}")
    version = meta.get("version")
    if version != VERSION:
        raise ValueError(f"{where}: version {version!r}; this mmpbridge reads version {VERSION}")
    dims = _plain_mapping(meta.get("dims"), f"{where}['dims']")
    for k, v in dims.items():
        if not isinstance(v, (list, tuple)) or not all(isinstance(d, str) for d in v):
            raise ValueError(f"{where}['dims'][{k!r}]: want a list of str")
    attrs = _plain_mapping(meta.get("attrs"), f"{where}['attrs']")
    for k, v in attrs.items():
        _plain_mapping(v, f"{where}['attrs'][{k!r}]")
    coords = meta.get("coords", [])
    if not isinstance(coords, (list, tuple)) or not all(isinstance(c, str) for c in coords):
        raise ValueError(f"{where}['coords']: want a list of str")
    return {"dims": dims, "attrs": attrs, "coords": list(coords),
            "dataset_attrs": _plain_mapping(meta.get("dataset_attrs"), f"{where}['dataset_attrs']")}


def _hdf5_attrs(m: Any, name: str) -> dict[str, dict[str, Any]]:
    """The "__attrs__" value of a file converted from HDF5, by path, without mmpconv's records."""
    if HDF5_ATTRS_KEY not in m:
        return {}
    value = m[HDF5_ATTRS_KEY]
    if not isinstance(value, dict):
        return {}  # not mmpconv's: not attributes
    out: dict[str, dict[str, Any]] = {}
    for path, attrs in value.items():
        if isinstance(path, str) and isinstance(attrs, dict):
            out[path] = {k: v for k, v in attrs.items() if isinstance(k, str) and k not in _HDF5_RECORDS}
    return out


def _location(filename_or_obj: Any) -> str:
    if is_url(filename_or_obj):
        return str(filename_or_obj)
    if isinstance(filename_or_obj, (str, os.PathLike)):
        return os.path.abspath(os.fsdecode(os.fspath(filename_or_obj)))
    raise TypeError(f"engine='mmpbridge' opens a path or an http(s) URL, not {type(filename_or_obj).__name__}")


CHUNK_BYTES = 64 << 20


def _preferred_chunks(dims: list[str], shape: tuple[int, ...], order: str, itemsize: int) -> dict[str, int]:
    """Chunks of about CHUNK_BYTES that are each one byte range of the
    file: whole along every axis but the slowest-varying one (the first in
    C order, the last in Fortran order), which is cut."""
    if not shape:
        return {}
    axis = len(shape) - 1 if order == "F" and len(shape) > 1 else 0
    per = itemsize
    for i, n in enumerate(shape):
        if i != axis:
            per *= n
    chunks = {d: max(n, 1) for d, n in zip(dims, shape)}
    chunks[dims[axis]] = max(1, min(shape[axis], CHUNK_BYTES // max(per, 1)))
    return chunks


def open_mmpkl_dataset(filename_or_obj: Any, *, drop_variables: Optional[Union[str, Iterable[str]]] = None) -> xr.Dataset:
    """The file (path or http(s) URL) as a Dataset of lazily read variables (see the module's doc)."""
    location = _location(filename_or_obj)
    drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
    m: Any = remotedict(location) if is_url(location) else mmapdict(location, readonly=True)
    try:
        meta = _read_convention(m, location)
        h5 = _hdf5_attrs(m, location)
        variables: dict[str, xr.Variable] = {}
        sizes: dict[str, int] = {}
        for key in list(m):
            if key in (XARRAY_KEY, HDF5_ATTRS_KEY) or key in drop:
                continue
            info = m._info(key) if is_url(location) else _lib.entry_info(m._handle(), key)
            if info["kind"] not in ("array", "masked"):
                continue
            a = info["data"] if info["kind"] == "masked" else info
            dtype, shape, _, _, _ = _lib.array_layout(a, location, key)
            dims = meta["dims"].get(key)
            if dims is None:
                dims = []
                for i, n in enumerate(shape):
                    d = f"dim_{i}"
                    if sizes.get(d, n) != n:
                        d = f"{key}/dim_{i}"
                    dims.append(d)
            elif len(dims) != len(shape):
                raise ValueError(f"{location}: key {XARRAY_KEY!r}: {len(dims)} dimension names for "
                                 f"key {key!r} of shape {tuple(shape)}")
            for d, n in zip(dims, shape):
                if sizes.setdefault(d, n) != n:
                    raise ValueError(f"{location}: key {key!r}: dimension {d!r} is {n} long here, "
                                     f"{sizes[d]} in another key")
            if is_url(location):
                target = _remote_target(m, info, key)
            else:
                target = m[key]  # a memmap (a masked array of two): mapped, not read
                if info["kind"] == "array" and (target.offset, target.nbytes) != _ident(info):
                    raise ValueError(f"{location}: key {key!r} was replaced while the dataset was opened")
            arr = MmpbridgeArray(location, key, info["kind"], tuple(shape), dtype, _ident(info), target)
            attrs = dict(h5.get("/" + key, {}))
            attrs.update(meta["attrs"].get(key, {}))
            var = xr.Variable(list(dims), indexing.LazilyIndexedArray(arr), attrs=attrs)
            var.encoding["preferred_chunks"] = _preferred_chunks(list(dims), tuple(shape), a["order"], dtype.itemsize)
            variables[key] = var
        missing = [c for c in meta["coords"] if c not in variables and c not in drop]
        if missing:
            raise ValueError(f"{location}: key {XARRAY_KEY!r} names coordinates that are no array key: {missing}")
        dataset_attrs = dict(h5.get("/", {}))
        dataset_attrs.update(meta["dataset_attrs"])
        coord_names = [c for c in meta["coords"] if c in variables]
        ds = xr.Dataset({k: v for k, v in variables.items() if k not in coord_names},
                        coords={k: variables[k] for k in coord_names}, attrs=dataset_attrs)
    except BaseException:
        if not is_url(location):
            m.close()
        raise
    if is_url(location):
        ds.set_close(m.close)
    else:
        m.close()  # the arrays map the file by themselves
    return ds


class MmpbridgeBackendEntrypoint(BackendEntrypoint):
    """xarray's engine "mmpbridge": mmappickle files (local paths and http(s)
    URLs), every array key a lazily read variable; dimension names,
    coordinates and attributes from the key "__xarray__" (see
    mmpbridge.xarray_backend)."""

    open_dataset_parameters = ("filename_or_obj", "drop_variables")
    description = "Open mmappickle (.mmpkl) files, local or over HTTP, in xarray (mmpbridge)"
    url = "https://github.com/mmpbridge/mmpbridge#xarray"

    def open_dataset(self, filename_or_obj: Any, *,
                     drop_variables: Optional[Union[str, Iterable[str]]] = None) -> xr.Dataset:
        return open_mmpkl_dataset(filename_or_obj, drop_variables=drop_variables)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if isinstance(filename_or_obj, (str, os.PathLike)):
            name = os.fsdecode(os.fspath(filename_or_obj))
            if name.split("?", 1)[0].lower().endswith(".mmpkl"):
                return True
            if is_url(name):
                return False
            try:
                with open(name, "rb") as f:
                    return is_mmpkl_header(f.read(_HEADER_LEN))
            except OSError:
                return False
        read, seek, tell = (getattr(filename_or_obj, a, None) for a in ("read", "seek", "tell"))
        if read is None or seek is None or tell is None:
            return False
        try:
            pos = tell()
            seek(0)
            head = read(_HEADER_LEN)
            seek(pos)
        except (OSError, ValueError):
            return False
        return isinstance(head, bytes) and is_mmpkl_header(head)


# -- writing ------------------------------------------------------------

_ATTR_SCALARS = (bool, int, float, complex, str, bytes)
_ARRAY_KINDS = "biufcmMSU"


def _plain_attr(value: Any, where: str, depth: int = 0) -> Any:
    """value, if plain data that pickle.load rebuilds with nothing but numpy; else TypeError."""
    if depth > 32:
        raise TypeError(f"{where}: nested more than 32 deep")
    if value is None or type(value) in _ATTR_SCALARS:
        return value
    if isinstance(value, np.generic) and type(value).__module__ == "numpy" and value.dtype.kind in _ARRAY_KINDS:
        return value
    if type(value) is np.ndarray and value.dtype.kind in _ARRAY_KINDS and value.dtype.fields is None:
        return value
    if type(value) in (list, tuple):
        return type(value)(_plain_attr(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    if type(value) is dict:
        for k in value:
            if not isinstance(k, str):
                raise TypeError(f"{where}: a dict key {k!r} is not str")
        return {k: _plain_attr(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    raise TypeError(f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored as plain "
                    "data (want None, bool, int, float, complex, str, bytes, numpy scalars and arrays, "
                    "and lists, tuples and dicts of them)")


def _plain_attrs(attrs: Mapping[Any, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if not isinstance(k, str):
            raise TypeError(f"{where}: attribute name {k!r} is not str")
        out[k] = _plain_attr(v, f"{where} attribute {k!r}")
    return out


def _storable(values: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """values as an array the file stores as one (strings of object arrays as U or S)."""
    if values.dtype.kind != "O":
        if values.dtype.kind not in _ARRAY_KINDS or values.dtype.fields is not None:
            raise TypeError(f"variable {name!r}: dtype {values.dtype} cannot be stored")
        return values
    flat = values.ravel().tolist()
    for t in (str, bytes):
        if all(type(v) is t for v in flat):
            return np.array(flat, dtype=t).reshape(values.shape) if flat else np.zeros(values.shape, dtype="U1" if t is str else "S1")
    raise TypeError(f"variable {name!r}: an object array that is not all str or all bytes cannot be stored "
                    "as an array (convert it first)")


def to_mmpkl(ds: xr.Dataset, path: PathOrURL, *, force: bool = False, profile: Literal["portable", "mmappickle"] = "portable",
             align: int = 64) -> None:
    """Write the Dataset to a new mmappickle file at path, so that
    ``xr.open_dataset(path, engine="mmpbridge")`` gives it back: every
    variable (data variables and coordinates) an array key, dimension
    names, coordinates and attributes under "__xarray__". Dask-backed
    variables are written chunk by chunk. The file appears whole or not at
    all; an existing path is refused unless force (then replaced). Raises
    TypeError for what cannot be stored (names not str, reserved names,
    attribute values that are not plain data, object arrays that are not
    strings)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"to_mmpkl writes an xarray.Dataset, not {type(ds).__name__} (DataArray: .to_dataset())")
    dst = os.path.abspath(os.fsdecode(os.fspath(path)))
    if not force and os.path.lexists(dst):
        raise FileExistsError(f"{dst}: exists (force=True replaces it)")
    meta: dict[str, Any] = {"version": VERSION, "dims": {}, "attrs": {}, "coords": [],
                            "dataset_attrs": _plain_attrs(ds.attrs, "the dataset's")}
    names: list[str] = []
    for name, var in ds.variables.items():
        if not isinstance(name, str):
            raise TypeError(f"variable {name!r}: names are str in an mmappickle file")
        _check_key(name)
        if name in (XARRAY_KEY, HDF5_ATTRS_KEY):
            raise TypeError(f"variable {name!r}: the name is reserved")
        for d in var.dims:
            if not isinstance(d, str):
                raise TypeError(f"variable {name!r}: dimension {d!r} is not named by a str")
        meta["dims"][name] = list(var.dims)
        if var.attrs:
            meta["attrs"][name] = _plain_attrs(var.attrs, f"variable {name!r}")
        names.append(name)
    meta["coords"] = [str(c) for c in ds.coords]
    folder = os.path.dirname(dst)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dst) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    os.remove(tmp)
    try:
        with mmapdict(tmp, profile=profile, align=align) as m:
            for name in names:
                _write_variable(m, name, ds.variables[name])
            m[XARRAY_KEY] = meta
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, dst)
        else:
            os.link(tmp, dst)  # refuses a file made meanwhile
            os.remove(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_variable(m: mmapdict, name: str, var: xr.Variable) -> None:
    data = var.data
    if hasattr(data, "dask") and hasattr(data, "chunks") and np.dtype(data.dtype).kind != "O":
        import dask.array as da

        from .stubs import EmptyNDArray
        _storable(np.empty(0, dtype=data.dtype), name)
        m[name] = EmptyNDArray(data.shape, data.dtype)
        target = m[name]
        if target.size:
            da.store(data, target, lock=True, scheduler="threads")  # the memmap is of this process
            target.flush()
        del target
        return
    m[name] = _storable(np.asarray(var.values), name)
