"""LocalLazyArray: an array of a local mmappickle file that travels by
reference (mmapdict.lazy).

m[key] is a numpy.memmap, and a memmap pickles by value, as every numpy
array does: handed to another process (dask.distributed, multiprocessing)
it sends all its bytes. m.lazy(key) pickles as the file's path, the key and
the entry's identity (where its bytes lie, their dtype, shape and order,
and the file's inode); the process that unpickles it maps the file itself,
on first use, after checking through a fresh read-only open of the file
that the key still describes that very entry. If it does not (the key was
replaced, deleted, or the file vacuumed), reading raises instead of
reading other bytes.
"""
from __future__ import annotations

import json
import mmap
import os
import pickle
import threading
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

import numpy as np

from . import _lib

if TYPE_CHECKING:  # pragma: no cover
    import numpy.typing as npt

    from ._dict import mmapdict

# The fields of an array entry's description that are its identity: a key
# whose entry differs in any of them is another entry.
_IDENTITY = ("dtype", "itemsize", "shape", "order", "offset", "nbytes")


def _identity(info: dict[str, Any]) -> dict[str, Any]:
    return {f: info.get(f) for f in _IDENTITY}


def _map(fd: int, name: str, key: str, dtype: np.dtype[Any], shape: Tuple[int, ...], order: str,
         offset: int, nbytes: int) -> npt.NDArray[Any]:
    """A read-only ndarray over exactly the array's bytes of the file
    behind fd (mmap, as mmapdict._memmap; a file too short is refused)."""
    if nbytes == 0:
        a = np.empty(shape, dtype=dtype, order="F" if order == "F" else "C")
        a.flags.writeable = False
        return a
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    delta = offset - start
    try:
        mm = mmap.mmap(fd, delta + nbytes, access=mmap.ACCESS_READ, offset=start)
    except ValueError as e:  # mmap's "length is greater than file size"
        raise _lib.FormatError(f"{name}: key {key!r}: the array's {nbytes} bytes at offset {offset} "
                               f"run past the end of the file ({e})", _lib.FORMAT) from None
    return np.ndarray(shape, dtype=dtype, buffer=mm, offset=delta, order="F" if order == "F" else "C")


def _stale(name: str, key: str, why: str) -> _lib.FormatError:
    return _lib.FormatError(f"{name}: key {key!r}: {why}; the lazy array no longer describes the file "
                            "(make it again with mmapdict(path).lazy(key))", _lib.FORMAT)


