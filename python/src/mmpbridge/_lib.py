"""libmmp, the Go core, through ctypes: one function per C export, errors
raised as the Python exception that fits (see libmmp's mmp_last_error_code).

Nothing here hands out a pointer into Go memory: strings and pickles are
copied out and freed at once; array data is mapped by numpy itself.

The Go runtime does not survive fork(): its threads stay behind, and a
forked child that calls into it can hang (golang/go#15538), which is what
multiprocessing's default start method on Linux does to every worker. So
in a forked child these functions go to a helper process of its own
(_server.py, started on first use), which loads libmmp afresh; EPOCH
tells handles opened before the fork from those opened after.

While the main thread is inside a ctypes call, Python's signal handlers
wait for it to return: Ctrl-C would wait for a long libmmp call (opening a
big or hostile file, verify, convert, vacuum). So the wrappers of calls
that can take long make it through _interruptible, which has libmmp watch
for SIGINT meanwhile: Ctrl-C cancels the call, which returns at once, and
raises KeyboardInterrupt.
"""
from __future__ import annotations

import ctypes
import io
import json
import os
import pickle
import select
import signal
import socket
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, TypeVar, Union, cast, overload

if TYPE_CHECKING:
    import numpy as np

_T = TypeVar("_T")
_Key = Union[str, bytes]  # a key or path as libmmp takes it (str encoded as UTF-8)
_Address = Union[int, bytes, ctypes.c_void_p, None]  # memory handed to libmmp: an address, bytes, a pointer, or none

_path = os.environ.get("MMPBRIDGE_LIBMMP") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "libmmp.so")
try:
    _lib = ctypes.CDLL(_path)
except OSError as e:  # pragma: no cover - a broken install
    raise ImportError(f"mmpbridge: cannot load its Go core {_path}: {e} (reinstall: pip install ./python)") from e

_i64, _i32, _int, _cp, _vp = ctypes.c_int64, ctypes.c_int32, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
_P64 = ctypes.POINTER(ctypes.c_int64)


def _sig(name: str, res: Any, *args: Any) -> Any:
    f = getattr(_lib, name)
    f.restype, f.argtypes = res, list(args)
    return f


