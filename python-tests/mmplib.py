"""ctypes binding of libmmp.so for the tests (numpy and the standard library
only). example_ctypes.py is the short version shown in the README."""
import ctypes
import json

import numpy as np


class MMPError(Exception):
    pass


class Lib:
    """libmmp.so with every function's argument and result types declared.

    Strings come back as c_void_p (not c_char_p, which would copy and lose
    the pointer) so that they can be given back to mmp_free."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        i64, cp, vp = ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p
        sigs = {
            "mmp_open": (i64, [cp, ctypes.c_int]),
            "mmp_close": (ctypes.c_int, [i64]),
            "mmp_keys_json": (vp, [i64]),
            "mmp_entry_json": (vp, [i64, cp]),
            "mmp_array_data": (vp, [i64, cp, ctypes.POINTER(i64)]),
            "mmp_masked_data": (vp, [i64, cp, ctypes.c_int, ctypes.POINTER(i64)]),
            "mmp_convert": (ctypes.c_int, [cp, cp, cp]),
            "mmp_last_error": (vp, []),
            "mmp_free": (None, [vp]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.lib = lib

    def take_string(self, p):
        """The NUL-terminated string at p as str, freeing it (None for NULL)."""
        if not p:
            return None
        try:
            return ctypes.string_at(p).decode("utf-8")
        finally:
            self.lib.mmp_free(p)

    def last_error(self):
        return self.take_string(self.lib.mmp_last_error())

    def error(self, what):
        return MMPError(f"{what}: {self.last_error()}")

    # Convenience wrappers raising MMPError.

    def open(self, path, writable=False):
        h = self.lib.mmp_open(str(path).encode(), 1 if writable else 0)
        if h <= 0:
            raise self.error(f"mmp_open({path})")
        return h

    def close(self, h):
        if self.lib.mmp_close(h) != 0:
            raise self.error(f"mmp_close({h})")

    def keys(self, h):
        s = self.take_string(self.lib.mmp_keys_json(h))
        if s is None:
            raise self.error("mmp_keys_json")
        return json.loads(s)

    def entry_text(self, h, key):
        s = self.take_string(self.lib.mmp_entry_json(h, key.encode()))
        if s is None:
            raise self.error(f"mmp_entry_json({key!r})")
        return s

    def entry(self, h, key):
        return json.loads(self.entry_text(h, key))

    def data(self, h, key, which=None):
        """(address, nbytes) of an array's bytes (which: None for a plain
        array, 0 or 1 for a masked array's data or mask)."""
        n = ctypes.c_int64(-1)
        if which is None:
            p = self.lib.mmp_array_data(h, key.encode(), ctypes.byref(n))
        else:
            p = self.lib.mmp_masked_data(h, key.encode(), which, ctypes.byref(n))
        if not p:
            raise self.error(f"mmp_array_data({key!r})")
        return p, n.value

    def array(self, h, key, writable=False):
        """A numpy array sharing memory with the file's mapping."""
        e = self.entry(h, key)
        if e["kind"] == "array":
            return as_numpy(*self.data(h, key), e, writable)
        if e["kind"] == "masked":
            data = as_numpy(*self.data(h, key, 0), e["data"], writable)
            mask = as_numpy(*self.data(h, key, 1), e["mask"], writable)
            return np.ma.MaskedArray(data, mask, copy=False)
        raise MMPError(f"key {key!r} is not an array: {e}")

    def convert(self, src, dst, **options):
        rc = self.lib.mmp_convert(str(src).encode(), str(dst).encode(), json.dumps(options).encode())
        if rc != 0:
            raise self.error(f"mmp_convert({src}, {dst}) = {rc}")


def as_numpy(addr, nbytes, info, writable):
    """Wraps nbytes at addr as the array info (an mmp_entry_json array)
    describes; read-only unless writable (a read-only handle's mapping
    faults on writes)."""
    dtype = np.dtype(info["dtype"])
    assert nbytes == info["nbytes"], (nbytes, info)
    buf = (ctypes.c_char * nbytes).from_address(addr)
    a = np.ndarray(tuple(info["shape"]), dtype=dtype, buffer=buf, order=info["order"])
    if not writable:
        a.flags.writeable = False
    return a
