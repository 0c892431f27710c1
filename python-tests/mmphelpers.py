"""Helpers of the Python tests (numpy and the standard library only)."""
import json
import os
import pickle
import pickletools
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = REPO / "compat" / "testdata"

NUMPY_VERSION = tuple(int(x) for x in np.__version__.split(".")[:2])
# numpy >= 2.3 removed the binary mode of fromstring, which mmappickle's
# own array encoding relies on.
NUMPY_NO_FROMSTRING = NUMPY_VERSION >= (2, 3)

try:
    import h5py
    H5PY_ERROR = None
except ImportError as e:
    h5py = None
    H5PY_ERROR = (f"h5py is not installed for {sys.executable} (numpy {np.__version__}; "
                  f"scripts/setup.sh installs it in the tox environments): {e}")

# The HDF5 tests: they need h5py and an mmpconv that converts HDF5 (one
# built with the HDF5 library, able to load it). conftest.py checks both
# before each marked test, the second once per session by converting a tiny
# h5py file (hdf5_probe): the test skips when either is missing, loudly, and
# fails instead when CI is set (CI must exercise HDF5).
needs_h5py = pytest.mark.needs_h5py


def ci():
    """True when the environment variable CI says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def hdf5_probe(mmpconv, tmpdir):
    """None if mmpconv converts a tiny h5py-made file to an mmappickle file
    that plain pickle.load reads back, else the reason it does not."""
    tmpdir = Path(tmpdir)
    src, dst = tmpdir / "probe.h5", tmpdir / "probe.mmpkl"
    want = np.arange(6, dtype="<f8").reshape(2, 3)
    with h5py.File(src, "w") as f:
        f["probe"] = want
    try:
        r = subprocess.run([mmpconv, "convert", "--quiet", str(src), str(dst)], capture_output=True, text=True,
                           timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`{mmpconv} convert {src.name} {dst.name}` could not run: {e}"
    if r.returncode != 0:
        return (f"`{mmpconv} convert {src.name} {dst.name}` exited {r.returncode}: "
                f"{(r.stderr or r.stdout).strip()[:1000]}")
    try:
        got = plain_load(dst)
    except Exception as e:  # noqa: BLE001 - any failure is the reason
        return f"`{mmpconv} convert {src.name} {dst.name}` wrote a file plain pickle.load refuses: {e!r}"
    if set(got) != {"probe"} or not np.array_equal(got["probe"], want):
        return f"`{mmpconv} convert {src.name} {dst.name}` wrote {got!r}, want {{'probe': {want!r}}}"
    return None


# Modules a pickle written by mmpconv may name: numpy's and the standard
# library's pickle helpers, nothing else (in particular nothing of ours).
ALLOWED_MODULES = ("numpy", "builtins", "copyreg", "_codecs")


def pickle_globals(path):
    """The (module, name) pairs the pickle at path names (GLOBAL and
    STACK_GLOBAL), found without loading it. Small files only (pickletools
    reads every argument)."""
    found = set()
    stack, memo = [], {}  # strings pushed (None: something else)
    with open(path, "rb") as f:
        for op, arg, _ in pickletools.genops(f):
            name = op.name
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                stack.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = stack[-1] if stack else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo.get(arg))
            elif name == "GLOBAL":
                found.add(tuple(arg.split(" ", 1)))
                stack.append(None)
            elif name == "STACK_GLOBAL":
                found.add((stack[-2] if len(stack) > 1 else None, stack[-1] if stack else None))
                stack.append(None)
            elif name == "STOP":
                break
            elif name not in ("FRAME", "PROTO", "POP", "MARK"):
                stack.append(None)
    return found


def plain_load(path, warnings_as_errors=True):
    """pickle.load of the file: numpy only, nothing of ours, warnings as
    errors. Checks first that the pickle names nothing outside numpy and the
    standard library's pickle helpers."""
    for module, name in pickle_globals(path):
        assert module is not None and module.split(".")[0] in ALLOWED_MODULES, (
            f"{path} names {module}.{name}")
    with warnings.catch_warnings():
        if warnings_as_errors:
            warnings.simplefilter("error")
        with open(path, "rb") as f:
            return pickle.load(f)


def load_expecting_fromstring_failure(path):
    """Plain pickle.load of an mmappickle-profile file on numpy >= 2.3: the
    documented ValueError. (numpy 2 also warns that numpy.core is deprecated
    on the way; those warnings are not the point here.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"numpy\.core\.\w+ is deprecated", DeprecationWarning)
        with pytest.raises(ValueError, match="The binary mode of fromstring is removed, use frombuffer instead"):
            plain_load(path, warnings_as_errors=False)


def same_dtype(got, want):
    """Equal dtypes up to numpy's byte-order normalisation (unpickling hands
    big-endian arrays back in native order)."""
    got, want = np.dtype(got), np.dtype(want)
    return got == want or got == want.newbyteorder("=")


def assert_same_array(got, want, what=""):
    assert type(got) is type(want) or (type(want) is np.memmap and type(got) is np.ndarray), (what, type(got))
    assert same_dtype(got.dtype, want.dtype), (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_array_equal(got, want, err_msg=what)


def inspect_entries(mmpconv, path):
    """{key: entry text} exactly as `mmpconv inspect --json` prints each key,
    in file order."""
    out = mmpconv("inspect", "--json", path).stdout
    lines = out.splitlines()
    assert lines[0].startswith('{"commit_number": ') and lines[-1] == "}}", out[:500]
    dec = json.JSONDecoder()
    entries = {}
    for line in lines[1:-1]:
        assert line.startswith("  "), line
        key, end = dec.raw_decode(line, 2)
        assert line[end:end + 2] == ": ", line
        entries[key] = line[end + 2:].removesuffix(",")
    assert list(entries) == list(json.loads(out)["keys"])
    return entries
