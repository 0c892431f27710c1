"""usage: python3 example_ctypes.py LIBMMP FILE — list FILE's keys and map its arrays into numpy."""
import ctypes, json, sys
import numpy as np

lib = ctypes.CDLL(sys.argv[1])  # libmmp.so: go build -buildmode=c-shared -o libmmp.so ./cgo
lib.mmp_open.restype, lib.mmp_open.argtypes = ctypes.c_int64, [ctypes.c_char_p, ctypes.c_int]
lib.mmp_close.argtypes = [ctypes.c_int64]
for f in ("mmp_keys_json", "mmp_entry_json", "mmp_array_data", "mmp_last_error"):
    getattr(lib, f).restype = ctypes.c_void_p  # keep the pointer: strings go back to mmp_free
lib.mmp_keys_json.argtypes = [ctypes.c_int64]
lib.mmp_entry_json.argtypes = [ctypes.c_int64, ctypes.c_char_p]
lib.mmp_array_data.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]
lib.mmp_free.argtypes = [ctypes.c_void_p]

def take(p):  # a string returned by libmmp, freed
    s = ctypes.string_at(p).decode()
    lib.mmp_free(p)
    return s

h = lib.mmp_open(sys.argv[2].encode(), 0)  # 1: writable arrays, writes reach the file
if h == 0:
    sys.exit(take(lib.mmp_last_error()))
for key in json.loads(take(lib.mmp_keys_json(h))):
    entry = json.loads(take(lib.mmp_entry_json(h, key.encode())))  # as `mmpconv inspect --json`
    if entry["kind"] != "array":
        print(key, entry["kind"])
        continue
    n = ctypes.c_int64()
    addr = lib.mmp_array_data(h, key.encode(), ctypes.byref(n))  # no copy: inside the file's mapping
    buf = (ctypes.c_char * n.value).from_address(addr)
    a = np.ndarray(entry["shape"], entry["dtype"], buf, order=entry["order"])
    a.flags.writeable = False  # the handle is read-only
    print(key, a.dtype, a.shape, a.ravel()[:3])
    del a, buf  # views die before the mapping does
lib.mmp_close(h)