# Strings and buffers come back as void* so that they can be freed.
_open_ex: Callable[[Optional[bytes], int, int, Optional[bytes]], int] = _sig("mmp_open_ex", _i64, _cp, _int, _int, _cp)
_close: Callable[[int], int] = _sig("mmp_close", _int, _i64)
_keys_json: Callable[[int], Optional[int]] = _sig("mmp_keys_json", _vp, _i64)
_has_key: Callable[[int, Optional[bytes]], int] = _sig("mmp_has_key", _int, _i64, _cp)
_len: Callable[[int], int] = _sig("mmp_len", _i64, _i64)
_entry_info: Callable[[int, Optional[bytes]], Optional[int]] = _sig("mmp_entry_info", _vp, _i64, _cp)
_entry_map: Callable[[int, Optional[bytes], Any], Optional[int]] = _sig("mmp_entry_map", _vp, _i64, _cp, ctypes.POINTER(_int))
_value_pickle: Callable[[int, Optional[bytes], int, Any], Optional[int]] = _sig("mmp_value_pickle", _vp, _i64, _cp, _int, _P64)
_put_array: Callable[[int, Optional[bytes], Optional[bytes], _Address, int], int] = _sig("mmp_put_array", _int, _i64, _cp, _cp, _vp, _i64)
_put_masked: Callable[[int, Optional[bytes], Optional[bytes], _Address, int, _Address, int, _Address, int], int] = _sig("mmp_put_masked", _int, _i64, _cp, _cp, _vp, _i64, _vp, _i64, _vp, _i64)
_reserve: Callable[[int, Optional[bytes], Optional[bytes], int, Any], int] = _sig("mmp_reserve", _i64, _i64, _cp, _cp, _int, _P64)
_slot_done: Callable[[int, int], int] = _sig("mmp_slot_done", _int, _i64, _int)
_put_pickle: Callable[[int, Optional[bytes], _Address, int], int] = _sig("mmp_put_pickle", _int, _i64, _cp, _vp, _i64)
_delete: Callable[[int, Optional[bytes]], int] = _sig("mmp_delete", _int, _i64, _cp)
_vacuum: Callable[[int], int] = _sig("mmp_vacuum", _int, _i64)
_fsck: Callable[[int], Optional[int]] = _sig("mmp_fsck", _vp, _i64)
_commit_number: Callable[[int, Any], int] = _sig("mmp_commit_number", _int, _i64, ctypes.POINTER(_i32))
_set_commit_number: Callable[[int, int], int] = _sig("mmp_set_commit_number", _int, _i64, _i32)
_verify: Callable[[Optional[bytes], Optional[bytes]], Optional[int]] = _sig("mmp_verify", _vp, _cp, _cp)
_convert: Callable[[Optional[bytes], Optional[bytes], Optional[bytes]], int] = _sig("mmp_convert", _int, _cp, _cp, _cp)
_version: Callable[[], int] = _sig("mmp_version", _vp)
_allowed: Callable[[], int] = _sig("mmp_allowed_globals", _vp)
_last_error: Callable[[], Optional[int]] = _sig("mmp_last_error", _vp)
_last_error_code: Callable[[], int] = _sig("mmp_last_error_code", _int)
_free: Callable[[_Address], None] = _sig("mmp_free", None, _vp)
_url_open: Callable[[Optional[bytes]], int] = _sig("mmp_remote_open", _i64, _cp)
_url_close: Callable[[int], int] = _sig("mmp_remote_close", _int, _i64)
_url_keys: Callable[[int], Optional[int]] = _sig("mmp_remote_keys_json", _vp, _i64)
_url_entry_info: Callable[[int, Optional[bytes]], Optional[int]] = _sig("mmp_remote_entry_info", _vp, _i64, _cp)
_url_value_pickle: Callable[[int, Optional[bytes], int, Any], Optional[int]] = _sig("mmp_remote_value_pickle", _vp, _i64, _cp, _int, _P64)
_url_read: Callable[[int, int, _Address, int], int] = _sig("mmp_remote_read", _int, _i64, _i64, _vp, _i64)
_url_stats: Callable[[int], Optional[int]] = _sig("mmp_remote_stats", _vp, _i64)
_call_token: Callable[[], int] = _sig("mmp_call_token", _i64)
_signal_token: Callable[[int], int] = _sig("mmp_signal_token", _i64, _int)
_use_token: Callable[[int], None] = _sig("mmp_use_token", None, _i64)
_cancel: Callable[[int], int] = _sig("mmp_cancel", _int, _i64)

# mmp_open_ex flags.
WRITABLE, CREATE, ALLOW_TORN = 1, 2, 4

# mmp_last_error_code values (cgo/api.go).
NO_FILE, NO_KEY, NOT_MMPKL, TORN, READ_ONLY, INVALID, NOT_PLAIN, UNSUPPORTED, LIMIT, FORMAT, NOT_ARRAY, BAD_HANDLE, INTERRUPTED = range(2, 15)


class Error(Exception):
    """Base of the errors libmmp reports that no builtin exception fits;
    code is its mmp_last_error_code."""

    code: int

    def __init__(self, msg: str, code: int) -> None:
        super().__init__(msg)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.code)


class FormatError(Error, ValueError):
    """The file is not a (sound) mmappickle file."""


class UnsupportedError(Error, TypeError):
    """A valid value the Go core cannot store or read."""


class NotPlainError(pickle.UnpicklingError):
    """The value's pickle would run more than plain-data constructors."""


@overload
def _take(p: int) -> str: ...
@overload
def _take(p: Optional[int]) -> Optional[str]: ...
def _take(p: Optional[int]) -> Optional[str]:
    """The string at p, freed."""
    if not p:
        return None
    try:
        return ctypes.string_at(p).decode("utf-8", "surrogateescape")
    finally:
        _free(p)


