"""Checks `mmpconv inspect --json --hash` output against plain pickle.load.

    python inspect_check.py CASES.json > RESULTS.json

CASES.json is a list of {"path": FILE, "inspect": the JSON inspect printed}.
Each file is loaded with plain pickle.load in a forked child (a file may run
code or crash the interpreter), in a scratch directory, with a time limit;
every key inspect printed is compared with the value pickle.load gave, by
the rules the README states for inspect --json: arrays by dtype (byte order
by value: numpy's unpickling gives native order), shape, order and the
sha256 of their bytes in C order; values by their JSON form (numpy scalars
as numbers or strings, null and exact=false where JSON cannot hold a part).
The result, per file: {"status": "loaded" | "raised" | "crashed" |
"timeout", "error": ..., "mismatches": [...]}.
"""
import hashlib
import json
import math
import os
import pickle
import select
import signal
import sys
import tempfile
import warnings

import numpy as np

TIMEOUT = 20


def array_matches(info, a, path):
    if type(a) is not np.ndarray:
        return f"{path}: inspect says array, pickle.load gives {type(a).__name__}"
    file_dt = np.dtype(info["dtype"])
    if a.dtype.newbyteorder("=") != file_dt.newbyteorder("="):
        return f"{path}: dtype {info['dtype']}, pickle.load {a.dtype.str}"
    if list(a.shape) != info["shape"]:
        return f"{path}: shape {info['shape']}, pickle.load {list(a.shape)}"
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    if order != info["order"] and a.ndim > 1 and a.size > 1:
        return f"{path}: order {info['order']}, pickle.load {order}"
    c = np.ascontiguousarray(a).astype(file_dt, copy=False)
    sha = hashlib.sha256(c.tobytes()).hexdigest()
    if sha != info["sha256"]:
        return f"{path}: sha256 differs"
    return None


def too_long(i):
    """More than CPython's 4,300 decimal digits (estimated from the bits,
    as str() would raise)."""
    n = abs(i).bit_length()
    return n > 14_284 and (n - 1) * math.log10(2) >= 4300


def jsonvalue(v, state, depth=0):
    """The JSON inspect gives for a Python value (render.JSONValue)."""
    def lossy():
        state["exact"] = False
        return None

    if depth > 1000:
        return lossy()
    if isinstance(v, np.ndarray):  # arrays inside values
        return lossy()
    if isinstance(v, np.dtype):
        return v.str
    if isinstance(v, np.generic):
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating):
            f = float(v)
            return lossy() if math.isnan(f) or math.isinf(f) else ("float", f)
        if isinstance(v, np.str_):
            return str(v)
        if isinstance(v, np.datetime64):
            if np.isnat(v) or np.datetime_data(v.dtype)[0] == "generic":
                return lossy()
            return str(v)
        return lossy()
    if v is None or v is True or v is False:
        return v
    if type(v) is int:
        return v if not too_long(v) else lossy()
    if type(v) is float:
        return lossy() if math.isnan(v) or math.isinf(v) else ("float", v)
    if type(v) is str:
        return v
    if type(v) in (list, tuple):
        return [jsonvalue(x, state, depth + 1) for x in v]
    if isinstance(v, dict):
        out = []
        for k, x in v.items():
            if isinstance(k, (np.generic, np.ndarray)):
                state["exact"] = False
                continue
            if k is True or k is False:
                key = "true" if k else "false"
            elif k is None:
                key = "null"
            elif type(k) is str:
                key = k
            elif type(k) is int:
                if too_long(k):
                    state["exact"] = False
                    continue
                key = str(k)
            elif type(k) is float:
                key = "NaN" if math.isnan(k) else "Infinity" if k == math.inf else "-Infinity" if k == -math.inf else repr(k)
            else:
                state["exact"] = False
                continue
            out.append([key, jsonvalue(x, state, depth + 1)])
        return ("dict", out)
    return lossy()


class pairs(list):
    """A JSON object as its members in order, duplicates kept."""

    def items(self):
        return iter(self)

    def __contains__(self, k):
        return any(x[0] == k for x in self)

    def keys(self):
        return [x[0] for x in self]

    def __getitem__(self, k):
        if isinstance(k, str):
            for x in self:
                if x[0] == k:
                    return x[1]
            raise KeyError(k)
        return list.__getitem__(self, k)


def from_inspect(j):
    """inspect's JSON in the form jsonvalue gives: floats tagged, objects as
    ordered pairs (json.loads keeps the order)."""
    if isinstance(j, float):
        return ("float", j)
    if isinstance(j, pairs):  # before list: pairs is one
        return ("dict", [[k, from_inspect(x)] for k, x in j])
    if isinstance(j, list):
        return [from_inspect(x) for x in j]
    return j


def same(a, b):
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "float":
        return a[1] == b[1] or abs(a[1] - b[1]) <= 1e-15 * max(abs(a[1]), abs(b[1]))
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "dict":
        return len(a[1]) == len(b[1]) and all(x[0] == y[0] and same(x[1], y[1]) for x, y in zip(a[1], b[1]))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def check(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(case["path"], "rb") as f:
            d = pickle.load(f)
    keys = json.loads(case["inspect"], object_pairs_hook=pairs)["keys"]
    out = []
    if not isinstance(d, dict):
        return [f"pickle.load gives a {type(d).__name__}, inspect shows keys"] if keys else []
    if keys.keys() != list(d):
        out.append(f"keys: inspect {keys.keys()!r}, pickle.load {list(d)!r}")
    for k, e in keys:
        if k not in d:
            continue
        v, path = d[k], f"key {k!r}"
        kind = e["kind"]
        if kind == "array":
            err = array_matches(e, v, path)
        elif kind == "masked":
            if not isinstance(v, np.ma.MaskedArray):
                err = f"{path}: inspect says masked, pickle.load gives {type(v).__name__}"
            else:
                err = array_matches(e["data"], v.data, path + " data") or \
                    array_matches(e["mask"], np.ma.getmaskarray(v), path + " mask")
        elif kind == "object":
            err = None  # inspect says it does not decode it
        else:
            state = {"exact": True}
            want = jsonvalue(v, state)
            got = from_inspect(e["json"])
            err = None
            if not same(want, got) or state["exact"] != e["exact"]:
                err = f"{path}: inspect {json.dumps(e)[:300]}, pickle.load gives {want!r:.300} (exact {state['exact']})"
        if err:
            out.append(err)
    return out


def run_one(case, scratch):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.chdir(scratch)
        try:
            res = {"status": "loaded", "mismatches": check(case)}
        except BaseException as e:  # noqa: BLE001 - the result is the exception
            res = {"status": "raised", "error": f"{type(e).__name__}: {e}"[:500]}
        with os.fdopen(w, "w") as f:
            json.dump(res, f)
        os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], TIMEOUT)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return {"status": "timeout"}
    data = b""
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"status": "crashed", "error": signal.Signals(os.WTERMSIG(status)).name}
    try:
        return json.loads(data)
    except ValueError:
        return {"status": "crashed", "error": "no result"}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with tempfile.TemporaryDirectory() as scratch:
        out = {c["path"]: run_one(c, scratch) for c in cases}
    json.dump({"numpy": np.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
