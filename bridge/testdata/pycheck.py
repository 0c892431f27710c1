"""Loads files with plain pickle.load and compares what it gives with what the
bridge says of them. Used by the Go tests (pycheck_test.go); standard library
and numpy only.

    python pycheck.py CASES.json  >  RESULTS.json

CASES.json is a list of {"path": ..., "keys": {KEY: DESC or null}}: DESC is
the bridge's exact description of the key's value (see pmDesc in
pycheck_test.go), null when the bridge refuses to read the key. Each file is
loaded in a forked child with a time limit, in a scratch directory, so that a
file that runs code or crashes the interpreter takes only the child down.

For each file the result is {"status": "loaded" | "raised" | "crashed" |
"timeout", "error": ..., "mismatches": [...]}: a mismatch is a key the bridge
reads whose value differs from what pickle.load gave (or a key pickle.load's
dict lacks).
"""
import collections
import hashlib
import json
import os
import pickle
import select
import signal
import sys
import tempfile
import warnings

import numpy as np

TIMEOUT = float(os.environ.get("PYCHECK_TIMEOUT", "90"))  # a guard against hangs: the 1 GiB memo case takes 20 s on a loaded machine


def le(dt):
    """dt in little-endian order (numpy's unpickling gives native order)."""
    return dt.newbyteorder("<") if dt.byteorder == ">" else dt


def dstr(dt):
    """dtype.str, or for a structured dtype str(dtype.descr) as the bridge says it."""
    dt = le(dt)
    return str(dt.descr) if dt.fields is not None else dt.str


def unpadded(a):
    """a C-ordered copy of a with the padding of a structured dtype zeroed
    (numpy leaves it undefined in copies and scalars)."""
    if a.dtype.fields is None:
        return np.ascontiguousarray(a)
    z = np.zeros(a.shape, a.dtype)
    for n in a.dtype.names:
        z[n] = a[n]
    return z


def arr_desc(a):
    a = np.asarray(a)
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    c = unpadded(a).astype(le(a.dtype), copy=False)
    return {"t": "array", "dtype": dstr(a.dtype), "shape": list(a.shape), "order": order,
            "sha": hashlib.sha256(c.tobytes()).hexdigest()}


def ld_bytes(dt, b):
    """b without the padding of x87 long doubles, which numpy's scalars do not keep."""
    if dt.kind == "f" and dt.itemsize == 16:
        return b[:10]
    if dt.kind == "c" and dt.itemsize == 32:
        return b[:10] + b[16:26]
    return b


def num_hex(v):
    return hex(v)


def describe(v):
    """The exact description of a Python value, as pmDesc gives it in Go."""
    if isinstance(v, np.ma.MaskedArray):
        return {"t": "masked", "data": arr_desc(v.data), "mask": arr_desc(np.ma.getmaskarray(v))}
    if type(v) is np.ndarray:
        return arr_desc(v)
    if isinstance(v, np.ndarray):
        return {"t": "other", "type": type(v).__name__}
    if isinstance(v, np.dtype):
        return {"t": "dtype", "v": dstr(v)}
    if isinstance(v, np.generic):
        if isinstance(v, np.str_):
            return {"t": "scalar", "kind": "U", "v": str(v).encode("utf-8", "surrogatepass").hex()}
        if isinstance(v, np.bytes_):
            return {"t": "scalar", "kind": "S", "v": bytes(v).hex()}
        a = unpadded(np.asarray(v))
        return {"t": "scalar", "dtype": dstr(a.dtype), "v": ld_bytes(a.dtype, a.astype(le(a.dtype), copy=False).tobytes()).hex()}
    if v is None:
        return {"t": "none"}
    if v is True or v is False:
        return {"t": "bool", "v": v}
    if type(v) is int:
        return {"t": "int", "v": num_hex(v)}
    if type(v) is float:
        return {"t": "float", "v": np.float64(v).view(np.uint64).item().to_bytes(8, "big").hex()}
    if type(v) is complex:
        return {"t": "complex", "v": [describe(v.real)["v"], describe(v.imag)["v"]]}
    if type(v) is str:
        return {"t": "str", "v": v.encode("utf-8", "surrogatepass").hex()}
    if type(v) is bytes:
        return {"t": "bytes", "v": v.hex()}
    if type(v) is bytearray:
        return {"t": "bytearray", "v": bytes(v).hex()}
    if type(v) is list:
        return {"t": "list", "v": [describe(x) for x in v]}
    if type(v) is tuple:
        return {"t": "tuple", "v": [describe(x) for x in v]}
    if type(v) in (dict, collections.OrderedDict):
        t = "dict" if type(v) is dict else "OrderedDict"
        return {"t": t, "v": [[describe(k), describe(x)] for k, x in v.items()]}
    if type(v) is set:
        return {"t": "set", "v": sorted((describe(x) for x in v), key=canon)}
    if type(v) is frozenset:
        return {"t": "frozenset", "v": sorted((describe(x) for x in v), key=canon)}
    return {"t": "other", "type": type(v).__module__ + "." + type(v).__qualname__}