def error(key: Optional[str] = None) -> BaseException:
    """The calling thread's last libmmp error as a Python exception."""
    code = _last_error_code()
    msg = _take(_last_error()) or "libmmp failed without saying why"
    if code == NO_FILE:
        return FileNotFoundError(msg)
    if code == NO_KEY:
        return KeyError(key if key is not None else msg)
    if code == READ_ONLY:
        return io.UnsupportedOperation(msg)
    if code == NOT_PLAIN:
        return NotPlainError(msg + " (mmapdict(..., trusted=True) loads values that are not plain data: only for files you trust)")
    if code == UNSUPPORTED:
        return UnsupportedError(msg, code)
    if code in (NOT_MMPKL, TORN, FORMAT, LIMIT, NOT_ARRAY):
        return FormatError(msg, code)
    if code == INVALID:
        return ValueError(msg)
    if code == BAD_HANDLE:
        return ValueError("I/O operation on a closed mmapdict")
    if code == INTERRUPTED:
        return _Interrupted(msg)
    return OSError(msg)


class _Interrupted(KeyboardInterrupt):
    """A call cancelled by the SIGINT it saw (mmp_signal_token)."""


_wakeup = None  # (reading socket, writing socket) for signal.set_wakeup_fd
_poller = None  # a select.poll of its reading socket
_main_thread = threading.main_thread()


def _interruptible(fn: Callable[..., _T], *args: Any) -> _T:
    """fn(*args), where fn makes one libmmp call (its first) and raises its
    error, as a call that Ctrl-C interrupts.

    While the main thread is inside a ctypes call, Python's signal handlers
    wait for it to return; only its C-level handler runs, which writes the
    signal's number to the wakeup fd (signal.set_wakeup_fd). So for the
    call, the wakeup fd is one end of a socket pair whose other end libmmp
    watches (mmp_signal_token): SIGINT's byte there cancels the call, which
    returns within milliseconds, and Python's handler then raises
    KeyboardInterrupt as usual. Afterwards the previous wakeup fd is put
    back and given the signal numbers that came meanwhile (asyncio's loop
    reads them there). A SIGINT handler that does not raise gets the call
    made again. Other threads take no signals: there fn runs as it is.

    A new wrapper adopts it as value_pickle does:
    `return _interruptible(_pickle, _value_pickle, h, key, trusted)`, its
    libmmp call the first call into libmmp fn makes."""
    if threading.current_thread() is not _main_thread:
        return fn(*args)
    global _wakeup, _poller
    if _wakeup is None:
        try:
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
        except OSError:
            return fn(*args)
        _wakeup = r, w
        if hasattr(select, "poll"):
            _poller = select.poll()
            _poller.register(r, select.POLLIN)
    r, w = _wakeup
    try:
        old = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):  # signals not ours to watch (embedded)
        return fn(*args)
    if old == w.fileno():  # inside another _interruptible: it watches
        return fn(*args)
    came = bytearray()
    try:
        while True:
            _use_token(_signal_token(r.fileno()))
            try:
                return fn(*args)
            except _Interrupted:
                # Cancelled by SIGINT, whose handler (run by now) did not
                # raise: make the call again.
                _drain(r, came)
    finally:
        _use_token(0)  # unused if fn failed before its call (a bad argument)
        signal.set_wakeup_fd(old, warn_on_full_buffer=False)
        _drain(r, came)
        if came and old >= 0:
            try:
                os.write(old, came)
            except OSError:
                pass


def _drain(r: socket.socket, into: bytearray) -> None:
    """Moves what the socket r holds to into."""
    if _poller is not None and not _poller.poll(0):
        return  # nothing (the usual case: cheaper than a failed recv)
    while True:
        try:
            b = r.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        if not b:
            return
        into += b


def _check(status: int, key: Optional[str] = None) -> None:
    if status != 0:
        raise error(key)


def _b(s: _Key) -> bytes:
    return s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s


def open_ex(path: Optional[str], fd: int, flags: int, options: Optional[dict[str, Any]] = None) -> int:
    return _interruptible(_open_ex_call, path, fd, flags, options)


def _open_ex_call(path: Optional[str], fd: int, flags: int, options: Optional[dict[str, Any]]) -> int:
    h = _open_ex(_b(path) if path is not None else None, fd, flags, _b(json.dumps(options)) if options else None)
    if h == 0:
        raise error()
    return h


def close(h: int) -> None:
    _check(_close(h))


def _json(p: Optional[int], key: Optional[str] = None) -> Any:
    """The JSON string at p (freed), or the last error."""
    if not p:
        raise error(key)
    return json.loads(_take(p))


