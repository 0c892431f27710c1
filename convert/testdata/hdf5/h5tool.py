"""Test helper for convert/hdf5_test.go (run with Debian's /usr/bin/python3 + h5py).

    h5tool.py gen DIR          write DIR/good.h5 and DIR/bad.h5, print describe(good.h5)
    h5tool.py describe FILE    print the datasets and attributes of FILE as h5py reads them
    h5tool.py compare A B      print the differences between A and B (and B's chunked datasets)

JSON on stdout. describe gives, in h5py's visit order (names in order, depth
first), every dataset's dtype.str, shape, sha256 of tobytes() and chunks, and
every object's attributes: kind (str, int, float, bool, complex, bytes),
dtype.str (None for str), shape (None for a Python str) and flat values.
"""
import hashlib
import json
import sys

import h5py
import numpy as np


def gen(d):
    rng = np.random.default_rng(3)
    # A user block moves every dataset's data (contiguous ones are copied
    # from the offset libhdf5 gives).
    with h5py.File(f"{d}/good.h5", "w", userblock_size=512) as f:
        f.attrs["title"] = "héllo wörld"
        f.attrs["count"] = 42
        f.attrs["scale"] = 2.5
        f.attrs["floats"] = [1.0, 2.5, -3.25]
        f.attrs["matrix"] = np.array([[1.5, 2.0], [3.0, 4.25]])
        f.attrs["flag"] = True
        f.attrs["names"] = ["a", "bc"]
        f.create_dataset("f4_2d", data=rng.standard_normal((50, 30)).astype("f4"))
        g = f.create_group("grp")
        g.attrs["units"] = "m"
        g.create_dataset("i8_gzip", data=rng.integers(-(2**62), 2**62, (1000, 7)),
                         chunks=(100, 7), compression="gzip", shuffle=True)
        s = g.create_group("sub")
        x = s.create_dataset("be_i4", data=np.arange(-8, 9, dtype=">i4"))
        x.attrs["ints"] = np.arange(3)
        f.create_dataset("u1", data=np.arange(256, dtype="u1"))
        f.create_dataset("bools", data=np.array([True, False, True, True, False]))
        f.create_dataset("strs", data=np.array([b"a", b"hello", b"xyz"], dtype="S5"))
        f.create_dataset("scalar", data=np.float64(3.14))
        f.create_dataset("empty", data=np.zeros((0,), "f4"))
        f.create_dataset("complex", data=np.array([1 + 2j, -3.5j, 4, 0], dtype="c16"))
        f.create_dataset("c8_be", data=np.array([1 + 2j, 3], dtype=">c8"))
        f.create_dataset("f2", data=np.array([0.5, -2, 65504], dtype="f2"))
        f.create_dataset("dates", data=np.arange(3).astype("M8[D]").astype(h5py.opaque_dtype(np.dtype("M8[D]"))))
        # About 8 MiB, chunked: crosses several copy blocks.
        g.create_dataset("big3d", data=rng.standard_normal((64, 128, 128)), chunks=(8, 64, 64))
        f["soft"] = h5py.SoftLink("/grp/sub")
        # Chunked with deflate and shuffle: decoded in Go on every core
        # (hdf5_chunks.go); chunks cut at the edges, unwritten chunks (the
        # fill value), and pipelines that go through libhdf5 instead.
        flt = f.create_group("filters")
        flt.create_dataset("gzip_shuffle_edges", data=rng.integers(-30000, 30000, (37, 29, 5)).astype(">i2"),
                           chunks=(8, 7, 3), compression="gzip", shuffle=True)
        flt.create_dataset("gzip_f8", data=np.cumsum(rng.standard_normal(1000)), chunks=(64,), compression="gzip", compression_opts=9)
        flt.create_dataset("shuffle_u4", data=rng.integers(0, 2**32, (300, 11), dtype="u4"), chunks=(50, 4), shuffle=True)
        fill = flt.create_dataset("gzip_fill", (100, 100), dtype="f4", chunks=(10, 10), compression="gzip", fillvalue=7.5)
        fill[0:15, 0:25] = rng.standard_normal((15, 25))
        flt.create_dataset("gzip_fletcher", data=np.arange(500, dtype="i4"), chunks=(50,), compression="gzip", fletcher32=True)
        flt.create_dataset("gzip_c16", data=rng.standard_normal((40, 3)) + 1j * rng.standard_normal((40, 3)), chunks=(7, 3), compression="gzip", shuffle=True)
        flt.create_dataset("gzip_bool", data=rng.integers(0, 2, 1000).astype(bool), chunks=(128,), compression="gzip")
        flt.create_dataset("chunk_4mib", data=rng.standard_normal((2048, 1024)).astype("f4"), chunks=(1024, 1024), compression="gzip", compression_opts=1, shuffle=True)
        flt.create_dataset("chunk_over_4mib", data=rng.standard_normal((1100, 1025)).astype("f4"), chunks=(1100, 1025), compression="gzip", compression_opts=1)
    with h5py.File(f"{d}/bad.h5", "w") as f:
        f.attrs["good"] = 1
        ok = f.create_dataset("ok", data=np.arange(5, dtype="i4"))
        ok.attrs.create("cattr", np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]))
        ok.attrs["fine"] = "yes"
        f.create_dataset("vlen_str", data=["a", "bb"], dtype=h5py.string_dtype())
        r = f.create_dataset("ref", (1,), dtype=h5py.ref_dtype)
        r[0] = ok.ref
        f.create_dataset("compound", data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
        f.create_dataset("g" * 100 + "/" + "h" * 100 + "/" + "x" * 60, data=np.arange(2))
    print(json.dumps(describe(f"{d}/good.h5")))


def attr_desc(v):
    if isinstance(v, str):
        return {"kind": "str", "dtype": None, "shape": None, "value": [v]}
    a = np.asarray(v)
    if a.dtype.kind == "O":
        vals = [x.decode() if isinstance(x, bytes) else x for x in a.ravel().tolist()]
        return {"kind": "str", "dtype": None, "shape": list(a.shape), "value": vals}
    kind = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex", "S": "bytes"}[a.dtype.kind]
    vals = a.ravel().tolist()
    if kind == "complex":
        vals = [[z.real, z.imag] for z in vals]
    if kind == "bytes":
        vals = [x.decode("latin-1") for x in vals]
    return {"kind": kind, "dtype": a.dtype.str, "shape": list(a.shape), "value": vals}


def describe(name):
    out = {"datasets": [], "attrs": {}}
    with h5py.File(name, "r") as f:
        def attrs(path, obj):
            if len(obj.attrs):
                out["attrs"][path] = {k: attr_desc(obj.attrs[k]) for k in obj.attrs}

        def visit(n, obj):
            attrs("/" + n, obj)
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                out["datasets"].append({
                    "path": "/" + n, "dtype": obj.dtype.str, "shape": list(obj.shape),
                    "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                    "chunks": list(obj.chunks) if obj.chunks else None,
                })
        attrs("/", f)
        f.visititems(visit)
    return out


def compare(a, b):
    da, db = describe(a), describe(b)
    diffs = []
    pa = {d["path"]: d for d in da["datasets"]}
    pb = {d["path"]: d for d in db["datasets"]}
    for p in sorted(set(pa) | set(pb)):
        x, y = pa.get(p), pb.get(p)
        if x is None or y is None:
            diffs.append(f"dataset {p}: only in {'second' if x is None else 'first'} file")
            continue
        for k in ("dtype", "shape", "sha256"):
            if x[k] != y[k]:
                diffs.append(f"dataset {p}: {k} {x[k]} != {y[k]}")
    if da["attrs"] != db["attrs"]:
        diffs.append(f"attributes differ: {json.dumps(da['attrs'], sort_keys=True)} != {json.dumps(db['attrs'], sort_keys=True)}")
    chunked = [d["path"] for d in db["datasets"] if d["chunks"]]
    print(json.dumps({"diffs": diffs, "chunked": chunked, "second": db}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "describe":
        print(json.dumps(describe(sys.argv[2])))
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
