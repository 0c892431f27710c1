"""Helpers of mmpbridge's tests."""
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "compat" / "testdata"
NUMPY = tuple(int(x) for x in np.__version__.split(".")[:2])


def plain_load(path, warnings_ok=False):
    """pickle.load of the file in a fresh interpreter that imports numpy
    only (not mmpbridge), warnings as errors unless warnings_ok (numpy 1.x
    deprecates the fromstring of the mmappickle profile): what someone
    without our code gets. Returns the dict, pickled back to this process."""
    code = ("import pickle, sys, warnings\n"
            f"warnings.simplefilter({'ignore' if warnings_ok else 'error'!r})\n"
            "with open(sys.argv[1], 'rb') as f:\n"
            "    d = pickle.load(f)\n"
            "assert 'mmpbridge' not in sys.modules\n"
            "sys.stdout.buffer.write(pickle.dumps(d, 4))\n")
    out = subprocess.run([sys.executable, "-c", code, os.fspath(path)], check=True, capture_output=True).stdout
    return pickle.loads(out)


def same(a, b):
    """Deep equality of values, arrays by dtype, shape and bytes."""
    if isinstance(a, np.ma.MaskedArray) or isinstance(b, np.ma.MaskedArray):
        return (isinstance(a, np.ma.MaskedArray) and isinstance(b, np.ma.MaskedArray) and same(a.data, b.data)
                and same(np.ma.getmaskarray(a), np.ma.getmaskarray(b)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def quiet():
    """A context where numpy's and pickle's warnings are errors."""
    c = warnings.catch_warnings()
    c.__enter__()
    warnings.simplefilter("error")
    return c


def require(module):
    """The module, or a skip; where MMP_REQUIRE lists it (the tox envs that
    install it), a failure instead, so that the tests cannot silently skip."""
    import importlib
    import pytest
    need = os.environ.get("MMP_REQUIRE", "").split(",")
    if module.split(".")[0] in need:
        return importlib.import_module(module)
    return pytest.importorskip(module)