def _pickle(fn: Any, h: int, key: str, trusted: bool) -> bytes:
    """A value's pickle bytes from mmp_value_pickle or its remote twin."""
    n = ctypes.c_int64()
    p = fn(h, _b(key), 1 if trusted else 0, ctypes.byref(n))
    if not p:
        raise error(key)
    try:
        return ctypes.string_at(p, n.value)
    finally:
        _free(p)


def keys(h: int) -> list[str]:
    return _interruptible(_json_call, _keys_json, h)


def _json_call(fn: Any, h: int, key: Optional[str] = None) -> Any:
    """_json of fn(h) or fn(h, key)."""
    if key is None:
        return _json(fn(h))
    return _json(fn(h, _b(key)), key)


def has_key(h: int, key: str) -> bool:
    r = _has_key(h, _b(key))
    if r < 0:
        raise error(key)
    return r == 1


def length(h: int) -> int:
    n = _len(h)
    if n < 0:
        raise error()
    return n


def entry_info(h: int, key: str) -> dict[str, Any]:
    return _interruptible(_json_call, _entry_info, h, key)


def value_pickle(h: int, key: str, trusted: bool) -> bytes:
    return _interruptible(_pickle, _value_pickle, h, key, trusted)


def _entry_map_call(h: int, key: str) -> tuple[dict[str, Any], int]:
    fd = ctypes.c_int(-1)
    p = _entry_map(h, _b(key), ctypes.byref(fd))
    if not p:
        raise error(key)
    try:
        info = json.loads(_take(p))
    except BaseException:
        if fd.value >= 0:
            os.close(fd.value)
        raise
    return info, fd.value


def entry_map(h: int, key: str) -> tuple[dict[str, Any], int]:
    """(entry_info, fd): for an array or a masked array fd is a new
    descriptor of the very file the description is of (the caller closes
    it), to map it through; -1 for another value."""
    return _interruptible(_entry_map_call, h, key)


def _remote_entry_map(h: int, key: str) -> tuple[dict[str, Any], int]:
    # A forked child's helper process cannot hand it a descriptor: the
    # caller maps by name (and checks the file is the one described).
    return entry_info(h, key), -1




def put_array(h: int, key: str, header: dict[str, Any], address: _Address, nbytes: int) -> None:
    _interruptible(_check_call, _put_array, key, h, _b(key), _b(json.dumps(header)), address, nbytes)


def _check_call(fn: Any, key: Optional[str], *args: Any) -> None:
    """_check of fn(*args)."""
    _check(fn(*args), key)


def put_masked(h: int, key: str, header: dict[str, Any], data: _Address, nbytes: int, mask: _Address,
               mask_n: int, fill: bytes) -> None:
    fbuf = ctypes.create_string_buffer(fill, len(fill)) if fill else None
    _interruptible(_check_call, _put_masked, key, h, _b(key), _b(json.dumps(header)), data, nbytes, mask, mask_n,
                   ctypes.cast(fbuf, ctypes.c_void_p) if fbuf is not None else None, len(fill) if fill else 0)


def reserve(h: int, key: str, header: dict[str, Any], commit: bool) -> tuple[int, int]:
    off = ctypes.c_int64()
    slot = _reserve(h, _b(key), _b(json.dumps(header)), 1 if commit else 0, ctypes.byref(off))
    if slot < 0:
        raise error(key)
    return slot, off.value


def slot_done(slot: int, commit: bool) -> None:
    _check(_slot_done(slot, 1 if commit else 0))


def put_pickle(h: int, key: str, data: bytes) -> None:
    _interruptible(_check_call, _put_pickle, key, h, _b(key), data, len(data))


def delete(h: int, keys: list[str]) -> None:
    _interruptible(_check_call, _delete, keys[0] if len(keys) == 1 else None, h, _b(json.dumps(list(keys))))


def vacuum(h: int) -> None:
    _interruptible(_check_call, _vacuum, None, h)


def fsck(h: int) -> dict[str, Any]:
    return _interruptible(_json_call, _fsck, h)


def commit_number(h: int) -> int:
    n = _i32()
    _check(_commit_number(h, ctypes.byref(n)))
    return n.value


def set_commit_number(h: int, n: int) -> None:
    _check(_set_commit_number(h, n))


