"""mmapdict: mmappickle's dict of memory-mapped arrays, on libmmp."""
from __future__ import annotations

import io
import mmap
import os
import pickle
import shutil
import tempfile
import weakref
from collections.abc import Iterator, MutableMapping
from typing import IO, TYPE_CHECKING, Any, Literal, Optional, Union, cast

import numpy as np

from . import _lib
from ._unpickle import loads_plain
from .stubs import EmptyNDArray
from ._lazy import LocalLazyArray

if TYPE_CHECKING:
    from ._remote import remotedict

_PROFILES = ("portable", "mmappickle")


def _check_key(k: object) -> str:
    if not isinstance(k, str):
        raise TypeError(f"mmapdict keys are str, not {type(k).__name__}")
    try:
        n = len(k.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise TypeError(f"mmapdict key {k!r} is not valid UTF-8: {e}") from None
    if not 1 <= n <= 255:
        raise TypeError(f"mmapdict keys are 1 to 255 bytes of UTF-8; {k[:40]!r} is {n}")
    if "\x00" in k:
        raise TypeError(f"mmapdict key {k!r}: keys holding NUL characters are not supported")
    return k


def _array_dtype(a: np.ndarray[Any, np.dtype[Any]]) -> Optional[str]:
    """The dtype string libmmp stores, or None for what it cannot (object,
    structured, subarray dtypes): those are pickled."""
    d = a.dtype
    if d.hasobject or d.fields is not None or d.subdtype is not None:
        return None
    return d.str


def _order(a: np.ndarray[Any, Any]) -> Optional[Literal["C", "F"]]:
    """"C" or "F" for a contiguous array, None for another."""
    if a.flags.c_contiguous:
        return "C"
    if a.flags.f_contiguous:
        return "F"
    return None


def _own_file(fd: int, writable: bool) -> IO[bytes]:
    """A file object of our own on the file behind fd, for numpy.memmap:
    opened anew through /proc/self/fd, so that mapping it never moves the
    caller's file position (a duplicate, where there is no /proc)."""
    mode = "r+b" if writable else "rb"
    try:
        return open(f"/proc/self/fd/{fd}", mode, buffering=0)
    except OSError:
        return os.fdopen(os.dup(fd), mode, buffering=0)


def _close_handle(h: int, epoch: int) -> None:
    if epoch != _lib.EPOCH:
        return  # opened before a fork, by the parent: not ours to close
    try:
        _lib.close(h)
    except Exception:  # noqa: BLE001 - at exit or collection: nothing to tell
        pass


class mmapdict(MutableMapping[str, Any]):
    """A dict stored in an mmappickle file: keys are str, arrays are
    memory-mapped, other values pickled. The API is mmappickle's.

    file is a path (str or os.PathLike; created if missing, unless
    readonly) or an open binary file object (flushed first, then its
    descriptor is used; as in mmappickle the dict is the whole file from
    byte 0 whatever the object's position, which no operation moves; the
    dict is writable when the file is and readonly is not true).

    Arrays come back as numpy.memmap of exactly their bytes in the file
    (writable when the dict is: writes reach the file; a read never
    changes the file), masked arrays as numpy.ma.MaskedArray whose
    data and mask are memmaps. Other values are unpickled; unless trusted,
    only plain data is (what ``mmpbridge.verify`` allows): a value that
    would import anything else raises pickle.UnpicklingError.

    profile ("portable" or "mmappickle") and align (a power of two) choose
    how new arrays are written. picklers is accepted for mmappickle's
    signature and ignored.

    An http(s) URL (a str starting with http:// or https://) gives a
    read-only mmpbridge.remotedict instead of an mmapdict (readonly=False
    raises io.UnsupportedOperation); type checkers see mmapdict, so typed
    code that opens URLs calls remotedict(url, trusted=...) itself.

    Raises, opening: FileNotFoundError (readonly and no such file),
    FormatError (a ValueError: not an mmappickle file, a bad header),
    ValueError (a bad profile or align; a plain pickle that cannot be
    converted), TypeError (file is neither a path nor a binary file
    object), OSError (the file cannot be opened or locked). Reading and
    writing: KeyError (no such key), TypeError (a key that is not str of
    1 to 255 UTF-8 bytes), NotPlainError (a pickle.UnpicklingError: a
    value that is not plain data, unless trusted), FormatError (a damaged
    entry; a torn file until fsck()), io.UnsupportedOperation (a write to
    a read-only dict), ValueError (a closed dict), KeyboardInterrupt
    (Ctrl-C during a long call, which then changes nothing).
    """

    def __new__(cls, file: Union[str, os.PathLike[str], os.PathLike[bytes], IO[bytes]],
                readonly: Optional[bool] = None, picklers: object = None, *,
                profile: Literal["portable", "mmappickle"] = "portable", align: int = 64,
                trusted: bool = False) -> mmapdict:
        # An http(s) URL opens a read-only remotedict instead (not an
        # mmapdict: its __init__ does not run). Typed code that opens URLs
        # calls remotedict(url) itself: the type checker sees mmapdict here.
        from ._remote import is_url, remotedict
        if cls is mmapdict and is_url(file):
            if readonly is False:
                raise io.UnsupportedOperation(f"{file}: remote files are read-only")
            return cast("mmapdict", remotedict(cast(str, file), trusted=trusted))
        return super().__new__(cls)

    def __init__(self, file: Union[str, os.PathLike[str], os.PathLike[bytes], IO[bytes]],
                 readonly: Optional[bool] = None, picklers: object = None, *,
                 profile: Literal["portable", "mmappickle"] = "portable", align: int = 64,
                 trusted: bool = False) -> None:
        if profile not in _PROFILES:
            raise ValueError(f"profile {profile!r}: want 'portable' or 'mmappickle'")
        if not isinstance(align, int) or isinstance(align, bool) or align < 1 or align & (align - 1):
            raise ValueError(f"align {align!r}: want a power of two")
        self._profile, self._align, self._trusted = profile, align, bool(trusted)
        self._h = 0
        self._path = None  # for numpy.memmap, pickling, messages
        self._fileobj = None  # a descriptor of our own, for numpy.memmap
        if isinstance(file, (str, os.PathLike)):
            path = os.fsdecode(os.fspath(file))
            if readonly and not os.path.exists(path):
                raise FileNotFoundError(f"Cannot readonly memmap a non-existent file {path!r}")
            self._path = path
            self._writable = not readonly
            self._open()
        elif all(hasattr(file, a) for a in ("fileno", "seek", "read")):
            # The file object may hold bytes not yet written (pickle.dump(d,
            # f); mmapdict(f)): the descriptor sees the file without them,
            # and f would later write them over what we wrote. Flushing also
            # drops f's read-ahead. As mmappickle, the dict is the whole file
            # from byte 0 whatever f's position, and f's position is left
            # where it was (we read and write through a descriptor of our
            # own).
            flush = getattr(file, "flush", None)
            if flush is not None:
                flush()
            fd = file.fileno()
            self._writable = bool(getattr(file, "writable", lambda: False)()) and not readonly
            name = getattr(file, "name", None)
            if isinstance(name, str) and os.path.exists(name):
                self._path = name
            self._fileobj = _own_file(fd, self._writable)
            self._open(fd=self._fileobj.fileno())
        else:
            raise TypeError(f"mmapdict file: a path or a binary file object (with fileno), not {type(file).__name__}")

    # -- opening --------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"profile": self._profile, "align": self._align}

    def _open(self, fd: int = -1) -> None:
        self._fd = fd
        flags = _lib.WRITABLE | _lib.CREATE if self._writable else 0
        name = self._path if self._path is not None else f"<file descriptor {fd}>"
        try:
            h = _lib.open_ex(name, fd, flags, self._options())
        except _lib.FormatError as e:
            if e.code == _lib.TORN:
                # As mmappickle: open it, so that fsck() can repair it.
                h = _lib.open_ex(name, fd, flags | _lib.ALLOW_TORN, self._options())
            elif e.code == _lib.NOT_MMPKL and self._writable:
                self._convert_plain_pickle(fd, e)
                h = _lib.open_ex(name, fd, flags, self._options())
            else:
                raise
        self._h, self._epoch = h, _lib.EPOCH
        self._finalizer = weakref.finalize(self, _close_handle, h, self._epoch)

    def _convert_plain_pickle(self, fd: int, why: Exception) -> None:
        """A file holding a plain pickled dict becomes an mmappickle file
        (mmappickle does it on first writable open). Unless trusted, no
        Python unpickler runs: libmmp reads the file once, proves it plain
        data (as verify judges it) and writes the new file itself."""
        folder = os.path.dirname(os.path.abspath(self._path)) if self._path and fd < 0 else None
        if not self._trusted and fd < 0:
            assert self._path is not None  # opened by path
            try:
                _lib.convert_plain(self._path, -1, self._path, self._options())
            except (_lib.FormatError, _lib.NotPlainError, _lib.UnsupportedError) as e:
                raise ValueError(str(e)) from None
            return
        tmp_fd, tmp = tempfile.mkstemp(prefix=".mmpbridge-convert-", dir=folder)
        os.close(tmp_fd)
        os.remove(tmp)
        try:
            if self._trusted:
                self._convert_trusted(fd, tmp)
            else:
                try:
                    _lib.convert_plain(self._name(), fd, tmp, self._options())
                except (_lib.FormatError, _lib.NotPlainError, _lib.UnsupportedError) as e:
                    raise ValueError(str(e)) from None
            if fd < 0:
                assert self._path is not None  # opened by path
                shutil.copymode(self._path, tmp)
                os.replace(tmp, self._path)
            else:
                assert self._fileobj is not None  # opened through a descriptor
                with open(tmp, "rb") as f:
                    self._fileobj.seek(0)
                    shutil.copyfileobj(f, self._fileobj, 1 << 20)
                    self._fileobj.truncate()
                    self._fileobj.flush()
                    os.fsync(self._fileobj.fileno())
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _convert_trusted(self, fd: int, tmp: str) -> None:
        """pickle.load of the file (trusted: it may run anything), its
        items written to the new mmappickle file tmp."""
        src = self._fileobj if fd >= 0 else open(cast(str, self._path), "rb")
        assert src is not None
        try:
            src.seek(0)
            try:
                data = pickle.load(src)
            except Exception as e:  # noqa: BLE001 - any failure of pickle.load
                raise ValueError(f"{self._name()}: not an mmappickle file, nor a loadable pickle: {type(e).__name__}: {e}") from None
        finally:
            if fd < 0:
                src.close()
        if type(data) is not dict:
            raise ValueError(f"{self._name()}: a pickle of a {type(data).__name__}, not of a dict: cannot be converted")
        with mmapdict(tmp, profile=self._profile, align=self._align) as out:
            for k, v in data.items():
                out[k] = v

    def _name(self) -> str:
        return self._path if self._path is not None else "<file object>"

    def _handle(self) -> int:
        if not self._h:
            raise ValueError("I/O operation on a closed mmapdict")
        if self._epoch != _lib.EPOCH:
            # Inherited through fork(): open the file again, in this process.
            self._finalizer.detach()
            self._open(fd=self._fd)
        return self._h

    # -- mmappickle's properties and methods ----------------------------

    @property
    def writable(self) -> bool:
        """True if the file is writable, False otherwise."""
        return self._writable

    @property
    def commit_number(self) -> int:
        """The file's commit number, changed by every change."""
        return _lib.commit_number(self._handle())

    @commit_number.setter
    def commit_number(self, n: int) -> None:
        if type(n) is not int:
            raise TypeError("commit_number should be an int")
        if not -(1 << 31) <= n < 1 << 31:
            raise ValueError(f"commit_number {n} does not fit in 32 bits")
        self._require_writable()
        _lib.set_commit_number(self._handle(), n)

    def _require_writable(self) -> None:
        if not self._writable:
            raise io.UnsupportedOperation("not writable")

    def vacuum(self, chunk_size: Optional[int] = None) -> None:
        """Reclaim the space of deleted and replaced keys. No process may
        have the file mapped meanwhile (arrays handed out before stay valid
        for a file opened by path: it is rewritten and renamed; a file given
        as a file object is rewritten in place). chunk_size is ignored."""
        self._require_writable()
        _lib.vacuum(self._handle())

    def fsck(self) -> bool:
        """Repair a file torn by an interrupted write. True when it was
        intact, False when it had to be repaired (as mmappickle)."""
        self._require_writable()
        return not _lib.fsck(self._handle())["repaired"]

    def close(self) -> None:
        """Close the file; arrays handed out stay valid (numpy owns their
        mappings)."""
        if self._h:
            h, self._h = self._h, 0
            self._finalizer.detach()
            _lib.close(h)
        if self._fileobj is not None:
            self._fileobj.close()
            self._fileobj = None

    @property
    def closed(self) -> bool:
        return not self._h

    def __enter__(self) -> mmapdict:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if not self._h else ("writable" if self._writable else "read-only")
        return f"<mmpbridge.mmapdict {self._name()!r} ({state})>"

    # -- pickling (multiprocessing) -------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        if self._path is None:
            raise pickle.PicklingError("an mmapdict on an unnamed file cannot be pickled: open it by path")
        return (_reopen, (self._path, not self._writable, self._profile, self._align, self._trusted))

    # -- the mapping ----------------------------------------------------

    def __len__(self) -> int:
        return _lib.length(self._handle())

    def __iter__(self) -> Iterator[str]:
        return iter(_lib.keys(self._handle()))

    def __contains__(self, k: object) -> bool:
        try:
            k = _check_key(k)
        except TypeError:
            return False  # no such key can be in the file
        return _lib.has_key(self._handle(), k)

    def get(self, k: str, default: Any = None) -> Any:
        """m[k] if k is a key, else default."""
        if k not in self:
            return default
        try:
            return self[k]
        except KeyError:  # deleted meanwhile by another process
            return default

    def __getitem__(self, k: str) -> Any:
        _check_key(k)
        h = self._handle()
        # fd: the very file the description is of (not the file's name,
        # which another process's vacuum may have moved to another file).
        info, fd = _lib.entry_map(h, k)
        try:
            kind = info["kind"]
            if kind == "array":
                return self._memmap(info, k, fd)
            if kind == "masked":
                data, mask = self._memmap(info["data"], k, fd), self._memmap(info["mask"], k, fd)
                m: Any = np.ma.MaskedArray(data, False)
                m._mask = mask
                if info["fill"] is not None:
                    m.fill_value = np.frombuffer(bytes.fromhex(info["fill"]), dtype=data.dtype)[0]
                return m
        finally:
            if fd >= 0:
                os.close(fd)
        p = _lib.value_pickle(h, k, self._trusted)
        return pickle.loads(p) if self._trusted else loads_plain(p)

    def _memmap(self, info: dict[str, Any], key: str, fd: int = -1) -> np.memmap[Any, Any]:
        """A numpy.memmap of exactly the array's bytes, read-only unless the
        dict is writable. Unlike numpy.memmap(mode="r+"), which extends a
        file shorter than offset + nbytes, a file too short is refused: a
        read never changes the file."""
        dtype, shape, order, offset, nbytes = _lib.array_layout(info, self._name(), key)
        mode = "r+" if self._writable else "r"
        if nbytes == 0:
            buf: Any
            buf, mm, delta = (bytearray() if self._writable else b""), None, 0
        else:
            start = offset - offset % mmap.ALLOCATIONGRANULARITY
            delta = offset - start
            access = mmap.ACCESS_WRITE if self._writable else mmap.ACCESS_READ
            try:
                if fd >= 0:
                    mm = mmap.mmap(fd, delta + nbytes, access=access, offset=start)
                elif self._fileobj is not None:
                    mm = mmap.mmap(self._fileobj.fileno(), delta + nbytes, access=access, offset=start)
                else:
                    fd = os.open(cast(str, self._path), os.O_RDWR if self._writable else os.O_RDONLY)
                    try:
                        mm = mmap.mmap(fd, delta + nbytes, access=access, offset=start)
                    finally:
                        os.close(fd)
            except ValueError as e:  # mmap's "length is greater than file size"
                raise _lib.FormatError(f"{self._name()}: key {key!r}: the array's {nbytes} bytes at offset {offset} "
                                       f"run past the end of the file ({e})", _lib.FORMAT) from None
            buf = mm
        a = np.ndarray.__new__(np.memmap, shape, dtype=dtype, buffer=buf, offset=delta, order=order)
        a._mmap = mm  # type: ignore[attr-defined]  # numpy.memmap's own attribute, not in its stubs
        a.filename = os.path.abspath(self._path) if self._path is not None else None
        a.offset = offset
        a.mode = mode
        return a

    def __setitem__(self, k: str, v: Any) -> None:
        _check_key(k)
        self._require_writable()
        h = self._handle()
        if isinstance(v, EmptyNDArray):
            _lib.reserve(h, k, {"dtype": v.dtype.str, "shape": list(v.shape), "order": "C"}, True)
            return
        t = type(v)
        if t is np.ma.MaskedArray and _array_dtype(v) is not None:
            try:
                self._put_masked(h, k, v)
                return
            except _lib.UnsupportedError:
                pass  # pickled instead
        if t in (np.ndarray, np.memmap) and _array_dtype(v) is not None:
            if self._put_array(h, k, v):
                return
        _lib.put_pickle(h, k, pickle.dumps(v, protocol=4))

    def _put_array(self, h: int, k: str, a: np.ndarray[Any, Any]) -> bool:
        order = _order(a)
        if self._profile == "mmappickle" and order == "F" and a.ndim > 1:
            a, order = np.ascontiguousarray(a), "C"  # the profile keeps no order
        header = {"dtype": a.dtype.str, "shape": list(a.shape), "order": order or "C"}
        try:
            if order is not None and not (_lib.REMOTE and a.nbytes > 1 << 20):
                _lib.put_array(h, k, header, a.ctypes.data if a.nbytes else None, a.nbytes)
                return True
            # Not contiguous (or, in a forked process, big: not through the
            # helper's pipe): reserve the space, copy through a mapping.
            slot, off = _lib.reserve(h, k, header, False)
            ok = False
            try:
                if a.nbytes:
                    mm = np.memmap(self._fileobj if self._fileobj is not None else cast(str, self._path),
                                   dtype=a.dtype, mode="r+", offset=off, shape=a.shape, order=header["order"])
                    mm[...] = a
                    mm.flush()
                    del mm
                ok = True
            finally:
                _lib.slot_done(slot, ok)
            return True
        except _lib.UnsupportedError:
            return False  # pickled instead

    def _put_masked(self, h: int, k: str, m: np.ma.MaskedArray[Any, Any]) -> None:
        data = np.ma.getdata(m)
        mask = np.ma.getmaskarray(m)
        order = _order(data)
        if order is None or (self._profile == "mmappickle" and order == "F" and data.ndim > 1):
            data, order = np.ascontiguousarray(data), "C"
        mask = np.asfortranarray(mask) if order == "F" else np.ascontiguousarray(mask)
        mask = mask.view(np.uint8) if mask.dtype == np.bool_ else mask.astype(np.uint8)
        fill = b""
        if getattr(m, "_fill_value", None) is not None:
            fill = np.asarray(m._fill_value, dtype=data.dtype).reshape(()).tobytes()  # type: ignore[attr-defined]
        header = {"dtype": data.dtype.str, "shape": list(data.shape), "order": order}
        _lib.put_masked(h, k, header, data.ctypes.data if data.nbytes else None, data.nbytes,
                        mask.ctypes.data if mask.nbytes else None, mask.nbytes, fill)

    def __delitem__(self, k: str) -> None:
        _check_key(k)
        self._require_writable()
        _lib.delete(self._handle(), [k])

    def lazy(self, k: str) -> LocalLazyArray:
        """The array under k as an array-like that travels by reference:
        shape, dtype, ndim, indexing (numpy's, copying out of a read-only
        mapping of exactly its bytes) and __array__, pickled as the file's
        path, the key and the entry's identity, never the data (m[k], a
        numpy.memmap, pickles by value, as numpy's arrays do). For
        dask.array.from_array on dask.distributed. In another process it maps
        the file on first read, after checking that k still describes the
        same entry: if k was replaced or deleted, or the file vacuumed, it
        raises FormatError (or FileNotFoundError) instead of reading other
        bytes. A masked array or another value raises TypeError; a missing
        key KeyError. Pickling it needs a file opened by path."""
        _check_key(k)
        return LocalLazyArray._of(self, k)


def _reopen(path: str, readonly: bool, profile: Literal["portable", "mmappickle"], align: int, trusted: bool) -> mmapdict:
    return mmapdict(path, readonly, profile=profile, align=align, trusted=trusted)
