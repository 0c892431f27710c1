"""Builds and checks the .npy/.npz inputs of convert/npy_test.go and npz_test.go.

    python3 gen.py gen DIR     writes the files into DIR, prints their description (JSON)
    python3 gen.py check       reads a JSON list of checks on stdin, loads each file
                               with numpy and compares it with the array it came from

The arrays are deterministic, so check rebuilds the originals instead of
reading them back. A description gives dtype.str, shape, fortran order
(numpy's isfortran: Fortran- and not C-contiguous) and the sha256 of the raw
bytes in storage order and in C order.
"""
import hashlib
import json
import sys
import zipfile

import numpy as np


def arrays():
    rng = np.random.default_rng(1234)
    a = {}
    for t in ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]:
        a["num_" + t] = (rng.standard_normal(30) * 100).astype("<" + t if t[-1] != "1" else t).reshape(5, 6)
    a["num_g"] = np.arange(7, dtype=np.longdouble) / 3  # <f16 on x86-64
    a["be_i4"] = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    a["be_f8"] = np.linspace(-1, 1, 10).astype(">f8")
    a["be_c16"] = (np.arange(4) + 1j * np.arange(4)).astype(">c16")
    a["be_u2"] = np.arange(9, dtype=">u2").reshape(3, 3)
    a["bool"] = (rng.integers(0, 2, 24) == 1).reshape(2, 3, 4)
    a["str_U3"] = np.array([["abc", "d", "\u00e9\u20ac"], ["x", "", "zzz"]], dtype="<U3")
    a["bytes_S2"] = np.array([b"ab", b"c", b""], dtype="|S2")
    a["dt_M8D"] = np.array(["2020-01-01", "1970-01-02", "NaT"], dtype="<M8[D]")
    a["td_m8s"] = np.array([1, -5, 86400], dtype="<m8[s]")
    a["scalar"] = np.array(3.25)
    a["empty"] = np.zeros((0, 3), dtype="<f4")
    a["fortran2"] = np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4))
    a["fortran3"] = np.asfortranarray(np.arange(2 * 3 * 5, dtype="<i2").reshape(2, 3, 5))
    a["fortran_be"] = np.asfortranarray(np.arange(6, dtype=">i8").reshape(2, 3))
    a["big"] = rng.standard_normal((1024, 4096)).astype("<f4")  # 16 MiB
    return a


def members():
    """The members of stored.npz and compressed.npz, in archive order."""
    rng = np.random.default_rng(99)
    walk = np.cumsum(rng.integers(-3, 4, 3 * 1024 * 1024)).astype("<f4") / 256
    return {
        "first": np.arange(12, dtype="<f8").reshape(3, 4),
        "large": walk.reshape(1024, 3072),  # 12 MiB, compressible
        "fort": np.asfortranarray(np.arange(35, dtype="<i4").reshape(5, 7)),
        "fbig": np.asfortranarray(rng.standard_normal((700, 900))),  # 5 MiB, Fortran
        "names": np.array(["a", "bc", "def"], dtype="<U3"),
        "zero": np.array(7, dtype=">i2"),
        "none": np.zeros((2, 0), dtype="<c8"),
        "sub/dir.x": np.array([True, False]),
    }


def fortran(x):
    return bool(x.flags.f_contiguous and not x.flags.c_contiguous)


def describe(x):
    order = "F" if fortran(x) else "C"
    return {
        "dtype": x.dtype.str,
        "shape": list(x.shape),
        "fortran": fortran(x),
        "sha": hashlib.sha256(x.tobytes(order=order)).hexdigest(),
        "sha_c": hashlib.sha256(x.tobytes(order="C")).hexdigest(),
    }


def gen(d):
    desc = {"npy": {}, "npz": {}}
    for k, x in arrays().items():
        np.save(f"{d}/{k}.npy", x)
        desc["npy"][k] = describe(x)
    m = members()
    np.savez(f"{d}/stored.npz", **m)
    np.savez_compressed(f"{d}/compressed.npz", **m)
    desc["npz"] = {k: describe(x) for k, x in m.items()}
    # Refused inputs.
    np.save(f"{d}/object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.save(f"{d}/structured.npy", np.zeros(3, dtype=[("a", "<i4"), ("o", "O")]), allow_pickle=True)
    ok = {"first": m["first"], "names": m["names"]}
    for name, save in [("mixed_stored.npz", np.savez), ("mixed_compressed.npz", np.savez_compressed)]:
        save(f"{d}/{name}", first=m["first"], obj=np.array([{}, 1], dtype=object),
             rec=np.zeros(2, dtype=[("x", "<i2"), ("o", "O")]), names=m["names"])
        with zipfile.ZipFile(f"{d}/{name}", "a") as z:
            z.writestr("README.txt", "not an array")
    desc["mixed"] = {k: describe(x) for k, x in ok.items()}
    json.dump(desc, sys.stdout)


def check():
    """Each check: {"path", "members": [keys in order], "expect": {key: {dtype,
    shape, fortran, sha, "name": the original array's name (optional)}}}."""
    orig = {}
    orig.update(arrays())
    orig.update(members())
    problems = []
    for c in json.load(sys.stdin):
        path = c["path"]
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                if list(z.files) != c["members"]:
                    problems.append(f"{path}: members {z.files}, want {c['members']}")
                    continue
                got = {k: z[k] for k in z.files}
        else:
            got = {c["members"][0]: np.load(path, allow_pickle=False)}
        for k, x in got.items():
            e = c["expect"][k]
            where = f"{path}: {k}"
            d = describe(x)
            for field in ["dtype", "shape", "fortran", "sha"]:
                if d[field] != e[field]:
                    problems.append(f"{where}: {field} {d[field]}, want {e[field]}")
            if "name" in e:
                w = orig[e["name"]]
                if not np.array_equal(x, w, equal_nan=x.dtype.kind in "fcmM"):
                    problems.append(f"{where}: values differ from {e['name']}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    else:
        check()