def verify(path: str, trust: Iterable[str]) -> dict[str, Any]:
    return _interruptible(_verify_call, path, trust)


def _verify_call(path: str, trust: Iterable[str]) -> Any:
    p = _verify(_b(path), _b(json.dumps(list(trust))) if trust else None)
    if not p:
        raise error()
    return json.loads(_take(p))


def convert(src: str, dst: str, options: dict[str, Any]) -> None:
    _interruptible(_convert_call, src, dst, options)


def _convert_call(src: str, dst: str, options: dict[str, Any]) -> None:
    status = _convert(_b(src), _b(dst), _b(json.dumps(options)))
    if status != 0:
        e = error()
        raise (ValueError(str(e)) if status == 2 else e)


def version() -> str:
    return _take(_version())


def allowed_globals() -> list[tuple[str, ...]]:
    return [tuple(g.rsplit(".", 1)) for g in json.loads(_take(_allowed()))]


def url_open(url: str) -> int:
    return _interruptible(_url_open_call, url)


def _url_open_call(url: str) -> int:
    h = _url_open(_b(url))
    if h == 0:
        raise error()
    return h


def url_close(h: int) -> None:
    _check(_url_close(h))


def url_keys(h: int) -> list[str]:
    return _interruptible(_json_call, _url_keys, h)


def url_entry_info(h: int, key: str) -> dict[str, Any]:
    return _interruptible(_json_call, _url_entry_info, h, key)


def url_value_pickle(h: int, key: str, trusted: bool) -> bytes:
    return _interruptible(_pickle, _url_value_pickle, h, key, trusted)


def url_read_into(h: int, offset: int, address: int, n: int) -> None:
    """Fills n bytes at address with the remote file's bytes at offset."""
    _interruptible(_check_call, _url_read, None, h, offset, address, n)


def url_read_bytes(h: int, offset: int, n: int) -> bytes:
    buf = ctypes.create_string_buffer(n)
    url_read_into(h, offset, ctypes.addressof(buf), n)
    return buf.raw


def url_stats(h: int) -> dict[str, int]:
    return cast("dict[str, int]", _json(_url_stats(h)))


def put_array_bytes(h: int, key: str, header: dict[str, Any], data: bytes) -> None:
    """put_array of data given as bytes (the helper process's form)."""
    buf = ctypes.create_string_buffer(data, len(data)) if data else None
    put_array(h, key, header, ctypes.cast(buf, ctypes.c_void_p) if buf is not None else None, len(data))


def put_masked_bytes(h: int, key: str, header: dict[str, Any], data: bytes, mask: bytes, fill: bytes) -> None:
    """put_masked of data and mask given as bytes (the helper's form)."""
    d = ctypes.create_string_buffer(data, len(data)) if data else None
    k = ctypes.create_string_buffer(mask, len(mask)) if mask else None
    put_masked(h, key, header, ctypes.cast(d, ctypes.c_void_p) if d is not None else None, len(data),
               ctypes.cast(k, ctypes.c_void_p) if k is not None else None, len(mask), fill)


# -- after fork: calls go to a helper process -----------------------------

import subprocess  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402

EPOCH = 0
REMOTE = False
REMOTE_CALLS = ["open_ex", "close", "keys", "has_key", "length", "entry_info", "value_pickle", "reserve",
                "slot_done", "put_pickle", "delete", "vacuum", "fsck", "commit_number", "set_commit_number",
                "verify", "convert", "put_array_bytes", "put_masked_bytes",
                "url_open", "url_close", "url_keys", "url_entry_info", "url_value_pickle", "url_read_bytes", "url_stats"]
_server = None
_server_lock = threading.Lock()


