"""Test helper for convert/hdf5_test.go (run with Debian's /usr/bin/python3 + h5py).

    h5tool.py gen DIR          write DIR/good.h5 and DIR/bad.h5, print describe(good.h5)
    h5tool.py describe FILE    print the datasets and attributes of FILE as h5py reads them
    h5tool.py compare A B      print the differences between A and B (and B's chunked datasets)
    h5tool.py genkinds DIR     write DIR/attrs.h5, vlen.h5, enum.h5, empty.h5, links.h5 (+ other.h5)
    h5tool.py kinds FILE       print what h5py sees of FILE's enums, Empty values, vlen strings,
                               stored attribute types and dataset layouts

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
        f.create_dataset("compound", data=np.array([(1, "x"), (2, "yy")], dtype=[("a", "i4"), ("s", h5py.string_dtype())]))
        f.create_dataset("g" * 100 + "/" + "h" * 100 + "/" + "x" * 60, data=np.arange(2))
    print(json.dumps(describe(f"{d}/good.h5")))


def genkinds(d):
    with h5py.File(f"{d}/attrs.h5", "w") as f:
        for o in (f, f.create_dataset("ds", data=np.arange(4, dtype="u2"))):
            o.attrs["i16"] = np.int16(-3)
            o.attrs["i16_arr"] = np.array([1, -2, 3], dtype="i2")
            o.attrs["f32"] = np.float32(1.5)
            o.attrs["fixed"] = np.bytes_(b"hello world")
            o.attrs.create("fixed_pad", np.array(b"ab", dtype="S11"))
            o.attrs["fixed_arr"] = np.array([b"a", b"bcd"], dtype="S4")
            o.attrs["vlen"] = "héllo"
            o.attrs["vlen_arr"] = ["x", "yz"]
            o.attrs["flag"] = True
            o.attrs["flags"] = np.array([True, False])
            o.attrs["z"] = np.complex64(1 - 2j)
            o.attrs["m"] = np.array([[1.5, 2], [3, 4.25]])
            o.attrs["be"] = np.array([1, 2], dtype=">i4")
            o.attrs["u64"] = np.uint64(2**64 - 1)
            o.attrs["f16"] = np.float16(0.5)
            o.attrs["empty"] = h5py.Empty("i4")
            o.attrs["empty_str"] = h5py.Empty(h5py.string_dtype())
            o.attrs["e0"] = np.zeros((0,), "f8")
    with h5py.File(f"{d}/vlen.h5", "w") as f:
        f.create_dataset("s", data=["a", "héllo", "", "日本語"], dtype=h5py.string_dtype())
        f.create_dataset("s2d", data=np.array([["ab", "c"], ["", "défg"]], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("scalar", data="one", dtype=h5py.string_dtype())
        f.create_dataset("none", shape=(0,), dtype=h5py.string_dtype())
        f.create_dataset("ascii", data=[b"x", b"yy"], dtype=h5py.string_dtype("ascii"))
        f.create_dataset("allempty", data=["", ""], dtype=h5py.string_dtype())
        f.create_dataset("chunked", data=[str(i) * (i % 7) for i in range(5000)], dtype=h5py.string_dtype(), chunks=(300,), compression="gzip")
        f.create_dataset("plain", data=np.arange(3))
    with h5py.File(f"{d}/badutf8.h5", "w") as f:
        f.create_dataset("ok", data=np.arange(3))
        f.create_dataset("bad", data=[b"ok", b"\xff\xfe"], dtype=h5py.string_dtype("ascii"))
    with h5py.File(f"{d}/enum.h5", "w") as f:
        f.create_dataset("color", data=np.array([0, 1, 2, 1], dtype="i1"), dtype=h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 2}, basetype="i1"))
        f.create_dataset("big", data=np.array([[7, 300]], dtype="u2"), dtype=h5py.enum_dtype({"LOW": 7, "HIGH": 300}, basetype=">u2"))
        f.create_dataset("neg", data=np.array([-5, 9], dtype="i8"), dtype=h5py.enum_dtype({"MINUS": -5, "NINE": 9}, basetype="i8"), chunks=(1,), compression="gzip")
        f.create_dataset("bools", data=np.array([True, False]))
    with h5py.File(f"{d}/empty.h5", "w") as f:
        f.create_dataset("e_f4", data=h5py.Empty("f4"))
        f.create_dataset("e_str", data=h5py.Empty(h5py.string_dtype()))
        f["e_f4"].attrs["note"] = "x"
        f.create_dataset("x", data=np.arange(3))
    with h5py.File(f"{d}/other.h5", "w") as f:
        f.create_dataset("y", data=np.arange(2))
    with h5py.File(f"{d}/links.h5", "w") as f:
        g = f.create_group("g")
        g.create_dataset("b", data=np.arange(5))
        f["a"] = h5py.SoftLink("/g/b")
        g["x"] = h5py.ExternalLink("other.h5", "/y")
        f["hard"] = g["b"]
        f["dangling"] = h5py.SoftLink("/nowhere")


def kinds(name):
    out = {"datasets": {}, "attrs": {}}
    with h5py.File(name, "r") as f:
        def attrs(path, obj):
            for k in obj.attrs:
                aid = obj.attrs.get_id(k)
                v = obj.attrs[k]
                t = aid.get_type()
                e = {"dtype": aid.dtype.str, "shape": None if aid.shape is None else list(aid.shape),
                     "class": t.get_class(), "vlen": bool(t.get_class() == h5py.h5t.STRING and t.is_variable_str()),
                     "empty": isinstance(v, h5py.Empty), "pytype": type(v).__name__}
                if not isinstance(v, h5py.Empty):
                    a = np.asarray(v)
                    e["value"] = repr(a.tolist()) if a.dtype.kind != "O" else repr([x.decode() if isinstance(x, bytes) else x for x in a.ravel().tolist()])
                out["attrs"][path + ":" + k] = e

        def visit(n, obj):
            attrs("/" + n, obj)
            if isinstance(obj, h5py.Dataset):
                enum = h5py.check_enum_dtype(obj.dtype)
                sd = h5py.check_string_dtype(obj.dtype)
                v = obj[()]
                out["datasets"]["/" + n] = {
                    "dtype": obj.dtype.str, "shape": None if obj.shape is None else list(obj.shape),
                    "enum": enum, "empty": isinstance(v, h5py.Empty),
                    "vlen": sd is not None and sd.length is None,
                    "chunks": list(obj.chunks) if obj.chunks else None, "compression": obj.compression,
                    "compression_opts": obj.compression_opts, "shuffle": obj.shuffle, "fletcher32": obj.fletcher32,
                    "value": None if isinstance(v, h5py.Empty) else repr(np.asarray(v).tolist() if not sd else [x.decode() for x in np.asarray(v).ravel().tolist()] if np.asarray(v).ndim else v.decode()),
                }
        attrs("", f)
        f.visititems(visit)
    return out


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
                    "layout": [obj.compression, obj.compression_opts, obj.shuffle, obj.fletcher32],
                })
        attrs("/", f)
        f.visititems(visit)
    return out


def compare(a, b, keep):
    da, db = describe(a), describe(b)
    diffs = []
    pa = {d["path"]: d for d in da["datasets"]}
    pb = {d["path"]: d for d in db["datasets"]}
    for p in sorted(set(pa) | set(pb)):
        x, y = pa.get(p), pb.get(p)
        if x is None or y is None:
            diffs.append(f"dataset {p}: only in {'second' if x is None else 'first'} file")
            continue
        for k in ("dtype", "shape", "sha256") + (("chunks", "layout") if keep else ()):
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
        compare(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "keep")
    elif cmd == "genkinds":
        genkinds(sys.argv[2])
    elif cmd == "kinds":
        print(json.dumps(kinds(sys.argv[2])))
    else:
        sys.exit(f"unknown command {cmd}")
