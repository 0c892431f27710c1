"""remotedict: an mmappickle file on an HTTP(S) server, read-only, through
libmmp's remote reader (Range requests, a block cache shared by every read,
the file's identity pinned at open)."""
from __future__ import annotations

import pickle
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, Optional

from numpy.typing import DTypeLike, NDArray

import numpy as np

from . import _lib, _ranges
from ._unpickle import loads_plain


def is_url(file: object) -> bool:
    return isinstance(file, str) and file.startswith(("http://", "https://"))


def _close_url(h: int, epoch: int) -> None:
    if epoch != _lib.EPOCH:
        return
    try:
        _lib.url_close(h)
    except Exception:  # noqa: BLE001 - at exit or collection: nothing to tell
        pass


class remotedict(Mapping[str, Any]):
    """The file at an http(s) URL as a read-only mapping: mmapdict(url)
    returns one. Keys are listed when it is opened; m[key] fetches an array
    into memory (only its bytes move), m.lazy(key) gives an array-like
    that fetches only the byte ranges a slice needs (for
    dask.array.from_array). Values are unpickled as plain data unless
    trusted, as in mmapdict. Writing raises io.UnsupportedOperation.

    Opening raises OSError for a URL that is not http(s), a server that
    cannot be reached or answers with an error (the status named) or
    without Range support, FormatError (a ValueError) for a
    file that is not a sound mmappickle file. Reading raises KeyError for
    a missing key, NotPlainError (a pickle.UnpicklingError) for a value
    that is not plain data unless trusted, OSError when the file changed
    on the server since it was opened or the connection fails."""

    writable: bool = False

    def __init__(self, url: str, trusted: bool = False) -> None:
        self._url = url
        self._trusted = bool(trusted)
        self._h = _lib.url_open(url)
        self._epoch = _lib.EPOCH
        self._finalizer = weakref.finalize(self, _close_url, self._h, self._epoch)
        self._keys = _lib.url_keys(self._h)
        self._keyset = set(self._keys)

    @property
    def url(self) -> str:
        return self._url

    def _handle(self) -> int:
        if not self._finalizer.alive:
            raise ValueError("I/O operation on a closed mmapdict")
        return self._h

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> remotedict:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mmpbridge.remotedict {self._url!r} ({len(self._keys)} keys{', closed' if self.closed else ''})>"

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self._url, self._trusted)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __contains__(self, k: object) -> bool:
        return isinstance(k, str) and k in self._keyset

    def _info(self, k: str) -> dict[str, Any]:
        if not isinstance(k, str):
            raise TypeError(f"mmapdict keys are str, not {type(k).__name__}")
        if k not in self._keyset:
            raise KeyError(k)
        return _lib.url_entry_info(self._handle(), k)

    def _fetch(self, info: dict[str, Any], key: str) -> NDArray[Any]:
        dtype, shape, order, offset, nbytes = _lib.array_layout(info, self._url, key)
        a = np.empty(shape, dtype=dtype, order=order)
        if a.nbytes != nbytes:  # never read more (or less) than the entry's bytes
            raise _lib.FormatError(f"{self._url}: key {key!r}: numpy makes {a.nbytes} bytes of {nbytes}", _lib.FORMAT)
        if nbytes:
            _lib.url_read_into(self._handle(), offset, a.ctypes.data, nbytes)
        return a

    def __getitem__(self, k: str) -> Any:
        info = self._info(k)
        kind = info["kind"]
        if kind == "array":
            return self._fetch(info, k)
        if kind == "masked":
            data, mask = self._fetch(info["data"], k), self._fetch(info["mask"], k)
            m: Any = np.ma.MaskedArray(data, mask)
            if info["fill"] is not None:
                m.fill_value = np.frombuffer(bytes.fromhex(info["fill"]), dtype=data.dtype)[0]
            return m
        p = _lib.url_value_pickle(self._handle(), k, self._trusted)
        return pickle.loads(p) if self._trusted else loads_plain(p)

    def lazy(self, k: str) -> LazyArray:
        """The array under k, not fetched: shape, dtype, ndim, and
        __getitem__ fetching only the bytes a slice needs. Raises KeyError
        for a missing key, TypeError for a value that is not a plain
        array (a masked array or another value: read it with m[k])."""
        info = self._info(k)
        if info["kind"] != "array":
            raise TypeError(f"key {k!r} is not a plain array ({info['kind']}): use m[{k!r}]")
        return LazyArray(self, info, k)

    def stats(self) -> dict[str, int]:
        """{"requests": N, "bytes": M}: what the reader sent and received."""
        return _lib.url_stats(self._handle())

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        import io
        raise io.UnsupportedOperation(f"{self._url}: remote files are read-only")

    __setitem__ = __delitem__ = vacuum = fsck = _readonly


class LazyArray:
    """An array of a remote file, fetched by the selection: lz[key] moves
    only the byte ranges numpy's a[key] reads (any basic selection: ints,
    slices of any step, Ellipsis, np.newaxis, on any axis, C or Fortran
    order), neighbours merged when the gap is under a block, a few requests
    at a time; advanced indexing moves the bounding box of its index
    arrays. See _ranges for the plan and its bounds: bytes moved <= 1.5 x
    the selection's + 64 KiB per range unless the selection is spread thinly
    over the file, at most a few hundred requests unless it skips 64 KiB
    or more that often."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int
    ndim: int
    size: int

    def __init__(self, d: remotedict, info: dict[str, Any], key: str) -> None:
        self._d = d
        self._info = info
        self.dtype, self.shape, self._order, self._offset, self.nbytes = _lib.array_layout(info, d.url, key)
        if self.dtype.subdtype is not None:
            raise _lib.FormatError(f"{d.url}: key {key!r}: an array of subarray dtype {self.dtype}", _lib.FORMAT)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self._fortran = info["order"] == "F" and self.ndim > 1

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<LazyArray {self.dtype} {self.shape} of {self._d.url}>"

    def __array__(self, dtype: Optional[DTypeLike] = None, copy: Optional[bool] = None) -> NDArray[Any]:
        a: NDArray[Any] = self[...]
        return a.astype(dtype) if dtype is not None else a

    def _plan(self, key: Any) -> _ranges.Plan:
        """The byte ranges array[key] needs (a _ranges.Plan)."""
        return _ranges.plan(key, self.shape, self.dtype.itemsize, "F" if self._fortran else "C", self._offset)

    def __getitem__(self, key: Any) -> Any:
        h = self._d._handle()
        return _ranges.take(self._plan(key), self.dtype,
                            lambda triples, address, size: _lib.url_read_ranges(h, triples, address, size))