def _start_server() -> subprocess.Popen[bytes]:
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MMPBRIDGE_LIBMMP=_path,
               PYTHONPATH=os.pathsep.join([pkg_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.Popen([sys.executable, "-m", "mmpbridge._server"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, close_fds=True)


def _remote_call(name: str, args: tuple[Any, ...]) -> Any:
    global _server, _owed
    with _server_lock:
        if _server is None or _server.poll() is not None:
            _server, _owed = _start_server(), 0
            _inbuf.clear()
        # Answers of calls interrupted (Ctrl-C) while waiting for them: the
        # helper still sends them; read and drop them, or this call would
        # get another's answer.
        while _owed:
            _answer()
            _owed -= 1
        msg = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            assert _server.stdin is not None
            _server.stdin.write(struct.pack("<Q", len(msg)) + msg)
            _server.stdin.flush()
        except BaseException:
            # Part of a message may have gone: the stream is broken, and
            # so are the helper's handles.
            _server.kill()
            _server = None
            raise
        _owed += 1
        ok, value = _answer()
        _owed -= 1
    if not ok:
        raise value
    return value


_owed = 0  # answers the helper owes for calls sent
_inbuf = bytearray()  # what was read of the next answer


def _answer() -> Any:
    """The helper's next answer. Read with os.read into _inbuf, so that an
    exception a signal handler raises meanwhile loses no byte: the next
    call goes on reading where this one stopped."""
    assert _server is not None and _server.stdout is not None
    fd = _server.stdout.fileno()
    while True:
        if len(_inbuf) >= 8:
            n, = struct.unpack_from("<Q", _inbuf)
            if len(_inbuf) >= 8 + n:
                msg = bytes(_inbuf[8:8 + n])
                del _inbuf[:8 + n]
                return pickle.loads(msg)
        b = os.read(fd, 1 << 20)
        if not b:
            raise OSError("mmpbridge: the helper process of this forked process died")
        _inbuf.extend(b)


def _remote(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return _remote_call(name, args)
    call.__name__ = name
    return call


def _remote_open_ex(path: Optional[str], fd: int, flags: int, options: Optional[dict[str, Any]] = None) -> Any:
    if fd >= 0:  # the helper opens this process's descriptor through /proc
        path, fd = f"/proc/{os.getpid()}/fd/{fd}", -1
    return _remote_call("open_ex", (path, fd, flags, options))


def _remote_put_array(h: int, key: str, header: dict[str, Any], address: Any, nbytes: int) -> Any:
    return _remote_call("put_array_bytes", (h, key, header, ctypes.string_at(address, nbytes) if nbytes else b""))


def _remote_put_masked(h: int, key: str, header: dict[str, Any], data: Any, nbytes: int,
                       mask: Any, mask_n: int, fill: bytes) -> Any:
    return _remote_call("put_masked_bytes", (h, key, header, ctypes.string_at(data, nbytes) if nbytes else b"",
                                             ctypes.string_at(mask, mask_n) if mask_n else b"", fill))


def _remote_url_read_into(h: int, offset: int, address: int, n: int) -> None:
    data = _remote_call("url_read_bytes", (h, offset, n))
    ctypes.memmove(address, data, n)


def _after_fork_in_child() -> None:
    global EPOCH, REMOTE, _server, _server_lock, _wakeup, _poller, _owed
    EPOCH += 1
    REMOTE = True
    _server, _server_lock, _owed = None, threading.Lock(), 0
    _inbuf.clear()
    _wakeup = _poller = None  # the parent's sockets stay the parent's
    g = globals()
    for name in REMOTE_CALLS:
        if name not in ("put_array_bytes", "put_masked_bytes"):
            g[name] = _remote(name)
    g["put_array"], g["put_masked"] = _remote_put_array, _remote_put_masked
    g["open_ex"] = _remote_open_ex
    g["url_read_into"] = _remote_url_read_into
    g["entry_map"] = _remote_entry_map


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- plain pickles: converted by the Go core, no unpickler run ------------

_convert_plain: Callable[[Optional[bytes], int, Optional[bytes], Optional[bytes]], int] = _sig("mmp_convert_plain", _int, _cp, _int, _cp, _cp)


def convert_plain(path: Optional[str], fd: int, dst: str, options: Optional[dict[str, Any]] = None) -> None:
    """Writes the plain pickled dict at path (or behind descriptor fd, path
    then only its name) as a new mmappickle file dst, replaced only once
    whole; anything but plain data (as verify judges it) in a dict of str
    keys is refused, dst untouched."""
    _interruptible(_check_call, _convert_plain, None, _b(path) if path is not None else None, fd, _b(dst),
                   _b(json.dumps(options)) if options else None)


def _remote_convert_plain(path: Optional[str], fd: int, dst: str, options: Optional[dict[str, Any]] = None) -> Any:
    if fd >= 0:  # the helper reads this process's descriptor through /proc
        name = path if path is not None else f"<file descriptor {fd}>"
        return _remote_call("convert_plain_named", (f"/proc/{os.getpid()}/fd/{fd}", name, dst, options))
    return _remote_call("convert_plain", (path, fd, dst, options))


def convert_plain_named(path: str, name: str, dst: str, options: Optional[dict[str, Any]] = None) -> None:
    """convert_plain of path, errors naming name instead (the helper
    process's form of a descriptor)."""
    try:
        convert_plain(path, -1, dst, options)
    except Exception as e:  # noqa: BLE001 - re-raised as it was, renamed
        msg = str(e).replace(path, name)
        raise (type(e)(msg, e.code) if isinstance(e, Error) else type(e)(msg)) from None


def _convert_plain_after_fork() -> None:
    # After _after_fork_in_child, which made convert_plain a plain remote
    # call: a descriptor must become a /proc path first.
    globals()["convert_plain"] = _remote_convert_plain


REMOTE_CALLS.extend(["convert_plain", "convert_plain_named"])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_convert_plain_after_fork)


# How deep a dtype description may nest (libmmp's own bound is 16).
_MAX_DTYPE_DEPTH = 32


def np_dtype(spec: Any) -> np.dtype[Any]:
    """The numpy dtype libmmp describes (entry_info's "dtype"): dtype.str
    ("<f8") for a plain dtype; for a structured one an object {"names",
    "formats", "offsets", "itemsize", "aligned"} built with
    numpy.dtype(dict, align=aligned), so that overlapping fields, padding
    and nesting cannot be misread; [base, shape] for a subarray field. The
    dtype built is checked against every number of the description.
    Raises ValueError for anything else."""
    import numpy as np
    d: np.dtype[Any] = _np_dtype(np, spec, 0)
    return d


def _np_dtype(np: Any, spec: Any, depth: int) -> Any:
    if depth > _MAX_DTYPE_DEPTH:
        raise ValueError(f"dtype nested deeper than {_MAX_DTYPE_DEPTH}")
    if isinstance(spec, str):
        d = np.dtype(spec)
        # A string could also say "i4,i4" (fields) or "(2,)i4" (a subarray):
        # libmmp sends those as objects, never as text.
        if d.fields is not None or d.subdtype is not None or d.hasobject:
            raise ValueError(f"dtype {spec!r} is not a plain dtype")
        return d
    if isinstance(spec, list):
        if len(spec) != 2 or not isinstance(spec[1], list) or not spec[1] or \
                not all(type(n) is int and n > 0 for n in spec[1]):
            raise ValueError(f"subarray dtype: want [base, shape], got {spec!r:.200}")
        base = _np_dtype(np, spec[0], depth + 1)
        if base.subdtype is not None:
            raise ValueError("subarray of a subarray dtype")
        d = np.dtype((base, tuple(spec[1])))
        if d.subdtype is None or d.subdtype[0] != base or d.subdtype[1] != tuple(spec[1]):
            raise ValueError(f"subarray dtype {spec!r:.200} came out as {d}")
        return d
    if isinstance(spec, dict):
        names: Any
        formats: Any
        offsets: Any
        names, formats, offsets = spec.get("names"), spec.get("formats"), spec.get("offsets")
        itemsize, aligned = spec.get("itemsize"), spec.get("aligned", False)
        if set(spec) - {"names", "formats", "offsets", "itemsize", "aligned"} or \
                not all(isinstance(x, list) for x in (names, formats, offsets)) or \
                not len(names) == len(formats) == len(offsets) or not names or \
                not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names) or \
                not all(type(o) is int and o >= 0 for o in offsets) or \
                type(itemsize) is not int or itemsize < 1 or type(aligned) is not bool:
            raise ValueError(f"structured dtype: a malformed description {spec!r:.200}")
        fields = [_np_dtype(np, f, depth + 1) for f in formats]
        d = np.dtype({"names": names, "formats": fields, "offsets": offsets, "itemsize": itemsize}, align=aligned)
        if d.names != tuple(names) or d.itemsize != itemsize or \
                any(d.fields[n][0] != f or d.fields[n][1] != o for n, f, o in zip(names, fields, offsets)):
            raise ValueError(f"structured dtype {spec!r:.200} came out as {d}")
        return d
    raise ValueError(f"not a dtype description: {spec!r:.200}")


def array_layout(info: dict[str, Any], name: str, key: str) -> tuple[np.dtype[Any], tuple[int, ...], Literal["C", "F"], int, int]:
    """(dtype, shape, order, offset, nbytes) of an entry_info array, every
    part checked: the dtype numpy builds has libmmp's item size, and shape
    times item size is nbytes. Raises FormatError naming name and key."""
    try:
        dtype = np_dtype(info["dtype"])
        shape, order, offset, nbytes = info["shape"], info["order"], info["offset"], info["nbytes"]
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape) or \
                order not in ("C", "F") or type(offset) is not int or offset < 0 or \
                type(nbytes) is not int or nbytes < 0:
            raise ValueError(f"a malformed array description {info!r:.300}")
        want = info.get("itemsize")
        if want is not None and dtype.itemsize != want:
            raise ValueError(f"numpy's dtype {dtype} has {dtype.itemsize}-byte items, the file's {want}")
        n = dtype.itemsize
        for s in shape:
            n *= s
        if n != nbytes:
            raise ValueError(f"shape {tuple(shape)} of {dtype.itemsize}-byte items is {n} bytes, the entry holds {nbytes}")
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - anything numpy or the checks raise
        raise FormatError(f"{name}: key {key!r}: the array's dtype or shape cannot be used: {e}", FORMAT) from None
    return dtype, tuple(shape), order, offset, nbytes


# mmp_salvage (mmpbridge.salvage, _salvage.py).
_salvage: Callable[[Optional[bytes], Optional[bytes], Optional[bytes]], Optional[int]] = _sig("mmp_salvage", _vp, _cp, _cp, _cp)


def _salvage_call(src: str, dst: str, options: dict[str, Any]) -> Any:
    return _json(_salvage(_b(src), _b(dst), _b(json.dumps(options))))


def salvage(src: str, dst: str, options: dict[str, Any]) -> dict[str, Any]:
    return _interruptible(_salvage_call, src, dst, options)


REMOTE_CALLS.append("salvage")


# mmp_remote_read_ranges (remote selections, _ranges.py).
from typing import Any, List  # noqa: E402
_url_read_ranges = _sig("mmp_remote_read_ranges", _int, _i64, _P64, _i64, _vp, _i64)


def url_read_ranges(h: int, triples: Any, address: int, size: int) -> None:
    """Fills the size bytes at address with byte ranges of the remote file:
    triples is a C-contiguous int64 numpy array of (file offset, length,
    offset at address) rows, each read exactly (no block rounding, no
    readahead), a few requests at a time."""
    _interruptible(_check_call, _url_read_ranges, None, h, triples.ctypes.data_as(_P64), len(triples), address, size)


def url_read_ranges_bytes(h: int, triples: List[List[int]]) -> bytes:
    """The ranges of (file offset, length) pairs, one after another, as bytes
    (the helper process's form)."""
    import numpy as np
    t = np.array(triples, dtype=np.int64).reshape(-1, 2)
    rows = np.empty((len(t), 3), dtype=np.int64)
    rows[:, :2] = t
    rows[:, 2] = np.cumsum(t[:, 1]) - t[:, 1]
    n = int(t[:, 1].sum())
    buf = ctypes.create_string_buffer(max(n, 1))
    url_read_ranges(h, rows, ctypes.addressof(buf), n)
    return buf.raw[:n]


def _remote_url_read_ranges(h: int, triples: Any, address: int, size: int) -> None:
    data = _remote_call("url_read_ranges_bytes", (h, triples[:, :2].tolist()))
    at = 0
    for _, n, dst in triples.tolist():
        if dst < 0 or n < 0 or dst + n > size or at + n > len(data):
            raise ValueError(f"a range of {n} bytes at {dst} is outside the buffer of {size}")
        ctypes.memmove(address + dst, data[at:at + n], n)
        at += n


def _after_fork_ranges() -> None:
    globals()["url_read_ranges"] = _remote_url_read_ranges


REMOTE_CALLS.append("url_read_ranges_bytes")
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_ranges)
