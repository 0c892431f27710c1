"""One measurement of the Python benchmarks of scripts/bench.sh, in the
interpreter that runs it (mmpbridge and joblib in the numpy1 environment,
mmappickle in the reference one). Prints the seconds it took, measured
inside the process (interpreter start excluded).

  bench_python.py write-small LIB N DIR     N arrays of 10 float64, one by one (joblib: one dump of the dict)
  bench_python.py open-read LIB FILE KEY    open a file and read one array's values
  bench_python.py write-big LIB MIB DIR     one MIB MiB float32 array, then fsync
  bench_python.py make-keys N FILE          (mmpbridge) a file of N small arrays, mmappickle's encoding

LIB is mmpbridge, mmappickle, joblib or numpy (np.save).
"""
import os
import sys
import time

import numpy as np


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_small(lib, n, d):
    __import__(lib)
    arrays = [np.full(10, i, dtype=np.float64) for i in range(n)]
    path = os.path.join(d, f"small-{lib}.pkl")
    if os.path.exists(path):
        os.remove(path)
    t = time.perf_counter()
    if lib == "joblib":
        import joblib
        joblib.dump({f"a{i}": a for i, a in enumerate(arrays)}, path)
    else:
        mod = __import__(lib)
        m = mod.mmapdict(path)
        for i, a in enumerate(arrays):
            m[f"a{i}"] = a
        del m
    return time.perf_counter() - t


def open_read(lib, path, key):
    mod = __import__(lib)  # imported before the clock starts
    t = time.perf_counter()
    if lib == "joblib":
        v = mod.load(path, mmap_mode="r")[key]
    else:
        m = mod.mmapdict(path, True)
        v = m[key]
    s = float(np.asarray(v).sum())
    dt = time.perf_counter() - t
    assert s == float(np.full(10, int(key[1:]), dtype=np.float64).sum()), s
    return dt


def write_big(lib, mib, d):
    if lib not in ("numpy",):
        __import__(lib)
    a = np.random.default_rng(0).standard_normal(mib * 2**20 // 4, dtype=np.float32)
    os.sync()  # start from clean page cache: fsync then waits for this write only
    path = os.path.join(d, f"big-{lib}.bin")
    if os.path.exists(path):
        os.remove(path)
    t = time.perf_counter()
    if lib == "numpy":
        np.save(path, a)
        path += ".npy"
    elif lib == "joblib":
        import joblib
        joblib.dump({"a": a}, path)
    else:
        m = __import__(lib).mmapdict(path)
        m["a"] = a
        del m
    fsync(path)
    dt = time.perf_counter() - t
    os.remove(path)
    return dt


def make_keys(n, path):
    import mmpbridge
    if os.path.exists(path):
        os.remove(path)
    with mmpbridge.mmapdict(path, profile="mmappickle", align=1) as m:
        for i in range(n):
            m[f"a{i}"] = np.full(10, i, dtype=np.float64)
    return 0.0


def main(argv):
    cmd = argv[0]
    if cmd == "write-small":
        dt = write_small(argv[1], int(argv[2]), argv[3])
    elif cmd == "open-read":
        dt = open_read(argv[1], argv[2], argv[3])
    elif cmd == "write-big":
        dt = write_big(argv[1], int(argv[2]), argv[3])
    elif cmd == "make-keys":
        dt = make_keys(int(argv[1]), argv[2])
    else:
        raise SystemExit(__doc__)
    print(f"{dt:.6f}")


if __name__ == "__main__":
    main(sys.argv[1:])
