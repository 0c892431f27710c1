"""Writes the committed seed corpora of convert/fuzz_test.go (run from convert/):

    /usr/bin/python3 testdata/fuzz/gen_seeds.py

Small numpy- and h5py-made files, each as a corpus entry of FuzzNpz
(testdata/fuzz/FuzzNpz/, arguments: the archive, the mmappickle profile) or
FuzzHDF5 (testdata/fuzz/FuzzHDF5/, argument: the file). The fuzz targets add
more seeds at test time (archives written by convert itself from the compat
reference files); these are the ones only numpy and h5py write.
"""
import io
import os
import tempfile
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def golit(b):
    out = []
    for c in b:
        if 32 <= c < 127 and c not in (0x22, 0x5C):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return '[]byte("%s")' % "".join(out)


def entry(target, name, data, *extra):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write("go test fuzz v1\n" + golit(data) + "\n")
        for e in extra:
            f.write(e + "\n")


def arrays():
    return {
        "a": np.arange(6, dtype="<i4").reshape(2, 3),
        "f": np.asfortranarray(np.arange(6, dtype="<f8").reshape(3, 2)),
        "s": np.array(True),
        "e": np.zeros((0,), ">u2"),
        "u": np.array(["ab", "c"], dtype="<U2"),
        "c": np.array([1 + 2j], dtype="<c8"),
    }


def npz(save, **kw):
    b = io.BytesIO()
    save(b, **kw)
    return b.getvalue()


def gen_npz():
    entry("FuzzNpz", "numpy-savez", npz(np.savez, **arrays()), "bool(false)")
    entry("FuzzNpz", "numpy-savez-mmappickle", npz(np.savez, **arrays()), "bool(true)")
    entry("FuzzNpz", "numpy-savez-compressed", npz(np.savez_compressed, **arrays()), "bool(false)")
    entry("FuzzNpz", "numpy-savez-compressed-mmappickle", npz(np.savez_compressed, **arrays()), "bool(true)")
    # Refusals: an object array, a structured dtype, a member that is not
    # .npy, a bzip2 member.
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, a in [("obj", np.array([None, 1], dtype=object)), ("rec", np.zeros(2, dtype=[("x", "<i4")])), ("ok", np.arange(3))]:
            m = io.BytesIO()
            np.save(m, a, allow_pickle=True)
            z.writestr(name + ".npy", m.getvalue())
        z.writestr("notes.txt", b"hello")
        m = io.BytesIO()
        np.save(m, np.arange(4, dtype="<i2"))
        z.writestr("bz.npy", m.getvalue(), compress_type=zipfile.ZIP_BZIP2)
    entry("FuzzNpz", "refusals", b.getvalue(), "bool(false)")


def gen_npy():
    from numpy.lib import format as npf
    cases = [
        ("v1-f8-2d", np.zeros((2, 3)), (1, 0)),
        ("v1-fortran", np.asfortranarray(np.zeros((2, 3), ">i2")), (1, 0)),
        ("v1-scalar-bool", np.array(True), (1, 0)),
        ("v1-datetime", np.zeros(2, "M8[ms]"), (1, 0)),
        ("v1-unicode", np.array(["abc"]), (1, 0)),
        ("v2-empty", np.zeros((0, 4), "<c16"), (2, 0)),
        ("v3-bytes", np.array([b"xy"]), (3, 0)),
        ("v1-structured", np.zeros(1, dtype=[("a", "<i4"), ("b", "S3")]), (1, 0)),
        ("v1-subarray", np.zeros(1, dtype=("<f8", (2,))), (1, 0)),
        ("v1-object", np.array([None]), (1, 0)),
    ]
    for name, a, version in cases:
        b = io.BytesIO()
        npf.write_array(b, a, version=version, allow_pickle=True)
        entry("FuzzNpyHeader", name, b.getvalue())


def gen_h5():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.h5")
        with h5py.File(p, "w") as f:
            f.attrs["title"] = "t"
            f.attrs["n"] = 3
            ds = f.create_dataset("a", data=np.arange(6, dtype="<i4").reshape(2, 3))
            ds.attrs["v"] = [1.5, 2.5]
            f.create_dataset("be", data=np.arange(3, dtype=">f8"))
            f.create_dataset("s", data=np.float64(2.5))
            f.create_dataset("b", data=np.array([True, False]))
            f.create_dataset("str", data=np.array([b"ab", b"c"], dtype="S2"))
        entry("FuzzHDF5", "h5py-contiguous", open(p, "rb").read())
        with h5py.File(p, "w") as f:
            g = f.create_group("g")
            g.create_dataset("z", data=np.arange(40, dtype="<i8").reshape(20, 2), chunks=(5, 2), compression="gzip", shuffle=True)
            g.create_dataset("c", data=np.array([1 + 2j, 3], dtype="<c16"), chunks=(1,), fletcher32=True)
            f["soft"] = h5py.SoftLink("/g")
            f["hard"] = g["z"]
        entry("FuzzHDF5", "h5py-chunked", open(p, "rb").read())
        with h5py.File(p, "w", libver="latest") as f:
            f.create_dataset("x", data=np.arange(4, dtype="<u2"))
            f.create_group("e").attrs["when"] = np.arange(2)
            f.create_dataset("d", data=np.arange(2).astype("M8[D]").astype(h5py.opaque_dtype(np.dtype("M8[D]"))))
        entry("FuzzHDF5", "h5py-latest", open(p, "rb").read())
        with h5py.File(p, "w") as f:
            ok = f.create_dataset("ok", data=np.arange(2, dtype="i1"))
            f.create_dataset("vlen", data=["a", "bb"], dtype=h5py.string_dtype())
            f.create_dataset("compound", data=np.zeros(1, dtype=[("a", "i4"), ("b", "f8")]))
            r = f.create_dataset("ref", (1,), dtype=h5py.ref_dtype)
            r[0] = ok.ref
            f.create_dataset("empty", data=h5py.Empty("f4"))
        entry("FuzzHDF5", "h5py-refusals", open(p, "rb").read())


if __name__ == "__main__":
    gen_npy()
    gen_npz()
    gen_h5()