def canon(d):
    return json.dumps(d, sort_keys=True)


def norm(d):
    """A description with the items of its sets sorted, at every level."""
    if isinstance(d, list):
        return [norm(x) for x in d]
    if not isinstance(d, dict):
        return d
    out = {k: norm(x) for k, x in d.items()}
    if out.get("t") in ("set", "frozenset"):
        out["v"] = sorted(out["v"], key=canon)
    return out


def compare(want, v, path):
    """None when the bridge's description want matches value v."""
    t = want.get("t")
    if t == "opaque":
        return None  # the bridge says it does not decode this part
    if t == "masked":
        if not isinstance(v, np.ma.MaskedArray):
            return f"{path}: bridge says masked array, pickle.load gives {type(v).__name__}"
        got = describe(v)
        for part in ("data", "mask"):
            if got[part] != want[part]:
                return f"{path}: masked {part} {want[part]} != {got[part]}"
        fill = v._fill_value
        if want.get("fill") is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                default = np.ma.core._check_fill_value(None, v.dtype)  # what setstate made of None
            if fill is not None and np.asarray(fill).tobytes() != np.asarray(default).tobytes():
                return f"{path}: bridge says default fill, pickle.load gives {fill!r}"
        else:
            f = np.asarray(fill)
            got_fill = {"dtype": le(f.dtype).str, "v": f.astype(le(f.dtype)).tobytes().hex()}
            if got_fill != want["fill"]:
                return f"{path}: fill {want['fill']} != {got_fill}"
        return None
    kinds = {"list": list, "tuple": tuple, "dict": dict, "OrderedDict": collections.OrderedDict}
    if t in kinds:
        mapping = t in ("dict", "OrderedDict")
        if type(v) is not kinds[t] or len(v) != len(want["v"]):
            return f"{path}: bridge {t} of {len(want['v'])}, pickle.load {type(v).__name__} of {len(v) if hasattr(v, '__len__') else '-'}"
        items = list(v.items()) if mapping else list(v)
        for i, (w, x) in enumerate(zip(want["v"], items)):
            if mapping:
                err = compare(w[0], x[0], f"{path}[key {i}]") or compare(w[1], x[1], f"{path}[{i}]")
            else:
                err = compare(w, x, f"{path}[{i}]")
            if err:
                return err
        return None
    got = describe(v)
    if norm(want) != got:
        return f"{path}: bridge {json.dumps(norm(want))[:300]} != pickle.load {json.dumps(got)[:300]}"
    return None


def check(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(case["path"], "rb") as f:
            d = pickle.load(f)
    out = []
    if not any(w is not None for w in case["keys"].values()):
        return out  # the bridge reads nothing of it
    if not isinstance(d, dict):
        return [f"pickle.load gives a {type(d).__name__}, not a dict"]
    for key, want in case["keys"].items():
        if want is None:
            continue  # refused by the bridge
        if key not in d:
            out.append(f"key {key!r}: the bridge reads it, pickle.load's dict lacks it")
            continue
        err = compare(want, d[key], f"key {key!r}")
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
    data = b""
    ready, _, _ = select.select([r], [], [], TIMEOUT)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return {"status": "timeout"}
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
        return {"status": "crashed", "error": f"child exited {os.WEXITSTATUS(status)} without a result"}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case in cases:
            out[case["path"]] = run_one(case, scratch)
    json.dump({"numpy": np.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
