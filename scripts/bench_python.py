"""One measurement of the Python benchmarks of scripts/bench.sh, in the
interpreter that runs it (mmpbridge and joblib in the numpy1 environment,
mmappickle in the reference one). Prints the seconds it took, measured
inside the process (interpreter start excluded).

  bench_python.py write-small LIB N DIR     N arrays of 10 float64, one by one (joblib: one dump of the dict)
  bench_python.py open-read LIB FILE KEY    open a file and read one array's values
  bench_python.py write-big LIB MIB DIR     one MIB MiB float32 array, then fsync
  bench_python.py make-keys N FILE          (mmpbridge) a file of N small arrays, mmappickle's encoding

LIB is mmpbridge, mmappickle, joblib or numpy (np.save).

The cube rows (issue 20): a float32 cube of MIB MiB, C order, shaped as a
hyperspectral scene (rows, 2048 columns, 256 bands), in one of six formats
(FMT: mmpbridge, h5py, zarr, numpy, safetensors, joblib), written to
DIR/cube-FMT.* and read back cold (see drop_cache):

  bench_python.py cube-write FMT MIB DIR    write it + fsync (the file is kept for the reads)
  bench_python.py cube-row FMT DIR          cold open + cube[i] (one row: a leading-axis slice)
  bench_python.py cube-band FMT DIR         cold open + cube[:, :, k] (one band)
  bench_python.py cube-dask FMT DIR         cold open + dask.distributed mean on a LocalCluster
                                            (2 worker processes, 1 thread each); prints
                                            seconds, the bytes the client sent the scheduler
                                            (the graph) and the bytes the workers received
  bench_python.py cube-rm FMT DIR           remove the files of FMT
"""
import os
import subprocess
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


# -- the cube rows ------------------------------------------------------

CUBE_COLS, CUBE_BANDS = 2048, 256
CUBE_FMTS = ("mmpbridge", "h5py", "zarr", "numpy", "safetensors", "joblib")
_EXT = {"mmpbridge": ".mmpkl", "h5py": ".h5", "zarr": ".zarr", "numpy": ".npy",
        "safetensors": ".safetensors", "joblib": ".joblib"}


def cube_shape(mib):
    rows = max(1, mib * 2**20 // (4 * CUBE_COLS * CUBE_BANDS))
    return (rows, CUBE_COLS, CUBE_BANDS)


def cube_path(fmt, d):
    if fmt not in _EXT:
        raise SystemExit(f"bench_python: unknown format {fmt!r} (one of {', '.join(CUBE_FMTS)})")
    return os.path.join(d, "cube-" + fmt + _EXT[fmt])


def _files(path):
    """Every file of a format's output (zarr: a directory of chunks)."""
    if not os.path.isdir(path):
        return [path]
    out = []
    for root, _, names in os.walk(path):
        out.extend(os.path.join(root, n) for n in names)
    return out


def _fsync_tree(path):
    """fsync every file of path, then the directories (zarr's chunk files
    and the entries naming them)."""
    for f in _files(path):
        fsync(f)
    if os.path.isdir(path):
        for root, _, _ in os.walk(path):
            fsync(root)
    fsync(os.path.dirname(os.path.abspath(path)))


def drop_cache(path):
    """Cold open: the page cache of exactly this output's files dropped
    (fsync, then posix_fadvise(POSIX_FADV_DONTNEED) on each file; the whole
    machine's cache is left alone). Returns the bytes still resident after,
    as mincore sees them through fincore(1), or -1 if fincore is missing."""
    files = _files(path)
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    try:
        res = 0
        for i in range(0, len(files), 500):
            out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", *files[i:i + 500]],
                                 capture_output=True, text=True, check=True).stdout
            res += sum(int(x) for x in out.split())
        return res
    except (OSError, subprocess.CalledProcessError):
        return -1


def _cold(path):
    res = drop_cache(path)
    if res > 0:
        print(f"bench_python: {res} bytes of {path} still cached after POSIX_FADV_DONTNEED", file=sys.stderr)


