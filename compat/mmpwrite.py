"""A minimal mmappickle writer of our own, for tests: writes a new file whose
values are CPython's own protocol-4 pickles, post-processed the way
mmappickle 1.0.1 does (PROTO/FRAME/STOP removed, unused memo PUTs dropped,
the rest renumbered so that one pickle.load of the whole file sees no clash).
Run under any numpy, it records what that numpy's pickles look like.

usage: python3 mmpwrite.py OUT.mmpkl   (writes the cases of cases())
"""
import json
import hashlib
import pickle
import pickletools
import struct
import sys

import numpy as np


def dump_fix(obj, memo_start):
    p = pickle.dumps(obj, 4)
    ops = list(pickletools.genops(p))
    ends = [pos for _, _, pos in ops[1:]] + [len(p)]
    puts, gets, out = {}, set(), []
    memoize_count = 0
    for (op, arg, pos), end in zip(ops, ends):
        if op.name in ("FRAME", "STOP", "PROTO"):
            continue
        if op.name == "MEMOIZE":
            out.append(("put", memoize_count)); memoize_count += 1
        elif "PUT" in op.name:
            out.append(("put", arg))
        elif "GET" in op.name:
            gets.add(arg); out.append(("get", arg))
        else:
            out.append(("raw", p[pos:end]))
    new, idx, res = {}, memo_start, []
    for kind, arg in out:
        if kind == "put":
            if arg not in gets:
                continue
            new[arg] = idx
            res.append(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))
            idx += 1
        elif kind == "get":
            i = new[arg]
            res.append(b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i))
        else:
            res.append(arg)
    return b"".join(res), idx


def write(path, items):
    memo = 1
    body = b""
    for k, v in items:
        data, end = dump_fix(v, memo)
        key = k.encode()
        frame = b"\x8c" + bytes([len(key)]) + key + data + b"J" + struct.pack("<i", end) + b"0\x880"
        body += b"\x95" + struct.pack("<Q", len(frame)) + frame
        memo = max(memo, end)
    header = b"\x80\x04\x95" + struct.pack("<Q", 13) + b"J" + struct.pack("<i", 1) + b"0J" + struct.pack("<i", len(items)) + b"0("
    with open(path, "wb") as f:
        f.write(header + body + b"\x95" + struct.pack("<Q", 2) + b"d.")


def cases():
    return [
        ("f8", np.arange(6, dtype="<f8").reshape(2, 3)),
        ("f4F", np.asfortranarray(np.arange(12, dtype="<f4").reshape(3, 4))),
        (">i4", np.arange(5, dtype=">i4")),
        ("u1", np.arange(300, dtype="u1")),
        ("c16", np.array([1 + 2j, 3 - 4j])),
        ("b1", np.array([True, False, True])),
        ("U3", np.array(["ab", "xyz"])),
        ("S2", np.array([b"ab", b"c"])),
        ("M8", np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]")),
        ("m8", np.array([1, 2], dtype="timedelta64[ms]")),
        ("0d", np.array(2.5)),
        ("empty", np.zeros((3, 0), dtype="<i2")),
        ("masked", np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-1.0)),
        ("value", {"a": [1, 2.5, "x"], "b": (True, None)}),
    ]


def describe(v):
    if isinstance(v, np.ma.MaskedArray):
        return {"kind": "masked", "data": describe(np.asarray(v.data)), "mask": describe(np.ma.getmaskarray(v))}
    if isinstance(v, np.ndarray):
        return {"kind": "array", "dtype": v.dtype.str, "shape": list(v.shape),
                "order": "F" if v.flags.f_contiguous and not v.flags.c_contiguous else "C",
                "sha256": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}
    return {"kind": "value", "json": v}


if __name__ == "__main__":
    items = cases()
    write(sys.argv[1], items)
    print(json.dumps({"numpy": np.__version__, "keys": {k: describe(v) for k, v in items}}))