def _open_checked(path: str, key: str, ident: Optional[dict[str, Any]], ino: Optional[int]
                  ) -> Tuple[dict[str, Any], int, npt.NDArray[Any]]:
    """Opens path afresh, read-only, and maps key's array: (its identity,
    the file's inode, the array). With ident and ino given, the file must be
    the one (inode) and key the entry (identity) they describe."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as e:
        raise FileNotFoundError(e.errno, f"{path}: the file of lazy array {key!r} is gone", path) from None
    try:
        st_ino = os.fstat(fd).st_ino
        if ino is not None and st_ino != ino:
            raise _stale(path, key, "the file was replaced (vacuumed, or written anew) since the lazy array was made")
        h = _lib.open_ex(path, fd, 0, None)
        try:
            try:
                info = _lib.entry_info(h, key)
            except KeyError:
                if ident is None:
                    raise
                raise _stale(path, key, "the key was deleted") from None
        finally:
            _lib.close(h)
        if info.get("kind") != "array":
            if ident is None:
                raise _not_plain(key, info)
            raise _stale(path, key, f"the key now holds another value ({info.get('kind')})")
        now = _identity(info)
        if ident is not None and now != ident:
            raise _stale(path, key, f"the key now describes another entry (offset {now['offset']}, "
                                    f"{now['nbytes']} bytes; the lazy array's: offset {ident['offset']}, "
                                    f"{ident['nbytes']} bytes)")
        dtype, shape, order, offset, nbytes = _lib.array_layout(info, path, key)
        return now, st_ino, _map(fd, path, key, dtype, shape, order, offset, nbytes)
    finally:
        os.close(fd)


def _not_plain(key: str, info: dict[str, Any]) -> TypeError:
    kind = info.get("kind")
    if kind == "masked":
        return TypeError(f"key {key!r} is a masked array: lazy arrays are plain arrays; use m[{key!r}] "
                         "(its .data and .mask are memmaps)")
    return TypeError(f"key {key!r} is not an array ({kind}): use m[{key!r}]")


class LocalLazyArray:
    """An array of a local mmappickle file, read through a read-only
    mapping of exactly its bytes, that pickles by reference: as the file's
    path, the key and the entry's identity (offset, size, dtype, shape,
    order, the file's inode), a few hundred bytes whatever the array's
    size. For dask: ``dask.array.from_array(m.lazy("cube"), chunks=...)``
    runs on dask.distributed without sending the array's data.

    In the process that made it (m.lazy(key)) it reads the entry it was
    made of, as m[key]'s memmap would. Unpickled in another process, it
    opens the file by path on first read, read-only, and checks that the
    file is the same (inode) and the key still describes the same entry;
    if not (the key replaced or deleted, the file vacuumed), reading raises
    FormatError (a ValueError) naming the file and key, or
    FileNotFoundError if the file is gone, never reading other bytes.

    Indexing (``a[...]``, numpy's basic and advanced indexing) returns
    numpy data copied out of the mapping; ``numpy.asarray(a)`` is a
    read-only view of the mapping (numpy 2's ``copy=True`` copies).
    """

    def __init__(self, path: Optional[str], key: str, ident: dict[str, Any], ino: Optional[int],
                 array: Optional[npt.NDArray[Any]] = None, name: Optional[str] = None) -> None:
        self._path = path
        self._key = key
        self._ident = ident
        self._ino = ino
        self._name = name if name is not None else (path if path is not None else "<file object>")
        dtype, shape, order, _, nbytes = _lib.array_layout(ident, self._name, key)
        if dtype.subdtype is not None:  # numpy would add the subarray's axes to the shape
            raise _lib.FormatError(f"{self._name}: key {key!r}: an array of subarray dtype {dtype}", _lib.FORMAT)
        self.dtype: np.dtype[Any] = dtype
        self.shape: Tuple[int, ...] = shape
        self.ndim: int = len(shape)
        self.size: int = int(np.prod(shape, dtype=np.int64))
        self.nbytes: int = nbytes
        self.itemsize: int = dtype.itemsize
        self._order = order
        self._array = array
        self._lock = threading.Lock()

    # -- making one ------------------------------------------------------

    @classmethod
    def _of(cls, d: "mmapdict", key: str) -> "LocalLazyArray":
        """key's array in the dict d (mmapdict.lazy)."""
        path = os.path.abspath(d._path) if d._path is not None else None
        name = d._name()
        info, fd = _lib.entry_map(d._handle(), key)
        try:
            if info.get("kind") != "array":
                raise _not_plain(key, info)
            src = fd
            if src < 0 and d._fileobj is not None:
                # In a forked process libmmp's helper cannot hand out a
                # descriptor: the dict's own is of the file it described.
                src = d._fileobj.fileno()
            elif src < 0:
                # Likewise, by path: the fresh open's description is the one used.
                ident, ino, a = _open_checked(path or name, key, None, None)
                return cls(path, key, ident, ino, a, name)
            dtype, shape, order, offset, nbytes = _lib.array_layout(info, name, key)
            ino = os.fstat(src).st_ino
            a = _map(src, name, key, dtype, shape, order, offset, nbytes)
            return cls(path, key, _identity(info), ino, a, name)
        finally:
            if fd >= 0:  # entry_map's, never the dict's own
                os.close(fd)

    def _reference(self) -> str:
        return json.dumps([self._path, self._key, self._ident, self._ino], sort_keys=True)

    def _mapped(self) -> npt.NDArray[Any]:
        """The read-only array over the file, mapped on first use (once per
        object: an unpickled copy checks the file when it first reads)."""
        a = self._array
        if a is not None:
            return a
        with self._lock:
            if self._array is None:
                if self._path is None:  # pragma: no cover - made only with a mapping
                    raise ValueError(f"{self._name}: key {self._key!r}: a lazy array of an unnamed file has no mapping")
                _, _, self._array = _open_checked(self._path, self._key, self._ident, self._ino)
            return self._array

    # -- pickling and dask ------------------------------------------------

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        if self._path is None:
            raise pickle.PicklingError(f"a lazy array of key {self._key!r} of an unnamed file cannot be pickled: "
                                       "open the mmapdict by path")
        return (_restore, (self._path, self._key, self._ident, self._ino))

    def __dask_tokenize__(self) -> Tuple[Any, ...]:
        """Cheap and deterministic: the file, the key and the entry's
        identity, never the data."""
        if self._path is None:
            return ("mmpbridge.LocalLazyArray", "unnamed", id(self))
        return ("mmpbridge.LocalLazyArray", self._reference())

    # -- the array-like ---------------------------------------------------

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<mmpbridge.LocalLazyArray {self._key!r} {self.dtype} {self.shape} of {self._name!r}>"

    def __getitem__(self, key: Any) -> Any:
        """numpy's indexing of the array, the result copied out of the
        mapping (an ndarray, or a numpy scalar for a single element)."""
        r = self._mapped()[key]
        if isinstance(r, np.ndarray):
            return r.copy(order="K")  # never a view of the mapping
        return r

    def read(self, key: Tuple[Union[int, slice], ...]) -> npt.NDArray[Any]:
        """The array indexed by a tuple of ints and slices (an xarray
        BackendArray's raw indexing), always as an ndarray of its own."""
        return np.array(self._mapped()[tuple(key)], copy=True)

    def __array__(self, dtype: Optional[npt.DTypeLike] = None, copy: Optional[bool] = None) -> npt.NDArray[Any]:
        a = self._mapped()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError(f"key {self._key!r}: a {a.dtype} array cannot be given as {np.dtype(dtype)} without a copy")
            return a.astype(dtype)
        return a.copy(order="K") if copy else a


def _restore(path: str, key: str, ident: dict[str, Any], ino: Optional[int]) -> LocalLazyArray:
    """A LocalLazyArray unpickled: the file is mapped on first read."""
    return LocalLazyArray(path, key, ident, ino)