def _expect_path(d):
    return os.path.join(d, "cube-expect.json")


def cube_write(fmt, mib, d):
    import json
    shape = cube_shape(mib)
    mod = {"numpy": np}.get(fmt) or __import__(fmt)
    a = np.random.default_rng(0).standard_normal(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    path = cube_path(fmt, d)
    cube_rm(fmt, d)
    os.sync()  # start from clean page cache: fsync then waits for this write only
    t = time.perf_counter()
    if fmt == "mmpbridge":
        m = mod.mmapdict(path)
        m["cube"] = a
        del m
    elif fmt == "h5py":
        with mod.File(path, "w") as f:
            f.create_dataset("cube", data=a)  # contiguous: no chunks, no filter
    elif fmt == "zarr":
        z = mod.create_array(store=path, shape=shape, dtype=a.dtype)  # zarr v3's defaults: chunks, codecs
        z[...] = a
    elif fmt == "numpy":
        np.save(path, a)
    elif fmt == "safetensors":
        import safetensors.numpy
        safetensors.numpy.save_file({"cube": a}, path)
    elif fmt == "joblib":
        mod.dump({"cube": a}, path)
    _fsync_tree(path)
    dt = time.perf_counter() - t
    i, k = shape[0] // 2, shape[2] // 2
    with open(_expect_path(d), "w") as f:
        json.dump({"shape": shape, "row": i, "band": k, "row_sum": float(a[i].sum(dtype=np.float64)),
                   "band_sum": float(a[:, :, k].sum(dtype=np.float64)), "mean": float(a.mean(dtype=np.float64))}, f)
    if fmt == "zarr":
        z = mod.open_array(path, mode="r")
        codecs = [type(c).__name__ + (f"(level={c.level})" if hasattr(c, "level") else "")
                  for c in (*z.filters, z.serializer, *z.compressors) if c is not None]
        print(f"bench_python: zarr {mod.__version__}: chunks {z.chunks}, codecs {', '.join(codecs)}, "
              f"{sum(os.path.getsize(f) for f in _files(path))} bytes", file=sys.stderr)
    return dt


def cube_rm(fmt, d):
    import shutil
    path = cube_path(fmt, d)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    return 0.0


def _expect(d):
    import json
    with open(_expect_path(d)) as f:
        return json.load(f)


def _open(fmt, path):
    """The cube of path as the format's own reader opens it, and what keeps
    it open."""
    if fmt == "mmpbridge":
        import mmpbridge
        m = mmpbridge.mmapdict(path, readonly=True)
        return m["cube"], m
    if fmt == "h5py":
        import h5py
        f = h5py.File(path, "r")
        return f["cube"], f
    if fmt == "zarr":
        import zarr
        return zarr.open_array(path, mode="r"), None
    if fmt == "numpy":
        return np.load(path, mmap_mode="r"), None
    if fmt == "safetensors":
        from safetensors import safe_open
        f = safe_open(path, framework="np")
        return f.get_slice("cube"), f
    if fmt == "joblib":
        import joblib
        return joblib.load(path, mmap_mode="r")["cube"], None
    raise SystemExit(f"bench_python: unknown format {fmt!r}")


def cube_read(fmt, d, what):
    __import__({"numpy": "numpy", "safetensors": "safetensors"}.get(fmt, fmt))  # before the clock
    e = _expect(d)
    path = cube_path(fmt, d)
    _cold(path)
    t = time.perf_counter()
    c, keep = _open(fmt, path)
    if what == "row":
        v = np.array(c[e["row"]])  # a copy: memmaps are read here, not later
    else:
        v = np.array(c[:, :, e["band"]])
    dt = time.perf_counter() - t
    want = e["row_sum"] if what == "row" else e["band_sum"]
    assert v.dtype == np.float32 and np.isclose(v.sum(dtype=np.float64), want), (fmt, what, float(v.sum()), want)
    del c, keep
    return dt


def _st_rows(path, start, stop):
    """safetensors in a dask worker: its slice is no picklable array, so
    each task opens the file and reads its rows."""
    from safetensors import safe_open
    with safe_open(path, framework="np") as f:
        return f.get_slice("cube")[start:stop]


def _count_received(dask_worker=None):
    """Installed in each worker process: counts every byte its TCP comms
    read (the scheduler's messages with the tasks, peers' transfers) from
    now on, through distributed.comm.tcp.read_bytes_rw, which every frame
    read goes through."""
    import distributed.comm.tcp as tcp
    if not hasattr(tcp, "bench_received"):  # on the module: this function travels by value
        orig = tcp.read_bytes_rw

        async def counted(stream, n):
            tcp.bench_received += n
            return await orig(stream, n)
        tcp.bench_received = 0
        tcp.read_bytes_rw = counted
    return tcp.bench_received


def _received(dask_worker=None):
    import distributed.comm.tcp as tcp
    return tcp.bench_received


def cube_dask(fmt, d):
    import warnings

    import dask
    import dask.array as da
    import distributed
    __import__({"numpy": "numpy", "safetensors": "safetensors"}.get(fmt, fmt))
    e = _expect(d)
    shape = tuple(e["shape"])
    path = cube_path(fmt, d)
    rows = max(1, shape[0] // 16)  # 16 tasks (128 MiB each for 2 GiB)
    chunks = (rows, shape[1], shape[2])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.run(_count_received)
        base = sum(client.run(_received).values())
        comm = client.scheduler_comm.comm  # the client's own connection: what it sends the scheduler
        sent = [0]
        orig_write = comm.write

        async def counted_write(msg, *a, **k):
            n = await orig_write(msg, *a, **k)
            sent[0] += n or 0
            return n
        comm.write = counted_write
        _cold(path)
        t = time.perf_counter()
        c, keep = _open(fmt, path) if fmt not in ("mmpbridge", "safetensors") else (None, None)
        if fmt == "mmpbridge":
            import mmpbridge
            keep = mmpbridge.mmapdict(path, readonly=True)
            x = da.from_array(keep.lazy("cube"), chunks=chunks)
        elif fmt == "safetensors":
            parts = [da.from_delayed(dask.delayed(_st_rows)(path, s, min(s + rows, shape[0])),
                                     (min(s + rows, shape[0]) - s, *shape[1:]), dtype=np.float32)
                     for s in range(0, shape[0], rows)]
            x = da.concatenate(parts, axis=0)
        else:
            x = da.from_array(c, chunks=chunks)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sending large graph")  # the memmaps' graphs: what they say
            got = client.compute(x.mean(dtype=np.float64)).result()
        dt = time.perf_counter() - t
        received = sum(client.run(_received).values()) - base
        comm.write = orig_write
        del x, c, keep
    assert np.isclose(got, e["mean"]), (fmt, got, e["mean"])
    return f"{dt:.6f} {sent[0]} {received}"


def main(argv):
    cmd = argv[0]
    if cmd == "cube-dask":
        print(cube_dask(argv[1], argv[2]))
        return
    if cmd == "write-small":
        dt = write_small(argv[1], int(argv[2]), argv[3])
    elif cmd == "open-read":
        dt = open_read(argv[1], argv[2], argv[3])
    elif cmd == "write-big":
        dt = write_big(argv[1], int(argv[2]), argv[3])
    elif cmd == "make-keys":
        dt = make_keys(int(argv[1]), argv[2])
    elif cmd == "cube-write":
        dt = cube_write(argv[1], int(argv[2]), argv[3])
    elif cmd in ("cube-row", "cube-band"):
        dt = cube_read(argv[1], argv[2], cmd[5:])
    elif cmd == "cube-rm":
        dt = cube_rm(argv[1], argv[2])
    else:
        raise SystemExit(__doc__)
    print(f"{dt:.6f}")


if __name__ == "__main__":
    main(sys.argv[1:])
